package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warden/internal/capability"
	"warden/internal/config"
	"warden/internal/secrets"
	"warden/internal/server"
	"warden/internal/store"
	"warden/internal/store/sqlite"
)

// openVault opens a stopped server's data directory as the server does.
func openVault(t *testing.T, data string) (*sqlite.DB, *capability.Vault) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = data
	db, err := sqlite.Open(cfg.DBPath())
	if err != nil {
		t.Fatal(err)
	}
	kd, _, err := secrets.OpenKeyDir(cfg.KeyDir())
	if err != nil {
		t.Fatal(err)
	}
	return db, capability.NewVault(db, kd.Keyring(), capability.VaultConfig{})
}

const rotationValues = 500 // secrets, and as many KV values

func secretValue(i int) string { return fmt.Sprintf("value-%04d-of-the-rotation-test", i) }

// readAll checks that every value written by TestKillDuringMasterKeyRotation
// opens with the keys in the data directory.
func readAll(t *testing.T, v *capability.Vault) {
	t.Helper()
	ctx := context.Background()
	for i := range rotationValues {
		name := fmt.Sprintf("S_%04d", i)
		got, _, err := v.ReadSecret(ctx, "default", name, false)
		if err != nil || string(got) != secretValue(i) {
			t.Fatalf("secret %s unreadable after the kill: %v", name, err)
		}
		kv, _, err := v.KVGet(ctx, "default", "b", name)
		if err != nil || string(kv) != secretValue(i) {
			t.Fatalf("KV value %s unreadable after the kill: %v", name, err)
		}
	}
}

