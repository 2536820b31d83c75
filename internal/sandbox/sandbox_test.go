package sandbox

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"warden/internal/manifest"
)

func TestWagiHello(t *testing.T) {
	e, _ := newEngine(t, Config{})
	s := spec(t, "hello", 1, manifest.Limits{})
	s.Env = map[string]string{"GREETING": "Howdy"}
	f := e.Function(s)
	for _, tc := range []struct{ query, want string }{
		{"name=warden", "Howdy, warden! (GET /hello)\n"},
		{"", "Howdy, world! (GET /hello)\n"},
	} {
		resp := invoke(t, f, get("/hello", tc.query))
		if resp.Status != 200 || string(resp.Body) != tc.want {
			t.Errorf("hello?%s = %d %q, want 200 %q", tc.query, resp.Status, resp.Body, tc.want)
		}
		if got := resp.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type = %q", got)
		}
	}
}

func envLines(body string) map[string]string {
	env := map[string]string{}
	head, _, _ := strings.Cut(body, "\n--stdin--\n")
	for _, line := range strings.Split(head, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

func TestWagiCGI(t *testing.T) {
	e, _ := newEngine(t, Config{})
	s := spec(t, "attack", 1, manifest.Limits{})
	s.Env = map[string]string{"REQUEST_METHOD": "FROM_MANIFEST", "MANIFEST_VAR": "m1"}
	f := e.Function(s)
	req := &Request{
		Method: "POST", Path: "/things", RawQuery: "t=cgi&x=1", Host: "api.example.test:8443", Scheme: "https",
		RemoteAddr: "192.0.2.7:5555", RequestID: "req-cgi",
		Header: map[string][]string{
			"Content-Type":  {"application/json"},
			"X-Foo":         {"a", "b"},
			"Authorization": {"Bearer secret"},
			"Proxy":         {"http://evil"},
		},
		Body: []byte(`{"hello":"world"}`),
		Vars: map[string]string{"route": "POST /things", "subject": "alice"},
	}
	resp := invoke(t, f, req)
	if resp.Status != 201 {
		t.Errorf("Status = %d, want 201 (from the CGI Status header)", resp.Status)
	}
	if got := resp.Header.Get("Location"); got != "/things/1" {
		t.Errorf("Location = %q, want /things/1", got)
	}
	if got := resp.Header.Get("X-Custom"); got != "yes" {
		t.Errorf("X-Custom = %q, want yes", got)
	}
	if _, ok := resp.Header["Status"]; ok {
		t.Errorf("Status header leaked into the response headers")
	}
	body := string(resp.Body)
	if !strings.HasSuffix(body, "\n--stdin--\n"+string(req.Body)) {
		t.Errorf("body does not end with the request body on stdin: %q", body)
	}
	env := envLines(body)
	want := map[string]string{
		"REQUEST_METHOD":    "POST", // CGI wins over the manifest env
		"MANIFEST_VAR":      "m1",
		"PATH_INFO":         "/things",
		"QUERY_STRING":      "t=cgi&x=1",
		"SERVER_NAME":       "api.example.test",
		"SERVER_PORT":       "8443",
		"REMOTE_ADDR":       "192.0.2.7",
		"CONTENT_LENGTH":    strconv.Itoa(len(req.Body)),
		"CONTENT_TYPE":      "application/json",
		"HTTP_X_FOO":        "a, b",
		"HTTPS":             "on",
		"X_REQUEST_ID":      "req-cgi",
		"X_MATCHED_ROUTE":   "POST /things",
		"X_WARDEN_SUBJECT":  "alice",
		"REQUEST_URI":       "/things?t=cgi&x=1",
		"GATEWAY_INTERFACE": "CGI/1.1",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("guest env %s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"HTTP_AUTHORIZATION", "HTTP_PROXY", "HTTP_CONTENT_TYPE"} {
		if v, ok := env[k]; ok {
			t.Errorf("guest env has %s=%q, want it absent", k, v)
		}
	}
}

func TestParseCGI(t *testing.T) {
	for _, tc := range []struct {
		name, out  string
		status     int
		header     string // "Name=value"
		body       string
		kind       ErrorKind
		maxBodyLen int64
	}{
		{name: "lf", out: "Content-Type: text/plain\n\nhi", status: 200, header: "Content-Type=text/plain", body: "hi"},
		{name: "crlf", out: "Content-Type: text/plain\r\n\r\nhi", status: 200, header: "Content-Type=text/plain", body: "hi"},
		{name: "status", out: "Status: 404 Not Found\nContent-Type: text/plain\n\nnope", status: 404, body: "nope"},
		{name: "status code only", out: "Status: 204\n\n", status: 204},
		{name: "location means redirect", out: "Location: /x\n\n", status: 302, header: "Location=/x"},
		{name: "location with status", out: "Status: 201 Created\nLocation: /x\n\n", status: 201, header: "Location=/x"},
		{name: "body keeps blank lines", out: "A: b\n\nx\n\ny", status: 200, body: "x\n\ny"},
		{name: "no header block", out: "just a body", kind: KindBadResponse},
		{name: "no blank line", out: "Content-Type: text/plain\n", kind: KindBadResponse},
		{name: "empty header block", out: "\nbody", kind: KindBadResponse},
		{name: "malformed line", out: "not a header\n\n", kind: KindBadResponse},
		{name: "bad status", out: "Status: abc\n\n", kind: KindBadResponse},
		{name: "status out of range", out: "Status: 999\n\n", kind: KindBadResponse},
		{name: "header injection", out: "X-A: a\x00b\n\n", kind: KindBadResponse},
		{name: "too large", out: "A: b\n\n0123456789", kind: KindResponseTooLarge, maxBodyLen: 5},
		{name: "empty", out: "", kind: KindBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.maxBodyLen
			if max == 0 {
				max = 1 << 20
			}
			resp, err := parseCGI([]byte(tc.out), max)
			if tc.kind != 0 {
				if err == nil || err.Kind != tc.kind {
					t.Fatalf("parseCGI(%q) = %v, want kind %v", tc.out, err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCGI(%q) error: %v", tc.out, err)
			}
			if resp.Status != tc.status || string(resp.Body) != tc.body {
				t.Errorf("parseCGI(%q) = %d %q, want %d %q", tc.out, resp.Status, resp.Body, tc.status, tc.body)
			}
			if k, v, ok := strings.Cut(tc.header, "="); ok && resp.Header.Get(k) != v {
				t.Errorf("parseCGI(%q) header %s = %q, want %q", tc.out, k, resp.Header.Get(k), v)
			}
		})
	}
}

// healthy asserts the engine still serves: the attacked function (in "ok"
// mode, for wagi) and an unrelated function.
func healthy(t *testing.T, f, other *Function) {
	t.Helper()
	var req *Request
	if f.spec.ABI == manifest.ABIWagi {
		req = get("/", "t=ok")
	} else {
		req = get("/count", "")
	}
	if resp := invoke(t, f, req); resp.Status != 200 {
		t.Errorf("after the attack, %s answered %d", f.spec.Name, resp.Status)
	}
	if resp := invoke(t, other, get("/hello", "name=x")); !strings.HasPrefix(string(resp.Body), "Hello, x!") {
		t.Errorf("after the attack, hello answered %q", resp.Body)
	}
}

func TestDenyByDefault(t *testing.T) {
	t.Setenv("WARDEN_TEST_HOST_SECRET", "host-marker-8c1f")
	e, _ := newEngine(t, Config{})
	s := spec(t, "attack", 1, manifest.Limits{})
	s.Env = map[string]string{"ONLY_THIS": "granted"}
	f := e.Function(s)
	hello := e.Function(spec(t, "hello", 1, manifest.Limits{}))

	t.Run("filesystem", func(t *testing.T) {
		body := string(invoke(t, f, get("/", "t=passwd")).Body)
		for _, want := range []string{"passwd: error:", "readdir: error:", "write: error:"} {
			if !strings.Contains(body, want) {
				t.Errorf("guest filesystem access: got %q, want it to contain %q", body, want)
			}
		}
		if strings.Contains(body, "root:") {
			t.Errorf("guest read /etc/passwd: %q", body)
		}
		if _, err := os.Stat("/tmp/warden-escape"); err == nil {
			t.Errorf("guest wrote /tmp/warden-escape on the host")
		}
		healthy(t, f, hello)
	})
	t.Run("host environment", func(t *testing.T) {
		body := string(invoke(t, f, get("/", "t=env")).Body)
		env := envLines(body)
		if strings.Contains(body, "host-marker-8c1f") || env["WARDEN_TEST_HOST_SECRET"] != "" {
			t.Errorf("guest saw the host environment: %q", body)
		}
		if env["ONLY_THIS"] != "granted" {
			t.Errorf("guest env ONLY_THIS = %q, want granted", env["ONLY_THIS"])
		}
		for k := range env {
			if _, ok := s.Env[k]; ok {
				continue
			}
			if !isCGIVar(k) && k != "GOGC" && k != "GOMEMLIMIT" {
				t.Errorf("guest env has %s, neither manifest env, a CGI variable nor a runtime default", k)
			}
		}
		for _, k := range []string{"PATH", "HOME", "USER", "GOROOT"} {
			if _, ok := env[k]; ok {
				t.Errorf("guest env has host variable %s", k)
			}
		}
		healthy(t, f, hello)
	})
	t.Run("args", func(t *testing.T) {
		if body := string(invoke(t, f, get("/", "t=args")).Body); body != "attack" {
			t.Errorf("guest args = %q, want just the function name", body)
		}
	})
	t.Run("socket", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		body := string(invoke(t, f, get("/", "t=socket&addr="+ln.Addr().String())).Body)
		// Go's wasip1 net package simulates loopback listeners in-process
		// ("listen: ok" opens nothing on the host); what matters is that
		// nothing reaches a host socket.
		for _, want := range []string{"dial: error:", "fd3: error:"} {
			if !strings.Contains(body, want) {
				t.Errorf("guest network access: got %q, want it to contain %q", body, want)
			}
		}
		// Nothing connected to the host listener.
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Millisecond))
		if c, err := ln.Accept(); err == nil {
			c.Close()
			t.Errorf("guest connected to a host socket")
		}
		healthy(t, f, hello)
	})
	t.Run("real clock and randomness", func(t *testing.T) {
		a := strings.Fields(string(invoke(t, f, get("/", "t=clock")).Body))
		b := strings.Fields(string(invoke(t, f, get("/", "t=clock")).Body))
		if len(a) != 2 || len(b) != 2 {
			t.Fatalf("clock output %q %q", a, b)
		}
		sec, _ := strconv.ParseInt(a[0], 10, 64)
		if d := time.Since(time.Unix(sec, 0)); d < -5*time.Second || d > 5*time.Second {
			t.Errorf("guest wall clock %v is %v away from the host's", time.Unix(sec, 0), d)
		}
		if a[1] == b[1] {
			t.Errorf("guest randomness repeated across instances: %s", a[1])
		}
	})
}

func isCGIVar(k string) bool {
	switch k {
	case "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "SERVER_PROTOCOL", "SERVER_NAME", "SERVER_PORT",
		"REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING", "REQUEST_URI",
		"REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT", "CONTENT_LENGTH", "CONTENT_TYPE", "HTTPS",
		"X_FULL_URL", "X_RAW_PATH_INFO", "X_REQUEST_ID", "X_MATCHED_ROUTE":
		return true
	}
	return strings.HasPrefix(k, "HTTP_") || strings.HasPrefix(k, "X_WARDEN_")
}

func TestGuestFailures(t *testing.T) {
	e, logs := newEngine(t, Config{})
	lim := manifest.Limits{Memory: 32 << 20, Timeout: 5 * time.Second, ResponseBody: 1 << 20}
	short := lim
	short.Timeout = 300 * time.Millisecond
	hello := e.Function(spec(t, "hello", 1, manifest.Limits{}))

	for _, tc := range []struct {
		name    string
		guest   string
		lim     manifest.Limits
		req     *Request
		kind    ErrorKind
		maxTime time.Duration
	}{
		{"wagi loop", "attack", short, get("/", "t=loop"), KindTimeout, short.Timeout + 2*time.Second},
		{"wagi alloc", "attack", lim, get("/", "t=alloc"), KindMemory, 4 * time.Second},
		{"wagi 100MB response", "attack", lim, get("/", "t=big"), KindResponseTooLarge, 2 * time.Second},
		{"wagi panic", "attack", lim, get("/", "t=panic"), KindTrap, 2 * time.Second},
		{"wagi exit 3", "attack", lim, get("/", "t=exit3"), KindTrap, 2 * time.Second},
		{"wagi no header", "attack", lim, get("/", "t=noheader"), KindBadResponse, 2 * time.Second},
		{"reactor loop", "reactor", short, get("/loop", ""), KindTimeout, short.Timeout + 2*time.Second},
		{"reactor alloc", "reactor", lim, get("/alloc", ""), KindMemory, 4 * time.Second},
		{"reactor large response", "reactor", lim, get("/big", strconv.Itoa(2<<20)), KindResponseTooLarge, 2 * time.Second},
		{"reactor panic", "reactor", lim, get("/panic", ""), KindTrap, 2 * time.Second},
		{"reactor header injection", "reactor", lim, get("/badheader", ""), KindBadResponse, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := e.Function(spec(t, tc.guest, 1, tc.lim))
			defer f.Close()
			if err := f.Prepare(context.Background()); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			se := invokeErr(t, f, tc.req, tc.kind)
			d := time.Since(start)
			if d > tc.maxTime {
				t.Errorf("failed after %v, want within %v", d, tc.maxTime)
			}
			if tc.kind == KindTimeout && d < tc.lim.Timeout {
				t.Errorf("timed out after %v, before the %v deadline", d, tc.lim.Timeout)
			}
			if strings.Contains(se.Msg, "boom") || strings.Contains(se.Msg, "/") {
				t.Errorf("client message %q leaks guest output or paths", se.Msg)
			}
			if n := e.Stats().BusyInstances; n != 0 {
				t.Errorf("BusyInstances = %d after the invocation returned", n)
			}
			healthy(t, f, hello)
		})
	}
	if !strings.Contains(logs.String(), "panic: boom") {
		t.Errorf("guest panic output not logged")
	}
}

