package core_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

var update = flag.Bool("update", false, "update golden files")

// searchTestEps is the tolerance for recomputed scores.
const searchTestEps = 1e-12

func TestCosine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b []float32
		want float64
		eps  float64
	}{
		{name: "identical", a: []float32{1, 2, 3}, b: []float32{1, 2, 3}, want: 1, eps: 1e-15},
		{name: "scaled", a: []float32{1, 2, 3}, b: []float32{2, 4, 6}, want: 1, eps: 1e-15},
		{name: "orthogonal", a: []float32{1, 0, 0}, b: []float32{0, 5, 0}, want: 0},
		{name: "orthogonal mixed", a: []float32{1, 1}, b: []float32{1, -1}, want: 0},
		{name: "opposite", a: []float32{1, -2, 3}, b: []float32{-1, 2, -3}, want: -1, eps: 1e-15},
		{name: "45 degrees", a: []float32{1, 0}, b: []float32{1, 1}, want: 1 / math.Sqrt2, eps: 1e-15},
		{name: "mismatched lengths", a: []float32{1, 2, 3}, b: []float32{1, 2}, want: 0},
		{name: "empty vs non-empty", a: []float32{}, b: []float32{1}, want: 0},
		{name: "both empty", a: nil, b: nil, want: 0},
		{name: "zero vector a", a: []float32{0, 0, 0}, b: []float32{1, 2, 3}, want: 0},
		{name: "zero vector b", a: []float32{1, 2, 3}, b: []float32{0, 0, 0}, want: 0},
		{name: "both zero", a: []float32{0}, b: []float32{0}, want: 0},
		// float32 products would lose these: 1e20² overflows float32 and
		// 1e-30² underflows it; float64 keeps them.
		{name: "float64 accumulation large", a: []float32{1e20, 1e20}, b: []float32{1e20, 0}, want: 1 / math.Sqrt2, eps: 1e-15},
		{name: "float64 accumulation tiny", a: []float32{1e-30, 1e-30}, b: []float32{1e-30, 0}, want: 1 / math.Sqrt2, eps: 1e-15},
		{name: "max float32", a: []float32{math.MaxFloat32, math.MaxFloat32}, b: []float32{math.MaxFloat32, math.MaxFloat32}, want: 1, eps: 1e-15},
		{name: "subnormal", a: []float32{math.SmallestNonzeroFloat32}, b: []float32{math.SmallestNonzeroFloat32}, want: 1, eps: 1e-15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := core.Cosine(tc.a, tc.b)
			assert.InDelta(t, tc.want, got, tc.eps)
			assert.Equal(t, got, core.Cosine(tc.b, tc.a), "symmetric")
			assert.False(t, math.IsNaN(got))
		})
	}
}

func TestCosineFloat64Exact(t *testing.T) {
	t.Parallel()
	// Cosine is computed in float64 from the float32 inputs: check the
	// exact value against an independent float64 computation.
	r := rand.New(rand.NewPCG(7, 7))
	for range 100 {
		a, b := searchTestRandVec(r, 64), searchTestRandVec(r, 64)
		var dot, na, nb float64
		for i := range a {
			dot += float64(a[i]) * float64(b[i])
			na += float64(a[i]) * float64(a[i])
			nb += float64(b[i]) * float64(b[i])
		}
		want := dot / math.Sqrt(na*nb)
		got := core.Cosine(a, b)
		require.Equal(t, want, got)
		require.LessOrEqual(t, math.Abs(got), 1+1e-15)
	}
}

