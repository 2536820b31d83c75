package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// The capability functions of the warden host module (docs/abi.md, "The
// warden host module"): secret_get, kv_get, kv_set, kv_delete, kv_list,
// http_request and result_take.
//
// Each one decodes its arguments, checks every ptr/len against guest memory
// and the limits in capability.go (a failure is codeInvalid and Host is not
// called), calls the invocation's Host, and encodes the answer. A data
// result is copied to the guest's buffer when it fits; otherwise it stays in
// callState.pending until result_take copies it or the next capability call
// replaces it, so a call with side effects (an outbound request) is never
// repeated to learn the size of its answer.

// Result codes of the capability functions. A call returns >= 0 on success
// (for a call that returns data: the full length of the result).
const (
	codeDenied      int32 = -1 // ErrDenied, or no Host
	codeNotFound    int32 = -2 // ErrNotFound
	codeInvalid     int32 = -3 // ErrInvalid, an out-of-range ptr/len, an over-long name, a bad encoding
	codeTooLarge    int32 = -4 // ErrTooLarge, or an argument or result over its limit
	codeUnavailable int32 = -5 // ErrUnavailable and every other Host error (fail closed)
	codeTimeout     int32 = -6 // ErrTimeout, or the invocation's deadline
	codeNetwork     int32 = -7 // ErrNetwork
)

var codeNames = [...]string{"ok", "denied", "not_found", "invalid", "too_large", "unavailable", "timeout", "network"}

// codeName returns the snake_case name of a result code ("ok" for >= 0).
func codeName(code int32) string {
	if code >= 0 {
		return codeNames[0]
	}
	if -int(code) < len(codeNames) {
		return codeNames[-code]
	}
	return fmt.Sprintf("code(%d)", code)
}

// errCode maps an error returned by Host to its result code. The sentinel
// errors map to their own codes; a call cut short by the invocation's
// deadline (or its context ending) is a timeout; anything else is
// unavailable, so an unexpected error never looks like success or like a
// more specific answer.
func errCode(ctx context.Context, err error) int32 {
	switch {
	case errors.Is(err, ErrDenied):
		return codeDenied
	case errors.Is(err, ErrNotFound):
		return codeNotFound
	case errors.Is(err, ErrInvalid):
		return codeInvalid
	case errors.Is(err, ErrTooLarge):
		return codeTooLarge
	case errors.Is(err, ErrUnavailable):
		return codeUnavailable
	case errors.Is(err, ErrNetwork):
		return codeNetwork
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded), ctx.Err() != nil:
		return codeTimeout
	}
	return codeUnavailable
}

// Limits of http_request beyond those in capability.go.
const (
	maxHTTPHeaders     = 128      // header fields in one outbound request
	maxHTTPHeaderBytes = 64 << 10 // names plus values of one outbound request
	// maxTTLMillis is the largest kv_set ttl_ms: MaxKVTTL (an expiry time
	// far beyond it would overflow the store's timestamps).
	maxTTLMillis = int64(MaxKVTTL / time.Millisecond)
)

// capCall is one capability call in progress. It records the first failure
// (code) so argument checks can be chained; once code is set, later checks
// do nothing and Host is not called.
type capCall struct {
	op     string
	ctx    context.Context
	cs     *callState
	mem    api.Memory
	code   int32
	secret string // secret_get's name, for the debug log of a failure
}

// beginCap starts a capability call: it drops any pending result (the
// previous call's answer is replaced by this call's) and denies the call
// when the invocation has no Host.
func beginCap(ctx context.Context, mod api.Module, op string) capCall {
	c := capCall{op: op, ctx: ctx, cs: callStateFrom(ctx)}
	if c.cs == nil {
		c.code = codeDenied
		return c
	}
	c.cs.dropPending()
	if c.cs.host == nil {
		c.code = codeDenied
		return c
	}
	// Each capability call may cost the host a store access and an event:
	// an invocation gets a bounded number of them.
	if c.cs.capCalls++; c.cs.capCalls > MaxCapCalls {
		c.code = codeTooLarge
		return c
	}
	if c.mem = mod.Memory(); c.mem == nil {
		c.code = codeInvalid
	}
	return c
}

func (cs *callState) dropPending() { cs.pending, cs.hasPending = nil, false }

// view returns guest memory [ptr, ptr+n), or nil after recording
// codeInvalid when any of it is outside memory (including ptr+n wrapping
// around 2^32). The view aliases guest memory: it is valid only during this
// host call, and whatever is kept is copied.
func (c *capCall) view(ptr, n uint64) []byte {
	if c.code != 0 {
		return nil
	}
	b, ok := c.mem.Read(api.DecodeU32(ptr), api.DecodeU32(n))
	if !ok {
		c.code = codeInvalid
		return nil
	}
	return b
}

