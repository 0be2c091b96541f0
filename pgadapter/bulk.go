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
// or checked. The database still enforces each project's dimension. The
// project statistics are updated in the same transaction.
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

// DropIndexes drops every HNSW index and the keyword and tag indexes (all
// rebuilt by BuildIndexes), so that a large BulkLoad does not maintain them
// row by row: a GIN index updated one row at a time costs more than the
// COPY itself. Until BuildIndexes runs, searches stay correct but scan.
func (s *Store) DropIndexes(ctx context.Context) error {
	return s.Update(ctx, func(w core.WriteTx) error {
		t := w.(*tx)
		dims, err := t.indexDims(ctx)
		if err != nil {
			return err
		}
		drops := []string{"DROP INDEX IF EXISTS memories_tsv_idx", "DROP INDEX IF EXISTS memories_tags_idx"}
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
// build, and refreshes the planner statistics. It holds a lock that blocks
// writes to memories while it runs; build on a quiet store.
func (s *Store) BuildIndexes(ctx context.Context) error {
	return s.Update(ctx, func(w core.WriteTx) error {
		t := w.(*tx)
		dims, err := t.indexDims(ctx)
		if err != nil {
			return err
		}
		qs := []string{"SET LOCAL statement_timeout = 0", "SET LOCAL maintenance_work_mem = '1GB'",
			"SET LOCAL max_parallel_maintenance_workers = 2",
			"CREATE INDEX IF NOT EXISTS memories_tsv_idx ON memories USING gin (tsv) WITH (" + ginParams + ")",
			"CREATE INDEX IF NOT EXISTS memories_tags_idx ON memories USING gin (tags)"}
		for _, d := range dims {
			qs = append(qs, hnswIndexSQL(d, false))
		}
		qs = append(qs, "ANALYZE memories")
		for _, q := range qs {
			if _, err := t.tx.Exec(ctx, q); err != nil {
				return translate("build indexes", err)
			}
		}
		return nil
	})
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