// searchTestRandVec returns a deterministic vector of normal deviates.
func searchTestRandVec(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// searchTestID is the i-th fixed memory ID; IDs sort by i.
func searchTestID(i int) core.ID {
	return core.ID(fmt.Sprintf("01900000-0000-7000-8000-%012d", i))
}

var searchTestNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// searchTestMem is one fixture memory.
type searchTestMem struct {
	id      core.ID
	content string
	vec     []float32
	state   core.State // "" means unconsolidated
}

// searchTestSetup opens a DB over memstore with a fixed clock, creates a
// project of dimension dim, and stores ms.
func searchTestSetup(t *testing.T, dim int, ms []searchTestMem) (*core.DB, core.Project) {
	t.Helper()
	ctx := t.Context()
	db := core.New(memstore.New(), core.Config{Device: "dev-test",
		Clock: core.NewClock(core.ClockConfig{Now: func() time.Time { return searchTestNow }})})
	t.Cleanup(func() { _ = db.Close() })
	p, err := db.CreateProject(ctx, core.Project{Name: "search", Path: "/search", EmbeddingModel: "test-model", EmbeddingDim: dim})
	require.NoError(t, err)
	for _, m := range ms {
		got, err := db.Remember(ctx, core.Memory{ID: m.id, ProjectID: p.ID, Content: m.content, Embedding: m.vec})
		require.NoError(t, err)
		require.Equal(t, m.id, got.ID)
		if m.state == core.StateArchived {
			_, err = db.SetState(ctx, m.id, core.StateArchived, "")
			require.NoError(t, err)
		}
	}
	return db, p
}

// searchTestBM25 recomputes BM25 for content independently of the stores:
// corpus statistics over every memory of the fixture.
func searchTestBM25(ms []searchTestMem, query, content string) float64 {
	terms := core.Terms(query)
	stats := core.CorpusStats{DF: map[string]int64{}}
	for _, m := range ms {
		toks := core.Tokenize(m.content)
		stats.Docs++
		stats.TotalLen += int64(len(toks))
		tf := core.TermFreqs(toks)
		for _, term := range terms {
			if tf[term] > 0 {
				stats.DF[term]++
			}
		}
	}
	toks := core.Tokenize(content)
	return core.BM25Params{}.Score(terms, core.TermFreqs(toks), len(toks), stats)
}

// searchTestRanks returns the 1-based rank of each hit by score,
// descending, ties by ID.
func searchTestRanks(hits []core.Hit, score func(core.Hit) float64) map[core.ID]int {
	s := slices.Clone(hits)
	slices.SortFunc(s, func(a, b core.Hit) int {
		return cmp.Or(cmp.Compare(score(b), score(a)), cmp.Compare(a.Memory.ID, b.Memory.ID))
	})
	out := map[core.ID]int{}
	for i, h := range s {
		out[h.Memory.ID] = i + 1
	}
	return out
}

// searchTestFixture is a small corpus in dim 4 with hand-made vectors.
func searchTestFixture() ([]searchTestMem, []float32) {
	q := []float32{1, 0, 0, 0}
	return []searchTestMem{
		{id: searchTestID(1), content: "database optimization techniques for large tables", vec: []float32{0.9, 0.1, 0, 0}},
		{id: searchTestID(2), content: "optimization of the build pipeline", vec: []float32{0.2, 0.9, 0.1, 0}},
		{id: searchTestID(3), content: "gardening tips for spring", vec: []float32{0.7, 0, 0.7, 0}},
		{id: searchTestID(4), content: "database index tuning and database vacuum", vec: []float32{-0.5, 0.5, 0.5, 0.5}},
		{id: searchTestID(5), content: "unrelated note about lunch", vec: []float32{0, 0, 0, 1}},
		{id: searchTestID(6), content: "query optimization database optimization", vec: []float32{0.3, 0.3, 0.3, 0.3}},
	}, q
}

func TestSearchWeightedFusion(t *testing.T) {
	t.Parallel()
	ms, q := searchTestFixture()
	db, p := searchTestSetup(t, 4, ms)
	byID := map[core.ID]searchTestMem{}
	for _, m := range ms {
		byID[m.id] = m
	}
	const text = "database optimization"
	tests := []struct {
		name   string
		sw, kw float64 // weights passed in the query
		ws, wk float64 // weights in force
	}{
		{name: "default weights", ws: 0.7, wk: 0.3},
		{name: "explicit defaults", sw: 0.7, kw: 0.3, ws: 0.7, wk: 0.3},
		{name: "even", sw: 0.5, kw: 0.5, ws: 0.5, wk: 0.5},
		{name: "semantic only weight", sw: 1, kw: 0, ws: 1, wk: 0},
		{name: "keyword only weight", sw: 0, kw: 1, ws: 0, wk: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hits, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Text: text, Embedding: q, K: 50, Explain: true,
				SemanticWeight: tc.sw, KeywordWeight: tc.kw})
			require.NoError(t, err)
			require.Len(t, hits, len(ms), "no threshold in hybrid search: every candidate comes back")
			var maxKW float64
			for _, h := range hits {
				maxKW = max(maxKW, searchTestBM25(ms, text, byID[h.Memory.ID].content))
			}
			require.Greater(t, maxKW, 0.0)
			vrank := searchTestRanks(hits, func(h core.Hit) float64 { return h.Semantic })
			kwHits := 0
			for i, h := range hits {
				m := byID[h.Memory.ID]
				assert.Equal(t, core.Cosine(q, m.vec), h.Semantic, "semantic is core's cosine")
				wantKW := searchTestBM25(ms, text, m.content)
				assert.InDelta(t, wantKW, h.Keyword, searchTestEps, "keyword is core's BM25 over the project")
				kn := wantKW / maxKW
				assert.InDelta(t, tc.ws*h.Semantic+tc.wk*kn, h.Hybrid, searchTestEps, "hit %d", i)
				if i > 0 {
					prev := hits[i-1]
					assert.True(t, prev.Hybrid > h.Hybrid || prev.Hybrid == h.Hybrid && prev.Memory.ID < h.Memory.ID, "sorted")
				}
				e := h.Explain
				require.NotNil(t, e)
				assert.Equal(t, core.FusionWeighted, e.Fusion)
				assert.True(t, e.Exact, "memstore's vector leg is a full scan")
				assert.Equal(t, vrank[h.Memory.ID], e.VectorRank)
				assert.Equal(t, h.Semantic, e.SemanticRaw)
				assert.Equal(t, h.Keyword, e.KeywordRaw)
				assert.InDelta(t, kn, e.KeywordNormalized, searchTestEps)
				assert.InDelta(t, tc.ws*h.Semantic, e.SemanticContribution, searchTestEps)
				assert.InDelta(t, tc.wk*kn, e.KeywordContribution, searchTestEps)
				assert.InDelta(t, h.Hybrid, e.SemanticContribution+e.KeywordContribution, searchTestEps)
				if h.Keyword > 0 {
					kwHits++
					assert.Positive(t, e.KeywordRank)
					assert.NotEmpty(t, e.MatchedTerms)
				} else {
					assert.Zero(t, e.KeywordRank)
					assert.Empty(t, e.MatchedTerms)
				}
			}
			assert.Equal(t, 4, kwHits)
			// The hit with both terms and the best vector leads under the defaults.
			if tc.ws == 0.7 {
				assert.Equal(t, searchTestID(1), hits[0].Memory.ID)
				assert.Equal(t, []string{"database", "optimization"}, hits[0].Explain.MatchedTerms)
			}
		})
	}
}

