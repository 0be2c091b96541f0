package sqlitevec

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// memoryIDs returns the IDs of ms.
func memoryIDs(ms []core.Memory) []core.ID {
	ids := make([]core.ID, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

// seedMemories opens a store (in memory, or in a file when onDisk) and
// remembers n memories of dimension 8 in one project.
func seedMemories(t *testing.T, onDisk bool, n int) (*Store, *core.DB, core.Project, []core.Memory) {
	t.Helper()
	ctx := context.Background()
	s := openTest(t, onDisk)
	db := core.New(s, core.Config{})
	p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)
	ms := make([]core.Memory, 0, n)
	for i := range n {
		m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("memory %d", i), Embedding: unitVec(uint64(i), 8)})
		require.NoError(t, err)
		ms = append(ms, m)
	}
	return s, db, p, ms
}

// byIDsOnly loads ids the way memoriesByID did before rids: by the
// UNIQUE(id) index only, sorted by ID.
func byIDsOnly(t *testing.T, r core.ReadTx, ids []core.ID) []core.Memory {
	var out []core.Memory
	require.NoError(t, r.(*readTx).memoriesByIDs(ids, new(memDecoder), func(m *core.Memory) { out = append(out, *m) }))
	slices.SortFunc(out, func(a, b core.Memory) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// TestMemoriesByStaleRid checks that loading by rid answers exactly as
// loading by ID when the index and the transaction's snapshot disagree:
// a read transaction that began before a commit the index has applied
// sees, at a rid reused by the commit, another memory than the index
// says, and memories the index no longer holds.
func TestMemoriesByStaleRid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, db, p, ms := seedMemories(t, true, 4)
	last := ms[len(ms)-1] // the highest rid: SQLite gives it to the next row once it is deleted
	lastRid := s.index().ridsOf([]core.ID{last.ID}, nil)[0]
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		before := byIDsOnly(t, r, memoryIDs(ms))
		require.Len(t, before, 4)
		// Another transaction deletes the last memory and adds one that
		// takes its rid; the index applies both after the commit.
		var added core.Memory
		require.NoError(t, db.Update(ctx, func(tx *core.Tx) error {
			if err := tx.DeleteMemory(ctx, last.ID); err != nil {
				return err
			}
			var err error
			added, err = tx.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "new", Embedding: unitVec(9, 8)})
			return err
		}))
		rids := s.index().ridsOf([]core.ID{last.ID, added.ID}, nil)
		require.Zero(t, rids[0], "the index forgot the deleted memory")
		require.Equal(t, lastRid, rids[1], "the new memory took the deleted one's rid")
		tests := []struct {
			name string
			ids  []core.ID
		}{
			{"reused rid", []core.ID{added.ID, ms[0].ID}},
			{"forgotten by the index", []core.ID{last.ID, ms[1].ID}},
			{"all", append(memoryIDs(ms), added.ID, added.ID, "nope")},
		}
		for _, tt := range tests {
			got, err := r.Memories(ctx, core.MemoryFilter{IDs: tt.ids})
			require.NoError(t, err, tt.name)
			require.Equal(t, byIDsOnly(t, r, tt.ids), got, tt.name)
		}
		got, err := r.Memories(ctx, core.MemoryFilter{IDs: []core.ID{added.ID, last.ID}})
		require.NoError(t, err)
		require.Equal(t, []core.ID{last.ID}, memoryIDs(got), "this snapshot has the deleted memory, not the new one")
		return nil
	}))
	// A new transaction sees the commit.
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		ids := append(memoryIDs(ms), "")
		got, err := r.Memories(ctx, core.MemoryFilter{IDs: append(ids, ids[len(ids)-2])})
		require.NoError(t, err)
		require.Equal(t, byIDsOnly(t, r, ids), got)
		require.Len(t, got, 3)
		return nil
	}))
}

// TestMemoriesByWrongRid checks rids the index gets wrong in other ways
// (another memory's row, no row), set by hand.
func TestMemoriesByWrongRid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _, ms := seedMemories(t, false, 3)
	ids := memoryIDs(ms)
	rids := s.index().ridsOf(ids, nil)
	s.idx.mu.Lock()
	s.idx.byID[s.idx.idKey(ids[0])] = uint32(rids[1]) // another memory's row
	s.idx.byID[s.idx.idKey(ids[1])] = 1 << 30         // no row
	s.idx.mu.Unlock()
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		for _, f := range []core.MemoryFilter{{IDs: ids}, {IDs: ids[:2]}, {IDs: ids, Newest: true, Limit: 2}} {
			got, err := r.Memories(ctx, f)
			require.NoError(t, err)
			want := byIDsOnly(t, r, f.IDs)
			if f.Newest {
				slices.Reverse(want)
				want = want[:f.Limit]
			}
			require.Equal(t, want, got)
		}
		return nil
	}))
}

