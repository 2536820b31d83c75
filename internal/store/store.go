// Package store owns warden's durable state behind small interfaces: functions
// and their versions, artifacts, admin credentials and the event log. The
// sqlite subpackage implements it for the embedded default; a PostgreSQL
// implementation follows the same schema and runs the same shared test suite
// (storetest).
//
// store never interprets manifests or runs code: it keeps bytes and records.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"warden/internal/events"
)

// Sentinel errors. Implementations wrap them with %w; callers test with errors.Is.
var (
	// ErrNotFound: the function, version, artifact or credential does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a concurrent change won (for example two deploys racing).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed, for example an artifact whose bytes
	// do not match its digest, a digest that is not lowercase hex sha256, or
	// an empty namespace or name.
	ErrInvalid = errors.New("invalid")
)

// VersionDigest returns the Digest of a version: the sha256 (lowercase hex)
// over the artifact digest, a newline and the manifest bytes.
func VersionDigest(artifactDigest string, manifest []byte) string {
	h := sha256.New()
	h.Write([]byte(artifactDigest))
	h.Write([]byte{'\n'})
	h.Write(manifest)
	return hex.EncodeToString(h.Sum(nil))
}

// Function is a deployed function and its active version.
type Function struct {
	Namespace     string    `json:"namespace"`
	Name          string    `json:"name"`
	ActiveVersion int       `json:"activeVersion"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// Version is one immutable, content-addressed deployment of a function.
//
// # Notes
//   - Digest is the sha256 (hex) over the artifact digest and the manifest
//     bytes (see VersionDigest); two deploys with the same artifact and
//     manifest share a Digest. CreateVersion computes it when it is empty.
//   - ArtifactSize is taken from the stored artifact by CreateVersion.
//   - Manifest holds the raw warden.yaml as uploaded; it is re-parsed on load.
type Version struct {
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	Version        int    `json:"version"`
	Digest         string `json:"digest"`
	ArtifactDigest string `json:"artifactDigest"`
	ArtifactSize   int64  `json:"artifactSize"`
	Manifest       []byte `json:"-"`
	// Files maps paths the manifest names (route schemas) to the digests
	// of their content, stored like artifacts. Nil when there are none.
	Files     map[string]string `json:"files,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	CreatedBy string            `json:"createdBy"`
	// Signature says how the deploy's signature was checked; nil for a
	// version stored before signing existed.
	Signature *Signature `json:"signature,omitempty"`
	// Envelope is the DSSE envelope sent with the deploy, as sent; nil
	// when none was.
	Envelope []byte `json:"-"`
	// Scan is the scan report of the version's module and manifest (JSON);
	// nil for a version stored before scanning existed.
	Scan json.RawMessage `json:"scan,omitempty"`
	// SBOM is the version's CycloneDX SBOM (JSON); nil when none.
	SBOM []byte `json:"-"`
	// Approval is the version's approval request and decision; nil when
	// its deploy needed none.
	Approval *Approval `json:"approval,omitempty"`
	// Quarantine is why the version is quarantined (its routes answer
	// 503); "" when it is not.
	Quarantine string `json:"quarantine,omitempty"`
}

// Approval statuses.
const (
	ApprovalPending  = "pending"  // stored, never served until approved
	ApprovalApproved = "approved" // approved by a second person and activated
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired" // nobody decided in time
)

// Approval is a version's request for a second person's approval.
type Approval struct {
	Status      string     `json:"status"`
	Reasons     []string   `json:"reasons"`
	RequestedBy string     `json:"requestedBy"`
	RequestedAt time.Time  `json:"requestedAt"`
	ExpiresAt   time.Time  `json:"expiresAt"`
	DecidedBy   string     `json:"decidedBy,omitempty"`
	DecidedAt   *time.Time `json:"decidedAt,omitempty"`
	Comment     string     `json:"comment,omitempty"`
}

