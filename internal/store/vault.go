package store

import (
	"context"
	"errors"
	"time"
)

// ErrTooLarge: a write would exceed a size limit (a KV bucket's quota).
var ErrTooLarge = errors.New("too large")

// Secret is one named secret of a namespace, without any value.
type Secret struct {
	Namespace      string    `json:"namespace"`
	Name           string    `json:"name"`
	CurrentVersion int       `json:"currentVersion"`
	Versions       int       `json:"versions"` // versions not destroyed, the current one included
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"` // when the current version was created
}

// SecretVersion is one version of a secret.
//
// # Notes
//   - Sealed is the encoded envelope (see package secrets); the store keeps
//     it as opaque bytes, with KeyID (the key-encryption key that wraps its
//     data key) beside it so that master-key rotation can find rows to
//     re-wrap. It is never serialised to JSON.
//   - A version that is no longer current stays readable until RetiresAt;
//     then DestroyRetiredSecrets removes its bytes and sets DestroyedAt.
type SecretVersion struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	Version     int        `json:"version"`
	KeyID       string     `json:"keyId"`
	Sealed      []byte     `json:"-"`
	Current     bool       `json:"current"`
	CreatedAt   time.Time  `json:"createdAt"`
	CreatedBy   string     `json:"createdBy"`
	RetiresAt   *time.Time `json:"retiresAt,omitempty"`   // set when a newer version became current
	DestroyedAt *time.Time `json:"destroyedAt,omitempty"` // set once the bytes are gone
}

// SealFunc seals a value for the row numbered version (a secret's version,
// or a KV key's version): the caller binds the number into the associated
// data, so it must be known before encryption. It returns the encoded
// envelope and the id of the key that wraps it. It runs inside the store's
// write transaction, so it must be quick and must not call the store.
//
// # Notes
//   - If it returns an error, nothing is stored and the store returns that
//     error wrapped; it must not put the value into the error.
//   - It must return non-empty bytes and a non-empty key id ("" marks an
//     unsealed value); otherwise the store stores nothing and returns
//     ErrInvalid.
type SealFunc func(version int) (sealed []byte, keyID string, err error)

// Secrets keeps envelope-encrypted secrets with versions.
type Secrets interface {
	// PutSecret adds a version to namespace/name (creating the secret; its
	// first version is 1, or the next after a deleted one) and makes it current, in one transaction. The
	// version that was current gets RetiresAt = now + grace (grace <= 0:
	// now). seal is called once with the new version number. ErrInvalid for
	// an empty namespace or name. Concurrent calls for one secret get
	// distinct, contiguous version numbers. It returns the stored version,
	// Sealed included. After DeleteSecret the numbering of the name
	// continues where it stopped (a version number is never sealed twice
	// for one name).
	PutSecret(ctx context.Context, namespace, name, createdBy string, grace time.Duration, seal SealFunc) (SecretVersion, error)
	// SecretVersion returns one version with its Sealed bytes; version 0
	// means the current one. ErrNotFound if the secret or version does not
	// exist (a negative version included) or the version is destroyed. A
	// retired version is returned until it is destroyed.
	SecretVersion(ctx context.Context, namespace, name string, version int) (SecretVersion, error)
	// ListSecrets returns every secret, ordered by namespace and name.
	ListSecrets(ctx context.Context) ([]Secret, error)
	// SecretHistory returns every version of a secret, destroyed ones
	// included, newest first, without Sealed bytes; ErrNotFound if the
	// secret does not exist.
	SecretHistory(ctx context.Context, namespace, name string) ([]SecretVersion, error)
	// DeleteSecret destroys every version of a secret and removes it;
	// ErrNotFound if it does not exist.
	DeleteSecret(ctx context.Context, namespace, name string) error
	// DestroyRetiredSecrets destroys every non-current version whose
	// RetiresAt is at or before now (its bytes are removed, the row stays
	// for history) and returns the versions it destroyed (DestroyedAt set,
	// no Sealed), ordered by namespace, name and version. A zero now means
	// the current time.
	DestroyRetiredSecrets(ctx context.Context, now time.Time) ([]SecretVersion, error)
}

// KV change operations.
const (
	KVOpSet    = "set"
	KVOpDelete = "delete"
	KVOpExpire = "expire"
)

