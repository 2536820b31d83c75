package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"warden/internal/store"
)

var (
	_ store.Secrets = (*DB)(nil)
	_ store.KV      = (*DB)(nil)
	_ store.Sealing = (*DB)(nil)
	_ store.Usage   = (*DB)(nil)
)

// Limits of the vault's list calls.
const (
	maxKVList          = 1000 // KVList's default and cap
	defaultExpireBatch = 1000 // ExpireKV with limit <= 0
	defaultRewrapBatch = 1000 // RewrapSealed with limit <= 0
)

// querier is what both the reader pool and a transaction offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// collect runs a query and scans every row; unlike queryAll it runs inside a
// transaction too and leaves error wrapping to the caller.
func collect[T any](ctx context.Context, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// addNanos returns n + d nanoseconds, d <= 0 counting as 0, saturating
// instead of overflowing.
func addNanos(n int64, d time.Duration) int64 {
	if d <= 0 {
		return n
	}
	if n > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return n + int64(d)
}

// checkSealed validates what a SealFunc or RewrapFunc returned. The error
// never contains the bytes.
func checkSealed(sealed []byte, keyID string) error {
	if len(sealed) == 0 || keyID == "" {
		return fmt.Errorf("sealed value without bytes or key id: %w", store.ErrInvalid)
	}
	return nil
}

// ---- Secrets ----

// secretVersionSelect selects a version joined with its secret; the last
// column says whether it is current. sealed is the column (or NULL) to read
// as the bytes.
func secretVersionSelect(sealed string) string {
	return `SELECT v.namespace, v.name, v.version, v.key_id, ` + sealed + `, v.created_at, v.created_by,
	               v.retires_at, v.destroyed_at, CASE WHEN v.version = s.current_version THEN 1 ELSE 0 END
	        FROM secret_versions v JOIN secrets s ON s.namespace = v.namespace AND s.name = v.name`
}

func scanSecretVersion(s scanner) (store.SecretVersion, error) {
	var v store.SecretVersion
	var created int64
	var retires, destroyed sql.NullInt64
	var current int
	if err := s.Scan(&v.Namespace, &v.Name, &v.Version, &v.KeyID, &v.Sealed, &created, &v.CreatedBy,
		&retires, &destroyed, &current); err != nil {
		return store.SecretVersion{}, err
	}
	v.CreatedAt = fromNanos(created)
	v.RetiresAt, v.DestroyedAt = optTime(retires), optTime(destroyed)
	v.Current = current != 0
	return v, nil
}

// PutSecret implements store.Secrets.
func (db *DB) PutSecret(ctx context.Context, namespace, name, createdBy string, grace time.Duration, seal store.SealFunc) (store.SecretVersion, error) {
	if err := validName(namespace, name); err != nil {
		return store.SecretVersion{}, fmt.Errorf("sqlite: put secret: %w", err)
	}
	if seal == nil {
		return store.SecretVersion{}, fmt.Errorf("sqlite: put secret %s/%s: no seal function: %w", namespace, name, store.ErrInvalid)
	}
	now := db.nanos(time.Time{})
	var out store.SecretVersion
	err := db.write(ctx, func(tx *sql.Tx) error {
		var current int
		err := tx.QueryRowContext(ctx, `SELECT current_version FROM secrets WHERE namespace = ? AND name = ?`,
			namespace, name).Scan(&current)
		if errors.Is(err, sql.ErrNoRows) {
			_, err = tx.ExecContext(ctx,
				`INSERT INTO secrets (namespace, name, current_version, created_at, updated_at) VALUES (?, ?, 0, ?, ?)`,
				namespace, name, now, now)
		}
		if err != nil {
			return err
		}
		// Numbers continue after a deleted secret of the same name
		// (secret_deleted), so no version number is ever sealed twice
		// for one name.
		var next int
		if err := tx.QueryRowContext(ctx,
			`SELECT MAX(COALESCE((SELECT MAX(version) FROM secret_versions WHERE namespace = ? AND name = ?), 0),
			            COALESCE((SELECT last_version FROM secret_deleted WHERE namespace = ? AND name = ?), 0)) + 1`,
			namespace, name, namespace, name).Scan(&next); err != nil {
			return err
		}
		sealed, keyID, err := seal(next)
		if err != nil {
			return fmt.Errorf("seal version %d: %w", next, err)
		}
		if err := checkSealed(sealed, keyID); err != nil {
			return fmt.Errorf("seal version %d: %w", next, err)
		}
		if current > 0 {
			if _, err := tx.ExecContext(ctx,
				`UPDATE secret_versions SET retires_at = ?
				 WHERE namespace = ? AND name = ? AND version = ? AND retires_at IS NULL`,
				addNanos(now, grace), namespace, name, current); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO secret_versions (namespace, name, version, key_id, sealed, created_at, created_by)
			 VALUES (?, ?, ?, ?, ?, ?, ?)`,
			namespace, name, next, keyID, sealed, now, createdBy); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE secrets SET current_version = ?, updated_at = ? WHERE namespace = ? AND name = ?`,
			next, now, namespace, name); err != nil {
			return err
		}
		out = store.SecretVersion{Namespace: namespace, Name: name, Version: next, KeyID: keyID, Sealed: sealed,
			Current: true, CreatedAt: fromNanos(now), CreatedBy: createdBy}
		return nil
	})
	if err != nil {
		return store.SecretVersion{}, fmt.Errorf("sqlite: put secret %s/%s: %w", namespace, name, err)
	}
	return out, nil
}

// SecretVersion implements store.Secrets.
func (db *DB) SecretVersion(ctx context.Context, namespace, name string, version int) (store.SecretVersion, error) {
	q := secretVersionSelect(`v.sealed`) + ` WHERE v.namespace = ? AND v.name = ? AND v.destroyed_at IS NULL AND `
	args := []any{namespace, name}
	if version == 0 {
		q += `v.version = s.current_version`
	} else {
		q += `v.version = ?`
		args = append(args, version)
	}
	v, err := scanSecretVersion(db.r.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return store.SecretVersion{}, fmt.Errorf("sqlite: secret %s/%s version %d: %w", namespace, name, version, store.ErrNotFound)
	}
	if err != nil {
		return store.SecretVersion{}, fmt.Errorf("sqlite: secret %s/%s version %d: %w", namespace, name, version, err)
	}
	return v, nil
}

func scanSecret(s scanner) (store.Secret, error) {
	var sec store.Secret
	var created, updated int64
	if err := s.Scan(&sec.Namespace, &sec.Name, &sec.CurrentVersion, &created, &updated, &sec.Versions); err != nil {
		return store.Secret{}, err
	}
	sec.CreatedAt, sec.UpdatedAt = fromNanos(created), fromNanos(updated)
	return sec, nil
}

// ListSecrets implements store.Secrets.
func (db *DB) ListSecrets(ctx context.Context) ([]store.Secret, error) {
	return queryAll(ctx, db.r, "list secrets", scanSecret,
		`SELECT s.namespace, s.name, s.current_version, s.created_at, s.updated_at,
		        (SELECT COUNT(*) FROM secret_versions v
		         WHERE v.namespace = s.namespace AND v.name = s.name AND v.destroyed_at IS NULL)
		 FROM secrets s ORDER BY s.namespace, s.name`)
}

// SecretHistory implements store.Secrets.
func (db *DB) SecretHistory(ctx context.Context, namespace, name string) ([]store.SecretVersion, error) {
	var out []store.SecretVersion
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := mustExist(ctx, tx, `SELECT 1 FROM secrets WHERE namespace = ? AND name = ?`, namespace, name); err != nil {
			return err
		}
		var err error
		out, err = collect(ctx, tx, scanSecretVersion,
			secretVersionSelect(`NULL`)+` WHERE v.namespace = ? AND v.name = ? ORDER BY v.version DESC`, namespace, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: secret history of %s/%s: %w", namespace, name, err)
	}
	return out, nil
}

// DeleteSecret implements store.Secrets.
func (db *DB) DeleteSecret(ctx context.Context, namespace, name string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO secret_deleted (namespace, name, last_version)
			 SELECT namespace, name, MAX(version) FROM secret_versions WHERE namespace = ? AND name = ? GROUP BY namespace, name
			 ON CONFLICT (namespace, name) DO UPDATE SET last_version = excluded.last_version`, namespace, name); err != nil {
			return err
		}
		// Explicit rather than relying on ON DELETE CASCADE alone.
		if _, err := tx.ExecContext(ctx, `DELETE FROM secret_versions WHERE namespace = ? AND name = ?`, namespace, name); err != nil {
			return err
		}
		return execAffecting(ctx, tx, store.ErrNotFound, `DELETE FROM secrets WHERE namespace = ? AND name = ?`, namespace, name)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete secret %s/%s: %w", namespace, name, err)
	}
	db.scrub(ctx)
	return nil
}

// scrub makes destroyed bytes unrecoverable from the files: deleted
// content is zeroed in place (secure_delete, set on every connection), and
// the WAL, which still holds the pages as they were, is checkpointed and
// truncated. Best effort: a reader holding an old snapshot can make the
// truncation wait for the next scrub or automatic checkpoint.
func (db *DB) scrub(ctx context.Context) {
	_, _ = db.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
}

// retiredWhere selects the non-current versions whose bytes are due to go
// at the time given as its one parameter.
const retiredWhere = ` v.destroyed_at IS NULL AND v.retires_at IS NOT NULL AND v.retires_at <= ?
	AND v.version <> (SELECT s2.current_version FROM secrets s2 WHERE s2.namespace = v.namespace AND s2.name = v.name)`

// DestroyRetiredSecrets implements store.Secrets.
func (db *DB) DestroyRetiredSecrets(ctx context.Context, now time.Time) ([]store.SecretVersion, error) {
	at := db.nanos(now)
	var out []store.SecretVersion
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = collect(ctx, tx, scanSecretVersion,
			secretVersionSelect(`NULL`)+` WHERE`+retiredWhere+` ORDER BY v.namespace, v.name, v.version`, at)
		if err != nil || len(out) == 0 {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE secret_versions SET sealed = NULL, destroyed_at = ?
			 WHERE (namespace, name, version) IN (SELECT v.namespace, v.name, v.version FROM secret_versions v WHERE`+retiredWhere+`)`,
			at, at)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: destroy retired secrets: %w", err)
	}
	destroyed := fromNanos(at)
	for i := range out {
		out[i].DestroyedAt = &destroyed
	}
	if len(out) > 0 {
		db.scrub(ctx)
	}
	return out, nil
}

