// Package dlp owns data-loss prevention on function responses: detection of
// sensitive data (payment cards, US SSNs, well-known credential formats and
// the exact values of a function's secrets) and its redaction.
//
// dlp never returns, logs or stores a matched value: callers learn only the
// kind of each finding and how many there were. It does no I/O and keeps no
// state between calls.
//
// Detection is a single forward pass over the body that looks closer only at
// the start of alphanumeric words whose first byte can begin a known format
// (a digit, or one of a few letters) and at "-----BEGIN"; everything else is
// skipped with one table lookup per byte. There is no regexp on the hot path.
// Exact secret values are found with bytes.Index, one pass per value.
package dlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Kind names a kind of sensitive data. It is safe to put in events and logs.
type Kind string

// The kinds a Scanner reports. Findings are always listed in this order.
const (
	KindCard         Kind = "card"           // payment card number (IIN prefix, length and Luhn checked)
	KindSSN          Kind = "ssn"            // US social security number, AAA-GG-SSSS
	KindAWSAccessKey Kind = "aws_access_key" // AKIA/ASIA access key id
	KindAWSSecretKey Kind = "aws_secret_key" // 40-character secret access key, only when labelled
	KindPrivateKey   Kind = "private_key"    // PEM "-----BEGIN … PRIVATE KEY-----" block
	KindBearerToken  Kind = "bearer_token"   // the token after "Bearer "
	KindJWT          Kind = "jwt"            // compact JWS/JWE whose header is JSON with "alg"
	KindGitHubToken  Kind = "github_token"   // ghp_/gho_/ghu_/ghs_/ghr_ and github_pat_ tokens
	KindSlackToken   Kind = "slack_token"    // xoxa-/xoxb-/xoxp-/xoxr- tokens
	KindStripeKey    Kind = "stripe_key"     // sk_live_/rk_live_ keys
	KindSecret       Kind = "secret"         // an exact value from Options.Exact
)

// kid is a Kind's index; the scanner works with indexes, not strings.
type kid uint8

const (
	kCard kid = iota
	kSSN
	kAWSAccessKey
	kAWSSecretKey
	kPrivateKey
	kBearerToken
	kJWT
	kGitHubToken
	kSlackToken
	kStripeKey
	kSecret
	numKinds
)

var kindNames = [numKinds]Kind{
	kCard:         KindCard,
	kSSN:          KindSSN,
	kAWSAccessKey: KindAWSAccessKey,
	kAWSSecretKey: KindAWSSecretKey,
	kPrivateKey:   KindPrivateKey,
	kBearerToken:  KindBearerToken,
	kJWT:          KindJWT,
	kGitHubToken:  KindGitHubToken,
	kSlackToken:   KindSlackToken,
	kStripeKey:    KindStripeKey,
	kSecret:       KindSecret,
}

// Finding says that Count occurrences of Kind were found. It never carries
// the matched bytes or their position.
type Finding struct {
	Kind  Kind
	Count int
}

// DefaultMarker is the marker used when Options.Marker is empty.
const DefaultMarker = "[REDACTED:<kind>]"

// MinExactLen is the shortest Options.Exact value that is matched. Shorter
// values are ignored: a short secret ("admin", "1234", "true") would match
// ordinary text and mangle unrelated responses, and it is too guessable for
// redaction to protect it anyway.
const MinExactLen = 8

// Options configures a Scanner. New copies what it needs; the caller may
// reuse or change Options and the Exact slices afterwards.
type Options struct {
	// Marker replaces each redacted span. Every "<kind>" in it is replaced by
	// the finding's Kind. Empty means DefaultMarker.
	Marker string
	// Exact lists secret values to redact wherever they occur: byte for
	// byte, JSON-escaped, as lower- and upper-case hex, and inside base64 or
	// base64url text at any alignment (see EncodedForms). Values shorter
	// than MinExactLen bytes, and forms that occur inside a marker, are
	// ignored (see New).
	Exact [][]byte
	// ExactOnly turns the pattern detectors off: only Exact values are
	// found. A route's "dlp: off" means this, never "no check at all".
	ExactOnly bool
}

// Scanner finds and redacts sensitive data in response bodies.
//
// # Notes
//
//   - A Scanner is immutable after New and safe for concurrent use.
//   - Scan and Redact never modify the body they are given.
//   - On a body with nothing to report, Scan and Redact allocate nothing.
//   - Findings are listed in the order of the Kind constants, one entry per
//     kind found, and never contain matched bytes.
type Scanner struct {
	markers   [numKinds][]byte
	exact     []exactValue // each at least MinExactLen bytes, deduplicated
	folded    [][]byte     // the exact values in lower case, for ContainsFold
	exactOnly bool
}

