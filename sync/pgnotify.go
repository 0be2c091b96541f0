//go:build !js

package edgesync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/jackc/pgx/v5"
)

// DefaultPGChannel is the LISTEN/NOTIFY channel of PGNotifier.
const DefaultPGChannel = "athena_edge_sync"

// PGNotifierConfig configures a [PGNotifier].
type PGNotifierConfig struct {
	// DSN is the PostgreSQL connection string (required): the same
	// database every serve process shares.
	DSN string
	// Channel is the NOTIFY channel (DefaultPGChannel).
	Channel string
	// Logger receives reconnects. Nil discards.
	Logger *slog.Logger
}

// PGNotifier is a Notifier over PostgreSQL LISTEN/NOTIFY, so that several
// serve processes sharing one database poke each other's edges. Each
// process holds one listening connection (reconnected with backoff) and
// one connection for NOTIFY. It is safe for concurrent use; Close stops
// its goroutine.
type PGNotifier struct {
	cfg    PGNotifierConfig
	log    *slog.Logger
	local  LocalNotifier
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex // guards send
	send *pgx.Conn
}

var _ Notifier = (*PGNotifier)(nil)

// NewPGNotifier connects, starts listening and returns the notifier.
func NewPGNotifier(ctx context.Context, cfg PGNotifierConfig) (*PGNotifier, error) {
	if cfg.DSN == "" {
		return nil, fmt.Errorf("edgesync: pg notifier: %w: DSN is required", core.ErrInvalid)
	}
	if cfg.Channel == "" {
		cfg.Channel = DefaultPGChannel
	}
	n := &PGNotifier{cfg: cfg, log: cfg.Logger}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	listen, err := n.listen(ctx)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go n.loop(lctx, listen)
	return n, nil
}

func (n *PGNotifier) listen(ctx context.Context) (*pgx.Conn, error) {
	c, err := pgx.Connect(ctx, n.cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("edgesync: pg notifier: connect: %w", err)
	}
	if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{n.cfg.Channel}.Sanitize()); err != nil {
		_ = c.Close(ctx)
		return nil, fmt.Errorf("edgesync: pg notifier: listen: %w", err)
	}
	return c, nil
}

func (n *PGNotifier) loop(ctx context.Context, c *pgx.Conn) {
	defer n.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		if c == nil {
			var err error
			if c, err = n.listen(ctx); err != nil {
				n.log.Warn("edgesync: pg notifier: reconnect failed", "err", err)
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				backoff = min(2*backoff, 10*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			// Notifications may have been missed while disconnected: wake
			// everyone (a poke is only a hint).
			n.local.wakeAll()
		}
		note, err := c.WaitForNotification(ctx)
		if err != nil {
			_ = c.Close(context.Background())
			c = nil
			if ctx.Err() != nil {
				return
			}
			continue
		}
		project, device, _ := strings.Cut(note.Payload, "\t")
		_ = n.local.Notify(ctx, core.ID(project), device)
	}
}

// Notify sends NOTIFY on the channel; every process listening (this one
// included) wakes its subscribers.
func (n *PGNotifier) Notify(ctx context.Context, project core.ID, device string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.send == nil || n.send.IsClosed() {
		c, err := pgx.Connect(ctx, n.cfg.DSN)
		if err != nil {
			return fmt.Errorf("edgesync: pg notify: %w", err)
		}
		n.send = c
	}
	if _, err := n.send.Exec(ctx, "SELECT pg_notify($1, $2)", n.cfg.Channel, string(project)+"\t"+device); err != nil {
		_ = n.send.Close(ctx)
		n.send = nil
		return fmt.Errorf("edgesync: pg notify: %w", err)
	}
	return nil
}

// Subscribe implements Notifier.
func (n *PGNotifier) Subscribe(project core.ID, exclude string) (<-chan struct{}, func()) {
	return n.local.Subscribe(project, exclude)
}

// Close stops listening and closes both connections.
func (n *PGNotifier) Close(ctx context.Context) error {
	n.cancel()
	n.wg.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	if n.send != nil {
		err = n.send.Close(ctx)
		n.send = nil
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("edgesync: pg notifier: close: %w", err)
	}
	return nil
}
