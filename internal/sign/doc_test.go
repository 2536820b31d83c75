package sign_test

import (
	"go/parser"
	"go/token"
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
	for _, f := range pkgs["sign"].Files {
		if f.Doc != nil {
			doc += f.Doc.Text()
		}
	}
	if !strings.HasPrefix(doc, "Package sign ") || !strings.Contains(doc, "never") {
		t.Errorf("package doc = %q, want one starting \"Package sign \" that says what the package never does", doc)
	}
}
