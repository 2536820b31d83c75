// Package deploy owns the deployment pipeline and the set of active function
// versions: it validates a manifest and a module, stores an immutable,
// content-addressed version, activates it, rolls back and deletes, and keeps
// the route table that the gateway serves from.
//
// deploy never serves HTTP and never activates a version that was not stored
// first: after a crash the store's active version is the truth, and Load
// rebuilds everything from it.
package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/capability"
	"warden/internal/dlp"
	"warden/internal/events"
	"warden/internal/health"
	"warden/internal/inspect"
	"warden/internal/manifest"
	"warden/internal/router"
	"warden/internal/sandbox"
	"warden/internal/scan"
	"warden/internal/store"
	"warden/internal/validate"
)

// DefaultMaxArtifact is the largest module accepted when Config.MaxArtifact is 0.
const DefaultMaxArtifact = 64 << 20

// Store is what the pipeline keeps: versions and artifacts, the findings
// of their scans, and the namespaces' policies.
type Store interface {
	store.Functions
	store.Findings
	store.Policies
}

// Config configures a Service. Store, Engine and Events are required.
type Config struct {
	Store       Store
	Engine      *sandbox.Engine
	Events      events.Emitter
	Logger      *slog.Logger
	MaxArtifact int64
	// Capabilities makes each version's host (its grants); nil: every
	// capability call is denied.
	Capabilities *capability.Service
	// Trust gives each namespace's trusted signing keys and mode; nil: no
	// namespace verifies signatures (every deploy is recorded unsigned).
	Trust store.Trust
	// Now is the clock for key expiry; nil: time.Now.
	Now func() time.Time
	// Vulns is the vulnerability index scans are matched against; nil:
	// an empty one.
	Vulns *Vulns
	// ApprovalTTL is how long a version waits for approval; 0: 24h.
	ApprovalTTL time.Duration
}

// policyTimeout bounds one policy evaluation.
const policyTimeout = 2 * time.Second

// Runner runs one version's code; *sandbox.Function implements it.
//
// # Notes
//   - Invoke is safe for concurrent use; Close waits for in-flight
//     invocations and may be called once the version is replaced.
type Runner interface {
	Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error)
	Prepare(ctx context.Context) error
	Close()
}

var _ Runner = (*sandbox.Function)(nil)

// Active is a function's active version, ready to invoke. It is immutable:
// a deploy or rollback replaces the whole value.
type Active struct {
	Version  store.Version
	Manifest *manifest.Manifest
	Fn       Runner
	// Host serves the version's capability calls under its grants; nil
	// without a capability service.
	Host *capability.Host
	// Secrets gives the values of the secrets the version holds for the
	// inspection of its answers; nil when it holds none.
	Secrets inspect.Secrets
	// Schemas holds the compiled request schema of each route that names
	// one, by route pattern.
	Schemas map[string]*validate.Schema
	// Canary is the version serving a share of clients beside this one,
	// nil when none is.
	Canary *Canary
}

// Inspected describes the version for the inspection of its answers: its
// secrets are checked when it holds any.
func (a *Active) Inspected() inspect.Function {
	return inspect.Function{Namespace: a.Version.Namespace, Name: a.Version.Name, Version: a.Version.Version, Secrets: a.Secrets}
}

// Key is "namespace/name".
func (a *Active) Key() string { return key(a.Version.Namespace, a.Version.Name) }

func key(namespace, name string) string { return namespace + "/" + name }

type state struct {
	active map[string]*Active
	routes *router.Table[*Active]
}

// Service runs the pipeline. Mutations (deploy, rollback, delete) are
// serialized; reads (Get, Routes) are lock-free and see a consistent
// snapshot.
type Service struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex // serializes mutations
	cur atomic.Pointer[state]
	// bindFault, when set (tests only), fails binding a version.
	bindFault func(*Active) error
	pol       policies
}

// New returns a service with no active functions; call Load to restore them
// from the store. It refuses a config that lacks a required dependency.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("deploy: Store is required")
	case cfg.Engine == nil:
		return nil, errors.New("deploy: Engine is required")
	case cfg.Events == nil:
		return nil, errors.New("deploy: Events is required")
	}
	if cfg.MaxArtifact <= 0 {
		cfg.MaxArtifact = DefaultMaxArtifact
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: log}
	empty, _ := router.Build[*Active](nil)
	s.cur.Store(&state{active: map[string]*Active{}, routes: empty})
	return s, nil
}

// Origin says who asked for a change, for the events it causes.
type Origin struct {
	Actor     string
	SourceIP  string
	RequestID string
	// MayGrant is whether the caller may give a function grants (secrets,
	// KV, egress) its active version does not hold. Without it a change
	// may keep or narrow grants, never widen them.
	MayGrant bool
	// Roles are the caller's roles, for the deploy policy's input.
	Roles []string
}

// Kind classifies a refused change.
type Kind int

