package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/config"
	"warden/internal/events"
)

// TestFloodIsolation is the acceptance test for rate limits: one client
// floods a route far past its limit while a second client with its own key
// keeps calling at its normal rate. The second client sees no 429 and its
// p99 stays within a small multiple of an unloaded run; the flood costs a
// handful of events, not one per request.
func TestFloodIsolation(t *testing.T) {
	in := startWith(t, t.TempDir(), func(c *config.Config) { c.IPRate = 0 }) // both clients share 127.0.0.1
	in.mustCLI("deploy", "-f", fixture(t, "ping", func(m string) string {
		return strings.Replace(m, "    auth: none\n", "    auth: apikey\n    rateLimit: {rate: 50/s, burst: 50, by: key}\n", 1)
	}))
	key := func(name string) string {
		var out struct{ Key string }
		json.Unmarshal([]byte(in.mustCLI("keys", "create", name, "--json")), &out)
		return out.Key
	}
	flooder, steady := key("flooder"), key("steady")
	call := func(k string) (int, time.Duration) {
		req, _ := http.NewRequest("GET", "https://"+in.srv.PublicAddr()+"/ping", nil)
		req.Header.Set("Authorization", "Bearer "+k)
		t0 := time.Now()
		resp, err := in.client.Do(req)
		if err != nil {
			t.Error(err)
			return 0, 0
		}
		readBody(t, resp)
		return resp.StatusCode, time.Since(t0)
	}
	// steadyRun calls 40 times at 20 req/s and returns the latencies.
	steadyRun := func() []time.Duration {
		var lat []time.Duration
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range 40 {
			<-tick.C
			code, d := call(steady)
			if code != 200 {
				t.Fatalf("steady client got %d", code)
			}
			lat = append(lat, d)
		}
		return lat
	}
	p99 := func(l []time.Duration) time.Duration {
		slices.Sort(l)
		return l[len(l)*99/100]
	}
	base := p99(steadyRun())

	ctx, cancel := context.WithCancel(context.Background())
	var flood, limited, admitted atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, _ := call(flooder)
				flood.Add(1)
				switch code {
				case http.StatusTooManyRequests:
					limited.Add(1)
				case http.StatusOK:
					admitted.Add(1)
				}
			}
		}()
	}
	loaded := p99(steadyRun())
	cancel()
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("flood: %d requests in %s, %d admitted, %d limited; steady p99 %s unloaded, %s under flood",
		flood.Load(), elapsed.Round(time.Millisecond), admitted.Load(), limited.Load(), base, loaded)
	// The bucket admits its burst plus its rate over the flood's
	// duration, however fast the machine sends; one token of slack for a
	// refill that lands as the flood stops.
	if most := int64(50 + 50*elapsed.Seconds() + 1); admitted.Load() > most {
		t.Fatalf("%d flood requests admitted in %s, want at most %d (burst 50 + 50/s)", admitted.Load(), elapsed, most)
	}
	if admitted.Load()+limited.Load() != flood.Load() {
		t.Fatalf("flood answers: %d admitted + %d limited of %d, want only 200 and 429", admitted.Load(), limited.Load(), flood.Load())
	}
	if limited.Load() == 0 {
		t.Fatalf("none of %d flood requests was limited", flood.Load())
	}
	if limit := max(10*base, 100*time.Millisecond); loaded > limit {
		t.Fatalf("steady p99 under flood %s, want within %s", loaded, limit)
	}
	n := 0
	for _, e := range in.eventsOf(events.TypeLimitRate) {
		if e.Function == "ping" {
			n++
		}
	}
	if n < 1 || n > 3 {
		t.Fatalf("%d limit.rate events for a flood of %d, want 1 to 3 (one per client per minute)", n, flood.Load())
	}
}

// TestRateLimitHeaders: a limited answer carries Retry-After and the
// RateLimit-* headers, and the per-IP limit applies before routing.
func TestRateLimitHeaders(t *testing.T) {
	in := startWith(t, t.TempDir(), func(c *config.Config) { c.IPRate = 5 }) // burst 10
	in.mustCLI("deploy", "-f", fixture(t, "ping", nil))
	var last *http.Response
	for range 30 {
		resp := in.public("GET", "/nothing-here", nil, nil)
		readBody(t, resp)
		last = resp
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	if last.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("30 requests at once under a 5/s limit: last status %d", last.StatusCode)
	}
	for _, h := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if last.Header.Get(h) == "" {
			t.Errorf("429 without %s: %v", h, last.Header)
		}
	}
	if last.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("RateLimit-Remaining = %q, want 0", last.Header.Get("RateLimit-Remaining"))
	}
}

// TestRedisRateLimits: with --redis the limits are shared through Redis;
// when Redis is unreachable the server falls back to local limits (neither
// letting everything through nor refusing everything) and says so in an
// event.
func TestRedisRateLimits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, url string
		degraded  bool
	}{
		{"reachable", "redis://127.0.0.1:6379/0", false},
		{"unreachable", "redis://127.0.0.1:1/0", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := startWith(t, t.TempDir(), func(cfg *config.Config) { cfg.RedisURL = c.url })
			// A function and route of their own per run: Redis keeps
			// buckets between runs.
			name := fmt.Sprintf("rl-%d", time.Now().UnixNano()%1e9)
			path := fixture(t, "ping", func(m string) string {
				m = strings.Replace(m, "name: ping", "name: "+name, 1)
				m = strings.Replace(m, "GET /ping", "GET /"+name, 1)
				return strings.Replace(m, "    auth: none\n", "    auth: none\n    rateLimit: {rate: 1/h, burst: 3, by: ip}\n", 1)
			})
			in.mustCLI("deploy", "-f", path)
			var codes []int
			for range 5 {
				resp := in.public("GET", "/"+name, nil, nil)
				readBody(t, resp)
				codes = append(codes, resp.StatusCode)
			}
			ok := 0
			for _, code := range codes {
				if code == 200 {
					ok++
				} else if code != http.StatusTooManyRequests {
					t.Fatalf("status %d (codes %v): the limiter must neither fail open nor fail closed", code, codes)
				}
			}
			if ok != 3 || codes[3] != http.StatusTooManyRequests || codes[4] != http.StatusTooManyRequests {
				t.Fatalf("codes %v: want the burst of 3 admitted, then 429", codes)
			}
			degraded := false
			for _, e := range in.eventsOf(events.TypeRateLimitBackend) {
				degraded = degraded || e.Outcome == events.OutcomeFailure
			}
			if degraded != c.degraded {
				t.Fatalf("ratelimit.backend failure event: %v, want %v", degraded, c.degraded)
			}
		})
	}
}
