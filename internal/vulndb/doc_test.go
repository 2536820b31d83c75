package vulndb

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPackageDoc fails when the package loses its doc comment, which says
// what the package owns and what it must never do.
func TestPackageDoc(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, f := range pkgs["vulndb"].Files {
		if f.Doc != nil {
			doc += f.Doc.Text()
		}
	}
	if !strings.HasPrefix(doc, "Package vulndb ") || !strings.Contains(doc, "never") {
		t.Errorf("package doc = %q, want one starting \"Package vulndb \" that says what the package never does", doc)
	}
}

// TestImports holds the package to its doc: no network, no processes, and
// nothing from the rest of warden, so it can be reviewed on its own.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "net" || strings.HasPrefix(p, "net/") || p == "os/exec" || p == "syscall" || strings.HasPrefix(p, "warden/") {
				t.Errorf("%s imports %q; vulndb never touches the network, runs nothing and stands alone", name, p)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no Go files checked")
	}
}
