package secrets

import (
	"encoding/binary"
	"fmt"
)

// Stored encoding of a [Sealed] value (all lengths checked on decode):
//
//	version   1 byte  (formatV1)
//	idLen     1 byte  (1..255)     then KeyID
//	wrapLen   2 bytes big-endian (1..65535) then WrappedKey
//	nonce     12 bytes
//	ciphertext the rest (at least the 16-byte tag)
const (
	formatV1   = 1
	maxKeyID   = 255
	maxWrapped = 1<<16 - 1
)

// Marshal encodes s for storage. It fails with [ErrMalformed] if s could not
// be opened (bad sizes). The result does not alias s.
func (s Sealed) Marshal() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+1+len(s.KeyID)+2+len(s.WrappedKey)+NonceSize+len(s.Ciphertext))
	b = append(b, formatV1, byte(len(s.KeyID)))
	b = append(b, s.KeyID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.WrappedKey)))
	b = append(b, s.WrappedKey...)
	b = append(b, s.Nonce...)
	b = append(b, s.Ciphertext...)
	return b, nil
}

// UnmarshalSealed decodes what [Sealed.Marshal] produced. b is untrusted: any
// unknown version, short or inconsistent input gives an error wrapping
// [ErrMalformed]. The result does not alias b.
func UnmarshalSealed(b []byte) (Sealed, error) {
	if len(b) < 2 {
		return Sealed{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] != formatV1 {
		return Sealed{}, fmt.Errorf("%w: unknown version %d", ErrMalformed, b[0])
	}
	b = b[1:]
	idLen := int(b[0])
	b = b[1:]
	if idLen == 0 || len(b) < idLen+2 {
		return Sealed{}, fmt.Errorf("%w: truncated key id", ErrMalformed)
	}
	id := string(b[:idLen])
	b = b[idLen:]
	wrapLen := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if wrapLen == 0 || len(b) < wrapLen+NonceSize+tagSize {
		return Sealed{}, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	// One copy backs all three byte fields.
	rest := append([]byte(nil), b...)
	return Sealed{
		KeyID:      id,
		WrappedKey: rest[:wrapLen:wrapLen],
		Nonce:      rest[wrapLen : wrapLen+NonceSize : wrapLen+NonceSize],
		Ciphertext: rest[wrapLen+NonceSize:],
	}, nil
}