// str copies a string argument of at most limit bytes; a longer one is
// codeInvalid.
func (c *capCall) str(ptr, n uint64, limit uint32) string {
	if c.code == 0 && api.DecodeU32(n) > limit {
		c.code = codeInvalid
	}
	return string(c.view(ptr, n))
}

// out checks the guest's result buffer [ptr, ptr+n).
func (c *capCall) out(ptr, n uint64) (uint32, uint32) {
	c.view(ptr, n)
	return api.DecodeU32(ptr), api.DecodeU32(n)
}

// ready reports whether Host may be called: the arguments are valid and the
// invocation still has time (no side effect is started after its deadline).
func (c *capCall) ready() bool {
	if c.code == 0 && c.ctx.Err() != nil {
		c.code = codeTimeout
	}
	return c.code == 0
}

// deliver copies res into the guest's buffer when it fits, and otherwise
// keeps it pending for result_take. It returns the full length.
func (c *capCall) deliver(res []byte, outPtr, outCap uint32) int32 {
	n := len(res)
	if n > MaxPendingResult {
		return codeTooLarge
	}
	if uint64(n) <= uint64(outCap) {
		if !c.mem.Write(outPtr, res) { // checked by out; memory never shrinks
			return codeInvalid
		}
		return int32(n)
	}
	c.cs.pending, c.cs.hasPending = res, true
	return int32(n)
}

// finish stores the call's result. A failure is logged at debug level with
// the operation and code, never an argument value (a secret's name is not
// a value and is included).
func (c *capCall) finish(stack []uint64, code int32) {
	stack[0] = api.EncodeI32(code)
	if code >= 0 || c.cs == nil || c.cs.logger == nil || !c.cs.logger.Enabled(c.ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("namespace", c.cs.inv.Namespace),
		slog.String("function", c.cs.inv.Name),
		slog.Int("version", c.cs.inv.Version),
		slog.String("request_id", c.cs.inv.RequestID),
		slog.String("op", c.op),
		slog.String("result", codeName(code)),
	}
	if c.secret != "" {
		attrs = append(attrs, slog.String("secret", validUTF8([]byte(c.secret))))
	}
	c.cs.logger.LogAttrs(c.ctx, slog.LevelDebug, "capability call failed", attrs...)
}

// hostSecretGet implements secret_get(name_ptr, name_len, out_ptr, out_cap) -> i32.
func hostSecretGet(ctx context.Context, mod api.Module, stack []uint64) {
	c := beginCap(ctx, mod, "secret_get")
	c.finish(stack, c.secretGet(stack))
}

func (c *capCall) secretGet(stack []uint64) int32 {
	name := c.str(stack[0], stack[1], MaxNameLen)
	outPtr, outCap := c.out(stack[2], stack[3])
	if !c.ready() {
		return c.code
	}
	c.secret = name
	val, err := c.cs.host.SecretGet(c.ctx, c.cs.inv, name)
	if err != nil {
		return errCode(c.ctx, err)
	}
	c.cs.seen.add(val)
	return c.deliver(val, outPtr, outCap)
}

// hostKVGet implements kv_get(bucket_ptr, bucket_len, key_ptr, key_len, out_ptr, out_cap) -> i32.
func hostKVGet(ctx context.Context, mod api.Module, stack []uint64) {
	c := beginCap(ctx, mod, "kv_get")
	c.finish(stack, c.kvGet(stack))
}

func (c *capCall) kvGet(stack []uint64) int32 {
	bucket := c.str(stack[0], stack[1], MaxNameLen)
	key := c.str(stack[2], stack[3], MaxKVKeyLen)
	outPtr, outCap := c.out(stack[4], stack[5])
	if !c.ready() {
		return c.code
	}
	val, err := c.cs.host.KVGet(c.ctx, c.cs.inv, bucket, key)
	if err != nil {
		return errCode(c.ctx, err)
	}
	if len(val) > MaxKVValueLen {
		return codeTooLarge
	}
	return c.deliver(val, outPtr, outCap)
}

// hostKVSet implements kv_set(bucket_ptr, bucket_len, key_ptr, key_len, val_ptr, val_len, ttl_ms i64) -> i32.
func hostKVSet(ctx context.Context, mod api.Module, stack []uint64) {
	c := beginCap(ctx, mod, "kv_set")
	c.finish(stack, c.kvSet(stack))
}

