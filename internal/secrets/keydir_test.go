package secrets

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// dirState lists a key directory: key ids (sorted), CURRENT's id, and
// everything else in it.
type dirState struct {
	keys    []string
	current string
	other   []string
}

func readDirState(t *testing.T, dir string) dirState {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var st dirState
	for _, e := range entries {
		switch name := e.Name(); {
		case name == currentFile:
			st.current = strings.TrimSpace(string(mustRead(t, filepath.Join(dir, name))))
		case strings.HasSuffix(name, keyFileSuffix) && !strings.HasPrefix(name, "."):
			st.keys = append(st.keys, strings.TrimSuffix(name, keyFileSuffix))
		default:
			st.other = append(st.other, name)
		}
	}
	return st
}

func mustOpenKeyDir(t *testing.T, dir string) *KeyDir {
	t.Helper()
	kd, _, err := OpenKeyDir(dir)
	if err != nil {
		t.Fatalf("OpenKeyDir = %v", err)
	}
	return kd
}

func mustSeal(t *testing.T, k *Keyring, plaintext string, aad []byte) Sealed {
	t.Helper()
	s, err := k.Seal(context.Background(), []byte(plaintext), aad)
	if err != nil {
		t.Fatalf("Keyring.Seal: %v", err)
	}
	return s
}

func checkOpens(t *testing.T, k *Keyring, s Sealed, aad []byte, want string) {
	t.Helper()
	got, err := k.Open(context.Background(), s, aad)
	if err != nil || string(got) != want {
		t.Errorf("Keyring.Open(value under %s) = %q, %v; want %q", s.KeyID, got, err, want)
	}
}

func TestOpenKeyDirCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "keys")
	kd, created, err := OpenKeyDir(dir)
	if err != nil || !created {
		t.Fatalf("OpenKeyDir(new) = created %v, %v; want true, nil", created, err)
	}
	st := readDirState(t, dir)
	id := kd.Keyring().Current().KeyID()
	if !slices.Equal(st.keys, []string{id}) || st.current != id || len(st.other) != 0 {
		t.Fatalf("new key directory = %+v, want one key %s named by CURRENT and nothing else", st, id)
	}
	if !localKeyIDPattern.MatchString(id) {
		t.Errorf("generated key id = %q, want local- and 16 hex digits", id)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, id + keyFileSuffix: 0o600, currentFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %q = %v, want %v", name, got, want)
		}
	}
	// The file holds the key the id was derived from, base64-encoded.
	key, err := readMasterKey(filepath.Join(dir, id+keyFileSuffix))
	if err != nil || LocalKeyID(key) != id || len(key) != MasterKeySize {
		t.Fatalf("key file = %d bytes with id %q, %v; want %d bytes with id %q", len(key), LocalKeyID(key), err, MasterKeySize, id)
	}
	if bytes.Contains(mustRead(t, filepath.Join(dir, id+keyFileSuffix)), key) {
		t.Error("key file holds raw bytes; want base64 text")
	}

	aad := AAD("ns", "a", "1")
	s := mustSeal(t, kd.Keyring(), marker, aad)
	again, created, err := OpenKeyDir(dir)
	if err != nil || created {
		t.Fatalf("OpenKeyDir(existing) = created %v, %v; want false, nil", created, err)
	}
	if got := again.Keyring().IDs(); !slices.Equal(got, []string{id}) {
		t.Errorf("reopened IDs() = %q, want [%s]", got, id)
	}
	checkOpens(t, again.Keyring(), s, aad, marker)
}

