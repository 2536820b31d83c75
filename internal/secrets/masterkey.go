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
)

// maxKeyFile bounds how much of a key file is read.
const maxKeyFile = 4096

// Master key errors.
var (
	// ErrKeyFileMode means a master key file is readable or writable by
	// group or others (permissions wider than 0600), or is not a regular file.
	ErrKeyFileMode = errors.New("secrets: master key file must be a regular file with mode 0600 or narrower")
	// ErrNoMasterKey means the named environment variable is unset or empty.
	ErrNoMasterKey = errors.New("secrets: master key environment variable is not set")
)

// LoadOrCreateMasterKey reads the master key from path, or creates a new
// random 32-byte key there if the file does not exist (created reports which).
//
// The file holds the key base64-encoded (standard or raw standard alphabet,
// surrounding whitespace ignored) or as raw bytes. It is refused with
// [ErrKeyFileMode] if group or others have any permission on it, and with
// [ErrMasterKeyShort] if the key is under [MasterKeySize] bytes. A new file is
// written base64-encoded with mode 0600, atomically: a temporary file in the
// same directory is written and fsynced, then linked into place, so a reader
// never sees a partial key. If another process creates the file first, its
// key is read and returned instead (created is false), so two servers racing
// on first start never end up with different keys. Missing parent
// directories are created with mode 0700.
//
// The returned key belongs to the caller, who should clear it once a
// provider is built. Errors never contain key bytes.
func LoadOrCreateMasterKey(path string) (key []byte, created bool, err error) {
	key, err = readMasterKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key, err = createMasterKey(path)
	if errors.Is(err, fs.ErrExist) {
		key, err = readMasterKey(path)
		return key, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// ReadMasterKey reads an operator-supplied master key file, with the checks
// of [LoadOrCreateMasterKey] (mode 0600 or narrower, at least
// [MasterKeySize] bytes); a missing file is an error, never a new key. The
// key belongs to the caller, who clears it after use.
func ReadMasterKey(path string) ([]byte, error) { return readMasterKey(path) }

func readMasterKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets: open master key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// the bytes read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: stat master key: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v", ErrKeyFileMode, path, fi.Mode())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("secrets: read master key: %w", err)
	}
	defer clear(data)
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("secrets: master key file %s is larger than %d bytes", path, maxKeyFile)
	}
	key := decodeKey(data)
	if len(key) < MasterKeySize {
		clear(key)
		return nil, fmt.Errorf("%w: in %s", ErrMasterKeyShort, path)
	}
	return key, nil
}

// decodeKey returns the base64 decoding of data if it is valid base64, else
// a copy of data as raw bytes. Random raw bytes are valid base64 with
// negligible probability, and 32 raw bytes that happen to be would decode to
// 24 bytes and be refused as short rather than silently misread.
func decodeKey(data []byte) []byte {
	text := bytes.TrimSpace(data)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		buf := make([]byte, enc.DecodedLen(len(text)))
		n, err := enc.Decode(buf, text)
		if err == nil && len(text) > 0 {
			return buf[:n]
		}
		clear(buf)
	}
	return bytes.Clone(data)
}

func createMasterKey(path string) (key []byte, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets: create master key directory: %w", err)
	}
	key = make([]byte, MasterKeySize)
	rand.Read(key)
	text := make([]byte, base64.StdEncoding.EncodedLen(len(key)), base64.StdEncoding.EncodedLen(len(key))+1)
	base64.StdEncoding.Encode(text, key)
	text = append(text, '\n')
	defer clear(text)

	tmp, err := os.CreateTemp(dir, ".master-key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("secrets: create master key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after the link the key lives on under path
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("secrets: create master key: %w", err)
	}
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("secrets: write master key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("secrets: sync master key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("secrets: close master key: %w", err)
	}
	// Link, unlike rename, refuses to replace a key another process wrote
	// in the meantime; ErrExist tells the caller to read that one.
	if err := os.Link(tmpName, path); err != nil {
		clear(key)
		if errors.Is(err, fs.ErrExist) {
			return nil, fs.ErrExist
		}
		return nil, fmt.Errorf("secrets: install master key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort on odd filesystems
		d.Close()
	}
	return key, nil
}

// MasterKeyFromEnv reads a base64-encoded master key (standard or raw
// standard alphabet) from the environment variable name. It returns
// [ErrNoMasterKey] if the variable is unset or empty and [ErrMasterKeyShort]
// if the key is under [MasterKeySize] bytes. Errors name the variable, never
// its value.
func MasterKeyFromEnv(name string) ([]byte, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return nil, fmt.Errorf("%w: %s", ErrNoMasterKey, name)
	}
	text := bytes.TrimSpace([]byte(v))
	defer clear(text)
	var key []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		buf := make([]byte, enc.DecodedLen(len(text)))
		n, err := enc.Decode(buf, text)
		if err == nil {
			key = buf[:n]
			break
		}
		clear(buf)
	}
	if key == nil {
		// The decoder's error quotes an offset, not bytes, but stay explicit.
		return nil, fmt.Errorf("secrets: %s is not valid base64", name)
	}
	if len(key) < MasterKeySize {
		clear(key)
		return nil, fmt.Errorf("%w: in %s", ErrMasterKeyShort, name)
	}
	return key, nil
}
