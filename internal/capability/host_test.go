package capability

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/sandbox"
)

// resolver answers names from a table; anything else does not exist.
type resolver map[string][]string

func (r resolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ips, ok := r[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]net.IPAddr, len(ips))
	for i, s := range ips {
		out[i] = net.IPAddr{IP: net.ParseIP(s)}
	}
	return out, nil
}

type hostFixture struct {
	*fixture
	ev  *events.Memory
	svc *Service
	h   *Host
	inv sandbox.Invocation
}

func newHost(t *testing.T, p manifest.Permissions, res resolver) *hostFixture {
	t.Helper()
	f := newFixture(t)
	ev := events.NewMemory()
	svc := mustNew(t, Config{Vault: f.vault, Usage: f.db, Events: ev, Resolver: res, EgressTimeout: 5 * time.Second, FlushEvery: time.Hour})
	t.Cleanup(func() { svc.Close(context.Background()) })
	h, err := svc.ForFunction("default", "shop", 4, p)
	if err != nil {
		t.Fatal(err)
	}
	return &hostFixture{fixture: f, ev: ev, svc: svc, h: h, inv: sandbox.Invocation{Namespace: "default", Name: "shop", Version: 4, RequestID: "req-1"}}
}

// denied checks that err is ErrDenied and that the last event is a
// capability.denied naming the function, version, capability and target.
func (hf *hostFixture) denied(t *testing.T, err error, capability, target string) {
	t.Helper()
	if !errors.Is(err, sandbox.ErrDenied) {
		t.Fatalf("err = %v, want ErrDenied", err)
	}
	evs := hf.ev.Events()
	if len(evs) == 0 {
		t.Fatal("no event")
	}
	e := evs[len(evs)-1]
	if e.Type != TypeDenied || e.Outcome != events.OutcomeDenied || e.Function != "shop" || e.Version != 4 ||
		e.RequestID != "req-1" || e.Labels["capability"] != capability || e.Labels["target"] != target {
		t.Fatalf("event = %+v, want %s denied for %s/%q", e, TypeDenied, capability, target)
	}
}

