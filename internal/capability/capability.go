// Package capability owns what a function may do outside its sandbox: it
// implements sandbox.Host per function version (secrets, KV buckets,
// egress HTTP), checks every call against the version's manifest
// permissions, records every denial and every secret read as an event, and
// tracks when each grant was first and last used for access review. The
// Vault keeps secrets and KV values envelope-encrypted at rest.
//
// capability never returns a value a function was not granted, never puts a
// secret or KV value in an event, a log line or an error, and fails closed:
// when a check or a backend cannot run, the call is refused.
package capability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"warden/internal/egress"
	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/sandbox"
	"warden/internal/store"
)

// Event types of this package.
const (
	TypeDenied        = "capability.denied" // a call the function was not granted, or a destination refused
	TypeSecretRead    = "secret.read"       // a function read a secret (name and version, never the value)
	TypeEgressRequest = "egress.request"    // an outbound call: origin, method, status, bytes, duration
	TypeSecretDestroy = "secret.destroy"    // a version destroyed when its grace period ended
)

// Config configures a Service.
type Config struct {
	Vault *Vault
	Usage store.Usage
	// Events records denials and secret reads; a secret read that cannot
	// be recorded is refused (the guest gets unavailable).
	Events events.Checked
	Logger *slog.Logger
	// EgressTimeout bounds one outbound call; 0 = 10 s (and never past the
	// invocation's own deadline).
	EgressTimeout time.Duration
	// EgressMaxBody bounds an outbound response body; 0 = sandbox.MaxHTTPResponse.
	EgressMaxBody int64
	// Resolver resolves egress names; nil = the system resolver (tests
	// inject one to play DNS tricks).
	Resolver egress.Resolver
	// FlushEvery is how often usage records are written; 0 = 30 s.
	FlushEvery time.Duration
	Now        func() time.Time
}

// Service makes per-function hosts and owns what they share: the vault,
// the usage tracker and the event emitter. Safe for concurrent use; Close
// flushes pending usage records.
type Service struct {
	cfg     Config
	log     *slog.Logger
	tracker *tracker
}

// New returns a service and starts its usage flusher.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Vault == nil:
		return nil, errors.New("capability: Vault is required")
	case cfg.Usage == nil:
		return nil, errors.New("capability: Usage is required")
	case cfg.Events == nil:
		// Without it capability.denied and secret.read events would
		// vanish: refuse at start instead.
		return nil, errors.New("capability: Events is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EgressTimeout <= 0 {
		cfg.EgressTimeout = 10 * time.Second
	}
	if cfg.EgressMaxBody <= 0 {
		cfg.EgressMaxBody = sandbox.MaxHTTPResponse
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, log: cfg.Logger}
	s.tracker = newTracker(cfg.Usage, cfg.Logger, cfg.FlushEvery)
	return s, nil
}

// Vault returns the service's vault.
func (s *Service) Vault() *Vault { return s.cfg.Vault }

// Flush writes pending usage records now.
func (s *Service) Flush(ctx context.Context) error { return s.tracker.flush(ctx) }

// Close stops the flusher after a last flush.
func (s *Service) Close(ctx context.Context) error { return s.tracker.close(ctx) }

// Host is the sandbox.Host of one function version: its grants, checked on
// every call.
type Host struct {
	svc           *Service
	ns, name      string
	version       int
	secrets       map[string]bool
	kv            map[string]string // bucket -> read | write
	policy        *egress.Policy
	client        *http.Client
	egressGrants  map[string]string // canonical origin -> as written
	secretsSorted []string
	dlp           dlpCache
}

var _ sandbox.Host = (*Host)(nil)

