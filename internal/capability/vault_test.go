package capability

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"warden/internal/secrets"
	"warden/internal/store"
	"warden/internal/store/sqlite"
)

// fixture is a vault over a fresh SQLite store with a managed key dir.
type fixture struct {
	t     testing.TB
	dir   string
	db    *sqlite.DB
	kd    *secrets.KeyDir
	vault *Vault
	now   time.Time
}

func newFixture(t *testing.T) *fixture { return newFixtureTB(t) }

func newFixtureTB(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	kd, _, err := secrets.OpenKeyDir(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: dir, db: db, kd: kd, now: time.Now().UTC()} // the store stamps rows with the real clock
	f.vault = NewVault(db, kd.Keyring(), VaultConfig{Now: func() time.Time { return f.now }, KVMaxBucket: 4096, KVMaxValue: 2048})
	return f
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSecretLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	v1 := []byte("sk_test_first-version-value")
	v2 := []byte("sk_test_second-version-value")

	if _, err := f.vault.PutSecret(ctx, "default", "STRIPE_KEY", v1, "op", false, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotate of a missing secret = %v, want ErrNotFound", err)
	}
	sv, err := f.vault.PutSecret(ctx, "default", "STRIPE_KEY", v1, "op", true, time.Hour)
	if err != nil || sv.Version != 1 {
		t.Fatalf("PutSecret create = %+v, %v", sv, err)
	}
	if _, err := f.vault.PutSecret(ctx, "default", "STRIPE_KEY", v1, "op", true, time.Hour); !errors.Is(err, ErrExists) {
		t.Fatalf("create twice = %v, want ErrExists", err)
	}
	for _, bad := range []struct{ ns, name string }{{"default", "lower"}, {"default", "1ABC"}, {"Bad NS", "OK"}, {"default", ""}} {
		if _, err := f.vault.PutSecret(ctx, bad.ns, bad.name, v1, "op", true, 0); !errors.Is(err, ErrBadName) {
			t.Errorf("PutSecret(%q, %q) = %v, want ErrBadName", bad.ns, bad.name, err)
		}
	}
	if _, err := f.vault.PutSecret(ctx, "default", "EMPTY", nil, "op", true, 0); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty value = %v, want ErrEmpty", err)
	}
	if _, err := f.vault.PutSecret(ctx, "default", "BIG", make([]byte, MaxSecretSize+1), "op", true, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized value = %v, want ErrTooLarge", err)
	}

	got, ver, err := f.vault.ReadSecret(ctx, "default", "STRIPE_KEY", false)
	if err != nil || ver != 1 || !bytes.Equal(got, v1) {
		t.Fatalf("ReadSecret = %q v%d %v", got, ver, err)
	}
	if _, _, err := f.vault.ReadSecret(ctx, "default", "STRIPE_KEY", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("previous of a first version = %v, want ErrNotFound", err)
	}
	if _, _, err := f.vault.ReadSecret(ctx, "other", "STRIPE_KEY", false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another namespace's secret = %v, want ErrNotFound", err)
	}

	// Rotate: the new value is visible at once (the cache is dropped on
	// this node), the previous one stays readable for the grace period.
	if sv, err = f.vault.PutSecret(ctx, "default", "STRIPE_KEY", v2, "op", false, time.Hour); err != nil || sv.Version != 2 {
		t.Fatalf("rotate = %+v, %v", sv, err)
	}
	if got, ver, _ = f.vault.ReadSecret(ctx, "default", "STRIPE_KEY", false); ver != 2 || !bytes.Equal(got, v2) {
		t.Fatalf("after rotate ReadSecret = %q v%d, want v2", got, ver)
	}
	if got, ver, _ = f.vault.ReadSecret(ctx, "default", "STRIPE_KEY", true); ver != 1 || !bytes.Equal(got, v1) {
		t.Fatalf("previous within grace = %q v%d, want v1", got, ver)
	}
	// After the grace period the sweep destroys v1.
	f.now = f.now.Add(2 * time.Hour)
	destroyed, _, err := f.vault.Sweep(ctx)
	if err != nil || len(destroyed) != 1 || destroyed[0].Version != 1 {
		t.Fatalf("Sweep = %+v, %v; want v1 destroyed", destroyed, err)
	}
	if _, _, err := f.vault.ReadSecret(ctx, "default", "STRIPE_KEY", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("previous after its grace = %v, want ErrNotFound", err)
	}
	if err := f.vault.DeleteSecret(ctx, "default", "STRIPE_KEY"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.vault.ReadSecret(ctx, "default", "STRIPE_KEY", false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete = %v, want ErrNotFound", err)
	}
}

