package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Names inside a key directory.
const (
	currentFile   = "CURRENT"   // holds the current key's id and a newline
	retiredDir    = "retired"   // keys no longer loaded, kept for old backups
	keyFileSuffix = ".key"      // <id>.key holds one base64 master key
	tmpPattern    = ".tmp-key-" // temporary files; never end in .key
)

// Key directory errors.
var (
	// ErrKeyDirMode means a key directory (or its retired/ directory) is
	// writable by group or others, or is not a directory.
	ErrKeyDirMode = errors.New("secrets: key directory must be a directory not writable by group or others")
	// ErrKeyDirInconsistent means a key directory's files contradict each
	// other: CURRENT names a key that is not there or holds no key id, or a
	// key file's content does not match its name. It is never repaired by
	// generating a key, which would hide lost data; an operator restores the
	// missing file (from a backup or retired/) instead.
	ErrKeyDirInconsistent = errors.New("secrets: key directory is inconsistent")
)

// KeyDir is a directory of local master keys that the server generates and
// keeps itself (the default when the operator supplies no master key):
//
//	<dir>/<id>.key          one base64 master key each, mode 0600, id = [LocalKeyID]
//	<dir>/CURRENT           the id of the key new values are sealed under
//	<dir>/retired/<id>.key  keys no longer loaded
//
// Every <id>.key in dir is loaded, so a value sealed under any of them opens.
// Rotation: [KeyDir.Rotate] makes a new key current; the caller then
// re-wraps every stored value with [Keyring.Rewrap] and, once none is left
// under the old key, calls [KeyDir.Retire] on it. Retired keys are kept only
// to read old backups; delete them when those backups age out.
//
// A KeyDir is safe for concurrent use: [KeyDir.Keyring] never blocks, and
// Rotate and Retire are serialised. Its methods never put key bytes in an
// error; paths and key ids are not secret.
//
// # Notes
//   - Crash safety: at every instant the directory holds every key a stored
//     value can be wrapped under (all but those the caller retired), and
//     once CURRENT exists it names a key file that exists. Key files are
//     only ever added (written to a temporary file, fsynced, hard-linked
//     into place, directory fsynced) and, by Retire, moved to retired/
//     (linked there, then removed here); none is ever overwritten. CURRENT
//     is only written (by link the first time, by rename after) once its key
//     is durable. A crash between writing a new key and switching CURRENT
//     leaves one extra, unused key, which is loaded like any other and
//     harmless; a crash mid-write leaves a ".tmp-key-*" file, ignored (and
//     safe to delete).
//   - No value is sealed under a new key before Rotate returns, and by then
//     both the key file and CURRENT are durable.
//   - If CURRENT is missing (a first start that crashed before writing it),
//     an existing key is made current: the only one, else the smallest id.
//     Any choice is safe because all keys stay loaded.
//   - One process should manage a directory. Two processes (or two KeyDirs)
//     sharing one keep the invariants above, but each sees keys the other
//     added only when it reopens the directory.
//   - A directory fsync failure is an error, not ignored: a key whose name
//     may not survive a crash is never made current.
type KeyDir struct {
	dir  string
	mu   sync.Mutex // serialises Rotate and Retire
	ring atomic.Pointer[Keyring]
}

// OpenKeyDir opens the key directory dir, creating it (mode 0700, with
// parents) if missing. If it holds no CURRENT file and no key, a new random
// 32-byte key is generated and made current; created reports that this call
// made the directory's first current key. Concurrent first opens (also from
// other processes) agree on one current key.
//
// It refuses, with [ErrKeyDirMode], a dir writable by group or others; with
// [ErrKeyFileMode], a key file or CURRENT with any group or other permission;
// with [ErrMasterKeyShort], a short key; and with [ErrKeyDirInconsistent], a
// CURRENT naming a missing key or not holding a key id, or a key file whose
// content does not match its name. Files starting with "." and everything
// under retired/ are ignored.
func OpenKeyDir(dir string) (kd *KeyDir, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("secrets: create key directory: %w", err)
	}
	if err := checkDirMode(dir); err != nil {
		return nil, false, err
	}
	// Another opener (in this or another process) can win the race to write
	// the first CURRENT; then the next pass reads its choice.
	for range 3 {
		// Read CURRENT before listing keys: its key was durable before it
		// was written, so the listing cannot miss it.
		id, err := readCurrent(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		keys, err := loadKeys(dir)
		if err != nil {
			return nil, false, err
		}
		if id == "" {
			// No CURRENT: adopt an existing key, or generate the first.
			if len(keys) == 0 {
				p, err := generateKey(dir)
				if err != nil {
					return nil, false, err
				}
				keys = append(keys, p)
			}
			id = keys[0].KeyID() // keys are sorted by id
			err := installFile(dir, currentFile, []byte(id+"\n"), true)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				return nil, false, fmt.Errorf("secrets: write key directory CURRENT: %w", err)
			}
			created = true
		}
		ring, err := keyringOf(dir, id, keys)
		if err != nil {
			return nil, false, err
		}
		kd = &KeyDir{dir: dir}
		kd.ring.Store(ring)
		return kd, created, nil
	}
	return nil, false, fmt.Errorf("%w: %s: CURRENT appears and disappears while opening", ErrKeyDirInconsistent, dir)
}

