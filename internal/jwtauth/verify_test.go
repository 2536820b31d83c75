package jwtauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || !strings.Contains(f.Doc.Text(), "never") {
		t.Fatalf("package doc missing or does not say what jwtauth must never do")
	}
}

func TestVerifyAccepts(t *testing.T) {
	for _, kid := range []string{"rsa1", "ec1", "ed1", "ps1"} {
		t.Run(kid, func(t *testing.T) {
			v, _ := newFileVerifier(t, Options{})
			c, err := v.Verify(context.Background(), tok(t, kid, claimsAt(t0)))
			if err != nil {
				t.Fatalf("Verify(%s token) = %v, want nil", kid, err)
			}
			if c.Subject != "user-1" || c.Issuer != testIss || c.ID != "id-1" {
				t.Errorf("claims = %+v, want sub user-1, iss %s, jti id-1", c, testIss)
			}
			if !slices.Equal(c.Audience, []string{testAud}) {
				t.Errorf("Audience = %q, want [%q]", c.Audience, testAud)
			}
			if !slices.Equal(c.Scopes, []string{"orders:read", "orders:write"}) {
				t.Errorf("Scopes = %q", c.Scopes)
			}
			if !c.ExpiresAt.Equal(t0.Add(time.Hour)) {
				t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, t0.Add(time.Hour))
			}
		})
	}
}

func TestScopes(t *testing.T) {
	tests := []struct {
		name  string
		set   map[string]any
		want  []string
		valid bool
	}{
		{"scope string", map[string]any{"scope": " a  b c "}, []string{"a", "b", "c"}, true},
		{"scp array", map[string]any{"scope": nil, "scp": []string{"x", "y"}}, []string{"x", "y"}, true},
		{"scp string", map[string]any{"scope": nil, "scp": "p q"}, []string{"p", "q"}, true},
		{"both merged", map[string]any{"scope": "a b", "scp": []string{"b", "c"}}, []string{"a", "b", "c"}, true},
		{"none", map[string]any{"scope": nil}, nil, true},
		{"scp with a number", map[string]any{"scope": nil, "scp": []any{"a", 1}}, nil, false},
		{"scope not a string", map[string]any{"scope": []string{"a"}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newFileVerifier(t, Options{})
			cl := claimsAt(t0)
			for k, val := range tt.set {
				if val == nil {
					delete(cl, k)
				} else {
					cl[k] = val
				}
			}
			c, err := v.Verify(context.Background(), tok(t, "ec1", cl))
			if (err == nil) != tt.valid {
				t.Fatalf("Verify = %v, want valid %v", err, tt.valid)
			}
			if tt.valid && !slices.Equal(c.Scopes, tt.want) {
				t.Errorf("Scopes = %q, want %q", c.Scopes, tt.want)
			}
		})
	}
}

func TestAudienceArray(t *testing.T) {
	v, _ := newFileVerifier(t, Options{})
	cl := claimsAt(t0)
	cl["aud"] = []string{"other", testAud}
	c, err := v.Verify(context.Background(), tok(t, "ed1", cl))
	if err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	if !slices.Equal(c.Audience, []string{"other", testAud}) {
		t.Errorf("Audience = %q", c.Audience)
	}
}

// rejection is one token that must be refused.
type rejection struct {
	name  string
	token func(t *testing.T) string
	why   string // a substring of the error text
}

func hdrTok(t *testing.T, hdr map[string]any, claims map[string]any, alg string, key any) string {
	return signRaw(t, mustJSON(t, hdr), mustJSON(t, claims), alg, key)
}

func withClaim(k string, v any) map[string]any {
	c := claimsAt(t0)
	if v == nil {
		delete(c, k)
	} else {
		c[k] = v
	}
	return c
}

