package secrets

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func testKeyring(t testing.TB, current KeyProvider, others ...KeyProvider) *Keyring {
	t.Helper()
	k, err := NewKeyring(current, others...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

// TestKeyringRotation walks one rotation: seal under the old key, rotate,
// read old and new values, re-wrap the old one, then read everything with
// the new key alone.
func TestKeyringRotation(t *testing.T) {
	ctx := context.Background()
	oldP := testProvider(t, 1, "old")
	newP := testProvider(t, 2, "new")
	aadOld, aadNew := AAD("ns", "a", "1"), AAD("ns", "b", "1")

	before := testKeyring(t, oldP)
	sOld, err := before.Seal(ctx, []byte(marker), aadOld)
	if err != nil {
		t.Fatal(err)
	}
	if sOld.KeyID != "old" {
		t.Fatalf("Seal KeyID = %q, want %q", sOld.KeyID, "old")
	}

	after := testKeyring(t, newP, oldP) // rotated: new current, old kept
	sNew, err := after.Seal(ctx, []byte("new value"), aadNew)
	if err != nil {
		t.Fatal(err)
	}
	if sNew.KeyID != "new" {
		t.Fatalf("Seal after rotation KeyID = %q, want %q", sNew.KeyID, "new")
	}
	for _, tc := range []struct {
		name string
		s    Sealed
		aad  []byte
		want string
	}{
		{"old-value", sOld, aadOld, marker},
		{"new-value", sNew, aadNew, "new value"},
	} {
		got, err := after.Open(ctx, tc.s, tc.aad)
		if err != nil || string(got) != tc.want {
			t.Errorf("Keyring.Open(%s) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}

	r, err := after.Rewrap(ctx, sOld, aadOld)
	if err != nil {
		t.Fatalf("Keyring.Rewrap(old value) = %v", err)
	}
	if r.KeyID != "new" {
		t.Errorf("Keyring.Rewrap(old value) KeyID = %q, want %q", r.KeyID, "new")
	}
	onlyNew := testKeyring(t, newP)
	for _, tc := range []struct {
		name string
		s    Sealed
		aad  []byte
		want string
	}{
		{"rewrapped", r, aadOld, marker},
		{"new-value", sNew, aadNew, "new value"},
	} {
		got, err := onlyNew.Open(ctx, tc.s, tc.aad)
		if err != nil || string(got) != tc.want {
			t.Errorf("Keyring{new}.Open(%s) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	// The old value itself is untouched and still needs the old key.
	if _, err := onlyNew.Open(ctx, sOld, aadOld); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Keyring{new}.Open(old value) = %v, want %v", err, ErrKeyMismatch)
	}

	// Data keys through the keyring, for either key.
	for _, tc := range []struct {
		name string
		s    Sealed
		aad  []byte
	}{{"old", sOld, aadOld}, {"new", sNew, aadNew}} {
		dk, err := after.UnwrapDataKey(ctx, tc.s, tc.aad)
		if err != nil {
			t.Fatalf("Keyring.UnwrapDataKey(%s) = %v", tc.name, err)
		}
		if _, err := dk.Open(tc.s, tc.aad); err != nil {
			t.Errorf("DataKey.Open(%s) = %v", tc.name, err)
		}
	}
}

func TestKeyringRewrapCurrentUnchanged(t *testing.T) {
	ctx := context.Background()
	k := testKeyring(t, testProvider(t, 2, "new"), testProvider(t, 1, "old"))
	s, err := k.Seal(ctx, []byte(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := k.Rewrap(ctx, s, nil)
	if err != nil {
		t.Fatalf("Keyring.Rewrap(current) = %v", err)
	}
	if r.KeyID != s.KeyID || &r.WrappedKey[0] != &s.WrappedKey[0] || &r.Ciphertext[0] != &s.Ciphertext[0] {
		t.Error("Keyring.Rewrap(value under the current key) changed it; want it returned unchanged")
	}
}

func TestKeyringErrors(t *testing.T) {
	ctx := context.Background()
	k := testKeyring(t, testProvider(t, 2, "new"), testProvider(t, 1, "old"))
	gone := testProvider(t, 3, "gone-key-7")
	s, err := Seal(ctx, gone, []byte(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	good, err := k.Seal(ctx, []byte(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	var collected errs
	for _, tc := range []struct {
		name    string
		s       Sealed
		aad     []byte
		want    error
		mention string
	}{
		{"unknown-key", s, nil, ErrKeyMismatch, `"gone-key-7"`},
		{"empty-key-id", Sealed{"", good.WrappedKey, good.Nonce, good.Ciphertext}, nil, ErrMalformed, ""},
		{"short-nonce", Sealed{"old", good.WrappedKey, good.Nonce[:4], good.Ciphertext}, nil, ErrMalformed, ""},
		{"wrong-aad", good, []byte("other"), ErrDecrypt, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.Open(ctx, tc.s, tc.aad)
			collected.add(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Keyring.Open(%s) = %v, want %v", tc.name, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Keyring.Open(%s) = %q, want it to name %s", tc.name, err, tc.mention)
			}
			_, err = k.UnwrapDataKey(ctx, tc.s, tc.aad)
			collected.add(err)
			if !errors.Is(err, tc.want) {
				t.Errorf("Keyring.UnwrapDataKey(%s) = %v, want %v", tc.name, err, tc.want)
			}
			if tc.s.KeyID == "new" {
				return // under the current key: Rewrap returns it as is
			}
			_, err = k.Rewrap(ctx, tc.s, tc.aad)
			collected.add(err)
			if !errors.Is(err, tc.want) {
				t.Errorf("Keyring.Rewrap(%s) = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	t.Run("no-plaintext-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })
}

// emptyID is a provider with an invalid id.
type emptyID struct{ *LocalProvider }

func (emptyID) KeyID() string { return "" }

func TestNewKeyring(t *testing.T) {
	a, b, c := testProvider(t, 1, "a"), testProvider(t, 2, "b"), testProvider(t, 3, "c")
	sameIDAsA := testProvider(t, 4, "a") // another key, same id
	for _, tc := range []struct {
		name    string
		current KeyProvider
		others  []KeyProvider
		wantIDs []string // nil: an error is wanted
	}{
		{"one", a, nil, []string{"a"}},
		{"order-kept", b, []KeyProvider{c, a}, []string{"b", "c", "a"}},
		{"nil-current", nil, []KeyProvider{a}, nil},
		{"nil-other", a, []KeyProvider{b, nil}, nil},
		{"duplicate-current", a, []KeyProvider{b, sameIDAsA}, nil},
		{"duplicate-others", a, []KeyProvider{b, c, b}, nil},
		{"empty-id", emptyID{a}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := NewKeyring(tc.current, tc.others...)
			if tc.wantIDs == nil {
				if err == nil {
					t.Fatalf("NewKeyring(%s) = %v, want an error", tc.name, k.IDs())
				}
				return
			}
			if err != nil {
				t.Fatalf("NewKeyring(%s) = %v", tc.name, err)
			}
			if got := k.IDs(); !slices.Equal(got, tc.wantIDs) {
				t.Errorf("NewKeyring(%s).IDs() = %q, want %q", tc.name, got, tc.wantIDs)
			}
			if k.Current() != tc.current {
				t.Errorf("NewKeyring(%s).Current() is not the current provider", tc.name)
			}
			for _, id := range tc.wantIDs {
				if p, ok := k.Provider(id); !ok || p.KeyID() != id {
					t.Errorf("Provider(%q) = %v, %v; want the provider", id, p, ok)
				}
			}
		})
	}
	if _, err := NewKeyring(a, b, a); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("NewKeyring(duplicate a) = %v, want an error naming \"a\"", err)
	}
	// IDs returns a copy: changing it changes nothing.
	k := testKeyring(t, a, b)
	ids := k.IDs()
	ids[0] = "x"
	if got := k.IDs(); got[0] != "a" {
		t.Errorf("IDs() after modifying a returned slice = %q, want [a b]", got)
	}
	if _, ok := k.Provider("c"); ok {
		t.Error(`Provider("c") found a key the keyring does not hold`)
	}
}

var localKeyIDPattern = regexp.MustCompile(`^local-[0-9a-f]{16}$`)

func TestLocalKeyID(t *testing.T) {
	keys := [][]byte{
		bytes.Repeat([]byte{0}, 32),
		bytes.Repeat([]byte{1}, 32),
		append(bytes.Repeat([]byte{1}, 31), 2), // differs in the last byte
		bytes.Repeat([]byte{1}, 33),            // a prefix of it is the previous key
		[]byte(marker + "12345678"),
	}
	seen := map[string]int{}
	for i, key := range keys {
		id := LocalKeyID(key)
		if !localKeyIDPattern.MatchString(id) {
			t.Errorf("LocalKeyID(key %d) = %q, want local- and 16 hex digits", i, id)
		}
		if again := LocalKeyID(bytes.Clone(key)); again != id {
			t.Errorf("LocalKeyID(key %d) = %q then %q, want stable", i, id, again)
		}
		if j, dup := seen[id]; dup {
			t.Errorf("LocalKeyID(key %d) = LocalKeyID(key %d) = %q, want distinct", i, j, id)
		}
		seen[id] = i
		hexID := strings.TrimPrefix(id, "local-")
		sum := sha256.Sum256(key)
		kek, err := hkdf.Key(sha256.New, key, nil, kekInfo, 32)
		if err != nil {
			t.Fatal(err)
		}
		for name, leak := range map[string]string{
			"hex(key)":         hex.EncodeToString(key),
			"hex(sha256(key))": hex.EncodeToString(sum[:]),
			"hex(kek)":         hex.EncodeToString(kek),
		} {
			if strings.Contains(leak, hexID) {
				t.Errorf("LocalKeyID(key %d) = %q is part of %s", i, id, name)
			}
		}
		if strings.Contains(id, base64.StdEncoding.EncodeToString(key)[:8]) {
			t.Errorf("LocalKeyID(key %d) = %q contains the key's base64", i, id)
		}
		if !validLocalKeyID(id) {
			t.Errorf("validLocalKeyID(LocalKeyID(key %d)) = false", i)
		}
	}
	// A known answer pins the derivation: changing it would orphan every
	// stored value.
	if got, want := LocalKeyID(make([]byte, 32)), "local-447992f1c143ac3d"; got != want {
		t.Errorf("LocalKeyID(zero key) = %q, want %q", got, want)
	}

	p, err := NewLocalProviderFromKey(keys[1])
	if err != nil || p.KeyID() != LocalKeyID(keys[1]) {
		t.Fatalf("NewLocalProviderFromKey = %v, %v; want id %q", p, err, LocalKeyID(keys[1]))
	}
	if _, err := NewLocalProviderFromKey(make([]byte, 31)); !errors.Is(err, ErrMasterKeyShort) {
		t.Errorf("NewLocalProviderFromKey(31 bytes) = %v, want %v", err, ErrMasterKeyShort)
	}
	for _, bad := range []string{"", "local-", "local-0123456789abcdeg", "local-0123456789ABCDEF", "local-0123456789abcdef0", "../../etc/passwd", "local-01234567/9abcdef", "LOCAL-0123456789abcdef"} {
		if validLocalKeyID(bad) {
			t.Errorf("validLocalKeyID(%q) = true, want false", bad)
		}
	}
}

func TestExternalKeyring(t *testing.T) {
	ctx := context.Background()
	k1, k2, k3 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 48)
	short := []byte(marker) // 24 bytes
	var collected errs
	for _, tc := range []struct {
		name     string
		current  []byte
		previous [][]byte
		wantIDs  []string
		wantErr  error // checked with errors.Is when not nil
	}{
		{"current-only", k1, nil, []string{LocalKeyID(k1)}, nil},
		{"with-previous", k2, [][]byte{k1, k3}, []string{LocalKeyID(k2), LocalKeyID(k1), LocalKeyID(k3)}, nil},
		{"short-current", short, nil, nil, ErrMasterKeyShort},
		{"short-previous", k1, [][]byte{k2, short}, nil, ErrMasterKeyShort},
		{"previous-is-current", k1, [][]byte{k1}, nil, nil},
		{"previous-twice", k1, [][]byte{k2, k2}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ExternalKeyring(tc.current, tc.previous...)
			collected.add(err)
			if tc.wantIDs == nil {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("ExternalKeyring(%s) = %v, want an error (%v)", tc.name, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ExternalKeyring(%s) = %v", tc.name, err)
			}
			if got := k.IDs(); !slices.Equal(got, tc.wantIDs) {
				t.Errorf("ExternalKeyring(%s).IDs() = %q, want %q", tc.name, got, tc.wantIDs)
			}
		})
	}
	t.Run("no-key-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })

	// A value sealed with the old key alone opens once that key is a
	// previous one: the id follows the key, not its position.
	old, err := ExternalKeyring(k1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := old.Seal(ctx, []byte(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := ExternalKeyring(k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(ctx, s, nil); err != nil || string(got) != marker {
		t.Errorf("ExternalKeyring(new, old).Open(old value) = %q, %v; want the value", got, err)
	}
}

// BenchmarkKeyringOpen1KiB is BenchmarkOpen1KiB through a keyring of three
// keys: the difference is the cost of finding the key by id.
func BenchmarkKeyringOpen1KiB(b *testing.B) {
	ctx := context.Background()
	k := testKeyring(b, testProvider(b, 1, "local-1"), testProvider(b, 2, "local-2"), testProvider(b, 3, "local-3"))
	pt := bytes.Repeat([]byte{'v'}, 1024)
	aad := AAD("ns", "db-password", "1")
	s, err := k.Seal(ctx, pt, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(ctx, s, aad); err != nil {
			b.Fatal(err)
		}
	}
}
