package scan

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Key-shaped values, assembled at run time so that this file itself holds
// nothing a secret scanner flags. Neither is a real credential; the AWS one
// avoids the EXAMPLE suffix gitleaks allowlists.
var (
	awsKey    = "AKIA" + "Q3EGRT5MX7LZ2KWN"
	githubPAT = "ghp_" + "R7xK2mQ9vL4tW8nB3cY6pD1sF5gH0jZ2aE4u"
)

// assertNoSecret fails when s holds secret or any 8-byte piece of it.
func assertNoSecret(t *testing.T, what, s, secret string) {
	t.Helper()
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(s, secret[i:i+8]) {
			t.Errorf("%s %q contains %q, a piece of the secret", what, s, secret[i:i+8])
			return
		}
	}
}

func TestCredentials(t *testing.T) {
	var filler []byte // 60 runs of text before the key, so that it lands in a later fragment
	for i := range 60 {
		filler = fmt.Appendf(filler, "some ordinary text %02d\x00\x00", i)
	}
	tests := []struct {
		name   string
		tm     testModule
		raw    string // manifest; scanned when set
		secret string
		rule   string
		sev    Severity
		loc    string // "" when nothing must be found
	}{
		{"key in a data segment", testModule{data: [][]byte{[]byte("\x01\x02 nothing here"), []byte("\x00\x01\x02config: " + awsKey + " ok\x00")}},
			"", awsKey, "aws-access-token", Critical, "data segment 1 +0xb"},
		{"key packed between Go strings", testModule{data: [][]byte{[]byte("maxheaders" + awsKey + "37252902984619140625GC sweep termination")}},
			"", awsKey, "aws-access-token", Critical, "data segment 0 +0xa"},
		{"key on a later line of a run", testModule{data: [][]byte{[]byte("\xffline one of the text\nline two\r\nkey " + awsKey + "\n")}},
			"", awsKey, "aws-access-token", Critical, "data segment 0 +0x24"},
		{"key after many runs", testModule{data: [][]byte{append(append([]byte{}, filler...), "\x00id "+awsKey+"\x00"...)}},
			"", awsKey, "aws-access-token", Critical, fmt.Sprintf("data segment 0 +%#x", len(filler)+4)},
		{"allow comment does not allow", testModule{data: [][]byte{[]byte("token " + awsKey + " # gitleaks:allow")}},
			"", awsKey, "aws-access-token", Critical, "data segment 0 +0x6"},
		{"key in a custom section", testModule{custom: [][2]string{{"config", "\x00\x00" + githubPAT + "\x00"}}},
			"", githubPAT, "github-pat", High, `custom section "config" +0x2`},
		{"key in the name section", testModule{custom: [][2]string{{"name", "\x00\x00" + githubPAT + "\x00"}}},
			"", githubPAT, "", "", ""},
		{"key in the manifest", testModule{},
			"name: fn\nartifact: ./fn.wasm\nabi: wagi\nenv:\n  TOKEN: " + githubPAT + "\n", githubPAT, "github-pat", High, "warden.yaml:5"},
		{"short run not scanned", testModule{data: [][]byte{[]byte("\x00" + awsKey[:15] + "\x00")}},
			"", awsKey[:15], "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Wasm: tt.tm.bytes()}
			if tt.raw != "" {
				in.ManifestRaw = []byte(tt.raw)
			}
			r := mustScan(t, in)
			var creds []Finding
			for _, f := range r.Findings {
				if f.Kind == KindCredential {
					creds = append(creds, f)
				}
				assertNoSecret(t, "message", f.Message, tt.secret)
				assertNoSecret(t, "location", f.Location, tt.secret)
			}
			js, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			assertNoSecret(t, "report JSON", string(js), tt.secret)
			if tt.loc == "" {
				if len(creds) != 0 {
					t.Errorf("credential findings = %+v, want none", creds)
				}
				return
			}
			if len(creds) != 1 {
				t.Fatalf("credential findings = %+v, want one %s", creds, tt.rule)
			}
			f := creds[0]
			if f.Rule != tt.rule || f.Severity != tt.sev || f.Location != tt.loc {
				t.Errorf("finding = %s %s at %q, want %s %s at %q", f.Rule, f.Severity, f.Location, tt.rule, tt.sev, tt.loc)
			}
			if !strings.Contains(f.Message, "looks like a credential") || !strings.Contains(f.Message, "secret") {
				t.Errorf("message = %q, want it to say what was found and what to do", f.Message)
			}
		})
	}
}

func TestCredentialSeverity(t *testing.T) {
	tests := []struct {
		rule string
		want Severity
	}{
		{"private-key", Critical},
		{"aws-access-token", Critical},
		{"gcp-api-key", Critical},
		{"azure-ad-client-secret", Critical},
		{"yandex-aws-access-token", High},
		{"github-pat", High},
		{"generic-api-key", High},
	}
	for _, tt := range tests {
		if got := credentialSeverity(tt.rule); got != tt.want {
			t.Errorf("credentialSeverity(%q) = %s, want %s", tt.rule, got, tt.want)
		}
	}
}

