package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"warden/internal/manifest"
)

// Reactor ABI exports (see docs/abi.md).
const (
	ReactorABIVersion = 1 // what warden_abi_version must return

	exportInitialize = "_initialize"
	exportStart      = "_start"
	exportABIVersion = "warden_abi_version"
	exportAlloc      = "warden_alloc"
	exportHandle     = "warden_handle"
	exportMemory     = "memory"
)

type exportSig struct {
	name            string
	params, results []api.ValueType
}

var abiExports = map[manifest.ABI][]exportSig{
	manifest.ABIWagi: {
		{name: exportStart},
	},
	manifest.ABIReactor: {
		{name: exportInitialize},
		{name: exportABIVersion, results: []api.ValueType{api.ValueTypeI32}},
		{name: exportAlloc, params: []api.ValueType{api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI32}},
		{name: exportHandle, params: []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI64}},
	},
}

// Check compiles wasm for the ABI ahead of a deploy (filling the compilation
// cache) and refuses, with a clear reason, a module that does not compile,
// lacks the ABI's required exports, or imports anything other than
// wasi_snapshot_preview1 and the "warden" host module functions that exist
// (with their exact signatures). Memory, table and global imports are
// refused: a guest brings its own.
//
// The returned error is safe to show to the deployer.
func (e *Engine) Check(ctx context.Context, abi manifest.ABI, wasm []byte) error {
	if !validABI(abi) {
		return fmt.Errorf("unknown abi %q (want %q or %q)", abi, manifest.ABIReactor, manifest.ABIWagi)
	}
	c, err := prepare(wasm)
	if err != nil {
		return err
	}
	// Compile what the function will run, so that the cache holds it.
	rt := wazero.NewRuntimeWithConfig(ctx, e.runtimeConfig(0, c.metered))
	defer rt.Close(context.WithoutCancel(ctx))
	compiled, err := rt.CompileModule(ctx, c.wasm)
	if err != nil && c.metered {
		// Report what is wrong with the deployer's module, in its own
		// function numbering, not the instrumented one's.
		ort := wazero.NewRuntimeWithConfig(ctx, e.runtimeConfig(0, false))
		defer ort.Close(context.WithoutCancel(ctx))
		if _, oerr := ort.CompileModule(ctx, wasm); oerr != nil {
			err = oerr
		}
	}
	if err != nil {
		return fmt.Errorf("module does not compile: %w", err)
	}
	defer compiled.Close(context.WithoutCancel(ctx))

	imports, err := readImports(wasm)
	if err != nil {
		return fmt.Errorf("module does not compile: %w", err)
	}
	wasiFuncs, err := wasiDefinitions(ctx, rt)
	if err != nil {
		return err
	}
	for _, imp := range imports {
		switch {
		case imp.kind != importFunc:
			return fmt.Errorf("module imports %s %s.%s: only functions may be imported", imp.kind, imp.module, imp.name)
		case imp.module == wasi_snapshot_preview1.ModuleName:
			if _, ok := wasiFuncs[imp.name]; !ok {
				return fmt.Errorf("module imports unknown WASI function %s.%s", imp.module, imp.name)
			}
		case imp.module == HostModule:
			if lookupHostFunc(imp.name) == nil {
				return fmt.Errorf("module imports unknown host function %s.%s", imp.module, imp.name)
			}
		default:
			return fmt.Errorf("module imports %s.%s: only %s and %s may be imported", imp.module, imp.name, wasi_snapshot_preview1.ModuleName, HostModule)
		}
	}
	for _, def := range compiled.ImportedFunctions() {
		mod, name, _ := def.Import()
		var params, results []api.ValueType
		if c.metered && mod == fuelModule {
			continue // added by prepare
		}
		if mod == HostModule {
			h := lookupHostFunc(name)
			params, results = h.params, h.results
		} else {
			w := wasiFuncs[name]
			params, results = w.ParamTypes(), w.ResultTypes()
		}
		if !slices.Equal(def.ParamTypes(), params) || !slices.Equal(def.ResultTypes(), results) {
			return fmt.Errorf("module imports %s.%s with the wrong signature", mod, name)
		}
	}
	return checkExports(abi, compiled)
}

// checkExports verifies the exports the ABI needs.
func checkExports(abi manifest.ABI, compiled wazero.CompiledModule) error {
	if _, ok := compiled.ExportedMemories()[exportMemory]; !ok {
		return fmt.Errorf("module does not export its memory as %q", exportMemory)
	}
	funcs := compiled.ExportedFunctions()
	for _, want := range abiExports[abi] {
		def, ok := funcs[want.name]
		if !ok {
			hint := ""
			if abi == manifest.ABIReactor {
				hint = " (build with -buildmode=c-shared and the warden SDK)"
			}
			return fmt.Errorf("module lacks the %s export %q%s", abi, want.name, hint)
		}
		if !slices.Equal(def.ParamTypes(), want.params) || !slices.Equal(def.ResultTypes(), want.results) {
			return fmt.Errorf("module exports %q with the wrong signature", want.name)
		}
	}
	return nil
}

func wasiDefinitions(ctx context.Context, rt wazero.Runtime) (map[string]api.FunctionDefinition, error) {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, fmt.Errorf("instantiate wasi: %w", err)
	}
	return rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions(), nil
}

type importKind byte

const (
	importFunc importKind = iota
	importTable
	importMemory
	importGlobal
	importTag
)

func (k importKind) String() string {
	switch k {
	case importFunc:
		return "function"
	case importTable:
		return "table"
	case importMemory:
		return "memory"
	case importGlobal:
		return "global"
	case importTag:
		return "tag"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

type wasmImport struct {
	module, name string
	kind         importKind
}

var errMalformed = errors.New("malformed module")

// readImports reads the import section of a wasm binary. It is only called
// on modules wazero compiled, but still bounds-checks every read.
func readImports(b []byte) ([]wasmImport, error) {
	if len(b) < 8 {
		return nil, errMalformed
	}
	r := &wasmReader{b: b[8:]}
	for len(r.b) > 0 {
		id := r.byte()
		size := r.u32()
		sec := r.bytes(size)
		if r.err != nil {
			return nil, r.err
		}
		if id != 2 {
			continue
		}
		s := &wasmReader{b: sec}
		n := s.u32()
		var out []wasmImport
		for i := uint32(0); i < n && s.err == nil; i++ {
			mod := string(s.bytes(s.u32()))
			name := string(s.bytes(s.u32()))
			kind := importKind(s.byte())
			switch kind {
			case importFunc:
				s.u32() // type index
			case importTable:
				s.byte() // reftype
				s.limits()
			case importMemory:
				s.limits()
			case importGlobal:
				s.byte() // valtype
				s.byte() // mutability
			case importTag:
				s.byte()
				s.u32()
			default:
				return nil, errMalformed
			}
			out = append(out, wasmImport{module: mod, name: name, kind: kind})
		}
		return out, s.err
	}
	return nil, nil
}

type wasmReader struct {
	b   []byte
	err error
}

func (r *wasmReader) byte() byte {
	if len(r.b) < 1 {
		r.err = errMalformed
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wasmReader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = errMalformed
	return 0
}

func (r *wasmReader) bytes(n uint32) []byte {
	if r.err != nil || uint64(n) > uint64(len(r.b)) {
		r.err = errMalformed
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *wasmReader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}
