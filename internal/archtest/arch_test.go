// Package archtest guards warden's architecture: which packages may import
// which, and that every package documents what it owns.
package archtest

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Dir        string
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
	{"warden/internal/vulndb", []string{"warden/", "net", "os/exec", "syscall"}, "the vulnerability database never touches the network, runs nothing and stands alone"},
	{"warden/internal/sign", []string{"warden/", "net", "os/exec"}, "signatures are checked from bytes alone"},
	{"warden/internal/policy", []string{"warden/", "net", "os/exec"}, "policies are evaluated from their input alone"},
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

// sayNever are the packages whose doc must also say what they never do:
// they read untrusted input or decide what is trusted.
var sayNever = map[string]bool{
	"warden/internal/manifest": true,
	"warden/internal/sign":     true,
	"warden/internal/vulndb":   true,
}

func TestPackageDocs(t *testing.T) {
	for _, p := range list(t, nil, "warden/...") {
		if len(p.GoFiles) == 0 {
			continue
		}
		want := "Package " + p.Name + " "
		if p.Name == "main" {
			want = "Command "
		}
		if !strings.HasPrefix(p.Doc, want) {
			t.Errorf("package %s: doc %q, want one starting %q saying what it owns and must never do", p.ImportPath, p.Doc, want)
		}
		if sayNever[p.ImportPath] {
			if doc := fullDoc(t, p); !strings.Contains(doc, "never") {
				t.Errorf("package %s: doc %q does not say what the package never does", p.ImportPath, doc)
			}
		}
	}
}

// fullDoc is a package's whole doc comment (go list gives its first
// sentence).
func fullDoc(t *testing.T, p pkg) string {
	t.Helper()
	var doc string
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, name), nil, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		if f.Doc != nil {
			doc += f.Doc.Text()
		}
	}
	return doc
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
