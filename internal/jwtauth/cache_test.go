package jwtauth

import (
	"context"
	"testing"
	"time"
)

func TestCacheSkipsSignatureCheck(t *testing.T) {
	for _, kid := range []string{"ec1", "rsa1"} {
		t.Run(kid, func(t *testing.T) {
			v, _ := newFileVerifier(t, Options{})
			tk := tok(t, kid, claimsAt(t0))
			for i := 0; i < 5; i++ {
				if _, err := v.Verify(context.Background(), tk); err != nil {
					t.Fatalf("Verify #%d = %v", i, err)
				}
			}
			if got := v.sigChecks.Load(); got != 1 {
				t.Errorf("signature checks = %d, want 1", got)
			}
			// Same header and claims, bad signature: a cache miss that fails.
			h, p, s := splitTok(tk)
			sig, _ := b64.DecodeString(s)
			sig[len(sig)/2] ^= 1
			if _, err := v.Verify(context.Background(), h+"."+p+"."+b64s(sig)); err == nil {
				t.Fatal("Verify(same claims, bad signature) = nil, want an error")
			}
			if got := v.sigChecks.Load(); got != 2 {
				t.Errorf("signature checks = %d, want 2 (the forged token was checked)", got)
			}
		})
	}
}

func TestCacheRespectsExpiry(t *testing.T) {
	v, clk := newFileVerifier(t, Options{})
	c := claimsAt(t0)
	c["exp"] = t0.Add(time.Minute).Unix()
	tk := tok(t, "ed1", c)
	if _, err := v.Verify(context.Background(), tk); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	clk.Advance(time.Minute + 20*time.Second) // within leeway: still fine, from cache
	if _, err := v.Verify(context.Background(), tk); err != nil {
		t.Fatalf("Verify within leeway = %v", err)
	}
	if got := v.sigChecks.Load(); got != 1 {
		t.Errorf("signature checks = %d, want 1", got)
	}
	clk.Advance(11 * time.Second) // exp + 31s
	if _, err := v.Verify(context.Background(), tk); err == nil {
		t.Fatal("Verify(cached, expired) = nil, want an error")
	}
	if got := v.cache.len(); got != 0 {
		t.Errorf("cache len = %d, want 0 after the expired entry was seen", got)
	}
}

func TestCacheEviction(t *testing.T) {
	v, _ := newFileVerifier(t, Options{CacheSize: 2})
	var toks []string
	for i := 0; i < 3; i++ {
		c := claimsAt(t0)
		c["jti"] = string(rune('a' + i))
		toks = append(toks, tok(t, "ed1", c))
	}
	for _, tk := range toks {
		if _, err := v.Verify(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.cache.len(); got != 2 {
		t.Fatalf("cache len = %d, want 2", got)
	}
	before := v.sigChecks.Load()
	v.Verify(context.Background(), toks[2]) // most recent: cached
	if got := v.sigChecks.Load(); got != before {
		t.Errorf("toks[2]: signature checks %d -> %d, want a cache hit", before, got)
	}
	v.Verify(context.Background(), toks[0]) // evicted: checked again
	if got := v.sigChecks.Load(); got != before+1 {
		t.Errorf("toks[0]: signature checks %d -> %d, want one more", before, got)
	}
}

func TestCacheDisabled(t *testing.T) {
	v, _ := newFileVerifier(t, Options{CacheSize: -1})
	tk := tok(t, "ec1", claimsAt(t0))
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.sigChecks.Load(); got != 3 {
		t.Errorf("signature checks = %d, want 3 with the cache off", got)
	}
}

func TestCachedClaimsAreCopies(t *testing.T) {
	v, _ := newFileVerifier(t, Options{})
	tk := tok(t, "ec1", claimsAt(t0))
	c1, err := v.Verify(context.Background(), tk)
	if err != nil {
		t.Fatal(err)
	}
	c1.Scopes[0] = "admin"
	c1.Audience[0] = "x"
	c2, _ := v.Verify(context.Background(), tk)
	if c2.Scopes[0] != "orders:read" || c2.Audience[0] != testAud {
		t.Errorf("cached claims changed through a returned slice: %+v", c2)
	}
}

func TestCacheGenerationDropsStalePut(t *testing.T) {
	c := newTokenCache(4)
	gen := c.generation()
	c.clear()
	c.put([32]byte{1}, Claims{Subject: "s"}, gen)
	if _, ok := c.get([32]byte{1}); ok {
		t.Error("put from before a clear was stored, want it dropped")
	}
}
