// Package server wires warden's subsystems together: store, event recorder,
// sandbox engine, deploy service, gateway and admin API, the two listeners,
// the TLS material and the bootstrap credential. It is the only package that
// does so; only the CLI imports it.
//
// server never handles a request itself and never prints a credential except
// the bootstrap token, once, on the start that creates it.
package server

import (
	"github.com/redis/go-redis/v9"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/admin"
	"warden/internal/auth"
	"warden/internal/capability"
	"warden/internal/config"
	"warden/internal/connlimit"
	"warden/internal/deploy"
	"warden/internal/egress"
	"warden/internal/events"
	"warden/internal/gateway"
	"warden/internal/health"
	"warden/internal/inspect"
	"warden/internal/pki"
	"warden/internal/ratelimit"
	"warden/internal/sandbox"
	"warden/internal/store"
	"warden/internal/store/sqlite"
)

// Server is a running warden. Create it with New, run it with Serve, stop it
// with Shutdown.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	store  store.Store
	rec    *events.Recorder
	events *events.Aggregator // what every producer emits to: repeated refusals folded, then rec
	engine *sandbox.Engine
	deploy *deploy.Service
	vault  *capability.Vault
	caps   *capability.Service
	keys   *capability.KeyManager

	// GeneratedMasterKey is set when this start generated the master key
	// in the data directory (the development default).
	GeneratedMasterKey bool

	public, adminSrv  *http.Server
	publicLn, adminLn net.Listener
	tlsOn             bool

	// BootstrapToken is set only on the start that created it.
	BootstrapToken string

	shutdownOnce sync.Once
	shutdownErr  error
	handlers     inflight        // requests being handled on either listener
	bg           sync.WaitGroup  // background work (the sweeper); waited for at shutdown
	ctx          context.Context // ends at shutdown: background work stops
	cancel       context.CancelFunc
	closers      []func() error // closed last, after the backends
}

// Options are what New needs besides the configuration.
type Options struct {
	Logger *slog.Logger // nil: discard
	// Sandbox overrides engine settings (tests use short idle times, and
	// share one compilation cache: CacheDir "" means DATA/cache).
	Sandbox sandbox.Config
	// Resolver resolves egress destinations; nil: the system resolver
	// (tests inject DNS answers).
	Resolver egress.Resolver
}

