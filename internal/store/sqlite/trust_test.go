package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"warden/internal/store"
	"warden/internal/store/storetest"
)

func TestTrust(t *testing.T) {
	storetest.RunTrust(t, func(t *testing.T) store.Trust {
		db, err := Open(filepath.Join(t.TempDir(), "warden.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// A version keeps its signature record and envelope; one without keeps nil.
func TestVersionSignature(t *testing.T) {
	db := openTemp(t)
	c := context.Background()
	d := putModule(t, db)
	sig := &store.Signature{Status: store.SignatureVerified, KeyID: "k", KeyName: "ci", Mode: store.SigningEnforce,
		Provenance: json.RawMessage(`{"builderId":"ci"}`)}
	v1, err := db.CreateVersion(c, store.Version{Namespace: "ns", Name: "f", ArtifactDigest: d, Manifest: []byte("m1"),
		Signature: sig, Envelope: []byte(`{"payloadType":"x"}`), Scan: json.RawMessage(`{"findings":[]}`), SBOM: []byte(`{"bomFormat":"CycloneDX"}`)}, true)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := db.CreateVersion(c, store.Version{Namespace: "ns", Name: "f", ArtifactDigest: d, Manifest: []byte("m2")}, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Version(c, "ns", "f", v1.Version)
	if err != nil || got.Signature == nil || got.Signature.KeyName != "ci" || got.Signature.Status != store.SignatureVerified ||
		string(got.Signature.Provenance) != `{"builderId":"ci"}` || string(got.Envelope) != `{"payloadType":"x"}` ||
		string(got.Scan) != `{"findings":[]}` || string(got.SBOM) != `{"bomFormat":"CycloneDX"}` {
		t.Fatalf("Version(signed) = %+v, %v", got, err)
	}
	got, err = db.Version(c, "ns", "f", v2.Version)
	if err != nil || got.Signature != nil || got.Envelope != nil || got.Scan != nil || got.SBOM != nil {
		t.Fatalf("Version(unsigned) = %+v, %v; want no signature, no envelope", got, err)
	}
}

func TestScanStores(t *testing.T) {
	storetest.RunScan(t, func(t *testing.T) interface {
		store.Advisories
		store.Findings
		store.Policies
	} {
		return openTemp(t)
	})
}

// A pending version is listed until its approval is decided, and a
// decision is made once (compare and set).
func TestApprovals(t *testing.T) {
	db := openTemp(t)
	c := context.Background()
	d := putModule(t, db)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pending := &store.Approval{Status: store.ApprovalPending, Reasons: []string{"adds egress to https://x"}, RequestedBy: "ada", RequestedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	v, err := db.CreateVersion(c, store.Version{Namespace: "ns", Name: "f", ArtifactDigest: d, Manifest: []byte("m"), Approval: pending}, false)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := db.PendingVersions(c)
	if err != nil || len(ps) != 1 || ps[0].Version != v.Version || ps[0].Approval == nil || ps[0].Approval.Reasons[0] != "adds egress to https://x" {
		t.Fatalf("PendingVersions = %+v, %v", ps, err)
	}
	at := t0.Add(time.Minute)
	done := *pending
	done.Status, done.DecidedBy, done.DecidedAt = store.ApprovalApproved, "bob", &at
	if err := db.UpdateApproval(c, "ns", "f", v.Version, store.ApprovalPending, done); err != nil {
		t.Fatal(err)
	}
	done.Status = store.ApprovalRejected
	if err := db.UpdateApproval(c, "ns", "f", v.Version, store.ApprovalPending, done); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second decision = %v, want ErrConflict", err)
	}
	if err := db.UpdateApproval(c, "ns", "f", 99, store.ApprovalPending, done); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateApproval(missing) = %v, want ErrNotFound", err)
	}
	if ps, _ := db.PendingVersions(c); len(ps) != 0 {
		t.Fatalf("pending after the decision = %+v", ps)
	}
	got, _ := db.Version(c, "ns", "f", v.Version)
	if got.Approval == nil || got.Approval.Status != store.ApprovalApproved || got.Approval.DecidedBy != "bob" {
		t.Fatalf("stored approval = %+v", got.Approval)
	}
}

// putModule stores the smallest module as an artifact and returns its digest.
func putModule(t *testing.T, db *DB) string {
	t.Helper()
	art := []byte("\x00asm\x01\x00\x00\x00")
	sum := sha256.Sum256(art)
	d := hex.EncodeToString(sum[:])
	if err := db.PutArtifact(context.Background(), d, art); err != nil {
		t.Fatal(err)
	}
	return d
}
