package scan

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"warden/internal/manifest"
)

// TestGrants checks each import against the manifest's grants, from both
// sides: an import whose call is always denied, and a grant the module can
// never use. Each case lists the findings it must produce (rule, severity,
// location, words of the message) and must produce no other grant finding.
func TestGrants(t *testing.T) {
	type want struct {
		rule     string
		sev      Severity
		loc      string
		contains []string
	}
	tests := []struct {
		name    string
		imports []string // warden functions
		perms   string   // YAML under permissions:
		want    []want
	}{
		{"log and result_take need nothing", []string{"log", "result_take"}, "", nil},
		{"secret_get without secrets", []string{"secret_get"}, "",
			[]want{{"wasm.import-without-grant", Medium, "import 0", []string{"warden.secret_get", "permissions.secrets", "denied"}}}},
		{"secret_get with a secret", []string{"secret_get"}, "  secrets: [API_KEY]\n", nil},
		{"secret granted, not imported", []string{"log"}, "  secrets: [API_KEY, OTHER]\n",
			[]want{
				{"wasm.grant-not-imported", Medium, "warden.yaml:5 (permissions.secrets[0])", []string{"API_KEY", "least privilege"}},
				{"wasm.grant-not-imported", Medium, "warden.yaml:5 (permissions.secrets[1])", []string{"OTHER"}},
			}},
		{"kv_get without kv", []string{"kv_get", "kv_list"}, "",
			[]want{
				{"wasm.import-without-grant", Medium, "import 0", []string{"warden.kv_get", "permissions.kv"}},
				{"wasm.import-without-grant", Medium, "import 1", []string{"warden.kv_list"}},
			}},
		{"kv_get with read", []string{"kv_get"}, "  kv: {cache: read}\n", nil},
		{"kv_set with read only", []string{"kv_get", "kv_set"}, "  kv: {cache: read}\n",
			[]want{{"wasm.import-without-grant", Medium, "import 1", []string{"warden.kv_set", "write"}}}},
		{"kv_delete with write", []string{"kv_delete"}, "  kv: {cache: write}\n", nil},
		{"kv write but only reads", []string{"kv_get"}, "  kv:\n    cache: write\n    other_bucket: read\n",
			[]want{{"lint.kv-write-unused", Low, "warden.yaml:6 (permissions.kv.cache)", []string{"cache", "read instead"}}}},
		{"kv granted, no kv import", []string{"log"}, "  kv:\n    cache: write\n    my-bucket: read\n",
			[]want{
				{"wasm.grant-not-imported", Medium, "warden.yaml:6 (permissions.kv.cache)", []string{"cache"}},
				{"wasm.grant-not-imported", Medium, "warden.yaml:7 (permissions.kv.my-bucket)", []string{"my-bucket"}},
			}},
		{"http_request without egress", []string{"http_request"}, "",
			[]want{{"wasm.import-without-grant", Medium, "import 0", []string{"warden.http_request", "permissions.egress"}}}},
		{"http_request with egress", []string{"http_request"}, "  egress: [\"https://api.example.com\"]\n", nil},
		{"egress granted, not imported", nil, "  egress:\n    - https://api.example.com\n",
			[]want{{"wasm.grant-not-imported", Medium, "warden.yaml:6 (permissions.egress[0])", []string{"https://api.example.com", "http_request"}}}},
		{"everything matches", []string{"log", "secret_get", "kv_get", "kv_set", "http_request", "result_take"},
			"  secrets: [K]\n  kv: {b: write}\n  egress: [\"https://a.example.com\"]\n", nil},
	}
	grantRules := []string{"wasm.import-without-grant", "wasm.grant-not-imported", "lint.kv-write-unused"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.perms != "" {
				extra = "permissions:\n" + tt.perms
			}
			raw, m := manifestYAML(t, "reactor", extra)
			r := mustScan(t, Input{Wasm: reactor(tt.imports...).bytes(), Manifest: m, ManifestRaw: raw})
			var got []Finding
			for _, f := range r.Findings {
				if slices.Contains(grantRules, f.Rule) {
					got = append(got, f)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("grant findings = %+v, want %d: %+v", got, len(tt.want), tt.want)
			}
			for _, w := range tt.want {
				i := slices.IndexFunc(got, func(f Finding) bool { return f.Rule == w.rule && f.Location == w.loc })
				if i < 0 {
					t.Errorf("no %s at %q in %+v", w.rule, w.loc, got)
					continue
				}
				f := got[i]
				if f.Severity != w.sev {
					t.Errorf("%s severity = %s, want %s", w.rule, f.Severity, w.sev)
				}
				wantKind := KindWasm
				if strings.HasPrefix(w.rule, "lint.") {
					wantKind = KindLint
				}
				if f.Kind != wantKind {
					t.Errorf("%s kind = %s, want %s", w.rule, f.Kind, wantKind)
				}
				for _, c := range w.contains {
					if !strings.Contains(f.Message, c) {
						t.Errorf("%s message = %q, want it to mention %q", w.rule, f.Message, c)
					}
				}
			}
		})
	}
}