func rejections(t *testing.T) []rejection {
	k := keys(t)
	rs := []rejection{}
	for _, none := range []string{"none", "None", "NONE", "nOnE"} {
		rs = append(rs, rejection{"alg " + none, func(t *testing.T) string {
			return b64s([]byte(`{"alg":"`+none+`","kid":"rsa1"}`)) + "." + b64s([]byte(mustJSON(t, claimsAt(t0)))) + "."
		}, "alg none"})
		rs = append(rs, rejection{"alg " + none + " with signature", func(t *testing.T) string {
			return b64s([]byte(`{"alg":"`+none+`"}`)) + "." + b64s([]byte(mustJSON(t, claimsAt(t0)))) + ".AAAA"
		}, "alg none"})
	}
	rs = append(rs,
		rejection{"stripped signature with dot", func(t *testing.T) string {
			h, p, _ := splitTok(tok(t, "rsa1", claimsAt(t0)))
			return h + "." + p + "."
		}, "no signature"},
		rejection{"stripped signature no dot", func(t *testing.T) string {
			h, p, _ := splitTok(tok(t, "rsa1", claimsAt(t0)))
			return h + "." + p
		}, "segments"},
		rejection{"altered payload", func(t *testing.T) string {
			h, _, s := splitTok(tok(t, "ec1", claimsAt(t0)))
			return h + "." + b64s([]byte(mustJSON(t, withClaim("sub", "admin")))) + "." + s
		}, "signature verification failed"},
		rejection{"altered signature rsa", func(t *testing.T) string {
			h, p, s := splitTok(tok(t, "rsa1", claimsAt(t0)))
			sig, _ := b64.DecodeString(s)
			sig[100] ^= 0x80
			return h + "." + p + "." + b64s(sig)
		}, "signature verification failed"},
		rejection{"altered signature ed25519", func(t *testing.T) string {
			h, p, s := splitTok(tok(t, "ed1", claimsAt(t0)))
			sig, _ := b64.DecodeString(s)
			sig[5] ^= 1
			return h + "." + p + "." + b64s(sig)
		}, "signature verification failed"},
		rejection{"signed by a key not in the JWKS", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256", "kid": "rsa1"}, claimsAt(t0), "RS256", k.rsa2)
		}, "signature verification failed"},
		rejection{"RS256 to HS256 with PEM public key", func(t *testing.T) string {
			der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			return hmacTok(t, `{"alg":"HS256","kid":"rsa1"}`, mustJSON(t, claimsAt(t0)), secret)
		}, "HS*"},
		rejection{"RS256 to HS256 with modulus", func(t *testing.T) string {
			return hmacTok(t, `{"alg":"HS256","kid":"rsa1"}`, mustJSON(t, claimsAt(t0)), k.rsa.N.Bytes())
		}, "HS*"},
		rejection{"hs512 lower case", func(t *testing.T) string {
			return hmacTok(t, `{"alg":"hs512","kid":"rsa1"}`, mustJSON(t, claimsAt(t0)), []byte("x"))
		}, "HS*"},
		rejection{"ECDSA zero signature", func(t *testing.T) string {
			h, p, _ := splitTok(tok(t, "ec1", claimsAt(t0)))
			return h + "." + p + "." + b64s(make([]byte, 64))
		}, "out of range"},
		rejection{"ECDSA r=s=N", func(t *testing.T) string {
			h, p, _ := splitTok(tok(t, "ec1", claimsAt(t0)))
			n := k.ec.Curve.Params().N.FillBytes(make([]byte, 32))
			return h + "." + p + "." + b64s(append(slices.Clone(n), n...))
		}, "out of range"},
		rejection{"ECDSA short signature", func(t *testing.T) string {
			h, p, _ := splitTok(tok(t, "ec1", claimsAt(t0)))
			return h + "." + p + "." + b64s(make([]byte, 8))
		}, "wrong length"},
		rejection{"unknown kid", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256", "kid": "rsa9"}, claimsAt(t0), "RS256", k.rsa)
		}, "unknown kid"},
		rejection{"no kid with several keys", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256"}, claimsAt(t0), "RS256", k.rsa)
		}, "no kid"},
		rejection{"kid not a string", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256", "kid": 7}, claimsAt(t0), "RS256", k.rsa)
		}, "kid is not a string"},
	)
	for _, kid := range []string{"../../../../dev/null", "rsa1/../rsa1", "rsa1' OR '1'='1", "rsa1; DROP TABLE keys--", "rsa1\x00", "$(id)", "rsa1\nx", "..", "", strings.Repeat("a", 129), "http://evil.test/k"} {
		rs = append(rs, rejection{"injected kid " + kid, func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256", "kid": kid}, claimsAt(t0), "RS256", k.rsa)
		}, "kid"})
	}
	pubJWK := rsaJWK(&k.rsa2.PublicKey, map[string]any{"kid": "rsa1"})
	rs = append(rs,
		rejection{"embedded jwk", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256", "kid": "rsa1", "jwk": pubJWK}, claimsAt(t0), "RS256", k.rsa2)
		}, "jwk"},
		rejection{"crit unsupported", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256", "kid": "rsa1", "crit": []string{"exp"}, "exp": 1}, claimsAt(t0), "RS256", k.rsa)
		}, "crit"},
		rejection{"b64 false", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256", "kid": "rsa1", "b64": false}, claimsAt(t0), "RS256", k.rsa)
		}, "b64"},
		rejection{"alg mismatch RS256 on PS256 key", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS256", "kid": "ps1"}, claimsAt(t0), "RS256", k.rsaPS)
		}, "pinned"},
		rejection{"alg mismatch PS256 on RS256 key", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "PS256", "kid": "rsa1"}, claimsAt(t0), "PS256", k.rsa)
		}, "pinned"},
		rejection{"alg mismatch ES384 on P-256 key", func(t *testing.T) string {
			h := b64s([]byte(`{"alg":"ES384","kid":"ec1"}`))
			return h + "." + b64s([]byte(mustJSON(t, claimsAt(t0)))) + "." + b64s(make([]byte, 96))
		}, "pinned"},
		rejection{"alg mismatch EdDSA on RSA key", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "EdDSA", "kid": "rsa1"}, claimsAt(t0), "EdDSA", k.ed)
		}, "pinned"},
		rejection{"unknown alg", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"alg": "RS1", "kid": "rsa1"}, claimsAt(t0), "RS256", k.rsa)
		}, "not supported"},
		rejection{"missing alg", func(t *testing.T) string {
			return hdrTok(t, map[string]any{"kid": "rsa1"}, claimsAt(t0), "RS256", k.rsa)
		}, "no alg"},
		rejection{"expired", func(t *testing.T) string {
			c := claimsAt(t0.Add(-3 * time.Hour))
			return tok(t, "ec1", c)
		}, "expired"},
		rejection{"expired just beyond leeway", func(t *testing.T) string {
			return tok(t, "ec1", withClaim("exp", t0.Add(-31*time.Second).Unix()))
		}, "expired"},
		rejection{"not yet valid", func(t *testing.T) string {
			return tok(t, "ec1", withClaim("nbf", t0.Add(2*time.Minute).Unix()))
		}, "nbf"},
		rejection{"iat in the future", func(t *testing.T) string {
			return tok(t, "ec1", withClaim("iat", t0.Add(2*time.Minute).Unix()))
		}, "iat"},
		rejection{"wrong aud", func(t *testing.T) string { return tok(t, "ec1", withClaim("aud", "other")) }, "aud"},
		rejection{"wrong aud array", func(t *testing.T) string { return tok(t, "ec1", withClaim("aud", []string{"a", "b"})) }, "aud"},
		rejection{"missing aud", func(t *testing.T) string { return tok(t, "ec1", withClaim("aud", nil)) }, "aud"},
		rejection{"wrong iss", func(t *testing.T) string { return tok(t, "ec1", withClaim("iss", "https://evil.test")) }, "iss"},
		rejection{"missing iss", func(t *testing.T) string { return tok(t, "ec1", withClaim("iss", nil)) }, "iss"},
		rejection{"missing exp", func(t *testing.T) string { return tok(t, "ec1", withClaim("exp", nil)) }, "exp"},
		rejection{"exp not a number", func(t *testing.T) string { return tok(t, "ec1", withClaim("exp", "tomorrow")) }, ""},
		rejection{"oversized", func(t *testing.T) string {
			return tok(t, "ec1", withClaim("pad", strings.Repeat("x", MaxTokenSize)))
		}, "larger than"},
		rejection{"empty", func(t *testing.T) string { return "" }, "empty"},
		rejection{"one segment", func(t *testing.T) string { return "abc" }, "segments"},
		rejection{"four segments", func(t *testing.T) string { return tok(t, "ec1", claimsAt(t0)) + ".AAAA" }, "segments"},
		rejection{"five segments (JWE)", func(t *testing.T) string { return "a.b.c.d.e" }, "segments"},
		rejection{"header not base64", func(t *testing.T) string {
			_, p, s := splitTok(tok(t, "ec1", claimsAt(t0)))
			return "e*J." + p + "." + s
		}, "base64"},
		rejection{"padded base64", func(t *testing.T) string {
			h, p, s := splitTok(tok(t, "ec1", claimsAt(t0)))
			return h + "=." + p + "." + s
		}, "base64"},
		rejection{"payload not base64", func(t *testing.T) string {
			h, _, s := splitTok(tok(t, "ec1", claimsAt(t0)))
			return h + ".!!!." + s
		}, "base64"},
		rejection{"signature not base64", func(t *testing.T) string {
			h, p, _ := splitTok(tok(t, "ec1", claimsAt(t0)))
			return h + "." + p + ".a+b/"
		}, "base64"},
		rejection{"header not JSON", func(t *testing.T) string {
			_, p, s := splitTok(tok(t, "ec1", claimsAt(t0)))
			return b64s([]byte(`{"alg":"ES256",`)) + "." + p + "." + s
		}, "header"},
		rejection{"header JSON array", func(t *testing.T) string {
			_, p, s := splitTok(tok(t, "ec1", claimsAt(t0)))
			return b64s([]byte(`["alg"]`)) + "." + p + "." + s
		}, "header"},
		rejection{"header trailing data", func(t *testing.T) string {
			return signRaw(t, `{"alg":"ES256","kid":"ec1"}{}`, mustJSON(t, claimsAt(t0)), "ES256", k.ec)
		}, "header"},
		rejection{"payload not JSON", func(t *testing.T) string {
			return signRaw(t, `{"alg":"ES256","kid":"ec1"}`, `not json`, "ES256", k.ec)
		}, "payload"},
		rejection{"duplicate alg in header", func(t *testing.T) string {
			return signRaw(t, `{"alg":"none","alg":"ES256","kid":"ec1"}`, mustJSON(t, claimsAt(t0)), "ES256", k.ec)
		}, "duplicate"},
		rejection{"duplicate kid in header", func(t *testing.T) string {
			return signRaw(t, `{"alg":"ES256","kid":"ec1","kid":"rsa1"}`, mustJSON(t, claimsAt(t0)), "ES256", k.ec)
		}, "duplicate"},
		rejection{"duplicate sub in payload", func(t *testing.T) string {
			p := strings.TrimSuffix(mustJSON(t, claimsAt(t0)), "}") + `,"sub":"admin"}`
			return signRaw(t, `{"alg":"ES256","kid":"ec1"}`, p, "ES256", k.ec)
		}, "duplicate"},
	)
	return rs
}

