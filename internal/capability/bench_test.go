package capability

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"warden/internal/egress"
	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/sandbox"
)

func benchHost(b *testing.B, p manifest.Permissions) (*Host, *fixture) {
	b.Helper()
	f := newFixtureTB(b)
	svc := mustNew(b, Config{Vault: f.vault, Usage: f.db, Events: events.Discard, FlushEvery: time.Hour})
	b.Cleanup(func() { svc.Close(context.Background()) })
	h, err := svc.ForFunction("default", "bench", 1, p)
	if err != nil {
		b.Fatal(err)
	}
	return h, f
}

var benchInv = sandbox.Invocation{Namespace: "default", Name: "bench", Version: 1, RequestID: "r"}

// BenchmarkHostSecretGet is one granted secret read with the data key
// cached: grant check, cache lookup, decrypt, usage record, read event.
func BenchmarkHostSecretGet(b *testing.B) {
	h, f := benchHost(b, manifest.Permissions{Secrets: []string{"K"}})
	ctx := context.Background()
	if _, err := f.vault.PutSecret(ctx, "default", "K", []byte("sk_live_0123456789abcdef0123456789"), "b", true, 0); err != nil {
		b.Fatal(err)
	}
	f.vault.ttl = time.Hour // measure the cached path, not the refresh
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.SecretGet(ctx, benchInv, "K"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostKVGet reads a 256-byte value (a store read and a decrypt).
func BenchmarkHostKVGet(b *testing.B) {
	h, _ := benchHost(b, manifest.Permissions{KV: map[string]string{"bkt": "write"}})
	ctx := context.Background()
	if err := h.KVSet(ctx, benchInv, "bkt", "k", make([]byte, 256), 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.KVGet(ctx, benchInv, "bkt", "k"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostKVSet writes a 256-byte value (seal, one durable SQLite
// transaction with its change record).
func BenchmarkHostKVSet(b *testing.B) {
	h, _ := benchHost(b, manifest.Permissions{KV: map[string]string{"bkt": "write"}})
	ctx := context.Background()
	v := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if err := h.KVSet(ctx, benchInv, "bkt", "k", v, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEgressCheck is the egress decision alone (no network): parse
// and match a URL against three grants.
func BenchmarkEgressCheck(b *testing.B) {
	p, err := egress.NewPolicy([]string{"https://api.stripe.com", "https://*.example.org", "http://10.0.0.7:8080"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Check("https://api.eu.example.org/v1/orders?limit=10"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuestSecretGet measures what a secret read adds to a warm
// reactor invocation, through the real sandbox and the real vault: the
// sandbox's capability guest answering without a call, with one secret
// read, and with 100 (the per-read cost is (secret100 - none) / 100).
func BenchmarkGuestSecretGet(b *testing.B) {
	wasm := capsGuest(b)
	h, f := benchHost(b, manifest.Permissions{Secrets: []string{"K"}})
	ctx := context.Background()
	if _, err := f.vault.PutSecret(ctx, "default", "K", []byte("sk_live_0123456789abcdef0123456789"), "b", true, 0); err != nil {
		b.Fatal(err)
	}
	f.vault.ttl = time.Hour
	e, err := sandbox.New(ctx, sandbox.Config{CacheDir: filepath.Join(os.TempDir(), "warden-bench-cache")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	fn := e.Function(sandbox.Spec{Namespace: "default", Name: "bench", Version: 1, Digest: "caps", ABI: manifest.ABIReactor,
		Host: h, Load: func(context.Context) ([]byte, error) { return wasm, nil }})
	for _, path := range []string{"/bench/none", "/bench/secret", "/bench/secret100"} {
		b.Run(path[len("/bench/"):], func(b *testing.B) {
			req := &sandbox.Request{Method: "GET", Path: path, Host: "h", Scheme: "https", RemoteAddr: "1.2.3.4:5", RequestID: "r"}
			if resp, err := fn.Invoke(ctx, req); err != nil || resp.Status != 200 {
				b.Fatalf("Invoke %s = %v, %v", path, resp, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fn.Invoke(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var (
	capsOnce sync.Once
	capsWasm []byte
	capsErr  error
)

// capsGuest builds the sandbox's capability test guest once.
func capsGuest(b *testing.B) []byte {
	capsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caps-guest-")
		if err != nil {
			capsErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "caps.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./internal/sandbox/testdata/guests/caps")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if o, err := cmd.CombinedOutput(); err != nil {
			capsErr = err
			b.Logf("%s", o)
			return
		}
		capsWasm, capsErr = os.ReadFile(out)
	})
	if capsErr != nil {
		b.Fatal(capsErr)
	}
	return capsWasm
}
