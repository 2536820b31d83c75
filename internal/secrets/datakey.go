package secrets

import (
	"bytes"
	"context"
	"crypto/cipher"
	"fmt"
)

// DataKey is an unwrapped data key held in memory, for callers that open the
// same sealed value many times (a secret read on every request) and want to
// skip the unwrap. It holds only the expanded AES key inside the cipher, never
// the raw key bytes, and is never stored or marshalled.
//
// A DataKey is immutable and safe for concurrent use. Whoever caches one owns
// its lifetime and must drop it when the value is rotated or destroyed.
type DataKey struct {
	wrapped []byte // the wrapped form it came from, to match Sealed values
	aead    cipher.AEAD
}

// UnwrapDataKey unwraps s's data key with p, checking aad as [Open] does.
// Errors are those of [Open].
func UnwrapDataKey(ctx context.Context, p KeyProvider, s Sealed, aad []byte) (*DataKey, error) {
	dek, err := unwrap(ctx, p, s, aad)
	if err != nil {
		return nil, err
	}
	defer clear(dek)
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	return &DataKey{wrapped: bytes.Clone(s.WrappedKey), aead: aead}, nil
}

// Open decrypts s, which must carry the wrapped key k was unwrapped from
// (else [ErrKeyMismatch]); a wrong aad or tampered bytes give [ErrDecrypt].
func (k *DataKey) Open(s Sealed, aad []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if !bytes.Equal(s.WrappedKey, k.wrapped) {
		return nil, fmt.Errorf("%w: value has another data key", ErrKeyMismatch)
	}
	pt, err := k.aead.Open(nil, s.Nonce, s.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("secrets: decrypt value: %w", ErrDecrypt)
	}
	return pt, nil
}
