package manifest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a manifest, located by file, line, column and
// field path. It is meant to be shown to the person who wrote the manifest
// as is: it never contains more of the manifest than the offending value.
//
// # Notes
//   - Line and Column are 1-based; both are 0 when the problem has no
//     position (the manifest is too large to look at, for example).
//   - Field is a path such as "limits.memory", "http[1].rateLimit.burst",
//     "permissions.kv.orders" or "env.CURRENCY"; it is "" for problems that
//     concern the YAML itself rather than one field.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

// Error formats the problem as "file:line:col: field: msg", leaving out
// the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one manifest, sorted by position.
// Parse returns an ErrorList when it finds more than one problem, so that
// the author can fix them all in one go; a single problem is returned as
// an *Error. errors.As finds an *Error inside an ErrorList (the first one).
type ErrorList []*Error

// Error formats one problem per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the problems as errors, for errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sort orders the list by line, then column, then field, keeping the
// discovery order of problems at the same place, and drops exact repeats.
func (l ErrorList) sort() ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column), cmp.Compare(a.Field, b.Field))
	})
	return slices.CompactFunc(l, func(a, b *Error) bool { return *a == *b })
}

// maxErrors is how many problems Parse reports; a manifest with more is
// likely not a manifest at all.
const maxErrors = 50

// truncate keeps the first maxErrors problems of a sorted list and says how
// many more there were.
func (l ErrorList) truncate() ErrorList {
	if len(l) <= maxErrors {
		return l
	}
	next := *l[maxErrors]
	next.Field = ""
	next.Msg = fmt.Sprintf("too many problems: %d more not shown", len(l)-maxErrors)
	return append(l[:maxErrors:maxErrors], &next)
}

// err returns nil, the only problem, or the whole list.
func (l ErrorList) err() error {
	switch len(l) {
	case 0:
		return nil
	case 1:
		return l[0]
	}
	return l
}
