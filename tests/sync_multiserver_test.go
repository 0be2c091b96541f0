package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	"github.com/athena-edge/athena-edge/pgadapter"
	"github.com/athena-edge/athena-edge/sqlitevec"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// openPGShared opens n pgadapter stores on one fresh schema, as n serve
// processes sharing a database would, and returns them with the schema.
func openPGShared(t *testing.T, n int) ([]*pgadapter.Store, string) {
	t.Helper()
	url := os.Getenv("ATHENA_TEST_PG_URL")
	if url == "" {
		t.Skip("ATHENA_TEST_PG_URL not set; run scripts/pg.sh or scripts/test.sh")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	out := make([]*pgadapter.Store, n)
	for i := range out {
		s, err := pgadapter.New(t.Context(), pgadapter.Config{DSN: url, Schema: schema, MinConns: 1, MaxConns: 4})
		require.NoError(t, err)
		out[i] = s
	}
	t.Cleanup(func() {
		_, _ = out[0].Pool().Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		for _, s := range out {
			_ = s.Close()
		}
	})
	return out, schema
}

type multiServer struct {
	db  *core.DB
	srv *edgesync.Server
	url string
}

type multiEdge struct {
	name   string
	db     *core.DB
	client *edgesync.Client
}

// TestSyncMultiServer: two serve processes (two Servers on two core.DBs
// with different devices) share one PostgreSQL schema, with
// LISTEN/NOTIFY between them. Edges on each write concurrently, edit the
// same memory, bump access counts and delete; an edge watching one server
// is poked by pushes to the other; after sync every edge and both servers
// hold the same data, and each edge's changes are recorded once.
func TestSyncMultiServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stores, schema := openPGShared(t, 2)
	servers := make([]*multiServer, 2)
	for i := range servers {
		db := core.New(stores[i], core.Config{Device: fmt.Sprintf("serve-%d", i+1)})
		n, err := edgesync.NewPGNotifier(ctx, edgesync.PGNotifierConfig{DSN: os.Getenv("ATHENA_TEST_PG_URL"), Channel: "sync_" + schema})
		require.NoError(t, err)
		srv := edgesync.NewServer(edgesync.ServerConfig{DB: db, Rate: -1, Notifier: n})
		t.Cleanup(func() { _ = n.Close(ctx) }) // runs after the server's shutdown
		servers[i] = &multiServer{db: db, srv: srv, url: serveSync(t, srv)}
	}
	var project core.ID
	mk := func(name string, s *multiServer, sqlite bool, mut func(*edgesync.ClientConfig)) *multiEdge {
		var st core.Backend = memstore.New()
		if sqlite {
			st = openSQLite(t, sqlitevec.Config{Path: filepath.Join(t.TempDir(), name+".db")})
		}
		db := core.New(st, core.Config{Device: name})
		p, err := db.CreateProject(ctx, core.Project{Name: "multi", Path: "/multi", EmbeddingModel: "t", EmbeddingDim: 4})
		require.NoError(t, err)
		project = p.ID
		tok, _, err := edgesync.CreateToken(ctx, servers[0].db, "multi", name) // either server: one database
		require.NoError(t, err)
		cfg := edgesync.ClientConfig{DB: db, ServerURL: s.url, Token: tok, BatchSize: 7, MaxRetries: 10,
			MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
		if mut != nil {
			mut(&cfg)
		}
		return &multiEdge{name: name, db: db, client: edgesync.NewClient(cfg)}
	}
	edges := []*multiEdge{
		mk("m-a1", servers[0], true, nil), mk("m-b1", servers[0], false, nil),
		mk("m-a2", servers[1], true, nil), mk("m-b2", servers[1], false, nil),
	}
	remember := func(e *multiEdge, s string) core.ID {
		m, err := e.db.Remember(ctx, core.Memory{ProjectID: project, Content: s, Embedding: []float32{1, float32(len(s)), 0.5, -1}, EmbeddingModel: "t"})
		require.NoError(t, err)
		return m.ID
	}
	syncAll := func(concurrent bool) {
		var wg sync.WaitGroup
		errs := make([]error, len(edges))
		for i, e := range edges {
			if !concurrent {
				_, errs[i] = e.client.Sync(ctx)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = e.client.Sync(ctx)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, edges[i].name)
		}
	}
	// Concurrent writers and pushes through both servers: the shared log
	// is commit-ordered, so concurrent pulls skip nothing.
	ids := map[string][]core.ID{}
	for round := range 4 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, e := range edges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 15 {
					id := remember(e, fmt.Sprintf("%s round %d memory %d", e.name, round, i))
					mu.Lock()
					ids[e.name] = append(ids[e.name], id)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		syncAll(true)
	}
	syncAll(false)
	// Conflicts across servers: edits of one memory on both sides, access
	// bumps on both, and a delete racing an edit.
	x, y := ids["m-a1"][0], ids["m-b2"][1]
	_, err := edges[0].db.UpdateMemory(ctx, x, func(m *core.Memory) error { m.Content = "edited via serve-1"; return nil })
	require.NoError(t, err)
	_, err = edges[2].db.UpdateMemory(ctx, x, func(m *core.Memory) error { m.Content = "edited via serve-2"; return nil })
	require.NoError(t, err)
	_, err = edges[1].db.RecordAccess(ctx, x, x)
	require.NoError(t, err)
	_, err = edges[3].db.RecordAccess(ctx, x)
	require.NoError(t, err)
	require.NoError(t, edges[3].db.DeleteMemory(ctx, y))
	_, err = edges[0].db.UpdateMemory(ctx, y, func(m *core.Memory) error { m.Content = "edited after delete"; return nil })
	require.NoError(t, err)
	syncAll(true)

	// A watcher on serve-2 is poked by a push to serve-1 (LISTEN/NOTIFY).
	watched := make(chan struct{}, 64)
	w := mk("m-w2", servers[1], false, func(c *edgesync.ClientConfig) {
		c.PollInterval = time.Hour // pulls come from pokes only
		c.Progress = func(p edgesync.Progress) {
			if p.Pulled > 0 {
				watched <- struct{}{}
			}
		}
	})
	edges = append(edges, w)
	wctx, wcancel := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- w.client.Watch(wctx) }()
	<-watched // the initial catch-up pull
	poke := remember(edges[0], "pushed to serve-1, watched on serve-2")
	_, err = edges[0].client.Sync(ctx)
	require.NoError(t, err)
	deadline := time.After(20 * time.Second)
	for found := false; !found; {
		select {
		case <-watched:
			_, err := w.db.Memory(ctx, poke)
			found = err == nil
		case <-deadline:
			t.Fatal("the watcher on serve-2 was not poked by a push to serve-1")
		}
	}
	wcancel()
	require.ErrorIs(t, <-werr, context.Canceled)
	syncAll(false)
	syncAll(false)

	dump := func(db *core.DB) []core.Memory {
		ms, err := db.Memories(ctx, core.MemoryFilter{ProjectID: project})
		require.NoError(t, err)
		for i := range ms {
			ms[i].CreatedAt, ms[i].UpdatedAt, ms[i].LastAccessed, ms[i].LastRetrieved, ms[i].ConsolidatedAt =
				ms[i].CreatedAt.UTC(), ms[i].UpdatedAt.UTC(), ms[i].LastAccessed.UTC(), ms[i].LastRetrieved.UTC(), ms[i].ConsolidatedAt.UTC()
		}
		slices.SortFunc(ms, func(a, b core.Memory) int { return strings.Compare(string(a.ID), string(b.ID)) })
		return ms
	}
	want := dump(servers[0].db)
	require.Len(t, want, 4*4*15-1+1) // every memory, minus the deleted one, plus the watched one
	require.Equal(t, want, dump(servers[1].db))
	var xm core.Memory
	for _, m := range want {
		require.NotEqual(t, y, m.ID, "the delete wins")
		if m.ID == x {
			xm = m
		}
	}
	if xm.AccessCount != 3 {
		var trail []string
		var after int64
		for {
			cs, err := servers[0].db.Changes(ctx, after, 1000, "")
			require.NoError(t, err)
			for _, c := range cs {
				after = c.Pos
				if c.EntityID == x && c.Kind != core.KindMemoryPut {
					trail = append(trail, fmt.Sprintf("%d %s/%d %s %s %s %s", c.Pos, c.Device, c.Seq, c.Kind, c.Payload, c.Status, c.Reason))
				}
			}
			if len(cs) < 1000 {
				break
			}
		}
		t.Fatalf("access counts from both servers' edges must sum to 3: %v; log of x: %s", xm.AccessByDevice, strings.Join(trail, "; "))
	}
	for _, e := range edges {
		require.Equal(t, want, dump(e.db), e.name)
		st, err := e.client.Status(ctx)
		require.NoError(t, err)
		require.Len(t, st.Servers, 1, "both servers are one server (one database): one cursor")
		require.Zero(t, st.Servers[0].Pending, e.name)
		var seqs []uint64
		var after int64
		for {
			cs, err := servers[1].db.Changes(ctx, after, 1000, "")
			require.NoError(t, err)
			for _, c := range cs {
				after = c.Pos
				if c.Device == e.name {
					seqs = append(seqs, c.Seq)
				}
			}
			if len(cs) < 1000 {
				break
			}
		}
		require.Len(t, seqs, int(st.LastSeq), e.name)
		for i, s := range seqs {
			require.Equal(t, uint64(i+1), s, e.name)
		}
	}
}