// TestSwappedCiphertextRefused plays an attacker with write access to the
// database: a secret's sealed bytes copied onto another secret's row, and an
// old version put back in place of the current one, do not open.
func TestSwappedCiphertextRefused(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	mustPut := func(name, val string, create bool) {
		if _, err := f.vault.PutSecret(ctx, "default", name, []byte(val), "op", create, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	mustPut("PUBLIC_ISH", "value-the-attacker-may-read", true)
	mustPut("ADMIN_KEY", "the-value-to-protect-1", true)
	mustPut("ADMIN_KEY", "the-value-to-protect-2", false)

	raw, err := sql.Open("sqlite", filepath.Join(f.dir, "warden.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// Copy ADMIN_KEY v2's bytes onto PUBLIC_ISH v1.
	if _, err := raw.ExecContext(ctx, `UPDATE secret_versions SET sealed = (SELECT sealed FROM secret_versions WHERE name = 'ADMIN_KEY' AND version = 2)
		WHERE name = 'PUBLIC_ISH' AND version = 1`); err != nil {
		t.Fatal(err)
	}
	f.vault.ForgetAll()
	if v, _, err := f.vault.ReadSecret(ctx, "default", "PUBLIC_ISH", false); err == nil || bytes.Contains(v, []byte("protect")) {
		t.Fatalf("swapped ciphertext opened: %q, %v", v, err)
	} else if !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("swapped ciphertext error = %v, want ErrDecrypt", err)
	}
	// Put ADMIN_KEY v1's bytes in place of v2 (a rollback of the value).
	if _, err := raw.ExecContext(ctx, `UPDATE secret_versions SET sealed = (SELECT sealed FROM secret_versions WHERE name = 'ADMIN_KEY' AND version = 1)
		WHERE name = 'ADMIN_KEY' AND version = 2`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.vault.ReadSecret(ctx, "default", "ADMIN_KEY", false); !errors.Is(err, secrets.ErrDecrypt) {
		t.Fatalf("old version in place of the current one: %v, want ErrDecrypt", err)
	}
}

func TestKV(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	w := func(key string) store.KVWrite {
		return store.KVWrite{Namespace: "default", Bucket: "orders", Key: key, Function: "shop", FunctionVersion: 3}
	}
	if _, err := f.vault.KVSet(ctx, w("a"), []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.vault.KVSet(ctx, w("b"), []byte("two"), time.Minute); err != nil {
		t.Fatal(err)
	}
	v, e, err := f.vault.KVGet(ctx, "default", "orders", "a")
	if err != nil || string(v) != "one" || e.Version != 1 {
		t.Fatalf("KVGet = %q %+v %v", v, e, err)
	}
	if _, err := f.vault.KVSet(ctx, w("c"), make([]byte, 2049), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("value over the limit = %v, want ErrTooLarge", err)
	}
	for i := range 3 { // 2 × 132 so far; 2 more × (1700+1+128) fit in 4096, a third does not
		if _, err := f.vault.KVSet(ctx, w(string(rune('x'+i))), make([]byte, 1700), 0); err != nil && i < 2 {
			t.Fatal(err)
		} else if i == 2 && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("write over the bucket quota = %v, want ErrTooLarge", err)
		}
	}
	for _, bad := range []store.KVWrite{{Namespace: "default", Bucket: "Orders", Key: "k"}, {Namespace: "default", Bucket: "orders", Key: ""}, {Namespace: "default", Bucket: "orders", Key: "a\x00b"}} {
		if _, err := f.vault.KVSet(ctx, bad, []byte("v"), 0); !errors.Is(err, ErrBadName) {
			t.Errorf("KVSet(%+v) = %v, want ErrBadName", bad, err)
		}
	}
	if _, err := f.vault.KVSet(ctx, store.KVWrite{Namespace: "default", Bucket: "orders", Key: "bad\xffutf8"}, []byte("v"), 0); !errors.Is(err, ErrBadName) {
		t.Errorf("key that is not UTF-8 = %v, want ErrBadName", err)
	}
	if _, err := f.vault.KVSet(ctx, w("ttl"), []byte("v"), MaxKVTTL+time.Hour); !errors.Is(err, ErrBadName) {
		t.Errorf("ttl past the maximum = %v, want ErrBadName", err)
	}
	// Empty values are not free: a bucket cannot be filled with keys.
	var quotaErr error
	for i := 0; i < 100 && quotaErr == nil; i++ {
		_, quotaErr = f.vault.KVSet(ctx, store.KVWrite{Namespace: "default", Bucket: "keys-only", Key: strings.Repeat("k", 500) + strconv.Itoa(i)}, nil, 0)
	}
	if !errors.Is(quotaErr, ErrTooLarge) {
		t.Errorf("100 keys of 500 bytes with empty values in a 4096-byte bucket: %v, want ErrTooLarge", quotaErr)
	}
	f.now = f.now.Add(2 * time.Minute)
	if _, _, err := f.vault.KVGet(ctx, "default", "orders", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired key = %v, want ErrNotFound", err)
	}
	if _, n, err := f.vault.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep expired %d, %v; want 1", n, err)
	}
	if err := f.vault.KVDelete(ctx, w("a")); err != nil {
		t.Fatal(err)
	}
	if err := f.vault.KVDelete(ctx, w("a")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice = %v, want ErrNotFound", err)
	}
	// A key set again after delete gets a new version: an old ciphertext
	// can never be put back under a version it was not sealed for.
	e, err = f.vault.KVSet(ctx, w("a"), []byte("again"), 0)
	if err != nil || e.Version != 2 {
		t.Fatalf("set after delete = %+v, %v; want version 2", e, err)
	}
	ch, err := f.db.KVChanges(ctx, store.KVChangeQuery{Namespace: "default", Bucket: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	ops := ""
	for _, c := range ch {
		ops += c.Op + ":" + c.Key + " "
		if c.Op != store.KVOpExpire && (c.Function != "shop" || c.FunctionVersion != 3) {
			t.Errorf("change %+v does not name the writer", c)
		}
	}
	if ops != "set:a set:b set:x set:y expire:b delete:a set:a " {
		t.Errorf("change records = %q", ops)
	}
}

// TestRewrapAfterRotation seals values under one master key, rotates the
// managed key dir, re-wraps, and opens everything with the new key alone.
func TestRewrapAfterRotation(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	for i, name := range []string{"A_KEY", "B_KEY", "C_KEY"} {
		if _, err := f.vault.PutSecret(ctx, "default", name, []byte("secret-value-"+name), "op", true, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.vault.KVSet(ctx, store.KVWrite{Namespace: "default", Bucket: "b", Key: name}, []byte{byte(i), 1, 2}, 0); err != nil {
			t.Fatal(err)
		}
	}
	sealed, keyID, err := f.vault.SealTOTP(ctx, "alice", "JBSWY3DPEHPK3PXP")
	if err != nil {
		t.Fatal(err)
	}
	old := f.vault.Keyring().Current().KeyID()
	kr, err := f.kd.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	f.vault.SetKeyring(kr)
	n, err := f.vault.Rewrap(ctx)
	if err != nil || n != 6 {
		t.Fatalf("Rewrap = %d, %v; want 6 (3 secrets, 3 KV values; no TOTP row stored)", n, err)
	}
	ids, err := f.db.SealedKeyIDs(ctx)
	if err != nil || ids[old] != 0 || ids[kr.Current().KeyID()] != 6 {
		t.Fatalf("SealedKeyIDs = %v, %v; want all 6 under the new key", ids, err)
	}
	// Only the new key now.
	only, err := secrets.NewKeyring(kr.Current())
	if err != nil {
		t.Fatal(err)
	}
	f.vault.SetKeyring(only)
	for _, name := range []string{"A_KEY", "B_KEY", "C_KEY"} {
		if v, _, err := f.vault.ReadSecret(ctx, "default", name, false); err != nil || string(v) != "secret-value-"+name {
			t.Errorf("ReadSecret(%s) after rewrap = %q, %v", name, v, err)
		}
		if _, _, err := f.vault.KVGet(ctx, "default", "b", name); err != nil {
			t.Errorf("KVGet(%s) after rewrap: %v", name, err)
		}
	}
	// The TOTP seed sealed under the old key is not readable with the new
	// key alone (it was never stored, so nothing re-wrapped it).
	if _, err := f.vault.OpenTOTP(ctx, "alice", sealed, keyID); err == nil {
		t.Error("a value under a key no longer loaded opened")
	}
	if got, err := f.vault.OpenTOTP(ctx, "bob", "PLAINSEED", ""); err != nil || got != "PLAINSEED" {
		t.Errorf("OpenTOTP of a seed stored as given = %q, %v", got, err)
	}
}
