// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go), warden's single-node default.
//
// It owns the database file and its schema; it never interprets manifests,
// never runs code and never logs stored values.
//
// # Schema
//
// The schema lives in migrations/sqlite and is applied with goose on Open.
// It is written to be portable so that the PostgreSQL implementation uses the
// same tables and columns: TEXT, INTEGER, BIGINT and BLOB (bytea) only, and
// every timestamp is a BIGINT holding Unix nanoseconds in UTC (so times
// between the years 1678 and 2262 are representable; values are read back in
// UTC). Tables: artifacts, functions, versions, credentials (admin tokens,
// API keys and login sessions), users (operator accounts; users.go),
// events and event_totals (retention.go), and the vault (vault.go): secrets and secret_versions (sealed
// values, NULL once destroyed), kv_entries, kv_versions (the last version of
// every KV key, kept after delete so a number is never reused), kv_changes,
// grant_uses and egress_stats.
// functions.active_version is 0 while no version has been activated. An event
// is stored as its JSON encoding (events.Event, without its ID) in
// events.body, next to indexed copies of the fields queries filter on, its
// retention class and its size (retention.go); event_totals holds the count
// and size of the stored events per class.
//
// # Notes
//   - SQLite allows one writer at a time. A DB holds a writer pool of exactly
//     one connection whose transactions begin IMMEDIATE, so writers queue in
//     the Go pool instead of failing with SQLITE_BUSY, and a separate
//     read-only pool; in WAL mode readers see the last committed state and
//     never wait for the writer.
//   - Every connection runs with journal_mode=WAL, synchronous=FULL,
//     foreign_keys=ON, secure_delete=ON (deleted content is zeroed, so
//     destroyed secret versions leave the file) and a busy_timeout.
//   - Only one process may open the database at a time for writing; a second
//     process would wait on busy_timeout.
package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"warden/internal/events"
	"warden/internal/store"
)

//go:embed migrations/sqlite/*.sql
var migrations embed.FS

// busyTimeout bounds how long a connection waits for a lock held by another
// process (within this process the writer pool serializes writes).
const busyTimeout = 10 * time.Second

// DB is a store.Store backed by one SQLite file. It is safe for concurrent use.
type DB struct {
	w   *sql.DB // exactly one connection; every write goes through it
	r   *sql.DB // read-only connections
	now func() time.Time
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the SQLite database at path and applies
// pending migrations. path is a file name; ":memory:" and paths containing
// '?' are refused because the reader and writer pools must share one file.
func Open(path string) (*DB, error) {
	if path == "" || strings.Contains(path, "?") || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: %w: need a plain file path", path, store.ErrInvalid)
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=secure_delete(1)",
		busyTimeout.Milliseconds())

	w, err := sql.Open("sqlite", path+"?"+common+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := migrate(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.Ping(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return &DB{w: w, r: r, now: time.Now}, nil
}

func migrate(db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.Up(context.Background())
	return err
}

// Close closes both connection pools. It is safe to call more than once.
func (db *DB) Close() error {
	return errors.Join(db.r.Close(), db.w.Close())
}

// Check runs SQLite's integrity_check and foreign_key_check and returns an
// error describing the first problems found, or nil if the file is sound.
func (db *DB) Check(ctx context.Context) error {
	rows, err := db.r.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("sqlite: integrity check: %w", err)
	}
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: integrity check: %w", err)
		}
		msgs = append(msgs, m)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("sqlite: integrity check: %w", err)
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		return fmt.Errorf("sqlite: integrity check failed: %s", strings.Join(msgs, "; "))
	}
	var fkProblems int
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM pragma_foreign_key_check").Scan(&fkProblems); err != nil {
		return fmt.Errorf("sqlite: foreign key check: %w", err)
	}
	if fkProblems != 0 {
		return fmt.Errorf("sqlite: foreign key check failed: %d violations", fkProblems)
	}
	return nil
}