// ForFunction returns the host of one function version. It fails when a
// grant cannot be enforced (an egress origin the egress package refuses),
// so such a manifest is refused at deploy rather than at the first call.
func (s *Service) ForFunction(ns, name string, version int, p manifest.Permissions) (*Host, error) {
	h := &Host{svc: s, ns: ns, name: name, version: version,
		secrets: make(map[string]bool, len(p.Secrets)), kv: maps.Clone(p.KV)}
	for _, n := range p.Secrets {
		h.secrets[n] = true
	}
	h.secretsSorted = slices.Sorted(maps.Keys(h.secrets))
	if len(p.Egress) > 0 {
		pol, err := egress.NewPolicy(p.Egress)
		if err != nil {
			return nil, fmt.Errorf("permissions.egress: %w", err)
		}
		if s.cfg.Resolver != nil {
			pol = pol.WithResolver(s.cfg.Resolver)
		}
		h.policy = pol
		h.client = pol.Client(s.cfg.EgressTimeout, s.cfg.EgressMaxBody)
		check := h.client.CheckRedirect
		h.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if err := check(req, via); err != nil {
				return err
			}
			t, err := pol.Check(req.URL.String())
			if err != nil {
				return err
			}
			// Each hop uses the grant it matched (so a review does not
			// call a redirect target's grant unused); the policy's own
			// check has already kept the guest's headers from following
			// to another origin.
			h.use(store.GrantEgress, h.egressGrants[t.Grant.String()], store.ModeUse)
			return nil
		}
		h.egressGrants = make(map[string]string, len(p.Egress))
		for i, g := range pol.Grants() {
			h.egressGrants[g.String()] = p.Egress[i]
		}
	}
	return h, nil
}

// CheckPermissions reports whether p can be enforced: egress origins the
// egress package refuses cannot. Deploy calls it before storing a version.
func CheckPermissions(p manifest.Permissions) error {
	if len(p.Egress) == 0 {
		return nil
	}
	if _, err := egress.NewPolicy(p.Egress); err != nil {
		return fmt.Errorf("permissions.egress: %w", err)
	}
	return nil
}

// HasEgress reports whether the function may call out (its instances then
// spend time blocked on the network, not on a CPU).
func (h *Host) HasEgress() bool { return h.policy != nil }

// HoldsSecrets reports whether the function holds any secret grant.
func (h *Host) HoldsSecrets() bool { return len(h.secretsSorted) > 0 }

// Secrets returns the names of the secrets the function holds, sorted.
func (h *Host) Secrets() []string { return slices.Clone(h.secretsSorted) }

// deny records a refused call and returns the sandbox error for it.
func (h *Host) deny(inv sandbox.Invocation, capability, target, reason string) error {
	h.svc.cfg.Events.Emit(events.Event{
		Type: TypeDenied, Outcome: events.OutcomeDenied, Reason: reason,
		Namespace: h.ns, Function: h.name, Version: h.version, RequestID: inv.RequestID,
		Labels: map[string]string{"capability": capability, "target": target},
	})
	return sandbox.ErrDenied
}

// backend turns a backend failure into ErrUnavailable, logging the cause
// (which never holds a value).
func (h *Host) backend(ctx context.Context, op string, err error) error {
	h.svc.log.LogAttrs(ctx, slog.LevelError, "capability backend failed",
		slog.String("namespace", h.ns), slog.String("function", h.name), slog.Int("version", h.version),
		slog.String("op", op), slog.String("error", err.Error()))
	return sandbox.ErrUnavailable
}

func (h *Host) use(kind, target, mode string) {
	h.svc.tracker.use(usageKey{ns: h.ns, fn: h.name, version: h.version, kind: kind, target: target, mode: mode}, h.svc.cfg.Now())
}

// SecretGet implements sandbox.Host. name is a granted secret's name, or
// NAME@previous for the version the current one replaced while it is
// within its grace period.
func (h *Host) SecretGet(ctx context.Context, inv sandbox.Invocation, name string) ([]byte, error) {
	base, previous := strings.CutSuffix(name, previousVersionName)
	if !ValidSecretName(base) {
		return nil, sandbox.ErrInvalid
	}
	if !h.secrets[base] {
		return nil, h.deny(inv, "secrets.get", base, "secret not granted")
	}
	val, version, err := h.svc.cfg.Vault.ReadSecret(ctx, h.ns, base, previous)
	if errors.Is(err, store.ErrNotFound) {
		return nil, sandbox.ErrNotFound
	}
	if err != nil {
		return nil, h.backend(ctx, "secrets.get", err)
	}
	// A read that cannot be recorded does not happen (fail closed).
	if err := h.svc.cfg.Events.TryEmit(events.Event{
		Type: TypeSecretRead, Outcome: events.OutcomeSuccess,
		Namespace: h.ns, Function: h.name, Version: h.version, RequestID: inv.RequestID,
		Labels: map[string]string{"secret": base, "secret.version": strconv.Itoa(version)},
	}); err != nil {
		clear(val)
		return nil, h.backend(ctx, "secrets.get: record the read", err)
	}
	h.use(store.GrantSecret, base, store.ModeUse)
	return val, nil
}

