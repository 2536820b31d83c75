package secrets

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateMasterKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "master.key")
	key, created, err := LoadOrCreateMasterKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreateMasterKey(new) = %v", err)
	}
	if !created || len(key) != MasterKeySize {
		t.Fatalf("LoadOrCreateMasterKey(new) = %d bytes, created=%v; want %d, true", len(key), created, MasterKeySize)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("created key file mode = %v, want 0600", got)
	}
	if bytes.Contains(mustRead(t, path), key) {
		t.Error("key file holds raw bytes; want base64 text")
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want 1 (no temporary file left)", len(entries))
	}

	again, created, err := LoadOrCreateMasterKey(path)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Fatalf("LoadOrCreateMasterKey(existing) = equal=%v, created=%v, %v; want the same key, false, nil", bytes.Equal(again, key), created, err)
	}
	// The loaded key works: a value sealed with it opens with the reloaded key.
	p1, _ := NewLocalProvider(key, "k")
	p2, _ := NewLocalProvider(again, "k")
	s, err := Seal(context.Background(), p1, []byte(marker), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), p2, s, nil); err != nil {
		t.Fatalf("Open with the reloaded key = %v", err)
	}
}

func TestLoadMasterKeyFormats(t *testing.T) {
	raw := bytes.Repeat([]byte{0xa5, 0x00, 0xff, 0x13}, 8) // 32 bytes, not base64
	want := bytes.Repeat([]byte{7}, 32)
	markerKey := []byte(marker) // 24 bytes: too short, and must not appear in errors
	var collected errs
	for _, tc := range []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    []byte
		wantErr error
	}{
		{"base64", []byte(base64.StdEncoding.EncodeToString(want) + "\n"), 0o600, want, nil},
		{"base64-raw", []byte(base64.RawStdEncoding.EncodeToString(want)), 0o600, want, nil},
		{"raw", raw, 0o600, raw, nil},
		{"owner-read-only", []byte(base64.StdEncoding.EncodeToString(want)), 0o400, want, nil},
		{"mode-0644", []byte(base64.StdEncoding.EncodeToString(want)), 0o644, nil, ErrKeyFileMode},
		{"mode-0640", []byte(base64.StdEncoding.EncodeToString(want)), 0o640, nil, ErrKeyFileMode},
		{"mode-0604", []byte(base64.StdEncoding.EncodeToString(want)), 0o604, nil, ErrKeyFileMode},
		{"short-base64", []byte(base64.StdEncoding.EncodeToString(want[:31])), 0o600, nil, ErrMasterKeyShort},
		{"short-raw", raw[:31], 0o600, nil, ErrMasterKeyShort},
		{"short-marker", markerKey, 0o600, nil, ErrMasterKeyShort},
		{"empty", nil, 0o600, nil, ErrMasterKeyShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, created, err := LoadOrCreateMasterKey(path)
			collected.add(err)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("LoadOrCreateMasterKey(%s) = %v, want %v", tc.name, err, tc.wantErr)
				}
				if got != nil || created {
					t.Errorf("LoadOrCreateMasterKey(%s) returned a key or created=%v with an error", tc.name, created)
				}
				if after := mustRead(t, path); !bytes.Equal(after, tc.content) {
					t.Error("a refused key file was modified")
				}
				return
			}
			if err != nil || created || !bytes.Equal(got, tc.want) {
				t.Fatalf("LoadOrCreateMasterKey(%s) = equal=%v, created=%v, %v; want the key, false, nil", tc.name, bytes.Equal(got, tc.want), created, err)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		_, _, err := LoadOrCreateMasterKey(t.TempDir())
		if !errors.Is(err, ErrKeyFileMode) {
			t.Fatalf("LoadOrCreateMasterKey(directory) = %v, want %v", err, ErrKeyFileMode)
		}
	})
	t.Run("no-key-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })
}

// TestCreateMasterKeyRace starts many first starts at once: all must return
// the same key, exactly one reports created.
func TestCreateMasterKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 16
	keys := make([][]byte, n)
	createdBy := make([]bool, n)
	errsOut := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], createdBy[i], errsOut[i] = LoadOrCreateMasterKey(path) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errsOut[i] != nil {
			t.Fatalf("LoadOrCreateMasterKey (caller %d) = %v", i, errsOut[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("caller %d got a different key than caller 0", i)
		}
		if createdBy[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d callers report created, want 1", creators)
	}
}

func TestMasterKeyFromEnv(t *testing.T) {
	const name = "WARDEN_TEST_MASTER_KEY"
	want := bytes.Repeat([]byte{9}, 32)
	var collected errs
	for _, tc := range []struct {
		name    string
		value   *string
		want    []byte
		wantErr error
	}{
		{"std", ptr(base64.StdEncoding.EncodeToString(want)), want, nil},
		{"raw-std-spaces", ptr(" " + base64.RawStdEncoding.EncodeToString(want) + "\n"), want, nil},
		{"unset", nil, nil, ErrNoMasterKey},
		{"empty", ptr(""), nil, ErrNoMasterKey},
		{"short", ptr(base64.StdEncoding.EncodeToString(want[:16])), nil, ErrMasterKeyShort},
		{"marker-not-base64", ptr(marker + "!!"), nil, nil},
		{"marker-base64-short", ptr(base64.StdEncoding.EncodeToString([]byte(marker))), nil, ErrMasterKeyShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.value != nil {
				t.Setenv(name, *tc.value)
			} else {
				t.Setenv(name, "x") // registers restore
				os.Unsetenv(name)
			}
			got, err := MasterKeyFromEnv(name)
			collected.add(err)
			if tc.want != nil {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("MasterKeyFromEnv(%s) = equal=%v, %v; want the key", tc.name, bytes.Equal(got, tc.want), err)
				}
				return
			}
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("MasterKeyFromEnv(%s) = %v, want %v", tc.name, err, tc.wantErr)
			}
			if got != nil {
				t.Errorf("MasterKeyFromEnv(%s) returned a key with an error", tc.name)
			}
		})
	}
	t.Run("no-key-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })
}

func ptr(s string) *string { return &s }

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