// write runs fn in one write transaction (BEGIN IMMEDIATE) and commits it.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// read runs fn in one read transaction, so that its queries see one snapshot.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// nanos converts t to the stored representation; the zero time becomes now.
func (db *DB) nanos(t time.Time) int64 {
	if t.IsZero() {
		t = db.now()
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func validDigest(d string) bool {
	if len(d) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func validName(namespace, name string) error {
	if namespace == "" || name == "" {
		return fmt.Errorf("empty namespace or name: %w", store.ErrInvalid)
	}
	return nil
}

// PutArtifact implements store.Functions.
func (db *DB) PutArtifact(ctx context.Context, digest string, data []byte) error {
	if !validDigest(digest) {
		return fmt.Errorf("sqlite: put artifact: digest is not lowercase hex sha256: %w", store.ErrInvalid)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != digest {
		return fmt.Errorf("sqlite: put artifact %s: data does not match digest: %w", digest, store.ErrInvalid)
	}
	if data == nil {
		data = []byte{}
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO artifacts (digest, size, data, created_at) VALUES (?, ?, ?, ?)
			 ON CONFLICT (digest) DO NOTHING`,
			digest, int64(len(data)), data, db.nanos(time.Time{}))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put artifact %s: %w", digest, err)
	}
	return nil
}

// Artifact implements store.Functions.
func (db *DB) Artifact(ctx context.Context, digest string) ([]byte, error) {
	var data []byte
	err := db.r.QueryRowContext(ctx, `SELECT data FROM artifacts WHERE digest = ?`, digest).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: artifact %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: artifact %s: %w", digest, err)
	}
	return data, nil
}

// CreateVersion implements store.Functions.
func (db *DB) CreateVersion(ctx context.Context, v store.Version, activate bool) (store.Version, error) {
	if err := validName(v.Namespace, v.Name); err != nil {
		return store.Version{}, fmt.Errorf("sqlite: create version: %w", err)
	}
	if !validDigest(v.ArtifactDigest) {
		return store.Version{}, fmt.Errorf("sqlite: create version of %s/%s: artifact digest is not lowercase hex sha256: %w",
			v.Namespace, v.Name, store.ErrInvalid)
	}
	if v.Digest == "" {
		v.Digest = store.VersionDigest(v.ArtifactDigest, v.Manifest)
	}
	if v.Manifest == nil {
		v.Manifest = []byte{}
	}
	v.CreatedAt = fromNanos(db.nanos(v.CreatedAt))
	created := v.CreatedAt.UnixNano()

	err := db.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT size FROM artifacts WHERE digest = ?`, v.ArtifactDigest).Scan(&v.ArtifactSize)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("artifact %s: %w", v.ArtifactDigest, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO functions (namespace, name, active_version, created_at, updated_at) VALUES (?, ?, 0, ?, ?)
			 ON CONFLICT (namespace, name) DO NOTHING`,
			v.Namespace, v.Name, created, created); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx,
			`SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE namespace = ? AND name = ?`,
			v.Namespace, v.Name).Scan(&v.Version); err != nil {
			return err
		}
		for path, d := range v.Files {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM artifacts WHERE digest = ?`, d).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("file %s (%s): %w", path, d, store.ErrNotFound)
			} else if err != nil {
				return err
			}
		}
		files, err := json.Marshal(v.Files)
		if err != nil || v.Files == nil {
			files = []byte("{}")
		}
		var sig, approval []byte
		if v.Signature != nil {
			if sig, err = json.Marshal(v.Signature); err != nil {
				return err
			}
		}
		approvalStatus := ""
		if v.Approval != nil {
			if approval, err = json.Marshal(v.Approval); err != nil {
				return err
			}
			approvalStatus = v.Approval.Status
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO versions (namespace, name, version, digest, artifact_digest, artifact_size, manifest, created_at, created_by, files, signature, envelope, scan, sbom, approval_status, approval)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			v.Namespace, v.Name, v.Version, v.Digest, v.ArtifactDigest, v.ArtifactSize, v.Manifest, created, v.CreatedBy, string(files),
			string(sig), v.Envelope, string(v.Scan), v.SBOM, approvalStatus, string(approval)); err != nil {
			return err
		}
		q := `UPDATE functions SET updated_at = ? WHERE namespace = ? AND name = ?`
		args := []any{created, v.Namespace, v.Name}
		if activate {
			q = `UPDATE functions SET updated_at = ?, active_version = ? WHERE namespace = ? AND name = ?`
			args = []any{created, v.Version, v.Namespace, v.Name}
		}
		_, err = tx.ExecContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return store.Version{}, fmt.Errorf("sqlite: create version of %s/%s: %w", v.Namespace, v.Name, err)
	}
	return v, nil
}

// Activate implements store.Functions.
func (db *DB) Activate(ctx context.Context, namespace, name string, version int) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx,
			`SELECT 1 FROM versions WHERE namespace = ? AND name = ? AND version = ?`,
			namespace, name, version).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE functions SET active_version = ?, updated_at = ? WHERE namespace = ? AND name = ?`,
			version, db.nanos(time.Time{}), namespace, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: activate %s/%s version %d: %w", namespace, name, version, err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanFunction(s scanner) (store.Function, error) {
	var f store.Function
	var created, updated int64
	if err := s.Scan(&f.Namespace, &f.Name, &f.ActiveVersion, &created, &updated); err != nil {
		return store.Function{}, err
	}
	f.CreatedAt, f.UpdatedAt = fromNanos(created), fromNanos(updated)
	return f, nil
}

const functionColumns = `namespace, name, active_version, created_at, updated_at`

// Function implements store.Functions.
func (db *DB) Function(ctx context.Context, namespace, name string) (store.Function, error) {
	f, err := scanFunction(db.r.QueryRowContext(ctx,
		`SELECT `+functionColumns+` FROM functions WHERE namespace = ? AND name = ?`, namespace, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Function{}, fmt.Errorf("sqlite: function %s/%s: %w", namespace, name, store.ErrNotFound)
	}
	if err != nil {
		return store.Function{}, fmt.Errorf("sqlite: function %s/%s: %w", namespace, name, err)
	}
	return f, nil
}

// ListFunctions implements store.Functions.
func (db *DB) ListFunctions(ctx context.Context) ([]store.Function, error) {
	return queryAll(ctx, db.r, "list functions", scanFunction, `SELECT `+functionColumns+` FROM functions ORDER BY namespace, name`)
}

const versionColumns = `namespace, name, version, digest, artifact_digest, artifact_size, manifest, created_at, created_by, files, signature, envelope, scan, sbom, approval, quarantine`

func scanVersion(s scanner) (store.Version, error) {
	var v store.Version
	var created int64
	var files, sig, report, approval string
	if err := s.Scan(&v.Namespace, &v.Name, &v.Version, &v.Digest, &v.ArtifactDigest, &v.ArtifactSize,
		&v.Manifest, &created, &v.CreatedBy, &files, &sig, &v.Envelope, &report, &v.SBOM, &approval, &v.Quarantine); err != nil {
		return store.Version{}, err
	}
	v.CreatedAt = fromNanos(created)
	if files != "{}" && files != "" {
		if err := json.Unmarshal([]byte(files), &v.Files); err != nil {
			return store.Version{}, fmt.Errorf("files column: %w", err)
		}
	}
	if sig != "" {
		v.Signature = new(store.Signature)
		if err := json.Unmarshal([]byte(sig), v.Signature); err != nil {
			return store.Version{}, fmt.Errorf("signature column: %w", err)
		}
	}
	if len(v.Envelope) == 0 {
		v.Envelope = nil
	}
	if report != "" {
		v.Scan = json.RawMessage(report)
	}
	if len(v.SBOM) == 0 {
		v.SBOM = nil
	}
	if approval != "" {
		v.Approval = new(store.Approval)
		if err := json.Unmarshal([]byte(approval), v.Approval); err != nil {
			return store.Version{}, fmt.Errorf("approval column: %w", err)
		}
	}
	return v, nil
}

// Version implements store.Functions.
func (db *DB) Version(ctx context.Context, namespace, name string, version int) (store.Version, error) {
	v, err := scanVersion(db.r.QueryRowContext(ctx,
		`SELECT `+versionColumns+` FROM versions WHERE namespace = ? AND name = ? AND version = ?`,
		namespace, name, version))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Version{}, fmt.Errorf("sqlite: version %d of %s/%s: %w", version, namespace, name, store.ErrNotFound)
	}
	if err != nil {
		return store.Version{}, fmt.Errorf("sqlite: version %d of %s/%s: %w", version, namespace, name, err)
	}
	return v, nil
}

// Versions implements store.Functions.
func (db *DB) Versions(ctx context.Context, namespace, name string) ([]store.Version, error) {
	var out []store.Version
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := mustExist(ctx, tx, `SELECT 1 FROM functions WHERE namespace = ? AND name = ?`, namespace, name); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx,
			`SELECT `+versionColumns+` FROM versions WHERE namespace = ? AND name = ? ORDER BY version DESC`,
			namespace, name)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scanVersion(rows)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: versions of %s/%s: %w", namespace, name, err)
	}
	return out, nil
}

// UpdateApproval implements store.Functions.
func (db *DB) UpdateApproval(ctx context.Context, namespace, name string, version int, from string, a store.Approval) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT approval_status FROM versions WHERE namespace = ? AND name = ? AND version = ?`,
			namespace, name, version).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		if status != from {
			return store.ErrConflict
		}
		_, err = tx.ExecContext(ctx, `UPDATE versions SET approval_status = ?, approval = ? WHERE namespace = ? AND name = ? AND version = ?`,
			a.Status, string(b), namespace, name, version)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: approval of %s/%s v%d: %w", namespace, name, version, err)
	}
	return nil
}

