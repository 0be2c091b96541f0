package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	"github.com/athena-edge/athena-edge/pgadapter"
	"github.com/athena-edge/athena-edge/sqlitevec"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// soakConfig sizes a soak run.
type soakConfig struct {
	edges, perEdge, projects int
	restarts                 int
	dupPct, reorderPct       int    // per push/pull frame
	cutPct                   int    // connections cut at a random byte offset
	edgeKind                 string // memstore, sqlitevec, or mixed
	limit                    time.Duration
}

// TestSyncSoak is the soak: edges write memories with state changes and
// access bumps (on pulled memories too) and sync while connections are cut
// at random byte offsets, push and pull frames are duplicated and
// reordered, and the server restarts; then faults stop, every edge syncs,
// and the run ends with 0 lost, 0 duplicated, every queue drained and
// every replica equal to the server. The server is PostgreSQL
// (ATHENA_TEST_PG_URL) or, without it, a SQLite file.
//
// By default it is the CI mini soak: 10 edges × 200 memories, one restart,
// ≤ 90 s. ATHENA_SOAK=full runs the full soak (scripts/soak.sh): 50 edges
// × 2,000 memories, 5% duplicated and 5% reordered frames, 3 restarts.
// ATHENA_SOAK_EDGES, _PER_EDGE, _PROJECTS, _RESTARTS and _EDGE (memstore,
// sqlitevec, mixed) override the size.
func TestSyncSoak(t *testing.T) {
	t.Parallel()
	cfg := soakConfig{edges: 10, perEdge: 200, projects: 1, restarts: 1, dupPct: 5, reorderPct: 5, cutPct: 30,
		edgeKind: "mixed", limit: 90 * time.Second}
	if os.Getenv("ATHENA_SOAK") == "full" {
		cfg = soakConfig{edges: 50, perEdge: 2000, projects: 5, restarts: 3, dupPct: 5, reorderPct: 5, cutPct: 20,
			edgeKind: "memstore", limit: 30 * time.Minute}
	} else if testing.Short() {
		cfg.edges, cfg.perEdge = 4, 50
	}
	cfg.edges = envInt("ATHENA_SOAK_EDGES", cfg.edges)
	cfg.perEdge = envInt("ATHENA_SOAK_PER_EDGE", cfg.perEdge)
	cfg.projects = min(envInt("ATHENA_SOAK_PROJECTS", cfg.projects), cfg.edges)
	cfg.restarts = envInt("ATHENA_SOAK_RESTARTS", cfg.restarts)
	if k := os.Getenv("ATHENA_SOAK_EDGE"); k != "" {
		cfg.edgeKind = k
	}
	runSoak(t, cfg)
}

// soakServer serves a core.DB over httptest and restarts the
// edgesync.Server on it (same listener, same database).
type soakServer struct {
	db  *core.DB
	cfg edgesync.ServerConfig
	ts  *httptest.Server

	mu  sync.Mutex
	srv *edgesync.Server
}

func (s *soakServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.ServeHTTP(w, r)
}

// restart shuts the server down and starts a new one. A graceful shutdown
// that does not finish within 10 s (many edges with batches queued on the
// database) is forced: in-flight transactions are cancelled and
// connections dropped, a harder fault that must lose nothing either. It
// reports whether the shutdown was forced.
func (s *soakServer) restart(t *testing.T) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.mu.Lock()
	old := s.srv
	s.mu.Unlock()
	err := old.Shutdown(ctx)
	if err != nil {
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	s.mu.Lock()
	s.srv = edgesync.NewServer(s.cfg)
	s.mu.Unlock()
	return err != nil
}

// frameFaults duplicates and reorders one client's push and pull frames
// (edgesync.TestHooks.Write). A held frame goes out behind the next one,
// or after a short delay when the client sends nothing else (it may be
// waiting for the answer).
type frameFaults struct {
	mu         sync.Mutex
	rng        *rand.Rand
	on         *atomic.Bool
	dup, reord int
	held       []byte
	heldWrite  func([]byte) error
	timer      *time.Timer
	dups, reds atomic.Int64
}

