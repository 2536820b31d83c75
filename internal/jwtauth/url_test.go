package jwtauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksServer serves a replaceable JWKS (or an error status) over TLS on
// loopback and counts requests.
type jwksServer struct {
	*httptest.Server
	hits   atomic.Int64
	body   atomic.Pointer[[]byte]
	status atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{}
	s.body.Store(&body)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if st := int(s.status.Load()); st != http.StatusOK {
			w.WriteHeader(st)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func newURLVerifier(t *testing.T, s *jwksServer, opt Options) (*Verifier, *fakeClock, chan struct{}) {
	t.Helper()
	clk := newClock()
	opt.Now = clk.Now
	opt.HTTPClient = s.Client()
	v, err := New(Issuer{Name: "url", Issuer: testIss, Audience: testAud, JWKSURL: s.URL + "/jwks"}, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	fetched := make(chan struct{}, 100)
	v.afterFetch = func() { fetched <- struct{}{} }
	return v, clk, fetched
}

func waitFetch(t *testing.T, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no JWKS fetch finished within 10s")
	}
}

func TestURLFetchAndCache(t *testing.T) {
	s := newJWKSServer(t, stdJWKS(t))
	v, _, _ := newURLVerifier(t, s, Options{CacheSize: -1})
	for i, kid := range []string{"rsa1", "ec1", "ed1", "ec1", "rsa1"} {
		if _, err := v.Verify(context.Background(), tok(t, kid, claimsAt(t0))); err != nil {
			t.Fatalf("Verify #%d (%s) = %v, want nil", i, kid, err)
		}
	}
	if got := s.hits.Load(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

func TestURLUnknownKidBurst(t *testing.T) {
	s := newJWKSServer(t, stdJWKS(t))
	v, clk, _ := newURLVerifier(t, s, Options{})
	if _, err := v.Verify(context.Background(), tok(t, "ec1", claimsAt(t0))); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	clk.Advance(time.Minute) // past MinRefreshGap
	k := keys(t)
	randKid := func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for i := 0; i < 100; i++ {
		tk := hdrTok(t, map[string]any{"alg": "ES256", "kid": randKid()}, claimsAt(t0), "ES256", k.ec)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(context.Background(), tk)
			if err == nil {
				accepted.Add(1)
			} else if !strings.Contains(err.Error(), "unknown kid") {
				t.Errorf("Verify(random kid) = %v, want unknown kid", err)
			}
		}()
	}
	wg.Wait()
	// And 100 more in sequence.
	for i := 0; i < 100; i++ {
		tk := hdrTok(t, map[string]any{"alg": "ES256", "kid": randKid()}, claimsAt(t0), "ES256", k.ec)
		if _, err := v.Verify(context.Background(), tk); err == nil {
			accepted.Add(1)
		}
	}
	if accepted.Load() != 0 {
		t.Errorf("%d random-kid tokens accepted, want 0", accepted.Load())
	}
	if got := s.hits.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2 (initial + at most 1 for the burst)", got)
	}
}

func TestURLRotation(t *testing.T) {
	k := keys(t)
	s := newJWKSServer(t, jwks(t, ecJWK(t, &k.ec.PublicKey, map[string]any{"kid": "ec1"})))
	v, clk, _ := newURLVerifier(t, s, Options{})
	ecTok := tok(t, "ec1", claimsAt(t0))
	if _, err := v.Verify(context.Background(), ecTok); err != nil {
		t.Fatalf("Verify(ec1) = %v", err)
	}
	// The issuer rotates: ec1 out, ed1 in.
	b := jwks(t, edJWK(k.ed.Public().(ed25519.PublicKey), map[string]any{"kid": "ed1"}))
	s.body.Store(&b)
	edTok := tok(t, "ed1", claimsAt(t0))
	if _, err := v.Verify(context.Background(), edTok); err == nil {
		t.Fatal("Verify(ed1) within MinRefreshGap = nil, want unknown kid (no refetch yet)")
	}
	clk.Advance(31 * time.Second)
	if _, err := v.Verify(context.Background(), edTok); err != nil {
		t.Fatalf("Verify(ed1) after gap = %v, want nil (refetched)", err)
	}
	// ec1 was removed: its cached token must not be accepted any more.
	if _, err := v.Verify(context.Background(), ecTok); err == nil {
		t.Error("Verify(cached ec1 token after ec1 was removed) = nil, want an error")
	}
	if got := s.hits.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2", got)
	}
}

func TestURLStaleRefreshKeepsOldKeysOnFailure(t *testing.T) {
	s := newJWKSServer(t, stdJWKS(t))
	v, clk, fetched := newURLVerifier(t, s, Options{CacheSize: -1, RefreshInterval: 5 * time.Minute})
	tk := tok(t, "ec1", claimsAt(t0))
	if _, err := v.Verify(context.Background(), tk); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	waitFetch(t, fetched)
	s.status.Store(http.StatusInternalServerError)
	clk.Advance(6 * time.Minute)
	if _, err := v.Verify(context.Background(), tk); err != nil {
		t.Fatalf("Verify while refresh starts = %v, want nil (old keys serve)", err)
	}
	waitFetch(t, fetched) // the background refresh failed
	if got := s.hits.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2 (stale refresh ran)", got)
	}
	if _, err := v.Verify(context.Background(), tk); err != nil {
		t.Errorf("Verify after failed refresh = %v, want nil (old keys kept)", err)
	}
	if got := s.hits.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2 (a failed refresh is not retried within MinRefreshGap)", got)
	}
	// A successful refresh later swaps in the new set.
	s.status.Store(http.StatusOK)
	k := keys(t)
	b := jwks(t, edJWK(k.ed.Public().(ed25519.PublicKey), map[string]any{"kid": "ed1"}))
	s.body.Store(&b)
	clk.Advance(time.Minute)
	v.Verify(context.Background(), tk) // triggers the refresh
	waitFetch(t, fetched)
	if _, err := v.Verify(context.Background(), tk); err == nil || !strings.Contains(err.Error(), "unknown kid") {
		t.Errorf("Verify(ec1) after rotation = %v, want unknown kid", err)
	}
}