func TestSearchBoosts(t *testing.T) {
	t.Parallel()
	ms, q := searchTestFixture()
	db, p := searchTestSetup(t, 4, ms)
	const text = "database optimization"
	plain, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Text: text, Embedding: q, K: 50})
	require.NoError(t, err)
	fused := map[core.ID]float64{}
	for _, h := range plain {
		fused[h.Memory.ID] = h.Hybrid
	}
	// The fixed clock makes every memory's age zero: recency is exactly 1.
	hits, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Text: text, Embedding: q, K: 50, Explain: true,
		QualityBoost: 0.2, RecencyBoost: 0.1})
	require.NoError(t, err)
	require.Len(t, hits, len(ms))
	for _, h := range hits {
		e := h.Explain
		require.NotNil(t, e)
		assert.Equal(t, core.Quality(0.5, 1, 0), h.Memory.QualityScore, "the seed's default usefulness and confidence")
		assert.InDelta(t, 0.2*h.Memory.QualityScore, e.QualityContribution, searchTestEps)
		assert.Equal(t, 1.0, e.Recency)
		assert.InDelta(t, 0.1, e.RecencyContribution, searchTestEps)
		assert.InDelta(t, fused[h.Memory.ID]+0.2*h.Memory.QualityScore+0.1, h.Hybrid, searchTestEps)
		assert.InDelta(t, h.Hybrid, e.SemanticContribution+e.KeywordContribution+e.QualityContribution+e.RecencyContribution, searchTestEps)
	}
	assert.Equal(t, 30*24*time.Hour, core.DefaultHalfLife(core.TypeFact))
}

