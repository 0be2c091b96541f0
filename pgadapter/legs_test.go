package pgadapter

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

var vecLiteral = regexp.MustCompile(`'\[[^\]]*\]'`)

var topicWords = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}

// loadRandom creates a project and bulk-loads n random memories (every
// tenth tagged "tenth"), with the HNSW index built afterwards.
func loadRandom(t testing.TB, s *Store, n, dim int) (core.Project, []core.Memory) {
	t.Helper()
	ctx := context.Background()
	db := core.New(s, core.Config{Device: "loader"})
	p, err := db.CreateProject(ctx, core.Project{Name: "bulk", Path: "/bulk", EmbeddingModel: "m", EmbeddingDim: dim})
	require.NoError(t, err)
	r := mrand.New(mrand.NewPCG(uint64(n), 7))
	now := time.Now().UTC().Truncate(time.Millisecond)
	ms := make([]core.Memory, n)
	for i := range ms {
		tags := []string{}
		if i%10 == 0 {
			tags = []string{"tenth"}
		}
		ms[i] = core.Memory{ID: core.NewID(now), ProjectID: p.ID, Content: fmt.Sprintf("%s %s memory number %d",
			topicWords[i%len(topicWords)], topicWords[(i/10)%len(topicWords)], i), Embedding: randUnit(r, dim),
			EmbeddingModel: "m", MemoryType: core.TypeFact, Domain: "memory", Tags: tags, State: core.StateUnconsolidated,
			Usefulness: 0.5, Confidence: 1, QualityScore: core.Quality(0.5, 1, 0), CreatedAt: now, UpdatedAt: now}
	}
	require.NoError(t, s.DropIndexes(ctx))
	for c := range slices.Chunk(ms, 20000) {
		require.NoError(t, s.BulkLoad(ctx, c))
	}
	require.NoError(t, s.BuildIndexes(ctx))
	_, err = s.pool.Exec(ctx, "VACUUM ANALYZE memories")
	require.NoError(t, err)
	return p, ms
}

// explain returns the plan of the approximate leg, optionally without
// the settings that force the index.
func explain(t testing.TB, s *Store, leg core.VectorLeg, force bool) string {
	t.Helper()
	pre, q, args := approxQuery(pgvector.NewVector(leg.Vector), len(leg.Vector), &leg, DefaultEfSearch)
	if !force {
		pre = nil
	}
	return explainQuery(t, s, pre, q, args)
}

// explainLegs returns the plan of the one-statement search (SearchLegs),
// planned as it runs: generic (legsPlanMode), with its settings.
func explainLegs(t testing.TB, s *Store, vl *core.VectorLeg, kl *core.KeywordLeg) string {
	t.Helper()
	pre, q, args := (&tx{s: s}).legsQuery(vl, kl)
	require.Contains(t, pre, legsPlanMode)
	// EXPLAIN EXECUTE shows the plan the prepared statement runs with; it
	// takes its arguments as literals.
	lits := make([]string, len(args))
	for i, a := range args {
		lits[i] = sqlLiteral(t, a)
	}
	return explainQuery(t, s, []string{pre, "PREPARE legs AS " + q}, "EXECUTE legs("+strings.Join(lits, ", ")+")", nil)
}

// sqlLiteral renders a legs statement's argument as an SQL literal.
func sqlLiteral(t testing.TB, a any) string {
	t.Helper()
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := a.(type) {
	case string:
		return quote(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = quote(s)
		}
		return "ARRAY[" + strings.Join(q, ", ") + "]::text[]"
	case pgvector.Vector:
		return quote(v.String())
	}
	t.Fatalf("no literal for %T", a)
	return ""
}

// explainQuery runs the statements pre, then returns q's plan (with
// vector literals elided), in one transaction.
func explainQuery(t testing.TB, s *Store, pre []string, q string, args []any) string {
	t.Helper()
	ctx := context.Background()
	var plan []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, p := range pre {
			if _, err := tx.Exec(ctx, p); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, "EXPLAIN (COSTS OFF) "+q, args...)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	require.NoError(t, err)
	return vecLiteral.ReplaceAllString(strings.Join(plan, "\n"), "'[...]'")
}

