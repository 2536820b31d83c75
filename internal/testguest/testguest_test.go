package testguest

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
)

func TestGuestsExist(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, g := range Guests {
		if seen[g.Name] {
			t.Errorf("guest %q listed twice", g.Name)
		}
		seen[g.Name] = true
		if fi, err := os.Stat(filepath.Join(root, g.Pkg)); err != nil || !fi.IsDir() {
			t.Errorf("guest %s: package %s: %v", g.Name, g.Pkg, err)
		}
		if got, ok := Lookup(g.Name); !ok || got != g {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v", g.Name, got, ok, g)
		}
	}
	if _, ok := Lookup("no-such-guest"); ok {
		t.Error(`Lookup("no-such-guest") found one`)
	}
	if _, err := Prepare("no-such-guest"); err == nil {
		t.Error(`Prepare("no-such-guest") = nil error`)
	}
}

// The precompiler is linked to report the wazero version this binary
// reports, so it must match the directory wazero itself creates here.
func TestWazeroVersionMatchesCacheDir(t *testing.T) {
	dir := t.TempDir()
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	want := "wazero-" + wazeroVersion() + "-" + runtime.GOARCH + "-" + runtime.GOOS
	if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
		ents, _ := os.ReadDir(dir)
		t.Fatalf("wazero made %v in its cache dir, want %s", ents, want)
	}
}

// A key changes with any file of the package or of what it imports from the
// module, and with nothing else.
func TestSourceKeysFollowSources(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module tmpmod\n\ngo 1.24\n")
	write("a/a.go", "package main\n\nimport _ \"tmpmod/b\"\n\nfunc main() {}\n")
	write("b/b.go", "package b\n")
	write("c/c.go", "package c\n")
	key := func() string {
		t.Helper()
		keys, err := sourceKeys(root, hostEnv(), []string{"./a"})
		if err != nil {
			t.Fatal(err)
		}
		return keys["./a"]
	}
	k0 := key()
	if k := key(); k != k0 {
		t.Fatalf("key changed with nothing changed: %s then %s", k0, k)
	}
	write("c/c.go", "package c\n\nconst X = 1\n")
	if k := key(); k != k0 {
		t.Errorf("key changed with a package a does not import: %s then %s", k0, k)
	}
	write("b/b.go", "package b\n\nconst X = 1\n")
	k1 := key()
	if k1 == k0 {
		t.Error("key unchanged after an imported package changed")
	}
	write("a/data.txt", "embedded or not, it is the package's\n")
	if k := key(); k == k1 {
		t.Error("key unchanged after a file in the package's directory changed")
	}
}

// Two preparations at once (as two test binaries do) agree and leave whole
// modules.
func TestPrepareConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	sets := make([]*Set, 2)
	errs := make([]error, 2)
	for i := range sets {
		wg.Go(func() { sets[i], errs[i] = Prepare("ping") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Prepare %d: %v", i, err)
		}
		defer sets[i].Close()
	}
	// One file when the caches are shared; with FreshEnv, one name (key)
	// in each preparation's own directory.
	if a, b := sets[0].Path("ping"), sets[1].Path("ping"); filepath.Base(a) != filepath.Base(b) || a == "" || (sets[0].tmp == "" && a != b) {
		t.Fatalf("Prepare paths %q and %q, want the same key", a, b)
	}
	for _, s := range sets {
		b, err := os.ReadFile(s.Path("ping"))
		if err != nil || !bytes.HasPrefix(b, []byte("\x00asm")) {
			t.Fatalf("built ping: %v, %d bytes, want a wasm module", err, len(b))
		}
	}
	if sets[0].Path("hello") != "" {
		t.Error(`Path("hello") of a set without it is not ""`)
	}
}
