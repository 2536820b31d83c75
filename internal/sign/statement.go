package sign

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Limits on what a statement may hold.
const (
	maxSubjects   = 256
	maxNameLen    = 1024 // bytes in a subject name
	maxTargetLen  = 256  // bytes in a namespace or function name
	maxFieldLen   = 2048 // bytes in one provenance string
	maxSourceKeys = 16   // entries in provenance.sourceDigest
)

// Digest returns the lowercase hex SHA-256 of b, the form a Subject holds.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Subject is one file a claim covers. Name is its path as the manifest
// names it: slash-separated, cleaned (path.Clean leaves it unchanged), not
// absolute, with no leading "./" and no ".." element. SHA256 is the
// lowercase hex SHA-256 of its bytes.
type Subject struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Provenance is optional SLSA-v1-style build metadata: who built the
// deploy, from what and when. Every field is optional; Verify returns it as
// signed and checks nothing in it.
type Provenance struct {
	BuilderID    string            `json:"builderId,omitempty"`
	BuildType    string            `json:"buildType,omitempty"`
	SourceURI    string            `json:"sourceUri,omitempty"`
	SourceDigest map[string]string `json:"sourceDigest,omitempty"` // e.g. {"gitCommit": "..."}
	InvocationID string            `json:"invocationId,omitempty"`
	StartedOn    *time.Time        `json:"startedOn,omitempty"`
	FinishedOn   *time.Time        `json:"finishedOn,omitempty"`
}

// Claim is what a signer states about a deploy: this namespace's function
// is made of exactly these files, optionally built like this.
//
// # Notes
//   - Namespace and Function are non-empty, at most 256 bytes of printable
//     UTF-8 without '/' or spaces.
//   - Subjects is a set: listing the same (name, digest) twice is the same
//     as once; one name with two digests is an error. 1 to 256 subjects.
type Claim struct {
	Namespace  string
	Function   string
	Subjects   []Subject
	Provenance *Provenance // nil when not given
}

// statementSchema lists the fields each object of a signed statement may
// hold; a nil list allows any field name. Objects anywhere else are refused.
var statementSchema = schema{
	"":                                  {"_type", "subject", "predicateType", "predicate"},
	"subject[]":                         {"name", "digest"},
	"subject[].digest":                  {"sha256"},
	"predicate":                         {"namespace", "function", "provenance"},
	"predicate.provenance":              {"builderId", "buildType", "sourceUri", "sourceDigest", "invocationId", "startedOn", "finishedOn"},
	"predicate.provenance.sourceDigest": nil,
}

// statement encodes c as an in-toto Statement v1, compact JSON with fields
// in the order the in-toto spec lists them and subjects sorted by name.
// c must have passed checkClaim.
func statement(c Claim, subjects []Subject) ([]byte, error) {
	pred := map[string]any{"namespace": c.Namespace, "function": c.Function}
	if p := c.Provenance; p != nil {
		prov := map[string]any{}
		for k, v := range map[string]string{
			"builderId": p.BuilderID, "buildType": p.BuildType, "sourceUri": p.SourceURI, "invocationId": p.InvocationID,
		} {
			if v != "" {
				prov[k] = v
			}
		}
		if len(p.SourceDigest) > 0 {
			sd := make(map[string]any, len(p.SourceDigest))
			for k, v := range p.SourceDigest {
				sd[k] = v
			}
			prov["sourceDigest"] = sd
		}
		if p.StartedOn != nil {
			prov["startedOn"] = p.StartedOn.UTC().Format(time.RFC3339Nano)
		}
		if p.FinishedOn != nil {
			prov["finishedOn"] = p.FinishedOn.UTC().Format(time.RFC3339Nano)
		}
		pred["provenance"] = prov
	}
	ps, err := structpb.NewStruct(pred)
	if err != nil {
		return nil, fmt.Errorf("encode predicate: %w", err)
	}
	st := &intoto.Statement{
		Type:          StatementType,
		PredicateType: PredicateType,
		Predicate:     ps,
	}
	for _, s := range subjects {
		st.Subject = append(st.Subject, &intoto.ResourceDescriptor{
			Name:   s.Name,
			Digest: map[string]string{"sha256": s.SHA256},
		})
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("in-toto statement: %w", err)
	}
	out, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode statement: %w", err)
	}
	// protojson varies its whitespace on purpose; compacting makes the
	// payload a pure function of the claim (map keys are sorted).
	var buf bytes.Buffer
	if err := json.Compact(&buf, out); err != nil {
		return nil, fmt.Errorf("encode statement: %w", err)
	}
	return buf.Bytes(), nil
}

