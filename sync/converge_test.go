//go:build !js

package edgesync_test

import (
	"context"
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/stretchr/testify/require"
)

// TestConvergence: two edges edit offline (conflicting content, access
// bumps on both, a state change, a delete racing an edit); after sync the
// edges and the server hold identical memories.
func TestConvergence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, edgesyncCfg())
	a, b := h.edge("edge-a"), h.edge("edge-b")
	m1, m2, m3 := a.remember("one"), a.remember("two"), a.remember("three")
	a.sync()
	b.sync()

	// Offline edits.
	_, err := a.db.UpdateMemory(ctx, m1, func(m *core.Memory) error { m.Content = "one by a"; return nil })
	require.NoError(t, err)
	_, err = b.db.UpdateMemory(ctx, m1, func(m *core.Memory) error { m.Content = "one by b"; m.Tags = []string{"b"}; return nil })
	require.NoError(t, err)
	_, err = a.db.RecordAccess(ctx, m2)
	require.NoError(t, err)
	_, err = b.db.RecordAccess(ctx, m2, m2)
	require.NoError(t, err)
	_, err = b.db.RecordAccess(ctx, m2)
	require.NoError(t, err)
	_, err = b.db.SetState(ctx, m2, core.StateConsolidating, "")
	require.NoError(t, err)
	require.NoError(t, a.db.DeleteMemory(ctx, m3))
	_, err = b.db.UpdateMemory(ctx, m3, func(m *core.Memory) error { m.Content = "three edited after delete"; return nil })
	require.NoError(t, err)
	m4 := b.remember("four, only on b")

	for range 2 {
		a.sync()
		b.sync()
	}
	want := memories(t, h.db, a.project)
	require.Equal(t, want, memories(t, a.db, a.project), "edge a vs server")
	require.Equal(t, want, memories(t, b.db, a.project), "edge b vs server")

	got := map[core.ID]core.Memory{}
	for _, m := range want {
		got[m.ID] = m
	}
	require.NotContains(t, got, m3, "the delete wins")
	require.Contains(t, got, m4)
	require.Equal(t, int64(4), got[m2].AccessCount, "per-device counters sum: 1 on a + 3 on b")
	require.Equal(t, core.StateConsolidating, got[m2].State)
	require.Contains(t, []string{"one by a", "one by b"}, got[m1].Content)
	requireExactlyOnce(t, h.db, a)
	requireExactlyOnce(t, h.db, b)
}
