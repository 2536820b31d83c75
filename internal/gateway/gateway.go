// Package gateway owns the public listener's request path: route, authenticate,
// enforce body limits, invoke the function version in the sandbox, and turn
// every refusal or failure into a problem+json answer and an event.
//
// gateway never serves the admin API, never passes a credential to a
// function, and never copies a guest's error output into a response.
package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"warden/internal/auth"
	"warden/internal/deploy"
	"warden/internal/events"
	"warden/internal/health"
	"warden/internal/inspect"
	"warden/internal/manifest"
	"warden/internal/problem"
	"warden/internal/ratelimit"
	"warden/internal/reqid"
	"warden/internal/router"
	"warden/internal/sandbox"
	"warden/internal/secheaders"
	"warden/internal/validate"
)

// Routes gives the current route table; the deploy service implements it.
type Routes interface {
	Routes() *router.Table[*deploy.Active]
}

// Keys verifies API keys; *auth.APIKeys implements it.
type Keys interface {
	Verify(ctx context.Context, token string) (auth.Identity, error)
}

// Issuers verifies JWTs from trusted issuers; *auth.Issuers implements it.
type Issuers interface {
	VerifyJWT(ctx context.Context, issuer, token string) (auth.Identity, error)
}

// Config configures the gateway. Routes, Events, Keys, Issuers, Limiter
// and Inspector are required.
type Config struct {
	Routes Routes
	// Events takes the event of every refusal; a refusal whose event it
	// cannot take is answered 503 instead (fail closed).
	Events    events.Checked
	Inspector *inspect.Inspector
	// Health is served at /healthz (health.Path), before routing: no
	// function can claim that path.
	Health  health.Checks
	Keys    Keys
	Issuers Issuers
	Limiter ratelimit.Limiter
	// IPRule limits every client IP across all routes, before routing;
	// KeyRule limits every credential across all routes. Zero Rate: off.
	IPRule, KeyRule ratelimit.Rule
	// IPv6Prefix is the prefix length an IPv6 client is keyed by in rate
	// limits (one /64 is one client); 0 = ratelimit.DefaultIPv6Prefix.
	IPv6Prefix int
	Logger     *slog.Logger
	Now        func() time.Time // default time.Now (event throttling)
}

// Gateway is the public request path. Safe for concurrent use.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	health   http.Handler
	throttle *ratelimit.Throttle // one limit event per client key per minute
}

var _ http.Handler = (*Gateway)(nil)

// New returns a gateway, or an error naming a required dependency that is
// missing. Serve it through Handler, which adds the security headers.
func New(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Routes == nil:
		return nil, errors.New("gateway: Routes is required")
	case cfg.Events == nil:
		return nil, errors.New("gateway: Events is required")
	case cfg.Keys == nil:
		return nil, errors.New("gateway: Keys is required")
	case cfg.Issuers == nil:
		return nil, errors.New("gateway: Issuers is required")
	case cfg.Limiter == nil:
		return nil, errors.New("gateway: Limiter is required")
	case cfg.Inspector == nil:
		return nil, errors.New("gateway: Inspector is required")
	case cfg.Health == nil:
		return nil, errors.New("gateway: Health is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Gateway{cfg: cfg, log: log, health: cfg.Health.Handler(),
		throttle: ratelimit.NewThrottle(time.Minute, ratelimit.DefaultThrottleKeys)}, nil
}

