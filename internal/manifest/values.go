package manifest

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds enforced by Parse.
const (
	MinMemory       = 1 << 20  // 1 MiB
	MaxMemory       = 4 << 30  // 4 GiB, the wasm32 address space
	MemoryPage      = 64 << 10 // 64 KiB, the wasm page size
	MinTimeout      = time.Millisecond
	MaxTimeout      = 15 * time.Minute
	MinConcurrency  = 1
	MaxConcurrency  = 10000
	MaxBody         = 100 << 20 // 100 MiB, for requestBody and responseBody
	MaxRateCount    = 1_000_000 // N in rate: N/s and the ceiling of burst
	MaxParanoia     = 4
	maxIdentLength  = 128 // secret names, scopes, env keys
	maxNameLength   = 63  // name, namespace, issuer, kv bucket
	maxPathLength   = 1024
	maxDNSName      = 253
	maxDNSLabel     = 63
	maxSizeDigits   = 19 // fits int64 before the unit is applied
	defaultHTTPPort = "80"
	defaultTLSPort  = "443"
)

// Binary size units accepted by parseSize, largest first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"B", 1},
}

// parseSize parses a byte count written as a plain integer ("1048576") or
// an integer with a binary unit: B, KiB, MiB or GiB ("64MiB"). Decimal and
// ambiguous units (KB, MB, GB, M, ...) are refused with a hint, as are
// fractions, signs and spaces.
func parseSize(s string) (int64, error) {
	digits := 0
	for digits < len(s) && '0' <= s[digits] && s[digits] <= '9' {
		digits++
	}
	num, unit := s[:digits], s[digits:]
	hint := "64MiB"
	if num != "" {
		hint = num + "MiB"
	}
	switch {
	case num == "":
		return 0, fmt.Errorf("%q is not a size; use an integer number of bytes or a unit like %s", s, hint)
	case strings.HasPrefix(unit, " ") && isSizeUnit(strings.TrimLeft(unit, " ")):
		return 0, fmt.Errorf("%q is not a size; write it without a space: %s%s", s, num, strings.TrimLeft(unit, " "))
	case strings.HasPrefix(unit, "."):
		return 0, fmt.Errorf("%q is not a size; sizes are whole numbers%s", s, fractionHint(s))
	case unit != "" && !isSizeUnit(unit):
		return 0, fmt.Errorf("%q is not a size; use a unit like %s", s, hint)
	case len(strings.TrimLeft(num, "0")) > maxSizeDigits:
		return 0, fmt.Errorf("%q is too large", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	mult := int64(1)
	for _, u := range sizeUnits {
		if unit == u.suffix {
			mult = u.mult
		}
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// fractionHint suggests a whole-number spelling of a fractional size like
// "1.5MiB" (1536KiB), when there is one.
func fractionHint(s string) string {
	for _, u := range sizeUnits[:3] {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f <= 0 || f > MaxMemory {
			return ""
		}
		n := f * float64(u.mult)
		if n == float64(int64(n)) {
			return ", so write " + formatSize(int64(n))
		}
	}
	return ""
}

func isSizeUnit(u string) bool {
	for _, su := range sizeUnits {
		if u == su.suffix {
			return true
		}
	}
	return false
}

// formatSize writes n with the largest binary unit that divides it exactly,
// the way a manifest would spell it.
func formatSize(n int64) string {
	for _, u := range sizeUnits[:3] {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// formatDuration writes d without the zero units time.Duration.String
// adds: 15m rather than 15m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseDuration parses a Go duration ("5s", "250ms", "1m30s"). A bare
// number is refused: it has no unit.
func parseDuration(s string) (time.Duration, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return 0, fmt.Errorf("%q is not a duration; use a unit like %ss or %sms", s, s, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; use a Go duration like 5s or 250ms", s)
	}
	return d, nil
}

// ratePer maps the unit of a rate to its period.
var ratePer = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// parseRate parses "N/s", "N/m" or "N/h" with 1 <= N <= MaxRateCount.
func parseRate(s string) (n int, per time.Duration, err error) {
	num, unit, ok := strings.Cut(s, "/")
	per, unitOK := ratePer[unit]
	if !ok || !unitOK || num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, 0, fmt.Errorf("%q is not a rate; write requests per second, minute or hour, like 20/s, 100/m or 1000/h", s)
	}
	if len(num) > 7 {
		return 0, 0, fmt.Errorf("%q is too large; at most %d per period", s, MaxRateCount)
	}
	n, _ = strconv.Atoi(num) // cannot fail: at most 7 digits
	switch {
	case n < 1:
		return 0, 0, fmt.Errorf("%q allows no requests; the count must be at least 1", s)
	case n > MaxRateCount:
		return 0, 0, fmt.Errorf("%q is too large; at most %d per period", s, MaxRateCount)
	}
	return n, per, nil
}

// formatRate is the inverse of parseRate.
func formatRate(n int, per time.Duration) string {
	for unit, p := range ratePer {
		if p == per {
			return strconv.Itoa(n) + "/" + unit
		}
	}
	return strconv.Itoa(n) + "/" + per.String()
}

// checkName checks a function name, namespace, JWT issuer name or KV
// bucket name: a lowercase letter, then up to 62 lowercase letters, digits
// and hyphens (and underscores when allowUnderscore), not ending with a
// hyphen.
func checkName(s string, allowUnderscore bool) error {
	chars := "lowercase letters, digits and hyphens"
	if allowUnderscore {
		chars = "lowercase letters, digits, hyphens and underscores"
	}
	bad := fmt.Errorf("%q is not a valid name; use 1-%d %s, starting with a letter and not ending with a hyphen", s, maxNameLength, chars)
	if s == "" || len(s) > maxNameLength || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return bad
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' && allowUnderscore) {
			return bad
		}
	}
	return nil
}

// checkSecretName checks [A-Z][A-Z0-9_]*.
func checkSecretName(s string) error {
	ok := s != "" && len(s) <= maxIdentLength && 'A' <= s[0] && s[0] <= 'Z'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
	}
	if !ok {
		return fmt.Errorf("%q is not a valid secret name; use up to %d uppercase letters, digits and underscores, starting with a letter", s, maxIdentLength)
	}
	return nil
}

// checkScope checks [a-z0-9][a-z0-9:._-]*.
func checkScope(s string) error {
	ok := s != "" && len(s) <= maxIdentLength
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && strings.IndexByte(":._-", c) >= 0
	}
	if !ok {
		return fmt.Errorf("%q is not a valid scope; use up to %d lowercase letters, digits and : . _ -, starting with a letter or digit", s, maxIdentLength)
	}
	return nil
}

// checkEnvKey checks [A-Za-z_][A-Za-z0-9_]* and the reserved WARDEN_ prefix.
func checkEnvKey(s string) error {
	ok := s != "" && len(s) <= maxIdentLength
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || i > 0 && '0' <= c && c <= '9'
	}
	if !ok {
		return fmt.Errorf("%q is not a valid variable name; use up to %d letters, digits and underscores, not starting with a digit", s, maxIdentLength)
	}
	if strings.HasPrefix(strings.ToUpper(s), "WARDEN_") {
		return errors.New("names starting with WARDEN_ are reserved for warden")
	}
	return nil
}

