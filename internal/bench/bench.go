// Package bench owns `make bench`: it runs the real server in-process, drives
// it with a load generator in its own process, and prints every figure next
// to a bare net/http baseline measured in the same run, so that the numbers
// mean the same on any machine.
//
// bench sends traffic only to loopback addresses it bound itself, and every
// load run is bounded in time.
package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"warden/internal/config"
	"warden/internal/deploy"
	"warden/internal/pki"
	"warden/internal/server"
)

// Main runs the benchmark (or, with a first argument "loadgen" or
// "memchild", one of its child processes) and returns the exit code.
func Main(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "loadgen":
			return loadgen(args[1:])
		case "memchild":
			return memChild(args[1:])
		}
	}
	fs := flag.NewFlagSet("warden-bench", flag.ContinueOnError)
	dur := fs.Duration("d", 5*time.Second, "duration of each load run")
	conns := fs.Int("c", 32, "load generator connections")
	functions := fs.Int("functions", 1000, "idle functions for the memory figure (0 skips it)")
	examples := fs.String("examples", "examples", "directory with the built examples")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the server during one load run to this file")
	profileRun := fs.String("profile-run", "b", "the run -cpuprofile covers: b, c, d or e")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r := &runner{dur: *dur, conns: *conns, examples: *examples, cpuprofile: *cpuprofile, profileRun: int((*profileRun)[0] - 'b')}
	if err := r.run(*functions); err != nil {
		fmt.Fprintln(os.Stderr, "warden-bench:", err)
		return 1
	}
	return 0
}

type runner struct {
	dur        time.Duration
	conns      int
	examples   string
	tmp        string
	cpuprofile string
	profileRun int
	cacert     string
	rows       []row
}

type row struct {
	name, value, baseline, ratio, target string
}

func (r *runner) add(name, value, baseline, ratio, target string) {
	r.rows = append(r.rows, row{name, value, baseline, ratio, target})
	fmt.Fprintf(os.Stderr, "  %s: %s\n", name, value)
}

func (r *runner) run(functions int) error {
	var err error
	if r.tmp, err = os.MkdirTemp("", "warden-bench-*"); err != nil {
		return err
	}
	defer os.RemoveAll(r.tmp)
	fmt.Fprintf(os.Stderr, "warden-bench: GOMAXPROCS=%d, %d connections, %s per run\n", runtime.GOMAXPROCS(0), r.conns, r.dur)

	// (a) the baseline: a bare net/http handler over HTTPS with the same TLS
	// settings. It is measured before and after the warden runs and the mean
	// is the baseline, so that drift in the machine's speed during the run
	// does not bias the ratios.
	tlsDir := filepath.Join(r.tmp, "baseline-tls")
	cert, err := pki.Ensure(tlsDir, nil, time.Now())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}), TLSConfig: pki.ServerConfig(cert)}
	go base.ServeTLS(ln, "", "")
	defer base.Close()
	baseURL := "https://" + ln.Addr().String() + "/"
	before, err := r.load(filepath.Join(tlsDir, pki.CAFile), baseURL, "GET", "", "")
	if err != nil {
		return err
	}

	// The warden server on the embedded defaults, examples deployed.
	data := filepath.Join(r.tmp, "data")
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.AdminListen = data, "127.0.0.1:0", "127.0.0.1:0"
	// Limits that every request evaluates and none trips: the load
	// generator is one client sending tens of thousands of requests/s.
	cfg.IPRate, cfg.KeyRate = 500_000, 500_000
	srv, err := server.New(context.Background(), cfg, server.Options{})
	if err != nil {
		return err
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())
	for _, ex := range []string{"ping", "echo-json", "hello"} {
		if err := deployExample(srv.Deploy(), filepath.Join(r.examples, ex), nil); err != nil {
			return err
		}
	}
	// (e): ping behind the whole chain but the WAF: API key, rate limits,
	// events, DLP on the answer.
	if err := deployExample(srv.Deploy(), filepath.Join(r.examples, "ping"), func(m string) string {
		m = strings.Replace(m, "name: ping", "name: ping-secure", 1)
		m = strings.Replace(m, "GET /ping", "GET /ping-secure", 1)
		return strings.Replace(m, "    auth: none\n", "    auth: apikey\n    scopes: [ping]\n    rateLimit: {rate: 1000000/s, burst: 1000000, by: key}\n    dlp: redact\n", 1)
	}); err != nil {
		return err
	}
	apiKey, err := createKey(srv)
	if err != nil {
		return err
	}
	// Deploying compiled four modules: collect that garbage now, not
	// during the first measured run.
	runtime.GC()
	debug.FreeOSMemory()
	ca := filepath.Join(data, "tls", pki.CAFile)
	pub := "https://" + srv.PublicAddr()
	cases := []struct {
		name, path, method, body, header, target string
		min                                      float64
	}{
		{"(b) examples/ping through the gateway", "/ping", "GET", "", "", ">= 0.60", 0.60},
		{"(c) examples/echo-json (reactor, JSON)", "/echo", "POST", `{"order":42,"items":["tea","cake"],"note":"benchmark"}`, "", "", 0},
		{"(d) examples/hello (wagi, fresh instance)", "/hello?name=bench", "GET", "", "", "", 0},
		{"(e) ping, full chain without WAF (API key, rate limits, events, DLP)", "/ping-secure", "GET", "", "Authorization: Bearer " + apiKey, ">= 0.45", 0.45},
	}
	results := make([]LoadResult, len(cases))
	for i, c := range cases {
		if i == r.profileRun && r.cpuprofile != "" {
			f, err := os.Create(r.cpuprofile)
			if err != nil {
				return err
			}
			pprof.StartCPUProfile(f)
		}
		if results[i], err = r.load(ca, pub+c.path, c.method, c.body, c.header); err != nil {
			return err
		}
		if i == r.profileRun && r.cpuprofile != "" {
			pprof.StopCPUProfile()
		}
	}
	after, err := r.load(filepath.Join(tlsDir, pki.CAFile), baseURL, "GET", "", "")
	if err != nil {
		return err
	}
	// (b) again after the second baseline: the headline ratio is the mean
	// of two gateway runs over the mean of two baseline runs, interleaved.
	again, err := r.load(ca, pub+cases[0].path, cases[0].method, cases[0].body, "")
	if err != nil {
		return err
	}
	srv.Shutdown(context.Background())
	base.Close()
	baseline := mean(before, after)
	r.add("(a) bare net/http hello, HTTPS (mean of 2 runs)", fmtLoad(baseline)+fmt.Sprintf(" [%.0f / %.0f]", before.RPS, after.RPS), "", "1.00", "")
	first := results[0]
	results[0] = mean(first, again)
	cases[0].name += fmt.Sprintf(" (mean of 2 runs) [%.0f / %.0f]", first.RPS, again.RPS)
	for i, c := range cases {
		ratio := results[i].RPS / baseline.RPS
		r.add(c.name, fmtLoad(results[i]), fmt.Sprintf("%.0f req/s", baseline.RPS), fmt.Sprintf("%.2f", ratio), verdict(c.target, c.min == 0 || ratio >= c.min))
	}

	if err := r.coldStarts(); err != nil {
		return err
	}
	if functions > 0 {
		if err := r.memory(functions); err != nil {
			return err
		}
	}
	r.print()
	return nil
}