func TestKeyDirRotate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kd := mustOpenKeyDir(t, dir)
	before := kd.Keyring()
	oldID := before.Current().KeyID()
	aadOld, aadNew := AAD("ns", "old", "1"), AAD("ns", "new", "1")
	sOld := mustSeal(t, before, marker, aadOld)

	ring, err := kd.Rotate()
	if err != nil {
		t.Fatalf("Rotate = %v", err)
	}
	newID := ring.Current().KeyID()
	if newID == oldID || !slices.Equal(ring.IDs(), []string{newID, oldID}) {
		t.Fatalf("Rotate().IDs() = %q, want a new current key then %s", ring.IDs(), oldID)
	}
	if kd.Keyring() != ring {
		t.Error("Keyring() after Rotate is not the keyring Rotate returned")
	}
	if got := before.IDs(); !slices.Equal(got, []string{oldID}) {
		t.Errorf("keyring taken before Rotate changed: IDs() = %q, want [%s]", got, oldID)
	}
	if st := readDirState(t, dir); st.current != newID || len(st.keys) != 2 || len(st.other) != 0 {
		t.Errorf("directory after Rotate = %+v, want CURRENT %s, 2 keys, nothing else", st, newID)
	}
	sNew := mustSeal(t, ring, "new value", aadNew)
	if sNew.KeyID != newID {
		t.Errorf("Seal after Rotate KeyID = %q, want %q", sNew.KeyID, newID)
	}
	checkOpens(t, ring, sOld, aadOld, marker)

	reopened := mustOpenKeyDir(t, dir)
	rk := reopened.Keyring()
	if got := rk.IDs(); !slices.Equal(got, []string{newID, oldID}) {
		t.Errorf("reopened IDs() = %q, want [%s %s]", got, newID, oldID)
	}
	checkOpens(t, rk, sOld, aadOld, marker)
	checkOpens(t, rk, sNew, aadNew, "new value")

	// Re-wrap the old value; the new key alone then opens it.
	r, err := rk.Rewrap(ctx, sOld, aadOld)
	if err != nil || r.KeyID != newID {
		t.Fatalf("Rewrap(old value) = key %q, %v; want key %q", r.KeyID, err, newID)
	}
	p, _ := rk.Provider(newID)
	checkOpens(t, testKeyring(t, p), r, aadOld, marker)
}

