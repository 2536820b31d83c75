// Package testguest builds the WebAssembly guests that warden's tests run
// (the examples and internal/sandbox/testdata/guests) and keeps them, with
// their compiled code, in caches shared by every test binary on the machine.
//
// It is for tests only: no non-test code may import it, and it never runs in
// a server. It writes only under the user cache directory (or a temporary
// directory, see FreshEnv) and reads the module's sources.
//
// # Notes
//   - A guest is built once per content of its sources: the cache key is the
//     hash of every file of every non-standard package the guest imports, its
//     build mode and the Go toolchain (version, GOFLAGS, GOEXPERIMENT, GOWASM).
//     A dependency outside the main module counts by its module version.
//   - Compiled code is produced by a program built without -race
//     (testdata/precompile) through sandbox.Engine.Check, so the race-enabled
//     test binaries only load it: wazero's compiler is about ten times slower
//     under -race. wazero keys its cache entries by module hash, wazero
//     version and CPU features, so a cache dir is safe to share.
//   - Two test binaries preparing at once take turns on a lock file; every
//     file is written under a temporary name and renamed into place, so a
//     reader never sees a partial one even where there is no lock.
package testguest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// Guest is a Go package built for GOOS=wasip1 GOARCH=wasm.
type Guest struct {
	Name    string // what tests call it; also its file name without .wasm
	Pkg     string // package directory relative to the module root
	Reactor bool   // the reactor ABI: built with -buildmode=c-shared; else wagi
}

// Guests are every guest a warden test runs. Each must pass
// sandbox.Engine.Check (a deliberately broken module belongs in the test that
// needs it, as bytes).
var Guests = []Guest{
	{"hello", "./examples/hello", false},
	{"ping", "./examples/ping", true},
	{"echo-json", "./examples/echo-json", true},
	{"secret-hmac", "./examples/secret-hmac", true},
	{"kv-counter", "./examples/kv-counter", true},
	{"egress-fetch", "./examples/egress-fetch", true},
	{"attack", "./internal/sandbox/testdata/guests/attack", false},
	{"reactor", "./internal/sandbox/testdata/guests/reactor", true},
	{"caps", "./internal/sandbox/testdata/guests/caps", true},
}

// Lookup returns the guest called name.
func Lookup(name string) (Guest, bool) {
	i := slices.IndexFunc(Guests, func(g Guest) bool { return g.Name == name })
	if i < 0 {
		return Guest{}, false
	}
	return Guests[i], true
}

// FreshEnv is the environment variable that, when set, makes Prepare start
// from empty caches in a temporary directory (removed by Set.Close).
const FreshEnv = "WARDEN_TEST_FRESH_CACHE"

// precompiler is the package of the program that fills the compilation
// cache, relative to the module root.
const precompiler = "./internal/testguest/testdata/precompile"

// Set is the prepared guests of one test binary.
type Set struct {
	// CacheDir is a wazero compilation cache directory holding the compiled
	// code of every guest in the set, for sandbox.Config.CacheDir.
	CacheDir string
	paths    map[string]string
	tmp      string // removed by Close; "" for the shared caches
}

// Path returns the file of the built guest called name, or "" if name is not
// in the set. The file is shared: tests must not write it.
func (s *Set) Path(name string) string { return s.paths[name] }

// Close removes the caches of a fresh set; shared caches stay.
func (s *Set) Close() error {
	if s == nil || s.tmp == "" {
		return nil
	}
	return os.RemoveAll(s.tmp)
}

