package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"warden/internal/pki"
)

// proc is a child process warden-bench started: the warden server or the
// bare baseline. Its stderr goes to a file that is shown when it fails.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   string
	stdin io.WriteCloser
	done  chan struct{}
	err   error // valid after done is closed
	out   bytes.Buffer
	outMu sync.Mutex
}

// start runs cmd and returns once it printed a line for which ready returns
// true (or fails when it exits or takes longer than a minute first).
func start(name string, cmd *exec.Cmd, logPath string, ready func(line string) bool) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	cmd.Stderr = logf
	setDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.outMu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.outMu.Unlock()
			select {
			case lines <- sc.Text():
			default: // nobody waits for lines once the process is ready
			}
		}
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	timeout := time.After(time.Minute)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				<-p.done
				return nil, fmt.Errorf("%s exited before it was ready: %v%s", name, p.err, p.tail())
			}
			if ready(line) {
				return p, nil
			}
		case <-timeout:
			p.kill()
			return nil, fmt.Errorf("%s not ready after a minute%s", name, p.tail())
		}
	}
}

// tail is the end of the process's stderr, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	if len(b) == 0 {
		return ""
	}
	return "\n--- " + p.name + " stderr (" + p.log + ") ---\n" + string(b)
}

// stop asks the process to end (SIGTERM, and stdin closed) and waits for
// it; it kills it after 30 s. The error is its exit status.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(terminate)
	_ = p.stdin.Close()
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not stop within 30s", p.name)
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// alive fails when the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v%s", p.name, p.err, p.tail())
	default:
		return nil
	}
}

// wardenServer is `bin/warden server` as a user starts it, with its addresses.
type wardenServer struct {
	*proc
	bin, data     string
	public, admin string // host:port
	pprof         string // host:port of the debug listener, "" when off
}

// startServer starts `warden server` on a fresh data directory with
// loopback listeners on free ports. The per-address and per-key limits are
// raised so that the limiter runs on every request but admits the load
// generator, one client sending tens of thousands of requests per second.
func (r *runner) startServer() (*wardenServer, error) {
	return r.startServerArgs("--ip-rate", "1000000", "--key-rate", "1000000")
}

// startServerArgs starts `warden server` like startServer, with extra flags
// instead of the raised limits.
func (r *runner) startServerArgs(extra ...string) (*wardenServer, error) {
	s := &wardenServer{bin: r.wardenBin, data: filepath.Join(r.tmp, "data")}
	args := append([]string{"server", "--data", s.data,
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = os.Environ()
	if r.profileDir != "" {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		s.pprof = addr
		cmd.Env = append(cmd.Env, "WARDEN_PPROF_ADDR="+addr)
	}
	r.logf("start: %s %s", s.bin, strings.Join(args, " "))
	p, err := start("warden server", cmd, filepath.Join(r.tmp, "server.log"), func(line string) bool {
		// warden: functions on https://A, admin API on https://B, data in D
		rest, ok := strings.CutPrefix(line, "warden: functions on https://")
		if !ok {
			return false
		}
		pub, rest, ok := strings.Cut(rest, ", admin API on https://")
		if !ok {
			return false
		}
		adm, _, ok := strings.Cut(rest, ", data in ")
		s.public, s.admin = pub, adm
		return ok
	})
	if err != nil {
		return nil, err
	}
	s.proc = p
	// The listeners are bound before the line is printed; the admin API
	// answers once Serve runs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := s.cli("functions", "ls"); err == nil {
			break
		} else if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("admin API not answering: %w%s", err, p.tail())
		}
		if err := p.alive(); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s, nil
}

// cli runs a warden client command against the server, as a user would.
func (s *wardenServer) cli(args ...string) ([]byte, error) {
	full := append([]string{"--data", s.data, "--server", "https://" + s.admin}, args...)
	cmd := exec.Command(s.bin, full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("warden %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// deploy deploys the manifest at path through the CLI.
func (s *wardenServer) deploy(path string) error {
	_, err := s.cli("deploy", "-f", path)
	return err
}

// createKey creates an API key with the given scopes through the CLI and
// returns its secret.
func (s *wardenServer) createKey(name string, scopes ...string) (string, error) {
	out, err := s.cli("--json", "keys", "create", name, "--scopes", strings.Join(scopes, ","))
	if err != nil {
		return "", err
	}
	var k struct{ Key string }
	if err := json.Unmarshal(out, &k); err != nil || k.Key == "" {
		return "", fmt.Errorf("keys create: no key in %q: %v", out, err)
	}
	return k.Key, nil
}

// fetchProfiles fetches a CPU profile and an allocation profile (both
// covering the next d) from the net/http/pprof listener at addr into
// dir/<name>.cpu.pprof and dir/<name>.allocs.pprof.
func fetchProfiles(ctx context.Context, addr, dir, name string, d time.Duration) error {
	secs := int(d / time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, kind := range []string{"profile", "allocs"} {
		file := filepath.Join(dir, name+".cpu.pprof")
		if kind == "allocs" {
			file = filepath.Join(dir, name+".allocs.pprof")
		}
		wg.Go(func() {
			errs[i] = fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", addr, kind, secs), file)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startBare starts the baseline: a bare net/http handler over HTTPS in its
// own process (warden-bench bare), and returns it, its URL and, when
// profiling, the address of its pprof listener.
func (r *runner) startBare() (*proc, string, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", "", err
	}
	var url, pprofAddr string
	cmd := exec.Command(self, "bare", "-tls", filepath.Join(r.tmp, "bare-tls"))
	cmd.Env = os.Environ()
	if r.profileDir != "" {
		if pprofAddr, err = freePort(); err != nil {
			return nil, "", "", err
		}
		cmd.Env = append(cmd.Env, "WARDEN_PPROF_ADDR="+pprofAddr)
	}
	p, err := start("bare net/http", cmd, filepath.Join(r.tmp, "bare.log"), func(line string) bool {
		var ok bool
		url, ok = strings.CutPrefix(line, "listening ")
		return ok
	})
	if err != nil {
		return nil, "", "", err
	}
	return p, url, pprofAddr, nil
}

// bare is the baseline's process: a hello handler answering what
// examples/ping answers, over HTTPS with warden's TLS settings, until its
// stdin closes or it is told to stop.
func bare(args []string) int {
	dir := ""
	if len(args) == 2 && args[0] == "-tls" {
		dir = args[1]
	} else {
		fmt.Fprintln(os.Stderr, "usage: warden-bench bare -tls DIR")
		return 2
	}
	cert, err := pki.Ensure(dir, nil, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	body := []byte(`{"ok":true}`)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}), TLSConfig: pki.ServerConfig(cert)}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Close()
	}()
	if addr := os.Getenv("WARDEN_PPROF_ADDR"); addr != "" {
		// The same endpoints as the server's, so that profiles compare.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go http.Serve(pln, mux)
	}
	stopOnSignal(func() { srv.Close() })
	fmt.Printf("listening https://%s/\n", ln.Addr())
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
