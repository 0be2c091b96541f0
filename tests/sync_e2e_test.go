package tests

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/sqlitevec"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// e2eCutConn drops the connection after a byte budget (< 0: never).
type e2eCutConn struct {
	net.Conn
	mu   sync.Mutex
	left int64
}

func (c *e2eCutConn) take(n int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left < 0 {
		return n, true
	}
	if c.left == 0 {
		return 0, false
	}
	n = int(min(int64(n), c.left))
	c.left -= int64(n)
	return n, true
}

func (c *e2eCutConn) Read(p []byte) (int, error) {
	n, ok := c.take(len(p))
	if !ok {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p[:n])
}

func (c *e2eCutConn) Write(p []byte) (int, error) {
	n, ok := c.take(len(p))
	if !ok || n < len(p) {
		w, _ := c.Conn.Write(p[:n])
		c.Conn.Close()
		return w, net.ErrClosed
	}
	return c.Conn.Write(p)
}

type e2eEdge struct {
	db     *core.DB
	client *edgesync.Client
}

// TestSyncEndToEnd: two SQLite edges (files) and a PostgreSQL server.
// Offline conflicting edits, access bumps on both and a delete; syncs over
// connections cut at random byte offsets; a failpoint between commit and
// ack. Ends with every replica equal and each change applied once.
func TestSyncEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	central := core.New(openPG(t, nil), core.Config{Device: "server"})
	var fails atomic.Int64
	srv := edgesync.NewServer(edgesync.ServerConfig{DB: central, Rate: -1, AfterCommit: func(string, uint64) error {
		if fails.Add(1)%5 == 0 {
			return errors.New("failpoint")
		}
		return nil
	}})
	url := serveSync(t, srv)

	var cutting atomic.Bool
	cutting.Store(true)
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(3, 4))
	dialer := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, n, a)
		if err != nil {
			return nil, err
		}
		rmu.Lock()
		left := int64(-1)
		if cutting.Load() && rng.IntN(2) == 0 {
			left = 300 + rng.Int64N(20000)
		}
		rmu.Unlock()
		return &e2eCutConn{Conn: c, left: left}, nil
	}}}

	mk := func(device string) *e2eEdge {
		st, err := sqlitevec.Open(ctx, sqlitevec.Config{Path: filepath.Join(t.TempDir(), device+".db")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		db := core.New(st, core.Config{Device: device})
		tok, _, err := edgesync.CreateToken(ctx, central, "e2e", device)
		require.NoError(t, err)
		return &e2eEdge{db: db, client: edgesync.NewClient(edgesync.ClientConfig{DB: db, ServerURL: url, Token: tok,
			HTTPClient: hc, BatchSize: 4, MaxRetries: 50, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})}
	}
	a, b := mk("e2e-a"), mk("e2e-b")
	p, err := a.db.CreateProject(ctx, core.Project{Name: "e2e", Path: "/e2e", EmbeddingModel: "t", EmbeddingDim: 4})
	require.NoError(t, err)
	_, err = b.db.CreateProject(ctx, core.Project{Name: "e2e", Path: "/e2e", EmbeddingModel: "t", EmbeddingDim: 4})
	require.NoError(t, err)
	remember := func(e *e2eEdge, s string) core.ID {
		m, err := e.db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: s, Embedding: []float32{1, float32(len(s)), 0.5, -1}, EmbeddingModel: "t"})
		require.NoError(t, err)
		return m.ID
	}
	syncAll := func() {
		for _, e := range []*e2eEdge{a, b, a} {
			_, err := e.client.Sync(ctx)
			require.NoError(t, err)
		}
	}
	var ids []core.ID
	for i := range 20 {
		ids = append(ids, remember(a, "a "+string(rune('a'+i))))
		remember(b, "b "+string(rune('a'+i)))
	}
	syncAll()
	_, err = a.db.UpdateMemory(ctx, ids[0], func(m *core.Memory) error { m.Content = "a wins?"; return nil })
	require.NoError(t, err)
	_, err = b.db.UpdateMemory(ctx, ids[0], func(m *core.Memory) error { m.Content = "b wins?"; return nil })
	require.NoError(t, err)
	_, err = a.db.RecordAccess(ctx, ids[1])
	require.NoError(t, err)
	_, err = b.db.RecordAccess(ctx, ids[1], ids[1])
	require.NoError(t, err)
	require.NoError(t, a.db.DeleteMemory(ctx, ids[2]))
	_, err = b.db.UpdateMemory(ctx, ids[2], func(m *core.Memory) error { m.Content = "edited after delete"; return nil })
	require.NoError(t, err)
	syncAll()
	cutting.Store(false)
	syncAll()

	dump := func(db *core.DB) []core.Memory {
		ms, err := db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
		require.NoError(t, err)
		for i := range ms {
			ms[i].CreatedAt, ms[i].UpdatedAt, ms[i].LastAccessed, ms[i].LastRetrieved, ms[i].ConsolidatedAt =
				ms[i].CreatedAt.UTC(), ms[i].UpdatedAt.UTC(), ms[i].LastAccessed.UTC(), ms[i].LastRetrieved.UTC(), ms[i].ConsolidatedAt.UTC()
		}
		slices.SortFunc(ms, func(x, y core.Memory) int { return strings.Compare(string(x.ID), string(y.ID)) })
		return ms
	}
	want := dump(central)
	require.Len(t, want, 39)
	require.Equal(t, want, dump(a.db))
	require.Equal(t, want, dump(b.db))
	for _, e := range []*e2eEdge{a, b} {
		st, err := e.client.Status(ctx)
		require.NoError(t, err)
		require.Zero(t, st.Servers[0].Pending)
		var seqs []uint64
		var after int64
		for {
			cs, err := central.Changes(ctx, after, 1000, "")
			require.NoError(t, err)
			for _, c := range cs {
				after = c.Pos
				if c.Device == e.db.Device() {
					seqs = append(seqs, c.Seq)
				}
			}
			if len(cs) < 1000 {
				break
			}
		}
		require.Len(t, seqs, int(st.LastSeq))
		for i, s := range seqs {
			require.Equal(t, uint64(i+1), s)
		}
	}
}