// SecretValues returns the plaintext of every secret the function holds
// (current and, within its grace period, previous versions), for the
// response DLP check. Missing secrets are skipped.
func (h *Host) SecretValues(ctx context.Context) ([][]byte, error) {
	var out [][]byte
	for _, n := range h.secretsSorted {
		for _, prev := range []bool{false, true} {
			v, _, err := h.svc.cfg.Vault.ReadSecret(ctx, h.ns, n, prev)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// kvCheck checks a KV call's grant: write needs a write grant.
func (h *Host) kvCheck(inv sandbox.Invocation, op, bucket, key string, write bool) error {
	if err := CheckKV(h.ns, bucket, key); err != nil && (key != "" || op != "kv.list") {
		return sandbox.ErrInvalid
	}
	mode, ok := h.kv[bucket]
	switch {
	case !ok:
		return h.deny(inv, op, bucket, "bucket not granted")
	case write && mode != "write":
		return h.deny(inv, op, bucket, "bucket granted read-only")
	}
	return nil
}

// KVGet implements sandbox.Host.
func (h *Host) KVGet(ctx context.Context, inv sandbox.Invocation, bucket, key string) ([]byte, error) {
	if err := h.kvCheck(inv, "kv.get", bucket, key, false); err != nil {
		return nil, err
	}
	v, _, err := h.svc.cfg.Vault.KVGet(ctx, h.ns, bucket, key)
	h.use(store.GrantKV, bucket, store.ModeRead)
	if errors.Is(err, store.ErrNotFound) {
		return nil, sandbox.ErrNotFound
	}
	if err != nil {
		return nil, h.backend(ctx, "kv.get", err)
	}
	return v, nil
}

func (h *Host) write(key string) store.KVWrite {
	return store.KVWrite{Namespace: h.ns, Key: key, Function: h.name, FunctionVersion: h.version}
}

// KVSet implements sandbox.Host.
func (h *Host) KVSet(ctx context.Context, inv sandbox.Invocation, bucket, key string, value []byte, ttl time.Duration) error {
	if err := h.kvCheck(inv, "kv.set", bucket, key, true); err != nil {
		return err
	}
	if ttl < 0 {
		return sandbox.ErrInvalid
	}
	w := h.write(key)
	w.Bucket = bucket
	_, err := h.svc.cfg.Vault.KVSet(ctx, w, value, ttl)
	h.use(store.GrantKV, bucket, store.ModeWrite)
	switch {
	case errors.Is(err, ErrTooLarge):
		return sandbox.ErrTooLarge
	case err != nil:
		return h.backend(ctx, "kv.set", err)
	}
	return nil
}

// KVDelete implements sandbox.Host.
func (h *Host) KVDelete(ctx context.Context, inv sandbox.Invocation, bucket, key string) error {
	if err := h.kvCheck(inv, "kv.delete", bucket, key, true); err != nil {
		return err
	}
	w := h.write(key)
	w.Bucket = bucket
	err := h.svc.cfg.Vault.KVDelete(ctx, w)
	h.use(store.GrantKV, bucket, store.ModeWrite)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return sandbox.ErrNotFound
	case err != nil:
		return h.backend(ctx, "kv.delete", err)
	}
	return nil
}

// KVList implements sandbox.Host.
func (h *Host) KVList(ctx context.Context, inv sandbox.Invocation, bucket, prefix, after string, limit int) ([]string, error) {
	if err := h.kvCheck(inv, "kv.list", bucket, "", false); err != nil {
		return nil, err
	}
	es, err := h.svc.cfg.Vault.KVList(ctx, h.ns, bucket, prefix, after, limit)
	h.use(store.GrantKV, bucket, store.ModeRead)
	if err != nil {
		return nil, h.backend(ctx, "kv.list", err)
	}
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	return keys, nil
}

// usageKey names one grant-use row.
type usageKey struct {
	ns, fn       string
	version      int
	kind, target string
	mode         string
}

type usageVal struct {
	first, last time.Time
	count       int64
}

// tracker batches grant uses and writes them off the request path.
type tracker struct {
	st    store.Usage
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	pending map[usageKey]*usageVal
	egress  map[egressKey]*store.EgressStat

	flushMu sync.Mutex // one flush at a time
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func newTracker(st store.Usage, log *slog.Logger, every time.Duration) *tracker {
	t := &tracker{st: st, log: log, every: every, pending: map[usageKey]*usageVal{},
		egress: map[egressKey]*store.EgressStat{}, stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t
}

func (t *tracker) use(k usageKey, now time.Time) {
	t.mu.Lock()
	v := t.pending[k]
	if v == nil {
		v = &usageVal{first: now}
		t.pending[k] = v
	}
	v.last = now
	v.count++
	t.mu.Unlock()
}

type egressKey struct{ ns, fn, origin string }

func (t *tracker) egressCall(k egressKey, now time.Time, failed bool, out, in int64, d time.Duration) {
	t.mu.Lock()
	s := t.egress[k]
	if s == nil {
		s = &store.EgressStat{Namespace: k.ns, Function: k.fn, Origin: k.origin, FirstAt: now}
		t.egress[k] = s
	}
	s.Calls++
	if failed {
		s.Errors++
	}
	s.BytesOut += out
	s.BytesIn += in
	s.Duration += d
	s.LastAt = now
	t.mu.Unlock()
}

func (t *tracker) loop() {
	defer close(t.done)
	tk := time.NewTicker(t.every)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			if err := t.flush(context.Background()); err != nil {
				t.log.Error("grant usage not recorded; will retry", slog.String("error", err.Error()))
			}
		}
	}
}

// flush writes what is pending; on failure the records are merged back.
func (t *tracker) flush(ctx context.Context) error {
	if t.st == nil {
		return nil
	}
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.Lock()
	pending, eg := t.pending, t.egress
	t.pending, t.egress = map[usageKey]*usageVal{}, map[egressKey]*store.EgressStat{}
	t.mu.Unlock()
	if len(pending) == 0 && len(eg) == 0 {
		return nil
	}
	uses := make([]store.GrantUse, 0, len(pending))
	for k, v := range pending {
		uses = append(uses, store.GrantUse{Namespace: k.ns, Function: k.fn, Version: k.version, Kind: k.kind,
			Target: k.target, Mode: k.mode, FirstUsed: v.first, LastUsed: v.last, Count: v.count})
	}
	stats := make([]store.EgressStat, 0, len(eg))
	for _, s := range eg {
		stats = append(stats, *s)
	}
	var err error
	if len(uses) > 0 {
		err = t.st.RecordGrantUses(ctx, uses)
	}
	if err == nil && len(stats) > 0 {
		if err = t.st.RecordEgress(ctx, stats); err != nil {
			pending = nil // grant uses are stored; only egress goes back
		}
	}
	if err != nil {
		t.mu.Lock()
		for k, v := range pending {
			if cur := t.pending[k]; cur != nil {
				cur.first = v.first
				cur.count += v.count
			} else {
				t.pending[k] = v
			}
		}
		for k, s := range eg {
			if cur := t.egress[k]; cur != nil {
				cur.Calls += s.Calls
				cur.Errors += s.Errors
				cur.BytesOut += s.BytesOut
				cur.BytesIn += s.BytesIn
				cur.Duration += s.Duration
				cur.FirstAt = s.FirstAt
			} else {
				t.egress[k] = s
			}
		}
		t.mu.Unlock()
		return fmt.Errorf("record grant usage: %w", err)
	}
	return nil
}

func (t *tracker) close(ctx context.Context) error {
	t.once.Do(func() { close(t.stop) })
	<-t.done
	return t.flush(ctx)
}
