package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"warden/internal/manifest"
)

// Spec describes one function version.
type Spec struct {
	Namespace, Name string
	Version         int
	Digest          string // unique per version (hex)
	ABI             manifest.ABI
	Limits          manifest.Limits
	Env             map[string]string                         // the manifest's env: the ONLY environment the guest sees
	Load            func(ctx context.Context) ([]byte, error) // returns the wasm; called whenever the compiled module must be (re)loaded
	// Host serves the version's capability calls (secret_get, kv_*,
	// http_request) and checks its grants on each. nil: every capability
	// call returns the denied code.
	Host Host
	// PoolSize bounds the version's reactor instances (idle or busy); 0 =
	// Config.PoolSize. A function whose calls block on the network (egress)
	// holds its instance while it waits, so it may need more instances than
	// GOMAXPROCS to keep its concurrency.
	PoolSize int
}

// Request is one invocation's input. The sandbox does not modify it.
type Request struct {
	Method, Path, RawQuery, Host, Scheme, RemoteAddr string
	Header                                           http.Header
	Body                                             []byte
	RequestID                                        string
	Vars                                             map[string]string // extra metadata for the guest (route, verified identity…)
}

// Response is a guest's answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte // owned by the caller (copied out of guest memory)
}

// Function runs one function version. It is safe for concurrent use.
//
// # Notes
//   - Nothing is compiled or instantiated until Prepare or the first Invoke.
//   - The compiled module is released after Config.ModuleIdle without
//     invocations and reloaded (through Spec.Load and the compilation cache)
//     on the next one.
//   - A reactor instance serves one invocation at a time; after a trap,
//     timeout or any other error it is discarded, never pooled.
type Function struct {
	e    *Engine
	spec Spec
	lim  manifest.Limits
	inv  Invocation
	env  map[string]string   // Spec.Env's valid variables plus the runtime defaults (guestEnv)
	base wazero.ModuleConfig // deny-by-default module config with env (reactors)
	sem  chan struct{}
	log  []slog.Attr
	seen secretSet // secret values its guests read: redacted from their output
	halt halt      // set by terminate: metered guests trap at their next yield

	loadMu sync.Mutex // serializes loading so a module compiles once

	mu       sync.Mutex
	mod      *module
	lastUsed time.Time
	inflight int           // Invoke and Prepare calls in progress
	closed   bool          // no new invocations
	drained  chan struct{} // closed when inflight reaches 0 after closed
	done     chan struct{} // closed when Close has released everything
}

// module is a loaded function version: its runtime, compiled code and pool.
type module struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	metered  bool        // compiled from fuel-instrumented code (meter.go)
	idle     []*instance // oldest first; guarded by Function.mu
	leases   int         // invocations using rt; guarded by Function.mu
	// tokens holds one token per instance that may still be created: the
	// pool size in all (Spec.PoolSize, else Config.PoolSize), taken by
	// newInstance, given back when an instance closes. freed wakes
	// invocations waiting for an idle instance.
	tokens chan struct{}
	freed  chan struct{}
}

// instance is one instantiated reactor module.
type instance struct {
	mod      api.Module
	mem      api.Memory
	alloc    api.Function
	handle   api.Function
	out      *capture // guest stdout and stderr
	uses     int
	lastUsed time.Time
	bufPtr   uint32 // request buffer from warden_alloc
	bufCap   uint32 // its size; 0 before the first warden_alloc
	stack    [2]uint64
}

