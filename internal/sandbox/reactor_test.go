package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/manifest"
)

func count(t *testing.T, f *Function) string {
	t.Helper()
	return string(invoke(t, f, get("/count", "")).Body)
}

func TestReactorPool(t *testing.T) {
	e, _ := newEngine(t, Config{PoolSize: 2})
	f := e.Function(spec(t, "reactor", 1, manifest.Limits{ResponseBody: 1 << 20}))
	for i, want := range []string{"1", "2", "3"} {
		if got := count(t, f); got != want {
			t.Fatalf("call %d: count = %s, want %s (state persists in a pooled instance)", i+1, got, want)
		}
	}
	st := e.Stats()
	if st.Instantiations != 1 || st.IdleInstances != 1 || st.BusyInstances != 0 || st.LoadedModules != 1 {
		t.Errorf("Stats = %+v, want 1 instantiation, 1 idle, 0 busy, 1 module", st)
	}
	invokeErr(t, f, get("/panic", ""), KindTrap)
	if got := e.Stats().IdleInstances; got != 0 {
		t.Errorf("IdleInstances after a trap = %d, want 0 (trapped instance discarded)", got)
	}
	if got := count(t, f); got != "1" {
		t.Errorf("count after a trap = %s, want 1 (fresh instance)", got)
	}
	invokeErr(t, f, get("/big", "2097152"), KindResponseTooLarge)
	if got := count(t, f); got != "1" {
		t.Errorf("count after an error = %s, want 1 (instance discarded after any error)", got)
	}
}

func TestReactorPoolSizeBound(t *testing.T) {
	e, _ := newEngine(t, Config{PoolSize: 2})
	f := e.Function(spec(t, "reactor", 1, manifest.Limits{}))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := f.Invoke(context.Background(), get("/count", "")); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if st := e.Stats(); st.IdleInstances > 2 || st.IdleInstances < 1 || st.BusyInstances != 0 {
		t.Errorf("Stats = %+v, want 1..2 idle (PoolSize 2) and 0 busy", st)
	}
	// 40 calls from 8 goroutines: the excess queued for the two warm
	// instances instead of instantiating and discarding new ones.
	if st := e.Stats(); st.Instantiations > 2 {
		t.Errorf("Instantiations = %d, want at most PoolSize (2)", st.Instantiations)
	}
}

func TestReactorRecycle(t *testing.T) {
	e, _ := newEngine(t, Config{MaxRequestsPerInstance: 2})
	f := e.Function(spec(t, "reactor", 1, manifest.Limits{}))
	var got []string
	for range 5 {
		got = append(got, count(t, f))
	}
	if s := strings.Join(got, ","); s != "1,2,1,2,1" {
		t.Errorf("counts = %s, want 1,2,1,2,1 (recycled every 2 requests)", s)
	}
	if n := e.Stats().Instantiations; n != 3 {
		t.Errorf("Instantiations = %d, want 3", n)
	}
}

func TestReactorVersionsIsolated(t *testing.T) {
	e, _ := newEngine(t, Config{})
	v1 := e.Function(spec(t, "reactor", 1, manifest.Limits{}))
	v2 := e.Function(spec(t, "reactor", 2, manifest.Limits{}))
	count(t, v1)
	count(t, v1)
	if got := count(t, v2); got != "1" {
		t.Errorf("v2 count = %s, want 1 (no state shared across versions)", got)
	}
	if got := count(t, v1); got != "3" {
		t.Errorf("v1 count = %s, want 3", got)
	}
}

func TestReactorRequestResponse(t *testing.T) {
	e, _ := newEngine(t, Config{})
	s := spec(t, "reactor", 1, manifest.Limits{})
	s.Env = map[string]string{"GREETING": "hi"}
	f := e.Function(s)
	req := &Request{
		Method: "PUT", Path: "/echo", RawQuery: "a=1&b=2", Host: "h.test", Scheme: "https",
		RemoteAddr: "192.0.2.1:1", RequestID: "rid-42",
		Header: map[string][]string{"X-A": {"1", "2"}, "Content-Type": {"text/plain"}},
		Vars:   map[string]string{"route": "PUT /echo", "subject": "bob"},
		Body:   []byte("payload\x00with\xffbytes"),
	}
	resp := invoke(t, f, req)
	want := "PUT /echo?a=1&b=2 host=h.test scheme=https remote=192.0.2.1:1 id=rid-42\n" +
		"h Content-Type=text/plain\nh X-A=1,2\nv route=PUT /echo\nv subject=bob\nbody=payload\x00with\xffbytes"
	if resp.Status != 202 || string(resp.Body) != want {
		t.Errorf("echo = %d %q, want 202 %q", resp.Status, resp.Body, want)
	}
	if got := resp.Header.Values("X-Multi"); strings.Join(got, ",") != "a,b" {
		t.Errorf("X-Multi = %q, want [a b]", got)
	}
	env := string(invoke(t, f, get("/env", "")).Body)
	if env != "GOGC=200\nGOMEMLIMIT=58720256\nGREETING=hi\nGREETING=hi\nargs=reactor" {
		t.Errorf("reactor env = %q, want only the manifest env, the runtime defaults and args = name", env)
	}
}

