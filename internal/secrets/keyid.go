package secrets

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
)

// keyIDInfo is the HKDF info for [LocalKeyID]. It differs from kekInfo, so
// the id and the key-encryption key are independent outputs of the master
// key: knowing one says nothing about the other.
const keyIDInfo = "warden local key id v1"

// localKeyIDPrefix starts every id [LocalKeyID] returns.
const localKeyIDPrefix = "local-"

// localKeyIDBytes is how many derived bytes name a key (16 hex digits). 64
// bits keep accidental collisions between the handful of keys a server ever
// holds negligible; a collision is refused by [NewKeyring], never misread.
const localKeyIDBytes = 8

// LocalKeyID names a local master key: "local-" followed by 16 hex digits of
// an HKDF-SHA256 derivation of masterKey under its own info string. The same
// key always gives the same id, so an id stored in a [Sealed] value finds its
// key again after a restart, and a key file can be checked against its name.
//
// The id is not secret and reveals nothing usable about the key: it is
// neither the key nor a plain hash of it, and it is independent of the
// key-encryption key derived from the same master key. (With a guessable
// master key, the id would let a guess be checked offline, as any ciphertext
// would; master keys are 32 random bytes.) masterKey is not retained.
func LocalKeyID(masterKey []byte) string {
	sum, err := hkdf.Key(sha256.New, masterKey, nil, keyIDInfo, localKeyIDBytes)
	if err != nil {
		// hkdf.Key fails only for lengths over 255*32 bytes or a FIPS
		// key-length rule neither of which 8 bytes can break.
		panic("secrets: derive key id: " + err.Error())
	}
	return localKeyIDPrefix + hex.EncodeToString(sum)
}

// NewLocalProviderFromKey is [NewLocalProvider] with the id [LocalKeyID]
// derives from masterKey. Errors are those of NewLocalProvider; masterKey is
// not retained.
func NewLocalProviderFromKey(masterKey []byte) (*LocalProvider, error) {
	if len(masterKey) < MasterKeySize {
		return nil, ErrMasterKeyShort
	}
	return NewLocalProvider(masterKey, LocalKeyID(masterKey))
}

// validLocalKeyID reports whether id has the shape [LocalKeyID] gives. It
// guards every id that becomes part of a path in a key directory.
func validLocalKeyID(id string) bool {
	if len(id) != len(localKeyIDPrefix)+2*localKeyIDBytes || id[:len(localKeyIDPrefix)] != localKeyIDPrefix {
		return false
	}
	for _, c := range []byte(id[len(localKeyIDPrefix):]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
