// Command wasm is athena-edge's core as a WebAssembly reactor module: the
// pure parts of core (validation, the state machine, quality, cosine,
// tokenization, BM25, the hash embedder, change merge, consolidation
// planning) and core's search over core/memstore, behind one small ABI.
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o core.wasm ./hosts/wasm
//
// or scripts/build-wasm.sh. hosts/native's LoadCoreModule runs it under
// wazero. On any platform other than wasip1 the package builds to a stub
// that says how to build the module.
//
// # Instantiation
//
// The module is a WASI preview 1 reactor: it imports
// wasi_snapshot_preview1 and exports "memory" and "_initialize". The host
// instantiates wasi_snapshot_preview1, then the module, calls _initialize
// once (wazero: ModuleConfig.WithStartFunctions("_initialize")), and never
// calls _start. The Go runtime then waits between calls.
//
// # Exports
//
//	malloc(size i32) -> ptr i32          a block of size bytes, live until free
//	free(ptr i32)                        release a block from malloc or call
//	call(ptr i32, len i32) -> i64        run one request; returns ptr<<32 | len
//	abi_version() -> i32                 abi.Version (currently 1)
//
// Pointers are offsets in the module's linear memory. The (ptr, len) pair
// of a result is packed into one i64, high half pointer and low half
// length, as in wazero's allocation example.
//
// # Calling
//
//  1. p = malloc(len(request)); write the request bytes at p.
//  2. r = call(p, len(request)); read len = r & 0xffffffff bytes at r >> 32.
//  3. free(r >> 32); free(p).
//
// Every block the host gets from malloc or call is the host's to free;
// the module never frees one itself. The request must lie in a block from
// malloc, else the response is a bad_request error. Calls must not overlap:
// the module is single-threaded and not re-entrant.
//
// # Requests and responses
//
// A request is a JSON envelope {"op": NAME, "args": {...}} and a response
// {"result": ...} or {"error": {"code", "field", "reason", "message"}}.
// The ops, their arguments and the wire types that carry NaN vectors and
// invalid UTF-8 are documented in package [abi]. call always returns a
// response: core errors, bad requests and panics inside an op become error
// responses. Only a fault of the runtime itself (out of memory) traps.
//
// # Determinism
//
// A native [abi.Dispatcher] answers every request with the same bytes as
// the module (tests/wasm_diff_test.go). Floats are computed in float64 in
// a fixed order and printed by encoding/json; the search corpus runs on a
// stopped clock.
package main
