package sandbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/manifest"
)

// fakeHost is an in-memory Host for the capability tests. A secret name,
// bucket or URL that is a key of fakeErrs makes the call fail with that
// error; every call is recorded.
type fakeHost struct {
	mu      sync.Mutex
	calls   []fakeCall
	secrets map[string][]byte
	kv      map[[2]string][]byte
	ttls    map[[2]string]time.Duration
	lastReq *HTTPRequest
	// http, when set, answers HTTP calls (after the fakeErrs check).
	http func(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error)
}

type fakeCall struct {
	op          string
	inv, ctxInv Invocation // the argument, and InvocationFrom(ctx)
	deadline    bool       // ctx had a deadline
	limit       int        // KVList
}

var fakeErrs = map[string]error{
	"!denied":      ErrDenied,
	"!not_found":   ErrNotFound,
	"!invalid":     ErrInvalid,
	"!too_large":   ErrTooLarge,
	"!unavailable": ErrUnavailable,
	"!timeout":     ErrTimeout,
	"!network":     ErrNetwork,
	"!wrapped":     fmt.Errorf("vault: row 7: %w", ErrNotFound),
	"!other":       errors.New("database exploded"),
	"!canceled":    context.Canceled, // while the invocation's context is alive
	"!deadline":    context.DeadlineExceeded,
}

var _ Host = (*fakeHost)(nil)

func newFakeHost() *fakeHost {
	return &fakeHost{secrets: map[string][]byte{}, kv: map[[2]string][]byte{}, ttls: map[[2]string]time.Duration{}}
}

func (h *fakeHost) record(ctx context.Context, op string, inv Invocation, limit int) {
	ci, _ := InvocationFrom(ctx)
	_, dl := ctx.Deadline()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, fakeCall{op: op, inv: inv, ctxInv: ci, deadline: dl, limit: limit})
}

func (h *fakeHost) count(op string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		if op == "" || c.op == op {
			n++
		}
	}
	return n
}

func (h *fakeHost) last() fakeCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.calls) == 0 {
		return fakeCall{}
	}
	return h.calls[len(h.calls)-1]
}

