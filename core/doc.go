// Package core is the pure-Go heart of athena-edge: the model of an agent's
// memory, the one validator every store and the sync server use, the
// consolidation state machine, the hybrid logical clock and change merge
// rules, and the search planner that fuses the legs each store executes.
//
// core imports only the standard library. It builds and tests unchanged
// under GOOS=wasip1 and GOOS=js, which is what lets the same rules run on an
// edge, on the server and in a browser tab.
//
// # Stores propose, core decides
//
// A store implements the small [Backend] contract: transactions over typed
// records, a change log, and two search legs that return candidates. [DB]
// wraps a Backend and owns every decision that must be identical across
// stores: validation, quality, state transitions, change stamping, merge,
// BM25 and cosine scoring, and fusion. The conformance suite in
// core/storetest runs against DB over every Backend.
//
// # Concurrency
//
// Pure functions and value types in this package are safe for concurrent
// use. [DB] and [Clock] are safe for concurrent use; each type's doc says so.
package core
