// Package admin owns the admin API (/v1/...): function deploys, listings,
// rollback, delete, invoke and the event log, each behind an authenticated
// principal with the permission the route declares. It is served only on the
// admin listener.
//
// admin never returns a credential's secret (except the one a create or a
// login issues, in that answer only), never serves a route without a
// verified credential except POST /v1/login, and reports failures as
// problem+json with no internal cause.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"warden/internal/auth"
	"warden/internal/capability"
	"warden/internal/deploy"
	"warden/internal/events"
	"warden/internal/gateway"
	"warden/internal/health"
	"warden/internal/inspect"
	"warden/internal/problem"
	"warden/internal/ratelimit"
	"warden/internal/reqid"
	"warden/internal/sandbox"
	"warden/internal/secheaders"
	"warden/internal/sign"
	"warden/internal/store"
)

// Config configures the admin API. Every field but Logger is required.
type Config struct {
	Deploy *deploy.Service
	// Vulns is the vulnerability index deploys match against; an import
	// replaces it.
	Vulns   *deploy.Vulns
	Store   store.Store
	Auth    *auth.Admin
	Keys    *auth.APIKeys
	Issuers *auth.Issuers
	Users   *auth.Users // operator accounts, logins and their session tokens
	// Vault keeps secrets and KV values; Capabilities flushes grant usage
	// before a review; MasterKeys reports and rotates the master key.
	Vault        *capability.Vault
	Capabilities interface{ Flush(context.Context) error }
	MasterKeys   MasterKeys
	// Events records every admin action; while it is unhealthy, changes
	// (any method but GET and HEAD, logins included) are refused.
	Events  events.Checked
	Flusher interface{ Flush(context.Context) error } // makes emitted events visible to queries
	// Inspector checks what admin invoke returns, as the public listener
	// checks a route's answer.
	Inspector *inspect.Inspector
	// Health is served at /healthz without a credential.
	Health health.Checks
	// Limit bounds requests per client address before authentication
	// (zero Rule: off), so that no address can flood the audit trail.
	Limit  Limit
	Logger *slog.Logger
	// FollowPoll is how often a following event stream polls the store
	// (default 500ms).
	FollowPoll time.Duration
}

// Limit is the admin listener's per-address rate limit.
type Limit struct {
	Limiter    ratelimit.Limiter
	Rule       ratelimit.Rule
	IPv6Prefix int
}

// API is the admin HTTP API. Safe for concurrent use.
type API struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	throttle *ratelimit.Throttle // one limit event per address per minute
}

type principalKey struct{}

// Route is one admin endpoint and the permission it requires.
type Route struct {
	Pattern    string
	Permission string
	Summary    string
	handler    http.HandlerFunc
}

// New builds the API, or returns an error naming a required dependency that
// is missing.
func New(cfg Config) (*API, error) {
	for _, dep := range []struct {
		name string
		ok   bool
	}{
		{"Deploy", cfg.Deploy != nil}, {"Store", cfg.Store != nil}, {"Auth", cfg.Auth != nil},
		{"Keys", cfg.Keys != nil}, {"Issuers", cfg.Issuers != nil}, {"Users", cfg.Users != nil},
		{"Vault", cfg.Vault != nil}, {"Capabilities", cfg.Capabilities != nil}, {"MasterKeys", cfg.MasterKeys != nil},
		{"Events", cfg.Events != nil}, {"Vulns", cfg.Vulns != nil}, {"Flusher", cfg.Flusher != nil}, {"Inspector", cfg.Inspector != nil}, {"Health", cfg.Health != nil},
	} {
		if !dep.ok {
			return nil, fmt.Errorf("admin: %s is required", dep.name)
		}
	}
	if cfg.Limit.Rule.Rate > 0 && cfg.Limit.Limiter == nil {
		return nil, errors.New("admin: a rate limit needs a Limiter")
	}
	return newAPI(cfg), nil
}

