//go:build !js

package edgesync_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

func TestPushAckPullRoundTrip(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesyncCfg())
	a, b := h.edge("edge-a"), h.edge("edge-b")
	ids := []core.ID{a.remember("alpha"), a.remember("beta"), a.remember("gamma")}

	st := a.sync()
	require.Equal(t, 4, st.Pushed) // project + 3 memories
	require.Equal(t, 4, st.Applied)
	require.Zero(t, st.Rejected)
	require.Greater(t, st.BytesPerChange(), 0.0)
	for _, id := range ids {
		_, err := h.db.Memory(context.Background(), id)
		require.NoError(t, err)
	}

	st = b.sync()
	require.Equal(t, 1, st.Pushed) // b's own project.put
	require.Equal(t, 1, st.Superseded+st.Applied)
	require.Equal(t, 4, st.Pulled)
	require.Equal(t, memories(t, h.db, a.project), memories(t, b.db, a.project))

	// A second sync has nothing to do but pull b's project put.
	st = a.sync()
	require.Zero(t, st.Pushed)
	require.Equal(t, 1, st.Pulled)
	st = a.sync()
	require.Zero(t, st.Pushed)
	require.Zero(t, st.Pulled)

	status, err := a.client.Status(context.Background())
	require.NoError(t, err)
	require.Len(t, status.Servers, 1)
	require.Equal(t, uint64(4), status.Servers[0].Acked)
	require.Zero(t, status.Servers[0].Pending)
	require.Equal(t, int64(1), status.Servers[0].Pulled)
	requireExactlyOnce(t, h.db, a)
	requireExactlyOnce(t, h.db, b)
}

// TestPushReadsTheOutboxInPages: the outbox is read in pages that grow
// from a few dozen changes up to the DB's MaxK, and other devices' changes
// sit between an edge's own in its log. However small MaxK is, every own
// change is pushed, once, in order.
func TestPushReadsTheOutboxInPages(t *testing.T) {
	t.Parallel()
	for _, maxK := range []int{1, 3, 1000} {
		t.Run(fmt.Sprint("MaxK ", maxK), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, edgesyncCfg())
			other := h.edge("other")
			db := core.New(memstore.New(), core.Config{Device: "small", Limits: core.Limits{MaxK: maxK}})
			small := h.edge("small", func(c *edgesync.ClientConfig) { c.DB, c.BatchSize = db, 7 })
			small.db = db
			p, err := small.db.CreateProject(t.Context(), core.Project{Name: "proj", Path: "/proj", EmbeddingModel: "test", EmbeddingDim: testDim})
			require.NoError(t, err)
			small.project = p.ID
			for round := range 3 {
				for i := range 20 {
					other.remember(fmt.Sprintf("other %d %d", round, i))
					small.remember(fmt.Sprintf("small %d %d", round, i))
				}
				other.sync()
				small.sync() // pulls other's changes between its own
			}
			small.sync()
			require.Equal(t, memories(t, small.db, small.project), memories(t, h.db, small.project))
			var want []uint64
			for s := range uint64(61) { // the project and 60 memories
				want = append(want, s+1)
			}
			require.Equal(t, want, deviceLog(t, h.db, "small"))
		})
	}
}
