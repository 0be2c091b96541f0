package pgadapter

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChangeLogCursorNeverSkips: while several devices write concurrently,
// a reader that follows the log by position (as sync pulls do) must see
// every change exactly once. Positions from a bare sequence would let a
// change that commits late land below the reader's cursor and be skipped.
func TestChangeLogCursorNeverSkips(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	base := core.New(s, core.Config{Device: "setup"})
	p, err := base.CreateProject(ctx, core.Project{Name: "cursor", Path: "/cursor", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)

	const writers, each = 6, 40
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := core.New(s, core.Config{Device: fmt.Sprintf("dev-%d", w)})
			for i := range each {
				v := make([]float32, 8)
				v[(w+i)%8] = 1
				_, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("w%d i%d", w, i), Embedding: v, EmbeddingModel: "m"})
				if !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	seen := map[string]int{}
	var cursor int64
	pull := func() {
		cs, err := base.Changes(context.WithoutCancel(ctx), cursor, core.DefaultMaxK, "")
		require.NoError(t, err)
		for _, c := range cs {
			require.Greater(t, c.Pos, cursor)
			cursor = c.Pos
			seen[fmt.Sprintf("%s/%d", c.Device, c.Seq)]++
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		pull()
	}
	pull()
	assert.Len(t, seen, 1+writers*each, "every change seen (project + memories)")
	for k, n := range seen {
		assert.Equal(t, 1, n, "%s seen %d times", k, n)
	}
}
