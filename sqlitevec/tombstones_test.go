package sqlitevec_test

import (
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/sqlitevec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPurgeTombstones: purging removes old tombstones only, and a purged
// ID is then free again (the change log still holds the delete).
func TestPurgeTombstones(t *testing.T) {
	t.Parallel()
	s, err := sqlitevec.Open(t.Context(), sqlitevec.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	db := core.New(s, core.Config{Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 16})})
	ctx := t.Context()
	p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p"})
	require.NoError(t, err)
	var ids []core.ID
	for range 3 {
		m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "short-lived"})
		require.NoError(t, err)
		require.NoError(t, db.DeleteMemory(ctx, m.ID))
		ids = append(ids, m.ID)
	}
	n, err := s.PurgeTombstones(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n, "nothing is older than an hour")
	n, err = s.PurgeTombstones(ctx, time.Now().Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		for _, id := range ids {
			dead, err := r.Tombstoned(ctx, id)
			require.NoError(t, err)
			assert.False(t, dead)
		}
		return nil
	}))
	cs, err := db.Changes(ctx, 0, 100, "")
	require.NoError(t, err)
	deletes := 0
	for _, c := range cs {
		if c.Kind == core.KindMemoryDelete {
			deletes++
		}
	}
	assert.Equal(t, 3, deletes, "the change log keeps the deletes")
}
