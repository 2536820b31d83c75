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
	"strings"
	"time"

	"warden/internal/store"
)

// Role names. Issue-level roles beyond admin arrive with users.
const RoleAdmin = "admin"

// Admin token layout: "wdn_adm_" + 12 hex id + "_" + 43 base64url secret.
// The id lets a token be named in events and revoked without its secret.
const (
	adminPrefix = "wdn_adm_"
	idLen       = 12
	secretLen   = 43 // base64url, no padding, of 32 random bytes
	tokenLen    = len(adminPrefix) + idLen + 1 + secretLen
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
	return adminPrefix + id + "_" + secret, store.Credential{ID: id, Hash: h[:], Name: name, Role: role, CreatedAt: now.UTC()}, nil
}

// ParseAdminToken splits a token into id and secret without verifying it.
func ParseAdminToken(token string) (id, secret string, ok bool) {
	if len(token) != tokenLen || !strings.HasPrefix(token, adminPrefix) || token[len(adminPrefix)+idLen] != '_' {
		return "", "", false
	}
	id = token[len(adminPrefix) : len(adminPrefix)+idLen]
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", "", false
		}
	}
	return id, token[len(adminPrefix)+idLen+1:], true
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
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], c.Hash) != 1 || c.RevokedAt != nil {
		return p, id, ErrInvalidCredential
	}
	return Principal{ID: c.ID, Name: c.Name, Role: c.Role}, id, nil
}
