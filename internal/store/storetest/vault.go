package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/store"
)

// RunVault is the shared suite for the vault's parts of store.Store:
// Secrets, KV, Sealing, Usage and User.TOTPKeyID. open must return a new,
// empty store for each call; RunVault closes it (and checks Close's error)
// when the subtest ends.
//
// The store's own clock is the real one: tests that depend on it (grace
// periods, KVSet's idea of expiry) compare against time.Now with margins, and
// every method that takes a now gets explicit values.
func RunVault(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"SecretPutAndRead", testSecretPutAndRead},
		{"SecretErrors", testSecretErrors},
		{"SecretRetireAndDestroy", testSecretRetireAndDestroy},
		{"SecretDelete", testSecretDelete},
		{"SecretConcurrentPut", testSecretConcurrentPut},
		{"KVSetGet", testKVSetGet},
		{"KVErrors", testKVErrors},
		{"KVVersionsNeverRepeat", testKVVersionsNeverRepeat},
		{"KVExpiry", testKVExpiry},
		{"KVQuota", testKVQuota},
		{"KVListPrefix", testKVListPrefix},
		{"KVListPaging", testKVListPaging},
		{"KVListLimit", testKVListLimit},
		{"KVBuckets", testKVBuckets},
		{"KVChanges", testKVChanges},
		{"KVConcurrentSet", testKVConcurrentSet},
		{"RewrapSealed", testRewrapSealed},
		{"RewrapSealedErrors", testRewrapSealedErrors},
		{"UserTOTPKeyID", testUserTOTPKeyID},
		{"GrantUses", testGrantUses},
		{"GrantUseErrors", testGrantUseErrors},
		{"Egress", testEgress},
		{"EgressErrors", testEgressErrors},
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

// sealedBytes is what fakeSeal produces for a value: readable, so that a
// test sees which row's bytes it got.
func sealedBytes(tag string, version int) []byte {
	return fmt.Appendf(nil, "sealed(%s,v%d)", tag, version)
}

// fakeSeal seals nothing: it returns sealedBytes(tag, version) under keyID.
func fakeSeal(tag, keyID string) store.SealFunc {
	return func(version int) ([]byte, string, error) {
		return sealedBytes(tag, version), keyID, nil
	}
}

func putSecret(t *testing.T, s store.Store, ns, name string, grace time.Duration) store.SecretVersion {
	t.Helper()
	v, err := s.PutSecret(ctx(t), ns, name, "tester", grace, fakeSeal(ns+"/"+name, "k1"))
	if err != nil {
		t.Fatalf("PutSecret(%q, %q) = %v", ns, name, err)
	}
	return v
}

// within reports whether got lies in [lo, hi].
func within(got, lo, hi time.Time) bool { return !got.Before(lo) && !got.After(hi) }

func testSecretPutAndRead(t *testing.T, s store.Store) {
	c := ctx(t)
	const grace = time.Hour
	var seen []int
	before := time.Now()
	v1, err := s.PutSecret(c, "default", "db", "alice", grace, func(v int) ([]byte, string, error) {
		seen = append(seen, v)
		return sealedBytes("default/db", v), "k1", nil
	})
	if err != nil {
		t.Fatalf("PutSecret(db) = %v", err)
	}
	if v1.Version != 1 || !v1.Current || v1.KeyID != "k1" || !bytes.Equal(v1.Sealed, sealedBytes("default/db", 1)) ||
		v1.CreatedBy != "alice" || v1.RetiresAt != nil || v1.DestroyedAt != nil {
		t.Errorf("PutSecret(db) = %+v, want version 1, current, k1, its bytes, by alice", v1)
	}
	v2 := putSecret(t, s, "default", "db", grace)
	middle := time.Now()
	v3 := putSecret(t, s, "default", "db", grace)
	after := time.Now()
	if !slices.Equal(seen, []int{1}) {
		t.Errorf("seal called with %v, want [1]", seen)
	}
	if v2.Version != 2 || v3.Version != 3 {
		t.Errorf("PutSecret versions = %d, %d, want 2, 3", v2.Version, v3.Version)
	}
	if !within(v3.CreatedAt, middle.Add(-time.Second), after.Add(time.Second)) || v3.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want about now, in UTC", v3.CreatedAt)
	}

	for _, tc := range []struct {
		version, want int
	}{{0, 3}, {3, 3}, {2, 2}, {1, 1}} {
		got, err := s.SecretVersion(c, "default", "db", tc.version)
		if err != nil {
			t.Errorf("SecretVersion(db, %d) = %v", tc.version, err)
			continue
		}
		if got.Version != tc.want || !bytes.Equal(got.Sealed, sealedBytes("default/db", tc.want)) ||
			got.Current != (tc.want == 3) || got.KeyID != "k1" {
			t.Errorf("SecretVersion(db, %d) = %+v, want version %d with its bytes", tc.version, got, tc.want)
		}
		if tc.want == 3 && got.RetiresAt != nil {
			t.Errorf("SecretVersion(db, current).RetiresAt = %v, want nil", got.RetiresAt)
		}
		if tc.want < 3 && (got.RetiresAt == nil || !within(*got.RetiresAt, before.Add(grace-time.Second), after.Add(grace+time.Second))) {
			t.Errorf("SecretVersion(db, %d).RetiresAt = %v, want about now+%v", tc.version, got.RetiresAt, grace)
		}
	}
	for _, tc := range []struct {
		ns, name string
		version  int
	}{{"default", "db", 4}, {"default", "db", -1}, {"other", "db", 0}, {"default", "nope", 0}} {
		_, err := s.SecretVersion(c, tc.ns, tc.name, tc.version)
		wantErr(t, fmt.Sprintf("SecretVersion(%q, %q, %d)", tc.ns, tc.name, tc.version), err, store.ErrNotFound)
	}

	putSecret(t, s, "b-ns", "zz", 0)
	putSecret(t, s, "a-ns", "token", 0)
	list, err := s.ListSecrets(c)
	if err != nil {
		t.Fatalf("ListSecrets() = %v", err)
	}
	var names []string
	for _, sec := range list {
		names = append(names, sec.Namespace+"/"+sec.Name)
	}
	if want := []string{"a-ns/token", "b-ns/zz", "default/db"}; !slices.Equal(names, want) {
		t.Fatalf("ListSecrets() = %q, want %q", names, want)
	}
	db := list[2]
	if db.CurrentVersion != 3 || db.Versions != 3 || !db.UpdatedAt.Equal(v3.CreatedAt) || !db.CreatedAt.Equal(v1.CreatedAt) {
		t.Errorf("ListSecrets()[db] = %+v, want current 3, 3 versions, created with v1, updated with v3", db)
	}

	hist, err := s.SecretHistory(c, "default", "db")
	if err != nil {
		t.Fatalf("SecretHistory(db) = %v", err)
	}
	var versions []int
	for _, h := range hist {
		versions = append(versions, h.Version)
		if h.Sealed != nil {
			t.Errorf("SecretHistory(db) version %d has Sealed bytes, want none", h.Version)
		}
		if h.Current != (h.Version == 3) {
			t.Errorf("SecretHistory(db) version %d Current = %v", h.Version, h.Current)
		}
	}
	if !slices.Equal(versions, []int{3, 2, 1}) {
		t.Errorf("SecretHistory(db) versions = %v, want [3 2 1] (newest first)", versions)
	}
}

