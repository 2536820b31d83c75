package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// vuln is a vulnerability finding as the scanner reports one from the Go
// vulnerability database.
func vuln(id, severity, fixed string) Finding {
	return Finding{Kind: "vulnerability", Rule: id, Severity: severity, Message: "a vulnerability",
		Module: "golang.org/x/net", Version: "v0.7.0", Fixed: fixed, Aliases: []string{"CVE-2023-44487"}}
}

// deployInput is an ordinary deploy: signed, in enforce mode, widening nothing.
func deployInput(findings ...Finding) Input {
	return Input{
		Namespace: "shop", Function: "checkout", Version: 4, Previous: 3,
		Manifest: map[string]any{"name": "checkout", "routes": []any{map[string]any{"path": "/pay", "auth": "jwt"}}},
		Findings: findings,
		Signer:   Signer{Status: "verified", Mode: "enforce", KeyID: "k1", KeyName: "ci"},
		Diff:     Diff{NewCode: true},
		Actor:    Actor{Name: "alice", Roles: []string{"deployer"}},
		Time:     time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func TestDefault(t *testing.T) {
	tests := []struct {
		name      string
		in        func(*Input)
		deny      []string
		approvals []string
	}{
		{name: "clean", in: func(*Input) {}},
		{name: "high with fix", in: func(in *Input) { in.Findings = []Finding{vuln("GO-2023-2102", "high", "v0.17.0")} },
			deny: []string{"GO-2023-2102 (CVE-2023-44487) in golang.org/x/net v0.7.0: high, fixed in v0.17.0"}},
		{name: "critical with fix", in: func(in *Input) { in.Findings = []Finding{vuln("GO-2023-2102", "critical", "v0.17.0")} },
			deny: []string{"GO-2023-2102 (CVE-2023-44487) in golang.org/x/net v0.7.0: critical, fixed in v0.17.0"}},
		{name: "unknown severity with fix is high", in: func(in *Input) {
			f := vuln("GO-2024-0001", "", "v1.2.3")
			f.Aliases = nil
			in.Findings = []Finding{f}
		}, deny: []string{"GO-2024-0001 in golang.org/x/net v0.7.0: severity unknown, treated as high, fixed in v1.2.3"}},
		{name: "high without fix", in: func(in *Input) { in.Findings = []Finding{vuln("GO-2023-2102", "high", "")} }},
		{name: "medium with fix", in: func(in *Input) { in.Findings = []Finding{vuln("GO-2023-2102", "medium", "v0.17.0")} }},
		{name: "patch notice is not a vulnerability", in: func(in *Input) {
			f := vuln("GO-2023-2102", "high", "v0.17.0")
			f.Kind = "patch"
			in.Findings = []Finding{f}
		}},
		{name: "credential", in: func(in *Input) {
			in.Findings = []Finding{{Kind: "credential", Rule: "aws-access-token", Severity: "high", Location: "data segment 2 +0x40"}}
		}, deny: []string{"embedded credential: aws-access-token at data segment 2 +0x40"}},
		{name: "credential of low severity", in: func(in *Input) {
			in.Findings = []Finding{{Kind: "credential", Rule: "generic-api-key", Severity: "low"}}
		}, deny: []string{"embedded credential: generic-api-key"}},
		{name: "enforce unsigned", in: func(in *Input) { in.Signer = Signer{Status: "unsigned", Mode: "enforce"} },
			deny: []string{"namespace requires a signature by a trusted key; the artifact is unsigned"}},
		{name: "enforce unverified", in: func(in *Input) { in.Signer = Signer{Status: "unverified", Mode: "enforce", KeyID: "k9"} },
			deny: []string{"namespace requires a signature by a trusted key; the artifact is unverified"}},
		{name: "warn unsigned", in: func(in *Input) { in.Signer = Signer{Status: "unsigned", Mode: "warn"} }},
		{name: "off unsigned", in: func(in *Input) { in.Signer = Signer{Status: "unsigned", Mode: "off"} }},
		{name: "added egress", in: func(in *Input) { in.Diff.AddedEgress = []string{"https://x"} },
			approvals: []string{"adds egress to https://x"}},
		{name: "added secrets", in: func(in *Input) { in.Diff.AddedSecrets = []string{"B", "A"} },
			approvals: []string{"adds secret grants: A, B"}},
		{name: "added KV needs no approval", in: func(in *Input) { in.Diff.AddedKV = []string{"carts:write"} }},
		{name: "all at once, deduplicated", in: func(in *Input) {
			in.Findings = []Finding{vuln("GO-2023-2102", "high", "v0.17.0"), vuln("GO-2023-2102", "high", "v0.17.0"),
				{Kind: "credential", Rule: "aws-access-token"}}
			in.Signer.Status = "unsigned"
			in.Diff.AddedEgress = []string{"https://b", "https://a"}
			in.Diff.AddedSecrets = []string{"STRIPE_KEY"}
		}, deny: []string{
			"GO-2023-2102 (CVE-2023-44487) in golang.org/x/net v0.7.0: high, fixed in v0.17.0",
			"embedded credential: aws-access-token",
			"namespace requires a signature by a trusted key; the artifact is unsigned",
		}, approvals: []string{"adds egress to https://a, https://b", "adds secret grants: STRIPE_KEY"}},
		{name: "zero input", in: func(in *Input) { *in = Input{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := deployInput()
			tt.in(&in)
			d, err := Default().Eval(t.Context(), in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			want := Decision{Allow: len(tt.deny) == 0, Deny: orEmpty(tt.deny), Approvals: orEmpty(tt.approvals)}
			if !equal(d, want) {
				t.Errorf("Eval = %+v, want %+v", d, want)
			}
		})
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func equal(a, b Decision) bool {
	return a.Allow == b.Allow && slices.Equal(a.Deny, b.Deny) && slices.Equal(a.Approvals, b.Approvals) &&
		a.Deny != nil && a.Approvals != nil
}

func TestDefaultIsTheEmbeddedFile(t *testing.T) {
	src, err := os.ReadFile("default.rego")
	if err != nil {
		t.Fatal(err)
	}
	p := Default()
	if string(p.Source()) != string(src) {
		t.Error("Default().Source() differs from default.rego")
	}
	sum := sha256.Sum256(src)
	if got, want := p.Digest(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Default().Digest() = %q, want %q", got, want)
	}
	if Default() != p {
		t.Error("Default() compiled twice")
	}
	// Source hands out a copy: the policy cannot be changed through it.
	p.Source()[0] = 'X'
	if p.Source()[0] == 'X' {
		t.Error("Source() returned the policy's own bytes")
	}
}

// policyOf is a policy with deny and approve rules added to the header.
func policyOf(body string) string { return "package warden.deploy\n\n" + body + "\n" }

func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the error
	}{
		{"syntax error", policyOf("deny contains msg if {\n\tmsg := 1 +\n}"), []string{"x.rego:5:", "rego_parse_error"}},
		{"wrong package", "package warden.other\n\ndeny contains \"x\" if true\n", []string{"x.rego:1:", "package warden.other", "must be package warden.deploy"}},
		{"no package", "deny contains \"x\" if true\n", []string{"x.rego:1:"}},
		{"deny a boolean", policyOf("deny := true"), []string{"x.rego:3:", "deny must be a set of strings"}},
		{"deny an object", policyOf(`deny[msg] if msg := "x"`), []string{"x.rego:3:", "deny must be a set"}},
		{"deny a nested set", policyOf(`deny.x contains "y" if true`), []string{"x.rego:3:", "deny must be a set"}},
		{"deny a function", policyOf(`deny(x) := x`), []string{"x.rego:3:", "deny must be a set"}},
		{"deny a default", policyOf("default deny := set()\ndeny contains \"x\" if false"), []string{"x.rego:3:", "deny must be a set"}},
		{"deny a set of numbers", policyOf(`deny contains 1 if true`), []string{"x.rego:3:", "deny is set[number]", "must be a set of strings"}},
		{"deny a set of objects", policyOf(`deny contains input.signer if true`), []string{"deny is set[object", "must be a set of strings"}},
		{"deny mixed", policyOf("deny contains 1 if true\ndeny contains \"x\" if true"), []string{"deny is set[any<number, string>]"}},
		{"approve a boolean", policyOf("deny contains \"x\" if false\napprove := true"), []string{"x.rego:4:", "approve must be a set"}},
		{"approve a set of numbers", policyOf("deny contains \"x\" if false\napprove contains 1 if true"), []string{"x.rego:4:", "approve is set[number]"}},
		{"no deny", policyOf(`approve contains "x" if true`), []string{"defines no deny rule"}},
		{"empty", "", []string{"x.rego"}},
		{"unknown input field", policyOf(`deny contains "x" if input.signer.staus == "unsigned"`), []string{"x.rego:3:", "undefined ref: input.signer.staus"}},
		{"unknown finding field", policyOf(`deny contains f.rule if { some f in input.findings; f.severty == "high" }`), []string{"x.rego:3:", "undefined ref", "severty"}},
		{"http.send", policyOf(`deny contains "x" if http.send({"method": "GET", "url": "https://example.com"}).status_code == 200`), []string{"x.rego:3:", "undefined function http.send"}},
		{"net.lookup_ip_addr", policyOf(`deny contains "x" if count(net.lookup_ip_addr("example.com")) > 0`), []string{"x.rego:3:", "undefined function net.lookup_ip_addr"}},
		{"opa.runtime", policyOf(`deny contains opa.runtime().env.HOME if true`), []string{"x.rego:3:", "undefined function opa.runtime"}},
		{"json.match_schema", policyOf(`deny contains "x" if json.match_schema({}, {"$ref": "file:///etc/passwd"})[0]`), []string{"x.rego:3:", "undefined function json.match_schema"}},
		{"bits.lsh", policyOf(`deny contains "x" if bits.lsh(1, 1000000000000000) > 0`), []string{"x.rego:3:", "undefined function bits.lsh"}},
		{"strings.render_template", policyOf(`deny contains strings.render_template("{{.a}}", {"a": "x"}) if true`), []string{"x.rego:3:", "undefined function strings.render_template"}},
		{"import data", "package warden.deploy\n\nimport data.secrets\n\ndeny contains \"x\" if secrets.a", []string{"x.rego:3:", "import data.secrets", "only rego.v1 and future.keywords"}},
		{"import input", "package warden.deploy\n\nimport input.signer\n\ndeny contains \"x\" if signer.mode == \"x\"", []string{"x.rego:3:", "import input.signer"}},
		{"import future.keywords aliased", "package warden.deploy\n\nimport future.keywords.in as inn\n\ndeny contains \"x\" if false", []string{"x.rego:3:"}},
		{"data of another package", policyOf(`deny contains x if x := data.other.msg`), []string{"x.rego:3:", "data.other.msg", "only its own rules"}},
		{"data as a whole", policyOf(`deny contains "x" if count(data) > 0`), []string{"x.rego:3:", "data as a whole"}},
		{"own package as a whole", policyOf(`deny contains "x" if count(data.warden.deploy) > 0`), []string{"x.rego:3:", "only its own rules"}},
		{"too big", policyOf("# " + strings.Repeat("x", MaxSourceSize) + "\ndeny contains \"x\" if false"), []string{"x.rego:", "the limit is 262144"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile("x.rego", []byte(tt.src))
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tt.src, p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Compile(%q) error = %q, want it to contain %q", tt.src, err, w)
				}
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	tests := []struct {
		name string
		src  string
		in   Input
		want Decision
	}{
		{"imports rego.v1 and future.keywords",
			"package warden.deploy\n\nimport rego.v1\nimport future.keywords\nimport future.keywords.in\n\ndeny contains \"x\" if \"x\" in {\"x\"}",
			Input{}, Decision{Deny: []string{"x"}, Approvals: []string{}}},
		{"reads its own rules from data",
			policyOf("limit := 1\ndeny contains \"too many findings\" if count(input.findings) > data.warden.deploy.limit"),
			deployInput(vuln("a", "low", ""), vuln("b", "low", "")), Decision{Deny: []string{"too many findings"}, Approvals: []string{}}},
		{"deny from the manifest, checked at eval",
			policyOf(`deny contains msg if msg := input.manifest.name`),
			deployInput(), Decision{Deny: []string{"checkout"}, Approvals: []string{}}},
		{"print is discarded",
			policyOf(`deny contains "x" if { print("leak", input.actor.name); input.actor.name == "alice" }`),
			deployInput(), Decision{Deny: []string{"x"}, Approvals: []string{}}},
		{"two-person rule on roles",
			policyOf("deny contains \"x\" if false\napprove contains \"not a deployer\" if not \"deployer\" in input.actor.roles"),
			Input{}, Decision{Allow: true, Deny: []string{}, Approvals: []string{"not a deployer"}}},
		{"time is RFC 3339",
			policyOf(`deny contains "weekend" if time.weekday(time.parse_rfc3339_ns(input.time)) in {"Saturday", "Sunday"}`),
			deployInput(), Decision{Deny: []string{"weekend"}, Approvals: []string{}}}, // 2026-03-01 is a Sunday
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile("x.rego", []byte(tt.src))
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			d, err := p.Eval(t.Context(), tt.in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if tt.want.Allow = len(tt.want.Deny) == 0; !equal(d, tt.want) {
				t.Errorf("Eval = %+v, want %+v", d, tt.want)
			}
		})
	}
}

func TestEvalFailsClosed(t *testing.T) {
	tests := []struct {
		name string
		src  string
		in   Input
		want string
	}{
		{"division by zero", policyOf(`deny contains sprintf("%d", [10 / count(input.findings)]) if true`), Input{}, "divide by zero"},
		{"type error in a builtin", policyOf(`deny contains "x" if to_number(input.function) > 1`), Input{Function: "checkout"}, "to_number"},
		{"object.get on a string", policyOf(`deny contains msg if { x := input.manifest.name; msg := sprintf("%v", [object.keys(x)]) }`),
			Input{Manifest: map[string]any{"name": "checkout"}}, "object.keys"},
		{"deny holds a number at eval", policyOf(`deny contains x if x := input.manifest.replicas`),
			Input{Manifest: map[string]any{"replicas": 3}}, "deny contains 3"},
		{"approve holds an object at eval", policyOf("deny contains \"x\" if false\napprove contains x if x := input.manifest.limits"),
			Input{Manifest: map[string]any{"limits": map[string]any{"memory": "64Mi"}}}, "approve contains"},
		{"time outside RFC 3339", policyOf(`deny contains "x" if false`),
			Input{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "year outside"},
		{"conflicting values", policyOf("n := input.manifest.a\nn := input.manifest.b\ndeny contains \"x\" if n == 1"),
			Input{Manifest: map[string]any{"a": 1, "b": 2}}, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile("x.rego", []byte(tt.src))
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			d, err := p.Eval(t.Context(), tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Eval = %+v, %v; want an error containing %q", d, err, tt.want)
			}
			if d.Allow {
				t.Errorf("Eval returned Allow with its error")
			}
		})
	}
}

// slow loops 10^10 times unless stopped.
const slow = `deny contains "never" if {
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i == -j
}`

func TestEvalStopsAtDeadline(t *testing.T) {
	p, err := Compile("slow.rego", []byte(policyOf(slow)))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("caller's deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := p.Eval(ctx, Input{})
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrBudget) {
			t.Errorf("Eval = %v, want context.DeadlineExceeded and not ErrBudget", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Eval took %v after a 50ms deadline", el)
		}
	})
	t.Run("own budget", func(t *testing.T) {
		q := *p
		q.budget = 50 * time.Millisecond
		start := time.Now()
		_, err := q.Eval(t.Context(), Input{})
		if !errors.Is(err, ErrBudget) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Eval = %v, want ErrBudget wrapping context.DeadlineExceeded", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Eval took %v on a 50ms budget", el)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := p.Eval(ctx, Input{}); !errors.Is(err, context.Canceled) {
			t.Errorf("Eval = %v, want context.Canceled", err)
		}
	})
}

func TestTest(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		deny    []string
		wantErr string
	}{
		{"allowed", `{"namespace":"shop","function":"checkout","signer":{"status":"unsigned","mode":"warn"},"time":"2026-03-01T12:00:00Z"}`, nil, ""},
		{"denied", `{"findings":[{"kind":"credential","rule":"aws-access-token","severity":"high","message":"m"}]}`,
			[]string{"embedded credential: aws-access-token"}, ""},
		{"unknown field", `{"namespace":"shop","signature":{}}`, nil, `unknown field "signature"`},
		{"unknown nested field", `{"findings":[{"kind":"vulnerability","severty":"high"}]}`, nil, `unknown field "severty"`},
		{"wrong type", `{"version":"4"}`, nil, "Input.version"},
		{"bad time", `{"time":"yesterday"}`, nil, "yesterday"},
		{"trailing data", `{} {}`, nil, "data after the JSON document"},
		{"not an object", `[]`, nil, "input"},
		{"empty", ``, nil, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Default().Test(t.Context(), []byte(tt.json))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Test(%q) = %+v, %v; want an error containing %q", tt.json, d, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Test(%q): %v", tt.json, err)
			}
			if want := (Decision{Allow: len(tt.deny) == 0, Deny: orEmpty(tt.deny), Approvals: []string{}}); !equal(d, want) {
				t.Errorf("Test(%q) = %+v, want %+v", tt.json, d, want)
			}
		})
	}
}

