package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/sandbox"
	"warden/internal/store"
	"warden/internal/store/sqlite"
)

// module returns the smallest WASI command module (an empty _start and a
// memory), with a custom section holding tag so that each tag is new code.
func module(tag string) []byte {
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0, // type: () -> ()
		3, 2, 1, 0, // func 0 of type 0
		5, 3, 1, 0, 1, // memory: min 1 page
		7, 19, 2, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0, 6, '_', 's', 't', 'a', 'r', 't', 0, 0,
		10, 4, 1, 2, 0, 0x0b, // code: empty body
	}
	name := "tag"
	b = append(b, 0, byte(1+len(name)+len(tag)), byte(len(name)))
	b = append(b, name...)
	return append(b, tag...)
}

const baseManifest = `name: fn
abi: wagi
artifact: ./fn.wasm
http:
  - route: "GET /fn"
    auth: apikey
    scopes: [fn:read]
    rateLimit: {rate: 10/s, burst: 20}
    dlp: redact
`

type fixture struct {
	svc *Service
	db  *sqlite.DB
	ev  *events.Memory
	eng *sandbox.Engine
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng, err := sandbox.New(context.Background(), sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	f := &fixture{db: db, ev: events.NewMemory(), eng: eng}
	// The development policy: these tests are not about the two-person
	// rule (approval_test.go is, with the built-in policy).
	dev, err := os.ReadFile("../../scripts/dev-policy.rego")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetPolicy(context.Background(), store.Policy{Namespace: "default", Source: dev, Digest: "dev", SetBy: "test"}); err != nil {
		t.Fatal(err)
	}
	f.svc = f.service(t)
	return f
}

func (f *fixture) service(t testing.TB) *Service {
	t.Helper()
	s, err := New(Config{Store: f.db, Engine: f.eng, Events: f.ev})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func (f *fixture) deploy(m, tag string, mayGrant bool) (Result, error) {
	return f.svc.Deploy(context.Background(), Request{ManifestName: "warden.yaml", Manifest: []byte(m),
		Artifact: module(tag), Origin: Origin{Actor: "tester", MayGrant: mayGrant}})
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	f := newFixture(t)
	for name, cfg := range map[string]Config{
		"no store":  {Engine: f.eng, Events: f.ev},
		"no engine": {Store: f.db, Events: f.ev},
		"no events": {Store: f.db, Engine: f.eng},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%s) = nil error, want a refusal", name)
		}
	}
}

// TestBindFailureLeavesActiveVersion: a version this node cannot bind is
// never made active in the store, so the store and the node agree, and a
// restart does not silently switch to it.
func TestBindFailureLeavesActiveVersion(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.deploy(baseManifest, "v1", true); err != nil {
		t.Fatal(err)
	}
	f.svc.bindFault = func(*Active) error { return errors.New("injected bind failure") }
	_, err := f.deploy(baseManifest, "v2", true)
	var de *Error
	if !errors.As(err, &de) || de.Kind != KindRejected || !strings.Contains(de.Msg, "active version is unchanged") {
		t.Fatalf("Deploy with a failing bind = %v, want a rejection saying the active version is unchanged", err)
	}
	fn, err := f.db.Function(ctx, "default", "fn")
	if err != nil || fn.ActiveVersion != 1 {
		t.Fatalf("store's active version after a failed bind = %d, %v; want 1", fn.ActiveVersion, err)
	}
	if a, ok := f.svc.Get("default", "fn"); !ok || a.Version.Version != 1 {
		t.Fatalf("node serves %+v after a failed bind, want version 1", a)
	}
	f.ev.Reset()
	f.svc.bindFault = nil

	// A restart serves what the store says: still version 1.
	restarted := f.service(t)
	if err := restarted.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if a, ok := restarted.Get("default", "fn"); !ok || a.Version.Version != 1 {
		t.Fatalf("after restart the node serves %+v, want version 1", a)
	}

	// The same content deploys once the fault is gone.
	res, err := f.deploy(baseManifest, "v2", true)
	if err != nil || res.Previous != 1 {
		t.Fatalf("redeploy after the fault = %+v, %v", res, err)
	}
	if fn, _ := f.db.Function(ctx, "default", "fn"); fn.ActiveVersion != res.Version.Version {
		t.Fatalf("store's active version = %d, want %d", fn.ActiveVersion, res.Version.Version)
	}
}