// ---- KV ----

// validText reports whether s can be a KV namespace, bucket, key or bound:
// valid UTF-8 without NUL, so that byte order is code point order (KVList's
// prefix range relies on it) and PostgreSQL's text accepts it.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func validKVName(namespace, bucket, key string) error {
	if namespace == "" || bucket == "" || key == "" {
		return fmt.Errorf("empty namespace, bucket or key: %w", store.ErrInvalid)
	}
	if !validText(namespace) || !validText(bucket) || !validText(key) {
		return fmt.Errorf("namespace, bucket or key is not UTF-8 text without NUL: %w", store.ErrInvalid)
	}
	return nil
}

// prefixEnd returns the least valid UTF-8 string greater than every string
// that starts with prefix (itself valid UTF-8), or false when there is none
// (an empty prefix, or one made only of U+10FFFF). For valid UTF-8 keys,
// prefix <= key < end holds exactly when key starts with prefix.
func prefixEnd(prefix string) (string, bool) {
	r := []rune(prefix)
	for i := len(r) - 1; i >= 0; i-- {
		if r[i] == utf8.MaxRune {
			continue
		}
		next := r[i] + 1
		if next >= 0xD800 && next <= 0xDFFF { // surrogates are not encodable
			next = 0xE000
		}
		return string(append(r[:i:i], next)), true
	}
	return "", false
}

