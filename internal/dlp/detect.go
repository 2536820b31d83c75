package dlp

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// Byte classes, one table lookup per byte.
const (
	cDigit  = 1 << iota // 0-9
	cUpper              // A-Z
	cLower              // a-z
	cB64URL             // base64url alphabet: alnum, '-', '_'
	cB64                // standard base64 alphabet without padding: alnum, '+', '/'
	cTok                // RFC 6750 b64token: alnum, "-._~+/"
	cSlack              // alnum, '-'
	cPEM                // bytes of a PEM body, headers and JSON-escaped newlines
	cTrig               // first byte of a word that a detector looks at

	cWord = cDigit | cUpper | cLower
)

var class = func() (t [256]uint16) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cUpper
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cLower
	}
	for c := range t {
		if t[c]&cWord != 0 {
			t[c] |= cB64URL | cB64 | cTok | cSlack | cPEM
		}
	}
	for _, c := range "-_" {
		t[c] |= cB64URL
	}
	for _, c := range "+/" {
		t[c] |= cB64
	}
	for _, c := range "-._~+/" {
		t[c] |= cTok
	}
	t['-'] |= cSlack
	for _, c := range "+/= \t\r\n\\:,-" {
		t[c] |= cPEM
	}
	for _, c := range "0123456789AaSsrBbegx" {
		t[c] |= cTrig
	}
	return t
}()

func isDigit(c byte) bool { return class[c]&cDigit != 0 }
func isWord(c byte) bool  { return class[c]&cWord != 0 }

// digitAt reports whether b[i] exists and is a digit.
func digitAt(b []byte, i int) bool { return i >= 0 && i < len(b) && isDigit(b[i]) }

// run returns the end of the run of bytes of class cl starting at i.
func run(b []byte, i int, cl uint16) int {
	for i < len(b) && class[b[i]]&cl != 0 {
		i++
	}
	return i
}

// patterns runs the format detectors over b in one forward pass.
func (s *Scanner) patterns(b []byte, r *result) {
	n := len(b)
	pemEnd := pemUnknown
	for i := 0; i < n; {
		c := b[i]
		if class[c]&cWord == 0 {
			if c == '-' && bytes.HasPrefix(b[i:], pemBegin) {
				if end := matchPEM(b, i, &pemEnd); end > 0 {
					r.add(i, end, kPrivateKey)
					i = end
					continue
				}
			}
			i++
			continue
		}
		// b[i] starts an alphanumeric word: every match ends before a word
		// byte or at a non-word byte, so after a match or a skipped word the
		// loop is again at a word start or a non-word byte.
		if class[c]&cTrig != 0 {
			if start, end, k, ok := matchWord(b, i); ok {
				r.add(start, end, k)
				i = end
				continue
			}
		}
		for i++; i < n && class[b[i]]&cWord != 0; i++ {
		}
	}
}

// matchWord tries the detectors that start at the word beginning at b[i].
func matchWord(b []byte, i int) (start, end int, k kid, ok bool) {
	switch c := b[i]; c {
	case 'A':
		if end := matchAWSAccessKey(b, i); end > 0 {
			return i, end, kAWSAccessKey, true
		}
		return matchAWSSecret(b, i)
	case 'a', 'S':
		return matchAWSSecret(b, i)
	case 's':
		if end := matchStripe(b, i); end > 0 {
			return i, end, kStripeKey, true
		}
		return matchAWSSecret(b, i)
	case 'r':
		if end := matchStripe(b, i); end > 0 {
			return i, end, kStripeKey, true
		}
	case 'B', 'b':
		return matchBearer(b, i)
	case 'e':
		if end := matchJWT(b, i); end > 0 {
			return i, end, kJWT, true
		}
	case 'g':
		if end := matchGitHub(b, i); end > 0 {
			return i, end, kGitHubToken, true
		}
	case 'x':
		if end := matchSlack(b, i); end > 0 {
			return i, end, kSlackToken, true
		}
	default:
		if isDigit(c) {
			return matchDigits(b, i)
		}
	}
	return 0, 0, 0, false
}