func (h *fakeHost) SecretGet(ctx context.Context, inv Invocation, name string) ([]byte, error) {
	h.record(ctx, "secret_get", inv, 0)
	if err, ok := fakeErrs[name]; ok {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.secrets[name]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (h *fakeHost) KVGet(ctx context.Context, inv Invocation, bucket, key string) ([]byte, error) {
	h.record(ctx, "kv_get", inv, 0)
	if err, ok := fakeErrs[bucket]; ok {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.kv[[2]string{bucket, key}]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (h *fakeHost) KVSet(ctx context.Context, inv Invocation, bucket, key string, value []byte, ttl time.Duration) error {
	h.record(ctx, "kv_set", inv, 0)
	if err, ok := fakeErrs[bucket]; ok {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kv[[2]string{bucket, key}] = value // the sandbox hands over a copy
	h.ttls[[2]string{bucket, key}] = ttl
	return nil
}

func (h *fakeHost) KVDelete(ctx context.Context, inv Invocation, bucket, key string) error {
	h.record(ctx, "kv_delete", inv, 0)
	if err, ok := fakeErrs[bucket]; ok {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.kv[[2]string{bucket, key}]; !ok {
		return ErrNotFound
	}
	delete(h.kv, [2]string{bucket, key})
	return nil
}

func (h *fakeHost) KVList(ctx context.Context, inv Invocation, bucket, prefix, after string, limit int) ([]string, error) {
	h.record(ctx, "kv_list", inv, limit)
	if err, ok := fakeErrs[bucket]; ok {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var keys []string
	for k := range h.kv {
		if k[0] == bucket && strings.HasPrefix(k[1], prefix) && k[1] > after {
			keys = append(keys, k[1])
		}
	}
	slices.Sort(keys)
	return keys[:min(len(keys), limit)], nil
}

// HTTP answers 201 with the request echoed (X-Method, X-Url, X-Echo-<name>
// headers, the body), or 200 with size bytes of pattern for a URL with a
// size query parameter.
func (h *fakeHost) HTTP(ctx context.Context, inv Invocation, req *HTTPRequest) (*HTTPResponse, error) {
	h.record(ctx, "http", inv, 0)
	h.mu.Lock()
	h.lastReq = req
	h.mu.Unlock()
	if err, ok := fakeErrs[req.URL]; ok {
		return nil, err
	}
	switch req.URL {
	case "!nilresp":
		return nil, nil
	case "!status0":
		return &HTTPResponse{}, nil
	case "!hugebody":
		return &HTTPResponse{Status: 200, Body: make([]byte, MaxHTTPResponse+1)}, nil
	case "!block":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if h.http != nil {
		return h.http(ctx, req)
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, ErrInvalid
	}
	if s := u.Query().Get("size"); s != "" {
		n, _ := strconv.Atoi(s)
		return &HTTPResponse{Status: 200, Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: pattern(n)}, nil
	}
	hdr := http.Header{"X-Method": {req.Method}, "X-Url": {req.URL}, "X-Multi": {"a", "b"}}
	for k, vs := range req.Header {
		hdr["X-Echo-"+k] = vs
	}
	return &HTTPResponse{Status: 201, Header: hdr, Body: req.Body}, nil
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func capsFunction(t testing.TB, host Host) (*Function, *Engine, *logBuffer) {
	t.Helper()
	e, logs := newEngine(t, Config{})
	s := spec(t, "caps", 3, manifest.Limits{})
	if host != nil {
		s.Host = host
	}
	return e.Function(s), e, logs
}

// qv builds a query from name/value pairs.
func qv(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Add(pairs[i], pairs[i+1])
	}
	return v
}

// raw runs the caps guest's /raw: the calls in q, with body as the
// request body. It returns each call's result and the last call's data.
func raw(t testing.TB, f *Function, q url.Values, body []byte) ([]int, []byte) {
	t.Helper()
	req := get("/raw", q.Encode())
	req.Body = body
	resp := invoke(t, f, req)
	if resp.Status != 200 {
		t.Fatalf("/raw?%s = %d %q", q.Encode(), resp.Status, resp.Body)
	}
	var rets []int
	for s := range strings.SplitSeq(resp.Header.Get("X-Ret"), ",") {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("/raw?%s: X-Ret %q", q.Encode(), resp.Header.Get("X-Ret"))
		}
		rets = append(rets, n)
	}
	return rets, resp.Body
}

// sdkCall runs one of the caps guest's /sdk/ paths; it returns the body
// and the error name ("" on success).
func sdkCall(t testing.TB, f *Function, path string, q url.Values, body []byte) (*Response, string) {
	t.Helper()
	req := get(path, q.Encode())
	req.Body = body
	resp := invoke(t, f, req)
	if resp.Status != 200 {
		t.Fatalf("%s?%s = %d %q", path, q.Encode(), resp.Status, resp.Body)
	}
	return resp, resp.Header.Get("X-Err")
}

// encHTTP encodes an http_request.
func encHTTP(method, u string, headers [][2]string, body string) []byte {
	b := appendStr(nil, method)
	b = appendStr(b, u)
	b = appendU32(b, uint32(len(headers)))
	for _, h := range headers {
		b = appendStr(b, h[0])
		b = appendStr(b, h[1])
	}
	return appendStr(b, body)
}

func TestCapSecret(t *testing.T) {
	h := newFakeHost()
	big := pattern(100 << 10)
	h.secrets["SMALL"] = []byte("s3cr3t")
	h.secrets["BIG"] = big
	h.secrets["EXACT"] = []byte("0123456789abcdef")
	f, _, _ := capsFunction(t, h)

	rets, body := raw(t, f, qv("s0", "SMALL", "c", "secret_get:p0,l0,po,oc"), nil)
	if !slices.Equal(rets, []int{6}) || string(body) != "s3cr3t" {
		t.Errorf("secret_get(SMALL) = %v %q, want [6] s3cr3t", rets, body)
	}
	rets, body = raw(t, f, qv("s0", "EXACT", "c", "secret_get:p0,l0,po,16"), nil)
	if !slices.Equal(rets, []int{16}) || string(body) != "0123456789abcdef" {
		t.Errorf("secret_get(EXACT, cap 16) = %v %q, want [16] and the value (an exact fit is no pending result)", rets, body)
	}
	before := h.count("secret_get")
	rets, body = raw(t, f, qv("s0", "BIG", "osz", strconv.Itoa(len(big)), "c", "secret_get:p0,l0,po,16", "c", "result_take:po,oc"), nil)
	if n := len(big); !slices.Equal(rets, []int{n, n}) || !bytes.Equal(body, big) {
		t.Errorf("secret_get(BIG, cap 16) + result_take = %v (%d bytes), want [%d %d] and the value", rets, len(body), n, n)
	}
	if n := h.count("secret_get") - before; n != 1 {
		t.Errorf("Host.SecretGet called %d times for one secret_get + result_take, want 1", n)
	}

	// Through the SDK: a 4 KiB buffer, then result_take.
	for _, name := range []string{"SMALL", "BIG"} {
		before := h.count("secret_get")
		resp, errName := sdkCall(t, f, "/sdk/secret", qv("name", name), nil)
		if errName != "" || !bytes.Equal(resp.Body, h.secrets[name]) {
			t.Errorf("warden.Secret(%q) = %d bytes, err %q, want the value", name, len(resp.Body), errName)
		}
		if n := h.count("secret_get") - before; n != 1 {
			t.Errorf("warden.Secret(%q) called Host.SecretGet %d times, want 1", name, n)
		}
	}
	if _, errName := sdkCall(t, f, "/sdk/secret", qv("name", "MISSING"), nil); errName != "not_found" {
		t.Errorf("warden.Secret(MISSING) error = %q, want not_found", errName)
	}

	// AppendSecret: into dst's spare capacity, or grown once and taken.
	for _, tc := range []struct {
		name, cap string
	}{{"SMALL", "0"}, {"SMALL", "64"}, {"BIG", "0"}, {"BIG", "16"}, {"BIG", strconv.Itoa(len(big) + 2)}} {
		before := h.count("secret_get")
		resp, errName := sdkCall(t, f, "/sdk/appendsecret", qv("name", tc.name, "prefix", "p:", "cap", tc.cap), nil)
		if want := append([]byte("p:"), h.secrets[tc.name]...); errName != "" || !bytes.Equal(resp.Body, want) {
			t.Errorf("warden.AppendSecret(cap %s, %q) = %d bytes, err %q, want p: and the value", tc.cap, tc.name, len(resp.Body), errName)
		}
		if n := h.count("secret_get") - before; n != 1 {
			t.Errorf("warden.AppendSecret(cap %s, %q) called Host.SecretGet %d times, want 1", tc.cap, tc.name, n)
		}
	}
	if resp, errName := sdkCall(t, f, "/sdk/appendsecret", qv("name", "!denied", "prefix", "p:"), nil); errName != "denied" || len(resp.Body) != 0 {
		t.Errorf("warden.AppendSecret(!denied) = %q, %q, want denied", resp.Body, errName)
	}
}

func TestCapKV(t *testing.T) {
	h := newFakeHost()
	f, _, _ := capsFunction(t, h)

	if _, errName := sdkCall(t, f, "/sdk/kv/set", qv("b", "orders", "k", "k1", "ttl", "1500ms"), []byte("v1")); errName != "" {
		t.Fatalf("KVSet error %q", errName)
	}
	if ttl := h.ttls[[2]string{"orders", "k1"}]; ttl != 1500*time.Millisecond {
		t.Errorf("Host got ttl %v, want 1.5s", ttl)
	}
	if resp, errName := sdkCall(t, f, "/sdk/kv/get", qv("b", "orders", "k", "k1"), nil); errName != "" || string(resp.Body) != "v1" {
		t.Errorf("KVGet = %q, %q, want v1", resp.Body, errName)
	}

	big := pattern(100 << 10)
	if _, errName := sdkCall(t, f, "/sdk/kv/set", qv("b", "orders", "k", "big"), big); errName != "" {
		t.Fatalf("KVSet(100 KiB) error %q", errName)
	}
	if resp, errName := sdkCall(t, f, "/sdk/kv/get", qv("b", "orders", "k", "big"), nil); errName != "" || !bytes.Equal(resp.Body, big) {
		t.Errorf("KVGet(100 KiB) = %d bytes, %q, want the value", len(resp.Body), errName)
	}
	rets, body := raw(t, f, qv("s0", "orders", "s1", "big", "osz", strconv.Itoa(len(big)),
		"c", "kv_get:p0,l0,p1,l1,po,100", "c", "result_take:po,oc"), nil)
	if n := len(big); !slices.Equal(rets, []int{n, n}) || !bytes.Equal(body, big) {
		t.Errorf("kv_get(100 KiB, cap 100) + result_take = %v (%d bytes), want [%d %d]", rets, len(body), n, n)
	}
	rets, _ = raw(t, f, qv("s0", "orders", "s1", "nottl", "s2", "v", "c", "kv_set:p0,l0,p1,l1,p2,l2,0"), nil)
	if !slices.Equal(rets, []int{0}) || h.ttls[[2]string{"orders", "nottl"}] != 0 {
		t.Errorf("kv_set(ttl 0) = %v, ttl %v; want [0] and no expiry", rets, h.ttls[[2]string{"orders", "nottl"}])
	}

	for _, k := range []string{"a1", "a2", "b1"} {
		h.kv[[2]string{"list", k}] = []byte("x")
	}
	for _, tc := range []struct {
		q         url.Values
		want      string
		wantLimit int
	}{
		{qv("b", "list"), "a1\na2\nb1", MaxKVList},
		{qv("b", "list", "prefix", "a"), "a1\na2", MaxKVList},
		{qv("b", "list", "after", "a1"), "a2\nb1", MaxKVList},
		{qv("b", "list", "limit", "1"), "a1", 1},
		{qv("b", "list", "limit", "5000"), "a1\na2\nb1", MaxKVList},
		{qv("b", "empty"), "", MaxKVList},
	} {
		resp, errName := sdkCall(t, f, "/sdk/kv/list", tc.q, nil)
		if errName != "" || string(resp.Body) != tc.want || h.last().limit != tc.wantLimit {
			t.Errorf("KVList(%v) = %q, %q (Host limit %d), want %q (limit %d)", tc.q, resp.Body, errName, h.last().limit, tc.want, tc.wantLimit)
		}
	}
	rets, body = raw(t, f, qv("s0", "list", "c", "kv_list:p0,l0,0,0,0,0,2,po,oc"), nil)
	want := appendStr(appendStr(appendU32(nil, 2), "a1"), "a2")
	if !slices.Equal(rets, []int{len(want)}) || !bytes.Equal(body, want) {
		t.Errorf("kv_list(limit 2) = %v %x, want [%d] %x", rets, body, len(want), want)
	}

	if _, errName := sdkCall(t, f, "/sdk/kv/delete", qv("b", "orders", "k", "k1"), nil); errName != "" {
		t.Errorf("KVDelete error %q", errName)
	}
	if _, errName := sdkCall(t, f, "/sdk/kv/get", qv("b", "orders", "k", "k1"), nil); errName != "not_found" {
		t.Errorf("KVGet after delete error = %q, want not_found", errName)
	}
	if _, errName := sdkCall(t, f, "/sdk/kv/delete", qv("b", "orders", "k", "k1"), nil); errName != "not_found" {
		t.Errorf("KVDelete twice error = %q, want not_found", errName)
	}
}

func TestCapHTTP(t *testing.T) {
	h := newFakeHost()
	f, _, _ := capsFunction(t, h)

	enc := encHTTP("POST", "https://api.test/x?y=1", [][2]string{{"x-a", "1"}, {"X-A", "2"}, {"Content-Type", "text/plain"}}, "hi")
	rets, body := raw(t, f, qv("c", "http_request:pb,lb,po,oc"), enc)
	if len(rets) != 1 || rets[0] != len(body) {
		t.Fatalf("http_request = %v with %d bytes", rets, len(body))
	}
	resp, ierr := decodeResponse(body, 1<<20) // the same encoding as a reactor response
	if ierr != nil {
		t.Fatalf("http_request result does not decode: %v", ierr)
	}
	if resp.Status != 201 || string(resp.Body) != "hi" || resp.Header.Get("X-Method") != "POST" ||
		resp.Header.Get("X-Url") != "https://api.test/x?y=1" || len(resp.Header.Values("X-Multi")) != 2 {
		t.Errorf("http_request response = %+v", resp)
	}
	if got := h.lastReq.Header; !slices.Equal(got["X-A"], []string{"1", "2"}) || got.Get("Content-Type") != "text/plain" {
		t.Errorf("Host got headers %v, want canonical X-A: [1 2] and Content-Type", got)
	}

	// 100 KiB body through warden.Fetch: one Host call, result_take inside.
	before := h.count("http")
	r, errName := sdkCall(t, f, "/sdk/fetch", qv("m", "GET", "u", "https://api.test/big?size=102400"), nil)
	if errName != "" || r.Header.Get("X-Status") != "200" || !bytes.Equal(r.Body, pattern(102400)) {
		t.Errorf("Fetch(100 KiB) = status %s, %d bytes, err %q", r.Header.Get("X-Status"), len(r.Body), errName)
	}
	if n := h.count("http") - before; n != 1 {
		t.Errorf("Fetch of a 100 KiB response sent %d requests, want 1 (never re-sent to learn its size)", n)
	}

	// A net/http client with wardenhttp.Transport.
	r, errName = sdkCall(t, f, "/sdk/client", qv("m", "PUT", "u", "https://api.test/put", "h", "x-b:b"), []byte("payload"))
	if errName != "" || r.Header.Get("X-Status") != "201 Created" || string(r.Body) != "payload" ||
		!strings.Contains(r.Header.Get("X-Hdr"), "X-Echo-X-B=b") || !strings.Contains(r.Header.Get("X-Hdr"), "X-Multi=a,b") {
		t.Errorf("http.Client via Transport = %q %q %q, err %q", r.Header.Get("X-Status"), r.Header.Get("X-Hdr"), r.Body, errName)
	}
	if h.lastReq.Method != "PUT" || string(h.lastReq.Body) != "payload" {
		t.Errorf("Host got %s with body %q, want PUT payload", h.lastReq.Method, h.lastReq.Body)
	}
	r, errName = sdkCall(t, f, "/sdk/client", qv("m", "GET", "u", "!denied"), nil)
	if errName != "denied" {
		t.Errorf("http.Client to a denied URL: err %q, want denied (through *url.Error)", errName)
	}
}

// Every sentinel error maps to its code, for every capability; any other
// error is unavailable.
func TestCapErrorCodes(t *testing.T) {
	h := newFakeHost()
	f, _, _ := capsFunction(t, h)
	for _, tc := range []struct {
		name     string
		code     int
		sdkError string
	}{
		{"!denied", -1, "denied"},
		{"!not_found", -2, "not_found"},
		{"!invalid", -3, "invalid"},
		{"!too_large", -4, "too_large"},
		{"!unavailable", -5, "unavailable"},
		{"!timeout", -6, "timeout"},
		{"!network", -7, "network"},
		{"!wrapped", -2, "not_found"},
		{"!other", -5, "unavailable"},
		{"!canceled", -5, "unavailable"},
		{"!deadline", -6, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := qv("s0", tc.name, "s1", "key",
				"c", "secret_get:p0,l0,po,oc",
				"c", "kv_get:p0,l0,p1,l1,po,oc",
				"c", "kv_set:p0,l0,p1,l1,p1,l1,0",
				"c", "kv_delete:p0,l0,p1,l1",
				"c", "kv_list:p0,l0,0,0,0,0,0,po,oc",
				"c", "http_request:pb,lb,po,oc")
			rets, _ := raw(t, f, q, encHTTP("GET", tc.name, nil, ""))
			if want := slices.Repeat([]int{tc.code}, 6); !slices.Equal(rets, want) {
				t.Errorf("Host error %v: results %v, want %v", fakeErrs[tc.name], rets, want)
			}
			if _, errName := sdkCall(t, f, "/sdk/secret", qv("name", tc.name), nil); errName != tc.sdkError {
				t.Errorf("warden.Secret with Host error %v: %q, want %q", fakeErrs[tc.name], errName, tc.sdkError)
			}
		})
	}
	// A Host that answers nonsense fails closed.
	for _, tc := range []struct {
		url  string
		code int
	}{{"!nilresp", -5}, {"!status0", -5}, {"!hugebody", -4}} {
		if rets, _ := raw(t, f, qv("c", "http_request:pb,lb,po,oc"), encHTTP("GET", tc.url, nil, "")); !slices.Equal(rets, []int{tc.code}) {
			t.Errorf("http_request with Host answering %s = %v, want [%d]", tc.url, rets, tc.code)
		}
	}
}

// Hostile arguments: every one is refused before the Host is called, the
// host does not crash, and the instance stays healthy.
func TestCapAttack(t *testing.T) {
	h := newFakeHost()
	h.secrets["K"] = []byte("value")
	f, e, _ := capsFunction(t, h)
	long := func(n int) string { return strings.Repeat("A", n) }
	valid := encHTTP("GET", "https://api.test/", nil, "")
	for _, tc := range []struct {
		name string
		q    url.Values
		body []byte
		want int
	}{
		{"name ptr near 4 GiB", qv("c", "secret_get:0xfffffff0,16,po,oc"), nil, -3},
		{"name len 2^32-1", qv("c", "secret_get:p0,0xffffffff,po,oc"), nil, -3},
		{"name ptr+len wraps to 1", qv("c", "secret_get:0xffffffff,2,po,oc"), nil, -3},
		{"name past the end of memory", qv("c", "secret_get:0x7fffffff,1,po,oc"), nil, -3},
		{"name over MaxNameLen", qv("s0", long(MaxNameLen+1), "c", "secret_get:p0,l0,po,oc"), nil, -3},
		{"out ptr near 4 GiB", qv("c", "secret_get:p0,l0,0xffffff00,0x200"), nil, -3},
		{"out cap wraps", qv("c", "secret_get:p0,l0,po,0xffffffff"), nil, -3},
		{"kv_get bucket out of range", qv("c", "kv_get:0xffffffff,1,p1,l1,po,oc"), nil, -3},
		{"kv_get bucket over MaxNameLen", qv("s0", long(MaxNameLen+1), "c", "kv_get:p0,l0,p1,l1,po,oc"), nil, -3},
		{"kv_get key over MaxKVKeyLen", qv("s1", long(MaxKVKeyLen+1), "c", "kv_get:p0,l0,p1,l1,po,oc"), nil, -3},
		{"kv_get out wraps", qv("c", "kv_get:p0,l0,p1,l1,0xfffffff0,0x20"), nil, -3},
		{"kv_set value out of range", qv("c", "kv_set:p0,l0,p1,l1,po,0xfffffff0,0"), nil, -3},
		{"kv_set value over MaxKVValueLen", qv("zsz", strconv.Itoa(MaxKVValueLen+1), "c", "kv_set:p0,l0,p1,l1,pz,lz,0"), nil, -4},
		{"kv_set negative ttl", qv("c", "kv_set:p0,l0,p1,l1,p2,l2,-1"), nil, -3},
		{"kv_set ttl past time.Duration", qv("c", "kv_set:p0,l0,p1,l1,p2,l2,0x7fffffffffffffff"), nil, -3},
		{"kv_set key over MaxKVKeyLen", qv("s1", long(MaxKVKeyLen+1), "c", "kv_set:p0,l0,p1,l1,p2,l2,0"), nil, -3},
		{"kv_delete key wraps", qv("c", "kv_delete:p0,l0,p1,0xffffffff"), nil, -3},
		{"kv_list prefix over MaxKVKeyLen", qv("s2", long(MaxKVKeyLen+1), "c", "kv_list:p0,l0,p2,l2,0,0,0,po,oc"), nil, -3},
		{"kv_list after out of range", qv("c", "kv_list:p0,l0,0,0,0xfffffff0,0x20,0,po,oc"), nil, -3},
		{"kv_list out wraps", qv("c", "kv_list:p0,l0,0,0,0,0,0,0xfffffff0,0x20"), nil, -3},
		{"http_request out of range", qv("c", "http_request:0xfffffff0,0x20,po,oc"), nil, -3},
		{"http_request over MaxHTTPRequest", qv("zsz", strconv.Itoa(MaxHTTPRequest+1), "c", "http_request:pz,lz,po,oc"), nil, -4},
		{"http_request out out of range", qv("c", "http_request:pb,lb,0xffffffff,0xffffffff"), valid, -3},
		{"result_take with nothing pending", qv("c", "result_take:po,oc"), nil, -3},
		{"result_take out of range, nothing pending", qv("c", "result_take:0xffffffff,0xffffffff"), nil, -3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, def := range []string{"K", "key", "val"} {
				if !tc.q.Has("s" + strconv.Itoa(i)) {
					tc.q.Set("s"+strconv.Itoa(i), def)
				}
			}
			if rets, _ := raw(t, f, tc.q, tc.body); !slices.Equal(rets, []int{tc.want}) {
				t.Errorf("%s: results %v, want [%d]", tc.q.Get("c"), rets, tc.want)
			}
		})
	}
	if n := h.count(""); n != 0 {
		t.Errorf("Host was called %d times by hostile calls, want 0", n)
	}
	if rets, body := raw(t, f, qv("s0", "K", "c", "secret_get:p0,l0,po,oc"), nil); !slices.Equal(rets, []int{5}) || string(body) != "value" {
		t.Errorf("a valid call after the attacks = %v %q, want [5] value", rets, body)
	}
	if n := e.Stats().Instantiations; n != 1 {
		t.Errorf("Instantiations = %d, want 1: no hostile call failed the invocation", n)
	}
}

func TestCapHTTPRequestMalformed(t *testing.T) {
	h := newFakeHost()
	f, _, _ := capsFunction(t, h)
	ok := encHTTP("GET", "https://api.test/", [][2]string{{"A", "b"}}, "body")
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	many := make([][2]string, maxHTTPHeaders+1)
	for i := range many {
		many[i] = [2]string{"X", "y"}
	}
	for _, tc := range []struct {
		name string
		enc  []byte
		want int
	}{
		{"empty", nil, -3},
		{"trailing byte", append(slices.Clip(ok), 0), -3},
		{"truncated", ok[:len(ok)-1], -3},
		{"method length past the end", append(u32(0xffffffff), "GET"...), -3},
		{"url length past the end", append(appendStr(nil, "GET"), u32(1000)...), -3},
		{"header count 2^30", append(appendStr(appendStr(nil, "GET"), "u"), u32(1<<30)...), -3},
		{"body length lies", append(appendU32(appendStr(appendStr(nil, "GET"), "u"), 0), u32(50)...), -3},
		{"empty method", encHTTP("", "u", nil, ""), -3},
		{"method with a space", encHTTP("GE T", "u", nil, ""), -3},
		{"method with CRLF", encHTTP("GET\r\n", "u", nil, ""), -3},
		{"empty header name", encHTTP("GET", "u", [][2]string{{"", "v"}}, ""), -3},
		{"header name with a colon", encHTTP("GET", "u", [][2]string{{"X:A", "v"}}, ""), -3},
		{"header name with a space", encHTTP("GET", "u", [][2]string{{"X A", "v"}}, ""), -3},
		{"header value with CRLF", encHTTP("GET", "u", [][2]string{{"A", "x\r\nB: y"}}, ""), -3},
		{"header value with NUL", encHTTP("GET", "u", [][2]string{{"A", "x\x00"}}, ""), -3},
		{"header value with DEL", encHTTP("GET", "u", [][2]string{{"A", "x\x7f"}}, ""), -3},
		{"too many headers", encHTTP("GET", "u", many, ""), -4},
		{"header block too large", encHTTP("GET", "u", [][2]string{{"A", strings.Repeat("v", maxHTTPHeaderBytes)}}, ""), -4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rets, _ := raw(t, f, qv("c", "http_request:pb,lb,po,oc"), tc.enc); !slices.Equal(rets, []int{tc.want}) {
				t.Errorf("http_request(%.60x) = %v, want [%d]", tc.enc, rets, tc.want)
			}
		})
	}
	if n := h.count(""); n != 0 {
		t.Errorf("Host was called %d times with malformed requests, want 0", n)
	}
}

func TestCapResultTake(t *testing.T) {
	h := newFakeHost()
	big := pattern(100 << 10)
	h.secrets["BIG"] = big
	f, _, _ := capsFunction(t, h)
	n := len(big)
	osz := strconv.Itoa(n)
	for _, tc := range []struct {
		name  string
		calls []string
		want  []int
		data  bool // the last call returns the value
	}{
		{"take clears", []string{"secret_get:p0,l0,po,16", "result_take:po,oc", "result_take:po,oc"}, []int{n, n, -3}, false},
		{"too small keeps it pending", []string{"secret_get:p0,l0,po,16", "result_take:po,16", "result_take:po,oc"}, []int{n, n, n}, true},
		{"out of range keeps it pending", []string{"secret_get:p0,l0,po,16", "result_take:0xffffffff,16", "result_take:po,oc"}, []int{n, -3, n}, true},
		{"replaced by the next call", []string{"secret_get:p0,l0,po,16", "kv_delete:p1,l1,p1,l1", "result_take:po,oc"}, []int{n, -2, -3}, false},
		{"replaced by a refused call", []string{"secret_get:p0,l0,po,16", "secret_get:0xffffffff,2,po,oc", "result_take:po,oc"}, []int{n, -3, -3}, false},
		{"replaced by a failed call", []string{"secret_get:p0,l0,po,16", "secret_get:p2,l2,po,oc", "result_take:po,oc"}, []int{n, -1, -3}, false},
		{"a newer result replaces it", []string{"secret_get:p0,l0,po,16", "secret_get:p0,l0,po,8", "result_take:po,oc"}, []int{n, n, n}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := qv("s0", "BIG", "s1", "nobucket", "s2", "!denied", "osz", osz)
			for _, c := range tc.calls {
				q.Add("c", c)
			}
			rets, body := raw(t, f, q, nil)
			if !slices.Equal(rets, tc.want) {
				t.Errorf("results %v, want %v", rets, tc.want)
			}
			if tc.data && !bytes.Equal(body, big) {
				t.Errorf("result_take returned %d bytes, want the %d-byte value", len(body), n)
			}
		})
	}
	// A pending result does not outlive its invocation.
	raw(t, f, qv("s0", "BIG", "c", "secret_get:p0,l0,po,16"), nil)
	if rets, _ := raw(t, f, qv("c", "result_take:po,oc"), nil); !slices.Equal(rets, []int{-3}) {
		t.Errorf("result_take in the next invocation = %v, want [-3]", rets)
	}
}

func TestCapNilHost(t *testing.T) {
	f, _, _ := capsFunction(t, nil)
	q := qv("s0", "K", "s1", "key",
		"c", "secret_get:p0,l0,po,oc",
		"c", "kv_get:p0,l0,p1,l1,po,oc",
		"c", "kv_set:p0,l0,p1,l1,p1,l1,0",
		"c", "kv_delete:p0,l0,p1,l1",
		"c", "kv_list:p0,l0,0,0,0,0,0,po,oc",
		"c", "http_request:pb,lb,po,oc",
		"c", "result_take:po,oc")
	rets, _ := raw(t, f, q, encHTTP("GET", "https://api.test/", nil, ""))
	if want := []int{-1, -1, -1, -1, -1, -1, -3}; !slices.Equal(rets, want) {
		t.Errorf("with no Host: results %v, want %v", rets, want)
	}
	if _, errName := sdkCall(t, f, "/sdk/secret", qv("name", "K"), nil); errName != "denied" {
		t.Errorf("warden.Secret with no Host: %q, want denied", errName)
	}
}

func TestCapInvocation(t *testing.T) {
	h := newFakeHost()
	h.secrets["K"] = []byte("v")
	f, _, _ := capsFunction(t, h)
	req := get("/sdk/secret", "name=K")
	req.RequestID = "rid-cap"
	invoke(t, f, req)
	want := Invocation{Namespace: "default", Name: "caps", Version: 3, RequestID: "rid-cap"}
	if c := h.last(); c.inv != want || c.ctxInv != want || !c.deadline {
		t.Errorf("Host got Invocation %+v (context %+v, deadline %v), want %+v with the invocation's deadline", c.inv, c.ctxInv, c.deadline, want)
	}
}

// A wagi guest imports the same host functions.
func TestCapWagi(t *testing.T) {
	h := newFakeHost()
	h.secrets["SMALL"] = []byte("s3cr3t")
	h.secrets["BIG"] = pattern(100)
	e, _ := newEngine(t, Config{})
	s := spec(t, "attack", 2, manifest.Limits{})
	s.Host = h
	f := e.Function(s)
	for _, tc := range []struct {
		name, ret, take string
	}{{"SMALL", "6", "0"}, {"BIG", "100", "100"}, {"NONE", "-2", "0"}} {
		req := get("/", "t=secret&name="+tc.name)
		req.RequestID = "rid-wagi"
		resp := invoke(t, f, req)
		if resp.Header.Get("X-Ret") != tc.ret || resp.Header.Get("X-Take") != tc.take || !bytes.Equal(resp.Body, h.secrets[tc.name]) {
			t.Errorf("wagi secret_get(%s) = ret %s take %s body %q, want %s %s %q", tc.name,
				resp.Header.Get("X-Ret"), resp.Header.Get("X-Take"), resp.Body, tc.ret, tc.take, h.secrets[tc.name])
		}
	}
	if want := (Invocation{Namespace: "default", Name: "attack", Version: 2, RequestID: "rid-wagi"}); h.last().inv != want {
		t.Errorf("Host got %+v, want %+v", h.last().inv, want)
	}
}

// A Host call that outlives the invocation's deadline ends it as a timeout.
func TestCapDeadline(t *testing.T) {
	h := newFakeHost()
	e, _ := newEngine(t, Config{})
	s := spec(t, "caps", 1, manifest.Limits{Timeout: time.Second})
	s.Host = h
	f := e.Function(s)
	invoke(t, f, get("/bench/none", "")) // a warm instance: the deadline is spent in the host call
	start := time.Now()
	invokeErr(t, f, get("/sdk/fetch", "m=GET&u=!block"), KindTimeout)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("invocation blocked in a host call took %v with a 1s timeout", d)
	}
	if h.count("http") != 1 {
		t.Errorf("Host.HTTP calls = %d, want 1", h.count("http"))
	}
}

func TestErrCode(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want int32
	}{
		{live, ErrDenied, codeDenied},
		{live, fmt.Errorf("x: %w", ErrNotFound), codeNotFound},
		{live, ErrInvalid, codeInvalid},
		{live, ErrTooLarge, codeTooLarge},
		{live, ErrUnavailable, codeUnavailable},
		{live, ErrTimeout, codeTimeout},
		{live, ErrNetwork, codeNetwork},
		{live, errors.New("boom"), codeUnavailable},
		{live, context.Canceled, codeUnavailable},
		{live, context.DeadlineExceeded, codeTimeout},
		{done, errors.New("dial: operation was canceled"), codeTimeout},
		{done, ErrDenied, codeDenied},
	} {
		if got := errCode(tc.ctx, tc.err); got != tc.want {
			t.Errorf("errCode(ctx err %v, %v) = %d, want %d", tc.ctx.Err(), tc.err, got, tc.want)
		}
	}
	for code, want := range map[int32]string{0: "ok", 12: "ok", -1: "denied", -7: "network", -8: "code(-8)"} {
		if got := codeName(code); got != want {
			t.Errorf("codeName(%d) = %q, want %q", code, got, want)
		}
	}
}

// Spec.PoolSize lets a function whose calls block in the network keep more
// instances than Config.PoolSize.
func TestSpecPoolSize(t *testing.T) {
	h := newFakeHost()
	entered, release := make(chan struct{}, 3), make(chan struct{})
	h.http = func(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &HTTPResponse{Status: 200}, nil
	}
	e, _ := newEngine(t, Config{PoolSize: 1})
	s := spec(t, "caps", 1, manifest.Limits{Timeout: 30 * time.Second})
	s.Host, s.PoolSize = h, 3
	f := e.Function(s)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Invoke(context.Background(), get("/sdk/fetch", "m=GET&u=https://api.test/")); err != nil {
				t.Error(err)
			}
		}()
	}
	for i := range 3 {
		select {
		case <-entered:
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of 3 invocations reached the Host: the pool did not grow to Spec.PoolSize", i)
		}
	}
	close(release)
	wg.Wait()
	if n := e.Stats().Instantiations; n != 3 {
		t.Errorf("Instantiations = %d, want 3", n)
	}
}

