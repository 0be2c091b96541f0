package pgadapter

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// requirePostingsMatch checks that the keyword index holds exactly one
// entry per distinct term of each memory, with the memory's project and
// length, and nothing else.
func requirePostingsMatch(t *testing.T, s *Store) {
	t.Helper()
	var missing, extra, dup, total int64
	require.NoError(t, s.pool.QueryRow(context.Background(), `WITH want AS (
			SELECT DISTINCT m.project_id, t.t AS term, m.doc_len, m.id FROM memories m, unnest(string_to_array(m.terms, ' ')) AS t(t)
			WHERE t.t <> '')
		SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT project_id, term, doc_len, id FROM postings) x),
			(SELECT count(*) FROM (SELECT project_id, term, doc_len, id FROM postings EXCEPT SELECT * FROM want) x),
			(SELECT count(*) FROM (SELECT 1 FROM postings GROUP BY project_id, term, doc_len, id HAVING count(*) > 1) x),
			(SELECT count(*) FROM postings)`).Scan(&missing, &extra, &dup, &total))
	require.Zero(t, missing, "entries missing from postings")
	require.Zero(t, extra, "stale entries in postings")
	require.Zero(t, dup, "duplicated entries in postings")
	require.Positive(t, total)
}

// TestPostingsFollowWrites: every way a memory is written keeps the
// keyword index equal to the memories' terms: single and batched puts, a
// put that changes a memory's content (and so its terms and length), one
// that changes only other columns, the indexer's updates, a re-embed, a
// delete, a bulk load with the index dropped and rebuilt, a TRUNCATE, and
// a schema migrated from version 10 with memories already in it.
func TestPostingsFollowWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	write := func(t *testing.T, s *Store, round int) {
		db := core.New(s, core.Config{Device: "d"})
		p, err := db.CreateProject(ctx, core.Project{Name: fmt.Sprint("p", round), Path: fmt.Sprint("/p", round),
			EmbeddingModel: "m", EmbeddingDim: 4})
		require.NoError(t, err)
		r := mrand.New(mrand.NewPCG(1, uint64(round)))
		var ms []core.Memory
		for i := range 20 {
			m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Embedding: randUnit(r, 4),
				Content: fmt.Sprintf("%s %s memory %d", topicWords[i%len(topicWords)], topicWords[r.IntN(len(topicWords))], i)})
			require.NoError(t, err)
			ms = append(ms, m)
		}
		var batch []core.Memory
		for i := range 10 {
			batch = append(batch, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("batched %d of ten, batched", i),
				Embedding: []float32{1, 0, 0, float32(i)}})
		}
		res, err := db.RememberBatch(ctx, batch)
		require.NoError(t, err)
		for _, r := range res {
			require.NoError(t, r.Err)
		}
		_, err = db.UpdateMemory(ctx, ms[0].ID, func(m *core.Memory) error { m.Content = "entirely new words here"; return nil })
		require.NoError(t, err)
		_, err = db.UpdateMemory(ctx, ms[1].ID, func(m *core.Memory) error { m.Content += " and more"; return nil })
		require.NoError(t, err)
		_, err = db.UpdateMemory(ctx, ms[2].ID, func(m *core.Memory) error { m.Usefulness = 0.9; return nil })
		require.NoError(t, err)
		_, err = db.UpdateMemory(ctx, ms[3].ID, func(m *core.Memory) error { m.Embedding = []float32{0, 0, 1, 0}; return nil })
		require.NoError(t, err)
		require.NoError(t, db.DeleteMemory(ctx, ms[4].ID))
		_, err = s.IndexPending(ctx, 1000)
		require.NoError(t, err)
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"writes", func(t *testing.T) {
			s := openTest(t, func(c *Config) { c.IndexInterval = -1 })
			write(t, s, 1)
			requirePostingsMatch(t, s)
		}},
		{"bulk load and rebuild", func(t *testing.T) {
			s := openTest(t, func(c *Config) { c.IndexInterval = -1 })
			loadRandom(t, s, 500, 8)
			requirePostingsMatch(t, s)
			write(t, s, 1)
			requirePostingsMatch(t, s)
		}},
		{"truncated", func(t *testing.T) {
			s := openTest(t, func(c *Config) { c.IndexInterval = -1 })
			write(t, s, 1)
			_, err := s.pool.Exec(ctx, "TRUNCATE memories")
			require.NoError(t, err)
			var n int64
			require.NoError(t, s.pool.QueryRow(ctx, "SELECT count(*) FROM postings").Scan(&n))
			require.Zero(t, n, "postings of truncated memories")
			write(t, s, 2)
			requirePostingsMatch(t, s)
		}},
		{"migrated from 10", func(t *testing.T) {
			schema := testSchema(t)
			require.NoError(t, migrateTo(ctx, adminConn(t), schema, 10))
			old := openTest(t, func(c *Config) { c.Schema = schema; c.SkipMigrations = true; c.IndexInterval = -1 })
			write(t, old, 1)
			require.NoError(t, old.Close())
			s := openTest(t, func(c *Config) { c.Schema = schema; c.IndexInterval = -1 })
			requirePostingsMatch(t, s)
			write(t, s, 2)
			requirePostingsMatch(t, s)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

// TestPostingsConcurrentRewrites: writers that rewrite the same memories'
// content at once leave the keyword index equal to whichever content won
// each row (a rewrite that loses to a newer version fails with
// core.ErrConflict): the triggers see each row's old and new terms
// exactly, however the writes interleave.
func TestPostingsConcurrentRewrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, func(c *Config) { c.IndexInterval = -1; c.MaxConns = 10 })
	p := writeRandom(t, s, mrand.New(mrand.NewPCG(3, 4)), 4, 4)
	ms, err := core.New(s, core.Config{Device: "d"}).Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	const writers, rounds = 8, 15
	errs := make(chan error, writers*rounds)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := core.New(s, core.Config{Device: fmt.Sprintf("w%d", w)})
			r := mrand.New(mrand.NewPCG(uint64(w), 9))
			for i := range rounds {
				id := ms[r.IntN(len(ms))].ID
				_, err := db.UpdateMemory(ctx, id, func(m *core.Memory) error {
					m.Content = fmt.Sprintf("writer%d round%d %s", w, i, topicWords[r.IntN(len(topicWords))])
					return nil
				})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		if errors.Is(err, core.ErrConflict) {
			continue // a concurrent write with a newer version won the row
		}
		require.NoError(t, err)
		won++
	}
	t.Logf("%d of %d rewrites won", won, writers*rounds)
	require.Positive(t, won)
	requirePostingsMatch(t, s)
}
