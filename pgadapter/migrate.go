package pgadapter

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrationLockKey is the pg_advisory_xact_lock key every athena-edge
// server takes while migrating, whatever its schema: migrations are rare
// and short, and one key also serializes CREATE EXTENSION, which is
// database-wide.
const migrationLockKey = 0x617468656e61 // "athena"

// migrations are applied in order, each once, in one transaction under the
// advisory lock. Append only: a shipped migration never changes.
var migrations = []string{
	// 1: the core model.
	`
CREATE TABLE projects (
	id text PRIMARY KEY,
	name text NOT NULL UNIQUE,
	path text NOT NULL UNIQUE,
	language text NOT NULL DEFAULT '',
	description text NOT NULL DEFAULT '',
	embedding_model text NOT NULL,
	embedding_dim int NOT NULL CHECK (embedding_dim BETWEEN 1 AND 16000),
	consolidation_interval_ns bigint NOT NULL DEFAULT 0,
	created_at bigint NOT NULL DEFAULT 0,
	updated_at bigint NOT NULL DEFAULT 0,
	last_accessed bigint NOT NULL DEFAULT 0,
	version_hlc bigint NOT NULL DEFAULT 0,
	version_device text NOT NULL DEFAULT '',
	UNIQUE (id, embedding_dim)
);

-- Per-project BM25 statistics over every memory (any state), kept in the
-- same transaction as the memory writes.
CREATE TABLE project_stats (
	project_id text PRIMARY KEY REFERENCES projects(id),
	docs bigint NOT NULL DEFAULT 0,
	total_len bigint NOT NULL DEFAULT 0
);

CREATE TABLE memories (
	id text PRIMARY KEY,
	project_id text NOT NULL,
	content text NOT NULL,
	-- strings.Join(core.Tokenize(content), " "): Postgres indexes core's
	-- terms, so every store agrees on what a term is.
	terms text NOT NULL,
	doc_len int NOT NULL,
	tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', terms)) STORED,
	embedding vector,
	embedding_dim int NOT NULL,
	embedding_model text NOT NULL DEFAULT '',
	memory_type text NOT NULL,
	domain text NOT NULL DEFAULT '',
	tags text[],
	session_id text NOT NULL DEFAULT '',
	event_type text NOT NULL DEFAULT '',
	code_language text NOT NULL DEFAULT '',
	code_hash text NOT NULL DEFAULT '',
	usefulness float8 NOT NULL DEFAULT 0,
	confidence float8 NOT NULL DEFAULT 0,
	access_count bigint NOT NULL DEFAULT 0,
	quality_score float8 NOT NULL DEFAULT 0,
	state text NOT NULL,
	superseded_by text NOT NULL DEFAULT '',
	created_at bigint NOT NULL DEFAULT 0,
	updated_at bigint NOT NULL DEFAULT 0,
	last_accessed bigint NOT NULL DEFAULT 0,
	last_retrieved bigint NOT NULL DEFAULT 0,
	consolidated_at bigint NOT NULL DEFAULT 0,
	version_hlc bigint NOT NULL DEFAULT 0,
	version_device text NOT NULL DEFAULT '',
	state_hlc bigint NOT NULL DEFAULT 0,
	state_device text NOT NULL DEFAULT '',
	access_by_device jsonb,
	-- The project's dimension is fixed; a vector of another dimension is
	-- rejected here even if validation was bypassed.
	CONSTRAINT memories_project_dim_fkey FOREIGN KEY (project_id, embedding_dim) REFERENCES projects(id, embedding_dim),
	CONSTRAINT memories_embedding_dim_check CHECK (embedding IS NULL OR vector_dims(embedding) = embedding_dim)
);
CREATE INDEX memories_project_idx ON memories (project_id, id);
CREATE INDEX memories_project_created_idx ON memories (project_id, created_at);
CREATE INDEX memories_tsv_idx ON memories USING gin (tsv);
CREATE INDEX memories_tags_idx ON memories USING gin (tags);

CREATE TABLE tombstones (
	id text PRIMARY KEY,
	project_id text NOT NULL,
	deleted_at bigint NOT NULL
);

-- Records whose meaning core owns (last-writer-wins as a whole) keep the
-- full record as JSON in body, with a column for every filter and order.
CREATE TABLE events (
	id text PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects(id),
	session_id text NOT NULL,
	ts bigint NOT NULL,
	consolidated bool NOT NULL,
	embedding vector,
	body jsonb NOT NULL
);
CREATE INDEX events_project_ts_idx ON events (project_id, ts, id);

CREATE TABLE tasks (
	id text PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects(id),
	status text NOT NULL,
	priority int NOT NULL,
	goal_id text NOT NULL,
	body jsonb NOT NULL
);
CREATE INDEX tasks_project_idx ON tasks (project_id, priority DESC, id);

CREATE TABLE goals (
	id text PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects(id),
	status text NOT NULL,
	priority int NOT NULL,
	body jsonb NOT NULL
);
CREATE INDEX goals_project_idx ON goals (project_id, priority DESC, id);

CREATE TABLE code_entities (
	id text PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects(id),
	memory_id text NOT NULL,
	file_path text NOT NULL,
	body jsonb NOT NULL
);
CREATE INDEX code_entities_project_idx ON code_entities (project_id, file_path);
CREATE INDEX code_entities_memory_idx ON code_entities (memory_id);

CREATE TABLE code_dependencies (
	id text PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects(id),
	from_id text NOT NULL,
	to_id text NOT NULL,
	body jsonb NOT NULL
);
CREATE INDEX code_dependencies_project_idx ON code_dependencies (project_id, id);

CREATE TABLE relationships (
	id text PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects(id),
	from_id text NOT NULL,
	to_id text NOT NULL,
	body jsonb NOT NULL
);
CREATE INDEX relationships_from_idx ON relationships (from_id);
CREATE INDEX relationships_to_idx ON relationships (to_id);

-- The change log. payload keeps the exact JSON bytes; vector is the
-- embedding as little-endian float32 (bit-exact, -0 and subnormals too).
CREATE TABLE changes (
	pos bigserial PRIMARY KEY,
	device text NOT NULL,
	seq bigint NOT NULL,
	hlc bigint NOT NULL,
	kind text NOT NULL,
	project_id text NOT NULL,
	entity_id text NOT NULL,
	payload json NOT NULL,
	vector bytea,
	status text NOT NULL,
	reason text NOT NULL DEFAULT '',
	UNIQUE (device, seq)
);
CREATE INDEX changes_project_pos_idx ON changes (project_id, pos);

-- Sync (the sync issue): devices with hashed bearer tokens, and one
-- cursor per device and project.
CREATE TABLE devices (
	id text PRIMARY KEY,
	project_id text NOT NULL REFERENCES projects(id),
	token_hash bytea NOT NULL UNIQUE,
	created_at bigint NOT NULL,
	revoked_at bigint NOT NULL DEFAULT 0
);
CREATE TABLE sync_cursors (
	device_id text NOT NULL REFERENCES devices(id),
	project_id text NOT NULL REFERENCES projects(id),
	pos bigint NOT NULL DEFAULT 0,
	updated_at bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (device_id, project_id)
);

-- One HNSW index per embedding dimension, created with the first project
-- of that dimension (see hnswIndexSQL).
CREATE TABLE vector_indexes (
	dim int PRIMARY KEY,
	created_at timestamptz NOT NULL DEFAULT now()
);
`,
	// 2: core.MetaTx, a key-value table in the same transactions as the rest.
	`
CREATE TABLE meta (
	key text COLLATE "C" PRIMARY KEY,
	value text NOT NULL
);
`,
	// 3: a re-embed (core.Tx.SwapEmbedder) changes a project's dimension,
	// then every memory's, in one transaction: the memories' foreign key
	// on (project_id, embedding_dim) is checked at commit. A vector of the
	// wrong dimension still fails, at COMMIT instead of at the INSERT.
	`
ALTER TABLE memories ALTER CONSTRAINT memories_project_dim_fkey DEFERRABLE INITIALLY DEFERRED;
`,
	// 4: the keyword index without GIN's pending list. With fastupdate on,
	// new entries wait in an unsorted list that every search scans until
	// a vacuum merges it: at 10K fresh rows that made each term lookup
	// 2.5 ms instead of 0.01 ms. Writes pay a little more instead.
	`
ALTER INDEX memories_tsv_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('memories_tsv_idx'::regclass);
`,
	// 5: embeddings stay in the row. A 768-d vector is 3 KB, over the 2 KB
	// at which PostgreSQL moves a value to the TOAST table, so every
	// candidate the vector leg rescored and every row search loaded cost a
	// TOAST index lookup and two more page reads, and the HNSW build read
	// each vector the same way. MAIN storage with a row target of a whole
	// page keeps rows up to 8 KB inline; a longer row still compresses and
	// moves its content first, then its vector. Rows written before this
	// migration move when next rewritten.
	`
ALTER TABLE memories ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE memories SET (toast_tuple_target = 8160);
`,
	// 6: the HNSW index is maintained off the write path. An HNSW insert
	// costs milliseconds (a 768-d row at 100K: about 3 ms, all of a sync
	// batch's time), so a write commits its row with indexed = false and
	// the background indexer (indexer.go) sets indexed = true later, which
	// is when the row enters the index; the vector leg scans the few
	// unindexed rows exactly, through memories_unindexed. Existing rows are
	// already in their index: they start indexed, and each HNSW index is
	// rebuilt with the new predicate (this rebuild is the migration's cost
	// on a large table).
	`
ALTER TABLE memories ADD COLUMN indexed boolean NOT NULL DEFAULT true;
ALTER TABLE memories ALTER COLUMN indexed SET DEFAULT false;
CREATE INDEX memories_unindexed ON memories (project_id, embedding_dim) WHERE NOT indexed;
DO $$
DECLARE d int;
BEGIN
	FOR d IN SELECT dim FROM vector_indexes LOOP
		EXECUTE format('DROP INDEX IF EXISTS memories_hnsw_%s', d);
		EXECUTE format('CREATE INDEX memories_hnsw_%s ON memories USING hnsw ((l2_normalize(embedding)::halfvec(%s)) halfvec_cosine_ops)
			WITH (` + hnswParams + `) WHERE embedding_dim = %s AND indexed', d, d, d);
	END LOOP;
END $$;
`,
	// 7: the keyword index takes new entries through GIN's pending list
	// again (migration 4 turned it off), bounded to keep searches quick.
	// Inserting a row's terms straight into the GIN trees was 60% of a
	// row's insert (about 130 µs of 200 µs at 100K rows); through the
	// pending list, merged in bulk, it costs about a third of that. A
	// search scans the pending entries (about 0.5 ms per term at 1,000
	// rows), so the list is capped (ginParams) and the indexer merges it
	// as soon as it has no HNSW backlog left (indexer.go).
	`
ALTER INDEX memories_tsv_idx SET (` + ginParams + `);
`,
	// 8: the keyword column holds core's terms as they are. It was
	// to_tsvector('simple', terms), which ran PostgreSQL's text parser
	// again over terms core had already made (about 11 µs a row, a fifth
	// of a bulk load's time in COPY) and could split a core term in two;
	// array_to_tsvector takes the terms as lexemes (about 3 µs a row),
	// without positions, which no query reads. PostgreSQL 15 cannot change
	// a generated column's expression, so the column and its index are
	// made again (a table rewrite on a large table).
	`
DROP INDEX IF EXISTS memories_tsv_idx;
ALTER TABLE memories DROP COLUMN tsv;
ALTER TABLE memories ADD COLUMN tsv tsvector GENERATED ALWAYS AS (array_to_tsvector(string_to_array(terms, ' '))) STORED;
CREATE INDEX memories_tsv_idx ON memories USING gin (tsv) WITH (` + ginParams + `);
`,
	// 9: a change's vector stays in its row, as a memory's does
	// (migration 5). bytea is EXTENDED: a 768-d vector (3 KB, over the
	// 2 KB threshold) was first run through pglz, which cannot shrink
	// float noise, then written to the TOAST table as two chunks with two
	// TOAST index entries, on every memory put the server logged, and a
	// pull read it back the same way. MAIN with a row target of a whole
	// page leaves rows up to 8 KB alone; a longer row still compresses
	// and moves its payload first, then its vector.
	`
ALTER TABLE changes ALTER COLUMN vector SET STORAGE MAIN;
ALTER TABLE changes SET (toast_tuple_target = 8160);
`,
	// 10: a memory put's vector is written once. A change whose vector is
	// the embedding its transaction wrote to the memory row keeps no copy
	// (vector NULL, vector_in_memory true) and is read with the row's;
	// before that row's embedding changes or the row goes, the statement
	// that changes it copies the old embedding into kept_vector of every
	// such change (pipeTx). The copy was a third of a synced put's
	// statements: about 33 µs of 55 to log a 768-d put, and 3 KB of its
	// WAL. Rows written before keep their vector.
	`
ALTER TABLE changes ADD COLUMN vector_in_memory boolean NOT NULL DEFAULT false;
ALTER TABLE changes ADD COLUMN kept_vector vector;
ALTER TABLE changes ALTER COLUMN kept_vector SET STORAGE MAIN;
CREATE INDEX changes_vector_in_memory_idx ON changes (entity_id) WHERE vector_in_memory;
`,
	// 11: the keyword index is a table of postings, one row per distinct
	// term of each memory, kept by triggers in the transaction that writes
	// the memory, and read only through its B-tree: a search counts each
	// term's documents and scores its rows with index-only scans. The GIN
	// index could find a term's rows but not count or score them without
	// visiting every one in the heap (a page per 3 KB row): at 100K rows
	// that was most of a hybrid search (docs/BENCHMARKS.md). The tsvector
	// column and its GIN index go.
	`
DROP INDEX IF EXISTS memories_tsv_idx;
ALTER TABLE memories DROP COLUMN IF EXISTS tsv;
CREATE TABLE postings (
	project_id text NOT NULL,
	term text NOT NULL,
	doc_len int NOT NULL,
	id text NOT NULL
);
INSERT INTO postings (project_id, term, doc_len, id)
	SELECT m.project_id, t.t, m.doc_len, m.id FROM memories m, LATERAL (SELECT DISTINCT unnest(string_to_array(m.terms, ' '))) AS t(t)
	WHERE t.t <> '';
CREATE INDEX ` + postingsIndex + ` ON postings ` + postingsKey + `;
` + postingsTriggers + `
`,
	// 12: TRUNCATE memories empties postings too. TRUNCATE fires no DELETE
	// trigger, so without this the keyword index would keep every
	// truncated memory's entries.
	`
CREATE FUNCTION memories_postings_truncate() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	TRUNCATE postings;
	RETURN NULL;
END $$;
CREATE TRIGGER memories_postings_truncate AFTER TRUNCATE ON memories
	FOR EACH STATEMENT EXECUTE FUNCTION memories_postings_truncate();
`,
}

