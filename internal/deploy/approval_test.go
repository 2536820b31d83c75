package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"warden/internal/store"
)

// TestTwoPersonRule: under the built-in policy, a version adding egress is
// stored pending and never served until a second person holding
// grants:approve approves it; the deployer cannot approve it, nor can a
// caller without the grant, nor a rollback activate it; a rejected or
// expired version never serves.
func TestTwoPersonRule(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := New(Config{Store: f.db, Engine: f.eng, Events: f.ev, Now: func() time.Time { return now }, ApprovalTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	f.svc = s
	if err := f.db.DeletePolicy(ctx, "default"); err != nil { // the built-in policy
		t.Fatal(err)
	}
	if _, err := f.deploy(baseManifest, "v1", true); err != nil {
		t.Fatal(err)
	}
	egress := baseManifest + "permissions:\n  egress: [\"https://api.example\"]\n"
	ada := Origin{Actor: "ada (u1)", MayGrant: true}
	res, err := f.svc.Deploy(ctx, Request{ManifestName: "warden.yaml", Manifest: []byte(egress), Artifact: module("v2"), Origin: ada})
	if err != nil || !res.Pending || res.Version.Version != 2 || res.Previous != 1 {
		t.Fatalf("deploy adding egress = %+v, %v; want version 2 pending", res, err)
	}
	if a, _ := f.svc.Get("default", "fn"); a.Version.Version != 1 {
		t.Fatalf("serving version %d while 2 is pending, want 1", a.Version.Version)
	}
	if fn, _ := f.db.Function(ctx, "default", "fn"); fn.ActiveVersion != 1 {
		t.Fatalf("store's active version = %d, want 1", fn.ActiveVersion)
	}
	pending, err := f.svc.Pending(ctx)
	if err != nil || len(pending) != 1 || !strings.Contains(pending[0].Approval.Reasons[0], "https://api.example") || pending[0].Approval.RequestedBy != ada.Actor {
		t.Fatalf("Pending = %+v, %v", pending, err)
	}

	for _, tc := range []struct {
		name string
		o    Origin
		want string
	}{
		{"the deployer", ada, "second person"},
		{"a deployer without grants:approve", Origin{Actor: "dan (u2)"}, "grants:approve"},
	} {
		_, err := f.svc.Approve(ctx, "default", "fn", 2, tc.o, "")
		var de *Error
		if !errors.As(err, &de) || de.Kind != KindForbidden || !strings.Contains(de.Msg, tc.want) {
			t.Fatalf("Approve by %s = %v, want forbidden naming %q", tc.name, err, tc.want)
		}
	}
	if _, err := f.svc.Rollback(ctx, "default", "fn", 2, ada); err == nil || !strings.Contains(err.Error(), "never approved") {
		t.Fatalf("rollback to a pending version = %v, want a refusal", err)
	}
	bob := Origin{Actor: "bob (u3)", MayGrant: true}
	res, err = f.svc.Approve(ctx, "default", "fn", 2, bob, "reviewed the origin")
	if err != nil || res.Version.Version != 2 || res.Previous != 1 {
		t.Fatalf("Approve by a second person = %+v, %v", res, err)
	}
	if a, _ := f.svc.Get("default", "fn"); a.Version.Version != 2 || a.Version.Approval.DecidedBy != "bob (u3)" {
		t.Fatalf("serving %+v after the approval, want version 2 approved by bob", a.Version)
	}
	if _, err := f.svc.Approve(ctx, "default", "fn", 2, bob, ""); err == nil {
		t.Fatal("a second approval of the same version succeeded")
	}
	var decisions []string
	for _, e := range find(f.ev, TypeDeployApproval) {
		decisions = append(decisions, e.Outcome+":"+e.Actor)
	}
	if strings.Join(decisions, " ") != "success:ada (u1) denied:ada (u1) denied:dan (u2) success:bob (u3) denied:bob (u3)" {
		t.Fatalf("approval events = %v", decisions)
	}

	// Rejected: never served, and not even by a rollback.
	more := egress + "  # v3\n"
	more = strings.Replace(more, `egress: ["https://api.example"]`, `egress: ["https://api.example", "https://other.example"]`, 1)
	if res, err = f.svc.Deploy(ctx, Request{ManifestName: "warden.yaml", Manifest: []byte(more), Artifact: module("v3"), Origin: ada}); err != nil || !res.Pending {
		t.Fatalf("deploy adding more egress = %+v, %v", res, err)
	}
	if _, err := f.svc.Reject(ctx, "default", "fn", 3, ada, ""); err == nil {
		t.Fatal("the deployer rejected their own version")
	}
	if _, err := f.svc.Reject(ctx, "default", "fn", 3, bob, "not this origin"); err != nil {
		t.Fatalf("Reject: %v", err)
	}
	if _, err := f.svc.Rollback(ctx, "default", "fn", 3, bob); err == nil {
		t.Fatal("rollback to a rejected version succeeded")
	}

	// Expired: past its time, a pending version can no longer be approved.
	if res, err = f.svc.Deploy(ctx, Request{ManifestName: "warden.yaml", Manifest: []byte(more), Artifact: module("v4"), Origin: ada}); err != nil || !res.Pending {
		t.Fatalf("deploy = %+v, %v", res, err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := f.svc.Approve(ctx, "default", "fn", 4, bob, ""); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Approve after expiry = %v, want a refusal saying expired", err)
	}
	v, _ := f.db.Version(ctx, "default", "fn", 4)
	if v.Approval.Status != store.ApprovalExpired {
		t.Fatalf("status after expiry = %s", v.Approval.Status)
	}
	if p, _ := f.svc.Pending(ctx); len(p) != 0 {
		t.Fatalf("pending after expiry = %+v", p)
	}
	if a, _ := f.svc.Get("default", "fn"); a.Version.Version != 2 {
		t.Fatalf("serving version %d, want 2", a.Version.Version)
	}
	// The rollback picks the newest servable version older than the active
	// one, skipping what was never approved.
	if res, err := f.svc.Rollback(ctx, "default", "fn", 0, bob); err != nil || res.Version.Version != 1 {
		t.Fatalf("rollback = %+v, %v; want version 1", res, err)
	}
}

// failingApprovals is a store whose approval records cannot be written.
type failingApprovals struct{ Store }

func (failingApprovals) UpdateApproval(context.Context, string, string, int, string, store.Approval) error {
	return errors.New("injected store failure")
}

// An expired version stays unapprovable when marking it expired fails
// (fail closed).
func TestExpiredApprovalFailsClosed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := New(Config{Store: failingApprovals{f.db}, Engine: f.eng, Events: f.ev, Now: func() time.Time { return now }, ApprovalTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := f.db.DeletePolicy(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	egress := baseManifest + "permissions:\n  egress: [\"https://api.example\"]\n"
	res, err := s.Deploy(ctx, Request{ManifestName: "warden.yaml", Manifest: []byte(egress), Artifact: module("v1"), Origin: Origin{Actor: "ada", MayGrant: true}})
	if err != nil || !res.Pending {
		t.Fatalf("deploy = %+v, %v; want pending", res, err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.Approve(ctx, "default", "fn", res.Version.Version, Origin{Actor: "bob", MayGrant: true}, ""); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Approve of an expired version whose expiry cannot be recorded = %v, want a refusal", err)
	}
	if _, ok := s.Get("default", "fn"); ok {
		t.Fatal("the expired version is served")
	}
}
