package sqlitevec

import (
	"context"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// TestChangeVectorInMemory checks the change log's vectors when a
// memory.put's vector is kept in the memory row (vector_in_memory): every
// change still reads back its own vector after the memory is re-embedded
// or deleted, or when no PutMemory with that vector followed.
func TestChangeVectorInMemory(t *testing.T) {
	t.Parallel()
	for _, file := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "file"}[file], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := openTest(t, file)
			db := core.New(s, core.Config{Device: "d1"})
			p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 8})
			require.NoError(t, err)
			want := map[uint64][]float32{} // change seq → the vector it carried
			seqOf := func(id core.ID) uint64 {
				var seq uint64
				require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
					cs, err := r.Changes(ctx, 0, 1000, "")
					for _, c := range cs {
						if c.EntityID == id && c.Kind == core.KindMemoryPut {
							seq = c.Seq
						}
					}
					return err
				}))
				return seq
			}
			a, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "alpha", Embedding: unitVec(1, 8), EmbeddingModel: "m"})
			require.NoError(t, err)
			want[seqOf(a.ID)] = unitVec(1, 8)
			res, err := db.RememberBatch(ctx, []core.Memory{
				{ProjectID: p.ID, Content: "beta", Embedding: unitVec(2, 8), EmbeddingModel: "m"},
				{ProjectID: p.ID, Content: "gamma", Embedding: unitVec(3, 8), EmbeddingModel: "m"},
			})
			require.NoError(t, err)
			b, g := res[0].ID, res[1].ID
			want[seqOf(b)], want[seqOf(g)] = unitVec(2, 8), unitVec(3, 8)

			// The put's vector is in the memory row, not in the change row.
			var inMemory int
			require.NoError(t, s.w.query(`SELECT count(*) FROM changes WHERE vector IS NULL AND vector_in_memory = 1`, nil,
				func(st *sqlite3.Stmt) error { inMemory = st.ColumnInt(0); return nil }))
			require.Equal(t, 3, inMemory)

			// Re-embedding and deleting give the old changes their vectors back.
			_, err = db.UpdateMemory(ctx, a.ID, func(m *core.Memory) error { m.Embedding = unitVec(4, 8); return nil })
			require.NoError(t, err)
			want[seqOf(a.ID)] = unitVec(4, 8)
			_, err = db.UpdateMemory(ctx, g, func(m *core.Memory) error { m.Content = "gamma two"; return nil })
			require.NoError(t, err)
			want[seqOf(g)] = unitVec(3, 8)
			require.NoError(t, db.DeleteMemory(ctx, b))

			// A put whose memory row is not written with its vector, and one
			// followed by a different embedding in the same transaction.
			other := core.NewID(p.CreatedAt)
			require.NoError(t, s.Update(ctx, func(w core.WriteTx) error {
				for i, c := range []*core.Change{
					{Device: "d2", Seq: 1, HLC: 1, Kind: core.KindMemoryPut, ProjectID: p.ID, EntityID: other, Payload: []byte(`{}`), Vector: unitVec(5, 8), Status: core.StatusRejected},
					{Device: "d2", Seq: 2, HLC: 2, Kind: core.KindMemoryPut, ProjectID: p.ID, EntityID: other, Payload: []byte(`{}`), Vector: unitVec(6, 8), Status: core.StatusApplied},
				} {
					if err := w.AppendChange(ctx, c); err != nil {
						return err
					}
					if i == 1 {
						// Read before the memory row is written: the pending
						// vector comes from the change row.
						cs, err := w.Changes(ctx, 0, 1000, "")
						if err != nil {
							return err
						}
						require.Equal(t, unitVec(6, 8), cs[len(cs)-1].Vector)
						m := a
						m.ID, m.Embedding = other, unitVec(7, 8)
						if err := w.PutMemory(ctx, m); err != nil {
							return err
						}
					}
				}
				return nil
			}))

			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				cs, err := r.Changes(ctx, 0, 1000, "")
				require.NoError(t, err)
				seen := 0
				for _, c := range cs {
					switch {
					case c.Device == "d2":
						require.Equal(t, unitVec(4+c.Seq, 8), c.Vector, "change d2/%d", c.Seq)
						seen++
					case c.Kind == core.KindMemoryPut:
						require.Equal(t, want[c.Seq], c.Vector, "change %d", c.Seq)
						seen++
					default:
						require.Nil(t, c.Vector, "change %d", c.Seq)
					}
				}
				require.Equal(t, 7, seen)
				return nil
			}))
		})
	}
}