func (f *frameFaults) write(_ edgesync.MsgType, b []byte, write func([]byte) error) error {
	f.mu.Lock()
	if f.held != nil {
		h, hw := f.held, f.heldWrite
		f.held, f.heldWrite = nil, nil
		f.timer.Stop()
		f.mu.Unlock()
		err := write(b)
		_ = hw(h)
		return err
	}
	if !f.on.Load() {
		f.mu.Unlock()
		return write(b)
	}
	r := f.rng.IntN(100)
	switch {
	case r < f.reord:
		f.reds.Add(1)
		f.held, f.heldWrite = b, write
		f.timer = time.AfterFunc(15*time.Millisecond, func() {
			f.mu.Lock()
			h, hw := f.held, f.heldWrite
			f.held, f.heldWrite = nil, nil
			f.mu.Unlock()
			if h != nil {
				_ = hw(h)
			}
		})
		f.mu.Unlock()
		return nil
	case r < f.reord+f.dup:
		f.dups.Add(1)
		f.mu.Unlock()
		if err := write(b); err != nil {
			return err
		}
		return write(b)
	}
	f.mu.Unlock()
	return write(b)
}

type soakEdge struct {
	name    string
	db      *core.DB
	client  *edgesync.Client
	project core.ID
	faults  *frameFaults
	written []core.ID
}

