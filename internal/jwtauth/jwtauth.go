package jwtauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
)

// ErrInvalidToken is wrapped by every rejection of a token. The rest of the
// error text says why, in words that are safe to log: it never contains the
// token.
var ErrInvalidToken = errors.New("invalid token")

// ErrKeysUnavailable is wrapped, together with [ErrInvalidToken], when a
// token cannot be checked because the issuer's JWKS was never loaded (fail
// closed). A gateway may answer it with 503 rather than 401.
var ErrKeysUnavailable = errors.New("issuer keys unavailable")

// Limits and defaults.
const (
	// MaxTokenSize is the largest token accepted, in bytes.
	MaxTokenSize = 8 << 10
	// MaxJWKSSize is the largest JWKS document accepted, in bytes.
	MaxJWKSSize = 1 << 20

	DefaultLeeway          = 30 * time.Second
	DefaultRefreshInterval = 10 * time.Minute
	DefaultMinRefreshGap   = 30 * time.Second
	DefaultCacheSize       = 10_000

	maxLeeway    = 5 * time.Minute
	fetchTimeout = 10 * time.Second
	maxKidLen    = 128
)

// Issuer is one trusted token issuer, as configured by
// `warden auth jwt add`. Exactly one of JWKSURL and JWKS is set.
type Issuer struct {
	Name     string // operator's name for the issuer, used in error text
	Issuer   string // required value of the iss claim
	Audience string // value the aud claim must contain
	JWKSURL  string // https URL of the JWKS (http only on loopback)
	JWKS     []byte // JWKS document (from --jwks-file); parsed once by New
	Leeway   time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat; 0 means
	// DefaultLeeway (30s), and more than 5 minutes is refused.
}

// Options tune a Verifier. The zero value is valid.
type Options struct {
	// HTTPClient fetches JWKSURL; nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RefreshInterval is the age after which keys loaded from JWKSURL are
	// refreshed; 0 means DefaultRefreshInterval.
	RefreshInterval time.Duration
	// MinRefreshGap is the least time between two fetches of JWKSURL, in
	// particular those triggered by tokens naming an unknown kid;
	// 0 means DefaultMinRefreshGap.
	MinRefreshGap time.Duration
	// CacheSize bounds the verified-token cache; 0 means DefaultCacheSize,
	// a negative value disables the cache.
	CacheSize int
}

// Claims is the verified identity a token carries.
type Claims struct {
	Subject   string // never empty: a token without sub is refused
	Issuer    string
	Audience  []string
	Scopes    []string // from "scope" (space-separated) and/or "scp" (array or space-separated string)
	ExpiresAt time.Time
	ID        string // jti
}

// Verifier verifies tokens from one issuer. It is safe for concurrent use.
// It starts no long-lived goroutine: keys from a URL are refreshed lazily,
// by a short-lived fetch started from Verify, so a Verifier needs no Close.
//
// # Notes
//
//   - A JWKS fetch is never started while another runs, and never within
//     MinRefreshGap of the previous attempt; a failed fetch keeps the keys
//     already loaded.
//   - When the set of keys changes, the verified-token cache is emptied, so a
//     removed key stops being trusted at once.
type Verifier struct {
	name     string
	issuer   string
	audience string
	leeway   time.Duration
	now      func() time.Time

	validateOpts []jwt.ParseOption

	// JWKS by URL; url is empty when the keys came from a file.
	url             string
	client          *http.Client
	refreshInterval time.Duration
	minRefreshGap   time.Duration

	keys atomic.Pointer[keySet]

	mu          sync.Mutex // guards the fields below
	loadedAt    time.Time
	lastAttempt time.Time
	inflight    chan struct{}

	cache *tokenCache

	// sigChecks counts signature verifications handed to jwx (tests).
	sigChecks atomic.Int64
	// afterFetch, when set, runs at the end of every JWKS fetch (tests).
	afterFetch func()
}

