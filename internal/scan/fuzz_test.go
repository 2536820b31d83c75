package scan

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// FuzzScan feeds Scan arbitrary bytes as a module, with a manifest that
// grants something of everything so that every check runs. Scan must not
// panic; an error must wrap ErrMalformed; a report must be sorted and its
// messages and locations free of control characters (names from the
// module are escaped).
func FuzzScan(f *testing.F) {
	valid := reactor("log", "secret_get", "kv_set", "http_request")
	valid.imports = append(valid.imports, wasi("fd_write"), wasi("path_open"), testFunc{module: "env", name: "x"})
	valid.data = [][]byte{[]byte("\x00token " + awsKey + "\x00"), []byte(block(modInfo))}
	valid.custom = [][2]string{{"producers", producers("go1.26.0")}, {"name", "\x00"}}
	b := valid.bytes()
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(wasmHeader)
	f.Add((testModule{funcs: wagiFuncs(), exportMemory: true}).bytes())

	raw, m := manifestYAML(f, "reactor", "http:\n  - route: \"POST /a\"\n    auth: none\n"+
		"permissions:\n  secrets: [A]\n  kv: {b: write}\n  egress: [\"https://*.example.com\"]\n")
	f.Fuzz(func(t *testing.T, wasm []byte) {
		r, err := Scan(Input{Wasm: wasm, Manifest: m, ManifestRaw: raw})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Scan error %v does not wrap ErrMalformed", err)
			}
			if r != nil {
				t.Fatal("Scan returned a report with an error")
			}
			return
		}
		if r.Imports == nil || r.Exports == nil || r.Findings == nil {
			t.Fatalf("report has nil lists: %+v", r)
		}
		if !slices.IsSortedFunc(r.Findings, func(a, b Finding) int {
			return b.Severity.Rank() - a.Severity.Rank()
		}) {
			t.Fatalf("findings not sorted by severity: %+v", r.Findings)
		}
		for _, f := range r.Findings {
			if f.Kind == "" || f.Rule == "" || f.Severity.Rank() < 0 || f.Message == "" {
				t.Fatalf("incomplete finding %+v", f)
			}
			if i := strings.IndexFunc(f.Message+f.Location, unicode.IsControl); i >= 0 {
				t.Fatalf("finding %+v has a control character", f)
			}
		}
	})
}
