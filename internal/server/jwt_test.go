package server_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warden/internal/events"
)

// signEdDSA makes a compact JWS with an Ed25519 key.
func signEdDSA(t *testing.T, priv ed25519.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(input)))
}

// TestJWTRoutes: a route with auth jwt:corp admits tokens signed by corp's
// key with the right iss, aud and scopes, and nothing else.
func TestJWTRoutes(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}})
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(jwksFile, jwks, 0o644)
	in.mustCLI("auth", "jwt", "add", "corp", "--issuer", "https://id.corp.test", "--audience", "warden", "--jwks-file", jwksFile)
	if out := in.mustCLI("auth", "jwt", "ls"); !strings.Contains(out, "corp") || !strings.Contains(out, "https://id.corp.test") {
		t.Fatalf("auth jwt ls = %q", out)
	}
	in.mustCLI("deploy", "-f", fixture(t, "attack", func(m string) string {
		return strings.Replace(m, "    auth: none\n", "    auth: jwt:corp\n    scopes: [attack:run]\n", 1)
	}))

	now := time.Now()
	hdr := map[string]any{"alg": "EdDSA", "kid": "k1", "typ": "JWT"}
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "https://id.corp.test", "aud": "warden", "sub": "alice", "scope": "attack:run other",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	call := func(token string) *http.Response {
		return in.public("GET", "/attack?t=env", nil, map[string]string{"Authorization": "Bearer " + token})
	}
	good := signEdDSA(t, priv, hdr, claims(nil))
	resp := call(good)
	body := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(body, "X_WARDEN_IDENTITY=jwt:corp:alice") {
		t.Fatalf("valid token: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, good[len(good)-30:]) {
		t.Fatal("the function saw the token")
	}
	bad := map[string]string{
		"wrong key":    signEdDSA(t, otherPriv, hdr, claims(nil)),
		"wrong aud":    signEdDSA(t, priv, hdr, claims(func(c map[string]any) { c["aud"] = "someone-else" })),
		"wrong iss":    signEdDSA(t, priv, hdr, claims(func(c map[string]any) { c["iss"] = "https://evil.test" })),
		"expired":      signEdDSA(t, priv, hdr, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"alg none":     strings.Join(strings.Split(signEdDSA(t, priv, map[string]any{"alg": "none", "kid": "k1"}, claims(nil)), ".")[:2], ".") + ".",
		"unknown kid":  signEdDSA(t, priv, map[string]any{"alg": "EdDSA", "kid": "k2"}, claims(nil)),
		"garbage":      "not.a.jwt",
		"an API key":   "wdn_key_000000000000_" + strings.Repeat("A", 43),
		"admin token":  in.token,
		"stripped sig": strings.Join(strings.Split(good, ".")[:2], ".") + ".",
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) { wantProblem(t, call(tok), http.StatusUnauthorized) })
	}
	noScope := signEdDSA(t, priv, hdr, claims(func(c map[string]any) { c["scope"] = "other" }))
	wantProblem(t, call(noScope), http.StatusForbidden)

	// Removing the issuer closes its routes.
	in.mustCLI("auth", "jwt", "rm", "corp")
	wantProblem(t, call(good), http.StatusUnauthorized)

	for _, e := range in.eventsOf("route.") {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), good[len(good)-30:]) {
			t.Fatal("an event holds a token")
		}
	}
	if n := occurrences(in.eventsOf(events.TypeRouteAuth)); n < len(bad)+2 {
		t.Fatalf("%d route.auth events, want at least %d", n, len(bad)+2)
	}
}