// Keyring returns the keys loaded from the directory, the current one
// current. It never blocks; the result is immutable and stays valid (and
// unchanged) after a later Rotate or Retire.
func (kd *KeyDir) Keyring() *Keyring { return kd.ring.Load() }

// Rotate generates a new key, makes it current and returns the new keyring:
// the new key current, every key loaded before still there to open older
// values. The key file is durable before CURRENT is switched (see the crash
// notes on [KeyDir]). On error the keyring is unchanged; the directory may
// then hold an extra key, or (if only the final directory fsync failed) name
// the new key in CURRENT, both harmless.
func (kd *KeyDir) Rotate() (*Keyring, error) {
	kd.mu.Lock()
	defer kd.mu.Unlock()
	p, err := generateKey(kd.dir)
	if err != nil {
		return nil, err
	}
	if err := installFile(kd.dir, currentFile, []byte(p.KeyID()+"\n"), false); err != nil {
		return nil, fmt.Errorf("secrets: switch key directory CURRENT to %s: %w", p.KeyID(), err)
	}
	ring, err := NewKeyring(p, kd.ring.Load().providers()...)
	if err != nil {
		return nil, err
	}
	kd.ring.Store(ring)
	return ring, nil
}

// Retire moves the key keyID from the directory to retired/ (created with
// mode 0700), so it is no longer loaded, now or on the next open. Call it
// only once no stored value is wrapped under keyID any more (after
// re-wrapping them all with [Keyring.Rewrap]): values still under it stop
// opening. It refuses the current key (in memory or on disk), an id that is
// not a local key id, and a key that is not in the directory (an error
// wrapping [fs.ErrNotExist]).
func (kd *KeyDir) Retire(keyID string) error {
	kd.mu.Lock()
	defer kd.mu.Unlock()
	if !validLocalKeyID(keyID) {
		// Not echoed: it may be anything, even a key pasted by mistake.
		return errors.New("secrets: retire: not a local key id")
	}
	ring := kd.ring.Load()
	onDisk, err := readCurrent(kd.dir)
	if err != nil {
		return fmt.Errorf("secrets: retire %s: %w", keyID, err)
	}
	if keyID == ring.Current().KeyID() || keyID == onDisk {
		return fmt.Errorf("secrets: retire %s: it is the current key", keyID)
	}
	rdir := filepath.Join(kd.dir, retiredDir)
	if err := os.Mkdir(rdir, 0o700); err == nil {
		if err := syncDir(kd.dir); err != nil {
			return fmt.Errorf("secrets: retire %s: %w", keyID, err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("secrets: retire %s: create %s: %w", keyID, rdir, err)
	}
	if err := checkDirMode(rdir); err != nil {
		return fmt.Errorf("secrets: retire %s: %w", keyID, err)
	}
	name := keyID + keyFileSuffix
	src, dst := filepath.Join(kd.dir, name), filepath.Join(rdir, name)
	// Link then remove, never rename: a file already in retired/ is not
	// replaced, and a crash in between leaves the key in both places (still
	// loaded, so harmless; Retire again finishes the move).
	if err := os.Link(src, dst); errors.Is(err, fs.ErrExist) {
		if err := sameKeyFile(dst, keyID); err != nil {
			return fmt.Errorf("secrets: retire %s: %w", keyID, err)
		}
	} else if err != nil {
		return fmt.Errorf("secrets: retire %s: %w", keyID, err)
	}
	if err := syncDir(rdir); err != nil {
		return fmt.Errorf("secrets: retire %s: %w", keyID, err)
	}
	if err := os.Remove(src); err != nil {
		return fmt.Errorf("secrets: retire %s: %w", keyID, err)
	}
	if err := syncDir(kd.dir); err != nil {
		return fmt.Errorf("secrets: retire %s: %w", keyID, err)
	}
	others := slices.DeleteFunc(slices.Clone(ring.providers()[1:]), func(p KeyProvider) bool { return p.KeyID() == keyID })
	next, err := NewKeyring(ring.Current(), others...)
	if err != nil {
		return err
	}
	kd.ring.Store(next)
	return nil
}

// keyringOf builds the keyring of a directory whose CURRENT names id.
func keyringOf(dir, id string, keys []*LocalProvider) (*Keyring, error) {
	i := slices.IndexFunc(keys, func(p *LocalProvider) bool { return p.KeyID() == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s names key %s, but %s is missing; restore it (from a backup or %s/) rather than start without it",
			ErrKeyDirInconsistent, filepath.Join(dir, currentFile), id, id+keyFileSuffix, retiredDir)
	}
	others := make([]KeyProvider, 0, len(keys)-1)
	for j, p := range keys {
		if j != i {
			others = append(others, p)
		}
	}
	return NewKeyring(keys[i], others...)
}

// sameKeyFile checks that the key file at path holds the key named id.
func sameKeyFile(path, id string) error {
	key, err := readMasterKey(path)
	if err != nil {
		return err
	}
	defer clear(key)
	if LocalKeyID(key) != id {
		return fmt.Errorf("%w: %s exists and holds another key", ErrKeyDirInconsistent, path)
	}
	return nil
}

// checkDirMode refuses a path that is not a directory or that group or
// others can write.
func checkDirMode(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("secrets: key directory: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %v", ErrKeyDirMode, dir, fi.Mode())
	}
	return nil
}

// readCurrent returns the key id CURRENT holds. A missing CURRENT gives an
// error wrapping [fs.ErrNotExist].
func readCurrent(dir string) (string, error) {
	path := filepath.Join(dir, currentFile)
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secrets: open key directory CURRENT: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("secrets: stat key directory CURRENT: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %v", ErrKeyFileMode, path, fi.Mode())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyID+2))
	if err != nil {
		return "", fmt.Errorf("secrets: read key directory CURRENT: %w", err)
	}
	defer clear(data)
	id := string(bytes.TrimSpace(data))
	if !validLocalKeyID(id) {
		// The content is not echoed: it could be a key pasted by mistake.
		return "", fmt.Errorf("%w: %s does not hold a key id", ErrKeyDirInconsistent, path)
	}
	return id, nil
}