// newAPI builds the API from a checked config (tests build partial ones).
func newAPI(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FollowPoll <= 0 {
		cfg.FollowPoll = 500 * time.Millisecond
	}
	a := &API{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), throttle: ratelimit.NewThrottle(time.Minute, ratelimit.DefaultThrottleKeys)}
	for _, rt := range a.Routes() {
		a.mux.Handle(rt.Pattern, a.guard(rt))
	}
	a.mux.Handle("/", a.guard(Route{Pattern: "/", Permission: PermMetadata, handler: func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, http.StatusNotFound, "no such admin endpoint")
	}}))
	return a
}

// Routes lists every admin endpoint with the permission it requires.
func (a *API) Routes() []Route {
	return []Route{
		{"GET /v1/health", PermMetadata, "Server health", a.health},
		{"GET " + health.Path, PermPublic, "Health of this node's parts (200, or 503 naming the failing ones); no credential", a.healthz},
		{"GET /v1/openapi.json", PermMetadata, "This API's OpenAPI document", a.openapi},
		{"GET /v1/functions", PermRead, "List functions", a.listFunctions},
		{"POST /v1/functions", PermDeploy, "Deploy a version (multipart: manifest, artifact, file:PATH for each schema, signature for a DSSE envelope)", a.deploy},
		{"GET /v1/functions/{namespace}/{name}", PermRead, "Describe a function", a.getFunction},
		{"DELETE /v1/functions/{namespace}/{name}", PermDelete, "Delete a function and its versions", a.deleteFunction},
		{"POST /v1/functions/{namespace}/{name}/rollback", PermDeploy, "Activate an earlier version", a.rollback},
		{"POST /v1/functions/{namespace}/{name}/invoke", PermInvoke, "Invoke the active version", a.invoke},
		{"GET /v1/events", PermEvents, "Query or follow the event log", a.events},
		{"POST /v1/keys", PermKeys, "Create an API key (the key is in this answer only)", a.createKey},
		{"GET /v1/keys", PermKeys, "List API keys (never their secrets)", a.listKeys},
		{"DELETE /v1/keys/{id}", PermKeys, "Revoke an API key", a.revokeKey},
		{"POST /v1/login", PermPublic, "Exchange user, password and TOTP code for a session token (in this answer only)", a.login},
		{"POST /v1/users", PermUsers, "Create a user", a.createUser},
		{"GET /v1/users", PermUsers, "List users (never their secrets)", a.listUsers},
		{"DELETE /v1/users/{name}", PermUsers, "Delete a user and end their sessions", a.deleteUser},
		{"POST /v1/users/{name}/totp", PermMFA, "Start TOTP enrollment (own account, or any with users:manage); the otpauth URI is in this answer only", a.startTOTP},
		{"POST /v1/users/{name}/totp/verify", PermMFA, "Confirm TOTP enrollment with a first code", a.verifyTOTP},
		{"DELETE /v1/users/{name}/totp", PermUsers, "Remove a user's TOTP (to enroll a new device)", a.resetTOTP},
		{"DELETE /v1/tokens/bootstrap", PermTokens, "Revoke the bootstrap admin token (needs an admin user with MFA)", a.revokeBootstrap},
		{"POST /v1/auth/jwt", PermIssuers, "Trust a JWT issuer (routes name it as auth: jwt:<name>)", a.addIssuer},
		{"GET /v1/auth/jwt", PermIssuers, "List trusted JWT issuers", a.listIssuers},
		{"DELETE /v1/auth/jwt/{name}", PermIssuers, "Stop trusting a JWT issuer", a.removeIssuer},
		{"GET /v1/canaries", PermRead, "Running canaries and their figures against the stable versions (?namespace=&name=)", a.listCanaries},
		{"POST /v1/canaries/{namespace}/{name}/promote", PermDeploy, "Promote a canary now: it becomes the active version", a.endCanary(true)},
		{"POST /v1/canaries/{namespace}/{name}/abort", PermDeploy, "Abort a canary: the stable version serves every client", a.endCanary(false)},
		{"GET /v1/approvals", PermRead, "Versions waiting for a second person's approval", a.listApprovals},
		{"POST /v1/approvals/{namespace}/{name}/{version}/approve", PermGrant, "Approve a pending version (not its deployer's, not the bootstrap token's once an admin user exists) and activate it", a.decide(true)},
		{"POST /v1/approvals/{namespace}/{name}/{version}/reject", PermGrant, "Reject a pending version (not its deployer's)", a.decide(false)},
		{"GET /v1/trust", PermRead, "Signing keys and mode of every configured namespace", a.listTrust},
		{"GET /v1/trust/{namespace}", PermRead, "A namespace's signing keys and mode", a.getTrust},
		{"POST /v1/trust/{namespace}/keys", PermTrust, "Trust a public key (PEM) to sign the namespace's deploys", a.addTrustedKey},
		{"DELETE /v1/trust/{namespace}/keys/{id}", PermTrust, "Revoke a trusted key (id or a unique prefix of 8+ hex digits)", a.revokeTrustedKey},
		{"PUT /v1/trust/{namespace}/mode", PermTrust, "Set the namespace's signing mode: enforce or warn", a.setTrustMode},
		{"GET /v1/functions/{namespace}/{name}/versions/{version}/sbom", PermRead, "A version's CycloneDX SBOM (version: a number or active)", a.getSBOM},
		{"GET /v1/findings", PermRead, "Open findings of active versions (?namespace=&name=; ?all=1: every version, resolved too)", a.listFindings},
		{"POST /v1/vulndb", PermVulnDB, "Import OSV advisories (a JSON array); every active version is re-evaluated", a.importVulnDB},
		{"GET /v1/vulndb", PermRead, "The imported vulnerability database: size and dates", a.vulnDBStatus},
		{"GET /v1/policies/{namespace}", PermRead, "A namespace's deploy policy (the built-in default when none is set)", a.getPolicy},
		{"PUT /v1/policies/{namespace}", PermPolicy, "Set a namespace's deploy policy (Rego v1 source); refused unless it compiles", a.setPolicy},
		{"DELETE /v1/policies/{namespace}", PermPolicy, "Remove a namespace's policy (the built-in default applies)", a.deletePolicy},
		{"GET /v1/secrets", PermSecretsRead, "List secrets: names, versions, dates, grants (never values)", a.listSecrets},
		{"POST /v1/secrets/{namespace}/{name}", PermSecrets, "Create a secret (raw body); 409 if it exists", a.putSecret(true)},
		{"POST /v1/secrets/{namespace}/{name}/rotate", PermSecrets, "Add a version (raw body); the previous one stays readable for ?grace=, default 24h", a.putSecret(false)},
		{"GET /v1/secrets/{namespace}/{name}", PermSecretsRead, "A secret's versions (never values)", a.secretHistory},
		{"DELETE /v1/secrets/{namespace}/{name}", PermSecrets, "Destroy every version of a secret", a.deleteSecret},
		{"GET /v1/master-key", PermSecretsRead, "Master key status: current key, sealed values per key, re-wrap progress", a.masterKeyStatus},
		{"POST /v1/master-key/rotate", PermSecrets, "Rotate the managed master key; data keys are re-wrapped online", a.rotateMasterKey},
		{"GET /v1/kv", PermKV, "List KV buckets", a.listBuckets},
		{"GET /v1/kv/{namespace}/{bucket}", PermKV, "List keys of a bucket (?prefix=&after=&limit=)", a.listKeysOfBucket},
		{"GET /v1/kv/{namespace}/{bucket}/{key}", PermKV, "Read a value (raw body)", a.kvGet},
		{"PUT /v1/kv/{namespace}/{bucket}/{key}", PermKV, "Write a value (raw body, ?ttl=)", a.kvWrite(false)},
		{"DELETE /v1/kv/{namespace}/{bucket}/{key}", PermKV, "Delete a key", a.kvWrite(true)},
		{"GET /v1/egress", PermAccess, "Egress summary per function and origin (?namespace=&function=)", a.egressStats},
		{"GET /v1/access/{namespace}/{name}/review", PermAccess, "Unused-grant review of a function's active version (?unusedFor=30d)", a.accessReview},
	}
}

