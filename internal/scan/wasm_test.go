package scan

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestMalformed feeds binaries an attacker (or a broken toolchain) could
// send: each must be refused with ErrMalformed and the offset of the
// problem, never a panic and never a partial report.
func TestMalformed(t *testing.T) {
	valid := reactor("log").bytes()
	tests := []struct {
		name   string
		wasm   []byte
		reason string // in the error
	}{
		{"empty", nil, "too short"},
		{"short header", []byte("\x00asm\x01"), "too short"},
		{"bad magic", []byte("\x7fELF\x01\x00\x00\x00"), "bad magic"},
		{"version 2", []byte("\x00asm\x02\x00\x00\x00"), "unsupported binary version 2"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "component"},
		{"section size past end", cat(wasmHeader, []byte{secType, 0x10, 0x00}), "runs past the end of the module"},
		{"section size LEB128 overflow", cat(wasmHeader, []byte{secType, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}), "longer than 5 bytes"},
		{"section size LEB128 unused bits", cat(wasmHeader, []byte{secType, 0xff, 0xff, 0xff, 0xff, 0x7f}), "overflows 32 bits"},
		{"truncated section size", cat(wasmHeader, []byte{secType, 0x80}), "truncated integer"},
		{"unknown section id", cat(wasmHeader, section(14, nil)), "unknown section id 14"},
		{"repeated section", cat(wasmHeader, section(secType, vec()), section(secType, vec())), "repeated or out of order"},
		{"sections out of order", cat(wasmHeader, section(secExport, vec()), section(secImport, vec())), "repeated or out of order"},
		{"import count past end", cat(wasmHeader, section(secType, vec()), section(secImport, []byte{0x05})), "truncated integer"},
		{"import name past end", cat(wasmHeader, section(secType, vec(cat([]byte{0x60}, vec(), vec()))),
			section(secImport, cat(uleb(1), uleb(200), []byte("warden")))), "runs past the end"},
		{"import name not UTF-8", cat(wasmHeader, section(secType, vec(cat([]byte{0x60}, vec(), vec()))),
			section(secImport, vec(cat(wstr("\xff\xfe"), wstr("log"), []byte{kindFunc, 0})))), "not valid UTF-8"},
		{"import kind unknown", cat(wasmHeader, section(secType, vec(cat([]byte{0x60}, vec(), vec()))),
			section(secImport, vec(cat(wstr("warden"), wstr("log"), []byte{9, 0})))), "unknown import kind"},
		{"import type out of range", cat(wasmHeader, section(secType, vec()),
			section(secImport, vec(cat(wstr("warden"), wstr("log"), []byte{kindFunc, 3})))), "the module has 0 types"},
		{"bytes left in section", cat(wasmHeader, section(secType, cat(vec(), []byte{0x00}))), "left over"},
		{"type form not func", cat(wasmHeader, section(secType, vec([]byte{0x5f, 0x00}))), "only function types"},
		{"value type unknown", cat(wasmHeader, section(secType, vec(cat([]byte{0x60}, wstr("\x01"), vec())))), "unknown value type"},
		{"export name repeated", cat(wasmHeader, section(secMemory, vec([]byte{0, 1})),
			section(secExport, vec(cat(wstr("memory"), []byte{kindMemory, 0}), cat(wstr("memory"), []byte{kindMemory, 0})))), "repeats the name"},
		{"function without body", cat(wasmHeader, section(secType, vec(cat([]byte{0x60}, vec(), vec()))),
			section(secFunction, vec(uleb(0)))), "code section has 0 bodies"},
		{"body past end", cat(wasmHeader, section(secType, vec(cat([]byte{0x60}, vec(), vec()))),
			section(secFunction, vec(uleb(0))), section(secCode, cat(uleb(1), uleb(9), []byte{0x00, 0x0b}))), "function body of 9 bytes runs past the end"},
		{"data flags unknown", cat(wasmHeader, section(secData, vec(cat(uleb(7), vec())))), "unknown flags 7"},
		{"data offset not constant", cat(wasmHeader, section(secData, vec(cat([]byte{0x00, 0x20, 0x00, 0x0b}), vec()))), "not allowed in a constant expression"},
		{"data offset i32.const overflow", cat(wasmHeader, section(secData, vec(cat([]byte{0x00, 0x41, 0xff, 0xff, 0xff, 0xff, 0x4f, 0x0b}, vec())))), "overflows 32 bits"},
		{"data past end", cat(wasmHeader, section(secData, vec(cat([]byte{0x01}, uleb(100), []byte("short"))))), "data segment of 100 bytes runs past the end"},
		{"custom name past end", cat(wasmHeader, section(secCustom, uleb(10))), "runs past the end"},
		{"trailing section header", cat(valid, []byte{secCustom}), "truncated integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Scan(Input{Wasm: tt.wasm})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Scan(%q) = %v, want an error wrapping ErrMalformed", tt.wasm, err)
			}
			if r != nil {
				t.Errorf("Scan(%q) returned a report with the error", tt.wasm)
			}
			if !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), "at offset 0x") {
				t.Errorf("Scan(%q) error = %q, want it to say %q and name the offset", tt.wasm, err, tt.reason)
			}
		})
	}
}

