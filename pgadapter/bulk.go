package pgadapter

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/athena-edge/athena-edge/core"
)

// BulkLoad inserts memories with COPY, for imports and benchmarks. The
// memories must be new (an existing ID fails the whole load with
// core.ErrConflict) and already valid: BulkLoad bypasses core's validator
// and writes no change-log entries, so use it only for data core produced
// or checked. Each memory's project must exist (core.ErrNotFound
// otherwise) and its vector must have the project's dimension
// (core.ErrDimMismatch): BulkLoad checks both once per load, holding the
// projects' rows against a concurrent change of dimension, so it does not
// rely on the dimension foreign key (DropIndexes drops it). The project
// statistics are updated in the same transaction.
//
// Unlike other writes, BulkLoad does not leave its rows to the background
// indexer: with an HNSW index present every row updates the index as it
// is copied, so loading into an empty store is faster with DropIndexes
// before and BuildIndexes after.
func (s *Store) BulkLoad(ctx context.Context, ms []core.Memory) error {
	if s.closed.Load() {
		return core.ErrClosed
	}
	return s.Update(ctx, func(w core.WriteTx) error {
		t := w.(*tx)
		if err := t.checkProjectDims(ctx, ms); err != nil {
			return err
		}
		cols := append(strings.Split(strings.Join(strings.Fields(memCols), ""), ","), "terms", "doc_len", "embedding_dim", "indexed")
		i := 0
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i >= len(ms) {
				return nil, nil
			}
			m := &ms[i]
			i++
			ts, n := terms(m.Content)
			t.addStats(m.ProjectID, 1, int64(n))
			return []any{string(m.ID), string(m.ProjectID), m.Content, vecArg(m.Embedding), m.EmbeddingModel, string(m.MemoryType),
				m.Domain, m.Tags, m.SessionID, m.EventType, m.CodeLanguage, m.CodeHash, m.Usefulness, m.Confidence, m.AccessCount,
				m.QualityScore, string(m.State), string(m.SupersededBy), core.UnixMilli(m.CreatedAt), core.UnixMilli(m.UpdatedAt),
				core.UnixMilli(m.LastAccessed), core.UnixMilli(m.LastRetrieved), core.UnixMilli(m.ConsolidatedAt), int64(m.Version.HLC),
				m.Version.Device, int64(m.StateVersion.HLC), m.StateVersion.Device, accessArg(m.AccessByDevice), ts, n, len(m.Embedding), true}, nil
		})
		if _, err := t.tx.CopyFrom(ctx, pgx.Identifier{"memories"}, cols, src); err != nil {
			return translate("bulk load", err)
		}
		return nil
	})
}

