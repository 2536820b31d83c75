package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestLuaString(t *testing.T) {
	for _, s := range []string{"", "plain", `{"a":["b"]}`, "a]]b", "x]", "]=]]==]", "line\nbreak"} {
		got := luaString(s)
		// The opening bracket is followed by a newline Lua drops; the
		// closing bracket must not occur inside.
		open := strings.Index(got, "\n")
		closing := "]" + strings.Repeat("=", open-2) + "]"
		if !strings.HasSuffix(got, closing) || strings.Contains(s+"]", closing) || got[open+1:len(got)-len(closing)] != s {
			t.Errorf("luaString(%q) = %q: does not quote it", s, got)
		}
	}
}

func TestParseWrk(t *testing.T) {
	const clean = `Running 5s test @ https://127.0.0.1:1/
  2 threads and 32 connections
  Latency Distribution
     50%  1.00ms
  100 requests in 5.00s, 1.00KB read
Requests/sec:     20.00
WARDEN-BENCH requests=100 duration_us=5000000 p50_us=1000 p99_us=2500 connect=0 read=0 write=0 status=0 timeout=0 non2xx=0
`
	tests := []struct {
		name    string
		out     string
		rps     float64
		bad     string // substring of bad(), "" for a usable run
		wantErr bool
	}{
		{"clean", clean, 20, "", false},
		{"hook counted a 3xx", strings.Replace(clean, "non2xx=0", "non2xx=3", 1), 20, "3 non-2xx", false},
		{"wrk counted 4xx", strings.Replace(clean, "Requests/sec", "  Non-2xx or 3xx responses: 7\nRequests/sec", 1), 20, "7 non-2xx", false},
		{"socket errors", strings.Replace(clean, "read=0", "read=2", 1), 20, "2 socket errors", false},
		{"timeouts", strings.Replace(clean, "timeout=0", "timeout=1", 1), 20, "1 socket errors", false},
		{"nothing completed", strings.Replace(clean, "requests=100", "requests=0", 1), 0, "no requests", false},
		{"no result line", "Running 5s test\n", 0, "", true},
		{"bad number", strings.Replace(clean, "p50_us=1000", "p50_us=x", 1), 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := parseWrk([]byte(tc.out))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseWrk error = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got := res.RPS(); got != tc.rps {
				t.Errorf("RPS() = %v, want %v", got, tc.rps)
			}
			if got := res.bad(); tc.bad == "" && got != "" || tc.bad != "" && !strings.Contains(got, tc.bad) {
				t.Errorf("bad() = %q, want %q", got, tc.bad)
			}
		})
	}
}

// The script wrk runs counts answers outside 2xx, 3xx included (wrk's own
// counter stops at 4xx), so such a run is refused.
func TestWrkCountsNon2xx(t *testing.T) {
	path, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed (scripts/ensure-wrk.sh installs it; make bench runs it)")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			w.WriteHeader(http.StatusFound)
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		default:
			w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	r := &runner{tmp: t.TempDir(), wrkPath: path, threads: 1, conns: 2, countHook: true}
	for _, tc := range []struct {
		path string
		ok   bool
	}{{"/", true}, {"/redirect", false}, {"/missing", false}} {
		res, err := r.wrk(context.Background(), target{url: srv.URL + tc.path, method: "GET"}, time.Second)
		if err != nil {
			t.Fatalf("wrk %s: %v", tc.path, err)
		}
		if why := res.bad(); (why == "") != tc.ok {
			t.Errorf("wrk %s: bad() = %q, want usable %v (requests %d, non2xx %d)", tc.path, why, tc.ok, res.Requests, res.Non2xx)
		}
	}
}

// TestFigureRatio: each run is compared with the mean of the baseline runs
// around it, and the figure is their median, so a drift of the machine's
// speed or one disturbed run does not move the ratio.
func TestFigureRatio(t *testing.T) {
	run := func(rps float64) wrkResult { return wrkResult{Requests: int64(rps * 5), Duration: 5 * time.Second} }
	// The machine slows down by half over the rounds; the figure is
	// always 0.6 of the baseline next to it, except one disturbed run.
	baseline := []wrkResult{run(40000), run(40000), run(30000), run(20000), run(20000)}
	f := &figure{
		runs:   []wrkResult{run(24000), run(5000), run(12000)},
		before: []int{0, 2, 3},
	}
	got := f.ratio(baseline)
	if got < 0.5999 || got > 0.6001 {
		t.Errorf("ratio = %.4f, want 0.6 (median of 0.6, 0.2, 0.6)", got)
	}
	f = &figure{runs: []wrkResult{run(24000), run(12000)}, before: []int{0, 3}}
	if got := f.ratio(baseline); got < 0.5999 || got > 0.6001 {
		t.Errorf("two runs: ratio = %.4f, want 0.6", got)
	}
	if got := (&figure{}).ratio(baseline); got != 0 {
		t.Errorf("no runs: ratio = %v, want 0", got)
	}
}

func TestParseCalm(t *testing.T) {
	lat, bad, err := parseCalm([]byte("1200\n830\nbad 2\n"))
	if err != nil || bad != 2 || len(lat) != 2 || lat[0] != 1200*time.Microsecond || lat[1] != 830*time.Microsecond {
		t.Errorf("parseCalm = %v, %d, %v; want [1.2ms 830µs], 2, nil", lat, bad, err)
	}
	for _, out := range []string{"", "1200\n", "12x\nbad 0\n", "-5\nbad 0\n", "bad x\n"} {
		if _, _, err := parseCalm([]byte(out)); err == nil {
			t.Errorf("parseCalm(%q): no error for output that is cut short or malformed", out)
		}
	}
}