// SetQuarantine implements store.Functions.
func (db *DB) SetQuarantine(ctx context.Context, namespace, name string, version int, reason string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrNotFound, `UPDATE versions SET quarantine = ? WHERE namespace = ? AND name = ? AND version = ?`,
			reason, namespace, name, version)
	})
	if err != nil {
		return fmt.Errorf("sqlite: quarantine of %s/%s v%d: %w", namespace, name, version, err)
	}
	return nil
}

// PendingVersions implements store.Functions.
func (db *DB) PendingVersions(ctx context.Context) ([]store.Version, error) {
	return queryAll(ctx, db.r, "pending versions", scanVersion,
		`SELECT `+versionColumns+` FROM versions WHERE approval_status = 'pending' ORDER BY namespace, name, version`)
}

// DeleteFunction implements store.Functions.
func (db *DB) DeleteFunction(ctx context.Context, namespace, name string) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if err := mustExist(ctx, tx, `SELECT 1 FROM functions WHERE namespace = ? AND name = ?`, namespace, name); err != nil {
			return err
		}
		// The artifacts this function's versions referenced, before they go.
		var candidates []string
		rows, err := tx.QueryContext(ctx,
			`SELECT DISTINCT artifact_digest FROM versions WHERE namespace = ? AND name = ?`, namespace, name)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return err
			}
			candidates = append(candidates, d)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		// Explicit rather than relying on ON DELETE CASCADE alone.
		if _, err := tx.ExecContext(ctx, `DELETE FROM versions WHERE namespace = ? AND name = ?`, namespace, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM findings WHERE namespace = ? AND name = ?`, namespace, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM functions WHERE namespace = ? AND name = ?`, namespace, name); err != nil {
			return err
		}
		for _, d := range candidates {
			if _, err := tx.ExecContext(ctx,
				`DELETE FROM artifacts WHERE digest = ?
				   AND NOT EXISTS (SELECT 1 FROM versions WHERE versions.artifact_digest = ?)`, d, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete function %s/%s: %w", namespace, name, err)
	}
	return nil
}

