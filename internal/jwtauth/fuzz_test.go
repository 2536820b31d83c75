package jwtauth

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// FuzzVerify feeds random bytes and mutations of valid tokens to Verify:
// it must never panic, and must accept nothing but the exact valid tokens,
// not even correctly signed ones that break a claim rule.
// The valid tokens are RS256 and EdDSA, whose signatures are not malleable;
// an ECDSA signature (r, s) has a twin (r, N-s) that is equally valid, so an
// ES256 token is not used as a "the only accepted string" oracle.
func FuzzVerify(f *testing.F) {
	v, _ := newFileVerifier(f, Options{})
	valid := map[string]bool{
		tok(f, "rsa1", claimsAt(t0)): true,
		tok(f, "ed1", claimsAt(t0)):  true,
	}
	for tk := range valid {
		f.Add(tk)
		h, p, s := splitTok(tk)
		f.Add(h + "." + p + ".")
		f.Add(h + "." + p)
		f.Add(strings.ToUpper(tk))
		f.Add(h + "." + p + "." + s + "=")
	}
	// Signed tokens that must still be refused: a time claim that is not a
	// JSON number (jwx alone reads a string of digits as a date), no sub.
	for _, k := range []string{"exp", "nbf", "iat"} {
		c := claimsAt(t0)
		c[k] = strconv.FormatInt(c[k].(int64), 10)
		f.Add(tok(f, "ed1", c))
	}
	noSub := claimsAt(t0)
	delete(noSub, "sub")
	f.Add(tok(f, "ed1", noSub))
	f.Add("")
	f.Add("a.b.c")
	f.Add(b64s([]byte(`{"alg":"none"}`)) + "." + b64s([]byte(`{"iss":"`+testIss+`"}`)) + ".")
	f.Fuzz(func(t *testing.T, s string) {
		_, err := v.Verify(context.Background(), s)
		if err == nil && !valid[s] {
			t.Fatalf("Verify accepted a token that is not one of the valid ones (len %d)", len(s))
		}
		if valid[s] && err != nil {
			t.Fatalf("Verify(valid token) = %v", err)
		}
	})
}