// Failures are logged at debug level with the operation and result, a
// secret's name but never a key or a value.
func TestCapLogs(t *testing.T) {
	h := newFakeHost()
	h.secrets["OK"] = []byte("VALUE-MUST-NOT-BE-LOGGED-1")
	f, _, logs := capsFunction(t, h)
	raw(t, f, qv("s0", "!denied", "s1", "KEY-MUST-NOT-BE-LOGGED", "s2", "VALUE-MUST-NOT-BE-LOGGED-2", "s3", "OK",
		"c", "secret_get:p0,l0,po,oc",
		"c", "kv_set:p0,l0,p1,l1,p2,l2,0",
		"c", "secret_get:p3,l3,po,oc"), nil)
	out := logs.String()
	for _, want := range []string{`msg="capability call failed"`, "op=secret_get", "result=denied", "secret=!denied", "op=kv_set", "function=caps", "request_id=req-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, never := range []string{"MUST-NOT-BE-LOGGED"} {
		if strings.Contains(out, never) {
			t.Errorf("log holds an argument value %q:\n%s", never, out)
		}
	}
}

// TestSecretsRedactedFromGuestOutput: a guest that logs a secret it read,
// through warden.log, stderr, or stdout in a later invocation from a cached
// copy, never puts the value in warden's log.
func TestSecretsRedactedFromGuestOutput(t *testing.T) {
	h := newFakeHost()
	h.secrets["TOKEN"] = []byte("tok_live_5f4e3d2c1b0a")
	f, _, logs := capsFunction(t, h)
	if _, e := sdkCall(t, f, "/sdk/leak", qv("name", "TOKEN"), nil); e != "" {
		t.Fatalf("leak: error %q", e)
	}
	sdkCall(t, f, "/sdk/leak-cached", nil, nil)
	out := logs.String()
	if strings.Contains(out, "tok_live_5f4e3d2c1b0a") {
		t.Fatalf("a secret value reached the log:\n%s", out)
	}
	for _, want := range []string{"using token [REDACTED:secret]", "token=[REDACTED:secret]", "cached token [REDACTED:secret]"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckCapabilityImports(t *testing.T) {
	e, _ := newEngine(t, Config{})
	if err := e.Check(context.Background(), manifest.ABIReactor, wasmOf(t, "caps")); err != nil {
		t.Errorf("Check(caps guest) = %v, want nil", err)
	}
	if err := e.Check(context.Background(), manifest.ABIWagi, wasmOf(t, "attack")); err != nil {
		t.Errorf("Check(attack guest) = %v, want nil", err)
	}
	// secret_get without its i32 result.
	if err := e.Check(context.Background(), manifest.ABIWagi, importModule("warden", "secret_get", 0, 4)); err == nil || !strings.Contains(err.Error(), "wrong signature") {
		t.Errorf("Check(secret_get with no result) = %v, want a wrong signature", err)
	}
}

// The http_request example in docs/abi.md.
func TestDecodeHTTPRequestDocExample(t *testing.T) {
	in, err := hex.DecodeString(strings.Join(strings.Fields(`03000000 474554
		14000000 68747470733a2f2f6578616d706c652e636f6d2f
		01000000
		06000000 416363657074
		0a000000 746578742f706c61696e
		00000000`), ""))
	if err != nil {
		t.Fatal(err)
	}
	req, err := decodeHTTPRequest(in)
	if err != nil || req.Method != "GET" || req.URL != "https://example.com/" ||
		req.Header.Get("Accept") != "text/plain" || len(req.Header) != 1 || req.Body != nil {
		t.Errorf("decodeHTTPRequest(doc example) = %+v, %v", req, err)
	}
}

func TestDecodeHTTPRequest(t *testing.T) {
	in := encHTTP("PATCH", "https://h/p", [][2]string{{"content-type", "a/b"}, {"X-M", "1"}, {"x-m", "2"}, {"X-Tab", "a\tb"}}, "body")
	req, err := decodeHTTPRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "PATCH" || req.URL != "https://h/p" || req.Header.Get("Content-Type") != "a/b" ||
		!slices.Equal(req.Header["X-M"], []string{"1", "2"}) || req.Header.Get("X-Tab") != "a\tb" || string(req.Body) != "body" {
		t.Errorf("decodeHTTPRequest = %+v", req)
	}
	clear(in)
	if req.Method != "PATCH" || string(req.Body) != "body" || req.Header.Get("X-Tab") != "a\tb" {
		t.Errorf("decodeHTTPRequest result aliases its input")
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"trailing", append(encHTTP("GET", "u", nil, ""), 1), ErrInvalid},
		{"bad method", encHTTP("G(T", "u", nil, ""), ErrInvalid},
		{"empty header name", encHTTP("GET", "u", make([][2]string, 1), ""), ErrInvalid},
		{"too many headers", encHTTP("GET", "u", make([][2]string, maxHTTPHeaders+1), ""), ErrTooLarge},
		{"over MaxHTTPRequest", make([]byte, MaxHTTPRequest+1), ErrTooLarge},
	} {
		if _, err := decodeHTTPRequest(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("decodeHTTPRequest(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEncodeHTTPResponse(t *testing.T) {
	b, err := encodeHTTPResponse(&HTTPResponse{Status: 200, Header: http.Header{"B": {"2"}, "A": {"1", "3"}}, Body: []byte("x")})
	want := encodeResp(200, [][2]string{{"A", "1"}, {"A", "3"}, {"B", "2"}}, "x")
	if err != nil || !bytes.Equal(b, want) {
		t.Errorf("encodeHTTPResponse = %x, %v, want %x (names sorted)", b, err, want)
	}
	for _, tc := range []struct {
		resp *HTTPResponse
		want error
	}{
		{nil, ErrUnavailable},
		{&HTTPResponse{Status: 99}, ErrUnavailable},
		{&HTTPResponse{Status: 600}, ErrUnavailable},
		{&HTTPResponse{Status: 200, Body: make([]byte, MaxHTTPResponse+1)}, ErrTooLarge},
		{&HTTPResponse{Status: 200, Header: http.Header{"A": {string(make([]byte, MaxPendingResult))}}}, ErrTooLarge},
	} {
		if _, err := encodeHTTPResponse(tc.resp); !errors.Is(err, tc.want) {
			t.Errorf("encodeHTTPResponse(%.40v) = %v, want %v", tc.resp, err, tc.want)
		}
	}
}

func FuzzDecodeHTTPRequest(f *testing.F) {
	f.Add(encHTTP("GET", "https://example.com/", [][2]string{{"Accept", "text/plain"}}, ""))
	f.Add(encHTTP("POST", "u", [][2]string{{"A", "1"}, {"a", "2"}}, "body"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := slices.Clone(b)
		req, err := decodeHTTPRequest(b)
		if (req == nil) == (err == nil) {
			t.Fatalf("decodeHTTPRequest = %v, %v: want exactly one", req, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("decodeHTTPRequest error %v is neither ErrInvalid nor ErrTooLarge", err)
			}
			return
		}
		if !validHeaderName([]byte(req.Method)) {
			t.Fatalf("accepted method %q", req.Method)
		}
		n := 0
		for k, vs := range req.Header {
			if !validHeaderName([]byte(k)) || k != http.CanonicalHeaderKey(k) {
				t.Fatalf("accepted header name %q", k)
			}
			for _, v := range vs {
				if !validHeaderValue([]byte(v)) {
					t.Fatalf("accepted header value %q", v)
				}
				n++
			}
		}
		if n > maxHTTPHeaders {
			t.Fatalf("accepted %d headers", n)
		}
		clear(b)
		if len(req.Body) > 0 && !bytes.Contains(in, req.Body) {
			t.Fatalf("body aliases the input")
		}
	})
}

func TestExampleSecretHMAC(t *testing.T) {
	h := newFakeHost()
	key := []byte("k3y-that-must-stay-secret")
	h.secrets["SIGNING_KEY"] = key
	e, _ := newEngine(t, Config{})
	s := spec(t, "secret-hmac", 1, manifest.Limits{})
	s.Host = h
	f := e.Function(s)
	req := get("/sign", "")
	req.Method, req.Body = "POST", []byte("hello")
	resp := invoke(t, f, req)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("hello"))
	if want := hex.EncodeToString(mac.Sum(nil)); resp.Status != 200 || string(resp.Body) != want {
		t.Errorf("POST /sign = %d %q, want 200 %q", resp.Status, resp.Body, want)
	}
	delete(h.secrets, "SIGNING_KEY")
	resp = invoke(t, f, req)
	if resp.Status != 500 || bytes.Contains(resp.Body, key) {
		t.Errorf("POST /sign without the secret = %d %q, want 500", resp.Status, resp.Body)
	}
}

func TestExampleKVCounter(t *testing.T) {
	h := newFakeHost()
	e, _ := newEngine(t, Config{})
	s := spec(t, "kv-counter", 1, manifest.Limits{})
	s.Host = h
	f := e.Function(s)
	call := func(method, path string) *Response {
		req := get(path, "")
		req.Method = method
		return invoke(t, f, req)
	}
	for i, want := range []string{`{"name":"a","count":1}`, `{"name":"a","count":2}`} {
		if resp := call("POST", "/count/a"); resp.Status != 200 || string(resp.Body) != want {
			t.Errorf("POST /count/a #%d = %d %s, want %s", i+1, resp.Status, resp.Body, want)
		}
	}
	if resp := call("GET", "/count/a"); string(resp.Body) != `{"name":"a","count":2}` {
		t.Errorf("GET /count/a = %s", resp.Body)
	}
	if resp := call("GET", "/count/b"); string(resp.Body) != `{"name":"b","count":0}` {
		t.Errorf("GET /count/b = %s, want count 0", resp.Body)
	}
	if got := string(h.kv[[2]string{"counters", "a"}]); got != "2" {
		t.Errorf("KV counters/a = %q, want 2", got)
	}
	if resp := call("GET", `/count/a"b`); resp.Status != 400 {
		t.Errorf(`GET /count/a"b = %d, want 400`, resp.Status)
	}
}

func TestExampleEgressFetch(t *testing.T) {
	h := newFakeHost()
	h.http = func(ctx context.Context, req *HTTPRequest) (*HTTPResponse, error) {
		if req.Method != "GET" || req.URL != "https://example.com/" {
			return nil, ErrDenied
		}
		return &HTTPResponse{Status: 200, Body: []byte("<html>example</html>")}, nil
	}
	e, _ := newEngine(t, Config{})
	s := spec(t, "egress-fetch", 1, manifest.Limits{})
	s.Host = h
	f := e.Function(s)
	resp := invoke(t, f, get("/fetch", ""))
	if want := `{"url":"https://example.com/","status":200,"bytes":20}`; resp.Status != 200 || string(resp.Body) != want {
		t.Errorf("GET /fetch = %d %s, want %s", resp.Status, resp.Body, want)
	}
	h.http = func(context.Context, *HTTPRequest) (*HTTPResponse, error) { return nil, ErrNetwork }
	if resp := invoke(t, f, get("/fetch", "")); resp.Status != 502 || string(resp.Body) != `{"error":"network"}` {
		t.Errorf("GET /fetch, unreachable = %d %s", resp.Status, resp.Body)
	}
}

// The capability examples' manifests parse and grant what the code uses.
func TestExampleManifests(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(p manifest.Permissions) bool
	}{
		{"secret-hmac", func(p manifest.Permissions) bool { return slices.Equal(p.Secrets, []string{"SIGNING_KEY"}) }},
		{"kv-counter", func(p manifest.Permissions) bool { return len(p.KV) == 1 && p.KV["counters"] == "write" }},
		{"egress-fetch", func(p manifest.Permissions) bool { return slices.Equal(p.Egress, []string{"https://example.com"}) }},
	} {
		m, err := manifest.ParseFile(filepath.Join("../../examples", tc.name, "warden.yaml"))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if m.ABI != manifest.ABIReactor || !tc.check(m.Permissions) {
			t.Errorf("%s: abi %s, permissions %+v", tc.name, m.ABI, m.Permissions)
		}
	}
}

// docs/abi.md states the limits the code enforces.
func TestABIDocLimits(t *testing.T) {
	doc, err := os.ReadFile("../../docs/abi.md")
	if err != nil {
		t.Fatal(err)
	}
	size := func(n int) string {
		if n%(1<<20) == 0 {
			return fmt.Sprintf("%d MiB", n>>20)
		}
		return fmt.Sprintf("%d bytes", n)
	}
	for _, row := range []string{
		fmt.Sprintf("| secret name, bucket name | %s (`MaxNameLen`) | `-3` |", size(MaxNameLen)),
		fmt.Sprintf("| KV key, `prefix`, `after` | %s (`MaxKVKeyLen`) | `-3` |", size(MaxKVKeyLen)),
		fmt.Sprintf("| KV value (`kv_set`, `kv_get`) | %s (`MaxKVValueLen`) | `-4` |", size(MaxKVValueLen)),
		fmt.Sprintf("| keys per `kv_list` | %d (`MaxKVList`) | `limit` is lowered to %d |", MaxKVList, MaxKVList),
		fmt.Sprintf("| `http_request` encoding | %s (`MaxHTTPRequest`) | `-4` |", size(MaxHTTPRequest)),
		fmt.Sprintf("| `http_request` headers | %d fields, %d KiB of names and values | `-4` |", maxHTTPHeaders, maxHTTPHeaderBytes>>10),
		fmt.Sprintf("| `http_request` response body | %s (`MaxHTTPResponse`) | `-4` |", size(MaxHTTPResponse)),
		fmt.Sprintf("| pending result | %s (`MaxPendingResult`) | `-4` |", size(MaxPendingResult)),
	} {
		if !bytes.Contains(doc, []byte(row)) {
			t.Errorf("docs/abi.md lacks the limits row\n%s", row)
		}
	}
}

// TestCapBudgets: a guest cannot make the host record unbounded events: a
// long method is refused before the Host sees it, and an invocation gets
// MaxCapCalls capability calls.
func TestCapBudgets(t *testing.T) {
	h := newFakeHost()
	h.secrets["K"] = []byte("v")
	f, _, _ := capsFunction(t, h)
	long := strings.Repeat("A", maxMethodLen+1)
	if rets, _ := raw(t, f, qv("c", "http_request:pb,lb,po,oc"), encHTTP(long, "https://x.example/", nil, "")); !slices.Equal(rets, []int{int(codeInvalid)}) {
		t.Errorf("http_request with a %d-byte method = %v, want [%d]", len(long), rets, codeInvalid)
	}
	if h.count("http") != 0 {
		t.Errorf("the Host saw a request with a long method")
	}
	q := url.Values{"s0": {"K"}}
	for range MaxCapCalls + 2 {
		q.Add("c", "secret_get:p0,l0,po,oc")
	}
	rets, _ := raw(t, f, q, nil)
	if len(rets) != MaxCapCalls+2 || rets[MaxCapCalls-1] != 1 || rets[MaxCapCalls] != int(codeTooLarge) || rets[MaxCapCalls+1] != int(codeTooLarge) {
		t.Errorf("calls past the budget: rets[%d:] = %v, want 1 then %d", MaxCapCalls-1, rets[MaxCapCalls-1:], codeTooLarge)
	}
	if n := h.count("secret_get"); n != MaxCapCalls {
		t.Errorf("Host saw %d secret_get calls, want %d", n, MaxCapCalls)
	}
	// The budget is per invocation.
	if rets, _ := raw(t, f, qv("s0", "K", "c", "secret_get:p0,l0,po,oc"), nil); !slices.Equal(rets, []int{1}) {
		t.Errorf("next invocation = %v, want [1]", rets)
	}
}
