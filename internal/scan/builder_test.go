package scan

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"warden/internal/manifest"
)

// Hand-built WebAssembly modules: small, fast, and exact about what they
// hold.

func uleb(v uint64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func wstr(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// vec is a count followed by the items.
func vec(items ...[]byte) []byte { return cat(uleb(uint64(len(items))), cat(items...)) }

func section(id byte, body []byte) []byte {
	return cat([]byte{id}, uleb(uint64(len(body))), body)
}

func customSec(name string, payload []byte) []byte {
	return section(secCustom, cat(wstr(name), payload))
}

var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

// testFunc is a function import or export with its signature.
type testFunc struct {
	module, name string // module only for imports
	sig          funcType
}

// testModule describes a module; bytes encodes it.
type testModule struct {
	imports      []testFunc
	extraImports [][]byte // raw import entries (non-function kinds)
	funcs        []testFunc
	exportMemory bool
	data         [][]byte
	custom       [][2]string // name, payload; placed after the data section
}

func (tm testModule) bytes() []byte {
	var types []funcType
	typeIdx := func(t funcType) uint64 {
		for i, have := range types {
			if have == t {
				return uint64(i)
			}
		}
		types = append(types, t)
		return uint64(len(types) - 1)
	}
	var imps, funcs, exps, codes, datas [][]byte
	for _, f := range tm.imports {
		imps = append(imps, cat(wstr(f.module), wstr(f.name), []byte{kindFunc}, uleb(typeIdx(f.sig))))
	}
	imps = append(imps, tm.extraImports...)
	for i, f := range tm.funcs {
		funcs = append(funcs, uleb(typeIdx(f.sig)))
		exps = append(exps, cat(wstr(f.name), []byte{kindFunc}, uleb(uint64(len(tm.imports)+i))))
		body := []byte{0x00} // no locals
		for _, r := range f.sig.results {
			switch byte(r) {
			case valI64:
				body = append(body, 0x42, 0x00)
			default:
				body = append(body, 0x41, 0x00)
			}
		}
		codes = append(codes, cat(uleb(uint64(len(body)+1)), body, []byte{0x0b}))
	}
	if tm.exportMemory {
		exps = append(exps, cat(wstr(exportMemory), []byte{kindMemory, 0}))
	}
	for _, d := range tm.data {
		datas = append(datas, cat([]byte{0x00, 0x41, 0x00, 0x0b}, uleb(uint64(len(d))), d))
	}
	var typeSec [][]byte
	for _, t := range types {
		typeSec = append(typeSec, cat([]byte{0x60}, wstr(t.params), wstr(t.results)))
	}
	out := cat(wasmHeader, section(secType, vec(typeSec...)))
	if len(imps) > 0 {
		out = cat(out, section(secImport, vec(imps...)))
	}
	out = cat(out, section(secFunction, vec(funcs...)))
	out = cat(out, section(secMemory, vec([]byte{0x00, 0x01})))
	out = cat(out, section(secExport, vec(exps...)))
	out = cat(out, section(secCode, vec(codes...)))
	if len(datas) > 0 {
		out = cat(out, section(secData, vec(datas...)))
	}
	for _, c := range tm.custom {
		out = cat(out, customSec(c[0], []byte(c[1])))
	}
	return out
}

func host(name string) testFunc {
	return testFunc{module: hostModule, name: name, sig: hostFuncs[name].sig}
}

func wasi(name string) testFunc {
	return testFunc{module: wasiModule, name: name, sig: funcType{params: t32, results: t32}}
}

func reactorFuncs() []testFunc {
	var fs []testFunc
	for _, e := range abiExports[manifest.ABIReactor] {
		fs = append(fs, testFunc{name: e.name, sig: e.sig})
	}
	return fs
}

func wagiFuncs() []testFunc {
	return []testFunc{{name: "_start"}}
}

// reactor returns a complete reactor module importing the given warden
// host functions.
func reactor(hostImports ...string) testModule {
	tm := testModule{funcs: reactorFuncs(), exportMemory: true}
	for _, n := range hostImports {
		tm.imports = append(tm.imports, host(n))
	}
	return tm
}

// manifestYAML returns a manifest with the given abi and extra YAML, and
// its parsed form.
func manifestYAML(t testing.TB, abi, extra string) ([]byte, *manifest.Manifest) {
	t.Helper()
	raw := []byte("name: fn\nartifact: ./fn.wasm\nabi: " + abi + "\n" + extra)
	m, err := manifest.Parse("warden.yaml", raw)
	if err != nil {
		t.Fatalf("manifest.Parse(%q): %v", raw, err)
	}
	return raw, m
}

func mustScan(t testing.TB, in Input) *Report {
	t.Helper()
	r, err := Scan(in)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return r
}

// rules returns the rule ids of r's findings.
func rules(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Rule)
	}
	return out
}

func findRule(r *Report, rule string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

// Real Go modules, built as the Makefile builds them, once per test binary,
// into a temporary directory that TestMain removes.
var (
	guestMu   sync.Mutex
	guestDir  string
	guestWasm = map[string][]byte{}
)

func goTool() (string, bool) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, true
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	_, err := os.Stat(p)
	return p, err == nil
}

// buildGuest builds the package pkg (relative to the module root) for
// wasip1, as a reactor (-buildmode=c-shared) or a command, and returns the
// module; it skips the test when there is no go command.
func buildGuest(t testing.TB, pkg string, reactor bool) []byte {
	t.Helper()
	goCmd, ok := goTool()
	if !ok {
		t.Skip("skipped: no go command to build " + pkg + " with")
	}
	guestMu.Lock()
	defer guestMu.Unlock()
	if b, ok := guestWasm[pkg]; ok {
		return b
	}
	if guestDir == "" {
		dir, err := os.MkdirTemp("", "warden-scan-test-")
		if err != nil {
			t.Fatal(err)
		}
		guestDir = dir
	}
	out := filepath.Join(guestDir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg)+".wasm")
	args := []string{"build", "-o", out}
	if reactor {
		args = append(args, "-buildmode=c-shared")
	}
	cmd := exec.Command(goCmd, append(args, pkg)...)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	guestWasm[pkg] = b
	return b
}

// exampleModule returns examples/echo-json, a 3.3 MB Go reactor.
func exampleModule(t testing.TB) []byte {
	return buildGuest(t, "./examples/echo-json", true)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guestDir != "" {
		os.RemoveAll(guestDir)
	}
	os.Exit(code)
}