func TestVectorLegIndex(t *testing.T) {
	t.Parallel()
	sizes := []struct {
		name string
		n    int
		long bool
	}{{"10K", 10_000, false}, {"100K", 100_000, true}}
	for _, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			t.Parallel()
			if sz.long && os.Getenv("ATHENA_TEST_LONG") == "" {
				t.Skip("set ATHENA_TEST_LONG=1 for the 100K case")
			}
			testURL(t)
			ctx := context.Background()
			s := openTest(t)
			p, ms := loadRandom(t, s, sz.n, 768)
			r := mrand.New(mrand.NewPCG(99, 1))
			q := randUnit(r, 768)
			leg := core.VectorLeg{Vector: q, K: 10, Filter: core.MemoryFilter{ProjectID: p.ID, States: core.LiveStates()}}

			t.Logf("default planner:\n%s", explain(t, s, leg, false))
			plan := explain(t, s, leg, true)
			require.Contains(t, plan, "Index Scan using memories_hnsw_768", plan)

			// The one-statement search plans the same index, and reads the
			// keyword index alone for its keyword part.
			lplan := explainLegs(t, s, &leg, &core.KeywordLeg{Terms: []string{"alpha", "bravo"}, Limit: 50, Filter: leg.Filter})
			require.Contains(t, lplan, "Index Scan using memories_hnsw_768", lplan)
			require.Contains(t, lplan, "Index Only Scan using postings_term_idx", lplan)
			require.NotContains(t, lplan, "Seq Scan", lplan)
			require.Contains(t, lplan, "Index Scan using memories_pkey on memories m\n", "rows are loaded by ID")
			require.Equal(t, 1, strings.Count(lplan, "Bitmap Heap Scan"), "only the exact fallback may scan the project:\n%s", lplan)

			// Filtered, k=100, ~10% match: exactly 100, all matching.
			fleg := core.VectorLeg{Vector: q, K: 100, Filter: core.MemoryFilter{ProjectID: p.ID, Tags: []string{"tenth"}}}
			require.Contains(t, explain(t, s, fleg, true), "Index Scan using memories_hnsw_768")
			var approx, exact []core.Candidate
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				var err error
				if approx, err = r.VectorLeg(ctx, fleg); err != nil {
					return err
				}
				fleg.Exact = true
				exact, err = r.VectorLeg(ctx, fleg)
				return err
			}))
			require.Len(t, approx, 100)
			require.Len(t, exact, 100)
			byID := map[core.ID]*core.Memory{}
			for i := range ms {
				byID[ms[i].ID] = &ms[i]
			}
			for _, c := range approx {
				require.Contains(t, byID[c.ID].Tags, "tenth")
			}
			hit := 0
			want := map[core.ID]bool{}
			for _, c := range exact[:10] {
				want[c.ID] = true
			}
			for _, c := range approx[:10] {
				if want[c.ID] {
					hit++
				}
			}
			t.Logf("filtered recall@10 = %.2f", float64(hit)/10)
			require.GreaterOrEqual(t, hit, 8)

			// A filter matching fewer than k: all of them, via the fallback.
			few := core.VectorLeg{Vector: q, K: 50, Filter: core.MemoryFilter{ProjectID: p.ID, IDs: nil, SessionID: "none"}}
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				got, err := r.VectorLeg(ctx, few)
				require.Empty(t, got)
				return err
			}))
		})
	}
}

func TestKeywordLeg(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t)
	db := core.New(s, core.Config{Device: "d"})
	p, err := db.CreateProject(ctx, core.Project{Name: "k", Path: "/k", EmbeddingModel: "m", EmbeddingDim: 3})
	require.NoError(t, err)
	contents := []string{"Apple banana", "banana cherry", "cherry date apple", "l'été était chaud", "it's O'Brien's"}
	ids := make([]core.ID, len(contents))
	for i, c := range contents {
		m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: c, Embedding: []float32{1, float32(i), 0}})
		require.NoError(t, err)
		ids[i] = m.ID
	}
	tests := []struct {
		name  string
		terms []string
		n     int
		df    map[string]int64
		first int // index in contents of the best candidate, or -1
	}{
		{"one", []string{"apple"}, 2, map[string]int64{"apple": 2}, -1},
		// The memory holding both terms ranks first.
		{"or", []string{"apple", "date"}, 2, map[string]int64{"apple": 2, "date": 1}, 2},
		{"unicode", core.Terms("ÉTÉ"), 1, map[string]int64{"été": 1}, 3},
		{"syntax is literal", []string{"apple & !banana", "'", "|", "banana"}, 2, map[string]int64{"banana": 2}, -1},
		{"quotes", core.Terms("O'Brien's"), 1, nil, 4},
		{"none", []string{"zebra"}, 0, map[string]int64{"zebra": 0}, -1},
		{"empty", nil, 0, map[string]int64{}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				res, err := r.KeywordLeg(ctx, core.KeywordLeg{Terms: tc.terms, Limit: 10, Filter: core.MemoryFilter{ProjectID: p.ID}})
				require.NoError(t, err)
				require.Len(t, res.Candidates, tc.n)
				if tc.first >= 0 {
					require.Equal(t, ids[tc.first], res.Candidates[0].ID)
				}
				require.Equal(t, int64(len(contents)), res.Stats.Docs)
				for k, v := range tc.df {
					require.Equal(t, v, res.Stats.DF[k], k)
				}
				return nil
			}))
		})
	}
}

// TestKeywordLegSparseFilter: when the filter rejects the best-scored
// memories, the keyword leg still returns the best ones that pass, up to
// its limit (keywordCTEs filters in score order until the limit).
func TestKeywordLegSparseFilter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, func(c *Config) { c.IndexInterval = -1 })
	db := core.New(s, core.Config{Device: "d"})
	p, err := db.CreateProject(ctx, core.Project{Name: "k", Path: "/k", EmbeddingModel: "m", EmbeddingDim: 2})
	require.NoError(t, err)
	var tagged []core.ID // longest last: the term scores less in a longer memory
	for i := range 30 {
		m := core.Memory{ProjectID: p.ID, Content: "common", Embedding: []float32{1, float32(i)}, Tags: []string{}}
		if i >= 24 {
			m.Content += strings.Repeat(" filler", i-23)
			m.Tags = []string{"rare"}
		}
		got, err := db.Remember(ctx, m)
		require.NoError(t, err)
		if i >= 24 {
			tagged = append(tagged, got.ID)
		}
	}
	for _, limit := range []int{1, 2, 3, 6, 10} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			t.Parallel()
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				res, err := r.KeywordLeg(ctx, core.KeywordLeg{Terms: []string{"common"}, Limit: limit,
					Filter: core.MemoryFilter{ProjectID: p.ID, Tags: []string{"rare"}}})
				require.NoError(t, err)
				var ids []core.ID
				for _, c := range res.Candidates {
					ids = append(ids, c.ID)
				}
				require.Equal(t, tagged[:min(limit, len(tagged))], ids)
				require.Equal(t, int64(30), res.Stats.DF["common"])
				return nil
			}))
		})
	}
}
