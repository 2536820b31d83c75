package vulndb

import (
	"fmt"
	"testing"
)

// synthetic returns n advisories, each with two ranges, in the shape of
// the Go database: one in 50 for the standard library, the others spread
// over many modules.
func synthetic(n int) []*Entry {
	entries := make([]*Entry, n)
	for i := range entries {
		mod := fmt.Sprintf("example.com/org%d/mod%d", i%97, i/10)
		minor := i % 10
		if i%50 == 0 {
			mod, minor = "stdlib", (i/50)%30
		}
		entries[i] = &Entry{
			ID: fmt.Sprintf("GO-2099-%05d", i),
			Affected: []Affected{{Module: mod, Ranges: []Range{
				{Fixed: fmt.Sprintf("v0.%d.3", minor)},
				{Introduced: fmt.Sprintf("v1.%d.0-0", minor), Fixed: fmt.Sprintf("v1.%d.5", minor)},
			}}},
		}
	}
	return entries
}

// BenchmarkMatch matches the 40 components of a typical deployed module
// (half of them in the database, and the toolchain against 200 stdlib
// advisories) against 10,000 advisories.
func BenchmarkMatch(b *testing.B) {
	ix := NewIndex(synthetic(10_000))
	cs := make([]Component, 0, 40)
	for i := range 20 {
		j := i*37 + 1 // the entry this component is in
		cs = append(cs, Component{fmt.Sprintf("example.com/org%d/mod%d", j%97, j/10), fmt.Sprintf("v1.%d.2", j%10)})
		cs = append(cs, Component{fmt.Sprintf("example.org/other/mod%d", i), "v1.0.0"})
	}
	cs[len(cs)-1] = Component{"stdlib", "go1.21.2"}
	if n := len(ix.Match(cs)); n < 20 {
		b.Fatalf("benchmark components make %d matches, want at least 20", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		ix.Match(cs)
	}
}

// BenchmarkNewIndex is the cost of (re)building the index after an import.
func BenchmarkNewIndex(b *testing.B) {
	entries := synthetic(10_000)
	b.ReportAllocs()
	for b.Loop() {
		NewIndex(entries)
	}
}
