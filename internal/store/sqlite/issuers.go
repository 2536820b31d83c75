package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"warden/internal/store"
)

var _ store.Issuers = (*DB)(nil)

// CreateIssuer implements store.Issuers.
func (db *DB) CreateIssuer(ctx context.Context, iss store.Issuer) error {
	if iss.Name == "" {
		return fmt.Errorf("sqlite: create issuer: empty name: %w", store.ErrInvalid)
	}
	jwks := iss.JWKS
	if jwks == nil {
		jwks = []byte{}
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrConflict,
			`INSERT INTO issuers (name, issuer, audience, jwks_url, jwks, created_at) VALUES (?, ?, ?, ?, ?, ?)
			 ON CONFLICT (name) DO NOTHING`,
			iss.Name, iss.Issuer, iss.Audience, iss.JWKSURL, jwks, db.nanos(iss.CreatedAt))
	})
	if err != nil {
		return fmt.Errorf("sqlite: create issuer %s: %w", iss.Name, err)
	}
	return nil
}

// ListIssuers implements store.Issuers.
func (db *DB) ListIssuers(ctx context.Context) ([]store.Issuer, error) {
	return queryAll(ctx, db.r, "list issuers", scanIssuer,
		`SELECT name, issuer, audience, jwks_url, jwks, created_at FROM issuers ORDER BY name`)
}

func scanIssuer(s scanner) (store.Issuer, error) {
	var iss store.Issuer
	var created int64
	if err := s.Scan(&iss.Name, &iss.Issuer, &iss.Audience, &iss.JWKSURL, &iss.JWKS, &created); err != nil {
		return store.Issuer{}, err
	}
	if len(iss.JWKS) == 0 {
		iss.JWKS = nil
	}
	iss.CreatedAt = fromNanos(created)
	return iss, nil
}

// DeleteIssuer implements store.Issuers.
func (db *DB) DeleteIssuer(ctx context.Context, name string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrNotFound, `DELETE FROM issuers WHERE name = ?`, name)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete issuer %s: %w", name, err)
	}
	return nil
}
