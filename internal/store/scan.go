package store

import (
	"context"
	"time"
)

// Advisory is one imported vulnerability advisory (an OSV entry, as
// imported).
type Advisory struct {
	ID         string    `json:"id"`
	Modified   time.Time `json:"modified"`
	ImportedAt time.Time `json:"importedAt"`
	Raw        []byte    `json:"-"`
}

// Advisories keeps the offline vulnerability database.
type Advisories interface {
	// PutAdvisories stores advisories in one transaction: a new id is
	// added, a known id is replaced only when its Modified is newer.
	PutAdvisories(ctx context.Context, as []Advisory) (added, updated int, err error)
	// Advisories returns every stored advisory, by id.
	Advisories(ctx context.Context) ([]Advisory, error)
}

// Finding is something a scan or the vulnerability database found in a
// version. Fingerprint identifies it across scans of the same version (a
// finding found again keeps its FirstSeen).
type Finding struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	Version     int        `json:"version"`
	Fingerprint string     `json:"fingerprint"`
	Kind        string     `json:"kind"`
	Rule        string     `json:"rule"`
	Severity    string     `json:"severity"`
	Message     string     `json:"message"`
	Location    string     `json:"location,omitempty"`
	Module      string     `json:"module,omitempty"`
	Found       string     `json:"found,omitempty"` // the version of Module found
	Fixed       string     `json:"fixed,omitempty"`
	Aliases     []string   `json:"aliases,omitempty"`
	FirstSeen   time.Time  `json:"firstSeen"`
	LastSeen    time.Time  `json:"lastSeen"`
	ResolvedAt  *time.Time `json:"resolvedAt,omitempty"`
}

// Findings keeps findings per version.
type Findings interface {
	// SetFindings records what a scan of one version found at time at:
	// findings new to the version are added (FirstSeen at), ones found
	// again keep FirstSeen (LastSeen at, reopened if resolved), and open
	// ones not in fs are resolved at at. kinds limits the change to those
	// kinds (nil: every kind), so a vulnerability re-match does not
	// resolve what the module scan found.
	SetFindings(ctx context.Context, namespace, name string, version int, kinds []string, fs []Finding, at time.Time) error
	// Findings returns the findings of a function's versions (name "":
	// every function of namespace; namespace "": everything), open only
	// when open is true, ordered by namespace, name, version, severity.
	Findings(ctx context.Context, namespace, name string, open bool) ([]Finding, error)
}

// Policy is a namespace's deploy policy (Rego source).
type Policy struct {
	Namespace string    `json:"namespace"`
	Source    []byte    `json:"-"`
	Digest    string    `json:"digest"`
	SetBy     string    `json:"setBy"`
	SetAt     time.Time `json:"setAt"`
}

// Policies keeps each namespace's deploy policy.
type Policies interface {
	// SetPolicy stores (or replaces) a namespace's policy.
	SetPolicy(ctx context.Context, p Policy) error
	// Policy returns a namespace's policy, or ErrNotFound.
	Policy(ctx context.Context, namespace string) (Policy, error)
	// DeletePolicy removes it (the built-in default applies again), or
	// returns ErrNotFound.
	DeletePolicy(ctx context.Context, namespace string) error
}
