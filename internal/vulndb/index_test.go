package vulndb

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// testIndex indexes testdata: the Go database and the plain OSV files.
func testIndex(t testing.TB) *Index {
	t.Helper()
	var all []*Entry
	for _, dir := range []string{"vulndb", "osv"} {
		entries, errs, err := Load(filepath.Join("testdata", dir))
		if err != nil || len(errs) != 0 {
			t.Fatalf("Load(testdata/%s) = %v, %v", dir, errs, err)
		}
		all = append(all, entries...)
	}
	return NewIndex(all)
}

// found renders matches as "ID@fixed" for comparison.
func found(ms []Match) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Entry.ID+"@"+m.Fixed)
	}
	return out
}

// TestMatchRealAdvisories checks each advisory against versions on both
// sides of its real fixes (see testdata/README.md for the sources).
func TestMatchRealAdvisories(t *testing.T) {
	ix := testIndex(t)
	const (
		reset        = "GO-2023-2102" // HTTP/2 rapid reset, CVE-2023-39325 / CVE-2023-44487
		continuation = "GO-2024-2687" // HTTP/2 CONTINUATION flood
		hpack        = "GO-2023-1571" // HPACK decoder CPU
		goAway       = "GO-2022-0969" // HTTP/2 server hang on shutdown
		acceptLang   = "GO-2022-1059" // x/text ParseAcceptLanguage
		goGet        = "GO-2022-0189" // go get -u remote code execution
		docker       = "GO-2025-3829" // +incompatible fix
	)
	tests := []struct {
		path, version string
		want          []string
	}{
		// golang.org/x/text: fixed in 0.3.8.
		{"golang.org/x/text", "v0.3.7", []string{acceptLang + "@v0.3.8"}},
		{"golang.org/x/text", "v0.3.8", nil},
		{"golang.org/x/text", "v0.4.0", nil},
		{"golang.org/x/text", "v0.0.0-20170915032832-14c0d48ead0c", []string{acceptLang + "@v0.3.8"}},

		// golang.org/x/net: 0969 fixed by a pseudo-version, 1571 in 0.7.0,
		// 2102 in 0.17.0, 2687 in 0.23.0.
		{"golang.org/x/net", "v0.0.0-20220826154423-83b083595b01", []string{goAway + "@v0.0.0-20220906165146-f3363e06e74c", hpack + "@v0.7.0", reset + "@v0.17.0", continuation + "@v0.23.0"}},
		{"golang.org/x/net", "v0.0.0-20220906165146-f3363e06e74c", []string{hpack + "@v0.7.0", reset + "@v0.17.0", continuation + "@v0.23.0"}},
		{"golang.org/x/net", "v0.6.0", []string{hpack + "@v0.7.0", reset + "@v0.17.0", continuation + "@v0.23.0"}},
		{"golang.org/x/net", "v0.7.0", []string{reset + "@v0.17.0", continuation + "@v0.23.0"}},
		{"golang.org/x/net", "v0.16.0", []string{reset + "@v0.17.0", continuation + "@v0.23.0"}},
		{"golang.org/x/net", "v0.17.0", []string{continuation + "@v0.23.0"}},
		{"golang.org/x/net", "v0.22.0", []string{continuation + "@v0.23.0"}},
		{"golang.org/x/net", "v0.23.0", nil},

		// stdlib: two intervals per advisory, fixes per release branch.
		{"stdlib", "go1.18.5", []string{goAway + "@v1.18.6", hpack + "@v1.19.6", reset + "@v1.20.10", continuation + "@v1.21.9"}},
		{"stdlib", "go1.19", []string{goAway + "@v1.19.1", hpack + "@v1.19.6", reset + "@v1.20.10", continuation + "@v1.21.9"}},
		{"stdlib", "go1.19.1", []string{hpack + "@v1.19.6", reset + "@v1.20.10", continuation + "@v1.21.9"}},
		// 1571's second interval starts at 1.20.0, not 1.20.0-0: its
		// release candidates are outside it.
		{"stdlib", "go1.20rc3", []string{reset + "@v1.20.10", continuation + "@v1.21.9"}},
		{"stdlib", "go1.20", []string{hpack + "@v1.20.1", reset + "@v1.20.10", continuation + "@v1.21.9"}},
		{"stdlib", "go1.20.9", []string{reset + "@v1.20.10", continuation + "@v1.21.9"}},
		{"stdlib", "go1.20.10", []string{continuation + "@v1.21.9"}},
		{"stdlib", "go1.21rc2", []string{reset + "@v1.21.3", continuation + "@v1.21.9"}},
		{"stdlib", "go1.21.2", []string{reset + "@v1.21.3", continuation + "@v1.21.9"}},
		{"stdlib", "go1.21.3", []string{continuation + "@v1.21.9"}},
		{"stdlib", "go1.21.8", []string{continuation + "@v1.21.9"}},
		{"stdlib", "go1.21.9", nil},
		{"stdlib", "go1.22.1", []string{continuation + "@v1.22.2"}},
		{"stdlib", "go1.22.0 X:boringcrypto", []string{continuation + "@v1.22.2"}},
		{"stdlib", "go1.22.2", nil},
		{"stdlib", "go1.26.0", nil},
		{"stdlib", "1.21.2", []string{reset + "@v1.21.3", continuation + "@v1.21.9"}},

		// The go command is its own module: stdlib never matches it.
		{"toolchain", "go1.10.5", []string{goGet + "@v1.10.6"}},
		{"toolchain", "go1.11.2", []string{goGet + "@v1.11.3"}},
		{"toolchain", "go1.10.6", nil},
		{"toolchain", "go1.11.3", nil},

		{"github.com/docker/docker", "v25.0.12+incompatible", []string{docker + "@v25.0.13+incompatible"}},
		{"github.com/docker/docker", "v25.0.13+incompatible", nil},
		{"github.com/docker/docker", "v28.0.0+incompatible", nil},

		// Withdrawn: never matched.
		{"github.com/opencontainers/runc", "v1.1.12", nil},

		// Versions that do not normalize match nothing, and do not crash.
		{"stdlib", "devel go1.23-abcdef", nil},
		{"golang.org/x/text", "(devel)", nil},
		{"golang.org/x/text", "", nil},
		{"example.com/unknown", "v1.0.0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path+"@"+tt.version, func(t *testing.T) {
			c := Component{Path: tt.path, Version: tt.version}
			ms := ix.Match([]Component{c})
			got := found(ms)
			if tt.want == nil {
				tt.want = []string{}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Match(%v) = %v, want %v", c, got, tt.want)
			}
			for _, m := range ms {
				if m.Component != c {
					t.Errorf("Match(%v) component = %v, want it as given", c, m.Component)
				}
			}
		})
	}
}

