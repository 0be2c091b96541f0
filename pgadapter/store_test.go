package pgadapter

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantDSN string
		wantErr bool
		min     int32
		max     int32
	}{
		{name: "defaults", env: map[string]string{}, wantDSN: "postgres://athena@localhost:5432/athena", min: 2, max: 10},
		{name: "seed vars", env: map[string]string{"ATHENA_POSTGRES_HOST": "db", "ATHENA_POSTGRES_PORT": "6543",
			"ATHENA_POSTGRES_DBNAME": "mem", "ATHENA_POSTGRES_USER": "u", "ATHENA_POSTGRES_PASSWORD": "p@ss",
			"ATHENA_POSTGRES_MIN_SIZE": "3", "ATHENA_POSTGRES_MAX_SIZE": "20"},
			wantDSN: "postgres://u:p%40ss@db:6543/mem", min: 3, max: 20},
		{name: "url wins", env: map[string]string{"ATHENA_POSTGRES_URL": "postgres://x@y/z", "ATHENA_POSTGRES_HOST": "db"},
			wantDSN: "postgres://x@y/z", min: 2, max: 10},
		{name: "bad port", env: map[string]string{"ATHENA_POSTGRES_PORT": "nope"}, wantErr: true},
		{name: "min above max", env: map[string]string{"ATHENA_POSTGRES_MIN_SIZE": "20", "ATHENA_POSTGRES_MAX_SIZE": "5"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
			if err == nil {
				cfg, err = cfg.withDefaults()
			}
			if tc.wantErr {
				require.ErrorIs(t, err, core.ErrInvalid)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantDSN, cfg.dsn())
			assert.Equal(t, tc.min, cfg.MinConns)
			assert.Equal(t, tc.max, cfg.MaxConns)
		})
	}
}

func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := testSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := New(context.Background(), Config{DSN: url, Schema: schema, MinConns: 1, MaxConns: 2})
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	// And once more, sequentially: idempotent.
	s := openTest(t, func(c *Config) { c.Schema = schema })
	var n int
	require.NoError(t, s.pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n))
	require.Equal(t, len(migrations), n)
}

func newDB(t *testing.T, s *Store, device string) *core.DB {
	t.Helper()
	return core.New(s, core.Config{Device: device})
}

func TestSmoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	db := newDB(t, s, "dev1")
	p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 768})
	require.NoError(t, err)
	_, err = db.CreateProject(ctx, core.Project{Name: "p", Path: "/q", EmbeddingModel: "m", EmbeddingDim: 768})
	require.ErrorIs(t, err, core.ErrConflict)
	got, err := db.ProjectByPath(ctx, "/p")
	require.NoError(t, err)
	require.Equal(t, p, got)

	r := mrand.New(mrand.NewPCG(1, 2))
	var mems []core.Memory
	for i, c := range []string{"the quick brown fox", "lazy dogs sleep all day", "postgres vector search with hnsw"} {
		m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: c, Embedding: randUnit(r, 768), Tags: []string{"t" + string(rune('a'+i))}})
		require.NoError(t, err)
		mems = append(mems, m)
	}
	for _, m := range mems {
		g, err := db.Memory(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, m, g)
	}
	hits, err := db.Search(ctx, core.Query{ProjectID: p.ID, Text: "vector search", Embedding: mems[2].Embedding, K: 3, Explain: true})
	require.NoError(t, err)
	require.NotEmpty(t, hits)
	require.Equal(t, mems[2].ID, hits[0].Memory.ID)
	require.InDelta(t, 1.0, hits[0].Semantic, 1e-6)
	require.Positive(t, hits[0].Keyword)

	_, err = db.RecordAccess(ctx, mems[0].ID)
	require.NoError(t, err)
	g, err := db.Memory(ctx, mems[0].ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), g.AccessCount)
	require.Equal(t, map[string]int64{"dev1": 1}, g.AccessByDevice)

	require.NoError(t, db.DeleteMemory(ctx, mems[1].ID))
	_, err = db.Memory(ctx, mems[1].ID)
	require.ErrorIs(t, err, core.ErrNotFound)

	ch, err := db.Changes(ctx, 0, 100, "")
	require.NoError(t, err)
	require.Len(t, ch, 6) // project, 3 puts, access, delete
	require.Equal(t, mems[0].Embedding, ch[1].Vector)

	// Stats match a recount.
	var docs, total int64
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT docs, total_len FROM project_stats WHERE project_id = $1", string(p.ID)).Scan(&docs, &total))
	require.Equal(t, int64(2), docs)
	require.Equal(t, int64(len(core.Tokenize(mems[0].Content))+len(core.Tokenize(mems[2].Content))), total)

	require.NoError(t, s.Health(ctx))
	st := s.Stats()
	require.Positive(t, st.Size)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Ping(ctx), core.ErrClosed)
	require.ErrorIs(t, s.View(ctx, func(core.ReadTx) error { return nil }), core.ErrClosed)
}

