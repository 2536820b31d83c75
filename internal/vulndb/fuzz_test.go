package vulndb

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/semver"
)

// FuzzParse checks that Parse never panics and that what it accepts is
// what matching relies on: an ID, at least one Go module with valid
// ranges, and the raw entry as valid JSON.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/vulndb/ID/*.json")
	more, _ := filepath.Glob("testdata/osv/*.json")
	for _, p := range append(files, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"id":"A"}`,
		entry(`[{"package":{"ecosystem":"Go","name":"m"}}]`),
		entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"fixed":"1.0.0"},{"introduced":"0"},{"last_affected":"2.0.0"},{"introduced":"3.0.0-0"}]}],"versions":["0.1.0"]}]`),
		entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"limit":"x"}]}]}]`),
		`{"id":"GO-1","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}],"affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			if e != nil {
				t.Fatalf("Parse returned an entry with error %v", err)
			}
			return
		}
		if e.ID == "" || len(e.Affected) == 0 {
			t.Fatalf("Parse accepted an entry without id or affected: %+v", e)
		}
		if !json.Valid(e.Raw) {
			t.Fatalf("Parse(…).Raw is not valid JSON: %q", e.Raw)
		}
		switch e.Severity {
		case "", "low", "medium", "high", "critical":
		default:
			t.Fatalf("Parse(…).Severity = %q", e.Severity)
		}
		for _, a := range e.Affected {
			if a.Module == "" || len(a.Ranges) == 0 {
				t.Fatalf("Parse(…) affected %+v has no module or no range", a)
			}
			for _, r := range a.Ranges {
				for _, v := range []string{r.Introduced, r.Fixed, r.LastAffected} {
					if v != "" && !semver.IsValid(v) {
						t.Fatalf("Parse(…) range %+v holds %q, not semver", r, v)
					}
				}
				if r.Fixed != "" && r.LastAffected != "" {
					t.Fatalf("Parse(…) range %+v has both a fix and a last affected version", r)
				}
			}
		}
		// Whatever was accepted can be indexed and matched.
		ix := NewIndex([]*Entry{e})
		ix.Match([]Component{{e.Affected[0].Module, "v1.0.0"}, {e.Affected[0].Module, "go1.21.0"}})
	})
}

// FuzzNormalize checks that Normalize never panics and returns semver
// with a "v" prefix whenever it says ok.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"go1.21", "go1.22rc1", "1.21.5", "v1.2.3", "v25.0.13+incompatible", "devel go1.23", "go1.0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := Normalize(s)
		if ok != (v != "") || (ok && (!semver.IsValid(v) || !strings.HasPrefix(v, "v"))) {
			t.Fatalf("Normalize(%q) = %q, %v", s, v, ok)
		}
	})
}