func runSoak(t *testing.T, cfg soakConfig) {
	ctx := context.Background()
	start := time.Now()
	var store core.Backend
	serverKind := "postgres"
	if os.Getenv("ATHENA_TEST_PG_URL") != "" {
		store = openPG(t, func(c *pgadapter.Config) { c.MaxConns = 8 })
	} else {
		serverKind = "sqlite"
		store = openSQLite(t, sqlitevec.Config{Path: filepath.Join(t.TempDir(), "server.db")})
	}
	ss := &soakServer{db: core.New(store, core.Config{Device: "soak-server"})}
	ss.cfg = edgesync.ServerConfig{DB: ss.db, Rate: -1}
	ss.srv = edgesync.NewServer(ss.cfg)
	ss.ts = httptest.NewServer(ss)
	t.Cleanup(func() {
		ss.mu.Lock()
		srv := ss.srv
		ss.mu.Unlock()
		_ = srv.Shutdown(ctx)
		ss.ts.CloseClientConnections()
		ss.ts.Close()
	})
	url := "ws" + strings.TrimPrefix(ss.ts.URL, "http") + edgesync.PathSync

	seed := uint64(time.Now().UnixNano())
	t.Logf("soak: %d edges × %d memories, %d projects, %d restarts, %d%% dup, %d%% reorder, %d%% cut conns, %s edges, %s server, seed %d",
		cfg.edges, cfg.perEdge, cfg.projects, cfg.restarts, cfg.dupPct, cfg.reorderPct, cfg.cutPct, cfg.edgeKind, serverKind, seed)
	var faulty atomic.Bool
	faulty.Store(true)
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 1))
	var cuts atomic.Int64
	dialer := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, n, a)
		if err != nil {
			return nil, err
		}
		rmu.Lock()
		left := int64(-1)
		if faulty.Load() && rng.IntN(100) < cfg.cutPct {
			left = 300 + rng.Int64N(400_000)
			cuts.Add(1)
		}
		rmu.Unlock()
		return &e2eCutConn{Conn: c, left: left}, nil
	}}}
	t.Cleanup(hc.CloseIdleConnections)

	edges := make([]*soakEdge, cfg.edges)
	for i := range edges {
		name := fmt.Sprintf("soak-%03d", i)
		kind := cfg.edgeKind
		if kind == "mixed" {
			kind = []string{"sqlitevec", "memstore"}[i%2]
		}
		var st core.Backend = memstore.New()
		if kind == "sqlitevec" {
			st = openSQLite(t, sqlitevec.Config{Path: filepath.Join(t.TempDir(), name+".db")})
		}
		db := core.New(st, core.Config{Device: name})
		pname := fmt.Sprintf("soak-p%d", i%cfg.projects)
		p, err := db.CreateProject(ctx, core.Project{Name: pname, Path: "/" + pname, EmbeddingModel: "t", EmbeddingDim: 8})
		require.NoError(t, err)
		tok, _, err := edgesync.CreateToken(ctx, ss.db, pname, name)
		require.NoError(t, err)
		ff := &frameFaults{rng: rand.New(rand.NewPCG(seed, uint64(i)+2)), on: &faulty, dup: cfg.dupPct, reord: cfg.reorderPct}
		c := edgesync.NewClient(edgesync.ClientConfig{DB: db, ServerURL: url, Token: tok, HTTPClient: hc, BatchSize: 50,
			MaxRetries: 8, MinBackoff: 2 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			TestHooks: &edgesync.TestHooks{Write: ff.write}})
		edges[i] = &soakEdge{name: name, db: db, client: c, project: p.ID, faults: ff}
	}

	// Writers: every edge writes perEdge memories, with state changes and
	// access bumps, syncing every 25 writes; the server restarts at even
	// fractions of the total progress.
	var progress atomic.Int64
	total := int64(cfg.edges * cfg.perEdge)
	var syncErrs atomic.Int64
	errs := make(chan error, cfg.edges)
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- soakWrite(ctx, e, cfg.perEdge, seed+uint64(i), &progress, &syncErrs)
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	if os.Getenv("ATHENA_SOAK") == "full" {
		go func() { // progress for a long run
			tick := time.NewTicker(30 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					fmt.Printf("soak progress: %d/%d memories written, %s\n", progress.Load(), total, time.Since(start).Round(time.Second))
				}
			}
		}()
	}
	restarts, forced := 0, 0
	for restarts < cfg.restarts {
		target := total * int64(restarts+1) / int64(cfg.restarts+1)
		for progress.Load() < target {
			select {
			case <-done:
				target = 0
			case <-time.After(20 * time.Millisecond):
			}
		}
		if ss.restart(t) {
			forced++
		}
		restarts++
		t.Logf("soak: restart %d (forced: %d) at %d/%d memories, %s", restarts, forced, progress.Load(), total, time.Since(start).Round(time.Second))
	}
	<-done
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	writeTime := time.Since(start)

	// Faults off; two rounds: every push, then every pull.
	faulty.Store(false)
	for round := range 2 {
		var wg sync.WaitGroup
		errs := make([]error, len(edges))
		for i, e := range edges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				defer cancel()
				_, errs[i] = e.client.Sync(sctx)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "final sync round %d, %s", round, edges[i].name)
		}
	}

	// Verify: lost (written on an edge, missing on the server), duplicated
	// (a change recorded twice, or a memory with two rows), drained
	// queues, equal replicas.
	serverSeqs := map[string][]uint64{}
	var after int64
	var logLen int
	for {
		cs, err := ss.db.Changes(ctx, after, 1000, "")
		require.NoError(t, err)
		for _, c := range cs {
			after = c.Pos
			serverSeqs[c.Device] = append(serverSeqs[c.Device], c.Seq)
		}
		logLen += len(cs)
		if len(cs) < 1000 {
			break
		}
	}
	lost, dup, pending, rejected, unequal := 0, 0, 0, 0, 0
	byProject := map[core.ID][]core.Memory{}
	for _, e := range edges {
		if _, ok := byProject[e.project]; !ok {
			byProject[e.project] = soakDump(t, ss.db, e.project)
		}
		want := byProject[e.project]
		ids := make(map[core.ID]int, len(want))
		for _, m := range want {
			ids[m.ID]++
		}
		for _, id := range e.written {
			if ids[id] == 0 {
				lost++
			}
		}
		for _, n := range ids {
			dup += n - 1
		}
		st, err := e.client.Status(ctx)
		require.NoError(t, err)
		require.Len(t, st.Servers, 1)
		pending += int(st.Servers[0].Pending)
		rejected += len(st.Servers[0].Rejected)
		seqs := serverSeqs[e.name]
		for i, s := range seqs {
			if s != uint64(i+1) {
				dup++ // out of order means recorded twice (or a gap)
				break
			}
		}
		if d := len(seqs) - int(st.LastSeq); d > 0 {
			dup += d
		} else if d < 0 {
			lost -= d
		}
		if got := soakDump(t, e.db, e.project); !slices.EqualFunc(got, want, memEqual) {
			unequal++
			if unequal == 1 {
				require.Equal(t, want, got, "edge %s differs from the server", e.name)
			}
		}
	}
	memories := 0
	for _, ms := range byProject {
		memories += len(ms)
	}
	var dups, reorders int64
	for _, e := range edges {
		dups += e.faults.dups.Load()
		reorders += e.faults.reds.Load()
	}
	el := time.Since(start)
	fmt.Printf("lost=%d duplicated=%d\n", lost, dup)
	fmt.Printf("soak summary: edges=%d per_edge=%d projects=%d server=%s edge=%s memories=%d server_log=%d restarts=%d forced_restarts=%d cut_conns=%d dup_frames=%d reordered_frames=%d sync_retries_seen=%d pending=%d rejected=%d unequal_replicas=%d write_phase=%s total=%s\n",
		cfg.edges, cfg.perEdge, cfg.projects, serverKind, cfg.edgeKind, memories, logLen, restarts, forced, cuts.Load(), dups, reorders,
		syncErrs.Load(), pending, rejected, unequal, writeTime.Round(time.Millisecond), el.Round(time.Millisecond))
	require.Zero(t, lost, "lost")
	require.Zero(t, dup, "duplicated")
	require.Zero(t, pending, "queues drained")
	require.Zero(t, rejected, "nothing rejected")
	require.Zero(t, unequal, "replicas equal")
	require.Equal(t, cfg.edges*cfg.perEdge, memories)
	require.Positive(t, cuts.Load(), "connections were cut")
	require.Less(t, el, cfg.limit)
}

