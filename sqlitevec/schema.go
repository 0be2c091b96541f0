package sqlitevec

import (
	"context"
	"fmt"
)

// migrations are applied in order; migration i brings PRAGMA user_version
// from i to i+1. Shipped migrations are never edited, only appended to.
var migrations = []string{
	// 1: the whole schema. Times are Unix milliseconds (0 for the zero
	// time), stamps are an HLC integer plus a device, embeddings are
	// little-endian float32 BLOBs, lists and maps are JSON text.
	`
CREATE TABLE projects (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	path TEXT NOT NULL UNIQUE,
	language TEXT NOT NULL DEFAULT '',
	description TEXT NOT NULL DEFAULT '',
	embedding_model TEXT NOT NULL,
	embedding_dim INTEGER NOT NULL,
	consolidation_interval_ns INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	last_accessed INTEGER NOT NULL,
	version_hlc INTEGER NOT NULL,
	version_device TEXT NOT NULL
) STRICT;

CREATE TABLE memories (
	rid INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	project_id TEXT NOT NULL,
	content TEXT NOT NULL,
	embedding BLOB,
	embedding_model TEXT NOT NULL,
	memory_type TEXT NOT NULL,
	domain TEXT NOT NULL,
	tags TEXT NOT NULL,
	session_id TEXT NOT NULL,
	event_type TEXT NOT NULL,
	code_language TEXT NOT NULL,
	code_hash TEXT NOT NULL,
	usefulness REAL NOT NULL,
	confidence REAL NOT NULL,
	access_count INTEGER NOT NULL,
	quality_score REAL NOT NULL,
	state TEXT NOT NULL,
	superseded_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	last_accessed INTEGER NOT NULL,
	last_retrieved INTEGER NOT NULL,
	consolidated_at INTEGER NOT NULL,
	version_hlc INTEGER NOT NULL,
	version_device TEXT NOT NULL,
	state_version_hlc INTEGER NOT NULL,
	state_version_device TEXT NOT NULL,
	access_by_device TEXT NOT NULL
) STRICT;
CREATE INDEX memories_project ON memories(project_id, id);

-- Keyword index over core.NormalizeText(content), plus one "_p<hex id>"
-- token per document naming its project (core tokens never contain '_', so
-- the project token cannot collide with a word). Contentless: SQLite keeps
-- the text once, in memories.content.
CREATE VIRTUAL TABLE memories_fts USING fts5(
	body,
	content = '',
	contentless_delete = 1,
	tokenize = "ascii tokenchars '_'"
);

CREATE TABLE tombstones (
	id TEXT PRIMARY KEY,
	deleted_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	ts INTEGER NOT NULL,
	event_type TEXT NOT NULL,
	content TEXT NOT NULL,
	outcome TEXT NOT NULL,
	context TEXT NOT NULL,
	learned TEXT NOT NULL,
	surprise REAL NOT NULL,
	confidence REAL NOT NULL,
	embedding BLOB,
	embedding_model TEXT NOT NULL,
	consolidated INTEGER NOT NULL,
	consolidated_into TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	version_hlc INTEGER NOT NULL,
	version_device TEXT NOT NULL
) STRICT;
CREATE INDEX events_project ON events(project_id, ts, id);

CREATE TABLE tasks (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	title TEXT NOT NULL,
	description TEXT NOT NULL,
	status TEXT NOT NULL,
	priority INTEGER NOT NULL,
	goal_id TEXT NOT NULL,
	parent_id TEXT NOT NULL,
	due_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	completed_at INTEGER NOT NULL,
	version_hlc INTEGER NOT NULL,
	version_device TEXT NOT NULL
) STRICT;
CREATE INDEX tasks_project ON tasks(project_id, priority DESC, id);

CREATE TABLE goals (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	title TEXT NOT NULL,
	description TEXT NOT NULL,
	status TEXT NOT NULL,
	priority INTEGER NOT NULL,
	parent_id TEXT NOT NULL,
	progress REAL NOT NULL,
	due_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	version_hlc INTEGER NOT NULL,
	version_device TEXT NOT NULL
) STRICT;
CREATE INDEX goals_project ON goals(project_id, priority DESC, id);

CREATE TABLE code_entities (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	memory_id TEXT NOT NULL,
	file_path TEXT NOT NULL,
	name TEXT NOT NULL,
	entity_type TEXT NOT NULL,
	language TEXT NOT NULL,
	signature TEXT NOT NULL,
	docstring TEXT NOT NULL,
	semantic_hash TEXT NOT NULL,
	complexity INTEGER NOT NULL,
	line_start INTEGER NOT NULL,
	line_end INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	version_hlc INTEGER NOT NULL,
	version_device TEXT NOT NULL
) STRICT;
CREATE INDEX code_entities_project ON code_entities(project_id, id);
CREATE INDEX code_entities_memory ON code_entities(memory_id);

CREATE TABLE code_dependencies (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	from_id TEXT NOT NULL,
	to_id TEXT NOT NULL,
	dependency_type TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	version_hlc INTEGER NOT NULL,
	version_device TEXT NOT NULL
) STRICT;

CREATE TABLE relationships (
	id TEXT PRIMARY KEY,
	project_id TEXT NOT NULL,
	from_id TEXT NOT NULL,
	to_id TEXT NOT NULL,
	relationship_type TEXT NOT NULL,
	strength REAL NOT NULL,
	created_at INTEGER NOT NULL,
	version_hlc INTEGER NOT NULL,
	version_device TEXT NOT NULL
) STRICT;
CREATE INDEX relationships_from ON relationships(from_id);
CREATE INDEX relationships_to ON relationships(to_id);

CREATE TABLE changes (
	pos INTEGER PRIMARY KEY AUTOINCREMENT,
	device TEXT NOT NULL,
	seq INTEGER NOT NULL,
	hlc INTEGER NOT NULL,
	kind TEXT NOT NULL,
	project_id TEXT NOT NULL,
	entity_id TEXT NOT NULL,
	payload TEXT NOT NULL,
	vector BLOB,
	status TEXT NOT NULL,
	reason TEXT NOT NULL,
	UNIQUE (device, seq)
) STRICT;
`,
	// 2: a small key-value table (core.MetaTx), e.g. sync cursors.
	`
CREATE TABLE meta (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
`,
	// 3: the generation of the memories, incremented by every write
	// transaction that changes them; it validates the index snapshot file.
	`
CREATE TABLE index_gen (
	k INTEGER PRIMARY KEY CHECK (k = 0),
	gen INTEGER NOT NULL
) STRICT;
INSERT INTO index_gen (k, gen) VALUES (0, 0);
`,
	// 4: find a memory's changes, so that a process can learn what another
	// process changed (see catchup.go).
	`
CREATE INDEX changes_entity ON changes(entity_id, pos);
`,
	// 5: a memory.put change whose vector is the embedding its memory row
	// holds stores it once, in the row: vector is NULL and
	// vector_in_memory 1 (see writeTx.AppendChange). Rows written before
	// keep their vector and 0.
	`
ALTER TABLE changes ADD COLUMN vector_in_memory INTEGER NOT NULL DEFAULT 0;
`,
}

// schemaVersion is the user_version a fully migrated database has.
var schemaVersion = len(migrations)

// migrate brings the schema up to date in one IMMEDIATE transaction. It is
// idempotent: a database already at schemaVersion is left alone, and two
// processes migrating at once serialize on the write lock.
func migrate(ctx context.Context, c *conn) (err error) {
	old := c.c.SetInterrupt(ctx)
	defer c.c.SetInterrupt(old)
	if err := c.c.Exec(`BEGIN IMMEDIATE`); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = c.c.Exec(`ROLLBACK`)
		}
	}()
	v, err := c.userVersion()
	if err != nil {
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this build's %d", v, schemaVersion)
	}
	for i := v; i < schemaVersion; i++ {
		if err := c.c.Exec(migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if err := c.c.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			return err
		}
	}
	return c.c.Exec(`COMMIT`)
}

func (c *conn) userVersion() (int, error) {
	st, _, err := c.c.Prepare(`PRAGMA user_version`)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if !st.Step() {
		return 0, st.Err()
	}
	return st.ColumnInt(0), nil
}
