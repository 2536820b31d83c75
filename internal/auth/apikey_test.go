package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"warden/internal/store"
)

func TestAPIKeys(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	st := &memCreds{m: map[string]store.Credential{}}
	k := &APIKeys{Store: st, Now: clock, CacheTTL: time.Second, TouchEvery: time.Hour}
	ctx := context.Background()

	key, c, err := NewAPIKey("ci", []string{"orders:write"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	st.CreateCredential(ctx, c)
	if !strings.HasPrefix(key, "wdn_key_") || KeyID(key) != c.ID {
		t.Fatalf("key %q: want prefix wdn_key_ and id %s", key[:20], c.ID)
	}
	id, err := k.Verify(ctx, key)
	if err != nil || id.ID != c.ID || id.Subject != "ci" || id.Method != "apikey" {
		t.Fatalf("Verify(valid) = %+v, %v", id, err)
	}
	if _, ok := id.HasScopes([]string{"orders:write"}); !ok {
		t.Fatal("HasScopes(orders:write) = false")
	}
	if missing, ok := id.HasScopes([]string{"orders:write", "orders:delete"}); ok || missing != "orders:delete" {
		t.Fatalf("HasScopes = %q, %v; want orders:delete missing", missing, ok)
	}

	// Cached: a second call reads nothing from the store.
	reads := st.reads
	k.Verify(ctx, key)
	if st.reads != reads {
		t.Fatalf("store reads %d → %d: a verified key should be cached", reads, st.reads)
	}

	admin, ac, _ := NewAdminToken("root", RoleAdmin, now)
	st.CreateCredential(ctx, ac)
	flip := []byte(key)
	flip[len(flip)-1] ^= 1
	other, _, _ := NewAPIKey("other", nil, 0, now)
	bad := map[string]string{
		"empty":             "",
		"wrong secret":      string(flip),
		"unknown key":       other,
		"admin token":       admin,
		"admin-shaped key":  "wdn_adm_" + key[8:],
		"key-shaped admin":  "wdn_key_" + admin[8:],
		"truncated":         key[:len(key)-1],
		"bearer-prefixed":   "Bearer " + key,
		"whitespace suffix": key + "\n",
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := k.Verify(ctx, tok)
			if !errors.Is(err, ErrInvalidCredential) {
				t.Fatalf("Verify(%s) = %v, want ErrInvalidCredential", name, err)
			}
			if tok != "" && strings.Contains(err.Error(), tok[len(tok)/2:]) {
				t.Fatalf("error %q contains the credential", err)
			}
		})
	}

	// Revocation: at once after Forget; within CacheTTL without it.
	st.RevokeCredential(ctx, c.ID, now)
	k.Forget(c.ID)
	if _, err := k.Verify(ctx, key); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("Verify(revoked) = %v", err)
	}

	key2, c2, _ := NewAPIKey("short", nil, time.Minute, now)
	st.CreateCredential(ctx, c2)
	if _, err := k.Verify(ctx, key2); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := k.Verify(ctx, key2); !errors.Is(err, ErrInvalidCredential) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Verify(expired) = %v", err)
	}

	key3, c3, _ := NewAPIKey("ttl", nil, 0, now)
	st.CreateCredential(ctx, c3)
	k.Verify(ctx, key3)
	st.RevokeCredential(ctx, c3.ID, now) // another node revoked it: no Forget here
	now = now.Add(2 * time.Second)       // past CacheTTL
	if _, err := k.Verify(ctx, key3); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("Verify after revocation and CacheTTL = %v, want refused", err)
	}

	// Fail closed.
	key4, c4, _ := NewAPIKey("x", nil, 0, now)
	st.CreateCredential(ctx, c4)
	st.mu.Lock()
	st.err = errors.New("store down")
	st.mu.Unlock()
	if _, err := k.Verify(ctx, key4); err == nil || errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("Verify with the store down = %v, want a non-credential error", err)
	}
}

func BenchmarkAPIKeyVerify(b *testing.B) {
	st := &memCreds{m: map[string]store.Credential{}}
	key, c, _ := NewAPIKey("b", []string{"s"}, 0, time.Now())
	st.CreateCredential(context.Background(), c)
	k := &APIKeys{Store: st, CacheTTL: time.Hour, TouchEvery: time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Verify(context.Background(), key); err != nil {
			b.Fatal(err)
		}
	}
}