func TestSearchRRFFusion(t *testing.T) {
	t.Parallel()
	ms, q := searchTestFixture()
	db, p := searchTestSetup(t, 4, ms)
	const text = "database optimization"
	tests := []struct {
		name   string
		rrfk   float64 // passed
		k      float64 // in force
		sw, kw float64
		ws, wk float64
	}{
		{name: "default constant", rrfk: 0, k: core.DefaultRRFK, ws: 0.7, wk: 0.3},
		{name: "custom constant", rrfk: 10, k: 10, ws: 0.7, wk: 0.3},
		{name: "unweighted", rrfk: 60, k: 60, sw: 1, kw: 1, ws: 1, wk: 1},
		{name: "tiny constant", rrfk: 0.5, k: 0.5, sw: 0.2, kw: 0.9, ws: 0.2, wk: 0.9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hits, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Text: text, Embedding: q, K: 50, Explain: true,
				Fusion: core.FusionRRF, RRFK: tc.rrfk, SemanticWeight: tc.sw, KeywordWeight: tc.kw})
			require.NoError(t, err)
			require.Len(t, hits, len(ms))
			sr := searchTestRanks(hits, func(h core.Hit) float64 { return h.Semantic })
			kr := searchTestRanks(hits, func(h core.Hit) float64 { return h.Keyword })
			for i, h := range hits {
				want := tc.ws / (tc.k + float64(sr[h.Memory.ID]))
				if h.Keyword > 0 {
					want += tc.wk / (tc.k + float64(kr[h.Memory.ID]))
				}
				assert.InDelta(t, want, h.Hybrid, searchTestEps, "hit %d %s", i, h.Memory.ID)
				e := h.Explain
				require.NotNil(t, e)
				assert.Equal(t, core.FusionRRF, e.Fusion)
				assert.InDelta(t, h.Hybrid, e.SemanticContribution+e.KeywordContribution, searchTestEps)
				if h.Keyword == 0 {
					assert.Zero(t, e.KeywordContribution, "no keyword match, no keyword contribution")
				}
				if i > 0 {
					assert.GreaterOrEqual(t, hits[i-1].Hybrid, h.Hybrid)
				}
			}
		})
	}
}

// TestSearchRRFKeywordOnly: with no query vector (no embedder, text only)
// there is no semantic signal, so RRF must rank by the keyword leg alone.
// Before the fix, every hit got a semantic "rank" from a tie of zeros
// broken by ID, and the weight 0.7 on it outweighed the keyword ranks, so
// results came back in ID order.
func TestSearchRRFKeywordOnly(t *testing.T) {
	t.Parallel()
	ms := []searchTestMem{
		{id: searchTestID(1), content: "alpha one two three four five six seven eight nine", vec: []float32{1, 0}},
		{id: searchTestID(2), content: "alpha alpha beta", vec: []float32{0, 1}},
		{id: searchTestID(3), content: "alpha alpha alpha", vec: []float32{1, 1}},
		{id: searchTestID(4), content: "nothing here", vec: []float32{1, -1}},
	}
	db, p := searchTestSetup(t, 2, ms)
	for _, fusion := range []string{core.FusionWeighted, core.FusionRRF} {
		t.Run(fusion, func(t *testing.T) {
			t.Parallel()
			hits, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Text: "alpha", Fusion: fusion, Explain: true})
			require.NoError(t, err)
			require.Len(t, hits, 3)
			var got []core.ID
			for i, h := range hits {
				got = append(got, h.Memory.ID)
				assert.Zero(t, h.Semantic)
				assert.Zero(t, h.Explain.SemanticContribution, "no query vector, no semantic contribution")
				assert.Equal(t, 0, h.Explain.VectorRank)
				assert.False(t, h.Explain.Exact, "no vector leg ran")
				if i > 0 {
					assert.Greater(t, hits[i-1].Keyword, h.Keyword)
				}
			}
			assert.Equal(t, []core.ID{searchTestID(3), searchTestID(2), searchTestID(1)}, got, "keyword order")
		})
	}
}

