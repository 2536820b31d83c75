//go:build !linux

package sandbox

import "context"

// withMemoryAllocator leaves wazero's default allocator in place where no
// mmap-backed one is implemented.
func withMemoryAllocator(ctx context.Context) context.Context { return ctx }

// hugeCodeAsync does nothing where transparent huge pages are not advised.
func hugeCodeAsync() {}