// CreateCredential implements store.Credentials.
func (db *DB) CreateCredential(ctx context.Context, c store.Credential) error {
	if c.ID == "" {
		return fmt.Errorf("sqlite: create credential: empty id: %w", store.ErrInvalid)
	}
	hash := c.Hash
	if hash == nil {
		hash = []byte{}
	}
	kind := c.Kind
	if kind == "" {
		kind = store.KindAdmin
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrConflict,
			`INSERT INTO credentials (id, hash, name, role, created_at, revoked_at, kind, scopes, expires_at, last_used_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (id) DO NOTHING`,
			c.ID, hash, c.Name, c.Role, db.nanos(c.CreatedAt), optNanos(c.RevokedAt),
			kind, strings.Join(c.Scopes, " "), optNanos(c.ExpiresAt), optNanos(c.LastUsedAt))
	})
	if err != nil {
		return fmt.Errorf("sqlite: create credential %s: %w", c.ID, err)
	}
	return nil
}

const credentialColumns = `id, hash, name, role, created_at, revoked_at, kind, scopes, expires_at, last_used_at`

// optNanos stores an optional time as NULL or Unix nanoseconds.
func optNanos(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func optTime(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}

func scanCredential(s scanner) (store.Credential, error) {
	var c store.Credential
	var created int64
	var scopes string
	var revoked, expires, used sql.NullInt64
	if err := s.Scan(&c.ID, &c.Hash, &c.Name, &c.Role, &created, &revoked, &c.Kind, &scopes, &expires, &used); err != nil {
		return store.Credential{}, err
	}
	c.CreatedAt = fromNanos(created)
	c.RevokedAt, c.ExpiresAt, c.LastUsedAt = optTime(revoked), optTime(expires), optTime(used)
	c.Scopes = strings.Fields(scopes)
	return c, nil
}

// Credential implements store.Credentials.
func (db *DB) Credential(ctx context.Context, id string) (store.Credential, error) {
	c, err := scanCredential(db.r.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Credential{}, fmt.Errorf("sqlite: credential %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: credential %s: %w", id, err)
	}
	return c, nil
}

// ListCredentials implements store.Credentials.
func (db *DB) ListCredentials(ctx context.Context) ([]store.Credential, error) {
	return queryAll(ctx, db.r, "list credentials", scanCredential, `SELECT `+credentialColumns+` FROM credentials ORDER BY created_at, id`)
}

// RevokeCredential implements store.Credentials.
func (db *DB) RevokeCredential(ctx context.Context, id string, at time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var revoked sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM credentials WHERE id = ?`, id).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil || revoked.Valid {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE credentials SET revoked_at = ? WHERE id = ?`, db.nanos(at), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: revoke credential %s: %w", id, err)
	}
	return nil
}

