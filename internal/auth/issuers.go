package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/jwtauth"
	"warden/internal/store"
)

// Issuers holds a verifier for every trusted JWT issuer, rebuilt from the
// store when issuers are added or removed. Lookups are lock-free. Safe for
// concurrent use.
type Issuers struct {
	Store   store.Issuers
	Options jwtauth.Options // shared by every verifier (HTTP client, clock)

	mu  sync.Mutex // serializes changes
	cur atomic.Pointer[map[string]*jwtauth.Verifier]
}

// Load builds the verifiers of every stored issuer. A stored issuer that no
// longer builds is left out (its routes refuse every token) and reported.
func (is *Issuers) Load(ctx context.Context) error {
	is.mu.Lock()
	defer is.mu.Unlock()
	list, err := is.Store.ListIssuers(ctx)
	if err != nil {
		return fmt.Errorf("list issuers: %w", err)
	}
	m := make(map[string]*jwtauth.Verifier, len(list))
	var errs []error
	for _, iss := range list {
		v, err := jwtauth.New(toJWT(iss), is.Options)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m[iss.Name] = v
	}
	is.cur.Store(&m)
	return errors.Join(errs...)
}

func toJWT(iss store.Issuer) jwtauth.Issuer {
	return jwtauth.Issuer{Name: iss.Name, Issuer: iss.Issuer, Audience: iss.Audience, JWKSURL: iss.JWKSURL, JWKS: iss.JWKS}
}

// Add validates iss (a verifier must build from it), stores it and makes it
// usable at once. The returned error is safe to show the operator.
func (is *Issuers) Add(ctx context.Context, iss store.Issuer) error {
	if iss.Name == "" || strings.Contains(iss.Name, ":") {
		// The name is the first part of every JWTIdentityID.
		return &InvalidIssuerError{Msg: "issuer name must be non-empty and hold no ':'"}
	}
	v, err := jwtauth.New(toJWT(iss), is.Options)
	if err != nil {
		return &InvalidIssuerError{Msg: err.Error()}
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if iss.CreatedAt.IsZero() {
		iss.CreatedAt = time.Now()
	}
	if err := is.Store.CreateIssuer(ctx, iss); err != nil {
		return err
	}
	m := is.snapshot()
	m[iss.Name] = v
	is.cur.Store(&m)
	return nil
}

// Remove deletes an issuer; its routes refuse every token from then on.
func (is *Issuers) Remove(ctx context.Context, name string) error {
	is.mu.Lock()
	defer is.mu.Unlock()
	if err := is.Store.DeleteIssuer(ctx, name); err != nil {
		return err
	}
	m := is.snapshot()
	delete(m, name)
	is.cur.Store(&m)
	return nil
}

func (is *Issuers) snapshot() map[string]*jwtauth.Verifier {
	m := map[string]*jwtauth.Verifier{}
	if p := is.cur.Load(); p != nil {
		for k, v := range *p {
			m[k] = v
		}
	}
	return m
}

// InvalidIssuerError is an issuer definition that cannot be used.
type InvalidIssuerError struct{ Msg string }

func (e *InvalidIssuerError) Error() string { return e.Msg }

// VerifyJWT verifies token against the named issuer. Errors wrap
// ErrInvalidCredential with a reason safe to log, except when the check
// could not run. The Identity's ID is [JWTIdentityID](issuer, sub) and its
// Subject the token's sub as given.
func (is *Issuers) VerifyJWT(ctx context.Context, issuer, token string) (Identity, error) {
	var v *jwtauth.Verifier
	if p := is.cur.Load(); p != nil {
		v = (*p)[issuer]
	}
	if v == nil {
		return Identity{}, fmt.Errorf("%w: no trusted issuer named %q", ErrInvalidCredential, issuer)
	}
	c, err := v.Verify(ctx, token)
	if err != nil {
		if errors.Is(err, jwtauth.ErrInvalidToken) {
			return Identity{}, fmt.Errorf("%w: %v", ErrInvalidCredential, err)
		}
		return Identity{}, err
	}
	if c.Subject == "" { // jwtauth refuses it; an identity must never be empty
		return Identity{}, fmt.Errorf("%w: token has no sub", ErrInvalidCredential)
	}
	return Identity{Method: "jwt", ID: JWTIdentityID(issuer, c.Subject), Subject: c.Subject, Scopes: c.Scopes}, nil
}

// JWTIdentityID is the Identity.ID of the subject sub of the trusted issuer
// named issuer: "<issuer>:<sub>". A sub is unique only within its issuer, so
// the ID (which keys per-credential rate limits) names both. Issuer names
// hold no ':' (Add refuses them; the admin API admits [a-z][a-z0-9-]*), so
// the first ':' separates the two and distinct pairs never give one ID.
func JWTIdentityID(issuer, sub string) string { return issuer + ":" + sub }
