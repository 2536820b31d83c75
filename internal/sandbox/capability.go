package sandbox

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Host serves the capability calls (secrets, kv, egress HTTP) of one
// function version; Spec.Host holds it. The sandbox decodes the guest's
// arguments, checks every pointer and length against guest memory and the
// limits below, calls Host, and encodes the answer; Host decides. It must
// check the function's grants itself and fail closed: any error that is not
// one of the sentinel errors below reaches the guest as ErrUnavailable.
//
// Implementations must be safe for concurrent use. inv carries the request
// id of the invocation the call belongs to; ctx carries its deadline. The
// arguments (strings, KVSet's value, the HTTPRequest) are copies of guest
// memory the Host may keep. Returned slices belong to the sandbox (it copies
// them into guest memory, or keeps one until the guest takes it with
// result_take, and then drops them). hostcap.go maps each sentinel error to
// its result code.
type Host interface {
	SecretGet(ctx context.Context, inv Invocation, name string) ([]byte, error)
	KVGet(ctx context.Context, inv Invocation, bucket, key string) ([]byte, error)
	KVSet(ctx context.Context, inv Invocation, bucket, key string, value []byte, ttl time.Duration) error
	KVDelete(ctx context.Context, inv Invocation, bucket, key string) error
	// KVList returns up to limit keys starting with prefix and sorting after
	// after, in order.
	KVList(ctx context.Context, inv Invocation, bucket, prefix, after string, limit int) ([]string, error)
	// HTTP performs an outbound request on the guest's behalf.
	HTTP(ctx context.Context, inv Invocation, req *HTTPRequest) (*HTTPResponse, error)
}

// HTTPRequest is a guest's outbound request.
type HTTPRequest struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// HTTPResponse is the answer to an HTTPRequest.
type HTTPResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// Capability errors. A Host returns them (wrapped or not); the guest sees
// each as its own negative result code (docs/abi.md). Their text never
// reaches the guest.
var (
	ErrDenied      = errors.New("capability denied")         // not granted, or destination refused
	ErrNotFound    = errors.New("not found")                 // no such secret or key
	ErrInvalid     = errors.New("invalid argument")          // malformed name, key, URL, header…
	ErrTooLarge    = errors.New("too large")                 // value, bucket quota or response over a limit
	ErrUnavailable = errors.New("capability unavailable")    // the backend failed; try later
	ErrTimeout     = errors.New("capability call timed out") // egress: the destination did not answer in time
	ErrNetwork     = errors.New("destination unreachable")   // egress: DNS, connect or TLS failure
)

// Capability limits enforced by the sandbox: on arguments before Host is
// called (MaxHTTPResponse and MaxPendingResult: on what Host returns).
// docs/abi.md states them; a test checks the two agree.
const (
	MaxNameLen       = 256     // secret names, buckets
	MaxKVKeyLen      = 1024    // bytes
	MaxKVValueLen    = 1 << 20 // bytes per value
	MaxKVList        = 1000    // keys per list call
	MaxHTTPRequest   = 8 << 20 // encoded outbound request (URL, headers, body)
	MaxHTTPResponse  = 8 << 20 // outbound response body
	MaxPendingResult = 16 << 20
	// MaxCapCalls bounds the capability calls of one invocation (each may
	// cost a store access and an event); later calls get too_large.
	MaxCapCalls = 1000
	// MaxKVTTL is the longest KV time to live.
	MaxKVTTL = 10 * 365 * 24 * time.Hour
	// maxMethodLen bounds an outbound request's method (it is recorded in
	// every egress event).
	maxMethodLen = 16
)
