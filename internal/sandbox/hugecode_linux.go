package sandbox

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// hugeCode asks the kernel to back the compiled guest code with huge pages:
// every anonymous executable mapping of the process (wazero's code
// segments; the binary's own code is file-backed) is advised
// MADV_HUGEPAGE and collapsed now (MADV_COLLAPSE) where it spans an
// aligned 2 MiB. A compiled Go guest is 5–15 MiB of machine code run from
// all over on every request; on 4 KiB pages it missed the instruction TLB
// each time the server's own code had run in between (docs/RATIONALE.md).
// A region already collapsed costs the kernel a page-table walk. Failures
// are ignored: the advice is an optimization, and the code runs the same
// on small pages.
func hugeCode() {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		start, end, ok := anonExec(sc.Bytes())
		if !ok {
			continue
		}
		lo, hi := alignUp(start, hugePage), end&^(hugePage-1)
		if hi <= lo {
			continue
		}
		for _, advice := range []uintptr{unix.MADV_HUGEPAGE, unix.MADV_COLLAPSE} {
			_, _, _ = unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, advice)
		}
	}
}

// codeAdvice runs hugeCode off the load path: collapsing a module's code
// copies it (10–20 ms for 13 MiB), which a cold start should not wait for.
// One goroutine at a time runs it, again while more loads ask.
var codeAdvice struct{ running, again atomic.Bool }

// hugeCodeAsync asks for hugeCode after a module load and returns at once.
func hugeCodeAsync() {
	codeAdvice.again.Store(true)
	if !codeAdvice.running.CompareAndSwap(false, true) {
		return // the running goroutine sees again
	}
	go func() {
		for {
			for codeAdvice.again.Swap(false) {
				hugeCode()
			}
			codeAdvice.running.Store(false)
			// A load between the last Swap and the Store: take it, unless
			// its own call has started a goroutine.
			if !codeAdvice.again.Load() || !codeAdvice.running.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// anonExec parses one line of /proc/self/maps and returns the range of an
// anonymous executable mapping.
func anonExec(line []byte) (start, end uintptr, ok bool) {
	f := bytes.Fields(line)
	// address perms offset dev inode [path]: anonymous mappings have no path.
	if len(f) != 5 || len(f[1]) < 3 || f[1][2] != 'x' {
		return 0, 0, false
	}
	a, z, ok := bytes.Cut(f[0], []byte("-"))
	if !ok {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(string(a), 16, 64)
	e, err2 := strconv.ParseUint(string(z), 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}

func alignUp(p, to uintptr) uintptr { return (p + to - 1) &^ (to - 1) }
