package scan

import (
	"fmt"
	"slices"
	"strings"

	"warden/internal/manifest"
)

// Import modules a warden function may use (docs/abi.md).
const (
	hostModule = "warden"
	wasiModule = "wasi_snapshot_preview1"
)

// grant is what a warden host function needs from the manifest.
type grant int

const (
	grantNone grant = iota
	grantSecrets
	grantKVRead // a KV bucket granted read or write
	grantKVWrite
	grantEgress
)

func (g grant) String() string {
	switch g {
	case grantSecrets:
		return "secret (permissions.secrets)"
	case grantKVRead:
		return "KV bucket (permissions.kv)"
	case grantKVWrite:
		return "KV bucket write access (permissions.kv)"
	case grantEgress:
		return "egress origin (permissions.egress)"
	}
	return "grant"
}

type hostFunc struct {
	needs grant
	sig   funcType
}

// i32 and i64 as funcType strings.
const (
	t32 = string(rune(valI32))
	t64 = string(rune(valI64))
)

// hostFuncs are the functions of the warden host module, with the grant
// each needs and its signature (docs/abi.md, "The warden host module").
var hostFuncs = map[string]hostFunc{
	"log":          {grantNone, funcType{params: t32 + t32 + t32}},
	"secret_get":   {grantSecrets, funcType{params: strings.Repeat(t32, 4), results: t32}},
	"kv_get":       {grantKVRead, funcType{params: strings.Repeat(t32, 6), results: t32}},
	"kv_list":      {grantKVRead, funcType{params: strings.Repeat(t32, 9), results: t32}},
	"kv_set":       {grantKVWrite, funcType{params: strings.Repeat(t32, 6) + t64, results: t32}},
	"kv_delete":    {grantKVWrite, funcType{params: strings.Repeat(t32, 4), results: t32}},
	"http_request": {grantEgress, funcType{params: strings.Repeat(t32, 4), results: t32}},
	"result_take":  {grantNone, funcType{params: t32 + t32, results: t32}},
}

// wasiFuncs are the functions of WASI preview 1.
var wasiFuncs = func() map[string]bool {
	m := make(map[string]bool)
	for _, n := range strings.Fields(`args_get args_sizes_get clock_res_get clock_time_get
		environ_get environ_sizes_get fd_advise fd_allocate fd_close fd_datasync fd_fdstat_get
		fd_fdstat_set_flags fd_fdstat_set_rights fd_filestat_get fd_filestat_set_size
		fd_filestat_set_times fd_pread fd_prestat_get fd_prestat_dir_name fd_pwrite fd_read
		fd_readdir fd_renumber fd_seek fd_sync fd_tell fd_write path_create_directory
		path_filestat_get path_filestat_set_times path_link path_open path_readlink
		path_remove_directory path_rename path_symlink path_unlink_file poll_oneoff proc_exit
		proc_raise random_get sched_yield sock_accept sock_recv sock_send sock_shutdown`) {
		m[n] = true
	}
	return m
}()

// wasiNeverSucceeds reports WASI functions that always fail in warden: it
// preopens no directory and no socket.
func wasiNeverSucceeds(name string) bool {
	return strings.HasPrefix(name, "path_") || strings.HasPrefix(name, "sock_") ||
		strings.HasPrefix(name, "fd_prestat_") || name == "fd_readdir"
}

func importLoc(imp wasmImport) string { return fmt.Sprintf("import %d", imp.index) }

// checkImports compares the module's imports with what warden offers and
// with the manifest's grants.
func (s *scanner) checkImports() {
	used := make(map[grant]bool) // grants the module's warden imports can use
	var never []string
	for _, imp := range s.m.imports {
		full := shown(imp.module) + "." + shown(imp.name)
		if imp.kind != kindFunc {
			s.add(KindWasm, "wasm.non-function-import", High, importLoc(imp),
				fmt.Sprintf("module imports the %s %s: warden gives a module functions only, so the deploy is refused", kindNames[imp.kind], full))
			continue
		}
		switch imp.module {
		case hostModule:
			h, ok := hostFuncs[imp.name]
			if !ok {
				s.add(KindWasm, "wasm.unknown-host-import", High, importLoc(imp),
					fmt.Sprintf("module imports %s, which the warden host module does not have: the deploy is refused", full))
				continue
			}
			if sig, ok := s.m.funcSig(imp.funcIdx); ok && sig != h.sig {
				s.add(KindWasm, "wasm.host-import-signature", High, importLoc(imp),
					fmt.Sprintf("module imports %s with the signature %s, not %s (docs/abi.md): the deploy is refused", full, sig, h.sig))
			}
			used[h.needs] = true
			if h.needs == grantKVWrite {
				used[grantKVRead] = true
			}
			if s.in.Manifest != nil && !granted(s.in.Manifest.Permissions, h.needs) {
				s.add(KindWasm, "wasm.import-without-grant", Medium, importLoc(imp),
					fmt.Sprintf("module imports %s but the manifest grants no %s: every call will be denied", full, h.needs))
			}
		case wasiModule:
			if !wasiFuncs[imp.name] {
				s.add(KindWasm, "wasm.unknown-wasi-import", High, importLoc(imp),
					fmt.Sprintf("module imports %s, which is not a WASI preview 1 function: the deploy is refused", full))
			} else if wasiNeverSucceeds(imp.name) {
				never = append(never, imp.name)
			}
		default:
			s.add(KindWasm, "wasm.foreign-import", High, importLoc(imp),
				fmt.Sprintf("module imports %s: only %s and %s functions may be imported, so the deploy is refused", full, hostModule, wasiModule))
		}
	}
	if len(never) > 0 {
		slices.Sort(never)
		never = slices.Compact(never)
		s.add(KindWasm, "wasm.wasi-never-succeeds", Info, "",
			fmt.Sprintf("module imports WASI functions that always fail in warden, which preopens no directory and no socket: %s", strings.Join(never, ", ")))
	}
	if s.in.Manifest != nil {
		s.unusedGrants(used)
	}
}

