package tests

import (
	"context"
	"fmt"
	"testing"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSyncPipelinedPushesPostgres: one device's push batches applied by a
// PostgreSQL server two at a time (a batch of memory changes starts while
// the one before it commits). Changes in later batches depend on earlier
// ones: the project (created in the first batch, touched in the middle),
// a memory updated, moved through states and deleted batches after its
// put. Every change must apply as it would one batch at a time: none
// rejected, every memory as on the edge.
func TestSyncPipelinedPushesPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	central := core.New(openPG(t, nil), core.Config{Device: "server"})
	srv := edgesync.NewServer(edgesync.ServerConfig{DB: central, Rate: -1})
	url := serveSync(t, srv)

	edge := core.New(memstore.New(), core.Config{Device: "pipe"})
	p, err := edge.CreateProject(ctx, core.Project{Name: "pipe", Path: "/pipe", EmbeddingModel: "t", EmbeddingDim: 4})
	require.NoError(t, err)
	var ids []core.ID
	for i := range 300 {
		m, err := edge.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("memory %d", i),
			Embedding: []float32{1, float32(i), 0.5, -1}})
		require.NoError(t, err)
		ids = append(ids, m.ID)
		switch {
		case i == 60:
			_, err = edge.TouchProject(ctx, p.ID)
			require.NoError(t, err)
		case i%10 == 9:
			// Changes to memories put a few batches back.
			old := ids[i-7]
			_, err = edge.UpdateMemory(ctx, old, func(m *core.Memory) error { m.Content += " edited"; return nil })
			require.NoError(t, err)
			_, err = edge.RecordAccess(ctx, old, ids[i-3])
			require.NoError(t, err)
			_, err = edge.SetState(ctx, ids[i-5], core.StateConsolidating, "")
			require.NoError(t, err)
			require.NoError(t, edge.DeleteMemory(ctx, ids[i-8]))
		}
	}

	tok, _, err := edgesync.CreateToken(ctx, central, "pipe", "pipe")
	require.NoError(t, err)
	c := edgesync.NewClient(edgesync.ClientConfig{DB: edge, ServerURL: url, Token: tok, BatchSize: 32, Pipeline: 2})
	_, err = c.Sync(ctx)
	require.NoError(t, err)

	var last uint64
	require.NoError(t, edge.Backend().View(ctx, func(r core.ReadTx) error {
		var err error
		last, err = r.LastSeq(ctx, "pipe")
		return err
	}))
	var logged uint64
	for after := int64(0); ; {
		cs, err := central.Changes(ctx, after, 500, "")
		require.NoError(t, err)
		if len(cs) == 0 {
			break
		}
		for _, ch := range cs {
			after = ch.Pos
			if ch.Device != "pipe" {
				continue
			}
			logged++
			assert.Equal(t, logged, ch.Seq, "the device's changes are logged in sequence")
			assert.NotEqual(t, core.StatusRejected, ch.Status, "%s/%d %s: %s", ch.Device, ch.Seq, ch.Kind, ch.Reason)
		}
	}
	require.Equal(t, last, logged)

	want, err := edge.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	got, err := central.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	require.Len(t, got, len(want))
	byID := map[core.ID]core.Memory{}
	for _, m := range got {
		byID[m.ID] = m
	}
	for _, w := range want {
		g, ok := byID[w.ID]
		require.True(t, ok, "memory %s", w.ID)
		assert.Equal(t, w.Content, g.Content)
		assert.Equal(t, w.State, g.State)
		assert.Equal(t, w.AccessCount, g.AccessCount)
	}
	ep, err := edge.Project(ctx, p.ID)
	require.NoError(t, err)
	cp, err := central.Project(ctx, p.ID)
	require.NoError(t, err)
	assert.True(t, ep.LastAccessed.Equal(cp.LastAccessed))
}
