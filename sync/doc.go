// Package edgesync moves athena-edge change logs between edges and a
// central server over WebSocket (github.com/coder/websocket), so that every
// replica converges by core's merge rules ([core.MergeMemory]).
//
// Import it under an alias, since its directory shadows the standard
// library's sync:
//
//	import edgesync "github.com/athena-edge/athena-edge/sync"
//
// # Protocol
//
// The wire protocol is specified in docs/SYNC.md. In short: binary frames
// ([Frame]) carry JSON metadata plus raw little-endian float32 embeddings;
// an edge says hello and gets a welcome (version, device and project from
// its token, limits); it pushes its own changes in sequence order and gets
// an ack for each batch only after the server's transaction committed
// ([core.Tx.ApplyChanges], idempotent by device and sequence); it pulls
// the changes made elsewhere in its project and applies them with
// [core.Tx.ApplyPulled] in the same transaction that moves its cursor. The
// server pokes live edges when new changes arrive.
//
// # Server
//
// [NewServer] returns an http.Handler serving /v1/sync, /v1/ticket and
// /healthz. Device tokens ([Tokens]) are stored hashed in the server
// database's metadata; the device and project always come from the token.
// Serve it from an http.Server with ReadHeaderTimeout set
// ([DefaultReadHeaderTimeout]); the WebSocket's own deadlines, pings and
// limits take over after the upgrade. A connection's push batches are
// answered in order; while one commits, the next (if both hold only memory
// changes) is applied beside it on an assumed last seq
// ([core.Tx.ApplyChangesAfter]), which a PostgreSQL store checks before
// its commit. [Server.Shutdown] finishes in-flight batches.
//
// # Client
//
// [NewClient] syncs one edge database: [Client.Sync] pushes (small batches,
// a few in flight, acks matched by batch ID) and pulls until both are empty, [Client.Watch] stays connected and reconnects with
// backoff, and [Client.Status] reads the local cursors and dead letters
// offline. Cursors are stored in the edge's metadata ([core.MetaTx]) under
// "sync/" keys, keyed by the server's ID.
//
// # Tombstone horizon
//
// A server whose store can purge tombstones ([core.TombstoneGC]) refuses
// pushes from a device that has not caught up within
// ServerConfig.TombstoneHorizon ([ErrResyncRequired]);
// [Server.PurgeTombstones] drops the tombstones older than the horizon.
//
// # Errors
//
// Wire errors are [*Error] values with a stable numeric [Code]; they match
// this package's sentinels (ErrUnauthorized, ErrRateLimited...) and, where
// one applies, core's (core.ErrSeqGap, core.ErrInvalid). [Retryable]
// classifies any error returned here.
//
// # Wasm
//
// The client builds for GOOS=js (the browser edge). What differs there:
//   - a browser WebSocket cannot carry an Authorization header, so the
//     client exchanges its token for a single-use ticket at /v1/ticket (or
//     calls ClientConfig.TicketFunc) and puts the ticket in the URL;
//   - ClientConfig.HTTPClient is used only for that ticket request;
//   - pings are no-ops (the browser answers the server's pings itself);
//   - the Server compiles but cannot accept connections (coder/websocket's
//     Accept always fails on js), and PGNotifier is not built.
//
// # Concurrency
//
// Server, Client, Tokens and LocalNotifier are safe for concurrent use.
// Frame is a plain value.
package edgesync
