package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/admin"
	"warden/internal/deploy"
	"warden/internal/events"
	"warden/internal/store"
)

// TestScanPolicyCLI drives the scan and policy steps through the command
// line: an offline scan, the SBOM and findings of a deploy, an import of
// the vulnerability database, and a namespace policy that refuses.
func TestScanPolicyCLI(t *testing.T) {
	in := start(t, t.TempDir())
	m := fixture(t, "echo-json", nil)

	out, errOut, code := in.cli("scan", filepath.Dir(m))
	if code != 0 || !strings.Contains(out, "built with go1.") || !strings.Contains(out, "lint.auth-none-write") || !strings.Contains(errOut, "scanning ") {
		t.Fatalf("scan: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, code := in.cli("scan", "--fail-on", "high", m); code != 1 {
		t.Fatalf("scan --fail-on high of a route writing without auth: exit %d, want 1", code)
	}

	in.mustCLI("deploy", "-f", m)
	var bom map[string]any
	if err := json.Unmarshal([]byte(in.mustCLI("sbom", "echo-json")), &bom); err != nil || bom["bomFormat"] != "CycloneDX" ||
		!strings.Contains(in.mustCLI("sbom", "echo-json@1"), "pkg:golang/stdlib@") {
		t.Fatalf("sbom = %v, %v", bom, err)
	}
	var fs []store.Finding
	if err := json.Unmarshal([]byte(in.mustCLI("--json", "findings", "echo-json")), &fs); err != nil || len(fs) == 0 {
		t.Fatalf("findings = %+v, %v; want the lint findings of the deploy", fs, err)
	}
	for _, f := range fs {
		if f.FirstSeen.IsZero() || f.Version != 1 {
			t.Fatalf("finding %+v: want version 1 and a first-seen time", f)
		}
	}

	var imp admin.VulnDBImport
	if err := json.Unmarshal([]byte(in.mustCLI("--json", "vulndb", "import", "../vulndb/testdata/vulndb")), &imp); err != nil ||
		imp.Added == 0 || imp.Rescanned != 1 || len(imp.Refused) != 0 {
		t.Fatalf("vulndb import = %+v, %v", imp, err)
	}
	if out := in.mustCLI("vulndb", "status"); !strings.Contains(out, "advisories") {
		t.Fatalf("vulndb status = %q", out)
	}
	if ev := in.eventsOf(admin.TypeVulnDBImport); len(ev) != 1 || ev[0].Labels["rescanned"] != "1" {
		t.Fatalf("import events = %+v", ev)
	}
	if ev := in.eventsOf(deploy.TypeDeployScan); len(ev) == 0 || ev[0].Actor == "" {
		t.Fatalf("scan events = %+v, want one naming the actor", ev)
	}

	// A namespace policy that refuses new code.
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.rego")
	os.WriteFile(pol, []byte("package warden.deploy\n\ndeny contains \"frozen: no new code this week\" if input.diff.newCode\n"), 0o644)
	in.mustCLI("policy", "set", "default", pol)
	if out := in.mustCLI("policy", "get", "default"); !strings.Contains(out, "frozen") {
		t.Fatalf("policy get = %q", out)
	}
	appendByte(t, filepath.Join(filepath.Dir(m), "echo-json.wasm"))
	if _, errOut, code := in.cli("deploy", "-f", m); code != 1 || !strings.Contains(errOut, "step policy") || !strings.Contains(errOut, "frozen") {
		t.Fatalf("deploy under a refusing policy: exit %d, %q", code, errOut)
	}
	bad := filepath.Join(dir, "bad.rego")
	os.WriteFile(bad, []byte("package warden.deploy\n\ndeny contains msg if {\n"), 0o644)
	if _, errOut, code := in.cli("policy", "set", "default", bad); code != 1 || !strings.Contains(errOut, "compile") {
		t.Fatalf("policy set of a broken policy: exit %d, %q", code, errOut)
	}
	in.mustCLI("policy", "rm", "default")
	if out := in.mustCLI("deploy", "-f", m); !strings.Contains(out, "version 2") {
		t.Fatalf("deploy under the default policy: %q", out)
	}

	// policy test, offline, with the built-in policy.
	input := filepath.Join(dir, "in.json")
	os.WriteFile(input, []byte(`{"namespace":"default","function":"f","version":2,"manifest":{},"findings":[
		{"kind":"credential","rule":"aws-access-token","severity":"critical","message":"an AWS access key","location":"data segment 1 +0x10"}],
		"signer":{"status":"unsigned","mode":"off"},
		"diff":{"addedSecrets":[],"addedKV":[],"addedEgress":["https://api.example"],"widened":[],"relaxed":[],"newCode":true},
		"actor":{"name":"dev","roles":["deployer"]},"time":"2030-01-01T00:00:00Z"}`), 0o644)
	out = in.mustCLI("policy", "test", "default", "--input", input)
	if !strings.Contains(out, "deny") || !strings.Contains(out, "aws-access-token") || !strings.Contains(out, "needs approval") {
		t.Fatalf("policy test = %q", out)
	}
}

// TestQuarantineOnImport: a function deployed clean answers 503 problem+json
// once an advisory matching its toolchain is imported (the built-in
// policy's remediation), and every refusal is an event.
func TestQuarantineOnImport(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	in.mustCLI("deploy", "-f", fixture(t, "echo-json", nil))
	if resp := in.public("POST", "/echo", strings.NewReader(`{"a":1}`), nil); resp.StatusCode != 200 {
		t.Fatalf("before the import: %d", resp.StatusCode)
	}
	// A synthetic advisory (not a real one) against every Go toolchain
	// before 1.99: the examples are built with a real one.
	adv := filepath.Join(t.TempDir(), "WARDEN-TEST-0001.json")
	os.WriteFile(adv, []byte(`{"schema_version":"1.3.1","id":"WARDEN-TEST-0001","modified":"2026-12-01T00:00:00Z",
		"summary":"synthetic advisory for warden's tests","affected":[{"package":{"ecosystem":"Go","name":"stdlib"},
		"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.99.0"}]}]}]}`), 0o644)
	out := in.mustCLI("vulndb", "import", adv)
	if !strings.Contains(out, "1 quarantined") {
		t.Fatalf("import printed %q, want one version quarantined", out)
	}
	p := wantProblem(t, in.public("POST", "/echo", strings.NewReader(`{"a":1}`), nil), 503)
	if !strings.Contains(p.Detail, "quarantined") {
		t.Fatalf("problem = %+v", p)
	}
	if out := in.mustCLI("functions", "ls"); !strings.Contains(out, "QUARANTINED") {
		t.Fatalf("functions ls = %q", out)
	}
	ev := in.waitEvent(deploy.TypeFunctionRemediation, func(e events.Event) bool { return e.Function == "echo-json" })
	if !strings.Contains(ev.Reason, "WARDEN-TEST-0001") || ev.Labels["trigger"] != "vulnerability database import" {
		t.Fatalf("remediation event = %+v", ev)
	}
	in.waitEvent(events.TypeFunctionQuarantined, func(e events.Event) bool { return e.Function == "echo-json" })
}