// New opens the data directory, restores the active functions and binds both
// listeners. It serves nothing until Serve.
func New(ctx context.Context, cfg config.Config, opt Options) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s = &Server{cfg: cfg, log: log}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	partial := s // the error returns below set s to nil
	defer func() {
		if err != nil {
			partial.closeBackends(context.Background())
		}
	}()

	if s.store, err = sqlite.Open(cfg.DBPath()); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.rec = events.NewRecorder(s.store, events.Options{Logger: log})
	if s.events, err = events.NewAggregator(s.rec, events.AggregatorOptions{}); err != nil {
		return nil, err
	}
	kr, keyDir, generated, err := keyring(cfg, log)
	if err != nil {
		return nil, err
	}
	s.GeneratedMasterKey = generated
	s.vault = capability.NewVault(s.store, kr, capability.VaultConfig{KVMaxBucket: cfg.KVMaxBucket})
	tap := &canaryTap{Checked: s.events}
	if s.caps, err = capability.New(capability.Config{Vault: s.vault, Usage: s.store, Events: tap, Logger: log, Resolver: opt.Resolver}); err != nil {
		return nil, err
	}
	s.keys = capability.NewKeyManager(s.vault, keyDir, s.events, log)
	if err := s.keys.Start(ctx); err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	sc := opt.Sandbox
	if sc.CacheDir == "" {
		sc.CacheDir = cfg.CacheDir()
	}
	sc.Logger = log
	if s.engine, err = sandbox.New(ctx, sc); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	vulns := &deploy.Vulns{}
	ix, _, err := deploy.LoadIndex(ctx, s.store, log)
	if err != nil {
		return nil, fmt.Errorf("load the vulnerability database: %w", err)
	}
	vulns.Set(ix)
	if s.deploy, err = deploy.New(deploy.Config{Store: s.store, Engine: s.engine, Events: s.events, Logger: log, Capabilities: s.caps,
		Trust: s.store, Vulns: vulns}); err != nil {
		return nil, err
	}
	tap.deploy.Store(s.deploy)
	if err := s.deploy.Load(ctx); err != nil {
		return nil, err
	}
	if err := s.bootstrap(ctx); err != nil {
		return nil, err
	}

	var tlsCfg *tls.Config
	if !cfg.InsecureHTTP {
		var cert tls.Certificate
		if cfg.TLSCert != "" {
			cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		} else {
			cert, err = pki.Ensure(cfg.TLSDir(), hosts(cfg.Listen, cfg.AdminListen), time.Now())
		}
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		tlsCfg = pki.ServerConfig(cert)
		s.tlsOn = true
	}

	keys := &auth.APIKeys{Store: s.store}
	issuers := &auth.Issuers{Store: s.store}
	if err := issuers.Load(ctx); err != nil {
		// Routes of an issuer that no longer builds refuse every token.
		log.Error("some trusted issuers could not be loaded", "err", err)
	}
	limiter, err := s.limiter(cfg)
	if err != nil {
		return nil, err
	}
	// One inspection for every way an answer leaves warden.
	inspector, err := inspect.New(inspect.Config{Events: tap, Logger: log})
	if err != nil {
		return nil, err
	}
	adminLimit := admin.Limit{Limiter: limiter, Rule: perSecond(cfg.IPRate), IPv6Prefix: cfg.IPv6Prefix}
	gw, err := gateway.New(gateway.Config{Routes: s.deploy, Events: tap, Health: s.checks(), Keys: keys, Issuers: issuers, Limiter: limiter,
		Inspector: inspector, IPRule: perSecond(cfg.IPRate), KeyRule: perSecond(cfg.KeyRate), IPv6Prefix: cfg.IPv6Prefix, Logger: log})
	if err != nil {
		return nil, err
	}
	users := &auth.Users{Store: s.store, RequireMFA: admin.RequiresMFA, Seeds: s.vault}
	if n, err := users.SealSeeds(ctx); err != nil {
		return nil, fmt.Errorf("encrypt TOTP seeds: %w", err)
	} else if n > 0 {
		log.Info("encrypted TOTP seeds stored before encryption", "count", n)
	}
	api, err := admin.New(admin.Config{Deploy: s.deploy, Vulns: vulns, Store: s.store, Auth: &auth.Admin{Store: s.store}, Keys: keys, Issuers: issuers,
		Users: users, Events: s.events, Flusher: flusher{s.events, s.rec}, Health: s.checks(), Limit: adminLimit, Logger: log, Vault: s.vault, Capabilities: s.caps, MasterKeys: s.keys, Inspector: inspector})
	if err != nil {
		return nil, err
	}
	s.public = newHTTPServer(s.handlers.wrap(gw.Handler()), tlsCfg, log)
	s.adminSrv = newHTTPServer(s.handlers.wrap(api.Handler()), tlsCfg, log)
	if cfg.ClientCA != "" {
		pool, err := pki.CertPool(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		// Asked for, not required: routes without auth mtls serve
		// clients that have no certificate.
		s.public.TLSConfig.ClientAuth = tls.VerifyClientCertIfGiven
		s.public.TLSConfig.ClientCAs = pool
	}

	if s.publicLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
		s.publicLn.Close()
		return nil, fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
	}
	// Connection floods from one address (an IPv6 client: its network of
	// --ipv6-prefix): refuse what is over the bound, one event per address
	// per minute.
	throttle := ratelimit.NewThrottle(time.Minute, ratelimit.DefaultThrottleKeys)
	refused := func(listener string) func(ip, key string) {
		return func(ip, key string) {
			if throttle.First(listener+key, time.Now()) {
				// Runs in the accept loop: never wait there. A refused
				// TryEmit is counted by the pipeline.
				s.events.TryEmit(events.Event{Type: events.TypeLimitConnections, Outcome: events.OutcomeDenied, SourceIP: ip,
					Reason: fmt.Sprintf("more than %d connections from one address on the %s listener (further refusals this minute are not logged)", cfg.MaxConnsPerIP, listener)})
			}
		}
	}
	s.publicLn = connlimit.New(s.publicLn, cfg.MaxConnsPerIP, cfg.IPv6Prefix, refused("public"))
	s.adminLn = connlimit.New(s.adminLn, cfg.MaxConnsPerIP, cfg.IPv6Prefix, refused("admin"))
	return s, nil
}

// flusher makes everything emitted so far visible to an event query:
// pending aggregates are passed on, then the recorder stores them.
type flusher struct {
	agg *events.Aggregator
	rec *events.Recorder
}

func (f flusher) Flush(ctx context.Context) error {
	f.agg.Flush()
	return f.rec.Flush(ctx)
}

// checks are the parts /healthz reports on both listeners.
func (s *Server) checks() health.Checks {
	return health.Checks{
		"events": func(context.Context) error { return s.events.Health() },
		"store": func(ctx context.Context) error {
			if _, err := s.store.EventsSize(ctx); err != nil {
				s.log.Error("health: the store cannot be read", "err", err)
				return errors.New("the database cannot be read")
			}
			return nil
		},
	}
}