// Prepare builds the guests called names (every guest if none) unless the
// cache holds them for their current sources, and makes sure their compiled
// code is in Set.CacheDir. It is meant for TestMain, and is safe to call from
// several processes at once.
func Prepare(names ...string) (*Set, error) {
	var want []Guest
	if len(names) == 0 {
		want = Guests
	}
	for _, n := range names {
		g, ok := Lookup(n)
		if !ok {
			return nil, fmt.Errorf("testguest: unknown guest %q", n)
		}
		want = append(want, g)
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	s := &Set{paths: make(map[string]string)}
	base := cacheBase()
	if os.Getenv(FreshEnv) != "" {
		if base, err = os.MkdirTemp("", "warden-test-"); err != nil {
			return nil, err
		}
		s.tmp = base
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	s.CacheDir = filepath.Join(base, "wazero")
	guestDir := filepath.Join(base, "guests")
	for _, d := range []string{s.CacheDir, guestDir, filepath.Join(s.CacheDir, "precompiled")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	unlock, err := lockFile(filepath.Join(base, "lock"))
	if err != nil {
		return nil, fmt.Errorf("testguest: lock: %w", err)
	}
	defer unlock()

	keys, err := guestKeys(root, want)
	if err != nil {
		return nil, err
	}
	var missing []Guest
	for _, g := range want {
		p := filepath.Join(guestDir, g.Name+"-"+keys[g.Name]+".wasm")
		s.paths[g.Name] = p
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, g)
		}
	}
	if err := build(root, missing, s.paths); err != nil {
		return nil, err
	}
	if err := s.precompile(root, want, keys); err != nil {
		return nil, err
	}
	prune(guestDir, s.paths)
	ok = true
	return s, nil
}

// cacheBase is where the shared caches live: the user cache directory
// (kept between runs, as CI on the same machine does), else the temporary
// directory.
func cacheBase() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "warden-test")
}

// moduleRoot walks up from the working directory (a test's package) to go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testguest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// goTool is the go command: the one on PATH (go test puts its own first),
// else the one in GOROOT.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func wasmEnv() []string {
	return append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

// hostEnv builds for the CPU this test binary runs on: compiled code is
// specific to it.
func hostEnv() []string {
	return append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
}

// goCmd runs the go command in the module root and returns its stdout.
func goCmd(root string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = root
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("testguest: go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// listedPkg is the part of `go list -json` the keys use.
type listedPkg struct {
	ImportPath string
	Dir        string
	Standard   bool
	DepOnly    bool
	Deps       []string
	Module     *struct {
		Path, Version string
		Main          bool
		Replace       *struct{ Version string }
	}
}

// sourceKeys returns, for each package in pkgs (directories relative to
// root, built with env), a hash of its sources and everything it imports.
func sourceKeys(root string, env []string, pkgs []string) (map[string]string, error) {
	tool, err := goCmd(root, env, "env", "GOVERSION", "GOFLAGS", "GOEXPERIMENT", "GOWASM", "GOARCH", "GOOS")
	if err != nil {
		return nil, err
	}
	out, err := goCmd(root, env, append([]string{"list", "-deps", "-json=ImportPath,Dir,Standard,DepOnly,Deps,Module"}, pkgs...)...)
	if err != nil {
		return nil, err
	}
	byPath := make(map[string]*listedPkg)
	var roots []*listedPkg
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		p := new(listedPkg)
		if err := dec.Decode(p); err != nil {
			return nil, fmt.Errorf("testguest: go list: %w", err)
		}
		byPath[p.ImportPath] = p
		if !p.DepOnly {
			roots = append(roots, p)
		}
	}
	module, err := hashFiles(root, "go.mod", "go.sum")
	if err != nil {
		return nil, err
	}
	pkgHash := make(map[string][]byte)
	keys := make(map[string]string)
	for _, r := range roots {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%x\x00", tool, module)
		for _, dep := range append(slices.Sorted(slices.Values(r.Deps)), r.ImportPath) {
			p := byPath[dep]
			if p == nil || p.Standard {
				continue // the toolchain's version covers the standard library
			}
			ph, ok := pkgHash[dep]
			if !ok {
				if ph, err = hashPackage(p); err != nil {
					return nil, err
				}
				pkgHash[dep] = ph
			}
			fmt.Fprintf(h, "%s\x00%x\x00", dep, ph)
		}
		rel, err := filepath.Rel(root, r.Dir)
		if err != nil {
			return nil, err
		}
		keys["./"+filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil)[:12])
	}
	for _, p := range pkgs {
		if keys[p] == "" {
			return nil, fmt.Errorf("testguest: go list did not report %s", p)
		}
	}
	return keys, nil
}