const (
	KindInvalid   Kind = iota + 1 // the manifest or request is malformed
	KindRejected                  // the module was refused (does not compile, wrong ABI)
	KindConflict                  // a route is served by another function
	KindNotFound                  // no such function or version
	KindForbidden                 // the caller may not widen the function's grants
)

// Steps of the deploy pipeline, in order. A refused deploy names the step
// that refused it (Error.Step).
const (
	StepManifest    = "manifest"    // parse and check the manifest and its files
	StepPermissions = "permissions" // the grants can be enforced; granted secrets exist
	StepSignature   = "signature"   // the envelope against the namespace's trusted keys
	StepScan        = "scan"        // the module and manifest analysed, matched against the vulnerability database
	StepApproval    = "approval"    // widening needs grants:approve
	StepPolicy      = "policy"      // the namespace's Rego policy (or the built-in default) decides
	StepModule      = "module"      // the module compiles and fits the ABI
	StepRoutes      = "routes"      // no route is served by another function
	StepStore       = "store"       // the version is stored
	StepActivate    = "activate"    // bound, loaded, made active
)

// Error is a refused change. Msg and Details are safe to show the user.
type Error struct {
	Kind    Kind
	Step    string // the pipeline step that refused a deploy (Step*)
	Msg     string
	Details []string
	Err     error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Request is one deploy.
type Request struct {
	ManifestName string // file name for error messages, e.g. "warden.yaml"
	Manifest     []byte
	Artifact     []byte
	// Files holds the files the manifest names besides the artifact (route
	// schemas), by the path written in the manifest.
	Files map[string][]byte
	// Signature is the DSSE envelope signing the deploy (warden sign); nil
	// when unsigned.
	Signature []byte
	// SBOM is a CycloneDX JSON SBOM given beside the artifact (for
	// modules whose build info warden cannot read); nil when none.
	SBOM []byte
	// Canary, when set, starts the new version as a canary beside the
	// active one instead of replacing it.
	Canary *CanarySpec
	Origin Origin
}

// Result describes the version a change made active.
type Result struct {
	Version   store.Version `json:"version"`
	Previous  int           `json:"previous,omitempty"`  // the version active before, 0 if none
	Unchanged bool          `json:"unchanged,omitempty"` // the same content was already active
	// Pending: the version is stored but needs a second person's approval
	// (Version.Approval says why); the active version is unchanged.
	Pending bool `json:"pending,omitempty"`
	// Canary: the version serves a share of clients beside the active one.
	Canary *CanaryStatus `json:"canary,omitempty"`
}

// Load restores the active versions from the store. Modules are not compiled
// or loaded here: each is loaded on first use, so a server with many idle
// functions starts fast and stays small. A stored version whose manifest no
// longer parses is not served (fail closed) and is logged.
func (s *Service) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fns, err := s.cfg.Store.ListFunctions(ctx)
	if err != nil {
		return fmt.Errorf("list functions: %w", err)
	}
	active := make(map[string]*Active, len(fns))
	for _, f := range fns {
		if f.ActiveVersion == 0 {
			continue
		}
		v, err := s.cfg.Store.Version(ctx, f.Namespace, f.Name, f.ActiveVersion)
		if err != nil {
			return fmt.Errorf("load %s/%s v%d: %w", f.Namespace, f.Name, f.ActiveVersion, err)
		}
		m, err := manifest.Parse("warden.yaml", v.Manifest)
		if err != nil {
			s.log.Error("stored manifest no longer valid; function not served", "function", key(f.Namespace, f.Name), "version", v.Version, "err", err)
			s.emit(events.TypeFunctionLoad, events.OutcomeFailure, "the active version's manifest is no longer valid; the function is not served",
				f.Namespace, f.Name, v.Version, Origin{Actor: "warden"})
			continue
		}
		schemas, err := s.loadSchemas(ctx, v, m)
		if err != nil {
			s.log.Error("stored schema no longer valid; function not served", "function", key(f.Namespace, f.Name), "version", v.Version, "err", err)
			s.emit(events.TypeFunctionLoad, events.OutcomeFailure, "the active version's schemas cannot be loaded; the function is not served",
				f.Namespace, f.Name, v.Version, Origin{Actor: "warden"})
			continue
		}
		a := &Active{Version: v, Manifest: m, Schemas: schemas}
		if err := s.bind(a); err != nil {
			s.log.Error("the active version cannot be bound on this node; function not served", "function", key(f.Namespace, f.Name), "version", v.Version, "err", err)
			s.emit(events.TypeFunctionLoad, events.OutcomeFailure, "the store's active version cannot be bound on this node; the function is not served",
				f.Namespace, f.Name, v.Version, Origin{Actor: "warden"})
			continue
		}
		active[key(f.Namespace, f.Name)] = a
	}
	routes, err := buildRoutes(active, "")
	if err != nil {
		return fmt.Errorf("stored routes conflict: %w", err)
	}
	old := s.cur.Swap(&state{active: active, routes: routes})
	for _, a := range old.active {
		a.Fn.Close()
	}
	return nil
}

