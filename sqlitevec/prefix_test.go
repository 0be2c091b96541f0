package sqlitevec

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// requirePrefix checks that every part's pre, once built, is the first
// prefixWords words of each code; it builds pre first if build is set.
func requirePrefix(t *testing.T, s *Store, build bool) {
	t.Helper()
	ix := s.index()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for _, p := range ix.parts {
		if p.dim == 0 {
			continue
		}
		if build {
			p.prefix()
		}
		if p.pre == nil {
			continue
		}
		require.Len(t, p.pre, len(p.rids)*prefixWords)
		for slot := range p.rids {
			require.Equal(t, p.codes[slot*p.words:slot*p.words+prefixWords], p.pre[slot*prefixWords:(slot+1)*prefixWords],
				"slot %d", slot)
		}
	}
}

// TestPrefixConsistency pins part.pre to the codes through inserts (new
// slots, reused slots, recentering), vector updates, deletes, and both
// ways of reopening: from the snapshot and from rows.
func TestPrefixConsistency(t *testing.T) {
	t.Parallel()
	const dim = 768
	ctx := context.Background()
	path := t.TempDir() + "/p.db"
	s, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	db := core.New(s, core.Config{})
	p, err := db.CreateProject(ctx, core.Project{Name: "v", Path: "/v", EmbeddingModel: "m", EmbeddingDim: dim})
	require.NoError(t, err)
	seed := uint64(1)
	remember := func(n int) []core.ID {
		ms := make([]core.Memory, n)
		for i := range ms {
			ms[i] = core.Memory{ProjectID: p.ID, Content: "memory", Embedding: unitVec(seed, dim)}
			seed++
		}
		res, err := db.RememberBatch(ctx, ms)
		require.NoError(t, err)
		ids := make([]core.ID, n)
		for i, r := range res {
			require.NoError(t, r.Err)
			ids[i] = r.ID
		}
		return ids
	}
	ids := remember(300)
	requirePrefix(t, s, true)
	ids = append(ids, remember(400)...) // new slots, and a recenter
	requirePrefix(t, s, false)
	for _, id := range ids[:50] {
		_, err := db.UpdateMemory(ctx, id, func(m *core.Memory) error {
			m.Embedding = unitVec(seed, dim)
			seed++
			return nil
		})
		require.NoError(t, err)
	}
	requirePrefix(t, s, false)
	for _, id := range ids[50:120] {
		require.NoError(t, db.DeleteMemory(ctx, id))
	}
	requirePrefix(t, s, false)
	remember(40) // into freed slots
	requirePrefix(t, s, false)

	q := unitVec(1<<40, dim)
	leg := core.VectorLeg{Vector: q, K: 10, Filter: core.MemoryFilter{ProjectID: p.ID}}
	want := vectorLegIDs(t, s, leg)
	require.NoError(t, s.Close())

	for _, fromRows := range []bool{false, true} {
		if fromRows {
			require.NoError(t, os.Remove(snapPath(path)))
		}
		s, err = Open(ctx, Config{Path: path})
		require.NoError(t, err)
		require.Equal(t, !fromRows, s.Stats().Snapshot)
		requirePrefix(t, s, true)
		require.Equal(t, want, vectorLegIDs(t, s, leg))
		require.NoError(t, s.Close())
	}
}

func vectorLegIDs(t *testing.T, s *Store, leg core.VectorLeg) []core.ID {
	t.Helper()
	var ids []core.ID
	require.NoError(t, s.View(context.Background(), func(r core.ReadTx) error {
		cands, err := r.VectorLeg(context.Background(), leg)
		for _, c := range cands {
			ids = append(ids, c.ID)
		}
		return err
	}))
	return ids
}

// clusteredPart is a part of n 768-d vectors around 64 centers, the
// shape of real embeddings (the prefix scan only pays on large parts,
// too slow to fill through SQLite in a test), with every gap-th slot
// removed when gap > 0.
func clusteredPart(n, gap int) *part {
	const dim, centers = 768, 64
	r := rand.New(rand.NewPCG(1, 2))
	cs := make([][]float32, centers)
	for i := range cs {
		cs[i] = make([]float32, dim)
		for j := range cs[i] {
			cs[i][j] = float32(r.NormFloat64())
		}
	}
	p := &part{df: map[string]int64{}, post: map[string]*postings{}, building: true}
	v := make([]float32, dim)
	for i := range n {
		c := cs[r.IntN(centers)]
		for j := range v {
			v[j] = c[j] + 0.8*float32(r.NormFloat64())
		}
		p.add(int64(i+1), rowMeta{id: core.ID(strconv.Itoa(i))}, quantize(v))
	}
	p.recenter(true)
	for slot := gap - 1; gap > 0 && slot < n; slot += gap {
		p.remove(int32(slot))
	}
	return p
}

// TestPrefixScan checks the two-stage scan of a large part: refining
// every matching slot gives exactly the one-stage shortlist, and the
// default refine loses (next to) nothing of the top 10 against ranking
// every row.
func TestPrefixScan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		gap  int
	}{{"all rows", 0}, {"every third removed", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := clusteredPart(prefixScanMin+1000, tc.gap)
			require.True(t, p.hasPrefix())
			ix := newIndex()
			ix.parts[p.project] = p
			for slot, rid := range p.rids {
				if p.alive[slot] {
					ix.where[rid] = loc{p: p, slot: int32(slot)}
				}
			}
			tx := &readTx{s: &Store{cfg: Config{Oversample: DefaultOversample, ExactThreshold: DefaultExactThreshold}, idx: ix}}
			m := newMatcher(&core.MemoryFilter{})
			r := rand.New(rand.NewPCG(3, 4))
			found, queries := 0, 20
			for range queries {
				// A query near a stored row, as real queries are near their answers.
				slot := r.IntN(len(p.rids))
				q := make([]float32, p.dim)
				for i := range q {
					q[i] = float32(p.q8[slot*p.dim+i])*p.scale[slot] + 0.01*float32(r.NormFloat64())
				}
				q = normalized(q)

				// Refining every matching slot is the one-stage shortlist.
				const n = 1000
				sc := &vecScratch{}
				matched := p.hammingScan(m, q, sc)
				require.True(t, sc.prefix)
				two := slices.Clone(p.refine(sc.shortlist(matched), n, sc))
				one := &vecScratch{}
				one.dist = make([]uint16, len(p.rids))
				one.hist = make([]int32, 1024)
				require.Equal(t, matched, p.scanRange(m, sc.code, p.codes, 0, len(p.rids), one.dist, one.hist))
				require.Equal(t, one.shortlist(n), two)

				// The default path against every row.
				leg := core.VectorLeg{Vector: q, K: 10}
				approx := tx.vectorScan(&leg)
				leg.Exact = true
				exact := tx.vectorScan(&leg)
				require.False(t, approx.exact)
				for _, c := range approx.cands[:10] {
					if slices.ContainsFunc(exact.cands[:10], func(e scored) bool { return e.rid == c.rid }) {
						found++
					}
				}
			}
			t.Logf("recall@10 against every row: %.3f", float64(found)/float64(10*queries))
			require.GreaterOrEqual(t, float64(found)/float64(10*queries), 0.99)
		})
	}
}
