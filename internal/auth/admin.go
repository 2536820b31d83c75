// Package auth owns warden's credentials and the decisions made with them:
// admin tokens today; API keys, token issuers, users, MFA and roles as they
// arrive. Secrets are generated here, shown once, and only their hashes are
// stored.
//
// auth never logs, stores or returns a credential's secret part, and every
// comparison of secret material is constant time.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"warden/internal/store"
)

// Role names. Issue-level roles beyond admin arrive with users.
const RoleAdmin = "admin"

// Token layout: a kind prefix ("wdn_adm_" admin, "wdn_key_" API key) + 12
// hex id + "_" + 43 base64url secret. The id lets a credential be named in
// events and revoked without its secret; the prefix keeps an API key from
// ever being accepted as an admin token and the other way round.
const (
	adminPrefix = "wdn_adm_"
	keyPrefix   = "wdn_key_"
	prefixLen   = 8
	idLen       = 12
	secretLen   = 43 // base64url, no padding, of 32 random bytes
	tokenLen    = prefixLen + idLen + 1 + secretLen
)

// ErrInvalidCredential is returned for any credential that does not verify:
// malformed, unknown, revoked or wrong. Callers must not tell them apart in
// what they answer.
var ErrInvalidCredential = errors.New("invalid credential")

// Principal is the verified identity behind an admin request.
type Principal struct {
	ID   string // credential id, safe to log
	Name string
	Role string
}

// NewAdminToken returns a token and the credential record to store for it.
// The token is shown once; only Credential.Hash is kept.
func NewAdminToken(name, role string, now time.Time) (token string, c store.Credential, err error) {
	token, c, err = newToken(adminPrefix, now)
	c.Kind, c.Name, c.Role = store.KindAdmin, name, role
	return token, c, err
}

func newToken(prefix string, now time.Time) (token string, c store.Credential, err error) {
	var idb [idLen / 2]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", c, err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", c, err
	}
	id := hex.EncodeToString(idb[:])
	secret := base64.RawURLEncoding.EncodeToString(sec[:])
	h := sha256.Sum256([]byte(secret))
	return prefix + id + "_" + secret, store.Credential{ID: id, Hash: h[:], CreatedAt: now.UTC()}, nil
}

// ParseAdminToken splits an admin token into id and secret without verifying it.
func ParseAdminToken(token string) (id, secret string, ok bool) {
	return parseToken(token, adminPrefix)
}

func parseToken(token, prefix string) (id, secret string, ok bool) {
	if len(token) != tokenLen || token[:prefixLen] != prefix || token[prefixLen+idLen] != '_' {
		return "", "", false
	}
	id = token[prefixLen : prefixLen+idLen]
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", "", false
		}
	}
	return id, token[prefixLen+idLen+1:], true
}

// matches reports, in constant time, whether secret hashes to c.Hash.
func matches(c store.Credential, secret string) bool {
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(h[:], c.Hash) == 1
}

// Admin verifies admin tokens against the store.
type Admin struct {
	Store store.Credentials
}

// Verify returns the principal for a valid, unrevoked token, or
// ErrInvalidCredential. The id in the returned error's context (idHint) is
// safe to log; the secret never leaves this function.
func (a *Admin) Verify(ctx context.Context, token string) (p Principal, idHint string, err error) {
	id, secret, ok := ParseAdminToken(token)
	if !ok {
		return p, "", ErrInvalidCredential
	}
	c, err := a.Store.Credential(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, id, ErrInvalidCredential
	} else if err != nil {
		// Fail closed: the store could not answer.
		return p, id, fmt.Errorf("look up credential: %w", err)
	}
	if !matches(c, secret) || c.RevokedAt != nil || c.Kind != store.KindAdmin {
		return p, id, ErrInvalidCredential
	}
	return Principal{ID: c.ID, Name: c.Name, Role: c.Role}, id, nil
}