func hmacTok(t *testing.T, hdr, payload string, secret []byte) string {
	input := b64s([]byte(hdr)) + "." + b64s([]byte(payload))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64s(m.Sum(nil))
}

func TestVerifyRejects(t *testing.T) {
	for _, r := range rejections(t) {
		t.Run(r.name, func(t *testing.T) {
			v, _ := newFileVerifier(t, Options{})
			tk := r.token(t)
			c, err := v.Verify(context.Background(), tk)
			if err == nil {
				t.Fatalf("Verify(%s) = %+v, nil; want an error", r.name, c)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify(%s) = %v, want it to wrap ErrInvalidToken", r.name, err)
			}
			if !strings.Contains(err.Error(), r.why) {
				t.Errorf("Verify(%s) = %q, want it to mention %q", r.name, err, r.why)
			}
			if len(tk) > 20 && strings.Contains(err.Error(), tk[len(tk)-20:]) || len(tk) > 20 && strings.Contains(err.Error(), tk[:20]) {
				t.Errorf("Verify(%s) error %q contains part of the token", r.name, err)
			}
		})
	}
}

// TestURLHeadersNeverFetched: jku, x5u and x5c point at a server that
// counts requests; none may reach it.
func TestURLHeadersNeverFetched(t *testing.T) {
	k := keys(t)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(jwks(t, rsaJWK(&k.rsa2.PublicKey, map[string]any{"kid": "rsa1"})))
	}))
	defer srv.Close()
	cert := "MIIBszCCAVmgAwIBAgIUJ"
	tests := []struct {
		name string
		hdr  map[string]any
	}{
		{"jku", map[string]any{"alg": "RS256", "kid": "rsa1", "jku": srv.URL + "/jwks"}},
		{"x5u", map[string]any{"alg": "RS256", "kid": "rsa1", "x5u": srv.URL + "/cert.pem"}},
		{"x5c", map[string]any{"alg": "RS256", "kid": "rsa1", "x5c": []string{cert}}},
		{"jku without kid", map[string]any{"alg": "RS256", "jku": srv.URL + "/jwks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newFileVerifier(t, Options{HTTPClient: srv.Client()})
			_, err := v.Verify(context.Background(), hdrTok(t, tt.hdr, claimsAt(t0), "RS256", k.rsa2))
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "not accepted") {
				t.Errorf("Verify(%s header) = %v, want a rejection naming the header", tt.name, err)
			}
		})
	}
	// Also when the verifier's own keys come from a URL on the same server.
	v, err := New(Issuer{Issuer: testIss, Audience: testAud, JWKSURL: srv.URL + "/own"}, Options{HTTPClient: srv.Client(), Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), hdrTok(t, map[string]any{"alg": "RS256", "kid": "rsa1", "jku": srv.URL + "/evil"}, claimsAt(t0), "RS256", k.rsa2))
	if err == nil {
		t.Fatal("Verify(jku token) = nil, want an error")
	}
	if got := hits.Load(); got != 0 {
		t.Errorf("server got %d requests, want 0 (header checks come before any key fetch)", got)
	}
}