func TestKeyDirRetire(t *testing.T) {
	dir := t.TempDir()
	kd := mustOpenKeyDir(t, dir)
	oldID := kd.Keyring().Current().KeyID()
	ring, err := kd.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	newID := ring.Current().KeyID()

	var collected errs
	for _, tc := range []struct {
		name, id string
		want     error // nil: any error
	}{
		{"current", newID, nil},
		{"not-an-id", "../" + currentFile, nil},
		{"marker", marker, nil},
		{"missing", "local-0000000000000000", fs.ErrNotExist},
	} {
		err := kd.Retire(tc.id)
		collected.add(err)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("Retire(%s) = %v, want an error (%v)", tc.name, err, tc.want)
		}
	}
	if st := readDirState(t, dir); len(st.keys) != 2 || st.current != newID {
		t.Fatalf("directory after refused Retires = %+v, want both keys, CURRENT %s", st, newID)
	}
	t.Run("no-input-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })

	if err := kd.Retire(oldID); err != nil {
		t.Fatalf("Retire(old) = %v", err)
	}
	if got := kd.Keyring().IDs(); !slices.Equal(got, []string{newID}) {
		t.Errorf("IDs() after Retire = %q, want [%s]", got, newID)
	}
	if got := ring.IDs(); !slices.Equal(got, []string{newID, oldID}) {
		t.Errorf("keyring taken before Retire changed: IDs() = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, oldID+keyFileSuffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("retired key still in the directory: %v", err)
	}
	for name, want := range map[string]os.FileMode{retiredDir: 0o700, filepath.Join(retiredDir, oldID+keyFileSuffix): 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("after Retire: %v", err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %v, want %v", name, got, want)
		}
	}
	if err := kd.Retire(oldID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Retire(already retired) = %v, want %v", err, fs.ErrNotExist)
	}
	if got := mustOpenKeyDir(t, dir).Keyring().IDs(); !slices.Equal(got, []string{newID}) {
		t.Errorf("reopened IDs() after Retire = %q, want [%s]", got, newID)
	}

	// A crash between linking into retired/ and removing the original
	// leaves the key in both places; Retire again finishes the move.
	third, err := kd.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	name := newID + keyFileSuffix
	if err := os.Link(filepath.Join(dir, name), filepath.Join(dir, retiredDir, name)); err != nil {
		t.Fatal(err)
	}
	if got := mustOpenKeyDir(t, dir).Keyring().IDs(); !slices.Contains(got, newID) {
		t.Errorf("half-retired key not loaded: IDs() = %q", got)
	}
	if err := kd.Retire(newID); err != nil {
		t.Fatalf("Retire(half-retired) = %v", err)
	}
	if st := readDirState(t, dir); !slices.Equal(st.keys, []string{third.Current().KeyID()}) {
		t.Errorf("directory after finishing Retire = %+v, want only %s", st, third.Current().KeyID())
	}
}

// TestOpenKeyDirRefuses covers every directory OpenKeyDir must not use, and
// checks that it changes nothing in them.
func TestOpenKeyDirRefuses(t *testing.T) {
	// A 32-byte raw key that is the marker: it must not appear in errors.
	markerKey := []byte(marker + "12345678")
	markerID := LocalKeyID(markerKey)
	goodKey := bytes.Repeat([]byte{7}, 32)
	goodID := LocalKeyID(goodKey)
	b64 := func(k []byte) string { return base64.StdEncoding.EncodeToString(k) + "\n" }

	type file struct {
		content string
		mode    os.FileMode
	}
	var collected errs
	for _, tc := range []struct {
		name    string
		dirMode os.FileMode
		files   map[string]file
		want    error
	}{
		{"key-0644", 0o700, map[string]file{markerID + ".key": {string(markerKey), 0o644}, currentFile: {markerID, 0o600}}, ErrKeyFileMode},
		{"key-0640", 0o700, map[string]file{goodID + ".key": {b64(goodKey), 0o640}, currentFile: {goodID, 0o600}}, ErrKeyFileMode},
		{"other-key-0604", 0o700, map[string]file{goodID + ".key": {b64(goodKey), 0o600}, markerID + ".key": {string(markerKey), 0o604}, currentFile: {goodID, 0o600}}, ErrKeyFileMode},
		{"current-0644", 0o700, map[string]file{goodID + ".key": {b64(goodKey), 0o600}, currentFile: {goodID, 0o644}}, ErrKeyFileMode},
		{"dir-0770", 0o770, map[string]file{goodID + ".key": {b64(goodKey), 0o600}, currentFile: {goodID, 0o600}}, ErrKeyDirMode},
		{"dir-0702", 0o702, map[string]file{goodID + ".key": {b64(goodKey), 0o600}, currentFile: {goodID, 0o600}}, ErrKeyDirMode},
		{"current-names-missing-key", 0o700, map[string]file{goodID + ".key": {b64(goodKey), 0o600}, currentFile: {markerID + "\n", 0o600}}, ErrKeyDirInconsistent},
		{"current-names-missing-only-key", 0o700, map[string]file{currentFile: {goodID, 0o600}}, ErrKeyDirInconsistent},
		{"current-holds-key", 0o700, map[string]file{markerID + ".key": {string(markerKey), 0o600}, currentFile: {marker, 0o600}}, ErrKeyDirInconsistent},
		{"current-empty", 0o700, map[string]file{goodID + ".key": {b64(goodKey), 0o600}, currentFile: {"", 0o600}}, ErrKeyDirInconsistent},
		{"key-misnamed", 0o700, map[string]file{goodID + ".key": {string(markerKey), 0o600}, currentFile: {goodID, 0o600}}, ErrKeyDirInconsistent},
		{"key-short", 0o700, map[string]file{goodID + ".key": {marker, 0o600}, currentFile: {goodID, 0o600}}, ErrMasterKeyShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for name, f := range tc.files {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, []byte(f.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, f.mode); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			before := readDirState(t, dir)
			kd, created, err := OpenKeyDir(dir)
			collected.add(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenKeyDir(%s) = %v, want %v", tc.name, err, tc.want)
			}
			if kd != nil || created {
				t.Errorf("OpenKeyDir(%s) returned a KeyDir or created=%v with an error", tc.name, created)
			}
			// Above all, no key was generated in place of a missing one.
			if after := readDirState(t, dir); !slices.Equal(after.keys, before.keys) || after.current != before.current || len(after.other) != 0 {
				t.Errorf("OpenKeyDir(%s) changed the directory: %+v, was %+v", tc.name, after, before)
			}
		})
	}
	t.Run("not-a-directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := OpenKeyDir(path); err == nil {
			t.Error("OpenKeyDir(a file) = nil, want an error")
		}
	})
	t.Run("no-key-in-errors", func(t *testing.T) { collected.checkNoMarker(t) })
}