func TestSearchSemanticOnlyThreshold(t *testing.T) {
	t.Parallel()
	// Vectors at known angles to q = e1: cosines 0.9, 0.5, 0.35, 0.25, 0, -0.5.
	at := func(c float64) []float32 { return []float32{float32(c), float32(math.Sqrt(1 - c*c)), 0} }
	ms := []searchTestMem{
		{id: searchTestID(1), content: "a", vec: at(0.9)},
		{id: searchTestID(2), content: "b", vec: at(0.5)},
		{id: searchTestID(3), content: "c", vec: at(0.35)},
		{id: searchTestID(4), content: "d", vec: at(0.25)},
		{id: searchTestID(5), content: "e", vec: []float32{0, 0, 1}},
		{id: searchTestID(6), content: "f", vec: at(-0.5)},
		{id: searchTestID(7), content: "archived", vec: at(0.95), state: core.StateArchived},
	}
	db, p := searchTestSetup(t, 3, ms)
	q := []float32{1, 0, 0}
	tests := []struct {
		name      string
		semantic  bool
		threshold float64
		states    []core.State
		want      []int
	}{
		{name: "semantic-only default threshold 0.3", semantic: true, want: []int{1, 2, 3}},
		{name: "semantic-only explicit threshold", semantic: true, threshold: 0.6, want: []int{1}},
		{name: "semantic-only threshold -1 keeps all", semantic: true, threshold: -1, want: []int{1, 2, 3, 4, 5, 6}},
		{name: "semantic-only threshold 1 keeps none", semantic: true, threshold: 1, want: nil},
		{name: "hybrid no threshold by default", semantic: false, want: []int{1, 2, 3, 4, 5, 6}},
		{name: "hybrid explicit threshold", semantic: false, threshold: 0.3, want: []int{1, 2, 3}},
		{name: "archived only when asked", semantic: true, states: []core.State{core.StateArchived}, want: []int{7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hits, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Embedding: q, SemanticOnly: tc.semantic,
				Threshold: tc.threshold, States: tc.states, Explain: true})
			require.NoError(t, err)
			require.NotNil(t, hits)
			var got []int
			for _, h := range hits {
				var i int
				_, err := fmt.Sscanf(string(h.Memory.ID[24:]), "%d", &i)
				require.NoError(t, err)
				got = append(got, i)
				if tc.semantic {
					assert.Equal(t, h.Semantic, h.Hybrid, "semantic-only: hybrid is the cosine")
					assert.Equal(t, h.Semantic, h.Explain.SemanticContribution)
					assert.Zero(t, h.Explain.KeywordContribution)
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSearchTieOrderByID(t *testing.T) {
	t.Parallel()
	// Identical content and vectors: every score ties, so the order is by
	// ID, whatever the insertion order.
	var ms []searchTestMem
	for _, i := range []int{5, 2, 9, 1, 7, 3} {
		ms = append(ms, searchTestMem{id: searchTestID(i), content: "same words here", vec: []float32{1, 2}})
	}
	db, p := searchTestSetup(t, 2, ms)
	for _, fusion := range []string{core.FusionWeighted, core.FusionRRF} {
		for _, semantic := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s semantic-only=%v", fusion, semantic), func(t *testing.T) {
				t.Parallel()
				q := core.Query{ProjectID: p.ID, Text: "words", Embedding: []float32{1, 2}, K: 4, Fusion: fusion, SemanticOnly: semantic}
				hits, err := db.Search(t.Context(), q)
				require.NoError(t, err)
				var got []core.ID
				for _, h := range hits {
					got = append(got, h.Memory.ID)
				}
				assert.Equal(t, []core.ID{searchTestID(1), searchTestID(2), searchTestID(3), searchTestID(5)}, got)
				if fusion == core.FusionWeighted {
					for _, h := range hits {
						assert.Equal(t, hits[0].Hybrid, h.Hybrid)
					}
				}
			})
		}
	}
}

func TestSearchDefaultK(t *testing.T) {
	t.Parallel()
	var ms []searchTestMem
	for i := range 15 {
		ms = append(ms, searchTestMem{id: searchTestID(i + 1), content: fmt.Sprintf("memory number %d", i), vec: []float32{1, float32(i)}})
	}
	db, p := searchTestSetup(t, 2, ms)
	tests := []struct {
		name string
		k    int
		want int
	}{
		{name: "K 0 means 10", k: 0, want: core.DefaultK},
		{name: "K 1", k: 1, want: 1},
		{name: "K 14", k: 14, want: 14},
		{name: "K over corpus", k: 1000, want: 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hits, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Text: "memory", Embedding: []float32{1, 0}, K: tc.k})
			require.NoError(t, err)
			assert.Len(t, hits, tc.want)
		})
	}
	assert.Equal(t, 10, core.DefaultK)
}

