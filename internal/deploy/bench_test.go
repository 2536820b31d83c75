package deploy

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"warden/internal/manifest"
	"warden/internal/policy"
	"warden/internal/scan"
	"warden/internal/sign"
	"warden/internal/store"
	"warden/internal/vulndb"
)

// BenchmarkDeploySteps times the steps a deploy adds before compiling:
// verify, scan and policy, on examples/echo-json's module (make examples
// builds it; skipped when it is missing). The scan is timed uncached.
func BenchmarkDeploySteps(b *testing.B) {
	wasm, err := os.ReadFile("../../examples/echo-json/echo-json.wasm")
	if err != nil {
		b.Skip("examples/echo-json/echo-json.wasm not built (make examples)")
	}
	raw, err := os.ReadFile("../../examples/echo-json/warden.yaml")
	if err != nil {
		b.Fatal(err)
	}
	m, err := manifest.Parse("warden.yaml", raw)
	if err != nil {
		b.Fatal(err)
	}
	priv, _, _ := sign.GenerateKey(sign.Ed25519)
	key, _ := sign.ParsePrivateKey(priv)
	claim := Claim("warden.yaml", raw, m, sign.Digest(wasm), nil)
	env, err := sign.Sign(claim, key)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := sign.Verify(env, []*sign.PublicKey{key.Public}, Claim("warden.yaml", raw, m, sign.Digest(wasm), nil)); err != nil {
				b.Fatal(err)
			}
		}
	})
	var rep *scan.Report
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if rep, err = scan.Scan(scan.Input{Wasm: wasm, Manifest: m, ManifestName: "warden.yaml", ManifestRaw: raw}); err != nil {
				b.Fatal(err)
			}
		}
	})
	findings := scanFindings(rep)
	b.Run("policy", func(b *testing.B) {
		in := policyInput(nil, m, sign.Digest(wasm), findings, &store.Signature{Status: store.SignatureVerified, Mode: store.SigningEnforce},
			Origin{Actor: "bench"}, func() policy.Input { return policy.Input{Time: time.Now()} })
		p := policy.Default()
		for b.Loop() {
			if _, err := p.Eval(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRescan1000 re-evaluates 1,000 active versions, each with a few
// dependencies, against the test database: what an import costs once the
// advisories are stored (matching, findings, the policy, quarantine).
func BenchmarkRescan1000(b *testing.B) {
	f, vulns := pipelineFixture(b)
	for i := range 1000 {
		m := fmt.Sprintf("name: fn-%d\nabi: wagi\nartifact: ./fn.wasm\nhttp:\n  - route: \"GET /fn-%d\"\n    auth: apikey\n", i, i)
		wasm := moduleWithData(fmt.Sprint(i), buildInfo("golang.org/x/text@v0.3.7", "golang.org/x/net@v0.7.0", "github.com/google/uuid@v1.6.0"))
		if _, err := f.deployModule(m, wasm, true); err != nil {
			b.Fatal(err)
		}
	}
	entries, _, err := vulndb.Load("../vulndb/testdata/vulndb")
	if err != nil {
		b.Fatal(err)
	}
	vulns.Set(vulndb.NewIndex(entries))
	for b.Loop() {
		if n, err := f.svc.Rescan(context.Background()); err != nil || n != 1000 {
			b.Fatalf("Rescan = %d, %v", n, err)
		}
		// What an import does next: every version judged by its policy
		// (the development policy: x/text v0.3.7 is denied, quarantined).
		if re, err := f.svc.Reevaluate(context.Background(), "", "bench"); err != nil || re.Evaluated != 1000 {
			b.Fatalf("Reevaluate = %+v, %v", re, err)
		}
	}
}
