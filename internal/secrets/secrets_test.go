package secrets

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// marker is a recognisable plaintext; no error text may ever contain it.
const marker = "MARKER-s3cr3t-value-7f3a"

func testProvider(t testing.TB, seed byte, id string) *LocalProvider {
	t.Helper()
	mk := bytes.Repeat([]byte{seed}, MasterKeySize)
	p, err := NewLocalProvider(mk, id)
	if err != nil {
		t.Fatalf("NewLocalProvider: %v", err)
	}
	return p
}

// errs collects every error a test produces, to check none leaks the marker.
type errs struct {
	mu   sync.Mutex
	list []error
}

func (e *errs) add(err error) error {
	if err != nil {
		e.mu.Lock()
		e.list = append(e.list, err)
		e.mu.Unlock()
	}
	return err
}

func (e *errs) checkNoMarker(t *testing.T) {
	t.Helper()
	if len(e.list) == 0 {
		t.Fatal("no errors collected; the leak check checked nothing")
	}
	for _, err := range e.list {
		for _, s := range []string{err.Error(), strings.ToLower(err.Error())} {
			if strings.Contains(s, marker) || strings.Contains(s, strings.ToLower(marker)) {
				t.Errorf("error text contains the plaintext marker: %q", s)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	p := testProvider(t, 1, "local-1")
	for _, tc := range []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", []byte{}, AAD("ns", "db-password", "1")},
		{"marker", []byte(marker), AAD("ns", "db-password", "1")},
		{"no-aad", []byte(marker), nil},
		{"large", bytes.Repeat([]byte("x"), 1<<20), AAD("kv", "bucket", "key")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Seal(ctx, p, tc.plaintext, tc.aad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if s.KeyID != "local-1" {
				t.Errorf("Seal KeyID = %q, want %q", s.KeyID, "local-1")
			}
			if len(tc.plaintext) > 0 && bytes.Contains(s.Ciphertext, tc.plaintext) {
				t.Error("ciphertext contains the plaintext")
			}
			b, err := s.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if len(tc.plaintext) > 0 && bytes.Contains(b, tc.plaintext) {
				t.Error("stored encoding contains the plaintext")
			}
			s2, err := UnmarshalSealed(b)
			if err != nil {
				t.Fatalf("UnmarshalSealed: %v", err)
			}
			got, err := Open(ctx, p, s2, tc.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Errorf("Open = %d bytes, want the %d sealed bytes", len(got), len(tc.plaintext))
			}
		})
	}
}

// TestFailures covers every way a sealed value must refuse to open.
func TestFailures(t *testing.T) {
	ctx := context.Background()
	p := testProvider(t, 1, "local-1")
	aad := AAD("ns", "db-password", "1")
	s, err := Seal(ctx, p, []byte(marker), aad)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Seal(ctx, p, []byte("another value"), AAD("ns", "api-token", "1"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i%len(c)] ^= 0x01
		return c
	}
	var collected errs
	valueOnly := map[string]bool{"tampered-ciphertext-first": true, "tampered-ciphertext-tag": true, "truncated-ciphertext": true, "tampered-nonce": true}
	for _, tc := range []struct {
		name string
		p    KeyProvider
		s    Sealed
		aad  []byte
		want error
	}{
		{"wrong-version-aad", p, s, AAD("ns", "db-password", "2"), ErrDecrypt},
		{"wrong-name-aad", p, s, AAD("ns", "api-token", "1"), ErrDecrypt},
		{"ambiguous-aad", p, s, AAD("ns", "db-password1"), ErrDecrypt},
		{"nil-aad", p, s, nil, ErrDecrypt},
		// A row's ciphertext pasted into another row, keeping that row's key.
		{"swapped-ciphertext", p, Sealed{KeyID: s.KeyID, WrappedKey: other.WrappedKey, Nonce: s.Nonce, Ciphertext: s.Ciphertext}, aad, ErrDecrypt},
		// A whole row (wrapped key too) copied to another row's place.
		{"swapped-row", p, other, aad, ErrDecrypt},
		{"tampered-ciphertext-first", p, Sealed{s.KeyID, s.WrappedKey, s.Nonce, flip(s.Ciphertext, 0)}, aad, ErrDecrypt},
		{"tampered-ciphertext-tag", p, Sealed{s.KeyID, s.WrappedKey, s.Nonce, flip(s.Ciphertext, len(s.Ciphertext)-1)}, aad, ErrDecrypt},
		{"truncated-ciphertext", p, Sealed{s.KeyID, s.WrappedKey, s.Nonce, s.Ciphertext[:len(s.Ciphertext)-1]}, aad, ErrDecrypt},
		{"tampered-nonce", p, Sealed{s.KeyID, s.WrappedKey, flip(s.Nonce, 3), s.Ciphertext}, aad, ErrDecrypt},
		{"tampered-wrapped-version", p, Sealed{s.KeyID, flip(s.WrappedKey, 0), s.Nonce, s.Ciphertext}, aad, ErrDecrypt},
		{"tampered-wrapped-nonce", p, Sealed{s.KeyID, flip(s.WrappedKey, 1), s.Nonce, s.Ciphertext}, aad, ErrDecrypt},
		{"tampered-wrapped-body", p, Sealed{s.KeyID, flip(s.WrappedKey, 20), s.Nonce, s.Ciphertext}, aad, ErrDecrypt},
		{"truncated-wrapped", p, Sealed{s.KeyID, s.WrappedKey[:10], s.Nonce, s.Ciphertext}, aad, ErrDecrypt},
		{"wrong-master-key", testProvider(t, 2, "local-1"), s, aad, ErrDecrypt},
		// Same master key, different id: the id is bound into the wrapping.
		{"wrong-id-same-master", testProvider(t, 1, "local-2"), Sealed{"local-2", s.WrappedKey, s.Nonce, s.Ciphertext}, aad, ErrDecrypt},
		{"key-id-mismatch", testProvider(t, 1, "local-2"), s, aad, ErrKeyMismatch},
		{"short-nonce", p, Sealed{s.KeyID, s.WrappedKey, s.Nonce[:8], s.Ciphertext}, aad, ErrMalformed},
		{"short-ciphertext", p, Sealed{s.KeyID, s.WrappedKey, s.Nonce, s.Ciphertext[:tagSize-1]}, aad, ErrMalformed},
		{"empty-wrapped", p, Sealed{s.KeyID, nil, s.Nonce, s.Ciphertext}, aad, ErrMalformed},
		{"empty-key-id", p, Sealed{"", s.WrappedKey, s.Nonce, s.Ciphertext}, aad, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Open(ctx, tc.p, tc.s, tc.aad)
			collected.add(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open(%s) = %v, want %v", tc.name, err, tc.want)
			}
			if got != nil {
				t.Errorf("Open(%s) returned %d bytes with an error", tc.name, len(got))
			}
			// Rewrap never decrypts the value, so it notices damage to the
			// wrapped key, key id, aad and sizes but not to the ciphertext.
			_, err = Rewrap(ctx, tc.p, testProvider(t, 9, "new"), tc.s, tc.aad)
			collected.add(err)
			if rewrapNotices := !valueOnly[tc.name]; rewrapNotices && !errors.Is(err, tc.want) {
				t.Errorf("Rewrap(%s) = %v, want %v", tc.name, err, tc.want)
			} else if !rewrapNotices && err != nil {
				t.Errorf("Rewrap(%s) = %v, want nil (the data key and aad are intact)", tc.name, err)
			}
		})
	}
	// The original still opens: the table did not mutate it.
	if _, err := Open(ctx, p, s, aad); err != nil {
		t.Fatalf("Open(original) = %v", err)
	}
	t.Run("no-plaintext-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	oldP := testProvider(t, 1, "old")
	newP := testProvider(t, 2, "new")
	aad := AAD("ns", "db-password", "3")
	s, err := Seal(ctx, oldP, []byte(marker), aad)
	if err != nil {
		t.Fatal(err)
	}
	origCT, origNonce := bytes.Clone(s.Ciphertext), bytes.Clone(s.Nonce)

	r, err := Rewrap(ctx, oldP, newP, s, aad)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if r.KeyID != "new" {
		t.Errorf("Rewrap KeyID = %q, want %q", r.KeyID, "new")
	}
	if !bytes.Equal(r.Ciphertext, origCT) || !bytes.Equal(r.Nonce, origNonce) {
		t.Error("Rewrap changed the ciphertext or nonce; it must only re-wrap the data key")
	}
	if bytes.Equal(r.WrappedKey, s.WrappedKey) {
		t.Error("Rewrap kept the old wrapped key")
	}
	got, err := Open(ctx, newP, r, aad)
	if err != nil || string(got) != marker {
		t.Fatalf("Open(new provider, rewrapped) = %d bytes, %v; want the sealed value", len(got), err)
	}
	// Only the new provider opens it, even if the KeyID is forged back.
	if _, err := Open(ctx, oldP, r, aad); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Open(old provider, rewrapped) = %v, want %v", err, ErrKeyMismatch)
	}
	forged := r
	forged.KeyID = "old"
	if _, err := Open(ctx, oldP, forged, aad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open(old provider, rewrapped with forged id) = %v, want %v", err, ErrDecrypt)
	}
	// The old value is untouched and still opens with the old provider, so a
	// crash between writing rows leaves every row readable by one of them.
	if got, err := Open(ctx, oldP, s, aad); err != nil || string(got) != marker {
		t.Errorf("Open(old provider, original) = %d bytes, %v; want the sealed value", len(got), err)
	}
	// Rewrap with the wrong aad fails instead of producing a dead value.
	if _, err := Rewrap(ctx, oldP, newP, s, AAD("ns", "db-password", "4")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rewrap(wrong aad) = %v, want %v", err, ErrDecrypt)
	}
	// Rewrapping into the rewrapped provider's successor works too (a second rotation).
	newer := testProvider(t, 3, "newer")
	r2, err := Rewrap(ctx, newP, newer, r, aad)
	if err != nil {
		t.Fatalf("second Rewrap: %v", err)
	}
	if got, err := Open(ctx, newer, r2, aad); err != nil || string(got) != marker {
		t.Errorf("Open after second Rewrap = %d bytes, %v", len(got), err)
	}
}

// recorder wraps with a LocalProvider and remembers each plaintext data key.
type recorder struct {
	*LocalProvider
	mu   sync.Mutex
	keys [][]byte
}

func (r *recorder) Wrap(ctx context.Context, dek, aad []byte) ([]byte, error) {
	r.mu.Lock()
	r.keys = append(r.keys, bytes.Clone(dek))
	r.mu.Unlock()
	return r.LocalProvider.Wrap(ctx, dek, aad)
}

func TestUniqueness(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{LocalProvider: testProvider(t, 1, "local-1")}
	const n = 2000
	aad := AAD("ns", "same", "1")
	nonces := make(map[string]bool, n)
	wrapped := make(map[string]bool, n)
	cts := make(map[string]bool, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range n / 8 {
				s, err := Seal(ctx, rec, []byte(marker), aad)
				if err != nil {
					t.Errorf("Seal (worker %d): %v", i, err)
					return
				}
				mu.Lock()
				nonces[string(s.Nonce)] = true
				wrapped[string(s.WrappedKey)] = true
				cts[string(s.Ciphertext)] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	keys := make(map[string]bool, n)
	for _, k := range rec.keys {
		if len(k) != DataKeySize {
			t.Fatalf("data key length = %d, want %d", len(k), DataKeySize)
		}
		keys[string(k)] = true
	}
	for name, got := range map[string]int{"nonces": len(nonces), "wrapped keys": len(wrapped), "ciphertexts": len(cts), "data keys": len(keys)} {
		if got != n {
			t.Errorf("distinct %s over %d seals of the same value = %d, want %d", name, n, got, n)
		}
	}
}

func TestSealedAliasing(t *testing.T) {
	ctx := context.Background()
	p := testProvider(t, 1, "local-1")
	s, err := Seal(ctx, p, []byte(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Nonce and Ciphertext share one allocation; appending to the nonce must
	// not overwrite the ciphertext.
	_ = append(s.Nonce, 0xff)
	if _, err := Open(ctx, p, s, nil); err != nil {
		t.Fatalf("Open after appending to Nonce = %v; the slices overlap", err)
	}
}

func TestNewLocalProvider(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		id   string
		ok   bool
	}{
		{"ok", make([]byte, 32), "k1", true},
		{"long-key", make([]byte, 64), "k1", true},
		{"short-key", make([]byte, 31), "k1", false},
		{"nil-key", nil, "k1", false},
		{"empty-id", make([]byte, 32), "", false},
		{"long-id", make([]byte, 32), strings.Repeat("a", 256), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLocalProvider(tc.key, tc.id)
			if (err == nil) != tc.ok {
				t.Fatalf("NewLocalProvider(%d bytes, %d-byte id) = %v, want ok=%v", len(tc.key), len(tc.id), err, tc.ok)
			}
		})
	}
	if _, err := NewLocalProvider(make([]byte, 31), "k"); !errors.Is(err, ErrMasterKeyShort) {
		t.Errorf("NewLocalProvider(31 bytes) = %v, want %v", err, ErrMasterKeyShort)
	}
	// The KEK depends on the master key: two keys cannot unwrap each other's.
	ctx := context.Background()
	a, b := testProvider(t, 1, "k"), testProvider(t, 2, "k")
	w, err := a.Wrap(ctx, make([]byte, 32), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unwrap(ctx, w, []byte("aad")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Unwrap under another master key = %v, want %v", err, ErrDecrypt)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.Wrap(cancelled, make([]byte, 32), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Wrap(cancelled ctx) = %v, want %v", err, context.Canceled)
	}
	if _, err := Seal(cancelled, a, []byte("x"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Seal(cancelled ctx) = %v, want %v", err, context.Canceled)
	}
}

func TestAAD(t *testing.T) {
	for _, tc := range []struct{ a, b []string }{
		{[]string{"a/b", "c"}, []string{"a", "b/c"}},
		{[]string{"ab", ""}, []string{"a", "b"}},
		{[]string{"ns", "name", "1"}, []string{"ns", "name", "10"}},
		{[]string{""}, nil},
	} {
		if bytes.Equal(AAD(tc.a...), AAD(tc.b...)) {
			t.Errorf("AAD(%q) = AAD(%q) = %x, want different", tc.a, tc.b, AAD(tc.a...))
		}
	}
	if !bytes.Equal(AAD("ns", "n", "1"), AAD("ns", "n", "1")) {
		t.Error("AAD is not deterministic")
	}
}
