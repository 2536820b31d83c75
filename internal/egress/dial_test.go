package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder replaces Policy.dial: it records every address dialed and,
// for addresses outside 127.0.0.1, returns an in-memory pipe instead of
// touching the network.
type recorder struct {
	mu    sync.Mutex
	addrs []string
}

func (r *recorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.addrs = append(r.addrs, addr)
	r.mu.Unlock()
	if strings.HasPrefix(addr, "127.0.0.1:") {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c, s := net.Pipe()
	s.Close()
	return c, nil
}

func (r *recorder) dialed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.addrs...)
}

func testPolicy(t *testing.T, res *fakeResolver, grants ...string) (*Policy, *recorder) {
	t.Helper()
	p := mustPolicy(t, grants...).WithResolver(res)
	rec := &recorder{}
	p.dial = rec.dial
	return p, rec
}

func TestDialContext(t *testing.T) {
	res := &fakeResolver{answers: map[string][][]string{
		"api.example.com":    {{"93.184.216.34"}},
		"dual.example.com":   {{"93.184.216.34", "2606:2800:220:1::1"}},
		"mixed.example.com":  {{"93.184.216.34", "127.0.0.1"}},
		"meta.example.com":   {{"169.254.169.254"}},
		"meta6.example.com":  {{"fd00:ec2::254"}},
		"mapped.example.com": {{"::ffff:127.0.0.1"}},
		"v4in16.example.com": {{"::ffff:93.184.216.34"}},
		"zone.example.com":   {{"fe80::1%eth0"}},
		"priv.example.com":   {{"10.0.0.7"}},
		"empty.example.com":  {{}},
		"loop.example.com":   {{"127.0.0.1"}},
	}}
	p, rec := testPolicy(t, res,
		"https://api.example.com", "https://*.example.com", "http://10.0.0.7", "http://127.0.0.1:9")
	tests := []struct {
		name, network, addr string
		denied              bool     // wraps ErrDenied
		failed              bool     // fails without ErrDenied
		dialed              []string // addresses dialed
		lookedUp            bool
	}{
		{"granted name", "tcp", "api.example.com:443", false, false, []string{"93.184.216.34:443"}, true},
		{"uppercase trailing dot", "tcp", "API.example.com.:443", false, false, []string{"93.184.216.34:443"}, true},
		{"first checked address", "tcp", "dual.example.com:443", false, false, []string{"93.184.216.34:443"}, true},
		{"tcp6 picks v6", "tcp6", "dual.example.com:443", false, false, []string{"[2606:2800:220:1::1]:443"}, true},
		{"16-byte v4 answer dialed as v4", "tcp", "v4in16.example.com:443", false, false, []string{"93.184.216.34:443"}, true},
		{"ungranted name not resolved", "tcp", "evil.com:443", true, false, nil, false},
		{"ungranted port not resolved", "tcp", "api.example.com:80", true, false, nil, false},
		{"wildcard apex not resolved", "tcp", "example.com:443", true, false, nil, false},
		{"one bad answer refuses all", "tcp", "mixed.example.com:443", true, false, nil, true},
		{"metadata answer", "tcp", "meta.example.com:443", true, false, nil, true},
		{"metadata v6 answer", "tcp", "meta6.example.com:443", true, false, nil, true},
		{"mapped loopback answer", "tcp", "mapped.example.com:443", true, false, nil, true},
		{"zoned answer", "tcp", "zone.example.com:443", true, false, nil, true},
		{"name to granted private ip", "tcp", "priv.example.com:443", true, false, nil, true},
		{"name to granted loopback ip", "tcp", "loop.example.com:443", true, false, nil, true},
		{"no answers", "tcp", "empty.example.com:443", false, true, nil, true},
		{"lookup error", "tcp", "gone.example.com:443", false, true, nil, true},
		{"granted private ip", "tcp", "10.0.0.7:80", false, false, []string{"10.0.0.7:80"}, false},
		{"granted ip other port", "tcp", "10.0.0.7:81", true, false, nil, false},
		{"ungranted loopback", "tcp", "127.0.0.1:80", true, false, nil, false},
		{"ipv6 loopback", "tcp", "[::1]:9", true, false, nil, false},
		{"mapped spelling of granted loopback", "tcp", "[::ffff:127.0.0.1]:9", true, false, nil, false},
		{"decimal ip", "tcp", "2130706433:9", true, false, nil, false},
		{"octal ip", "tcp", "0177.0.0.1:9", true, false, nil, false},
		{"hex ip", "tcp", "0x7f.1:9", true, false, nil, false},
		{"short ip", "tcp", "127.1:9", true, false, nil, false},
		{"udp", "udp", "api.example.com:443", true, false, nil, false},
		{"no port", "tcp", "api.example.com", true, false, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, beforeLookups := len(rec.dialed()), len(res.lookups())
			c, err := p.DialContext(context.Background(), tt.network, tt.addr)
			if c != nil {
				c.Close()
			}
			switch {
			case tt.denied && !errors.Is(err, ErrDenied):
				t.Errorf("DialContext(%q, %q) = %v, want ErrDenied", tt.network, tt.addr, err)
			case tt.failed && (err == nil || errors.Is(err, ErrDenied)):
				t.Errorf("DialContext(%q, %q) = %v, want a non-denial error", tt.network, tt.addr, err)
			case !tt.denied && !tt.failed && err != nil:
				t.Errorf("DialContext(%q, %q) = %v, want a connection", tt.network, tt.addr, err)
			}
			if got := rec.dialed()[before:]; !slices.Equal(got, tt.dialed) {
				t.Errorf("DialContext(%q, %q) dialed %q, want %q", tt.network, tt.addr, got, tt.dialed)
			}
			if got := len(res.lookups()) > beforeLookups; got != tt.lookedUp {
				t.Errorf("DialContext(%q, %q) resolved = %v, want %v", tt.network, tt.addr, got, tt.lookedUp)
			}
		})
	}
}

