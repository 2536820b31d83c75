package scan

import (
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestSeverityRank(t *testing.T) {
	tests := []struct {
		s    Severity
		want int
	}{{Critical, 4}, {High, 3}, {Medium, 2}, {Low, 1}, {Info, 0}, {"", -1}, {"CRITICAL", -1}}
	for _, tt := range tests {
		if got := tt.s.Rank(); got != tt.want {
			t.Errorf("Severity(%q).Rank() = %d, want %d", tt.s, got, tt.want)
		}
	}
}

func TestHighest(t *testing.T) {
	tests := []struct {
		r    *Report
		want Severity
	}{
		{nil, ""},
		{&Report{}, ""},
		{&Report{Findings: []Finding{{Severity: Info}}}, Info},
		{&Report{Findings: []Finding{{Severity: Low}, {Severity: High}, {Severity: Medium}}}, High},
		{&Report{Findings: []Finding{{Severity: Info}, {Severity: Critical}, {Severity: High}}}, Critical},
	}
	for _, tt := range tests {
		if got := tt.r.Highest(); got != tt.want {
			t.Errorf("Highest(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

// TestOrder checks the order of a real report's findings: severity
// (critical first), then kind, rule and location.
func TestOrder(t *testing.T) {
	raw, m := manifestYAML(t, "reactor", "http:\n  - route: \"POST /a\"\n    auth: none\n    dlp: \"off\"\n"+
		"permissions:\n  secrets: [B, A]\n  egress: [\"https://*.example.com\"]\n")
	tm := testModule{exportMemory: true, imports: []testFunc{host("kv_set"), wasi("path_open"), {module: "env", name: "f"}}}
	tm.data = [][]byte{[]byte("\x00token " + awsKey + "\x00")}
	r := mustScan(t, Input{Wasm: tm.bytes(), Manifest: m, ManifestRaw: raw})
	want := []string{
		"critical credential aws-access-token",
		"critical wasm wasm.abi-export-missing", "critical wasm wasm.abi-export-missing",
		"critical wasm wasm.abi-export-missing", "critical wasm wasm.abi-export-missing",
		"high lint lint.auth-none-write",
		"high wasm wasm.foreign-import",
		"medium lint lint.dlp-off", "medium lint lint.egress-subdomain-wildcard", "medium lint lint.no-rate-limit",
		"medium wasm wasm.grant-not-imported", "medium wasm wasm.grant-not-imported", "medium wasm wasm.grant-not-imported",
		"medium wasm wasm.import-without-grant",
		"info wasm wasm.wasi-never-succeeds",
	}
	var got []string
	for _, f := range r.Findings {
		got = append(got, string(f.Severity)+" "+f.Kind+" "+f.Rule)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("findings in order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Same rule: by location.
	var locs []string
	for _, f := range findRule(r, "wasm.grant-not-imported") {
		locs = append(locs, f.Location)
	}
	if !slices.IsSorted(locs) || len(locs) != 3 {
		t.Errorf("grant-not-imported locations = %q, want 3, sorted", locs)
	}
	if r.Highest() != Critical {
		t.Errorf("Highest = %s, want critical", r.Highest())
	}
}

// TestReportJSON checks the wire shape: lists are [] rather than null.
func TestReportJSON(t *testing.T) {
	r := mustScan(t, Input{Wasm: wasmHeader})
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"findings":[],"imports":[],"exports":[]}`; string(js) != want {
		t.Errorf("json = %s, want %s", js, want)
	}
}

// TestPackageDoc fails when the package loses its doc comment, which says
// what the package owns and what it must never do.
func TestPackageDoc(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, f := range pkgs["scan"].Files {
		if f.Doc != nil {
			doc += f.Doc.Text()
		}
	}
	if !strings.HasPrefix(doc, "Package scan ") || !strings.Contains(doc, "never") {
		t.Errorf("package doc = %q, want one starting \"Package scan \" that says what the package never does", doc)
	}
}

// TestNoRE2 guards the build: gitleaks' regexp package uses go-re2 (regexps
// compiled to wasm and run on a second wazero runtime) only with the
// gore2regex build tag; without it, Go's regexp. warden must not pull it
// in.
func TestNoRE2(t *testing.T) {
	goCmd, ok := goTool()
	if !ok {
		t.Skip("skipped: no go command to list dependencies with")
	}
	out, err := exec.Command(goCmd, "list", "-deps", "warden/internal/scan").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/zricethezav/gitleaks/v8/regexp") {
		t.Fatalf("go list -deps shows no gitleaks regexp package; the test no longer checks anything: %q", deps)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/wasilibs/") {
			t.Errorf("internal/scan depends on %s (go-re2): build without the gore2regex tag", d)
		}
	}
}

// TestConcurrent runs scans at once (under -race in CI): gitleaks is
// shared, and every scan must still see only its own findings.
func TestConcurrent(t *testing.T) {
	withKey := (testModule{data: [][]byte{[]byte("\x00token " + awsKey + "\x00")}}).bytes()
	clean := (testModule{data: [][]byte{[]byte("\x00nothing to see in here\x00")}}).bytes()
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := range 8 {
		wg.Go(func() {
			wasm, want := clean, 0
			if i%2 == 0 {
				wasm, want = withKey, 1
			}
			for range 5 {
				r, err := Scan(Input{Wasm: wasm})
				if err != nil {
					errs <- err.Error()
					return
				}
				if got := len(findRule(r, "aws-access-token")); got != want {
					errs <- fmt.Sprintf("scan %d: %d aws-access-token findings, want %d", i, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