func (c *capCall) kvSet(stack []uint64) int32 {
	bucket := c.str(stack[0], stack[1], MaxNameLen)
	key := c.str(stack[2], stack[3], MaxKVKeyLen)
	v := c.view(stack[4], stack[5])
	if c.code == 0 && len(v) > MaxKVValueLen {
		c.code = codeTooLarge
	}
	ttl := int64(stack[6]) // an i64 parameter arrives as its bits
	if c.code == 0 && (ttl < 0 || ttl > maxTTLMillis) {
		c.code = codeInvalid
	}
	if !c.ready() {
		return c.code
	}
	value := bytes.Clone(v) // Host may keep it; v is guest memory
	if err := c.cs.host.KVSet(c.ctx, c.cs.inv, bucket, key, value, time.Duration(ttl)*time.Millisecond); err != nil {
		return errCode(c.ctx, err)
	}
	return 0
}

// hostKVDelete implements kv_delete(bucket_ptr, bucket_len, key_ptr, key_len) -> i32.
func hostKVDelete(ctx context.Context, mod api.Module, stack []uint64) {
	c := beginCap(ctx, mod, "kv_delete")
	c.finish(stack, c.kvDelete(stack))
}

func (c *capCall) kvDelete(stack []uint64) int32 {
	bucket := c.str(stack[0], stack[1], MaxNameLen)
	key := c.str(stack[2], stack[3], MaxKVKeyLen)
	if !c.ready() {
		return c.code
	}
	if err := c.cs.host.KVDelete(c.ctx, c.cs.inv, bucket, key); err != nil {
		return errCode(c.ctx, err)
	}
	return 0
}

// hostKVList implements kv_list(bucket_ptr, bucket_len, prefix_ptr,
// prefix_len, after_ptr, after_len, limit, out_ptr, out_cap) -> i32.
func hostKVList(ctx context.Context, mod api.Module, stack []uint64) {
	c := beginCap(ctx, mod, "kv_list")
	c.finish(stack, c.kvList(stack))
}

func (c *capCall) kvList(stack []uint64) int32 {
	bucket := c.str(stack[0], stack[1], MaxNameLen)
	prefix := c.str(stack[2], stack[3], MaxKVKeyLen)
	after := c.str(stack[4], stack[5], MaxKVKeyLen)
	limit := int(api.DecodeU32(stack[6]))
	if limit == 0 || limit > MaxKVList {
		limit = MaxKVList
	}
	outPtr, outCap := c.out(stack[7], stack[8])
	if !c.ready() {
		return c.code
	}
	keys, err := c.cs.host.KVList(c.ctx, c.cs.inv, bucket, prefix, after, limit)
	if err != nil {
		return errCode(c.ctx, err)
	}
	res, err := encodeKeys(keys[:min(len(keys), limit)])
	if err != nil {
		return errCode(c.ctx, err)
	}
	return c.deliver(res, outPtr, outCap)
}

// encodeKeys encodes a kv_list result: u32 count, count × str.
func encodeKeys(keys []string) ([]byte, error) {
	n := 4
	for _, k := range keys {
		n += 4 + len(k)
	}
	if n > MaxPendingResult {
		return nil, ErrTooLarge
	}
	b := make([]byte, 0, n)
	b = appendU32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
	}
	return b, nil
}

// hostHTTPRequest implements http_request(req_ptr, req_len, out_ptr, out_cap) -> i32.
func hostHTTPRequest(ctx context.Context, mod api.Module, stack []uint64) {
	c := beginCap(ctx, mod, "http_request")
	c.finish(stack, c.httpRequest(stack))
}

func (c *capCall) httpRequest(stack []uint64) int32 {
	enc := c.view(stack[0], stack[1])
	if c.code == 0 && len(enc) > MaxHTTPRequest {
		c.code = codeTooLarge
	}
	outPtr, outCap := c.out(stack[2], stack[3])
	if !c.ready() {
		return c.code
	}
	req, err := decodeHTTPRequest(enc) // copies everything it keeps
	if err != nil {
		return errCode(c.ctx, err)
	}
	resp, err := c.cs.host.HTTP(c.ctx, c.cs.inv, req)
	if err != nil {
		return errCode(c.ctx, err)
	}
	res, err := encodeHTTPResponse(resp)
	if err != nil {
		return errCode(c.ctx, err)
	}
	return c.deliver(res, outPtr, outCap)
}