// KVEntry is one key of a bucket. Sealed is the encoded envelope of the
// value, bound to namespace, bucket, key and version.
type KVEntry struct {
	Namespace string     `json:"namespace"`
	Bucket    string     `json:"bucket"`
	Key       string     `json:"key"`
	Version   int        `json:"version"` // 1 for a new key; +1 on every set, also after a delete
	KeyID     string     `json:"-"`
	Sealed    []byte     `json:"-"`
	Size      int        `json:"size"` // bytes counted against the bucket quota (the vault counts key, value and a fixed overhead)
	UpdatedAt time.Time  `json:"updatedAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// KVBucket summarises one bucket.
type KVBucket struct {
	Namespace string `json:"namespace"`
	Bucket    string `json:"bucket"`
	Keys      int    `json:"keys"`
	Bytes     int64  `json:"bytes"` // sum of Size over live keys
}

// KVChange records one write to a bucket, for data-change triggers.
// Function/FunctionVersion name the writer when it was a function; Actor
// names an operator (or "system" for expiry).
type KVChange struct {
	ID              int64     `json:"id"`
	Namespace       string    `json:"namespace"`
	Bucket          string    `json:"bucket"`
	Key             string    `json:"key"`
	Version         int       `json:"version"`
	Op              string    `json:"op"` // KVOpSet, KVOpDelete or KVOpExpire
	Function        string    `json:"function,omitempty"`
	FunctionVersion int       `json:"functionVersion,omitempty"`
	Actor           string    `json:"actor,omitempty"`
	At              time.Time `json:"at"`
}

// KVWrite describes a set or delete: what is written and who writes it.
type KVWrite struct {
	Namespace, Bucket, Key string
	Size                   int        // plaintext size (set only)
	ExpiresAt              *time.Time // nil: no expiry (set only)
	MaxBucketBytes         int64      // refuse (ErrTooLarge) if the bucket's live bytes would exceed this; 0: no limit
	Function               string
	FunctionVersion        int
	Actor                  string
}

// KVChangeQuery selects change records. Zero fields do not filter.
type KVChangeQuery struct {
	Namespace, Bucket string
	AfterID           int64
	Limit             int // 0 or less: 1000; capped at MaxEventLimit
}

// KV keeps the key-value buckets of functions.
//
// # Notes
//   - Namespaces, buckets and keys are non-empty UTF-8 text without NUL
//     (ErrInvalid otherwise) and compare byte-wise.
//   - An entry is live while its ExpiresAt is nil or after now; an expired
//     entry is absent for every read, for KVSet and KVDelete, and for the
//     quota, even before ExpireKV removes it.
//   - Methods with a now parameter judge expiry by it (zero: the current
//     time); KVSet and KVDelete use the store's clock, which also sets
//     UpdatedAt and the change records' At.
type KV interface {
	// KVGet returns a live entry with its Sealed bytes, or ErrNotFound
	// (missing or expired at now).
	KVGet(ctx context.Context, namespace, bucket, key string, now time.Time) (KVEntry, error)
	// KVSet writes a key, assigning the next version (seal gets it), and
	// appends a KVOpSet change record, in one transaction. An expired entry
	// counts as absent. ErrTooLarge if w.MaxBucketBytes would be exceeded;
	// ErrInvalid for an empty namespace, bucket or key.
	//
	// The version is one more than the last version the key ever had, so a
	// key that was deleted or expired never gets a number again (the number
	// is bound into the sealed value). With MaxBucketBytes > 0 the write is
	// refused unless the bucket's live bytes, less this key's live size,
	// plus w.Size are at most MaxBucketBytes (also when the write shrinks a
	// bucket that is already over the limit; a delete always succeeds). On
	// ErrTooLarge nothing is stored and seal is not called. ErrInvalid for
	// a negative Size or MaxBucketBytes. An ExpiresAt at or before the
	// current time stores an entry that is already expired. When the write
	// replaces an entry that expired but was not yet removed, a KVOpExpire
	// record (Actor "system") for the old version comes first, as if
	// ExpireKV had run. It returns the stored entry, Sealed included.
	KVSet(ctx context.Context, w KVWrite, seal SealFunc) (KVEntry, error)
	// KVDelete removes a live key and appends a KVOpDelete change record
	// carrying the removed version; ErrNotFound if there is no live key (an
	// expired one is left for ExpireKV). w.Size, ExpiresAt and
	// MaxBucketBytes are ignored.
	KVDelete(ctx context.Context, w KVWrite) error
	// KVList returns live entries (without Sealed) whose key starts with
	// prefix and sorts after after, in key order, at most limit (<= 0:
	// 1000, capped at 1000). Both compare byte-wise ("" matches every key,
	// after "" starts at the first); after is exclusive, so passing the last
	// key of a page gets the next page. ErrInvalid if prefix or after is
	// not UTF-8 text without NUL.
	KVList(ctx context.Context, namespace, bucket, prefix, after string, limit int, now time.Time) ([]KVEntry, error)
	// KVBuckets returns every bucket holding live keys, by namespace and bucket.
	KVBuckets(ctx context.Context, now time.Time) ([]KVBucket, error)
	// ExpireKV removes up to limit entries expired at now, appending a
	// KVOpExpire change record (Actor "system") for each, and returns how
	// many it removed. The earliest expiries go first; limit <= 0 means
	// 1000; the records' At is now.
	ExpireKV(ctx context.Context, now time.Time, limit int) (int, error)
	// KVChanges returns change records in ID order. Namespace and Bucket
	// filter independently.
	KVChanges(ctx context.Context, q KVChangeQuery) ([]KVChange, error)
}

// Sealed value kinds (SealedRef.Kind).
const (
	SealedSecret = "secret" // Namespace, Name, Version
	SealedKV     = "kv"     // Namespace, Bucket, Key, Version
	SealedTOTP   = "totp"   // Name: the user; the bytes are User.TOTPSecret's
)

// SealedRef names one sealed value for re-wrapping; which fields are set
// depends on Kind.
type SealedRef struct {
	Kind      string
	Namespace string
	Name      string
	Bucket    string
	Key       string
	Version   int
}

// RewrapFunc re-wraps one sealed value; it returns the new bytes and key id.
// It runs inside a write transaction: quick, no store calls.
//
// # Notes
//   - For SealedTOTP, sealed holds the bytes of User.TOTPSecret and
//     newSealed is stored as the new TOTPSecret, so it must use the same
//     text encoding.
//   - newKeyID must be the keepKeyID passed to RewrapSealed and newSealed
//     must not be empty; otherwise the batch is refused (ErrInvalid), since
//     the value would be selected again by every later call.
type RewrapFunc func(ref SealedRef, sealed []byte) (newSealed []byte, newKeyID string, err error)

// Sealing is what master-key rotation needs: finding values wrapped under
// an old key and replacing their bytes.
type Sealing interface {
	// RewrapSealed calls fn for up to limit sealed values (secrets, KV values,
	// TOTP seeds) whose key id is not keepKeyID, and stores what it returns,
	// all in one transaction: after a crash every value is under its old or
	// its new key, never lost. It returns how many it re-wrapped; 0 means
	// none is left. An error from fn aborts the batch (nothing is stored)
	// and is returned wrapped.
	//
	// The values are the versions of secrets not yet destroyed, every KV
	// entry still stored (expired ones too, until ExpireKV removes them) and
	// the TOTP seeds of users whose TOTPKeyID is not "". limit <= 0 means
	// 1000. ErrInvalid for an empty keepKeyID.
	RewrapSealed(ctx context.Context, keepKeyID string, limit int, fn RewrapFunc) (int, error)
	// SealedKeyIDs counts the sealed values under each key id, over the same
	// values RewrapSealed considers.
	SealedKeyIDs(ctx context.Context) (map[string]int, error)
}

// Grant kinds and modes (GrantUse).
const (
	GrantSecret = "secret"
	GrantKV     = "kv"
	GrantEgress = "egress"

	ModeRead  = "read"
	ModeWrite = "write"
	ModeUse   = "use" // secrets and egress
)

// GrantUse is the first and last use of one grant of one function version,
// in one mode (a kv grant has a read and a write row).
type GrantUse struct {
	Namespace string    `json:"namespace"`
	Function  string    `json:"function"`
	Version   int       `json:"version"`
	Kind      string    `json:"kind"`   // GrantSecret, GrantKV or GrantEgress
	Target    string    `json:"target"` // secret name, bucket, or origin as granted
	Mode      string    `json:"mode"`   // ModeRead, ModeWrite or ModeUse
	FirstUsed time.Time `json:"firstUsed"`
	LastUsed  time.Time `json:"lastUsed"`
	Count     int64     `json:"count"`
}

// EgressStat sums one function's calls to one origin.
type EgressStat struct {
	Namespace string        `json:"namespace"`
	Function  string        `json:"function"`
	Origin    string        `json:"origin"`
	Calls     int64         `json:"calls"`
	Errors    int64         `json:"errors"` // refused, failed, or status >= 500
	BytesOut  int64         `json:"bytesOut"`
	BytesIn   int64         `json:"bytesIn"`
	Duration  time.Duration `json:"durationNs"` // total
	FirstAt   time.Time     `json:"firstAt"`
	LastAt    time.Time     `json:"lastAt"`
}

// Usage keeps how functions used their grants and whom they called.
type Usage interface {
	// RecordGrantUses merges uses into the stored rows keyed by namespace,
	// function, version, kind, target and mode: FirstUsed only moves back,
	// LastUsed only forward, Count adds, all in one transaction. A zero
	// FirstUsed or LastUsed takes the other's value (both zero: now).
	// ErrInvalid, with nothing stored, if any use has an empty namespace,
	// function or target, a version below 1, an unknown kind or mode, a
	// negative Count, or FirstUsed after LastUsed.
	RecordGrantUses(ctx context.Context, uses []GrantUse) error
	// GrantUses returns the rows of one function version (version 0: every
	// version), ordered by version, kind, target, mode; none is not an error.
	GrantUses(ctx context.Context, namespace, function string, version int) ([]GrantUse, error)
	// RecordEgress merges stats into the stored rows keyed by namespace,
	// function and origin (sums add; FirstAt moves back; LastAt forward), all
	// in one transaction. Zero times are filled in as in RecordGrantUses.
	// ErrInvalid, with nothing stored, for an empty namespace, function or
	// origin, a negative sum, or FirstAt after LastAt.
	RecordEgress(ctx context.Context, stats []EgressStat) error
	// EgressStats returns the rows for one function, or every function when
	// function is "" (namespace "" too: every namespace), ordered by
	// namespace, function, origin. Each "" argument does not filter, so
	// ("", "f") is function f in every namespace.
	EgressStats(ctx context.Context, namespace, function string) ([]EgressStat, error)
}
