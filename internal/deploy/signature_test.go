package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/sign"
	"warden/internal/store"
)

// signingFixture is a fixture whose service reads trust from its store,
// with a clock the test moves.
type signingFixture struct {
	*fixture
	now time.Time
	key *sign.PrivateKey // trusted by namespace default
}

func newSigningFixture(t *testing.T) *signingFixture {
	t.Helper()
	f := &signingFixture{fixture: newFixture(t), now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := New(Config{Store: f.db, Engine: f.eng, Events: f.ev, Trust: f.db, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	f.svc = s
	f.key = f.newKey(t, sign.Ed25519)
	f.trust(t, f.key, "ci", nil)
	return f
}

func (f *signingFixture) newKey(t *testing.T, alg sign.Algorithm) *sign.PrivateKey {
	t.Helper()
	priv, _, err := sign.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sign.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (f *signingFixture) trust(t *testing.T, k *sign.PrivateKey, name string, expires *time.Time) {
	t.Helper()
	err := f.db.AddTrustedKey(context.Background(), store.TrustedKey{Namespace: "default", ID: k.Public.ID, Name: name,
		Algorithm: string(k.Public.Algorithm), PEM: k.Public.PEM, AddedBy: "root", AddedAt: f.now, ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
}

// bundle is one deploy's content.
type bundle struct {
	manifest string
	artifact []byte
	files    map[string][]byte
}

func (b bundle) request(envelope []byte, mayGrant bool) Request {
	return Request{ManifestName: "warden.yaml", Manifest: []byte(b.manifest), Artifact: b.artifact, Files: b.files,
		Signature: envelope, Origin: Origin{Actor: "deployer", MayGrant: mayGrant}}
}

// sign signs b with k as warden sign does.
func signBundle(t *testing.T, k *sign.PrivateKey, b bundle) []byte {
	t.Helper()
	m, err := manifest.Parse("warden.yaml", []byte(b.manifest))
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for p, doc := range b.files {
		digests[p] = sign.Digest(doc)
	}
	env, err := sign.Sign(Claim("warden.yaml", []byte(b.manifest), m, sign.Digest(b.artifact), digests), k)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

const schemaManifest = baseManifest + `  - route: "POST /fn"
    auth: apikey
    rateLimit: {rate: 10/s, burst: 20}
    schema: ./schemas/in.json
`

var schemaDoc = []byte(`{"type": "object"}`)

// TestSignatureRefusals: in an enforcing namespace, every way a deploy's
// signature can be wrong is refused at the signature step, with an event,
// and the active version stays the one before.
func TestSignatureRefusals(t *testing.T) {
	f := newSigningFixture(t)
	ctx := context.Background()
	good := bundle{manifest: schemaManifest, artifact: module("v1"), files: map[string][]byte{"./schemas/in.json": schemaDoc}}
	if _, err := f.svc.Deploy(ctx, good.request(signBundle(t, f.key, good), false)); err != nil {
		t.Fatalf("signed deploy: %v", err)
	}
	v1, err := f.db.Version(ctx, "default", "fn", 1)
	if err != nil || v1.Signature == nil || v1.Signature.Status != store.SignatureVerified || v1.Signature.KeyName != "ci" ||
		v1.Signature.KeyID != f.key.Public.ID || len(v1.Envelope) == 0 {
		t.Fatalf("stored v1 = %+v, %v; want verified by ci with the envelope", v1.Signature, err)
	}

	next := bundle{manifest: schemaManifest, artifact: module("v2"), files: map[string][]byte{"./schemas/in.json": schemaDoc}}
	flipped := next
	flipped.artifact = append([]byte{}, next.artifact...)
	flipped.artifact[len(flipped.artifact)-1] ^= 1
	otherManifest := next
	otherManifest.manifest = next.manifest + "# changed\n"
	otherSchema := next
	otherSchema.files = map[string][]byte{"./schemas/in.json": []byte(`{"type": "array"}`)}
	stranger := f.newKey(t, sign.ECDSAP256)
	revoked := f.newKey(t, sign.Ed25519)
	f.trust(t, revoked, "old-laptop", nil)
	if err := f.db.RevokeTrustedKey(ctx, "default", revoked.Public.ID, "root", f.now); err != nil {
		t.Fatal(err)
	}
	expiring := f.newKey(t, sign.ECDSAP256)
	at := f.now.Add(time.Hour)
	f.trust(t, expiring, "temp", &at)
	replay := bundle{manifest: strings.Replace(next.manifest, "name: fn", "name: other", 1), artifact: next.artifact, files: next.files}

	for _, tc := range []struct {
		name    string
		deploy  bundle
		env     []byte
		advance time.Duration
		want    string
	}{
		{"artifact with one byte changed", flipped, signBundle(t, f.key, next), 0, "fn.wasm: digest differs"},
		{"manifest changed", otherManifest, signBundle(t, f.key, next), 0, "warden.yaml"},
		{"schema changed", otherSchema, signBundle(t, f.key, next), 0, "schemas/in.json"},
		{"wrong key", next, signBundle(t, stranger, next), 0, "no signature by a trusted key"},
		{"revoked key", next, signBundle(t, revoked, next), 0, "revoked"},
		{"expired key", next, signBundle(t, expiring, next), 2 * time.Hour, "expired"},
		{"envelope made for another function", next, signBundle(t, f.key, replay), 0, "other"},
		{"unsigned", next, nil, 0, "not signed"},
		{"not an envelope", next, []byte(`{"payloadType":`), 0, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.now = f.now.Add(tc.advance)
			defer func() { f.now = f.now.Add(-tc.advance) }()
			f.ev.Reset()
			_, err := f.svc.Deploy(ctx, tc.deploy.request(tc.env, true))
			var de *Error
			if !errors.As(err, &de) || de.Kind != KindForbidden || de.Step != StepSignature || !strings.Contains(de.Msg, tc.want) {
				t.Fatalf("Deploy = %v (%+v), want a refusal at step signature naming %q", err, de, tc.want)
			}
			t.Logf("refused: %s", de.Msg)
			if fn, err := f.db.Function(ctx, "default", "fn"); err != nil || fn.ActiveVersion != 1 {
				t.Fatalf("active version after the refusal = %d, %v; want 1", fn.ActiveVersion, err)
			}
			if a, _ := f.svc.Get("default", "fn"); a.Version.Version != 1 {
				t.Fatalf("node serves version %d, want 1", a.Version.Version)
			}
			if vs, _ := f.db.Versions(ctx, "default", "fn"); len(vs) != 1 {
				t.Fatalf("%d versions stored, want 1: a refused deploy stores nothing", len(vs))
			}
			sigEv := find(f.ev, TypeDeploySignature)
			if len(sigEv) != 1 || sigEv[0].Outcome != events.OutcomeDenied || sigEv[0].Actor != "deployer" {
				t.Fatalf("signature events = %+v, want one denial naming the actor", sigEv)
			}
			dep := find(f.ev, events.TypeFunctionDeploy)
			if len(dep) != 1 || dep[0].Outcome != events.OutcomeFailure || dep[0].Labels["step"] != StepSignature {
				t.Fatalf("deploy events = %+v, want one failure at step signature", dep)
			}
		})
	}

	// The same deploy, signed by the trusted key, goes through.
	f.ev.Reset()
	res, err := f.svc.Deploy(ctx, next.request(signBundle(t, f.key, next), false))
	if err != nil || res.Version.Version != 2 {
		t.Fatalf("signed v2 = %+v, %v", res, err)
	}
	if ev := find(f.ev, events.TypeFunctionDeploy); len(ev) != 1 || ev[0].Labels["signer"] != "ci" || ev[0].Labels["signature"] != store.SignatureVerified {
		t.Fatalf("deploy event = %+v, want the signer named", ev)
	}
}

// TestSignatureModes: warn accepts what enforce refuses, with an event and
// the record saying so; a namespace that trusts no key verifies nothing.
func TestSignatureModes(t *testing.T) {
	ctx := context.Background()
	t.Run("off", func(t *testing.T) {
		f := newFixture(t)
		s, err := New(Config{Store: f.db, Engine: f.eng, Events: f.ev, Trust: f.db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		f.svc = s
		if _, err := f.deploy(baseManifest, "v1", false); err != nil {
			t.Fatal(err)
		}
		v, _ := f.db.Version(ctx, "default", "fn", 1)
		if v.Signature == nil || v.Signature.Status != store.SignatureUnsigned || v.Signature.Mode != store.SigningOff {
			t.Fatalf("record = %+v, want unsigned in mode off", v.Signature)
		}
		if ev := find(f.ev, TypeDeploySignature); len(ev) != 0 {
			t.Fatalf("signature events without trust = %+v, want none", ev)
		}
	})
	t.Run("warn", func(t *testing.T) {
		f := newSigningFixture(t)
		if err := f.db.SetSigningMode(ctx, "default", store.SigningWarn, "root"); err != nil {
			t.Fatal(err)
		}
		b := bundle{manifest: baseManifest, artifact: module("v1")}
		if _, err := f.svc.Deploy(ctx, b.request(nil, false)); err != nil {
			t.Fatalf("unsigned deploy in warn mode: %v", err)
		}
		ev := find(f.ev, TypeDeploySignature)
		if len(ev) != 1 || ev[0].Outcome != events.OutcomeFailure || !strings.Contains(ev[0].Reason, "warn") {
			t.Fatalf("signature events = %+v, want one failure saying warn", ev)
		}
		b.artifact = module("v2")
		stranger := f.newKey(t, sign.Ed25519)
		if _, err := f.svc.Deploy(ctx, b.request(signBundle(t, stranger, b), false)); err != nil {
			t.Fatalf("badly signed deploy in warn mode: %v", err)
		}
		v, _ := f.db.Version(ctx, "default", "fn", 2)
		if v.Signature == nil || v.Signature.Status != store.SignatureUnverified || v.Signature.Mode != store.SigningWarn || v.Signature.Reason == "" {
			t.Fatalf("record = %+v, want unverified in warn mode with the reason", v.Signature)
		}
	})
}

// TestSignatureStandsInForApproval: a deployer (no grants:approve) may ship
// new code to a function holding a secret only when a trusted key signed
// it; a signature never widens grants.
func TestSignatureStandsInForApproval(t *testing.T) {
	f := newSigningFixture(t)
	ctx := context.Background()
	holder := baseManifest + "permissions:\n  secrets: [API_TOKEN]\n"
	v1 := bundle{manifest: holder, artifact: module("v1")}
	if _, err := f.svc.Deploy(ctx, v1.request(signBundle(t, f.key, v1), true)); err != nil {
		t.Fatal(err)
	}
	v2 := bundle{manifest: holder, artifact: module("v2")}
	// Signed by a key the namespace does not trust: refused at the
	// signature step already; in warn mode, refused for approval.
	if err := f.db.SetSigningMode(ctx, "default", store.SigningWarn, "root"); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Deploy(ctx, v2.request(signBundle(t, f.newKey(t, sign.Ed25519), v2), false))
	var de *Error
	if !errors.As(err, &de) || de.Step != StepApproval || !strings.Contains(de.Msg, "new code") {
		t.Fatalf("untrusted signature on new code of a secret holder = %v, want a refusal at step approval", err)
	}
	if _, err := f.svc.Deploy(ctx, v2.request(signBundle(t, f.key, v2), false)); err != nil {
		t.Fatalf("new code signed by a trusted key: %v", err)
	}
	wider := bundle{manifest: baseManifest + "permissions:\n  secrets: [API_TOKEN, DB_PASSWORD]\n", artifact: module("v3")}
	_, err = f.svc.Deploy(ctx, wider.request(signBundle(t, f.key, wider), false))
	if !errors.As(err, &de) || de.Step != StepApproval || !strings.Contains(de.Msg, "DB_PASSWORD") {
		t.Fatalf("a signed deploy widening grants = %v, want a refusal at step approval naming the new grant", err)
	}
	// Once the key is revoked, a rollback to code it signed needs approval
	// again.
	if err := f.db.RevokeTrustedKey(ctx, "default", f.key.Public.ID, "root", f.now); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Rollback(ctx, "default", "fn", 1, Origin{Actor: "deployer"}); !errors.As(err, &de) || de.Kind != KindForbidden {
		t.Fatalf("rollback to code signed by a revoked key = %v, want a refusal", err)
	}
}

// find returns the events of one type.
func find(m *events.Memory, typ string) []events.Event {
	var out []events.Event
	for _, e := range m.Events() {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}