// Signature statuses of a version.
const (
	SignatureVerified   = "verified"   // signed by a key the namespace trusted at deploy
	SignatureUnverified = "unverified" // an envelope that did not verify, accepted in warn mode
	SignatureUnsigned   = "unsigned"   // no envelope: the namespace trusted no key, or warn mode
)

// Signature records the check of a version's signature at deploy.
type Signature struct {
	Status  string `json:"status"`
	KeyID   string `json:"keyId,omitempty"`   // the trusted key that verified it
	KeyName string `json:"keyName,omitempty"` // that key's name when trusted
	Mode    string `json:"mode"`              // the namespace's signing mode at deploy
	// Reason says why a version is not verified.
	Reason string `json:"reason,omitempty"`
	// Provenance is the build metadata the signer stated (JSON), if any.
	Provenance json.RawMessage `json:"provenance,omitempty"`
}

// Functions keeps functions, versions and artifacts.
type Functions interface {
	// PutArtifact stores data under its sha256 digest (hex). Storing the same
	// digest twice is a no-op. The digest is verified against data.
	PutArtifact(ctx context.Context, digest string, data []byte) error
	// Artifact returns the bytes stored under digest, or ErrNotFound.
	Artifact(ctx context.Context, digest string) ([]byte, error)

	// CreateVersion records a new version of v.Namespace/v.Name, assigning the
	// next version number (1 for a new function), and, when activate is
	// true, makes it active, all in one transaction: after a crash either the
	// old or the new version is active, never a half-written one. The
	// artifact must already be stored (ErrNotFound otherwise). A zero
	// CreatedAt is set to the current time. It returns the stored version.
	// Concurrent calls for the same function get distinct, contiguous
	// version numbers.
	CreateVersion(ctx context.Context, v Version, activate bool) (Version, error)
	// Activate makes an existing version active. ErrNotFound if it does not exist.
	Activate(ctx context.Context, namespace, name string, version int) error
	// Function returns a function and its active version number (0 while
	// no version has been activated), or ErrNotFound.
	Function(ctx context.Context, namespace, name string) (Function, error)
	// ListFunctions returns every function, ordered by namespace and name.
	ListFunctions(ctx context.Context) ([]Function, error)
	// Version returns one version, or ErrNotFound.
	Version(ctx context.Context, namespace, name string, version int) (Version, error)
	// Versions returns all versions of a function, newest first, or
	// ErrNotFound if the function does not exist.
	Versions(ctx context.Context, namespace, name string) ([]Version, error)
	// UpdateApproval replaces a version's approval when its current
	// status is from (compare and set): ErrConflict when it is not,
	// ErrNotFound when the version does not exist.
	UpdateApproval(ctx context.Context, namespace, name string, version int, from string, a Approval) error
	// SetQuarantine quarantines a version with a reason, or releases it
	// (reason ""); ErrNotFound when the version does not exist.
	SetQuarantine(ctx context.Context, namespace, name string, version int, reason string) error
	// PendingVersions returns the versions whose approval is pending, by
	// namespace, name and version.
	PendingVersions(ctx context.Context) ([]Version, error)
	// DeleteFunction removes a function and its versions, or returns
	// ErrNotFound. Artifacts that the deleted versions referenced and that no
	// other version references are removed too; artifacts stored but never
	// referenced are left alone (a deploy may be between PutArtifact and
	// CreateVersion).
	DeleteFunction(ctx context.Context, namespace, name string) error
}

// Credential kinds.
const (
	KindAdmin   = "admin"   // an admin API token
	KindAPIKey  = "apikey"  // a function-route API key
	KindSession = "session" // an operator's login session (Name: the user, Role: the user's role)
)

