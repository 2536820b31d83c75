package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"warden/internal/store"
)

// RunScan is the shared suite for store.Advisories, store.Findings and
// store.Policies.
func RunScan(t *testing.T, open func(t *testing.T) interface {
	store.Advisories
	store.Findings
	store.Policies
}) {
	c := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("Advisories", func(t *testing.T) {
		s := open(t)
		a := store.Advisory{ID: "GO-2022-1059", Modified: t0, Raw: []byte(`{"id":"GO-2022-1059"}`)}
		b := store.Advisory{ID: "GO-2024-2687", Modified: t0, Raw: []byte(`{"id":"GO-2024-2687"}`)}
		if added, updated, err := s.PutAdvisories(c, []store.Advisory{a, b}); err != nil || added != 2 || updated != 0 {
			t.Fatalf("PutAdvisories = %d, %d, %v; want 2 added", added, updated, err)
		}
		older := a
		older.Modified, older.Raw = t0.Add(-time.Hour), []byte(`old`)
		newer := b
		newer.Modified, newer.Raw = t0.Add(time.Hour), []byte(`{"id":"GO-2024-2687","v":2}`)
		if added, updated, err := s.PutAdvisories(c, []store.Advisory{older, newer}); err != nil || added != 0 || updated != 1 {
			t.Fatalf("PutAdvisories(older, newer) = %d, %d, %v; want only the newer one updated", added, updated, err)
		}
		if _, _, err := s.PutAdvisories(c, []store.Advisory{{ID: "x"}}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("PutAdvisories(no content) = %v, want ErrInvalid", err)
		}
		all, err := s.Advisories(c)
		if err != nil || len(all) != 2 || string(all[0].Raw) != `{"id":"GO-2022-1059"}` || string(all[1].Raw) != string(newer.Raw) || !all[1].Modified.Equal(newer.Modified) {
			t.Fatalf("Advisories = %+v, %v", all, err)
		}
	})
	t.Run("Findings", func(t *testing.T) {
		s := open(t)
		vuln := store.Finding{Fingerprint: "v1", Kind: "vulnerability", Rule: "GO-2022-1059", Severity: "high", Message: "m",
			Module: "golang.org/x/text", Found: "v0.3.7", Fixed: "v0.3.8", Aliases: []string{"CVE-2022-32149"}}
		lint := store.Finding{Fingerprint: "l1", Kind: "lint", Rule: "lint.dlp-off", Severity: "medium", Message: "dlp off", Location: "warden.yaml:7"}
		if err := s.SetFindings(c, "ns", "fn", 1, nil, []store.Finding{vuln, lint}, t0); err != nil {
			t.Fatal(err)
		}
		got, err := s.Findings(c, "ns", "fn", true)
		if err != nil || len(got) != 2 || got[0].Rule != "GO-2022-1059" || got[1].Rule != "lint.dlp-off" ||
			len(got[0].Aliases) != 1 || got[0].Fixed != "v0.3.8" || !got[0].FirstSeen.Equal(t0) {
			t.Fatalf("Findings = %+v, %v; want the high one first", got, err)
		}
		// A vulnerability re-match that no longer finds it resolves it and
		// leaves the lint finding alone.
		t1 := t0.Add(time.Hour)
		if err := s.SetFindings(c, "ns", "fn", 1, []string{"vulnerability"}, nil, t1); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Findings(c, "ns", "fn", true)
		if len(got) != 1 || got[0].Kind != "lint" {
			t.Fatalf("open findings after the re-match = %+v, want the lint finding only", got)
		}
		all, _ := s.Findings(c, "ns", "", false)
		if len(all) != 2 || all[0].ResolvedAt == nil || !all[0].ResolvedAt.Equal(t1) {
			t.Fatalf("all findings = %+v, want the vulnerability resolved at t1", all)
		}
		// Found again: reopened, first seen kept.
		t2 := t1.Add(time.Hour)
		if err := s.SetFindings(c, "ns", "fn", 1, []string{"vulnerability"}, []store.Finding{vuln}, t2); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Findings(c, "ns", "fn", true)
		if len(got) != 2 || got[0].ResolvedAt != nil || !got[0].FirstSeen.Equal(t0) || !got[0].LastSeen.Equal(t2) {
			t.Fatalf("reopened finding = %+v", got)
		}
		for _, bad := range [][]store.Finding{{{Kind: "lint"}}, {lint, lint}} {
			if err := s.SetFindings(c, "ns", "fn", 1, nil, bad, t2); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("SetFindings(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		if err := s.SetFindings(c, "ns", "fn", 1, []string{"vulnerability"}, []store.Finding{lint}, t2); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("SetFindings(kind outside kinds) = %v, want ErrInvalid", err)
		}
		if other, _ := s.Findings(c, "other", "", false); len(other) != 0 {
			t.Fatalf("findings of another namespace = %+v", other)
		}
	})
	t.Run("Policies", func(t *testing.T) {
		s := open(t)
		if _, err := s.Policy(c, "ns"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Policy(none) = %v, want ErrNotFound", err)
		}
		p := store.Policy{Namespace: "ns", Source: []byte("package warden.deploy\n"), Digest: "d1", SetBy: "root", SetAt: t0}
		if err := s.SetPolicy(c, p); err != nil {
			t.Fatal(err)
		}
		p.Source, p.Digest = []byte("package warden.deploy\n# 2\n"), "d2"
		if err := s.SetPolicy(c, p); err != nil {
			t.Fatal(err)
		}
		got, err := s.Policy(c, "ns")
		if err != nil || got.Digest != "d2" || string(got.Source) != string(p.Source) || got.SetBy != "root" || !got.SetAt.Equal(t0) {
			t.Fatalf("Policy = %+v, %v", got, err)
		}
		if err := s.SetPolicy(c, store.Policy{Namespace: "ns"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("SetPolicy(empty) = %v, want ErrInvalid", err)
		}
		if err := s.DeletePolicy(c, "ns"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePolicy(c, "ns"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeletePolicy twice = %v, want ErrNotFound", err)
		}
	})
}
