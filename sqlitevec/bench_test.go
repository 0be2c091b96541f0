package sqlitevec

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// dataset is the shared benchmark format of ../shared/bench/datagen.
type dataset struct {
	n, q, dim, k int
	docs         []float32
	texts        []string
	queries      []float32
	qtexts       []string
	truth        []int32
}

func (d *dataset) doc(i int) []float32   { return d.docs[i*d.dim : (i+1)*d.dim] }
func (d *dataset) query(i int) []float32 { return d.queries[i*d.dim : (i+1)*d.dim] }

// loadDataset reads $ATHENA_BENCH_DATASET, or skips.
func loadDataset(tb testing.TB) *dataset {
	tb.Helper()
	dir := os.Getenv("ATHENA_BENCH_DATASET")
	if dir == "" {
		tb.Skip("set ATHENA_BENCH_DATASET to a datagen directory")
	}
	var meta struct{ N, Q, Dim, K int }
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	require.NoError(tb, err)
	require.NoError(tb, json.Unmarshal(b, &meta))
	d := &dataset{n: meta.N, q: meta.Q, dim: meta.Dim, k: meta.K}
	d.docs = readF32(tb, filepath.Join(dir, "docs.f32"))
	d.queries = readF32(tb, filepath.Join(dir, "queries.f32"))
	d.texts = readLines(tb, filepath.Join(dir, "docs.txt"))
	d.qtexts = readLines(tb, filepath.Join(dir, "queries.txt"))
	tb2, err := os.ReadFile(filepath.Join(dir, "truth.i32"))
	require.NoError(tb, err)
	d.truth = make([]int32, len(tb2)/4)
	for i := range d.truth {
		d.truth[i] = int32(binary.LittleEndian.Uint32(tb2[4*i:]))
	}
	return d
}

func readF32(tb testing.TB, path string) []float32 {
	b, err := os.ReadFile(path)
	require.NoError(tb, err)
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func readLines(tb testing.TB, path string) []string {
	f, err := os.Open(path)
	require.NoError(tb, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	require.NoError(tb, sc.Err())
	return out
}

// benchDB is a dataset loaded into a store on disk.
type benchDB struct {
	path    string
	s       *Store
	db      *core.DB
	project core.Project
	ids     []core.ID // dataset index → memory ID
	ingest  time.Duration
}

// ingestDataset writes d into a new file database in batches of 1000.
func ingestDataset(tb testing.TB, d *dataset, dir string) *benchDB {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(dir, "bench.db")
	s, err := Open(ctx, Config{Path: path})
	require.NoError(tb, err)
	db := core.New(s, core.Config{Device: "bench"})
	p, err := db.CreateProject(ctx, core.Project{Name: "bench", Path: "/bench", EmbeddingModel: "datagen", EmbeddingDim: d.dim})
	require.NoError(tb, err)
	b := &benchDB{path: path, s: s, db: db, project: p, ids: make([]core.ID, d.n)}
	start := time.Now()
	const batch = 1000
	for lo := 0; lo < d.n; lo += batch {
		hi := min(lo+batch, d.n)
		ms := make([]core.Memory, 0, hi-lo)
		for i := lo; i < hi; i++ {
			ms = append(ms, core.Memory{ProjectID: p.ID, Content: d.texts[i], Embedding: d.doc(i)})
		}
		res, err := db.RememberBatch(ctx, ms)
		require.NoError(tb, err)
		for i, r := range res {
			require.NoError(tb, r.Err)
			b.ids[lo+i] = r.ID
		}
	}
	b.ingest = time.Since(start)
	return b
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestBenchReport ingests $ATHENA_BENCH_DATASET, reopens it and reports
// every number the targets name. It is a measurement, not a
// timed test: it fails only on errors.
//
//	ATHENA_BENCH_DATASET=/tmp/ds100k go test ./sqlitevec -run TestBenchReport -v -timeout 30m
func TestBenchReport(t *testing.T) {
	d := loadDataset(t)
	ctx := context.Background()
	b := ingestDataset(t, d, t.TempDir())
	t.Logf("ingest: %d memories in %v = %.0f/s", d.n, b.ingest, float64(d.n)/b.ingest.Seconds())

	// Single durable inserts.
	other, err := b.db.CreateProject(ctx, core.Project{Name: "single", Path: "/single", EmbeddingModel: "datagen", EmbeddingDim: d.dim})
	require.NoError(t, err)
	var single []time.Duration
	for i := range 200 {
		start := time.Now()
		_, err := b.db.Remember(ctx, core.Memory{ProjectID: other.ID, Content: "single insert " + strconv.Itoa(i), Embedding: d.doc(i)})
		require.NoError(t, err)
		single = append(single, time.Since(start))
	}
	t.Logf("single insert: p50 %v p99 %v", percentile(single, 0.5), percentile(single, 0.99))
	require.NoError(t, b.s.Close())

	runtime.GC()
	start := time.Now()
	s, err := Open(ctx, Config{Path: b.path})
	require.NoError(t, err)
	defer s.Close()
	t.Logf("open: %v (index %v, %d memories, cache %q)", time.Since(start), s.Stats().Index, s.Stats().Memories, s.Stats().CacheDir)
	db := core.New(s, core.Config{Device: "bench"})

	idx := map[core.ID]int{}
	for i, id := range b.ids {
		idx[id] = i
	}
	filter := core.MemoryFilter{ProjectID: b.project.ID, States: core.LiveStates()}
	for _, exact := range []bool{false, true} {
		var lat []time.Duration
		hit := 0
		for qi := range d.q {
			var cands []core.Candidate
			start := time.Now()
			err := s.View(ctx, func(r core.ReadTx) error {
				var err error
				cands, err = r.VectorLeg(ctx, core.VectorLeg{Vector: d.query(qi), K: 10, Filter: filter, Exact: exact})
				return err
			})
			lat = append(lat, time.Since(start))
			require.NoError(t, err)
			truth := d.truth[qi*d.k : qi*d.k+10]
			for _, c := range cands {
				if slices.Contains(truth, int32(idx[c.ID])) {
					hit++
				}
			}
		}
		t.Logf("vector leg exact=%v: p50 %v p99 %v recall@10 %.4f", exact, percentile(lat, 0.5), percentile(lat, 0.99), float64(hit)/float64(10*d.q))
	}
	var lat []time.Duration
	for rep := range 3 {
		for qi := range d.q {
			start := time.Now()
			_, err := db.Search(ctx, core.Query{ProjectID: b.project.ID, Text: d.qtexts[qi], Embedding: d.query(qi), K: 10})
			if rep > 0 {
				lat = append(lat, time.Since(start))
			}
			require.NoError(t, err)
		}
	}
	t.Logf("hybrid: p50 %v p99 %v", percentile(lat, 0.5), percentile(lat, 0.99))
	var kl []time.Duration
	for qi := range d.q {
		start := time.Now()
		err := s.View(ctx, func(r core.ReadTx) error {
			_, err := r.KeywordLeg(ctx, core.KeywordLeg{Terms: core.Terms(d.qtexts[qi]), Limit: 50, Filter: filter})
			return err
		})
		kl = append(kl, time.Since(start))
		require.NoError(t, err)
	}
	t.Logf("keyword leg: p50 %v p99 %v", percentile(kl, 0.5), percentile(kl, 0.99))
	t.Logf("%s", peakRSS())
}

// peakRSS returns the VmHWM line of /proc/self/status (Linux), or "".
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM") {
			return line
		}
	}
	return ""
}
