package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

func TestTombstoneCutoffAndHorizon(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name     string
		horizon  time.Duration
		caughtUp time.Time
		cutoff   time.Time
		past     bool
	}{
		{name: "keep forever", horizon: 0, caughtUp: now.Add(-1000 * day), cutoff: time.Time{}, past: false},
		{name: "negative keeps forever", horizon: -1, caughtUp: now.Add(-1000 * day), cutoff: time.Time{}, past: false},
		{name: "within", horizon: 30 * day, caughtUp: now.Add(-29 * day), cutoff: now.Add(-30*day - core.TombstoneGrace), past: false},
		{name: "at the edge", horizon: 30 * day, caughtUp: now.Add(-30 * day), cutoff: now.Add(-30*day - core.TombstoneGrace), past: false},
		{name: "past", horizon: 30 * day, caughtUp: now.Add(-30*day - time.Millisecond), cutoff: now.Add(-30*day - core.TombstoneGrace), past: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.cutoff, core.TombstoneCutoff(now, tc.horizon))
			require.Equal(t, tc.past, core.PastHorizon(tc.caughtUp, now, tc.horizon))
			// Whatever a replica within the horizon has not seen is newer
			// than anything the cutoff purges.
			if !tc.past && tc.horizon > 0 {
				require.True(t, tc.caughtUp.After(tc.cutoff))
			}
		})
	}
}

// gcStore adds core.TombstoneGC to memstore for the test (memstore keeps
// no deletion times; this wrapper keeps them).
type gcStore struct {
	*memstore.Store
	mu      sync.Mutex
	deleted map[core.ID]time.Time
	purged  []core.ID
}

func (s *gcStore) PurgeTombstones(_ context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, at := range s.deleted {
		if at.Before(before) {
			delete(s.deleted, id)
			s.purged = append(s.purged, id)
			n++
		}
	}
	return n, nil
}

func TestDBPurgeTombstones(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain := core.New(memstore.New(), core.Config{})
	require.False(t, core.CanPurgeTombstones(plain.Backend()))
	_, err := plain.PurgeTombstones(ctx, time.Now())
	require.ErrorIs(t, err, core.ErrInvalid)

	now := time.Now()
	gs := &gcStore{Store: memstore.New(), deleted: map[core.ID]time.Time{"old": now.Add(-48 * time.Hour), "new": now}}
	db := core.New(gs, core.Config{})
	require.True(t, core.CanPurgeTombstones(db.Backend()))
	at, err := db.TombstonesPurgedBefore(ctx)
	require.NoError(t, err)
	require.True(t, at.IsZero())
	n, err := db.PurgeTombstones(ctx, time.Time{})
	require.NoError(t, err)
	require.Zero(t, n, "a zero cutoff purges nothing")

	cut := core.TombstoneCutoff(now, 24*time.Hour)
	n, err = db.PurgeTombstones(ctx, cut)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []core.ID{"old"}, gs.purged)
	at, err = db.TombstonesPurgedBefore(ctx)
	require.NoError(t, err)
	require.Equal(t, cut.UnixMilli(), at.UnixMilli())

	// An older cutoff never moves the recorded one back.
	_, err = db.PurgeTombstones(ctx, cut.Add(-time.Hour))
	require.NoError(t, err)
	at, err = db.TombstonesPurgedBefore(ctx)
	require.NoError(t, err)
	require.Equal(t, cut.UnixMilli(), at.UnixMilli())
}