// loadKeys reads every <id>.key in dir (not hidden files, not retired/) and
// returns their providers sorted by id. A key whose [LocalKeyID] is not its
// file name is refused: the name is what CURRENT and Retire refer to.
func loadKeys(dir string) ([]*LocalProvider, error) {
	entries, err := os.ReadDir(dir) // sorted by name, so by id
	if err != nil {
		return nil, fmt.Errorf("secrets: list key directory: %w", err)
	}
	var keys []*LocalProvider
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, keyFileSuffix) || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		key, err := readMasterKey(path) // checks mode and size
		if err != nil {
			return nil, err
		}
		id := LocalKeyID(key)
		if id+keyFileSuffix != name {
			clear(key)
			return nil, fmt.Errorf("%w: %s holds key %s; a key file must be named after its key", ErrKeyDirInconsistent, path, id)
		}
		p, err := NewLocalProvider(key, id)
		clear(key)
		if err != nil {
			return nil, fmt.Errorf("secrets: %s: %w", path, err)
		}
		keys = append(keys, p)
	}
	return keys, nil
}

// generateKey writes a new random master key to dir as <id>.key and returns
// its provider. The key file is durable (file and directory fsynced) when it
// returns.
func generateKey(dir string) (*LocalProvider, error) {
	key := make([]byte, MasterKeySize)
	defer clear(key)
	rand.Read(key) // never fails (crypto/rand, Go 1.24+)
	text := make([]byte, base64.StdEncoding.EncodedLen(len(key)), base64.StdEncoding.EncodedLen(len(key))+1)
	defer clear(text)
	base64.StdEncoding.Encode(text, key)
	text = append(text, '\n')
	p, err := NewLocalProviderFromKey(key)
	if err != nil {
		return nil, err
	}
	// Exclusive: a new key never replaces a file, even one with its name.
	if err := installFile(dir, p.KeyID()+keyFileSuffix, text, true); err != nil {
		return nil, fmt.Errorf("secrets: write key %s: %w", p.KeyID(), err)
	}
	return p, nil
}

// installFile puts data at dir/name atomically: it writes a temporary file
// in dir (mode 0600), fsyncs it, then hard-links it to name if exclusive
// (failing with an error wrapping [fs.ErrExist] if name exists, like
// createMasterKey) or renames it over name otherwise, and finally fsyncs
// dir. A reader sees the old content or the whole new one, and on success
// the new name survives a crash. The temporary file never outlives the call
// (unless the process dies), and data is not retained.
func installFile(dir, name string, data []byte, exclusive bool) error {
	tmp, err := os.CreateTemp(dir, tmpPattern+"*") // mode 0600
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	crashed := false
	defer func() {
		// After a link the file lives on under name; after a rename this
		// fails harmlessly. A simulated crash leaves it, as a real one would.
		if !crashed {
			os.Remove(tmpName)
		}
	}()
	if crashed = crash("write " + name); crashed {
		tmp.Close()
		return errCrash
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if crashed = crash("install " + name); crashed {
		return errCrash
	}
	dst := filepath.Join(dir, name)
	if exclusive {
		err = os.Link(tmpName, dst)
	} else {
		err = os.Rename(tmpName, dst)
	}
	if err != nil {
		return err
	}
	if crashed = crash("sync " + name); crashed {
		return errCrash
	}
	return syncDir(dir)
}

// crashPoint, set only by tests, is called before each step of installFile
// that a crash could interrupt; returning true stops the write there with
// errCrash, leaving the directory as a crash at that instant would.
var crashPoint func(step string) bool

var errCrash = errors.New("simulated crash")

func crash(step string) bool { return crashPoint != nil && crashPoint(step) }

// syncDir fsyncs a directory, making the names in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
