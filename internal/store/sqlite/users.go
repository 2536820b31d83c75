package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"warden/internal/store"
)

const userColumns = `name, role, password_hash, totp_secret, mfa_enrolled, totp_last_step, failed_attempts, locked_until, created_at, totp_key_id`

func scanUser(s scanner) (store.User, error) {
	var u store.User
	var enrolled int
	var locked sql.NullInt64
	var created int64
	if err := s.Scan(&u.Name, &u.Role, &u.PasswordHash, &u.TOTPSecret, &enrolled, &u.TOTPLastStep,
		&u.FailedAttempts, &locked, &created, &u.TOTPKeyID); err != nil {
		return store.User{}, err
	}
	u.MFAEnrolled = enrolled != 0
	u.LockedUntil = optTime(locked)
	u.CreatedAt = fromNanos(created)
	return u, nil
}

// totpKeyID is the key id stored for u: none without a TOTP secret, so that
// key rotation never meets a sealed seed with no bytes.
func totpKeyID(u store.User) string {
	if u.TOTPSecret == "" {
		return ""
	}
	return u.TOTPKeyID
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateUser implements store.Users.
func (db *DB) CreateUser(ctx context.Context, u store.User) error {
	if u.Name == "" || u.Role == "" || u.PasswordHash == "" {
		return fmt.Errorf("sqlite: create user: empty name, role or password hash: %w", store.ErrInvalid)
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrConflict,
			`INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (name) DO NOTHING`,
			u.Name, u.Role, u.PasswordHash, u.TOTPSecret, boolInt(u.MFAEnrolled), u.TOTPLastStep,
			u.FailedAttempts, optNanos(u.LockedUntil), db.nanos(u.CreatedAt), totpKeyID(u))
	})
	if err != nil {
		return fmt.Errorf("sqlite: create user %s: %w", u.Name, err)
	}
	return nil
}

// User implements store.Users.
func (db *DB) User(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("sqlite: user %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: user %s: %w", name, err)
	}
	return u, nil
}

// ListUsers implements store.Users.
func (db *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	return queryAll(ctx, db.r, "list users", scanUser, `SELECT `+userColumns+` FROM users ORDER BY name`)
}

// DeleteUser implements store.Users.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrNotFound, `DELETE FROM users WHERE name = ?`, name)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete user %s: %w", name, err)
	}
	return nil
}

// UpdateUser implements store.Users.
func (db *DB) UpdateUser(ctx context.Context, name string, fn func(u *store.User) error) (store.User, error) {
	var out store.User
	err := db.write(ctx, func(tx *sql.Tx) error {
		u, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := fn(&u); err != nil {
			return err
		}
		if u.Role == "" || u.PasswordHash == "" {
			return fmt.Errorf("empty role or password hash: %w", store.ErrInvalid)
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE users SET role = ?, password_hash = ?, totp_secret = ?, mfa_enrolled = ?, totp_last_step = ?,
			        failed_attempts = ?, locked_until = ?, totp_key_id = ?
			 WHERE name = ?`,
			u.Role, u.PasswordHash, u.TOTPSecret, boolInt(u.MFAEnrolled), u.TOTPLastStep,
			u.FailedAttempts, optNanos(u.LockedUntil), totpKeyID(u), name); err != nil {
			return err
		}
		out, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
		return err
	})
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: update user %s: %w", name, err)
	}
	return out, nil
}