func TestLineColOffset(t *testing.T) {
	text := "abc\nde\nfghij"
	// gitleaks' columns count from the newline that ends the previous
	// line (detect/location.go), so line 1's first byte is column 2.
	tests := []struct{ line, col, want int }{
		{0, 1, 0}, {0, 3, 2}, {1, 2, 4}, {2, 2, 7}, {2, 6, 11},
	}
	for _, tt := range tests {
		if got := lineColOffset(text, tt.line, tt.col); got != tt.want {
			t.Errorf("lineColOffset(%q, %d, %d) = %d, want %d", text, tt.line, tt.col, got, tt.want)
		}
	}
}

// TestPackedRules checks the derived rule set: anchors gone, the rest of
// each rule kept.
func TestPackedRules(t *testing.T) {
	if err := loadDetectors(); err != nil {
		t.Fatal(err)
	}
	rules := detectors.packed.Config.Rules
	aws, ok := rules["aws-access-token"]
	if !ok {
		t.Fatalf("packed rules lack aws-access-token (have %d rules)", len(rules))
	}
	if src := aws.Regex.String(); strings.Contains(src, `\b`) {
		t.Errorf("packed aws-access-token = %q, want no \\b", src)
	}
	if len(aws.Allowlists) == 0 || aws.Entropy == 0 {
		t.Errorf("packed aws-access-token lost its allowlist or entropy: %+v", aws)
	}
	for _, id := range []string{"anthropic-api-key", "gitlab-pat-routable", "gcp-api-key"} {
		if _, ok := rules[id]; !ok {
			t.Errorf("packed rules lack %s", id)
		}
	}
	for _, id := range []string{"generic-api-key", "square-access-token", "jwt", "curl-auth-header"} {
		if _, ok := rules[id]; ok {
			t.Errorf("packed rules include %s (not \\b-anchored, or not distinctive without it)", id)
		}
	}
}

// TestLongRun puts keys in one printable run far longer than a fragment:
// one deep inside, one across the first window boundary. Each is found
// once, at its offset.
func TestLongRun(t *testing.T) {
	run := []byte(strings.Repeat("plain text, ", 4000)) // 48 KB
	at := []int{maxFragment - 8, 40000}
	for _, a := range at {
		copy(run[a:], " "+awsKey+" ")
	}
	r := mustScan(t, Input{Wasm: (testModule{data: [][]byte{run}}).bytes()})
	var got []string
	for _, f := range findRule(r, "aws-access-token") {
		got = append(got, f.Location)
	}
	want := []string{fmt.Sprintf("data segment 0 +%#x", at[0]+1), fmt.Sprintf("data segment 0 +%#x", at[1]+1)}
	if !slices.Equal(got, want) {
		t.Errorf("aws-access-token at %q, want %q", got, want)
	}
}

// TestManyMatches: a module stuffed with keys gets maxPerRule findings and
// a count, not one finding per key.
func TestManyMatches(t *testing.T) {
	var data [][]byte
	for i := range maxPerRule + 15 {
		data = append(data, []byte(fmt.Sprintf("key %s%02d more", awsKey[:len(awsKey)-2], i%100)))
	}
	// Replace digits that are not base32: keep the key shape [A-Z2-7].
	for _, d := range data {
		for j := range d {
			if c := d[j]; c == '0' || c == '1' || c == '8' || c == '9' {
				d[j] = 'Q'
			}
		}
	}
	r := mustScan(t, Input{Wasm: (testModule{data: data}).bytes()})
	fs := findRule(r, "aws-access-token")
	if len(fs) != maxPerRule+1 {
		t.Fatalf("aws-access-token findings = %d, want %d and a count", len(fs), maxPerRule+1)
	}
	last := fs[0] // no location sorts first
	if last.Location != "" || !strings.Contains(last.Message, "15 more matches") {
		t.Errorf("count finding = %+v, want one saying 15 more matches", last)
	}
}

// TestBudget: a scan that runs out of time fails closed.
func TestBudget(t *testing.T) {
	old := credentialBudget
	credentialBudget = 0
	defer func() { credentialBudget = old }()
	r := mustScan(t, Input{Wasm: (testModule{data: [][]byte{[]byte("\x00token " + awsKey + "\x00")}}).bytes()})
	fs := findRule(r, "credential.scan-incomplete")
	if len(fs) != 1 || fs[0].Severity != Critical || fs[0].Kind != KindCredential {
		t.Errorf("findings = %+v, want one critical credential.scan-incomplete", r.Findings)
	}
}

// TestGoGuestKey builds a real Go program holding a key-shaped constant:
// the Go linker packs it between other strings, and the finding must still
// point at it.
func TestGoGuestKey(t *testing.T) {
	wasm := buildGuest(t, "./internal/scan/testdata/keyguest", false)
	r := mustScan(t, Input{Wasm: wasm})
	fs := findRule(r, "aws-access-token")
	if len(fs) != 1 {
		t.Fatalf("aws-access-token findings = %+v, want 1 (all: %v)", fs, rules(r))
	}
	var seg, off int
	if n, err := fmt.Sscanf(fs[0].Location, "data segment %d +0x%x", &seg, &off); n != 2 {
		t.Fatalf("location %q: %v", fs[0].Location, err)
	}
	m, err := parseModule(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if seg >= len(m.data) || off+len(awsKey) > len(m.data[seg].bytes) || string(m.data[seg].bytes[off:off+len(awsKey)]) != awsKey {
		t.Errorf("location %q does not point at the key", fs[0].Location)
	}
	assertNoSecret(t, "message", fs[0].Message, awsKey)
}