// Function returns the function for spec. It is cheap: nothing is loaded
// until Prepare or Invoke. Zero limits take the manifest defaults. Calling
// Function twice for one spec gives two functions that share nothing but the
// compilation cache; callers keep one per version.
func (e *Engine) Function(spec Spec) *Function {
	spec.Env = maps.Clone(spec.Env)
	f := &Function{
		e:    e,
		spec: spec,
		lim:  limitsWithDefaults(spec.Limits),
		inv:  Invocation{Namespace: spec.Namespace, Name: spec.Name, Version: spec.Version},
		done: make(chan struct{}),
	}
	f.sem = make(chan struct{}, f.lim.Concurrency)
	f.log = []slog.Attr{
		slog.String("namespace", spec.Namespace),
		slog.String("function", spec.Name),
		slog.Int("version", spec.Version),
	}
	f.env = guestEnv(spec.Env, f.lim.Memory)
	f.base = f.moduleConfig()
	e.mu.Lock()
	if e.closed {
		f.closed = true
		close(f.done)
	} else {
		e.funcs[f] = struct{}{}
	}
	e.mu.Unlock()
	return f
}

func limitsWithDefaults(l manifest.Limits) manifest.Limits {
	if l.Memory <= 0 {
		l.Memory = manifest.DefaultMemory
	}
	if l.Timeout <= 0 {
		l.Timeout = manifest.DefaultTimeout
	}
	if l.Concurrency <= 0 {
		l.Concurrency = manifest.DefaultConcurrency
	}
	if l.RequestBody <= 0 {
		l.RequestBody = manifest.DefaultRequestBody
	}
	if l.ResponseBody <= 0 {
		l.ResponseBody = manifest.DefaultResponseBody
	}
	return l
}

func (f *Function) memoryPages() uint32 {
	pages := f.lim.Memory / 65536
	return uint32(max(1, min(pages, 65536)))
}

// moduleConfig is the deny-by-default configuration every instance starts
// from: no filesystem, no sockets, no host environment, args = [name], real
// clocks and crypto randomness.
func (f *Function) moduleConfig() wazero.ModuleConfig {
	c := wazero.NewModuleConfig().
		WithName("").
		WithArgs(f.spec.Name).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithStartFunctions()
	if f.spec.ABI == manifest.ABIReactor {
		for _, k := range slices.Sorted(maps.Keys(f.env)) {
			c = c.WithEnv(k, f.env[k])
		}
	}
	return c
}

// Defaults for a Go guest's runtime, which reads them from its environment
// at start; the manifest's env overrides either. GOMEMLIMIT tells the
// collector the instance's memory limit, less room for the runtime's own
// structures, so that a heap near the limit is collected harder instead of
// growing into a trap. With that bound in place, GOGC=200 halves how often
// a busy instance collects (its heap may reach three times what is live,
// from two): examples/echo-json's warm call 56–64 → 50 µs in the sandbox
// benchmark, within the noise in the server (docs/RATIONALE.md). Other
// languages' runtimes ignore both.
const guestGOGC = "200"

// guestMemLimit is the GOMEMLIMIT for an instance of memory bytes: 7/8 of
// it, leaving at least 1 MiB to the runtime.
func guestMemLimit(memory int64) int64 {
	return min(memory-memory/8, memory-1<<20)
}

// guestEnv returns the manifest's valid variables plus the runtime
// defaults it does not set.
func guestEnv(manifestEnv map[string]string, memory int64) map[string]string {
	env := make(map[string]string, len(manifestEnv)+2)
	for k, v := range manifestEnv {
		if validEnv(k, v) {
			env[k] = v
		}
	}
	if _, ok := env["GOGC"]; !ok {
		env["GOGC"] = guestGOGC
	}
	if _, ok := env["GOMEMLIMIT"]; !ok && memory > 1<<20 {
		env["GOMEMLIMIT"] = strconv.FormatInt(guestMemLimit(memory), 10)
	}
	return env
}

func validEnv(k, v string) bool {
	return k != "" && !strings.ContainsAny(k, "=\x00") && !strings.ContainsRune(v, 0)
}

// Prepare loads the compiled module now (from the file cache when warm) so
// the next Invoke pays no compile. It fails with a *Error of KindUnavailable.
func (f *Function) Prepare(ctx context.Context) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	_, err := f.load(ctx, false)
	return err
}

// enter registers an in-flight call, or fails when the function is closed.
func (f *Function) enter() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return newError(KindUnavailable, "function unavailable", errClosed)
	}
	f.inflight++
	return nil
}