// Handler returns the complete admin handler, security headers included.
func (a *API) Handler() http.Handler { return secheaders.Wrap(a.mux) }

// guard authenticates the caller and checks the route's permission. Every
// attempt is an event; the token itself never is.
func (a *API) guard(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// A change (or a login) whose event cannot be recorded is not
			// made: fail closed.
			if err := a.cfg.Events.Health(); err != nil {
				w.Header().Set("Retry-After", "1")
				problem.Write(w, r, http.StatusServiceUnavailable, "changes are refused while the event log cannot record them ("+err.Error()+")")
				return
			}
		}
		if !a.admit(w, r) {
			return
		}
		if rt.Permission == PermPublic { // login and health: no credential; login emits its own events
			rt.handler(w, r)
			return
		}
		ev := events.Event{Type: events.TypeAdminAuth, SourceIP: secheaders.ClientIP(r), RequestID: reqid.From(r.Context()),
			Labels: map[string]string{"route": rt.Pattern}}
		token, ok := bearer(r)
		if !ok {
			ev.Outcome, ev.Reason = events.OutcomeFailure, "no credential"
			if a.refusal(w, r, ev) {
				unauthorized(w, r)
			}
			return
		}
		p, id, err := a.verify(r.Context(), token)
		ev.Actor = id
		if err != nil {
			ev.Outcome, ev.Reason = events.OutcomeFailure, "invalid credential"
			if !errors.Is(err, auth.ErrInvalidCredential) {
				ev.Reason = "credential check failed"
				a.log.Error("admin credential check failed", "request_id", ev.RequestID, "err", err)
				if a.refusal(w, r, ev) {
					problem.Write(w, r, http.StatusServiceUnavailable, "credentials cannot be checked right now")
				}
				return
			}
			if a.refusal(w, r, ev) {
				unauthorized(w, r)
			}
			return
		}
		ev.Actor = p.Name + " (" + p.ID + ")"
		if !allowed(p.Role, rt.Permission) {
			ev.Outcome, ev.Reason = events.OutcomeDenied, "role "+p.Role+" lacks "+rt.Permission
			if a.refusal(w, r, ev) {
				problem.Write(w, r, http.StatusForbidden, "your role does not allow this")
			}
			return
		}
		ev.Outcome = events.OutcomeSuccess
		a.cfg.Events.Emit(ev)
		rt.handler(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// refusal records the event of a refused admin request; when the event log
// cannot take it, the request is answered 503 instead (an address must not
// probe credentials unrecorded) and refusal reports false.
func (a *API) refusal(w http.ResponseWriter, r *http.Request, ev events.Event) bool {
	if err := a.cfg.Events.TryEmit(ev); err != nil {
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, http.StatusServiceUnavailable, "the request cannot be recorded right now ("+err.Error()+")")
		return false
	}
	return true
}

