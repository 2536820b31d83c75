package secrets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestUnmarshalSealedRejects(t *testing.T) {
	ctx := context.Background()
	p := testProvider(t, 1, "local-1")
	s, err := Seal(ctx, p, []byte(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	good, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var collected errs
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"one-byte", []byte{formatV1}},
		{"version-0", append([]byte{0}, good[1:]...)},
		{"version-2", append([]byte{2}, good[1:]...)},
		{"zero-id", []byte{formatV1, 0, 0, 1, 0}},
		{"id-past-end", []byte{formatV1, 200, 'a'}},
		{"zero-wrapped", append([]byte{formatV1, 1, 'k', 0, 0}, make([]byte, 40)...)},
		{"truncated-tag", good[:len(good)-len(s.Ciphertext)+tagSize-1]},
		{"marker-garbage", append([]byte{formatV1, 5}, marker...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalSealed(tc.b)
			collected.add(err)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("UnmarshalSealed(%x) = %v, want %v", tc.b, err, ErrMalformed)
			}
		})
	}
	t.Run("no-plaintext-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })

	// The decoded value does not alias the input.
	b := bytes.Clone(good)
	d, err := UnmarshalSealed(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if got, err := Open(ctx, p, d, nil); err != nil || string(got) != marker {
		t.Fatalf("Open after clearing the input buffer = %d bytes, %v; the result aliases the input", len(got), err)
	}
	// Marshal refuses what could never open.
	for _, bad := range []Sealed{
		{KeyID: strings.Repeat("k", 256), WrappedKey: s.WrappedKey, Nonce: s.Nonce, Ciphertext: s.Ciphertext},
		{KeyID: "k", WrappedKey: make([]byte, 1<<16), Nonce: s.Nonce, Ciphertext: s.Ciphertext},
		{KeyID: "k", WrappedKey: s.WrappedKey, Nonce: s.Nonce[:4], Ciphertext: s.Ciphertext},
	} {
		if _, err := bad.Marshal(); !errors.Is(err, ErrMalformed) {
			t.Errorf("Marshal(id %d, wrapped %d, nonce %d) = %v, want %v", len(bad.KeyID), len(bad.WrappedKey), len(bad.Nonce), err, ErrMalformed)
		}
	}
}

func FuzzUnmarshalSealed(f *testing.F) {
	p, err := NewLocalProvider(bytes.Repeat([]byte{1}, MasterKeySize), "local-1")
	if err != nil {
		f.Fatal(err)
	}
	for _, pt := range []string{"", "x", marker} {
		s, err := Seal(context.Background(), p, []byte(pt), AAD("ns", "n", "1"))
		if err != nil {
			f.Fatal(err)
		}
		b, err := s.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{formatV1, 1, 'k', 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalSealed(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("UnmarshalSealed error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same bytes and is safe to Open.
		again, err := s.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a decoded value: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("Marshal(UnmarshalSealed(%x)) = %x", b, again)
		}
		if _, err := Open(context.Background(), p, s, AAD("ns", "n", "1")); err != nil &&
			!errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("Open of a decoded value = %v, want nil, ErrDecrypt or ErrKeyMismatch", err)
		}
	})
}