// Get returns the active version of a function.
func (s *Service) Get(namespace, name string) (*Active, bool) {
	a, ok := s.cur.Load().active[key(namespace, name)]
	return a, ok
}

// List returns the active versions, ordered by key.
func (s *Service) List() []*Active {
	st := s.cur.Load()
	out := make([]*Active, 0, len(st.active))
	for _, a := range st.active {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *Active) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// Routes returns the current route table.
func (s *Service) Routes() *router.Table[*Active] { return s.cur.Load().routes }

// Deploy validates, stores and activates a new version.
func (s *Service) Deploy(ctx context.Context, req Request) (Result, error) {
	m, err := manifest.Parse(req.ManifestName, req.Manifest)
	if err != nil {
		e := &Error{Kind: KindInvalid, Step: StepManifest, Msg: "invalid manifest", Details: manifestErrors(err), Err: err}
		s.emitLabels(events.TypeFunctionDeploy, events.OutcomeFailure, "invalid manifest", "", "", 0, req.Origin, map[string]string{"step": StepManifest})
		return Result{}, e
	}
	step := StepManifest
	failVersion := func(e *Error, version int) (Result, error) {
		if e.Step == "" {
			e.Step = step
		}
		s.emitLabels(events.TypeFunctionDeploy, events.OutcomeFailure, e.Msg, m.Namespace, m.Name, version, req.Origin, map[string]string{"step": e.Step})
		return Result{}, e
	}
	fail := func(e *Error) (Result, error) { return failVersion(e, 0) }
	if len(req.Artifact) == 0 {
		return fail(&Error{Kind: KindInvalid, Msg: "artifact is empty"})
	}
	if int64(len(req.Artifact)) > s.cfg.MaxArtifact {
		return fail(&Error{Kind: KindInvalid, Msg: fmt.Sprintf("artifact is %d bytes; the limit is %d", len(req.Artifact), s.cfg.MaxArtifact)})
	}
	if e := credentialsInEnv(m); e != nil {
		return fail(e)
	}
	for _, r := range m.HTTP {
		if r.Path == health.Path {
			return fail(&Error{Kind: KindInvalid, Msg: fmt.Sprintf("route %q: the path %s is reserved for the health report", r.Pattern, health.Path)})
		}
	}
	step = StepPermissions
	if s.cfg.Capabilities != nil {
		if err := capability.CheckPermissions(m.Permissions); err != nil {
			return fail(&Error{Kind: KindInvalid, Msg: "permissions cannot be enforced: " + err.Error(), Err: err})
		}
		missing, err := s.cfg.Capabilities.Vault().MissingSecrets(ctx, m.Namespace, m.Permissions.Secrets)
		if err != nil {
			return fail(&Error{Msg: "check granted secrets failed", Err: err})
		}
		if len(missing) > 0 {
			return fail(&Error{Kind: KindInvalid, Msg: fmt.Sprintf("permissions.secrets grants secrets that do not exist in namespace %s: %s (create them first: warden secrets set %s/NAME --from-stdin)",
				m.Namespace, strings.Join(missing, ", "), m.Namespace)})
		}
	}
	schemas, fileDigests, ferr := compileSchemas(m, req.Files)
	if ferr != nil {
		ferr.Step = StepManifest
		return fail(ferr)
	}
	artDigest := digest(req.Artifact)
	verDigest := store.VersionDigest(artDigest, withFiles(req.Manifest, fileDigests))

	step = StepSignature
	sig, e := s.verifySignature(ctx, m, req, artDigest, fileDigests)
	if e != nil {
		return fail(e)
	}
	step = StepScan
	report, findings, e := s.runScan(m, req, req.Origin)
	if e != nil {
		return fail(e)
	}
	sbom, err := scan.SBOM(report.Report, m.Namespace, m.Name, "sha256:"+verDigest, artDigest, s.now())
	if err != nil {
		return fail(&Error{Msg: "SBOM failed", Err: err})
	}
	if len(req.SBOM) > 0 && report.Main == nil {
		sbom = req.SBOM // not a Go module: the SBOM its build gave is the better record
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	step = StepApproval
	k := key(m.Namespace, m.Name)
	cur := s.cur.Load()
	prev := cur.active[k]
	if prev != nil && prev.Canary != nil {
		return fail(&Error{Kind: KindConflict, Msg: fmt.Sprintf("%s has a canary running (version %d): promote or abort it first (warden canary promote|abort)", k, prev.Canary.Next.Version.Version)})
	}
	if c := req.Canary; c != nil {
		switch {
		case prev == nil:
			return fail(&Error{Kind: KindInvalid, Msg: "a canary needs an active version to compare with; deploy the first version without --canary"})
		case c.Percent < 1 || c.Percent > 99:
			return fail(&Error{Kind: KindInvalid, Msg: "a canary's share is 1% to 99% of clients"})
		}
	}
	if e := s.checkChange(prev, m, artDigest, req.Origin, sig.Status == store.SignatureVerified); e != nil {
		return fail(e)
	}
	if prev != nil && prev.Version.Digest == verDigest {
		s.emit(events.TypeFunctionDeploy, events.OutcomeSuccess, "unchanged", m.Namespace, m.Name, prev.Version.Version, req.Origin)
		return Result{Version: prev.Version, Previous: prev.Version.Version, Unchanged: true}, nil
	}
	step = StepPolicy
	approvals, e := s.runPolicy(ctx, prev, m, artDigest, findings, sig, req.Origin)
	if e != nil {
		return fail(e)
	}
	step = StepModule
	if err := s.cfg.Engine.Check(ctx, m.ABI, req.Artifact); err != nil {
		return fail(&Error{Kind: KindRejected, Msg: "module refused: " + err.Error(), Err: err})
	}
	step = StepRoutes
	next := &Active{Manifest: m, Schemas: schemas}
	next.Version = store.Version{Namespace: m.Namespace, Name: m.Name}
	routes, err := buildRoutes(with(cur.active, k, next), k)
	if err != nil {
		return fail(&Error{Kind: KindConflict, Msg: err.Error(), Err: err})
	}
	step = StepStore
	if err := s.cfg.Store.PutArtifact(ctx, artDigest, req.Artifact); err != nil {
		return fail(&Error{Msg: "store artifact failed", Err: err})
	}
	for path, d := range fileDigests {
		if err := s.cfg.Store.PutArtifact(ctx, d, req.Files[path]); err != nil {
			return fail(&Error{Msg: "store file failed", Err: err})
		}
	}
	// The version is stored inactive, bound and loaded, and only then made
	// active: the store never names as active a version this node could
	// not serve. A crash in between leaves an inactive version behind,
	// which a later deploy of the same content simply follows.
	v, err := s.cfg.Store.CreateVersion(ctx, store.Version{
		Namespace: m.Namespace, Name: m.Name, Digest: verDigest,
		ArtifactDigest: artDigest, ArtifactSize: int64(len(req.Artifact)),
		Manifest: req.Manifest, Files: fileDigests, CreatedBy: req.Origin.Actor,
		Signature: sig, Envelope: req.Signature, Scan: marshalReport(report), SBOM: sbom, Approval: s.approvalFor(approvals, req.Origin),
	}, false)
	if err != nil {
		return fail(&Error{Msg: "store version failed", Err: err})
	}
	if err := s.cfg.Store.SetFindings(ctx, m.Namespace, m.Name, v.Version, nil, findings, s.now()); err != nil {
		return failVersion(&Error{Msg: "store findings failed; the active version is unchanged", Err: err}, v.Version)
	}
	if v.Approval != nil {
		// Stored, never served until a second person approves it.
		s.emitLabels(TypeDeployApproval, events.OutcomeSuccess, "approval requested: "+strings.Join(approvals, "; "), m.Namespace, m.Name, v.Version, req.Origin,
			map[string]string{"status": store.ApprovalPending, "expires": v.Approval.ExpiresAt.Format(time.RFC3339)})
		res := Result{Version: v, Pending: true}
		if prev != nil {
			res.Previous = prev.Version.Version
		}
		return res, nil
	}
	step = StepActivate
	next.Version = v
	if err := s.bind(next); err != nil {
		return failVersion(&Error{Kind: KindRejected, Msg: fmt.Sprintf("version %d could not be bound on this node; the active version is unchanged", v.Version), Err: err}, v.Version)
	}
	if err := next.Fn.Prepare(ctx); err != nil {
		next.Fn.Close()
		return failVersion(&Error{Kind: KindRejected, Msg: fmt.Sprintf("version %d could not be loaded; the active version is unchanged", v.Version), Err: err}, v.Version)
	}
	if req.Canary != nil {
		c, err := s.startCanary(cur, k, prev, next, *req.Canary, req.Origin)
		if err != nil {
			next.Fn.Close()
			return failVersion(&Error{Kind: KindConflict, Msg: err.Error(), Err: err}, v.Version)
		}
		st := c.Status()
		s.emitLabels(TypeDeployCanary, events.OutcomeSuccess, fmt.Sprintf("started: %d%% of clients until %s", c.Percent, c.Until.Format(time.RFC3339)),
			m.Namespace, m.Name, v.Version, req.Origin, map[string]string{"decision": "start", "percent": strconv.Itoa(c.Percent), "stable.version": strconv.Itoa(prev.Version.Version)})
		return Result{Version: v, Previous: prev.Version.Version, Canary: &st}, nil
	}
	if err := s.cfg.Store.Activate(ctx, m.Namespace, m.Name, v.Version); err != nil {
		next.Fn.Close()
		return failVersion(&Error{Msg: "activate failed; the active version is unchanged", Err: err}, v.Version)
	}
	s.swap(cur, k, next, routes)
	res := Result{Version: v}
	if prev != nil {
		res.Previous = prev.Version.Version
	}
	labels := map[string]string{"signature": sig.Status}
	if sig.KeyName != "" {
		labels["signer"] = sig.KeyName
	}
	if sig.KeyID != "" {
		labels["signer.key_id"] = sig.KeyID
	}
	s.emitLabels(events.TypeFunctionDeploy, events.OutcomeSuccess, "", m.Namespace, m.Name, v.Version, req.Origin, labels)
	return res, nil
}

// Rollback makes an earlier version active again. to=0 means the newest
// version older than the active one. The module is loaded (from the
// compilation cache) before the switch, so no request pays for it.
func (s *Service) Rollback(ctx context.Context, namespace, name string, to int, o Origin) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(namespace, name)
	fail := func(e *Error) (Result, error) {
		s.emit(events.TypeFunctionRollback, events.OutcomeFailure, e.Msg, namespace, name, to, o)
		return Result{}, e
	}
	cur := s.cur.Load()
	prev := cur.active[k]
	if prev == nil {
		return fail(&Error{Kind: KindNotFound, Msg: fmt.Sprintf("function %s not found", k)})
	}
	if prev.Canary != nil {
		return fail(&Error{Kind: KindConflict, Msg: fmt.Sprintf("%s has a canary running: promote or abort it first", k)})
	}
	if to == 0 {
		vs, err := s.cfg.Store.Versions(ctx, namespace, name)
		if err != nil {
			return fail(&Error{Msg: "list versions failed", Err: err})
		}
		for _, v := range vs { // newest first
			if v.Version < prev.Version.Version && servable(v) {
				to = v.Version
				break
			}
		}
		if to == 0 {
			return fail(&Error{Kind: KindNotFound, Msg: fmt.Sprintf("%s has no version older than %d", k, prev.Version.Version)})
		}
	}
	if to == prev.Version.Version {
		return Result{Version: prev.Version, Previous: to, Unchanged: true}, nil
	}
	v, err := s.cfg.Store.Version(ctx, namespace, name, to)
	if errors.Is(err, store.ErrNotFound) {
		return fail(&Error{Kind: KindNotFound, Msg: fmt.Sprintf("%s has no version %d", k, to)})
	} else if err != nil {
		return fail(&Error{Msg: "load version failed", Err: err})
	}
	if !servable(v) {
		return fail(&Error{Kind: KindForbidden, Msg: fmt.Sprintf("version %d was never approved (%s): only warden approve activates it", to, v.Approval.Status)})
	}
	m, err := manifest.Parse("warden.yaml", v.Manifest)
	if err != nil {
		return fail(&Error{Kind: KindInvalid, Msg: fmt.Sprintf("version %d's manifest is no longer valid", to), Details: manifestErrors(err), Err: err})
	}
	schemas, err := s.loadSchemas(ctx, v, m)
	if err != nil {
		return fail(&Error{Kind: KindRejected, Msg: fmt.Sprintf("version %d's schemas could not be loaded", to), Err: err})
	}
	if e := s.checkChange(prev, m, v.ArtifactDigest, o, s.stillVouched(ctx, v)); e != nil {
		return fail(e)
	}
	next := &Active{Version: v, Manifest: m, Schemas: schemas}
	routes, err := buildRoutes(with(cur.active, k, next), k)
	if err != nil {
		return fail(&Error{Kind: KindConflict, Msg: err.Error(), Err: err})
	}
	if err := s.bind(next); err != nil {
		return fail(&Error{Kind: KindRejected, Msg: fmt.Sprintf("version %d's permissions cannot be enforced", to), Err: err})
	}
	if err := next.Fn.Prepare(ctx); err != nil {
		next.Fn.Close()
		return fail(&Error{Kind: KindRejected, Msg: fmt.Sprintf("version %d could not be loaded", to), Err: err})
	}
	if err := s.cfg.Store.Activate(ctx, namespace, name, to); err != nil {
		next.Fn.Close()
		return fail(&Error{Msg: "activate failed", Err: err})
	}
	s.swap(cur, k, next, routes)
	s.emit(events.TypeFunctionRollback, events.OutcomeSuccess, fmt.Sprintf("from version %d", prev.Version.Version), namespace, name, to, o)
	return Result{Version: v, Previous: prev.Version.Version}, nil
}

// Delete removes a function, all its versions and its routes.
func (s *Service) Delete(ctx context.Context, namespace, name string, o Origin) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(namespace, name)
	cur := s.cur.Load()
	prev := cur.active[k]
	if err := s.cfg.Store.DeleteFunction(ctx, namespace, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.emit(events.TypeFunctionDelete, events.OutcomeFailure, "not found", namespace, name, 0, o)
			return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("function %s not found", k), Err: err}
		}
		s.emit(events.TypeFunctionDelete, events.OutcomeFailure, "store error", namespace, name, 0, o)
		return &Error{Msg: "delete failed", Err: err}
	}
	routes, err := buildRoutes(with(cur.active, k, nil), k)
	if err != nil { // removing routes cannot create a conflict
		return err
	}
	s.swap(cur, k, nil, routes)
	v := 0
	if prev != nil {
		v = prev.Version.Version
	}
	s.emit(events.TypeFunctionDelete, events.OutcomeSuccess, "", namespace, name, v, o)
	return nil
}

