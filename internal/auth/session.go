package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"warden/internal/store"
)

// sessionPrefix marks a login session token: wdn_ses_<id>_<secret>, the same
// layout as admin tokens and API keys, so none is ever taken for another.
const sessionPrefix = "wdn_ses_"

// DefaultSessionTTL is how long a login session lasts unless configured.
const DefaultSessionTTL = 8 * time.Hour

// IsSessionToken reports whether token has the shape of a session token
// (without verifying it).
func IsSessionToken(token string) bool {
	_, _, ok := parseToken(token, sessionPrefix)
	return ok
}

// LooksLikeSession reports whether token starts like a session token; the
// admin guard uses it to pick the verifier, which then checks the rest.
func LooksLikeSession(token string) bool { return strings.HasPrefix(token, sessionPrefix) }

// NewSession returns a session token for u and the credential to store for
// it: kind session, Name the user, Role the user's role, expiring after ttl.
// The token is shown once; only its hash is stored.
func NewSession(u store.User, ttl time.Duration, now time.Time) (token string, c store.Credential, err error) {
	token, c, err = newToken(sessionPrefix, now)
	exp := now.Add(ttl).UTC()
	c.Kind, c.Name, c.Role, c.ExpiresAt = store.KindSession, u.Name, u.Role, &exp
	return token, c, err
}

// VerifySession returns the principal behind a valid session token, or an
// error wrapping ErrInvalidCredential. A session is valid while it is
// unrevoked, unexpired, and its user still exists with the same role and
// was created before the session (a user deleted and created again does not
// inherit old sessions). idHint is the token's id, safe to log; any other
// error means the check could not run and the caller must refuse.
func (u *Users) VerifySession(ctx context.Context, token string) (p Principal, idHint string, err error) {
	id, secret, ok := parseToken(token, sessionPrefix)
	if !ok {
		return p, "", fmt.Errorf("%w: not a session token", ErrInvalidCredential)
	}
	c, err := u.Store.Credential(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, id, fmt.Errorf("%w: unknown session", ErrInvalidCredential)
	} else if err != nil {
		return p, id, fmt.Errorf("look up session: %w", err)
	}
	now := u.now()
	switch {
	case c.Kind != store.KindSession || !matches(c, secret):
		return p, id, fmt.Errorf("%w: wrong session token", ErrInvalidCredential)
	case c.RevokedAt != nil:
		return p, id, fmt.Errorf("%w: session revoked", ErrInvalidCredential)
	case c.ExpiresAt == nil || !now.Before(*c.ExpiresAt):
		return p, id, fmt.Errorf("%w: session expired", ErrInvalidCredential)
	}
	usr, err := u.Store.User(ctx, c.Name)
	if errors.Is(err, store.ErrNotFound) {
		return p, id, fmt.Errorf("%w: user no longer exists", ErrInvalidCredential)
	} else if err != nil {
		return p, id, fmt.Errorf("look up session user: %w", err)
	}
	if usr.Role != c.Role || usr.CreatedAt.After(c.CreatedAt) {
		return p, id, fmt.Errorf("%w: user changed since login", ErrInvalidCredential)
	}
	return Principal{ID: c.ID, Name: c.Name, Role: c.Role}, id, nil
}

// RevokeSessions revokes every unrevoked session of user and returns how
// many it revoked.
func (u *Users) RevokeSessions(ctx context.Context, user string) (int, error) {
	creds, err := u.Store.ListCredentials(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range creds {
		if c.Kind == store.KindSession && c.Name == user && c.RevokedAt == nil {
			if err := u.Store.RevokeCredential(ctx, c.ID, u.now()); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