func TestLeeway(t *testing.T) {
	tests := []struct {
		name string
		c    map[string]any
		ok   bool
	}{
		{"exp within leeway", withClaim("exp", t0.Add(-20*time.Second).Unix()), true},
		{"nbf within leeway", withClaim("nbf", t0.Add(20*time.Second).Unix()), true},
		{"iat within leeway", withClaim("iat", t0.Add(20*time.Second).Unix()), true},
		{"iat beyond leeway", withClaim("iat", t0.Add(40*time.Second).Unix()), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newFileVerifier(t, Options{})
			_, err := v.Verify(context.Background(), tok(t, "ed1", tt.c))
			if (err == nil) != tt.ok {
				t.Errorf("Verify = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestKeySelection(t *testing.T) {
	k := keys(t)
	set := jwks(t,
		map[string]any{"kty": "oct", "k": b64s([]byte("hmac-secret-0123456789")), "kid": "oct1"},
		rsaJWK(&k.rsa.PublicKey, map[string]any{"kid": "enc1", "use": "enc"}),
		rsaJWK(&k.rsa.PublicKey, map[string]any{"kid": "oaep", "alg": "RSA-OAEP"}),
		rsaJWK(&k.rsa.PublicKey, map[string]any{"kid": "ops", "key_ops": []string{"encrypt"}}),
		rsaJWK(&k.rsa.PublicKey, map[string]any{"kid": "hs", "alg": "HS256"}),
		ecJWK(t, &k.ec.PublicKey, map[string]any{"kid": "ecrs", "alg": "RS256"}),
		rsaJWK(&k.rsa.PublicKey, map[string]any{"kid": "inj/../x"}),
		ecJWK(t, &k.ec.PublicKey, map[string]any{"kid": "ec1", "key_ops": []string{"verify"}}),
	)
	v, err := New(Issuer{Issuer: testIss, Audience: testAud, JWKS: set}, Options{Now: newClock().Now})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	ks := v.keys.Load()
	if ks.count != 1 || ks.only == nil || ks.only.kid != "ec1" || ks.only.alg != "ES256" {
		t.Fatalf("usable keys = %d (only %+v), want just ec1 pinned to ES256", ks.count, ks.only)
	}
	for _, kid := range []string{"oct1", "enc1", "oaep", "ops", "hs", "ecrs"} {
		t.Run(kid, func(t *testing.T) {
			_, err := v.Verify(context.Background(), hdrTok(t, map[string]any{"alg": "RS256", "kid": kid}, claimsAt(t0), "RS256", k.rsa))
			if err == nil || !strings.Contains(err.Error(), "unknown kid") {
				t.Errorf("Verify(kid %s) = %v, want unknown kid", kid, err)
			}
		})
	}
	// With a single usable key, a token without kid uses it.
	tk := signRaw(t, `{"alg":"ES256"}`, mustJSON(t, claimsAt(t0)), "ES256", k.ec)
	if _, err := v.Verify(context.Background(), tk); err != nil {
		t.Errorf("Verify(no kid, single key) = %v, want nil", err)
	}
}

func TestNewErrors(t *testing.T) {
	good := stdJWKS(t)
	tests := []struct {
		name string
		iss  Issuer
	}{
		{"no iss", Issuer{Audience: testAud, JWKS: good}},
		{"no aud", Issuer{Issuer: testIss, JWKS: good}},
		{"no keys", Issuer{Issuer: testIss, Audience: testAud}},
		{"both", Issuer{Issuer: testIss, Audience: testAud, JWKS: good, JWKSURL: "https://idp.test/jwks"}},
		{"http url", Issuer{Issuer: testIss, Audience: testAud, JWKSURL: "http://idp.test/jwks"}},
		{"file url", Issuer{Issuer: testIss, Audience: testAud, JWKSURL: "file:///etc/jwks"}},
		{"relative url", Issuer{Issuer: testIss, Audience: testAud, JWKSURL: "/jwks"}},
		{"url credentials", Issuer{Issuer: testIss, Audience: testAud, JWKSURL: "https://u:p@idp.test/jwks"}},
		{"bad jwks", Issuer{Issuer: testIss, Audience: testAud, JWKS: []byte(`{"keys":`)}},
		{"hmac only jwks", Issuer{Issuer: testIss, Audience: testAud, JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)}},
		{"negative leeway", Issuer{Issuer: testIss, Audience: testAud, JWKS: good, Leeway: -time.Second}},
		{"huge leeway", Issuer{Issuer: testIss, Audience: testAud, JWKS: good, Leeway: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, err := New(tt.iss, Options{}); err == nil {
				t.Errorf("New(%s) = %v, nil; want an error", tt.name, v)
			}
		})
	}
	if _, err := New(Issuer{Issuer: testIss, Audience: testAud, JWKSURL: "http://127.0.0.1:1/jwks"}, Options{}); err != nil {
		t.Errorf("New(http loopback URL) = %v, want nil", err)
	}
}