// Close releases every loaded module. In-flight invocations finish first.
func (s *Service) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.cur.Load().active {
		a.Fn.Close()
	}
}

// swap installs next (nil: removed) for k; the replaced version's module is
// released once its in-flight invocations end.
func (s *Service) swap(cur *state, k string, next *Active, routes *router.Table[*Active]) {
	active := with(cur.active, k, next)
	s.cur.Store(&state{active: active, routes: routes})
	if old := cur.active[k]; old != nil && old.Fn != nil {
		go old.Fn.Close()
		if c := old.Canary; c != nil && c.done.CompareAndSwap(false, true) {
			go c.Next.Fn.Close()
		}
	}
}

// checkChange refuses a change that widens what the function may do or who
// may reach it, unless the caller may approve grants (grants:approve): new
// grants (Widened), relaxed route or WAF protection (Relaxed), and new
// code, a new env or a new route for a function that holds secrets (new
// code can return a secret in any encoding, and an approved function can
// be told to by its env or reached on a new route). Otherwise whoever may
// deploy could read any secret by deploying a function that returns it.
// A signature by a key the namespace trusts stands in for the approval of
// new code, env and routes of a function holding secrets (the signer
// vouched for all of them), never for widened grants or relaxed protection.
// prev is nil for a new function.
func (s *Service) checkChange(prev *Active, m *manifest.Manifest, artifactDigest string, o Origin, signed bool) *Error {
	if o.MayGrant {
		return nil
	}
	var held manifest.Permissions
	if prev != nil {
		held = prev.Manifest.Permissions
	}
	w := Widened(held, m.Permissions)
	if prev != nil {
		w = append(w, Relaxed(prev.Manifest, m)...)
		if !signed {
			w = append(w, secretHolderChanges(prev, m, artifactDigest)...)
		}
	}
	if len(w) > 0 {
		return &Error{Kind: KindForbidden, Msg: "this change needs grants:approve (the admin role): " + strings.Join(w, "; "), Details: w}
	}
	return nil
}

