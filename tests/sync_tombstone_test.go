package tests

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/sqlitevec"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// TestSyncTombstoneHorizon on PostgreSQL: tombstones older than the horizon
// (plus core.TombstoneGrace) are purged by Server.PurgeTombstones; an edge
// that did not catch up within the horizon is refused with
// ErrResyncRequired, so its stale edit of the purged memory cannot
// resurrect it; an edge that keeps up syncs on, and a fresh edge pulling
// from the start still learns the delete from the change log.
func TestSyncTombstoneHorizon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const horizon = 7 * 24 * time.Hour
	central := core.New(openPG(t, nil), core.Config{Device: "server"})
	require.True(t, core.CanPurgeTombstones(central.Backend()))
	var shift atomic.Int64
	srv := edgesync.NewServer(edgesync.ServerConfig{DB: central, Rate: -1, TombstoneHorizon: horizon,
		Now: func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }})
	url := serveSync(t, srv)
	type edge struct {
		db *core.DB
		c  *edgesync.Client
	}
	var project core.ID
	mk := func(name string) edge {
		st := openSQLite(t, sqlitevec.Config{Path: filepath.Join(t.TempDir(), name+".db")})
		db := core.New(st, core.Config{Device: name})
		p, err := db.CreateProject(ctx, core.Project{Name: "tomb", Path: "/tomb", EmbeddingModel: "t", EmbeddingDim: 4})
		require.NoError(t, err)
		project = p.ID
		tok, _, err := edgesync.CreateToken(ctx, central, "tomb", name)
		require.NoError(t, err)
		return edge{db: db, c: edgesync.NewClient(edgesync.ClientConfig{DB: db, ServerURL: url, Token: tok, MaxRetries: -1})}
	}
	sync := func(e edge) error {
		_, err := e.c.Sync(ctx)
		return err
	}
	a, stale := mk("tomb-a"), mk("tomb-stale")
	m, err := a.db.Remember(ctx, core.Memory{ProjectID: project, Content: "to be deleted", Embedding: []float32{1, 2, 3, 4}, EmbeddingModel: "t"})
	require.NoError(t, err)
	require.NoError(t, sync(a))
	require.NoError(t, sync(stale)) // stale now holds the memory, then goes offline
	require.NoError(t, a.db.DeleteMemory(ctx, m.ID))
	require.NoError(t, sync(a))
	dead := func() bool {
		var d bool
		require.NoError(t, central.Backend().View(ctx, func(r core.ReadTx) error {
			var err error
			d, err = r.Tombstoned(ctx, m.ID)
			return err
		}))
		return d
	}
	require.True(t, dead())

	// Within the horizon nothing is purged.
	n, err := srv.PurgeTombstones(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.True(t, dead())

	// Past it: a is still syncing (it catches up after the shift), stale
	// is not.
	shift.Store(int64(horizon + core.TombstoneGrace + time.Minute))
	require.NoError(t, sync(a))
	n, err = srv.PurgeTombstones(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.False(t, dead())
	purged, err := central.TombstonesPurgedBefore(ctx)
	require.NoError(t, err)
	require.False(t, purged.IsZero())

	// The stale edge edits the memory it still holds: refused, not resurrected.
	_, err = stale.db.UpdateMemory(ctx, m.ID, func(mm *core.Memory) error { mm.Content = "stale edit"; return nil })
	require.NoError(t, err)
	err = sync(stale)
	require.ErrorIs(t, err, edgesync.ErrResyncRequired)
	_, err = central.Memory(ctx, m.ID)
	require.ErrorIs(t, err, core.ErrNotFound, "the purged memory stays deleted")

	// A new edge starts from scratch: it learns the delete from the log.
	fresh := mk("tomb-fresh")
	require.NoError(t, sync(fresh))
	_, err = fresh.db.Memory(ctx, m.ID)
	require.ErrorIs(t, err, core.ErrNotFound)
	var tomb bool
	require.NoError(t, fresh.db.Backend().View(ctx, func(r core.ReadTx) error {
		var err error
		tomb, err = r.Tombstoned(ctx, m.ID)
		return err
	}))
	require.True(t, tomb)
	fresh2, err := fresh.db.Remember(ctx, core.Memory{ProjectID: project, Content: "after the purge", Embedding: []float32{4, 3, 2, 1}, EmbeddingModel: "t"})
	require.NoError(t, err)
	require.NoError(t, sync(fresh))
	_, err = central.Memory(ctx, fresh2.ID)
	require.NoError(t, err)
}
