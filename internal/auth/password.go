package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id cost parameters for new password hashes.
// Verification always uses the parameters recorded in the hash itself.
type PasswordParams struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultPasswordParams: 64 MiB, one pass, two lanes (RFC 9106's second
// recommended option scaled to a small server), 16-byte salt, 32-byte key.
var DefaultPasswordParams = PasswordParams{Memory: 64 << 10, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}

// Bounds on the parameters a stored hash may ask for, so a corrupted or
// hostile row cannot make a verification allocate without limit.
const (
	maxHashMemory  = 1 << 20 // KiB: 1 GiB
	maxHashTime    = 16
	maxHashThreads = 16
	maxPasswordLen = 1024 // bytes accepted for hashing
)

// ErrBadHash: a stored password hash is not an argon2id PHC string warden can verify.
var ErrBadHash = errors.New("malformed password hash")

// HashPassword returns the argon2id PHC string of password with a fresh
// random salt: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>
// (unpadded standard base64). The password is never part of an error.
func HashPassword(password string, p PasswordParams) (string, error) {
	if p.Memory == 0 || p.Time == 0 || p.Threads == 0 || p.SaltLen < 8 || p.KeyLen < 16 ||
		p.Memory > maxHashMemory || p.Time > maxHashTime || p.Threads > maxHashThreads {
		return "", errors.New("invalid argon2id parameters")
	}
	if len(password) > maxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", maxPasswordLen)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a parsed argon2id hash.
type phc struct {
	p         PasswordParams
	salt, key []byte
}

// parsePHC parses an argon2id PHC string, refusing anything else (other
// algorithms or versions, parameters out of bounds, padding).
func parsePHC(s string) (phc, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, ErrBadHash
	}
	var h phc
	seen := 0
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || n == 0 || (len(v) > 1 && v[0] == '0') {
			return phc{}, ErrBadHash
		}
		switch {
		case k == "m" && seen == 0 && n <= maxHashMemory:
			h.p.Memory = uint32(n)
		case k == "t" && seen == 1 && n <= maxHashTime:
			h.p.Time = uint32(n)
		case k == "p" && seen == 2 && n <= maxHashThreads:
			h.p.Threads = uint8(n)
		default:
			return phc{}, ErrBadHash
		}
		seen++
	}
	if seen != 3 {
		return phc{}, ErrBadHash
	}
	var err error
	b64 := base64.RawStdEncoding.Strict()
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return phc{}, ErrBadHash
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 128 {
		return phc{}, ErrBadHash
	}
	if h.p.Memory < 8*uint32(h.p.Threads) { // argon2's own minimum
		return phc{}, ErrBadHash
	}
	h.p.SaltLen, h.p.KeyLen = uint32(len(h.salt)), uint32(len(h.key))
	return h, nil
}

// VerifyPassword reports whether password matches the PHC string hash,
// comparing in constant time. It returns ErrBadHash (and false) when hash
// cannot be parsed. A password longer than the hashing limit never matches,
// but costs the same as one that does not.
func VerifyPassword(password, hash string) (bool, error) {
	h, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	tooLong := len(password) > maxPasswordLen
	if tooLong {
		password = password[:maxPasswordLen]
	}
	key := argon2.IDKey([]byte(password), h.salt, h.p.Time, h.p.Memory, h.p.Threads, h.p.KeyLen)
	return subtle.ConstantTimeCompare(key, h.key) == 1 && !tooLong, nil
}