// secretHolderChanges lists what changes code or configuration of a
// function that holds secrets before and after the change (code that will
// hold none cannot read one).
func secretHolderChanges(prev *Active, m *manifest.Manifest, artifactDigest string) []string {
	var secrets []string
	for _, n := range m.Permissions.Secrets {
		if slices.Contains(prev.Manifest.Permissions.Secrets, n) {
			secrets = append(secrets, n)
		}
	}
	if len(secrets) == 0 {
		return nil
	}
	holds := "the function holds secrets (" + strings.Join(secrets, ", ") + ")"
	var out []string
	holds += " and the deploy is not signed by a key its namespace trusts"
	if prev.Version.ArtifactDigest != artifactDigest {
		out = append(out, "new code: "+holds)
	}
	if !maps.Equal(prev.Manifest.Env, m.Env) {
		out = append(out, "env changed: "+holds)
	}
	for _, r := range m.HTTP {
		if findRoute(prev.Manifest.HTTP, r.Pattern) == nil {
			out = append(out, fmt.Sprintf("new route %q: %s", r.Pattern, holds))
		}
	}
	return out
}

// Relaxed lists how next protects the function less than prev: per route
// (matched by pattern), authentication changed from a method to another or
// to none, required scopes dropped, dlp weakened (block > redact > off), the
// schema removed, the rate limit raised, removed or keyed differently; a
// route new to the function compared with every route next removes (a
// renamed route must be as strict as the one it replaces) and, when none
// is removed, refused with auth none or dlp off; and the WAF weakened
// (mode block > detect > off, or a lower paranoia level).
func Relaxed(prev, next *manifest.Manifest) []string {
	var out []string
	var removed []manifest.Route
	for _, p := range prev.HTTP {
		if findRoute(next.HTTP, p.Pattern) == nil {
			removed = append(removed, p)
		}
	}
	for _, n := range next.HTTP {
		q := fmt.Sprintf("route %q: ", n.Pattern)
		if p := findRoute(prev.HTTP, n.Pattern); p != nil {
			out = append(out, routeRelaxed(q, *p, n)...)
			continue
		}
		for _, p := range removed {
			out = append(out, routeRelaxed(fmt.Sprintf("route %q (replacing %q): ", n.Pattern, p.Pattern), p, n)...)
		}
		if n.Auth == manifest.AuthNone {
			out = append(out, q+"a new route without authentication")
		}
		if n.DLP == "off" {
			out = append(out, q+"a new route with dlp off")
		}
	}
	if wafRank[next.WAF.Mode] < wafRank[prev.WAF.Mode] {
		out = append(out, "waf "+prev.WAF.Mode+" → "+next.WAF.Mode)
	}
	if next.WAF.Paranoia < prev.WAF.Paranoia && wafRank[next.WAF.Mode] > 0 {
		out = append(out, fmt.Sprintf("waf paranoia %d → %d", prev.WAF.Paranoia, next.WAF.Paranoia))
	}
	return slices.Compact(out)
}

