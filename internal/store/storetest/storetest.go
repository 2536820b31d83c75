// Package storetest is the behavioural test suite every store.Store
// implementation runs (sqlite now, PostgreSQL later), so that backends agree
// on the contract documented in package store.
//
// storetest only calls store.Store methods; it never reaches into a backend's
// tables, and it is imported by tests only.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/events"
	"warden/internal/store"
)

// Run runs the suite. open must return a new, empty store for each call; Run
// closes it (and checks Close's error) when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ArtifactNotFound", testArtifactNotFound},
		{"ArtifactRoundTrip", testArtifactRoundTrip},
		{"ArtifactRejectsBadDigest", testArtifactRejectsBadDigest},
		{"LargeArtifact", testLargeArtifact},
		{"FunctionNotFound", testFunctionNotFound},
		{"VersionNumbering", testVersionNumbering},
		{"CreateVersionNeedsArtifact", testCreateVersionNeedsArtifact},
		{"CreateVersionRejectsBadInput", testCreateVersionRejectsBadInput},
		{"Activation", testActivation},
		{"Rollback", testRollback},
		{"ListFunctions", testListFunctions},
		{"DeleteFunctionCollectsArtifacts", testDeleteFunction},
		{"ConcurrentCreateVersion", testConcurrentCreateVersion},
		{"Credentials", testCredentials},
		{"CredentialErrors", testCredentialErrors},
		{"APIKeys", testAPIKeys},
		{"VersionFiles", testVersionFiles},
		{"Users", testUsers},
		{"UserErrors", testUserErrors},
		{"UpdateUserConcurrent", testUpdateUserConcurrent},
		{"EventsAppendQuery", testEventsAppendQuery},
		{"EventsTypeFilter", testEventsTypeFilter},
		{"EventsSince", testEventsSince},
		{"EventsAfterIDAndLimit", testEventsAfterIDAndLimit},
		{"EventsDefaultAndMaxLimit", testEventsDefaultAndMaxLimit},
		{"EventsCombinedFilters", testEventsCombinedFilters},
		{"EventsZeroTime", testEventsZeroTime},
		{"EventsSize", testEventsSize},
		{"PruneByAge", testPruneByAge},
		{"PruneBySize", testPruneBySize},
		{"PruneBySizeCountsRecord", testPruneBySizeCountsRecord},
		{"PruneBySizeKeepsRecords", testPruneBySizeKeepsRecords},
		{"PruneBySizeSparesRecentAudit", testPruneBySizeSparesRecentAudit},
		{"PruneBySizeBatchOfOne", testPruneBySizeBatchOfOne},
		{"PruneBatches", testPruneBatches},
		{"PruneNeverReusesIDs", testPruneNeverReusesIDs},
		{"PrunePolicyErrors", testPrunePolicyErrors},
		{"PruneRecord", testPruneRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close() = %v, want nil", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// putArtifact stores data and returns its digest.
func putArtifact(t *testing.T, s store.Store, data []byte) string {
	t.Helper()
	d := digest(data)
	if err := s.PutArtifact(ctx(t), d, data); err != nil {
		t.Fatalf("PutArtifact(%.12s) = %v", d, err)
	}
	return d
}

// deploy stores an artifact made from content and creates a version with it.
func deploy(t *testing.T, s store.Store, ns, name, content string, activate bool) store.Version {
	t.Helper()
	d := putArtifact(t, s, []byte(content))
	v, err := s.CreateVersion(ctx(t), store.Version{
		Namespace: ns, Name: name, ArtifactDigest: d,
		Manifest: []byte("name: " + name + "\n"), CreatedBy: "tester",
	}, activate)
	if err != nil {
		t.Fatalf("CreateVersion(%s/%s) = %v", ns, name, err)
	}
	return v
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want %v", what, err, want)
	}
}

func activeVersion(t *testing.T, s store.Store, ns, name string) int {
	t.Helper()
	f, err := s.Function(ctx(t), ns, name)
	if err != nil {
		t.Fatalf("Function(%q, %q) = %v", ns, name, err)
	}
	return f.ActiveVersion
}

func testArtifactNotFound(t *testing.T, s store.Store) {
	_, err := s.Artifact(ctx(t), digest([]byte("never stored")))
	wantErr(t, "Artifact(unknown)", err, store.ErrNotFound)
}

