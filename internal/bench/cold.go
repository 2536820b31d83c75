package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"warden/internal/config"
	"warden/internal/manifest"
	"warden/internal/sandbox"
	"warden/internal/server"
	"warden/internal/store"
	"warden/internal/store/sqlite"
)

// coldStarts measures the first call of a version: never compiled (empty
// cache), compiled in an earlier process (file cache hit, as after a
// restart), and a fresh instance of a module already loaded.
func (r *runner) coldStarts() error {
	wasm, err := os.ReadFile(filepath.Join(r.examples, "echo-json", "echo-json.wasm"))
	if err != nil {
		return err
	}
	spec := sandbox.Spec{
		Namespace: "bench", Name: "echo-json", Version: 1, Digest: "cold", ABI: manifest.ABIReactor,
		Limits: manifest.Limits{Memory: 64 << 20, Timeout: 10 * time.Second, Concurrency: 8, RequestBody: 1 << 20, ResponseBody: 1 << 20},
		Load:   func(context.Context) ([]byte, error) { return wasm, nil },
	}
	req := func() *sandbox.Request {
		return &sandbox.Request{Method: "POST", Path: "/echo", Body: []byte(`{"a":1}`), Header: map[string][]string{}}
	}
	first := func(cacheDir string) (time.Duration, error) {
		ctx := context.Background()
		eng, err := sandbox.New(ctx, sandbox.Config{CacheDir: cacheDir})
		if err != nil {
			return 0, err
		}
		defer eng.Close(ctx)
		fn := eng.Function(spec)
		t0 := time.Now()
		resp, err := fn.Invoke(ctx, req())
		d := time.Since(t0)
		if err == nil && resp.Status != 200 {
			err = fmt.Errorf("status %d", resp.Status)
		}
		return d, err
	}
	warmCache := filepath.Join(r.tmp, "cold-cache")
	var uncached, cached []time.Duration
	for i := range 3 {
		d, err := first(filepath.Join(r.tmp, "uncached-"+strconv.Itoa(i)))
		if err != nil {
			return fmt.Errorf("uncached cold start: %w", err)
		}
		uncached = append(uncached, d)
	}
	if _, err := first(warmCache); err != nil {
		return err
	}
	for range 5 {
		d, err := first(warmCache)
		if err != nil {
			return fmt.Errorf("cached cold start: %w", err)
		}
		cached = append(cached, d)
	}
	size := fmt.Sprintf("%.1f MB module", float64(len(wasm))/1e6)
	r.note("cold start, uncached compile (median of 3), "+size, median(uncached).Round(time.Millisecond).String(), "")
	r.note("cold start, compilation cache hit (median of 5)", median(cached).Round(100*time.Microsecond).String(),
		"< 60ms: "+verdict(median(cached) < 60*time.Millisecond))

	// A new instance of an already loaded module: concurrency forces the
	// pool to grow, and each first call pays instantiation.
	ctx := context.Background()
	eng, err := sandbox.New(ctx, sandbox.Config{CacheDir: warmCache, PoolSize: 1, MaxRequestsPerInstance: 1})
	if err != nil {
		return err
	}
	defer eng.Close(ctx)
	fn := eng.Function(spec)
	if err := fn.Prepare(ctx); err != nil {
		return err
	}
	var inst []time.Duration
	for range 20 {
		t0 := time.Now()
		if _, err := fn.Invoke(ctx, req()); err != nil { // MaxRequestsPerInstance=1: every call instantiates
			return err
		}
		inst = append(inst, time.Since(t0))
	}
	r.note("instance creation + first call, module loaded (median of 20)", median(inst).Round(10*time.Microsecond).String(), "")
	return nil
}

// memory seeds a data directory with n idle functions and measures, in a
// fresh process, the server's resident memory after start, after a tenth of
// them ran once, and after the idle ones were evicted.
func (r *runner) memory(n int) error {
	data := filepath.Join(r.tmp, "mem-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	wasm, err := os.ReadFile(filepath.Join(r.examples, "ping", "ping.wasm"))
	if err != nil {
		return err
	}
	cfg := config.Default()
	cfg.DataDir = data
	db, err := sqlite.Open(cfg.DBPath())
	if err != nil {
		return err
	}
	ctx := context.Background()
	sum := sha256.Sum256(wasm)
	art := hex.EncodeToString(sum[:])
	if err := db.PutArtifact(ctx, art, wasm); err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("fn-%04d", i)
		m := fmt.Sprintf("name: %s\nabi: reactor\nartifact: ./ping.wasm\nhttp:\n  - route: \"GET /%s\"\n    auth: none\n", name, name)
		if _, err := db.CreateVersion(ctx, store.Version{Namespace: "default", Name: name,
			ArtifactDigest: art, ArtifactSize: int64(len(wasm)), Manifest: []byte(m), CreatedBy: "bench"}, true); err != nil {
			return err
		}
	}
	db.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	invoked := max(n/10, 1)
	cmd := exec.Command(self, "memchild", "-data", data, "-invoke", strconv.Itoa(invoked))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("memchild: %w", err)
	}
	var m memResult
	if err := json.Unmarshal(out, &m); err != nil {
		return fmt.Errorf("memchild output %q: %w", out, err)
	}
	r.note(fmt.Sprintf("RSS, %d functions deployed, none run", n), mb(m.Idle), "< 300 MB: "+verdict(m.Idle < 300<<20))
	r.note(fmt.Sprintf("RSS, right after %d of them ran once", invoked), mb(m.Peak), "")
	r.note(fmt.Sprintf("RSS, after idle eviction (%d modules left loaded)", m.LoadedAfter), mb(m.Evicted), "< 300 MB: "+verdict(m.Evicted < 300<<20))
	return nil
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

type memResult struct {
	Idle, Peak, Evicted int64
	LoadedAfter         int
}

// memChild is the measured process for memory.
func memChild(args []string) int {
	fs := flag.NewFlagSet("memchild", flag.ContinueOnError)
	data := fs.String("data", "", "data dir")
	invoke := fs.Int("invoke", 100, "functions to run once")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Listen, cfg.AdminListen = *data, "127.0.0.1:0", "127.0.0.1:0"
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, server.Options{Sandbox: sandbox.Config{ModuleIdle: 3 * time.Second, InstanceIdle: time.Second}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go srv.Serve()
	defer srv.Shutdown(ctx)
	var res memResult
	res.Idle = rss()
	list := srv.Deploy().List()
	for i := 0; i < *invoke && i < len(list); i++ {
		if _, err := list[i].Fn.Invoke(ctx, &sandbox.Request{Method: "GET", Path: "/", Header: map[string][]string{}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	res.Peak = rss()
	deadline := time.Now().Add(2 * time.Minute)
	for srv.SandboxStats().LoadedModules > 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	res.LoadedAfter = srv.SandboxStats().LoadedModules
	res.Evicted = rss()
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// rss returns the resident set size after returning freed memory to the OS.
func rss() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}
