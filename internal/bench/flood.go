package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/pki"
)

// flood is `warden-bench flood`: the event log under attack. It starts the
// real server with its default limits, then for -d sends refused requests
// (a forged API key on an apikey route) from -sources loopback addresses
// (127.1.x.y, each its own client) as fast as each can, while one calm
// client calls an open route at 20 req/s. It prints the events stored per
// second, the database's growth, and the calm client's p99 against the same
// client unloaded (half before the flood, half after). The calm client is
// a process of its own. It refuses a figure when the calm client saw an
// answer other than 200 or the flood an answer other than 401, 429 or 503.
//
// flood sends traffic only to the server it started on 127.0.0.1, from
// addresses of 127.0.0.0/8, and stops after -d.
func flood(args []string) int {
	fs := flag.NewFlagSet("warden-bench flood", flag.ContinueOnError)
	r := &runner{}
	dur := fs.Duration("d", 60*time.Second, "how long the flood lasts")
	sources := fs.Int("sources", 1000, "flooding source addresses (127.1.0.0/16)")
	rate := fs.Int("rate", 2000, "refused requests per second from all sources together (0: as fast as they can)")
	fs.StringVar(&r.wardenBin, "warden", "bin/warden", "the warden binary to start")
	fs.StringVar(&r.examples, "examples", "examples", "directory with the built examples")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sources < 1 || *sources > 60000 || *dur < time.Second {
		fmt.Fprintln(os.Stderr, "warden-bench flood: -sources 1..60000, -d at least 1s")
		return 2
	}
	var err error
	if r.tmp, err = os.MkdirTemp("", "warden-flood-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(r.tmp)
	if err := r.flood(*dur, *sources, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "warden-bench flood:", err)
		return 1
	}
	return 0
}