// New returns a Verifier for iss. It parses iss.JWKS at once; keys from
// iss.JWKSURL are fetched by the first Verify. It fails on an incomplete or
// invalid configuration, and on a JWKS file with no usable signing key.
func New(iss Issuer, opt Options) (*Verifier, error) {
	name := iss.Name
	if name == "" {
		name = iss.Issuer
	}
	if iss.Issuer == "" {
		return nil, fmt.Errorf("jwtauth: issuer %q: iss value is required", name)
	}
	if iss.Audience == "" {
		return nil, fmt.Errorf("jwtauth: issuer %q: audience is required", name)
	}
	if (iss.JWKSURL == "") == (len(iss.JWKS) == 0) {
		return nil, fmt.Errorf("jwtauth: issuer %q: exactly one of a JWKS URL and a JWKS file is required", name)
	}
	leeway := iss.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0 || leeway > maxLeeway:
		return nil, fmt.Errorf("jwtauth: issuer %q: leeway %v is outside (0, %v]", name, leeway, maxLeeway)
	}
	v := &Verifier{
		name:            name,
		issuer:          iss.Issuer,
		audience:        iss.Audience,
		leeway:          leeway,
		now:             opt.Now,
		client:          opt.HTTPClient,
		refreshInterval: opt.RefreshInterval,
		minRefreshGap:   opt.MinRefreshGap,
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: fetchTimeout}
	}
	if v.refreshInterval <= 0 {
		v.refreshInterval = DefaultRefreshInterval
	}
	if v.minRefreshGap <= 0 {
		v.minRefreshGap = DefaultMinRefreshGap
	}
	size := opt.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		v.cache = newTokenCache(size)
	}
	v.validateOpts = []jwt.ParseOption{
		jwt.WithValidate(true),
		jwt.WithIssuer(iss.Issuer),
		jwt.WithAudience(iss.Audience),
		jwt.WithRequiredClaim("exp"),
		jwt.WithAcceptableSkew(leeway),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return v.now() })),
	}

	if len(iss.JWKS) > 0 {
		if len(iss.JWKS) > MaxJWKSSize {
			return nil, fmt.Errorf("jwtauth: issuer %q: JWKS is larger than %d bytes", name, MaxJWKSSize)
		}
		ks, err := parseJWKS(iss.JWKS)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: issuer %q: %w", name, err)
		}
		v.keys.Store(ks)
		return v, nil
	}
	if err := checkJWKSURL(iss.JWKSURL); err != nil {
		return nil, fmt.Errorf("jwtauth: issuer %q: %w", name, err)
	}
	v.url = iss.JWKSURL
	return v, nil
}

// checkJWKSURL accepts https URLs, and http ones only on a loopback host.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("JWKS URL is not an absolute URL")
	}
	if u.User != nil {
		return errors.New("JWKS URL must not contain credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return nil
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("JWKS URL must use https (http is allowed only on loopback)")
	default:
		return errors.New("JWKS URL must use https")
	}
}

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidToken}, args...)...)
}

// Verify checks token (the compact JWS, without any "Bearer " prefix) and
// returns its claims. Every error wraps ErrInvalidToken. ctx bounds the wait
// for a JWKS fetch, when one is needed. The slices in the returned Claims are
// the caller's own.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > MaxTokenSize {
		return Claims{}, reject("token is larger than %d bytes", MaxTokenSize)
	}
	if token == "" {
		return Claims{}, reject("token is empty")
	}
	var sum [32]byte
	var gen uint64
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		if c, ok := v.cache.get(sum); ok {
			if !v.now().Before(c.ExpiresAt.Add(v.leeway)) {
				v.cache.remove(sum)
				return Claims{}, reject("token is expired")
			}
			return cloneClaims(c), nil
		}
		gen = v.cache.generation()
	}
	c, err := v.verify(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	if v.cache != nil {
		v.cache.put(sum, c, gen)
	}
	return cloneClaims(c), nil
}

func cloneClaims(c Claims) Claims {
	c.Audience = slices.Clone(c.Audience)
	c.Scopes = slices.Clone(c.Scopes)
	return c
}

var b64 = base64.RawURLEncoding.Strict()

