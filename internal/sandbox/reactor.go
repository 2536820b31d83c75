package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// Reactor wire format, version 1 (docs/abi.md is the normative text).
// Integers are little-endian u32; str and bytes are a u32 length then that
// many bytes.
//
//	request  = str method, str path, str query, str host, str scheme,
//	           str remote_addr, str request_id,
//	           u32 n, n × (str name, str value),   headers, one entry per value
//	           u32 n, n × (str key, str value),    vars
//	           bytes body
//	response = u32 status,
//	           u32 n, n × (str name, str value),   headers
//	           bytes body
const (
	keepBuf            = 1 << 20 // a request buffer larger than this is not reused for small requests
	maxRespHeaders     = 128
	maxRespHeaderBytes = 64 << 10
)

var reqBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

func appendStr(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// encodeRequest appends req in the reactor wire format.
func encodeRequest(b []byte, req *Request) []byte {
	b = appendStr(b, req.Method)
	b = appendStr(b, req.Path)
	b = appendStr(b, req.RawQuery)
	b = appendStr(b, req.Host)
	b = appendStr(b, req.Scheme)
	b = appendStr(b, req.RemoteAddr)
	b = appendStr(b, req.RequestID)
	n := 0
	for _, vs := range req.Header {
		n += len(vs)
	}
	b = appendU32(b, uint32(n))
	for k, vs := range req.Header {
		for _, v := range vs {
			b = appendStr(b, k)
			b = appendStr(b, v)
		}
	}
	b = appendU32(b, uint32(len(req.Vars)))
	for k, v := range req.Vars {
		b = appendStr(b, k)
		b = appendStr(b, v)
	}
	b = appendU32(b, uint32(len(req.Body)))
	return append(b, req.Body...)
}

var (
	errShort = errors.New("truncated response encoding")
)

type respReader struct {
	b   []byte
	err error
}

func (r *respReader) u32() uint32 {
	if len(r.b) < 4 {
		r.err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *respReader) bytes() []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

// decodeResponse parses a response from view (guest memory) and copies what
// it keeps. The body length is checked against maxBody before any copy.
func decodeResponse(view []byte, maxBody int64) (*Response, *Error) {
	bad := func(err error) (*Response, *Error) {
		return nil, newError(KindBadResponse, "function returned an invalid response", err)
	}
	r := &respReader{b: view}
	status := r.u32()
	n := r.u32()
	if r.err != nil {
		return bad(r.err)
	}
	if status < 100 || status > 599 {
		return bad(fmt.Errorf("status %d out of range", status))
	}
	if n > maxRespHeaders {
		return bad(fmt.Errorf("%d headers, at most %d allowed", n, maxRespHeaders))
	}
	// Validate first, noting where each name and value is; then copy the
	// whole header block once and cut the strings from it, so a response
	// costs a few allocations, not three per header.
	type span struct{ name, value [2]int }
	var spansBuf [16]span
	spans := spansBuf[:0]
	hdrStart := len(view) - len(r.b)
	hdrBytes := 0
	for range n {
		nameAt := len(view) - len(r.b) + 4
		name := r.bytes()
		valueAt := len(view) - len(r.b) + 4
		value := r.bytes()
		if r.err != nil {
			return bad(r.err)
		}
		hdrBytes += len(name) + len(value)
		if hdrBytes > maxRespHeaderBytes {
			return bad(fmt.Errorf("headers larger than %d bytes", maxRespHeaderBytes))
		}
		if !validHeaderName(name) || !validHeaderValue(value) {
			return bad(fmt.Errorf("invalid header %q", name))
		}
		spans = append(spans, span{[2]int{nameAt - hdrStart, nameAt - hdrStart + len(name)}, [2]int{valueAt - hdrStart, valueAt - hdrStart + len(value)}})
	}
	resp := &Response{Status: int(status), Header: make(http.Header, n)}
	if n > 0 {
		block := string(view[hdrStart : len(view)-len(r.b)])
		values := make([]string, len(spans))
		for i, sp := range spans {
			k := http.CanonicalHeaderKey(block[sp.name[0]:sp.name[1]]) // no copy when already canonical
			values[i] = block[sp.value[0]:sp.value[1]]
			if prev, ok := resp.Header[k]; ok {
				resp.Header[k] = append(prev, values[i])
			} else {
				resp.Header[k] = values[i : i+1 : i+1]
			}
		}
	}
	bodyLen := r.u32()
	if r.err != nil {
		return bad(r.err)
	}
	if int64(bodyLen) > maxBody {
		return nil, newError(KindResponseTooLarge, "function response too large",
			fmt.Errorf("%w: %d bytes, limit %d", errResponseTooLarge, bodyLen, maxBody))
	}
	if uint64(bodyLen) != uint64(len(r.b)) {
		return bad(fmt.Errorf("body length %d, %d bytes left", bodyLen, len(r.b)))
	}
	resp.Body = slices.Clone(r.b)
	if resp.Body == nil {
		resp.Body = []byte{}
	}
	return resp, nil
}

// validHeaderName reports whether b is an RFC 9110 token.
func validHeaderName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTokenChar(c) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validHeaderValue refuses control characters other than tab (no header
// injection through CR/LF, no NUL).
func validHeaderValue(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// newInstance instantiates a reactor module and runs _initialize.
func (f *Function) newInstance(ctx context.Context, m *module) (*instance, *Error) {
	out := &capture{}
	cfg := f.base.WithStdout(out).WithStderr(out).WithStartFunctions(exportInitialize)
	mod, err := m.rt.InstantiateModule(withMemoryAllocator(ctx), m.compiled, cfg)
	f.e.instantiations.Add(1)
	if err != nil {
		var size uint32
		if mod != nil {
			size = mod.Memory().Size()
			_ = mod.Close(context.Background())
		}
		ierr := f.failure(ctx, fmt.Errorf("instantiate: %w", err), out, size)
		f.logGuest(ctx, &Request{RequestID: callStateFrom(ctx).inv.RequestID}, out, ierr)
		return nil, ierr
	}
	inst := &instance{
		mod:    mod,
		mem:    mod.Memory(),
		alloc:  mod.ExportedFunction(exportAlloc),
		handle: mod.ExportedFunction(exportHandle),
		out:    out,
	}
	ver := mod.ExportedFunction(exportABIVersion)
	if inst.mem == nil || inst.alloc == nil || inst.handle == nil || ver == nil {
		_ = mod.Close(context.Background())
		return nil, newError(KindUnavailable, "function unavailable", errors.New("module lacks reactor exports"))
	}
	if err := ver.CallWithStack(ctx, inst.stack[:]); err != nil || inst.stack[0] != ReactorABIVersion {
		_ = mod.Close(context.Background())
		return nil, newError(KindUnavailable, "function unavailable",
			fmt.Errorf("unsupported warden ABI version %d (want %d): %v", inst.stack[0], ReactorABIVersion, err))
	}
	return inst, nil
}

func (f *Function) invokeReactor(ctx context.Context, m *module, req *Request) (*Response, error) {
	inst, ierr := f.getInstance(ctx, m)
	if ierr != nil {
		return nil, ierr
	}
	inst.out.reset()
	resp, ierr := f.callReactor(ctx, inst, req)
	inst.uses++
	// Log before the instance goes back: the next invocation resets out.
	f.logGuest(ctx, req, inst.out, ierr)
	f.putInstance(m, inst, ierr == nil)
	if ierr != nil {
		return nil, ierr
	}
	return resp, nil
}

func (f *Function) callReactor(ctx context.Context, inst *instance, req *Request) (*Response, *Error) {
	bp := reqBufPool.Get().(*[]byte)
	enc := encodeRequest((*bp)[:0], req)
	defer func() {
		if cap(enc) <= 1<<20 { // do not keep huge buffers alive
			*bp = enc[:0]
			reqBufPool.Put(bp)
		}
	}()
	if uint64(len(enc)) > 1<<31 {
		return nil, newError(KindBadResponse, "request too large", errors.New("encoded request exceeds 2 GiB"))
	}
	st := inst.stack[:]
	// The buffer warden_alloc(n) returned stays valid for requests of up to
	// n bytes until the next warden_alloc call (docs/abi.md), so the
	// common case costs one call into the guest, not two. A buffer over
	// keepBuf is replaced when a small request comes, so the guest can
	// shrink it.
	if n := uint32(len(enc)); n > inst.bufCap || inst.bufCap > keepBuf && n <= keepBuf {
		st[0] = uint64(n)
		if err := inst.alloc.CallWithStack(ctx, st); err != nil {
			return nil, f.failure(ctx, fmt.Errorf("%s: %w", exportAlloc, err), inst.out, inst.mem.Size())
		}
		inst.bufPtr, inst.bufCap = uint32(st[0]), n
	}
	ptr := inst.bufPtr
	if !inst.mem.Write(ptr, enc) {
		return nil, newError(KindBadResponse, "function returned an invalid response",
			fmt.Errorf("%s returned out-of-range buffer %d+%d", exportAlloc, ptr, len(enc)))
	}
	st[0], st[1] = uint64(ptr), uint64(len(enc))
	if err := inst.handle.CallWithStack(ctx, st); err != nil {
		return nil, f.failure(ctx, fmt.Errorf("%s: %w", exportHandle, err), inst.out, inst.mem.Size())
	}
	rptr, rlen := uint32(st[0]>>32), uint32(st[0])
	view, ok := inst.mem.Read(rptr, rlen)
	if !ok {
		return nil, newError(KindBadResponse, "function returned an invalid response",
			fmt.Errorf("response %d+%d outside memory", rptr, rlen))
	}
	return decodeResponse(view, f.lim.ResponseBody)
}