func testArtifactRoundTrip(t *testing.T, s store.Store) {
	for _, data := range [][]byte{[]byte("\x00asm\x01\x00\x00\x00"), {}} {
		d := putArtifact(t, s, data)
		if err := s.PutArtifact(ctx(t), d, data); err != nil {
			t.Errorf("second PutArtifact(%.12s) = %v, want nil (idempotent)", d, err)
		}
		got, err := s.Artifact(ctx(t), d)
		if err != nil {
			t.Fatalf("Artifact(%.12s) = %v", d, err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("Artifact(%.12s) = %q, want %q", d, got, data)
		}
	}
}

func testArtifactRejectsBadDigest(t *testing.T, s store.Store) {
	data := []byte("module bytes")
	good := digest(data)
	other := digest([]byte("something else"))
	upper := []byte(good)
	for i, c := range upper {
		if 'a' <= c && c <= 'f' {
			upper[i] = c - 'a' + 'A'
		}
	}
	for _, tc := range []struct{ name, digest string }{
		{"mismatch", other},
		{"uppercase", string(upper)},
		{"short", good[:10]},
		{"empty", ""},
		{"not hex", "zz" + good[2:]},
	} {
		err := s.PutArtifact(ctx(t), tc.digest, data)
		wantErr(t, fmt.Sprintf("PutArtifact(%s)", tc.name), err, store.ErrInvalid)
	}
	_, err := s.Artifact(ctx(t), other)
	wantErr(t, "Artifact after a rejected PutArtifact", err, store.ErrNotFound)
}

func testLargeArtifact(t *testing.T, s store.Store) {
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	d := putArtifact(t, s, data)
	got, err := s.Artifact(ctx(t), d)
	if err != nil {
		t.Fatalf("Artifact(4 MiB) = %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("Artifact(4 MiB) returned %d bytes that differ from the %d stored", len(got), len(data))
	}
	v, err := s.CreateVersion(ctx(t), store.Version{Namespace: "default", Name: "big", ArtifactDigest: d}, true)
	if err != nil {
		t.Fatalf("CreateVersion(big) = %v", err)
	}
	if v.ArtifactSize != int64(len(data)) {
		t.Errorf("ArtifactSize = %d, want %d", v.ArtifactSize, len(data))
	}
}

func testFunctionNotFound(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.Function(c, "default", "nope")
	wantErr(t, "Function(nope)", err, store.ErrNotFound)
	_, err = s.Version(c, "default", "nope", 1)
	wantErr(t, "Version(nope, 1)", err, store.ErrNotFound)
	_, err = s.Versions(c, "default", "nope")
	wantErr(t, "Versions(nope)", err, store.ErrNotFound)
	wantErr(t, "Activate(nope, 1)", s.Activate(c, "default", "nope", 1), store.ErrNotFound)
	wantErr(t, "DeleteFunction(nope)", s.DeleteFunction(c, "default", "nope"), store.ErrNotFound)

	deploy(t, s, "default", "f", "a", true)
	_, err = s.Version(c, "default", "f", 2)
	wantErr(t, "Version(f, 2)", err, store.ErrNotFound)
	_, err = s.Function(c, "other", "f")
	wantErr(t, "Function(other/f)", err, store.ErrNotFound)
	fs, err := s.ListFunctions(c)
	if err != nil || len(fs) != 1 {
		t.Errorf("ListFunctions() = %v, %v, want one function", fs, err)
	}
}

func testVersionNumbering(t *testing.T, s store.Store) {
	c := ctx(t)
	created := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	data := []byte("artifact one")
	d := putArtifact(t, s, data)
	manifest := []byte("name: orders\nabi: reactor\n")
	v1, err := s.CreateVersion(c, store.Version{
		Namespace: "default", Name: "orders", ArtifactDigest: d, ArtifactSize: 999,
		Manifest: manifest, CreatedAt: created, CreatedBy: "alice",
		Version: 42, // ignored: the store assigns numbers
	}, true)
	if err != nil {
		t.Fatalf("CreateVersion = %v", err)
	}
	if v1.Version != 1 {
		t.Errorf("first version = %d, want 1", v1.Version)
	}
	if want := store.VersionDigest(d, manifest); v1.Digest != want {
		t.Errorf("Digest = %q, want VersionDigest = %q", v1.Digest, want)
	}
	if v1.ArtifactSize != int64(len(data)) {
		t.Errorf("ArtifactSize = %d, want the stored size %d", v1.ArtifactSize, len(data))
	}
	if !v1.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt = %v, want %v", v1.CreatedAt, created)
	}

	before := time.Now().Add(-time.Minute)
	v2, err := s.CreateVersion(c, store.Version{Namespace: "default", Name: "orders", ArtifactDigest: d,
		Digest: "explicit-digest", Manifest: []byte("x")}, false)
	if err != nil {
		t.Fatalf("CreateVersion = %v", err)
	}
	if v2.Version != 2 || v2.Digest != "explicit-digest" {
		t.Errorf("second version = %d digest %q, want 2 and the given digest", v2.Version, v2.Digest)
	}
	if v2.CreatedAt.Before(before) || v2.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("zero CreatedAt became %v, want about now", v2.CreatedAt)
	}
	v3 := deploy(t, s, "default", "orders", "artifact three", false)
	if v3.Version != 3 {
		t.Errorf("third version = %d, want 3", v3.Version)
	}
	// Numbering is per function.
	if o := deploy(t, s, "default", "other", "x", true); o.Version != 1 {
		t.Errorf("first version of another function = %d, want 1", o.Version)
	}
	if o := deploy(t, s, "team", "orders", "x", true); o.Version != 1 {
		t.Errorf("first version in another namespace = %d, want 1", o.Version)
	}

	got, err := s.Version(c, "default", "orders", 1)
	if err != nil {
		t.Fatalf("Version(1) = %v", err)
	}
	if got.Namespace != "default" || got.Name != "orders" || got.Version != 1 || got.Digest != v1.Digest ||
		got.ArtifactDigest != d || got.ArtifactSize != int64(len(data)) || !bytes.Equal(got.Manifest, manifest) ||
		!got.CreatedAt.Equal(created) || got.CreatedBy != "alice" {
		t.Errorf("Version(1) = %+v, want %+v", got, v1)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}

	vs, err := s.Versions(c, "default", "orders")
	if err != nil {
		t.Fatalf("Versions = %v", err)
	}
	var nums []int
	for _, v := range vs {
		nums = append(nums, v.Version)
	}
	if !slices.Equal(nums, []int{3, 2, 1}) {
		t.Errorf("Versions() numbers = %v, want [3 2 1] (newest first)", nums)
	}
	if !bytes.Equal(vs[2].Manifest, manifest) {
		t.Errorf("Versions()[2].Manifest = %q, want %q", vs[2].Manifest, manifest)
	}
}

