package vulndb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/semver"
)

// MaxEntrySize is the largest OSV entry, in bytes, that Parse and Load
// accept. The largest entries in the Go database are a few tens of KiB.
const MaxEntrySize = 1 << 20

// Limits on the fields of an entry, so that one entry cannot make the
// index, or a report printed from it, arbitrarily large.
const (
	maxIDLen      = 128
	maxPathLen    = 1024
	maxSummary    = 300 // runes kept of the summary shown to the operator
	maxVersionLen = 256
)

// ErrNotGo reports an OSV entry whose affected packages all belong to other
// ecosystems. Load skips such entries silently inside a directory or an
// archive, and reports them only when the path it was given is that one
// file.
var ErrNotGo = errors.New("no affected package in the Go ecosystem")

// Entry is one parsed OSV advisory: what matching needs, plus the fields
// shown to the operator.
type Entry struct {
	ID        string     `json:"id"`
	Aliases   []string   `json:"aliases,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Modified  time.Time  `json:"modified"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
	Affected  []Affected `json:"affected"`
	// Severity is "critical", "high", "medium" or "low": the qualitative
	// rating in database_specific.severity (as GitHub advisories carry it)
	// or else the rating of the first CVSS v3 vector in severity[]; "" when
	// neither is present, which is the rule for the Go database.
	Severity string `json:"severity,omitempty"`
	// Raw is the entry as imported, with insignificant whitespace removed
	// (json.Compact); field order and values are untouched.
	Raw []byte `json:"-"`
}

// Affected is the set of versions of one Go module an advisory affects.
type Affected struct {
	// Module is the module path; "stdlib" for the standard library and
	// "toolchain" for the go command.
	Module string  `json:"module"`
	Ranges []Range `json:"ranges"`
}

// Range is one interval of affected versions. Versions are semver with a
// "v" prefix ("v1.21.3"); "" means unbounded on that side, so Range{} is
// every version.
type Range struct {
	Introduced string `json:"introduced,omitempty"` // first affected version
	Fixed      string `json:"fixed,omitempty"`      // first unaffected version
	// LastAffected is the last affected version, set only when the source
	// gave an OSV last_affected event (or listed single versions) instead
	// of a fix; Fixed is then "".
	LastAffected string `json:"last_affected,omitempty"`
}

// contains reports whether the canonical semver v lies in r.
func (r Range) contains(v string) bool {
	if r.Introduced != "" && semver.Compare(v, r.Introduced) < 0 {
		return false
	}
	switch {
	case r.Fixed != "":
		return semver.Compare(v, r.Fixed) < 0
	case r.LastAffected != "":
		return semver.Compare(v, r.LastAffected) <= 0
	}
	return true
}