func TestDimensions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	db := newDB(t, s, "dev1")
	p3, err := db.CreateProject(ctx, core.Project{Name: "three", Path: "/3", EmbeddingModel: "m", EmbeddingDim: 3})
	require.NoError(t, err)
	p4, err := db.CreateProject(ctx, core.Project{Name: "four", Path: "/4", EmbeddingModel: "m", EmbeddingDim: 4})
	require.NoError(t, err)
	m3, err := db.Remember(ctx, core.Memory{ProjectID: p3.ID, Content: "a", Embedding: []float32{1, 0, 0}})
	require.NoError(t, err)
	_, err = db.Remember(ctx, core.Memory{ProjectID: p4.ID, Content: "b", Embedding: []float32{0, 1, 0, 0}})
	require.NoError(t, err)
	_, err = db.Remember(ctx, core.Memory{ProjectID: p4.ID, Content: "c", Embedding: []float32{0, 1, 0}})
	require.ErrorIs(t, err, core.ErrDimMismatch)

	// Bypassing core: the database rejects a vector of the wrong dimension.
	bad := m3.Clone()
	bad.ID = core.NewID(time.Now())
	bad.Embedding = []float32{1, 2, 3, 4}
	err = s.Update(ctx, func(w core.WriteTx) error { return w.PutMemory(ctx, bad) })
	require.ErrorIs(t, err, core.ErrDimMismatch)
	bad.Embedding = []float32{1, 2, 3}
	bad.ProjectID = p4.ID
	err = s.Update(ctx, func(w core.WriteTx) error { return w.PutMemory(ctx, bad) })
	require.ErrorIs(t, err, core.ErrDimMismatch)

	hits, err := db.Search(ctx, core.Query{ProjectID: p3.ID, Embedding: []float32{1, 0, 0}, SemanticOnly: true})
	require.NoError(t, err)
	require.Len(t, hits, 1)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	err := s.View(ctx, func(r core.ReadTx) error {
		_, err := r.Project(ctx, "nope")
		return err
	})
	require.ErrorIs(t, err, core.ErrNotFound)
	require.False(t, Retryable(err))

	err = s.View(ctx, func(r core.ReadTx) error {
		return r.(core.WriteTx).PutProject(ctx, core.Project{ID: "x"})
	})
	require.ErrorIs(t, err, core.ErrInvalid)

	// Statement timeout: typed, not retryable, connection returned.
	// (No background indexer: its connection would count as in use.)
	s2 := openTest(t, func(c *Config) { c.StatementTimeout = 100 * time.Millisecond; c.IndexInterval = -1 })
	start := time.Now()
	err = s2.View(ctx, func(r core.ReadTx) error {
		_, err := r.(*tx).tx.Exec(ctx, "SELECT pg_sleep(2)")
		return translate("sleep", err)
	})
	require.Error(t, err)
	require.Less(t, time.Since(start), time.Second)
	require.False(t, Retryable(err))
	require.Zero(t, s2.Stats().InUse)

	// Cancellation is honoured.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = s.View(cctx, func(r core.ReadTx) error {
		_, err := r.(*tx).tx.Exec(cctx, "SELECT pg_sleep(2)")
		return translate("sleep", err)
	})
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
}

// TestNewRejectsExecModesWithoutTypes: the exec modes that do not ask
// PostgreSQL for parameter types cannot encode the store's arguments, so
// New refuses them up front (before connecting) instead of failing on the
// first write.
func TestNewRejectsExecModesWithoutTypes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			_, err := New(context.Background(), Config{DSN: "postgres://athena@127.0.0.1:1/athena?default_query_exec_mode=" + mode})
			require.ErrorIs(t, err, core.ErrInvalid)
			require.ErrorContains(t, err, "default_query_exec_mode "+mode)
		})
	}
}
