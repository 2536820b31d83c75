// Package bench owns `make bench`: it starts `bin/warden server` as a user
// starts it, deploys the examples through the CLI, drives each route with
// wrk (the field's standard HTTP load generator) and prints every figure
// next to a bare net/http baseline, in its own process, measured in the
// same run and interleaved with the warden runs, so that the ratios mean
// the same on any machine. It also measures cold starts and memory with
// many idle functions.
//
// bench never reports a figure from a run that had an answer outside 2xx
// or a socket error: it names the run and exits non-zero instead. It sends
// traffic only to loopback addresses of processes it started, every load
// run is bounded in time, and it stops every process it started.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Main runs the benchmark (or, with a first argument "bare" or "memchild",
// one of its child processes) and returns the exit code.
func Main(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "bare":
			return bare(args[1:])
		case "flood":
			return flood(args[1:])
		case "calm":
			return calmChild(args[1:])
		case "memchild":
			return memChild(args[1:])
		}
	}
	fs := flag.NewFlagSet("warden-bench", flag.ContinueOnError)
	r := &runner{}
	fs.DurationVar(&r.dur, "d", 5*time.Second, "duration of each wrk run (whole seconds)")
	fs.DurationVar(&r.warmup, "warmup", 2*time.Second, "unmeasured wrk run against each route before the first round")
	fs.IntVar(&r.rounds, "rounds", 3, "measured runs of each figure, each between two runs of the baseline")
	fs.IntVar(&r.conns, "c", 32, "wrk connections (keep-alive)")
	fs.IntVar(&r.threads, "t", 2, "wrk threads")
	fs.BoolVar(&r.countHook, "count-hook", true, "count answers outside 2xx with a Lua response() hook (wrk's own count misses 1xx and 3xx; the hook costs wrk about 1 µs of CPU per request); "+
		"without it, wrk's own count of answers >= 400 and its socket errors decide")
	fs.StringVar(&r.only, "only", "", "comma-separated figures to measure: ping, echo, hello, full (default all; the baseline always runs)")
	fs.StringVar(&r.wardenBin, "warden", "bin/warden", "the warden binary to start (make build makes it)")
	fs.StringVar(&r.wrkPath, "wrk", "wrk", "the wrk binary (scripts/ensure-wrk.sh installs it)")
	fs.StringVar(&r.examples, "examples", "examples", "directory with the built examples")
	fs.StringVar(&r.profileDir, "profile", "", "after the measured rounds, run each figure once more while fetching the server's CPU and allocation profiles into this directory (starts the server with WARDEN_PPROF_ADDR)")
	cold := fs.Bool("cold", true, "measure cold starts")
	functions := fs.Int("functions", 1000, "idle functions for the memory figure (0 skips it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if r.rounds < 1 || r.dur < time.Second || r.conns < 1 || r.threads < 1 {
		fmt.Fprintln(os.Stderr, "warden-bench: -rounds, -c and -t must be at least 1, -d at least 1s")
		return 2
	}
	if err := r.run(*cold, *functions); err != nil {
		fmt.Fprintln(os.Stderr, "warden-bench:", err)
		return 1
	}
	if r.refused > 0 {
		fmt.Fprintf(os.Stderr, "warden-bench: %d figure(s) refused: their runs had answers outside 2xx or socket errors (see above)\n", r.refused)
		return 1
	}
	return 0
}

type runner struct {
	dur, warmup          time.Duration
	rounds               int
	conns, threads       int
	countHook            bool
	only                 string
	wardenBin, wrkPath   string
	examples, profileDir string

	tmp      string
	rows     []row
	notes    []row
	refused  int
	maxOther float64 // most CPUs other processes used during a measured run
	wrkVer   string
	baseline []wrkResult
}

// figure is one route measured against the baseline.
type figure struct {
	key, name     string
	target        target
	min, moonshot float64 // ratio targets; 0: none
	runs          []wrkResult
	before        []int    // per run, the index in runner.baseline of the baseline run just before it (the next one follows it)
	bad           []string // why runs were unusable
}