func testCreateVersionNeedsArtifact(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.CreateVersion(c, store.Version{Namespace: "default", Name: "f",
		ArtifactDigest: digest([]byte("not uploaded"))}, true)
	wantErr(t, "CreateVersion(missing artifact)", err, store.ErrNotFound)
	_, err = s.Function(c, "default", "f")
	wantErr(t, "Function after a failed first CreateVersion", err, store.ErrNotFound)

	deploy(t, s, "default", "g", "a", true)
	_, err = s.CreateVersion(c, store.Version{Namespace: "default", Name: "g",
		ArtifactDigest: digest([]byte("not uploaded"))}, true)
	wantErr(t, "CreateVersion(missing artifact)", err, store.ErrNotFound)
	if got := activeVersion(t, s, "default", "g"); got != 1 {
		t.Errorf("active version after a failed CreateVersion = %d, want 1", got)
	}
	if v := deploy(t, s, "default", "g", "b", true); v.Version != 2 {
		t.Errorf("version after a failed CreateVersion = %d, want 2 (no gap)", v.Version)
	}
}

func testCreateVersionRejectsBadInput(t *testing.T, s store.Store) {
	c := ctx(t)
	d := putArtifact(t, s, []byte("a"))
	for _, v := range []store.Version{
		{Namespace: "", Name: "f", ArtifactDigest: d},
		{Namespace: "default", Name: "", ArtifactDigest: d},
		{Namespace: "default", Name: "f", ArtifactDigest: "not-a-digest"},
	} {
		_, err := s.CreateVersion(c, v, true)
		wantErr(t, fmt.Sprintf("CreateVersion(%q, %q, %q)", v.Namespace, v.Name, v.ArtifactDigest), err, store.ErrInvalid)
	}
}

func testActivation(t *testing.T, s store.Store) {
	c := ctx(t)
	deploy(t, s, "default", "f", "one", false)
	if got := activeVersion(t, s, "default", "f"); got != 0 {
		t.Errorf("active version after CreateVersion(activate=false) = %d, want 0", got)
	}
	if err := s.Activate(c, "default", "f", 1); err != nil {
		t.Fatalf("Activate(1) = %v", err)
	}
	if got := activeVersion(t, s, "default", "f"); got != 1 {
		t.Errorf("active version = %d, want 1", got)
	}
	deploy(t, s, "default", "f", "two", true)
	if got := activeVersion(t, s, "default", "f"); got != 2 {
		t.Errorf("active version after CreateVersion(activate=true) = %d, want 2", got)
	}
	wantErr(t, "Activate(9)", s.Activate(c, "default", "f", 9), store.ErrNotFound)
	wantErr(t, "Activate(0)", s.Activate(c, "default", "f", 0), store.ErrNotFound)
	if got := activeVersion(t, s, "default", "f"); got != 2 {
		t.Errorf("active version after a failed Activate = %d, want 2", got)
	}
	f, err := s.Function(c, "default", "f")
	if err != nil {
		t.Fatal(err)
	}
	if f.Namespace != "default" || f.Name != "f" || f.CreatedAt.IsZero() || f.UpdatedAt.Before(f.CreatedAt) {
		t.Errorf("Function = %+v, want default/f with CreatedAt <= UpdatedAt", f)
	}
}

func testRollback(t *testing.T, s store.Store) {
	c := ctx(t)
	for i := 1; i <= 3; i++ {
		deploy(t, s, "default", "f", fmt.Sprint("build ", i), true)
	}
	if err := s.Activate(c, "default", "f", 1); err != nil {
		t.Fatalf("Activate(1) = %v", err)
	}
	if got := activeVersion(t, s, "default", "f"); got != 1 {
		t.Errorf("active version after rollback = %d, want 1", got)
	}
	vs, err := s.Versions(c, "default", "f")
	if err != nil || len(vs) != 3 {
		t.Fatalf("Versions after rollback = %d versions, %v; want 3, nil", len(vs), err)
	}
	// The rolled-back-to version's artifact is still there.
	v1, err := s.Version(c, "default", "f", 1)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := s.Artifact(c, v1.ArtifactDigest); err != nil || string(data) != "build 1" {
		t.Errorf("Artifact(v1) = %q, %v; want %q", data, err, "build 1")
	}
	// A new inactive version does not undo the rollback; a new active one does.
	if v := deploy(t, s, "default", "f", "build 4", false); v.Version != 4 {
		t.Errorf("version after rollback = %d, want 4", v.Version)
	}
	if got := activeVersion(t, s, "default", "f"); got != 1 {
		t.Errorf("active version = %d, want 1", got)
	}
	if err := s.Activate(c, "default", "f", 3); err != nil {
		t.Fatal(err)
	}
	if got := activeVersion(t, s, "default", "f"); got != 3 {
		t.Errorf("active version after rolling forward = %d, want 3", got)
	}
}

func testListFunctions(t *testing.T, s store.Store) {
	c := ctx(t)
	fs, err := s.ListFunctions(c)
	if err != nil || len(fs) != 0 {
		t.Fatalf("ListFunctions() on an empty store = %v, %v; want none", fs, err)
	}
	deploy(t, s, "b", "x", "1", true)
	deploy(t, s, "a", "y", "2", false)
	deploy(t, s, "a", "b", "3", true)
	deploy(t, s, "a", "b", "4", true)
	fs, err = s.ListFunctions(c)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, fmt.Sprintf("%s/%s@%d", f.Namespace, f.Name, f.ActiveVersion))
	}
	if want := []string{"a/b@2", "a/y@0", "b/x@1"}; !slices.Equal(got, want) {
		t.Errorf("ListFunctions() = %v, want %v", got, want)
	}
}

