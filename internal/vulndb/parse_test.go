package vulndb

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestParseGolden parses every advisory in testdata and compares what
// matching will use with testdata/golden/entries.json (-update to rewrite).
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/vulndb/ID/*.json")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("testdata/osv/*.json")
	files = append(files, more...)
	if len(files) < 8 {
		t.Fatalf("found %d testdata entries, want at least 8", len(files))
	}
	got := map[string]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		e, err := Parse(b)
		switch {
		case errors.Is(err, ErrNotGo):
			got[filepath.Base(f)] = "ErrNotGo"
		case err != nil:
			t.Fatalf("Parse(%s) = %v", f, err)
		default:
			got[filepath.Base(f)] = e
			if !json.Valid(e.Raw) || len(e.Raw) >= len(b) {
				t.Errorf("Parse(%s).Raw is %d bytes of valid=%v JSON, want compact JSON shorter than the %d-byte file", f, len(e.Raw), json.Valid(e.Raw), len(b))
			}
		}
	}
	out, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	golden := filepath.Join("testdata", "golden", "entries.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestParseGolden -update)", err)
	}
	if string(out) != string(want) {
		t.Errorf("parsed entries differ from %s (run with -update and review the diff):\n%s", golden, out)
	}
}

// entry builds an OSV entry around the given affected list.
func entry(affected string) string {
	return `{"id":"GO-2099-0001","modified":"2024-01-02T03:04:05Z","affected":` + affected + `}`
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		field    string // the error must name this
	}{
		{"empty", ``, "empty"},
		{"blank", " \n\t", "empty"},
		{"not JSON", `{"id":`, "invalid JSON"},
		{"array", `[]`, "(entry)"},
		{"trailing data", entry(`[{"package":{"ecosystem":"Go","name":"m"}}]`) + `{}`, "invalid JSON"},
		{"no id", `{"modified":"2024-01-02T03:04:05Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`, "id"},
		{"id number", `{"id":7}`, "id"},
		{"id with slash", `{"id":"../../etc/passwd","modified":"2024-01-02T03:04:05Z"}`, "id"},
		{"id with escape", `{"id":"GO-1\u001b[31m","modified":"2024-01-02T03:04:05Z"}`, "id"},
		{"id too long", `{"id":"` + strings.Repeat("A", 129) + `"}`, "id"},
		{"no modified", `{"id":"GO-2099-0001","affected":[]}`, "modified"},
		{"bad modified", `{"id":"GO-2099-0001","modified":"yesterday"}`, "modified"},
		{"bad withdrawn", `{"id":"GO-2099-0001","modified":"2024-01-02T03:04:05Z","withdrawn":"soon"}`, "withdrawn"},
		{"bad alias", `{"id":"GO-2099-0001","modified":"2024-01-02T03:04:05Z","aliases":["CVE 1"]}`, "aliases[0]"},
		{"no affected", `{"id":"GO-2099-0001","modified":"2024-01-02T03:04:05Z"}`, "affected"},
		{"empty affected", entry(`[]`), "affected"},
		{"affected not a list", entry(`{}`), "affected"},
		{"no package", entry(`[{}]`), "affected[0].package"},
		{"no package name", entry(`[{"package":{"ecosystem":"Go"}}]`), "affected[0].package.name"},
		{"package name with space", entry(`[{"package":{"ecosystem":"Go","name":"a b"}}]`), "affected[0].package.name"},
		{"range without type", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"events":[{"introduced":"0"}]}]}]`), "affected[0].ranges[0].type"},
		{"no events", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER"}]}]`), "affected[0].ranges[0].events"},
		{"no introduced", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"fixed":"1.0.0"}]}]}]`), "affected[0].ranges[0].events"},
		{"two kinds in one event", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1.0.0"}]}]}]`), "affected[0].ranges[0].events[0]"},
		{"empty event", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{}]}]}]`), "affected[0].ranges[0].events[1]"},
		{"bad fixed", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.x"}]}]}]`), "affected[0].ranges[0].events[1].fixed"},
		{"bad introduced", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"go1.21"}]}]}]`), "affected[0].ranges[0].events[0].introduced"},
		{"bad ecosystem version", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2.3.4"}]}]}]`), "affected[0].ranges[0].events[1].fixed"},
		{"bad listed version", entry(`[{"package":{"ecosystem":"Go","name":"m"},"versions":["latest"]}]`), "affected[0].versions[0]"},
		{"fixed a number", entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":1}]}]}]`), "affected.ranges.events.fixed"},
		{"second affected bad", entry(`[{"package":{"ecosystem":"Go","name":"m"}},{"package":{"ecosystem":"Go","name":""}}]`), "affected[1].package.name"},
		{"too large", `{"id":"GO-2099-0001","details":"` + strings.Repeat("x", MaxEntrySize) + `"}`, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse(%.80q) = %+v, want an error naming %q", tt.in, e, tt.field)
			}
			if e != nil {
				t.Errorf("Parse(%.80q) returned an entry with its error", tt.in)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Parse(%.80q) error = %q, want one naming %q", tt.in, err, tt.field)
			}
		})
	}
}

func TestParseFieldError(t *testing.T) {
	_, err := Parse([]byte(entry(`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"x"}]}]}]`)))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "affected[0].ranges[0].events[1].fixed" {
		t.Errorf("Parse error = %#v, want a *FieldError for affected[0].ranges[0].events[1].fixed", err)
	}
}

func TestParseRanges(t *testing.T) {
	tests := []struct {
		name     string
		affected string
		want     []Affected
	}{
		{"from the beginning",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}]}]`,
			[]Affected{{"m", []Range{{Fixed: "v1.2.3"}}}}},
		{"events out of order",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"fixed":"1.19.1"},{"introduced":"1.19.0-0"},{"fixed":"1.18.6"},{"introduced":"0"}]}]}]`,
			[]Affected{{"m", []Range{{Fixed: "v1.18.6"}, {Introduced: "v1.19.0-0", Fixed: "v1.19.1"}}}}},
		{"introduced only",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.4.0"}]}]}]`,
			[]Affected{{"m", []Range{{Introduced: "v1.4.0"}}}}},
		{"last_affected",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"last_affected":"1.3.9"}]}]}]`,
			[]Affected{{"m", []Range{{Introduced: "v1.0.0", LastAffected: "v1.3.9"}}}}},
		{"v prefix kept, limit ignored",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"v1.0.0"},{"limit":"2.0.0"},{"fixed":"v1.1.0"}]}]}]`,
			[]Affected{{"m", []Range{{Introduced: "v1.0.0", Fixed: "v1.1.0"}}}}},
		{"ECOSYSTEM read as semver",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2.0-rc.1"}]}]}]`,
			[]Affected{{"m", []Range{{Fixed: "v1.2.0-rc.1"}}}}},
		{"GIT ignored, no range left: every version",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"GIT","repo":"https://x","events":[{"introduced":"abc"},{"fixed":"def"}]}]}]`,
			[]Affected{{"m", []Range{{}}}}},
		{"no ranges: every version",
			`[{"package":{"ecosystem":"Go","name":"m"}}]`,
			[]Affected{{"m", []Range{{}}}}},
		{"listed versions",
			`[{"package":{"ecosystem":"Go","name":"m"},"versions":["1.0.0","1.0.1"]}]`,
			[]Affected{{"m", []Range{{Introduced: "v1.0.0", LastAffected: "v1.0.0"}, {Introduced: "v1.0.1", LastAffected: "v1.0.1"}}}}},
		{"GIT beside SEMVER",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"GIT","events":[{"introduced":"abc"}]},{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.3.8"}]}]}]`,
			[]Affected{{"m", []Range{{Fixed: "v0.3.8"}}}}},
		{"other ecosystems dropped",
			`[{"package":{"ecosystem":"npm","name":"lodash"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.21"}]}]},{"package":{"ecosystem":"Go","name":"stdlib"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.21.3"}]}]}]`,
			[]Affected{{"stdlib", []Range{{Fixed: "v1.21.3"}}}}},
		{"pseudo-version and +incompatible",
			`[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0.0.0-20200101000000-abcdefabcdef"},{"fixed":"25.0.13+incompatible"}]}]}]`,
			[]Affected{{"m", []Range{{Introduced: "v0.0.0-20200101000000-abcdefabcdef", Fixed: "v25.0.13+incompatible"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse([]byte(entry(tt.affected)))
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if !reflect.DeepEqual(e.Affected, tt.want) {
				t.Errorf("Parse(…).Affected = %+v, want %+v", e.Affected, tt.want)
			}
		})
	}
}

func TestParseNotGo(t *testing.T) {
	b, err := os.ReadFile("testdata/osv/GHSA-rhm9-p9w5-fwm7.json")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := Parse(b); !errors.Is(err, ErrNotGo) {
		t.Errorf("Parse(PyPI advisory) = %v, %v; want ErrNotGo", e, err)
	}
}

func TestParseDisplayFields(t *testing.T) {
	tests := []struct {
		name, extra string
		summary     string
	}{
		{"summary", `"summary":"HTTP/2 rapid reset"`, "HTTP/2 rapid reset"},
		{"details first line when no summary", `"details":"  An attacker may cause a denial of service.\n\nMore."`, "An attacker may cause a denial of service."},
		{"control characters removed", `"summary":"evil\u001b[2J\u0007 text\r\nnext"`, "evil [2J text next"},
		{"long summary cut", `"summary":"` + strings.Repeat("é", 400) + `"`, strings.Repeat("é", 300) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := `{"id":"GO-2099-0001","modified":"2024-01-02T03:04:05Z",` + tt.extra + `,"affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`
			e, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if e.Summary != tt.summary {
				t.Errorf("Parse(…).Summary = %q, want %q", e.Summary, tt.summary)
			}
		})
	}
}
