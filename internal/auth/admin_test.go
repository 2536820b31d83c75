package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/store"
)

// memCreds is a minimal in-memory store.Credentials for these tests.
type memCreds struct {
	mu    sync.Mutex
	m     map[string]store.Credential
	err   error
	reads int
}

func (s *memCreds) CreateCredential(_ context.Context, c store.Credential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[c.ID] = c
	return nil
}
func (s *memCreds) Credential(_ context.Context, id string) (store.Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return store.Credential{}, s.err
	}
	c, ok := s.m[id]
	if !ok {
		return c, store.ErrNotFound
	}
	return c, nil
}
func (s *memCreds) ListCredentials(context.Context) ([]store.Credential, error) { return nil, nil }
func (s *memCreds) RevokeCredential(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[id]
	c.RevokedAt = &at
	s.m[id] = c
	return nil
}

func TestAdminTokenVerify(t *testing.T) {
	st := &memCreds{m: map[string]store.Credential{}}
	a := &Admin{Store: st}
	tok, c, err := NewAdminToken("bootstrap", RoleAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(c.Hash), tok[len(tok)-43:]) {
		t.Fatal("the stored credential contains the secret")
	}
	st.CreateCredential(context.Background(), c)
	p, _, err := a.Verify(context.Background(), tok)
	if err != nil || p.ID != c.ID || p.Role != RoleAdmin {
		t.Fatalf("Verify(valid) = %+v, %v", p, err)
	}
	flip := []byte(tok)
	flip[len(flip)-1] ^= 1
	other, _, _ := NewAdminToken("x", RoleAdmin, time.Now())
	cases := map[string]string{
		"empty":            "",
		"wrong secret":     string(flip),
		"unknown id":       other,
		"prefix only":      "wdn_adm_",
		"other id":         tok[:8] + "ffffffffffff" + tok[20:],
		"non-hex id":       tok[:8] + "zzzzzzzzzzzz" + tok[20:],
		"trailing space":   tok + " ",
		"missing char":     tok[:len(tok)-1],
		"api-key-like":     "wdn_key_" + tok[8:],
		"uppercase prefix": strings.ToUpper(tok[:8]) + tok[8:],
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := a.Verify(context.Background(), bad); !errors.Is(err, ErrInvalidCredential) {
				t.Fatalf("Verify(%s) err = %v, want ErrInvalidCredential", name, err)
			}
		})
	}
	st.RevokeCredential(context.Background(), c.ID, time.Now())
	if _, _, err := a.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("Verify(revoked) err = %v, want ErrInvalidCredential", err)
	}
	// Fail closed: a store error is an error, never a pass.
	st.mu.Lock()
	st.err = errors.New("disk on fire")
	st.mu.Unlock()
	if _, _, err := a.Verify(context.Background(), other); err == nil || errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("Verify with a failing store err = %v, want a non-credential error", err)
	}
}

func FuzzParseAdminToken(f *testing.F) {
	tok, _, _ := NewAdminToken("f", RoleAdmin, time.Now())
	f.Add(tok)
	f.Add("wdn_adm_000000000000_" + strings.Repeat("A", 43))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := ParseAdminToken(s)
		if !ok {
			return
		}
		if s != adminPrefix+id+"_"+secret || len(id) != idLen || len(secret) != secretLen {
			t.Fatalf("ParseAdminToken(%q) = %q, %q: does not reassemble", s, id, secret)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	st := &memCreds{m: map[string]store.Credential{}}
	tok, c, _ := NewAdminToken("b", RoleAdmin, time.Now())
	st.CreateCredential(context.Background(), c)
	a := &Admin{Store: st}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

func (s *memCreds) TouchCredential(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[id]
	if !ok {
		return store.ErrNotFound
	}
	c.LastUsedAt = &at
	s.m[id] = c
	return nil
}