func memEqual(a, b core.Memory) bool {
	return a.ID == b.ID && a.Content == b.Content && a.State == b.State && a.AccessCount == b.AccessCount &&
		a.Version == b.Version && a.StateVersion == b.StateVersion && a.QualityScore == b.QualityScore &&
		a.LastAccessed.Equal(b.LastAccessed) && a.UpdatedAt.Equal(b.UpdatedAt) && slices.Equal(a.Embedding, b.Embedding) &&
		a.SupersededBy == b.SupersededBy
}

func soakDump(t *testing.T, db *core.DB, project core.ID) []core.Memory {
	t.Helper()
	var out []core.Memory
	var after core.ID
	for {
		ms, err := db.Memories(context.Background(), core.MemoryFilter{ProjectID: project, AfterID: after, Limit: 1000})
		require.NoError(t, err)
		for i := range ms {
			ms[i].CreatedAt, ms[i].UpdatedAt, ms[i].LastAccessed, ms[i].LastRetrieved, ms[i].ConsolidatedAt =
				ms[i].CreatedAt.UTC(), ms[i].UpdatedAt.UTC(), ms[i].LastAccessed.UTC(), ms[i].LastRetrieved.UTC(), ms[i].ConsolidatedAt.UTC()
		}
		out = append(out, ms...)
		if len(ms) < 1000 {
			return out
		}
		after = ms[len(ms)-1].ID
	}
}

// soakWrite is one edge's writer.
func soakWrite(ctx context.Context, e *soakEdge, n int, seed uint64, progress, syncErrs *atomic.Int64) error {
	rng := rand.New(rand.NewPCG(seed, 99))
	next := map[core.State]core.State{core.StateUnconsolidated: core.StateConsolidating, core.StateConsolidating: core.StateConsolidated}
	for i := range n {
		v := make([]float32, 8)
		for j := range v {
			v[j] = rng.Float32() + 0.01
		}
		m, err := e.db.Remember(ctx, core.Memory{ProjectID: e.project, Content: fmt.Sprintf("%s memory %d", e.name, i), Embedding: v, EmbeddingModel: "t"})
		if err != nil {
			return err
		}
		e.written = append(e.written, m.ID)
		progress.Add(1)
		if i%15 == 7 { // a state change on one of its own
			id := e.written[rng.IntN(len(e.written))]
			if cur, err := e.db.Memory(ctx, id); err == nil && next[cur.State] != "" {
				if _, err := e.db.SetState(ctx, id, next[cur.State], ""); err != nil {
					return err
				}
			}
		}
		if i%10 == 3 { // an access bump on any memory it knows, pulled ones included
			ms, err := e.db.Memories(ctx, core.MemoryFilter{ProjectID: e.project, Limit: 200, Newest: rng.IntN(2) == 0})
			if err != nil {
				return err
			}
			if _, err := e.db.RecordAccess(ctx, ms[rng.IntN(len(ms))].ID); err != nil {
				return err
			}
		}
		if i%25 == 24 || i == n-1 {
			if _, err := e.client.Sync(ctx); err != nil {
				if !edgesync.Retryable(err) {
					return fmt.Errorf("%s: %w", e.name, err)
				}
				syncErrs.Add(1)
			}
		}
	}
	return nil
}