func (f *Function) exit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	if f.closed && f.inflight == 0 && f.drained != nil {
		close(f.drained)
		f.drained = nil
	}
}

// load returns the loaded module, loading it if needed. With lease, the
// module is leased (it cannot be released until unlease).
func (f *Function) load(ctx context.Context, lease bool) (*module, error) {
	f.mu.Lock()
	if m := f.mod; m != nil {
		if lease {
			m.leases++
		}
		f.lastUsed = time.Now()
		f.mu.Unlock()
		return m, nil
	}
	f.mu.Unlock()

	f.loadMu.Lock()
	defer f.loadMu.Unlock()
	f.mu.Lock()
	m := f.mod
	f.mu.Unlock()
	if m == nil {
		var err error
		if m, err = f.newModule(ctx); err != nil {
			f.e.cfg.Logger.LogAttrs(ctx, slog.LevelError, "function module could not be loaded",
				append(slices.Clip(f.log), slog.String("error", err.Error()))...)
			return nil, newError(KindUnavailable, "function unavailable", err)
		}
		f.e.loaded.Add(1)
	}
	f.mu.Lock()
	f.mod = m
	if lease {
		m.leases++
	}
	f.lastUsed = time.Now()
	f.mu.Unlock()
	return m, nil
}

func (f *Function) newModule(ctx context.Context) (*module, error) {
	if !validABI(f.spec.ABI) {
		return nil, fmt.Errorf("unknown abi %q", f.spec.ABI)
	}
	if f.spec.Load == nil {
		return nil, errors.New("spec has no Load")
	}
	wasm, err := f.spec.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	c, err := prepare(wasm)
	if err != nil {
		return nil, err
	}
	// Compile without the invocation's deadline: a compile that fills the
	// cache is worth finishing.
	cctx := context.WithoutCancel(ctx)
	rt, err := f.e.newRuntime(cctx, f.memoryPages(), c.metered)
	if err != nil {
		return nil, err
	}
	compiled, err := rt.CompileModule(cctx, c.wasm)
	if err != nil {
		_ = rt.Close(cctx)
		return nil, fmt.Errorf("compile: %w", err)
	}
	if err := checkExports(f.spec.ABI, compiled); err != nil {
		_ = rt.Close(cctx)
		return nil, err
	}
	hugeCodeAsync()
	size := f.e.cfg.PoolSize
	if f.spec.PoolSize > 0 {
		size = f.spec.PoolSize
	}
	m := &module{rt: rt, compiled: compiled, metered: c.metered,
		tokens: make(chan struct{}, size), freed: make(chan struct{}, size)}
	for range size {
		m.tokens <- struct{}{}
	}
	return m, nil
}

func (f *Function) unlease(m *module) {
	f.mu.Lock()
	m.leases--
	f.lastUsed = time.Now()
	f.mu.Unlock()
}

// Invoke runs one request. Errors are *Error. Invoke is safe for concurrent
// use; beyond Limits.Concurrency in-flight calls it fails immediately with
// KindConcurrency.
func (f *Function) Invoke(ctx context.Context, req *Request) (*Response, error) {
	select {
	case f.sem <- struct{}{}:
	default:
		return nil, newError(KindConcurrency, "too many concurrent invocations", nil)
	}
	defer func() { <-f.sem }()
	if err := f.enter(); err != nil {
		return nil, err
	}
	defer f.exit()
	m, err := f.load(ctx, true)
	if err != nil {
		return nil, err
	}
	defer f.unlease(m)

	cs := &callState{inv: f.inv, logger: f.e.cfg.Logger, host: f.spec.Host, seen: &f.seen, halt: &f.halt}
	cs.inv.RequestID = req.RequestID
	ictx := newInvocationCtx(ctx, f.lim.Timeout, cs)
	defer ictx.stop()
	ctx = ictx

	var resp *Response
	if f.spec.ABI == manifest.ABIWagi {
		resp, err = f.invokeWagi(ctx, m, req)
	} else {
		resp, err = f.invokeReactor(ctx, m, req)
	}
	if err == nil && ctx.Err() != nil {
		// The deadline passed (typically in a host call, which then
		// answered the guest with a timeout code) but the guest returned
		// before wazero stopped it: past its deadline an invocation has
		// no answer but the timeout.
		resp, err = nil, f.failure(ctx, ctx.Err(), nil, 0)
	}
	if cs.logDroppd > 0 {
		f.e.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "guest log budget exceeded",
			append(slices.Clip(f.log), slog.String("request_id", req.RequestID), slog.Int("dropped", cs.logDroppd))...)
	}
	return resp, err
}

