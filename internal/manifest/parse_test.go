package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimal = "name: hello\nartifact: hello.wasm\nabi: wagi\n"

func TestParseDefaults(t *testing.T) {
	m, err := Parse("warden.yaml", []byte(minimal))
	if err != nil {
		t.Fatalf("Parse(%q) = %v", minimal, err)
	}
	want := &Manifest{
		Name:      "hello",
		Namespace: DefaultNamespace,
		Artifact:  "hello.wasm",
		ABI:       ABIWagi,
		Limits: Limits{
			Memory:       DefaultMemory,
			Timeout:      DefaultTimeout,
			Concurrency:  DefaultConcurrency,
			RequestBody:  DefaultRequestBody,
			ResponseBody: DefaultResponseBody,
		},
		WAF: WAF{Mode: DefaultWAFMode, Paranoia: DefaultParanoia},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Parse(%q) = %+v, want %+v", minimal, m, want)
	}
}

func TestParseRouteDefaults(t *testing.T) {
	in := minimal + "http:\n  - route: GET /a\n    rateLimit: {rate: 5/m}\n"
	m, err := Parse("warden.yaml", []byte(in))
	if err != nil {
		t.Fatalf("Parse(%q) = %v", in, err)
	}
	want := Route{
		Pattern: "GET /a", Method: "GET", Path: "/a",
		Auth: AuthAPIKey, DLP: DefaultDLP,
		RateLimit: &RateLimit{Rate: 5, Per: time.Minute, Burst: 5, By: DefaultRateLimitBy},
	}
	if len(m.HTTP) != 1 || !reflect.DeepEqual(m.HTTP[0], want) {
		t.Errorf("Parse(%q).HTTP = %+v, want [%+v]", in, m.HTTP, want)
	}
}

// TestErrorPosition checks the example of the brief: the error names the
// file, the line and column of the value, and the field path.
func TestErrorPosition(t *testing.T) {
	in := `name: orders
artifact: orders.wasm
abi: reactor
http:
  - route: GET /a
  - route: GET /b
    rateLimit: {rate: 1/s, burst: -2}
limits:
  memory:      64MB
`
	_, err := Parse("warden.yaml", []byte(in))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse() error = %T %v, want an ErrorList", err, err)
	}
	want := ErrorList{
		{File: "warden.yaml", Line: 7, Column: 35, Field: "http[1].rateLimit.burst", Msg: "-2 is out of range; use 1 to 1000000"},
		{File: "warden.yaml", Line: 9, Column: 16, Field: "limits.memory", Msg: `"64MB" is not a size; use a unit like 64MiB`},
	}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("Parse() = %v, want %v", list, want)
	}
	if got, want := list[1].Error(), `warden.yaml:9:16: limits.memory: "64MB" is not a size; use a unit like 64MiB`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestErrorKinds(t *testing.T) {
	// One problem: an *Error.
	_, err := Parse("a.yaml", []byte(minimal+"extra: 1\n"))
	if e, ok := err.(*Error); !ok || e.Field != "extra" || e.Line != 4 {
		t.Errorf("Parse(one problem) = %#v, want *Error for field extra on line 4", err)
	}
	// Several: an ErrorList, sorted by line, in which errors.As finds the first.
	_, err = Parse("a.yaml", []byte("abi: x\nname: Y\nartifact: /z\n"))
	list, ok := err.(ErrorList)
	if !ok || len(list) != 3 {
		t.Fatalf("Parse(three problems) = %#v, want an ErrorList of 3", err)
	}
	for i, e := range list {
		if e.Line != i+1 {
			t.Errorf("list[%d].Line = %d, want %d", i, e.Line, i+1)
		}
	}
	var first *Error
	if !errors.As(err, &first) || first != list[0] {
		t.Errorf("errors.As(ErrorList) = %v, want the first error %v", first, list[0])
	}
	if got, want := err.Error(), "a.yaml:1:6: abi: \"x\" is not an ABI; use reactor or wagi\n"; !strings.HasPrefix(got, want) {
		t.Errorf("ErrorList.Error() = %q, want prefix %q", got, want)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "w.yaml", Line: 3, Column: 7, Field: "env.A", Msg: "bad"}, "w.yaml:3:7: env.A: bad"},
		{Error{File: "w.yaml", Line: 3, Column: 7, Msg: "invalid YAML: x"}, "w.yaml:3:7: invalid YAML: x"},
		{Error{File: "w.yaml", Msg: "too big"}, "w.yaml: too big"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("(%+v).Error() = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fn", "warden.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	in := minimal + "http:\n  - route: POST /x\n    schema: schemas/x.json\n"
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseFile(path)
	if err != nil {
		t.Fatalf("ParseFile(%q) = %v", path, err)
	}
	if got, want := m.ArtifactPath(path), filepath.Join(dir, "fn", "hello.wasm"); got != want {
		t.Errorf("ArtifactPath(%q) = %q, want %q", path, got, want)
	}
	if got, want := m.HTTP[0].SchemaPath(path), filepath.Join(dir, "fn", "schemas", "x.json"); got != want {
		t.Errorf("SchemaPath(%q) = %q, want %q", path, got, want)
	}
	if got := (&Route{}).SchemaPath(path); got != "" {
		t.Errorf("SchemaPath of a route without schema = %q, want \"\"", got)
	}

	// Errors name the path as given.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":1:1: ") {
		t.Errorf("ParseFile(%q) = %v, want an error starting with the path", bad, err)
	}

	// A file over the limit is refused without reading it all.
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, 10*MaxSize), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(big); err == nil || !strings.Contains(err.Error(), "the limit is 65536") {
		t.Errorf("ParseFile(big) = %v, want the size limit error", err)
	}

	if _, err := ParseFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ParseFile(missing) = %v, want os.ErrNotExist", err)
	}
}

// TestSizeLimit checks the boundary: MaxSize bytes are read, one more is not.
func TestSizeLimit(t *testing.T) {
	pad := func(n int) []byte {
		b := []byte(minimal)
		for len(b) < n {
			b = append(b, "# pad\n"...)
		}
		return b[: n-1 : n-1]
	}
	at := append(pad(MaxSize), '\n')
	if _, err := Parse("w.yaml", at); err != nil {
		t.Errorf("Parse(%d bytes) = %v, want success", len(at), err)
	}
	over := append(at, '\n')
	if _, err := Parse("w.yaml", over); err == nil {
		t.Errorf("Parse(%d bytes) succeeded, want the size limit error", len(over))
	}
}

// TestHostileInputs checks inputs that would be slow or explosive for a
// YAML library that expands aliases or nests without bound: each is refused
// quickly with a positioned error.
func TestHostileInputs(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString(minimal + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		bomb.WriteString(strings.NewReplacer("N", string(rune('0'+i)), "P", string(rune('0'+i-1))).Replace(
			"aN: &aN [*aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP, *aP]\n"))
	}
	tests := []struct {
		name, in, want string
	}{
		{"billion laughs", bomb.String(), "4:5: anchors and aliases"},
		{"flow nesting", minimal + "env: " + strings.Repeat("[", 100), "nested more than 32 levels"},
		{"block nesting", minimal + "x:\n" + strings.Repeat(" ", 200) + "x: 1\n", "indented more than 128 columns"},
		{"many tokens", minimal + "env:\n" + strings.Repeat("  K: v\n", 9000), "more than 8192 YAML tokens"},
		{"many routes", minimal + "http:\n" + strings.Repeat("- route: GET /{a}\n", 1000), "too many problems"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("w.yaml", []byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%s) = %.300v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}
