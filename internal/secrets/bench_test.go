package secrets

import (
	"bytes"
	"context"
	"testing"
)

func BenchmarkSeal1KiB(b *testing.B) {
	ctx := context.Background()
	p := testProvider(b, 1, "local-1")
	pt := bytes.Repeat([]byte{'v'}, 1024)
	aad := AAD("ns", "db-password", "1")
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(ctx, p, pt, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1KiB(b *testing.B) {
	ctx := context.Background()
	p := testProvider(b, 1, "local-1")
	pt := bytes.Repeat([]byte{'v'}, 1024)
	aad := AAD("ns", "db-password", "1")
	s, err := Seal(ctx, p, pt, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(ctx, p, s, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalSealed(b *testing.B) {
	p := testProvider(b, 1, "local-1")
	s, err := Seal(context.Background(), p, bytes.Repeat([]byte{'v'}, 1024), nil)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := s.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalSealed(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenCached1KiB is a secret read with the data key already
// unwrapped (the host-call path once a key is cached).
func BenchmarkOpenCached1KiB(b *testing.B) {
	ctx := context.Background()
	p := testProvider(b, 1, "local-1")
	pt := bytes.Repeat([]byte{'v'}, 1024)
	aad := AAD("ns", "db-password", "1")
	s, err := Seal(ctx, p, pt, aad)
	if err != nil {
		b.Fatal(err)
	}
	k, err := UnwrapDataKey(ctx, p, s, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(s, aad); err != nil {
			b.Fatal(err)
		}
	}
}