// matchDigits detects card numbers and SSNs at the digit run starting at i.
func matchDigits(b []byte, i int) (start, end int, k kid, ok bool) {
	l := run(b, i, cDigit) - i
	if i+l < len(b) && isWord(b[i+l]) {
		return // digits followed by letters: an identifier, not a number
	}
	// The fractional part of a decimal number ("0.4111…") is not a card.
	if i >= 2 && b[i-1] == '.' && isDigit(b[i-2]) {
		return
	}
	switch {
	case l == 3:
		if end := matchSSN(b, i); end > 0 {
			return i, end, kSSN, true
		}
	case l >= 4 && l <= 19:
		if end := matchCard(b, i, l); end > 0 {
			return i, end, kCard, true
		}
	}
	return
}

// joinedDigit reports whether a separator and a digit continue the number
// on this side: b[sepAt] is one of seps and the byte beyond it is a digit.
func joinedDigit(b []byte, sepAt, next int, seps string) bool {
	if sepAt < 0 || sepAt >= len(b) || !digitAt(b, next) {
		return false
	}
	return strings.IndexByte(seps, b[sepAt]) >= 0
}

// matchSSN matches AAA-GG-SSSS (or with spaces) at i, where b[i:i+3] are
// digits not followed by a digit.
func matchSSN(b []byte, i int) int {
	if i+11 > len(b) {
		return 0
	}
	sep := b[i+3]
	if sep != '-' && sep != ' ' {
		return 0
	}
	if !isDigit(b[i+4]) || !isDigit(b[i+5]) || b[i+6] != sep {
		return 0
	}
	for j := i + 7; j < i+11; j++ {
		if !isDigit(b[j]) {
			return 0
		}
	}
	end := i + 11
	if end < len(b) && isWord(b[end]) {
		return 0
	}
	seps := "-."
	if sep == ' ' {
		seps = "-. "
	}
	if joinedDigit(b, i-1, i-2, seps) || joinedDigit(b, end, end+1, seps) {
		return 0 // part of a longer number
	}
	area := num(b[i : i+3])
	group := num(b[i+4 : i+6])
	serial := num(b[i+7 : i+11])
	if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
		return 0
	}
	return end
}

func num(d []byte) int {
	n := 0
	for _, c := range d {
		n = n*10 + int(c-'0')
	}
	return n
}

// matchCard matches a payment card number at i, where b[i:i+l] is a digit
// run not followed by a letter. It accepts 13–19 digits written as one run,
// or, separated by single spaces or single hyphens (one kind per number), in
// the groupings cards are printed with: 4-4-4-4[-1..4], 4-4-4-1..4, 4-6-5 and
// 4-6-4. If the groups read further than a card, the longest valid leading
// groups are taken, but only across spaces: a longer hyphenated number is one
// number.
func matchCard(b []byte, i, l int) int {
	var glen [8]int
	var gend [8]int
	glen[0], gend[0] = l, i+l
	ng := 1
	var sep byte
	if l == 4 {
		total := l
		for pos := i + l; ng < len(glen) && pos < len(b) && total < 19; {
			c := b[pos]
			if c != ' ' && c != '-' || sep != 0 && c != sep {
				break
			}
			e := run(b, pos+1, cDigit)
			gl := e - pos - 1
			if gl == 0 || e < len(b) && isWord(b[e]) {
				break
			}
			sep = c
			glen[ng], gend[ng] = gl, e
			total += gl
			ng++
			pos = e
		}
	}
	if i >= 2 && b[i-1] == '-' && isDigit(b[i-2]) {
		return 0 // part of a longer hyphenated number
	}
	var d [19]byte
	for k := ng; k >= 1; k-- {
		if !cardGrouping(glen[:k]) {
			continue
		}
		end := gend[k-1]
		if k < ng && sep == '-' {
			return 0
		}
		if joinedDigit(b, end, end+1, "-.") {
			return 0 // "4111111111111111-01", "4111111111111111.5"
		}
		nd := 0
		for j := i; j < end; j++ {
			if isDigit(b[j]) {
				d[nd] = b[j]
				nd++
			}
		}
		if cardIIN(d[:nd]) && luhn(d[:nd]) {
			return end
		}
	}
	return 0
}