func mean(a, b LoadResult) LoadResult {
	return LoadResult{RPS: (a.RPS + b.RPS) / 2, P50: (a.P50 + b.P50) / 2, P99: (a.P99 + b.P99) / 2,
		Errors: a.Errors + b.Errors, Requests: a.Requests + b.Requests}
}

func verdict(target string, ok bool) string {
	if target == "" {
		return ""
	}
	if ok {
		return target + " ok"
	}
	return target + " MISSED"
}

func fmtLoad(l LoadResult) string {
	s := fmt.Sprintf("%.0f req/s, p50 %s, p99 %s", l.RPS, round(l.P50), round(l.P99))
	if l.Errors > 0 {
		s += fmt.Sprintf(", %d errors %v", l.Errors, l.Status)
	}
	return s
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

// load runs the load generator in its own process.
func (r *runner) load(cacert, url, method, body, header string) (LoadResult, error) {
	self, err := os.Executable()
	if err != nil {
		return LoadResult{}, err
	}
	cmd := exec.Command(self, "loadgen", "-url", url, "-method", method, "-body", body,
		"-c", fmt.Sprint(r.conns), "-d", r.dur.String(), "-warmup", "2s", "-cacert", cacert, "-header", header)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return LoadResult{}, fmt.Errorf("loadgen %s: %w", url, err)
	}
	var res LoadResult
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("loadgen output %q: %w", out, err)
	}
	return res, nil
}

// deployExample deploys examples/<dir>, its manifest changed by edit (if not nil).
func deployExample(d *deploy.Service, dir string, edit func(string) string) error {
	m, err := os.ReadFile(filepath.Join(dir, "warden.yaml"))
	if err != nil {
		return err
	}
	if edit != nil {
		m = []byte(edit(string(m)))
	}
	name := filepath.Base(dir)
	wasm, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
	if err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	_, err = d.Deploy(context.Background(), deploy.Request{ManifestName: "warden.yaml", Manifest: m, Artifact: wasm, Origin: deploy.Origin{Actor: "bench"}})
	return err
}

// createKey makes an API key with scope ping through the admin API.
func createKey(srv *server.Server) (string, error) {
	pool, err := pki.CertPool(filepath.Join(srv.DataDir(), "tls", pki.CAFile))
	if err != nil {
		return "", err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", "https://"+srv.AdminAddr()+"/v1/keys", strings.NewReader(`{"name":"bench","scopes":["ping"]}`))
	req.Header.Set("Authorization", "Bearer "+srv.BootstrapToken)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Key string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Key == "" {
		return "", fmt.Errorf("create key: %d %v", resp.StatusCode, err)
	}
	return out.Key, nil
}

func (r *runner) print() {
	fmt.Println()
	fmt.Printf("warden bench — %s, GOMAXPROCS=%d, loopback HTTPS, keep-alive, %d connections, load generator in its own process\n",
		time.Now().Format("2006-01-02"), runtime.GOMAXPROCS(0), r.conns)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmeasured\tbaseline\tratio\ttarget")
	for _, x := range r.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.name, x.value, x.baseline, x.ratio, x.target)
	}
	tw.Flush()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