var (
	errTimeout          = errors.New("invocation timed out")
	errResponseTooLarge = errors.New("response body too large")
)

// failure turns an error from guest code into an *Error.
// memSize is the guest's memory size at failure (0 when unknown).
func (f *Function) failure(ctx context.Context, err error, out *capture, memSize uint32) *Error {
	var ee *sys.ExitError
	isExit := errors.As(err, &ee)
	switch {
	case out != nil && out.oom, memSize > 0 && int64(memSize)+4<<20 > f.lim.Memory && !isCtxExit(ee):
		return newError(KindMemory, "function exceeded its memory limit", err)
	case context.Cause(ctx) == errResponseTooLarge:
		return newError(KindResponseTooLarge, "function response too large", err)
	case invocationCause(ctx) == errTimeout:
		return newError(KindTimeout, "function timed out", err)
	case ctx.Err() != nil:
		return newError(KindTimeout, "invocation canceled", err)
	case isExit:
		return newError(KindTrap, fmt.Sprintf("function exited with status %d", ee.ExitCode()), err)
	default:
		return newError(KindTrap, "function trapped", err)
	}
}

func isCtxExit(ee *sys.ExitError) bool {
	return ee != nil && (ee.ExitCode() == sys.ExitCodeContextCanceled || ee.ExitCode() == sys.ExitCodeDeadlineExceeded)
}

// logGuest writes the captured guest output (and the failure, if any).
func (f *Function) logGuest(ctx context.Context, req *Request, out *capture, ierr *Error) {
	if out.total == 0 && ierr == nil {
		return
	}
	attrs := append(slices.Clip(f.log), slog.String("request_id", req.RequestID))
	lvl := slog.LevelInfo
	msg := "guest output"
	if ierr != nil {
		lvl, msg = slog.LevelWarn, "invocation failed"
		attrs = append(attrs, slog.String("kind", ierr.Kind.String()))
		if ierr.Err != nil {
			attrs = append(attrs, slog.String("error", ierr.Err.Error()))
		}
	}
	if out.total > 0 {
		attrs = append(attrs, slog.String("output", f.seen.redact(out.text())))
	}
	f.e.cfg.Logger.LogAttrs(ctx, lvl, msg, attrs...)
}

// getInstance pops an idle instance, or instantiates a new one while the
// module has fewer than PoolSize instances, or waits for one to be returned
// (until ctx ends). Bounding live instances near GOMAXPROCS keeps memory flat
// and avoids creating instances (~3 ms each) that a full pool would then
// discard: excess invocations queue for a warm instance instead.
func (f *Function) getInstance(ctx context.Context, m *module) (*instance, *Error) {
	for {
		f.mu.Lock()
		if n := len(m.idle); n > 0 {
			inst := m.idle[n-1]
			m.idle[n-1] = nil
			m.idle = m.idle[:n-1]
			f.mu.Unlock()
			f.e.idle.Add(-1)
			f.e.busy.Add(1)
			return inst, nil
		}
		f.mu.Unlock()
		// Take a free slot without waiting first: the wait below asks for
		// ctx.Done, which costs the invocation a timer (invocationCtx).
		select {
		case <-m.tokens:
			return f.startInstance(ctx, m)
		default:
		}
		select {
		case <-m.tokens:
			return f.startInstance(ctx, m)
		case <-m.freed:
			// An instance went back to the pool: look again.
		case <-ctx.Done():
			return nil, f.failure(ctx, ctx.Err(), nil, 0)
		}
	}
}

