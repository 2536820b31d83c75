// Package secrets owns the encryption of secret values and KV values at
// rest: envelope encryption and the key hierarchy (master key → key-encryption
// key → one data key per sealed value).
//
// Master-key rotation: a [Keyring] seals under its current key and opens
// values under any key it holds. The keys come either from the operator
// ([ExternalKeyring]: the current master key plus previous ones) or from a
// [KeyDir] the server manages itself (<data>/keys/, generated on first
// start), whose [KeyDir.Rotate] makes a new key current without ever losing
// a key a stored value may still need. After a rotation every stored value
// is moved to the current key with [Keyring.Rewrap] (which re-wraps only the
// data key), then the old key is retired.
//
// secrets never logs plaintext, never puts plaintext or key material in an
// error, returns plaintext only to the caller of [Open] or [Keyring.Open],
// never stores a data key unwrapped (a [Sealed] value holds only the wrapped
// data key), and never deletes or overwrites a master key file.
package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the data-encryption layer.
const (
	// DataKeySize is the size of the per-value data key (AES-256).
	DataKeySize = 32
	// NonceSize is the size of the AES-GCM nonce stored in [Sealed.Nonce].
	NonceSize = 12
	// tagSize is the AES-GCM authentication tag, the minimum ciphertext size.
	tagSize = 16
)

// Sentinel errors. They are matched with errors.Is; their text never contains
// plaintext, key material or the associated data.
var (
	// ErrDecrypt means authentication failed: the wrong key-encryption key,
	// the wrong associated data (for example a ciphertext copied to another
	// row) or tampered bytes. Which of these it was is deliberately not said.
	ErrDecrypt = errors.New("secrets: cannot decrypt: wrong key, wrong context or tampered data")
	// ErrKeyMismatch means a [Sealed] value names a key other than the
	// provider's [KeyProvider.KeyID].
	ErrKeyMismatch = errors.New("secrets: sealed under another key")
	// ErrMalformed means a [Sealed] value or its stored encoding is
	// structurally invalid (bad version, lengths or sizes).
	ErrMalformed = errors.New("secrets: malformed sealed value")
)

// KeyProvider holds a key-encryption key (KEK) and wraps data keys with it.
// The KEK itself never leaves the provider, so a KMS (for example a Vault
// transit engine) can implement it.
//
// Implementations must be safe for concurrent use. Wrap must bind aad so that
// Unwrap with different aad fails; Unwrap must return an error wrapping
// [ErrDecrypt] on any authentication failure and must not put the key or aad
// into an error.
//
// # Notes
//   - KeyID is stable for the provider's lifetime and identifies the KEK in
//     stored values; it is not secret and is at most 255 bytes.
//   - Wrap and Unwrap do not retain plaintextDataKey, wrapped or aad.
//   - The slice Unwrap returns belongs to the caller, who clears it after use.
type KeyProvider interface {
	KeyID() string
	Wrap(ctx context.Context, plaintextDataKey []byte, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped []byte, aad []byte) ([]byte, error)
}

// Sealed is one envelope-encrypted value: the ciphertext, the data key that
// encrypted it wrapped under the KEK named by KeyID, and the GCM nonce. None
// of its fields is secret.
type Sealed struct {
	KeyID      string
	WrappedKey []byte
	Nonce      []byte
	Ciphertext []byte
}

// Seal encrypts plaintext under a fresh random data key with AES-256-GCM and
// wraps that data key with p. aad is the caller's context (for a secret: its
// namespace, name and version, see [AAD]); it is bound into both the data
// encryption and the key wrapping, so the result opens only with the same aad.
//
// Seal is safe for concurrent use if p is. It does not retain plaintext or
// aad; the data key is cleared before Seal returns.
func Seal(ctx context.Context, p KeyProvider, plaintext, aad []byte) (Sealed, error) {
	var dek [DataKeySize]byte
	defer clear(dek[:])
	rand.Read(dek[:]) // never fails (crypto/rand, Go 1.24+)
	aead, err := newGCM(dek[:])
	if err != nil {
		return Sealed{}, err
	}
	nonce := make([]byte, NonceSize, NonceSize+len(plaintext)+tagSize)
	rand.Read(nonce)
	// One allocation holds nonce and ciphertext; the slices do not overlap.
	ct := aead.Seal(nonce[NonceSize:], nonce, plaintext, aad)
	wrapped, err := p.Wrap(ctx, dek[:], aad)
	if err != nil {
		return Sealed{}, fmt.Errorf("secrets: wrap data key with %q: %w", p.KeyID(), err)
	}
	return Sealed{KeyID: p.KeyID(), WrappedKey: wrapped, Nonce: nonce[:NonceSize:NonceSize], Ciphertext: ct}, nil
}