// New returns a Scanner for opt.
//
// New panics if a marker would itself be detected (for example a custom
// Marker that looks like a card number or a token): such a marker would make
// redaction never settle. Exact values that occur inside a marker are
// ignored, since no redaction could remove them from the output.
func New(opt Options) *Scanner {
	s := &Scanner{exactOnly: opt.ExactOnly}
	m := opt.Marker
	if m == "" {
		m = DefaultMarker
	}
	for k := range numKinds {
		s.markers[k] = []byte(strings.ReplaceAll(m, "<kind>", string(kindNames[k])))
	}
	for k := range numKinds {
		mk := s.markers[k]
		for _, ctx := range []string{"%s", "Bearer %s", "aws_secret_access_key=%s", " %s ", "-%s-"} {
			var r result
			s.patterns([]byte(fmt.Sprintf(ctx, mk)), &r)
			if r.total > 0 {
				panic(fmt.Sprintf("dlp: marker %q would itself be detected", mk))
			}
		}
	}
	seen := make(map[string]bool)
	for _, v := range opt.Exact {
		if len(v) < MinExactLen {
			continue
		}
		for _, needle := range EncodedForms(v) {
			if len(needle) < MinExactLen || seen[needle] || s.inMarker(needle) {
				continue
			}
			seen[needle] = true
			s.exact = append(s.exact, newExactValue([]byte(needle)))
			s.folded = append(s.folded, bytes.ToLower([]byte(needle)))
		}
	}
	return s
}

// EncodedForms returns the byte strings whose presence in an answer shows
// that v is in it: v itself; its JSON string encodings (with and without
// HTML escaping), as encoding/json would write it; its hex encoding in lower
// and upper case; and, for base64 and base64url (padded or not), the part of
// the encoding that is the same wherever v sits in a longer encoded stream,
// for each of the three alignments v can have. A form shorter than
// MinExactLen is left out (New would ignore it).
//
// # Notes
//   - A base64 form covers all of v but its first and last (up to two)
//     bytes, whose encoding depends on the neighbouring bytes; finding it
//     still proves the value leaked, and redacting it leaves at most a few
//     bytes' worth of encoding around the marker.
//   - The result is deduplicated and deterministic.
func EncodedForms(v []byte) []string {
	out := []string{string(v)}
	add := func(f string) {
		if len(f) >= MinExactLen && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	for _, html := range []bool{true, false} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(html)
		if err := enc.Encode(string(v)); err != nil {
			continue
		}
		q := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if len(q) >= 2 {
			add(string(q[1 : len(q)-1]))
		}
	}
	for _, f := range slices.Clone(out) { // JSON's optional escape of '/'
		if strings.Contains(f, "/") {
			add(strings.ReplaceAll(f, "/", `\/`))
		}
	}
	add(jsonEscapeAll(v))
	add(url.QueryEscape(string(v)))
	add(url.PathEscape(string(v)))
	h := hex.EncodeToString(v)
	add(h)
	add(strings.ToUpper(h))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := range 3 {
			add(base64Core(enc, v, k))
		}
	}
	return out
}

// jsonEscapeAll writes v as a JSON string body with every byte of a valid
// ASCII value escaped (\u00XX), as an encoder bent on hiding it would; ""
// for values that are not ASCII.
func jsonEscapeAll(v []byte) string {
	var b strings.Builder
	for _, c := range v {
		if c >= 0x80 {
			return ""
		}
		fmt.Fprintf(&b, `\u%04x`, c)
	}
	return b.String()
}

// base64Core is the part of enc's encoding of a stream that holds v at an
// offset ≡ k (mod 3) that does not depend on the bytes around v: the
// 4-character groups made only of v's bytes.
func base64Core(enc *base64.Encoding, v []byte, k int) string {
	p := make([]byte, k+len(v))
	copy(p[k:], v)
	e := enc.EncodeToString(p)
	start := 0
	if k > 0 {
		start = 4 // the first group mixes in k bytes before v
	}
	end := 4 * (len(p) / 3) // a last partial group mixes in the bytes after v
	if end <= start {
		return ""
	}
	return e[start:end]
}

func (s *Scanner) inMarker(needle string) bool {
	for _, m := range s.markers {
		if strings.Contains(string(m), needle) {
			return true
		}
	}
	return false
}

// ContainsFold reports whether b holds one of the exact values in any
// letter case: for places that change case, such as HTTP header names.
func (s *Scanner) ContainsFold(b []byte) bool {
	if len(s.folded) == 0 {
		return false
	}
	lb := bytes.ToLower(b)
	for _, v := range s.folded {
		if bytes.Contains(lb, v) {
			return true
		}
	}
	return false
}

// Scan reports what Redact would report for body, without changing anything.
// It allocates only when it has findings.
func (s *Scanner) Scan(body []byte) []Finding {
	r := result{keep: true}
	s.find(body, &r)
	if r.total == 0 {
		return nil
	}
	// Redaction can expose more (a card directly after an exact secret is
	// not at a word start until the secret is replaced), so let it decide.
	_, f := s.redact(body, &r)
	return f
}