func TestSearchPlannerErrors(t *testing.T) {
	t.Parallel()
	ms, q := searchTestFixture()
	db, p := searchTestSetup(t, 4, ms)
	tests := []struct {
		name     string
		mod      func(*core.Query)
		field    string
		sentinel error
	}{
		{name: "unknown fusion", mod: func(q *core.Query) { q.Fusion = "bogus" }, field: "fusion"},
		{name: "mis-cased fusion", mod: func(q *core.Query) { q.Fusion = "RRF" }, field: "fusion"},
		{name: "semantic weight above 1", mod: func(q *core.Query) { q.SemanticWeight = 1.5 }, field: "semantic_weight"},
		{name: "semantic weight negative", mod: func(q *core.Query) { q.SemanticWeight = -0.1 }, field: "semantic_weight"},
		{name: "semantic weight NaN", mod: func(q *core.Query) { q.SemanticWeight = math.NaN() }, field: "semantic_weight"},
		{name: "keyword weight above 1", mod: func(q *core.Query) { q.KeywordWeight = 2 }, field: "keyword_weight"},
		{name: "keyword weight +Inf", mod: func(q *core.Query) { q.KeywordWeight = math.Inf(1) }, field: "keyword_weight"},
		{name: "rrf constant negative", mod: func(q *core.Query) { q.Fusion, q.RRFK = core.FusionRRF, -1 }, field: "rrf_k"},
		{name: "rrf constant NaN", mod: func(q *core.Query) { q.Fusion, q.RRFK = core.FusionRRF, math.NaN() }, field: "rrf_k"},
		{name: "threshold NaN", mod: func(q *core.Query) { q.Threshold = math.NaN() }, field: "threshold"},
		{name: "threshold above 1", mod: func(q *core.Query) { q.Threshold = 1.01 }, field: "threshold"},
		{name: "threshold below -1", mod: func(q *core.Query) { q.Threshold = -1.01 }, field: "threshold"},
		{name: "quality boost above 1", mod: func(q *core.Query) { q.QualityBoost = 1.5 }, field: "quality_boost"},
		{name: "recency boost NaN", mod: func(q *core.Query) { q.RecencyBoost = math.NaN() }, field: "recency_boost"},
		{name: "recency boost negative", mod: func(q *core.Query) { q.RecencyBoost = -0.1 }, field: "recency_boost"},
		{name: "zero half-life", mod: func(q *core.Query) { q.HalfLife = map[core.MemoryType]time.Duration{core.TypeFact: 0} }, field: "half_life"},
		{name: "k -1", mod: func(q *core.Query) { q.K = -1 }, field: "k"},
		{name: "k over max", mod: func(q *core.Query) { q.K = core.DefaultMaxK + 1 }, field: "k"},
		{name: "unknown state", mod: func(q *core.Query) { q.States = []core.State{"Labile"} }, field: "state"},
		{name: "unknown type", mod: func(q *core.Query) { q.Filter.Types = []core.MemoryType{"facts"} }, field: "memory_type"},
		{name: "bad tag filter", mod: func(q *core.Query) { q.Filter.Tags = []string{"a,b"} }, field: "tags[0]"},
		{name: "query NUL", mod: func(q *core.Query) { q.Text = "a\x00" }, field: "query"},
		{name: "query invalid UTF-8", mod: func(q *core.Query) { q.Text = "\xff" }, field: "query"},
		{name: "query vector wrong dim", mod: func(q *core.Query) { q.Embedding = []float32{1, 0} }, field: "embedding", sentinel: core.ErrDimMismatch},
		{name: "query vector zero", mod: func(q *core.Query) { q.Embedding = []float32{0, 0, 0, 0} }, field: "embedding"},
		{name: "query vector NaN", mod: func(q *core.Query) { q.Embedding = []float32{float32(math.NaN()), 0, 0, 1} }, field: "embedding"},
		{name: "no vector, no text, no embedder", mod: func(q *core.Query) { q.Embedding, q.Text = nil, "" }, field: "embedding"},
		{name: "no vector, punctuation only", mod: func(q *core.Query) { q.Embedding, q.Text = nil, "?!" }, field: "embedding"},
		{name: "semantic-only needs a vector", mod: func(q *core.Query) { q.Embedding, q.SemanticOnly = nil, true }, field: "embedding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			query := core.Query{ProjectID: p.ID, Text: "database", Embedding: q}
			tc.mod(&query)
			hits, err := db.Search(t.Context(), query)
			assert.Nil(t, hits)
			validateTestField(t, errors.Unwrap(err), tc.field, tc.sentinel)
			assert.True(t, strings.HasPrefix(err.Error(), "search: "), err.Error())
		})
	}
	t.Run("unknown project", func(t *testing.T) {
		t.Parallel()
		_, err := db.Search(t.Context(), core.Query{ProjectID: searchTestID(999), Embedding: q})
		assert.ErrorIs(t, err, core.ErrNotFound)
	})
	t.Run("weights at the bounds are fine", func(t *testing.T) {
		t.Parallel()
		for _, w := range [][2]float64{{0, 1}, {1, 0}, {1, 1}, {0.001, 0}} {
			_, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Text: "database", Embedding: q, SemanticWeight: w[0], KeywordWeight: w[1]})
			assert.NoError(t, err, "weights %v", w)
		}
	})
}

