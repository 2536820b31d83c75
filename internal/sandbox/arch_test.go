package sandbox

import (
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every package this package owns has a doc comment saying what it owns.
func TestPackageDocs(t *testing.T) {
	for _, dir := range []string{".", "../../sdk/go", "../../sdk/go/wardenhttp"} {
		pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi os.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		for name, p := range pkgs {
			doc := false
			for _, f := range p.Files {
				doc = doc || f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+name)
			}
			if !doc {
				t.Errorf("package %s (%s) has no package doc comment", name, dir)
			}
		}
	}
}

// The sandbox depends on nothing but wazero, the manifest types, the
// standard library and golang.org/x/sys/unix (which wazero uses too; the
// guest memory mappings need its pointer forms of mmap); the SDK imports
// nothing from warden/internal.
func TestImports(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		allow func(string) bool
	}{
		{".", func(p string) bool {
			return p == "warden/internal/manifest" || p == "golang.org/x/sys/unix" || strings.HasPrefix(p, "github.com/tetratelabs/wazero") || !strings.Contains(strings.Split(p, "/")[0], ".") && !strings.HasPrefix(p, "warden/")
		}},
		{"../../sdk/go", func(p string) bool { return !strings.HasPrefix(p, "warden/") }},
		{"../../sdk/go/wardenhttp", func(p string) bool { return p == "warden/sdk/go" || !strings.HasPrefix(p, "warden/") }},
	} {
		for _, goos := range []string{"linux", "wasip1"} {
			ctx := build.Default
			ctx.GOOS = goos
			if goos == "wasip1" {
				ctx.GOARCH = "wasm"
			}
			abs, _ := filepath.Abs(tc.dir)
			p, err := ctx.ImportDir(abs, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range p.Imports {
				if !tc.allow(imp) {
					t.Errorf("%s (GOOS=%s) imports %s, which it must not", tc.dir, goos, imp)
				}
			}
		}
	}
}
