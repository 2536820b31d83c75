package server_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/events"
	"warden/internal/pki"
)

// TestRefusalFloodIsAggregated: a flood of refused requests from many
// source addresses (127.0.0.0/8) is stored as a bounded number of events,
// yet every refusal is accounted for: the first per source at once, the
// rest as counted aggregates. Before aggregation each refusal was one row.
func TestRefusalFloodIsAggregated(t *testing.T) {
	t.Parallel()
	const (
		sources = 100
		each    = 10
	)
	data := t.TempDir()
	in := start(t, data)
	in.mustCLI("deploy", "-f", fixture(t, "ping", func(m string) string { return strings.Replace(m, "auth: none", "auth: apikey", 1) }))

	pool, err := pki.CertPool(filepath.Join(data, "tls", pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	var refused, other atomic.Int64
	var wg sync.WaitGroup
	for i := range sources {
		src := net.IPv4(127, 1, byte(i/250), byte(1+i%250))
		wg.Go(func() {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
				DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			for j := range each {
				req, _ := http.NewRequest("GET", "https://"+in.srv.PublicAddr()+"/ping", nil)
				req.Header.Set("Authorization", fmt.Sprintf("Bearer wdn_key_guess%d_%d", i, j))
				resp, err := c.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() != sources*each || other.Load() != 0 {
		t.Fatalf("%d refused, %d other answers; want %d refused", refused.Load(), other.Load(), sources*each)
	}
	evs := in.eventsOf(events.TypeRouteAuth) // the query flushes pending aggregates
	if n := occurrences(evs); n != sources*each {
		t.Fatalf("events account for %d refusals, want %d: none may be lost", n, sources*each)
	}
	if len(evs) > 2*sources {
		t.Fatalf("%d events stored for %d refusals from %d sources, want at most %d", len(evs), sources*each, sources, 2*sources)
	}
	perSource := map[string]int{}
	for _, e := range evs {
		perSource[e.SourceIP]++
	}
	if len(perSource) != sources {
		t.Fatalf("events name %d sources, want %d (sources are never merged)", len(perSource), sources)
	}
}
