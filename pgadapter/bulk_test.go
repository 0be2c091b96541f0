package pgadapter

import (
	"context"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// hasDimFKey reports whether the memories' dimension foreign key exists.
func hasDimFKey(t *testing.T, s *Store) bool {
	t.Helper()
	var ok bool
	require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_constraint
		WHERE conrelid = 'memories'::regclass AND conname = 'memories_project_dim_fkey')`).Scan(&ok))
	return ok
}

// TestBulkLoadChecksProjects: BulkLoad refuses a memory whose project is
// missing or whose vector has another dimension, writing nothing of the
// load, with or without the dimension foreign key (DropIndexes drops it).
func TestBulkLoadChecksProjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, dropped := range []bool{false, true} {
		for _, tc := range []struct {
			name string
			bad  func(m *core.Memory)
			want error
		}{
			{"unknown project", func(m *core.Memory) { m.ProjectID = "no-such-project" }, core.ErrNotFound},
			{"wrong dimension", func(m *core.Memory) { m.Embedding = m.Embedding[:3] }, core.ErrDimMismatch},
			{"no vector", func(m *core.Memory) { m.Embedding = nil }, core.ErrDimMismatch},
			{"valid", func(*core.Memory) {}, nil},
		} {
			name := tc.name
			if dropped {
				name += " without foreign key"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := openTest(t, func(c *Config) { c.IndexInterval = -1 })
				db := core.New(s, core.Config{Device: "loader"})
				p, err := db.CreateProject(ctx, core.Project{Name: "bulk", Path: "/bulk", EmbeddingModel: "m", EmbeddingDim: 4})
				require.NoError(t, err)
				if dropped {
					require.NoError(t, s.DropIndexes(ctx))
					require.False(t, hasDimFKey(t, s))
				}
				now := time.Now().UTC().Truncate(time.Millisecond)
				ms := make([]core.Memory, 3)
				for i := range ms {
					ms[i] = core.Memory{ID: core.NewID(now), ProjectID: p.ID, Content: "bulk memory", Embedding: []float32{1, 0, 0, 0},
						MemoryType: core.TypeFact, State: core.StateUnconsolidated, Tags: []string{}, CreatedAt: now, UpdatedAt: now}
				}
				tc.bad(&ms[1])
				err = s.BulkLoad(ctx, ms)
				var n int
				require.NoError(t, s.pool.QueryRow(ctx, "SELECT count(*) FROM memories").Scan(&n))
				if tc.want == nil {
					require.NoError(t, err)
					require.Equal(t, len(ms), n)
					return
				}
				require.ErrorIs(t, err, tc.want)
				require.ErrorContains(t, err, string(ms[1].ID), "the error names the memory")
				require.Zero(t, n, "a refused load writes nothing")
			})
		}
	}
}

// TestBuildIndexesRestoresDimKey: BuildIndexes adds back the foreign key
// DropIndexes dropped, and a row written meanwhile with a vector of another
// dimension than its project's fails it with core.ErrDimMismatch.
func TestBuildIndexesRestoresDimKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, func(c *Config) { c.IndexInterval = -1 })
	db := core.New(s, core.Config{Device: "loader"})
	p, err := db.CreateProject(ctx, core.Project{Name: "bulk", Path: "/bulk", EmbeddingModel: "m", EmbeddingDim: 4})
	require.NoError(t, err)
	require.NoError(t, s.DropIndexes(ctx))
	require.False(t, hasDimFKey(t, s))
	_, err = s.pool.Exec(ctx, `INSERT INTO memories (id, project_id, content, terms, doc_len, embedding, embedding_dim, memory_type, state)
		VALUES ('bad', $1, 'x', 'x', 1, $2, 3, 'fact', 'unconsolidated')`, string(p.ID), pgvector.NewVector([]float32{1, 0, 0}))
	require.NoError(t, err, "without the key, only core and BulkLoad check a dimension")
	require.ErrorIs(t, s.BuildIndexes(ctx), core.ErrDimMismatch)
	require.False(t, hasDimFKey(t, s), "the failed build rolled back")

	_, err = s.pool.Exec(ctx, "DELETE FROM memories WHERE id = 'bad'")
	require.NoError(t, err)
	require.NoError(t, s.BuildIndexes(ctx))
	require.True(t, hasDimFKey(t, s))
	require.NoError(t, s.BuildIndexes(ctx), "building again is a no-op")
	_, err = db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "after the build", Embedding: []float32{0, 1, 0, 0}})
	require.NoError(t, err)
}

// TestKeywordIndexHoldsCoreTerms: the keyword index (postings) holds a
// memory's distinct core terms as they are, with its length, whether the
// schema was created or migrated from version 7 (whose tsvector column ran
// PostgreSQL's parser over the terms) with the memory already in it, and
// the keyword leg finds the memory by each of its terms.
func TestKeywordIndexHoldsCoreTerms(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	content := "Ünïcode naïve café x2y 42 mixed-case WORDS"
	for _, migrated := range []bool{false, true} {
		name := "created"
		if migrated {
			name = "migrated from 7"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var s *Store
			schema := testSchema(t)
			terms, n := terms(content)
			if migrated {
				conn := adminConn(t)
				require.NoError(t, migrateTo(ctx, conn, schema, 7))
				sc := pgx.Identifier{schema}.Sanitize()
				_, err := conn.Exec(ctx, "INSERT INTO "+sc+".projects (id, name, path, embedding_model, embedding_dim) VALUES ('p', 'p', '/p', 'm', 2)")
				require.NoError(t, err)
				_, err = conn.Exec(ctx, "INSERT INTO "+sc+`.memories (id, project_id, content, terms, doc_len, embedding, embedding_dim, memory_type, state)
					VALUES ('m', 'p', $1, $2, $3, '[1,0]', 2, 'fact', 'unconsolidated')`, content, terms, n)
				require.NoError(t, err)
			}
			s = openTest(t, func(c *Config) { c.Schema = schema; c.IndexInterval = -1 })
			pid := core.ID("p")
			if !migrated {
				db := core.New(s, core.Config{Device: "d"})
				p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 2})
				require.NoError(t, err)
				pid = p.ID
				_, err = db.Remember(ctx, core.Memory{ProjectID: pid, Content: content, Embedding: []float32{1, 0}})
				require.NoError(t, err)
			}
			var indexed []string
			var lens []int
			require.NoError(t, s.pool.QueryRow(ctx, `SELECT array_agg(term ORDER BY term COLLATE "C"), array_agg(DISTINCT doc_len) FROM postings`).
				Scan(&indexed, &lens))
			want := slices.Compact(slices.Sorted(slices.Values(core.Tokenize(content))))
			require.Equal(t, want, indexed)
			require.Equal(t, []int{n}, lens)
			for _, term := range want {
				require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
					res, err := r.KeywordLeg(ctx, core.KeywordLeg{Terms: []string{term}, Limit: 5, Filter: core.MemoryFilter{ProjectID: pid}})
					require.NoError(t, err)
					require.Len(t, res.Candidates, 1, "term %q", term)
					require.Equal(t, int64(1), res.Stats.DF[term], "term %q", term)
					return nil
				}))
			}
		})
	}
}

// TestVectorsStayInline: a 768-d memory put writes its vector once, into
// the memory row, and its change reads it from there (migration 10); a
// re-embed copies the old vector into the old change's row. Neither goes
// to its table's TOAST relation (migrations 5 and 9), so the write and
// every read of it touch one row.
func TestVectorsStayInline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, func(c *Config) { c.IndexInterval = -1 })
	db := core.New(s, core.Config{Device: "d"})
	p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 768})
	require.NoError(t, err)
	r := mrand.New(mrand.NewPCG(3, 4))
	var ids []core.ID
	for range 3 {
		m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "inline vectors", Embedding: randUnit(r, 768)})
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	count := func(where string) int {
		var n int
		require.NoError(t, s.pool.QueryRow(ctx, "SELECT count(*) FROM changes WHERE "+where).Scan(&n))
		return n
	}
	require.Equal(t, 3, count("vector IS NULL AND vector_in_memory"), "each put's vector is read from its memory row")
	for _, id := range ids {
		_, err := db.UpdateMemory(ctx, id, func(m *core.Memory) error { m.Embedding = randUnit(r, 768); return nil })
		require.NoError(t, err)
	}
	require.Equal(t, 3, count("kept_vector IS NOT NULL AND NOT vector_in_memory"), "re-embedding copies the old vectors out")
	require.Equal(t, 3, count("vector IS NULL AND vector_in_memory"), "the new puts read theirs from the rows")
	for _, table := range []string{"memories", "changes"} {
		var toastBytes int64
		require.NoError(t, s.pool.QueryRow(ctx, `SELECT pg_relation_size(reltoastrelid) FROM pg_class
			WHERE oid = to_regclass($1)`, table).Scan(&toastBytes))
		require.Zero(t, toastBytes, "%s: TOAST relation", table)
	}
}