// parseStatement decodes a signed payload into the claim it states. Every
// error is safe to show and is meant to be wrapped in ErrMalformed, except
// duplicate subjects, which wrap ErrSubjects.
func parseStatement(body []byte) (Claim, error) {
	if err := checkJSON("signed statement", body, statementSchema); err != nil {
		return Claim{}, err
	}
	var st intoto.Statement
	if err := protojson.Unmarshal(body, &st); err != nil {
		// protojson's message quotes the payload; say only what kind of
		// thing is wrong (the schema check above caught names, so this is
		// a value of the wrong JSON type).
		return Claim{}, errors.New("signed statement: a field has a value of the wrong type")
	}
	if st.GetType() != StatementType {
		return Claim{}, fmt.Errorf("signed statement: _type is %s, want %s", show(st.GetType()), StatementType)
	}
	if st.GetPredicateType() != PredicateType {
		return Claim{}, fmt.Errorf("signed statement: predicateType is %s, want %s", show(st.GetPredicateType()), PredicateType)
	}
	if n := len(st.GetSubject()); n == 0 || n > maxSubjects {
		return Claim{}, fmt.Errorf("signed statement: %d subjects, want 1 to %d", n, maxSubjects)
	}
	var c Claim
	for i, rd := range st.GetSubject() {
		s := Subject{Name: rd.GetName(), SHA256: rd.GetDigest()["sha256"]}
		if err := checkSubject(s); err != nil {
			return Claim{}, fmt.Errorf("signed statement: subject %d: %w", i, err)
		}
		c.Subjects = append(c.Subjects, s)
	}
	if err := st.Validate(); err != nil {
		return Claim{}, fmt.Errorf("signed statement: %w", err)
	}
	if err := parsePredicate(st.GetPredicate().GetFields(), &c); err != nil {
		return Claim{}, fmt.Errorf("signed statement: predicate: %w", err)
	}
	return c, nil
}

// parsePredicate reads the predicate's fields into c. Field names were
// checked against statementSchema; here the values are.
func parsePredicate(f map[string]*structpb.Value, c *Claim) error {
	var err error
	if c.Namespace, err = str(f, "namespace", maxTargetLen, true); err != nil {
		return err
	}
	if c.Function, err = str(f, "function", maxTargetLen, true); err != nil {
		return err
	}
	pv, ok := f["provenance"]
	if !ok {
		return nil
	}
	ps := pv.GetStructValue()
	if ps == nil {
		return errors.New("provenance is not an object")
	}
	pf := ps.GetFields()
	p := &Provenance{}
	for name, dst := range map[string]*string{
		"builderId": &p.BuilderID, "buildType": &p.BuildType, "sourceUri": &p.SourceURI, "invocationId": &p.InvocationID,
	} {
		if *dst, err = str(pf, name, maxFieldLen, false); err != nil {
			return fmt.Errorf("provenance: %w", err)
		}
	}
	for name, dst := range map[string]**time.Time{"startedOn": &p.StartedOn, "finishedOn": &p.FinishedOn} {
		s, err := str(pf, name, maxFieldLen, false)
		if err != nil {
			return fmt.Errorf("provenance: %w", err)
		}
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("provenance: %s is not an RFC 3339 time", name)
		}
		*dst = &t
	}
	if sv, ok := pf["sourceDigest"]; ok {
		sd := sv.GetStructValue()
		if sd == nil {
			return errors.New("provenance: sourceDigest is not an object")
		}
		if len(sd.GetFields()) > maxSourceKeys {
			return fmt.Errorf("provenance: sourceDigest has more than %d entries", maxSourceKeys)
		}
		p.SourceDigest = make(map[string]string, len(sd.GetFields()))
		for k := range sd.GetFields() {
			if k == "" {
				return errors.New("provenance: sourceDigest has an empty key")
			}
			if p.SourceDigest[k], err = str(sd.GetFields(), k, maxFieldLen, true); err != nil {
				return fmt.Errorf("provenance: sourceDigest: %w", err)
			}
		}
	}
	c.Provenance = p
	return nil
}

// str returns the string field name of f, "" when it is absent and not
// required. It refuses other JSON types, empty required values and values
// longer than max bytes.
func str(f map[string]*structpb.Value, name string, max int, required bool) (string, error) {
	v, ok := f[name]
	if !ok {
		if required {
			return "", fmt.Errorf("%s is missing", show(name))
		}
		return "", nil
	}
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		return "", fmt.Errorf("%s is not a string", show(name))
	}
	if required && s.StringValue == "" {
		return "", fmt.Errorf("%s is empty", show(name))
	}
	if len(s.StringValue) > max {
		return "", fmt.Errorf("%s is longer than %d bytes", show(name), max)
	}
	return s.StringValue, nil
}

