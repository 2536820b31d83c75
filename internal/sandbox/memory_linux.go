package sandbox

import (
	"context"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"
)

// hugePage is the size of a transparent huge page on the platforms warden
// runs on (x86-64 and arm64 with 4 KiB base pages).
const hugePage = 2 << 20

// mmapAllocator backs each guest's linear memory with its own anonymous
// mapping of the memory's maximum size, reserved but not committed
// (MAP_NORESERVE): pages cost memory only once the guest touches them, a
// grow is a length change instead of a copy of the whole memory, and closing
// an instance returns its pages to the OS at once instead of leaving them to
// the Go garbage collector. Memory outside the Go heap is also memory the
// collector never scans.
//
// The mapping starts on a huge-page boundary and asks for transparent huge
// pages (MADV_HUGEPAGE; the kernel's default "madvise" mode honours it):
// a Go guest's heap is a few MiB touched all over on every request, and
// with 4 KiB pages each request missed the TLB on hundreds of them once
// TLS and net/http had run in between (docs/RATIONALE.md). The cost is
// memory rounded up to 2 MiB per instance.
type mmapAllocator struct{}

func (mmapAllocator) Allocate(cap, max uint64) experimental.LinearMemory {
	if max == 0 || max > 1<<32 {
		return nil // let wazero allocate
	}
	// Reserve a huge page more than needed and keep the aligned part.
	// The pointer forms: unix.Munmap only unmaps whole slices that Mmap
	// returned, and the head and tail are trimmed here.
	n := uintptr(max) + hugePage
	res, err := unix.MmapPtr(-1, 0, nil, n, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	head := alignUp(uintptr(res), hugePage) - uintptr(res)
	start := unsafe.Add(res, head)
	if head > 0 {
		_ = unix.MunmapPtr(res, head)
	}
	if tail := n - head - uintptr(max); tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(start, max), tail)
	}
	buf := unsafe.Slice((*byte)(start), max)
	// Advice only: without it (an older kernel, THP off) the memory works
	// the same on small pages.
	_ = unix.Madvise(buf, unix.MADV_HUGEPAGE)
	return &mmapMemory{buf: buf}
}

// mmapMemory is one guest memory. wazero bounds-checks every access against
// the length Reallocate returned, so the reserved tail is unreachable.
type mmapMemory struct{ buf []byte }

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if m.buf == nil || size > uint64(len(m.buf)) {
		return nil
	}
	return m.buf[:size:size]
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(m.buf)), uintptr(len(m.buf)))
		m.buf = nil
	}
}

// withMemoryAllocator puts the allocator in the context used to instantiate.
func withMemoryAllocator(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, mmapAllocatorFunc)
}

var mmapAllocatorFunc experimental.MemoryAllocator = mmapAllocator{}
