package warden

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// The reactor wire format, version 1 (docs/abi.md). Integers are
// little-endian u32; str and bytes are a u32 length and that many bytes.
//
//	request  = str method, str path, str query, str host, str scheme,
//	           str remote_addr, str request_id,
//	           u32 n, n × (str name, str value),   headers, one entry per value
//	           u32 n, n × (str key, str value),    vars
//	           bytes body
//	response = u32 status, u32 n, n × (str name, str value), bytes body

var errTruncated = errors.New("warden: truncated request encoding")

// reader decodes from one string: every decoded string is a substring of
// it, so a request costs one copy of its bytes, not one allocation per field
// (allocation is the expensive part of Go compiled to wasm).
type reader struct {
	s   string
	err error
}

func (r *reader) u32() uint32 {
	s := r.s
	if len(s) < 4 {
		r.err = errTruncated
		return 0
	}
	r.s = s[4:]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// str is written to be inlined: every call that Go compiled to wasm makes
// enters a loop, and so a fuel check in the sandbox.
func (r *reader) str() string {
	s := r.s
	if len(s) < 4 {
		r.err = errTruncated
		return ""
	}
	n := uint(uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24)
	if n > uint(len(s)-4) {
		r.err = errTruncated
		r.s = ""
		return ""
	}
	r.s = s[4+n:]
	return s[4 : 4+n]
}

// skip passes over n name/value pairs and reports whether they were there.
func (r *reader) skip(n uint32) {
	for i := uint32(0); i < 2*n && r.err == nil; i++ {
		r.str()
	}
}

// fields decodes n name/value pairs into out. Names arrive canonical from
// the host (docs/abi.md), so they are not rewritten.
func (r *reader) fields(out []Field) {
	for i := range out {
		out[i].Name = r.str()
		out[i].Value = r.str()
	}
}

// requestBlock lets a typical request (a few headers and vars) cost one
// allocation besides its bytes: the Request and its fields together.
type requestBlock struct {
	req    Request
	fields [8]Field
}

// decodeRequest parses a request; the result shares no memory with b.
func decodeRequest(b []byte) (*Request, error) {
	r := reader{s: string(b)}
	var scalars [7]string // method, path, query, host, scheme, remote_addr, request_id
	for i := range scalars {
		scalars[i] = r.str()
	}
	// Count headers and vars first, so that one allocation holds them.
	rest := r
	nh := rest.u32()
	rest.skip(nh)
	nv := rest.u32()
	if r.err != nil || rest.err != nil || uint64(nh)+uint64(nv) > uint64(len(b))/8 {
		return nil, errTruncated
	}
	var req *Request
	var fields []Field
	if n := nh + nv; n <= uint32(len(requestBlock{}.fields)) {
		blk := &requestBlock{}
		req, fields = &blk.req, blk.fields[:n:n]
	} else {
		req, fields = &Request{}, make([]Field, n)
	}
	req.Method, req.Path, req.Query, req.Host = scalars[0], scalars[1], scalars[2], scalars[3]
	req.Scheme, req.RemoteAddr, req.RequestID = scalars[4], scalars[5], scalars[6]
	r.u32()
	if nh > 0 {
		req.Header = Header(fields[:nh:nh])
		r.fields(req.Header)
	}
	r.u32()
	if nv > 0 {
		req.Vars = Vars(fields[nh:])
		r.fields(req.Vars)
	}
	body := r.str()
	if r.err != nil {
		return nil, r.err
	}
	if len(r.s) != 0 {
		return nil, errors.New("warden: trailing bytes after request")
	}
	if len(body) > 0 {
		req.Body = []byte(body)
	}
	return req, nil
}

func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

func appendStr(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// appendResponse appends resp in the wire format. A nil resp or a status
// outside 100..599 (other than 0, meaning 200) becomes a 500.
func appendResponse(b []byte, resp *Response) []byte {
	if resp == nil {
		return appendError(b, 500, "handler returned no response")
	}
	status := resp.Status
	if status == 0 {
		status = 200
	}
	if status < 100 || status > 599 {
		return appendError(b, 500, "handler returned invalid status "+strconv.Itoa(status))
	}
	b = appendU32(b, uint32(status))
	b = appendU32(b, uint32(len(resp.Header)))
	for _, f := range resp.Header {
		b = appendStr(b, f.Name)
		b = appendStr(b, f.Value)
	}
	b = appendU32(b, uint32(len(resp.Body)))
	return append(b, resp.Body...)
}

func appendError(b []byte, status int, msg string) []byte {
	b = appendU32(b, uint32(status))
	b = appendU32(b, 1)
	b = appendStr(b, "Content-Type")
	b = appendStr(b, "text/plain; charset=utf-8")
	return appendStr(b, msg)
}

// serve decodes a request, runs the handler and appends the encoded
// response to out.
func serve(in, out []byte) []byte {
	req, err := decodeRequest(in)
	if err != nil {
		return appendError(out, 400, err.Error())
	}
	if handler == nil {
		return appendError(out, 500, "no handler registered (call warden.Handle from init)")
	}
	return appendResponse(out, handler(req))
}
