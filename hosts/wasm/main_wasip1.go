//go:build wasip1

package main

import (
	"unsafe"

	"github.com/athena-edge/athena-edge/hosts/wasm/abi"
)

// The module's state. A reactor's exports are plain functions, so the
// dispatcher and the table of live allocations are package variables: the
// one place in athena-edge where a global is forced on us. Calls into the
// module are sequential (the host serializes them), so neither needs a lock.
var (
	dispatcher = abi.NewDispatcher()
	// live keeps every block handed to the host reachable until the host
	// frees it; Go's collector does not move objects, so the address stays
	// valid.
	live = map[uint32][]byte{}
)

// keep registers b as a live block and returns its address in linear
// memory. A zero-length b gets a one-byte block so that every block has a
// distinct, non-zero address.
func keep(b []byte) uint32 {
	if len(b) == 0 {
		b = make([]byte, 1)[:0]
	}
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	live[p] = b
	return p
}

// malloc returns a block of size bytes that stays allocated until free.
//
//go:wasmexport malloc
func malloc(size uint32) uint32 {
	return keep(make([]byte, size))
}

// free releases a block returned by malloc or call. Unknown pointers are
// ignored.
//
//go:wasmexport free
func free(ptr uint32) {
	delete(live, ptr)
}

// call runs the request of size bytes at ptr, which must lie inside a
// block from malloc, and returns the response block as ptr<<32 | len. The
// host frees the response block (and its own request block).
//
//go:wasmexport call
func call(ptr, size uint32) uint64 {
	var resp []byte
	if req, ok := live[ptr]; ok && int(size) <= cap(req) {
		resp = dispatcher.Call(req[:size])
	} else {
		resp = []byte(`{"error":{"code":"bad_request","message":"abi: request is not a block from malloc"}}`)
	}
	return uint64(keep(resp))<<32 | uint64(len(resp))
}

// abiVersion returns abi.Version.
//
//go:wasmexport abi_version
func abiVersion() uint32 { return abi.Version }

// main is not called in a reactor (-buildmode=c-shared): _initialize runs
// the package initializers and returns.
func main() {}