// kvLive is the condition for an entry live at the time given as its one parameter.
const kvLive = `(expires_at IS NULL OR expires_at > ?)`

func kvSelect(sealed string) string {
	return `SELECT namespace, bucket, key, version, key_id, ` + sealed + `, size, updated_at, expires_at FROM kv_entries`
}

func scanKV(s scanner) (store.KVEntry, error) {
	var e store.KVEntry
	var updated int64
	var expires sql.NullInt64
	if err := s.Scan(&e.Namespace, &e.Bucket, &e.Key, &e.Version, &e.KeyID, &e.Sealed, &e.Size, &updated, &expires); err != nil {
		return store.KVEntry{}, err
	}
	e.UpdatedAt, e.ExpiresAt = fromNanos(updated), optTime(expires)
	return e, nil
}

func insertKVChange(ctx context.Context, tx *sql.Tx, c store.KVChange, at int64) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO kv_changes (namespace, bucket, key, version, op, function, function_version, actor, changed_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Namespace, c.Bucket, c.Key, c.Version, c.Op, c.Function, c.FunctionVersion, c.Actor, at)
	return err
}

// KVGet implements store.KV.
func (db *DB) KVGet(ctx context.Context, namespace, bucket, key string, now time.Time) (store.KVEntry, error) {
	e, err := scanKV(db.r.QueryRowContext(ctx,
		kvSelect(`sealed`)+` WHERE namespace = ? AND bucket = ? AND key = ? AND `+kvLive,
		namespace, bucket, key, db.nanos(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.KVEntry{}, fmt.Errorf("sqlite: kv get %s/%s %q: %w", namespace, bucket, key, store.ErrNotFound)
	}
	if err != nil {
		return store.KVEntry{}, fmt.Errorf("sqlite: kv get %s/%s %q: %w", namespace, bucket, key, err)
	}
	return e, nil
}

// KVSet implements store.KV.
func (db *DB) KVSet(ctx context.Context, w store.KVWrite, seal store.SealFunc) (store.KVEntry, error) {
	if err := validKVName(w.Namespace, w.Bucket, w.Key); err != nil {
		return store.KVEntry{}, fmt.Errorf("sqlite: kv set: %w", err)
	}
	if w.Size < 0 || w.MaxBucketBytes < 0 || seal == nil {
		return store.KVEntry{}, fmt.Errorf("sqlite: kv set %s/%s %q: negative size or limit, or no seal function: %w",
			w.Namespace, w.Bucket, w.Key, store.ErrInvalid)
	}
	now := db.nanos(time.Time{})
	var out store.KVEntry
	err := db.write(ctx, func(tx *sql.Tx) error {
		var oldVersion int
		var oldSize int64
		var oldExpires sql.NullInt64
		err := tx.QueryRowContext(ctx,
			`SELECT version, size, expires_at FROM kv_entries WHERE namespace = ? AND bucket = ? AND key = ?`,
			w.Namespace, w.Bucket, w.Key).Scan(&oldVersion, &oldSize, &oldExpires)
		found := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		live := found && (!oldExpires.Valid || oldExpires.Int64 > now)

		if w.MaxBucketBytes > 0 {
			var used int64
			if err := tx.QueryRowContext(ctx,
				`SELECT COALESCE(SUM(size), 0) FROM kv_entries WHERE namespace = ? AND bucket = ? AND `+kvLive,
				w.Namespace, w.Bucket, now).Scan(&used); err != nil {
				return err
			}
			if live {
				used -= oldSize
			}
			if used+int64(w.Size) > w.MaxBucketBytes {
				return fmt.Errorf("bucket would hold %d bytes, limit %d: %w", used+int64(w.Size), w.MaxBucketBytes, store.ErrTooLarge)
			}
		}
		if found && !live {
			// The entry expired before the sweeper got to it: record that,
			// as ExpireKV would have, before the write that replaces it.
			if err := insertKVChange(ctx, tx, store.KVChange{Namespace: w.Namespace, Bucket: w.Bucket, Key: w.Key,
				Version: oldVersion, Op: store.KVOpExpire, Actor: "system"}, now); err != nil {
				return err
			}
		}

		var last int
		err = tx.QueryRowContext(ctx,
			`SELECT last_version FROM kv_versions WHERE namespace = ? AND bucket = ? AND key = ?`,
			w.Namespace, w.Bucket, w.Key).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		next := last + 1
		sealed, keyID, err := seal(next)
		if err != nil {
			return fmt.Errorf("seal version %d: %w", next, err)
		}
		if err := checkSealed(sealed, keyID); err != nil {
			return fmt.Errorf("seal version %d: %w", next, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO kv_versions (namespace, bucket, key, last_version) VALUES (?, ?, ?, ?)
			 ON CONFLICT (namespace, bucket, key) DO UPDATE SET last_version = excluded.last_version`,
			w.Namespace, w.Bucket, w.Key, next); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO kv_entries (namespace, bucket, key, version, key_id, sealed, size, updated_at, expires_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (namespace, bucket, key) DO UPDATE SET version = excluded.version, key_id = excluded.key_id,
			   sealed = excluded.sealed, size = excluded.size, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
			w.Namespace, w.Bucket, w.Key, next, keyID, sealed, int64(w.Size), now, optNanos(w.ExpiresAt)); err != nil {
			return err
		}
		if err := insertKVChange(ctx, tx, store.KVChange{Namespace: w.Namespace, Bucket: w.Bucket, Key: w.Key,
			Version: next, Op: store.KVOpSet, Function: w.Function, FunctionVersion: w.FunctionVersion, Actor: w.Actor}, now); err != nil {
			return err
		}
		out = store.KVEntry{Namespace: w.Namespace, Bucket: w.Bucket, Key: w.Key, Version: next, KeyID: keyID,
			Sealed: sealed, Size: w.Size, UpdatedAt: fromNanos(now)}
		if w.ExpiresAt != nil {
			t := fromNanos(w.ExpiresAt.UnixNano())
			out.ExpiresAt = &t
		}
		return nil
	})
	if err != nil {
		return store.KVEntry{}, fmt.Errorf("sqlite: kv set %s/%s %q: %w", w.Namespace, w.Bucket, w.Key, err)
	}
	return out, nil
}

// KVDelete implements store.KV.
func (db *DB) KVDelete(ctx context.Context, w store.KVWrite) error {
	if err := validKVName(w.Namespace, w.Bucket, w.Key); err != nil {
		return fmt.Errorf("sqlite: kv delete: %w", err)
	}
	now := db.nanos(time.Time{})
	err := db.write(ctx, func(tx *sql.Tx) error {
		var version int
		err := tx.QueryRowContext(ctx,
			`SELECT version FROM kv_entries WHERE namespace = ? AND bucket = ? AND key = ? AND `+kvLive,
			w.Namespace, w.Bucket, w.Key, now).Scan(&version)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM kv_entries WHERE namespace = ? AND bucket = ? AND key = ?`,
			w.Namespace, w.Bucket, w.Key); err != nil {
			return err
		}
		return insertKVChange(ctx, tx, store.KVChange{Namespace: w.Namespace, Bucket: w.Bucket, Key: w.Key,
			Version: version, Op: store.KVOpDelete, Function: w.Function, FunctionVersion: w.FunctionVersion, Actor: w.Actor}, now)
	})
	if err != nil {
		return fmt.Errorf("sqlite: kv delete %s/%s %q: %w", w.Namespace, w.Bucket, w.Key, err)
	}
	return nil
}

// KVList implements store.KV.
func (db *DB) KVList(ctx context.Context, namespace, bucket, prefix, after string, limit int, now time.Time) ([]store.KVEntry, error) {
	if !validText(prefix) || !validText(after) {
		return nil, fmt.Errorf("sqlite: kv list %s/%s: prefix or after is not UTF-8 text without NUL: %w", namespace, bucket, store.ErrInvalid)
	}
	if limit <= 0 || limit > maxKVList {
		limit = maxKVList
	}
	q := kvSelect(`NULL`) + ` WHERE namespace = ? AND bucket = ? AND ` + kvLive
	args := []any{namespace, bucket, db.nanos(now)}
	if prefix != "" {
		// A range instead of LIKE: no wildcards to escape, and it uses the index.
		q += ` AND key >= ?`
		args = append(args, prefix)
		if end, ok := prefixEnd(prefix); ok {
			q += ` AND key < ?`
			args = append(args, end)
		}
	}
	if after != "" {
		q += ` AND key > ?`
		args = append(args, after)
	}
	q += ` ORDER BY key LIMIT ?`
	args = append(args, limit)
	return queryAll(ctx, db.r, "kv list "+namespace+"/"+bucket, scanKV, q, args...)
}

// KVBuckets implements store.KV.
func (db *DB) KVBuckets(ctx context.Context, now time.Time) ([]store.KVBucket, error) {
	return queryAll(ctx, db.r, "kv buckets", func(s scanner) (store.KVBucket, error) {
		var b store.KVBucket
		err := s.Scan(&b.Namespace, &b.Bucket, &b.Keys, &b.Bytes)
		return b, err
	}, `SELECT namespace, bucket, COUNT(*), COALESCE(SUM(size), 0) FROM kv_entries WHERE `+kvLive+`
	    GROUP BY namespace, bucket ORDER BY namespace, bucket`, db.nanos(now))
}

// ExpireKV implements store.KV.
func (db *DB) ExpireKV(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = defaultExpireBatch
	}
	at := db.nanos(now)
	var n int
	err := db.write(ctx, func(tx *sql.Tx) error {
		expired, err := collect(ctx, tx, func(s scanner) (store.KVChange, error) {
			c := store.KVChange{Op: store.KVOpExpire, Actor: "system"}
			err := s.Scan(&c.Namespace, &c.Bucket, &c.Key, &c.Version)
			return c, err
		}, `SELECT namespace, bucket, key, version FROM kv_entries WHERE expires_at IS NOT NULL AND expires_at <= ?
		    ORDER BY expires_at, namespace, bucket, key LIMIT ?`, at, limit)
		if err != nil {
			return err
		}
		for _, c := range expired {
			if _, err := tx.ExecContext(ctx, `DELETE FROM kv_entries WHERE namespace = ? AND bucket = ? AND key = ?`,
				c.Namespace, c.Bucket, c.Key); err != nil {
				return err
			}
			if err := insertKVChange(ctx, tx, c, at); err != nil {
				return err
			}
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: expire kv: %w", err)
	}
	return n, nil
}

// KVChanges implements store.KV.
func (db *DB) KVChanges(ctx context.Context, q store.KVChangeQuery) ([]store.KVChange, error) {
	var where []string
	var args []any
	if q.Namespace != "" {
		where = append(where, `namespace = ?`)
		args = append(args, q.Namespace)
	}
	if q.Bucket != "" {
		where = append(where, `bucket = ?`)
		args = append(args, q.Bucket)
	}
	if q.AfterID > 0 {
		where = append(where, `id > ?`)
		args = append(args, q.AfterID)
	}
	limit := pageLimit(q.Limit)
	query := `SELECT id, namespace, bucket, key, version, op, function, function_version, actor, changed_at FROM kv_changes`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	return queryAll(ctx, db.r, "kv changes", func(s scanner) (store.KVChange, error) {
		var c store.KVChange
		var at int64
		err := s.Scan(&c.ID, &c.Namespace, &c.Bucket, &c.Key, &c.Version, &c.Op, &c.Function, &c.FunctionVersion, &c.Actor, &at)
		c.At = fromNanos(at)
		return c, err
	}, query, args...)
}

// ---- Sealing ----

type sealedRow struct {
	ref    store.SealedRef
	sealed []byte
}

func describeRef(r store.SealedRef) string {
	switch r.Kind {
	case store.SealedSecret:
		return fmt.Sprintf("secret %s/%s version %d", r.Namespace, r.Name, r.Version)
	case store.SealedKV:
		return fmt.Sprintf("kv %s/%s %q version %d", r.Namespace, r.Bucket, r.Key, r.Version)
	default:
		return fmt.Sprintf("%s %s", r.Kind, r.Name)
	}
}

// RewrapSealed implements store.Sealing. It takes secret versions first,
// then KV entries (expired ones included: their bytes are still stored),
// then TOTP seeds, each in primary-key order.
func (db *DB) RewrapSealed(ctx context.Context, keepKeyID string, limit int, fn store.RewrapFunc) (int, error) {
	if keepKeyID == "" || fn == nil {
		return 0, fmt.Errorf("sqlite: rewrap sealed: empty key id or no function: %w", store.ErrInvalid)
	}
	if limit <= 0 {
		limit = defaultRewrapBatch
	}
	var n int
	err := db.write(ctx, func(tx *sql.Tx) error {
		// Read the whole batch first: no statement runs while a cursor is open.
		rows, err := collect(ctx, tx, func(s scanner) (sealedRow, error) {
			r := sealedRow{ref: store.SealedRef{Kind: store.SealedSecret}}
			err := s.Scan(&r.ref.Namespace, &r.ref.Name, &r.ref.Version, &r.sealed)
			return r, err
		}, `SELECT namespace, name, version, sealed FROM secret_versions
		    WHERE destroyed_at IS NULL AND key_id <> ? ORDER BY namespace, name, version LIMIT ?`, keepKeyID, limit)
		if err != nil {
			return err
		}
		if len(rows) < limit {
			more, err := collect(ctx, tx, func(s scanner) (sealedRow, error) {
				r := sealedRow{ref: store.SealedRef{Kind: store.SealedKV}}
				err := s.Scan(&r.ref.Namespace, &r.ref.Bucket, &r.ref.Key, &r.ref.Version, &r.sealed)
				return r, err
			}, `SELECT namespace, bucket, key, version, sealed FROM kv_entries
			    WHERE key_id <> ? ORDER BY namespace, bucket, key LIMIT ?`, keepKeyID, limit-len(rows))
			if err != nil {
				return err
			}
			rows = append(rows, more...)
		}
		if len(rows) < limit {
			more, err := collect(ctx, tx, func(s scanner) (sealedRow, error) {
				r := sealedRow{ref: store.SealedRef{Kind: store.SealedTOTP}}
				var secret string
				err := s.Scan(&r.ref.Name, &secret)
				r.sealed = []byte(secret)
				return r, err
			}, `SELECT name, totp_secret FROM users
			    WHERE totp_key_id <> '' AND totp_key_id <> ? ORDER BY name LIMIT ?`, keepKeyID, limit-len(rows))
			if err != nil {
				return err
			}
			rows = append(rows, more...)
		}

		for _, r := range rows {
			sealed, keyID, err := fn(r.ref, r.sealed)
			if err != nil {
				return fmt.Errorf("rewrap %s: %w", describeRef(r.ref), err)
			}
			if err := checkSealed(sealed, keyID); err != nil {
				return fmt.Errorf("rewrap %s: %w", describeRef(r.ref), err)
			}
			if keyID != keepKeyID {
				// It would be picked again by the next call, for ever.
				return fmt.Errorf("rewrap %s: new key id %q is not %q: %w", describeRef(r.ref), keyID, keepKeyID, store.ErrInvalid)
			}
			var q string
			var args []any
			switch r.ref.Kind {
			case store.SealedSecret:
				q = `UPDATE secret_versions SET sealed = ?, key_id = ? WHERE namespace = ? AND name = ? AND version = ?`
				args = []any{sealed, keyID, r.ref.Namespace, r.ref.Name, r.ref.Version}
			case store.SealedKV:
				q = `UPDATE kv_entries SET sealed = ?, key_id = ? WHERE namespace = ? AND bucket = ? AND key = ? AND version = ?`
				args = []any{sealed, keyID, r.ref.Namespace, r.ref.Bucket, r.ref.Key, r.ref.Version}
			case store.SealedTOTP:
				q = `UPDATE users SET totp_secret = ?, totp_key_id = ? WHERE name = ?`
				args = []any{string(sealed), keyID, r.ref.Name}
			}
			if err := execAffecting(ctx, tx, store.ErrConflict, q, args...); err != nil {
				return fmt.Errorf("rewrap %s: %w", describeRef(r.ref), err)
			}
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: rewrap sealed: %w", err)
	}
	return n, nil
}

// SealedKeyIDs implements store.Sealing.
func (db *DB) SealedKeyIDs(ctx context.Context) (map[string]int, error) {
	type count struct {
		id string
		n  int
	}
	counts, err := queryAll(ctx, db.r, "sealed key ids", func(s scanner) (count, error) {
		var c count
		err := s.Scan(&c.id, &c.n)
		return c, err
	}, `SELECT key_id, COUNT(*) FROM (
	        SELECT key_id FROM secret_versions WHERE destroyed_at IS NULL
	        UNION ALL SELECT key_id FROM kv_entries
	        UNION ALL SELECT totp_key_id AS key_id FROM users WHERE totp_key_id <> ''
	    ) AS sealed GROUP BY key_id`)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(counts))
	for _, c := range counts {
		out[c.id] = c.n
	}
	return out, nil
}

// ---- Usage ----

// spanNanos returns the stored first and last times of a record: a zero
// end takes the other end, both zero are now. ErrInvalid if first is after
// last.
func (db *DB) spanNanos(first, last time.Time) (int64, int64, error) {
	switch {
	case first.IsZero() && last.IsZero():
		n := db.nanos(time.Time{})
		return n, n, nil
	case first.IsZero():
		first = last
	case last.IsZero():
		last = first
	}
	if first.After(last) {
		return 0, 0, fmt.Errorf("first time after last: %w", store.ErrInvalid)
	}
	return first.UnixNano(), last.UnixNano(), nil
}

func validGrantUse(u store.GrantUse) error {
	switch {
	case u.Namespace == "" || u.Function == "" || u.Target == "":
		return fmt.Errorf("empty namespace, function or target: %w", store.ErrInvalid)
	case u.Version < 1:
		return fmt.Errorf("version %d: %w", u.Version, store.ErrInvalid)
	case u.Kind != store.GrantSecret && u.Kind != store.GrantKV && u.Kind != store.GrantEgress:
		return fmt.Errorf("kind %q: %w", u.Kind, store.ErrInvalid)
	case u.Mode != store.ModeRead && u.Mode != store.ModeWrite && u.Mode != store.ModeUse:
		return fmt.Errorf("mode %q: %w", u.Mode, store.ErrInvalid)
	case u.Count < 0:
		return fmt.Errorf("negative count: %w", store.ErrInvalid)
	}
	return nil
}

// RecordGrantUses implements store.Usage.
func (db *DB) RecordGrantUses(ctx context.Context, uses []store.GrantUse) error {
	type row struct {
		u           store.GrantUse
		first, last int64
	}
	rows := make([]row, 0, len(uses))
	for i, u := range uses {
		err := validGrantUse(u)
		var first, last int64
		if err == nil {
			first, last, err = db.spanNanos(u.FirstUsed, u.LastUsed)
		}
		if err != nil {
			return fmt.Errorf("sqlite: record grant uses: use %d: %w", i, err)
		}
		rows = append(rows, row{u, first, last})
	}
	if len(rows) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO grant_uses (namespace, function, version, kind, target, mode, first_used, last_used, use_count)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (namespace, function, version, kind, target, mode) DO UPDATE SET
			   first_used = CASE WHEN excluded.first_used < grant_uses.first_used THEN excluded.first_used ELSE grant_uses.first_used END,
			   last_used = CASE WHEN excluded.last_used > grant_uses.last_used THEN excluded.last_used ELSE grant_uses.last_used END,
			   use_count = grant_uses.use_count + excluded.use_count`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			if _, err := stmt.ExecContext(ctx, r.u.Namespace, r.u.Function, r.u.Version, r.u.Kind, r.u.Target, r.u.Mode,
				r.first, r.last, r.u.Count); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: record %d grant uses: %w", len(rows), err)
	}
	return nil
}

// GrantUses implements store.Usage.
func (db *DB) GrantUses(ctx context.Context, namespace, function string, version int) ([]store.GrantUse, error) {
	q := `SELECT namespace, function, version, kind, target, mode, first_used, last_used, use_count FROM grant_uses
	      WHERE namespace = ? AND function = ?`
	args := []any{namespace, function}
	if version != 0 {
		q += ` AND version = ?`
		args = append(args, version)
	}
	q += ` ORDER BY version, kind, target, mode`
	return queryAll(ctx, db.r, "grant uses", func(s scanner) (store.GrantUse, error) {
		var u store.GrantUse
		var first, last int64
		err := s.Scan(&u.Namespace, &u.Function, &u.Version, &u.Kind, &u.Target, &u.Mode, &first, &last, &u.Count)
		u.FirstUsed, u.LastUsed = fromNanos(first), fromNanos(last)
		return u, err
	}, q, args...)
}

// RecordEgress implements store.Usage.
func (db *DB) RecordEgress(ctx context.Context, stats []store.EgressStat) error {
	type row struct {
		s           store.EgressStat
		first, last int64
	}
	rows := make([]row, 0, len(stats))
	for i, s := range stats {
		var err error
		var first, last int64
		switch {
		case s.Namespace == "" || s.Function == "" || s.Origin == "":
			err = fmt.Errorf("empty namespace, function or origin: %w", store.ErrInvalid)
		case s.Calls < 0 || s.Errors < 0 || s.BytesOut < 0 || s.BytesIn < 0 || s.Duration < 0:
			err = fmt.Errorf("negative count: %w", store.ErrInvalid)
		default:
			first, last, err = db.spanNanos(s.FirstAt, s.LastAt)
		}
		if err != nil {
			return fmt.Errorf("sqlite: record egress: stat %d: %w", i, err)
		}
		rows = append(rows, row{s, first, last})
	}
	if len(rows) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO egress_stats (namespace, function, origin, calls, errors, bytes_out, bytes_in, duration_ns, first_at, last_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (namespace, function, origin) DO UPDATE SET
			   calls = egress_stats.calls + excluded.calls,
			   errors = egress_stats.errors + excluded.errors,
			   bytes_out = egress_stats.bytes_out + excluded.bytes_out,
			   bytes_in = egress_stats.bytes_in + excluded.bytes_in,
			   duration_ns = egress_stats.duration_ns + excluded.duration_ns,
			   first_at = CASE WHEN excluded.first_at < egress_stats.first_at THEN excluded.first_at ELSE egress_stats.first_at END,
			   last_at = CASE WHEN excluded.last_at > egress_stats.last_at THEN excluded.last_at ELSE egress_stats.last_at END`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			s := r.s
			if _, err := stmt.ExecContext(ctx, s.Namespace, s.Function, s.Origin, s.Calls, s.Errors, s.BytesOut, s.BytesIn,
				int64(s.Duration), r.first, r.last); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: record %d egress stats: %w", len(rows), err)
	}
	return nil
}

// EgressStats implements store.Usage.
func (db *DB) EgressStats(ctx context.Context, namespace, function string) ([]store.EgressStat, error) {
	var where []string
	var args []any
	if namespace != "" {
		where = append(where, `namespace = ?`)
		args = append(args, namespace)
	}
	if function != "" {
		where = append(where, `function = ?`)
		args = append(args, function)
	}
	q := `SELECT namespace, function, origin, calls, errors, bytes_out, bytes_in, duration_ns, first_at, last_at FROM egress_stats`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY namespace, function, origin`
	return queryAll(ctx, db.r, "egress stats", func(sc scanner) (store.EgressStat, error) {
		var s store.EgressStat
		var dur, first, last int64
		err := sc.Scan(&s.Namespace, &s.Function, &s.Origin, &s.Calls, &s.Errors, &s.BytesOut, &s.BytesIn, &dur, &first, &last)
		s.Duration, s.FirstAt, s.LastAt = time.Duration(dur), fromNanos(first), fromNanos(last)
		return s, err
	}, q, args...)
}