// checkRelPath checks a path relative to the manifest file (artifact,
// schema): not empty, not absolute on any platform, not a URL, written with
// forward slashes and free of control characters.
func checkRelPath(s string) error {
	switch {
	case s == "":
		return errors.New("path is empty")
	case len(s) > maxPathLength:
		return fmt.Errorf("path is longer than %d bytes", maxPathLength)
	case !utf8.ValidString(s):
		return errors.New("path is not valid UTF-8")
	case strings.Contains(s, "://"):
		return fmt.Errorf("%q is a URL; use a path relative to the manifest file", s)
	case strings.HasPrefix(s, "/"), strings.HasPrefix(s, `\`), len(s) >= 2 && s[1] == ':' && isASCIILetter(s[0]):
		return fmt.Errorf("%q is an absolute path; use a path relative to the manifest file", s)
	case strings.Contains(s, `\`):
		return fmt.Errorf("%q contains a backslash; separate directories with /", s)
	case strings.IndexFunc(s, isControl) >= 0:
		return fmt.Errorf("%q contains a control character", s)
	case s == "." || strings.HasSuffix(s, "/") || strings.HasSuffix(s, "/."):
		return fmt.Errorf("%q names a directory; name a file", s)
	}
	return nil
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 }

// parsePattern checks a net/http ServeMux pattern "[METHOD ]/path" as a
// manifest may write it: an optional uppercase method and one space, then
// a clean path with valid wildcards and no host. It returns the parts.
func parsePattern(s string) (method, path string, err error) {
	if s == "" {
		return "", "", errors.New(`route is empty; write a pattern like "GET /orders/{id}"`)
	}
	if strings.TrimSpace(s) != s {
		return "", "", fmt.Errorf("%q has leading or trailing spaces", s)
	}
	path = s
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		method, path = s[:i], s[i+1:]
		if s[i] != ' ' || strings.IndexAny(path, " \t") == 0 {
			return "", "", fmt.Errorf("%q: separate the method and the path with one space", s)
		}
		if err := checkMethod(method); err != nil {
			return "", "", fmt.Errorf("%q: %w", s, err)
		}
	}
	if !strings.HasPrefix(path, "/") {
		host, _, found := strings.Cut(path, "/")
		if found && (strings.ContainsAny(host, ".:") || host == "localhost") {
			return "", "", fmt.Errorf("%q: a route must not name a host (%s); warden routes by path only", s, host)
		}
		return "", "", fmt.Errorf("%q: the path must start with /", s)
	}
	if i := strings.IndexFunc(path, func(r rune) bool { return isControl(r) || r == ' ' || r == '\t' || r == utf8.RuneError }); i >= 0 {
		return "", "", fmt.Errorf("%q: the path contains a space or control character", s)
	}
	if strings.ContainsAny(path, "?#") {
		return "", "", fmt.Errorf("%q: a route matches a path; it must not contain ? or #", s)
	}
	segs := strings.Split(path[1:], "/")
	for i, seg := range segs {
		if seg == "." || seg == ".." || seg == "" && i < len(segs)-1 {
			return "", "", fmt.Errorf("%q: the path is not clean (no //, /./ or /../); requests to it would be redirected", s)
		}
	}
	if err := register(http.NewServeMux(), s); err != nil {
		msg := err.Error()
		if inner := errors.Unwrap(err); inner != nil {
			msg = inner.Error() // drop the "parsing %q: " prefix
		}
		return "", "", fmt.Errorf("%q: %s", s, msg)
	}
	return method, path, nil
}

func checkMethod(m string) error {
	upper := true
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case 'a' <= c && c <= 'z':
			upper = false
		case 'A' <= c && c <= 'Z':
		default:
			return fmt.Errorf("%q is not an HTTP method", m)
		}
	}
	if !upper {
		return fmt.Errorf("write the method in uppercase: %s", strings.ToUpper(m))
	}
	return nil
}

// noHandler is registered on a scratch ServeMux to validate patterns.
var noHandler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// register adds pattern to mux, turning the panic that ServeMux uses for
// an invalid or conflicting pattern into an error.
func register(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	mux.Handle(pattern, noHandler)
	return nil
}

// parseOrigin checks an egress origin, scheme://host[:port] with scheme
// https or http, and returns its canonical form (the default port left
// out) for duplicate detection. The host is a lowercase ASCII DNS name,
// optionally with one leading "*." wildcard label over at least two more
// labels, or an IP literal (IPv6 in brackets).
func parseOrigin(s string) (canonical string, err error) {
	if s == "" {
		return "", errors.New("origin is empty")
	}
	if s == "*" || s == "https://*" || s == "http://*" {
		return "", fmt.Errorf("%q would allow every host; list each origin the function calls, like https://api.example.com", s)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		hint := "https://api.example.com"
		if h, _, _ := strings.Cut(s, "/"); h != "" && !strings.ContainsAny(h, ":@") {
			hint = "https://" + h
		}
		return "", fmt.Errorf("%q is not an origin; write scheme://host[:port], like %s", s, hint)
	}
	switch scheme {
	case "https", "http":
	default:
		if l := strings.ToLower(scheme); l == "https" || l == "http" {
			return "", fmt.Errorf("%q: write the scheme in lowercase: %s", s, l)
		}
		return "", fmt.Errorf("%q: scheme %q is not allowed; use https or http", s, scheme)
	}
	if i := strings.IndexAny(rest, "/?#@"); i >= 0 {
		if strings.Contains(rest, "@") {
			return "", fmt.Errorf("%q must not contain user info (user@); put credentials in a secret", s)
		}
		return "", fmt.Errorf("%q must not have a path, query or fragment; write %s://%s", s, scheme, rest[:i])
	}
	host, port, hasPort := rest, "", false
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", fmt.Errorf("%q: missing ] after the IPv6 address", s)
		}
		host = rest[1:end]
		if after := rest[end+1:]; after != "" {
			if !strings.HasPrefix(after, ":") {
				return "", fmt.Errorf("%q: expected :port after the IPv6 address", s)
			}
			port, hasPort = after[1:], true
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("%q: %q is not an IPv6 address", s, host)
		}
		host = "[" + a.String() + "]" // canonical spelling, for duplicates
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port, hasPort = rest[:i], rest[i+1:], true
		if strings.Contains(host, ":") {
			return "", fmt.Errorf("%q: write an IPv6 address in brackets, like http://[::1]:8080", s)
		}
	}
	if hasPort {
		if err := checkPort(port); err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
	}
	if !strings.HasPrefix(host, "[") {
		if err := checkHost(host); err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
	}
	if port == defaultTLSPort && scheme == "https" || port == defaultHTTPPort && scheme == "http" {
		port = ""
	}
	canonical = scheme + "://" + host
	if port != "" {
		canonical += ":" + port
	}
	return canonical, nil
}

func checkPort(p string) error {
	if p == "" || len(p) > 5 || p[0] == '0' || strings.Trim(p, "0123456789") != "" {
		return fmt.Errorf("%q is not a port; use a number from 1 to 65535", p)
	}
	if n, _ := strconv.Atoi(p); n > 65535 {
		return fmt.Errorf("%q is not a port; use a number from 1 to 65535", p)
	}
	return nil
}

// checkHost checks an unbracketed host: an IPv4 literal or a DNS name,
// optionally with a leading "*." label.
func checkHost(host string) error {
	if host == "" {
		return errors.New("the origin has no host")
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			return errors.New("the host must be ASCII; write an internationalized name in punycode (xn--...)")
		}
	}
	name, wildcard := strings.CutPrefix(host, "*.")
	if strings.Contains(name, "*") {
		return errors.New(`only one leading "*." label may be a wildcard`)
	}
	if a, err := netip.ParseAddr(name); err == nil {
		if wildcard {
			return errors.New("a wildcard cannot be combined with an IP address")
		}
		if a.Is6() {
			return errors.New("write an IPv6 address in brackets, like http://[::1]:8080")
		}
		return nil
	}
	if l := strings.ToLower(name); l != name {
		return fmt.Errorf("write the host in lowercase: %s", l)
	}
	if len(name) > maxDNSName {
		return fmt.Errorf("the host is longer than %d characters", maxDNSName)
	}
	labels := strings.Split(name, ".")
	for _, label := range labels {
		if err := checkDNSLabel(label); err != nil {
			return fmt.Errorf("%q is not a valid host name: %w", host, err)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("%q is neither an IP address nor a DNS name", host)
	}
	if wildcard && len(labels) < 2 {
		return fmt.Errorf("%q is too broad; a wildcard must cover a registered domain, like *.example.com", host)
	}
	return nil
}

func checkDNSLabel(label string) error {
	switch {
	case label == "":
		return errors.New("empty label (a leading, trailing or doubled dot)")
	case len(label) > maxDNSLabel:
		return fmt.Errorf("label longer than %d characters", maxDNSLabel)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("label %q may contain only letters, digits and hyphens", label)
		}
	}
	return nil
}

// CheckNamespace checks a namespace name as a manifest's namespace field
// does.
func CheckNamespace(s string) error { return checkName(s, false) }