// admit applies the per-address limit; over it the answer is 429 with
// Retry-After, and one limit.rate event per address per minute.
func (a *API) admit(w http.ResponseWriter, r *http.Request) bool {
	l := a.cfg.Limit
	if l.Rule.Rate <= 0 {
		return true
	}
	ip := secheaders.ClientIP(r)
	key := "admin-ip:" + ratelimit.AddrKey(ip, l.IPv6Prefix)
	d, err := l.Limiter.Allow(r.Context(), key, l.Rule)
	if err != nil {
		a.log.Error("admin rate limit check failed", "request_id", reqid.From(r.Context()), "err", err)
		problem.Write(w, r, http.StatusServiceUnavailable, "the request could not be admitted right now")
		return false
	}
	if d.Allowed {
		return true
	}
	ratelimit.SetHeaders(w.Header(), d)
	if a.throttle.First(key, time.Now()) {
		ev := events.Event{Type: events.TypeLimitRate, Outcome: events.OutcomeDenied, SourceIP: ip, RequestID: reqid.From(r.Context()),
			Reason: "admin client ip rate limit exceeded (further hits this minute are not logged)", Labels: map[string]string{"limit.scope": "admin client ip"}}
		if !a.refusal(w, r, ev) {
			return false
		}
	}
	problem.Write(w, r, http.StatusTooManyRequests, "rate limit exceeded")
	return false
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}

func unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="warden-admin"`)
	problem.Write(w, r, http.StatusUnauthorized, "a valid admin credential is required")
}

func origin(r *http.Request) deploy.Origin {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return deploy.Origin{Actor: p.Name + " (" + p.ID + ")", SourceIP: secheaders.ClientIP(r), RequestID: reqid.From(r.Context()),
		MayGrant: RoleAllows(p.Role, PermGrant), Roles: []string{p.Role}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Health == nil { // partial APIs in tests
		problem.Write(w, r, http.StatusServiceUnavailable, "no health checks configured")
		return
	}
	a.cfg.Health.Handler().ServeHTTP(w, r)
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "functions": len(a.cfg.Deploy.List())})
}

// FunctionInfo is the admin API's view of a function.
type FunctionInfo struct {
	Namespace     string          `json:"namespace"`
	Name          string          `json:"name"`
	ActiveVersion int             `json:"activeVersion"`
	Digest        string          `json:"digest,omitempty"`
	ABI           string          `json:"abi,omitempty"`
	Routes        []RouteInfo     `json:"routes"`
	Limits        any             `json:"limits,omitempty"`
	Permissions   any             `json:"permissions,omitempty"`
	Env           []string        `json:"envKeys,omitempty"`
	Versions      []store.Version `json:"versions,omitempty"`
	UpdatedAt     time.Time       `json:"updatedAt"`
	// Quarantine is why the active version is quarantined ("" if not).
	Quarantine string `json:"quarantine,omitempty"`
}

// RouteInfo is one route of a function.
type RouteInfo struct {
	Route  string   `json:"route"`
	Auth   string   `json:"auth"`
	Scopes []string `json:"scopes,omitempty"`
}

func info(ac *deploy.Active) FunctionInfo {
	m := ac.Manifest
	fi := FunctionInfo{
		Namespace: m.Namespace, Name: m.Name, ActiveVersion: ac.Version.Version, Digest: ac.Version.Digest,
		ABI: string(m.ABI), Limits: m.Limits, Permissions: m.Permissions, Routes: []RouteInfo{},
		UpdatedAt: ac.Version.CreatedAt, Quarantine: ac.Version.Quarantine,
	}
	for _, rt := range m.HTTP {
		auth := rt.Auth
		if rt.Issuer != "" {
			auth += ":" + rt.Issuer
		}
		fi.Routes = append(fi.Routes, RouteInfo{Route: rt.Pattern, Auth: auth, Scopes: rt.Scopes})
	}
	for k := range m.Env {
		fi.Env = append(fi.Env, k)
	}
	return fi
}

func (a *API) listFunctions(w http.ResponseWriter, r *http.Request) {
	out := []FunctionInfo{}
	for _, ac := range a.cfg.Deploy.List() {
		out = append(out, info(ac))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getFunction(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	ac, ok := a.cfg.Deploy.Get(ns, name)
	if !ok {
		problem.Write(w, r, http.StatusNotFound, fmt.Sprintf("function %s/%s not found", ns, name))
		return
	}
	fi := info(ac)
	vs, err := a.cfg.Store.Versions(r.Context(), ns, name)
	if err != nil {
		a.internal(w, r, "list versions", err)
		return
	}
	fi.Versions = vs
	writeJSON(w, http.StatusOK, fi)
}

func (a *API) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error("admin request failed", "op", what, "request_id", reqid.From(r.Context()), "err", err)
	problem.Write(w, r, http.StatusInternalServerError, what+" failed")
}

// deployError answers a refused change with the right status.
func (a *API) deployError(w http.ResponseWriter, r *http.Request, err error) {
	var de *deploy.Error
	if !errors.As(err, &de) {
		a.internal(w, r, "change", err)
		return
	}
	status := http.StatusInternalServerError
	switch de.Kind {
	case deploy.KindInvalid:
		status = http.StatusBadRequest
	case deploy.KindRejected:
		status = http.StatusUnprocessableEntity
	case deploy.KindConflict:
		status = http.StatusConflict
	case deploy.KindNotFound:
		status = http.StatusNotFound
	case deploy.KindForbidden:
		status = http.StatusForbidden
	default:
		a.log.Error("admin change failed", "request_id", reqid.From(r.Context()), "err", err)
	}
	problem.WriteDetails(w, r, problem.Details{Status: status, Detail: de.Msg, Errors: de.Details, Step: de.Step})
}

// maxManifest and maxFile bound the manifest part and each file part of a
// deploy.
const (
	maxManifest = 64 << 10
	maxFile     = 1 << 20
)

func (a *API) deploy(w http.ResponseWriter, r *http.Request) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		problem.Write(w, r, http.StatusUnsupportedMediaType, "send multipart/form-data with parts manifest and artifact")
		return
	}
	body := http.MaxBytesReader(w, r.Body, deploy.DefaultMaxArtifact+maxManifest+32*maxFile+(1<<20))
	mr := multipart.NewReader(body, params["boundary"])
	req := deploy.Request{Origin: origin(r), ManifestName: "warden.yaml"}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			problem.Write(w, r, http.StatusBadRequest, "malformed multipart body or body too large")
			return
		}
		switch part.FormName() {
		case "manifest":
			if fn := part.FileName(); fn != "" {
				req.ManifestName = fn
			}
			req.Manifest, err = io.ReadAll(io.LimitReader(part, maxManifest+1))
			if err == nil && len(req.Manifest) > maxManifest {
				err = fmt.Errorf("manifest larger than %d bytes", maxManifest)
			}
		case "artifact":
			req.Artifact, err = io.ReadAll(part)
		case "sbom":
			req.SBOM, err = io.ReadAll(io.LimitReader(part, deploy.MaxSBOM+1))
			if err == nil && len(req.SBOM) > deploy.MaxSBOM {
				err = fmt.Errorf("sbom larger than %d bytes", deploy.MaxSBOM)
			}
		case "canary":
			var b []byte
			if b, err = io.ReadAll(io.LimitReader(part, 4096)); err == nil {
				req.Canary, err = parseCanary(b)
			}
		case "signature":
			req.Signature, err = io.ReadAll(io.LimitReader(part, sign.MaxEnvelope+1))
			if err == nil && len(req.Signature) > sign.MaxEnvelope {
				err = fmt.Errorf("signature larger than %d bytes", sign.MaxEnvelope)
			}
		default:
			path, ok := strings.CutPrefix(part.FormName(), "file:")
			if !ok || path == "" {
				err = fmt.Errorf("unexpected part %q", part.FormName())
				break
			}
			// A file the manifest names (a route schema), by its path
			// there; deploy checks the names and sizes.
			var b []byte
			b, err = io.ReadAll(io.LimitReader(part, maxFile+1))
			if err == nil && len(b) > maxFile {
				err = fmt.Errorf("file %s larger than %d bytes", path, maxFile)
			}
			if req.Files == nil {
				req.Files = map[string][]byte{}
			}
			req.Files[path] = b
		}
		if err != nil {
			problem.Write(w, r, http.StatusBadRequest, "deploy body: "+safeErr(err))
			return
		}
	}
	if req.Manifest == nil || req.Artifact == nil {
		problem.Write(w, r, http.StatusBadRequest, "deploy needs both a manifest and an artifact part")
		return
	}
	res, err := a.cfg.Deploy.Deploy(r.Context(), req)
	if err != nil {
		a.deployError(w, r, err)
		return
	}
	status := http.StatusCreated
	switch {
	case res.Unchanged:
		status = http.StatusOK
	case res.Pending:
		status = http.StatusAccepted
	}
	writeJSON(w, status, res)
}

// safeErr keeps only errors whose text warden wrote itself.
func safeErr(err error) string {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return "body too large"
	}
	s := err.Error()
	if strings.HasPrefix(s, "manifest larger") || strings.HasPrefix(s, "unexpected part") || strings.HasPrefix(s, "file ") {
		return s
	}
	return "could not be read"
}

func (a *API) deleteFunction(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Deploy.Delete(r.Context(), r.PathValue("namespace"), r.PathValue("name"), origin(r)); err != nil {
		a.deployError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) rollback(w http.ResponseWriter, r *http.Request) {
	var in struct {
		To int `json:"to"`
	}
	if r.ContentLength != 0 {
		dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil && err != io.EOF {
			problem.Write(w, r, http.StatusBadRequest, `body must be {"to": VERSION}`)
			return
		}
	}
	if in.To < 0 {
		problem.Write(w, r, http.StatusBadRequest, "version must be positive")
		return
	}
	res, err := a.cfg.Deploy.Rollback(r.Context(), r.PathValue("namespace"), r.PathValue("name"), in.To, origin(r))
	if err != nil {
		a.deployError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// InvokeRequest is the body of an admin invoke.
type InvokeRequest struct {
	Method string              `json:"method,omitempty"` // default POST
	Path   string              `json:"path,omitempty"`   // default "/"
	Query  string              `json:"query,omitempty"`
	Header map[string][]string `json:"header,omitempty"`
	Body   []byte              `json:"body,omitempty"` // base64 in JSON
}

// InvokeResponse is the function's answer.
type InvokeResponse struct {
	Status    int                 `json:"status"`
	Header    map[string][]string `json:"header,omitempty"`
	Body      []byte              `json:"body"`
	Version   int                 `json:"version"`
	RequestID string              `json:"requestId"`
}

func (a *API) invoke(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	ac, ok := a.cfg.Deploy.Get(ns, name)
	if !ok {
		problem.Write(w, r, http.StatusNotFound, fmt.Sprintf("function %s/%s not found", ns, name))
		return
	}
	if ac.Version.Quarantine != "" {
		problem.Write(w, r, http.StatusServiceUnavailable, fmt.Sprintf("function %s/%s is quarantined: %s", ns, name, ac.Version.Quarantine))
		return
	}
	// Admin invoke reaches any path of the code, past every route's auth,
	// scopes and schema: for a function that holds secrets that is as much
	// as new routes, so it needs grants:approve.
	if p, _ := r.Context().Value(principalKey{}).(auth.Principal); ac.Secrets != nil && !RoleAllows(p.Role, PermGrant) {
		o := origin(r)
		a.cfg.Events.Emit(events.Event{Type: events.TypeAdminAuth, Outcome: events.OutcomeDenied, Actor: o.Actor, SourceIP: o.SourceIP,
			RequestID: o.RequestID, Namespace: ns, Function: name, Version: ac.Version.Version,
			Reason: "invoking a function that holds secrets needs " + PermGrant, Labels: map[string]string{"route": "invoke"}})
		problem.Write(w, r, http.StatusForbidden, "invoking a function that holds secrets needs "+PermGrant+" (the admin role)")
		return
	}
	// base64 inflates by 4/3; allow the function's body limit plus framing.
	limit := ac.Manifest.Limits.RequestBody*4/3 + 64<<10
	var in InvokeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem.Write(w, r, http.StatusRequestEntityTooLarge, "request body exceeds the function's limit")
			return
		}
		problem.Write(w, r, http.StatusBadRequest, "body must be a JSON invoke request")
		return
	}
	if int64(len(in.Body)) > ac.Manifest.Limits.RequestBody {
		problem.Write(w, r, http.StatusRequestEntityTooLarge, "request body exceeds the function's limit")
		return
	}
	if in.Method == "" {
		in.Method = http.MethodPost
	}
	if in.Path == "" || in.Path[0] != '/' {
		in.Path = "/" + in.Path
	}
	hdr := http.Header{}
	for k, vs := range in.Header {
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	id := reqid.From(r.Context())
	resp, err := ac.Fn.Invoke(r.Context(), &sandbox.Request{
		Method: in.Method, Path: in.Path, RawQuery: in.Query, Host: r.Host, Scheme: "https",
		RemoteAddr: secheaders.ClientIP(r), Header: hdr, Body: in.Body, RequestID: id,
		Vars: map[string]string{"route": "admin invoke", "auth": "admin", "subject": p.Name},
	})
	if err != nil {
		status, typ, detail := gateway.InvokeError(err)
		reason := detail
		var se *sandbox.Error
		if errors.As(err, &se) {
			reason = se.Msg
		}
		a.cfg.Events.Emit(events.Event{Type: typ, Outcome: events.OutcomeDenied, Reason: reason, Actor: origin(r).Actor,
			SourceIP: secheaders.ClientIP(r), RequestID: id, Namespace: ns, Function: name, Version: ac.Version.Version})
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		problem.Write(w, r, status, detail)
		return
	}
	// The answer leaves warden here too: the same inspection as a public
	// route's, so invoking a function cannot read what it may not return.
	ans := inspect.Answer{Header: resp.Header, Body: resp.Body}
	if ref := a.cfg.Inspector.Check(r.Context(), ac.Inspected(), inspect.ModeRedact, inspect.Origin{
		RequestID: id, SourceIP: secheaders.ClientIP(r), Actor: origin(r).Actor, Channel: "admin invoke"}, &ans); ref != nil {
		problem.Write(w, r, ref.Status, ref.Detail)
		return
	}
	writeJSON(w, http.StatusOK, InvokeResponse{Status: resp.Status, Header: resp.Header, Body: ans.Body, Version: ac.Version.Version, RequestID: id})
}

// events answers a query, or with follow=true streams newline-delimited
// JSON events as they are stored, until the client goes away.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var sq store.EventQuery
	sq.Type = q.Get("type")
	if s := q.Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			sq.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			sq.Since = t
		} else {
			problem.Write(w, r, http.StatusBadRequest, "since must be a duration like 1h or an RFC 3339 time")
			return
		}
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			problem.Write(w, r, http.StatusBadRequest, "after must be an event id")
			return
		}
		sq.AfterID = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			problem.Write(w, r, http.StatusBadRequest, "limit must be between 1 and 10000")
			return
		}
		sq.Limit = n
	}
	if a.cfg.Flusher != nil { // bounded: a stalled store must not hang the query
		fctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		a.cfg.Flusher.Flush(fctx)
		cancel()
	}
	if q.Get("follow") != "true" {
		evs, err := a.cfg.Store.QueryEvents(r.Context(), sq)
		if err != nil {
			a.internal(w, r, "query events", err)
			return
		}
		if evs == nil {
			evs = []events.Event{}
		}
		writeJSON(w, http.StatusOK, evs)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	tick := time.NewTicker(a.cfg.FollowPoll)
	defer tick.Stop()
	for {
		evs, err := a.cfg.Store.QueryEvents(r.Context(), sq)
		if err != nil {
			if r.Context().Err() == nil {
				a.log.Error("follow events", "request_id", reqid.From(r.Context()), "err", err)
			}
			return
		}
		for _, e := range evs {
			if enc.Encode(e) != nil {
				return
			}
			sq.AfterID = e.ID
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// CanaryRequest is the deploy's canary part: a share of clients, a time
// until promotion, and optional margins.
type CanaryRequest struct {
	Percent int                   `json:"percent"`
	For     string                `json:"for,omitempty"` // a Go duration; default 10m
	Margins *deploy.CanaryMargins `json:"margins,omitempty"`
}

func parseCanary(b []byte) (*deploy.CanarySpec, error) {
	var in CanaryRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf(`canary part must be {"percent": N, "for": "10m", "margins": {...}}`)
	}
	spec := &deploy.CanarySpec{Percent: in.Percent, Margins: in.Margins}
	if in.For != "" {
		d, err := time.ParseDuration(in.For)
		if err != nil || d < time.Second || d > 7*24*time.Hour {
			return nil, fmt.Errorf("canary for: a duration from 1s to 168h")
		}
		spec.For = d
	}
	if m := in.Margins; m != nil && (m.ErrorRate < 0 || m.P99 < 1 || m.Signals < 0 || m.MinRequests < 0) {
		return nil, fmt.Errorf("canary margins: errorRate and signals ≥ 0, p99 ≥ 1, minRequests ≥ 0")
	}
	return spec, nil
}