// perSecond is a rule of n requests per second with a burst of 2n; 0 is off.
func perSecond(n int) ratelimit.Rule {
	if n <= 0 {
		return ratelimit.Rule{}
	}
	return ratelimit.Rule{Rate: n, Per: time.Second, Burst: 2 * n}
}

// limiter is the in-memory limiter, or with --redis the shared one that
// falls back to it while Redis is unreachable (and says so in events).
func (s *Server) limiter(cfg config.Config) (ratelimit.Limiter, error) {
	local := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	if cfg.RedisURL == "" {
		return local, nil
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("--redis: not a Redis URL")
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 500*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond
	client := redis.NewClient(opt)
	s.closers = append(s.closers, client.Close)
	return ratelimit.NewFallback(ratelimit.NewRedis(client, ratelimit.RedisOptions{}), local, func(degraded bool, err error) {
		ev := events.Event{Type: events.TypeRateLimitBackend, Outcome: events.OutcomeSuccess, Reason: "shared rate limits restored"}
		if degraded {
			ev.Outcome, ev.Reason = events.OutcomeFailure, "Redis unreachable: rate limits are enforced per node until it returns"
			s.log.Warn("rate limits fall back to this node", "err", err)
		}
		s.events.Emit(ev)
	}), nil
}

// newHTTPServer gets its own copy of the TLS configuration: net/http adds
// its protocols to the one it is given.
func newHTTPServer(h http.Handler, tlsCfg *tls.Config, log *slog.Logger) *http.Server {
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone()
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// hosts are the names the server certificate must cover.
func hosts(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
			out = append(out, h)
		}
	}
	if name, err := os.Hostname(); err == nil {
		out = append(out, name)
	}
	return out
}

// bootstrap creates the first admin credential when none exists, writes it
// to DATA/admin.token (0600) and keeps it in BootstrapToken for the caller
// to print once.
func (s *Server) bootstrap(ctx context.Context) error {
	creds, err := s.store.ListCredentials(ctx)
	if err != nil {
		return fmt.Errorf("list credentials: %w", err)
	}
	for _, c := range creds {
		if c.Kind == store.KindAdmin {
			return nil
		}
	}
	token, c, err := auth.NewAdminToken("bootstrap", auth.RoleAdmin, time.Now())
	if err != nil {
		return err
	}
	// The file first: if the process dies before the credential is stored,
	// the next start makes a new token and overwrites the file.
	path := s.cfg.AdminTokenPath()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if err := s.store.CreateCredential(ctx, c); err != nil {
		return fmt.Errorf("store admin credential: %w", err)
	}
	s.BootstrapToken = token
	return nil
}

// PublicAddr and AdminAddr are the bound addresses (useful with port 0).
func (s *Server) PublicAddr() string { return s.publicLn.Addr().String() }
func (s *Server) AdminAddr() string  { return s.adminLn.Addr().String() }

// Scheme is "https", or "http" with --insecure-http.
func (s *Server) Scheme() string {
	if s.tlsOn {
		return "https"
	}
	return "http"
}

// DataDir is the data directory.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Deploy exposes the deploy service (for tests and benchmarks in-process).
func (s *Server) Deploy() *deploy.Service { return s.deploy }

// Serve serves both listeners until Shutdown. It returns nil after a clean
// shutdown.
func (s *Server) Serve() error {
	errc := make(chan error, 2)
	serve := func(srv *http.Server, ln net.Listener) {
		if s.tlsOn {
			// TLS on our own listener, with the server's own config, so
			// that ticket-key rotation reaches the config in use
			// (ServeTLS would work on a copy).
			pki.RotateTickets(s.ctx, srv.TLSConfig, pki.TicketLifetime)
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}
	s.bg.Go(func() { s.sweep(s.ctx) })
	s.bg.Go(func() { s.deploy.WatchCanaries(s.ctx, time.Second) })
	go serve(s.public, s.publicLn)
	go serve(s.adminSrv, s.adminLn)
	err := <-errc
	if err != nil {
		s.Shutdown(context.Background())
	}
	return errors.Join(err, <-errc)
}

// Shutdown stops accepting connections and waits for in-flight requests
// (and so invocations) to finish or ctx to end; then it stops background
// work, waits for it, and stores every pending event and usage record
// within its own deadline (FlushTimeout), so a drain that used up ctx does
// not cost the events about the requests it waited for. It closes the
// engine and the store last. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		errc := make(chan error, 2)
		for _, srv := range []*http.Server{s.public, s.adminSrv} {
			go func() {
				err := srv.Shutdown(ctx)
				if err != nil {
					srv.Close() // their requests' contexts end: invocations stop
				}
				errc <- err
			}()
		}
		errs := []error{<-errc, <-errc}
		// Handlers still running after a forced close (their contexts
		// ended, so their invocations stop) finish their events before
		// the recorder closes; this wait has its own bound.
		wctx, wcancel := context.WithTimeout(context.Background(), s.cfg.FlushTimeout)
		if err := s.handlers.wait(wctx); err != nil {
			errs = append(errs, fmt.Errorf("requests still running at shutdown: %w", err))
		}
		wcancel()
		s.cancel()
		s.bg.Wait()
		// The flush starts its own deadline only now.
		fctx, cancel := context.WithTimeout(context.Background(), s.cfg.FlushTimeout)
		defer cancel()
		errs = append(errs, s.closeBackends(fctx))
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}