type row struct {
	name, rps, p50, p99, cpu, ratio, target, verdict string
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "warden-bench: "+format+"\n", args...)
}

func (r *runner) run(cold bool, functions int) (err error) {
	if r.wrkPath, err = exec.LookPath(r.wrkPath); err != nil {
		return fmt.Errorf("wrk not found (scripts/ensure-wrk.sh installs it): %w", err)
	}
	if out, _ := exec.Command(r.wrkPath, "--version").CombinedOutput(); len(out) > 0 {
		r.wrkVer, _, _ = strings.Cut(string(out), "\n")
		r.wrkVer, _, _ = strings.Cut(r.wrkVer, " Copyright")
	}
	if r.wardenBin, err = filepath.Abs(r.wardenBin); err != nil {
		return err
	}
	if _, err := os.Stat(r.wardenBin); err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	if r.tmp, err = os.MkdirTemp("", "warden-bench-*"); err != nil {
		return err
	}
	defer os.RemoveAll(r.tmp)
	if r.profileDir != "" {
		if err := os.MkdirAll(r.profileDir, 0o755); err != nil {
			return err
		}
	}
	r.logf("GOMAXPROCS=%d, %s, -t%d -c%d -d%s, %d rounds", runtime.GOMAXPROCS(0), r.wrkVer, r.threads, r.conns, r.dur, r.rounds)

	figs, err := r.measure()
	if err != nil {
		return err
	}
	r.table(figs)
	if cold {
		if err := r.coldStarts(); err != nil {
			return err
		}
	}
	if functions > 0 {
		if err := r.memory(functions); err != nil {
			return err
		}
	}
	r.print()
	return nil
}