// routeRelaxed lists how route n protects less than route p; each entry
// starts with q.
func routeRelaxed(q string, p, n manifest.Route) []string {
	var out []string
	if p.Auth != manifest.AuthNone && (n.Auth != p.Auth || n.Issuer != p.Issuer) {
		out = append(out, q+"auth "+authName(p)+" → "+authName(n))
	}
	for _, sc := range p.Scopes {
		if !slices.Contains(n.Scopes, sc) {
			out = append(out, q+"scope "+sc+" no longer required")
		}
	}
	if dlpRank[n.DLP] < dlpRank[p.DLP] {
		out = append(out, q+"dlp "+p.DLP+" → "+n.DLP)
	}
	if p.Schema != "" && n.Schema == "" {
		out = append(out, q+"schema removed")
	}
	switch {
	case p.RateLimit != nil && n.RateLimit == nil:
		out = append(out, q+"rate limit removed")
	case p.RateLimit != nil && rateRaised(*p.RateLimit, *n.RateLimit):
		out = append(out, q+"rate limit raised")
	case p.RateLimit != nil && n.RateLimit.By != p.RateLimit.By:
		out = append(out, q+"rate limit keyed by "+n.RateLimit.By+" instead of "+p.RateLimit.By)
	}
	return out
}

var (
	dlpRank = map[string]int{"off": 0, "redact": 1, "block": 2}
	wafRank = map[string]int{"off": 0, "detect": 1, "block": 2}
)