// TestGuestRuntimeDefaults: a Go guest's collector is told the instance's
// memory limit (7/8 of it) and runs at GOGC=200, unless the manifest's env
// sets either.
func TestGuestRuntimeDefaults(t *testing.T) {
	e, _ := newEngine(t, Config{})
	for _, c := range []struct {
		name string
		env  map[string]string
		mem  int64
		want string
	}{
		{"defaults", nil, 0, "gogc=200 memlimit=58720256"},
		{"small memory", nil, 4 << 20, "gogc=200 memlimit=3145728"},
		{"manifest overrides", map[string]string{"GOGC": "50", "GOMEMLIMIT": "20MiB"}, 0, "gogc=50 memlimit=20971520"},
		{"collector off", map[string]string{"GOGC": "off"}, 32 << 20, "gogc=-1 memlimit=29360128"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := spec(t, "reactor", 1, manifest.Limits{Memory: c.mem})
			s.Name = "gc-" + strings.ReplaceAll(c.name, " ", "-")
			s.Env = c.env
			if got := string(invoke(t, e.Function(s), get("/gc", "")).Body); got != c.want {
				t.Errorf("guest collector = %q, want %q", got, c.want)
			}
		})
	}
}

func TestHostLog(t *testing.T) {
	e, logs := newEngine(t, Config{})
	f := e.Function(spec(t, "reactor", 7, manifest.Limits{}))
	req := get("/log", "")
	req.RequestID = "rid-log"
	invoke(t, f, req)
	out := logs.String()
	for _, want := range []string{`level=WARN msg="guest log"`, "function=reactor", "version=7", "request_id=rid-log", `msg="hello from the guest"`, "truncated=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%.2000s", want, out)
		}
	}
	if strings.Contains(out, strings.Repeat("x", maxLogLine+1)) {
		t.Errorf("a log line longer than %d bytes was written", maxLogLine)
	}
}

func TestInvocationFrom(t *testing.T) {
	if _, ok := InvocationFrom(context.Background()); ok {
		t.Errorf("InvocationFrom(Background) ok = true, want false")
	}
	want := Invocation{Namespace: "ns", Name: "fn", Version: 3, RequestID: "r"}
	ctx := context.WithValue(context.Background(), callStateKey{}, &callState{inv: want})
	if got, ok := InvocationFrom(ctx); !ok || got != want {
		t.Errorf("InvocationFrom = %+v, %v, want %+v, true", got, ok, want)
	}
}

func TestScaleToZero(t *testing.T) {
	e, _ := newEngine(t, Config{InstanceIdle: 30 * time.Millisecond, ModuleIdle: 150 * time.Millisecond})
	s := spec(t, "reactor", 1, manifest.Limits{})
	var loadsHere int
	var mu sync.Mutex
	load := s.Load
	s.Load = func(ctx context.Context) ([]byte, error) {
		mu.Lock()
		loadsHere++
		mu.Unlock()
		return load(ctx)
	}
	f := e.Function(s)
	count(t, f)
	if st := e.Stats(); st.IdleInstances != 1 || st.LoadedModules != 1 {
		t.Fatalf("after one call Stats = %+v, want 1 idle instance and 1 module", st)
	}
	eventually(t, 5*time.Second, "idle instance closed", func() bool { return e.Stats().IdleInstances == 0 })
	eventually(t, 5*time.Second, "module released", func() bool { return e.Stats().LoadedModules == 0 })
	if got := count(t, f); got != "1" {
		t.Errorf("count after scale to zero = %s, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if loadsHere != 2 {
		t.Errorf("Spec.Load called %d times, want 2 (reloaded after release)", loadsHere)
	}
}

func TestFunctionCloseInFlight(t *testing.T) {
	e, _ := newEngine(t, Config{})
	f := e.Function(spec(t, "attack", 1, manifest.Limits{Timeout: 30 * time.Second}))
	if err := f.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var closeDone time.Time
	var invokeErr error
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	go func() {
		defer wg.Done()
		_, invokeErr = f.Invoke(ctx, get("/", "t=sleep&ms=1000")) // the guest sleeps 1s
	}()
	eventually(t, 10*time.Second, "invocation in flight", func() bool { return e.Stats().BusyInstances == 1 })
	go func() {
		defer wg.Done()
		f.Close()
		closeDone = time.Now()
	}()
	wg.Wait()
	if invokeErr != nil {
		t.Errorf("in-flight invocation failed during Close: %v", invokeErr)
	}
	if d := closeDone.Sub(start); d < time.Second {
		t.Errorf("Close returned %v after the invocation started, before the guest's 1s sleep ended", d)
	}
	var se *Error
	if _, err := f.Invoke(context.Background(), get("/", "t=ok")); !errors.As(err, &se) || se.Kind != KindUnavailable {
		t.Errorf("Invoke after Close = %v, want KindUnavailable", err)
	}
	if st := e.Stats(); st.LoadedModules != 0 || st.Functions != 0 {
		t.Errorf("Stats after Close = %+v, want nothing loaded", st)
	}
	f.Close() // idempotent
}

func TestEngineCloseNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	e, err := New(context.Background(), Config{CacheDir: cacheDir, PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"reactor", "ping", "hello"} {
		f := e.Function(spec(t, name, 1, manifest.Limits{}))
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := f.Invoke(context.Background(), get("/count", "")); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.LoadedModules != 0 || st.IdleInstances != 0 || st.BusyInstances != 0 || st.Functions != 0 {
		t.Errorf("Stats after Close = %+v, want all zero", st)
	}
	eventually(t, 5*time.Second, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= before })
	f := e.Function(spec(t, "ping", 1, manifest.Limits{}))
	var se *Error
	if _, err := f.Invoke(context.Background(), get("/", "")); !errors.As(err, &se) || se.Kind != KindUnavailable {
		t.Errorf("Invoke on a closed engine = %v, want KindUnavailable", err)
	}
}

func TestEngineCloseDeadline(t *testing.T) {
	e, err := New(context.Background(), Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	f := e.Function(spec(t, "reactor", 1, manifest.Limits{Timeout: time.Minute}))
	errc := make(chan error, 1)
	go func() {
		_, err := f.Invoke(context.Background(), get("/loop", ""))
		errc <- err
	}()
	eventually(t, 10*time.Second, "invocation in flight", func() bool { return e.Stats().BusyInstances == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a 100ms deadline", d)
	}
	if err := <-errc; err == nil {
		t.Errorf("the looping invocation succeeded, want an error")
	}
}

func encodeResp(status uint32, headers [][2]string, body string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, status)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(headers)))
	for _, h := range headers {
		b = appendStr(b, h[0])
		b = appendStr(b, h[1])
	}
	return appendStr(b, body)
}

