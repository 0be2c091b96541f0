// Package pgadapter is athena-edge's central store: a [core.Backend] on
// PostgreSQL 15+ with pgvector 0.8, through a pgx/v5 pool ([pgxpool]) and
// pgvector-go. It stores and proposes candidates; [core.DB] makes every
// decision (validation, merge, scoring).
//
// # Configuration
//
// [New] takes a [Config] whose zero value connects to
// postgres://athena@localhost:5432/athena with a pool of 2–10 connections,
// the schema "public" and a 30 s statement timeout. [ConfigFromEnv] reads
// the seed's variables (ATHENA_POSTGRES_URL, or ATHENA_POSTGRES_HOST,
// _PORT, _DBNAME, _USER, _PASSWORD; _MIN_SIZE, _MAX_SIZE) through a getenv
// function, so the package itself never reads the environment. New
// migrates the schema: versioned migrations, each applied once, in one
// transaction under a database-wide advisory lock, so several servers may
// start at once. The pgvector extension is created in public if missing;
// connections use search_path "<schema>, public".
//
// The schema mirrors core's model: projects (unique name and path, an
// embedding dimension that changes only by a reembed), memories with a
// pgvector column of any dimension (a foreign key on (project_id,
// embedding_dim), checked at commit, and a CHECK on vector_dims reject a
// vector of the wrong dimension even if validation is
// bypassed), a keyword index of postings (one row per distinct core term
// of each memory, kept by triggers in the writing transaction, read
// through one B-tree on (term, project_id, doc_len)), and one HNSW index
// per dimension, created with the first project of that dimension: a
// partial expression index over l2_normalize(embedding)::halfvec(dim). Events, tasks, goals, code
// entities and dependencies, relationships, tombstones, the change log,
// devices, sync cursors and core's meta table complete it. Times are
// bigint Unix milliseconds (0 for the zero time).
//
// # Search
//
// The vector leg searches the HNSW index with hnsw.ef_search =
// max(Config.EfSearch, 2k) and iterative scans (so filters do not starve
// it), forcing the index (at 10K rows the planner prefers a scan and a
// sort), then rescores the index's best max(k, 20) at full precision. It falls back to an exact scan
// when the index yields fewer than k rows, and is exact for small projects
// (Config.ExactBelow), ID filters and VectorLeg.Exact. The keyword leg
// passes core's terms as one text[] parameter (terms that are not single
// core tokens are dropped; no user text is ever query syntax), counts each
// term's documents and scores its candidates from the postings index
// alone (index-only scans), and returns the document frequencies and the
// per-project document count and total length that core needs for BM25,
// in one round trip.
//
// In a read transaction, [core.Tx.Search] asks for both legs and the
// candidate rows at once (the tx implements [core.LegsSearcher]): one
// statement runs the vector leg with the same index, settings and exact
// fallback, the keyword leg (candidates ranked by BM25 with term
// frequencies taken as 1; core rescores exactly), and returns the rows,
// in one round trip. The statement is planned once per connection and
// filter shape (a generic plan): none of its parts picks an index by a
// filter's selectivity. Write transactions keep the three calls, so that
// loading the candidates takes their advisory locks.
//
// Write transactions queue PutMemory and AppendChange and send them before
// the transaction's next statement or its commit (see pipeTx), as one
// multi-row upsert of the memories (each memory once, as its last put) and
// one multi-row insert of the changes, pipelined in one round trip, so a
// read always sees the transaction's own writes, a
// queued statement's error surfaces from that later call, and
// AppendChange sets Change.Pos by then. The change-log lock is queued after
// the memory rows, so only the appends and the commit are serialized
// between transactions.
//
// # The index is maintained off the write path
//
// An HNSW insert costs milliseconds per 768-d row, more than the rest of
// a write together, so writes do not pay it (migration 6, indexer.go). A
// new or re-embedded row commits with indexed = false, outside the
// dimension's partial HNSW index, and a background indexer started by New
// sets indexed = true in batches of Config.IndexBatch, which inserts the
// rows into the index; a commit wakes it, and it polls every
// Config.IndexInterval for rows other processes wrote. While writes keep
// coming it pauses between batches, so that a sync backlog drains at the
// speed of the rows and not of the graph. The vector leg adds every
// unindexed row matching its filter to the index's candidates and ranks
// them all by exact distance, so nothing is ever missing from search; a
// large backlog only makes the vector leg slower until the indexer
// catches up. Close indexes one more batch if the Store wrote rows for the
// index, so that short-lived processes index what they wrote.
// [Store.IndexBacklog] reports the backlog and [Store.IndexPending]
// indexes on demand.
//
// The keyword index does not defer: the triggers that keep postings
// (migration 11) insert a memory's entries, about 18 B-tree entries, in
// the transaction that writes it (about 0.25 ms a single put at 100K
// memories), so a search never scans pending entries. BulkLoad's rows go
// into the index as they are copied (or in BuildIndexes after
// DropIndexes).
//
// Embeddings are stored inline (STORAGE MAIN, toast_tuple_target 8160,
// migration 5): a 768-d vector no longer goes to the TOAST table, so
// rescoring, loading candidates, COPY and index builds read one row, not
// a TOAST lookup. The change log keeps its vectors inline the same way
// (migration 9), and a put whose vector is the embedding its memory row
// holds keeps no copy at all: it is read through the row, and copied into
// the change (kept_vector) before the row is re-embedded or deleted
// (migration 10). DropIndexes also drops the keyword postings index, the
// tag GIN index and the dimension foreign key, which BuildIndexes
// recreates; BulkLoad checks each memory's project and dimension itself,
// once per load. The postings hold core's terms as they are (migration
// 11), so no text parser runs over them again.
//
// # Concurrency
//
// A [Store] is safe for concurrent use, and several processes may share one
// database. Update runs READ COMMITTED transactions; reading a memory or a
// tombstone by ID inside one takes a transaction-scoped advisory lock on
// the ID first, so read-modify-write of one memory (access counters,
// state) is serialized across connections and processes without lost
// updates. Locks are taken in ID order; a transaction that already holds
// locks only tries further ones and is re-run, taking its whole lock set
// up front, rather than risking a deadlock. Per-project BM25 statistics
// are updated once per transaction, just before COMMIT.
//
// # Retries
//
// Update and View re-run their function (core's functions are re-runnable)
// on errors [Retryable] reports: serialization failures (40001),
// deadlocks (40P01), lost connections (for example a backend terminated by
// pg_terminate_backend) and avoided lock waits, up to Config.MaxRetries
// times with jittered exponential backoff. A COMMIT whose answer is lost
// is resolved, not guessed: before committing, Update notes its
// transaction ID, and afterwards asks pg_xact_status; a committed
// transaction returns nil, an aborted one is re-run, and an undecidable
// one returns an error wrapping [ErrCommitUnknown]. Statement timeouts
// (57014) and context errors are never retried. Driver errors are
// translated: unique violations to [core.ErrConflict], missing rows to
// [core.ErrNotFound], dimension violations to [core.ErrDimMismatch], a
// closed store to [core.ErrClosed], each keeping the cause.
package pgadapter
