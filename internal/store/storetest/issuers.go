package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"warden/internal/store"
)

// RunIssuers is the shared suite for store.Issuers.
func RunIssuers(t *testing.T, open func(t *testing.T) store.Issuers) {
	t.Run("Issuers", func(t *testing.T) {
		s := open(t)
		c := context.Background()
		t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		a := store.Issuer{Name: "corp", Issuer: "https://id.example", Audience: "warden", JWKSURL: "https://id.example/jwks", CreatedAt: t0}
		b := store.Issuer{Name: "alpha", Issuer: "x", Audience: "y", JWKS: []byte(`{"keys":[]}`), CreatedAt: t0}
		for _, iss := range []store.Issuer{a, b} {
			if err := s.CreateIssuer(c, iss); err != nil {
				t.Fatalf("CreateIssuer(%s) = %v", iss.Name, err)
			}
		}
		if err := s.CreateIssuer(c, a); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("CreateIssuer twice = %v, want ErrConflict", err)
		}
		if err := s.CreateIssuer(c, store.Issuer{}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("CreateIssuer(no name) = %v, want ErrInvalid", err)
		}
		list, err := s.ListIssuers(c)
		if err != nil || len(list) != 2 || list[0].Name != "alpha" || string(list[0].JWKS) != `{"keys":[]}` ||
			list[1].JWKSURL != a.JWKSURL || list[1].JWKS != nil || !list[1].CreatedAt.Equal(t0) {
			t.Fatalf("ListIssuers = %+v, %v", list, err)
		}
		if err := s.DeleteIssuer(c, "corp"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteIssuer(c, "corp"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeleteIssuer twice = %v, want ErrNotFound", err)
		}
		if list, _ := s.ListIssuers(c); len(list) != 1 {
			t.Fatalf("after delete ListIssuers = %+v", list)
		}
	})
}
