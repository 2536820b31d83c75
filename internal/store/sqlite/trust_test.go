package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"testing"

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
	art := []byte("\x00asm\x01\x00\x00\x00")
	sum := sha256.Sum256(art)
	d := hex.EncodeToString(sum[:])
	if err := db.PutArtifact(c, d, art); err != nil {
		t.Fatal(err)
	}
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
