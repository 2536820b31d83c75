package scan

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"warden/internal/manifest"
)

// producers encodes a producers section naming the Go toolchain.
func producers(goVersion string) string {
	return string(cat(uleb(2),
		wstr("language"), uleb(1), wstr("Go"), wstr(goVersion),
		wstr("processed-by"), uleb(1), wstr("Go cmd/compile"), wstr(goVersion)))
}

const modInfo = "path\texample.com/fn\n" +
	"mod\texample.com/fn\t(devel)\t\n" +
	"dep\tgithub.com/b/lib\tv1.2.0\th1:bbbb=\n" +
	"dep\tgithub.com/a/old\tv0.1.0\th1:aaaa=\n" +
	"=>\tgithub.com/a/fork\tv0.1.1\th1:ffff=\n" +
	"dep\tgolang.org/x/text\tv0.3.0+incompatible\n" +
	"build\t-buildmode=c-shared\n" +
	"build\tGOOS=wasip1\n"

func block(text string) string { return string(infoStart) + text + string(infoEnd) }

func TestBuildInfo(t *testing.T) {
	tests := []struct {
		name      string
		tm        testModule
		goVersion string
		main      *Module
		modules   []Module
		finding   string // rule of the one build info finding, or ""
		loc       string
	}{
		{"block in a segment", testModule{
			data:   [][]byte{[]byte("runtime data"), []byte("\x00\x00" + block(modInfo) + "\x00more")},
			custom: [][2]string{{"producers", producers("go1.26.0")}}},
			"go1.26.0", &Module{Path: "example.com/fn", Version: "(devel)"},
			[]Module{
				{Path: "github.com/a/fork", Version: "v0.1.1", Sum: "h1:ffff="},
				{Path: "github.com/b/lib", Version: "v1.2.0", Sum: "h1:bbbb="},
				{Path: "golang.org/x/text", Version: "v0.3.0+incompatible"},
			}, "", ""},
		{"not a Go module", testModule{data: [][]byte{[]byte("C strings only")}}, "", nil, nil, "", ""},
		{"Go module without block", testModule{custom: [][2]string{{"producers", producers("go1.26.0")}}},
			"go1.26.0", nil, nil, "wasm.buildinfo-unreadable", ""},
		{"truncated block", testModule{data: [][]byte{[]byte("xx" + string(infoStart) + modInfo[:20])}},
			"", nil, nil, "wasm.buildinfo-unreadable", "data segment 0 +0x2"},
		{"garbage between sentinels", testModule{data: [][]byte{[]byte(block("\x01\x02\xff\xfe binary"))}},
			"", nil, nil, "wasm.buildinfo-unreadable", "data segment 0 +0x0"},
		{"text that is no build info", testModule{data: [][]byte{[]byte(block("hello\nworld\n"))}},
			"", nil, nil, "wasm.buildinfo-unreadable", "data segment 0 +0x0"},
		{"bad module path", testModule{data: [][]byte{[]byte(block("path\tx\nmod\tx\t(devel)\t\ndep\tbad path!\tv1.0.0\n"))}},
			"", nil, nil, "wasm.buildinfo-unreadable", "data segment 0 +0x0"},
		{"second block differs", testModule{data: [][]byte{
			[]byte(block(modInfo)),
			[]byte(block("path\texample.com/other\nmod\texample.com/other\tv1.0.0\t\n"))}},
			"", &Module{Path: "example.com/fn", Version: "(devel)"}, nil, "wasm.buildinfo-ambiguous", ""},
		{"bad producers version", testModule{custom: [][2]string{{"producers", producers("go1.26\n0")}}},
			"", nil, nil, "", ""},
		{"malformed producers", testModule{custom: [][2]string{{"producers", "\x05\x01"}}},
			"", nil, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustScan(t, Input{Wasm: tt.tm.bytes()})
			if r.GoVersion != tt.goVersion {
				t.Errorf("GoVersion = %q, want %q", r.GoVersion, tt.goVersion)
			}
			if (r.Main == nil) != (tt.main == nil) || r.Main != nil && *r.Main != *tt.main {
				t.Errorf("Main = %+v, want %+v", r.Main, tt.main)
			}
			if tt.modules != nil && !slices.Equal(r.Modules, tt.modules) {
				t.Errorf("Modules = %+v, want %+v", r.Modules, tt.modules)
			}
			if tt.main == nil && r.Modules != nil {
				t.Errorf("Modules = %+v, want none", r.Modules)
			}
			var got []Finding
			for _, f := range r.Findings {
				if strings.HasPrefix(f.Rule, "wasm.buildinfo") {
					got = append(got, f)
				}
			}
			switch {
			case tt.finding == "" && len(got) != 0:
				t.Errorf("build info findings = %+v, want none", got)
			case tt.finding != "" && (len(got) != 1 || got[0].Rule != tt.finding || got[0].Location != tt.loc || got[0].Severity != Info):
				t.Errorf("build info findings = %+v, want one %s (info) at %q", got, tt.finding, tt.loc)
			}
		})
	}
}

// TestExample scans a real Go reactor, examples/echo-json, with its
// manifest: the toolchain and module come from the binary, and the Go
// runtime's megabyte of data raises no credential finding.
func TestExample(t *testing.T) {
	wasm := exampleModule(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "echo-json", "warden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("warden.yaml", raw)
	if err != nil {
		t.Fatal(err)
	}
	r := mustScan(t, Input{Wasm: wasm, Manifest: m, ManifestRaw: raw, ManifestName: "warden.yaml"})
	if r.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", r.GoVersion, runtime.Version())
	}
	if r.Main == nil || r.Main.Path != "warden" {
		t.Errorf("Main = %+v, want warden", r.Main)
	}
	if !slices.Contains(r.Imports, "warden.log") || !slices.Contains(r.Imports, "wasi_snapshot_preview1.fd_write") {
		t.Errorf("Imports = %q, want warden.log and wasi_snapshot_preview1.fd_write among them", r.Imports)
	}
	for _, e := range []string{"memory", "_initialize", "warden_abi_version", "warden_alloc", "warden_handle"} {
		if !slices.Contains(r.Exports, e) {
			t.Errorf("Exports = %q, want %s", r.Exports, e)
		}
	}
	// The manifest says POST without auth or rate limit; the Go runtime
	// imports fd_prestat_*. Nothing else.
	want := []string{"lint.auth-none-write", "lint.no-rate-limit", "wasm.wasi-never-succeeds"}
	if got := rules(r); !slices.Equal(got, want) {
		t.Errorf("findings = %q, want %q\n%+v", got, want, r.Findings)
	}
}