// TouchCredential implements store.Credentials.
func (db *DB) TouchCredential(ctx context.Context, id string, at time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		return execAffecting(ctx, tx, store.ErrNotFound,
			`UPDATE credentials SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?`, db.nanos(at), id)
	})
	if err != nil {
		return fmt.Errorf("sqlite: touch credential %s: %w", id, err)
	}
	return nil
}

// AppendEvents implements store.Events. Each row records its class and
// size (see eventSize), and event_totals moves with it in the same
// transaction.
func (db *DB) AppendEvents(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ids := make([]int64, len(evs))
	times := make([]time.Time, len(evs))
	err := db.write(ctx, func(tx *sql.Tx) error {
		return db.insertEvents(ctx, tx, evs, ids, times)
	})
	if err != nil {
		return fmt.Errorf("sqlite: append %d events: %w", len(evs), err)
	}
	for i := range evs {
		evs[i].ID, evs[i].Time = ids[i], times[i]
	}
	return nil
}

// insertEvents stores evs in tx, setting ids[i] and times[i] to what each
// row got.
func (db *DB) insertEvents(ctx context.Context, tx *sql.Tx, evs []events.Event, ids []int64, times []time.Time) error {
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO events (time, type, outcome, namespace, function, request_id, body, class, size)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	var totals classTotals
	for i := range evs {
		e := evs[i]
		e.ID = 0
		e.Time = fromNanos(db.nanos(e.Time))
		body, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %d: %w", i, err)
		}
		class, size := events.ClassOf(e.Type), eventSize(e, body)
		res, err := stmt.ExecContext(ctx, e.Time.UnixNano(), e.Type, e.Outcome, e.Namespace, e.Function,
			e.RequestID, string(body), string(class), size)
		if err != nil {
			return err
		}
		// The transaction owns the connection: this is the id of our row.
		if ids[i], err = res.LastInsertId(); err != nil {
			return err
		}
		times[i] = e.Time
		totals.add(class, 1, size)
	}
	return totals.apply(ctx, tx)
}

// QueryEvents implements store.Events.
func (db *DB) QueryEvents(ctx context.Context, q store.EventQuery) ([]events.Event, error) {
	var where []string
	var args []any
	switch {
	case q.Type == "":
	case strings.HasSuffix(q.Type, "."):
		// A range instead of LIKE: no wildcard escaping, and it uses the index.
		// '/' is the byte after '.', so [p, p') holds exactly the strings with prefix p.
		where = append(where, `type >= ? AND type < ?`)
		args = append(args, q.Type, q.Type[:len(q.Type)-1]+"/")
	default:
		where = append(where, `type = ?`)
		args = append(args, q.Type)
	}
	if !q.Since.IsZero() {
		where = append(where, `time >= ?`)
		args = append(args, q.Since.UnixNano())
	}
	if q.AfterID > 0 {
		where = append(where, `id > ?`)
		args = append(args, q.AfterID)
	}
	limit := pageLimit(q.Limit)
	query := `SELECT id, time, body FROM events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, limit)

	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: query events: %w", err)
	}
	defer rows.Close()
	var out []events.Event
	for rows.Next() {
		var id, t int64
		var body []byte
		if err := rows.Scan(&id, &t, &body); err != nil {
			return nil, fmt.Errorf("sqlite: query events: %w", err)
		}
		var e events.Event
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, fmt.Errorf("sqlite: query events: decode event %d: %w", id, err)
		}
		e.ID, e.Time = id, fromNanos(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: query events: %w", err)
	}
	return out, nil
}

// pageLimit is a query's row limit: DefaultEventLimit for n <= 0, at most
// MaxEventLimit (events and KV change records page the same way).
func pageLimit(n int) int {
	if n <= 0 {
		return store.DefaultEventLimit
	}
	return min(n, store.MaxEventLimit)
}

// mustExist runs q, a query for one row, and returns store.ErrNotFound when
// it finds none.
func mustExist(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	var one int
	err := tx.QueryRowContext(ctx, q, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// execAffecting runs a statement in tx and returns none when it changed no
// row (ErrConflict for an insert that met an existing key, ErrNotFound for
// an update or delete of a missing one).
func execAffecting(ctx context.Context, tx *sql.Tx, none error, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return none
	}
	return nil
}

// queryAll runs a query on the reader pool and scans every row; what names
// the operation in errors.
func queryAll[T any](ctx context.Context, r *sql.DB, what string, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return out, nil
}