// TestKeyDirCrashBeforeSwitch simulates a crash in Rotate after the new key
// was written and before CURRENT named it, plus a temporary file left over.
func TestKeyDirCrashBeforeSwitch(t *testing.T) {
	dir := t.TempDir()
	kd := mustOpenKeyDir(t, dir)
	oldID := kd.Keyring().Current().KeyID()
	aad := AAD("ns", "a", "1")
	s := mustSeal(t, kd.Keyring(), marker, aad)

	extra, err := generateKey(dir) // Rotate's first step, alone
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tmpPattern+"123"), []byte("half a key"), 0o600); err != nil {
		t.Fatal(err)
	}

	kd2, created, err := OpenKeyDir(dir)
	if err != nil || created {
		t.Fatalf("OpenKeyDir(after crash) = created %v, %v; want false, nil", created, err)
	}
	k := kd2.Keyring()
	if k.Current().KeyID() != oldID {
		t.Errorf("current after crash = %s, want the old current %s", k.Current().KeyID(), oldID)
	}
	if _, ok := k.Provider(extra.KeyID()); !ok || len(k.IDs()) != 2 {
		t.Errorf("IDs() after crash = %q, want %s and the extra key %s", k.IDs(), oldID, extra.KeyID())
	}
	checkOpens(t, k, s, aad, marker)
	// The next rotation proceeds normally.
	ring, err := kd2.Rotate()
	if err != nil || len(ring.IDs()) != 3 {
		t.Fatalf("Rotate after crash = %v, %v; want 3 keys", ring.IDs(), err)
	}
	checkOpens(t, ring, s, aad, marker)
}

// TestOpenKeyDirAdopts covers a first start that crashed after writing its
// key but before CURRENT: the key is adopted, not replaced.
func TestOpenKeyDirAdopts(t *testing.T) {
	dir := t.TempDir()
	orphan, err := generateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	kd, created, err := OpenKeyDir(dir)
	if err != nil || !created {
		t.Fatalf("OpenKeyDir(orphan key) = created %v, %v; want true, nil", created, err)
	}
	if got := kd.Keyring().IDs(); !slices.Equal(got, []string{orphan.KeyID()}) {
		t.Errorf("IDs() = %q, want only the orphan key %s", got, orphan.KeyID())
	}
	if st := readDirState(t, dir); st.current != orphan.KeyID() || len(st.keys) != 1 {
		t.Errorf("directory = %+v, want CURRENT naming the one key %s", st, orphan.KeyID())
	}
}

// TestOpenKeyDirRace starts many first opens at once: all agree on one
// current key and exactly one reports created.
func TestOpenKeyDirRace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	const n = 16
	kds := make([]*KeyDir, n)
	createdBy := make([]bool, n)
	errsOut := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { kds[i], createdBy[i], errsOut[i] = OpenKeyDir(dir) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errsOut[i] != nil {
			t.Fatalf("OpenKeyDir (caller %d) = %v", i, errsOut[i])
		}
		if got, want := kds[i].Keyring().Current().KeyID(), kds[0].Keyring().Current().KeyID(); got != want {
			t.Fatalf("caller %d has current %s, caller 0 has %s", i, got, want)
		}
		if createdBy[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d callers report created, want 1", creators)
	}
	if st := readDirState(t, dir); st.current != kds[0].Keyring().Current().KeyID() || len(st.other) != 0 {
		t.Errorf("directory = %+v, want CURRENT %s and no temporary files", st, kds[0].Keyring().Current().KeyID())
	}
}

