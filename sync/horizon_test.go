//go:build !js

package edgesync_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// purgingStore is memstore with core.TombstoneGC, so the server enforces
// the horizon (memstore keeps no deletion times; purging is a no-op here,
// the PostgreSQL purge is tested in tests/).
type purgingStore struct{ *memstore.Store }

func (purgingStore) PurgeTombstones(context.Context, time.Time) (int, error) { return 0, nil }

// TestTombstoneHorizon: an edge that has not caught up within the horizon
// is refused (ErrResyncRequired, not retried, nothing recorded); an edge
// that keeps syncing is not; a store that keeps tombstones forever, or a
// negative horizon, never refuses.
func TestTombstoneHorizon(t *testing.T) {
	t.Parallel()
	const horizon = 48 * time.Hour
	tests := []struct {
		name    string
		store   core.Backend
		horizon time.Duration
		refused bool
	}{
		{name: "enforced", store: purgingStore{memstore.New()}, horizon: horizon, refused: true},
		{name: "keep forever", store: purgingStore{memstore.New()}, horizon: -1, refused: false},
		{name: "store keeps tombstones forever", store: memstore.New(), horizon: horizon, refused: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var skew atomic.Int64
			cfg := edgesyncCfg()
			cfg.DB = core.New(tc.store, core.Config{Device: "server"})
			cfg.TombstoneHorizon = tc.horizon
			cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
			h := newHarness(t, cfg)
			stale := h.edge("stale", func(c *edgesync.ClientConfig) { c.MaxRetries = -1 })
			fresh := h.edge("fresh")
			stale.remember("before")
			stale.sync()
			fresh.remember("fresh 1")
			fresh.sync()

			skew.Store(int64(horizon - time.Hour)) // within the horizon: still fine
			fresh.remember("fresh 2")
			fresh.sync()
			skew.Store(int64(horizon + time.Hour)) // past it for stale, not for fresh (it caught up an hour ago, server time)
			fresh.remember("fresh 3")
			fresh.sync()

			stale.remember("after a long time offline")
			_, err := stale.client.Sync(context.Background())
			if !tc.refused {
				require.NoError(t, err)
				requireExactlyOnce(t, h.db, stale)
				return
			}
			require.ErrorIs(t, err, edgesync.ErrResyncRequired)
			require.False(t, edgesync.Retryable(err))
			var we *edgesync.Error
			require.True(t, errors.As(err, &we))
			require.Equal(t, edgesync.CodeResyncRequired, we.Code)
			require.Contains(t, we.Message, "tombstone horizon")
			require.Equal(t, []uint64{1, 2}, deviceLog(t, h.db, "stale"), "nothing after the refusal is recorded")
			requireExactlyOnce(t, h.db, fresh)
			_, err = h.srv.PurgeTombstones(context.Background())
			require.NoError(t, err)
		})
	}
}

// TestRejectedChangesKeepTheirKind: a change sync refuses (another
// project) is recorded by core.Tx.RecordRejected with its own kind and
// entity, without its payload, so the server's log stays gapless and
// traceable.
func TestRejectedChangesKeepTheirKind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, edgesyncCfg())
	e := h.edge("edge-a")
	other, err := e.db.CreateProject(ctx, core.Project{Name: "other", Path: "/other", EmbeddingModel: "test", EmbeddingDim: testDim})
	require.NoError(t, err)
	m, err := e.db.Remember(ctx, core.Memory{ProjectID: other.ID, Content: "not for this server", Embedding: vec(), EmbeddingModel: "test"})
	require.NoError(t, err)
	e.remember("for this server")
	st := e.sync()
	require.Equal(t, 2, st.Rejected)
	requireExactlyOnce(t, h.db, e)
	cs, err := h.db.Changes(ctx, 0, 100, "")
	require.NoError(t, err)
	var rejected []core.Change
	for _, c := range cs {
		require.NotEqual(t, core.Kind("sync.rejected"), c.Kind, "no placeholder kind any more")
		if c.Status == core.StatusRejected {
			rejected = append(rejected, c)
		}
	}
	require.Len(t, rejected, 2)
	require.Equal(t, core.KindProjectPut, rejected[0].Kind)
	require.Equal(t, core.KindMemoryPut, rejected[1].Kind)
	require.Equal(t, m.ID, rejected[1].EntityID)
	require.JSONEq(t, `{}`, string(rejected[1].Payload))
	require.Contains(t, rejected[1].Reason, "project_id")
}
