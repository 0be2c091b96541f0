// Package sqlitevec is athena-edge's edge store: a [core.Backend] on SQLite
// 3.51 compiled to WebAssembly and run by wazero
// (github.com/ncruces/go-sqlite3 v0.32.0, the last release on wazero, with
// wazero v1.12.0), with its own in-memory vector index and an FTS5 keyword
// leg.
//
// [Open] opens or creates a database file (or, with an empty path, a private
// in-memory database), migrates its schema (PRAGMA user_version, versioned
// and idempotent) and rebuilds the in-memory indexes from its rows.
//
// # Durability
//
// The database runs in WAL mode with PRAGMA synchronous=FULL (the default of
// [Config].Synchronous). When [Store.Update] returns nil, the transaction's
// WAL frames, including the commit frame, have been written and fsynced:
// the write survives the process being killed (SIGKILL, panic, OOM) and the
// operating system crashing or losing power, as far as the disk honours
// fsync. A transaction that has not returned nil is either wholly present
// or wholly absent after a crash, never partial; every mutation core makes
// and its change-log entry are in the same transaction, so they survive or
// vanish together. TestCrash kills a writing child process with SIGKILL at
// random points and checks exactly this, plus PRAGMA integrity_check.
//
// A statement that fails in a way that makes SQLite roll back the whole
// transaction (an I/O error, a full disk, an interrupt) fails every later
// statement of that Update too, so nothing after it runs, or commits, on
// its own. Memory inserts and change-log appends use INSERT OR FAIL, so a
// full disk in the middle of one rolls back the transaction instead of
// that statement alone.
//
// With Synchronous "NORMAL" (ncruces' default for WAL) a commit survives a
// process crash but the last commits may be lost on power loss. An
// in-memory store (empty Path) survives nothing beyond Close.
//
// # Writes
//
// A batch's FTS5 rows are inserted together just before COMMIT (or
// earlier, when the transaction searches or deletes text): one FTS5
// insert per statement made FTS5 flush and merge a one-document segment
// per memory. A memory.put change-log entry whose vector is the embedding
// its memory row holds stores the vector once, in the memory row
// (changes.vector_in_memory, migration 5); before that embedding changes
// or the memory is deleted, the vector is copied back into the change
// row, so the change log always yields every change's vector.
//
// # Checkpoints
//
// A second connection on its own goroutine copies the write-ahead log into
// the database file (a PASSIVE checkpoint) once the log holds
// [Config].CheckpointPages pages, while the writer goes on committing;
// the writer copies only what was committed meanwhile, after its next
// commit, so that the log can restart from its beginning. Without it,
// SQLite's automatic checkpoint copies the whole log (16 MB) inside the
// commit that crosses 1000 pages. The writer copies everything itself
// only if the log reaches four times the threshold first, waiting for a
// running background checkpoint, so the log stays bounded. Checkpoints
// change nothing about durability: a commit is durable in the log before
// Update returns, and a crash during a checkpoint leaves the log to be
// copied again. A negative CheckpointPages turns this off; an in-memory
// database has no log.
//
// # Concurrency
//
// A [Store] is safe for concurrent use. It has one writer connection: Update
// runs one transaction at a time (BEGIN IMMEDIATE, serialized by a mutex,
// and against other processes by SQLite's lock with [Config].BusyTimeout).
// View draws one of [Config].Readers reader connections (one is opened
// by Open, the others when that many Views run at once; the most recently
// used idle one is reused first, so a sequential workload keeps one warm
// page cache); each runs a deferred read transaction, a consistent
// snapshot, and readers run alongside the writer (WAL). On the in-memory database (the memdb VFS,
// which has no WAL) a commit waits for running readers to finish, up to the
// busy timeout.
//
// The in-memory index is shared by all transactions and changes only after a
// commit succeeds (index updates are buffered in the transaction and
// dropped on rollback). The legs therefore see committed data: a write
// transaction's legs do not see its own uncommitted memories, and a reader
// may briefly see the index one commit ahead of its snapshot. Core loads
// every candidate through the transaction and re-applies the filter, so
// neither can surface a row the transaction cannot see.
//
// After COMMIT, Update hands the transaction's index updates (quantizing
// the new vectors, the sign codes, the postings) to a goroutine and
// returns, so the next transaction's SQLite work runs beside them on
// another core. Everything that reads the index (both legs, loading rows
// by rid, a later transaction's catch-up, Close's snapshot) first waits
// for that goroutine: a search started after Update returns sees its
// writes, as before.
//
// Context cancellation interrupts a running statement (sqlite3_interrupt
// through Conn.SetInterrupt); the transaction is rolled back and the
// connection stays usable. A cancelled Update never commits.
//
// # Vector leg
//
// Embeddings are stored as little-endian float32 BLOBs; SQLite is the
// source of truth. In memory each vector is kept normalized and quantized
// to int8 (with the norm of its quantization error) plus a sign-bit code
// relative to the project's centroid: about 0.9 KB per 768-d vector instead
// of 3 KB. Per query the leg filters rows in memory with core's
// MemoryFilter semantics, then:
//
//   - exact when asked, or when at most [Config].ExactThreshold rows match:
//     all matching rows are scored from int8, and every row whose error
//     bound could put it in the top K is rescored from its float32 BLOB, so
//     the result is the exact top K by cosine;
//   - approximate otherwise: the [Config].Oversample×K rows (at least 1000,
//     and at least 0.4% of the matching rows, so that recall holds as the
//     collection grows) nearest by Hamming distance of the sign codes
//     (counted in AVX-512 or POPCNT assembly where the CPU has it, exactly
//     as the Go code counts) are scored with integer
//     int8×int8 dot products (the query quantized too; in AVX2 assembly
//     where the CPU has it, with the same exact result as the Go code),
//     and the best max(4K, 64) of those are re-ordered with the float32
//     query × int8 (summed in 16 fixed lanes, in AVX2 assembly where the
//     CPU has it, to the same bits as the Go code).
//     In a project of at least 16K rows the scan reads only the first 256
//     bits of each code (a separate 32-byte-a-row array, built on the
//     first search) and ranks four times the shortlist's rows by their
//     whole code.
//
// Filtering happens before ranking, so a filtered query returns K
// candidates whenever K rows match.
//
// # One search, both legs
//
// Transactions implement [core.LegsSearcher]: a hybrid search runs the
// keyword leg and loads its candidates' rows on a second goroutine (which
// has the connection) while the vector leg scans the in-memory index (which
// needs none), then loads the vector candidates not loaded yet. Rows are
// loaded by rid where the index knows it, which skips the UNIQUE(id) index;
// the index changes only after a commit, so each row read by rid counts
// only if its id is the one asked for, and any other ID is looked up by ID.
// At 100K memories this took hybrid search from 4.9–5.7 ms to 3.3–4.7 ms
// p50 (three alternating runs each).
//
// # Index snapshot
//
// Close writes the in-memory index (int8 vectors, sign codes, filter
// metadata, postings) to a file beside the database, <path>-index, and
// Open reads it instead of re-reading and re-quantizing every row, if it
// was written at the database's current generation: every write
// transaction that changes memories increments index_gen.gen in the same
// transaction, so a crash, a write by another process or an older file
// makes the snapshot stale and Open rebuilds from rows as before. A
// damaged file (CRC-32 over the whole file) is ignored the same way. At
// 100K × 768 the file is about 100 MB; Open from it took 0.3–0.57 s
// against 4.5–8.5 s rebuilding from rows, in the same run.
//
// # Keyword leg
//
// The keyword leg answers from in-memory postings kept beside the vector
// index, per project: term → (slot, term frequency), with each document's
// length. It is exact BM25 (k1 1.2, b 0.75, core's statistics) over every
// document holding a query term, filtered with the in-memory metadata and
// then cut to the limit, so it returns Limit candidates whenever Limit
// match, and needs no document-frequency cap: it costs O(Σ df) of the
// query's terms. Like the vector index it sees committed rows only; a
// write transaction that has written memories uses FTS5 instead, which
// sees its own rows. Measured at 100K documents in the same run on the
// shared machine: 0.17–0.32 ms p50 against 10.6–29 ms for FTS5.
//
// FTS5 stays the durable keyword index and the SQL path
// ([Config].KeywordFTS selects it for every query): it is written in the
// same transaction as the row, and its query shape, EXPLAIN QUERY PLAN
// test and fuzz target are kept.
//
// # FTS5 path and the document-frequency cap
//
// Memories are indexed in a contentless FTS5 table with the "ascii"
// tokenizer over core.NormalizeText(content), i.e. core's own tokens
// separated by spaces, plus one token per document naming its project, so
// a query can be restricted to its project inside FTS5. A query term is
// used only if it is exactly one core token (no other string exists in the
// index) and always as a quoted string, so no FTS5 syntax can reach MATCH.
// The query shape is fixed: FTS5's top N by bm25 in a MATERIALIZED CTE,
// joined to memories by rowid, then filtered in Go; if filtering leaves
// fewer than the limit, the query is repeated with a larger N.
//
// The BM25 statistics core needs (documents, total length and the document
// frequency of each term, over every memory of the project in any state)
// are kept in memory per project (from the postings), updated on commit and
// rebuilt on Open.
//
// The cap: a term found in more than max([Config].MinCappedDF,
// [Config].MaxDFFraction × documents) documents of the project (defaults
// 1000 and 5%) is left out of the MATCH. Such a term has an IDF below
// ln(1+19) ≈ 3, a third or less of a rare term's, and asking FTS5 for it
// means ranking tens of thousands of rows (40–65 ms at 100K documents).
// What changes: a memory that contains only capped terms of the query is not
// proposed by the keyword leg; it can still be found by the vector leg, and
// core scores capped terms with full BM25 on every candidate either leg
// proposes (the statistics always include them). If every term of a query
// is capped, the keyword leg proposes nothing. Rankings among the proposed
// candidates are unchanged.
package sqlitevec
