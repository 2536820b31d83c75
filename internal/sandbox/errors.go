package sandbox

import "fmt"

// ErrorKind classifies why an invocation failed. The gateway maps each kind
// to an HTTP status; the kinds are stable and safe to put in events.
type ErrorKind int

const (
	// KindTrap: the guest trapped, panicked or exited with a non-zero status.
	KindTrap ErrorKind = iota + 1
	// KindTimeout: the invocation ran past Limits.Timeout or its context ended.
	KindTimeout
	// KindMemory: the guest tried to grow its linear memory past Limits.Memory.
	KindMemory
	// KindConcurrency: Limits.Concurrency invocations were already in flight.
	KindConcurrency
	// KindResponseTooLarge: the response body exceeded Limits.ResponseBody.
	KindResponseTooLarge
	// KindBadResponse: the guest answered something that is not a valid
	// response for its ABI (no CGI header block, malformed reactor encoding).
	KindBadResponse
	// KindUnavailable: the module could not be loaded or the function is closed.
	KindUnavailable
)

var kindNames = [...]string{
	KindTrap:             "trap",
	KindTimeout:          "timeout",
	KindMemory:           "memory",
	KindConcurrency:      "concurrency",
	KindResponseTooLarge: "response_too_large",
	KindBadResponse:      "bad_response",
	KindUnavailable:      "unavailable",
}

// String returns a short snake_case name, e.g. "response_too_large".
func (k ErrorKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the error returned by Function.Invoke.
//
// # Notes
//   - Msg is safe to show a client: it never contains guest output, host
//     paths or secrets. Err is the internal cause, for logs only.
type Error struct {
	Kind ErrorKind
	Msg  string
	Err  error
}

// Error implements error. It includes the internal cause: log it, do not
// send it to a client (use Msg).
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("sandbox: %s: %s: %v", e.Kind, e.Msg, e.Err)
	}
	return fmt.Sprintf("sandbox: %s: %s", e.Kind, e.Msg)
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

func newError(kind ErrorKind, msg string, err error) *Error {
	return &Error{Kind: kind, Msg: msg, Err: err}
}