func TestEvalConcurrent(t *testing.T) {
	p := Default()
	inputs := []struct {
		in    Input
		allow bool
	}{
		{deployInput(), true},
		{deployInput(vuln("GO-2023-2102", "high", "v0.17.0")), false},
		{deployInput(vuln("GO-2023-2102", "medium", "v0.17.0")), true},
		{deployInput(Finding{Kind: "credential", Rule: "aws-access-token"}), false},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				c := inputs[(g+i)%len(inputs)]
				d, err := p.Eval(t.Context(), c.in)
				if err != nil {
					errs <- err
					return
				}
				if d.Allow != c.allow {
					errs <- fmt.Errorf("goroutine %d, eval %d: Allow = %v, want %v (%q)", g, i, d.Allow, c.allow, d.Deny)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDocumentMatchesJSON keeps the hand-built input document equal to the
// wire form when every field is set, so a policy tested with `warden policy
// test --input` sees what it sees at deploy.
func TestDocumentMatchesJSON(t *testing.T) {
	in := deployInput(Finding{Kind: "credential", Rule: "r", Severity: "high",
		Message: "m", Location: "l", Module: "m", Version: "v", Fixed: "f", Aliases: []string{"a", "b"}})
	in.Manifest["limits"] = map[string]any{"memory": "64Mi", "timeout": 1.5, "n": 3, "on": true, "none": nil}
	in.Time = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	in.Diff = Diff{AddedSecrets: []string{"A"}, AddedKV: []string{"b:write"}, AddedEgress: []string{"https://x"},
		Widened: []string{"w"}, Relaxed: []string{"r"}, NewCode: true}
	got, err := in.value()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.ValueFromReader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Compare(want) != 0 {
		t.Errorf("value() = %v\nwant (from JSON) %v", got, want)
	}
}

// TestDocumentHasEveryField: a zero Input still shows every field Input
// declares, so no rule silently fails to match on an absent field or null.
func TestDocumentHasEveryField(t *testing.T) {
	in := Input{Findings: []Finding{{}}}
	v, err := in.value()
	if err != nil {
		t.Fatal(err)
	}
	var check func(path string, schema map[string]any, v ast.Value)
	check = func(path string, schema map[string]any, v ast.Value) {
		switch schema["type"] {
		case "object":
			obj, ok := v.(ast.Object)
			if !ok {
				t.Errorf("%s = %v, want an object", path, v)
				return
			}
			props, _ := schema["properties"].(map[string]any)
			if n := obj.Len(); props != nil && n != len(props) {
				t.Errorf("%s has %d fields, want %d", path, n, len(props))
			}
			for k, s := range props {
				f := obj.Get(ast.StringTerm(k))
				if f == nil {
					t.Errorf("%s.%s is absent", path, k)
					continue
				}
				check(path+"."+k, s.(map[string]any), f.Value)
			}
		case "array":
			arr, ok := v.(*ast.Array)
			if !ok {
				t.Errorf("%s = %v, want an array", path, v)
				return
			}
			for i := range arr.Len() {
				check(fmt.Sprintf("%s[%d]", path, i), schema["items"].(map[string]any), arr.Elem(i).Value)
			}
		case "string":
			if _, ok := v.(ast.String); !ok {
				t.Errorf("%s = %v, want a string", path, v)
			}
		case "integer":
			if _, ok := v.(ast.Number); !ok {
				t.Errorf("%s = %v, want a number", path, v)
			}
		case "boolean":
			if _, ok := v.(ast.Boolean); !ok {
				t.Errorf("%s = %v, want a boolean", path, v)
			}
		}
	}
	check("input", inputSchema(), v)
}

// TestBuiltins pins the builtins a policy may call. An OPA upgrade that
// adds one fails here, so someone decides whether it reaches outside
// before it is allowed (go test -run TestBuiltins -update to accept).
func TestBuiltins(t *testing.T) {
	var names []string
	for _, b := range capabilities().Builtins {
		names = append(names, b.Name)
		if _, no := denied[b.Name]; no {
			t.Errorf("capabilities include denied builtin %s", b.Name)
		}
	}
	for name := range denied {
		if !slices.ContainsFunc(ast.CapabilitiesForThisVersion().Builtins, func(b *ast.Builtin) bool { return b.Name == name }) {
			t.Errorf("denied builtin %s does not exist in this OPA: renamed?", name)
		}
	}
	slices.Sort(names)
	got := strings.Join(slices.Compact(names), "\n") + "\n"
	golden := filepath.Join("testdata", "builtins.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("allowed builtins differ from %s; check any new one reaches nothing outside, then rerun with -update", golden)
	}
}

func FuzzCompile(f *testing.F) {
	src, err := os.ReadFile("default.rego")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(src))
	f.Add(policyOf(`deny contains "x" if input.signer.mode == "enforce"`))
	f.Add(policyOf(`deny := true`))
	f.Add(policyOf(`deny contains x if x := data.other.y`))
	f.Add("package warden.deploy\nimport data.x\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile("f.rego", []byte(src))
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		d, err := p.Eval(ctx, deployInput(vuln("GO-2023-2102", "high", "v0.17.0")))
		if err == nil && d.Allow != (len(d.Deny) == 0) {
			t.Errorf("Eval = %+v: Allow disagrees with Deny", d)
		}
	})
}

func FuzzTest(f *testing.F) {
	f.Add(`{"namespace":"shop","signer":{"status":"unsigned","mode":"enforce"}}`)
	f.Add(`{"findings":[{"kind":"vulnerability","rule":"GO-1","severity":"","fixed":"v2"}]}`)
	f.Add(`{"diff":{"addedEgress":["https://x"]},"time":"2026-03-01T12:00:00Z"}`)
	f.Add(`{"manifest":{"a":[1,{"b":null}]}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		d, err := Default().Test(t.Context(), []byte(doc))
		if err != nil {
			if d.Allow {
				t.Errorf("Test(%q) allowed with error %v", doc, err)
			}
			return
		}
		if d.Allow != (len(d.Deny) == 0) {
			t.Errorf("Test(%q) = %+v: Allow disagrees with Deny", doc, d)
		}
	})
}

func BenchmarkEvalDefault(b *testing.B) {
	var findings []Finding
	for i := range 20 {
		switch i % 4 {
		case 0:
			findings = append(findings, vuln(fmt.Sprintf("GO-2025-%04d", i), "", ""))
		case 1:
			findings = append(findings, vuln(fmt.Sprintf("GO-2025-%04d", i), "medium", "v0.9.0"))
		case 2:
			findings = append(findings, Finding{Kind: "lint", Rule: "lint.auth-none-write", Severity: "low", Message: "route /x writes without auth", Location: "warden.yaml:12"})
		case 3:
			findings = append(findings, Finding{Kind: "wasm", Rule: "wasm.large-memory", Severity: "info", Message: "initial memory 64 MiB"})
		}
	}
	in := deployInput(findings...)
	in.Diff.AddedEgress = []string{"https://api.stripe.com"}
	p := Default()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.Eval(ctx, in)
		if err != nil || !d.Allow || len(d.Approvals) != 1 {
			b.Fatalf("Eval = %+v, %v", d, err)
		}
	}
}

func TestRunReturnsAtDeadline(t *testing.T) {
	l := make(limiter, 1)
	release := make(chan struct{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := run(ctx, l, func() (int, error) { <-release; return 1, nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run = %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("run returned %v after a 20ms deadline", el)
	}
	// The abandoned call still holds the only slot: the next run waits for
	// it until its own deadline.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel2()
	if _, err := run(ctx2, l, func() (int, error) { return 2, nil }); err == nil || !strings.Contains(err.Error(), "no evaluation slot free") {
		t.Errorf("run with every slot taken = %v, want no evaluation slot free", err)
	}
	// Once the abandoned call ends, its slot is free again.
	close(release)
	if v, err := run(t.Context(), l, func() (int, error) { return 3, nil }); v != 3 || err != nil {
		t.Errorf("run after release = %v, %v; want 3, nil", v, err)
	}
}

func TestRunRecoversPanic(t *testing.T) {
	l := make(limiter, 1)
	_, err := run(t.Context(), l, func() (int, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Errorf("run = %v, want the panic as an error", err)
	}
	if v, err := run(t.Context(), l, func() (int, error) { return 1, nil }); v != 1 || err != nil {
		t.Errorf("run after a panic = %v, %v; want the slot released", v, err)
	}
}

// TestRemediation: the default policy quarantines; a policy names its own
// remediation or gets notify; anything else is refused.
func TestRemediation(t *testing.T) {
	ctx := context.Background()
	if d, err := Default().Test(ctx, []byte(`{}`)); err != nil || d.Remediation != RemediateQuarantine {
		t.Fatalf("default remediation = %q, %v; want quarantine", d.Remediation, err)
	}
	for src, want := range map[string]string{
		"package warden.deploy\n\ndeny contains \"x\" if false\n":                                                     RemediateNotify,
		"package warden.deploy\n\ndeny contains \"x\" if false\n\nremediation := \"rollback\"\n":                      RemediateRollback,
		"package warden.deploy\n\ndeny contains \"x\" if false\n\nremediation := \"rollback\" if input.version > 5\n": RemediateNotify,
	} {
		p, err := Compile("p.rego", []byte(src))
		if err != nil {
			t.Fatalf("Compile(%q): %v", src, err)
		}
		if d, err := p.Test(ctx, []byte(`{"version": 1}`)); err != nil || d.Remediation != want {
			t.Errorf("remediation of %q = %q, %v; want %q", src, d.Remediation, err, want)
		}
	}
	if _, err := Compile("p.rego", []byte("package warden.deploy\n\ndeny contains \"x\" if false\n\nremediation := 5\n")); err == nil || !strings.Contains(err.Error(), "p.rego:5") {
		t.Errorf("a numeric remediation compiled: %v", err)
	}
	p, err := Compile("p.rego", []byte("package warden.deploy\n\ndeny contains \"x\" if false\n\nremediation := \"delete\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Test(ctx, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "delete") {
		t.Errorf("an unknown remediation evaluated: %v", err)
	}
}

// TestDevelopmentPolicy: scripts/dev-policy.rego (make run, the test
// suites) is the built-in policy without its two-person rule: the same
// denials and remediation, no approvals.
func TestDevelopmentPolicy(t *testing.T) {
	src, err := os.ReadFile("../../scripts/dev-policy.rego")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := Compile("dev-policy.rego", src)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, in := range []string{
		`{}`,
		`{"findings":[{"kind":"credential","rule":"aws-access-token","severity":"critical","message":"m"}]}`,
		`{"findings":[{"kind":"vulnerability","rule":"GO-2022-1059","severity":"","message":"m","module":"golang.org/x/text","version":"v0.3.7","fixed":"v0.3.8"}]}`,
		`{"findings":[{"kind":"vulnerability","rule":"GO-X","severity":"medium","message":"m","fixed":"v2"}]}`,
		`{"signer":{"status":"unsigned","mode":"enforce"}}`,
		`{"signer":{"status":"unverified","mode":"warn"}}`,
		`{"diff":{"addedSecrets":["A"],"addedKV":[],"addedEgress":["https://x.example"],"widened":[],"relaxed":[],"newCode":true}}`,
	} {
		want, err := Default().Test(ctx, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := dev.Test(ctx, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Deny, want.Deny) || got.Allow != want.Allow || got.Remediation != want.Remediation || len(got.Approvals) != 0 {
			t.Errorf("input %s: development policy %+v, built-in %+v; want the same but no approvals", in, got, want)
		}
	}
}
