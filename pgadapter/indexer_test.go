package pgadapter

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// writeRandom writes n memories of dim through core (so they wait for the
// indexer) and returns the project.
func writeRandom(t *testing.T, s *Store, r *mrand.Rand, n, dim int) core.Project {
	t.Helper()
	ctx := context.Background()
	db := core.New(s, core.Config{Device: "d"})
	p, err := db.CreateProject(ctx, core.Project{Name: "ix", Path: "/ix", EmbeddingModel: "m", EmbeddingDim: dim})
	require.NoError(t, err)
	ms := make([]core.Memory, n)
	for i := range ms {
		ms[i] = core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("note %d", i), Embedding: randUnit(r, dim)}
	}
	res, err := db.RememberBatch(ctx, ms)
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
	}
	return p
}

func backlog(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.IndexBacklog(context.Background())
	require.NoError(t, err)
	return n
}

// sameAsExact checks that the approximate vector leg, alone and in the
// one-statement search, finds what the exact leg finds.
func sameAsExact(t *testing.T, s *Store, leg core.VectorLeg) []core.Candidate {
	t.Helper()
	ctx := context.Background()
	var approx, exact []core.Candidate
	var legs core.LegsResult
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		var err error
		if approx, err = r.VectorLeg(ctx, leg); err != nil {
			return err
		}
		if legs, err = r.(core.LegsSearcher).SearchLegs(ctx, core.LegsRequest{Vector: &leg}); err != nil {
			return err
		}
		x := leg
		x.Exact = true
		exact, err = r.VectorLeg(ctx, x)
		return err
	}))
	ids := func(cs []core.Candidate) []core.ID {
		out := make([]core.ID, len(cs))
		for i, c := range cs {
			out[i] = c.ID
		}
		return out
	}
	require.Len(t, exact, leg.K)
	require.Equal(t, ids(exact), ids(approx))
	require.Equal(t, ids(exact), ids(legs.Vector))
	return approx
}

func TestIndexPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, func(c *Config) { c.IndexInterval = -1; c.ExactBelow = -1 })
	r := mrand.New(mrand.NewPCG(5, 6))
	p := writeRandom(t, s, r, 100, 16)
	leg := core.VectorLeg{Vector: randUnit(r, 16), K: 10, Filter: core.MemoryFilter{ProjectID: p.ID, States: core.LiveStates()}}

	// Unindexed rows are found by the exact tail of the approximate leg.
	require.EqualValues(t, 100, backlog(t, s))
	sameAsExact(t, s, leg)
	plan := explain(t, s, leg, true)
	require.Contains(t, plan, "memories_hnsw_16", plan)
	require.Contains(t, plan, "memories_unindexed", plan)

	for _, step := range []struct{ limit, moved, left int }{{40, 40, 60}, {0, 0, 60}, {1000, 60, 0}, {10, 0, 0}} {
		n, err := s.IndexPending(ctx, step.limit)
		require.NoError(t, err)
		require.Equal(t, step.moved, n, "limit %d", step.limit)
		require.EqualValues(t, step.left, backlog(t, s))
		sameAsExact(t, s, leg)
	}

	// A change that keeps the vector keeps the row in the index; a new
	// vector takes it out until the indexer comes back.
	var m core.Memory
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		ms, err := r.Memories(ctx, core.MemoryFilter{ProjectID: p.ID, Limit: 1})
		m = ms[0]
		return err
	}))
	put := func(m core.Memory) {
		require.NoError(t, s.Update(ctx, func(w core.WriteTx) error { return w.PutMemory(ctx, m) }))
	}
	m.Tags = []string{"kept"}
	put(m)
	require.EqualValues(t, 0, backlog(t, s))
	m.Embedding = leg.Vector
	put(m)
	require.EqualValues(t, 1, backlog(t, s))
	got := sameAsExact(t, s, leg)
	require.Equal(t, m.ID, got[0].ID)
	require.InDelta(t, 1, got[0].Score, 1e-6)

	_, err := s.IndexPending(ctx, -1)
	require.ErrorIs(t, err, core.ErrInvalid)
	require.NoError(t, s.Close())
	_, err = s.IndexPending(ctx, 1)
	require.ErrorIs(t, err, core.ErrClosed)
}

