package sqlitevec

import (
	"context"
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
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var res core.KeywordResult
			require.NoError(t, s.View(context.Background(), func(r core.ReadTx) error {
				var err error
				res, err = r.KeywordLeg(context.Background(), core.KeywordLeg{Terms: tt.terms, Limit: 10, Filter: core.MemoryFilter{ProjectID: p.ID}})
				return err
			}))
			require.Len(t, res.Candidates, tt.hits)
			require.EqualValues(t, 5, res.Stats.Docs)
		})
	}
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
				_, err := r.KeywordLeg(context.Background(), core.KeywordLeg{Terms: terms, Limit: 5, Filter: core.MemoryFilter{ProjectID: p.ID}})
				return err
			})
			require.NoError(t, err)
		}
	})
}