// postingsIndex is the keyword index (migration 11): postings sorted by
// term, project, then document length, so that one term's rows in a
// project are one range of the index (and a term's rows in every project
// one range too), shortest documents (the highest BM25 for a term) first,
// with the memory's ID carried for index-only scans. The term leads
// because sorting by it is what builds the index quickly: with the
// project first, every comparison starts with 36 equal bytes, and a build
// at 100K memories (1.76M entries) took 4.2 s instead of 1.6 s. DropIndexes
// drops it.
const (
	postingsIndex = "postings_term_idx"
	postingsKey   = "(term, project_id, doc_len) INCLUDE (id)"
)

// postingsTriggers keep postings equal to the set of (project_id, term,
// doc_len, id) over memories, for each distinct term of terms: a statement
// trigger adds an INSERT's (or COPY's) rows in one set-based statement
// (each row's terms made distinct on their own: a DISTINCT over the whole
// batch's entries took twice as long), a
// row trigger re-derives a row whose terms, length or project an UPDATE
// (an upsert too) changed, and a statement trigger removes a DELETE's
// (migration 12 adds one that follows a TRUNCATE).
// Each function pins the search path it was created with, so postings is
// the table in the memories' schema whatever the session's path.
const postingsTriggers = `
CREATE FUNCTION memories_postings_insert() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	INSERT INTO postings (project_id, term, doc_len, id)
		SELECT n.project_id, t.t, n.doc_len, n.id FROM new_rows n,
			LATERAL (SELECT DISTINCT unnest(string_to_array(n.terms, ' '))) AS t(t)
		WHERE t.t <> '';
	RETURN NULL;
END $$;
CREATE FUNCTION memories_postings_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	DELETE FROM postings p WHERE p.project_id = OLD.project_id AND p.term = ANY(string_to_array(OLD.terms, ' '))
		AND p.doc_len = OLD.doc_len AND p.id = OLD.id;
	INSERT INTO postings (project_id, term, doc_len, id)
		SELECT DISTINCT NEW.project_id, t.t, NEW.doc_len, NEW.id FROM unnest(string_to_array(NEW.terms, ' ')) AS t(t)
		WHERE t.t <> '';
	RETURN NULL;
END $$;
CREATE FUNCTION memories_postings_delete() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
	DELETE FROM postings p USING old_rows o WHERE p.project_id = o.project_id
		AND p.term = ANY(string_to_array(o.terms, ' ')) AND p.doc_len = o.doc_len AND p.id = o.id;
	RETURN NULL;
END $$;
CREATE TRIGGER memories_postings_insert AFTER INSERT ON memories REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION memories_postings_insert();
CREATE TRIGGER memories_postings_update AFTER UPDATE OF id, project_id, terms, doc_len ON memories FOR EACH ROW
	WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.project_id IS DISTINCT FROM NEW.project_id
		OR OLD.terms IS DISTINCT FROM NEW.terms OR OLD.doc_len IS DISTINCT FROM NEW.doc_len)
	EXECUTE FUNCTION memories_postings_update();
CREATE TRIGGER memories_postings_delete AFTER DELETE ON memories REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION memories_postings_delete();
`