// TestForeignImports covers imports warden refuses at deploy or that can
// never succeed.
func TestForeignImports(t *testing.T) {
	memImport := cat(wstr("env"), wstr("memory"), []byte{kindMemory, 0x00, 0x01})
	tests := []struct {
		name    string
		tm      testModule
		rule    string
		sev     Severity
		message string
	}{
		{"unknown warden function", testModule{imports: []testFunc{{module: hostModule, name: "fs_open"}}},
			"wasm.unknown-host-import", High, "warden.fs_open"},
		{"warden function, wrong signature", testModule{imports: []testFunc{{module: hostModule, name: "secret_get", sig: funcType{params: t32}}}},
			"wasm.host-import-signature", High, "(i32) -> ()"},
		{"another module", testModule{imports: []testFunc{{module: "env", name: "abort"}}},
			"wasm.foreign-import", High, "env.abort"},
		{"the fuel module", testModule{imports: []testFunc{{module: "warden_fuel", name: "tick"}}},
			"wasm.foreign-import", High, "warden_fuel.tick"},
		{"unknown WASI function", testModule{imports: []testFunc{wasi("sock_open")}},
			"wasm.unknown-wasi-import", High, "wasi_snapshot_preview1.sock_open"},
		{"memory import", testModule{extraImports: [][]byte{memImport}},
			"wasm.non-function-import", High, "memory env.memory"},
		{"WASI that never succeeds", testModule{imports: []testFunc{wasi("fd_write"), wasi("sock_accept"), wasi("path_open"), wasi("fd_prestat_get"), wasi("fd_readdir")}},
			"wasm.wasi-never-succeeds", Info, "fd_prestat_get, fd_readdir, path_open, sock_accept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustScan(t, Input{Wasm: tt.tm.bytes()})
			fs := findRule(r, tt.rule)
			if len(fs) != 1 {
				t.Fatalf("findings %s = %+v, want 1 (all: %v)", tt.rule, fs, rules(r))
			}
			if fs[0].Severity != tt.sev || fs[0].Kind != KindWasm || !strings.Contains(fs[0].Message, tt.message) {
				t.Errorf("finding = %+v, want kind wasm, severity %s, message with %q", fs[0], tt.sev, tt.message)
			}
			if tt.rule == "wasm.wasi-never-succeeds" && strings.Contains(fs[0].Message, "fd_write") {
				t.Errorf("message %q lists fd_write, which works", fs[0].Message)
			}
		})
	}
	// The same functions, correctly imported, raise none of these.
	ok := reactor("log", "secret_get")
	ok.imports = append(ok.imports, wasi("fd_write"), wasi("random_get"))
	r := mustScan(t, Input{Wasm: ok.bytes()})
	if len(r.Findings) != 0 {
		t.Errorf("findings for a clean module = %+v, want none", r.Findings)
	}
}

