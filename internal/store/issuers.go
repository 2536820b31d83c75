package store

import (
	"context"
	"time"
)

// Issuer is a trusted JWT issuer routes can name as auth: jwt:<Name>.
// Exactly one of JWKSURL and JWKS is set.
type Issuer struct {
	Name      string    `json:"name"`
	Issuer    string    `json:"issuer"`   // the iss claim
	Audience  string    `json:"audience"` // a value the aud claim must hold
	JWKSURL   string    `json:"jwksUrl,omitempty"`
	JWKS      []byte    `json:"-"` // the key set itself, when given as a file
	CreatedAt time.Time `json:"createdAt"`
}

// Issuers keeps trusted JWT issuers.
type Issuers interface {
	// CreateIssuer stores iss; ErrConflict if the name exists.
	CreateIssuer(ctx context.Context, iss Issuer) error
	// ListIssuers returns every issuer by name.
	ListIssuers(ctx context.Context) ([]Issuer, error)
	// DeleteIssuer removes an issuer; ErrNotFound if there is none.
	DeleteIssuer(ctx context.Context, name string) error
}