// Handler returns the complete public handler, security headers included.
func (g *Gateway) Handler() http.Handler { return secheaders.Wrap(g) }

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Limits key a client by its address, an IPv6 client by its network.
	ipKey := "ip:" + ratelimit.AddrKey(secheaders.ClientIP(r), g.cfg.IPv6Prefix)
	var tightest ratelimit.Decision // RateLimit-* headers describe the closest limit
	if g.cfg.IPRule.Rate > 0 && !g.limit(w, r, nil, ipKey, g.cfg.IPRule, "client ip", &tightest) {
		return
	}
	if r.URL.Path == health.Path {
		g.health.ServeHTTP(w, r)
		return
	}
	entry, ok, status, hdr := g.cfg.Routes.Routes().Match(r)
	if !ok {
		for k, v := range hdr {
			if k == "Allow" || k == "Location" {
				w.Header()[k] = v
			}
		}
		if status >= 300 && status < 400 {
			w.WriteHeader(status)
			return
		}
		if status == 0 {
			status = http.StatusNotFound
		}
		problem.Write(w, r, status, "no function serves this route")
		return
	}
	a, route := entry.Target, entry.Route
	if a.Version.Quarantine != "" {
		// Its policy no longer passes it (docs/pipeline.md): nobody reaches
		// its code until it passes again or another version replaces it.
		w.Header().Set("Retry-After", "3600")
		if !g.emit(w, r, a, events.TypeFunctionQuarantined, events.OutcomeDenied, "the function is quarantined", "") {
			return
		}
		problem.Write(w, r, http.StatusServiceUnavailable, "this function is quarantined: its active version no longer passes its deploy policy")
		return
	}
	// A canary serves a share of clients, chosen by a hash of the client's
	// address (one client sees one version), on the routes both versions
	// have; each answer's status and latency feed the comparison (security
	// signals come from the events: server.canaryTap).
	if c := a.Canary; c != nil {
		if n := c.Pick(ipKey); n != a {
			if i := slices.IndexFunc(n.Manifest.HTTP, func(rt manifest.Route) bool { return rt.Pattern == route.Pattern }); i >= 0 {
				a, route = n, n.Manifest.HTTP[i]
			}
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		w = sw
		start := time.Now()
		defer func() { c.Record(a.Version.Version, sw.status, time.Since(start)) }()
	}

	id, ok := g.authenticate(w, r, a, route)
	if !ok {
		return
	}
	if id.ID != "" && g.cfg.KeyRule.Rate > 0 && !g.limit(w, r, a, "cred:"+id.Method+":"+id.ID, g.cfg.KeyRule, "credential", &tightest) {
		return
	}
	if rl := route.RateLimit; rl != nil {
		client := ipKey
		if id.ID != "" && rl.By != "ip" {
			client = id.Method + ":" + id.ID
		}
		key := "route:" + a.Key() + ":" + route.Pattern + ":" + client
		if !g.limit(w, r, a, key, ratelimit.Rule{Rate: rl.Rate, Per: rl.Per, Burst: rl.Burst}, "route", &tightest) {
			return
		}
	}
	if tightest.Limit > 0 {
		ratelimit.SetHeaders(w.Header(), tightest)
	}

	limit := a.Manifest.Limits.RequestBody
	if r.ContentLength > limit {
		g.refuse(w, r, a, http.StatusRequestEntityTooLarge, events.TypeLimitRequestBody,
			"request body exceeds the function's limit of "+strconv.FormatInt(limit, 10)+" bytes")
		return
	}
	var body []byte
	var err error
	if r.ContentLength != 0 { // -1 (unknown, chunked) or a declared length
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.refuse(w, r, a, http.StatusRequestEntityTooLarge, events.TypeLimitRequestBody,
				"request body exceeds the function's limit of "+strconv.FormatInt(limit, 10)+" bytes")
			return
		}
		problem.Write(w, r, http.StatusBadRequest, "request body could not be read")
		return
	}

	if sch := a.Schemas[route.Pattern]; sch != nil && !g.validate(w, r, a, sch, body) {
		return
	}

	req := &sandbox.Request{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Host: r.Host, Scheme: "https", RemoteAddr: secheaders.ClientIP(r),
		Header:    guestHeaders(r),
		Body:      body,
		RequestID: reqid.From(r.Context()),
		Vars:      map[string]string{"route": route.Pattern, "auth": route.Auth},
	}
	if id.ID != "" {
		req.Vars["identity"] = id.Method + ":" + id.ID
		req.Vars["subject"] = id.Subject
		req.Vars["scopes"] = strings.Join(id.Scopes, " ")
	}
	if r.TLS == nil {
		req.Scheme = "http"
	}
	resp, err := a.Fn.Invoke(r.Context(), req)
	if err != nil {
		g.invokeFailed(w, r, a, err)
		return
	}
	ans := inspect.Answer{Header: resp.Header, Body: resp.Body}
	if ref := g.cfg.Inspector.Check(r.Context(), a.Inspected(), route.DLP, inspect.Origin{
		RequestID: req.RequestID, SourceIP: req.RemoteAddr, Channel: "route"}, &ans); ref != nil {
		if ref.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		problem.Write(w, r, ref.Status, ref.Detail)
		return
	}
	resp.Body = ans.Body
	WriteResponse(w, resp)
}