// checkClaim checks c before it is signed and returns its subjects as a
// sorted set.
func checkClaim(c Claim) ([]Subject, error) {
	if err := checkTarget("namespace", c.Namespace); err != nil {
		return nil, err
	}
	if err := checkTarget("function", c.Function); err != nil {
		return nil, err
	}
	subjects, err := subjectSet(c.Subjects)
	if err != nil {
		return nil, err
	}
	if p := c.Provenance; p != nil {
		for name, v := range map[string]string{
			"builderId": p.BuilderID, "buildType": p.BuildType, "sourceUri": p.SourceURI, "invocationId": p.InvocationID,
		} {
			if len(v) > maxFieldLen || !utf8.ValidString(v) {
				return nil, fmt.Errorf("provenance: %s is not valid UTF-8 of at most %d bytes", name, maxFieldLen)
			}
		}
		if len(p.SourceDigest) > maxSourceKeys {
			return nil, fmt.Errorf("provenance: sourceDigest has more than %d entries", maxSourceKeys)
		}
		for k, v := range p.SourceDigest {
			if k == "" || v == "" || len(v) > maxFieldLen || !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("provenance: sourceDigest entry %s needs a non-empty key and a value of at most %d bytes of UTF-8", show(k), maxFieldLen)
			}
		}
	}
	return subjects, nil
}

// checkTarget checks a namespace or function name.
func checkTarget(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > maxTargetLen:
		return fmt.Errorf("%s is longer than %d bytes", what, maxTargetLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r == '/' || !unicode.IsGraphic(r) || unicode.IsSpace(r) }):
		return fmt.Errorf("%s %s holds a '/', a space or a character that is not printable", what, show(s))
	}
	return nil
}

// subjectSet checks list and returns it as a set sorted by name: identical
// entries collapse, one name with two digests is an error.
func subjectSet(list []Subject) ([]Subject, error) {
	if len(list) == 0 {
		return nil, errors.New("no subjects")
	}
	if len(list) > maxSubjects {
		return nil, fmt.Errorf("%d subjects, at most %d allowed", len(list), maxSubjects)
	}
	set := slices.Clone(list)
	for _, s := range set {
		if err := checkSubject(s); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(set, func(a, b Subject) int { return strings.Compare(a.Name, b.Name) })
	set = slices.Compact(set)
	for i := 1; i < len(set); i++ {
		if set[i].Name == set[i-1].Name {
			return nil, fmt.Errorf("%s: listed with two digests", show(set[i].Name))
		}
	}
	return set, nil
}

// checkSubject checks one subject's name and digest.
func checkSubject(s Subject) error {
	if err := checkName(s.Name); err != nil {
		return err
	}
	if !isDigest(s.SHA256) {
		return fmt.Errorf("%s: sha256 digest is not 64 lowercase hex digits", show(s.Name))
	}
	return nil
}

// checkName checks that a subject name is a clean relative slash path.
func checkName(n string) error {
	switch {
	case n == "":
		return errors.New("subject name is empty")
	case len(n) > maxNameLen:
		return fmt.Errorf("subject name is longer than %d bytes", maxNameLen)
	case !utf8.ValidString(n) || strings.ContainsFunc(n, func(r rune) bool { return !unicode.IsGraphic(r) }):
		return fmt.Errorf("subject name %s holds a character that is not printable", show(n))
	case strings.HasPrefix(n, "/"):
		return fmt.Errorf("subject name %s is absolute", show(n))
	case path.Clean(n) != n || n == "." || n == ".." || strings.HasPrefix(n, "../"):
		return fmt.Errorf("subject name %s is not a clean relative path (no ./, .., // or trailing /)", show(n))
	}
	return nil
}

// isDigest reports whether s is a lowercase hex SHA-256.
func isDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// compareSubjects compares the signed subjects with the deployed ones (a
// set from subjectSet) and describes the first difference by file name,
// or returns "" when they are the same set. Signed duplicates are a
// difference.
func compareSubjects(signed, deployed []Subject) string {
	sig := make(map[string]string, len(signed))
	var diffs []string // "name: what", sorted later
	for _, s := range signed {
		if _, dup := sig[s.Name]; dup {
			diffs = append(diffs, show(s.Name)+": signed twice")
			continue
		}
		sig[s.Name] = s.SHA256
	}
	dep := make(map[string]bool, len(deployed))
	for _, d := range deployed {
		dep[d.Name] = true
		switch got, ok := sig[d.Name]; {
		case !ok:
			diffs = append(diffs, show(d.Name)+": not signed")
		case got != d.SHA256:
			diffs = append(diffs, show(d.Name)+": digest differs")
		}
	}
	for _, s := range signed {
		if !dep[s.Name] {
			diffs = append(diffs, show(s.Name)+": signed but not deployed")
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	slices.Sort(diffs)
	diffs = slices.Compact(diffs)
	if len(diffs) > 1 {
		return fmt.Sprintf("%s (and %d more)", diffs[0], len(diffs)-1)
	}
	return diffs[0]
}

// show renders a string from untrusted input for an error message: as is
// when it is short and plainly printable, else quoted and cut to 64 bytes,
// so that no message carries control characters or a wall of input.
func show(s string) string {
	const max = 64
	plain := len(s) > 0 && len(s) <= max
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c > ' ' && c < 0x7f && c != '"' && c != '\\'
	}
	if plain {
		return s
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}
