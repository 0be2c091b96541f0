package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/athena-edge/athena-edge/sqlitevec"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

const syncBenchDim = 768

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// fillEdge writes n memories to db's project, in batches of 1000: the
// first n documents (vectors and text) of the dataset in
// ATHENA_BENCH_DATASET (a shared/bench/datagen directory) when it is set,
// else n generated like datagen's (clustered unit vectors with topic
// words), so the server's HNSW index sees realistic data.
func fillEdge(t testing.TB, db *core.DB, project core.ID, n int) {
	t.Helper()
	ctx := context.Background()
	var ds *native.Dataset
	if dir := os.Getenv("ATHENA_BENCH_DATASET"); dir != "" {
		var err error
		ds, err = native.LoadDataset(dir)
		require.NoError(t, err)
		require.GreaterOrEqual(t, ds.N, n, "dataset %s is too small", dir)
		require.Equal(t, syncBenchDim, ds.Dim)
	} else {
		ds = native.GenerateDataset(n, 0, syncBenchDim, 1)
	}
	for done := 0; done < n; {
		k := min(1000, n-done)
		ms := make([]core.Memory, k)
		for i := range ms {
			ms[i] = core.Memory{ProjectID: project, Content: ds.DocText[done+i], Embedding: ds.Docs[done+i],
				EmbeddingModel: "bench", Tags: []string{"bench"}}
		}
		res, err := db.RememberBatch(ctx, ms)
		require.NoError(t, err)
		for _, r := range res {
			require.NoError(t, r.Err)
		}
		done += k
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// TestSyncBenchPostgres measures edge → PostgreSQL sync over loopback: a
// backlog of ATHENA_SYNC_BENCH_N (50,000) memories with 768-dim embeddings
// drains in one Sync; it reports throughput, the ack latency (push sent →
// ack received) p50/p99, bytes per memory, the drain time, and how the
// machine's CPU time was spent during the drain (busy, idle, stolen by
// the hypervisor: /proc/stat, Linux only). Gated by
// ATHENA_SYNC_BENCH=1 (docs/BENCHMARKS.md, "Sync"); ATHENA_SYNC_BENCH_EDGE
// = memstore (default) or sqlitevec; ATHENA_SYNC_BENCH_PIPELINE and
// _BATCH_KB override the client's pipeline depth and batch size.
func TestSyncBenchPostgres(t *testing.T) {
	if os.Getenv("ATHENA_SYNC_BENCH") == "" {
		t.Skip("set ATHENA_SYNC_BENCH=1 (and ATHENA_TEST_PG_URL)")
	}
	ctx := context.Background()
	n := envInt("ATHENA_SYNC_BENCH_N", 50_000)
	pg := openPG(t, nil)
	central := core.New(pg, core.Config{Device: "server"})
	srv := edgesync.NewServer(edgesync.ServerConfig{DB: central, Rate: -1})
	url := serveSync(t, srv)

	kind := os.Getenv("ATHENA_SYNC_BENCH_EDGE")
	var store core.Backend = memstore.New()
	if kind == "sqlitevec" {
		s, err := sqlitevec.Open(ctx, sqlitevec.Config{Path: filepath.Join(t.TempDir(), "edge.db")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		store = s
	} else {
		kind = "memstore"
	}
	db := core.New(store, core.Config{Device: "bench-edge"})
	p, err := db.CreateProject(ctx, core.Project{Name: "bench", Path: "/bench", EmbeddingModel: "bench", EmbeddingDim: syncBenchDim})
	require.NoError(t, err)
	fillStart := time.Now()
	fillEdge(t, db, p.ID, n)
	t.Logf("edge (%s) filled with %d memories in %s", kind, n, time.Since(fillStart).Round(time.Millisecond))

	tok, _, err := edgesync.CreateToken(ctx, central, "bench", "bench-edge")
	require.NoError(t, err)
	var mu sync.Mutex
	var lat []time.Duration
	cfg := edgesync.ClientConfig{DB: db, ServerURL: url, Token: tok, MaxRetries: -1,
		Pipeline: envInt("ATHENA_SYNC_BENCH_PIPELINE", 0), BatchBytes: envInt("ATHENA_SYNC_BENCH_BATCH_KB", 0) << 10,
		TestHooks: &edgesync.TestHooks{Acked: func(_ int, d time.Duration) {
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		}}}
	c := edgesync.NewClient(cfg)
	cpu0 := readCPUTicks()
	start := time.Now()
	st, err := c.Sync(ctx)
	el := time.Since(start)
	cpu := readCPUTicks().since(cpu0)
	require.NoError(t, err)
	require.Equal(t, n+1, st.Pushed)
	var count int
	require.NoError(t, central.View(ctx, func(tx *core.Tx) error {
		ms, err := tx.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
		count = len(ms)
		return err
	}))
	require.Equal(t, n, count)
	rate := float64(st.Pushed) / el.Seconds()
	pipeline, batchBytes := cfg.Pipeline, cfg.BatchBytes
	if pipeline == 0 {
		pipeline = edgesync.DefaultPipeline
	}
	if batchBytes == 0 {
		batchBytes = edgesync.DefaultBatchBytes
	}
	// The HNSW index is maintained off the ack path: how much of it the
	// background indexer did during the drain, and how long the rest
	// takes flat out (as the indexer does once writes stop).
	backlog, err := pg.IndexBacklog(ctx)
	require.NoError(t, err)
	searchDuring := vectorSearchP50(t, central, p.ID)
	t0 := time.Now()
	for {
		k, err := pg.IndexPending(ctx, 256)
		require.NoError(t, err)
		if k == 0 {
			break
		}
	}
	catchUp := time.Since(t0)
	searchAfter := vectorSearchP50(t, central, p.ID)
	fmt.Printf("sync bench: edge=%s server=postgres memories=%d drain=%.2fs throughput=%.0f/s batches=%d ack_p50=%s ack_p99=%s ack_max=%s bytes/memory=%.0f pipeline=%d batch_kb=%d index_backlog=%d index_catch_up=%.1fs vector_p50_backlog=%s vector_p50_indexed=%s %s\n",
		kind, n, el.Seconds(), rate, st.Batches, pct(lat, 50).Round(time.Millisecond), pct(lat, 99).Round(time.Millisecond),
		pct(lat, 100).Round(time.Millisecond), st.BytesPerChange(), pipeline, batchBytes>>10, backlog, catchUp.Seconds(),
		searchDuring.Round(10*time.Microsecond), searchAfter.Round(10*time.Microsecond), cpu)
}

// cpuTicks are the machine's CPU times from the first line of /proc/stat
// (Linux; zero elsewhere), in clock ticks.
type cpuTicks struct{ busy, idle, steal, total int64 }

func readCPUTicks() cpuTicks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTicks{}
	}
	var c cpuTicks
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || i >= 8 { // guest times are already in user and nice
			break
		}
		c.total += n
		switch i {
		case 3, 4: // idle, iowait
			c.idle += n
		case 7:
			c.steal += n
		default:
			c.busy += n
		}
	}
	return c
}

// cpuShare is what the machine's CPUs did over an interval.
type cpuShare struct{ busy, idle, steal, total int64 }

func (c cpuTicks) since(c0 cpuTicks) cpuShare {
	return cpuShare{c.busy - c0.busy, c.idle - c0.idle, c.steal - c0.steal, c.total - c0.total}
}

// String reports the shares of the machine's CPU time that were busy,
// idle and stolen by the hypervisor (other guests): a drain on a host
// that takes a third of the time away is not a measurement of the code.
func (s cpuShare) String() string {
	if s.total <= 0 {
		return "machine_cpu=unknown"
	}
	p := func(v int64) float64 { return 100 * float64(v) / float64(s.total) }
	return fmt.Sprintf("machine_busy=%.0f%% machine_idle=%.0f%% machine_steal=%.0f%%", p(s.busy), p(s.idle), p(s.steal))
}

// vectorSearchP50 times 9 semantic searches of random vectors on db's
// project and returns the median.
func vectorSearchP50(t *testing.T, db *core.DB, project core.ID) time.Duration {
	t.Helper()
	ds := native.GenerateDataset(0, 9, syncBenchDim, 2)
	var ts []time.Duration
	for _, q := range ds.Queries {
		start := time.Now()
		_, err := db.Search(t.Context(), core.Query{ProjectID: project, Embedding: q, K: 10, SemanticOnly: true, Threshold: -1})
		require.NoError(t, err)
		ts = append(ts, time.Since(start))
	}
	return pct(ts, 50)
}
