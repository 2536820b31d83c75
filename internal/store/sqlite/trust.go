package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"warden/internal/store"
)

var _ store.Trust = (*DB)(nil)

// AddTrustedKey implements store.Trust.
func (db *DB) AddTrustedKey(ctx context.Context, k store.TrustedKey) error {
	if k.Namespace == "" || !validDigest(k.ID) || len(k.PEM) == 0 {
		return fmt.Errorf("sqlite: trust key: namespace, id and key are required: %w", store.ErrInvalid)
	}
	var expires any
	if k.ExpiresAt != nil {
		expires = k.ExpiresAt.UnixNano()
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrConflict,
			`INSERT INTO trusted_keys (namespace, id, name, algorithm, pem, added_by, added_at, expires_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, id) DO NOTHING`,
			k.Namespace, k.ID, k.Name, k.Algorithm, k.PEM, k.AddedBy, db.nanos(k.AddedAt), expires)
	})
	if err != nil {
		return fmt.Errorf("sqlite: trust key %s in %s: %w", k.ID, k.Namespace, err)
	}
	return nil
}

// RevokeTrustedKey implements store.Trust.
func (db *DB) RevokeTrustedKey(ctx context.Context, namespace, id, by string, at time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM trusted_keys WHERE namespace = ? AND id = ?`, namespace, id).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		if revoked.Valid {
			return store.ErrConflict
		}
		_, err = tx.ExecContext(ctx, `UPDATE trusted_keys SET revoked_at = ?, revoked_by = ? WHERE namespace = ? AND id = ?`,
			db.nanos(at), by, namespace, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: revoke key %s in %s: %w", id, namespace, err)
	}
	return nil
}

// SetSigningMode implements store.Trust.
func (db *DB) SetSigningMode(ctx context.Context, namespace, mode, by string) error {
	if namespace == "" || (mode != store.SigningEnforce && mode != store.SigningWarn) {
		return fmt.Errorf("sqlite: signing mode %q for %q: %w", mode, namespace, store.ErrInvalid)
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO signing_modes (namespace, mode, set_by, set_at) VALUES (?, ?, ?, ?)
			 ON CONFLICT (namespace) DO UPDATE SET mode = excluded.mode, set_by = excluded.set_by, set_at = excluded.set_at`,
			namespace, mode, by, db.nanos(time.Time{}))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: signing mode of %s: %w", namespace, err)
	}
	return nil
}

const trustedKeyColumns = `namespace, id, name, algorithm, pem, added_by, added_at, expires_at, revoked_at, revoked_by`

func scanTrustedKey(s scanner) (store.TrustedKey, error) {
	var k store.TrustedKey
	var added int64
	var expires, revoked sql.NullInt64
	if err := s.Scan(&k.Namespace, &k.ID, &k.Name, &k.Algorithm, &k.PEM, &k.AddedBy, &added, &expires, &revoked, &k.RevokedBy); err != nil {
		return store.TrustedKey{}, err
	}
	k.AddedAt = fromNanos(added)
	if expires.Valid {
		t := fromNanos(expires.Int64)
		k.ExpiresAt = &t
	}
	if revoked.Valid {
		t := fromNanos(revoked.Int64)
		k.RevokedAt = &t
	}
	return k, nil
}

// SigningPolicy implements store.Trust. The keys and the mode are read in
// one snapshot.
func (db *DB) SigningPolicy(ctx context.Context, namespace string) (store.SigningPolicy, error) {
	p := store.SigningPolicy{Namespace: namespace}
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+trustedKeyColumns+` FROM trusted_keys WHERE namespace = ? ORDER BY added_at, id`, namespace)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanTrustedKey(rows)
			if err != nil {
				return err
			}
			p.Keys = append(p.Keys, k)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var mode string
		err = tx.QueryRowContext(ctx, `SELECT mode FROM signing_modes WHERE namespace = ?`, namespace).Scan(&mode)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		p.Mode, p.ModeSet = effectiveMode(mode, len(p.Keys) > 0)
		return nil
	})
	if err != nil {
		return store.SigningPolicy{}, fmt.Errorf("sqlite: signing policy of %s: %w", namespace, err)
	}
	return p, nil
}

// SigningPolicies implements store.Trust.
func (db *DB) SigningPolicies(ctx context.Context) ([]store.SigningPolicy, error) {
	keys, err := queryAll(ctx, db.r, "trusted keys", scanTrustedKey,
		`SELECT `+trustedKeyColumns+` FROM trusted_keys ORDER BY namespace, added_at, id`)
	if err != nil {
		return nil, err
	}
	type nsMode struct{ ns, mode string }
	modes, err := queryAll(ctx, db.r, "signing modes", func(s scanner) (nsMode, error) {
		var m nsMode
		return m, s.Scan(&m.ns, &m.mode)
	}, `SELECT namespace, mode FROM signing_modes`)
	if err != nil {
		return nil, err
	}
	byNS := map[string]*store.SigningPolicy{}
	get := func(ns string) *store.SigningPolicy {
		if p := byNS[ns]; p != nil {
			return p
		}
		p := &store.SigningPolicy{Namespace: ns}
		byNS[ns] = p
		return p
	}
	for _, k := range keys {
		p := get(k.Namespace)
		p.Keys = append(p.Keys, k)
	}
	set := map[string]string{}
	for _, m := range modes {
		get(m.ns)
		set[m.ns] = m.mode
	}
	out := make([]store.SigningPolicy, 0, len(byNS))
	for _, p := range byNS {
		p.Mode, p.ModeSet = effectiveMode(set[p.Namespace], len(p.Keys) > 0)
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b store.SigningPolicy) int { return strings.Compare(a.Namespace, b.Namespace) })
	return out, nil
}

// effectiveMode is the mode set, else enforce once a key was ever
// trusted, else off.
func effectiveMode(set string, anyKey bool) (string, bool) {
	switch {
	case set != "":
		return set, true
	case anyKey:
		return store.SigningEnforce, false
	}
	return store.SigningOff, false
}