func TestDecodeResponse(t *testing.T) {
	ok := encodeResp(201, [][2]string{{"content-type", "a/b"}, {"X-M", "1"}, {"X-M", "2"}}, "body")
	resp, err := decodeResponse(ok, 100)
	if err != nil || resp.Status != 201 || string(resp.Body) != "body" ||
		resp.Header.Get("Content-Type") != "a/b" || len(resp.Header["X-M"]) != 2 {
		t.Fatalf("decodeResponse(valid) = %+v, %v", resp, err)
	}
	ok[len(ok)-1] = 'X' // the body is a copy, not a view of guest memory
	if string(resp.Body) != "body" {
		t.Errorf("response body aliases guest memory")
	}
	for _, tc := range []struct {
		name string
		in   []byte
		kind ErrorKind
	}{
		{"empty", nil, KindBadResponse},
		{"truncated", ok[:len(ok)-2], KindBadResponse},
		{"trailing bytes", append(encodeResp(200, nil, "x"), 0), KindBadResponse},
		{"status 0", encodeResp(0, nil, ""), KindBadResponse},
		{"status 600", encodeResp(600, nil, ""), KindBadResponse},
		{"bad header name", encodeResp(200, [][2]string{{"a b", "x"}}, ""), KindBadResponse},
		{"crlf in value", encodeResp(200, [][2]string{{"A", "x\r\nB: y"}}, ""), KindBadResponse},
		{"huge header count", binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 200), 1<<30), KindBadResponse},
		{"body over limit", encodeResp(200, nil, strings.Repeat("x", 101)), KindResponseTooLarge},
		{"body length lies", append(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 200), 0), 50), "abc"...), KindBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeResponse(tc.in, 100); err == nil || err.Kind != tc.kind {
				t.Errorf("decodeResponse(%q) = %v, want kind %v", tc.in, err, tc.kind)
			}
		})
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(encodeResp(200, [][2]string{{"A", "b"}}, "body"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := decodeResponse(b, 1<<10)
		if (resp == nil) == (err == nil) {
			t.Fatalf("decodeResponse = %v, %v: want exactly one", resp, err)
		}
		if resp != nil && (resp.Status < 100 || resp.Status > 599 || len(resp.Body) > 1<<10) {
			t.Fatalf("decodeResponse accepted status %d, body %d", resp.Status, len(resp.Body))
		}
	})
}

func FuzzParseCGI(f *testing.F) {
	f.Add([]byte("Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nbody"))
	f.Add([]byte("Location: /x\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := parseCGI(b, 1<<10)
		if (resp == nil) == (err == nil) {
			t.Fatalf("parseCGI = %v, %v: want exactly one", resp, err)
		}
		if resp != nil {
			for k, vs := range resp.Header {
				for _, v := range vs {
					if strings.ContainsAny(k+v, "\r\n\x00") {
						t.Fatalf("parseCGI let a control character through: %q: %q", k, v)
					}
				}
			}
		}
	})
}