func testDeleteFunction(t *testing.T, s store.Store) {
	c := ctx(t)
	onlyF := putArtifact(t, s, []byte("only f"))
	shared := putArtifact(t, s, []byte("shared"))
	loose := putArtifact(t, s, []byte("uploaded, never referenced"))
	for _, d := range []string{onlyF, shared, onlyF} {
		if _, err := s.CreateVersion(c, store.Version{Namespace: "default", Name: "f", ArtifactDigest: d}, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateVersion(c, store.Version{Namespace: "default", Name: "g", ArtifactDigest: shared}, true); err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteFunction(c, "default", "f"); err != nil {
		t.Fatalf("DeleteFunction(f) = %v", err)
	}
	_, err := s.Function(c, "default", "f")
	wantErr(t, "Function(f) after delete", err, store.ErrNotFound)
	_, err = s.Versions(c, "default", "f")
	wantErr(t, "Versions(f) after delete", err, store.ErrNotFound)
	_, err = s.Version(c, "default", "f", 1)
	wantErr(t, "Version(f, 1) after delete", err, store.ErrNotFound)
	_, err = s.Artifact(c, onlyF)
	wantErr(t, "Artifact(only used by f) after delete", err, store.ErrNotFound)
	if _, err := s.Artifact(c, shared); err != nil {
		t.Errorf("Artifact(shared with g) after deleting f = %v, want it kept", err)
	}
	if _, err := s.Artifact(c, loose); err != nil {
		t.Errorf("Artifact(never referenced) after deleting f = %v, want it kept", err)
	}
	if got := activeVersion(t, s, "default", "g"); got != 1 {
		t.Errorf("g's active version after deleting f = %d, want 1", got)
	}
	wantErr(t, "second DeleteFunction(f)", s.DeleteFunction(c, "default", "f"), store.ErrNotFound)

	if v := deploy(t, s, "default", "f", "only f", true); v.Version != 1 {
		t.Errorf("first version after re-creating f = %d, want 1", v.Version)
	}
	if err := s.DeleteFunction(c, "default", "g"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Artifact(c, shared)
	wantErr(t, "Artifact(shared) after deleting both users", err, store.ErrNotFound)
}

func testConcurrentCreateVersion(t *testing.T, s store.Store) {
	c := ctx(t)
	d := putArtifact(t, s, []byte("racing"))
	const workers, each = 8, 10
	var (
		mu   sync.Mutex
		nums []int
		errs []error
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				v, err := s.CreateVersion(c, store.Version{Namespace: "default", Name: "hot", ArtifactDigest: d,
					CreatedBy: fmt.Sprint(w, "/", i)}, i%2 == 0)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					nums = append(nums, v.Version)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("concurrent CreateVersion = %v, want nil or ErrConflict", err)
		}
	}
	if len(errs) > 0 {
		t.Logf("%d of %d concurrent CreateVersion calls returned ErrConflict", len(errs), workers*each)
	}
	sort.Ints(nums)
	for i, n := range nums {
		if n != i+1 {
			t.Fatalf("versions returned = %v, want distinct and contiguous from 1", nums)
		}
	}
	vs, err := s.Versions(c, "default", "hot")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(nums) {
		t.Errorf("Versions() has %d versions, want %d (one per successful call)", len(vs), len(nums))
	}
	if act := activeVersion(t, s, "default", "hot"); act < 1 || act > len(nums) {
		t.Errorf("active version = %d, want one of the created versions", act)
	}
}

func credEqual(a, b store.Credential) bool {
	if a.ID != b.ID || !bytes.Equal(a.Hash, b.Hash) || a.Name != b.Name || a.Role != b.Role || !a.CreatedAt.Equal(b.CreatedAt) {
		return false
	}
	if (a.RevokedAt == nil) != (b.RevokedAt == nil) {
		return false
	}
	return a.RevokedAt == nil || a.RevokedAt.Equal(*b.RevokedAt)
}

func testVersionFiles(t *testing.T, s store.Store) {
	c := ctx(t)
	art := putArtifact(t, s, []byte("\x00asm module"))
	schema := putArtifact(t, s, []byte(`{"type":"object"}`))
	v, err := s.CreateVersion(c, store.Version{Namespace: "default", Name: "f", ArtifactDigest: art, Manifest: []byte("m"),
		Files: map[string]string{"./order.schema.json": schema}}, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Version(c, "default", "f", v.Version)
	if err != nil || got.Files["./order.schema.json"] != schema || len(got.Files) != 1 {
		t.Fatalf("Version().Files = %v, %v; want the schema's digest", got.Files, err)
	}
	if b, err := s.Artifact(c, schema); err != nil || string(b) != `{"type":"object"}` {
		t.Fatalf("Artifact(schema) = %q, %v", b, err)
	}
	missing := strings.Repeat("ab", 32)
	if _, err := s.CreateVersion(c, store.Version{Namespace: "default", Name: "f", ArtifactDigest: art,
		Files: map[string]string{"./gone.json": missing}}, true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateVersion with a file never stored = %v, want ErrNotFound", err)
	}
	if _, err := s.CreateVersion(c, store.Version{Namespace: "default", Name: "g", ArtifactDigest: art}, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Version(c, "default", "g", 1); got.Files != nil {
		t.Fatalf("a version without files reads back Files = %v", got.Files)
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	c := ctx(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := t0.Add(24 * time.Hour)
	hash := sha256.Sum256([]byte("key secret"))
	key := store.Credential{ID: "a1", Kind: store.KindAPIKey, Hash: hash[:], Name: "ci",
		Scopes: []string{"orders:write", "orders:read"}, CreatedAt: t0, ExpiresAt: &exp}
	if err := s.CreateCredential(c, key); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCredential(c, store.Credential{ID: "b1", Hash: hash[:], Name: "admin", Role: "admin", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Credential(c, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != store.KindAPIKey || !slices.Equal(got.Scopes, key.Scopes) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.LastUsedAt != nil {
		t.Fatalf("Credential(a1) = %+v, want kind, scopes and expiry kept, never used", got)
	}
	if got, _ := s.Credential(c, "b1"); got.Kind != store.KindAdmin || got.ExpiresAt != nil || len(got.Scopes) != 0 {
		t.Fatalf("Credential(b1) = %+v, want an admin credential (the default kind) without expiry or scopes", got)
	}
	used := t0.Add(time.Hour)
	if err := s.TouchCredential(c, "a1", used); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchCredential(c, "a1", used.Add(-time.Minute)); err != nil { // never moves back
		t.Fatal(err)
	}
	if got, _ := s.Credential(c, "a1"); got.LastUsedAt == nil || !got.LastUsedAt.Equal(used) {
		t.Fatalf("LastUsedAt = %v, want %v", got.LastUsedAt, used)
	}
	if err := s.TouchCredential(c, "nope", used); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("TouchCredential(nope) = %v, want ErrNotFound", err)
	}
}

func testCredentials(t *testing.T, s store.Store) {
	c := ctx(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	hash := sha256.Sum256([]byte("secret part"))
	creds := []store.Credential{
		{ID: "k2", Hash: hash[:], Name: "ci", Role: "deployer", CreatedAt: t0.Add(time.Second)},
		{ID: "k1", Hash: hash[:], Name: "bootstrap", Role: "admin", CreatedAt: t0},
		{ID: "k0", Hash: []byte{1, 2, 3}, Name: "same time", Role: "viewer", CreatedAt: t0.Add(time.Second)},
	}
	for _, cr := range creds {
		if err := s.CreateCredential(c, cr); err != nil {
			t.Fatalf("CreateCredential(%s) = %v", cr.ID, err)
		}
	}
	got, err := s.Credential(c, "k1")
	if err != nil {
		t.Fatalf("Credential(k1) = %v", err)
	}
	if !credEqual(got, creds[1]) {
		t.Errorf("Credential(k1) = %+v, want %+v", got, creds[1])
	}
	if got.RevokedAt != nil {
		t.Errorf("Credential(k1).RevokedAt = %v, want nil", got.RevokedAt)
	}

	at := t0.Add(time.Hour).In(time.FixedZone("X", -5*3600))
	if err := s.RevokeCredential(c, "k1", at); err != nil {
		t.Fatalf("RevokeCredential(k1) = %v", err)
	}
	if err := s.RevokeCredential(c, "k1", at.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeCredential(k1) = %v, want nil", err)
	}
	got, err = s.Credential(c, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
		t.Errorf("Credential(k1).RevokedAt = %v, want %v (the first revocation)", got.RevokedAt, at)
	}

	list, err := s.ListCredentials(c)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, cr := range list {
		ids = append(ids, cr.ID)
	}
	if want := []string{"k1", "k0", "k2"}; !slices.Equal(ids, want) {
		t.Errorf("ListCredentials() ids = %v, want %v (by creation time, then id)", ids, want)
	}
	if list[0].RevokedAt == nil || list[1].RevokedAt != nil {
		t.Errorf("ListCredentials() = %+v, want k1 revoked and k0 not", list)
	}

	// A zero CreatedAt is filled in.
	if err := s.CreateCredential(c, store.Credential{ID: "k3", Hash: hash[:], Name: "n", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Credential(c, "k3"); err != nil || got.CreatedAt.IsZero() {
		t.Errorf("Credential(k3) = %+v, %v; want CreatedAt filled", got, err)
	}
}

func testCredentialErrors(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.Credential(c, "missing")
	wantErr(t, "Credential(missing)", err, store.ErrNotFound)
	wantErr(t, "RevokeCredential(missing)", s.RevokeCredential(c, "missing", time.Now()), store.ErrNotFound)
	cr := store.Credential{ID: "dup", Hash: []byte{1}, Name: "a", Role: "admin", CreatedAt: time.Now()}
	if err := s.CreateCredential(c, cr); err != nil {
		t.Fatal(err)
	}
	cr.Name = "b"
	wantErr(t, "CreateCredential(duplicate id)", s.CreateCredential(c, cr), store.ErrConflict)
	if got, err := s.Credential(c, "dup"); err != nil || got.Name != "a" {
		t.Errorf("Credential(dup) = %+v, %v; want the first one kept", got, err)
	}
	wantErr(t, "CreateCredential(empty id)", s.CreateCredential(c, store.Credential{Name: "x"}), store.ErrInvalid)
	if list, err := s.ListCredentials(c); err != nil || len(list) != 1 {
		t.Errorf("ListCredentials() = %v, %v; want one", list, err)
	}
}

var base = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func appendEvents(t *testing.T, s store.Store, evs []events.Event) []events.Event {
	t.Helper()
	if err := s.AppendEvents(ctx(t), evs); err != nil {
		t.Fatalf("AppendEvents(%d events) = %v", len(evs), err)
	}
	return evs
}

func query(t *testing.T, s store.Store, q store.EventQuery) []events.Event {
	t.Helper()
	evs, err := s.QueryEvents(ctx(t), q)
	if err != nil {
		t.Fatalf("QueryEvents(%+v) = %v", q, err)
	}
	return evs
}

func ids(evs []events.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func types(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func testEventsAppendQuery(t *testing.T, s store.Store) {
	if got := query(t, s, store.EventQuery{}); len(got) != 0 {
		t.Errorf("QueryEvents on an empty store = %v, want none", got)
	}
	if err := s.AppendEvents(ctx(t), nil); err != nil {
		t.Errorf("AppendEvents(nil) = %v, want nil", err)
	}
	first := appendEvents(t, s, []events.Event{
		{ID: 999, Time: base.In(time.FixedZone("X", 7200)), Type: events.TypeAdminAuth, Outcome: events.OutcomeDenied,
			Reason: "unknown key", Actor: "key:k1", SourceIP: "192.0.2.1", RequestID: "req-1",
			Labels: map[string]string{"route": "/v1/functions", "method": "GET"}},
		{Time: base.Add(time.Nanosecond), Type: events.TypeFunctionDeploy, Outcome: events.OutcomeSuccess,
			Namespace: "default", Function: "orders", Version: 3},
	})
	if first[0].ID <= 0 || first[1].ID <= first[0].ID {
		t.Fatalf("assigned IDs = %v, want positive and increasing", ids(first))
	}
	second := appendEvents(t, s, []events.Event{{Time: base.Add(-time.Hour), Type: events.TypeLimitMemory, Outcome: events.OutcomeFailure}})
	if second[0].ID <= first[1].ID {
		t.Errorf("ID of a later batch = %d, want > %d", second[0].ID, first[1].ID)
	}

	got := query(t, s, store.EventQuery{})
	want := append(append([]events.Event(nil), first...), second...)
	if len(got) != len(want) {
		t.Fatalf("QueryEvents() = %d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || !g.Time.Equal(w.Time) || g.Type != w.Type || g.Outcome != w.Outcome ||
			g.Reason != w.Reason || g.Actor != w.Actor || g.SourceIP != w.SourceIP || g.Namespace != w.Namespace ||
			g.Function != w.Function || g.Version != w.Version || g.RequestID != w.RequestID || len(g.Labels) != len(w.Labels) {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
		for k, v := range w.Labels {
			if g.Labels[k] != v {
				t.Errorf("event %d label %q = %q, want %q", i, k, g.Labels[k], v)
			}
		}
		if g.Time.Location() != time.UTC {
			t.Errorf("event %d Time location = %v, want UTC", i, g.Time.Location())
		}
	}
	// Ordered by ID, not by time: the third event is the oldest.
	if !slices.IsSorted(ids(got)) {
		t.Errorf("QueryEvents() IDs = %v, want ascending", ids(got))
	}
}

func testEventsTypeFilter(t *testing.T, s store.Store) {
	all := []string{"limit.memory", "limit", "limitx.y", "limit.timeout", "function.deploy", "func_ion.x",
		"function.deployx", "a%b.c", "axb.c", "limit.memory"}
	var evs []events.Event
	for i, ty := range all {
		evs = append(evs, events.Event{Time: base.Add(time.Duration(i)), Type: ty, Outcome: events.OutcomeSuccess})
	}
	appendEvents(t, s, evs)
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		{"limit.", []string{"limit.memory", "limit.timeout", "limit.memory"}},
		{"limit", []string{"limit"}},
		{"limit.memory", []string{"limit.memory", "limit.memory"}},
		{"function.deploy", []string{"function.deploy"}},
		{"function.", []string{"function.deploy", "function.deployx"}},
		{"func_ion.", []string{"func_ion.x"}},
		{"a%b.", []string{"a%b.c"}},
		{"nothing.", nil},
		{".", nil},
		{"", all},
	} {
		got := types(query(t, s, store.EventQuery{Type: tc.typ}))
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("QueryEvents(Type: %q) = %q, want %q", tc.typ, got, tc.want)
		}
	}
}

func testEventsSince(t *testing.T, s store.Store) {
	appendEvents(t, s, []events.Event{
		{Time: base, Type: "a.x", Outcome: events.OutcomeSuccess},
		{Time: base.Add(2 * time.Second), Type: "a.y", Outcome: events.OutcomeSuccess},
		{Time: base.Add(time.Second), Type: "a.z", Outcome: events.OutcomeSuccess},
		{Time: base.Add(time.Second - 1), Type: "a.w", Outcome: events.OutcomeSuccess},
	})
	for _, tc := range []struct {
		since time.Time
		want  []string
	}{
		{base.Add(time.Second), []string{"a.y", "a.z"}},
		{base.Add(time.Second).In(time.FixedZone("X", -3600)), []string{"a.y", "a.z"}},
		{base, []string{"a.x", "a.y", "a.z", "a.w"}},
		{base.Add(time.Hour), nil},
	} {
		got := types(query(t, s, store.EventQuery{Since: tc.since}))
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("QueryEvents(Since: %v) = %q, want %q", tc.since, got, tc.want)
		}
	}
}

func testEventsAfterIDAndLimit(t *testing.T, s store.Store) {
	var evs []events.Event
	for i := range 10 {
		evs = append(evs, events.Event{Time: base, Type: "t.x", Outcome: events.OutcomeSuccess, Version: i})
	}
	appendEvents(t, s, evs)
	all := ids(evs)

	got := query(t, s, store.EventQuery{AfterID: all[4], Limit: 3})
	if want := all[5:8]; !slices.Equal(ids(got), want) {
		t.Errorf("QueryEvents(AfterID: %d, Limit: 3) IDs = %v, want %v", all[4], ids(got), want)
	}
	if got := query(t, s, store.EventQuery{Limit: 2}); !slices.Equal(ids(got), all[:2]) {
		t.Errorf("QueryEvents(Limit: 2) IDs = %v, want the oldest two %v", ids(got), all[:2])
	}
	if got := query(t, s, store.EventQuery{AfterID: all[9]}); len(got) != 0 {
		t.Errorf("QueryEvents(AfterID: last) = %v, want none", ids(got))
	}

	// Following: page through with AfterID until nothing is left.
	var seen []int64
	var after int64
	for range 20 {
		page := query(t, s, store.EventQuery{AfterID: after, Limit: 4})
		if len(page) == 0 {
			break
		}
		seen = append(seen, ids(page)...)
		after = page[len(page)-1].ID
	}
	if !slices.Equal(seen, all) {
		t.Errorf("paging with AfterID saw %v, want %v", seen, all)
	}
}

func testEventsDefaultAndMaxLimit(t *testing.T, s store.Store) {
	const n = store.MaxEventLimit + 1
	batch := make([]events.Event, 0, 1000)
	var all []int64
	for i := range n {
		batch = append(batch, events.Event{Time: base, Type: "bulk.x", Outcome: events.OutcomeSuccess, Version: i})
		if len(batch) == cap(batch) || i == n-1 {
			appendEvents(t, s, batch)
			all = append(all, ids(batch)...)
			batch = batch[:0]
		}
	}
	for _, tc := range []struct{ limit, want int }{
		{0, store.DefaultEventLimit},
		{-5, store.DefaultEventLimit},
		{store.MaxEventLimit * 2, store.MaxEventLimit},
		{store.MaxEventLimit, store.MaxEventLimit},
	} {
		got := query(t, s, store.EventQuery{Limit: tc.limit})
		if len(got) != tc.want {
			t.Errorf("QueryEvents(Limit: %d) = %d events, want %d", tc.limit, len(got), tc.want)
			continue
		}
		if !slices.Equal(ids(got), all[:tc.want]) {
			t.Errorf("QueryEvents(Limit: %d) did not return the oldest events in ID order", tc.limit)
		}
	}
}

func testEventsCombinedFilters(t *testing.T, s store.Store) {
	evs := appendEvents(t, s, []events.Event{
		{Time: base, Type: "limit.memory", Outcome: events.OutcomeFailure},                   // too old
		{Time: base.Add(time.Minute), Type: "limit.timeout", Outcome: events.OutcomeFailure}, // before AfterID
		{Time: base.Add(time.Minute), Type: "admin.auth", Outcome: events.OutcomeDenied},     // wrong type
		{Time: base.Add(time.Minute), Type: "limit.memory", Outcome: events.OutcomeFailure},  // match
		{Time: base.Add(time.Minute), Type: "limit.timeout", Outcome: events.OutcomeFailure}, // match
		{Time: base.Add(time.Minute), Type: "limit.timeout", Outcome: events.OutcomeFailure}, // over limit
	})
	got := query(t, s, store.EventQuery{Type: "limit.", Since: base.Add(time.Second), AfterID: evs[1].ID, Limit: 2})
	if want := []int64{evs[3].ID, evs[4].ID}; !slices.Equal(ids(got), want) {
		t.Errorf("QueryEvents(combined) IDs = %v, want %v", ids(got), want)
	}
}

func testEventsZeroTime(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Minute)
	evs := appendEvents(t, s, []events.Event{{Type: "t.zero", Outcome: events.OutcomeSuccess}})
	got := query(t, s, store.EventQuery{Type: "t.zero"})
	if len(got) != 1 {
		t.Fatalf("QueryEvents = %d events, want 1", len(got))
	}
	if got[0].Time.Before(before) || got[0].Time.After(time.Now().Add(time.Minute)) {
		t.Errorf("stored Time for a zero Time = %v, want about now", got[0].Time)
	}
	if !evs[0].Time.Equal(got[0].Time) {
		t.Errorf("AppendEvents set Time %v, stored %v; want equal", evs[0].Time, got[0].Time)
	}
}

func testUsers(t *testing.T, s store.Store) {
	c := ctx(t)
	t0 := time.Date(2030, 2, 3, 4, 5, 6, 7, time.FixedZone("X", 3600))
	alice := store.User{Name: "alice", Role: "admin", PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA",
		TOTPSecret: "JBSWY3DPEHPK3PXP", CreatedAt: t0}
	bob := store.User{Name: "bob", Role: "viewer", PasswordHash: "$argon2id$x"}
	for _, u := range []store.User{bob, alice} {
		if err := s.CreateUser(c, u); err != nil {
			t.Fatalf("CreateUser(%s) = %v", u.Name, err)
		}
	}
	got, err := s.User(c, "alice")
	if err != nil {
		t.Fatalf("User(alice) = %v", err)
	}
	if got.Name != "alice" || got.Role != "admin" || got.PasswordHash != alice.PasswordHash || got.TOTPSecret != alice.TOTPSecret ||
		got.MFAEnrolled || got.TOTPLastStep != 0 || got.FailedAttempts != 0 || got.LockedUntil != nil || !got.CreatedAt.Equal(t0) {
		t.Errorf("User(alice) = %+v, want %+v", got, alice)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}
	if b, err := s.User(c, "bob"); err != nil || b.CreatedAt.IsZero() {
		t.Errorf("User(bob) = %+v, %v; want CreatedAt filled in", b, err)
	}

	locked := t0.Add(time.Minute)
	upd, err := s.UpdateUser(c, "alice", func(u *store.User) error {
		u.Name, u.CreatedAt = "mallory", time.Time{} // immutable: ignored
		u.Role = "deployer"
		u.PasswordHash = "$argon2id$new"
		u.TOTPSecret = "NEWSECRET"
		u.MFAEnrolled = true
		u.TOTPLastStep = 12345
		u.FailedAttempts = 5
		u.LockedUntil = &locked
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser(alice) = %v", err)
	}
	got, err = s.User(c, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []store.User{upd, got} {
		if u.Name != "alice" || u.Role != "deployer" || u.PasswordHash != "$argon2id$new" || u.TOTPSecret != "NEWSECRET" ||
			!u.MFAEnrolled || u.TOTPLastStep != 12345 || u.FailedAttempts != 5 || u.LockedUntil == nil ||
			!u.LockedUntil.Equal(locked) || !u.CreatedAt.Equal(t0) {
			t.Errorf("after UpdateUser: %+v, want every mutable field changed and name and creation kept", u)
		}
	}
	if _, err := s.User(c, "mallory"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User(mallory) = %v, want ErrNotFound (names cannot change)", err)
	}
	// Clearing the lock.
	if _, err := s.UpdateUser(c, "alice", func(u *store.User) error { u.LockedUntil = nil; u.FailedAttempts = 0; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.User(c, "alice"); got.LockedUntil != nil || got.FailedAttempts != 0 {
		t.Errorf("after clearing the lock: LockedUntil %v, FailedAttempts %d; want nil, 0", got.LockedUntil, got.FailedAttempts)
	}
	// An error from fn stores nothing.
	boom := errors.New("boom")
	_, err = s.UpdateUser(c, "alice", func(u *store.User) error { u.Role = "viewer"; return boom })
	wantErr(t, "UpdateUser(fn fails)", err, boom)
	if got, _ := s.User(c, "alice"); got.Role != "deployer" {
		t.Errorf("Role after a failed update = %q, want deployer", got.Role)
	}

	list, err := s.ListUsers(c)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range list {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"alice", "bob"}) {
		t.Errorf("ListUsers() = %v, want [alice bob] (by name)", names)
	}
	if err := s.DeleteUser(c, "alice"); err != nil {
		t.Fatalf("DeleteUser(alice) = %v", err)
	}
	_, err = s.User(c, "alice")
	wantErr(t, "User(deleted)", err, store.ErrNotFound)
	if list, _ := s.ListUsers(c); len(list) != 1 || list[0].Name != "bob" {
		t.Errorf("ListUsers() after delete = %+v, want only bob", list)
	}
	// The name can be taken again.
	if err := s.CreateUser(c, alice); err != nil {
		t.Errorf("CreateUser(alice) after delete = %v", err)
	}
}

func testUserErrors(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.User(c, "nobody")
	wantErr(t, "User(nobody)", err, store.ErrNotFound)
	wantErr(t, "DeleteUser(nobody)", s.DeleteUser(c, "nobody"), store.ErrNotFound)
	called := false
	_, err = s.UpdateUser(c, "nobody", func(*store.User) error { called = true; return nil })
	wantErr(t, "UpdateUser(nobody)", err, store.ErrNotFound)
	if called {
		t.Error("UpdateUser(nobody) called fn")
	}
	if list, err := s.ListUsers(c); err != nil || len(list) != 0 {
		t.Errorf("ListUsers() on an empty store = %v, %v; want none", list, err)
	}
	for _, u := range []store.User{
		{Role: "admin", PasswordHash: "h"},
		{Name: "x", PasswordHash: "h"},
		{Name: "x", Role: "admin"},
	} {
		wantErr(t, fmt.Sprintf("CreateUser(%+v)", u), s.CreateUser(c, u), store.ErrInvalid)
	}
	u := store.User{Name: "dup", Role: "viewer", PasswordHash: "h1"}
	if err := s.CreateUser(c, u); err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = "h2"
	wantErr(t, "CreateUser(duplicate)", s.CreateUser(c, u), store.ErrConflict)
	if got, _ := s.User(c, "dup"); got.PasswordHash != "h1" {
		t.Errorf("PasswordHash after a refused duplicate = %q, want h1", got.PasswordHash)
	}
	_, err = s.UpdateUser(c, "dup", func(u *store.User) error { u.PasswordHash = ""; return nil })
	wantErr(t, "UpdateUser(empty hash)", err, store.ErrInvalid)
}

// testUpdateUserConcurrent: concurrent read-modify-write updates of one user
// never lose each other's changes (the login failure counter relies on it).
func testUpdateUserConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateUser(c, store.User{Name: "hot", Role: "viewer", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.UpdateUser(c, "hot", func(u *store.User) error { u.FailedAttempts++; return nil })
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpdateUser = %v", err)
		}
	}
	if got, _ := s.User(c, "hot"); got.FailedAttempts != n {
		t.Errorf("FailedAttempts after %d concurrent increments = %d, want %d", n, got.FailedAttempts, n)
	}
}