// ginParams were the storage parameters of the GIN keyword index
// memories_tsv_idx (migrations 7 and 8; migration 11 replaced the index
// with postings): new entries waited in GIN's pending list, at most
// gin_pending_list_limit KB of them, until the indexer merged them.
const ginParams = "fastupdate = on, gin_pending_list_limit = 512"

// migrate brings the schema to the latest version. It is idempotent and
// safe to run from several processes at once: everything happens in one
// transaction under a database-wide advisory lock.
func migrate(ctx context.Context, conn *pgx.Conn, schema string) error {
	return migrateTo(ctx, conn, schema, len(migrations))
}

// migrateTo brings the schema to version target (tests start from an old
// version to check an upgrade).
func migrateTo(ctx context.Context, conn *pgx.Conn, schema string, target int) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Migrations (and waiting for another server's) may outlast the
		// statement timeout; ctx bounds them instead.
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLockKey)); err != nil {
			return err
		}
		var hasVector bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')").Scan(&hasVector); err != nil {
			return err
		}
		if !hasVector {
			if _, err := tx.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"); err != nil {
				return fmt.Errorf("create extension vector (needs pgvector >= 0.8 installed): %w", err)
			}
		}
		id := pgx.Identifier{schema}.Sanitize()
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+id+", public"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var cur int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&cur); err != nil {
			return err
		}
		for v := cur + 1; v <= target; v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v); err != nil {
				return err
			}
		}
		return nil
	})
}