func (r *runner) flood(dur time.Duration, sources, rate int) error {
	srv, err := r.startServerArgs() // default limits: as users run it
	if err != nil {
		return err
	}
	defer srv.stop()
	dir := filepath.Join(r.tmp, "fx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	wasm, err := os.ReadFile(filepath.Join(r.examples, "ping", "ping.wasm"))
	if err != nil {
		return fmt.Errorf("%w (make examples builds it)", err)
	}
	for name, auth := range map[string]string{"open": "none", "locked": "apikey"} {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "ping.wasm"), wasm, 0o644)
		m := fmt.Sprintf("name: %s\nabi: reactor\nartifact: ./ping.wasm\nhttp:\n  - route: \"GET /%s\"\n    auth: %s\n", name, name, auth)
		os.WriteFile(filepath.Join(d, "warden.yaml"), []byte(m), 0o644)
		if err := srv.deploy(filepath.Join(d, "warden.yaml")); err != nil {
			return err
		}
	}
	pool, err := pki.CertPool(filepath.Join(srv.data, "tls", pki.CAFile))
	if err != nil {
		return err
	}
	client := func(src net.IP) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 4}
		if src != nil {
			tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext
		}
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	caFile := filepath.Join(srv.data, "tls", pki.CAFile)
	// The calm client runs in its own process, so that what it measures is
	// the server, not the flood generator's scheduler.
	calm := func(d time.Duration) ([]time.Duration, int, error) {
		self, err := os.Executable()
		if err != nil {
			return nil, 0, err
		}
		out, err := exec.Command(self, "calm", "-url", "https://"+srv.public+"/open", "-ca", caFile, "-d", d.String()).Output()
		if err != nil {
			return nil, 0, fmt.Errorf("calm client: %w", err)
		}
		return parseCalm(out)
	}
	// The database file and its write-ahead log: SQLite reuses the log
	// from its start after each checkpoint (every 1,000 pages, about 4
	// MB), so the log's size is bounded and the file's growth is what
	// events add.
	fileSize := func(name string) int64 {
		if fi, err := os.Stat(filepath.Join(srv.data, name)); err == nil {
			return fi.Size()
		}
		return 0
	}
	dbSize := func() int64 { return fileSize("warden.db") }
	storedEvents := func() (int, error) {
		out, err := srv.cli("events", "--json", "--limit", "10000", "--since", "2h")
		if err != nil {
			return 0, err
		}
		return strings.Count(string(out), "\n"), nil
	}

	fmt.Printf("flood: %d sources at %d req/s in all (0: unbounded) for %v against %s; calm client at 20 req/s in its own process\n", sources, rate, dur, srv.public)
	ctx := context.Background()
	// Unloaded: half the flood's duration before it and half after, so
	// that a drift of the machine's speed does not count as the flood's.
	unloaded, bad, err := calm(dur / 2)
	if err != nil || bad > 0 {
		return fmt.Errorf("calm client unloaded: %d bad answers (%v)", bad, err)
	}
	before, walBefore, evBefore := dbSize(), fileSize("warden.db-wal"), 0
	if evBefore, err = storedEvents(); err != nil {
		return err
	}

	fctx, stop := context.WithTimeout(ctx, dur)
	defer stop()
	var sent, refused, other atomic.Int64
	var wg sync.WaitGroup
	for i := range sources {
		src := net.IPv4(127, 1, byte(i/250), byte(1+i%250))
		wg.Go(func() {
			c := client(src)
			defer c.Transport.(*http.Transport).CloseIdleConnections()
			var tick <-chan time.Time
			if rate > 0 {
				every := time.Duration(float64(time.Second) * float64(sources) / float64(rate))
				time.Sleep(time.Duration(i) * every / time.Duration(sources)) // spread the sources
				t := time.NewTicker(every)
				defer t.Stop()
				tick = t.C
			}
			for j := 0; fctx.Err() == nil; j++ {
				if tick != nil {
					select {
					case <-tick:
					case <-fctx.Done():
						return
					}
				}
				req, _ := http.NewRequestWithContext(fctx, "GET", "https://"+srv.public+"/locked", nil)
				req.Header.Set("Authorization", fmt.Sprintf("Bearer wdn_key_%08x_%d", i, j))
				resp, err := c.Do(req)
				if err != nil {
					if fctx.Err() == nil {
						other.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body) // read to the end, so the connection is reused
				resp.Body.Close()
				sent.Add(1)
				switch resp.StatusCode {
				case 401, 429, 503:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	loaded, calmBad, calmErr := calm(dur - 2*time.Second)
	wg.Wait()
	if calmErr != nil {
		return calmErr
	}
	after := dbSize()
	evAfter, err := storedEvents()
	if err != nil {
		return err
	}
	unloadedAfter, bad, err := calm(dur / 2)
	if err != nil || bad > 0 {
		return fmt.Errorf("calm client unloaded, after the flood: %d bad answers (%v)", bad, err)
	}
	unloaded = append(unloaded, unloadedAfter...)
	if calmBad > 0 || other.Load() > 0 {
		return fmt.Errorf("REFUSED: the calm client had %d bad answers, the flood %d unexpected ones", calmBad, other.Load())
	}
	pu, pl := pct(unloaded, 99), pct(loaded, 99)
	secs := dur.Seconds()
	fmt.Printf("flood: %d refused requests (%.0f/s) from %d addresses\n", refused.Load(), float64(refused.Load())/secs, sources)
	fmt.Printf("flood: events stored during the flood: %d (%.1f/s; at most 10000 counted)\n", evAfter-evBefore, float64(evAfter-evBefore)/secs)
	fmt.Printf("flood: database file growth %.2f MB; write-ahead log %.2f MB → %.2f MB (bounded: reused from its start after each checkpoint, every ~4 MB)\n",
		float64(after-before)/(1<<20), float64(walBefore)/(1<<20), float64(fileSize("warden.db-wal"))/(1<<20))
	verdict := "PASS"
	if pl > 2*pu {
		verdict = "MISS"
	}
	fmt.Printf("flood: calm client p50 %v unloaded, %v during the flood\n", pct(unloaded, 50).Round(time.Microsecond), pct(loaded, 50).Round(time.Microsecond))
	fmt.Printf("flood: calm client p99 %v unloaded (%d calls, half before and half after the flood), %v during the flood (%d calls): %.2fx (target <= 2x) %s\n",
		pu.Round(time.Microsecond), len(unloaded), pl.Round(time.Microsecond), len(loaded), float64(pl)/float64(pu), verdict)
	return nil
}

// calmChild is `warden-bench calm -url U -ca FILE -d D`: the calm client, in
// its own process. It calls U at 20 req/s for D over one keep-alive
// connection and prints each answer's latency in microseconds, one per
// line, then "bad N" for calls that failed or answered other than 200.
func calmChild(args []string) int {
	fs := flag.NewFlagSet("warden-bench calm", flag.ContinueOnError)
	url := fs.String("url", "", "the route to call")
	ca := fs.String("ca", "", "the server's CA certificate (PEM)")
	d := fs.Duration("d", 10*time.Second, "how long to call")
	if err := fs.Parse(args); err != nil || *url == "" || *ca == "" {
		fmt.Fprintln(os.Stderr, "usage: warden-bench calm -url URL -ca FILE -d DURATION")
		return 2
	}
	pool, err := pki.CertPool(*ca)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	defer c.Transport.(*http.Transport).CloseIdleConnections()
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	bad := 0
	t := time.NewTicker(50 * time.Millisecond) // 20 req/s
	defer t.Stop()
	for end := time.Now().Add(*d); time.Now().Before(end); {
		<-t.C
		start := time.Now()
		resp, err := c.Get(*url)
		if err != nil {
			bad++
			continue
		}
		io.Copy(io.Discard, resp.Body) // read to the end, so the connection is reused
		resp.Body.Close()
		if resp.StatusCode != 200 {
			bad++
			continue
		}
		fmt.Fprintln(w, time.Since(start).Microseconds())
	}
	fmt.Fprintln(w, "bad", bad)
	return 0
}

// parseCalm reads calmChild's output.
func parseCalm(out []byte) (lat []time.Duration, bad int, err error) {
	sawBad := false
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if n, ok := strings.CutPrefix(line, "bad "); ok {
			if bad, err = strconv.Atoi(n); err != nil {
				return nil, 0, fmt.Errorf("calm client: %q", line)
			}
			sawBad = true
			continue
		}
		us, err := strconv.ParseInt(line, 10, 64)
		if err != nil || us < 0 {
			return nil, 0, fmt.Errorf("calm client: %q", line)
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	if !sawBad {
		return nil, 0, errors.New("calm client: output ends early")
	}
	return lat, bad, nil
}

// pct returns the p-th percentile of ds (0 for none).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