// decodeHTTPRequest parses an http_request encoding (docs/abi.md):
//
//	str method, str url, u32 n, n × (str name, str value), bytes body
//
// The method must be an HTTP token, header names tokens, header values free
// of control characters other than tab, and nothing may follow the body.
// The result shares no memory with b. Errors wrap ErrInvalid, or
// ErrTooLarge for an encoding, header count or header block over its limit.
func decodeHTTPRequest(b []byte) (*HTTPRequest, error) {
	if len(b) > MaxHTTPRequest {
		return nil, fmt.Errorf("%w: http request of %d bytes, limit %d", ErrTooLarge, len(b), MaxHTTPRequest)
	}
	bad := func(what string) (*HTTPRequest, error) {
		return nil, fmt.Errorf("%w: http request: %s", ErrInvalid, what)
	}
	r := &respReader{b: b}
	method := r.bytes()
	url := r.bytes()
	n := r.u32()
	if r.err != nil {
		return bad("truncated")
	}
	if len(method) > maxMethodLen || !validHeaderName(method) {
		return bad("method is not a token of at most 16 bytes")
	}
	if uint64(n)*8 > uint64(len(r.b)) { // each field takes at least 8 bytes
		return bad("header count overruns the encoding")
	}
	if n > maxHTTPHeaders {
		return nil, fmt.Errorf("%w: %d request headers, at most %d", ErrTooLarge, n, maxHTTPHeaders)
	}
	hdr := make(http.Header, n)
	size := 0
	for range n {
		name, value := r.bytes(), r.bytes()
		if r.err != nil {
			return bad("truncated header")
		}
		if size += len(name) + len(value); size > maxHTTPHeaderBytes {
			return nil, fmt.Errorf("%w: request headers over %d bytes", ErrTooLarge, maxHTTPHeaderBytes)
		}
		if !validHeaderName(name) {
			return bad("header name is not a token")
		}
		if !validHeaderValue(value) {
			return bad("header value holds a control character")
		}
		k := http.CanonicalHeaderKey(string(name))
		hdr[k] = append(hdr[k], string(value))
	}
	body := r.bytes()
	if r.err != nil {
		return bad("truncated body")
	}
	if len(r.b) != 0 {
		return bad("trailing bytes")
	}
	req := &HTTPRequest{Method: string(method), URL: string(url), Header: hdr}
	if len(body) > 0 {
		req.Body = bytes.Clone(body)
	}
	return req, nil
}

// encodeHTTPResponse encodes resp in the reactor response format (u32
// status, u32 n, n × (str name, str value), bytes body), header names
// canonical, one field per value, in sorted order. A body over MaxHTTPResponse or an encoding over
// MaxPendingResult is ErrTooLarge; a nil response or a status outside
// 100..599 (a Host bug) is ErrUnavailable.
func encodeHTTPResponse(resp *HTTPResponse) ([]byte, error) {
	if resp == nil || resp.Status < 100 || resp.Status > 599 {
		return nil, fmt.Errorf("%w: host returned no valid response", ErrUnavailable)
	}
	if len(resp.Body) > MaxHTTPResponse {
		return nil, fmt.Errorf("%w: response body of %d bytes, limit %d", ErrTooLarge, len(resp.Body), MaxHTTPResponse)
	}
	size, count := 12+len(resp.Body), 0
	for k, vs := range resp.Header {
		for _, v := range vs {
			size += 8 + len(k) + len(v)
			count++
		}
	}
	if size > MaxPendingResult {
		return nil, fmt.Errorf("%w: response of %d bytes, limit %d", ErrTooLarge, size, MaxPendingResult)
	}
	b := make([]byte, 0, size)
	b = appendU32(b, uint32(resp.Status))
	b = appendU32(b, uint32(count))
	for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
		name := http.CanonicalHeaderKey(k)
		for _, v := range resp.Header[k] {
			b = appendStr(b, name)
			b = appendStr(b, v)
		}
	}
	b = appendU32(b, uint32(len(resp.Body)))
	return append(b, resp.Body...), nil
}

// hostResultTake implements result_take(out_ptr, out_cap) -> i32: it copies
// the pending result when it fits (and clears it) and returns its length;
// with nothing pending, or an out-of-range buffer, it returns codeInvalid
// (and keeps what is pending).
func hostResultTake(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = api.EncodeI32(resultTake(callStateFrom(ctx), mod, api.DecodeU32(stack[0]), api.DecodeU32(stack[1])))
}

func resultTake(cs *callState, mod api.Module, outPtr, outCap uint32) int32 {
	if cs == nil || !cs.hasPending {
		return codeInvalid
	}
	mem := mod.Memory()
	if mem == nil {
		return codeInvalid
	}
	if _, ok := mem.Read(outPtr, outCap); !ok {
		return codeInvalid
	}
	n := len(cs.pending)
	if uint64(n) <= uint64(outCap) {
		mem.Write(outPtr, cs.pending)
		cs.dropPending()
	}
	return int32(n)
}
