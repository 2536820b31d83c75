//go:build wasip1

// Command caps is a reactor guest for the capability tests of the warden
// host module.
//
//   - /raw calls host functions with arguments the test chooses, hostile
//     ones included: c=fn:arg,arg,… (repeatable, run in order). An arg is a
//     number (decimal or 0x hex, negative for ttl_ms) or a token: pN/lN
//     (pointer/length of query string sN, N in 0..3), pb/lb (request body),
//     po/oc (the out buffer, osz bytes, default 4096), pz/lz (a zeroed
//     buffer of zsz bytes). It answers X-Ret: the results, comma-separated,
//     and as body the out buffer's first ret bytes after the last call when
//     that call returns data that fit.
//   - /sdk/... goes through the SDK (warden.Secret, KV…, Fetch, and
//     wardenhttp.Transport under /sdk/client), answering X-Err with the
//     error's name.
//   - /bench/none, /bench/secret[100] (warden.Secret), /bench/append100
//     (warden.AppendSecret into a reused buffer) and /bench/raw100
//     (secret_get without the SDK) are for benchmarks.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	warden "warden/sdk/go"
	"warden/sdk/go/wardenhttp"
)

//go:wasmimport warden secret_get
func rawSecretGet(namePtr, nameLen, outPtr, outCap uint32) int32

//go:wasmimport warden kv_get
func rawKVGet(bp, bl, kp, kl, op, oc uint32) int32

//go:wasmimport warden kv_set
func rawKVSet(bp, bl, kp, kl, vp, vl uint32, ttl int64) int32

//go:wasmimport warden kv_delete
func rawKVDelete(bp, bl, kp, kl uint32) int32

//go:wasmimport warden kv_list
func rawKVList(bp, bl, pp, pl, ap, al, limit, op, oc uint32) int32

//go:wasmimport warden http_request
func rawHTTPRequest(rp, rl, op, oc uint32) int32

//go:wasmimport warden result_take
func rawResultTake(op, oc uint32) int32

func init() { warden.Handle(handle) }

func main() {}

func handle(r *warden.Request) *warden.Response {
	switch {
	case r.Path == "/raw":
		return raw(r)
	case strings.HasPrefix(r.Path, "/sdk/"):
		return sdk(r)
	case r.Path == "/bench/none":
		return ok
	case r.Path == "/bench/secret":
		if _, err := warden.Secret("K"); err != nil {
			return &warden.Response{Status: 500}
		}
		return ok
	case r.Path == "/bench/raw100":
		name := "K"
		for range 100 {
			if rawSecretGet(uint32(uintptr(unsafe.Pointer(unsafe.StringData(name)))), 1, ptr(benchBuf[:]), uint32(len(benchBuf))) < 0 {
				return &warden.Response{Status: 500}
			}
		}
		return ok
	case r.Path == "/bench/append100":
		for range 100 {
			v, err := warden.AppendSecret(appendBuf[:0], "K")
			if err != nil {
				return &warden.Response{Status: 500}
			}
			clear(v)
			appendBuf = v
		}
		return ok
	case r.Path == "/bench/secret100":
		for range 100 {
			if _, err := warden.Secret("K"); err != nil {
				return &warden.Response{Status: 500}
			}
		}
		return ok
	}
	return &warden.Response{Status: 404}
}

var (
	ok        = &warden.Response{Body: []byte("ok")}
	benchBuf  [64]byte
	appendBuf []byte
)

// leaked is a secret value kept between invocations by /sdk/leak.
var leaked []byte

