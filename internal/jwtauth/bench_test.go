package jwtauth

import (
	"context"
	"testing"
)

func benchVerify(b *testing.B, kid string, cache int) {
	v, _ := newFileVerifier(b, Options{CacheSize: cache})
	tk := tok(b, kid, claimsAt(t0))
	ctx := context.Background()
	if _, err := v.Verify(ctx, tk); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, tk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	b.Run("ES256", func(b *testing.B) { benchVerify(b, "ec1", 0) })
	b.Run("RS256", func(b *testing.B) { benchVerify(b, "rsa1", 0) })
}

func BenchmarkVerifyUncached(b *testing.B) {
	b.Run("ES256", func(b *testing.B) { benchVerify(b, "ec1", -1) })
	b.Run("RS256", func(b *testing.B) { benchVerify(b, "rsa1", -1) })
}