// Redact returns body with every finding replaced by its marker, and the
// findings. Everything outside the redacted spans is kept byte for byte;
// overlapping matches become one marker,
// named after the match that starts first.
//
// Redact does not modify body. When there is nothing to redact it returns
// body itself and nil: no copy and no allocation. Otherwise it returns a new
// slice.
//
// # Notes
//
//   - Redact is idempotent: Scan(out) reports nothing. If replacing matches
//     exposes new ones, they are redacted too (and counted); if that does not
//     settle within a few passes, the whole body becomes one marker (fail
//     closed).
//   - The output never contains an Exact value that New kept.
//   - A marker replacing a bare JSON number (a card number written as a
//     number) makes the JSON invalid; inside strings, markers are JSON-safe.
func (s *Scanner) Redact(body []byte) ([]byte, []Finding) {
	r := result{keep: true}
	s.find(body, &r)
	if r.total == 0 {
		return body, nil
	}
	return s.redact(body, &r)
}

// maxPasses bounds how often Redact rescans its own output.
const maxPasses = 4

// redact runs redaction passes until the output is clean. first, if not nil,
// is the result of the first pass (with spans).
func (s *Scanner) redact(body []byte, first *result) ([]byte, []Finding) {
	var counts [numKinds]int
	cur := body
	for pass := 0; pass < maxPasses; pass++ {
		var r result
		if pass == 0 && first != nil {
			r = *first
		} else {
			r.keep = true
			s.find(cur, &r)
		}
		if r.total == 0 {
			return cur, findings(&counts)
		}
		for k, n := range r.counts {
			counts[k] += n
		}
		cur = s.apply(cur, r.spans)
	}
	var r result
	r.keep = true
	s.find(cur, &r)
	if r.total == 0 {
		return cur, findings(&counts)
	}
	for k, n := range r.counts {
		counts[k] += n
	}
	slices.SortFunc(r.spans, cmpSpan)
	return bytes.Clone(s.markers[r.spans[0].kind]), findings(&counts)
}

// findings turns counts into the reported list.
func findings(counts *[numKinds]int) []Finding {
	n := 0
	for _, c := range counts {
		if c > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Finding, 0, n)
	for k, c := range counts {
		if c > 0 {
			out = append(out, Finding{Kind: kindNames[k], Count: c})
		}
	}
	return out
}

// span is a matched region body[start:end].
type span struct {
	start, end int
	kind       kid
}

func cmpSpan(a, b span) int {
	if a.start != b.start {
		return a.start - b.start
	}
	return b.end - a.end // longer first
}

// result collects matches. It lives on the caller's stack; spans is only
// allocated once something matches and keep is set.
type result struct {
	counts [numKinds]int
	total  int
	keep   bool
	spans  []span
}

func (r *result) add(start, end int, k kid) {
	r.counts[k]++
	r.total++
	if r.keep {
		r.spans = append(r.spans, span{start, end, k})
	}
}

// find runs every detector over b.
func (s *Scanner) find(b []byte, r *result) {
	if !s.exactOnly {
		s.patterns(b, r)
	}
	for _, e := range s.exact {
		v, a := e.value, e.anchor
		c := v[a]
		// pos is where the anchor byte may be found next; a match of v
		// starts a bytes before it.
		for pos := a; pos+len(v)-a <= len(b); {
			j := bytes.IndexByte(b[pos:len(b)-(len(v)-a-1)], c)
			if j < 0 {
				break
			}
			start := pos + j - a
			if bytes.Equal(b[start:start+len(v)], v) {
				r.add(start, start+len(v), kSecret)
				pos = start + len(v) + a
			} else {
				pos += j + 1
			}
		}
	}
}

// exactValue is a value to match and the offset of its rarest byte, the one
// searched for first.
type exactValue struct {
	value  []byte
	anchor int
}

func newExactValue(v []byte) exactValue {
	a := 0
	for i, c := range v {
		if byteRank(c) < byteRank(v[a]) {
			a = i
		}
	}
	return exactValue{value: v, anchor: a}
}

// byteRank estimates how common c is in response bodies (JSON, text):
// higher is more common. It only steers which byte of an exact value is
// searched for first; any choice is correct.
func byteRank(c byte) int {
	const lower = "zqjxkvbpygfwmucldrhsnioate" // English, rarest first
	switch {
	case c >= 'a' && c <= 'z':
		return 20 + strings.IndexByte(lower, c)
	case c >= '0' && c <= '9':
		return 30
	case c == '"' || c == ':' || c == ',' || c == ' ' || c == '\n':
		return 50
	case c == '-' || c == '.' || c == '_' || c == '/':
		return 25
	case c >= 'A' && c <= 'Z':
		return 10
	}
	return 0
}

// apply returns a copy of b with the union of spans replaced by markers.
func (s *Scanner) apply(b []byte, spans []span) []byte {
	slices.SortFunc(spans, cmpSpan)
	out := make([]byte, 0, len(b)+len(spans)*16)
	last := 0
	for i := 0; i < len(spans); {
		start, end, k := spans[i].start, spans[i].end, spans[i].kind
		i++
		for i < len(spans) && spans[i].start < end {
			end = max(end, spans[i].end)
			i++
		}
		out = append(out, b[last:start]...)
		out = append(out, s.markers[k]...)
		last = end
	}
	return append(out, b[last:]...)
}