func testSecretErrors(t *testing.T, s store.Store) {
	c := ctx(t)
	called := false
	seal := func(int) ([]byte, string, error) { called = true; return []byte("x"), "k", nil }
	for _, tc := range []struct{ ns, name string }{{"", "x"}, {"default", ""}, {"", ""}} {
		_, err := s.PutSecret(c, tc.ns, tc.name, "", 0, seal)
		wantErr(t, fmt.Sprintf("PutSecret(%q, %q)", tc.ns, tc.name), err, store.ErrInvalid)
	}
	if called {
		t.Error("PutSecret with an invalid name called seal")
	}

	boom := errors.New("boom")
	_, err := s.PutSecret(c, "default", "new", "", 0, func(int) ([]byte, string, error) { return nil, "", boom })
	wantErr(t, "PutSecret(seal fails)", err, boom)
	_, err = s.SecretVersion(c, "default", "new", 0)
	wantErr(t, "SecretVersion after a failed first PutSecret", err, store.ErrNotFound)
	_, err = s.SecretHistory(c, "default", "new")
	wantErr(t, "SecretHistory after a failed first PutSecret", err, store.ErrNotFound)
	if list, err := s.ListSecrets(c); err != nil || len(list) != 0 {
		t.Errorf("ListSecrets() after a failed first PutSecret = %+v, %v; want none", list, err)
	}

	putSecret(t, s, "default", "db", time.Hour)
	for _, tc := range []struct {
		name string
		seal store.SealFunc
		want error
	}{
		{"seal fails", func(int) ([]byte, string, error) { return []byte("x"), "k", boom }, boom},
		{"no key id", func(int) ([]byte, string, error) { return []byte("x"), "", nil }, store.ErrInvalid},
		{"no bytes", func(int) ([]byte, string, error) { return nil, "k", nil }, store.ErrInvalid},
	} {
		_, err := s.PutSecret(c, "default", "db", "", time.Hour, tc.seal)
		wantErr(t, "PutSecret("+tc.name+")", err, tc.want)
	}
	cur, err := s.SecretVersion(c, "default", "db", 0)
	if err != nil || cur.Version != 1 || cur.RetiresAt != nil {
		t.Errorf("current after failed PutSecrets = %+v, %v; want version 1, not retiring", cur, err)
	}
	if v := putSecret(t, s, "default", "db", time.Hour); v.Version != 2 {
		t.Errorf("PutSecret after failed ones = version %d, want 2 (no gap)", v.Version)
	}

	_, err = s.SecretHistory(c, "default", "nope")
	wantErr(t, "SecretHistory(nope)", err, store.ErrNotFound)
	wantErr(t, "DeleteSecret(nope)", s.DeleteSecret(c, "default", "nope"), store.ErrNotFound)
	wantErr(t, "DeleteSecret(other namespace)", s.DeleteSecret(c, "other", "db"), store.ErrNotFound)
}

func testSecretRetireAndDestroy(t *testing.T, s store.Store) {
	c := ctx(t)
	putSecret(t, s, "default", "db", time.Hour)
	putSecret(t, s, "default", "db", 0) // v1 retires now
	putSecret(t, s, "default", "db", time.Hour)
	putSecret(t, s, "default", "neg", 0)
	before := time.Now()
	putSecret(t, s, "default", "neg", -time.Hour) // negative grace: now
	after := time.Now()

	retiresAt := func(name string, version int) time.Time {
		t.Helper()
		v, err := s.SecretVersion(c, "default", name, version)
		if err != nil || v.RetiresAt == nil {
			t.Fatalf("SecretVersion(%s, %d) = %+v, %v; want a retiring version", name, version, v, err)
		}
		return *v.RetiresAt
	}
	if r := retiresAt("neg", 1); !within(r, before.Add(-time.Second), after.Add(time.Second)) {
		t.Errorf("RetiresAt after a negative grace = %v, want about now", r)
	}
	r1, r2 := retiresAt("db", 1), retiresAt("db", 2)
	if !r2.After(r1.Add(30 * time.Minute)) {
		t.Fatalf("RetiresAt v1 %v, v2 %v; want v2 an hour later", r1, r2)
	}

	// Just before RetiresAt nothing goes; at it, it does.
	if got, err := s.DestroyRetiredSecrets(c, r1.Add(-time.Nanosecond)); err != nil || len(got) != 0 {
		t.Fatalf("DestroyRetiredSecrets(just before v1 retires) = %+v, %v; want none (neg/1 retires after db/1)", got, err)
	}
	got, err := s.DestroyRetiredSecrets(c, r1)
	if err != nil {
		t.Fatalf("DestroyRetiredSecrets(v1 retires) = %v", err)
	}
	var ids []string
	for _, v := range got {
		ids = append(ids, fmt.Sprintf("%s/%d", v.Name, v.Version))
		if v.Sealed != nil || v.DestroyedAt == nil || !v.DestroyedAt.Equal(r1) || v.Current {
			t.Errorf("destroyed version %+v, want no bytes, DestroyedAt %v, not current", v, r1)
		}
	}
	// neg/1 retires at or just after db/1: it may or may not be due yet.
	if !slices.Contains(ids, "db/1") || slices.Contains(ids, "db/2") || slices.Contains(ids, "db/3") {
		t.Fatalf("DestroyRetiredSecrets(at v1's RetiresAt) = %v, want db/1 and not db/2 or db/3", ids)
	}
	if !slices.IsSortedFunc(got, func(a, b store.SecretVersion) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("DestroyRetiredSecrets() = %v, want ordered by name", ids)
	}
	_, err = s.SecretVersion(c, "default", "db", 1)
	wantErr(t, "SecretVersion(destroyed)", err, store.ErrNotFound)
	if v, err := s.SecretVersion(c, "default", "db", 2); err != nil || len(v.Sealed) == 0 {
		t.Errorf("SecretVersion(retiring, not yet destroyed) = %+v, %v; want its bytes", v, err)
	}
	hist, err := s.SecretHistory(c, "default", "db")
	if err != nil || len(hist) != 3 || hist[2].DestroyedAt == nil || hist[1].DestroyedAt != nil {
		t.Errorf("SecretHistory(db) = %+v, %v; want 3 versions, only v1 destroyed", hist, err)
	}
	if list, _ := s.ListSecrets(c); len(list) != 2 || list[0].Name != "db" || list[0].Versions != 2 {
		t.Errorf("ListSecrets() = %+v, want db with 2 versions not destroyed", list)
	}
	if again, err := s.DestroyRetiredSecrets(c, r1); err != nil || len(again) != 0 {
		t.Errorf("DestroyRetiredSecrets() again = %+v, %v; want nothing left", again, err)
	}

	// Far in the future: every non-current version goes, never a current one.
	far := r2.Add(1000 * time.Hour)
	got, err = s.DestroyRetiredSecrets(c, far)
	ids = ids[:0]
	for _, v := range got {
		ids = append(ids, fmt.Sprintf("%s/%d", v.Name, v.Version))
	}
	if err != nil || !slices.Contains(ids, "db/2") || slices.ContainsFunc(ids, func(id string) bool { return id != "db/2" && id != "neg/1" }) {
		t.Errorf("DestroyRetiredSecrets(far) = %v, %v; want db/2 (and neg/1 unless it went before)", ids, err)
	}
	_, err = s.SecretVersion(c, "default", "neg", 1)
	wantErr(t, "SecretVersion(neg, 1) after destroying far", err, store.ErrNotFound)
	for _, name := range []string{"db", "neg"} {
		if v, err := s.SecretVersion(c, "default", name, 0); err != nil || len(v.Sealed) == 0 {
			t.Errorf("SecretVersion(%s, current) after destroying = %+v, %v; want it kept", name, v, err)
		}
	}
}

func testSecretDelete(t *testing.T, s store.Store) {
	c := ctx(t)
	putSecret(t, s, "default", "db", time.Hour)
	putSecret(t, s, "default", "db", time.Hour)
	putSecret(t, s, "default", "keep", 0)
	if err := s.DeleteSecret(c, "default", "db"); err != nil {
		t.Fatalf("DeleteSecret(db) = %v", err)
	}
	for _, v := range []int{0, 1, 2} {
		_, err := s.SecretVersion(c, "default", "db", v)
		wantErr(t, fmt.Sprintf("SecretVersion(deleted, %d)", v), err, store.ErrNotFound)
	}
	_, err := s.SecretHistory(c, "default", "db")
	wantErr(t, "SecretHistory(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteSecret(deleted)", s.DeleteSecret(c, "default", "db"), store.ErrNotFound)
	if list, _ := s.ListSecrets(c); len(list) != 1 || list[0].Name != "keep" {
		t.Errorf("ListSecrets() after delete = %+v, want only keep", list)
	}
	if ids, err := s.SealedKeyIDs(c); err != nil || ids["k1"] != 1 {
		t.Errorf("SealedKeyIDs() after delete = %v, %v; want k1: 1 (the deleted values are gone)", ids, err)
	}
	// The numbering continues: a version number is never sealed twice for
	// one name, so a deleted secret's ciphertext cannot open as the new one.
	if v := putSecret(t, s, "default", "db", 0); v.Version != 3 {
		t.Errorf("PutSecret after delete = version %d, want 3", v.Version)
	}
	if err := s.DeleteSecret(c, "default", "db"); err != nil {
		t.Fatal(err)
	}
	if v := putSecret(t, s, "default", "db", 0); v.Version != 4 {
		t.Errorf("PutSecret after a second delete = version %d, want 4", v.Version)
	}
}

