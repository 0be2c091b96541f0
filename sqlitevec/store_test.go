package sqlitevec

import (
	"context"
	"path/filepath"
	"slices"
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

// TestPutMetadataOnly checks the metadata-only put (content, project and
// embedding unchanged): the row, the filter metadata of both legs and the
// keyword index stay consistent, and a later change of the embedding
// still reaches the vector index.
func TestPutMetadataOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(m *core.Memory)
		state  core.State
		vecOf  uint64 // the seed the vector leg must find the memory by
	}{
		{"state", func(m *core.Memory) { m.State = core.StateArchived }, core.StateArchived, 1},
		{"usefulness", func(m *core.Memory) { m.Usefulness = 0.9 }, core.StateUnconsolidated, 1},
		{"embedding", func(m *core.Memory) { m.Embedding = unitVec(99, 768) }, core.StateUnconsolidated, 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := openTest(t, false)
			db := core.New(s, core.Config{})
			p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 768})
			require.NoError(t, err)
			m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "zebra crossing", Embedding: unitVec(1, 768)})
			require.NoError(t, err)
			_, err = db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "other", Embedding: unitVec(2, 768)})
			require.NoError(t, err)
			m.State = core.StateUnconsolidated
			tt.change(&m)
			require.NoError(t, s.Update(ctx, func(w core.WriteTx) error { return w.PutMemory(ctx, m) }))

			got, err := db.Memory(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, tt.state, got.State)
			require.Equal(t, m.Usefulness, got.Usefulness)
			require.Equal(t, m.Embedding, got.Embedding)
			f := core.MemoryFilter{ProjectID: p.ID, States: []core.State{tt.state}}
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				vec, err := r.VectorLeg(ctx, core.VectorLeg{Vector: unitVec(tt.vecOf, 768), K: 1, Filter: f})
				require.NoError(t, err)
				require.Len(t, vec, 1)
				require.Equal(t, m.ID, vec[0].ID)
				require.InDelta(t, 1, vec[0].Score, 1e-2)
				kw, err := r.KeywordLeg(ctx, core.KeywordLeg{Terms: core.Terms("zebra"), Limit: 5, Filter: f})
				require.NoError(t, err)
				require.Len(t, kw.Candidates, 1)
				require.Equal(t, m.ID, kw.Candidates[0].ID)
				return nil
			}))
		})
	}
}

// TestMemoriesByID covers both paths of memoriesByID (one statement for
// several IDs, one per ID for a single or non-UTF-8 ID): duplicates and
// unknown IDs, order, Limit and the other filters.
func TestMemoriesByID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _, ms := seedMemories(t, false, 4)
	ids := memoryIDs(ms)
	// IDs made in one millisecond need not sort in creation order; the
	// cases below are in ID order.
	slices.Sort(ids)
	tests := []struct {
		name string
		f    core.MemoryFilter
		want []core.ID
	}{
		{"one", core.MemoryFilter{IDs: ids[2:3]}, ids[2:3]},
		{"several, reversed", core.MemoryFilter{IDs: []core.ID{ids[3], ids[1], ids[0]}}, []core.ID{ids[0], ids[1], ids[3]}},
		{"duplicates", core.MemoryFilter{IDs: []core.ID{ids[1], ids[1], ids[2], ids[1]}}, ids[1:3]},
		{"unknown", core.MemoryFilter{IDs: []core.ID{"nope", ids[0], `"quoted\`}}, ids[:1]},
		{"invalid UTF-8", core.MemoryFilter{IDs: []core.ID{"\xff", ids[2], ids[2]}}, ids[2:3]},
		{"newest, limit", core.MemoryFilter{IDs: ids, Newest: true, Limit: 2}, []core.ID{ids[3], ids[2]}},
		{"other project", core.MemoryFilter{IDs: ids, ProjectID: "other"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []core.ID
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				ms, err := r.Memories(ctx, tt.f)
				for _, m := range ms {
					got = append(got, m.ID)
				}
				return err
			}))
			require.Equal(t, tt.want, got)
		})
	}
}
