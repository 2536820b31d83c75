//go:build wasip1

package warden

import (
	"slices"
	"unsafe"
)

// The capability functions of the warden host module (docs/abi.md). Every
// pointer is into this module's linear memory; the host copies what it
// reads and writes only into [out, out+outCap).

//go:wasmimport warden secret_get
//go:noescape
func hostSecretGet(name unsafe.Pointer, nameLen uint32, out unsafe.Pointer, outCap uint32) int32

//go:wasmimport warden kv_get
//go:noescape
func hostKVGet(bucket unsafe.Pointer, bucketLen uint32, key unsafe.Pointer, keyLen uint32, out unsafe.Pointer, outCap uint32) int32

//go:wasmimport warden kv_set
//go:noescape
func hostKVSet(bucket unsafe.Pointer, bucketLen uint32, key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32, ttlMillis int64) int32

//go:wasmimport warden kv_delete
//go:noescape
func hostKVDelete(bucket unsafe.Pointer, bucketLen uint32, key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport warden kv_list
//go:noescape
func hostKVList(bucket unsafe.Pointer, bucketLen uint32, prefix unsafe.Pointer, prefixLen uint32,
	after unsafe.Pointer, afterLen uint32, limit uint32, out unsafe.Pointer, outCap uint32) int32

//go:wasmimport warden http_request
//go:noescape
func hostHTTPRequest(req unsafe.Pointer, reqLen uint32, out unsafe.Pointer, outCap uint32) int32

//go:wasmimport warden result_take
//go:noescape
func hostResultTake(out unsafe.Pointer, outCap uint32) int32

// Buffers reused between capability calls. An instance runs one request at
// a time and a host call never yields to another goroutine (Go on wasm has
// no preemption), so one buffer of each serves every call.
//
// resBuf receives results; a result that does not fit is fetched with
// result_take into a larger resBuf, or, over keepResult, into a buffer of
// its own that the caller keeps (so one large answer does not pin memory
// for the instance's lifetime). reqBuf holds encoded outbound requests.
var resBuf, reqBuf []byte

const (
	resBufSize = 4 << 10
	keepResult = 64 << 10
)

func strPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func resultBuf() []byte {
	if resBuf == nil {
		resBuf = make([]byte, resBufSize)
	}
	return resBuf
}

// result returns the result of a data call that returned n with buf as its
// buffer: buf[:n] when it fit, otherwise the pending result fetched with
// result_take. Unless owned, the bytes are valid only until the next
// capability call.
func result(n int32, buf []byte) (b []byte, owned bool, err error) {
	if n < 0 {
		return nil, false, codeErr(n)
	}
	if int(n) <= len(buf) {
		return buf[:n], false, nil
	}
	if n <= keepResult {
		resBuf = make([]byte, n)
		b = resBuf
	} else {
		b, owned = make([]byte, n), true
	}
	if m := hostResultTake(bytesPtr(b), uint32(n)); m != n {
		if m < 0 {
			return nil, false, codeErr(m)
		}
		return nil, false, ErrUnavailable
	}
	return b, owned, nil
}

// copied returns b, or a copy of it when it is the shared buffer.
func copied(b []byte, owned bool) []byte {
	if owned {
		return b
	}
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

func secretGet(name string) ([]byte, error) {
	buf := resultBuf()
	n := hostSecretGet(strPtr(name), uint32(len(name)), bytesPtr(buf), uint32(len(buf)))
	b, owned, err := result(n, buf)
	if err != nil {
		return nil, err
	}
	v := copied(b, owned)
	if !owned {
		clear(b) // do not leave the value in the shared buffer
	}
	return v, nil
}

func appendSecret(dst []byte, name string) ([]byte, error) {
	// Read straight into dst's spare capacity; if the value does not fit,
	// grow dst once and take the pending result into it. The shared result
	// buffer never holds the value.
	spare := dst[len(dst):cap(dst)]
	n := hostSecretGet(strPtr(name), uint32(len(name)), bytesPtr(spare), uint32(len(spare)))
	if n < 0 {
		return dst, codeErr(n)
	}
	if int(n) <= len(spare) {
		return dst[:len(dst)+int(n)], nil
	}
	dst = slices.Grow(dst, int(n))
	spare = dst[len(dst) : len(dst)+int(n)]
	if m := hostResultTake(bytesPtr(spare), uint32(n)); m != n {
		if m < 0 {
			return dst, codeErr(m)
		}
		return dst, ErrUnavailable
	}
	return dst[:len(dst)+int(n)], nil
}

func kvGet(bucket, key string) ([]byte, error) {
	buf := resultBuf()
	n := hostKVGet(strPtr(bucket), uint32(len(bucket)), strPtr(key), uint32(len(key)), bytesPtr(buf), uint32(len(buf)))
	b, owned, err := result(n, buf)
	if err != nil {
		return nil, err
	}
	return copied(b, owned), nil
}

func kvSet(bucket, key string, value []byte, ttlMillis int64) error {
	if n := hostKVSet(strPtr(bucket), uint32(len(bucket)), strPtr(key), uint32(len(key)), bytesPtr(value), uint32(len(value)), ttlMillis); n < 0 {
		return codeErr(n)
	}
	return nil
}

func kvDelete(bucket, key string) error {
	if n := hostKVDelete(strPtr(bucket), uint32(len(bucket)), strPtr(key), uint32(len(key))); n < 0 {
		return codeErr(n)
	}
	return nil
}

func kvList(bucket, prefix, after string, limit uint32) ([]string, error) {
	buf := resultBuf()
	n := hostKVList(strPtr(bucket), uint32(len(bucket)), strPtr(prefix), uint32(len(prefix)),
		strPtr(after), uint32(len(after)), limit, bytesPtr(buf), uint32(len(buf)))
	b, _, err := result(n, buf)
	if err != nil {
		return nil, err
	}
	return decodeKeys(b)
}

func fetch(method, url string, header Header, body []byte) (*Response, error) {
	req := appendHTTPRequest(reqBuf[:0], method, url, header, body)
	buf := resultBuf()
	n := hostHTTPRequest(bytesPtr(req), uint32(len(req)), bytesPtr(buf), uint32(len(buf)))
	if cap(req) <= keepResult {
		reqBuf = req[:0]
	} else {
		reqBuf = nil
	}
	b, owned, err := result(n, buf)
	if err != nil {
		return nil, err
	}
	return decodeHTTPResponse(b, owned)
}
