package sqlite

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"warden/internal/store"
	"warden/internal/store/storetest"
)

func TestVault(t *testing.T) {
	storetest.RunVault(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// fakeClock is a DB clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// TestVaultStoreClock checks, with the store's clock under control, the
// times KVSet, KVDelete and PutSecret take from it.
func TestVaultStoreClock(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	ctx := context.Background()
	clock := &fakeClock{time.Date(2031, 1, 2, 3, 4, 5, 6, time.UTC)}
	db.now = clock.now
	t0 := clock.t

	// Grace is added to the store's now exactly.
	seal := func(v int) ([]byte, string, error) { return []byte{byte(v)}, "k", nil }
	if _, err := db.PutSecret(ctx, "default", "s", "", 0, seal); err != nil {
		t.Fatal(err)
	}
	clock.t = t0.Add(time.Minute)
	v2, err := db.PutSecret(ctx, "default", "s", "", 90*time.Second, seal)
	if err != nil || !v2.CreatedAt.Equal(clock.t) {
		t.Fatalf("PutSecret = %+v, %v; want CreatedAt %v", v2, err, clock.t)
	}
	v1, err := db.SecretVersion(ctx, "default", "s", 1)
	if want := clock.t.Add(90 * time.Second); err != nil || v1.RetiresAt == nil || !v1.RetiresAt.Equal(want) {
		t.Errorf("SecretVersion(1).RetiresAt = %v, %v; want %v", v1.RetiresAt, err, want)
	}
	// A grace that would overflow saturates instead of wrapping into the past.
	if _, err := db.PutSecret(ctx, "default", "s", "", time.Duration(1<<63-1), seal); err != nil {
		t.Fatal(err)
	}
	if d, err := db.DestroyRetiredSecrets(ctx, clock.t.Add(1000*time.Hour)); err != nil || len(d) != 1 || d[0].Version != 1 {
		t.Errorf("DestroyRetiredSecrets() = %+v, %v; want only version 1 (version 2 retires at the end of time)", d, err)
	}

	// KVSet judges an existing entry's expiry by the store's clock.
	exp := clock.t.Add(time.Hour)
	w := store.KVWrite{Namespace: "default", Bucket: "b", Key: "k", Size: 8, ExpiresAt: &exp, MaxBucketBytes: 10}
	if _, err := db.KVSet(ctx, w, seal); err != nil {
		t.Fatal(err)
	}
	other := store.KVWrite{Namespace: "default", Bucket: "b", Key: "other", Size: 8, MaxBucketBytes: 10}
	if _, err := db.KVSet(ctx, other, seal); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("KVSet(other) while k is live = %v, want ErrTooLarge", err)
	}
	clock.t = exp // k expires now: it no longer counts
	e, err := db.KVSet(ctx, other, seal)
	if err != nil || !e.UpdatedAt.Equal(exp) {
		t.Errorf("KVSet(other) once k expired = %+v, %v; want stored at %v", e, err, exp)
	}
	if err := db.KVDelete(ctx, store.KVWrite{Namespace: "default", Bucket: "b", Key: "k"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KVDelete(expired k) = %v, want ErrNotFound", err)
	}
	clock.t = exp.Add(time.Second)
	if err := db.KVDelete(ctx, store.KVWrite{Namespace: "default", Bucket: "b", Key: "other", Actor: "op"}); err != nil {
		t.Fatal(err)
	}
	ch, err := db.KVChanges(ctx, store.KVChangeQuery{})
	if err != nil || len(ch) != 3 || !ch[2].At.Equal(clock.t) || ch[2].Op != store.KVOpDelete {
		t.Errorf("KVChanges() = %+v, %v; want the delete last, at %v", ch, err, clock.t)
	}
}

// TestVaultMigrationDown checks that 00006 can be rolled back and applied
// again (its Down section is valid SQL and restores the previous schema).
func TestVaultMigrationDown(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	ctx := context.Background()
	if err := db.CreateUser(ctx, store.User{Name: "alice", Role: "admin", PasswordHash: "h", TOTPSecret: "x", TOTPKeyID: "k"}); err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.w, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("migrate down to 5 = %v", err)
	}
	var n int
	if err := db.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name IN ('secrets', 'kv_entries', 'egress_stats')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("vault tables after down = %d, %v; want 0", n, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrate up again = %v", err)
	}
	if u, err := db.User(ctx, "alice"); err != nil || u.TOTPKeyID != "" || u.TOTPSecret != "x" {
		t.Errorf("User(alice) after down and up = %+v, %v; want the user kept, key id reset", u, err)
	}
	if err := db.Check(ctx); err != nil {
		t.Errorf("Check() = %v", err)
	}
}

// TestKVListUsesIndex guards against a prefix query that scans the table.
func TestKVListUsesIndex(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	rows, err := db.r.QueryContext(context.Background(),
		`EXPLAIN QUERY PLAN SELECT key FROM kv_entries WHERE namespace = ? AND bucket = ? AND key >= ? AND key < ? ORDER BY key LIMIT 10`,
		"n", "b", "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if len(plan) != 1 || !containsAll(plan[0], "SEARCH", "key>?", "key<?") {
		t.Errorf("KVList query plan = %q, want one SEARCH on the primary key range", plan)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct {
		prefix, want string
		ok           bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"a/", "a0", true},
		{"é", "ê", true},
		{"a\U0010FFFF", "b", true},
		{"\U0010FFFF\U0010FFFF", "", false},
		{"x\uD7FF", "x\uE000", true},
		{"\x7f", "\u0080", true},
	} {
		got, ok := prefixEnd(tc.prefix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("prefixEnd(%q) = %q, %v, want %q, %v", tc.prefix, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzPrefixEnd(f *testing.F) {
	for _, s := range []string{"", "a", "é", "\U0010FFFF", "\uD7FF", "a\U0010FFFFb"} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		if !validText(prefix) || !validText(key) {
			return
		}
		end, ok := prefixEnd(prefix)
		inRange := key >= prefix && (!ok || key < end)
		if inRange != strings.HasPrefix(key, prefix) {
			t.Errorf("prefixEnd(%q) = %q, %v: key %q in range %v, has prefix %v", prefix, end, ok, key, inRange, !inRange)
		}
	})
}

// TestDestroyedBytesLeaveTheFiles: once a secret version is destroyed (or
// the secret deleted), its sealed bytes are in neither the database file
// nor the WAL, so a copy of the data directory does not hold them.
func TestDestroyedBytesLeaveTheFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warden.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	marker := func(tag string) []byte { return []byte("sealed-bytes-" + tag + "-0123456789abcdef0123456789") }
	put := func(name, tag string) {
		if _, err := db.PutSecret(ctx, "default", name, "t", 0, func(int) ([]byte, string, error) { return marker(tag), "k1", nil }); err != nil {
			t.Fatal(err)
		}
	}
	put("ROTATED", "v1")
	put("ROTATED", "v2") // v1 retires at once (grace 0)
	put("DELETED", "d1")
	inFiles := func(b []byte) bool {
		for _, suffix := range []string{"", "-wal"} {
			raw, err := os.ReadFile(path + suffix)
			if err == nil && bytes.Contains(raw, b) {
				return true
			}
		}
		return false
	}
	if !inFiles(marker("v1")) || !inFiles(marker("d1")) {
		t.Fatal("the test's markers are not in the files to begin with")
	}
	if out, err := db.DestroyRetiredSecrets(ctx, time.Now().Add(time.Second)); err != nil || len(out) != 1 {
		t.Fatalf("DestroyRetiredSecrets = %v, %v", out, err)
	}
	if err := db.DeleteSecret(ctx, "default", "DELETED"); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"v1", "d1"} {
		if inFiles(marker(tag)) {
			t.Errorf("destroyed bytes %s are still in the database files", tag)
		}
	}
	if !inFiles(marker("v2")) {
		t.Error("the current version's bytes are gone too")
	}
}