// measure runs the load figures: the server and the baseline in their own
// processes, rounds of (baseline, figure) for each figure and a last
// baseline run.
func (r *runner) measure() (figs []*figure, err error) {
	bareProc, bareURL, barePprof, err := r.startBare()
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := bareProc.stop(); serr != nil && err == nil {
			err = fmt.Errorf("bare baseline: %w", serr)
		}
	}()
	srv, err := r.startServer()
	if err != nil {
		return nil, err
	}
	defer func() {
		// A graceful stop that fails is a finding too.
		if serr := srv.stop(); serr != nil && err == nil {
			err = fmt.Errorf("warden server did not stop cleanly: %w%s", serr, srv.tail())
		}
	}()
	if figs, err = r.setup(srv); err != nil {
		return nil, err
	}
	bareT := target{url: bareURL, method: "GET", pid: bareProc.cmd.Process.Pid}
	for _, f := range figs {
		f.target.pid = srv.cmd.Process.Pid
	}
	ctx := context.Background()

	r.logf("warm-up, %s per route", r.warmup)
	for _, f := range append([]*figure{{key: "bare", target: bareT}}, figs...) {
		res, err := r.wrk(ctx, f.target, r.warmup)
		if err != nil {
			return nil, err
		}
		if why := res.bad(); why != "" {
			// Only the measured runs decide; a warm-up with errors is
			// still worth seeing.
			r.logf("  warm-up of %s: %s", f.key, why)
		}
	}

	bareRun := func() error {
		res, err := r.wrk(ctx, bareT, r.dur)
		if err != nil {
			return err
		}
		if why := res.bad(); why != "" {
			return fmt.Errorf("the bare baseline had %s: no ratio can be computed\n%s", why, res.RawSummary)
		}
		r.logf("  %-6s %8.0f req/s  p50 %-8s p99 %-8s server CPU %s/req  other processes %.2f CPUs", "bare", res.RPS(), round(res.P50), round(res.P99), cpuReq(res.CPUPerRequest()), res.OtherCPUs)
		r.maxOther = max(r.maxOther, res.OtherCPUs)
		r.baseline = append(r.baseline, res)
		return nil
	}
	// Every figure run sits between two baseline runs, and its ratio is
	// taken against their mean: the machine's speed drifts (other tenants,
	// clocks) on the scale of a round, and a figure compared with a
	// baseline run minutes away measures the drift too.
	for i := range r.rounds {
		r.logf("round %d of %d", i+1, r.rounds)
		for _, f := range figs {
			if err := bareRun(); err != nil {
				return nil, err
			}
			if err := srv.alive(); err != nil {
				return nil, err
			}
			res, err := r.wrk(ctx, f.target, r.dur)
			if err != nil {
				return nil, err
			}
			if why := res.bad(); why != "" {
				r.logf("  %-6s REFUSED: %s\n%s", f.key, why, res.RawSummary)
				f.bad = append(f.bad, why)
				continue
			}
			r.logf("  %-6s %8.0f req/s  p50 %-8s p99 %-8s server CPU %s/req  other processes %.2f CPUs", f.key, res.RPS(), round(res.P50), round(res.P99), cpuReq(res.CPUPerRequest()), res.OtherCPUs)
			r.maxOther = max(r.maxOther, res.OtherCPUs)
			f.runs = append(f.runs, res)
			f.before = append(f.before, len(r.baseline)-1)
		}
	}
	if err := bareRun(); err != nil {
		return nil, err
	}

	if r.profileDir != "" {
		// One more run of each (baseline included), not counted, while
		// the serving process records CPU and allocation profiles; runs.txt
		// has each run's rate, to turn samples into time per request.
		var summary strings.Builder
		summary.WriteString("# run req/s profiled-seconds\n")
		for _, f := range append([]*figure{{key: "bare", target: bareT}}, figs...) {
			addr := srv.pprof
			if f.key == "bare" {
				addr = barePprof
			}
			r.logf("profiling %s (run not counted)", f.key)
			window := r.dur - time.Second
			errc := make(chan error, 1)
			go func() { errc <- fetchProfiles(ctx, addr, r.profileDir, f.key, window) }()
			res, err := r.wrk(ctx, f.target, r.dur)
			if err != nil {
				return nil, err
			}
			if err := <-errc; err != nil {
				return nil, fmt.Errorf("profile %s: %w", f.key, err)
			}
			fmt.Fprintf(&summary, "%s %.0f %.0f\n", f.key, res.RPS(), window.Seconds())
		}
		if err := os.WriteFile(filepath.Join(r.profileDir, "runs.txt"), []byte(summary.String()), 0o644); err != nil {
			return nil, err
		}
		r.logf("profiles in %s (go tool pprof -top %s %s/ping.cpu.pprof; runs.txt has each run's req/s)", r.profileDir, r.wardenBin, r.profileDir)
	}
	return figs, nil
}