func ptr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func raw(r *warden.Request) *warden.Response {
	q, err := url.ParseQuery(r.Query)
	if err != nil {
		return &warden.Response{Status: 400, Body: []byte(err.Error())}
	}
	var strs [4][]byte
	for i := range strs {
		strs[i] = []byte(q.Get("s" + strconv.Itoa(i)))
	}
	osz, zsz := 4096, 0
	if v := q.Get("osz"); v != "" {
		osz, _ = strconv.Atoi(v)
	}
	if v := q.Get("zsz"); v != "" {
		zsz, _ = strconv.Atoi(v)
	}
	out, zero := make([]byte, osz), make([]byte, zsz)
	arg := func(tok string) uint64 {
		switch {
		case tok == "pb":
			return uint64(ptr(r.Body))
		case tok == "lb":
			return uint64(len(r.Body))
		case tok == "po":
			return uint64(ptr(out))
		case tok == "oc":
			return uint64(len(out))
		case tok == "pz":
			return uint64(ptr(zero))
		case tok == "lz":
			return uint64(len(zero))
		case len(tok) == 2 && (tok[0] == 'p' || tok[0] == 'l') && '0' <= tok[1] && tok[1] <= '3':
			s := strs[tok[1]-'0']
			if tok[0] == 'p' {
				return uint64(ptr(s))
			}
			return uint64(len(s))
		}
		if n, err := strconv.ParseInt(tok, 0, 64); err == nil {
			return uint64(n)
		}
		n, _ := strconv.ParseUint(tok, 0, 64)
		return n
	}
	var rets []string
	var body []byte
	for _, call := range q["c"] {
		fn, list, _ := strings.Cut(call, ":")
		var a [9]uint64
		var n int
		for tok := range strings.SplitSeq(list, ",") {
			if tok != "" && n < len(a) {
				a[n] = arg(tok)
				n++
			}
		}
		u := func(i int) uint32 { return uint32(a[i]) }
		var ret int32
		capArg := -1 // the out_cap argument of a data call
		switch fn {
		case "secret_get":
			ret, capArg = rawSecretGet(u(0), u(1), u(2), u(3)), 3
		case "kv_get":
			ret, capArg = rawKVGet(u(0), u(1), u(2), u(3), u(4), u(5)), 5
		case "kv_set":
			ret = rawKVSet(u(0), u(1), u(2), u(3), u(4), u(5), int64(a[6]))
		case "kv_delete":
			ret = rawKVDelete(u(0), u(1), u(2), u(3))
		case "kv_list":
			ret, capArg = rawKVList(u(0), u(1), u(2), u(3), u(4), u(5), u(6), u(7), u(8)), 8
		case "http_request":
			ret, capArg = rawHTTPRequest(u(0), u(1), u(2), u(3)), 3
		case "result_take":
			ret, capArg = rawResultTake(u(0), u(1)), 1
		default:
			return &warden.Response{Status: 400, Body: []byte("unknown function " + fn)}
		}
		rets = append(rets, strconv.Itoa(int(ret)))
		body = nil
		if capArg >= 0 && ret >= 0 && uint64(ret) <= uint64(uint32(a[capArg])) && int(ret) <= len(out) {
			body = slices.Clone(out[:ret])
		}
	}
	runtime.KeepAlive(strs)
	runtime.KeepAlive(out)
	runtime.KeepAlive(zero)
	resp := &warden.Response{Body: body}
	resp.Header.Set("X-Ret", strings.Join(rets, ","))
	return resp
}

var sentinels = []struct {
	err  error
	name string
}{
	{warden.ErrDenied, "denied"}, {warden.ErrNotFound, "not_found"}, {warden.ErrInvalid, "invalid"},
	{warden.ErrTooLarge, "too_large"}, {warden.ErrUnavailable, "unavailable"}, {warden.ErrTimeout, "timeout"},
	{warden.ErrNetwork, "network"},
}

func errName(err error) string {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "other: " + err.Error()
}