// TestKeyDirConcurrent rotates from many goroutines while others seal and
// open through Keyring: every value stays readable, and CURRENT ends up
// naming the last key made current.
func TestKeyDirConcurrent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kd := mustOpenKeyDir(t, dir)
	const rotators, sealers, perSealer = 8, 4, 20
	type value struct {
		s   Sealed
		aad []byte
	}
	var (
		mu     sync.Mutex
		sealed []value
		wg     sync.WaitGroup
	)
	for i := range rotators {
		wg.Go(func() {
			if _, err := kd.Rotate(); err != nil {
				t.Errorf("Rotate (goroutine %d) = %v", i, err)
			}
		})
	}
	for i := range sealers {
		wg.Go(func() {
			for j := range perSealer {
				aad := AAD("v", strconv.Itoa(i), strconv.Itoa(j))
				s, err := kd.Keyring().Seal(ctx, []byte(marker), aad)
				if err != nil {
					t.Errorf("Seal = %v", err)
					return
				}
				// Another goroutine may have rotated since: the newer
				// keyring still opens it.
				if _, err := kd.Keyring().Open(ctx, s, aad); err != nil {
					t.Errorf("Open right after Seal = %v", err)
				}
				mu.Lock()
				sealed = append(sealed, value{s, aad})
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	final := kd.Keyring()
	if got := len(final.IDs()); got != 1+rotators {
		t.Errorf("keys after %d rotations = %d, want %d", rotators, got, 1+rotators)
	}
	st := readDirState(t, dir)
	if st.current != final.Current().KeyID() || len(st.keys) != 1+rotators || len(st.other) != 0 {
		t.Errorf("directory = %+v, want CURRENT %s, %d keys, nothing else", st, final.Current().KeyID(), 1+rotators)
	}
	reopened := mustOpenKeyDir(t, dir).Keyring()
	if reopened.Current().KeyID() != final.Current().KeyID() {
		t.Errorf("reopened current = %s, want %s", reopened.Current().KeyID(), final.Current().KeyID())
	}
	if len(sealed) != sealers*perSealer {
		t.Fatalf("sealed %d values, want %d", len(sealed), sealers*perSealer)
	}
	for _, v := range sealed {
		checkOpens(t, reopened, v.s, v.aad, marker)
	}
}

// TestKeyDirTwoHandles rotates through two KeyDirs on one directory at once,
// as two processes would: the directory stays consistent and every key
// either made current is there.
func TestKeyDirTwoHandles(t *testing.T) {
	dir := t.TempDir()
	a, b := mustOpenKeyDir(t, dir), mustOpenKeyDir(t, dir)
	const n = 5
	var wg sync.WaitGroup
	var ringsMu sync.Mutex
	var currents []string
	for _, kd := range []*KeyDir{a, b} {
		wg.Go(func() {
			for range n {
				r, err := kd.Rotate()
				if err != nil {
					t.Errorf("Rotate = %v", err)
					return
				}
				ringsMu.Lock()
				currents = append(currents, r.Current().KeyID())
				ringsMu.Unlock()
			}
		})
	}
	wg.Wait()
	reopened := mustOpenKeyDir(t, dir).Keyring()
	if got := len(reopened.IDs()); got != 1+2*n {
		t.Errorf("keys after %d rotations = %d, want %d", 2*n, got, 1+2*n)
	}
	for _, id := range currents {
		if _, ok := reopened.Provider(id); !ok {
			t.Errorf("key %s, current at some point, is missing after reopen", id)
		}
	}
	if cur := reopened.Current().KeyID(); cur != a.Keyring().Current().KeyID() && cur != b.Keyring().Current().KeyID() {
		t.Errorf("CURRENT = %s, want the last key either handle made current", cur)
	}
}

// withCrashAt makes the n-th installFile step (counting from 0) crash, and
// returns a func giving the steps seen so far.
func withCrashAt(t *testing.T, n int) func() []string {
	t.Helper()
	var steps []string
	crashPoint = func(step string) bool {
		steps = append(steps, step)
		return len(steps)-1 == n
	}
	t.Cleanup(func() { crashPoint = nil })
	return func() []string { return steps }
}

// rotateSteps is every step of a Rotate at which a crash is simulated:
// writing the new key, then switching CURRENT.
var rotateSteps = []string{"write *.key", "install *.key", "sync *.key", "write CURRENT", "install CURRENT", "sync CURRENT"}

// TestKeyDirRotateCrash crashes Rotate at each step in turn. Whatever the
// step, the directory reopens, CURRENT names a key it holds, every value
// sealed before opens, and rotation works again.
func TestKeyDirRotateCrash(t *testing.T) {
	for n, step := range rotateSteps {
		t.Run(strings.ReplaceAll(step, " ", "-"), func(t *testing.T) {
			dir := t.TempDir()
			kd := mustOpenKeyDir(t, dir)
			oldID := kd.Keyring().Current().KeyID()
			aad := AAD("ns", "a", "1")
			s := mustSeal(t, kd.Keyring(), marker, aad)

			steps := withCrashAt(t, n)
			_, err := kd.Rotate()
			crashPoint = nil
			if !errors.Is(err, errCrash) {
				t.Fatalf("Rotate with a crash at %q = %v, want the crash (steps %q)", step, err, steps())
			}
			if got := steps(); len(got) != n+1 || !stepMatches(got[n], step) {
				t.Fatalf("steps until the crash = %q, want step %d to be %q", got, n, step)
			}
			if got := kd.Keyring().Current().KeyID(); got != oldID {
				t.Errorf("Keyring() after a failed Rotate has current %s, want %s", got, oldID)
			}

			kd2, created, err := OpenKeyDir(dir)
			if err != nil || created {
				t.Fatalf("OpenKeyDir after a crash at %q = created %v, %v; want false, nil", step, created, err)
			}
			k := kd2.Keyring()
			cur := k.Current().KeyID()
			switch wantNew := step == "sync CURRENT"; {
			case wantNew && cur == oldID, !wantNew && cur != oldID:
				t.Errorf("current after a crash at %q = %s (old %s), want the new key only once CURRENT was renamed", step, cur, oldID)
			}
			checkOpens(t, k, s, aad, marker)
			if _, err := kd2.Rotate(); err != nil {
				t.Fatalf("Rotate after a crash at %q = %v", step, err)
			}
			checkOpens(t, kd2.Keyring(), s, aad, marker)
		})
	}
	// Without a crash, Rotate takes exactly these steps in this order: the
	// key is durable before CURRENT is touched.
	kd := mustOpenKeyDir(t, t.TempDir())
	steps := withCrashAt(t, -1)
	if _, err := kd.Rotate(); err != nil {
		t.Fatal(err)
	}
	got := steps()
	if len(got) != len(rotateSteps) {
		t.Fatalf("Rotate steps = %q, want %q", got, rotateSteps)
	}
	for i := range got {
		if !stepMatches(got[i], rotateSteps[i]) {
			t.Errorf("Rotate step %d = %q, want %q", i, got[i], rotateSteps[i])
		}
	}
}

// TestOpenKeyDirCreateCrash crashes the first OpenKeyDir at each step: the
// next one succeeds, reports created, and leaves one CURRENT naming a key.
func TestOpenKeyDirCreateCrash(t *testing.T) {
	for n, step := range rotateSteps {
		t.Run(strings.ReplaceAll(step, " ", "-"), func(t *testing.T) {
			dir := t.TempDir()
			withCrashAt(t, n)
			_, _, err := OpenKeyDir(dir)
			crashPoint = nil
			if !errors.Is(err, errCrash) {
				t.Fatalf("OpenKeyDir with a crash at %q = %v, want the crash", step, err)
			}
			kd, created, err := OpenKeyDir(dir)
			// After CURRENT was linked, the directory is complete.
			if wantCreated := step != "sync CURRENT"; err != nil || created != wantCreated {
				t.Fatalf("OpenKeyDir after a crash at %q = created %v, %v; want %v, nil", step, created, err, wantCreated)
			}
			st := readDirState(t, dir)
			if st.current != kd.Keyring().Current().KeyID() || len(st.keys) != 1 {
				t.Errorf("directory after a crash at %q = %+v, want one key named by CURRENT", step, st)
			}
		})
	}
}

// stepMatches reports whether an installFile step matches a pattern in
// which "*" stands for a key id.
func stepMatches(step, pattern string) bool {
	ok, err := filepath.Match(pattern, step)
	return err == nil && ok
}