// ---- golden ----

// searchTestGoldenDim is the dimension of the golden fixture's vectors.
const searchTestGoldenDim = 16

var searchTestGoldenWords = []string{"cache", "database", "index", "query", "latency", "memory", "vector",
	"search", "sync", "clock", "merge", "token", "schema", "edge", "server"}

// searchTestGoldenFixture is 20 memories with PCG-generated vectors and
// contents, fixed seeds, and explicit IDs.
func searchTestGoldenFixture() []searchTestMem {
	r := rand.New(rand.NewPCG(2026, 102))
	out := make([]searchTestMem, 20)
	for i := range out {
		n := 3 + r.IntN(6)
		words := make([]string, n)
		for j := range words {
			words[j] = searchTestGoldenWords[r.IntN(len(searchTestGoldenWords))]
		}
		out[i] = searchTestMem{id: searchTestID(100 + i), content: strings.Join(words, " "), vec: searchTestRandVec(r, searchTestGoldenDim)}
	}
	return out
}

type searchTestGoldenHit struct {
	ID       core.ID `json:"id"`
	Semantic float64 `json:"semantic"`
	Keyword  float64 `json:"keyword"`
	Hybrid   float64 `json:"hybrid"`
}

type searchTestGoldenCase struct {
	Name   string                `json:"name"`
	Fusion string                `json:"fusion"`
	Text   string                `json:"text"`
	Hits   []searchTestGoldenHit `json:"hits"`
}

func TestSearchGolden(t *testing.T) {
	t.Parallel()
	ms := searchTestGoldenFixture()
	db, p := searchTestSetup(t, searchTestGoldenDim, ms)
	qr := rand.New(rand.NewPCG(7, 11))
	queries := []struct {
		name string
		text string
		vec  []float32
	}{
		{name: "random vector two terms", text: "database query", vec: searchTestRandVec(qr, searchTestGoldenDim)},
		{name: "near memory 3", text: "vector search", vec: ms[3].vec},
		{name: "unknown term", text: "zebra", vec: searchTestRandVec(qr, searchTestGoldenDim)},
		{name: "many terms", text: "cache index latency memory sync clock", vec: searchTestRandVec(qr, searchTestGoldenDim)},
		{name: "repeated term", text: "merge merge token", vec: searchTestRandVec(qr, searchTestGoldenDim)},
		{name: "keyword only", text: "database cache", vec: nil},
	}
	var got []searchTestGoldenCase
	for _, q := range queries {
		for _, fusion := range []string{core.FusionWeighted, core.FusionRRF} {
			hits, err := db.Search(t.Context(), core.Query{ProjectID: p.ID, Text: q.text, Embedding: q.vec, K: 8, Fusion: fusion})
			require.NoError(t, err)
			c := searchTestGoldenCase{Name: q.name, Fusion: fusion, Text: q.text, Hits: []searchTestGoldenHit{}}
			for _, h := range hits {
				c.Hits = append(c.Hits, searchTestGoldenHit{ID: h.Memory.ID, Semantic: h.Semantic, Keyword: h.Keyword, Hybrid: h.Hybrid})
			}
			got = append(got, c)
		}
	}
	path := filepath.Join("testdata", "search_golden.json")
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
		t.Logf("wrote %s", path)
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run TestSearchGolden -update ./core/ to create it")
	var want []searchTestGoldenCase
	require.NoError(t, json.Unmarshal(b, &want))
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		t.Run(fmt.Sprintf("%s/%s", w.Name, w.Fusion), func(t *testing.T) {
			assert.Equal(t, w.Name, g.Name)
			assert.Equal(t, w.Fusion, g.Fusion)
			ids := func(hs []searchTestGoldenHit) []core.ID {
				var out []core.ID
				for _, h := range hs {
					out = append(out, h.ID)
				}
				return out
			}
			require.Equal(t, ids(w.Hits), ids(g.Hits))
			for j := range w.Hits {
				assert.InDelta(t, w.Hits[j].Semantic, g.Hits[j].Semantic, searchTestEps, "hit %d semantic", j)
				assert.InDelta(t, w.Hits[j].Keyword, g.Hits[j].Keyword, searchTestEps, "hit %d keyword", j)
				assert.InDelta(t, w.Hits[j].Hybrid, g.Hits[j].Hybrid, searchTestEps, "hit %d hybrid", j)
			}
		})
	}
}