func testSecretConcurrentPut(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 20
	var (
		mu   sync.Mutex
		nums []int
		wg   sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			v, err := s.PutSecret(c, "default", "hot", "", 0, fakeSeal("hot", "k1"))
			if err != nil {
				t.Errorf("concurrent PutSecret = %v", err)
				return
			}
			if !bytes.Equal(v.Sealed, sealedBytes("hot", v.Version)) {
				t.Errorf("PutSecret returned version %d with bytes %q sealed for another", v.Version, v.Sealed)
			}
			mu.Lock()
			nums = append(nums, v.Version)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Ints(nums)
	for i, v := range nums {
		if v != i+1 {
			t.Fatalf("concurrent PutSecret versions = %v, want 1..%d each once", nums, n)
		}
	}
	if len(nums) != n {
		t.Fatalf("concurrent PutSecret: %d succeeded, want %d", len(nums), n)
	}
	for v := 1; v <= n; v++ {
		got, err := s.SecretVersion(c, "default", "hot", v)
		if err != nil || !bytes.Equal(got.Sealed, sealedBytes("hot", v)) || got.Current != (v == n) {
			t.Errorf("SecretVersion(hot, %d) = %+v, %v; want its own bytes, current only for %d", v, got, err, n)
		}
	}
}

func kvSet(t *testing.T, s store.Store, w store.KVWrite) store.KVEntry {
	t.Helper()
	e, err := s.KVSet(ctx(t), w, fakeSeal(w.Key, "k1"))
	if err != nil {
		t.Fatalf("KVSet(%s/%s %q) = %v", w.Namespace, w.Bucket, w.Key, err)
	}
	return e
}

func kw(bucket, key string, size int) store.KVWrite {
	return store.KVWrite{Namespace: "default", Bucket: bucket, Key: key, Size: size}
}

func kvKeys(es []store.KVEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}

func testKVSetGet(t *testing.T, s store.Store) {
	c := ctx(t)
	before := time.Now()
	e1 := kvSet(t, s, kw("cache", "user:1", 5))
	if e1.Version != 1 || e1.Size != 5 || e1.KeyID != "k1" || !bytes.Equal(e1.Sealed, sealedBytes("user:1", 1)) ||
		e1.ExpiresAt != nil || !within(e1.UpdatedAt, before.Add(-time.Second), time.Now().Add(time.Second)) {
		t.Errorf("KVSet(user:1) = %+v, want version 1, size 5, k1, its bytes, updated now", e1)
	}
	now := time.Now()
	got, err := s.KVGet(c, "default", "cache", "user:1", now)
	if err != nil || got.Version != 1 || !bytes.Equal(got.Sealed, e1.Sealed) || got.Size != 5 || got.KeyID != "k1" ||
		!got.UpdatedAt.Equal(e1.UpdatedAt) || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("KVGet(user:1) = %+v, %v; want %+v", got, err, e1)
	}
	exp := now.Add(time.Hour)
	w := kw("cache", "user:1", 7)
	w.ExpiresAt = &exp
	e2 := kvSet(t, s, w)
	if e2.Version != 2 || e2.ExpiresAt == nil || !e2.ExpiresAt.Equal(exp) {
		t.Errorf("second KVSet(user:1) = %+v, want version 2 expiring at %v", e2, exp)
	}
	got, err = s.KVGet(c, "default", "cache", "user:1", now)
	if err != nil || got.Version != 2 || got.Size != 7 || !bytes.Equal(got.Sealed, sealedBytes("user:1", 2)) ||
		got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
		t.Errorf("KVGet(user:1) after overwrite = %+v, %v; want version 2, size 7, expiring at %v", got, err, exp)
	}
	for _, tc := range []struct{ ns, bucket, key string }{
		{"default", "cache", "user:2"}, {"default", "other", "user:1"}, {"other", "cache", "user:1"}, {"", "", ""},
	} {
		_, err := s.KVGet(c, tc.ns, tc.bucket, tc.key, now)
		wantErr(t, fmt.Sprintf("KVGet(%q, %q, %q)", tc.ns, tc.bucket, tc.key), err, store.ErrNotFound)
	}
	// A zero now is the current time.
	if _, err := s.KVGet(c, "default", "cache", "user:1", time.Time{}); err != nil {
		t.Errorf("KVGet(now zero) = %v, want the live entry", err)
	}
}

func testKVErrors(t *testing.T, s store.Store) {
	c := ctx(t)
	called := false
	seal := func(int) ([]byte, string, error) { called = true; return []byte("x"), "k", nil }
	for _, tc := range []struct {
		name string
		w    store.KVWrite
	}{
		{"no namespace", store.KVWrite{Bucket: "b", Key: "k"}},
		{"no bucket", store.KVWrite{Namespace: "n", Key: "k"}},
		{"no key", store.KVWrite{Namespace: "n", Bucket: "b"}},
		{"key not UTF-8", store.KVWrite{Namespace: "n", Bucket: "b", Key: "a\xff"}},
		{"key with NUL", store.KVWrite{Namespace: "n", Bucket: "b", Key: "a\x00b"}},
		{"bucket not UTF-8", store.KVWrite{Namespace: "n", Bucket: "\xc3", Key: "k"}},
		{"negative size", store.KVWrite{Namespace: "n", Bucket: "b", Key: "k", Size: -1}},
		{"negative limit", store.KVWrite{Namespace: "n", Bucket: "b", Key: "k", MaxBucketBytes: -1}},
	} {
		_, err := s.KVSet(c, tc.w, seal)
		wantErr(t, "KVSet("+tc.name+")", err, store.ErrInvalid)
		if tc.w.Size >= 0 && tc.w.MaxBucketBytes >= 0 {
			wantErr(t, "KVDelete("+tc.name+")", s.KVDelete(c, tc.w), store.ErrInvalid)
		}
	}
	if called {
		t.Error("KVSet with invalid input called seal")
	}

	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		seal store.SealFunc
		want error
	}{
		{"seal fails", func(int) ([]byte, string, error) { return []byte("x"), "k", boom }, boom},
		{"no key id", func(int) ([]byte, string, error) { return []byte("x"), "", nil }, store.ErrInvalid},
		{"no bytes", func(int) ([]byte, string, error) { return []byte{}, "k", nil }, store.ErrInvalid},
	} {
		_, err := s.KVSet(c, kw("b", "k", 1), tc.seal)
		wantErr(t, "KVSet("+tc.name+")", err, tc.want)
	}
	_, err := s.KVGet(c, "default", "b", "k", time.Now())
	wantErr(t, "KVGet after failed KVSets", err, store.ErrNotFound)
	if ch, err := s.KVChanges(c, store.KVChangeQuery{}); err != nil || len(ch) != 0 {
		t.Errorf("KVChanges() after failed KVSets = %+v, %v; want none", ch, err)
	}
	if e := kvSet(t, s, kw("b", "k", 1)); e.Version != 1 {
		t.Errorf("KVSet after failed ones = version %d, want 1 (failures use no number)", e.Version)
	}

	wantErr(t, "KVDelete(missing)", s.KVDelete(c, kw("b", "missing", 0)), store.ErrNotFound)
	wantErr(t, "KVDelete(other bucket)", s.KVDelete(c, kw("other", "k", 0)), store.ErrNotFound)
	for _, tc := range []struct{ prefix, after string }{{"a\xff", ""}, {"", "\xff"}, {"a\x00", ""}} {
		_, err := s.KVList(c, "default", "b", tc.prefix, tc.after, 0, time.Now())
		wantErr(t, fmt.Sprintf("KVList(prefix %q, after %q)", tc.prefix, tc.after), err, store.ErrInvalid)
	}
}

