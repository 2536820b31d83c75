// Package archtest guards warden's architecture: which packages may import
// which, and that every package documents what it owns.
package archtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	GoFiles    []string
}

func list(t *testing.T, env []string, patterns ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, patterns...)...)
	cmd.Dir = "../.."
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// rule forbids packages under from to import packages under any of deny.
type rule struct {
	from string
	deny []string
	why  string
}

var rules = []rule{
	{"warden/internal/sandbox", []string{"warden/internal/gateway", "warden/internal/admin", "warden/internal/deploy", "warden/internal/server", "warden/internal/cli", "warden/internal/store", "warden/internal/auth"}, "the sandbox runs guests; it knows nothing of HTTP serving, storage or credentials"},
	{"warden/internal/manifest", []string{"warden/internal/"}, "the manifest parser stands alone"},
	{"warden/internal/events", []string{"warden/internal/"}, "the event model stands alone"},
	{"warden/internal/store", []string{"warden/internal/gateway", "warden/internal/admin", "warden/internal/deploy", "warden/internal/server", "warden/internal/cli", "warden/internal/sandbox", "warden/internal/auth", "warden/internal/manifest"}, "the store keeps bytes and records"},
	{"warden/internal/gateway", []string{"warden/internal/admin", "warden/internal/server", "warden/internal/cli", "warden/internal/store"}, "the public path never reaches admin code or the store directly"},
	{"warden/internal/deploy", []string{"warden/internal/gateway", "warden/internal/admin", "warden/internal/server", "warden/internal/cli"}, "the pipeline does not serve HTTP"},
	{"warden/internal/auth", []string{"warden/internal/gateway", "warden/internal/admin", "warden/internal/server", "warden/internal/cli", "warden/internal/sandbox"}, "credentials do not depend on the request path"},
	{"warden/sdk", []string{"warden/internal/"}, "the guest SDK is public and builds alone"},
	{"warden/examples", []string{"warden/internal/"}, "examples use only the SDK"},
}

// importers limits who may import a package: only server wires subsystems.
var importers = map[string][]string{
	"warden/internal/server": {"warden/internal/cli", "warden/internal/bench"},
	"warden/internal/cli":    {"warden/cmd/warden"},
	"warden/internal/bench":  {"warden/cmd/warden-bench"},
	"warden/internal/admin":  {"warden/internal/server", "warden/internal/cli"},
	// Test guests are for tests only: no package's own code imports it.
	"warden/internal/testguest": {},
}

func check(t *testing.T, pkgs []pkg) {
	t.Helper()
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

func violations(pkgs []pkg) (out []string) {
	for _, p := range pkgs {
		for _, r := range rules {
			if !under(p.ImportPath, r.from) {
				continue
			}
			for _, imp := range p.Imports {
				for _, d := range r.deny {
					if under(imp, d) && !under(imp, r.from) {
						out = append(out, p.ImportPath+" imports "+imp+": "+r.why)
					}
				}
			}
		}
		for _, imp := range p.Imports {
			allowed, limited := importers[imp]
			if !limited || under(p.ImportPath, imp) {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || under(p.ImportPath, a)
			}
			if !ok {
				out = append(out, p.ImportPath+" imports "+imp+"; only "+strings.Join(allowed, ", ")+" may")
			}
		}
	}
	return out
}

func under(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func TestDependencies(t *testing.T) {
	check(t, list(t, nil, "warden/..."))
	// The SDK and examples build only for wasip1.
	check(t, list(t, []string{"GOOS=wasip1", "GOARCH=wasm"}, "warden/sdk/...", "warden/examples/..."))
}

func TestPackageDocs(t *testing.T) {
	for _, p := range list(t, nil, "warden/...") {
		if len(p.GoFiles) == 0 {
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no package doc comment saying what it owns and must never do", p.ImportPath)
		}
	}
}

// TestRulesBite proves the checker flags forbidden edges.
func TestRulesBite(t *testing.T) {
	bad := []pkg{
		{ImportPath: "warden/internal/sandbox", Imports: []string{"warden/internal/gateway"}},
		{ImportPath: "warden/sdk/go", Imports: []string{"warden/internal/events"}},
		{ImportPath: "warden/internal/gateway", Imports: []string{"warden/internal/server"}},
	}
	if v := violations(bad); len(v) != 4 { // the last edge breaks a rule and the importer limit
		t.Fatalf("violations = %q, want 4", v)
	}
	if v := violations([]pkg{{ImportPath: "warden/internal/server", Imports: []string{"warden/internal/admin"}}}); len(v) != 0 {
		t.Fatalf("violations = %q for an allowed edge, want none", v)
	}
}
