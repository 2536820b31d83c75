package capability

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"warden/internal/secrets"
	"warden/internal/store"
)

// VaultStore is what the vault needs from persistence.
type VaultStore interface {
	store.Secrets
	store.KV
	store.Sealing
}

// Vault errors, matched with errors.Is. Their text never holds a value.
var (
	ErrExists   = errors.New("secret already exists")
	ErrBadName  = errors.New("invalid name")
	ErrTooLarge = errors.New("value too large")
	ErrEmpty    = errors.New("empty value")
)

// Name rules (the manifest applies the same ones to grants).
var (
	secretName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,127}$`)
	bucketName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	nsName     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// Limits of the vault.
const (
	MaxSecretSize      = 64 << 10 // bytes per secret value
	DefaultKVMaxValue  = 1 << 20  // bytes per KV value
	DefaultKVMaxBucket = 64 << 20 // live bytes per bucket
	DefaultSecretGrace = 24 * time.Hour
	DefaultSecretTTL   = 2 * time.Second // how long a node serves a cached secret before looking again
	MaxKVKey           = 1024
	MaxKVTTL           = 10 * 365 * 24 * time.Hour
	// KVEntryOverhead is what one KV entry counts against its bucket's
	// quota besides its key and value (the envelope and the row).
	KVEntryOverhead     = 128
	rewrapBatch         = 100
	rewrapPause         = 10 * time.Millisecond
	previousVersionName = "@previous"
)

// Vault keeps secrets and KV values encrypted at rest with envelope
// encryption (package secrets) under the current keyring.
//
// # Notes
//   - Every sealed value's associated data names its row: ("secret",
//     namespace, name, version), ("kv", namespace, bucket, key, version) or
//     ("totp", user); a ciphertext copied to another row, or an old version
//     put back in place of a newer one, does not open.
//   - Function reads of secrets go through a per-node cache of the sealed
//     current version and its unwrapped data key (DefaultSecretTTL): a
//     rotation on this node is visible at once, on other nodes within the
//     TTL. Plaintext is never cached; each read decrypts.
//   - The keyring can be swapped (SetKeyring) while the vault serves:
//     values under any key in the keyring stay readable, new values are
//     sealed under its current key, and Rewrap moves the rest.
//   - Safe for concurrent use.
type Vault struct {
	st       VaultStore
	keyring  atomic.Pointer[secrets.Keyring]
	now      func() time.Time
	ttl      time.Duration
	maxValue int
	maxBkt   int64

	mu    sync.Mutex
	cache map[secretKey]*cachedSecret
	// gen counts invalidations per secret (and all) so that a load that
	// raced with a rotation or delete does not store a stale entry.
	gen    map[secretKey]uint64
	genAll uint64
}

type secretKey struct{ ns, name string }

// cachedSecret is the sealed current (and, within its grace period,
// previous) version of one secret with their unwrapped data keys.
type cachedSecret struct {
	fetched time.Time
	cur     openable
	prev    openable // zero when there is no readable previous version
}

type openable struct {
	version int
	sealed  secrets.Sealed
	dk      *secrets.DataKey
	aad     []byte
}

func (o openable) valid() bool { return o.dk != nil }

// VaultConfig configures a Vault. Zero fields take the defaults.
type VaultConfig struct {
	SecretTTL   time.Duration
	KVMaxValue  int
	KVMaxBucket int64
	Now         func() time.Time
}

// NewVault returns a vault over st sealing with kr.
func NewVault(st VaultStore, kr *secrets.Keyring, cfg VaultConfig) *Vault {
	v := &Vault{st: st, now: cfg.Now, ttl: cfg.SecretTTL, maxValue: cfg.KVMaxValue, maxBkt: cfg.KVMaxBucket,
		cache: make(map[secretKey]*cachedSecret), gen: make(map[secretKey]uint64)}
	if v.now == nil {
		v.now = time.Now
	}
	if v.ttl <= 0 {
		v.ttl = DefaultSecretTTL
	}
	if v.maxValue <= 0 {
		v.maxValue = DefaultKVMaxValue
	}
	if v.maxBkt <= 0 {
		v.maxBkt = DefaultKVMaxBucket
	}
	v.keyring.Store(kr)
	return v
}

// Keyring returns the keyring in use.
func (v *Vault) Keyring() *secrets.Keyring { return v.keyring.Load() }

// SetKeyring swaps the keyring (master-key rotation). The cache is dropped.
func (v *Vault) SetKeyring(kr *secrets.Keyring) {
	v.keyring.Store(kr)
	v.ForgetAll()
}

func secretAAD(ns, name string, version int) []byte {
	return secrets.AAD(store.SealedSecret, ns, name, strconv.Itoa(version))
}

func kvAAD(ns, bucket, key string, version int) []byte {
	return secrets.AAD(store.SealedKV, ns, bucket, key, strconv.Itoa(version))
}

func totpAAD(user string) []byte { return secrets.AAD(store.SealedTOTP, user) }

// ValidSecretName reports whether name is a valid secret name.
func ValidSecretName(name string) bool { return secretName.MatchString(name) }

// ValidBucket reports whether name is a valid KV bucket name.
func ValidBucket(name string) bool { return bucketName.MatchString(name) }

// ValidNamespace reports whether ns is a valid namespace.
func ValidNamespace(ns string) bool { return nsName.MatchString(ns) }

func (v *Vault) checkSecret(ns, name string, value []byte) error {
	if !ValidNamespace(ns) {
		return fmt.Errorf("%w: namespace %q", ErrBadName, ns)
	}
	if !ValidSecretName(name) {
		return fmt.Errorf("%w: secret name %q must match [A-Z][A-Z0-9_]*", ErrBadName, name)
	}
	if len(value) == 0 {
		return ErrEmpty
	}
	if len(value) > MaxSecretSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(value), MaxSecretSize)
	}
	return nil
}

// PutSecret stores value as a new version of ns/name. With create, the
// secret must not exist yet (ErrExists); without, it must (store.ErrNotFound).
// The version it replaces stays readable for grace, then is destroyed.
func (v *Vault) PutSecret(ctx context.Context, ns, name string, value []byte, actor string, create bool, grace time.Duration) (store.SecretVersion, error) {
	if err := v.checkSecret(ns, name, value); err != nil {
		return store.SecretVersion{}, err
	}
	_, err := v.st.SecretVersion(ctx, ns, name, 0)
	switch {
	case err == nil && create:
		return store.SecretVersion{}, fmt.Errorf("%s/%s: %w", ns, name, ErrExists)
	case errors.Is(err, store.ErrNotFound) && !create:
		return store.SecretVersion{}, fmt.Errorf("secret %s/%s: %w", ns, name, store.ErrNotFound)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return store.SecretVersion{}, err
	}
	// Sealing needs the version number, so it runs inside the store's
	// transaction (microseconds). The keyring is loaded there too, so a
	// value written while the master key rotates is sealed under the new
	// key or is seen by the re-wrap that follows (see KeyManager).
	sv, err := v.st.PutSecret(ctx, ns, name, actor, grace, func(version int) ([]byte, string, error) {
		return sealBytes(ctx, v.keyring.Load(), value, secretAAD(ns, name, version))
	})
	v.forget(ns, name)
	return sv, err
}

func sealBytes(ctx context.Context, kr *secrets.Keyring, value, aad []byte) ([]byte, string, error) {
	s, err := kr.Seal(ctx, value, aad)
	if err != nil {
		return nil, "", err
	}
	b, err := s.Marshal()
	return b, s.KeyID, err
}

// MissingSecrets returns the names among names that have no secret in ns,
// so a deploy can refuse grants of secrets the operator has not set (a
// typo would otherwise fail only at the first call).
func (v *Vault) MissingSecrets(ctx context.Context, ns string, names []string) ([]string, error) {
	var missing []string
	for _, n := range names {
		_, err := v.st.SecretVersion(ctx, ns, n, 0)
		switch {
		case errors.Is(err, store.ErrNotFound):
			missing = append(missing, n)
		case err != nil:
			return nil, err
		}
	}
	return missing, nil
}

// DeleteSecret destroys every version of ns/name.
func (v *Vault) DeleteSecret(ctx context.Context, ns, name string) error {
	err := v.st.DeleteSecret(ctx, ns, name)
	v.forget(ns, name)
	return err
}

func (v *Vault) forget(ns, name string) {
	k := secretKey{ns, name}
	v.mu.Lock()
	delete(v.cache, k)
	v.gen[k]++
	v.mu.Unlock()
}

// ForgetAll drops every cached secret (after a sweep destroyed versions).
func (v *Vault) ForgetAll() {
	v.mu.Lock()
	clear(v.cache)
	v.genAll++
	v.mu.Unlock()
}

// ReadSecret decrypts the current version of ns/name (or, with previous,
// the version it replaced while that is within its grace period) and
// returns the plaintext and its version. The plaintext belongs to the
// caller. store.ErrNotFound when there is no such secret or version.
func (v *Vault) ReadSecret(ctx context.Context, ns, name string, previous bool) ([]byte, int, error) {
	c, err := v.cached(ctx, ns, name)
	if err != nil {
		return nil, 0, err
	}
	o := c.cur
	if previous {
		o = c.prev
		if !o.valid() {
			return nil, 0, fmt.Errorf("previous version of %s/%s: %w", ns, name, store.ErrNotFound)
		}
	}
	pt, err := o.dk.Open(o.sealed, o.aad)
	if err != nil {
		return nil, 0, err
	}
	return pt, o.version, nil
}

// cached returns the cache entry of ns/name, loading it when missing or
// older than the TTL.
func (v *Vault) cached(ctx context.Context, ns, name string) (*cachedSecret, error) {
	k := secretKey{ns, name}
	now := v.now()
	v.mu.Lock()
	c := v.cache[k]
	gen, genAll := v.gen[k], v.genAll
	v.mu.Unlock()
	if c != nil && now.Sub(c.fetched) < v.ttl {
		return c, nil
	}
	c, err := v.load(ctx, ns, name, now)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if v.gen[k] == gen && v.genAll == genAll {
		v.cache[k] = c // else it was invalidated while loading: serve it once, keep nothing
	}
	v.mu.Unlock()
	return c, nil
}

func (v *Vault) load(ctx context.Context, ns, name string, now time.Time) (*cachedSecret, error) {
	cur, err := v.st.SecretVersion(ctx, ns, name, 0)
	if err != nil {
		return nil, err
	}
	c := &cachedSecret{fetched: now}
	if c.cur, err = v.openable(ctx, ns, name, cur); err != nil {
		return nil, err
	}
	if cur.Version > 1 {
		prev, err := v.st.SecretVersion(ctx, ns, name, cur.Version-1)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		case prev.RetiresAt == nil || prev.RetiresAt.After(now):
			if c.prev, err = v.openable(ctx, ns, name, prev); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func (v *Vault) openable(ctx context.Context, ns, name string, sv store.SecretVersion) (openable, error) {
	s, err := secrets.UnmarshalSealed(sv.Sealed)
	if err != nil {
		return openable{}, fmt.Errorf("secret %s/%s version %d: %w", ns, name, sv.Version, err)
	}
	aad := secretAAD(ns, name, sv.Version)
	dk, err := v.keyring.Load().UnwrapDataKey(ctx, s, aad)
	if err != nil {
		return openable{}, fmt.Errorf("secret %s/%s version %d: %w", ns, name, sv.Version, err)
	}
	return openable{version: sv.Version, sealed: s, dk: dk, aad: aad}, nil
}

// KVGet returns the value of a live key. store.ErrNotFound when absent.
func (v *Vault) KVGet(ctx context.Context, ns, bucket, key string) ([]byte, store.KVEntry, error) {
	e, err := v.st.KVGet(ctx, ns, bucket, key, v.now())
	if err != nil {
		return nil, store.KVEntry{}, err
	}
	s, err := secrets.UnmarshalSealed(e.Sealed)
	if err != nil {
		return nil, store.KVEntry{}, fmt.Errorf("kv %s/%s: %w", ns, bucket, err)
	}
	pt, err := v.keyring.Load().Open(ctx, s, kvAAD(ns, bucket, key, e.Version))
	if err != nil {
		return nil, store.KVEntry{}, fmt.Errorf("kv %s/%s: %w", ns, bucket, err)
	}
	e.Sealed = nil
	return pt, e, nil
}

// CheckKV validates a namespace, bucket and key.
func CheckKV(ns, bucket, key string) error {
	switch {
	case !ValidNamespace(ns):
		return fmt.Errorf("%w: namespace %q", ErrBadName, ns)
	case !ValidBucket(bucket):
		return fmt.Errorf("%w: bucket %q must match [a-z][a-z0-9_-]*", ErrBadName, bucket)
	case key == "" || len(key) > MaxKVKey || strings.ContainsRune(key, 0) || !utf8.ValidString(key):
		return fmt.Errorf("%w: key must be 1 to %d bytes of UTF-8 without NUL", ErrBadName, MaxKVKey)
	}
	return nil
}

// KVSet writes value under key with an optional ttl (0: none). The write
// (w) names who writes. ErrTooLarge for a value or bucket over its limit.
func (v *Vault) KVSet(ctx context.Context, w store.KVWrite, value []byte, ttl time.Duration) (store.KVEntry, error) {
	if err := CheckKV(w.Namespace, w.Bucket, w.Key); err != nil {
		return store.KVEntry{}, err
	}
	if len(value) > v.maxValue {
		return store.KVEntry{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(value), v.maxValue)
	}
	if ttl < 0 || ttl > MaxKVTTL {
		return store.KVEntry{}, fmt.Errorf("%w: ttl must be 0 (none) to %v", ErrBadName, MaxKVTTL)
	}
	// The quota counts what an entry costs, not only its value: a bucket
	// of many empty values is not free.
	w.Size = len(value) + len(w.Key) + KVEntryOverhead
	w.MaxBucketBytes = v.maxBkt
	w.ExpiresAt = nil
	if ttl > 0 {
		t := v.now().Add(ttl)
		w.ExpiresAt = &t
	}
	e, err := v.st.KVSet(ctx, w, func(version int) ([]byte, string, error) {
		return sealBytes(ctx, v.keyring.Load(), value, kvAAD(w.Namespace, w.Bucket, w.Key, version))
	})
	if errors.Is(err, store.ErrTooLarge) {
		return store.KVEntry{}, fmt.Errorf("%w: bucket %s over its %d-byte quota", ErrTooLarge, w.Bucket, v.maxBkt)
	}
	return e, err
}

// KVDelete removes a live key. store.ErrNotFound when absent.
func (v *Vault) KVDelete(ctx context.Context, w store.KVWrite) error {
	if err := CheckKV(w.Namespace, w.Bucket, w.Key); err != nil {
		return err
	}
	return v.st.KVDelete(ctx, w)
}

// KVList lists live keys of a bucket (see store.KV.KVList).
func (v *Vault) KVList(ctx context.Context, ns, bucket, prefix, after string, limit int) ([]store.KVEntry, error) {
	return v.st.KVList(ctx, ns, bucket, prefix, after, limit, v.now())
}

// KVBuckets lists buckets holding live keys.
func (v *Vault) KVBuckets(ctx context.Context) ([]store.KVBucket, error) {
	return v.st.KVBuckets(ctx, v.now())
}

// SealTOTP seals a user's TOTP seed; the result is stored in
// store.User.TOTPSecret with TOTPKeyID.
func (v *Vault) SealTOTP(ctx context.Context, user, seed string) (sealed, keyID string, err error) {
	b, id, err := sealBytes(ctx, v.keyring.Load(), []byte(seed), totpAAD(user))
	return string(b), id, err
}

// OpenTOTP opens what SealTOTP returned. A seed stored before encryption
// (keyID "") is returned as it is.
func (v *Vault) OpenTOTP(ctx context.Context, user, stored, keyID string) (string, error) {
	if keyID == "" {
		return stored, nil
	}
	s, err := secrets.UnmarshalSealed([]byte(stored))
	if err != nil {
		return "", err
	}
	pt, err := v.keyring.Load().Open(ctx, s, totpAAD(user))
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// Rewrap re-wraps every sealed value not under the keyring's current key,
// in batches (each one transaction), and returns how many it moved. It is
// safe to interrupt at any point: values are under their old or their new
// key, and both are in the keyring.
func (v *Vault) Rewrap(ctx context.Context) (int, error) {
	kr := v.keyring.Load()
	total := 0
	for {
		n, err := v.st.RewrapSealed(ctx, kr.Current().KeyID(), rewrapBatch, func(ref store.SealedRef, b []byte) ([]byte, string, error) {
			return rewrapOne(ctx, kr, ref, b)
		})
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			v.ForgetAll()
			return total, nil
		}
		// Leave the store's writer to foreground traffic between batches:
		// a re-wrap of a million values must not stall KV writes.
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(rewrapPause):
		}
	}
}

func rewrapOne(ctx context.Context, kr *secrets.Keyring, ref store.SealedRef, b []byte) ([]byte, string, error) {
	var aad []byte
	switch ref.Kind {
	case store.SealedSecret:
		aad = secretAAD(ref.Namespace, ref.Name, ref.Version)
	case store.SealedKV:
		aad = kvAAD(ref.Namespace, ref.Bucket, ref.Key, ref.Version)
	case store.SealedTOTP:
		aad = totpAAD(ref.Name)
	default:
		return nil, "", fmt.Errorf("rewrap: unknown sealed kind %q", ref.Kind)
	}
	s, err := secrets.UnmarshalSealed(b)
	if err != nil {
		return nil, "", fmt.Errorf("rewrap %s: %w", ref.Kind, err)
	}
	ns, err := kr.Rewrap(ctx, s, aad)
	if err != nil {
		return nil, "", fmt.Errorf("rewrap %s: %w", ref.Kind, err)
	}
	out, err := ns.Marshal()
	return out, ns.KeyID, err
}

// Sweep destroys secret versions whose grace period has ended and removes
// expired KV keys (each removal a change record). It returns the destroyed
// versions and how many keys expired.
func (v *Vault) Sweep(ctx context.Context) ([]store.SecretVersion, int, error) {
	now := v.now()
	destroyed, err := v.st.DestroyRetiredSecrets(ctx, now)
	if err != nil {
		return nil, 0, err
	}
	for _, d := range destroyed {
		v.forget(d.Namespace, d.Name)
	}
	expired := 0
	for {
		n, err := v.st.ExpireKV(ctx, now, 500)
		expired += n
		if err != nil {
			return destroyed, expired, err
		}
		if n < 500 {
			return destroyed, expired, nil
		}
	}
}
