package sqlitevec

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// vectorFixture stores n memories, every third tagged "rare" and in
// session "s", and returns them.
func vectorFixture(t *testing.T, n, dim int) (*Store, core.Project, []core.Memory) {
	s := openTest(t, false, func(c *Config) { c.ExactThreshold = 250 })
	db := core.New(s, core.Config{})
	ctx := context.Background()
	p, err := db.CreateProject(ctx, core.Project{Name: "v", Path: "/v", EmbeddingModel: "m", EmbeddingDim: dim})
	require.NoError(t, err)
	ms := make([]core.Memory, n)
	for i := range ms {
		ms[i] = core.Memory{ProjectID: p.ID, Content: "memory", Embedding: unitVec(uint64(i+1), dim)}
		if i%3 == 0 {
			ms[i].Tags, ms[i].SessionID = []string{"rare"}, "s"
		}
	}
	res, err := db.RememberBatch(ctx, ms)
	require.NoError(t, err)
	for i, r := range res {
		require.NoError(t, r.Err)
		ms[i].ID = r.ID
	}
	return s, p, ms
}

func bruteForce(ms []core.Memory, q []float32, f core.MemoryFilter, k int) []core.ID {
	type sc struct {
		id core.ID
		s  float64
	}
	var all []sc
	for i := range ms {
		m := ms[i]
		if len(f.Tags) > 0 && !slices.Contains(m.Tags, f.Tags[0]) {
			continue
		}
		all = append(all, sc{m.ID, core.Cosine(q, m.Embedding)})
	}
	slices.SortFunc(all, func(a, b sc) int { return cmp.Or(cmp.Compare(b.s, a.s), cmp.Compare(a.id, b.id)) })
	var out []core.ID
	for _, s := range all[:min(k, len(all))] {
		out = append(out, s.id)
	}
	return out
}

func TestVectorLeg(t *testing.T) {
	t.Parallel()
	const dim = 64
	s, p, ms := vectorFixture(t, 600, dim)
	tests := []struct {
		name   string
		filter core.MemoryFilter
		exact  bool
		k      int
	}{
		{"exact", core.MemoryFilter{ProjectID: p.ID}, true, 10},
		{"approximate", core.MemoryFilter{ProjectID: p.ID}, false, 10},
		{"filtered exact by selectivity", core.MemoryFilter{ProjectID: p.ID, Tags: []string{"rare"}}, false, 10},
		{"k above matches", core.MemoryFilter{ProjectID: p.ID, Tags: []string{"rare"}}, false, 500},
		{"no project", core.MemoryFilter{}, true, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for qi := range 10 {
				q := unitVec(uint64(1000+qi), dim)
				var got []core.Candidate
				require.NoError(t, s.View(context.Background(), func(r core.ReadTx) error {
					var err error
					got, err = r.VectorLeg(context.Background(), core.VectorLeg{Vector: q, K: tt.k, Filter: tt.filter, Exact: tt.exact})
					return err
				}))
				want := bruteForce(ms, q, tt.filter, tt.k)
				require.Len(t, got, len(want), "a filtered query returns K when K match")
				ids := make([]core.ID, len(got))
				for i, c := range got {
					ids[i] = c.ID
				}
				if tt.exact || len(tt.filter.Tags) > 0 {
					require.Equal(t, want, ids)
				} else {
					overlap := 0
					for _, id := range ids {
						if slices.Contains(want, id) {
							overlap++
						}
					}
					require.GreaterOrEqual(t, overlap, len(want)*7/10)
				}
			}
		})
	}
}