// seqBackend hides SearchLegs, so that core runs the legs and Memories
// one call at a time.
type seqBackend struct{ core.Backend }

func (b seqBackend) View(ctx context.Context, fn func(core.ReadTx) error) error {
	return b.Backend.View(ctx, func(r core.ReadTx) error { return fn(struct{ core.ReadTx }{r}) })
}

// TestSearchLegs checks that Search answers the same through SearchLegs
// as through the three calls, in the exact and the approximate mode, in
// read and write transactions.
func TestSearchLegs(t *testing.T) {
	t.Parallel()
	for _, exactThreshold := range []int{0, 1} {
		t.Run(fmt.Sprintf("ExactThreshold=%d", exactThreshold), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := openTest(t, false, func(c *Config) { c.ExactThreshold = exactThreshold })
			db := core.New(s, core.Config{Device: "d"})
			seq := core.New(seqBackend{s}, core.Config{Device: "d"})
			p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 16})
			require.NoError(t, err)
			words := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
			for i := range 120 {
				_, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: words[i%6] + " " + words[i*7%6] + fmt.Sprint(" n", i),
					Embedding: unitVec(uint64(i), 16)})
				require.NoError(t, err)
			}
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				for _, k := range []int{0, -1} {
					leg := &core.VectorLeg{Vector: unitVec(1, 16), K: k}
					res, err := r.(core.LegsSearcher).SearchLegs(ctx, core.LegsRequest{Vector: leg})
					require.NoError(t, err)
					require.Empty(t, res.Vector)
					require.NotNil(t, res.Memories)
				}
				return nil
			}))
			for i := range 8 {
				for _, q := range []core.Query{
					{ProjectID: p.ID, Text: words[i%6] + " beta", Embedding: unitVec(uint64(1000+i), 16), K: 5},
					{ProjectID: p.ID, Embedding: unitVec(uint64(2000+i), 16), K: 7, SemanticOnly: true, Threshold: -1},
					{ProjectID: p.ID, Text: words[i%6], K: 3},
				} {
					want, err := seq.Search(ctx, q)
					require.NoError(t, err)
					got, err := db.Search(ctx, q)
					require.NoError(t, err)
					require.Equal(t, want, got)
					require.NoError(t, db.Update(ctx, func(tx *core.Tx) error {
						got, err := tx.Search(ctx, q)
						require.Equal(t, want, got)
						return err
					}))
				}
			}
		})
	}
}

func TestDotI8I8x2(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 4, 5, 768, 1023, 4096} {
		a, b, c := make([]int8, n), make([]int8, n), make([]int8, n)
		for i := range n {
			a[i], b[i], c[i] = int8(r.IntN(256)-128), int8(r.IntN(256)-128), int8(r.IntN(256)-128)
		}
		x, y := dotI8I8x2(a, b, c)
		require.Equal(t, dotI8I8(a, b), x, n)
		require.Equal(t, dotI8I8(a, c), y, n)
		for i := range n { // the extremes
			a[i], b[i], c[i] = -128, -128, 127
		}
		x, y = dotI8I8x2(a, b, c)
		require.Equal(t, int32(n*128*128), x, n)
		require.Equal(t, int32(-n*128*127), y, n)
	}
}

func TestSelectTop(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 10, 100, 1000} {
		for _, spread := range []int{1, 3, n} { // 1: all equal
			s := make([]int, n)
			for i := range s {
				s[i] = r.IntN(spread)
			}
			sorted := slices.Sorted(slices.Values(s))
			for _, k := range []int{0, 1, n / 2, n - 1, n} {
				c := slices.Clone(s)
				selectTop(c, k, cmp.Compare[int])
				if k > 0 && k < n {
					require.Equal(t, sorted[:k], slices.Sorted(slices.Values(c[:k])), "n %d spread %d k %d", n, spread, k)
				}
				require.ElementsMatch(t, s, c)
			}
		}
	}
}