// TestKillDuringMasterKeyRotation: SIGKILL while the server re-wraps every
// data key under a new master key leaves every value readable, and the next
// start finishes the re-wrap and retires the old key.
func TestKillDuringMasterKeyRotation(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills a server process mid-rotation; skipped with -short")
	}
	data := t.TempDir()
	ctx := context.Background()
	// Write the values directly, as a server would, before it starts.
	db, v := openVault(t, data)
	for i := range rotationValues {
		name := fmt.Sprintf("S_%04d", i)
		if _, err := v.PutSecret(ctx, "default", name, []byte(secretValue(i)), "test", true, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := v.KVSet(ctx, store.KVWrite{Namespace: "default", Bucket: "b", Key: name, Actor: "test"}, []byte(secretValue(i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	oldKey := v.Keyring().Current().KeyID()
	db.Close()

	in := &instance{t: t, data: data}
	midway := false
	for round := 1; round <= 12 && !midway; round++ {
		p := startProc(t, data)
		in.setClient(t)
		// A start after a kill resumes the interrupted re-wrap; a rotation
		// is refused (409) until it ends.
		var out, e string
		code := 1
		for deadline := time.Now().Add(30 * time.Second); code != 0 && time.Now().Before(deadline); {
			if out, e, code = in.cliAt(p.admin, "secrets", "master-key", "rotate", "--json"); code != 0 {
				if !strings.Contains(e, "already running") {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if code != 0 {
			p.kill()
			t.Fatalf("round %d: master-key rotate: exit %d %s", round, code, e)
		}
		var st capability.KeyStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		// Kill as soon as the first batch is committed under the new key
		// (read from the live database, as a second process would).
		waitForRewrapStart(t, filepath.Join(data, "warden.db"), st.Current)
		p.kill()
		// Offline: count the keys values are under, and read them all.
		db, v := openVault(t, data)
		ids, err := db.SealedKeyIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		under := 0
		for _, n := range ids {
			if n > 0 {
				under++
			}
		}
		midway = under > 1
		t.Logf("round %d: killed with values under %d keys (%v); rotate answered %+v", round, under, ids, st)
		readAll(t, v)
		db.Close()
	}
	if !midway {
		t.Fatal("no kill landed in the middle of a re-wrap in 12 rounds; the test proved nothing")
	}

	// A clean start finishes the re-wrap and retires every old key.
	srv := start(t, data)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := srv.mustCLI("secrets", "master-key", "--json")
		var st capability.KeyStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		if !st.Rewrapping && len(st.Keys) == 1 && st.Keys[0].ID == st.Current && st.Keys[0].Values == 2*rotationValues {
			if st.Current == oldKey {
				t.Fatal("the current key is still the first one")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-wrap did not finish: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.stop()
	if matches, _ := filepath.Glob(filepath.Join(data, "keys", "retired", "*.key")); len(matches) == 0 {
		t.Error("no old key was retired")
	}
	db, v = openVault(t, data)
	defer db.Close()
	readAll(t, v)
}

// TestOperatorMasterKeyRotation: with keys the operator supplies, a
// restart with the new key and --previous-master-key-file re-wraps
// everything; afterwards the new key alone opens every value, and a start
// with a wrong key reports values it cannot read instead of serving
// garbage.
func TestOperatorMasterKeyRotation(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	keyA, keyB := filepath.Join(t.TempDir(), "a.key"), filepath.Join(t.TempDir(), "b.key")
	for _, p := range []string{keyA, keyB} {
		k, _, err := secrets.LoadOrCreateMasterKey(p)
		if err != nil {
			t.Fatal(err)
		}
		clear(k)
	}
	withKeys := func(cur, prev string) func(*config.Config) {
		return func(c *config.Config) { c.MasterKeyFile, c.PreviousMasterKeyFile = cur, prev }
	}
	status := func(in *instance) capability.KeyStatus {
		var st capability.KeyStatus
		if err := json.Unmarshal([]byte(in.mustCLI("secrets", "master-key", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	in := startWith(t, data, withKeys(keyA, ""))
	if st := status(in); st.Source != "external" {
		t.Fatalf("status with --master-key-file = %+v, want source external", st)
	}
	if _, err := os.Stat(filepath.Join(data, "keys")); !os.IsNotExist(err) {
		t.Fatalf("a managed key dir was created although the operator gave a key (%v)", err)
	}
	in.mustCLIStdin("value-under-key-a-123", "secrets", "set", "ROTATE_ME", "--from-stdin")
	if _, errOut, code := in.cli("secrets", "master-key", "rotate"); code != 1 || !strings.Contains(errOut, "409") {
		t.Fatalf("online rotate of an operator key: exit %d %s, want 409", code, errOut)
	}
	idA := status(in).Current
	in.stop()

	// The new key without the previous one, or no key at all (a fresh
	// managed key would be generated): the server refuses to start rather
	// than serve values it cannot read, naming the key that is missing.
	for _, keys := range [][2]string{{keyB, ""}, {"", ""}} {
		cfg := config.Default()
		cfg.DataDir, cfg.Listen, cfg.AdminListen = data, "127.0.0.1:0", "127.0.0.1:0"
		cfg.MasterKeyFile, cfg.PreviousMasterKeyFile = keys[0], keys[1]
		_, err := server.New(context.Background(), cfg, server.Options{})
		if err == nil || !strings.Contains(err.Error(), idA) || !strings.Contains(err.Error(), "not loaded") {
			t.Fatalf("start with keys %q: %v, want a refusal naming %s", keys, err, idA)
		}
	}
	var st capability.KeyStatus

	// New key plus the previous one: re-wrapped at start.
	in = startWith(t, data, withKeys(keyB, keyA))
	deadline := time.Now().Add(20 * time.Second)
	for st = status(in); st.Rewrapping || st.Keys[0].Values != 1; st = status(in) {
		if time.Now().After(deadline) {
			t.Fatalf("re-wrap did not finish: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.stop()

	// The new key alone opens it.
	cfg := config.Default()
	cfg.DataDir = data
	db, err := sqlite.Open(cfg.DBPath())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := secrets.ReadMasterKey(keyB)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.ExternalKeyring(b)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := capability.NewVault(db, kr, capability.VaultConfig{}).ReadSecret(context.Background(), "default", "ROTATE_ME", false)
	if err != nil || string(got) != "value-under-key-a-123" {
		t.Fatalf("after rotation, the new key alone: %v", err)
	}
}

// TestMasterKeyFromEnvironment: WARDEN_MASTER_KEY is used when no file is
// given; a malformed one stops the start with a message that holds no key.
func TestMasterKeyFromEnvironment(t *testing.T) {
	t.Setenv(config.MasterKeyEnv, "c2hvcnQ=") // "short": refused
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.AdminListen = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	_, err := server.New(context.Background(), cfg, server.Options{})
	if err == nil || !strings.Contains(err.Error(), config.MasterKeyEnv) || strings.Contains(err.Error(), "c2hvcnQ") {
		t.Fatalf("short key in the environment: %v", err)
	}
	t.Setenv(config.MasterKeyEnv, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	in := start(t, t.TempDir())
	var st capability.KeyStatus
	if err := json.Unmarshal([]byte(in.mustCLI("secrets", "master-key", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Source != "external" {
		t.Fatalf("status = %+v, want the environment's key", st)
	}
}

// waitForRewrapStart polls the live database, read-only, until some value
// is sealed under key (at most 20 s).
func waitForRewrapStart(t *testing.T, path, key string) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		var n int
		err := db.QueryRow(`SELECT (SELECT COUNT(*) FROM secret_versions WHERE key_id = ?) + (SELECT COUNT(*) FROM kv_entries WHERE key_id = ?)`, key, key).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the re-wrap did not start within 20s")
}
