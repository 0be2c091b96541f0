//go:build !js

package edgesync_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// TestWatchAcrossTwoServers: two Servers share one database and one
// notifier (as two serve processes share Postgres and LISTEN/NOTIFY). An
// edge watching through the first receives, by poke, what another edge
// pushed through the second.
func TestWatchAcrossTwoServers(t *testing.T) {
	t.Parallel()
	notifier := &edgesync.LocalNotifier{}
	shared := newDB("server")
	commits := make(chan struct{}, 100)
	h1 := newHarness(t, edgesync.ServerConfig{DB: shared, Notifier: notifier, Rate: -1, AfterCommit: signal(commits)})
	h2 := newHarness(t, edgesync.ServerConfig{DB: shared, Notifier: notifier, Rate: -1})
	testWatch(t, h1, h2, commits)
}

func signal(ch chan struct{}) func(string, uint64) error {
	return func(string, uint64) error {
		select {
		case ch <- struct{}{}:
		default:
		}
		return nil
	}
}

func testWatch(t *testing.T, h1, h2 *harness, commits chan struct{}) {
	pulled := make(chan int, 100)
	a := h1.edge("watcher", func(c *edgesync.ClientConfig) {
		c.PollInterval = time.Hour // only pokes and kicks
		c.Progress = func(p edgesync.Progress) {
			if p.Pulled > 0 {
				pulled <- p.Pulled
			}
		}
	})
	b := h2.edge("writer")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.client.Watch(ctx) }()

	id := b.remember("hello from b")
	b.sync()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := a.db.Memory(context.Background(), id); err == nil {
			break
		}
		select {
		case <-pulled:
		case <-deadline:
			t.Fatal("the watcher never pulled b's memory")
		}
	}
	// Kick pushes a local write at once.
	mine := a.remember("from the watcher")
	a.client.Kick()
	for {
		if _, err := h1.db.Memory(context.Background(), mine); err == nil {
			break
		}
		select {
		case <-commits:
		case <-deadline:
			t.Fatal("kick did not push")
		}
	}
	cancel()
	err := <-done
	require.ErrorIs(t, err, context.Canceled)
}

func TestLocalNotifier(t *testing.T) {
	t.Parallel()
	var n edgesync.LocalNotifier
	chA, stopA := n.Subscribe("p", "a")
	chB, stopB := n.Subscribe("p", "b")
	defer stopB()
	require.NoError(t, n.Notify(context.Background(), "p", "a"))
	require.NoError(t, n.Notify(context.Background(), "p", "a")) // coalesced
	require.NoError(t, n.Notify(context.Background(), "q", "c"))
	select {
	case <-chA:
		t.Fatal("a's own change must not poke a")
	default:
	}
	<-chB
	select {
	case <-chB:
		t.Fatal("pokes coalesce")
	default:
	}
	stopA()
	stopA()
}

func TestPGNotifier(t *testing.T) {
	dsn := os.Getenv("ATHENA_TEST_PG_URL")
	if dsn == "" {
		t.Skip("ATHENA_TEST_PG_URL not set")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch := "athena_edge_sync_test_" + string(core.NewID(time.Now()))[:8]
	n1, err := edgesync.NewPGNotifier(ctx, edgesync.PGNotifierConfig{DSN: dsn, Channel: ch})
	require.NoError(t, err)
	defer n1.Close(ctx)
	n2, err := edgesync.NewPGNotifier(ctx, edgesync.PGNotifierConfig{DSN: dsn, Channel: ch})
	require.NoError(t, err)
	defer n2.Close(ctx)
	sub, stop := n2.Subscribe("proj", "edge-b")
	defer stop()
	require.NoError(t, n1.Notify(ctx, "proj", "edge-a"))
	select {
	case <-sub:
	case <-ctx.Done():
		t.Fatal(errors.New("no notification through postgres"))
	}
	shared := newDB("server")
	commits := make(chan struct{}, 100)
	h1 := newHarness(t, edgesync.ServerConfig{DB: shared, Notifier: n1, Rate: -1, AfterCommit: signal(commits)})
	h2 := newHarness(t, edgesync.ServerConfig{DB: shared, Notifier: n2, Rate: -1})
	testWatch(t, h1, h2, commits)
}
