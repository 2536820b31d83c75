package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"warden/internal/manifest"
)

// TestMmapMemory: a guest memory starts on a huge-page boundary, is advised
// huge pages, is usable up to its maximum and no further, and is unmapped on
// Free.
func TestMmapMemory(t *testing.T) {
	const max = 8<<20 + 64<<10 // not a multiple of a huge page
	lm := mmapAllocator{}.Allocate(64<<10, max)
	if lm == nil {
		t.Fatal("Allocate returned nil")
	}
	mem := lm.(*mmapMemory)
	start := addrOf(mem.buf)
	if start%hugePage != 0 {
		t.Errorf("memory starts at %#x, not on a 2 MiB boundary", start)
	}
	b := lm.Reallocate(max)
	if len(b) != max || cap(b) != max {
		t.Fatalf("Reallocate(max) = len %d cap %d, want %d", len(b), cap(b), max)
	}
	b[0], b[max-1] = 1, 2 // both ends are writable
	if lm.Reallocate(max+1) != nil {
		t.Error("Reallocate past the maximum returned memory")
	}
	flags := vmFlags(t, start, max)
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("memory's VmFlags %q lack hg (MADV_HUGEPAGE)", flags)
	}
	lm.Free()
	if vmFlags(t, start, max) != "" {
		t.Error("memory still mapped after Free")
	}
}

// vmFlags returns the VmFlags of the mapping of exactly [addr, addr+size),
// or "" when there is none.
func vmFlags(t *testing.T, addr, size uintptr) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	want := fmt.Sprintf("%x-%x", addr, addr+size)
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header line
			in = f[0] == want
			continue
		}
		if in && f[0] == "VmFlags:" {
			return strings.Join(f[1:], " ")
		}
	}
	return ""
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestAnonExec(t *testing.T) {
	for _, c := range []struct {
		line   string
		lo, hi uintptr
		ok     bool
	}{
		{"7fcee9b35000-7fceea7fd000 r-xp 00000000 00:00 0 ", 0x7fcee9b35000, 0x7fceea7fd000, true},
		{"7fcee9b35000-7fceea7fd000 r-xp 00000000 00:00 0", 0x7fcee9b35000, 0x7fceea7fd000, true},
		{"00400000-00c00000 r-xp 00000000 08:01 123 /usr/bin/warden", 0, 0, false}, // file-backed
		{"7fcee9b35000-7fceea7fd000 rw-p 00000000 00:00 0", 0, 0, false},           // not executable
		{"7ffd1000-7ffd3000 r-xp 00000000 00:00 0 [vdso]", 0, 0, false},            // named
		{"zz-7fceea7fd000 r-xp 00000000 00:00 0", 0, 0, false},
		{"7fceea7fd000-7fcee9b35000 r-xp 00000000 00:00 0", 0, 0, false}, // end before start
		{"", 0, 0, false},
	} {
		lo, hi, ok := anonExec([]byte(c.line))
		if lo != c.lo || hi != c.hi || ok != c.ok {
			t.Errorf("anonExec(%q) = %#x, %#x, %v; want %#x, %#x, %v", c.line, lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
}

// TestHugeCode: after a module loads, its compiled code (an anonymous
// executable mapping of several MiB) is advised huge pages, in the
// background.
func TestHugeCode(t *testing.T) {
	e, _ := newEngine(t, Config{})
	f := e.Function(spec(t, "echo-json", 1, manifest.Limits{}))
	if err := f.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	advised := func() bool {
		b, err := os.ReadFile("/proc/self/smaps")
		if err != nil {
			t.Skipf("no /proc/self/smaps: %v", err)
		}
		big := false
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text()
			f := strings.Fields(line)
			if len(f) > 0 && !strings.HasSuffix(f[0], ":") {
				lo, hi, ok := anonExec([]byte(line))
				big = ok && hi-lo >= 2*hugePage
				continue
			}
			if big && len(f) > 0 && f[0] == "VmFlags:" && slices.Contains(f[1:], "hg") {
				return true
			}
		}
		return false
	}
	eventually(t, 10*time.Second, "the compiled code advised MADV_HUGEPAGE", advised)
}
