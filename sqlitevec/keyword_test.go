package sqlitevec

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// TestKeywordQueryPlan pins the keyword leg's query shape: FTS5 answers
// the MATCH inside a materialized CTE, and memories is joined by its
// rowid primary key, never scanned.
func TestKeywordQueryPlan(t *testing.T) {
	t.Parallel()
	s := openTest(t, false)
	var plan []string
	require.NoError(t, s.View(context.Background(), func(r core.ReadTx) error {
		c := r.(*readTx).c
		return c.query(`EXPLAIN QUERY PLAN `+keywordSQL, []any{`"a"`, 10}, func(st *sqlite3.Stmt) error {
			plan = append(plan, st.ColumnText(3))
			return nil
		})
	}))
	joined := strings.Join(plan, "\n")
	require.Contains(t, joined, "MATERIALIZE hits", joined)
	require.Contains(t, joined, "VIRTUAL TABLE INDEX", joined) // memories_fts answers MATCH
	require.Contains(t, joined, "SEARCH m USING INTEGER PRIMARY KEY (rowid=?)", joined)
	for _, line := range plan {
		require.False(t, line == "SCAN m" || strings.HasPrefix(line, "SCAN m "), joined)
	}
}

func newKeywordFixture(t testing.TB) (*Store, *core.DB, core.Project) {
	s := openTest(t, false)
	db := core.New(s, core.Config{})
	ctx := context.Background()
	p, err := db.CreateProject(ctx, core.Project{Name: "k", Path: "/k", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)
	other, err := db.CreateProject(ctx, core.Project{Name: "o", Path: "/o", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)
	texts := []string{`the quick "brown" fox`, `NEAR(fox dog) OR col:x*`, `a b c`, `fox fox fox`, `émile zola`}
	for i, txt := range texts {
		_, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: txt, Embedding: unitVec(uint64(i), 8)})
		require.NoError(t, err)
		_, err = db.Remember(ctx, core.Memory{ProjectID: other.ID, Content: txt, Embedding: unitVec(uint64(i), 8)})
		require.NoError(t, err)
	}
	return s, db, p
}

func TestKeywordLeg(t *testing.T) {
	t.Parallel()
	s, _, p := newKeywordFixture(t)
	tests := []struct {
		name  string
		terms []string
		hits  int
	}{
		{"plain", []string{"fox"}, 3},
		{"syntax stays literal", []string{`"`, `*`, `NEAR`, `col:x`, `OR`, `AND`, `(`, `fox"`}, 0},
		{"near as a word", []string{"near"}, 1},
		{"unicode", []string{"émile"}, 1},
		{"unknown", []string{"zebra"}, 0},
		{"project token is not a term", []string{projectToken(p.ID)}, 0},
	}
	for _, tt := range tests {
		for _, fts := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fts=%v", tt.name, fts), func(t *testing.T) {
				t.Parallel()
				var res core.KeywordResult
				require.NoError(t, s.View(context.Background(), func(r core.ReadTx) error {
					var err error
					leg := core.KeywordLeg{Terms: tt.terms, Limit: 10, Filter: core.MemoryFilter{ProjectID: p.ID}}
					if fts {
						res, err = r.(*readTx).keywordFTS(context.Background(), leg)
					} else {
						res, err = r.KeywordLeg(context.Background(), leg)
					}
					return err
				}))
				require.Len(t, res.Candidates, tt.hits)
				require.EqualValues(t, 5, res.Stats.Docs)
			})
		}
	}
}

