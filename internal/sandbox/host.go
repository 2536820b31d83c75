package sandbox

import (
	"context"
	"log/slog"
	"unicode/utf8"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// HostModule is the name of the import module holding warden's host
// functions. A guest may import only functions listed in hostFuncs from it
// (and wasi_snapshot_preview1); Check refuses anything else.
const HostModule = "warden"

// Invocation identifies the invocation a host call belongs to. It is in the
// context.Context passed to every host function (see InvocationFrom), so a
// capability can check grants and emit events for the right function.
type Invocation struct {
	Namespace string
	Name      string
	Version   int
	RequestID string
}

// InvocationFrom returns the invocation a host call belongs to. ok is false
// when ctx does not come from a guest call.
func InvocationFrom(ctx context.Context) (inv Invocation, ok bool) {
	cs, ok := ctx.Value(callStateKey{}).(*callState)
	if !ok {
		return Invocation{}, false
	}
	return cs.inv, true
}

type callStateKey struct{}

// callState is the per-invocation state host functions may use. An
// invocation runs on one goroutine (host functions are called synchronously
// from guest code), so it needs no lock.
type callState struct {
	inv       Invocation
	logger    *slog.Logger
	logBytes  int        // bytes logged through warden.log in this invocation
	logDroppd int        // lines dropped because the budget was spent
	host      Host       // Spec.Host; nil = every capability call is denied
	seen      *secretSet // secret values read by this function version, redacted from its output
	halt      *halt      // Function.halt: metered code traps at its next yield once set
	capCalls  int        // capability calls made by this invocation (MaxCapCalls)
	// pending is the result of the last capability call when it did not fit
	// the guest's buffer, until result_take copies it or the next
	// capability call replaces it (hostcap.go). Host-owned memory, never a
	// view of guest memory; at most MaxPendingResult bytes.
	pending    []byte
	hasPending bool
}

func callStateFrom(ctx context.Context) *callState {
	cs, _ := ctx.Value(callStateKey{}).(*callState)
	return cs
}

// Limits of warden.log, per invocation.
const (
	maxLogLine   = 1024      // bytes per line; longer lines are truncated
	maxLogBudget = 16 * 1024 // bytes per invocation; lines beyond are dropped and counted
)

// hostFunc is one function of the warden host module.
type hostFunc struct {
	name       string
	params     []api.ValueType
	paramNames []string
	results    []api.ValueType
	fn         api.GoModuleFunc
}

var i32 = api.ValueTypeI32

var i64 = api.ValueTypeI64

// hostFuncs is the warden host module: the one place where host functions
// are declared (docs/abi.md is the normative text). Check accepts exactly
// these imports from HostModule (by name and signature), and every runtime
// instantiates them.
//
// All arguments are untrusted guest values: every ptr/len is checked against
// guest memory (and the limits in capability.go) before anything else, and
// nothing read from guest memory is kept after the call returns. The
// capability functions (hostcap.go) do no access control themselves: they
// hand the decoded call to the invocation's Host (Spec.Host), which checks
// the function's grants on every call and decides.
var hostFuncs = []hostFunc{
	{
		name:       "log",
		params:     []api.ValueType{i32, i32, i32},
		paramNames: []string{"level", "ptr", "len"},
		fn:         hostLog,
	},
	{
		name:       "secret_get",
		params:     []api.ValueType{i32, i32, i32, i32},
		paramNames: []string{"name_ptr", "name_len", "out_ptr", "out_cap"},
		results:    []api.ValueType{i32},
		fn:         hostSecretGet,
	},
	{
		name:       "kv_get",
		params:     []api.ValueType{i32, i32, i32, i32, i32, i32},
		paramNames: []string{"bucket_ptr", "bucket_len", "key_ptr", "key_len", "out_ptr", "out_cap"},
		results:    []api.ValueType{i32},
		fn:         hostKVGet,
	},
	{
		name:       "kv_set",
		params:     []api.ValueType{i32, i32, i32, i32, i32, i32, i64},
		paramNames: []string{"bucket_ptr", "bucket_len", "key_ptr", "key_len", "val_ptr", "val_len", "ttl_ms"},
		results:    []api.ValueType{i32},
		fn:         hostKVSet,
	},
	{
		name:       "kv_delete",
		params:     []api.ValueType{i32, i32, i32, i32},
		paramNames: []string{"bucket_ptr", "bucket_len", "key_ptr", "key_len"},
		results:    []api.ValueType{i32},
		fn:         hostKVDelete,
	},
	{
		name:   "kv_list",
		params: []api.ValueType{i32, i32, i32, i32, i32, i32, i32, i32, i32},
		paramNames: []string{"bucket_ptr", "bucket_len", "prefix_ptr", "prefix_len",
			"after_ptr", "after_len", "limit", "out_ptr", "out_cap"},
		results: []api.ValueType{i32},
		fn:      hostKVList,
	},
	{
		name:       "http_request",
		params:     []api.ValueType{i32, i32, i32, i32},
		paramNames: []string{"req_ptr", "req_len", "out_ptr", "out_cap"},
		results:    []api.ValueType{i32},
		fn:         hostHTTPRequest,
	},
	{
		name:       "result_take",
		params:     []api.ValueType{i32, i32},
		paramNames: []string{"out_ptr", "out_cap"},
		results:    []api.ValueType{i32},
		fn:         hostResultTake,
	},
}

func lookupHostFunc(name string) *hostFunc {
	for i := range hostFuncs {
		if hostFuncs[i].name == name {
			return &hostFuncs[i]
		}
	}
	return nil
}

func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(HostModule)
	for _, h := range hostFuncs {
		b.NewFunctionBuilder().
			WithGoModuleFunction(h.fn, h.params, h.results).
			WithParameterNames(h.paramNames...).
			Export(h.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// Log levels of warden.log (see docs/abi.md).
var logLevels = [...]slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}

// hostLog implements warden.log(level, ptr, len): one bounded line to the
// engine's logger, tagged with the function and request id. An out-of-range
// buffer is ignored (the guest gets no signal, as with a full log budget).
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	cs := callStateFrom(ctx)
	if cs == nil || cs.logger == nil {
		return
	}
	level, ptr, n := api.DecodeI32(stack[0]), api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
	if cs.logBytes >= maxLogBudget {
		cs.logDroppd++
		return
	}
	truncated := false
	if n > maxLogLine {
		n, truncated = maxLogLine, true
	}
	buf, ok := mod.Memory().Read(ptr, n)
	if !ok {
		return
	}
	cs.logBytes += len(buf)
	lvl := slog.LevelInfo
	if level >= 0 && int(level) < len(logLevels) {
		lvl = logLevels[level]
	}
	msg := cs.seen.redact(validUTF8(buf)) // copies out of guest memory
	attrs := []slog.Attr{
		slog.String("namespace", cs.inv.Namespace),
		slog.String("function", cs.inv.Name),
		slog.Int("version", cs.inv.Version),
		slog.String("request_id", cs.inv.RequestID),
		slog.String("msg", msg),
	}
	if truncated {
		attrs = append(attrs, slog.Bool("truncated", true))
	}
	cs.logger.LogAttrs(ctx, lvl, "guest log", attrs...)
}

// validUTF8 copies b into a string, replacing invalid UTF-8 and control
// characters other than tab so one guest line stays one log line.
func validUTF8(b []byte) string {
	clean := true
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	out := make([]rune, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r < 0x20 && r != '\t' || r == 0x7f {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
