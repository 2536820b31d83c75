package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"warden/internal/store"
)

// RunTrust is the shared suite for store.Trust.
func RunTrust(t *testing.T, open func(t *testing.T) store.Trust) {
	t.Run("Trust", func(t *testing.T) {
		s := open(t)
		c := context.Background()
		t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		exp := t0.Add(24 * time.Hour)
		id1, id2 := strings.Repeat("a", 64), strings.Repeat("b", 64)

		p, err := s.SigningPolicy(c, "default")
		if err != nil || p.Mode != store.SigningOff || p.ModeSet || len(p.Keys) != 0 {
			t.Fatalf("SigningPolicy(new namespace) = %+v, %v; want off, no keys", p, err)
		}
		k1 := store.TrustedKey{Namespace: "default", ID: id1, Name: "ci", Algorithm: "ed25519", PEM: []byte("pem1"), AddedBy: "root", AddedAt: t0}
		k2 := store.TrustedKey{Namespace: "default", ID: id2, Name: "laptop", Algorithm: "ecdsa-p256", PEM: []byte("pem2"), AddedBy: "root", AddedAt: t0.Add(time.Second), ExpiresAt: &exp}
		for _, k := range []store.TrustedKey{k1, k2} {
			if err := s.AddTrustedKey(c, k); err != nil {
				t.Fatalf("AddTrustedKey(%s) = %v", k.Name, err)
			}
		}
		if err := s.AddTrustedKey(c, k1); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("AddTrustedKey twice = %v, want ErrConflict", err)
		}
		for _, bad := range []store.TrustedKey{{ID: id1, PEM: []byte("x")}, {Namespace: "ns", ID: "short", PEM: []byte("x")}, {Namespace: "ns", ID: id1}} {
			if err := s.AddTrustedKey(c, bad); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("AddTrustedKey(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		// The same key may be trusted by another namespace.
		other := k1
		other.Namespace = "team"
		if err := s.AddTrustedKey(c, other); err != nil {
			t.Fatalf("AddTrustedKey(other namespace) = %v", err)
		}
		p, err = s.SigningPolicy(c, "default")
		if err != nil || p.Mode != store.SigningEnforce || p.ModeSet || len(p.Keys) != 2 ||
			p.Keys[0].ID != id1 || p.Keys[1].ID != id2 || string(p.Keys[1].PEM) != "pem2" ||
			p.Keys[1].ExpiresAt == nil || !p.Keys[1].ExpiresAt.Equal(exp) || p.Keys[0].ExpiresAt != nil {
			t.Fatalf("SigningPolicy = %+v, %v; want enforce with both keys", p, err)
		}
		if !p.Keys[1].Valid(t0) || p.Keys[1].Valid(exp) {
			t.Errorf("Valid: a key is valid before its expiry and not at it")
		}

		at := t0.Add(time.Hour)
		if err := s.RevokeTrustedKey(c, "default", id1, "alice", at); err != nil {
			t.Fatalf("RevokeTrustedKey = %v", err)
		}
		if err := s.RevokeTrustedKey(c, "default", id1, "alice", at); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("RevokeTrustedKey twice = %v, want ErrConflict", err)
		}
		if err := s.RevokeTrustedKey(c, "default", strings.Repeat("c", 64), "alice", at); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeTrustedKey(unknown) = %v, want ErrNotFound", err)
		}
		if err := s.AddTrustedKey(c, k1); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("AddTrustedKey(revoked) = %v, want ErrConflict: a revoked key is never trusted again", err)
		}
		p, _ = s.SigningPolicy(c, "default")
		if r := p.Keys[0]; r.RevokedAt == nil || !r.RevokedAt.Equal(at) || r.RevokedBy != "alice" || r.Valid(t0) {
			t.Fatalf("revoked key = %+v", r)
		}
		if p2, _ := s.SigningPolicy(c, "team"); len(p2.Keys) != 1 || !p2.Keys[0].Valid(t0) {
			t.Fatalf("revoking in default changed team: %+v", p2)
		}

		// All keys revoked: still enforcing (fail closed).
		if err := s.RevokeTrustedKey(c, "default", id2, "alice", at); err != nil {
			t.Fatal(err)
		}
		if p, _ = s.SigningPolicy(c, "default"); p.Mode != store.SigningEnforce {
			t.Fatalf("mode with every key revoked = %s, want enforce", p.Mode)
		}

		if err := s.SetSigningMode(c, "default", store.SigningWarn, "root"); err != nil {
			t.Fatal(err)
		}
		if p, _ = s.SigningPolicy(c, "default"); p.Mode != store.SigningWarn || !p.ModeSet {
			t.Fatalf("mode after set = %+v", p)
		}
		if err := s.SetSigningMode(c, "default", store.SigningEnforce, "root"); err != nil {
			t.Fatal(err)
		}
		if p, _ = s.SigningPolicy(c, "default"); p.Mode != store.SigningEnforce || !p.ModeSet {
			t.Fatalf("mode after second set = %+v", p)
		}
		for _, m := range []string{"", "off", "ENFORCE"} {
			if err := s.SetSigningMode(c, "default", m, "root"); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("SetSigningMode(%q) = %v, want ErrInvalid", m, err)
			}
		}
		// A mode without keys.
		if err := s.SetSigningMode(c, "empty", store.SigningWarn, "root"); err != nil {
			t.Fatal(err)
		}
		all, err := s.SigningPolicies(c)
		if err != nil || len(all) != 3 || all[0].Namespace != "default" || all[1].Namespace != "empty" || all[2].Namespace != "team" ||
			all[1].Mode != store.SigningWarn || len(all[1].Keys) != 0 || all[2].Mode != store.SigningEnforce || len(all[0].Keys) != 2 {
			t.Fatalf("SigningPolicies = %+v, %v", all, err)
		}
	})
}