// Credential is a hashed credential: an admin token or an API key. The
// plaintext is never stored.
type Credential struct {
	ID         string     `json:"id"`   // public identifier, part of the token
	Kind       string     `json:"kind"` // KindAdmin (default when empty) or KindAPIKey
	Hash       []byte     `json:"-"`    // sha256 of the token's secret part
	Name       string     `json:"name"` // e.g. "bootstrap"
	Role       string     `json:"role,omitempty"`
	Scopes     []string   `json:"scopes,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
}

// Credentials keeps credentials.
type Credentials interface {
	// CreateCredential stores c; ErrConflict if the id exists.
	CreateCredential(ctx context.Context, c Credential) error
	// Credential returns the credential with this id, revoked or not, or ErrNotFound.
	Credential(ctx context.Context, id string) (Credential, error)
	// ListCredentials returns every credential, by creation time then id.
	ListCredentials(ctx context.Context) ([]Credential, error)
	// RevokeCredential marks a credential revoked; revoking twice keeps the
	// first time. ErrNotFound if it does not exist.
	RevokeCredential(ctx context.Context, id string, at time.Time) error
	// TouchCredential records that the credential was used at at (it only
	// moves forward). ErrNotFound if it does not exist.
	TouchCredential(ctx context.Context, id string, at time.Time) error
}

// User is an operator account. Name is its primary key.
//
// # Notes
//   - PasswordHash is an argon2id PHC string ($argon2id$v=19$m=..,t=..,p=..$salt$hash);
//     the store keeps it as given and never interprets it.
//   - TOTPSecret is kept as given (the auth package stores it sealed, with
//     TOTPKeyID naming the wrapping key); while MFAEnrolled is false a
//     non-empty secret is an enrollment that has not been confirmed yet.
//     TOTPKeyID is stored as "" while TOTPSecret is empty (nothing is sealed),
//     so key rotation never meets a sealed seed without bytes.
//   - TOTPLastStep is the last TOTP time step accepted, so that a code is
//     never accepted twice.
//   - FailedAttempts counts consecutive failed logins; LockedUntil, when set,
//     is the time before which logins are refused.
//   - Secret fields are never serialised to JSON.
type User struct {
	Name           string     `json:"name"`
	Role           string     `json:"role"`
	PasswordHash   string     `json:"-"`
	TOTPSecret     string     `json:"-"`
	TOTPKeyID      string     `json:"-"` // key id when TOTPSecret is sealed (see SealedTOTP); "" when stored as given
	MFAEnrolled    bool       `json:"mfaEnrolled"`
	TOTPLastStep   int64      `json:"-"`
	FailedAttempts int        `json:"failedAttempts"`
	LockedUntil    *time.Time `json:"lockedUntil,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
}

// Users keeps operator accounts.
type Users interface {
	// CreateUser stores u. ErrInvalid for an empty name, role or password
	// hash; ErrConflict if the name exists. A zero CreatedAt becomes now.
	CreateUser(ctx context.Context, u User) error
	// User returns the user with this name, or ErrNotFound.
	User(ctx context.Context, name string) (User, error)
	// ListUsers returns every user, ordered by name.
	ListUsers(ctx context.Context) ([]User, error)
	// DeleteUser removes a user, or returns ErrNotFound.
	DeleteUser(ctx context.Context, name string) error
	// UpdateUser reads the user, calls fn with it and stores the fields fn
	// changed, in one transaction, so concurrent updates of one user never
	// lose each other's changes. Name and CreatedAt cannot change. If fn
	// returns an error nothing is stored and UpdateUser returns that error
	// (wrapped). It returns the stored user, or ErrNotFound.
	//
	// fn must be quick and must not call the store (a backend may hold its
	// only writer while fn runs).
	UpdateUser(ctx context.Context, name string, fn func(u *User) error) (User, error)
}

// EventQuery selects events. Zero fields do not filter.
type EventQuery struct {
	Type    string    // exact type, or a prefix ending in "." (e.g. "limit."), compared byte-wise
	Since   time.Time // events at or after this time
	AfterID int64     // events with ID > AfterID (for following)
	Limit   int       // at most this many (0 or less: 1000; capped at MaxEventLimit)
}

