//go:build wasip1

package warden

import "unsafe"

// Buffers reused between requests: the request the host writes, and the
// encoded response the host reads. A buffer larger than keepBuf is replaced
// by a small one at the next small request, so one big request does not pin
// memory for the instance's lifetime.
var inBuf, outBuf []byte

const keepBuf = 1 << 20

//go:wasmexport warden_abi_version
func wardenABIVersion() int32 { return ABIVersion }

// wardenAlloc returns a buffer of at least size bytes for the host to write
// requests into. It stays valid, for requests of up to size bytes, until the
// next warden_alloc call.
//
//go:wasmexport warden_alloc
func wardenAlloc(size uint32) uint32 {
	if uint32(cap(inBuf)) < size || cap(inBuf) == 0 || cap(inBuf) > keepBuf && size <= keepBuf {
		inBuf = make([]byte, max(size, 512))
	}
	inBuf = inBuf[:size]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inBuf[:cap(inBuf)]))))
}

// wardenHandle serves the request at ptr (the buffer warden_alloc
// returned) and returns the encoded response as ptr<<32 | len. The response
// stays valid until the next call into the instance.
//
//go:wasmexport warden_handle
func wardenHandle(ptr, size uint32) uint64 {
	base := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inBuf[:cap(inBuf)]))))
	if ptr != base || size > uint32(cap(inBuf)) {
		panic("warden: warden_handle called with a buffer warden_alloc did not return")
	}
	if cap(outBuf) > keepBuf {
		outBuf = nil // the host has read the previous response
	}
	outBuf = serve(inBuf[:size], outBuf[:0])
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(outBuf))))<<32 | uint64(len(outBuf))
}

//go:wasmimport warden log
//go:noescape
func hostLog(level int32, ptr unsafe.Pointer, size uint32)

// Log writes msg at level to the function's log (warden.log). Lines are
// truncated at 1 KiB and limited per request by the host.
func Log(level Level, msg string) {
	hostLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
