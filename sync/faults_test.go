//go:build !js

package edgesync_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// TestDisconnectAtRandomOffsets cuts the edge's connection after a random
// number of bytes, many times, while it pushes and pulls: nothing is lost
// and nothing is applied twice.
func TestDisconnectAtRandomOffsets(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesyncCfg())
	rng := rand.New(rand.NewPCG(1, 2))
	var cuts atomic.Bool
	cuts.Store(true)
	next := func() int64 {
		if !cuts.Load() {
			return -1
		}
		return 200 + rng.Int64N(6000)
	}
	hc := cutClient(next)
	a := h.edge("edge-a", func(c *edgesync.ClientConfig) { c.HTTPClient = hc; c.BatchSize = 7; c.MaxRetries = -1 })
	b := h.edge("edge-b", func(c *edgesync.ClientConfig) { c.HTTPClient = hc; c.BatchSize = 5; c.MaxRetries = -1 })
	failures := 0
	for round := range 40 {
		a.remember("a memory")
		a.remember("another a memory")
		b.remember("b memory")
		for _, e := range []*edge{a, b} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := e.client.Sync(ctx)
			cancel()
			if err != nil {
				require.True(t, edgesync.Retryable(err), "round %d: %v", round, err)
				failures++
			}
		}
	}
	require.Greater(t, failures, 20, "the cuts must actually cut")
	cuts.Store(false)
	for range 2 {
		a.sync()
		b.sync()
	}
	requireExactlyOnce(t, h.db, a)
	requireExactlyOnce(t, h.db, b)
	want := memories(t, h.db, a.project)
	require.Len(t, want, 40*3)
	require.Equal(t, want, memories(t, a.db, a.project))
	require.Equal(t, want, memories(t, b.db, a.project))
}

// TestCrashBetweenCommitAndAck: the server commits, then "crashes" before
// the ack; the retry is acknowledged as duplicates and applied once.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	cfg := edgesyncCfg()
	cfg.AfterCommit = func(device string, batch uint64) error {
		if hits.Add(1)%2 == 1 { // every other batch
			return errors.New("failpoint: crash after commit")
		}
		return nil
	}
	h := newHarness(t, cfg)
	e := h.edge("edge-a", func(c *edgesync.ClientConfig) { c.BatchSize = 3; c.MaxRetries = 100 })
	for range 30 {
		e.remember("m")
	}
	st := e.sync()
	require.Positive(t, st.Retries)
	require.Positive(t, st.Duplicates)
	require.Equal(t, 31, st.Pushed)
	require.Equal(t, 31, st.Applied+st.Duplicates)
	requireExactlyOnce(t, h.db, e)
	require.Len(t, memories(t, h.db, e.project), 30)
	require.GreaterOrEqual(t, hits.Load(), int64(10))
}

// TestShutdownFinishesInFlight: Shutdown during a stream of pushes; every
// batch that committed is acknowledged or resent, and a new server on the
// same database resumes.
func TestShutdownAndRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesyncCfg())
	e := h.edge("edge-a", func(c *edgesync.ClientConfig) { c.BatchSize = 2; c.MaxRetries = -1 })
	for range 50 {
		e.remember("m")
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Sync(context.Background())
		done <- err
	}()
	h.restart()
	if err := <-done; err != nil {
		require.True(t, edgesync.Retryable(err), "%v", err)
	}
	resp, err := http.Get(h.ts.URL + edgesync.PathHealthz)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	e.sync()
	requireExactlyOnce(t, h.db, e)
	require.Len(t, memories(t, h.db, e.project), 50)
}