// TestLoadReportsUnbindable: when the store's active version cannot be
// bound on this node, the function is not served and an event says so.
func TestLoadReportsUnbindable(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(baseManifest, "v1", true); err != nil {
		t.Fatal(err)
	}
	s := f.service(t)
	s.bindFault = func(*Active) error { return errors.New("injected bind failure") }
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("default", "fn"); ok {
		t.Fatal("an unbindable version is served")
	}
	var found bool
	for _, e := range f.ev.Events() {
		if e.Type == events.TypeFunctionLoad && e.Outcome == events.OutcomeFailure && e.Function == "fn" && e.Version == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("events %v, want a function.load failure for fn v1", f.ev.Types())
	}
}

func mustParse(t *testing.T, m string) *manifest.Manifest {
	t.Helper()
	p, err := manifest.Parse("warden.yaml", []byte(m))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// TestRelaxed: every way of weakening a route's or the WAF's protection is
// named; tightening and unchanged protection are not.
func TestRelaxed(t *testing.T) {
	r := strings.NewReplacer
	tests := []struct {
		name string
		edit *strings.Replacer
		want string // "" = not relaxed
	}{
		{"unchanged", r(), ""},
		{"auth none", r("auth: apikey\n    scopes: [fn:read]", "auth: none"), "auth apikey → none"},
		{"auth mtls", r("auth: apikey\n    scopes: [fn:read]", "auth: mtls"), "auth apikey → mtls"},
		{"scope dropped", r("scopes: [fn:read]", "scopes: [fn:other]"), "scope fn:read no longer required"},
		{"scope added", r("scopes: [fn:read]", "scopes: [fn:read, fn:more]"), ""},
		{"dlp off", r("dlp: redact", "dlp: off"), "dlp redact → off"},
		{"dlp block", r("dlp: redact", "dlp: block"), ""},
		{"rate raised", r("rate: 10/s", "rate: 11/s"), "rate limit raised"},
		{"rate per minute is lower", r("rate: 10/s", "rate: 10/m"), ""},
		{"burst raised", r("burst: 20", "burst: 21"), "rate limit raised"},
		{"rate removed", r("    rateLimit: {rate: 10/s, burst: 20}\n", ""), "rate limit removed"},
		{"new public route", r("http:\n", "http:\n  - route: \"GET /open\"\n    auth: none\n"), `route "GET /open": a new route without authentication`},
		{"new route with dlp off", r("http:\n", "http:\n  - route: \"GET /x\"\n    dlp: off\n"), "a new route with dlp off"},
		{"new authenticated route", r("http:\n", "http:\n  - route: \"GET /x\"\n"), ""},
		{"waf detect", r("abi: wagi\n", "abi: wagi\nwaf: {mode: detect}\n"), "waf block → detect"},
		{"renamed route weaker", r("GET /fn\"\n    auth: apikey\n    scopes: [fn:read]", "/fn\"\n    auth: mtls"), `route "/fn" (replacing "GET /fn"): auth apikey → mtls`},
		{"renamed route as strict", r("GET /fn", "GET /fn/"), ""},
		{"rate limit keyed by ip", r("rate: 10/s, burst: 20", "rate: 10/s, burst: 20, by: ip"), "keyed by ip"},
		{"waf paranoia up", r("abi: wagi\n", "abi: wagi\nwaf: {paranoia: 2}\n"), ""},
	}
	prev := mustParse(t, baseManifest)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(Relaxed(prev, mustParse(t, tt.edit.Replace(baseManifest))), "; ")
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("Relaxed(%s) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
	t.Run("paranoia lowered", func(t *testing.T) {
		hi := mustParse(t, strings.Replace(baseManifest, "abi: wagi\n", "abi: wagi\nwaf: {paranoia: 3}\n", 1))
		if got := Relaxed(hi, prev); len(got) != 1 || !strings.Contains(got[0], "paranoia 3 → 1") {
			t.Errorf("Relaxed(paranoia 3 → 1) = %q", got)
		}
	})
	t.Run("schema removed", func(t *testing.T) {
		with := mustParse(t, strings.Replace(baseManifest, "dlp: redact", "dlp: redact\n    schema: ./s.json", 1))
		if got := Relaxed(with, prev); len(got) != 1 || !strings.Contains(got[0], "schema removed") {
			t.Errorf("Relaxed(schema removed) = %q", got)
		}
	})
}

// TestDeployerChanges is the deploy side of "a deployer cannot read a
// secret": without grants:approve, relaxed protection and new code for a
// function holding a secret are refused, with the reason and an event,
// and the active version stays.
func TestDeployerChanges(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.deploy(baseManifest, "v1", false); err != nil {
		t.Fatalf("a deployer's first deploy of a function without grants: %v", err)
	}
	// New code without secrets: fine for a deployer.
	if _, err := f.deploy(baseManifest, "v2", false); err != nil {
		t.Fatalf("a deployer's new code without secrets: %v", err)
	}
	refused := func(m, tag, want string) {
		t.Helper()
		before, _ := f.db.Function(ctx, "default", "fn")
		f.ev.Reset()
		_, err := f.deploy(m, tag, false)
		var de *Error
		if !errors.As(err, &de) || de.Kind != KindForbidden || !strings.Contains(de.Msg, want) {
			t.Fatalf("deployer change = %v, want forbidden naming %q", err, want)
		}
		after, _ := f.db.Function(ctx, "default", "fn")
		if after.ActiveVersion != before.ActiveVersion {
			t.Fatalf("a refused change moved the active version %d → %d", before.ActiveVersion, after.ActiveVersion)
		}
		evs := f.ev.Events()
		if len(evs) == 0 || evs[len(evs)-1].Type != events.TypeFunctionDeploy || evs[len(evs)-1].Outcome != events.OutcomeFailure ||
			!strings.Contains(evs[len(evs)-1].Reason, want) {
			t.Fatalf("events %+v, want a function.deploy failure naming %q", evs, want)
		}
	}
	refused(strings.Replace(baseManifest, "dlp: redact", "dlp: off", 1), "v2", "dlp redact → off")

	// The admin grants a secret (secrets are checked only with a
	// capability service, which this fixture lacks: the grant itself is
	// what the rule reads).
	withSecret := baseManifest + "permissions:\n  secrets: [API_TOKEN]\n"
	refused(withSecret, "v2", "secret API_TOKEN")
	if _, err := f.deploy(withSecret, "v2", true); err != nil {
		t.Fatal(err)
	}
	refused(withSecret, "v3", "new code")
	refused(withSecret+"env:\n  DEBUG: \"1\"\n", "v2", "env changed")
	// The same code and grants, tighter protection: fine.
	if _, err := f.deploy(strings.Replace(withSecret, "dlp: redact", "dlp: block", 1), "v2", false); err != nil {
		t.Fatalf("a deployer tightening dlp: %v", err)
	}
	tight, _ := f.db.Function(ctx, "default", "fn")
	// Rolling back to other code of a function holding secrets needs
	// approval too.
	if _, err := f.deploy(withSecret, "v3", true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Rollback(ctx, "default", "fn", tight.ActiveVersion, Origin{Actor: "tester"}); err == nil ||
		!strings.Contains(err.Error(), "new code") {
		t.Fatalf("a deployer's rollback to other code of a function holding a secret = %v, want refused", err)
	}
	if _, err := f.svc.Rollback(ctx, "default", "fn", tight.ActiveVersion, Origin{Actor: "admin", MayGrant: true}); err != nil {
		t.Fatalf("admin rollback: %v", err)
	}
	// Rolling back to code that holds no secret is not new code for a
	// secret holder; version 1's weaker dlp is still a relaxation.
	_, err := f.svc.Rollback(ctx, "default", "fn", 1, Origin{Actor: "tester"})
	if err == nil || strings.Contains(err.Error(), "new code") || !strings.Contains(err.Error(), "dlp block → redact") {
		t.Fatalf("a deployer's rollback to a version without secrets = %v, want only the dlp relaxation named", err)
	}
}

func TestHealthPathReserved(t *testing.T) {
	f := newFixture(t)
	_, err := f.deploy(strings.Replace(baseManifest, "GET /fn", "GET /healthz", 1), "v1", true)
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("deploy of a /healthz route = %v, want refused as reserved", err)
	}
}