// Limits on EventQuery.Limit.
const (
	DefaultEventLimit = 1000
	MaxEventLimit     = 10000
)

// Events is the durable event log.
type Events interface {
	// AppendEvents stores a batch atomically and assigns IDs in order. On
	// success it sets evs[i].ID to the assigned ID and evs[i].Time to the
	// stored time (UTC; a zero Time becomes the current time). The caller's
	// ID values are ignored.
	AppendEvents(ctx context.Context, evs []events.Event) error
	// QueryEvents returns matching events in ID order (oldest first), with
	// ID set and Time in UTC.
	QueryEvents(ctx context.Context, q EventQuery) ([]events.Event, error)
}

// Retention defaults (see PrunePolicy and DefaultPrunePolicy).
const (
	DefaultRequestRetention = 30 * 24 * time.Hour  // request-class events
	DefaultAuditRetention   = 400 * 24 * time.Hour // audit-class events
	DefaultPruneBatch       = 5000                 // rows deleted per transaction
)

// PrunePolicy says which stored events PruneEvents deletes. Zero fields do
// not prune (a zero PrunePolicy deletes nothing); negative ones are
// ErrInvalid. The class of an event is events.ClassOf of its type, recorded
// when it was stored.
type PrunePolicy struct {
	// Now is the reference for the ages; zero means the current time.
	Now time.Time
	// RequestMaxAge: request-class events whose Time is more than this
	// before Now are deleted.
	RequestMaxAge time.Duration
	// AuditMaxAge: the same for audit-class events.
	AuditMaxAge time.Duration
	// MaxBytes bounds the total size of the stored events (EventsSize),
	// events.prune records included. While it is over, the oldest
	// request-class events (by Time, then ID) are deleted, all but a few
	// whose bytes would not outweigh the record of their deletion; then the
	// oldest audit-class events, and when RequestMaxAge is set only those
	// more than RequestMaxAge before Now, so that a flood of new events
	// cannot push out a recent audit trail. events.prune records are never
	// deleted for size, only by AuditMaxAge. The bound is therefore best
	// effort: the total may stay above it (see EventRetention).
	MaxBytes int64
	// BatchSize is the number of rows deleted per transaction at most;
	// zero means DefaultPruneBatch.
	BatchSize int
}

// DefaultPrunePolicy keeps request-class events for 30 days and audit-class
// events for 400 days, with no size bound.
func DefaultPrunePolicy() PrunePolicy {
	return PrunePolicy{RequestMaxAge: DefaultRequestRetention, AuditMaxAge: DefaultAuditRetention}
}

// Validate returns an error wrapping ErrInvalid if a field is negative.
func (p PrunePolicy) Validate() error {
	if p.RequestMaxAge < 0 || p.AuditMaxAge < 0 || p.MaxBytes < 0 || p.BatchSize < 0 {
		return fmt.Errorf("prune policy: negative age, size or batch: %w", ErrInvalid)
	}
	return nil
}

// Pruned describes the events of one class that PruneEvents deleted.
type Pruned struct {
	Events  int64 // rows deleted
	Bytes   int64 // their size, as counted by EventsSize
	FirstID int64 // the lowest id deleted; 0 when none
	LastID  int64 // the highest id deleted; 0 when none
}

// Add merges q into p; backends use it to sum their batches.
func (p *Pruned) Add(q Pruned) {
	if q.Events == 0 {
		return
	}
	if p.Events == 0 || q.FirstID < p.FirstID {
		p.FirstID = q.FirstID
	}
	p.LastID = max(p.LastID, q.LastID)
	p.Events += q.Events
	p.Bytes += q.Bytes
}

// PruneResult is what one PruneEvents call deleted. Within a class the
// deleted ids need not be contiguous: FirstID and LastID bound them. The
// events.prune records the call wrote are not counted as deleted.
type PruneResult struct {
	Request Pruned // request-class events deleted
	Audit   Pruned // audit-class events deleted
	Batches int    // transactions that deleted rows; each wrote one events.prune record
	Size    int64  // EventsSize after pruning, the records written included
}