func granted(p manifest.Permissions, g grant) bool {
	switch g {
	case grantSecrets:
		return len(p.Secrets) > 0
	case grantKVRead:
		return len(p.KV) > 0
	case grantKVWrite:
		for _, mode := range p.KV {
			if mode == "write" {
				return true
			}
		}
		return false
	case grantEgress:
		return len(p.Egress) > 0
	}
	return true
}

// unusedGrants reports grants the module can never use: least privilege
// says remove them.
func (s *scanner) unusedGrants(used map[grant]bool) {
	p := s.in.Manifest.Permissions
	if !used[grantSecrets] {
		for i, name := range p.Secrets {
			s.add(KindWasm, "wasm.grant-not-imported", Medium, s.manifestLoc(fmt.Sprintf("permissions.secrets[%d]", i)),
				fmt.Sprintf("the manifest grants the secret %s but the module does not import warden.secret_get: the grant can never be used, and least privilege says remove it", name))
		}
	}
	buckets := make([]string, 0, len(p.KV))
	for b := range p.KV {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	for _, b := range buckets {
		path := "permissions.kv." + b
		switch {
		case !used[grantKVRead]:
			s.add(KindWasm, "wasm.grant-not-imported", Medium, s.manifestLoc(path),
				fmt.Sprintf("the manifest grants the KV bucket %s (%s) but the module imports no kv_* function: the grant can never be used, and least privilege says remove it", b, p.KV[b]))
		case p.KV[b] == "write" && !used[grantKVWrite]:
			s.add(KindLint, "lint.kv-write-unused", Low, s.manifestLoc(path),
				fmt.Sprintf("the manifest grants the KV bucket %s write access but the module imports neither warden.kv_set nor warden.kv_delete: grant read instead", b))
		}
	}
	if !used[grantEgress] {
		for i, origin := range p.Egress {
			s.add(KindWasm, "wasm.grant-not-imported", Medium, s.manifestLoc(fmt.Sprintf("permissions.egress[%d]", i)),
				fmt.Sprintf("the manifest grants egress to %s but the module does not import warden.http_request: the grant can never be used, and least privilege says remove it", origin))
		}
	}
}

// Exports each ABI requires (docs/abi.md), besides the memory.
const exportMemory = "memory"

var abiExports = map[manifest.ABI][]struct {
	name string
	sig  funcType
}{
	manifest.ABIWagi: {
		{"_start", funcType{}},
	},
	manifest.ABIReactor: {
		{"_initialize", funcType{}},
		{"warden_abi_version", funcType{results: t32}},
		{"warden_alloc", funcType{params: t32, results: t32}},
		{"warden_handle", funcType{params: t32 + t32, results: t64}},
	},
}

// checkExports checks the exports the manifest's ABI requires.
func (s *scanner) checkExports() {
	if s.in.Manifest == nil {
		return
	}
	abi := s.in.Manifest.ABI
	want, ok := abiExports[abi]
	if !ok {
		return // the manifest parser refuses unknown ABIs
	}
	byName := make(map[string]wasmExport, len(s.m.exports))
	for _, e := range s.m.exports {
		byName[e.name] = e
	}
	hint := ""
	if abi == manifest.ABIReactor {
		hint = " (build with -buildmode=c-shared and the warden SDK)"
	}
	if e, ok := byName[exportMemory]; !ok || e.kind != kindMemory {
		s.add(KindWasm, "wasm.abi-export-missing", Critical, "",
			fmt.Sprintf("module does not export its memory as %q, which every ABI requires: the deploy is refused", exportMemory))
	}
	for _, w := range want {
		e, ok := byName[w.name]
		switch {
		case !ok || e.kind != kindFunc:
			s.add(KindWasm, "wasm.abi-export-missing", Critical, "",
				fmt.Sprintf("module lacks the %s export %s, a function%s: the deploy is refused", abi, w.name, hint))
		default:
			if sig, ok := s.m.funcSig(e.index); !ok || sig != w.sig {
				s.add(KindWasm, "wasm.abi-export-signature", Critical, "",
					fmt.Sprintf("module exports %s with the signature %s, not %s as the %s ABI requires: the deploy is refused", w.name, sigString(s.m, e.index), w.sig, abi))
			}
		}
	}
}

func sigString(m *wasmModule, idx uint32) string {
	if sig, ok := m.funcSig(idx); ok {
		return sig.String()
	}
	return "(unknown: the function index is out of range)"
}

// String writes a signature as in docs/abi.md: "(i32, i32) -> i64".
func (t funcType) String() string {
	name := func(s string) string {
		var parts []string
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case valI32:
				parts = append(parts, "i32")
			case valI64:
				parts = append(parts, "i64")
			case valF32:
				parts = append(parts, "f32")
			case valF64:
				parts = append(parts, "f64")
			case valV128:
				parts = append(parts, "v128")
			case valFuncref:
				parts = append(parts, "funcref")
			case valExternref:
				parts = append(parts, "externref")
			}
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return name(t.params) + " -> " + name(t.results)
}