// validate checks a body against the route's schema: a type other than JSON
// answers 415, a body that is not JSON or does not match answers 400 with
// the failing places (never the values). Each refusal is an event.
func (g *Gateway) validate(w http.ResponseWriter, r *http.Request, a *deploy.Active, sch *validate.Schema, body []byte) bool {
	if !validate.JSONContentType(r.Header.Get("Content-Type")) {
		if !g.emit(w, r, a, events.TypeRequestInvalid, events.OutcomeDenied, "content type is not JSON", "") {
			return false
		}
		problem.Write(w, r, http.StatusUnsupportedMediaType, "this route accepts application/json")
		return false
	}
	problems, err := sch.Validate(body)
	if err != nil {
		if !g.emit(w, r, a, events.TypeRequestInvalid, events.OutcomeDenied, "body is not JSON", "") {
			return false
		}
		problem.Write(w, r, http.StatusBadRequest, "the body is not valid JSON")
		return false
	}
	if len(problems) > 0 {
		if !g.emit(w, r, a, events.TypeRequestInvalid, events.OutcomeDenied, "schema: "+strings.Join(problems, "; "), "") {
			return false
		}
		problem.WriteDetails(w, r, problem.Details{Status: http.StatusBadRequest, Detail: "the body does not match the route's schema", Errors: problems})
		return false
	}
	return true
}

// authenticate applies the route's auth and returns the verified identity.
// Refusals are events; successes are not (a busy route would flood the log;
// a key's last use is recorded instead).
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request, a *deploy.Active, route manifest.Route) (auth.Identity, bool) {
	switch route.Auth {
	case manifest.AuthNone:
		return auth.Identity{}, true
	case manifest.AuthAPIKey, manifest.AuthJWT:
		var token string
		if route.Auth == manifest.AuthAPIKey {
			token = bearerOrKey(r)
		} else {
			token = bearer(r)
		}
		if token == "" {
			g.deny(w, r, a, http.StatusUnauthorized, "", "no credential", "a credential is required (Authorization: Bearer)")
			return auth.Identity{}, false
		}
		var id auth.Identity
		var err error
		if route.Auth == manifest.AuthAPIKey {
			id, err = g.cfg.Keys.Verify(r.Context(), token)
		} else {
			id, err = g.cfg.Issuers.VerifyJWT(r.Context(), route.Issuer, token)
		}
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidCredential) {
				g.log.Error("credential check failed", "request_id", reqid.From(r.Context()), "auth", route.Auth, "err", err)
				if !g.emit(w, r, a, events.TypeRouteAuth, events.OutcomeFailure, "credential check failed", "") {
					return auth.Identity{}, false
				}
				problem.Write(w, r, http.StatusServiceUnavailable, "credentials cannot be checked right now")
				return auth.Identity{}, false
			}
			actor := ""
			if route.Auth == manifest.AuthAPIKey {
				actor = auth.KeyID(token)
			}
			g.deny(w, r, a, http.StatusUnauthorized, actor, err.Error(), "the credential is not valid")
			return auth.Identity{}, false
		}
		if missing, ok := id.HasScopes(route.Scopes); !ok {
			if !g.emit(w, r, a, events.TypeRouteAuth, events.OutcomeDenied, "missing scope "+missing, id.Method+":"+id.ID) {
				return auth.Identity{}, false
			}
			problem.Write(w, r, http.StatusForbidden, "the credential lacks the scope "+missing)
			return auth.Identity{}, false
		}
		return id, true
	case manifest.AuthMTLS:
		// The listener asks for a client certificate and verifies it
		// against --client-ca; a verified chain is the proof.
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			g.deny(w, r, a, http.StatusUnauthorized, "", "no verified client certificate", "a client certificate from a trusted CA is required")
			return auth.Identity{}, false
		}
		leaf := r.TLS.VerifiedChains[0][0]
		// A serial is unique only within its issuer: the identity names both.
		issuer := sha256.Sum256(leaf.RawIssuer)
		id := auth.Identity{Method: "mtls", ID: hex.EncodeToString(issuer[:6]) + ":" + leaf.SerialNumber.Text(16), Subject: leaf.Subject.String()}
		if len(route.Scopes) > 0 {
			if !g.emit(w, r, a, events.TypeRouteAuth, events.OutcomeDenied, "client certificates carry no scopes", "mtls:"+id.ID) {
				return auth.Identity{}, false
			}
			problem.Write(w, r, http.StatusForbidden, "this route needs scopes, which a client certificate does not carry")
			return auth.Identity{}, false
		}
		return id, true
	default: // the manifest parser admits no other kind; refuse if one appears
		g.deny(w, r, a, http.StatusUnauthorized, "", "unknown auth kind "+route.Auth, "authentication required")
		return auth.Identity{}, false
	}
}

