package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MasterKeySize is the minimum (and generated) master key size in bytes.
const MasterKeySize = 32

// kekInfo is the HKDF info for the key-encryption key. A new derivation gets
// a new version so old and new KEKs can never coincide.
const kekInfo = "warden kek v1"

// localWrapVersion is the first byte of a key wrapped by [LocalProvider].
const localWrapVersion = 1

// ErrMasterKeyShort means a master key is shorter than [MasterKeySize].
var ErrMasterKeyShort = errors.New("secrets: master key shorter than 32 bytes")

var _ KeyProvider = (*LocalProvider)(nil)

// LocalProvider is a [KeyProvider] whose key-encryption key is derived from a
// local master key with HKDF-SHA256. It wraps data keys with AES-256-GCM under
// a random nonce, binding its KeyID and the caller's aad.
//
// A LocalProvider is immutable and safe for concurrent use.
//
// # Notes
//   - It keeps only the derived KEK (inside the AES cipher), never the
//     master key.
//   - Wrapped format: version byte (1) | 12-byte nonce | GCM ciphertext+tag.
//   - Random nonces limit one KEK to 2^32 wraps; rotate the master key long
//     before that.
type LocalProvider struct {
	id   string
	aead cipher.AEAD // AES-256-GCM with random nonces, keyed by the KEK
}

// NewLocalProvider derives a KEK from masterKey and returns a provider named
// id. masterKey must be at least [MasterKeySize] bytes (else
// [ErrMasterKeyShort]); id must be 1 to 255 bytes. masterKey is not retained;
// the caller may clear it once NewLocalProvider returns.
func NewLocalProvider(masterKey []byte, id string) (*LocalProvider, error) {
	if len(masterKey) < MasterKeySize {
		return nil, ErrMasterKeyShort
	}
	if id == "" || len(id) > maxKeyID {
		return nil, fmt.Errorf("secrets: key id must be 1 to %d bytes, got %d", maxKeyID, len(id))
	}
	kek, err := hkdf.Key(sha256.New, masterKey, nil, kekInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("secrets: derive kek: %w", err)
	}
	defer clear(kek)
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("secrets: aes: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: gcm: %w", err)
	}
	return &LocalProvider{id: id, aead: aead}, nil
}

// KeyID returns the provider's id.
func (p *LocalProvider) KeyID() string { return p.id }

// Wrap encrypts plaintextDataKey under the KEK, binding aad and the KeyID.
func (p *LocalProvider) Wrap(ctx context.Context, plaintextDataKey, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]byte, 1, 1+len(plaintextDataKey)+p.aead.Overhead())
	out[0] = localWrapVersion
	return p.aead.Seal(out, nil, plaintextDataKey, p.wrapAAD(aad)), nil
}

// Unwrap reverses Wrap. Any wrong byte, aad or KEK gives an error wrapping
// [ErrDecrypt].
func (p *LocalProvider) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(wrapped) < 1+p.aead.Overhead() || wrapped[0] != localWrapVersion {
		return nil, fmt.Errorf("%w: wrapped key has bad version or length", ErrDecrypt)
	}
	dek, err := p.aead.Open(nil, nil, wrapped[1:], p.wrapAAD(aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return dek, nil
}

// wrapAAD separates the wrapping domain from the data domain and binds the
// provider's id: "warden kek v1" | id | aad, each length-prefixed.
func (p *LocalProvider) wrapAAD(aad []byte) []byte {
	return AAD(kekInfo, p.id, string(aad))
}
