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
	"errors"
	"time"

	"warden/internal/events"
)

// Sentinel errors. Implementations wrap them with %w; callers test with errors.Is.
var (
	// ErrNotFound: the function, version, artifact or credential does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a concurrent change won (for example two deploys racing).
	ErrConflict = errors.New("conflict")
)

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
//     bytes; two deploys with the same artifact and manifest share a Digest.
//   - Manifest holds the raw warden.yaml as uploaded; it is re-parsed on load.
type Version struct {
	Namespace      string    `json:"namespace"`
	Name           string    `json:"name"`
	Version        int       `json:"version"`
	Digest         string    `json:"digest"`
	ArtifactDigest string    `json:"artifactDigest"`
	ArtifactSize   int64     `json:"artifactSize"`
	Manifest       []byte    `json:"-"`
	CreatedAt      time.Time `json:"createdAt"`
	CreatedBy      string    `json:"createdBy"`
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
	// artifact must already be stored. It returns the stored version.
	CreateVersion(ctx context.Context, v Version, activate bool) (Version, error)
	// Activate makes an existing version active. ErrNotFound if it does not exist.
	Activate(ctx context.Context, namespace, name string, version int) error
	// Function returns a function and its active version number.
	Function(ctx context.Context, namespace, name string) (Function, error)
	// ListFunctions returns every function, ordered by namespace and name.
	ListFunctions(ctx context.Context) ([]Function, error)
	// Version returns one version, or ErrNotFound.
	Version(ctx context.Context, namespace, name string, version int) (Version, error)
	// Versions returns all versions of a function, newest first.
	Versions(ctx context.Context, namespace, name string) ([]Version, error)
	// DeleteFunction removes a function and its versions. Artifacts no
	// longer referenced by any version are removed too.
	DeleteFunction(ctx context.Context, namespace, name string) error
}

// Credential is a hashed admin credential. The plaintext is never stored.
type Credential struct {
	ID        string     `json:"id"`   // public identifier, part of the token
	Hash      []byte     `json:"-"`    // sha256 of the token's secret part
	Name      string     `json:"name"` // e.g. "bootstrap"
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// Credentials keeps admin credentials.
type Credentials interface {
	CreateCredential(ctx context.Context, c Credential) error
	// Credential returns the credential with this id, revoked or not, or ErrNotFound.
	Credential(ctx context.Context, id string) (Credential, error)
	ListCredentials(ctx context.Context) ([]Credential, error)
	RevokeCredential(ctx context.Context, id string, at time.Time) error
}

// EventQuery selects events. Zero fields do not filter.
type EventQuery struct {
	Type    string    // exact type, or a prefix ending in "." (e.g. "limit.")
	Since   time.Time // events at or after this time
	AfterID int64     // events with ID > AfterID (for following)
	Limit   int       // at most this many (0: implementation default, 1000)
}

// Events is the durable event log.
type Events interface {
	// AppendEvents stores a batch atomically and assigns IDs in order.
	AppendEvents(ctx context.Context, evs []events.Event) error
	// QueryEvents returns matching events in ID order (oldest first).
	QueryEvents(ctx context.Context, q EventQuery) ([]events.Event, error)
}

// Store is everything the server needs from persistence.
type Store interface {
	Functions
	Credentials
	Events
	Close() error
}
