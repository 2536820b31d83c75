package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testIss = "https://idp.test"
	testAud = "warden"
)

// t0 is the fake clock's start.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testKeys are generated once per test binary.
type testKeys struct {
	rsa   *rsa.PrivateKey
	rsa2  *rsa.PrivateKey // not in the JWKS
	ec    *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
	rsaPS *rsa.PrivateKey // JWK says alg PS256
}

var (
	keysOnce sync.Once
	theKeys  testKeys
)

func keys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		mustRSA := func() *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			return k
		}
		theKeys.rsa, theKeys.rsa2, theKeys.rsaPS = mustRSA(), mustRSA(), mustRSA()
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		theKeys.ec = ec
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		theKeys.ed = ed
	})
	return theKeys
}

func b64s(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(pub *rsa.PublicKey, extra map[string]any) map[string]any {
	m := map[string]any{"kty": "RSA", "n": b64s(pub.N.Bytes()), "e": b64s(big.NewInt(int64(pub.E)).Bytes())}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func ecJWK(t testing.TB, pub *ecdsa.PublicKey, extra map[string]any) map[string]any {
	b, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"kty": "EC", "crv": "P-256", "x": b64s(b[1:33]), "y": b64s(b[33:])}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func edJWK(pub ed25519.PublicKey, extra map[string]any) map[string]any {
	m := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64s(pub)}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func jwks(t testing.TB, ks ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": ks})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stdJWKS is the JWKS most tests use: RSA "rsa1", ECDSA P-256 "ec1" (no
// alg, derived), Ed25519 "ed1", RSA "ps1" pinned to PS256; no HMAC key.
func stdJWKS(t testing.TB) []byte {
	k := keys(t)
	return jwks(t,
		rsaJWK(&k.rsa.PublicKey, map[string]any{"kid": "rsa1", "use": "sig", "alg": "RS256"}),
		ecJWK(t, &k.ec.PublicKey, map[string]any{"kid": "ec1"}),
		edJWK(k.ed.Public().(ed25519.PublicKey), map[string]any{"kid": "ed1", "use": "sig"}),
		rsaJWK(&k.rsaPS.PublicKey, map[string]any{"kid": "ps1", "alg": "PS256"}),
	)
}

// claimsAt returns valid claims for a token issued at now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss":   testIss,
		"aud":   testAud,
		"sub":   "user-1",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"jti":   "id-1",
		"scope": "orders:read orders:write",
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signRaw builds a compact JWS from raw header and payload JSON, signed
// with key under alg (independently of jwx).
func signRaw(t testing.TB, hdr, payload string, alg string, key any) string {
	t.Helper()
	input := b64s([]byte(hdr)) + "." + b64s([]byte(payload))
	return input + "." + b64s(sigFor(t, alg, key, []byte(input)))
}

func sigFor(t testing.TB, alg string, key any, input []byte) []byte {
	t.Helper()
	switch alg {
	case "RS256":
		h := sha256.Sum256(input)
		s, err := rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return s
	case "PS256":
		h := sha256.Sum256(input)
		s, err := rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			t.Fatal(err)
		}
		return s
	case "ES256":
		h := sha256.Sum256(input)
		der, err := ecdsa.SignASN1(rand.Reader, key.(*ecdsa.PrivateKey), h[:])
		if err != nil {
			t.Fatal(err)
		}
		return derToRS(t, der, 32)
	case "EdDSA":
		return ed25519.Sign(key.(ed25519.PrivateKey), input)
	}
	t.Fatalf("sigFor: unknown alg %s", alg)
	return nil
}

// derToRS converts an ASN.1 ECDSA signature into JWS's r||s form.
func derToRS(t testing.TB, der []byte, size int) []byte {
	t.Helper()
	// SEQUENCE { INTEGER r, INTEGER s } with short lengths (P-256).
	if len(der) < 8 || der[0] != 0x30 {
		t.Fatalf("unexpected DER signature")
	}
	i := 2
	readInt := func() []byte {
		if der[i] != 0x02 {
			t.Fatalf("unexpected DER signature")
		}
		l := int(der[i+1])
		v := der[i+2 : i+2+l]
		i += 2 + l
		return v
	}
	r, s := new(big.Int).SetBytes(readInt()), new(big.Int).SetBytes(readInt())
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out
}

// tok returns a token signed by the key named kid in stdJWKS.
func tok(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	k := keys(t)
	alg, key := algKey(k, kid)
	return signRaw(t, mustJSON(t, map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}), mustJSON(t, claims), alg, key)
}

func algKey(k testKeys, kid string) (string, any) {
	switch kid {
	case "rsa1":
		return "RS256", k.rsa
	case "ec1":
		return "ES256", k.ec
	case "ed1":
		return "EdDSA", k.ed
	case "ps1":
		return "PS256", k.rsaPS
	}
	panic(fmt.Sprintf("no test key %q", kid))
}

// newFileVerifier returns a verifier over stdJWKS with a fake clock.
func newFileVerifier(t testing.TB, opt Options) (*Verifier, *fakeClock) {
	t.Helper()
	clk := newClock()
	if opt.Now == nil {
		opt.Now = clk.Now
	}
	v, err := New(Issuer{Name: "test", Issuer: testIss, Audience: testAud, JWKS: stdJWKS(t)}, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v, clk
}

// splitTok splits a compact token into its three segments.
func splitTok(tk string) (string, string, string) {
	p := strings.SplitN(tk, ".", 3)
	return p[0], p[1], p[2]
}
