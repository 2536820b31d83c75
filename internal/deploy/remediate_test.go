package deploy

import (
	"context"
	"os"
	"strings"
	"testing"

	"warden/internal/events"
	"warden/internal/store"
	"warden/internal/vulndb"
)

// TestQuarantineAfterImport: a version deployed clean is quarantined when
// an advisory matching it arrives, stays quarantined across a restart, and
// is released when it passes again.
func TestQuarantineAfterImport(t *testing.T) {
	f, vulns := pipelineFixture(t)
	ctx := context.Background()
	if _, err := f.deployModule(baseManifest, moduleWithData("v1", buildInfo("golang.org/x/text@v0.3.7")), false); err != nil {
		t.Fatalf("deploy before the advisory is known: %v", err)
	}
	if re, err := f.svc.Reevaluate(ctx, "", "test"); err != nil || re.Evaluated != 1 || re.Denied != 0 {
		t.Fatalf("Reevaluate before the import = %+v, %v", re, err)
	}
	vulns.Set(vulndb.NewIndex([]*vulndb.Entry{advisory(t, "GO-2022-1059")}))
	re, err := f.svc.Reevaluate(ctx, "", "vulnerability database import")
	if err != nil || re.Denied != 1 || re.Quarantined != 1 {
		t.Fatalf("Reevaluate after the import = %+v, %v; want one quarantined", re, err)
	}
	a, _ := f.svc.Get("default", "fn")
	if !strings.Contains(a.Version.Quarantine, "GO-2022-1059") {
		t.Fatalf("active version's quarantine = %q, want the advisory named", a.Version.Quarantine)
	}
	if a.Fn == nil {
		t.Fatal("the quarantined version lost its module")
	}
	if ev := find(f.ev, TypeFunctionRemediation); len(ev) != 1 || ev[0].Outcome != events.OutcomeDenied || ev[0].Labels["remediation"] != "quarantine" {
		t.Fatalf("remediation events = %+v", ev)
	}
	// Evaluated again with nothing new: no second event.
	if _, err := f.svc.Reevaluate(ctx, "", "again"); err != nil {
		t.Fatal(err)
	}
	if ev := find(f.ev, TypeFunctionRemediation); len(ev) != 1 {
		t.Fatalf("a second re-evaluation emitted again: %+v", ev)
	}
	// A restart keeps the quarantine.
	s2 := f.service(t)
	if err := s2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := s2.Get("default", "fn"); a.Version.Quarantine == "" {
		t.Fatal("a restart released the quarantine")
	}
	// The advisory gone: released.
	vulns.Set(vulndb.NewIndex(nil))
	if re, err := f.svc.Reevaluate(ctx, "", "test"); err != nil || re.Released != 1 {
		t.Fatalf("Reevaluate after the advisory left = %+v, %v", re, err)
	}
	if a, _ := f.svc.Get("default", "fn"); a.Version.Quarantine != "" {
		t.Fatalf("still quarantined: %q", a.Version.Quarantine)
	}
}

// TestRollbackRemediation: a policy asking for rollback activates the
// newest earlier version that passes.
func TestRollbackRemediation(t *testing.T) {
	f, vulns := pipelineFixture(t)
	ctx := context.Background()
	dev, err := os.ReadFile("../../scripts/dev-policy.rego")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(dev), `remediation := "quarantine"`, `remediation := "rollback"`, 1)
	if err := f.db.SetPolicy(ctx, store.Policy{Namespace: "default", Source: []byte(src), Digest: "rollback", SetBy: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deployModule(baseManifest, moduleWithData("v1", buildInfo("golang.org/x/text@v0.3.8")), false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deployModule(baseManifest, moduleWithData("v2", buildInfo("golang.org/x/text@v0.3.7")), false); err != nil {
		t.Fatal(err)
	}
	vulns.Set(vulndb.NewIndex([]*vulndb.Entry{advisory(t, "GO-2022-1059")}))
	re, err := f.svc.Reevaluate(ctx, "", "vulnerability database import")
	if err != nil || re.RolledBack != 1 {
		t.Fatalf("Reevaluate = %+v, %v; want one rollback", re, err)
	}
	if a, _ := f.svc.Get("default", "fn"); a.Version.Version != 1 || a.Version.Quarantine != "" {
		t.Fatalf("active after the rollback = v%d (quarantine %q), want v1", a.Version.Version, a.Version.Quarantine)
	}
	ev := find(f.ev, TypeFunctionRemediation)
	if len(ev) != 1 || ev[0].Labels["rolled_back.to"] != "1" || ev[0].Version != 2 {
		t.Fatalf("remediation events = %+v", ev)
	}
}
