package warden

import (
	"errors"
	"math"
	"time"
	"unsafe"
)

// Capability errors. Every capability function (Secret, KVGet, KVSet,
// KVDelete, KVList, Fetch) fails with one of these, matched with
// errors.Is; each is one result code of the warden host module
// (docs/abi.md). Outside WebAssembly every call fails with ErrUnavailable.
var (
	// ErrDenied: the manifest does not grant this secret, bucket (or write
	// access to it) or egress destination, or the function has no grants.
	ErrDenied = errors.New("warden: capability denied")
	// ErrNotFound: no such secret, or no such key.
	ErrNotFound = errors.New("warden: not found")
	// ErrInvalid: a malformed name, key, TTL, URL, method or header.
	ErrInvalid = errors.New("warden: invalid argument")
	// ErrTooLarge: a value, request or response over its limit, or a bucket
	// over its quota.
	ErrTooLarge = errors.New("warden: too large")
	// ErrUnavailable: the capability's backend failed; a later call may
	// succeed.
	ErrUnavailable = errors.New("warden: capability unavailable")
	// ErrTimeout: the destination did not answer in time, or the
	// invocation's own deadline passed.
	ErrTimeout = errors.New("warden: capability call timed out")
	// ErrNetwork: the destination could not be reached (DNS, connect, TLS).
	ErrNetwork = errors.New("warden: destination unreachable")
)

// Capabilities: what a function may do outside its sandbox, each call
// checked by warden against the manifest's permissions (a denial is
// ErrDenied and an event on the host side). They are host calls of the
// warden module (docs/abi.md); in a reactor they run synchronously within
// the request, in the handler's goroutine.
//
// Results come back through one buffer the SDK reuses (4 KiB at first), so
// a small result costs one host call and one copy into the slice returned;
// a larger one costs one more call (result_take), never a repeated side
// effect.

// Secret returns the current value of the secret name, which the manifest
// must grant (permissions.secrets). Every read is checked and recorded by
// the host; the SDK never caches a value. The returned slice belongs to the
// caller (clear it when done to keep the value out of later memory).
//
// Errors: ErrDenied (not granted), ErrNotFound (granted but not set),
// ErrInvalid (bad name), ErrUnavailable, ErrTimeout.
func Secret(name string) ([]byte, error) { return secretGet(name) }

// AppendSecret is Secret without the allocation: it appends the value to
// dst and returns the extended slice (dst unchanged on error). With a
// buffer reused across requests, reading a secret allocates nothing once
// the buffer has room (allocation is the costly part of Go compiled to
// wasm: about 1.3 µs of the 1.8 µs a Secret call takes). Clear the bytes
// when done with them.
func AppendSecret(dst []byte, name string) ([]byte, error) { return appendSecret(dst, name) }

// KVGet returns the value of key in bucket, which the manifest must grant
// (read or write). The returned slice belongs to the caller.
//
// Errors: ErrNotFound (no such key, or it expired), ErrDenied, ErrInvalid,
// ErrUnavailable, ErrTimeout.
func KVGet(bucket, key string) ([]byte, error) { return kvGet(bucket, key) }

// KVSet sets key in bucket (granted write) to value. ttl 0 keeps the value
// until it is deleted; a positive ttl expires it after that long (rounded
// up to a millisecond); a negative ttl is ErrInvalid. KV has no
// compare-and-set: of two invocations writing one key, the last one wins.
//
// Errors: ErrDenied (not granted, or granted read only), ErrInvalid,
// ErrTooLarge (value over 1 MiB or bucket over its quota), ErrUnavailable,
// ErrTimeout.
func KVSet(bucket, key string, value []byte, ttl time.Duration) error {
	ms, err := ttlMillis(ttl)
	if err != nil {
		return err
	}
	return kvSet(bucket, key, value, ms)
}

// KVDelete deletes key from bucket (granted write).
//
// Errors: ErrNotFound (no such key), ErrDenied, ErrInvalid,
// ErrUnavailable, ErrTimeout.
func KVDelete(bucket, key string) error { return kvDelete(bucket, key) }

// KVList returns, in order, up to limit keys of bucket (granted read or
// write) that start with prefix and sort after after ("" = from the
// start). limit <= 0 or over 1000 means 1000. To page, pass the last key of
// one page as after for the next; fewer than limit keys means the end.
//
// Errors: ErrDenied, ErrInvalid, ErrUnavailable, ErrTimeout.
func KVList(bucket, prefix, after string, limit int) ([]string, error) {
	return kvList(bucket, prefix, after, listLimit(limit))
}