// inflight counts requests being handled. The zero value is ready.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil while n is 0 and nobody waits
}

func (f *inflight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.n++
		f.mu.Unlock()
		defer f.done()
		h.ServeHTTP(w, r)
	})
}

func (f *inflight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
	f.mu.Unlock()
}

// wait returns once no request is being handled, or ctx's error.
func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) closeBackends(ctx context.Context) error {
	s.cancel()
	var errs []error
	if s.deploy != nil {
		s.deploy.Close()
	}
	if s.engine != nil {
		errs = append(errs, s.engine.Close(ctx))
	}
	if s.keys != nil {
		s.keys.Close() // a re-wrap in progress stops after its batch (each is one transaction)
	}
	if s.caps != nil {
		errs = append(errs, s.caps.Close(ctx))
	}
	if s.events != nil {
		s.events.Close() // pending aggregates go to the recorder
	}
	if s.rec != nil {
		errs = append(errs, s.rec.Close(ctx))
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	for _, c := range s.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// Run starts a server, prints where it listens (and the bootstrap token on
// first start) to out, and serves until ctx is cancelled, then shuts down
// gracefully.
func Run(ctx context.Context, cfg config.Config, opt Options, out io.Writer) error {
	s, err := New(ctx, cfg, opt)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "warden: functions on %s://%s, admin API on %s://%s, data in %s\n",
		s.Scheme(), s.PublicAddr(), s.Scheme(), s.AdminAddr(), cfg.DataDir)
	if s.tlsOn && cfg.TLSCert == "" {
		fmt.Fprintf(out, "warden: clients trust %s\n", cfg.TLSDir()+"/"+pki.CAFile)
	}
	if s.GeneratedMasterKey {
		fmt.Fprintf(out, "warden: WARNING generated a master key in %s: fine for development; in production keep it off the data volume (--master-key-file or %s)\n", cfg.KeyDir(), config.MasterKeyEnv)
	}
	if s.BootstrapToken != "" {
		fmt.Fprintf(out, "warden: bootstrap admin token (shown once, also in %s):\n  %s\n", cfg.AdminTokenPath(), s.BootstrapToken)
	}
	if addr := os.Getenv(PprofEnv); addr != "" {
		stop, err := servePprof(addr)
		if err != nil {
			s.Shutdown(context.Background())
			return err
		}
		defer stop()
		fmt.Fprintf(out, "warden: WARNING profiling endpoints on http://%s/debug/pprof/ (%s is set)\n", addr, PprofEnv)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(out, "warden: shutting down, draining in-flight invocations")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = s.Shutdown(sctx)
	if serr := <-done; serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// SandboxStats reports the engine's counters (loaded modules, instances).
func (s *Server) SandboxStats() sandbox.Stats { return s.engine.Stats() }

// PprofEnv names the environment variable that, set to a loopback address,
// makes Run serve net/http/pprof there (plain HTTP, no authentication): for
// profiling under load (`warden-bench -profile`). Unset, nothing listens.
const PprofEnv = "WARDEN_PPROF_ADDR"

// servePprof serves the profiling endpoints on addr, which must be a
// loopback address, and returns the function that stops it.
func servePprof(addr string) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%s=%q: want a loopback IP address and port", PprofEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", PprofEnv, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // named profiles, with ?seconds= for a delta
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }, nil
}

// canaryTap passes events on and counts, for a function running a canary,
// each version's security signals: capability denials, response-check
// hits, traps, timeouts and memory exhaustion.
type canaryTap struct {
	events.Checked
	deploy atomic.Pointer[deploy.Service]
}

func (t *canaryTap) Emit(e events.Event) {
	t.observe(e)
	t.Checked.Emit(e)
}

func (t *canaryTap) TryEmit(e events.Event) error {
	t.observe(e)
	return t.Checked.TryEmit(e)
}

func (t *canaryTap) observe(e events.Event) {
	switch e.Type {
	case "capability.denied", events.TypeDLP, events.TypeFunctionTrap, events.TypeLimitTimeout, events.TypeLimitMemory:
		if d := t.deploy.Load(); d != nil && e.Version > 0 {
			d.CanarySignal(e.Namespace, e.Function, e.Version)
		}
	}
}