// legsBackend hands out read transactions that implement
// core.LegsSearcher over the three calls, loading candidates in reverse
// order, and counts SearchLegs calls.
type legsBackend struct {
	core.Backend
	calls *int
	err   error
}

func (b legsBackend) View(ctx context.Context, fn func(core.ReadTx) error) error {
	return b.Backend.View(ctx, func(r core.ReadTx) error { return fn(legsTx{ReadTx: r, b: b}) })
}

type legsTx struct {
	core.ReadTx
	b legsBackend
}

func (t legsTx) SearchLegs(ctx context.Context, req core.LegsRequest) (core.LegsResult, error) {
	*t.b.calls++
	if t.b.err != nil {
		return core.LegsResult{}, t.b.err
	}
	var res core.LegsResult
	var err error
	if req.Vector != nil {
		if res.Vector, err = t.ReadTx.VectorLeg(ctx, *req.Vector); err != nil {
			return res, err
		}
	}
	if req.Keyword != nil {
		if res.Keyword, err = t.ReadTx.KeywordLeg(ctx, *req.Keyword); err != nil {
			return res, err
		}
	}
	var ids []core.ID
	for _, c := range slices.Concat(res.Vector, res.Keyword.Candidates) {
		if !slices.Contains(ids, c.ID) {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) > 0 {
		if res.Memories, err = t.ReadTx.Memories(ctx, core.MemoryFilter{IDs: ids}); err != nil {
			return res, err
		}
	}
	slices.Reverse(res.Memories)
	return res, nil
}

// VectorLeg, KeywordLeg and Memories must not be called by Search when
// SearchLegs is available.
func (t legsTx) VectorLeg(context.Context, core.VectorLeg) ([]core.Candidate, error) {
	panic("Search called VectorLeg despite SearchLegs")
}

func (t legsTx) KeywordLeg(context.Context, core.KeywordLeg) (core.KeywordResult, error) {
	panic("Search called KeywordLeg despite SearchLegs")
}

func TestSearchLegsSearcher(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ms, q := searchTestFixture()
	plain, p := searchTestSetup(t, 4, ms)
	tests := []struct {
		name string
		q    core.Query
	}{
		{name: "hybrid", q: core.Query{ProjectID: p.ID, Text: "database optimization", Embedding: q, K: 5, Explain: true}},
		{name: "rrf", q: core.Query{ProjectID: p.ID, Text: "database", Embedding: q, Fusion: core.FusionRRF, Explain: true}},
		{name: "semantic only", q: core.Query{ProjectID: p.ID, Embedding: q, SemanticOnly: true}},
		{name: "keyword only", q: core.Query{ProjectID: p.ID, Text: "optimization"}},
		{name: "no candidates", q: core.Query{ProjectID: p.ID, Text: "zebra"}},
		{name: "exact", q: core.Query{ProjectID: p.ID, Text: "database", Embedding: q, Exact: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The memstore is shared: the wrapped DB reads the same data.
			calls := 0
			b := legsBackend{Backend: plain.Backend(), calls: &calls}
			want, err := plain.Search(ctx, tc.q)
			require.NoError(t, err)
			var got []core.Hit
			require.NoError(t, core.New(b, core.Config{Device: "dev-test"}).View(ctx, func(tx *core.Tx) error {
				got, err = tx.Search(ctx, tc.q)
				return err
			}))
			require.Equal(t, 1, calls)
			require.Equal(t, want, got)
		})
	}
	t.Run("error", func(t *testing.T) {
		t.Parallel()
		calls := 0
		boom := errors.New("boom")
		b := legsBackend{Backend: plain.Backend(), calls: &calls, err: boom}
		_, err := core.New(b, core.Config{Device: "dev-test"}).Search(ctx, core.Query{ProjectID: p.ID, Text: "database", Embedding: q})
		require.ErrorIs(t, err, boom)
		require.Equal(t, 1, calls)
	})
}