func TestHostSecrets(t *testing.T) {
	hf := newHost(t, manifest.Permissions{Secrets: []string{"GRANTED_KEY"}}, nil)
	ctx := ctxT(t)
	for _, n := range []string{"GRANTED_KEY", "OTHER_KEY"} {
		if _, err := hf.vault.PutSecret(ctx, "default", n, []byte("value-of-"+n), "op", true, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	v, err := hf.h.SecretGet(ctx, hf.inv, "GRANTED_KEY")
	if err != nil || string(v) != "value-of-GRANTED_KEY" {
		t.Fatalf("granted SecretGet = %q, %v", v, err)
	}
	e := hf.ev.Events()[0]
	if e.Type != TypeSecretRead || e.Labels["secret"] != "GRANTED_KEY" || e.Labels["secret.version"] != "1" || e.RequestID != "req-1" || e.Version != 4 {
		t.Fatalf("read event = %+v", e)
	}
	for _, ev := range hf.ev.Events() {
		for _, l := range ev.Labels {
			if strings.Contains(l, "value-of") {
				t.Fatalf("an event holds the secret value: %+v", ev)
			}
		}
	}
	_, err = hf.h.SecretGet(ctx, hf.inv, "OTHER_KEY")
	hf.denied(t, err, "secrets.get", "OTHER_KEY")
	// The previous-version syntax does not widen the grant.
	_, err = hf.h.SecretGet(ctx, hf.inv, "OTHER_KEY@previous")
	hf.denied(t, err, "secrets.get", "OTHER_KEY")
	if _, err := hf.h.SecretGet(ctx, hf.inv, "../GRANTED_KEY"); !errors.Is(err, sandbox.ErrInvalid) {
		t.Fatalf("malformed name = %v, want ErrInvalid", err)
	}
	// Granted but never set: not found, not denied.
	hf2 := newHost(t, manifest.Permissions{Secrets: []string{"MISSING"}}, nil)
	if _, err := hf2.h.SecretGet(ctx, hf2.inv, "MISSING"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("granted missing secret = %v, want ErrNotFound", err)
	}
	// A function without grants is refused too.
	hf3 := newHost(t, manifest.Permissions{}, nil)
	_, err = hf3.h.SecretGet(ctx, hf3.inv, "GRANTED_KEY")
	hf3.denied(t, err, "secrets.get", "GRANTED_KEY")
}

func TestHostKV(t *testing.T) {
	hf := newHost(t, manifest.Permissions{KV: map[string]string{"orders": "write", "catalog": "read"}}, nil)
	ctx := ctxT(t)
	if err := hf.h.KVSet(ctx, hf.inv, "orders", "o1", []byte("tea"), 0); err != nil {
		t.Fatalf("write grant KVSet: %v", err)
	}
	if v, err := hf.h.KVGet(ctx, hf.inv, "orders", "o1"); err != nil || string(v) != "tea" {
		t.Fatalf("KVGet = %q, %v", v, err)
	}
	if keys, err := hf.h.KVList(ctx, hf.inv, "orders", "o", "", 10); err != nil || len(keys) != 1 || keys[0] != "o1" {
		t.Fatalf("KVList = %v, %v", keys, err)
	}
	if _, err := hf.h.KVGet(ctx, hf.inv, "catalog", "nothing"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("read grant, missing key = %v, want ErrNotFound", err)
	}
	err := hf.h.KVSet(ctx, hf.inv, "catalog", "k", []byte("v"), 0)
	hf.denied(t, err, "kv.set", "catalog")
	err = hf.h.KVDelete(ctx, hf.inv, "catalog", "k")
	hf.denied(t, err, "kv.delete", "catalog")
	_, err = hf.h.KVGet(ctx, hf.inv, "secrets", "k")
	hf.denied(t, err, "kv.get", "secrets")
	_, err = hf.h.KVList(ctx, hf.inv, "secrets", "", "", 0)
	hf.denied(t, err, "kv.list", "secrets")
	if err := hf.h.KVSet(ctx, hf.inv, "orders", "big", make([]byte, 4000), 0); !errors.Is(err, sandbox.ErrTooLarge) {
		t.Fatalf("oversized KVSet = %v, want ErrTooLarge", err)
	}

	// Usage: orders read and written, catalog read; nothing for denials.
	if err := hf.svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	uses, err := hf.db.GrantUses(ctx, "default", "shop", 4)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, u := range uses {
		got[u.Kind+"/"+u.Target+"/"+u.Mode] = u.Count
	}
	if got["kv/orders/write"] != 2 || got["kv/orders/read"] != 2 || got["kv/catalog/read"] != 1 || got["kv/secrets/read"] != 0 || len(got) != 3 {
		t.Fatalf("grant uses = %v", got)
	}
}

func TestHostEgress(t *testing.T) {
	var redirectTo string
	sawKey := make(chan string, 4)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawKey <- r.Header.Get("X-Api-Key") + "|" + r.Header.Get("Accept")
		w.Write([]byte("other"))
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, redirectTo, http.StatusFound)
		case "/big":
			w.Write(make([]byte, 64<<10))
		default:
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Echo-Method", r.Method)
			w.Header().Set("X-Saw-Host", r.Host)
			w.Write(append([]byte("got:"), b...))
		}
	}))
	defer srv.Close()
	local := srv.URL // http://127.0.0.1:PORT, granted exactly
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(local, "http://"))
	res := resolver{"rebind.example": {"127.0.0.1"}, "api.example": {"93.184.216.34"}}
	hf := newHost(t, manifest.Permissions{Egress: []string{local, "https://api.example", "https://rebind.example", "https://*.example.org", other.URL}}, res)
	ctx := ctxT(t)

	resp, err := hf.h.HTTP(ctx, hf.inv, &sandbox.HTTPRequest{Method: "POST", URL: local + "/echo",
		Header: http.Header{"Host": {"evil.example"}, "Content-Type": {"text/plain"}}, Body: []byte("hello")})
	if err != nil || resp.Status != 200 || string(resp.Body) != "got:hello" || resp.Header.Get("X-Echo-Method") != "POST" {
		t.Fatalf("granted call = %+v, %v", resp, err)
	}
	if h := resp.Header.Get("X-Saw-Host"); h != "127.0.0.1:"+port {
		t.Fatalf("the guest's Host header reached the destination: %q", h)
	}
	var egressEv events.Event
	for _, e := range hf.ev.Events() {
		if e.Type == TypeEgressRequest {
			egressEv = e
		}
	}
	if egressEv.Labels["origin"] != local || egressEv.Labels["status"] != "200" || egressEv.Labels["bytes_out"] != "5" || egressEv.Labels["bytes_in"] != "9" {
		t.Fatalf("egress event = %+v", egressEv)
	}

	attacks := []struct{ name, url, target string }{
		{"not granted", "https://evil.example/", "https://evil.example"},
		{"loopback v6", "http://[::1]:" + port + "/", "http://[::1]:" + port},
		{"decimal IP", "http://2130706433/", ""},
		{"octal IP", "http://0177.0.0.1/", ""},
		{"userinfo", "https://api.example@evil.example/", ""},
		{"IDN lookalike", "https://аpi.example/", ""},
		{"http downgrade", "http://api.example/", "http://api.example"},
		{"metadata", "http://169.254.169.254/latest/meta-data/", "http://169.254.169.254"},
		{"bare suffix of a wildcard", "https://example.org/", "https://example.org"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			_, err := hf.h.HTTP(ctx, hf.inv, &sandbox.HTTPRequest{Method: "GET", URL: a.url})
			if !errors.Is(err, sandbox.ErrDenied) {
				t.Fatalf("HTTP(%q) = %v, want ErrDenied", a.url, err)
			}
			e := hf.ev.Events()[len(hf.ev.Events())-1]
			if e.Type != TypeDenied || e.Labels["capability"] != "egress.http" {
				t.Fatalf("event = %+v", e)
			}
			if a.target != "" && e.Labels["target"] != a.target {
				t.Fatalf("target = %q, want %q", e.Labels["target"], a.target)
			}
			if strings.Contains(e.Labels["target"], "@") || strings.Contains(e.Reason, "meta-data") {
				t.Fatalf("event leaks user info or path: %+v", e)
			}
		})
	}
	t.Run("DNS rebinding to loopback", func(t *testing.T) {
		_, err := hf.h.HTTP(ctx, hf.inv, &sandbox.HTTPRequest{Method: "GET", URL: "https://rebind.example/"})
		hf.denied(t, err, "egress.http", "rebind.example:443")
	})
	t.Run("redirect to metadata", func(t *testing.T) {
		redirectTo = "http://169.254.169.254/latest/meta-data/iam"
		_, err := hf.h.HTTP(ctx, hf.inv, &sandbox.HTTPRequest{Method: "GET", URL: local + "/redirect"})
		hf.denied(t, err, "egress.http", "http://169.254.169.254")
	})
	t.Run("redirect to another granted origin", func(t *testing.T) {
		redirectTo = other.URL + "/landing"
		resp, err := hf.h.HTTP(ctx, hf.inv, &sandbox.HTTPRequest{Method: "GET", URL: local + "/redirect",
			Header: http.Header{"X-Api-Key": {"key-for-the-first-origin"}, "Accept": {"text/plain"}}})
		if err != nil || string(resp.Body) != "other" {
			t.Fatalf("redirect = %v, %v", resp, err)
		}
		if got := <-sawKey; got != "|text/plain" {
			t.Fatalf("the other origin saw %q; want the API key dropped and Accept kept", got)
		}
	})
	t.Run("response over the limit", func(t *testing.T) {
		svc := mustNew(t, Config{Vault: hf.vault, Usage: newFixture(t).db, Events: hf.ev, EgressMaxBody: 1024}) // its usage is not the stats checked below
		defer svc.Close(ctx)
		h, _ := svc.ForFunction("default", "shop", 4, manifest.Permissions{Egress: []string{local}})
		if _, err := h.HTTP(ctx, hf.inv, &sandbox.HTTPRequest{Method: "GET", URL: local + "/big"}); !errors.Is(err, sandbox.ErrTooLarge) {
			t.Fatalf("big response = %v, want ErrTooLarge", err)
		}
	})
	t.Run("no egress granted", func(t *testing.T) {
		h, _ := hf.svc.ForFunction("default", "other", 1, manifest.Permissions{})
		_, err := h.HTTP(ctx, hf.inv, &sandbox.HTTPRequest{Method: "GET", URL: local})
		if !errors.Is(err, sandbox.ErrDenied) {
			t.Fatalf("no grant = %v", err)
		}
	})

	if err := hf.svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The redirect target's grant counts as used.
	uses, _ := hf.db.GrantUses(ctx, "default", "shop", 4)
	usedOther := false
	for _, u := range uses {
		usedOther = usedOther || u.Target == other.URL
	}
	if !usedOther {
		t.Errorf("grant uses %+v lack the redirect target %s", uses, other.URL)
	}
	st, err := hf.db.EgressStats(ctx, "default", "shop")
	// Refused before any connection: nothing recorded. Attempts on a
	// granted origin count, failed ones as errors.
	if err != nil || len(st) != 2 || st[0].Origin != local || st[0].Calls != 3 || st[0].Errors != 1 || st[0].BytesOut != 5 ||
		st[1].Origin != "https://rebind.example" || st[1].Errors != 1 {
		t.Fatalf("EgressStats = %+v, %v; want 3 calls to %s (the echo, the refused and the followed redirect) and 1 failed to rebind.example", st, err, local)
	}
}

func TestForFunctionRefusesUnenforceableGrant(t *testing.T) {
	f := newFixture(t)
	svc := mustNew(t, Config{Vault: f.vault, Usage: f.db, Events: events.NewMemory()})
	defer svc.Close(context.Background())
	if _, err := svc.ForFunction("default", "x", 1, manifest.Permissions{Egress: []string{"https://*"}}); err == nil {
		t.Fatal("a bare wildcard egress grant was accepted")
	}
}

func mustNew(tb testing.TB, cfg Config) *Service {
	tb.Helper()
	svc, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// TestNewRefusesMissingDependencies: a service without an event emitter
// would drop capability.denied and secret.read events; it must not start.
func TestNewRefusesMissingDependencies(t *testing.T) {
	f := newFixture(t)
	for name, cfg := range map[string]Config{
		"no events": {Vault: f.vault, Usage: f.db},
		"no vault":  {Usage: f.db, Events: events.NewMemory()},
		"no usage":  {Vault: f.vault, Events: events.NewMemory()},
	} {
		if svc, err := New(cfg); err == nil {
			svc.Close(context.Background())
			t.Errorf("New(%s) = nil error, want a refusal", name)
		}
	}
}
