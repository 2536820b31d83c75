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

var (
	_ store.Advisories = (*DB)(nil)
	_ store.Findings   = (*DB)(nil)
	_ store.Policies   = (*DB)(nil)
)

// PutAdvisories implements store.Advisories.
func (db *DB) PutAdvisories(ctx context.Context, as []store.Advisory) (added, updated int, err error) {
	for _, a := range as {
		if a.ID == "" || len(a.Raw) == 0 {
			return 0, 0, fmt.Errorf("sqlite: put advisories: an advisory without id or content: %w", store.ErrInvalid)
		}
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		added, updated = 0, 0
		for _, a := range as {
			var modified int64
			err := tx.QueryRowContext(ctx, `SELECT modified FROM advisories WHERE id = ?`, a.ID).Scan(&modified)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if _, err := tx.ExecContext(ctx, `INSERT INTO advisories (id, modified, imported_at, raw) VALUES (?, ?, ?, ?)`,
					a.ID, a.Modified.UnixNano(), db.nanos(a.ImportedAt), a.Raw); err != nil {
					return err
				}
				added++
			case err != nil:
				return err
			case a.Modified.UnixNano() > modified:
				if _, err := tx.ExecContext(ctx, `UPDATE advisories SET modified = ?, imported_at = ?, raw = ? WHERE id = ?`,
					a.Modified.UnixNano(), db.nanos(a.ImportedAt), a.Raw, a.ID); err != nil {
					return err
				}
				updated++
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: put advisories: %w", err)
	}
	return added, updated, nil
}

// Advisories implements store.Advisories.
func (db *DB) Advisories(ctx context.Context) ([]store.Advisory, error) {
	return queryAll(ctx, db.r, "advisories", func(s scanner) (store.Advisory, error) {
		var a store.Advisory
		var modified, imported int64
		if err := s.Scan(&a.ID, &modified, &imported, &a.Raw); err != nil {
			return store.Advisory{}, err
		}
		a.Modified, a.ImportedAt = fromNanos(modified), fromNanos(imported)
		return a, nil
	}, `SELECT id, modified, imported_at, raw FROM advisories ORDER BY id`)
}

// SetFindings implements store.Findings.
func (db *DB) SetFindings(ctx context.Context, namespace, name string, version int, kinds []string, fs []store.Finding, at time.Time) error {
	seen := map[string]bool{}
	for _, f := range fs {
		if f.Fingerprint == "" || seen[f.Fingerprint] {
			return fmt.Errorf("sqlite: set findings: empty or repeated fingerprint %q: %w", f.Fingerprint, store.ErrInvalid)
		}
		if len(kinds) > 0 && !slices.Contains(kinds, f.Kind) {
			return fmt.Errorf("sqlite: set findings: kind %q outside %v: %w", f.Kind, kinds, store.ErrInvalid)
		}
		seen[f.Fingerprint] = true
	}
	now := db.nanos(at)
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, f := range fs {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO findings (namespace, name, version, fingerprint, kind, rule, severity, message, location, module, found, fixed, aliases, first_seen, last_seen)
				 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				 ON CONFLICT (namespace, name, version, fingerprint) DO UPDATE SET
				   kind = excluded.kind, rule = excluded.rule, severity = excluded.severity, message = excluded.message,
				   location = excluded.location, module = excluded.module, found = excluded.found, fixed = excluded.fixed,
				   aliases = excluded.aliases, last_seen = excluded.last_seen, resolved_at = NULL`,
				namespace, name, version, f.Fingerprint, f.Kind, f.Rule, f.Severity, f.Message, f.Location, f.Module, f.Found, f.Fixed,
				strings.Join(f.Aliases, ","), now, now); err != nil {
				return err
			}
		}
		// Resolve the open findings of these kinds this scan did not find.
		rows, err := tx.QueryContext(ctx, `SELECT fingerprint, kind FROM findings
			WHERE namespace = ? AND name = ? AND version = ? AND resolved_at IS NULL`, namespace, name, version)
		if err != nil {
			return err
		}
		var gone []string
		for rows.Next() {
			var fp, kind string
			if err := rows.Scan(&fp, &kind); err != nil {
				rows.Close()
				return err
			}
			if !seen[fp] && (len(kinds) == 0 || slices.Contains(kinds, kind)) {
				gone = append(gone, fp)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, fp := range gone {
			if _, err := tx.ExecContext(ctx, `UPDATE findings SET resolved_at = ? WHERE namespace = ? AND name = ? AND version = ? AND fingerprint = ?`,
				now, namespace, name, version, fp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: set findings of %s/%s v%d: %w", namespace, name, version, err)
	}
	return nil
}

// severityRank orders findings most severe first.
const severityRank = `CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END`

// Findings implements store.Findings.
func (db *DB) Findings(ctx context.Context, namespace, name string, open bool) ([]store.Finding, error) {
	q := `SELECT namespace, name, version, fingerprint, kind, rule, severity, message, location, module, found, fixed, aliases,
		first_seen, last_seen, resolved_at FROM findings WHERE 1 = 1`
	var args []any
	if namespace != "" {
		q += ` AND namespace = ?`
		args = append(args, namespace)
	}
	if name != "" {
		q += ` AND name = ?`
		args = append(args, name)
	}
	if open {
		q += ` AND resolved_at IS NULL`
	}
	q += ` ORDER BY namespace, name, version, ` + severityRank + `, kind, rule, fingerprint`
	return queryAll(ctx, db.r, "findings", func(s scanner) (store.Finding, error) {
		var f store.Finding
		var aliases string
		var first, last int64
		var resolved sql.NullInt64
		if err := s.Scan(&f.Namespace, &f.Name, &f.Version, &f.Fingerprint, &f.Kind, &f.Rule, &f.Severity, &f.Message, &f.Location,
			&f.Module, &f.Found, &f.Fixed, &aliases, &first, &last, &resolved); err != nil {
			return store.Finding{}, err
		}
		if aliases != "" {
			f.Aliases = strings.Split(aliases, ",")
		}
		f.FirstSeen, f.LastSeen = fromNanos(first), fromNanos(last)
		if resolved.Valid {
			t := fromNanos(resolved.Int64)
			f.ResolvedAt = &t
		}
		return f, nil
	}, q, args...)
}

// SetPolicy implements store.Policies.
func (db *DB) SetPolicy(ctx context.Context, p store.Policy) error {
	if p.Namespace == "" || len(p.Source) == 0 || p.Digest == "" {
		return fmt.Errorf("sqlite: set policy: namespace, source and digest are required: %w", store.ErrInvalid)
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO policies (namespace, source, digest, set_by, set_at) VALUES (?, ?, ?, ?, ?)
			 ON CONFLICT (namespace) DO UPDATE SET source = excluded.source, digest = excluded.digest, set_by = excluded.set_by, set_at = excluded.set_at`,
			p.Namespace, p.Source, p.Digest, p.SetBy, db.nanos(p.SetAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: set policy of %s: %w", p.Namespace, err)
	}
	return nil
}

// Policy implements store.Policies.
func (db *DB) Policy(ctx context.Context, namespace string) (store.Policy, error) {
	p := store.Policy{Namespace: namespace}
	var at int64
	err := db.r.QueryRowContext(ctx, `SELECT source, digest, set_by, set_at FROM policies WHERE namespace = ?`, namespace).
		Scan(&p.Source, &p.Digest, &p.SetBy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Policy{}, fmt.Errorf("sqlite: policy of %s: %w", namespace, store.ErrNotFound)
	}
	if err != nil {
		return store.Policy{}, fmt.Errorf("sqlite: policy of %s: %w", namespace, err)
	}
	p.SetAt = fromNanos(at)
	return p, nil
}

// DeletePolicy implements store.Policies.
func (db *DB) DeletePolicy(ctx context.Context, namespace string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrNotFound, `DELETE FROM policies WHERE namespace = ?`, namespace)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete policy of %s: %w", namespace, err)
	}
	return nil
}