func authName(r manifest.Route) string {
	if r.Auth == manifest.AuthJWT {
		return "jwt:" + r.Issuer
	}
	return r.Auth
}

// rateRaised reports whether next admits more than prev: a higher
// sustained rate or a larger burst.
func rateRaised(prev, next manifest.RateLimit) bool {
	// rate/per compared without division: next.Rate/next.Per > prev.Rate/prev.Per.
	if int64(next.Rate)*int64(prev.Per) > int64(prev.Rate)*int64(next.Per) {
		return true
	}
	return next.Burst > prev.Burst
}

func findRoute(rs []manifest.Route, pattern string) *manifest.Route {
	for i := range rs {
		if rs[i].Pattern == pattern {
			return &rs[i]
		}
	}
	return nil
}

// Widened lists the grants of next that held does not give: secrets,
// buckets (or write where held has read) and egress origins.
func Widened(held, next manifest.Permissions) []string {
	var out []string
	for _, n := range next.Secrets {
		if !slices.Contains(held.Secrets, n) {
			out = append(out, "secret "+n)
		}
	}
	for _, b := range slices.Sorted(maps.Keys(next.KV)) {
		if h, ok := held.KV[b]; !ok || h == "read" && next.KV[b] == "write" {
			out = append(out, "kv "+b+": "+next.KV[b])
		}
	}
	for _, e := range next.Egress {
		if !slices.Contains(held.Egress, e) {
			out = append(out, "egress "+e)
		}
	}
	return out
}

// bind gives a its capability host and its sandbox function.
func (s *Service) bind(a *Active) error {
	if s.bindFault != nil {
		if err := s.bindFault(a); err != nil {
			return err
		}
	}
	v, m := a.Version, a.Manifest
	st := s.cfg.Store
	artifact := v.ArtifactDigest
	spec := sandbox.Spec{
		Namespace: v.Namespace, Name: v.Name, Version: v.Version, Digest: v.Digest,
		ABI: m.ABI, Limits: m.Limits, Env: m.Env,
		Load: func(ctx context.Context) ([]byte, error) { return st.Artifact(ctx, artifact) },
	}
	if s.cfg.Capabilities != nil {
		h, err := s.cfg.Capabilities.ForFunction(v.Namespace, v.Name, v.Version, m.Permissions)
		if err != nil {
			return err
		}
		a.Host, spec.Host = h, h
		if h.HoldsSecrets() {
			a.Secrets = h
		}
		if h.HasEgress() {
			// Instances of a function that calls out spend most of an
			// invocation blocked on the network, not on a CPU: let them
			// be as many as the function's concurrency, not GOMAXPROCS.
			spec.PoolSize = m.Limits.Concurrency
			if spec.PoolSize <= 0 {
				spec.PoolSize = manifest.DefaultConcurrency
			}
		}
	}
	a.Fn = s.cfg.Engine.Function(spec)
	return nil
}

func (s *Service) emit(typ, outcome, reason, namespace, name string, version int, o Origin) {
	s.emitLabels(typ, outcome, reason, namespace, name, version, o, nil)
}

