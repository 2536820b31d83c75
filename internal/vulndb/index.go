package vulndb

import (
	"cmp"
	"slices"

	"golang.org/x/mod/semver"
)

// Component is one thing a deployed module is built from: a Go module
// (Path "golang.org/x/net", Version "v0.17.0") or the Go toolchain it was
// built with (Path "stdlib", Version "go1.26.0"). Path "toolchain" matches
// the advisories against the go command itself.
type Component struct {
	Path    string `json:"path"`
	Version string `json:"version"`
}

// Match is one advisory affecting one component.
type Match struct {
	Entry     *Entry
	Component Component
	// Fixed is the lowest fixed version, above Component.Version, of the
	// range the component is in, with a "v" prefix; "" when that range has
	// no fix.
	Fixed string
}

// Index is an in-memory index of advisories by module path. It is
// immutable once built, so safe for concurrent use.
type Index struct {
	byPath map[string][]indexed
	newest map[string]string
	n      int
}

// indexed is one advisory's ranges for one module path, the Affected items
// naming that path merged.
type indexed struct {
	e      *Entry
	ranges []Range
}

// NewIndex builds an index of entries. Nil entries are skipped; of entries
// sharing an ID, the one modified last is kept (the later in the slice on a
// tie). Withdrawn entries are counted by Len but never matched, and their
// fixes do not count for Newest. The entries are shared, not copied.
func NewIndex(entries []*Entry) *Index {
	byID := make(map[string]*Entry, len(entries))
	for _, e := range entries {
		if e == nil {
			continue
		}
		if old, ok := byID[e.ID]; ok && old.Modified.After(e.Modified) {
			continue
		}
		byID[e.ID] = e
	}
	ix := &Index{byPath: make(map[string][]indexed), newest: make(map[string]string), n: len(byID)}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids) // so an index is built the same way every time
	for _, id := range ids {
		e := byID[id]
		if e.Withdrawn != nil {
			continue
		}
		pos := make(map[string]int, len(e.Affected))
		for _, a := range e.Affected {
			list := ix.byPath[a.Module]
			i, ok := pos[a.Module]
			if !ok {
				i = len(list)
				pos[a.Module] = i
				list = append(list, indexed{e: e})
			}
			list[i].ranges = append(list[i].ranges, a.Ranges...)
			ix.byPath[a.Module] = list
			for _, r := range a.Ranges {
				if r.Fixed != "" && semver.Compare(r.Fixed, ix.newest[a.Module]) > 0 {
					ix.newest[a.Module] = r.Fixed
				}
			}
		}
	}
	return ix
}

// Len returns the number of distinct advisories in the index, withdrawn
// ones included.
func (ix *Index) Len() int { return ix.n }

// Match returns the advisories affecting each component, withdrawn entries
// excluded, sorted by component (path, then version) then advisory ID; a
// component listed twice is matched once. A component is affected by an
// advisory when its version, normalized, lies in one of the advisory's
// ranges for its path. A version that does not normalize matches nothing.
func (ix *Index) Match(components []Component) []Match {
	cs := slices.Clone(components)
	slices.SortFunc(cs, compareComponent)
	cs = slices.Compact(cs)
	var out []Match
	for _, c := range cs {
		list := ix.byPath[c.Path]
		if len(list) == 0 {
			continue
		}
		v, ok := Normalize(c.Version)
		if !ok {
			continue
		}
		start := len(out)
		for _, it := range list {
			if fixed, hit := affects(it.ranges, v); hit {
				out = append(out, Match{Entry: it.e, Component: c, Fixed: fixed})
			}
		}
		slices.SortFunc(out[start:], func(a, b Match) int { return cmp.Compare(a.Entry.ID, b.Entry.ID) })
	}
	return out
}

// affects reports whether v lies in any of ranges and, if so, the lowest
// fix of the ranges it lies in; "" when one of them has no fix, since no
// version above v then escapes it.
func affects(ranges []Range, v string) (fixed string, hit bool) {
	noFix := false
	for _, r := range ranges {
		if !r.contains(v) {
			continue
		}
		hit = true
		if r.Fixed == "" {
			noFix = true
		} else if fixed == "" || semver.Compare(r.Fixed, fixed) < 0 {
			fixed = r.Fixed
		}
	}
	if noFix {
		fixed = ""
	}
	return fixed, hit
}

// Newest returns the newest fixed version, with a "v" prefix, that the
// database knows for a module path ("stdlib" for the standard library), ""
// when it knows none: a version older than it is worth a patch notice even
// without an advisory for that exact version.
func (ix *Index) Newest(path string) string { return ix.newest[path] }

func compareComponent(a, b Component) int {
	return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Version, b.Version))
}