// cardGrouping reports whether group lengths g are a card layout.
func cardGrouping(g []int) bool {
	total := 0
	for _, n := range g {
		total += n
	}
	if total < 13 || total > 19 {
		return false
	}
	switch k := len(g); {
	case k == 1:
		return true
	case g[0] != 4:
		return false
	case k == 3 && g[1] == 6 && (g[2] == 5 || g[2] == 4):
		return true
	default:
		for _, n := range g[1 : k-1] {
			if n != 4 {
				return false
			}
		}
		return g[k-1] >= 1 && g[k-1] <= 4
	}
}

// cardIIN reports whether the digits d start with a known issuer prefix and
// have a length that issuer uses.
func cardIIN(d []byte) bool {
	l := len(d)
	p2 := num(d[:2])
	p3 := num(d[:3])
	p4 := num(d[:4])
	switch {
	case d[0] == '4': // Visa
		return l == 13 || l == 16 || l == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return l == 16
	case p2 == 34 || p2 == 37: // American Express
		return l == 15
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649: // Discover
		return l >= 16
	case p4 >= 3528 && p4 <= 3589: // JCB
		return l >= 16
	case p2 == 36 || p2 == 38 || p3 >= 300 && p3 <= 305: // Diners Club
		return l >= 14
	}
	return false
}

