package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"warden/internal/store"
)

// Identity is a verified caller of a function route. It never holds the
// credential itself.
type Identity struct {
	Method string // "apikey", "jwt" or "mtls"
	// ID names the caller uniquely within Method and is safe to log; it
	// keys per-credential rate limits. For apikey the key id; for jwt
	// "<issuer name>:<sub>" ([JWTIdentityID]), since a sub is unique only
	// within its issuer.
	ID      string
	Subject string   // the key's name; for jwt the token's sub as given
	Scopes  []string // what the key may do
}

// HasScopes reports whether every scope in want is held.
func (id Identity) HasScopes(want []string) (missing string, ok bool) {
	for _, w := range want {
		if !slices.Contains(id.Scopes, w) {
			return w, false
		}
	}
	return "", true
}

// NewAPIKey returns a key and the credential to store for it. The key is
// shown once. expires zero means the key does not expire.
func NewAPIKey(name string, scopes []string, expires time.Duration, now time.Time) (key string, c store.Credential, err error) {
	key, c, err = newToken(keyPrefix, now)
	c.Kind, c.Name, c.Scopes = store.KindAPIKey, name, slices.Clone(scopes)
	if expires > 0 {
		at := now.Add(expires).UTC()
		c.ExpiresAt = &at
	}
	return key, c, err
}

// KeyID returns the id part of something shaped like an API key, for
// events about a refused key; "" when it is not shaped like one.
func KeyID(token string) string {
	id, _, _ := parseToken(token, keyPrefix)
	return id
}

// APIKeys verifies API keys. Verified credentials are cached briefly so that
// a request does not cost a store read; Forget drops a revoked key at once on
// this node, and CacheTTL bounds how long any other change takes to be seen.
// Safe for concurrent use.
type APIKeys struct {
	Store    store.Credentials
	Now      func() time.Time // default time.Now
	CacheTTL time.Duration    // default 2s
	// TouchEvery bounds how often last-used is written per key (default 1m).
	TouchEvery time.Duration

	mu    sync.Mutex
	cache map[string]cachedKey
}

type cachedKey struct {
	c       store.Credential
	fetched time.Time
	touched time.Time
}

func (k *APIKeys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Verify returns the identity behind a valid, unexpired, unrevoked API key,
// or an error wrapping ErrInvalidCredential with a reason safe to log. Any
// other error means the check could not run: the caller must refuse.
func (k *APIKeys) Verify(ctx context.Context, token string) (Identity, error) {
	id, secret, ok := parseToken(token, keyPrefix)
	if !ok {
		return Identity{}, fmt.Errorf("%w: not an API key", ErrInvalidCredential)
	}
	now := k.now()
	ttl := k.CacheTTL
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	k.mu.Lock()
	ck, hit := k.cache[id]
	k.mu.Unlock()
	if !hit || now.Sub(ck.fetched) > ttl {
		c, err := k.Store.Credential(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return Identity{}, fmt.Errorf("%w: unknown key", ErrInvalidCredential)
		} else if err != nil {
			return Identity{}, fmt.Errorf("look up API key: %w", err)
		}
		ck = cachedKey{c: c, fetched: now, touched: ck.touched}
		k.mu.Lock()
		if k.cache == nil {
			k.cache = map[string]cachedKey{}
		}
		if len(k.cache) > 100_000 { // bound memory: start over
			clear(k.cache)
		}
		k.cache[id] = ck
		k.mu.Unlock()
	}
	c := ck.c
	switch {
	case c.Kind != store.KindAPIKey || !matches(c, secret):
		return Identity{}, fmt.Errorf("%w: wrong key", ErrInvalidCredential)
	case c.RevokedAt != nil:
		return Identity{}, fmt.Errorf("%w: key revoked", ErrInvalidCredential)
	case c.ExpiresAt != nil && !now.Before(*c.ExpiresAt):
		return Identity{}, fmt.Errorf("%w: key expired", ErrInvalidCredential)
	}
	k.touch(id, now)
	return Identity{Method: "apikey", ID: c.ID, Subject: c.Name, Scopes: c.Scopes}, nil
}

// touch records last use at most once per TouchEvery per key, off the
// request path.
func (k *APIKeys) touch(id string, now time.Time) {
	every := k.TouchEvery
	if every <= 0 {
		every = time.Minute
	}
	k.mu.Lock()
	ck, ok := k.cache[id]
	due := ok && now.Sub(ck.touched) >= every
	if due {
		ck.touched = now
		k.cache[id] = ck
	}
	k.mu.Unlock()
	if due {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = k.Store.TouchCredential(ctx, id, now) // best effort: last-used is advisory
		}()
	}
}

// Forget drops a key from the cache (after it was revoked or deleted), so
// the next request reads it from the store.
func (k *APIKeys) Forget(id string) {
	k.mu.Lock()
	delete(k.cache, id)
	k.mu.Unlock()
}