// Fetch sends an HTTP request through warden's egress (the manifest must
// grant the destination's origin in permissions.egress) and returns the
// response, whose Status is always set; it belongs to the caller. The host
// bounds the request (8 MiB encoded) and the response body (8 MiB),
// applies its own timeout within the invocation's, and checks every
// destination it connects to (a redirect's too) against the grants. For a
// net/http client, use wardenhttp.Transport.
//
// Errors: ErrDenied (origin not granted, or an address warden refuses),
// ErrInvalid (bad method, URL or header), ErrTooLarge, ErrTimeout,
// ErrNetwork (DNS, connect or TLS failure), ErrUnavailable.
func Fetch(method, url string, header Header, body []byte) (*Response, error) {
	return fetch(method, url, header, body)
}

// codeErrs maps result code -n to its error.
var codeErrs = [...]error{nil, ErrDenied, ErrNotFound, ErrInvalid, ErrTooLarge, ErrUnavailable, ErrTimeout, ErrNetwork}

// codeErr returns the error for a negative result code; a code this SDK
// does not know is ErrUnavailable.
func codeErr(code int32) error {
	if code < 0 && -int64(code) < int64(len(codeErrs)) {
		return codeErrs[-code]
	}
	return ErrUnavailable
}

// ttlMillis converts a KV time to live to kv_set's ttl_ms: 0 is no expiry,
// a positive duration rounds up to whole milliseconds (so it never becomes
// "no expiry"), a negative one is invalid.
func ttlMillis(ttl time.Duration) (int64, error) {
	if ttl < 0 {
		return 0, ErrInvalid
	}
	ms := int64(ttl / time.Millisecond)
	if ttl%time.Millisecond != 0 && ms < math.MaxInt64/int64(time.Millisecond) {
		ms++ // the host takes at most MaxInt64 ns (a time.Duration)
	}
	return ms, nil
}

// listLimit converts KVList's limit to kv_list's: 0 (the host's maximum)
// for a limit that is not positive or does not fit.
func listLimit(limit int) uint32 {
	if limit <= 0 || uint64(limit) > math.MaxUint32 {
		return 0
	}
	return uint32(limit)
}

// appendHTTPRequest appends an http_request encoding:
//
//	str method, str url, u32 n, n × (str name, str value), bytes body
func appendHTTPRequest(b []byte, method, url string, header Header, body []byte) []byte {
	b = appendStr(b, method)
	b = appendStr(b, url)
	b = appendU32(b, uint32(len(header)))
	for _, f := range header {
		b = appendStr(b, f.Name)
		b = appendStr(b, f.Value)
	}
	b = appendU32(b, uint32(len(body)))
	return append(b, body...)
}

// decodeKeys parses a kv_list result: u32 n, n × str. The keys share one
// copy of b. A malformed result (a host bug) is ErrUnavailable.
func decodeKeys(b []byte) ([]string, error) {
	r := reader{s: string(b)}
	n := r.u32()
	if r.err != nil || uint64(n)*4 > uint64(len(r.s)) {
		return nil, ErrUnavailable
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = r.str()
	}
	if r.err != nil || len(r.s) != 0 {
		return nil, ErrUnavailable
	}
	return keys, nil
}

// decodeHTTPResponse parses an http_request result (the reactor response
// format). With owned, b belongs to the result from now on and nobody
// writes to it again: header strings and the body then point into b
// instead of being copied (large responses are read into a buffer of their
// own). Otherwise the result shares no memory with b. A malformed result (a
// host bug) is ErrUnavailable.
func decodeHTTPResponse(b []byte, owned bool) (*Response, error) {
	var s string
	if owned {
		s = unsafe.String(unsafe.SliceData(b), len(b))
	} else {
		s = string(b)
	}
	r := reader{s: s}
	status := r.u32()
	n := r.u32()
	if r.err != nil || uint64(n)*8 > uint64(len(r.s)) {
		return nil, ErrUnavailable
	}
	resp := &Response{Status: int(status)}
	if n > 0 {
		resp.Header = make(Header, n)
		r.fields(resp.Header)
	}
	body := r.str()
	if r.err != nil || len(r.s) != 0 {
		return nil, ErrUnavailable
	}
	if len(body) > 0 {
		if owned {
			resp.Body = b[len(b)-len(body):]
		} else {
			resp.Body = []byte(body)
		}
	}
	return resp, nil
}