// startInstance creates an instance in the slot the caller took from
// m.tokens, and gives the slot back when that fails.
func (f *Function) startInstance(ctx context.Context, m *module) (*instance, *Error) {
	f.e.busy.Add(1)
	inst, ierr := f.newInstance(ctx, m)
	if ierr != nil {
		f.e.busy.Add(-1)
		m.tokens <- struct{}{}
	}
	return inst, ierr
}

// putInstance returns inst to the pool, or closes it (giving its slot back)
// when it is unhealthy, worn out, or the module is going away.
func (f *Function) putInstance(m *module, inst *instance, healthy bool) {
	f.e.busy.Add(-1)
	if healthy && inst.uses < f.e.cfg.MaxRequestsPerInstance {
		f.mu.Lock()
		if f.mod == m && !f.closed {
			inst.lastUsed = time.Now()
			m.idle = append(m.idle, inst)
			f.mu.Unlock()
			f.e.idle.Add(1)
			select {
			case m.freed <- struct{}{}:
			default: // enough wake-ups are pending already
			}
			return
		}
		f.mu.Unlock()
	}
	_ = inst.mod.Close(context.Background())
	m.tokens <- struct{}{} // never blocks: one token per live instance is out
}

// reap closes instances idle for InstanceIdle and releases the module after
// ModuleIdle without invocations.
func (f *Function) reap(now time.Time) {
	var stale []*instance
	var release *module
	f.mu.Lock()
	m := f.mod
	if m != nil {
		i := 0
		for i < len(m.idle) && now.Sub(m.idle[i].lastUsed) >= f.e.cfg.InstanceIdle {
			i++
		}
		if m.leases == 0 && now.Sub(f.lastUsed) >= f.e.cfg.ModuleIdle {
			i = len(m.idle)
			release = m
			f.mod = nil
		}
		if i > 0 {
			stale = slices.Clone(m.idle[:i])
			m.idle = slices.Delete(m.idle, 0, i)
		}
	}
	f.mu.Unlock()
	if m != nil {
		f.closeInstances(m, stale)
	}
	if release != nil {
		f.releaseModule(release)
	}
}

func (f *Function) closeInstances(m *module, insts []*instance) {
	for _, inst := range insts {
		_ = inst.mod.Close(context.Background())
		m.tokens <- struct{}{}
	}
	f.e.idle.Add(-int64(len(insts)))
}

func (f *Function) releaseModule(m *module) {
	_ = m.rt.Close(context.Background()) // closes the compiled module and any instance
	f.e.loaded.Add(-1)
}

// Close releases the function's instances and compiled module. New
// invocations fail with KindUnavailable; in-flight invocations finish first.
// Close is idempotent and safe to call concurrently with Invoke.
func (f *Function) Close() {
	f.mu.Lock()
	if f.closed {
		done := f.done
		f.mu.Unlock()
		<-done
		return
	}
	f.closed = true
	var drained chan struct{}
	if f.inflight > 0 {
		f.drained = make(chan struct{})
		drained = f.drained
	}
	f.mu.Unlock()
	if drained != nil {
		<-drained
	}
	f.mu.Lock()
	m := f.mod
	f.mod = nil
	var idle []*instance
	if m != nil {
		idle, m.idle = m.idle, nil
	}
	f.mu.Unlock()
	if m != nil {
		f.closeInstances(m, idle)
		f.releaseModule(m)
	}
	f.e.forget(f)
	close(f.done)
}

// terminate stops running guests of f (Engine.Close past its deadline). The
// invocations return errors and Close proceeds. Metered guests trap at their
// next yield; their runtime is not closed under them (closing frees guest
// memory that code without wazero's checks may still be using).
func (f *Function) terminate() {
	f.halt.Store(true)
	f.mu.Lock()
	m := f.mod
	f.mu.Unlock()
	if m != nil && !m.metered {
		_ = m.rt.CloseWithExitCode(context.Background(), 1)
	}
}
