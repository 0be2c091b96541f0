//go:build !js

package edgesync_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

const testDim = 8

func newDB(device string) *core.DB {
	return core.New(memstore.New(), core.Config{Device: device})
}

// syncLogBuffer is a concurrency-safe log sink.
type syncLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness is a server DB served over httptest, with helpers for edges.
type harness struct {
	t    *testing.T
	db   *core.DB
	srv  *edgesync.Server
	ts   *httptest.Server
	logs *syncLogBuffer
	cfg  edgesync.ServerConfig

	mu      sync.Mutex
	handler http.Handler
}

func newHarness(t *testing.T, cfg edgesync.ServerConfig) *harness {
	t.Helper()
	h := &harness{t: t, db: cfg.DB, logs: &syncLogBuffer{}}
	if h.db == nil {
		h.db = newDB("server")
	}
	cfg.DB = h.db
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h.cfg = cfg
	h.srv = edgesync.NewServer(cfg)
	h.handler = h.srv
	h.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		hd := h.handler
		h.mu.Unlock()
		hd.ServeHTTP(w, r)
	}))
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.mu.Lock()
	s := h.srv
	h.mu.Unlock()
	_ = s.Shutdown(ctx)
	h.ts.CloseClientConnections()
	h.ts.Close()
}

// restart shuts the server down and starts a new one on the same DB and
// the same listener.
func (h *harness) restart() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.mu.Lock()
	old := h.srv
	h.mu.Unlock()
	require.NoError(h.t, old.Shutdown(ctx))
	ns := edgesync.NewServer(h.cfg)
	h.mu.Lock()
	h.srv, h.handler = ns, ns
	h.mu.Unlock()
}

func (h *harness) url() string {
	return "ws" + strings.TrimPrefix(h.ts.URL, "http") + edgesync.PathSync
}

func (h *harness) token(project, device string) string {
	h.t.Helper()
	tok, _, err := edgesync.CreateToken(context.Background(), h.db, project, device)
	require.NoError(h.t, err)
	return tok
}

type edge struct {
	t       *testing.T
	db      *core.DB
	project core.ID
	client  *edgesync.Client
	token   string
}

func (h *harness) edge(device string, mut ...func(*edgesync.ClientConfig)) *edge {
	h.t.Helper()
	e := &edge{t: h.t, db: newDB(device), token: h.token("proj", device)}
	p, err := e.db.CreateProject(context.Background(), core.Project{Name: "proj", Path: "/proj", EmbeddingModel: "test", EmbeddingDim: testDim})
	require.NoError(h.t, err)
	e.project = p.ID
	cfg := edgesync.ClientConfig{DB: e.db, ServerURL: h.url(), Token: e.token, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	for _, m := range mut {
		m(&cfg)
	}
	e.client = edgesync.NewClient(cfg)
	return e
}

var vecSeed atomic.Int64

func vec() []float32 {
	n := vecSeed.Add(1)
	v := make([]float32, testDim)
	for i := range v {
		v[i] = float32((n*int64(i+3))%17) + 0.5
	}
	return v
}

func (e *edge) remember(content string) core.ID {
	e.t.Helper()
	m, err := e.db.Remember(context.Background(), core.Memory{ProjectID: e.project, Content: content, Embedding: vec(), EmbeddingModel: "test"})
	require.NoError(e.t, err)
	return m.ID
}

func (e *edge) sync() edgesync.Stats {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := e.client.Sync(ctx)
	require.NoError(e.t, err)
	return st
}

// memories returns every memory of the project, comparable across replicas.
func memories(t *testing.T, db *core.DB, project core.ID) []core.Memory {
	t.Helper()
	ms, err := db.Memories(context.Background(), core.MemoryFilter{ProjectID: project})
	require.NoError(t, err)
	for i := range ms {
		ms[i].CreatedAt, ms[i].UpdatedAt = ms[i].CreatedAt.UTC(), ms[i].UpdatedAt.UTC()
	}
	slices.SortFunc(ms, func(a, b core.Memory) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return ms
}

// deviceLog returns the sequence numbers the DB recorded for device.
func deviceLog(t *testing.T, db *core.DB, device string) []uint64 {
	t.Helper()
	var out []uint64
	var after int64
	for {
		cs, err := db.Changes(context.Background(), after, 1000, "")
		require.NoError(t, err)
		for _, c := range cs {
			after = c.Pos
			if c.Device == device {
				out = append(out, c.Seq)
			}
		}
		if len(cs) < 1000 {
			return out
		}
	}
}

func lastSeq(t *testing.T, db *core.DB, device string) uint64 {
	t.Helper()
	var n uint64
	require.NoError(t, db.Backend().View(context.Background(), func(r core.ReadTx) error {
		var err error
		n, err = r.LastSeq(context.Background(), device)
		return err
	}))
	return n
}

// requireExactlyOnce checks the server holds every change of the edge's
// device once, gapless.
func requireExactlyOnce(t *testing.T, server *core.DB, e *edge) {
	t.Helper()
	want := lastSeq(t, e.db, e.db.Device())
	got := deviceLog(t, server, e.db.Device())
	require.Len(t, got, int(want), "device %s: server log length", e.db.Device())
	for i, s := range got {
		require.Equal(t, uint64(i+1), s, "device %s: server log position %d", e.db.Device(), i)
	}
}

// cutTransport returns an http.Client whose connections die after a
// random number of bytes (read + written), drawn by next.
func cutClient(next func() int64) *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &cutConn{Conn: c, left: next()}, nil
		},
	}}
}

type cutConn struct {
	net.Conn
	mu   sync.Mutex
	left int64 // < 0: never cut
}

func (c *cutConn) budget(n int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left < 0 {
		return n, true
	}
	if c.left == 0 {
		return 0, false
	}
	if int64(n) > c.left {
		n = int(c.left)
	}
	c.left -= int64(n)
	return n, true
}

func (c *cutConn) Read(p []byte) (int, error) {
	n, ok := c.budget(len(p))
	if !ok {
		c.Conn.Close()
		return 0, fmt.Errorf("cut: %w", net.ErrClosed)
	}
	return c.Conn.Read(p[:n])
}

func (c *cutConn) Write(p []byte) (int, error) {
	n, ok := c.budget(len(p))
	if !ok {
		c.Conn.Close()
		return 0, fmt.Errorf("cut: %w", net.ErrClosed)
	}
	w, err := c.Conn.Write(p[:n])
	if err == nil && n < len(p) {
		c.Conn.Close()
		return w, fmt.Errorf("cut: %w", net.ErrClosed)
	}
	return w, err
}

func edgesyncCfg() edgesync.ServerConfig {
	return edgesync.ServerConfig{RevalidateInterval: 50 * time.Millisecond, Rate: -1}
}