func TestURLFailClosed(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *jwksServer)
	}{
		{"server error", func(s *jwksServer) { s.status.Store(http.StatusServiceUnavailable) }},
		{"not json", func(s *jwksServer) { b := []byte("<html>"); s.body.Store(&b) }},
		{"hmac only", func(s *jwksServer) { b := []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`); s.body.Store(&b) }},
		{"too large", func(s *jwksServer) {
			b := []byte(`{"keys":[],"pad":"` + strings.Repeat("x", MaxJWKSSize) + `"}`)
			s.body.Store(&b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newJWKSServer(t, stdJWKS(t))
			tt.setup(s)
			v, _, _ := newURLVerifier(t, s, Options{})
			tk := tok(t, "ec1", claimsAt(t0))
			for i := 0; i < 3; i++ {
				_, err := v.Verify(context.Background(), tk)
				if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, ErrKeysUnavailable) {
					t.Fatalf("Verify #%d = %v, want ErrInvalidToken and ErrKeysUnavailable", i, err)
				}
			}
			if got := s.hits.Load(); got != 1 {
				t.Errorf("fetches = %d, want 1 (retries wait MinRefreshGap)", got)
			}
		})
	}
}

func TestURLWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write(stdJWKS(t))
	}))
	defer srv.Close()
	defer close(release)
	v, err := New(Issuer{Issuer: testIss, Audience: testAud, JWKSURL: srv.URL}, Options{HTTPClient: srv.Client(), Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = v.Verify(ctx, tok(t, "ec1", claimsAt(t0)))
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify(cancelled ctx) = %v, want ErrKeysUnavailable wrapping context.Canceled", err)
	}
}