// verify does the full check of a token not found in the cache.
func (v *Verifier) verify(ctx context.Context, token string) (Claims, error) {
	// Structure: exactly three non-empty base64url segments.
	if n := strings.Count(token, "."); n != 2 {
		return Claims{}, reject("token has %d segments, want 3", min(n+1, 4))
	}
	h64, rest, _ := strings.Cut(token, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	if h64 == "" || p64 == "" {
		return Claims{}, reject("token has an empty header or payload")
	}
	hdrJSON, err := b64.DecodeString(h64)
	if err != nil {
		return Claims{}, reject("header is not base64url")
	}
	// The header is checked first so that alg none is named as such.
	hdr, err := parseHeader(hdrJSON)
	if err != nil {
		return Claims{}, err
	}
	if s64 == "" {
		return Claims{}, reject("token has no signature")
	}
	payload, err := b64.DecodeString(p64)
	if err != nil {
		return Claims{}, reject("payload is not base64url")
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return Claims{}, reject("signature is not base64url")
	}

	if err := checkJSONObject(payload); err != nil {
		return Claims{}, reject("payload: %v", err)
	}
	if err := checkNumericDates(payload); err != nil {
		return Claims{}, err
	}

	key, err := v.lookupKey(ctx, hdr)
	if err != nil {
		return Claims{}, err
	}
	if hdr.alg != key.alg {
		return Claims{}, reject("algorithm %s does not match the %s pinned for kid %q", hdr.alg, key.alg, key.kid)
	}
	if err := checkSignatureShape(key, sig); err != nil {
		return Claims{}, err
	}

	v.sigChecks.Add(1)
	opts := make([]jwt.ParseOption, 0, len(v.validateOpts)+1)
	opts = append(opts, jwt.WithKey(key.jwa, key.raw))
	opts = append(opts, v.validateOpts...)
	tok, err := jwt.Parse([]byte(token), opts...)
	if err != nil {
		return Claims{}, describeJWXError(err)
	}
	return v.claims(tok)
}

// describeJWXError turns a jwx error into words safe to log; jwx's own text
// is not used, since it may quote parts of the input.
func describeJWXError(err error) error {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return reject("token is expired")
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return reject("token is not valid yet (nbf)")
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return reject("token is issued in the future (iat)")
	case errors.Is(err, jwt.InvalidIssuerError()):
		return reject("wrong or missing iss")
	case errors.Is(err, jwt.InvalidAudienceError()):
		return reject("wrong or missing aud")
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return reject("missing exp")
	case errors.Is(err, jwt.ValidateError()):
		return reject("claims are invalid")
	default:
		// jws.VerificationError and parse errors: the signature did not
		// verify, or the claims could not be decoded.
		return reject("signature verification failed or claims are malformed")
	}
}

// claims extracts Claims from a token jwx verified and validated. It checks
// again what must hold whatever jwx's defaults: iss, aud and exp; and it
// requires a non-empty sub.
func (v *Verifier) claims(tok jwt.Token) (Claims, error) {
	var c Claims
	c.Issuer, _ = tok.Issuer()
	if c.Issuer != v.issuer {
		return Claims{}, reject("wrong or missing iss")
	}
	c.Audience, _ = tok.Audience()
	if !slices.Contains(c.Audience, v.audience) {
		return Claims{}, reject("wrong or missing aud")
	}
	exp, ok := tok.Expiration()
	if !ok {
		return Claims{}, reject("missing exp")
	}
	if !v.now().Before(exp.Add(v.leeway)) {
		return Claims{}, reject("token is expired")
	}
	c.ExpiresAt = exp
	// Without a subject the token names nobody: it could carry no identity
	// and no rate-limit bucket of its own.
	if c.Subject, _ = tok.Subject(); c.Subject == "" {
		return Claims{}, reject("missing sub")
	}
	c.ID, _ = tok.JwtID()

	var scopes []string
	if tok.Has("scope") {
		var s any
		if err := tok.Get("scope", &s); err != nil {
			return Claims{}, reject("scope claim is malformed")
		}
		str, ok := s.(string)
		if !ok {
			return Claims{}, reject("scope claim is not a string")
		}
		scopes = append(scopes, strings.Fields(str)...)
	}
	if tok.Has("scp") {
		var s any
		if err := tok.Get("scp", &s); err != nil {
			return Claims{}, reject("scp claim is malformed")
		}
		switch s := s.(type) {
		case string:
			scopes = append(scopes, strings.Fields(s)...)
		case []any:
			for _, e := range s {
				str, ok := e.(string)
				if !ok {
					return Claims{}, reject("scp claim holds a non-string")
				}
				if str != "" {
					scopes = append(scopes, str)
				}
			}
		default:
			return Claims{}, reject("scp claim is neither an array nor a string")
		}
	}
	if len(scopes) > 1 {
		slices.Sort(scopes)
		scopes = slices.Compact(scopes)
	}
	c.Scopes = scopes
	return c, nil
}

// numericDates are the registered claims RFC 7519 (§4.1.4-6) defines as
// NumericDate: a JSON number of seconds since the epoch.
var numericDates = [...]string{"exp", "nbf", "iat"}

// checkNumericDates refuses a payload whose exp, nbf or iat is present but
// not a JSON number. jwx reads some other forms as dates (a string of digits,
// for one); what it tolerates is not ours to widen, so the check is done here
// on the bytes that were signed. payload has passed checkJSONObject: it is
// one object without duplicate keys.
func checkNumericDates(payload []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return reject("payload is not a JSON object")
	}
	for _, k := range numericDates {
		raw, ok := m[k]
		if !ok {
			continue
		}
		// Valid JSON whose first byte is '-' or a digit is a number.
		if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return reject("%s is not a JSON number (RFC 7519 NumericDate)", k)
		}
	}
	return nil
}