// FieldError reports a problem with one field of an OSV entry.
type FieldError struct {
	Field   string // JSON path of the field, e.g. "affected[0].ranges[1].events[2].fixed"
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// The OSV wire form, only the fields Parse reads. Unknown fields are
// ignored: the OSV schema grows, and an entry is not garbage because it
// carries fields this package has no use for.
type osvEntry struct {
	ID               string          `json:"id"`
	Modified         *string         `json:"modified"`
	Withdrawn        *string         `json:"withdrawn"`
	Aliases          []string        `json:"aliases"`
	Summary          string          `json:"summary"`
	Details          string          `json:"details"`
	Severity         []osvSeverity   `json:"severity"`
	Affected         []osvAffected   `json:"affected"`
	DatabaseSpecific json.RawMessage `json:"database_specific"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvAffected struct {
	Package  *osvPackage `json:"package"`
	Ranges   []osvRange  `json:"ranges"`
	Versions []string    `json:"versions"`
}

type osvPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
}

type osvRange struct {
	Type   string     `json:"type"`
	Events []osvEvent `json:"events"`
}

type osvEvent struct {
	Introduced   *string `json:"introduced"`
	Fixed        *string `json:"fixed"`
	LastAffected *string `json:"last_affected"`
	Limit        *string `json:"limit"`
}

// Parse parses one OSV entry.
//
// It refuses input that is not one JSON object, larger than MaxEntrySize,
// without an id or modified time, with no affected package, or with a
// version in a SEMVER or (Go) ECOSYSTEM range that is not semver; the error
// is a *FieldError naming the field whenever the problem is in one field.
// Affected packages of other ecosystems are dropped; if none is left, the
// error is ErrNotGo. Ranges of other types (GIT) are ignored; an affected
// package left with no range and no listed version affects every version,
// as in golang.org/x/vuln. OSV versions have no "v" ("1.2.3"); Parse adds
// it, and "introduced": "0" becomes "" (from the beginning).
//
// Parse never panics, whatever b holds.
func Parse(b []byte) (*Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("entry is %d bytes, more than the %d allowed", len(b), MaxEntrySize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty input")
	}
	var raw osvEntry
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, jsonErr(err)
	}
	if err := checkID(raw.ID); err != nil {
		return nil, &FieldError{Field: "id", Problem: err.Error()}
	}
	e := &Entry{ID: raw.ID}
	if raw.Modified == nil {
		return nil, fieldErr("modified", "missing")
	}
	t, err := parseTime(*raw.Modified)
	if err != nil {
		return nil, fieldErr("modified", "%v", err)
	}
	e.Modified = t
	if raw.Withdrawn != nil {
		t, err := parseTime(*raw.Withdrawn)
		if err != nil {
			return nil, fieldErr("withdrawn", "%v", err)
		}
		e.Withdrawn = &t
	}
	for i, a := range raw.Aliases {
		if err := checkID(a); err != nil {
			return nil, fieldErr(fmt.Sprintf("aliases[%d]", i), "%v", err)
		}
	}
	if len(raw.Aliases) > 0 {
		e.Aliases = raw.Aliases
	}
	if len(raw.Affected) == 0 {
		return nil, fieldErr("affected", "missing or empty")
	}
	for i, a := range raw.Affected {
		af, ok, err := parseAffected(fmt.Sprintf("affected[%d]", i), a)
		if err != nil {
			return nil, err
		}
		if ok {
			e.Affected = append(e.Affected, af)
		}
	}
	if len(e.Affected) == 0 {
		return nil, ErrNotGo
	}
	e.Summary = displaySummary(raw.Summary, raw.Details)
	e.Severity = severity(raw.DatabaseSpecific, raw.Severity)
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil { // cannot fail: b was just decoded
		return nil, jsonErr(err)
	}
	e.Raw = buf.Bytes()
	return e, nil
}

// jsonErr names the field of a JSON type error; other decoding errors are
// about the document as a whole.
func jsonErr(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(entry)"
		}
		return fieldErr(field, "want %s, got JSON %s", te.Type, te.Value)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", clip(s))
	}
	return t.UTC(), nil
}

// checkID accepts the identifiers OSV databases use ("GO-2022-1059",
// "GHSA-69ch-w2m2-3vjp", "CVE-2022-32149", "openSUSE-SU-2024:14012-1"):
// they become file names and are printed to terminals, so nothing else.
func checkID(id string) error {
	if id == "" {
		return errors.New("missing or empty")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("longer than %d bytes", maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.' || c == ':' || c == '+'):
		default:
			return fmt.Errorf("%q has a character not allowed in an id", clip(id))
		}
	}
	return nil
}

func parseAffected(field string, a osvAffected) (Affected, bool, error) {
	if a.Package == nil {
		return Affected{}, false, fieldErr(field+".package", "missing")
	}
	if a.Package.Ecosystem != "Go" {
		return Affected{}, false, nil
	}
	if err := checkModulePath(a.Package.Name); err != nil {
		return Affected{}, false, fieldErr(field+".package.name", "%v", err)
	}
	af := Affected{Module: a.Package.Name}
	usable := false
	for j, r := range a.Ranges {
		switch r.Type {
		case "SEMVER", "ECOSYSTEM":
			// The Go ecosystem's versions are semver, so an ECOSYSTEM
			// range (GitHub advisories use them) reads like a SEMVER one.
		case "":
			return Affected{}, false, fieldErr(fmt.Sprintf("%s.ranges[%d].type", field, j), "missing")
		default:
			continue // GIT and future types: not comparable to a module version
		}
		rs, err := parseEvents(fmt.Sprintf("%s.ranges[%d].events", field, j), r.Events)
		if err != nil {
			return Affected{}, false, err
		}
		usable = true
		af.Ranges = append(af.Ranges, rs...)
	}
	for j, v := range a.Versions {
		sv, err := osvVersion(v)
		if err != nil {
			return Affected{}, false, fieldErr(fmt.Sprintf("%s.versions[%d]", field, j), "%v", err)
		}
		usable = true
		af.Ranges = append(af.Ranges, Range{Introduced: sv, LastAffected: sv})
	}
	if !usable {
		af.Ranges = []Range{{}}
	}
	return af, true, nil
}

func checkModulePath(p string) error {
	if p == "" {
		return errors.New("missing or empty")
	}
	if len(p) > maxPathLen {
		return fmt.Errorf("longer than %d bytes", maxPathLen)
	}
	if !utf8.ValidString(p) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range p {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '@' || r == '\\' {
			return fmt.Errorf("%q is not a module path", clip(p))
		}
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return fmt.Errorf("%q is not a module path", clip(p))
	}
	return nil
}

type event struct {
	kind    byte // 'i' introduced, 'f' fixed, 'l' last_affected
	version string
}

// parseEvents turns an OSV event list into intervals, evaluating it the way
// the OSV specification and golang.org/x/vuln do: sort by version (the
// beginning of time first), then walk, opening an interval at an
// introduced event and closing it at the next fixed or last_affected one.
func parseEvents(field string, evs []osvEvent) ([]Range, error) {
	if len(evs) == 0 {
		return nil, fieldErr(field, "missing or empty")
	}
	var list []event
	introduced := false
	for k, ev := range evs {
		ef := func() string { return fmt.Sprintf("%s[%d]", field, k) } // only on error
		n := 0
		var kind byte
		var name, v string
		for _, c := range []struct {
			p    *string
			kind byte
			name string
		}{{ev.Introduced, 'i', "introduced"}, {ev.Fixed, 'f', "fixed"}, {ev.LastAffected, 'l', "last_affected"}, {ev.Limit, 0, "limit"}} {
			if c.p != nil {
				n++
				kind, name, v = c.kind, c.name, *c.p
			}
		}
		if n != 1 {
			return nil, fieldErr(ef(), "want exactly one of introduced, fixed, last_affected, limit")
		}
		if kind == 0 {
			continue // limit bounds a git bisection; it says nothing of module versions
		}
		var sv string
		if kind == 'i' && v == "0" {
			sv = "" // the beginning of time
		} else {
			var err error
			if sv, err = osvVersion(v); err != nil {
				return nil, fieldErr(ef()+"."+name, "%v", err)
			}
		}
		if kind == 'i' {
			introduced = true
		}
		list = append(list, event{kind, sv})
	}
	if !introduced {
		return nil, fieldErr(field, "no introduced event")
	}
	sort.SliceStable(list, func(i, j int) bool {
		return compareBound(list[i].version, list[j].version) < 0
	})
	var out []Range
	open := false
	var cur Range
	for _, ev := range list {
		switch {
		case !open && ev.kind == 'i':
			open, cur = true, Range{Introduced: ev.version}
		case open && ev.kind == 'f':
			cur.Fixed = ev.version
			out, open = append(out, cur), false
		case open && ev.kind == 'l':
			cur.LastAffected = ev.version
			out, open = append(out, cur), false
		}
	}
	if open {
		out = append(out, cur)
	}
	return out, nil
}

// compareBound compares two range bounds, "" being the beginning of time.
func compareBound(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return -1
	case b == "":
		return 1
	}
	return semver.Compare(a, b)
}

// osvVersion turns an OSV version ("1.2.3", "0.0.0-2022…-f3363e06e74c",
// "25.0.13+incompatible") into semver with a "v" prefix.
func osvVersion(v string) (string, error) {
	if len(v) > maxVersionLen {
		return "", fmt.Errorf("version longer than %d bytes", maxVersionLen)
	}
	sv := v
	if !strings.HasPrefix(sv, "v") {
		sv = "v" + sv
	}
	if !semver.IsValid(sv) {
		return "", fmt.Errorf("%q is not a semantic version", clip(v))
	}
	return sv, nil
}

// displaySummary returns the one line shown to the operator: the summary,
// or the start of the details when there is none (older Go advisories),
// with control characters replaced so a hostile entry cannot drive the
// terminal it is printed on.
func displaySummary(summary, details string) string {
	s := summary
	if strings.TrimSpace(s) == "" {
		s, _, _ = strings.Cut(strings.TrimSpace(details), "\n")
	}
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = true
			continue
		}
		if n == maxSummary {
			b.WriteRune('…')
			break
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	for i := n; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return "…"
}