// checkProjectDims checks that every memory's project exists and that its
// vector has the project's dimension, locking the projects' rows (FOR KEY
// SHARE) until the transaction ends so that no re-embed changes a
// dimension under the load. It is what the dimension foreign key checks,
// in one query instead of one per row.
func (t *tx) checkProjectDims(ctx context.Context, ms []core.Memory) error {
	var ids []string
	seen := map[core.ID]bool{}
	for i := range ms {
		if p := ms[i].ProjectID; !seen[p] {
			seen[p] = true
			ids = append(ids, string(p))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := t.tx.Query(ctx, "SELECT id, embedding_dim FROM projects WHERE id = ANY($1) ORDER BY id FOR KEY SHARE", ids)
	if err != nil {
		return translate("bulk load", err)
	}
	dims := make(map[core.ID]int, len(ids))
	var id string
	var dim int
	if _, err := pgx.ForEachRow(rows, []any{&id, &dim}, func() error { dims[core.ID(id)] = dim; return nil }); err != nil {
		return translate("bulk load", err)
	}
	for i := range ms {
		m := &ms[i]
		d, ok := dims[m.ProjectID]
		if !ok {
			return fmt.Errorf("pgadapter: bulk load: memory %s: project %s: %w", m.ID, m.ProjectID, core.ErrNotFound)
		}
		if len(m.Embedding) != d {
			return fmt.Errorf("pgadapter: bulk load: memory %s: %w", m.ID, &core.FieldError{Field: "embedding",
				Reason: fmt.Sprintf("has %d dimensions, project %s has %d", len(m.Embedding), m.ProjectID, d), Err: core.ErrDimMismatch})
		}
	}
	return nil
}

// dimFKey is the memories' foreign key to their project's (id, dimension):
// DropIndexes drops it and BuildIndexes adds it back.
const dimFKey = `ALTER TABLE memories ADD CONSTRAINT memories_project_dim_fkey FOREIGN KEY (project_id, embedding_dim)
	REFERENCES projects(id, embedding_dim) DEFERRABLE INITIALLY DEFERRED`

// DropIndexes drops every HNSW index and the keyword and tag indexes (all
// rebuilt by BuildIndexes), so that a large BulkLoad does not maintain them
// row by row: an index updated one row at a time costs more than building
// it once (the keyword index takes about 18 entries a memory). It also
// drops the dimension foreign key, whose check is a
// query per copied row (about 11 µs each at commit); BulkLoad checks the
// same thing once per load, and BuildIndexes adds the key back, validating
// every row in one join. Until BuildIndexes runs, searches stay correct
// but scan, and only core's validator and BulkLoad's check keep a vector's
// dimension equal to its project's.
func (s *Store) DropIndexes(ctx context.Context) error {
	return s.Update(ctx, func(w core.WriteTx) error {
		t := w.(*tx)
		dims, err := t.indexDims(ctx)
		if err != nil {
			return err
		}
		drops := []string{"DROP INDEX IF EXISTS " + postingsIndex, "DROP INDEX IF EXISTS memories_tags_idx",
			"ALTER TABLE memories DROP CONSTRAINT IF EXISTS memories_project_dim_fkey"}
		for _, d := range dims {
			drops = append(drops, fmt.Sprintf("DROP INDEX IF EXISTS memories_hnsw_%d", d))
		}
		for _, q := range drops {
			if _, err := t.tx.Exec(ctx, q); err != nil {
				return translate("drop index", err)
			}
		}
		return nil
	})
}

// BuildIndexes creates any missing index DropIndexes drops (one HNSW
// index per project dimension, the keyword and tag indexes) with
// maintenance_work_mem raised to 1GB and up to two parallel workers per
// build, adds the dimension foreign key back if it is missing (a row whose
// vector does not have its project's dimension fails it with
// core.ErrDimMismatch), and refreshes the planner statistics. It holds a
// lock that blocks writes to memories while it runs; build on a quiet
// store. Last, outside that transaction, it vacuums the keyword postings,
// so that searches read them from the index alone.
func (s *Store) BuildIndexes(ctx context.Context) error {
	err := s.Update(ctx, func(w core.WriteTx) error {
		t := w.(*tx)
		dims, err := t.indexDims(ctx)
		if err != nil {
			return err
		}
		qs := []string{"SET LOCAL statement_timeout = 0", "SET LOCAL maintenance_work_mem = '1GB'",
			"SET LOCAL max_parallel_maintenance_workers = 2",
			"CREATE INDEX IF NOT EXISTS " + postingsIndex + " ON postings " + postingsKey,
			"CREATE INDEX IF NOT EXISTS memories_tags_idx ON memories USING gin (tags)"}
		for _, d := range dims {
			qs = append(qs, hnswIndexSQL(d, false))
		}
		var hasFKey bool
		if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint
			WHERE conrelid = 'memories'::regclass AND conname = 'memories_project_dim_fkey')`).Scan(&hasFKey); err != nil {
			return translate("build indexes", err)
		}
		if !hasFKey {
			qs = append(qs, dimFKey)
		}
		qs = append(qs, "ANALYZE memories")
		for _, q := range qs {
			if _, err := t.tx.Exec(ctx, q); err != nil {
				return translate("build indexes", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A search reads postings only from their index, and an index-only
	// scan still visits every heap page the visibility map does not mark
	// all-visible, as no page of a fresh load is. VACUUM marks them (it
	// cannot run inside a transaction).
	if _, err := s.pool.Exec(ctx, "VACUUM (ANALYZE) postings"); err != nil {
		return translate("build indexes: vacuum postings", err)
	}
	return nil
}

func (t *tx) indexDims(ctx context.Context) ([]int, error) {
	rows, err := t.tx.Query(ctx, "SELECT dim FROM vector_indexes ORDER BY dim")
	if err != nil {
		return nil, translate("index dims", err)
	}
	dims, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, translate("index dims", err)
	}
	return dims, nil
}