func TestIndexerBackground(t *testing.T) {
	t.Parallel()
	idle := make(chan struct{}, 1)
	s := openTest(t, func(c *Config) {
		c.IndexBatch = 7 // several batches per wake
		c.indexerIdle = func() {
			select {
			case idle <- struct{}{}:
			default:
			}
		}
	})
	r := mrand.New(mrand.NewPCG(7, 8))
	writeRandom(t, s, r, 50, 8)
	// The commit woke the indexer; wait until a pass leaves nothing.
	for backlog(t, s) > 0 {
		select {
		case <-idle:
		case <-t.Context().Done():
			t.Fatal("the indexer never caught up")
		}
	}
	require.EqualValues(t, 50, s.Stats().Indexed)
	require.Zero(t, s.Stats().IndexErrors)
	require.NoError(t, s.Close()) // stops the indexer
}

func TestIndexPendingShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := testSchema(t)
	cfg := func(c *Config) { c.Schema = schema; c.IndexInterval = -1 }
	a, b := openTest(t, cfg), openTest(t, cfg)
	writeRandom(t, a, mrand.New(mrand.NewPCG(9, 10)), 300, 8)

	// Two processes' indexers share the backlog without waiting for each
	// other or indexing a row twice.
	var wg sync.WaitGroup
	moved := make([]int, 2)
	errs := make([]error, 2)
	for i, s := range []*Store{a, b} {
		wg.Go(func() {
			for {
				n, err := s.IndexPending(ctx, 10)
				if err != nil || n == 0 {
					errs[i] = err
					return
				}
				moved[i] += n
			}
		})
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, 300, moved[0]+moved[1])
	require.EqualValues(t, 0, backlog(t, a))
}

// TestMigrateIndexed upgrades a schema from version 5, where every row is
// in its dimension's index, to version 6: the rows stay indexed and the
// index is rebuilt with the new predicate.
func TestMigrateIndexed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := testSchema(t)
	conn := adminConn(t)
	require.NoError(t, migrateTo(ctx, conn, schema, 5))
	sc := pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{
		"INSERT INTO " + sc + ".vector_indexes (dim) VALUES (4)",
		"CREATE INDEX memories_hnsw_4 ON " + sc + `.memories USING hnsw ((l2_normalize(embedding)::halfvec(4)) halfvec_cosine_ops)
			WHERE embedding_dim = 4`,
	} {
		_, err := conn.Exec(ctx, q)
		require.NoError(t, err)
	}
	s := openTest(t, func(c *Config) { c.Schema = schema; c.IndexInterval = -1 })
	var def string
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'memories_hnsw_4'",
		schema).Scan(&def))
	require.Contains(t, def, "indexed")
	require.Contains(t, def, "ef_construction")
	var dflt string
	require.NoError(t, s.pool.QueryRow(ctx, `SELECT column_default FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'memories' AND column_name = 'indexed'`, schema).Scan(&dflt))
	require.Equal(t, "false", dflt)
}

// TestIndexerCloseIndexes: a Store that wrote rows for the index indexes a
// batch as it closes, so short-lived processes do not leave a growing
// backlog behind.
func TestIndexerCloseIndexes(t *testing.T) {
	t.Parallel()
	schema := testSchema(t)
	cfg := func(c *Config) { c.Schema = schema; c.IndexInterval = -1; c.IndexBatch = 5 }
	s := openTest(t, cfg)
	writeRandom(t, s, mrand.New(mrand.NewPCG(11, 12)), 8, 4)
	require.EqualValues(t, 8, backlog(t, s))
	// An indexer whose loop has stopped and that saw this Store write.
	done := make(chan struct{})
	close(done)
	s.idx = &indexer{stop: func() {}, done: done}
	s.idx.writes.Add(1)
	require.NoError(t, s.Close())
	require.EqualValues(t, 5, s.idx.indexed.Load())
	require.EqualValues(t, 3, backlog(t, openTest(t, cfg)))
}
