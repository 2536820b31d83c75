package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"warden/internal/events"
)

// TestCanary: a canary serves a stable share of clients beside the active
// version; security signals roll it back at once, and its time up with
// clean figures promotes it. While it runs, deploys and rollbacks wait.
func TestCanary(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := New(Config{Store: f.db, Engine: f.eng, Events: f.ev, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	f.svc = s
	canary := func(tag string, pct int) (Result, error) {
		return f.svc.Deploy(ctx, Request{ManifestName: "warden.yaml", Manifest: []byte(baseManifest), Artifact: module(tag),
			Canary: &CanarySpec{Percent: pct, For: time.Hour}, Origin: Origin{Actor: "dev", MayGrant: true}})
	}
	var de *Error
	if _, err := canary("v0", 10); !errors.As(err, &de) || !strings.Contains(de.Msg, "needs an active version") {
		t.Fatalf("a canary of a new function = %v, want a refusal", err)
	}
	if _, err := f.deploy(baseManifest, "v1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := canary("v2", 0); !errors.As(err, &de) || de.Kind != KindInvalid {
		t.Fatalf("a 0%% canary = %v, want invalid", err)
	}
	res, err := canary("v2", 30)
	if err != nil || res.Canary == nil || res.Version.Version != 2 || res.Previous != 1 {
		t.Fatalf("canary deploy = %+v, %v", res, err)
	}
	if fn, _ := f.db.Function(ctx, "default", "fn"); fn.ActiveVersion != 1 {
		t.Fatalf("store's active version during the canary = %d, want 1", fn.ActiveVersion)
	}
	a, _ := f.svc.Get("default", "fn")
	c := a.Canary
	if c == nil || c.Stable != a || c.Next.Version.Version != 2 {
		t.Fatalf("active = %+v, want version 1 carrying the canary of version 2", a)
	}
	// The split: stable per client, about the share asked for.
	next := 0
	for i := range 1000 {
		key := fmt.Sprintf("ip:10.0.%d.%d", i/250, i%250)
		first := c.Pick(key)
		if c.Pick(key) != first {
			t.Fatal("one client saw two versions")
		}
		if first == c.Next {
			next++
		}
	}
	if next < 230 || next > 370 {
		t.Fatalf("%d of 1000 clients on the canary, want about 300", next)
	}
	if _, err := f.deploy(baseManifest, "v3", true); !errors.As(err, &de) || de.Kind != KindConflict {
		t.Fatalf("a deploy during a canary = %v, want a conflict", err)
	}
	if _, err := f.svc.Rollback(ctx, "default", "fn", 0, Origin{Actor: "dev", MayGrant: true}); err == nil {
		t.Fatal("a rollback during a canary succeeded")
	}
	// Healthy traffic on both sides: nothing happens.
	for range 50 {
		c.Record(1, 200, time.Millisecond)
		c.Record(2, 200, time.Millisecond)
	}
	f.svc.CheckCanaries(ctx)
	if a, _ := f.svc.Get("default", "fn"); a.Canary == nil {
		t.Fatal("a healthy canary ended early")
	}
	// Capability denials on the canary only: rolled back.
	c.Signal(2)
	f.svc.CheckCanaries(ctx)
	a, _ = f.svc.Get("default", "fn")
	if a.Canary != nil || a.Version.Version != 1 {
		t.Fatalf("after a signal: active %d with canary %v, want version 1 alone", a.Version.Version, a.Canary)
	}
	ev := find(f.ev, TypeDeployCanary)
	last := ev[len(ev)-1]
	if last.Outcome != events.OutcomeDenied || !strings.Contains(last.Reason, "security signals: 1 in 50") || last.Labels["canary.signals"] != "1" || last.Actor != "warden" {
		t.Fatalf("rollback event = %+v", last)
	}

	// A canary whose error rate is worse than the margin: rolled back.
	res, err = canary("v4", 50)
	if err != nil {
		t.Fatal(err)
	}
	a, _ = f.svc.Get("default", "fn")
	for i := range 40 {
		a.Canary.Record(1, 200, time.Millisecond)
		status := 200
		if i%4 == 0 {
			status = 502
		}
		a.Canary.Record(res.Version.Version, status, time.Millisecond)
	}
	f.svc.CheckCanaries(ctx)
	if a, _ := f.svc.Get("default", "fn"); a.Canary != nil {
		t.Fatal("a canary answering 25% 5xx kept running")
	}
	// A clean canary past its time: promoted, in the store too.
	res, err = canary("v5", 50)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	f.svc.CheckCanaries(ctx)
	a, _ = f.svc.Get("default", "fn")
	if a.Canary != nil || a.Version.Version != res.Version.Version {
		t.Fatalf("after its time: active %d (canary %v), want version %d promoted", a.Version.Version, a.Canary, res.Version.Version)
	}
	if fn, _ := f.db.Function(ctx, "default", "fn"); fn.ActiveVersion != res.Version.Version {
		t.Fatalf("store's active version after promotion = %d", fn.ActiveVersion)
	}
}
