package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warden/internal/jwtauth"
	"warden/internal/store"
	"warden/internal/store/sqlite"
)

// testIssuer is a trusted issuer of the tests: its name, iss value and
// signing key.
type testIssuer struct {
	name, iss string
	key       ed25519.PrivateKey
}

func newTestIssuer(t *testing.T, name string) testIssuer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testIssuer{name: name, iss: "https://" + name + ".test", key: key}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (ti testIssuer) store() store.Issuer {
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64url(ti.key.Public().(ed25519.PublicKey)),
	}}})
	return store.Issuer{Name: ti.name, Issuer: ti.iss, Audience: "warden", JWKS: jwks}
}

// token signs claims (iss, aud, exp added) with ti's key.
func (ti testIssuer) token(t *testing.T, now time.Time, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": ti.iss, "aud": "warden", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	for k, v := range claims {
		c[k] = v
	}
	hdr, _ := json.Marshal(map[string]any{"alg": "EdDSA", "kid": "k1", "typ": "JWT"})
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	input := b64url(hdr) + "." + b64url(payload)
	return input + "." + b64url(ed25519.Sign(ti.key, []byte(input)))
}

func newIssuers(t *testing.T, now time.Time, list ...testIssuer) *Issuers {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	is := &Issuers{Store: db, Options: jwtauth.Options{Now: func() time.Time { return now }}}
	for _, ti := range list {
		if err := is.Add(context.Background(), ti.store()); err != nil {
			t.Fatalf("Add(%s) = %v", ti.name, err)
		}
	}
	return is
}

// TestJWTIdentityPerIssuer: the users "alice" of two trusted issuers are two
// callers. Their identities (whose ID keys the per-credential rate limit)
// must differ, or one issuer's user spends the other's budget.
func TestJWTIdentityPerIssuer(t *testing.T) {
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	corp, partner := newTestIssuer(t, "corp"), newTestIssuer(t, "partner")
	is := newIssuers(t, now, corp, partner)
	ctx := context.Background()

	a, err := is.VerifyJWT(ctx, "corp", corp.token(t, now, map[string]any{"sub": "alice"}))
	if err != nil {
		t.Fatalf("VerifyJWT(corp, alice) = %v", err)
	}
	b, err := is.VerifyJWT(ctx, "partner", partner.token(t, now, map[string]any{"sub": "alice"}))
	if err != nil {
		t.Fatalf("VerifyJWT(partner, alice) = %v", err)
	}
	if a.Method+":"+a.ID == b.Method+":"+b.ID {
		t.Fatalf("corp's alice and partner's alice have the same identity %s:%s: they would share a rate-limit bucket", a.Method, a.ID)
	}
	if a.ID != "corp:alice" || b.ID != "partner:alice" {
		t.Errorf("IDs = %q, %q; want %q, %q", a.ID, b.ID, "corp:alice", "partner:alice")
	}
	if a.Subject != "alice" || b.Subject != "alice" || a.Method != "jwt" {
		t.Errorf("identities %+v, %+v: want method jwt and the plain sub as Subject", a, b)
	}
	// A sub that looks like another issuer's ID does not collide either.
	c, err := is.VerifyJWT(ctx, "corp", corp.token(t, now, map[string]any{"sub": "partner:alice"}))
	if err != nil {
		t.Fatalf("VerifyJWT(corp, partner:alice) = %v", err)
	}
	if c.ID == b.ID {
		t.Errorf("corp's sub %q has the ID of partner's alice (%q)", c.Subject, c.ID)
	}
	// A token of one issuer is not accepted on the other's routes.
	if _, err := is.VerifyJWT(ctx, "partner", corp.token(t, now, map[string]any{"sub": "alice"})); !errors.Is(err, ErrInvalidCredential) {
		t.Errorf("VerifyJWT(partner, corp's token) = %v, want ErrInvalidCredential", err)
	}
}

// TestJWTWithoutSubject: a correctly signed token that names no subject is
// refused as an invalid credential.
func TestJWTWithoutSubject(t *testing.T) {
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	corp := newTestIssuer(t, "corp")
	is := newIssuers(t, now, corp)
	for name, claims := range map[string]map[string]any{
		"absent": {"scope": "orders:read"},
		"empty":  {"sub": "", "scope": "orders:read"},
	} {
		t.Run(name, func(t *testing.T) {
			id, err := is.VerifyJWT(context.Background(), "corp", corp.token(t, now, claims))
			if !errors.Is(err, ErrInvalidCredential) {
				t.Fatalf("VerifyJWT(sub %s) = %+v, %v; want ErrInvalidCredential", name, id, err)
			}
			if !strings.Contains(err.Error(), "sub") {
				t.Errorf("VerifyJWT(sub %s) = %q, want the reason to name sub", name, err)
			}
		})
	}
}

// TestIssuerNameWithColon: the name is the first part of every JWT
// identity, so it may not hold the separator.
func TestIssuerNameWithColon(t *testing.T) {
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	is := newIssuers(t, now)
	bad := newTestIssuer(t, "corp")
	s := bad.store()
	s.Name = "corp:x"
	var inv *InvalidIssuerError
	if err := is.Add(context.Background(), s); !errors.As(err, &inv) {
		t.Errorf("Add(name %q) = %v, want an InvalidIssuerError", s.Name, err)
	}
}
