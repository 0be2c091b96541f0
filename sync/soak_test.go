//go:build !js

package edgesync_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// TestMiniSoak: 10 edges × 200 memories with state changes and access
// bumps, syncing concurrently over connections cut at random offsets, and
// one server restart on the same database. Ends with 0 lost, 0 duplicated
// and every replica equal.
func TestMiniSoak(t *testing.T) {
	t.Parallel()
	edges, perEdge := 10, 200
	if testing.Short() {
		edges, perEdge = 4, 50
	}
	start := time.Now()
	h := newHarness(t, edgesyncCfg())
	var cutting atomic.Bool
	cutting.Store(true)
	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 8))
	hc := cutClient(func() int64 {
		rngMu.Lock()
		defer rngMu.Unlock()
		if !cutting.Load() || rng.IntN(3) == 0 {
			return -1
		}
		return 500 + rng.Int64N(200_000)
	})
	es := make([]*edge, edges)
	for i := range es {
		es[i] = h.edge(fmt.Sprintf("soak-%02d", i), func(c *edgesync.ClientConfig) { c.HTTPClient = hc; c.BatchSize = 64; c.MaxRetries = 3 })
	}
	half := make(chan struct{}, edges)
	var wg sync.WaitGroup
	errs := make(chan error, edges)
	for i, e := range es {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- soakEdge(e, perEdge, uint64(i), half)
		}()
	}
	for range edges {
		<-half
	}
	h.restart()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	cutting.Store(false)
	for range 2 {
		for _, e := range es {
			e.sync()
		}
	}
	want := memories(t, h.db, es[0].project)
	require.Len(t, want, edges*perEdge)
	for _, e := range es {
		requireExactlyOnce(t, h.db, e)
		require.Equal(t, want, memories(t, e.db, e.project), "edge %s", e.db.Device())
		st, err := e.client.Status(context.Background())
		require.NoError(t, err)
		require.Zero(t, st.Servers[0].Pending)
	}
	require.Less(t, time.Since(start), 90*time.Second)
	t.Logf("mini soak: %d edges × %d memories in %s", edges, perEdge, time.Since(start).Round(time.Millisecond))
}

func soakEdge(e *edge, n int, seed uint64, half chan<- struct{}) error {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	// The test restarts the server once every edge is halfway; an edge that
	// fails before that must still count, or the test waits forever
	// instead of failing.
	halfway := false
	defer func() {
		if !halfway {
			half <- struct{}{}
		}
	}()
	var own []core.ID
	for i := range n {
		m, err := e.db.Remember(ctx, core.Memory{ProjectID: e.project, Content: fmt.Sprintf("%s memory %d", e.db.Device(), i), Embedding: vec(), EmbeddingModel: "test"})
		if err != nil {
			return err
		}
		own = append(own, m.ID)
		if i%15 == 7 {
			id := own[rng.IntN(len(own))]
			if cur, err := e.db.Memory(ctx, id); err == nil {
				next := map[core.State]core.State{core.StateUnconsolidated: core.StateConsolidating, core.StateConsolidating: core.StateConsolidated}[cur.State]
				if next != "" {
					if _, err := e.db.SetState(ctx, id, next, ""); err != nil {
						return err
					}
				}
			}
		}
		if i%10 == 3 { // an access bump on any memory this edge knows, pulled ones included
			all, err := e.db.Memories(ctx, core.MemoryFilter{ProjectID: e.project})
			if err != nil {
				return err
			}
			if _, err := e.db.RecordAccess(ctx, all[rng.IntN(len(all))].ID); err != nil {
				return err
			}
		}
		if i%25 == 24 {
			if _, err := e.client.Sync(ctx); err != nil && !edgesync.Retryable(err) {
				return fmt.Errorf("%s: %w", e.db.Device(), err)
			}
		}
		if i == n/2 {
			half <- struct{}{}
			halfway = true
		}
	}
	return nil
}