// setup deploys the examples and the full-chain variant of ping through the
// CLI and returns the figures to measure.
func (r *runner) setup(srv *wardenServer) ([]*figure, error) {
	want := func(key string) bool {
		return r.only == "" || slices.Contains(strings.Split(r.only, ","), key)
	}
	for _, ex := range []string{"ping", "echo-json", "hello"} {
		if err := r.checkBuilt(ex); err != nil {
			return nil, err
		}
	}
	pub := "https://" + srv.public
	var figs []*figure
	if want("ping") || want("full") {
		if err := srv.deploy(filepath.Join(r.examples, "ping", "warden.yaml")); err != nil {
			return nil, err
		}
	}
	if want("ping") {
		figs = append(figs, &figure{key: "ping", name: "(b) examples/ping through the gateway (auth none)",
			target: target{url: pub + "/ping", method: "GET"}, min: 0.60, moonshot: 0.75})
	}
	if want("echo") {
		if err := srv.deploy(filepath.Join(r.examples, "echo-json", "warden.yaml")); err != nil {
			return nil, err
		}
		figs = append(figs, &figure{key: "echo", name: "(c) examples/echo-json (reactor, encoding/json)",
			target: target{url: pub + "/echo", method: "POST", body: `{"order":42,"items":["tea","cake"],"note":"benchmark"}`,
				header: [][2]string{{"Content-Type", "application/json"}}}, min: 0.30})
	}
	if want("hello") {
		if err := srv.deploy(filepath.Join(r.examples, "hello", "warden.yaml")); err != nil {
			return nil, err
		}
		figs = append(figs, &figure{key: "hello", name: "(d) examples/hello (wagi, fresh instance per request)",
			target: target{url: pub + "/hello?name=bench", method: "GET"}})
	}
	if want("full") {
		// ping behind the whole chain but the WAF: an API key, the
		// per-key and per-address limits, a per-route limit that every
		// request evaluates and none trips, events, and DLP on the answer.
		m, err := os.ReadFile(filepath.Join(r.examples, "ping", "warden.yaml"))
		if err != nil {
			return nil, err
		}
		sm := string(m)
		for _, e := range [][2]string{
			{"name: ping\n", "name: ping-secure\n"},
			{"GET /ping\"", "GET /ping-secure\""},
			{"    auth: none\n", "    auth: apikey\n    scopes: [ping]\n    rateLimit: {rate: 1000000/s, burst: 1000000, by: key}\n    dlp: redact\n"},
		} {
			if !strings.Contains(sm, e[0]) {
				return nil, fmt.Errorf("examples/ping/warden.yaml: no %q to edit for the full-chain route", e[0])
			}
			sm = strings.Replace(sm, e[0], e[1], 1)
		}
		// The manifest names its artifact relative to itself.
		dir := filepath.Join(r.tmp, "ping-secure")
		wasm, err := os.ReadFile(filepath.Join(r.examples, "ping", "ping.wasm"))
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "warden.yaml")
		if err := errors.Join(os.MkdirAll(dir, 0o700), os.WriteFile(filepath.Join(dir, "ping.wasm"), wasm, 0o600),
			os.WriteFile(path, []byte(sm), 0o600)); err != nil {
			return nil, err
		}
		if err := srv.deploy(path); err != nil {
			return nil, err
		}
		key, err := srv.createKey("bench", "ping")
		if err != nil {
			return nil, err
		}
		figs = append(figs, &figure{key: "full", name: "(e) ping, full chain without WAF (API key, rate limits, events, DLP)",
			target: target{url: pub + "/ping-secure", method: "GET", header: [][2]string{{"Authorization", "Bearer " + key}}}, min: 0.50})
	}
	if len(figs) == 0 {
		return nil, fmt.Errorf("-only %q names no figure (ping, echo, hello, full)", r.only)
	}
	return figs, nil
}

func (r *runner) checkBuilt(ex string) error {
	_, err := os.Stat(filepath.Join(r.examples, ex, ex+".wasm"))
	if err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	return nil
}

// table turns the measured figures into rows.
func (r *runner) table(figs []*figure) {
	base := meanRPS(r.baseline)
	r.rows = append(r.rows, row{
		name: fmt.Sprintf("(a) bare net/http hello, HTTPS, own process (%d runs: %s)", len(r.baseline), runList(r.baseline)),
		rps:  fmt.Sprintf("%.0f", base), p50: round(meanDur(r.baseline, func(w wrkResult) time.Duration { return w.P50 })).String(),
		p99:   round(meanDur(r.baseline, func(w wrkResult) time.Duration { return w.P99 })).String(),
		cpu:   cpuReq(cpuPerRequest(r.baseline)),
		ratio: "1.000",
	})
	for _, f := range figs {
		tgt := ""
		if f.min > 0 {
			tgt = fmt.Sprintf(">= %.2f", f.min)
			if f.moonshot > 0 {
				tgt += fmt.Sprintf(" (moonshot %.2f)", f.moonshot)
			}
		}
		if len(f.bad) > 0 {
			r.refused++
			r.rows = append(r.rows, row{name: f.name, rps: "REFUSED", target: tgt, verdict: strings.Join(f.bad, "; ")})
			continue
		}
		ratio := f.ratio(r.baseline)
		verdict := ""
		if f.min > 0 {
			verdict = "MISS"
			if ratio >= f.min {
				verdict = "PASS"
			}
			if f.moonshot > 0 && ratio >= f.moonshot {
				verdict = "PASS (moonshot)"
			}
		}
		r.rows = append(r.rows, row{
			name:  fmt.Sprintf("%s (%d runs: %s)", f.name, len(f.runs), runList(f.runs)),
			rps:   fmt.Sprintf("%.0f", meanRPS(f.runs)),
			p50:   round(meanDur(f.runs, func(w wrkResult) time.Duration { return w.P50 })).String(),
			p99:   round(meanDur(f.runs, func(w wrkResult) time.Duration { return w.P99 })).String(),
			cpu:   cpuReq(cpuPerRequest(f.runs)),
			ratio: fmt.Sprintf("%.3f", ratio), target: tgt, verdict: verdict,
		})
	}
}

