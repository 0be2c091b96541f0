package main

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEdgePersistsAndReopens: every page write is saved before it is
// acknowledged; a tab reopened from the saved snapshot has its memories
// and its own changes still pending.
func TestEdgePersistsAndReopens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	var saved []byte
	saves := 0
	persist := func(_ context.Context, b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		saved, saves = append([]byte(nil), b...), saves+1
		return nil
	}
	cfg := edgeConfig{Device: "web-0123456789abcdef", Persist: persist}
	e, err := openEdge(ctx, cfg)
	require.NoError(t, err)
	m, err := e.remember(ctx, rememberReq{Content: "<script>x</script> deploys run migrations first", Tags: []string{"ops", " "}})
	require.NoError(t, err)
	assert.Equal(t, "pending", m.Sync)
	assert.True(t, m.Mine)
	assert.Equal(t, []string{"ops"}, m.Tags)
	mu.Lock()
	assert.GreaterOrEqual(t, saves, 2, "saved at open (the new project) and after the write")
	snap := saved
	mu.Unlock()

	res, err := e.recall(ctx, recallReq{Query: "migrations"})
	require.NoError(t, err)
	require.Len(t, res.Hits, 1)
	require.NotNil(t, res.Hits[0].Explain)
	assert.Equal(t, []string{"migrations"}, res.Hits[0].Explain.MatchedTerms)

	cfg.Snapshot = snap
	e2, err := openEdge(ctx, cfg)
	require.NoError(t, err)
	l, err := e2.list(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, 1, l.Total)
	assert.Equal(t, "<script>x</script> deploys run migrations first", l.Memories[0].Content)
	assert.Equal(t, "pending", l.Memories[0].Sync, "the reopened tab knows its own unsynced change")
	st, err := e2.status(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), st.Pending, "the project and the memory")
	assert.Equal(t, "disabled", st.State, "no sync URL")

	_, err = openEdge(ctx, edgeConfig{Device: "web-x", Snapshot: []byte("{not json"), Persist: persist})
	require.ErrorContains(t, err, "unreadable")
}

func TestBenchSmall(t *testing.T) {
	t.Parallel()
	r, err := bench(context.Background(), benchReq{N: 200, Queries: 5})
	require.NoError(t, err)
	assert.Equal(t, 200, r.N)
	assert.Equal(t, 10.0, r.HitsMean)
}