// TestIndexSeesWritesWhenUpdateReturns checks that the index operations
// Update applies after COMMIT on another goroutine are in the index by the
// time anything reads it: each batch is found by both legs at once, while
// another goroutine searches throughout (for the race detector).
func TestIndexSeesWritesWhenUpdateReturns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, file := range []bool{false, true} {
		s := openTest(t, file)
		db := core.New(s, core.Config{})
		p, err := db.CreateProject(ctx, core.Project{Name: "a", Path: "/a", EmbeddingModel: "m", EmbeddingDim: 16})
		require.NoError(t, err)
		stop := make(chan struct{})
		searched := make(chan error, 1)
		go func() {
			var err error
			for err == nil {
				select {
				case <-stop:
					searched <- nil
					return
				default:
				}
				_, err = db.Search(ctx, core.Query{ProjectID: p.ID, Text: "word", Embedding: unitVec(7, 16), K: 5, Threshold: -1})
			}
			searched <- err
		}()
		for i := range 40 {
			word := fmt.Sprintf("batch%dword", i)
			ms := make([]core.Memory, 25)
			for j := range ms {
				ms[j] = core.Memory{ProjectID: p.ID, Content: word + " word", Embedding: unitVec(uint64(1000*i+j), 16)}
			}
			res, err := db.RememberBatch(ctx, ms)
			require.NoError(t, err)
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				kw, err := r.KeywordLeg(ctx, core.KeywordLeg{Terms: []string{word}, Limit: 50, Filter: core.MemoryFilter{ProjectID: p.ID}})
				require.NoError(t, err)
				require.Len(t, kw.Candidates, len(ms), "keyword leg, batch %d", i)
				for j, r0 := range res {
					cands, err := r.VectorLeg(ctx, core.VectorLeg{Vector: ms[j].Embedding, K: 1, Filter: core.MemoryFilter{ProjectID: p.ID}})
					require.NoError(t, err)
					require.NotEmpty(t, cands)
					require.NoError(t, r0.Err)
					require.Equal(t, r0.ID, cands[0].ID, "vector leg, batch %d memory %d", i, j)
				}
				return nil
			}))
		}
		close(stop)
		require.NoError(t, <-searched)
		require.Equal(t, 40*25, s.index().count())
	}
}

// TestIndexFollowsCommits checks that the index sees writes only after
// their transaction commits, and never sees a rolled-back write.
func TestIndexFollowsCommits(t *testing.T) {
	t.Parallel()
	s := openTest(t, false)
	db := core.New(s, core.Config{})
	ctx := context.Background()
	p, err := db.CreateProject(ctx, core.Project{Name: "c", Path: "/c", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)
	boom := errors.New("boom")
	err = db.Update(ctx, func(tx *core.Tx) error {
		if _, err := tx.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "rolled back", Embedding: unitVec(1, 8)}); err != nil {
			return err
		}
		require.Equal(t, 0, s.idx.count(), "not applied before commit")
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 0, s.index().count())
	m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "kept words", Embedding: unitVec(2, 8)})
	require.NoError(t, err)
	require.Equal(t, 1, s.index().count())
	var kw core.KeywordResult
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		kw, err = r.KeywordLeg(ctx, core.KeywordLeg{Terms: []string{"kept", "rolled"}, Limit: 5, Filter: core.MemoryFilter{ProjectID: p.ID}})
		return err
	}))
	require.Equal(t, core.CorpusStats{Docs: 1, TotalLen: 2, DF: map[string]int64{"kept": 1, "rolled": 0}}, kw.Stats)
	require.NoError(t, db.DeleteMemory(ctx, m.ID))
	require.Equal(t, 0, s.index().count())

	// Reopening a file rebuilds the same index.
	path := t.TempDir() + "/reopen.db"
	s2, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	db2 := core.New(s2, core.Config{})
	p2, err := db2.CreateProject(ctx, core.Project{Name: "c", Path: "/c", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)
	for i := range 20 {
		_, err := db2.Remember(ctx, core.Memory{ProjectID: p2.ID, Content: "w x y", Embedding: unitVec(uint64(i+1), 8)})
		require.NoError(t, err)
	}
	require.NoError(t, s2.Close())
	s3, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	defer s3.Close()
	require.Equal(t, 20, s3.Stats().Memories)
	require.NoError(t, s3.View(ctx, func(r core.ReadTx) error {
		kw, err = r.KeywordLeg(ctx, core.KeywordLeg{Terms: []string{"x"}, Limit: 5, Filter: core.MemoryFilter{ProjectID: p2.ID}})
		return err
	}))
	require.Equal(t, core.CorpusStats{Docs: 20, TotalLen: 60, DF: map[string]int64{"x": 20}}, kw.Stats)
	require.Len(t, kw.Candidates, 5)
}