// TestDNSRebinding: the name first resolves to a public address, then to
// 127.0.0.1. The dialer must connect to the address it checked (not the
// name again), and refuse once the answer turns into loopback, even though
// 127.0.0.1 on the test server's port is granted as an IP origin.
func TestDNSRebinding(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("rebinding reached the loopback server: %s %s", r.Method, r.URL)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	res := &fakeResolver{answers: map[string][][]string{
		"rebind.example.com": {{"93.184.216.34"}, {"127.0.0.1"}},
	}}
	p, rec := testPolicy(t, res, "http://rebind.example.com:"+itoa(port), "http://127.0.0.1:"+itoa(port))

	t.Run("first answer public: dial the checked ip", func(t *testing.T) {
		c, err := p.DialContext(context.Background(), "tcp", "rebind.example.com:"+itoa(port))
		if err != nil {
			t.Fatalf("DialContext = %v, want a connection to the public address", err)
		}
		c.Close()
		if got, want := rec.dialed(), []string{"93.184.216.34:" + itoa(port)}; !slices.Equal(got, want) {
			t.Errorf("dialed %q, want %q (the checked ip, not the name)", got, want)
		}
	})
	t.Run("second answer loopback: refused", func(t *testing.T) {
		_, err := p.DialContext(context.Background(), "tcp", "rebind.example.com:"+itoa(port))
		if !errors.Is(err, ErrDenied) {
			t.Fatalf("DialContext after rebinding = %v, want ErrDenied", err)
		}
		if got := len(rec.dialed()); got != 1 {
			t.Errorf("dialed %d addresses in all, want 1 (no dial after rebinding)", got)
		}
	})
	t.Run("client request after rebinding: refused", func(t *testing.T) {
		c := p.Client(5*time.Second, 1<<20)
		resp, err := c.Get("http://rebind.example.com:" + itoa(port) + "/")
		if resp != nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrDenied) {
			t.Fatalf("Get after rebinding = %v, want ErrDenied", err)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// noConnListener is a listener nobody accepts from; assertNoConn checks
// that no client connected to it.
func noConnListener(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// assertNoConn: a connect completes in the kernel before the client's
// dial returns, so a connection made earlier is already queued and Accept
// returns it at once; an empty queue times out.
func assertNoConn(t *testing.T, ln *net.TCPListener) {
	t.Helper()
	ln.SetDeadline(time.Now().Add(100 * time.Millisecond))
	c, err := ln.Accept()
	if err == nil {
		c.Close()
		t.Errorf("the ungranted listener %s got a connection", ln.Addr())
		return
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Accept on the ungranted listener = %v, want a timeout", err)
	}
}

func TestClientRedirects(t *testing.T) {
	other := noConnListener(t)
	otherPort := other.Addr().(*net.TCPAddr).Port
	var target string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "hello")
		case "/same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			http.Redirect(w, r, target, http.StatusFound)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	res := &fakeResolver{answers: map[string][][]string{
		"internal.example.com": {{"169.254.169.254"}},
		"evil.example.net":     {{"127.0.0.1"}},
	}}
	// The test server is reachable only through the exact loopback grant.
	p, rec := testPolicy(t, res, "http://127.0.0.1:"+itoa(port), "http://*.example.com")
	c := p.Client(5*time.Second, 1<<20)

	t.Run("granted", func(t *testing.T) {
		resp, err := c.Get(srv.URL + "/same")
		if err != nil {
			t.Fatalf("Get(/same) = %v, want 200", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "hello" {
			t.Errorf("Get(/same) body = %q, %v, want %q", b, err, "hello")
		}
	})
	tests := []struct{ name, location string }{
		{"to metadata ip", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"},
		{"to metadata ipv6", "http://[fd00:ec2::254]/latest/meta-data/"},
		{"to granted name resolving to metadata", "http://internal.example.com/latest/meta-data/"},
		{"to ungranted loopback port", "http://127.0.0.1:" + itoa(otherPort) + "/"},
		{"to ungranted name", "http://evil.example.net:" + itoa(otherPort) + "/"},
		{"to userinfo trick", "http://127.0.0.1:" + itoa(port) + "@127.0.0.1:" + itoa(otherPort) + "/"},
		{"to decimal loopback", "http://2130706433:" + itoa(otherPort) + "/"},
		{"to ipv6 loopback", "http://[::1]:" + itoa(otherPort) + "/"},
		{"to https downgrade scheme", "https://127.0.0.1:" + itoa(port) + "/ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target = tt.location
			before := len(rec.dialed())
			resp, err := c.Get(srv.URL + "/redirect")
			if resp != nil {
				resp.Body.Close()
			}
			if !errors.Is(err, ErrDenied) {
				t.Fatalf("Get redirecting %s = %v, want ErrDenied", tt.location, err)
			}
			for _, a := range rec.dialed()[before:] {
				if a != "127.0.0.1:"+itoa(port) {
					t.Errorf("dialed %s following a refused redirect", a)
				}
			}
			for _, h := range res.lookups() {
				if h == "evil.example.net" {
					t.Errorf("resolved %s, an ungranted name", h)
				}
			}
			assertNoConn(t, other)
		})
	}
	t.Run("redirect loop bounded", func(t *testing.T) {
		resp, err := c.Get(srv.URL + "/loop")
		if resp != nil {
			resp.Body.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "redirects") {
			t.Errorf("Get(/loop) = %v, want a redirect limit error", err)
		}
	})
}

func TestClientBodyLimit(t *testing.T) {
	big := strings.Repeat("x", 2048)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		io.WriteString(w, big)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	p := mustPolicy(t, "http://127.0.0.1:"+itoa(port))
	tests := []struct {
		name  string
		path  string
		limit int64
		ok    bool
	}{
		{"under limit", "/", 4096, true},
		{"exact limit", "/", 2048, true},
		{"exact limit chunked", "/chunked", 2048, true},
		{"content-length over", "/", 1024, false},
		{"chunked over", "/chunked", 1024, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := p.Client(5*time.Second, tt.limit).Get(srv.URL + tt.path)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && string(b) != big {
					t.Fatalf("body = %d bytes, want %d", len(b), len(big))
				}
			}
			if tt.ok && err != nil {
				t.Errorf("Get(%s) with limit %d = %v, want the body", tt.path, tt.limit, err)
			}
			if !tt.ok && !errors.Is(err, ErrResponseTooLarge) {
				t.Errorf("Get(%s) with limit %d = %v, want ErrResponseTooLarge", tt.path, tt.limit, err)
			}
		})
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	p := mustPolicy(t, "http://127.0.0.1:"+itoa(port))
	start := time.Now()
	resp, err := p.Client(100*time.Millisecond, 1024).Get(srv.URL)
	if resp != nil {
		resp.Body.Close()
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Get of a hanging server = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v, want about 100ms", d)
	}
}

func TestClientConfig(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	c := mustPolicy(t, "https://api.example.com").Client(0, 0)
	tr, ok := c.Transport.(*transport)
	if !ok {
		t.Fatalf("Client().Transport = %T, want *transport", c.Transport)
	}
	if tr.base.Proxy != nil {
		t.Error("Client() transport uses a proxy, want none (never from the environment)")
	}
	if c.Timeout != DefaultTimeout || tr.maxBody != DefaultMaxBody {
		t.Errorf("Client(0, 0) timeout, maxBody = %v, %d, want %v, %d", c.Timeout, tr.maxBody, DefaultTimeout, DefaultMaxBody)
	}
	if c.CheckRedirect == nil {
		t.Error("Client().CheckRedirect is nil, want the policy check")
	}
}

func TestClientRefusesHostHeader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request with a spoofed Host reached the server: Host %q", r.Host)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	c := mustPolicy(t, "http://127.0.0.1:"+itoa(port)).Client(5*time.Second, 1024)
	req, err := http.NewRequest("GET", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "admin.internal"
	resp, err := c.Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	if !errors.Is(err, ErrDenied) {
		t.Errorf("Do with Host %q = %v, want ErrDenied", req.Host, err)
	}
}