func TestStderrBounded(t *testing.T) {
	e, logs := newEngine(t, Config{})
	f := e.Function(spec(t, "attack", 1, manifest.Limits{}))
	invoke(t, f, get("/", "t=stderr")) // 100 KB of stderr
	out := logs.String()
	if !strings.Contains(out, "eeee") || !strings.Contains(out, "(truncated)") {
		t.Fatalf("guest stderr not logged and marked truncated: %.300q", out)
	}
	if n := strings.Count(out, "e"); n > maxCapture+1024 {
		t.Errorf("logged %d bytes of guest stderr, want at most ~%d", n, maxCapture)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	e, _ := newEngine(t, Config{})
	f := e.Function(spec(t, "attack", 1, manifest.Limits{Concurrency: 2, Timeout: 30 * time.Second}))
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := f.Invoke(ctx, get("/", "t=sleep&ms=30000"))
			errs <- err
		}()
	}
	eventually(t, 10*time.Second, "two busy instances", func() bool { return e.Stats().BusyInstances == 2 })
	start := time.Now()
	invokeErr(t, f, get("/", "t=ok"), KindConcurrency)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("KindConcurrency after %v, want immediately", d)
	}
	cancel()
	for range 2 {
		var se *Error
		if err := <-errs; !errors.As(err, &se) || se.Kind != KindTimeout {
			t.Errorf("canceled invocation = %v, want KindTimeout", err)
		}
	}
	if resp := invoke(t, f, get("/", "t=ok")); string(resp.Body) != "ok" {
		t.Errorf("after the slots freed: %q", resp.Body)
	}
}