// Deleted returns the number of events deleted.
func (r PruneResult) Deleted() int64 { return r.Request.Events + r.Audit.Events }

// Event returns the events.prune event recording r under policy p: the
// counts, bytes and id bounds per class, r.Batches, r.Size (label
// prune.size_after) and the policy, never the deleted events' contents,
// with a zero Time. Backends call it for the record of each batch (see
// EventRetention), with Batches 1 and Size the total left by the batch's
// deletion before its record is added; callers of PruneEvents do not emit
// it, or the pruning would be recorded twice.
func (r PruneResult) Event(p PrunePolicy) events.Event {
	labels := map[string]string{
		"prune.batches":      strconv.Itoa(r.Batches),
		"prune.size_after":   strconv.FormatInt(r.Size, 10),
		"policy.request_age": p.RequestMaxAge.String(),
		"policy.audit_age":   p.AuditMaxAge.String(),
		"policy.max_bytes":   strconv.FormatInt(p.MaxBytes, 10),
	}
	for class, c := range map[events.Class]Pruned{events.ClassRequest: r.Request, events.ClassAudit: r.Audit} {
		pre := "prune." + string(class) + "."
		labels[pre+"events"] = strconv.FormatInt(c.Events, 10)
		labels[pre+"bytes"] = strconv.FormatInt(c.Bytes, 10)
		labels[pre+"first_id"] = strconv.FormatInt(c.FirstID, 10)
		labels[pre+"last_id"] = strconv.FormatInt(c.LastID, 10)
	}
	return events.Event{
		Type: events.TypeEventsPrune, Outcome: events.OutcomeSuccess, Actor: "system",
		Reason: fmt.Sprintf("retention deleted %d request and %d audit events", r.Request.Events, r.Audit.Events),
		Labels: labels,
	}
}

// EventRetention bounds the event log by age and size.
//
// # Notes
//   - Every batch that deletes stores, in the same transaction, one
//     events.prune record (audit class; PruneResult.Event of that batch,
//     Time the policy's Now, or the current time when that is zero):
//     either the content goes and the record that it went stays, or
//     neither happens. Callers do not emit records.
//   - events.prune records go only by AuditMaxAge, never for size. A size
//     bound batch counts its own record: it deletes enough rows to bring
//     the total, record included, to MaxBytes, and nothing when its rows
//     would not free more than the record adds, so pruning for size never
//     grows the log and always ends. The total may stay above MaxBytes when
//     records and audit events too recent to delete (see
//     PrunePolicy.MaxBytes) exceed it.
//   - A PruneEvents call never deletes the records it wrote itself.
//   - Event ids are never given again after their events are pruned, so a
//     hash-chained log built over ids (leaf hashes kept, content pruned)
//     stays consistent.
//   - The size of an event is the backend's estimate of the bytes its row
//     holds (the encoded event, its indexed copies and a fixed per-row
//     overhead); it bounds the log's content, not the database file, which
//     keeps its pages for reuse.
type EventRetention interface {
	// PruneEvents deletes the events policy selects, in transactions of
	// at most policy.BatchSize rows so that other writers wait at most one
	// batch, each with its events.prune record. If ctx ends or a batch
	// fails (its record included), that batch deletes nothing, and it
	// returns what the committed batches deleted and the error.
	PruneEvents(ctx context.Context, policy PrunePolicy) (PruneResult, error)
	// EventsSize returns the total size of the stored events, without a
	// scan.
	EventsSize(ctx context.Context) (int64, error)
}

// Store is everything the server needs from persistence. Implementations
// are safe for concurrent use.
type Store interface {
	Functions
	Credentials
	Users
	Issuers
	Trust
	Advisories
	Findings
	Policies
	Events
	EventRetention
	Secrets
	KV
	Sealing
	Usage
	// Close releases the store. Other calls after Close fail.
	Close() error
}