func sdk(r *warden.Request) *warden.Response {
	q, _ := url.ParseQuery(r.Query)
	resp := &warden.Response{}
	var err error
	switch r.Path {
	case "/sdk/secret":
		resp.Body, err = warden.Secret(q.Get("name"))
		if err == nil && q.Get("digest") != "" {
			// Proof of the value that the answer inspection lets through.
			sum := sha256.Sum256(resp.Body)
			resp.Body = []byte(hex.EncodeToString(sum[:]))
		}
	case "/sdk/leak":
		// A careless function: it logs a secret it read (and keeps it
		// for a later invocation, /sdk/leak-cached).
		if leaked, err = warden.Secret(q.Get("name")); err == nil {
			warden.Log(warden.LevelInfo, "using token "+string(leaked))
			os.Stderr.WriteString("debug: token=" + string(leaked) + "\n")
		}
	case "/sdk/secret-encoded":
		// A leaking function: the secret goes out encoded, after prefix
		// bytes that shift its base64 alignment (enc: plain, base64,
		// base64url, rawurl, hex, HEX).
		var v []byte
		if v, err = warden.Secret(q.Get("name")); err == nil {
			n, _ := strconv.Atoi(q.Get("prefix"))
			v = append(bytes.Repeat([]byte{0xfe}, n), v...)
			var out string
			switch q.Get("enc") {
			case "base64":
				out = base64.StdEncoding.EncodeToString(v)
			case "base64url":
				out = base64.URLEncoding.EncodeToString(v)
			case "rawurl":
				out = base64.RawURLEncoding.EncodeToString(v)
			case "hex":
				out = hex.EncodeToString(v)
			case "HEX":
				out = strings.ToUpper(hex.EncodeToString(v))
			default:
				out = string(v[n:])
			}
			resp.Header.Set("Content-Type", q.Get("type"))
			resp.Body = []byte(`{"data":"` + out + `"}`)
		}
	case "/sdk/secret-header":
		// A careless function: the value goes out in a header.
		var v []byte
		if v, err = warden.Secret(q.Get("name")); err == nil {
			resp.Header.Set("X-Debug-Token", string(v))
		}
	case "/sdk/leak-cached":
		os.Stdout.WriteString("cached token " + string(leaked) + "\n")
	case "/sdk/appendsecret":
		prefix := []byte(q.Get("prefix"))
		if n, _ := strconv.Atoi(q.Get("cap")); n > len(prefix) {
			prefix = append(make([]byte, 0, n), prefix...)
		}
		resp.Body, err = warden.AppendSecret(prefix, q.Get("name"))
	case "/sdk/kv/get":
		resp.Body, err = warden.KVGet(q.Get("b"), q.Get("k"))
	case "/sdk/kv/set":
		var ttl time.Duration
		if v := q.Get("ttl"); v != "" {
			ttl, _ = time.ParseDuration(v)
		}
		err = warden.KVSet(q.Get("b"), q.Get("k"), r.Body, ttl)
	case "/sdk/kv/delete":
		err = warden.KVDelete(q.Get("b"), q.Get("k"))
	case "/sdk/kv/list":
		limit, _ := strconv.Atoi(q.Get("limit"))
		var keys []string
		keys, err = warden.KVList(q.Get("b"), q.Get("prefix"), q.Get("after"), limit)
		resp.Body = []byte(strings.Join(keys, "\n"))
	case "/sdk/fetch":
		var hdr warden.Header
		for _, h := range q["h"] {
			k, v, _ := strings.Cut(h, ":")
			hdr = append(hdr, warden.Field{Name: k, Value: v})
		}
		var got *warden.Response
		if got, err = warden.Fetch(q.Get("m"), q.Get("u"), hdr, r.Body); err == nil {
			resp.Body = got.Body
			resp.Header.Set("X-Status", strconv.Itoa(got.Status))
			var hs []string
			for _, f := range got.Header {
				hs = append(hs, f.Name+"="+f.Value)
			}
			resp.Header.Set("X-Hdr", strings.Join(hs, ";"))
		}
	case "/sdk/client":
		client := &http.Client{Transport: wardenhttp.Transport{}}
		req, _ := http.NewRequest(q.Get("m"), q.Get("u"), strings.NewReader(string(r.Body)))
		for _, h := range q["h"] {
			k, v, _ := strings.Cut(h, ":")
			req.Header.Add(k, v)
		}
		var got *http.Response
		if got, err = client.Do(req); err == nil {
			resp.Body, _ = io.ReadAll(got.Body)
			got.Body.Close()
			resp.Header.Set("X-Status", got.Status)
			var hs []string
			for _, k := range slices.Sorted(maps.Keys(got.Header)) {
				hs = append(hs, k+"="+strings.Join(got.Header[k], ","))
			}
			resp.Header.Set("X-Hdr", strings.Join(hs, ";"))
		}
	default:
		return &warden.Response{Status: 404}
	}
	if err != nil {
		resp.Body = nil
		resp.Header.Set("X-Err", errName(err))
	}
	return resp
}
