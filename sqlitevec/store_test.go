package sqlitevec

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// openTest opens a store for a test: in memory, or on a file in a temp dir.
func openTest(t testing.TB, file bool, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{}
	if file {
		cfg.Path = filepath.Join(t.TempDir(), "test.db")
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func unitVec(seed uint64, dim int) []float32 {
	v := make([]float32, dim)
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := range v {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v[i] = float32(int64(x%2001)-1000) / 1000
	}
	return v
}

func TestSmoke(t *testing.T) {
	t.Parallel()
	for _, file := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "file"}[file], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := openTest(t, file)
			db := core.New(s, core.Config{})
			p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 768})
			require.NoError(t, err)
			var ids []core.ID
			for i := range 50 {
				m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "hello world number " + string(rune('a'+i%26)),
					Embedding: unitVec(uint64(i), 768), Tags: []string{"x"}})
				require.NoError(t, err)
				ids = append(ids, m.ID)
			}
			got, err := db.Memory(ctx, ids[3])
			require.NoError(t, err)
			require.Equal(t, ids[3], got.ID)
			require.Equal(t, []string{"x"}, got.Tags)
			require.Len(t, got.Embedding, 768)

			hits, err := db.Search(ctx, core.Query{ProjectID: p.ID, Text: "world", Embedding: unitVec(7, 768), K: 5})
			require.NoError(t, err)
			require.Len(t, hits, 5)
			require.Equal(t, ids[7], hits[0].Memory.ID)

			require.NoError(t, db.DeleteMemory(ctx, ids[7]))
			hits, err = db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: unitVec(7, 768), K: 5, SemanticOnly: true, Threshold: -1})
			require.NoError(t, err)
			require.NotEqual(t, ids[7], hits[0].Memory.ID)
		})
	}
}