// luhn reports whether the digits d pass the Luhn check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for j := len(d) - 1; j >= 0; j-- {
		v := int(d[j] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// matchAWSAccessKey matches AKIA or ASIA and 16 uppercase letters or digits.
func matchAWSAccessKey(b []byte, i int) int {
	const n = 20
	if i+n > len(b) || b[i+1] != 'K' && b[i+1] != 'S' || b[i+2] != 'I' || b[i+3] != 'A' {
		return 0
	}
	for j := i + 4; j < i+n; j++ {
		if class[b[j]]&(cUpper|cDigit) == 0 {
			return 0
		}
	}
	if i+n < len(b) && isWord(b[i+n]) {
		return 0
	}
	return i + n
}

// awsSecretLabels are the labels, as words, that mark an AWS secret key.
var awsSecretLabels = [][]string{
	{"aws", "secret", "access", "key"},
	{"secret", "access", "key"},
	{"aws", "secret", "key"},
	{"aws", "secret"},
}

// matchAWSSecret matches a labelled AWS secret access key such as
// aws_secret_access_key = "…40 chars…" or "SecretAccessKey": "…"; the span
// is the value only.
func matchAWSSecret(b []byte, i int) (start, end int, k kid, ok bool) {
	p := -1
	for _, words := range awsSecretLabels {
		if b[i]|0x20 != words[0][0] {
			continue
		}
		if p = matchLabel(b, i, words); p > 0 {
			break
		}
	}
	if p < 0 {
		return
	}
	p = skipQuotes(b, p)
	if p >= len(b) || b[p] != '=' && b[p] != ':' {
		return
	}
	p = skipQuotes(b, p+1)
	const n = 40
	e := run(b, p, cB64)
	if e-p != n || e < len(b) && b[e] == '=' {
		return
	}
	return p, e, kAWSSecretKey, true
}

// skipQuotes skips the spaces, quotes and escape backslashes that may sit
// between a label and its value (at most 8 bytes).
func skipQuotes(b []byte, p int) int {
	for lim := p + 8; p < len(b) && p < lim; p++ {
		switch b[p] {
		case ' ', '\t', '"', '\'', '\\':
		default:
			return p
		}
	}
	return p
}

// matchLabel matches words case-insensitively at b[i:], joined by '_', '-'
// or nothing, and not followed by a word byte; it returns the end or -1.
func matchLabel(b []byte, i int, words []string) int {
	p := i
	for wi, w := range words {
		if wi > 0 && p < len(b) && (b[p] == '_' || b[p] == '-') {
			p++
		}
		if !hasPrefixFold(b[p:], w) {
			return -1
		}
		p += len(w)
	}
	if p < len(b) && isWord(b[p]) {
		return -1
	}
	return p
}

// hasPrefixFold reports whether b starts with the lowercase ASCII word w,
// ignoring case.
func hasPrefixFold(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	for j := 0; j < len(w); j++ {
		if b[j]|0x20 != w[j] {
			return false
		}
	}
	return true
}

// matchBearer matches "Bearer <token>" (any case); the span is the token.
// A token needs at least 16 bytes with a letter and a digit, or 32 bytes
// with upper and lower case letters, so that prose ("bearer of bad news")
// and header names do not match.
func matchBearer(b []byte, i int) (start, end int, k kid, ok bool) {
	if !hasPrefixFold(b[i:], "bearer") {
		return
	}
	p := i + 6
	ws := p
	for p < len(b) && p < ws+4 && (b[p] == ' ' || b[p] == '\t') {
		p++
	}
	if p == ws {
		return
	}
	ts := p
	var seen uint16
	for p < len(b) && class[b[p]]&cTok != 0 {
		seen |= class[b[p]]
		p++
	}
	tl := p - ts
	for p < len(b) && b[p] == '=' {
		p++
	}
	letters := seen & (cUpper | cLower)
	if tl >= 16 && seen&cDigit != 0 && letters != 0 || tl >= 32 && letters == cUpper|cLower {
		return ts, p, kBearerToken, true
	}
	return
}

// maxJWTHeader bounds the encoded JWT header that is decoded (1 KiB decoded).
const maxJWTHeader = 1364

// matchJWT matches a compact JWS (three base64url parts, the signature may
// be empty) or JWE (five) whose header decodes to a JSON object with "alg".
func matchJWT(b []byte, i int) int {
	if i+3 > len(b) || b[i+1] != 'y' || b[i+2] != 'J' {
		return 0
	}
	p := run(b, i, cB64URL)
	if p-i > maxJWTHeader || p >= len(b) || b[p] != '.' {
		return 0
	}
	var hdr [1024]byte
	n, err := base64.RawURLEncoding.Decode(hdr[:], b[i:p])
	if err != nil || !bytes.Contains(hdr[:n], []byte(`"alg"`)) {
		return 0
	}
	if h := bytes.TrimSpace(hdr[:n]); len(h) < 2 || h[0] != '{' {
		return 0
	}
	// payload: at least one byte
	q := run(b, p+1, cB64URL)
	if q == p+1 || q >= len(b) || b[q] != '.' {
		return 0
	}
	end := run(b, q+1, cB64URL)
	// JWE has two more parts; take them if present.
	for extra := 0; extra < 2 && end+1 < len(b) && b[end] == '.' && class[b[end+1]]&cB64URL != 0; extra++ {
		end = run(b, end+1, cB64URL)
	}
	return end
}

// matchGitHub matches ghp_/gho_/ghu_/ghs_/ghr_ with at least 36 letters or
// digits, and github_pat_ with at least 50 of letters, digits and '_'.
func matchGitHub(b []byte, i int) int {
	if i+4 <= len(b) && b[i+1] == 'h' && b[i+3] == '_' {
		switch b[i+2] {
		case 'p', 'o', 'u', 's', 'r':
			e := run(b, i+4, cWord)
			if e-(i+4) >= 36 && (e == len(b) || b[e] != '_') {
				return e
			}
		}
		return 0
	}
	if bytes.HasPrefix(b[i:], []byte("github_pat_")) {
		p := i + len("github_pat_")
		e := p
		for e < len(b) && (isWord(b[e]) || b[e] == '_') {
			e++
		}
		if e-p >= 50 {
			return e
		}
	}
	return 0
}

// matchSlack matches xoxa-/xoxb-/xoxp-/xoxr- and at least 10 letters,
// digits or hyphens including a digit.
func matchSlack(b []byte, i int) int {
	if i+5 > len(b) || b[i+1] != 'o' || b[i+2] != 'x' || b[i+4] != '-' {
		return 0
	}
	switch b[i+3] {
	case 'a', 'b', 'p', 'r':
	default:
		return 0
	}
	p := i + 5
	var seen uint16
	for p < len(b) && class[b[p]]&cSlack != 0 {
		seen |= class[b[p]]
		p++
	}
	if p-(i+5) < 10 || seen&cDigit == 0 {
		return 0
	}
	return p
}

// matchStripe matches sk_live_ or rk_live_ and at least 16 letters or digits.
func matchStripe(b []byte, i int) int {
	const pre = "k_live_"
	if !bytes.HasPrefix(b[i+1:], []byte(pre)) {
		return 0
	}
	p := i + 1 + len(pre)
	e := run(b, p, cWord)
	if e-p < 16 || e < len(b) && b[e] == '_' {
		return 0
	}
	return e
}

var (
	pemBegin = []byte("-----BEGIN ")
	pemEndTk = []byte("-----END ")
	pemDash  = []byte("-----")
	pemPriv  = []byte("PRIVATE KEY")
)

const (
	pemUnknown = -2 // no END searched for yet
	pemNone    = -1 // no END of a private key after the last search start
)

// maxPEMLabel bounds the label between BEGIN/END and the closing dashes.
const maxPEMLabel = 40

// pemLabel reads "LABEL-----" at p and returns the label and the index after
// the dashes, or ok false.
func pemLabel(b []byte, p int) (label []byte, end int, ok bool) {
	e := p
	for e < len(b) && e-p <= maxPEMLabel && (class[b[e]]&(cUpper|cDigit) != 0 || b[e] == ' ') {
		e++
	}
	if !bytes.HasPrefix(b[e:], pemDash) {
		return nil, 0, false
	}
	return b[p:e], e + len(pemDash), true
}

// matchPEM matches a private key block starting with "-----BEGIN " at i,
// through its "-----END … PRIVATE KEY-----" line. Without an END line, it
// takes the PEM body bytes that follow (a truncated key still leaks).
// endAt caches where the next END of a private key is, so that many BEGIN
// lines without an END do not make the scan quadratic.
func matchPEM(b []byte, i int, endAt *int) int {
	label, p, ok := pemLabel(b, i+len(pemBegin))
	if !ok || !bytes.Contains(label, pemPriv) {
		return 0
	}
	if *endAt == pemUnknown || *endAt >= 0 && *endAt < p {
		*endAt = findPEMEnd(b, p)
	}
	if *endAt >= 0 {
		_, e, _ := pemLabel(b, *endAt+len(pemEndTk))
		return e
	}
	e := p
	for e < len(b) && class[b[e]]&cPEM != 0 {
		e++
	}
	return e
}

// findPEMEnd returns the index of the first "-----END …PRIVATE KEY…-----"
// at or after p, or pemNone.
func findPEMEnd(b []byte, p int) int {
	for p < len(b) {
		j := bytes.Index(b[p:], pemEndTk)
		if j < 0 {
			return pemNone
		}
		at := p + j
		if label, _, ok := pemLabel(b, at+len(pemEndTk)); ok && bytes.Contains(label, pemPriv) {
			return at
		}
		p = at + 1
	}
	return pemNone
}