// hashPackage hashes a package by its module version when it comes from the
// module cache, else by the content of every file in its directory.
func hashPackage(p *listedPkg) ([]byte, error) {
	if m := p.Module; m != nil && !m.Main && m.Version != "" && (m.Replace == nil || m.Replace.Version != "") {
		s := sha256.Sum256([]byte(m.Path + "@" + m.Version))
		return s[:], nil
	}
	ents, err := os.ReadDir(p.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return hashFiles(p.Dir, names...)
}

func hashFiles(dir string, names ...string) ([]byte, error) {
	h := sha256.New()
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s\x00", n)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		h.Write([]byte{0})
	}
	return h.Sum(nil), nil
}

// guestKeys returns each guest's cache key by name.
func guestKeys(root string, gs []Guest) (map[string]string, error) {
	pkgs := make([]string, len(gs))
	for i, g := range gs {
		pkgs[i] = g.Pkg
	}
	byPkg, err := sourceKeys(root, wasmEnv(), pkgs)
	if err != nil {
		return nil, err
	}
	keys := make(map[string]string, len(gs))
	for _, g := range gs {
		h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%v\x00%s", g.Name, g.Reactor, byPkg[g.Pkg]))
		keys[g.Name] = hex.EncodeToString(h[:12])
	}
	return keys, nil
}

// build builds gs in parallel (the go command's own parallelism is per
// package; a link is single-threaded) into paths.
func build(root string, gs []Guest, paths map[string]string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(gs))
	for i, g := range gs {
		wg.Go(func() {
			dst := paths[g.Name]
			tmp := fmt.Sprintf("%s.%d.tmp", dst, os.Getpid())
			args := []string{"build", "-o", tmp}
			if g.Reactor {
				args = append(args, "-buildmode=c-shared")
			}
			if _, err := goCmd(root, wasmEnv(), append(args, g.Pkg)...); err != nil {
				errs[i] = fmt.Errorf("build guest %s: %w", g.Name, err)
				return
			}
			if err := os.Rename(tmp, dst); err != nil {
				os.Remove(tmp)
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// precompile fills CacheDir with the compiled code of gs, unless a marker
// says the precompiler of the current sources already did for this guest.
func (s *Set) precompile(root string, gs []Guest, keys map[string]string) error {
	pk, err := sourceKeys(root, hostEnv(), []string{precompiler})
	if err != nil {
		return err
	}
	v := wazeroVersion()
	pkey := sha256.Sum256([]byte(pk[precompiler] + "\x00" + v))
	markers := make(map[string]string)
	args := []string{"run", "-ldflags=-X=" + wazeroVersionVar + "=" + v, precompiler, "-cache", s.CacheDir}
	for _, g := range gs {
		m := filepath.Join(s.CacheDir, "precompiled", g.Name+"-"+keys[g.Name]+"-"+hex.EncodeToString(pkey[:12]))
		if _, err := os.Stat(m); err == nil {
			continue
		}
		markers[g.Name] = m
		abi := "wagi"
		if g.Reactor {
			abi = "reactor"
		}
		args = append(args, abi+"="+s.paths[g.Name])
	}
	if len(markers) == 0 {
		return nil
	}
	if _, err := goCmd(root, hostEnv(), args...); err != nil {
		return err
	}
	for _, m := range markers {
		if err := os.WriteFile(m, nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// wazeroVersionVar is where wazero keeps a version set at link time.
const wazeroVersionVar = "github.com/tetratelabs/wazero/internal/version.version"

// wazeroVersion is the version wazero finds in this binary, as its
// internal/version does. wazero names its cache directory after it and checks
// it in every cache file, so the precompiler is linked to report the same one:
// test binaries carry no dependency versions, so there it is "dev".
func wazeroVersion() string {
	v := ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if strings.Contains(d.Path, "github.com/tetratelabs/wazero") {
				v = d.Version
			}
		}
		if v == "" || v == "(devel)" {
			v = info.Main.Version
		}
	}
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return v
}

// staleAfter is how long a built guest no run has used stays in the cache.
const staleAfter = 7 * 24 * time.Hour

// prune marks the guests in use and removes those no run has used for a
// week (a guest file is replaced, not changed, when its sources change).
func prune(dir string, inUse map[string]string) {
	now := time.Now()
	for _, p := range inUse {
		_ = os.Chtimes(p, now, now)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, err := e.Info()
		if err == nil && info.Mode().IsRegular() && now.Sub(info.ModTime()) > staleAfter {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
