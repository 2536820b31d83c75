// Package sandbox owns running guest WebAssembly modules under wazero: the
// compilation cache, one runtime per function version, instance pools, the
// resource limits (memory, time, concurrency, response size), the two ABIs
// (wagi and reactor) and the "warden" host module.
//
// The sandbox never reads the host filesystem, the host environment or the
// network on a guest's behalf: a guest gets no preopened directories, no
// sockets, no environment other than its manifest env (plus CGI variables for
// wagi), args equal to its function name, real clocks and crypto/rand
// randomness. Anything more is a capability of the warden host module
// (secrets, KV, egress HTTP), served by the function version's Host
// (Spec.Host), which checks the manifest's grants on every call; the
// sandbox only decodes and bounds the guest's arguments and results.
//
// # Notes
//   - Lock order: Engine.mu before Function.mu; Function.loadMu before
//     Function.mu. No lock is held while guest code runs or while a module
//     compiles.
//   - Guest code always stops when its invocation ends. A module is
//     instrumented with fuel checks (package fuel, meter.go) and runs in a
//     runtime without wazero's termination checks; a module fuel cannot
//     instrument runs in a runtime WithCloseOnContextDone(true). Both share
//     the compilation cache, which is safe because they never compile the
//     same bytes: instrumented code imports a module that no code compiled
//     as it is may import (meter.go).
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"warden/internal/manifest"
)

// Config configures an Engine. The zero value is usable.
type Config struct {
	CacheDir               string        // wazero file compilation cache dir; "" = in-memory cache
	PoolSize               int           // max reactor instances (idle or busy) per function version; more invocations queue for one; 0 = runtime.GOMAXPROCS(0)
	MaxRequestsPerInstance int           // recycle a reactor instance after this many invocations; 0 = 10000
	InstanceIdle           time.Duration // idle pooled instances are closed after this; 0 = 30s
	ModuleIdle             time.Duration // a version's compiled module (and its wazero runtime) is released after no invocation for this long; 0 = 2m
	Logger                 *slog.Logger  // guest stderr / log lines and engine diagnostics; nil = discard
}

// Defaults for zero Config fields.
const (
	DefaultMaxRequestsPerInstance = 10000
	DefaultInstanceIdle           = 30 * time.Second
	DefaultModuleIdle             = 2 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.PoolSize <= 0 {
		c.PoolSize = runtime.GOMAXPROCS(0)
	}
	if c.MaxRequestsPerInstance <= 0 {
		c.MaxRequestsPerInstance = DefaultMaxRequestsPerInstance
	}
	if c.InstanceIdle <= 0 {
		c.InstanceIdle = DefaultInstanceIdle
	}
	if c.ModuleIdle <= 0 {
		c.ModuleIdle = DefaultModuleIdle
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Engine runs functions. It is safe for concurrent use.
//
// # Notes
//   - Functions share only the compilation cache; each function version has
//     its own wazero runtime (and so its own memory ceiling).
//   - A reaper goroutine closes idle instances and releases idle modules;
//     Close stops it.
type Engine struct {
	cfg   Config
	cache wazero.CompilationCache

	mu     sync.Mutex
	funcs  map[*Function]struct{}
	closed bool

	loaded         atomic.Int64
	idle           atomic.Int64
	busy           atomic.Int64
	instantiations atomic.Int64

	stop       chan struct{}
	reaperDone chan struct{}
}

// New returns an engine. With cfg.CacheDir set, compiled code is kept in
// that directory (created if missing) and reused across restarts.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("sandbox: compilation cache: %w", err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	e := &Engine{
		cfg:        cfg,
		cache:      cache,
		funcs:      make(map[*Function]struct{}),
		stop:       make(chan struct{}),
		reaperDone: make(chan struct{}),
	}
	go e.reaper()
	return e, nil
}

// runtimeConfig is the one place runtimes are configured (see package
// Notes): metered code runs without wazero's termination checks, any other
// code with them.
func (e *Engine) runtimeConfig(memoryPages uint32, metered bool) wazero.RuntimeConfig {
	c := wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithCloseOnContextDone(!metered).
		WithDebugInfoEnabled(false)
	if memoryPages > 0 {
		c = c.WithMemoryLimitPages(memoryPages)
	}
	return c
}

// newRuntime returns a runtime with the host modules a guest may import
// (and, for metered code, the fuel module).
func (e *Engine) newRuntime(ctx context.Context, memoryPages uint32, metered bool) (wazero.Runtime, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, e.runtimeConfig(memoryPages, metered))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("instantiate wasi: %w", err)
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("instantiate host module: %w", err)
	}
	if metered {
		if err := instantiateFuelModule(ctx, rt); err != nil {
			_ = rt.Close(ctx)
			return nil, fmt.Errorf("instantiate fuel module: %w", err)
		}
	}
	return rt, nil
}

// Stats is a snapshot of the engine's resource use.
type Stats struct {
	Functions      int   // Functions not yet closed
	LoadedModules  int   // function versions holding a compiled module and runtime
	IdleInstances  int   // pooled reactor instances waiting for work
	BusyInstances  int   // instances running an invocation (reactor and wagi)
	Instantiations int64 // instances created since New
}

// Stats returns current counters. The fields are read independently, so a
// snapshot taken during traffic may be momentarily inconsistent.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	n := len(e.funcs)
	e.mu.Unlock()
	return Stats{
		Functions:      n,
		LoadedModules:  int(e.loaded.Load()),
		IdleInstances:  int(e.idle.Load()),
		BusyInstances:  int(e.busy.Load()),
		Instantiations: e.instantiations.Load(),
	}
}

// Close closes every function: new invocations fail with KindUnavailable,
// in-flight invocations finish first. If ctx ends before they do, their
// guests are terminated and Close returns ctx.Err() once they have returned.
// Close is idempotent.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.reaperDone
		return nil
	}
	e.closed = true
	funcs := make([]*Function, 0, len(e.funcs))
	for f := range e.funcs {
		funcs = append(funcs, f)
	}
	e.mu.Unlock()
	close(e.stop)
	<-e.reaperDone

	var wg sync.WaitGroup
	for _, f := range funcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.Close()
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, f := range funcs {
			f.terminate()
		}
		<-done
	}
	if cerr := e.cache.Close(context.Background()); cerr != nil && err == nil {
		err = fmt.Errorf("sandbox: close cache: %w", cerr)
	}
	return err
}

func (e *Engine) forget(f *Function) {
	e.mu.Lock()
	delete(e.funcs, f)
	e.mu.Unlock()
}

// reapInterval is how often the reaper looks for idle instances and modules.
func (e *Engine) reapInterval() time.Duration {
	d := min(e.cfg.InstanceIdle, e.cfg.ModuleIdle) / 4
	return max(5*time.Millisecond, min(d, time.Second))
}

func (e *Engine) reaper() {
	defer close(e.reaperDone)
	t := time.NewTicker(e.reapInterval())
	defer t.Stop()
	var funcs []*Function
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.mu.Lock()
			funcs = funcs[:0]
			for f := range e.funcs {
				funcs = append(funcs, f)
			}
			e.mu.Unlock()
			for _, f := range funcs {
				f.reap(now)
			}
			clear(funcs)
		}
	}
}

var errClosed = errors.New("function closed")

// validABI reports whether abi is one the sandbox runs.
func validABI(abi manifest.ABI) bool {
	return abi == manifest.ABIWagi || abi == manifest.ABIReactor
}