// testKVVersionsNeverRepeat: a key's version only grows, across delete and
// expiry, because it is bound into the sealed value.
func testKVVersionsNeverRepeat(t *testing.T, s store.Store) {
	c := ctx(t)
	past := time.Now().Add(-time.Hour)
	want := 0
	step := func(what string, w store.KVWrite) {
		t.Helper()
		want++
		if e := kvSet(t, s, w); e.Version != want {
			t.Errorf("KVSet(%s) = version %d, want %d", what, e.Version, want)
		}
	}
	step("new", kw("b", "k", 1))
	step("overwrite", kw("b", "k", 1))
	if err := s.KVDelete(c, kw("b", "k", 0)); err != nil {
		t.Fatalf("KVDelete = %v", err)
	}
	step("after delete", kw("b", "k", 1))
	expired := kw("b", "k", 1)
	expired.ExpiresAt = &past
	step("already expired", expired)
	step("over an expired entry", kw("b", "k", 1))
	if err := s.KVDelete(c, kw("b", "k", 0)); err != nil {
		t.Fatalf("KVDelete = %v", err)
	}
	step("expired, to be swept", expired)
	if n, err := s.ExpireKV(c, time.Now(), 0); err != nil || n != 1 {
		t.Fatalf("ExpireKV() = %d, %v; want 1", n, err)
	}
	step("after expiry", kw("b", "k", 1))
	// Other keys count on their own.
	if e := kvSet(t, s, kw("b", "k2", 1)); e.Version != 1 {
		t.Errorf("KVSet(another key) = version %d, want 1", e.Version)
	}
	if e := kvSet(t, s, store.KVWrite{Namespace: "other", Bucket: "b", Key: "k"}); e.Version != 1 {
		t.Errorf("KVSet(same key, other namespace) = version %d, want 1", e.Version)
	}

	// The change records tell the same story, in order.
	ch, err := s.KVChanges(c, store.KVChangeQuery{Namespace: "default", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range ch {
		if x.Key == "k" {
			got = append(got, fmt.Sprintf("%s%d", x.Op, x.Version))
		}
	}
	wantOps := []string{"set1", "set2", "delete2", "set3", "set4", "expire4", "set5", "delete5", "set6", "expire6", "set7"}
	if !slices.Equal(got, wantOps) {
		t.Errorf("KVChanges(k) = %v, want %v", got, wantOps)
	}
}

func testKVExpiry(t *testing.T, s store.Store) {
	c := ctx(t)
	now := time.Now()
	exp := now.Add(time.Hour)
	for i, key := range []string{"a", "b", "c"} {
		w := kw("ttl", key, 10)
		e := exp.Add(time.Duration(i) * time.Minute)
		w.ExpiresAt = &e
		kvSet(t, s, w)
	}
	kvSet(t, s, kw("ttl", "forever", 1))

	if _, err := s.KVGet(c, "default", "ttl", "a", exp.Add(-time.Nanosecond)); err != nil {
		t.Errorf("KVGet(a, just before expiry) = %v, want live", err)
	}
	_, err := s.KVGet(c, "default", "ttl", "a", exp)
	wantErr(t, "KVGet(a, at expiry)", err, store.ErrNotFound)
	if l, err := s.KVList(c, "default", "ttl", "", "", 0, exp); err != nil || !slices.Equal(kvKeys(l), []string{"b", "c", "forever"}) {
		t.Errorf("KVList(at a's expiry) = %q, %v; want [b c forever]", kvKeys(l), err)
	}
	if b, err := s.KVBuckets(c, exp); err != nil || len(b) != 1 || b[0].Keys != 3 || b[0].Bytes != 21 {
		t.Errorf("KVBuckets(at a's expiry) = %+v, %v; want 3 keys, 21 bytes", b, err)
	}
	later := exp.Add(time.Hour)
	if b, err := s.KVBuckets(c, later); err != nil || len(b) != 1 || b[0].Keys != 1 || b[0].Bytes != 1 {
		t.Errorf("KVBuckets(all expired but one) = %+v, %v; want 1 key, 1 byte", b, err)
	}

	if n, err := s.ExpireKV(c, exp.Add(-time.Nanosecond), 10); err != nil || n != 0 {
		t.Errorf("ExpireKV(before any expiry) = %d, %v; want 0", n, err)
	}
	if n, err := s.ExpireKV(c, later, 1); err != nil || n != 1 {
		t.Errorf("ExpireKV(limit 1) = %d, %v; want 1", n, err)
	}
	if n, err := s.ExpireKV(c, later, 0); err != nil || n != 2 {
		t.Errorf("ExpireKV(limit 0) = %d, %v; want the other 2", n, err)
	}
	if n, err := s.ExpireKV(c, later, 0); err != nil || n != 0 {
		t.Errorf("ExpireKV() again = %d, %v; want 0", n, err)
	}
	ch, err := s.KVChanges(c, store.KVChangeQuery{Bucket: "ttl"})
	if err != nil {
		t.Fatal(err)
	}
	var expired []string
	for _, x := range ch {
		if x.Op == store.KVOpExpire {
			expired = append(expired, x.Key)
			if x.Actor != "system" || x.Version != 1 || !x.At.Equal(later) || x.Function != "" {
				t.Errorf("expire record %+v, want Actor system, version 1, At %v", x, later)
			}
		}
	}
	if !slices.Equal(expired, []string{"a", "b", "c"}) {
		t.Errorf("expire records for %q, want [a b c] (earliest expiry first)", expired)
	}
	if l, _ := s.KVList(c, "default", "ttl", "", "", 0, now); !slices.Equal(kvKeys(l), []string{"forever"}) {
		t.Errorf("KVList() after ExpireKV = %q, want [forever]", kvKeys(l))
	}

	// An entry already expired by the store's clock is absent for KVDelete.
	past := time.Now().Add(-time.Minute)
	w := kw("ttl", "gone", 1)
	w.ExpiresAt = &past
	kvSet(t, s, w)
	wantErr(t, "KVDelete(expired)", s.KVDelete(c, kw("ttl", "gone", 0)), store.ErrNotFound)
	_, err = s.KVGet(c, "default", "ttl", "gone", time.Time{})
	wantErr(t, "KVGet(expired, now zero)", err, store.ErrNotFound)
}

func testKVQuota(t *testing.T, s store.Store) {
	c := ctx(t)
	limited := func(bucket, key string, size int) store.KVWrite {
		w := kw(bucket, key, size)
		w.MaxBucketBytes = 10
		return w
	}
	kvSet(t, s, limited("q", "a", 6))
	for _, tc := range []struct {
		name string
		w    store.KVWrite
	}{
		{"new key over", limited("q", "b", 5)},
		{"alone over", limited("q", "c", 11)},
		{"overwrite over", limited("q", "a", 11)},
	} {
		called := false
		_, err := s.KVSet(c, tc.w, func(v int) ([]byte, string, error) { called = true; return []byte("x"), "k", nil })
		wantErr(t, "KVSet("+tc.name+")", err, store.ErrTooLarge)
		if called {
			t.Errorf("KVSet(%s) called seal, want it refused first", tc.name)
		}
	}
	_, err := s.KVGet(c, "default", "q", "b", time.Now())
	wantErr(t, "KVGet(refused key)", err, store.ErrNotFound)
	if e, _ := s.KVGet(c, "default", "q", "a", time.Now()); e.Size != 6 || e.Version != 1 {
		t.Errorf("KVGet(a) after a refused overwrite = size %d version %d, want 6, 1", e.Size, e.Version)
	}
	kvSet(t, s, limited("q", "b", 4))                           // 10 of 10
	if e := kvSet(t, s, limited("q", "a", 6)); e.Version != 2 { // the old size does not count twice
		t.Errorf("KVSet(a, same size) = version %d, want 2 (the refused write used no number)", e.Version)
	}
	kvSet(t, s, limited("q", "a", 2)) // shrink: 6 of 10
	kvSet(t, s, limited("q", "d", 4)) // 10 of 10
	kvSet(t, s, limited("q", "e", 0)) // nothing added
	_, err = s.KVSet(c, limited("q", "f", 1), fakeSeal("f", "k"))
	wantErr(t, "KVSet(full bucket)", err, store.ErrTooLarge)

	// Expired entries do not count.
	past := time.Now().Add(-time.Minute)
	big := kw("q2", "old", 100)
	big.ExpiresAt = &past
	kvSet(t, s, big)
	kvSet(t, s, limited("q2", "new", 10))
	// Overwriting an expired key: its old size is not subtracted either.
	_, err = s.KVSet(c, limited("q2", "old", 1), fakeSeal("old", "k"))
	wantErr(t, "KVSet(over an expired key, bucket full)", err, store.ErrTooLarge)
	// Other buckets and no limit.
	kvSet(t, s, limited("other", "x", 10))
	kvSet(t, s, kw("q", "unlimited", 1000))
	// A delete frees room.
	if err := s.KVDelete(c, kw("q2", "new", 0)); err != nil {
		t.Fatal(err)
	}
	kvSet(t, s, limited("q2", "again", 10))

	b, err := s.KVBuckets(c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, x := range b {
		got[x.Bucket] = x.Bytes
	}
	if want := map[string]int64{"q": 1010, "q2": 10, "other": 10}; !maps.Equal(got, want) {
		t.Errorf("KVBuckets() bytes = %v, want %v", got, want)
	}
	ch, _ := s.KVChanges(c, store.KVChangeQuery{Bucket: "q"})
	if len(ch) != 7 {
		t.Errorf("KVChanges(q) = %d records, want 7 (refused writes leave none)", len(ch))
	}
}

func testKVListPrefix(t *testing.T, s store.Store) {
	c := ctx(t)
	keys := []string{"a", "a%", "a%x", "a_b", "ab", "abc", "b", "a\u00ff", "a\U0010FFFF", "a\U0010FFFFb",
		"\U0010FFFF", "\U0010FFFFz", "é", "éa", "ê", "\uD7FF", "\uD7FFx", "\uE000", "A", "a\\", "a\\b"}
	for _, k := range keys {
		kvSet(t, s, kw("p", k, len(k)))
	}
	kvSet(t, s, kw("other", "a", 1))
	past := time.Now().Add(-time.Minute)
	w := kw("p", "a-expired", 1)
	w.ExpiresAt = &past
	kvSet(t, s, w)

	now := time.Now()
	for _, prefix := range []string{"", "a", "a%", "a_", "a\\", "ab", "abc", "abcd", "a\U0010FFFF", "\U0010FFFF", "é", "\uD7FF", "A", "z"} {
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		sort.Strings(want) // byte-wise, as the store must compare
		got, err := s.KVList(c, "default", "p", prefix, "", 0, now)
		if err != nil {
			t.Errorf("KVList(prefix %q) = %v", prefix, err)
			continue
		}
		if !slices.Equal(kvKeys(got), append([]string{}, want...)) {
			t.Errorf("KVList(prefix %q) = %q, want %q", prefix, kvKeys(got), want)
		}
		for _, e := range got {
			if e.Sealed != nil || e.Version != 1 || e.Size != len(e.Key) {
				t.Errorf("KVList(prefix %q) entry %+v, want no Sealed, version 1, its size", prefix, e)
			}
		}
	}
}

func testKVListPaging(t *testing.T, s store.Store) {
	c := ctx(t)
	var keys []string
	for i := range 7 {
		k := fmt.Sprintf("item/%02d", i)
		keys = append(keys, k)
		kvSet(t, s, kw("page", k, 1))
	}
	kvSet(t, s, kw("page", "zzz", 1))
	now := time.Now()
	var seen []string
	after := ""
	for range 10 {
		got, err := s.KVList(c, "default", "page", "item/", after, 3, now)
		if err != nil {
			t.Fatalf("KVList(after %q) = %v", after, err)
		}
		if len(got) > 3 {
			t.Fatalf("KVList(limit 3) = %d entries", len(got))
		}
		if len(got) == 0 {
			break
		}
		seen = append(seen, kvKeys(got)...)
		after = got[len(got)-1].Key
	}
	if !slices.Equal(seen, keys) {
		t.Errorf("paging KVList(item/, limit 3) saw %q, want %q", seen, keys)
	}
	if got, _ := s.KVList(c, "default", "page", "", "item/03", 2, now); !slices.Equal(kvKeys(got), []string{"item/04", "item/05"}) {
		t.Errorf("KVList(after item/03, limit 2) = %q, want [item/04 item/05] (after is exclusive)", kvKeys(got))
	}
	if got, _ := s.KVList(c, "default", "page", "item/", "item/99", 0, now); len(got) != 0 {
		t.Errorf("KVList(after the last) = %q, want none", kvKeys(got))
	}
	if got, _ := s.KVList(c, "default", "page", "", "a", 0, now); len(got) != 8 {
		t.Errorf("KVList(after a key before all) = %d entries, want 8", len(got))
	}
}

func testKVListLimit(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 1001
	for i := range n {
		kvSet(t, s, kw("big", fmt.Sprintf("k%04d", i), 1))
	}
	now := time.Now()
	for _, tc := range []struct{ limit, want int }{{0, 1000}, {-1, 1000}, {5000, 1000}, {1000, 1000}, {7, 7}} {
		got, err := s.KVList(c, "default", "big", "", "", tc.limit, now)
		if err != nil || len(got) != tc.want {
			t.Errorf("KVList(limit %d) = %d entries, %v; want %d", tc.limit, len(got), err, tc.want)
			continue
		}
		if got[0].Key != "k0000" || got[len(got)-1].Key != fmt.Sprintf("k%04d", tc.want-1) {
			t.Errorf("KVList(limit %d) spans %q..%q, want the first %d keys", tc.limit, got[0].Key, got[len(got)-1].Key, tc.want)
		}
	}
}

func testKVBuckets(t *testing.T, s store.Store) {
	c := ctx(t)
	if b, err := s.KVBuckets(c, time.Now()); err != nil || len(b) != 0 {
		t.Errorf("KVBuckets() on an empty store = %+v, %v; want none", b, err)
	}
	for _, w := range []store.KVWrite{
		{Namespace: "b-ns", Bucket: "x", Key: "1", Size: 3},
		{Namespace: "a-ns", Bucket: "y", Key: "1", Size: 2},
		{Namespace: "a-ns", Bucket: "y", Key: "2", Size: 5},
		{Namespace: "a-ns", Bucket: "x", Key: "1", Size: 0},
		{Namespace: "a-ns", Bucket: "gone", Key: "1", Size: 9},
	} {
		kvSet(t, s, w)
	}
	if err := s.KVDelete(c, store.KVWrite{Namespace: "a-ns", Bucket: "gone", Key: "1"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.KVBuckets(c, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []store.KVBucket{
		{Namespace: "a-ns", Bucket: "x", Keys: 1, Bytes: 0},
		{Namespace: "a-ns", Bucket: "y", Keys: 2, Bytes: 7},
		{Namespace: "b-ns", Bucket: "x", Keys: 1, Bytes: 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("KVBuckets() = %+v, want %+v", got, want)
	}
}

func testKVChanges(t *testing.T, s store.Store) {
	c := ctx(t)
	before := time.Now()
	kvSet(t, s, store.KVWrite{Namespace: "default", Bucket: "orders", Key: "1", Size: 1, Function: "api", FunctionVersion: 3})
	kvSet(t, s, store.KVWrite{Namespace: "default", Bucket: "orders", Key: "2", Size: 1, Actor: "alice"})
	kvSet(t, s, store.KVWrite{Namespace: "default", Bucket: "carts", Key: "1", Size: 1, Function: "shop", FunctionVersion: 1})
	kvSet(t, s, store.KVWrite{Namespace: "other", Bucket: "orders", Key: "1", Size: 1})
	if err := s.KVDelete(c, store.KVWrite{Namespace: "default", Bucket: "orders", Key: "1", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	all, err := s.KVChanges(c, store.KVChangeQuery{})
	if err != nil || len(all) != 5 {
		t.Fatalf("KVChanges() = %+v, %v; want 5 records", all, err)
	}
	for i, x := range all {
		if i > 0 && x.ID <= all[i-1].ID {
			t.Errorf("KVChanges() IDs %d then %d, want increasing", all[i-1].ID, x.ID)
		}
		if !within(x.At, before.Add(-time.Second), after.Add(time.Second)) || x.At.Location() != time.UTC {
			t.Errorf("change %d At = %v, want about now in UTC", x.ID, x.At)
		}
	}
	first, last := all[0], all[4]
	if first.Op != store.KVOpSet || first.Namespace != "default" || first.Bucket != "orders" || first.Key != "1" ||
		first.Version != 1 || first.Function != "api" || first.FunctionVersion != 3 || first.Actor != "" {
		t.Errorf("first change = %+v, want set of default/orders 1 v1 by api v3", first)
	}
	if last.Op != store.KVOpDelete || last.Key != "1" || last.Version != 1 || last.Actor != "bob" || last.Function != "" {
		t.Errorf("last change = %+v, want delete of version 1 by bob", last)
	}
	if all[1].Actor != "alice" {
		t.Errorf("second change Actor = %q, want alice", all[1].Actor)
	}

	idsOf := func(q store.KVChangeQuery) []int64 {
		t.Helper()
		got, err := s.KVChanges(c, q)
		if err != nil {
			t.Fatalf("KVChanges(%+v) = %v", q, err)
		}
		out := []int64{}
		for _, x := range got {
			out = append(out, x.ID)
		}
		return out
	}
	id := func(i int) int64 { return all[i].ID }
	for _, tc := range []struct {
		q    store.KVChangeQuery
		want []int64
	}{
		{store.KVChangeQuery{Namespace: "default"}, []int64{id(0), id(1), id(2), id(4)}},
		{store.KVChangeQuery{Namespace: "default", Bucket: "orders"}, []int64{id(0), id(1), id(4)}},
		{store.KVChangeQuery{Bucket: "orders"}, []int64{id(0), id(1), id(3), id(4)}},
		{store.KVChangeQuery{AfterID: id(1)}, []int64{id(2), id(3), id(4)}},
		{store.KVChangeQuery{AfterID: id(1), Limit: 2}, []int64{id(2), id(3)}},
		{store.KVChangeQuery{Limit: -1}, []int64{id(0), id(1), id(2), id(3), id(4)}},
		{store.KVChangeQuery{AfterID: id(4)}, []int64{}},
		{store.KVChangeQuery{Namespace: "nope"}, []int64{}},
	} {
		if got := idsOf(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("KVChanges(%+v) IDs = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func testKVConcurrentSet(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 20
	var (
		mu   sync.Mutex
		nums []int
		wg   sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			e, err := s.KVSet(c, store.KVWrite{Namespace: "default", Bucket: "hot", Key: "counter", Size: 1, MaxBucketBytes: 1},
				fakeSeal("counter", "k1"))
			if err != nil {
				t.Errorf("concurrent KVSet = %v", err)
				return
			}
			mu.Lock()
			nums = append(nums, e.Version)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Ints(nums)
	if want := seq(1, n); !slices.Equal(nums, want) {
		t.Fatalf("concurrent KVSet versions = %v, want %v", nums, want)
	}
	got, err := s.KVGet(c, "default", "hot", "counter", time.Now())
	if err != nil || got.Version != n || !bytes.Equal(got.Sealed, sealedBytes("counter", n)) {
		t.Errorf("KVGet(counter) = %+v, %v; want version %d with its bytes", got, err, n)
	}
	ch, err := s.KVChanges(c, store.KVChangeQuery{Bucket: "hot"})
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for _, x := range ch {
		versions = append(versions, x.Version)
	}
	if want := seq(1, n); !slices.Equal(versions, want) {
		t.Errorf("KVChanges(hot) versions = %v, want %v in ID order", versions, want)
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// sealedFixture stores five values under key "old" (two secret versions, a
// live and an expired KV entry, a sealed TOTP seed), one under "new", a
// destroyed secret version and an unsealed TOTP seed, which RewrapSealed
// must leave alone.
func sealedFixture(t *testing.T, s store.Store) {
	t.Helper()
	c := ctx(t)
	for v := range 2 {
		if _, err := s.PutSecret(c, "default", "db", "", time.Hour, fakeSeal("db", "old")); err != nil {
			t.Fatalf("PutSecret(db %d) = %v", v+1, err)
		}
	}
	if _, err := s.PutSecret(c, "default", "gone", "", 0, fakeSeal("gone", "old")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSecret(c, "default", "gone", "", 0, fakeSeal("gone", "new")); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DestroyRetiredSecrets(c, time.Now().Add(time.Minute)); err != nil || len(d) != 1 {
		t.Fatalf("DestroyRetiredSecrets() = %+v, %v; want gone v1", d, err)
	}
	if _, err := s.KVSet(c, kw("b", "live", 1), fakeSeal("live", "old")); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	w := kw("b", "expired", 1)
	w.ExpiresAt = &past
	if _, err := s.KVSet(c, w, fakeSeal("expired", "old")); err != nil {
		t.Fatal(err)
	}
	for _, u := range []store.User{
		{Name: "alice", Role: "admin", PasswordHash: "h", TOTPSecret: "sealed(alice)", TOTPKeyID: "old"},
		{Name: "bob", Role: "admin", PasswordHash: "h", TOTPSecret: "PLAINBASE32"},
		{Name: "carol", Role: "admin", PasswordHash: "h"},
	} {
		if err := s.CreateUser(c, u); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.SealedKeyIDs(c); err != nil || !maps.Equal(got, map[string]int{"old": 5, "new": 1}) {
		t.Fatalf("SealedKeyIDs() = %v, %v; want old: 5, new: 1", got, err)
	}
}

func rewrapped(b []byte) []byte { return append([]byte("rewrapped:"), b...) }

func testRewrapSealed(t *testing.T, s store.Store) {
	c := ctx(t)
	if got, err := s.SealedKeyIDs(c); err != nil || len(got) != 0 {
		t.Errorf("SealedKeyIDs() on an empty store = %v, %v; want none", got, err)
	}
	if n, err := s.RewrapSealed(c, "new", 10, func(store.SealedRef, []byte) ([]byte, string, error) {
		t.Error("RewrapSealed called fn on an empty store")
		return nil, "", nil
	}); err != nil || n != 0 {
		t.Errorf("RewrapSealed() on an empty store = %d, %v; want 0", n, err)
	}
	sealedFixture(t, s)

	var refs []string
	var counts []int
	for range 10 {
		n, err := s.RewrapSealed(c, "new", 2, func(ref store.SealedRef, sealed []byte) ([]byte, string, error) {
			refs = append(refs, fmt.Sprintf("%s %s %s %s %s %d", ref.Kind, ref.Namespace, ref.Name, ref.Bucket, ref.Key, ref.Version))
			var want []byte
			switch ref.Kind {
			case store.SealedSecret:
				want = sealedBytes(ref.Name, ref.Version)
			case store.SealedKV:
				want = sealedBytes(ref.Key, ref.Version)
			case store.SealedTOTP:
				want = []byte("sealed(" + ref.Name + ")")
			}
			if !bytes.Equal(sealed, want) {
				t.Errorf("fn(%+v) got bytes %q, want %q", ref, sealed, want)
			}
			return rewrapped(sealed), "new", nil
		})
		if err != nil {
			t.Fatalf("RewrapSealed(limit 2) = %v", err)
		}
		counts = append(counts, n)
		if n == 0 {
			break
		}
	}
	if !slices.Equal(counts, []int{2, 2, 1, 0}) {
		t.Errorf("RewrapSealed(limit 2) over 5 values returned %v, want [2 2 1 0]", counts)
	}
	sort.Strings(refs)
	wantRefs := []string{
		"kv default  b expired 1",
		"kv default  b live 1",
		"secret default db   1",
		"secret default db   2",
		"totp  alice   0",
	}
	if !slices.Equal(refs, wantRefs) {
		t.Errorf("fn called for %q, want %q", refs, wantRefs)
	}
	if got, err := s.SealedKeyIDs(c); err != nil || !maps.Equal(got, map[string]int{"new": 6}) {
		t.Errorf("SealedKeyIDs() after rewrap = %v, %v; want new: 6", got, err)
	}
	for v := 1; v <= 2; v++ {
		got, err := s.SecretVersion(c, "default", "db", v)
		if err != nil || got.KeyID != "new" || !bytes.Equal(got.Sealed, rewrapped(sealedBytes("db", v))) {
			t.Errorf("SecretVersion(db, %d) after rewrap = %+v, %v; want new bytes under new", v, got, err)
		}
	}
	if got, err := s.KVGet(c, "default", "b", "live", time.Now()); err != nil || got.KeyID != "new" ||
		!bytes.Equal(got.Sealed, rewrapped(sealedBytes("live", 1))) || got.Version != 1 {
		t.Errorf("KVGet(live) after rewrap = %+v, %v; want new bytes under new, same version", got, err)
	}
	if u, err := s.User(c, "alice"); err != nil || u.TOTPKeyID != "new" || u.TOTPSecret != "rewrapped:sealed(alice)" {
		t.Errorf("User(alice) after rewrap = key %q secret %q, %v; want new, rewrapped:sealed(alice)", u.TOTPKeyID, u.TOTPSecret, err)
	}
	if u, err := s.User(c, "bob"); err != nil || u.TOTPKeyID != "" || u.TOTPSecret != "PLAINBASE32" {
		t.Errorf("User(bob) after rewrap = key %q secret %q, %v; want the unsealed seed untouched", u.TOTPKeyID, u.TOTPSecret, err)
	}
	if h, err := s.SecretHistory(c, "default", "gone"); err != nil || len(h) != 2 || h[1].KeyID != "old" || h[1].DestroyedAt == nil {
		t.Errorf("SecretHistory(gone) after rewrap = %+v, %v; want the destroyed version left under old", h, err)
	}
}

func testRewrapSealedErrors(t *testing.T, s store.Store) {
	c := ctx(t)
	sealedFixture(t, s)
	boom := errors.New("boom")
	calls := 0
	ok := func(_ store.SealedRef, b []byte) ([]byte, string, error) { return rewrapped(b), "new", nil }
	for _, tc := range []struct {
		name  string
		keep  string
		limit int
		fn    store.RewrapFunc
		want  error
	}{
		{"fn fails on the 4th value", "new", 0, func(ref store.SealedRef, b []byte) ([]byte, string, error) {
			calls++
			if calls == 4 {
				return nil, "", boom
			}
			return rewrapped(b), "new", nil
		}, boom},
		{"other key id", "new", 5, func(_ store.SealedRef, b []byte) ([]byte, string, error) { return rewrapped(b), "other", nil }, store.ErrInvalid},
		{"no bytes", "new", 5, func(store.SealedRef, []byte) ([]byte, string, error) { return nil, "new", nil }, store.ErrInvalid},
		{"empty keep", "", 5, ok, store.ErrInvalid},
	} {
		n, err := s.RewrapSealed(c, tc.keep, tc.limit, tc.fn)
		wantErr(t, "RewrapSealed("+tc.name+")", err, tc.want)
		if n != 0 {
			t.Errorf("RewrapSealed(%s) = %d, want 0", tc.name, n)
		}
	}
	if calls != 4 {
		t.Errorf("failing fn called %d times, want 4", calls)
	}
	if got, err := s.SealedKeyIDs(c); err != nil || !maps.Equal(got, map[string]int{"old": 5, "new": 1}) {
		t.Errorf("SealedKeyIDs() after failed rewraps = %v, %v; want old: 5, new: 1 (nothing stored)", got, err)
	}
	if got, _ := s.SecretVersion(c, "default", "db", 1); got.KeyID != "old" || !bytes.Equal(got.Sealed, sealedBytes("db", 1)) {
		t.Errorf("SecretVersion(db, 1) after failed rewraps = %+v, want the old bytes", got)
	}
	if u, _ := s.User(c, "alice"); u.TOTPSecret != "sealed(alice)" || u.TOTPKeyID != "old" {
		t.Errorf("User(alice) after failed rewraps = %q under %q, want the old seed", u.TOTPSecret, u.TOTPKeyID)
	}
}

func testUserTOTPKeyID(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, u := range []store.User{
		{Name: "alice", Role: "admin", PasswordHash: "h", TOTPSecret: "sealed-seed", TOTPKeyID: "k1"},
		{Name: "bob", Role: "admin", PasswordHash: "h", TOTPKeyID: "k1"}, // no secret: no key id
	} {
		if err := s.CreateUser(c, u); err != nil {
			t.Fatalf("CreateUser(%s) = %v", u.Name, err)
		}
	}
	if u, err := s.User(c, "alice"); err != nil || u.TOTPKeyID != "k1" || u.TOTPSecret != "sealed-seed" {
		t.Errorf("User(alice) = key %q secret %q, %v; want k1, sealed-seed", u.TOTPKeyID, u.TOTPSecret, err)
	}
	list, err := s.ListUsers(c)
	if err != nil || len(list) != 2 || list[0].TOTPKeyID != "k1" || list[1].TOTPKeyID != "" {
		t.Errorf("ListUsers() = %+v, %v; want alice under k1 and bob with no key id", list, err)
	}
	upd, err := s.UpdateUser(c, "alice", func(u *store.User) error { u.TOTPSecret, u.TOTPKeyID = "resealed", "k2"; return nil })
	if err != nil || upd.TOTPKeyID != "k2" {
		t.Errorf("UpdateUser(alice, k2) = %+v, %v; want key k2", upd, err)
	}
	if u, _ := s.User(c, "alice"); u.TOTPKeyID != "k2" || u.TOTPSecret != "resealed" {
		t.Errorf("User(alice) after update = key %q secret %q; want k2, resealed", u.TOTPKeyID, u.TOTPSecret)
	}
	upd, err = s.UpdateUser(c, "alice", func(u *store.User) error { u.TOTPSecret = ""; return nil })
	if err != nil || upd.TOTPKeyID != "" {
		t.Errorf("UpdateUser(alice, no secret) = key %q, %v; want the key id cleared with the secret", upd.TOTPKeyID, err)
	}
	if got, err := s.SealedKeyIDs(c); err != nil || len(got) != 0 {
		t.Errorf("SealedKeyIDs() = %v, %v; want none", got, err)
	}
}

var (
	t1 = time.Date(2030, 3, 1, 10, 0, 0, 0, time.UTC)
	t2 = t1.Add(time.Hour)
	t3 = t2.Add(time.Hour)
	t4 = t3.Add(time.Hour)
)

func use(version int, kind, target, mode string, first, last time.Time, count int64) store.GrantUse {
	return store.GrantUse{Namespace: "default", Function: "api", Version: version, Kind: kind, Target: target, Mode: mode,
		FirstUsed: first, LastUsed: last, Count: count}
}

func grantString(u store.GrantUse) string {
	return fmt.Sprintf("%s/%s v%d %s %s %s %s..%s x%d", u.Namespace, u.Function, u.Version, u.Kind, u.Target, u.Mode,
		u.FirstUsed.Format("15:04"), u.LastUsed.Format("15:04"), u.Count)
}

func testGrantUses(t *testing.T, s store.Store) {
	c := ctx(t)
	record := func(uses ...store.GrantUse) {
		t.Helper()
		if err := s.RecordGrantUses(c, uses); err != nil {
			t.Fatalf("RecordGrantUses() = %v", err)
		}
	}
	if err := s.RecordGrantUses(c, nil); err != nil {
		t.Errorf("RecordGrantUses(nil) = %v, want nil", err)
	}
	record(
		use(2, store.GrantKV, "cache", store.ModeWrite, t2, t3, 1),
		use(2, store.GrantKV, "cache", store.ModeRead, t2, t2, 4),
		use(1, store.GrantSecret, "db", store.ModeUse, t2, t2, 1),
		use(2, store.GrantEgress, "https://api.example", store.ModeUse, t2, t3, 2),
		use(2, store.GrantKV, "cache", store.ModeRead, t3, t3, 1), // same row in one batch: merged
	)
	other := use(2, store.GrantKV, "cache", store.ModeRead, t1, t4, 100)
	other.Function = "other"
	record(other)
	// Merging: first moves back only, last forward only, counts add.
	record(
		use(2, store.GrantKV, "cache", store.ModeWrite, t1, t2, 2), // earlier first, earlier last
		use(2, store.GrantKV, "cache", store.ModeRead, t3, t4, 5),  // later first, later last
	)
	// A zero end takes the other.
	record(use(1, store.GrantSecret, "db", store.ModeUse, time.Time{}, t4, 1))

	got, err := s.GrantUses(c, "default", "api", 0)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, u := range got {
		lines = append(lines, grantString(u))
		if u.FirstUsed.Location() != time.UTC {
			t.Errorf("FirstUsed location = %v, want UTC", u.FirstUsed.Location())
		}
	}
	want := []string{
		"default/api v1 secret db use 11:00..13:00 x2",
		"default/api v2 egress https://api.example use 11:00..12:00 x2",
		"default/api v2 kv cache read 11:00..13:00 x10",
		"default/api v2 kv cache write 10:00..12:00 x3",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("GrantUses(api, 0) =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if got, _ := s.GrantUses(c, "default", "api", 1); len(got) != 1 || got[0].Kind != store.GrantSecret {
		t.Errorf("GrantUses(api, 1) = %+v, want only the secret use", got)
	}
	if got, err := s.GrantUses(c, "default", "api", 3); err != nil || len(got) != 0 {
		t.Errorf("GrantUses(api, 3) = %+v, %v; want none", got, err)
	}
	if got, _ := s.GrantUses(c, "default", "other", 0); len(got) != 1 || got[0].Count != 100 {
		t.Errorf("GrantUses(other) = %+v, want its one row", got)
	}
	if got, _ := s.GrantUses(c, "elsewhere", "api", 0); len(got) != 0 {
		t.Errorf("GrantUses(elsewhere/api) = %+v, want none", got)
	}

	// Both times zero: now.
	before := time.Now()
	record(use(5, store.GrantSecret, "x", store.ModeUse, time.Time{}, time.Time{}, 1))
	if got, _ := s.GrantUses(c, "default", "api", 5); len(got) != 1 ||
		!within(got[0].FirstUsed, before.Add(-time.Second), time.Now().Add(time.Second)) || !got[0].FirstUsed.Equal(got[0].LastUsed) {
		t.Errorf("GrantUses(api, 5) = %+v, want zero times recorded as now", got)
	}
}

func testGrantUseErrors(t *testing.T, s store.Store) {
	c := ctx(t)
	good := use(1, store.GrantKV, "cache", store.ModeRead, t1, t2, 1)
	for _, tc := range []struct {
		name string
		edit func(u *store.GrantUse)
	}{
		{"no namespace", func(u *store.GrantUse) { u.Namespace = "" }},
		{"no function", func(u *store.GrantUse) { u.Function = "" }},
		{"no target", func(u *store.GrantUse) { u.Target = "" }},
		{"version 0", func(u *store.GrantUse) { u.Version = 0 }},
		{"unknown kind", func(u *store.GrantUse) { u.Kind = "disk" }},
		{"unknown mode", func(u *store.GrantUse) { u.Mode = "delete" }},
		{"negative count", func(u *store.GrantUse) { u.Count = -1 }},
		{"first after last", func(u *store.GrantUse) { u.FirstUsed, u.LastUsed = t2, t1 }},
	} {
		bad := good
		tc.edit(&bad)
		err := s.RecordGrantUses(c, []store.GrantUse{good, bad})
		wantErr(t, "RecordGrantUses("+tc.name+")", err, store.ErrInvalid)
	}
	if got, err := s.GrantUses(c, "default", "api", 0); err != nil || len(got) != 0 {
		t.Errorf("GrantUses() after refused batches = %+v, %v; want none (a batch is all or nothing)", got, err)
	}
}

func stat(ns, fn, origin string, calls, errs int64, first, last time.Time) store.EgressStat {
	return store.EgressStat{Namespace: ns, Function: fn, Origin: origin, Calls: calls, Errors: errs,
		BytesOut: calls * 10, BytesIn: calls * 100, Duration: time.Duration(calls) * time.Millisecond, FirstAt: first, LastAt: last}
}

func testEgress(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.RecordEgress(c, nil); err != nil {
		t.Errorf("RecordEgress(nil) = %v, want nil", err)
	}
	if err := s.RecordEgress(c, []store.EgressStat{
		stat("default", "api", "https://b.example", 2, 1, t2, t3),
		stat("default", "api", "https://a.example", 1, 0, t2, t2),
		stat("other", "api", "https://a.example", 1, 0, t1, t1),
		stat("default", "cron", "https://a.example", 3, 0, t1, t2),
		stat("default", "api", "https://b.example", 1, 0, t3, t3), // same row in one batch
	}); err != nil {
		t.Fatalf("RecordEgress() = %v", err)
	}
	if err := s.RecordEgress(c, []store.EgressStat{
		stat("default", "api", "https://b.example", 4, 2, t1, t2), // earlier first, earlier last
		stat("default", "api", "https://a.example", 1, 1, t3, t4), // later first, later last
	}); err != nil {
		t.Fatalf("RecordEgress() = %v", err)
	}
	got, err := s.EgressStats(c, "default", "api")
	if err != nil {
		t.Fatal(err)
	}
	want := []store.EgressStat{
		{Namespace: "default", Function: "api", Origin: "https://a.example", Calls: 2, Errors: 1, BytesOut: 20, BytesIn: 200,
			Duration: 2 * time.Millisecond, FirstAt: t2, LastAt: t4},
		{Namespace: "default", Function: "api", Origin: "https://b.example", Calls: 7, Errors: 3, BytesOut: 70, BytesIn: 700,
			Duration: 7 * time.Millisecond, FirstAt: t1, LastAt: t3},
	}
	if !slices.EqualFunc(got, want, func(a, b store.EgressStat) bool {
		return a.Namespace == b.Namespace && a.Function == b.Function && a.Origin == b.Origin && a.Calls == b.Calls &&
			a.Errors == b.Errors && a.BytesOut == b.BytesOut && a.BytesIn == b.BytesIn && a.Duration == b.Duration &&
			a.FirstAt.Equal(b.FirstAt) && a.LastAt.Equal(b.LastAt)
	}) {
		t.Errorf("EgressStats(default, api) = %+v, want %+v", got, want)
	}

	rowsOf := func(ns, fn string) []string {
		t.Helper()
		got, err := s.EgressStats(c, ns, fn)
		if err != nil {
			t.Fatalf("EgressStats(%q, %q) = %v", ns, fn, err)
		}
		out := []string{}
		for _, x := range got {
			out = append(out, x.Namespace+"/"+x.Function+" "+strings.TrimPrefix(x.Origin, "https://"))
		}
		return out
	}
	for _, tc := range []struct {
		ns, fn string
		want   []string
	}{
		{"", "", []string{"default/api a.example", "default/api b.example", "default/cron a.example", "other/api a.example"}},
		{"default", "", []string{"default/api a.example", "default/api b.example", "default/cron a.example"}},
		{"", "api", []string{"default/api a.example", "default/api b.example", "other/api a.example"}},
		{"other", "api", []string{"other/api a.example"}},
		{"default", "nope", []string{}},
	} {
		if got := rowsOf(tc.ns, tc.fn); !slices.Equal(got, tc.want) {
			t.Errorf("EgressStats(%q, %q) = %q, want %q", tc.ns, tc.fn, got, tc.want)
		}
	}
}

func testEgressErrors(t *testing.T, s store.Store) {
	c := ctx(t)
	good := stat("default", "api", "https://a.example", 1, 0, t1, t2)
	for _, tc := range []struct {
		name string
		edit func(x *store.EgressStat)
	}{
		{"no namespace", func(x *store.EgressStat) { x.Namespace = "" }},
		{"no function", func(x *store.EgressStat) { x.Function = "" }},
		{"no origin", func(x *store.EgressStat) { x.Origin = "" }},
		{"negative calls", func(x *store.EgressStat) { x.Calls = -1 }},
		{"negative duration", func(x *store.EgressStat) { x.Duration = -1 }},
		{"first after last", func(x *store.EgressStat) { x.FirstAt, x.LastAt = t2, t1 }},
	} {
		bad := good
		tc.edit(&bad)
		wantErr(t, "RecordEgress("+tc.name+")", s.RecordEgress(c, []store.EgressStat{good, bad}), store.ErrInvalid)
	}
	if got, err := s.EgressStats(c, "", ""); err != nil || len(got) != 0 {
		t.Errorf("EgressStats() after refused batches = %+v, %v; want none", got, err)
	}
}
