package sandbox

import (
	"context"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapAllocator backs each guest's linear memory with its own anonymous
// mapping of the memory's maximum size, reserved but not committed
// (MAP_NORESERVE): pages cost memory only once the guest touches them, a
// grow is a length change instead of a copy of the whole memory, and closing
// an instance returns its pages to the OS at once instead of leaving them to
// the Go garbage collector. Memory outside the Go heap is also memory the
// collector never scans.
type mmapAllocator struct{}

func (mmapAllocator) Allocate(cap, max uint64) experimental.LinearMemory {
	if max == 0 || max > 1<<32 {
		return nil // let wazero allocate
	}
	buf, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
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
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}

// withMemoryAllocator puts the allocator in the context used to instantiate.
func withMemoryAllocator(ctx context.Context) context.Context {
	return experimental.WithMemoryAllocator(ctx, mmapAllocatorFunc)
}

var mmapAllocatorFunc experimental.MemoryAllocator = mmapAllocator{}