// hnswIndexSQL is the HNSW index for one dimension: a partial expression
// index over the normalized vector as halfvec (half the size, so 768-d
// entries stay small, and normalizing first keeps every element in range)
// of the rows the indexer has reached (indexed; see indexer.go).
// The vector leg rescores its candidates at full precision.
func hnswIndexSQL(dim int, concurrently bool) string {
	c := ""
	if concurrently {
		c = "CONCURRENTLY "
	}
	return fmt.Sprintf(`CREATE INDEX %sIF NOT EXISTS memories_hnsw_%d ON memories
		USING hnsw ((l2_normalize(embedding)::halfvec(%d)) halfvec_cosine_ops) WITH (`+hnswParams+`)
		WHERE embedding_dim = %d AND indexed`, c, dim, dim, dim)
}

// hnswParams are the HNSW build parameters of every index hnswIndexSQL
// makes.
//
// m = 16, ef_construction = 64 (pgvector's defaults) are kept on purpose.
// On the clustered 100K x 768 benchmark set, recall@10 at ef_search 100
// was 0.97-0.996 across builds with them, already close to the 0.98 the
// vector leg must keep. Cheaper graphs lost more: ef_construction 40 gave
// 0.93 (0.94 at ef_search 128), 48 gave 0.96-0.985, and m 12 needed
// ef_search 128 for 0.985; ef_construction 48 saved under 10% of the
// build's CPU time. The graph build is nearly all of BuildIndexes (the GIN
// indexes and ANALYZE take about 2.5 s at 100K rows). Because of that
// spread between builds, DefaultEfSearch is 192, not 100.
// Changing these parameters affects only indexes created afterwards (a
// new dimension, or BuildIndexes after DropIndexes), not existing ones.
const hnswParams = "m = 16, ef_construction = 64"

// maxIndexDim is pgvector's limit for HNSW on halfvec.
const maxIndexDim = 4000
