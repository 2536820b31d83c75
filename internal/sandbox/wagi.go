package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// maxCGIHeader bounds the CGI header block a wagi guest writes before its
// body.
const maxCGIHeader = 64 << 10

// stdout collects a wagi guest's stdout up to limit bytes. The write that
// would cross the limit cancels the invocation (the guest stops at its next
// termination check) and fails, so an oversized response is never buffered.
type stdout struct {
	buf    []byte
	limit  int
	over   bool
	cancel context.CancelCauseFunc
}

var errStdoutFull = errors.New("stdout limit reached")

func (w *stdout) Write(p []byte) (int, error) {
	if w.over {
		return 0, errStdoutFull
	}
	if len(w.buf)+len(p) > w.limit {
		w.over = true
		w.cancel(errResponseTooLarge)
		return 0, errStdoutFull
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (f *Function) invokeWagi(ctx context.Context, m *module, req *Request) (*Response, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := &stdout{limit: int(min(f.lim.ResponseBody+maxCGIHeader, 1<<31)), cancel: cancel}
	errOut := &capture{}
	cfg := f.base.
		WithStdin(bytes.NewReader(req.Body)).
		WithStdout(out).
		WithStderr(errOut).
		WithStartFunctions(exportStart)
	env := cgiEnv(req, f.env)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		cfg = cfg.WithEnv(k, env[k])
	}

	f.e.busy.Add(1)
	mod, err := m.rt.InstantiateModule(withMemoryAllocator(ctx), m.compiled, cfg) // runs _start
	f.e.busy.Add(-1)
	f.e.instantiations.Add(1)
	var memSize uint32
	if mod != nil {
		memSize = mod.Memory().Size()
		_ = mod.Close(context.Background())
	}
	var ierr *Error
	var resp *Response
	if err != nil || out.over {
		if err == nil {
			err = errResponseTooLarge
		}
		ierr = f.failure(ctx, err, errOut, memSize)
	} else {
		resp, ierr = parseCGI(out.buf, f.lim.ResponseBody)
	}
	f.logGuest(ctx, req, errOut, ierr)
	if ierr != nil {
		return nil, ierr
	}
	return resp, nil
}

// cgiEnv returns the guest environment: base (the function's env, from
// guestEnv), overridden by the CGI variables (RFC 3875 plus the WAGI
// extensions).
func cgiEnv(req *Request, base map[string]string) map[string]string {
	env := make(map[string]string, len(base)+len(req.Header)+24)
	maps.Copy(env, base)
	set := func(k, v string) {
		if strings.IndexByte(v, 0) >= 0 {
			v = strings.ReplaceAll(v, "\x00", "")
		}
		env[k] = v
	}
	scheme := req.Scheme
	if scheme == "" {
		scheme = "http"
	}
	host, port := req.Host, ""
	if h, p, err := net.SplitHostPort(req.Host); err == nil {
		host, port = h, p
	}
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	remote, remotePort := req.RemoteAddr, ""
	if h, p, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		remote, remotePort = h, p
	}
	uri := req.Path
	if req.RawQuery != "" {
		uri += "?" + req.RawQuery
	}
	set("GATEWAY_INTERFACE", "CGI/1.1")
	set("SERVER_SOFTWARE", "warden")
	set("SERVER_PROTOCOL", "HTTP/1.1")
	set("SERVER_NAME", host)
	set("SERVER_PORT", port)
	set("REQUEST_METHOD", req.Method)
	set("SCRIPT_NAME", "")
	set("PATH_INFO", req.Path)
	set("PATH_TRANSLATED", req.Path)
	set("QUERY_STRING", req.RawQuery)
	set("REQUEST_URI", uri)
	set("REMOTE_ADDR", remote)
	set("REMOTE_HOST", remote)
	if remotePort != "" {
		set("REMOTE_PORT", remotePort)
	}
	set("CONTENT_LENGTH", strconv.Itoa(len(req.Body)))
	set("CONTENT_TYPE", req.Header.Get("Content-Type"))
	if scheme == "https" {
		set("HTTPS", "on")
	}
	set("X_FULL_URL", scheme+"://"+req.Host+uri)
	set("X_RAW_PATH_INFO", req.Path)
	set("X_REQUEST_ID", req.RequestID)
	if r, ok := req.Vars["route"]; ok {
		set("X_MATCHED_ROUTE", r)
	}
	for k, v := range req.Vars {
		set("X_WARDEN_"+envName(k), v)
	}
	for k, vs := range req.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Type", "Content-Length",
			"Proxy",                                // httpoxy: HTTP_PROXY must never reach a guest
			"Authorization", "Proxy-Authorization": // RFC 3875 §4.1.18
			continue
		}
		set("HTTP_"+envName(k), strings.Join(vs, ", "))
	}
	return env
}

// envName upper-cases s and maps every byte outside [A-Z0-9] to '_'.
func envName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}

// parseCGI splits a CGI response into headers and body. The header block
// ends at the first empty line (LF or CRLF line ends); it must hold at
// least one "Name: value" line. "Status: 201 Created" sets the status; a
// Location without Status means 302.
func parseCGI(out []byte, maxBody int64) (*Response, *Error) {
	bad := func(format string, args ...any) (*Response, *Error) {
		return nil, newError(KindBadResponse, "function returned an invalid response", fmt.Errorf(format, args...))
	}
	resp := &Response{Status: http.StatusOK, Header: make(http.Header)}
	rest := out
	statusSet, lines := false, 0
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 || len(out)-len(rest)+i > maxCGIHeader {
			return bad("no CGI header block (want headers, an empty line, then the body)")
		}
		line := rest[:i]
		rest = rest[i+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		lines++
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !validHeaderName(name) {
			return bad("malformed CGI header line %q", line)
		}
		value = bytes.TrimSpace(value)
		if !validHeaderValue(value) {
			return bad("invalid CGI header value for %q", name)
		}
		key := http.CanonicalHeaderKey(string(name))
		if key == "Status" {
			code, _, _ := strings.Cut(string(value), " ")
			n, err := strconv.Atoi(code)
			if err != nil || n < 100 || n > 599 {
				return bad("invalid CGI Status %q", value)
			}
			resp.Status, statusSet = n, true
			continue
		}
		resp.Header.Add(key, string(value))
	}
	if lines == 0 {
		return bad("empty CGI header block")
	}
	if !statusSet && resp.Header.Get("Location") != "" {
		resp.Status = http.StatusFound
	}
	if int64(len(rest)) > maxBody {
		return nil, newError(KindResponseTooLarge, "function response too large",
			fmt.Errorf("%w: %d bytes, limit %d", errResponseTooLarge, len(rest), maxBody))
	}
	resp.Body = rest
	return resp, nil
}
