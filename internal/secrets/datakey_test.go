package secrets

import (
	"context"
	"errors"
	"testing"
)

func TestDataKey(t *testing.T) {
	ctx := context.Background()
	p := testProvider(t, 1, "local-1")
	aad := AAD("ns", "db-password", "1")
	s, err := Seal(ctx, p, []byte(marker), aad)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Seal(ctx, p, []byte("other"), aad)
	if err != nil {
		t.Fatal(err)
	}
	k, err := UnwrapDataKey(ctx, p, s, aad)
	if err != nil {
		t.Fatalf("UnwrapDataKey: %v", err)
	}
	for range 3 {
		got, err := k.Open(s, aad)
		if err != nil || string(got) != marker {
			t.Fatalf("DataKey.Open = %d bytes, %v; want the sealed value", len(got), err)
		}
	}
	var collected errs
	tampered := s
	tampered.Ciphertext = append([]byte(nil), s.Ciphertext...)
	tampered.Ciphertext[0] ^= 1
	for _, tc := range []struct {
		name string
		s    Sealed
		aad  []byte
		want error
	}{
		{"wrong-aad", s, AAD("ns", "db-password", "2"), ErrDecrypt},
		{"other-value", other, aad, ErrKeyMismatch},
		{"tampered", tampered, aad, ErrDecrypt},
		{"short-nonce", Sealed{s.KeyID, s.WrappedKey, s.Nonce[:1], s.Ciphertext}, aad, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.Open(tc.s, tc.aad)
			collected.add(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("DataKey.Open(%s) = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if _, err := UnwrapDataKey(ctx, p, s, AAD("x")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("UnwrapDataKey(wrong aad) = %v, want %v", err, ErrDecrypt)
	}
	t.Run("no-plaintext-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })
}
