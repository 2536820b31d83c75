package sandbox

import (
	"context"
	"strings"
	"testing"

	"warden/internal/manifest"
)

func section(id byte, content []byte) []byte {
	return append([]byte{id, byte(len(content))}, content...)
}

func name(s string) []byte { return append([]byte{byte(len(s))}, s...) }

// importModule is a minimal module importing mod.field as a function of
// type (params i32...) -> () or, with kind 2, a memory.
func importModule(mod, field string, kind byte, nparams int) []byte {
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	typ := []byte{0x01, 0x60, byte(nparams)}
	for range nparams {
		typ = append(typ, 0x7f)
	}
	typ = append(typ, 0x00)
	b = append(b, section(1, typ)...)
	imp := append([]byte{0x01}, name(mod)...)
	imp = append(imp, name(field)...)
	if kind == 0 {
		imp = append(imp, 0x00, 0x00)
	} else {
		imp = append(imp, 0x02, 0x00, 0x01)
	}
	return append(b, section(2, imp)...)
}

func TestCheck(t *testing.T) {
	e, _ := newEngine(t, Config{})
	for _, tc := range []struct {
		name string
		abi  manifest.ABI
		wasm []byte
		want string // "" = accepted
	}{
		{"wagi example", manifest.ABIWagi, wasmOf(t, "hello"), ""},
		{"reactor example", manifest.ABIReactor, wasmOf(t, "ping"), ""},
		{"reactor using warden.log", manifest.ABIReactor, wasmOf(t, "echo-json"), ""},
		{"garbage", manifest.ABIWagi, []byte("this is not webassembly at all"), "does not compile"},
		{"empty", manifest.ABIReactor, nil, "does not compile"},
		{"truncated", manifest.ABIWagi, wasmOf(t, "hello")[:1000], "does not compile"},
		{"command as reactor", manifest.ABIReactor, wasmOf(t, "hello"), `lacks the reactor export "_initialize"`},
		{"reactor as wagi", manifest.ABIWagi, wasmOf(t, "ping"), `lacks the wagi export "_start"`},
		{"unknown host function", manifest.ABIWagi, importModule("warden", "nope", 0, 0), "unknown host function warden.nope"},
		{"host function wrong signature", manifest.ABIWagi, importModule("warden", "log", 0, 2), "wrong signature"},
		{"unknown module", manifest.ABIWagi, importModule("env", "system", 0, 1), "only wasi_snapshot_preview1 and warden"},
		{"unknown wasi function", manifest.ABIWagi, importModule("wasi_snapshot_preview1", "sock_open", 0, 0), "unknown WASI function"},
		{"memory import", manifest.ABIWagi, importModule("warden", "memory", 2, 0), "only functions may be imported"},
		{"unknown abi", "wasi-http", wasmOf(t, "hello"), "unknown abi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.Check(context.Background(), tc.abi, tc.wasm)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check(%s) = %v, want nil", tc.name, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check(%s) = %v, want an error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

// A module that passed no Check still cannot run with missing exports.
func TestInvokeWrongABI(t *testing.T) {
	e, _ := newEngine(t, Config{})
	s := spec(t, "hello", 1, manifest.Limits{})
	s.ABI = manifest.ABIReactor
	invokeErr(t, e.Function(s), get("/hello", ""), KindUnavailable)
}