func (s *Service) emitLabels(typ, outcome, reason, namespace, name string, version int, o Origin, labels map[string]string) {
	s.cfg.Events.Emit(events.Event{
		Type: typ, Outcome: outcome, Reason: reason,
		Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID,
		Namespace: namespace, Function: name, Version: version, Labels: labels,
	})
}

// with returns a copy of m with k set to a (or removed when a is nil).
func with(m map[string]*Active, k string, a *Active) map[string]*Active {
	out := make(map[string]*Active, len(m)+1)
	for kk, v := range m {
		out[kk] = v
	}
	if a == nil {
		delete(out, k)
	} else {
		out[k] = a
	}
	return out
}

// buildRoutes builds the route table of active. The routes of changed (the
// function being deployed or rolled back) go last, so a conflict message
// names it as the newcomer and the other function as the owner.
func buildRoutes(active map[string]*Active, changed string) (*router.Table[*Active], error) {
	keys := make([]string, 0, len(active))
	for k := range active {
		if k != changed {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // deterministic conflict messages
	if _, ok := active[changed]; ok {
		keys = append(keys, changed)
	}
	var entries []router.Entry[*Active]
	for _, k := range keys {
		a := active[k]
		for _, r := range a.Manifest.HTTP {
			entries = append(entries, router.Entry[*Active]{Owner: k, Route: r, Target: a})
		}
	}
	return router.Build(entries)
}

// envScanner finds credential-shaped values in a manifest's env.
var envScanner = dlp.New(dlp.Options{})

// credentialsInEnv refuses a manifest whose plain env holds something that
// looks like a credential: secrets belong in permissions.secrets, where they
// are encrypted, granted and audited. The value is never echoed.
func credentialsInEnv(m *manifest.Manifest) *Error {
	keys := make([]string, 0, len(m.Env))
	for k := range m.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var details []string
	for _, k := range keys {
		for _, f := range envScanner.Scan([]byte(m.Env[k])) {
			if f.Kind == dlp.KindCard || f.Kind == dlp.KindSSN {
				continue // sensitive data, not a credential: DLP guards responses
			}
			details = append(details, fmt.Sprintf("env.%s looks like a credential (%s); keep it in the secret store and grant it with permissions.secrets", k, f.Kind))
		}
	}
	if len(details) == 0 {
		return nil
	}
	return &Error{Kind: KindInvalid, Msg: "credentials in env", Details: details}
}

// maxFiles and maxFileSize bound the files a deploy carries.
const (
	maxFiles    = 32
	maxFileSize = validate.MaxSchemaSize
)

// compileSchemas compiles the schema each route names from files, and
// returns them by route pattern with the digest of every file. A schema
// that is missing, does not compile, or a file the manifest does not name
// refuses the deploy.
func compileSchemas(m *manifest.Manifest, files map[string][]byte) (map[string]*validate.Schema, map[string]string, *Error) {
	if len(files) > maxFiles {
		return nil, nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("at most %d files may come with a deploy", maxFiles)}
	}
	named := map[string]bool{}
	var schemas map[string]*validate.Schema
	var digests map[string]string
	for _, r := range m.HTTP {
		if r.Schema == "" {
			continue
		}
		named[r.Schema] = true
		doc, ok := files[r.Schema]
		if !ok {
			return nil, nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("route %q names schema %s, which was not uploaded", r.Pattern, r.Schema)}
		}
		sch, err := validate.Compile(r.Schema, doc)
		if err != nil {
			return nil, nil, &Error{Kind: KindInvalid, Msg: "invalid schema: " + err.Error(), Err: err}
		}
		if schemas == nil {
			schemas, digests = map[string]*validate.Schema{}, map[string]string{}
		}
		schemas[r.Pattern] = sch
		digests[r.Schema] = digest(doc)
	}
	for path, b := range files {
		if !named[path] {
			return nil, nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("file %s is not named by the manifest", path)}
		}
		if len(b) > maxFileSize {
			return nil, nil, &Error{Kind: KindInvalid, Msg: fmt.Sprintf("file %s is larger than %d bytes", path, maxFileSize)}
		}
	}
	return schemas, digests, nil
}

// withFiles appends the files' digests to the manifest for the version
// digest, so that a changed schema makes a new version.
func withFiles(manifest []byte, files map[string]string) []byte {
	if len(files) == 0 {
		return manifest
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	out := append(slices.Clip(manifest), "\n# files\n"...)
	for _, p := range paths {
		out = append(out, p+" "+files[p]+"\n"...)
	}
	return out
}

// loadSchemas compiles a stored version's schemas from the store.
func (s *Service) loadSchemas(ctx context.Context, v store.Version, m *manifest.Manifest) (map[string]*validate.Schema, error) {
	files := map[string][]byte{}
	for path, d := range v.Files {
		b, err := s.cfg.Store.Artifact(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", path, err)
		}
		files[path] = b
	}
	schemas, _, e := compileSchemas(m, files)
	if e != nil {
		return nil, e
	}
	return schemas, nil
}

func manifestErrors(err error) []string {
	var list manifest.ErrorList
	if errors.As(err, &list) {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