// TestABIExports checks the exports each ABI requires.
func TestABIExports(t *testing.T) {
	without := func(fs []testFunc, name string) []testFunc {
		return slices.DeleteFunc(slices.Clone(fs), func(f testFunc) bool { return f.name == name })
	}
	wrongSig := reactorFuncs()
	for i := range wrongSig {
		if wrongSig[i].name == "warden_handle" {
			wrongSig[i].sig = funcType{params: t32 + t32, results: t32}
		}
	}
	tests := []struct {
		name string
		abi  manifest.ABI
		tm   testModule
		want []string // messages of abi findings, in any order
	}{
		{"complete reactor", manifest.ABIReactor, testModule{funcs: reactorFuncs(), exportMemory: true}, nil},
		{"complete wagi", manifest.ABIWagi, testModule{funcs: wagiFuncs(), exportMemory: true}, nil},
		{"wagi without _start", manifest.ABIWagi, testModule{exportMemory: true}, []string{"_start"}},
		{"wagi without memory", manifest.ABIWagi, testModule{funcs: wagiFuncs()}, []string{`"memory"`}},
		{"reactor without warden_handle", manifest.ABIReactor, testModule{funcs: without(reactorFuncs(), "warden_handle"), exportMemory: true}, []string{"warden_handle"}},
		{"reactor built as a command", manifest.ABIReactor, testModule{funcs: wagiFuncs(), exportMemory: true},
			[]string{"_initialize", "warden_abi_version", "warden_alloc", "warden_handle"}},
		{"reactor with a wrong signature", manifest.ABIReactor, testModule{funcs: wrongSig, exportMemory: true}, []string{"warden_handle with the signature (i32, i32) -> (i32), not (i32, i32) -> (i64)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, m := manifestYAML(t, string(tt.abi), "")
			r := mustScan(t, Input{Wasm: tt.tm.bytes(), Manifest: m, ManifestRaw: raw})
			var got []Finding
			for _, f := range r.Findings {
				if strings.HasPrefix(f.Rule, "wasm.abi-") {
					got = append(got, f)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ABI findings = %+v, want %d", got, len(tt.want))
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(got, func(f Finding) bool {
					return strings.Contains(f.Message, w) && f.Severity == Critical
				}) {
					t.Errorf("no critical ABI finding mentions %q in %+v", w, got)
				}
			}
		})
	}
	// Without a manifest there is no ABI to check.
	if r := mustScan(t, Input{Wasm: (testModule{}).bytes()}); len(r.Findings) != 0 {
		t.Errorf("findings without a manifest = %+v, want none", r.Findings)
	}
}

// TestHostFuncsMatchABI checks hostFuncs against the normative table in
// docs/abi.md ("The warden host module"), which internal/sandbox
// implements: a function added or changed there must be added here.
func TestHostFuncsMatchABI(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "abi.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| `\\(([^)]*)\\)(?: -> (i32|i64|\\(\\)))?` \\|$")
	types := map[string]string{"i32": t32, "i64": t64}
	seen := 0
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		name := m[1]
		var want funcType
		for _, p := range strings.Split(m[2], ",") {
			if f := strings.Fields(p); len(f) == 2 {
				want.params += types[f[1]]
			}
		}
		want.results = types[m[3]]
		h, ok := hostFuncs[name]
		if !ok {
			t.Errorf("docs/abi.md lists warden.%s; hostFuncs does not", name)
			continue
		}
		if h.sig != want {
			t.Errorf("hostFuncs[%q] = %s, docs/abi.md says %s", name, h.sig, want)
		}
		seen++
	}
	if seen != len(hostFuncs) {
		t.Errorf("docs/abi.md lists %d host functions, hostFuncs has %d", seen, len(hostFuncs))
	}
}

// TestWASIFuncsMatchWazero checks wasiFuncs against what the sandbox's
// runtime offers.
func TestWASIFuncsMatchWazero(t *testing.T) {
	ctx := t.Context()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	defs := rt.Module(wasiModule).ExportedFunctionDefinitions()
	for name := range defs {
		if !wasiFuncs[name] {
			t.Errorf("wazero exports %s.%s; wasiFuncs lacks it", wasiModule, name)
		}
	}
	for name := range wasiFuncs {
		if _, ok := defs[name]; !ok {
			t.Errorf("wasiFuncs has %s, which wazero does not export", name)
		}
	}
}
