//go:build !js

package edgesync_test

import (
	"context"
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/stretchr/testify/require"
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