// deny answers 401 with a challenge and emits the refusal.
func (g *Gateway) deny(w http.ResponseWriter, r *http.Request, a *deploy.Active, status int, keyID, reason, detail string) {
	actor := ""
	if keyID != "" {
		actor = "apikey:" + keyID
	}
	if !g.emit(w, r, a, events.TypeRouteAuth, events.OutcomeDenied, reason, actor) {
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="warden"`)
	problem.Write(w, r, status, detail)
}

// bearer returns the Authorization bearer credential, or "".
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// bearerOrKey returns the API key a client sent (bearer or X-API-Key), or "".
func bearerOrKey(r *http.Request) string {
	if t := bearer(r); t != "" {
		return t
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

// limit takes a token for key under rule. Over the limit it answers 429
// with Retry-After and RateLimit-* headers and emits one event per key per
// minute, so a flood cannot flood the event log. If the limiter cannot
// decide, it refuses (fail closed). An admitted request's decision goes to
// tightest when it leaves fewer requests than the one there. a is nil
// before routing.
func (g *Gateway) limit(w http.ResponseWriter, r *http.Request, a *deploy.Active, key string, rule ratelimit.Rule, scope string, tightest *ratelimit.Decision) bool {
	d, err := g.cfg.Limiter.Allow(r.Context(), key, rule)
	if err != nil {
		g.log.Error("rate limit check failed", "request_id", reqid.From(r.Context()), "scope", scope, "err", err)
		problem.Write(w, r, http.StatusServiceUnavailable, "the request could not be admitted right now")
		return false
	}
	if d.Allowed {
		if tightest.Limit == 0 || d.Remaining < tightest.Remaining {
			*tightest = d
		}
		return true
	}
	ratelimit.SetHeaders(w.Header(), d)
	if g.throttle.First(key, g.cfg.Now()) {
		ev := events.Event{Type: events.TypeLimitRate, Outcome: events.OutcomeDenied,
			Reason:   scope + " rate limit exceeded (further hits this minute are not logged)",
			SourceIP: secheaders.ClientIP(r), RequestID: reqid.From(r.Context()), Labels: map[string]string{"limit.scope": scope}}
		if a != nil {
			ev.Namespace, ev.Function, ev.Version = a.Version.Namespace, a.Version.Name, a.Version.Version
		}
		if !g.record(w, r, ev) {
			return false
		}
	}
	problem.Write(w, r, http.StatusTooManyRequests, scope+" rate limit exceeded")
	return false
}

// InvokeError maps a sandbox failure to the status, event type and client
// message. Shared with the admin API's invoke.
func InvokeError(err error) (status int, eventType, detail string) {
	var se *sandbox.Error
	if !errors.As(err, &se) {
		return http.StatusInternalServerError, events.TypeFunctionTrap, "the function could not be run"
	}
	switch se.Kind {
	case sandbox.KindConcurrency:
		return http.StatusTooManyRequests, events.TypeLimitConcurrency, "too many concurrent invocations of this function"
	case sandbox.KindTimeout:
		return http.StatusGatewayTimeout, events.TypeLimitTimeout, "the function exceeded its time limit"
	case sandbox.KindMemory:
		return http.StatusBadGateway, events.TypeLimitMemory, "the function exceeded its memory limit"
	case sandbox.KindResponseTooLarge:
		return http.StatusBadGateway, events.TypeLimitResponse, "the function's response exceeded its size limit"
	case sandbox.KindUnavailable:
		return http.StatusServiceUnavailable, events.TypeFunctionTrap, "the function is unavailable"
	default:
		return http.StatusBadGateway, events.TypeFunctionTrap, "the function failed"
	}
}

func (g *Gateway) invokeFailed(w http.ResponseWriter, r *http.Request, a *deploy.Active, err error) {
	status, typ, detail := InvokeError(err)
	if r.Context().Err() != nil && status == http.StatusGatewayTimeout {
		// The client went away; nobody reads the answer.
		status = 499
	}
	reason := detail
	var se *sandbox.Error
	if errors.As(err, &se) {
		reason = se.Msg
	}
	if !g.emit(w, r, a, typ, events.OutcomeDenied, reason, "") {
		return
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	g.log.Debug("invocation failed", "function", a.Key(), "version", a.Version.Version, "request_id", reqid.From(r.Context()), "err", err)
	problem.Write(w, r, status, detail)
}

// refuse answers a request whose body stays unread: the connection closes
// after the answer, whether it is the refusal or a 503.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, a *deploy.Active, status int, typ, detail string) {
	w.Header().Set("Connection", "close")
	if !g.emit(w, r, a, typ, events.OutcomeDenied, detail, "") {
		return
	}
	problem.Write(w, r, status, detail)
}

// emit records the event of a request being refused. When the event
// pipeline cannot take it, the request is answered 503 instead and emit
// reports false: a refusal that cannot be recorded is not given (an
// attacker must not be able to act unrecorded by flooding the log).
func (g *Gateway) emit(w http.ResponseWriter, r *http.Request, a *deploy.Active, typ, outcome, reason, actor string) bool {
	return g.record(w, r, events.Event{
		Type: typ, Outcome: outcome, Reason: reason, Actor: actor,
		SourceIP: secheaders.ClientIP(r), RequestID: reqid.From(r.Context()),
		Namespace: a.Version.Namespace, Function: a.Version.Name, Version: a.Version.Version,
	})
}

// record emits ev with a bounded wait; when the pipeline cannot accept it,
// it answers 503 problem+json and reports false.
func (g *Gateway) record(w http.ResponseWriter, r *http.Request, ev events.Event) bool {
	if err := g.cfg.Events.TryEmit(ev); err != nil {
		Unrecorded(w, r, err)
		return false
	}
	return true
}

// Unrecorded answers a request whose event could not be recorded: 503 with
// Retry-After. err's text is safe to show (events.ErrUnavailable's are).
func Unrecorded(w http.ResponseWriter, r *http.Request, err error) {
	for _, h := range []string{"WWW-Authenticate", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		w.Header().Del(h)
	}
	w.Header().Set("Retry-After", "1")
	problem.Write(w, r, http.StatusServiceUnavailable, "the request cannot be recorded right now ("+err.Error()+")")
}

// hopHeaders are connection-level and credential headers a guest never sees.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Authorization", "X-Api-Key", "Cookie",
}

// guestHeaders removes what the guest must not see from r's headers (the
// request is the gateway's own after authentication) and returns them.
func guestHeaders(r *http.Request) http.Header {
	for _, k := range hopHeaders {
		delete(r.Header, k)
	}
	return r.Header
}

// reservedResponse are headers a guest may not set: warden owns them.
var reservedResponse = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Upgrade": true,
	"Trailer": true, "Content-Length": true, "Strict-Transport-Security": true,
	"X-Request-Id": true, "Date": true,
}

// WriteResponse writes a guest's response. The guest cannot override
// warden's transport and security headers; it may set its own
// Content-Security-Policy (for HTML it serves) and the others.
func WriteResponse(w http.ResponseWriter, resp *sandbox.Response) {
	h := w.Header()
	for k, v := range resp.Header {
		ck := http.CanonicalHeaderKey(k)
		if reservedResponse[ck] || strings.HasPrefix(ck, "X-Warden-") {
			continue
		}
		h[ck] = v
	}
	if h.Get("Content-Type") == "" && len(resp.Body) > 0 {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	status := resp.Status
	if status < 200 || status > 599 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(resp.Body)
}

// statusWriter remembers the status of an answer (for a canary's figures).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