// note adds a figure that is not a load run (cold starts, memory).
func (r *runner) note(name, value, verdict string) {
	r.notes = append(r.notes, row{name: name, rps: value, verdict: verdict})
	r.logf("  %s: %s", name, value)
}

// ratio is the median over the figure's runs of each run's rate against
// the mean of the baseline runs just before and just after it.
func (f *figure) ratio(baseline []wrkResult) float64 {
	var rs []float64
	for i, run := range f.runs {
		b := f.before[i]
		base := baseline[b].RPS()
		if b+1 < len(baseline) {
			base = (base + baseline[b+1].RPS()) / 2
		}
		if base > 0 {
			rs = append(rs, run.RPS()/base)
		}
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	if n := len(rs); n%2 == 0 {
		return (rs[n/2-1] + rs[n/2]) / 2
	}
	return rs[len(rs)/2]
}

func meanRPS(rs []wrkResult) float64 {
	if len(rs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range rs {
		s += x.RPS()
	}
	return s / float64(len(rs))
}

func meanDur(rs []wrkResult, f func(wrkResult) time.Duration) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	var s time.Duration
	for _, x := range rs {
		s += f(x)
	}
	return s / time.Duration(len(rs))
}

// cpuPerRequest is the serving process's CPU time over all runs divided by
// their requests.
func cpuPerRequest(rs []wrkResult) time.Duration {
	var cpu time.Duration
	var n int64
	for _, x := range rs {
		cpu += x.ServerCPU
		n += x.Requests
	}
	if n == 0 {
		return 0
	}
	return cpu / time.Duration(n)
}

func cpuReq(d time.Duration) string {
	if d <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}

func runList(rs []wrkResult) string {
	var s []string
	for _, x := range rs {
		s = append(s, fmt.Sprintf("%.0f", x.RPS()))
	}
	return strings.Join(s, " / ")
}

// verdict is PASS or MISS for a figure with a target, "" without one.
func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func round(d time.Duration) time.Duration {
	switch {
	case d > 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

func (r *runner) print() {
	fmt.Println()
	fmt.Printf("warden bench — %s, GOMAXPROCS=%d, %s -t%d -c%d -d%s --latency (keep-alive, HTTPS, loopback), server and baseline in their own processes, each figure run between two baseline runs, ratio = median of run / mean of its neighbours\n",
		time.Now().Format("2006-01-02"), runtime.GOMAXPROCS(0), r.wrkVer, r.threads, r.conns, r.dur)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\treq/s\tp50\tp99\tserver CPU/req\tratio\ttarget\tverdict")
	for _, x := range r.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.name, x.rps, x.p50, x.p99, x.cpu, x.ratio, x.target, x.verdict)
	}
	tw.Flush()
	if r.maxOther > 0.25 {
		fmt.Printf("WARNING: other processes used up to %.2f of the machine's %d CPUs during a run: ratios are unreliable; the server CPU per request is the steadier figure\n",
			r.maxOther, runtime.NumCPU())
	}
	if len(r.notes) > 0 {
		fmt.Println()
		tw = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "figure\tvalue\tverdict")
		for _, x := range r.notes {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", x.name, x.rps, x.verdict)
		}
		tw.Flush()
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
