package pgadapter

import (
	"context"
	"strings"
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/stretchr/testify/require"
)

// FuzzKeywordTerms checks the keyword leg's handling of terms: whatever
// text a user types, and whatever terms reach the leg (core's, or raw
// strings a buggy caller might pass), it runs without an SQL error,
// because terms that are not single core tokens are dropped and the rest
// travel as one text[] parameter, never as query text. (As FuzzTsQuery it
// checked the tsquery quoting the GIN index needed; its corpus holds the
// term longer than tsquery's word limit it found.)
func FuzzKeywordTerms(f *testing.F) {
	for _, seed := range []string{"fox", "a & b | !c <-> d", "'", "''", `\`, "a:*", "(a", "x:A", "!", "é", "\x00", "", "and or not"} {
		f.Add(seed)
	}
	s := openTest(f)
	db := core.New(s, core.Config{Device: "fuzz"})
	ctx := context.Background()
	p, err := db.CreateProject(ctx, core.Project{Name: "fuzz", Path: "/fuzz", EmbeddingModel: "m", EmbeddingDim: 4})
	require.NoError(f, err)
	_, err = db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "the quick brown fox", Embedding: []float32{1, 0, 0, 0}, EmbeddingModel: "m"})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, q string) {
		for _, terms := range [][]string{core.Terms(q), {q}, strings.Fields(q)} {
			err := s.View(ctx, func(r core.ReadTx) error {
				_, err := r.KeywordLeg(ctx, core.KeywordLeg{Terms: terms, Limit: 5, Filter: core.MemoryFilter{ProjectID: p.ID}})
				return err
			})
			require.NoError(t, err, "terms %q", terms)
		}
	})
}
