// Package memstore is a complete in-memory [core.Backend]: the reference
// implementation of the store contract, and the store a browser tab uses.
//
// It is deliberately simple: maps guarded by one RWMutex, exact vector
// search by a full scan, and keyword search by scanning the project's
// tokenized content. Every other store must behave as memstore does, which
// core/storetest checks.
//
// # Transactions
//
// Update holds the write lock for the whole transaction and keeps an undo
// log; if the function returns an error every write is undone. View holds
// the read lock, so it sees a consistent snapshot and waits for a running
// Update to finish.
//
// # Persistence
//
// [Store.Snapshot] and [Load] turn the whole store into bytes and back, so a
// host (the browser demo persists to IndexedDB) can keep it across restarts.
package memstore