// TestKeywordPostings checks the in-memory postings against BM25 computed
// by core over every row, after inserts, content updates, state changes
// and deletes, and again after a reopen (the rebuild path).
func TestKeywordPostings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.db")
	s, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	db := core.New(s, core.Config{})
	p, err := db.CreateProject(ctx, core.Project{Name: "k", Path: "/k", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)
	other, err := db.CreateProject(ctx, core.Project{Name: "o", Path: "/o", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := []string{"ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay", "kiwi", "lark"}
	text := func() string {
		var w []string
		for range 1 + rng.IntN(12) {
			w = append(w, vocab[min(rng.IntN(len(vocab)), rng.IntN(len(vocab)))])
		}
		return strings.Join(w, " ")
	}
	var ms []core.Memory
	for i := range 300 {
		pid := p.ID
		if i%5 == 0 {
			pid = other.ID
		}
		ms = append(ms, core.Memory{ProjectID: pid, Content: text(), Embedding: unitVec(uint64(i+1), 8)})
	}
	res, err := db.RememberBatch(ctx, ms)
	require.NoError(t, err)
	for i := 0; i < len(res); i += 7 {
		_, err := db.UpdateMemory(ctx, res[i].ID, func(m *core.Memory) error { m.Content = text(); return nil })
		require.NoError(t, err)
	}
	for i := 3; i < len(res); i += 11 {
		require.NoError(t, db.DeleteMemory(ctx, res[i].ID))
	}
	for i := 5; i < len(res); i += 13 {
		if (i-3)%11 == 0 {
			continue // deleted
		}
		_, err := db.SetState(ctx, res[i].ID, core.StateSuperseded, res[0].ID)
		require.NoError(t, err)
	}
	check := func(s *Store) {
		all, err := core.New(s, core.Config{}).Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
		require.NoError(t, err)
		for qi := range 40 {
			terms := core.Terms(text() + " zebra")
			f := core.MemoryFilter{ProjectID: p.ID}
			if qi%2 == 1 {
				f.States = core.LiveStates()
			}
			limit := 1 + qi%25
			var got core.KeywordResult
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				var err error
				got, err = r.KeywordLeg(ctx, core.KeywordLeg{Terms: terms, Limit: limit, Filter: f})
				return err
			}))
			want := core.CorpusStats{Docs: int64(len(all)), DF: map[string]int64{}}
			type sc struct {
				id core.ID
				s  float64
			}
			var scores []sc
			for _, m := range all {
				toks := core.Tokenize(m.Content)
				want.TotalLen += int64(len(toks))
				tf := core.TermFreqs(toks)
				for _, t := range terms {
					if tf[t] > 0 {
						want.DF[t]++
					}
				}
			}
			for _, t := range terms {
				want.DF[t] += 0
			}
			require.Equal(t, want, got.Stats)
			for _, m := range all {
				toks := core.Tokenize(m.Content)
				if s := (core.BM25Params{}).Score(terms, core.TermFreqs(toks), len(toks), want); s > 0 && f.Match(&m) {
					scores = append(scores, sc{m.ID, s})
				}
			}
			slices.SortFunc(scores, func(a, b sc) int { return cmp.Or(cmp.Compare(b.s, a.s), cmp.Compare(a.id, b.id)) })
			require.Len(t, got.Candidates, min(limit, len(scores)))
			byID := map[core.ID]float64{}
			for _, x := range scores {
				byID[x.id] = x.s
			}
			for i, c := range got.Candidates {
				// float32 accumulation may swap near-ties, nothing more
				require.InDelta(t, scores[i].s, byID[c.ID], 1e-4, "query %v rank %d", terms, i)
			}
		}
	}
	check(s)
	require.NoError(t, s.Close())
	// From the snapshot Close wrote, then rebuilt from rows without it.
	s, err = Open(ctx, Config{Path: path})
	require.NoError(t, err)
	require.True(t, s.Stats().Snapshot)
	check(s)
	require.NoError(t, s.Close())
	require.NoError(t, os.Remove(snapPath(path)))
	s, err = Open(ctx, Config{Path: path})
	require.NoError(t, err)
	defer s.Close()
	require.False(t, s.Stats().Snapshot)
	check(s)
}

// TestSnapshotStale checks that a snapshot from an older generation is
// brought up to date from the change log: the index sees every memory.
func TestSnapshotStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	db := core.New(s, core.Config{})
	p, err := db.CreateProject(ctx, core.Project{Name: "s", Path: "/s", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)
	_, err = db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "first", Embedding: unitVec(1, 8)})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	old, err := os.ReadFile(snapPath(path))
	require.NoError(t, err)

	s, err = Open(ctx, Config{Path: path})
	require.NoError(t, err)
	require.True(t, s.Stats().Snapshot)
	db = core.New(s, core.Config{})
	_, err = db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "second", Embedding: unitVec(2, 8)})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, os.WriteFile(snapPath(path), old, 0o644))

	s, err = Open(ctx, Config{Path: path})
	require.NoError(t, err)
	defer s.Close()
	require.True(t, s.Stats().Snapshot, "an older snapshot is caught up, not thrown away")
	require.Equal(t, 2, s.Stats().Memories)
	var res core.KeywordResult
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		res, err = r.KeywordLeg(ctx, core.KeywordLeg{Terms: []string{"second"}, Limit: 5, Filter: core.MemoryFilter{ProjectID: p.ID}})
		return err
	}))
	require.Len(t, res.Candidates, 1)

	// A damaged snapshot at the right generation is an error-free rebuild too.
	require.NoError(t, s.Close())
	b, err := os.ReadFile(snapPath(path))
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	require.NoError(t, os.WriteFile(snapPath(path), b, 0o644))
	s2, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	defer s2.Close()
	require.False(t, s2.Stats().Snapshot)
	require.Equal(t, 2, s2.Stats().Memories)
}

// FuzzFTSQuery checks that no query text makes the keyword leg fail: the
// MATCH expression built from any input must be valid FTS5.
func FuzzFTSQuery(f *testing.F) {
	for _, seed := range []string{"fox", `"`, `a" OR "b`, "NEAR(a b)", "col:x*", "^a", "a AND NOT b", "_p123", "(((", "émile", "\x00", ""} {
		f.Add(seed)
	}
	s, _, p := newKeywordFixture(f)
	f.Fuzz(func(t *testing.T, q string) {
		for _, terms := range [][]string{core.Terms(q), {q}, strings.Fields(q)} {
			err := s.View(context.Background(), func(r core.ReadTx) error {
				_, err := r.(*readTx).keywordFTS(context.Background(), core.KeywordLeg{Terms: terms, Limit: 5, Filter: core.MemoryFilter{ProjectID: p.ID}})
				return err
			})
			require.NoError(t, err)
		}
	})
}