// header is what Verify uses of a token's JOSE header.
type header struct {
	alg   string
	kid   string
	hasID bool
}

// acceptedAlgs are the only algorithms a token may name.
var acceptedAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// forbiddenHeaders name keys or URLs the token would have us trust, or
// change how the JWS is processed.
var forbiddenHeaders = []string{"jwk", "jku", "x5u", "x5c", "crit", "b64", "zip", "enc"}

// parseHeader decodes and applies policy to a JOSE header.
func parseHeader(b []byte) (header, error) {
	if err := checkJSONObject(b); err != nil {
		return header{}, reject("header: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return header{}, reject("header is not a JSON object")
	}
	for _, k := range forbiddenHeaders {
		if _, ok := m[k]; ok {
			if k == "crit" {
				return header{}, reject("header has crit with extensions that are not supported")
			}
			return header{}, reject("header %s is not accepted", k)
		}
	}
	var h header
	raw, ok := m["alg"]
	if !ok {
		return header{}, reject("header has no alg")
	}
	if err := json.Unmarshal(raw, &h.alg); err != nil {
		return header{}, reject("header alg is not a string")
	}
	switch {
	case strings.EqualFold(h.alg, "none"):
		return header{}, reject("alg none is not accepted")
	case len(h.alg) == 5 && strings.EqualFold(h.alg[:2], "HS"):
		return header{}, reject("symmetric algorithms (HS*) are not accepted")
	case !acceptedAlgs[h.alg]:
		return header{}, reject("algorithm is not supported")
	}
	if raw, ok := m["kid"]; ok {
		if err := json.Unmarshal(raw, &h.kid); err != nil {
			return header{}, reject("header kid is not a string")
		}
		if err := checkKid(h.kid); err != nil {
			return header{}, err
		}
		h.hasID = true
	}
	return h, nil
}

// checkKid accepts only short kids made of [A-Za-z0-9._:+=~-]: enough for
// every real issuer's key ids (including base64 thumbprints), and nothing a
// path, query or shell could interpret.
func checkKid(kid string) error {
	if kid == "" || len(kid) > maxKidLen {
		return reject("kid is empty or longer than %d bytes", maxKidLen)
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == '-' || c == ':' || c == '+' || c == '=' || c == '~':
		default:
			return reject("kid contains characters outside [A-Za-z0-9._:+=~-]")
		}
	}
	if strings.Contains(kid, "..") {
		return reject("kid contains \"..\"")
	}
	return nil
}

// jsonFrame is one open object or array in checkJSONObject.
type jsonFrame struct {
	obj    bool
	keys   map[string]struct{}
	expKey bool // in an object, the next token is a key
}

// checkJSONObject reports whether b is one JSON object with no duplicate
// key at any depth and nesting no deeper than 32, so that no two parsers can
// read the same bytes differently.
func checkJSONObject(b []byte) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var stack []jsonFrame
	first := true
	for {
		t, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) && len(stack) == 0 && !first {
				return nil
			}
			return errors.New("not valid JSON")
		}
		if first {
			if d, ok := t.(json.Delim); !ok || d != '{' {
				return errors.New("not a JSON object")
			}
			first = false
			stack = append(stack, jsonFrame{obj: true, keys: map[string]struct{}{}, expKey: true})
			continue
		}
		if len(stack) == 0 {
			return errors.New("trailing data after the JSON object")
		}
		top := &stack[len(stack)-1]
		if top.obj && top.expKey {
			if d, ok := t.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				markValueDone(stack)
				continue
			}
			k, ok := t.(string)
			if !ok {
				return errors.New("not valid JSON")
			}
			if _, dup := top.keys[k]; dup {
				return errors.New("duplicate JSON key")
			}
			top.keys[k] = struct{}{}
			top.expKey = false
			continue
		}
		switch d, _ := t.(json.Delim); d {
		case '{', '[':
			if len(stack) >= 32 {
				return errors.New("JSON nested too deeply")
			}
			f := jsonFrame{obj: d == '{', expKey: d == '{'}
			if f.obj {
				f.keys = map[string]struct{}{}
			}
			stack = append(stack, f)
		case ']':
			stack = stack[:len(stack)-1]
			markValueDone(stack)
		default:
			markValueDone(stack)
		}
	}
}

// markValueDone records that the value for the current key of the innermost
// object was read.
func markValueDone(stack []jsonFrame) {
	if n := len(stack); n > 0 && stack[n-1].obj {
		stack[n-1].expKey = true
	}
}
