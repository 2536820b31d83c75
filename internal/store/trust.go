package store

import (
	"context"
	"time"
)

// Signing modes of a namespace (warden trust mode). A namespace that trusts
// no key and has no mode set verifies nothing (SigningOff); once it trusts a
// key its mode is SigningEnforce until an admin sets another.
const (
	SigningOff     = "off"     // no key trusted: deploys are not verified
	SigningWarn    = "warn"    // unsigned or unverified deploys are accepted, with an event
	SigningEnforce = "enforce" // unsigned or unverified deploys are refused
)

// TrustedKey is a public key a namespace trusts to sign its deploys.
//
// # Notes
//   - ID is the lowercase hex sha256 of the key's PKIX encoding; a key is
//     trusted per namespace, so the same ID may appear in several.
//   - A revoked key stays listed (the record of who revoked it and when)
//     and can never be trusted again under the same ID in that namespace.
type TrustedKey struct {
	Namespace string     `json:"namespace"`
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Algorithm string     `json:"algorithm"`
	PEM       []byte     `json:"publicKey"`
	AddedBy   string     `json:"addedBy"`
	AddedAt   time.Time  `json:"addedAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	RevokedBy string     `json:"revokedBy,omitempty"`
}

// Valid reports whether k verifies signatures at t: not revoked, not expired.
func (k TrustedKey) Valid(t time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || t.Before(*k.ExpiresAt))
}

// SigningPolicy is a namespace's mode and the keys it has trusted.
type SigningPolicy struct {
	Namespace string `json:"namespace"`
	// Mode is the effective mode: the one set, else SigningEnforce once
	// any key was trusted (even if all are revoked since), else SigningOff.
	Mode string `json:"mode"`
	// ModeSet is whether an admin set Mode explicitly.
	ModeSet bool         `json:"modeSet"`
	Keys    []TrustedKey `json:"keys"`
}

// Trust keeps the keys each namespace trusts and its signing mode.
type Trust interface {
	// AddTrustedKey stores k; ErrConflict if the namespace already has a
	// key with this ID (revoked or not).
	AddTrustedKey(ctx context.Context, k TrustedKey) error
	// RevokeTrustedKey marks a key revoked; ErrNotFound if the namespace
	// has no such key, ErrConflict if it is revoked already.
	RevokeTrustedKey(ctx context.Context, namespace, id, by string, at time.Time) error
	// SetSigningMode sets a namespace's mode (SigningEnforce or
	// SigningWarn; anything else is ErrInvalid).
	SetSigningMode(ctx context.Context, namespace, mode, by string) error
	// SigningPolicy returns a namespace's policy; a namespace never
	// configured has SigningOff and no keys.
	SigningPolicy(ctx context.Context, namespace string) (SigningPolicy, error)
	// SigningPolicies returns the policy of every configured namespace,
	// by namespace.
	SigningPolicies(ctx context.Context) ([]SigningPolicy, error)
}