// TestTruncated cuts a valid module at every byte: a cut inside a section
// is ErrMalformed; a cut at a section boundary may leave a valid module.
func TestTruncated(t *testing.T) {
	tm := reactor("log", "secret_get")
	tm.data = [][]byte{[]byte("hello, world")}
	tm.custom = [][2]string{{"producers", "\x00"}}
	b := tm.bytes()
	boundaries := map[int]bool{}
	for r := (&reader{b: b, pos: 8, end: len(b)}); r.pos < r.end; {
		boundaries[r.pos] = true
		r.byte()
		r.pos += int(r.u32())
	}
	if _, err := Scan(Input{Wasm: b}); err != nil {
		t.Fatalf("Scan(valid) = %v", err)
	}
	for n := 0; n < len(b); n++ {
		_, err := Scan(Input{Wasm: b[:n]})
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("Scan(first %d bytes) = %v, want nil or ErrMalformed", n, err)
		}
		if err == nil && !boundaries[n] {
			t.Errorf("Scan(first %d bytes, inside a section) succeeded, want ErrMalformed", n)
		}
	}
}

func TestLEB128(t *testing.T) {
	tests := []struct {
		in   []byte
		bits uint
		want uint64
		ok   bool
	}{
		{[]byte{0x00}, 32, 0, true},
		{[]byte{0xe5, 0x8e, 0x26}, 32, 624485, true},
		{[]byte{0x80, 0x00}, 32, 0, true}, // redundant zero byte: allowed
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 32, 1<<32 - 1, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x1f}, 32, 0, false},
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 32, 0, false},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 64, 1<<64 - 1, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03}, 64, 0, false},
		{[]byte{0x80}, 32, 0, false},
	}
	for _, tt := range tests {
		r := &reader{b: tt.in, end: len(tt.in), what: "test"}
		got := r.uleb(tt.bits)
		if (r.err == nil) != tt.ok || got != tt.want {
			t.Errorf("uleb(%x, %d) = %d, %v; want %d, ok %v", tt.in, tt.bits, got, r.err, tt.want, tt.ok)
		}
	}
	signed := []struct {
		in   []byte
		bits uint
		ok   bool
	}{
		{[]byte{0x7f}, 32, true},                                   // -1
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, 32, true},           // -1, padded
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x78}, 32, true},           // math.MinInt32
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x07}, 32, true},           // math.MaxInt32
		{[]byte{0xff, 0xff, 0xff, 0xff, 0x4f}, 32, false},          // unused bits not a sign extension
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 32, false},    // too long
		{append(slices.Repeat([]byte{0x80}, 9), 0x7f), 64, true},   // math.MinInt64
		{append(slices.Repeat([]byte{0x80}, 9), 0x3f), 64, false},  // overflows
		{append(slices.Repeat([]byte{0xff}, 9), 0x00), 64, true},   // math.MaxInt64
		{append(slices.Repeat([]byte{0xff}, 10), 0x00), 64, false}, // too long
	}
	for _, tt := range signed {
		r := &reader{b: tt.in, end: len(tt.in), what: "test"}
		r.sleb(tt.bits)
		if (r.err == nil) != tt.ok || (r.err == nil && r.pos != len(tt.in)) {
			t.Errorf("sleb(%x, %d) = %v at %d; want ok %v", tt.in, tt.bits, r.err, r.pos, tt.ok)
		}
	}
}

// TestImportsExports checks the report's lists and that names from the
// module cannot inject text into a message.
func TestImportsExports(t *testing.T) {
	tm := reactor("log", "kv_get")
	tm.imports = append(tm.imports, wasi("fd_write"), testFunc{module: "env", name: "evil\n[critical] all clear\x1b[2J", sig: funcType{}})
	r := mustScan(t, Input{Wasm: tm.bytes()})
	wantImports := []string{"env.evil\n[critical] all clear\x1b[2J", "warden.kv_get", "warden.log", "wasi_snapshot_preview1.fd_write"}
	if !slices.Equal(r.Imports, wantImports) {
		t.Errorf("Imports = %q, want %q", r.Imports, wantImports)
	}
	wantExports := []string{"_initialize", "memory", "warden_abi_version", "warden_alloc", "warden_handle"}
	if !slices.Equal(r.Exports, wantExports) {
		t.Errorf("Exports = %q, want %q", r.Exports, wantExports)
	}
	fs := findRule(r, "wasm.foreign-import")
	if len(fs) != 1 {
		t.Fatalf("foreign-import findings = %+v, want 1", fs)
	}
	if strings.ContainsAny(fs[0].Message, "\n\x1b") || !strings.Contains(fs[0].Message, `"evil\n[critical] all clear\x1b[2J"`) {
		t.Errorf("message = %q, want the name quoted with escapes", fs[0].Message)
	}
}

func TestShown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"secret_get", "secret_get"},
		{"wasi_snapshot_preview1", "wasi_snapshot_preview1"},
		{"", `""`},
		{"a b", `"a b"`},
		{"\x1b[31m", `"\x1b[31m"`},
		{"é", `"\u00e9"`},
		{strings.Repeat("a", 65), `"` + strings.Repeat("a", 64) + `"…`},
		{strings.Repeat("é", 40), `"` + strings.Repeat(`\u00e9`, 32) + `"…`},
	}
	for _, tt := range tests {
		if got := shown(tt.in); got != tt.want {
			t.Errorf("shown(%q) = %q, want %q", tt.in, got, tt.want)
		}
		want := tt.want
		if !strings.HasPrefix(want, `"`) {
			want = `"` + want + `"`
		}
		if got := quoted(tt.in); got != want {
			t.Errorf("quoted(%q) = %q, want %q", tt.in, got, want)
		}
	}
}