func TestMatchOrderAndDuplicates(t *testing.T) {
	ix := testIndex(t)
	ms := ix.Match([]Component{
		{"stdlib", "go1.21.2"},
		{"golang.org/x/text", "v0.3.7"},
		{"golang.org/x/net", "v0.16.0"},
		{"golang.org/x/text", "v0.3.7"},
		{"example.com/m", "v1.0.0"},
	})
	var got []string
	for _, m := range ms {
		got = append(got, m.Component.Path+" "+m.Entry.ID)
	}
	want := []string{
		"golang.org/x/net GO-2023-2102",
		"golang.org/x/net GO-2024-2687",
		"golang.org/x/text GO-2022-1059",
		"stdlib GO-2023-2102",
		"stdlib GO-2024-2687",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Match = %q, want %q", got, want)
	}
	if ms := ix.Match(nil); len(ms) != 0 {
		t.Errorf("Match(nil) = %v, want none", ms)
	}
}

func TestNewest(t *testing.T) {
	ix := testIndex(t)
	tests := []struct{ path, want string }{
		{"stdlib", "v1.22.2"},
		{"golang.org/x/net", "v0.23.0"},
		{"golang.org/x/text", "v0.3.8"},
		{"toolchain", "v1.11.3"},
		{"github.com/docker/docker", "v25.0.13+incompatible"},
		{"github.com/opencontainers/runc", ""}, // only a withdrawn advisory
		{"example.com/unknown", ""},
	}
	for _, tt := range tests {
		if got := ix.Newest(tt.path); got != tt.want {
			t.Errorf("Newest(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestWithdrawn(t *testing.T) {
	entries, _, err := Load(filepath.Join("testdata", "osv", "GHSA-c5pj-mqfh-rvc3.json"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("Load(GHSA-c5pj-mqfh-rvc3) = %v, %v", entries, err)
	}
	withdrawn := entries[0]
	if withdrawn.Withdrawn == nil || withdrawn.Severity != "high" {
		t.Fatalf("GHSA-c5pj-mqfh-rvc3: Withdrawn = %v, Severity = %q; want set and \"high\"", withdrawn.Withdrawn, withdrawn.Severity)
	}
	c := []Component{{"github.com/opencontainers/runc", "v1.1.12"}}
	ix := NewIndex(entries)
	if ms := ix.Match(c); len(ms) != 0 || ix.Len() != 1 {
		t.Errorf("withdrawn: Match(%v) = %v, Len = %d; want no match, Len 1", c, found(ms), ix.Len())
	}
	// The same advisory, not withdrawn, would match: the exclusion is what
	// keeps it out.
	live := *withdrawn
	live.Withdrawn = nil
	if got := found(NewIndex([]*Entry{&live}).Match(c)); !slices.Equal(got, []string{"GHSA-c5pj-mqfh-rvc3@v1.2.0-rc.1"}) {
		t.Errorf("not withdrawn: Match(%v) = %v, want GHSA-c5pj-mqfh-rvc3@v1.2.0-rc.1", c, got)
	}
}

func TestMatchRanges(t *testing.T) {
	mk := func(ranges ...Range) *Index {
		return NewIndex([]*Entry{{ID: "X-1", Affected: []Affected{{Module: "m", Ranges: ranges}}}})
	}
	tests := []struct {
		name    string
		ix      *Index
		version string
		want    []string
	}{
		{"every version", mk(Range{}), "v9.9.9", []string{"X-1@"}},
		{"introduced only, below", mk(Range{Introduced: "v1.4.0"}), "v1.3.9", []string{}},
		{"introduced only, at", mk(Range{Introduced: "v1.4.0"}), "v1.4.0", []string{"X-1@"}},
		{"introduced only, above", mk(Range{Introduced: "v1.4.0"}), "v2.0.0", []string{"X-1@"}},
		{"last affected, at", mk(Range{Introduced: "v1.0.0", LastAffected: "v1.3.9"}), "v1.3.9", []string{"X-1@"}},
		{"last affected, after", mk(Range{Introduced: "v1.0.0", LastAffected: "v1.3.9"}), "v1.3.10", []string{}},
		{"lowest fix of overlapping ranges", mk(Range{Fixed: "v1.5.0"}, Range{Introduced: "v1.0.0", Fixed: "v1.2.0"}), "v1.1.0", []string{"X-1@v1.2.0"}},
		{"an unfixed range wins", mk(Range{Fixed: "v1.5.0"}, Range{Introduced: "v1.0.0"}), "v1.1.0", []string{"X-1@"}},
		{"pseudo-version below a release", mk(Range{Fixed: "v0.1.0"}), "v0.0.0-20230101000000-abcdefabcdef", []string{"X-1@v0.1.0"}},
		{"prerelease below its release", mk(Range{Introduced: "v1.0.0", Fixed: "v1.1.0"}), "v1.0.0-rc.1", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Component{"m", tt.version}
			if got := found(tt.ix.Match([]Component{c})); !slices.Equal(got, tt.want) {
				t.Errorf("Match(%v) = %v, want %v", c, got, tt.want)
			}
		})
	}
}

func TestNewIndexDuplicates(t *testing.T) {
	old := &Entry{ID: "X-1", Modified: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Affected: []Affected{{Module: "m", Ranges: []Range{{Fixed: "v1.0.0"}}}}}
	cur := &Entry{ID: "X-1", Modified: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), Affected: []Affected{{Module: "m", Ranges: []Range{{Fixed: "v2.0.0"}}}}}
	for _, order := range [][]*Entry{{old, cur, nil}, {cur, nil, old}} {
		ix := NewIndex(order)
		if ix.Len() != 1 || ix.Newest("m") != "v2.0.0" {
			t.Errorf("NewIndex(duplicates) Len = %d, Newest = %q; want 1 and the newer entry's v2.0.0", ix.Len(), ix.Newest("m"))
		}
	}
	// Two Affected items for one module make one match.
	e := &Entry{ID: "X-2", Affected: []Affected{{Module: "m", Ranges: []Range{{Fixed: "v1.0.0"}}}, {Module: "m", Ranges: []Range{{Fixed: "v0.5.0"}}}}}
	if got := found(NewIndex([]*Entry{e}).Match([]Component{{"m", "v0.1.0"}})); !slices.Equal(got, []string{"X-2@v0.5.0"}) {
		t.Errorf("Match over two Affected = %v, want one X-2@v0.5.0", got)
	}
}

// TestMatchConcurrent runs matches in parallel; with -race it checks the
// index is safe for concurrent reads.
func TestMatchConcurrent(t *testing.T) {
	ix := testIndex(t)
	cs := []Component{{"stdlib", "go1.21.2"}, {"golang.org/x/net", "v0.16.0"}}
	want := fmt.Sprint(found(ix.Match(cs)))
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if got := fmt.Sprint(found(ix.Match(cs))); got != want {
					errs <- got
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for got := range errs {
		t.Errorf("concurrent Match = %s, want %s", got, want)
	}
}
