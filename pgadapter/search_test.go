package pgadapter

import (
	"cmp"
	"context"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// TestSearchLegs checks that the one-statement search answers as
// VectorLeg, KeywordLeg and Memories do.
func TestSearchLegs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	p, ms := loadRandom(t, s, 3000, 32) // above Config.ExactBelow: the index answers
	r := mrand.New(mrand.NewPCG(3, 4))
	q := randUnit(r, 32)
	live := core.MemoryFilter{ProjectID: p.ID, States: core.LiveStates()}
	tenth := core.MemoryFilter{ProjectID: p.ID, States: core.LiveStates(), Tags: []string{"tenth"}}
	tests := []struct {
		name string
		vl   *core.VectorLeg
		kl   *core.KeywordLeg
		// all: the keyword limit exceeds the matches, so the candidate set
		// does not depend on the store's ranking.
		all bool
	}{
		{name: "vector", vl: &core.VectorLeg{Vector: q, K: 50, Filter: live}},
		{name: "vector exact", vl: &core.VectorLeg{Vector: q, K: 20, Filter: live, Exact: true}},
		{name: "vector filtered", vl: &core.VectorLeg{Vector: q, K: 40, Filter: tenth}},
		{name: "vector none match", vl: &core.VectorLeg{Vector: q, K: 10, Filter: core.MemoryFilter{ProjectID: p.ID, SessionID: "none"}}},
		{name: "keyword", kl: &core.KeywordLeg{Terms: []string{"alpha", "17"}, Limit: 50, Filter: live}},
		{name: "keyword all", kl: &core.KeywordLeg{Terms: []string{"charlie", "2999"}, Limit: 5000, Filter: live}, all: true},
		{name: "keyword stats only", kl: &core.KeywordLeg{Terms: []string{"memory", "delta"}, Filter: live}, all: true},
		{name: "keyword no match", kl: &core.KeywordLeg{Terms: []string{"zebra"}, Limit: 10, Filter: live}, all: true},
		{name: "keyword no terms", kl: &core.KeywordLeg{Terms: []string{"'", "a b"}, Limit: 10, Filter: live}, all: true},
		// Without a project the frequencies are zero; candidates still match.
		{name: "keyword no project", kl: &core.KeywordLeg{Terms: []string{"bravo", "7"}, Limit: 5000,
			Filter: core.MemoryFilter{States: core.LiveStates()}}, all: true},
		{name: "both", vl: &core.VectorLeg{Vector: q, K: 50, Filter: live},
			kl: &core.KeywordLeg{Terms: []string{"echo", "golf", "memory"}, Limit: 50, Filter: live}},
		{name: "both filtered all", vl: &core.VectorLeg{Vector: q, K: 30, Filter: tenth},
			kl: &core.KeywordLeg{Terms: []string{"india", "42"}, Limit: 5000, Filter: tenth}, all: true},
		{name: "both exact all", vl: &core.VectorLeg{Vector: q, K: 30, Filter: live, Exact: true},
			kl: &core.KeywordLeg{Terms: []string{"juliet", "hotel"}, Limit: core.ExactKeywordLimit, Filter: live}, all: true},
	}
	byID := map[core.ID]*core.Memory{}
	for i := range ms {
		byID[ms[i].ID] = &ms[i]
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := core.LegsRequest{Vector: tc.vl, Keyword: tc.kl}
			var fast, slow core.LegsResult
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				var err error
				if fast, err = r.(core.LegsSearcher).SearchLegs(ctx, req); err != nil {
					return err
				}
				slow, err = r.(*tx).searchLegsSlow(ctx, req)
				return err
			}))
			require.Equal(t, ids(slow.Vector), ids(fast.Vector))
			for i := range fast.Vector {
				require.InDelta(t, slow.Vector[i].Score, fast.Vector[i].Score, 1e-12)
				require.Equal(t, tc.vl.Exact, fast.Vector[i].Exact)
			}
			require.Equal(t, slow.Keyword.Stats, fast.Keyword.Stats)
			require.Len(t, fast.Keyword.Candidates, len(slow.Keyword.Candidates))
			if tc.all {
				require.ElementsMatch(t, ids(slow.Keyword.Candidates), ids(fast.Keyword.Candidates))
			}
			for _, c := range fast.Keyword.Candidates {
				require.True(t, tc.kl.Filter.Match(byID[c.ID]))
			}
			// Every candidate's row, once, as Memories loads it.
			want := append(ids(fast.Vector), ids(fast.Keyword.Candidates)...)
			slices.Sort(want)
			want = slices.Compact(want)
			got := slices.SortedFunc(slices.Values(fast.Memories), func(a, b core.Memory) int { return cmp.Compare(a.ID, b.ID) })
			if got == nil {
				got = []core.Memory{}
			}
			require.Equal(t, want, memIDs(got))
			if tc.all {
				require.Equal(t, slow.Memories, got)
			}
		})
	}
}

// TestSearchLegsWrite checks that a write transaction searches through
// the three calls (Memories takes the advisory locks) and sees its own
// writes.
func TestSearchLegsWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	db := core.New(s, core.Config{Device: "d"})
	p, err := db.CreateProject(ctx, core.Project{Name: "w", Path: "/w", EmbeddingModel: "m", EmbeddingDim: 3})
	require.NoError(t, err)
	require.NoError(t, db.Update(ctx, func(tx *core.Tx) error {
		if _, err := tx.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "kiwi mango", Embedding: []float32{1, 0, 0}}); err != nil {
			return err
		}
		hits, err := tx.Search(ctx, core.Query{ProjectID: p.ID, Text: "kiwi", Embedding: []float32{1, 0, 0}})
		require.NoError(t, err)
		require.Len(t, hits, 1)
		require.Equal(t, "kiwi mango", hits[0].Memory.Content)
		return nil
	}))
}

func ids(cs []core.Candidate) []core.ID {
	out := []core.ID{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func memIDs(ms []core.Memory) []core.ID {
	out := []core.ID{}
	for i := range ms {
		out = append(out, ms[i].ID)
	}
	return out
}