// Open unwraps s's data key with p and decrypts s with it, checking aad.
// It returns [ErrKeyMismatch] if s was sealed under another KeyID, an error
// wrapping [ErrDecrypt] if the key, aad or any byte of s is wrong, and
// [ErrMalformed] for impossible sizes. The returned plaintext belongs to the
// caller. Open is safe for concurrent use if p is.
func Open(ctx context.Context, p KeyProvider, s Sealed, aad []byte) ([]byte, error) {
	dek, err := unwrap(ctx, p, s, aad)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, s.Nonce, s.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("secrets: decrypt value: %w", ErrDecrypt)
	}
	return pt, nil
}

// Rewrap re-wraps s's data key from the KEK of from to the KEK of to without
// re-encrypting the value: the result has to's KeyID and a new WrappedKey, and
// shares Nonce and Ciphertext bytes with s. It is the step of master-key
// rotation. The same aad must be given as when s was sealed; Rewrap fails
// rather than produce a value that no longer opens.
//
// Rewrap authenticates the wrapped key and aad but not the ciphertext, which
// it never decrypts; [Open] does that.
func Rewrap(ctx context.Context, from, to KeyProvider, s Sealed, aad []byte) (Sealed, error) {
	dek, err := unwrap(ctx, from, s, aad)
	if err != nil {
		return Sealed{}, err
	}
	defer clear(dek)
	wrapped, err := to.Wrap(ctx, dek, aad)
	if err != nil {
		return Sealed{}, fmt.Errorf("secrets: wrap data key with %q: %w", to.KeyID(), err)
	}
	return Sealed{KeyID: to.KeyID(), WrappedKey: wrapped, Nonce: s.Nonce, Ciphertext: s.Ciphertext}, nil
}

// unwrap checks s's shape and key, then returns its data key.
func unwrap(ctx context.Context, p KeyProvider, s Sealed, aad []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.KeyID != p.KeyID() {
		return nil, fmt.Errorf("%w: value has key %q, provider has %q", ErrKeyMismatch, s.KeyID, p.KeyID())
	}
	dek, err := p.Unwrap(ctx, s.WrappedKey, aad)
	if err != nil {
		return nil, fmt.Errorf("secrets: unwrap data key with %q: %w", s.KeyID, err)
	}
	if len(dek) != DataKeySize {
		clear(dek)
		return nil, fmt.Errorf("secrets: unwrap data key with %q: %w", s.KeyID, ErrDecrypt)
	}
	return dek, nil
}

// check rejects sizes that cannot be valid, before any cipher sees them
// (cipher.AEAD.Open panics on a wrong nonce size).
func (s Sealed) check() error {
	switch {
	case s.KeyID == "" || len(s.KeyID) > maxKeyID:
		return fmt.Errorf("%w: key id length %d", ErrMalformed, len(s.KeyID))
	case len(s.WrappedKey) == 0 || len(s.WrappedKey) > maxWrapped:
		return fmt.Errorf("%w: wrapped key length %d", ErrMalformed, len(s.WrappedKey))
	case len(s.Nonce) != NonceSize:
		return fmt.Errorf("%w: nonce length %d", ErrMalformed, len(s.Nonce))
	case len(s.Ciphertext) < tagSize:
		return fmt.Errorf("%w: ciphertext length %d", ErrMalformed, len(s.Ciphertext))
	}
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: gcm: %w", err)
	}
	return aead, nil
}

// AAD encodes parts (for a secret: namespace, name, version) as associated
// data without ambiguity: each part is length-prefixed, so ("a/b", "c") and
// ("a", "b/c") give different bytes. The parts are not secret.
func AAD(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}
