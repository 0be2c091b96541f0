package pgadapter

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// dataset is the shared benchmark dataset (../shared/bench/datagen).
type dataset struct {
	N, Q, Dim, K int
	docs, qs     [][]float32
	dtext, qtext []string
	truth        [][]int32
}

func readF32(tb testing.TB, path string, rows, dim int) [][]float32 {
	b, err := os.ReadFile(path)
	require.NoError(tb, err)
	require.Equal(tb, rows*dim*4, len(b))
	out := make([][]float32, rows)
	for i := range out {
		v := make([]float32, dim)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[(i*dim+j)*4:]))
		}
		out[i] = v
	}
	return out
}

func readLines(tb testing.TB, path string) []string {
	f, err := os.Open(path)
	require.NoError(tb, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	require.NoError(tb, sc.Err())
	return out
}

func loadDataset(tb testing.TB, dir string) *dataset {
	var meta struct{ N, Q, Dim, K int }
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	require.NoError(tb, err)
	require.NoError(tb, json.Unmarshal(b, &meta))
	d := &dataset{N: meta.N, Q: meta.Q, Dim: meta.Dim, K: meta.K}
	d.docs = readF32(tb, filepath.Join(dir, "docs.f32"), d.N, d.Dim)
	d.qs = readF32(tb, filepath.Join(dir, "queries.f32"), d.Q, d.Dim)
	d.dtext = readLines(tb, filepath.Join(dir, "docs.txt"))
	d.qtext = readLines(tb, filepath.Join(dir, "queries.txt"))
	tb2, err := os.ReadFile(filepath.Join(dir, "truth.i32"))
	require.NoError(tb, err)
	for q := range d.Q {
		row := make([]int32, d.K)
		for j := range row {
			row[j] = int32(binary.LittleEndian.Uint32(tb2[(q*d.K+j)*4:]))
		}
		d.truth = append(d.truth, row)
	}
	return d
}

func p50(ds []time.Duration) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}

// BenchmarkDataset measures the store on the dataset in
// ATHENA_BENCH_DATASET (e.g. /tmp/ds100k): bulk ingest (COPY), HNSW build,
// vector-leg p50 and recall@10 against truth.i32, hybrid p50 and
// incremental ingest through core with the index present. Run with
// -benchtime=1x: the setup dominates.
func BenchmarkDataset(b *testing.B) {
	dir := os.Getenv("ATHENA_BENCH_DATASET")
	if dir == "" {
		b.Skip("ATHENA_BENCH_DATASET is not set")
	}
	ctx := context.Background()
	d := loadDataset(b, dir)
	s := openTest(b, func(c *Config) { c.MaxConns = 4 })
	db := core.New(s, core.Config{Device: "bench"})
	p, err := db.CreateProject(ctx, core.Project{Name: "bench", Path: "/bench", EmbeddingModel: "m", EmbeddingDim: d.Dim})
	require.NoError(b, err)
	now := time.Now().UTC().Truncate(time.Millisecond)
	ms := make([]core.Memory, d.N)
	ids := make([]core.ID, d.N)
	for i := range ms {
		ids[i] = core.NewID(now)
		ms[i] = core.Memory{ID: ids[i], ProjectID: p.ID, Content: d.dtext[i], Embedding: d.docs[i], EmbeddingModel: "m",
			MemoryType: core.TypeFact, Domain: "memory", Tags: []string{}, State: core.StateUnconsolidated, Usefulness: 0.5,
			Confidence: 1, QualityScore: core.Quality(0.5, 1, 0), CreatedAt: now, UpdatedAt: now}
	}
	require.NoError(b, s.DropIndexes(ctx))
	start := time.Now()
	for c := range slices.Chunk(ms, 10000) {
		require.NoError(b, s.BulkLoad(ctx, c))
	}
	ingest := time.Since(start)
	start = time.Now()
	require.NoError(b, s.BuildIndexes(ctx))
	build := time.Since(start)
	_, err = s.pool.Exec(ctx, "VACUUM ANALYZE memories")
	require.NoError(b, err)
	b.Logf("n=%d bulk ingest %.0f docs/s (%s), index build %.1f s", d.N, float64(d.N)/ingest.Seconds(), ingest, build.Seconds())

	b.Run("ingest", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(float64(d.N)/ingest.Seconds(), "docs/s")
		b.ReportMetric(build.Seconds(), "index_build_s")
	})
	b.Run("vector", func(b *testing.B) {
		var lat []time.Duration
		hits, total := 0, 0
		for b.Loop() {
			for qi, q := range d.qs {
				t0 := time.Now()
				var got []core.Candidate
				require.NoError(b, s.View(ctx, func(r core.ReadTx) error {
					var err error
					got, err = r.VectorLeg(ctx, core.VectorLeg{Vector: q, K: 10, Filter: core.MemoryFilter{ProjectID: p.ID, States: core.LiveStates()}})
					return err
				}))
				lat = append(lat, time.Since(t0))
				want := map[core.ID]bool{}
				for _, i := range d.truth[qi][:10] {
					want[ids[i]] = true
				}
				for _, c := range got {
					if want[c.ID] {
						hits++
					}
				}
				total += 10
			}
		}
		b.ReportMetric(p50(lat), "p50_ms")
		b.ReportMetric(float64(hits)/float64(total), "recall@10")
	})
	b.Run("hybrid", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			for qi, q := range d.qs {
				t0 := time.Now()
				hits, err := db.Search(ctx, core.Query{ProjectID: p.ID, Text: d.qtext[qi], Embedding: q, K: 10})
				require.NoError(b, err)
				require.NotEmpty(b, hits)
				lat = append(lat, time.Since(t0))
			}
		}
		b.ReportMetric(p50(lat), "p50_ms")
	})
	b.Run("incremental", func(b *testing.B) {
		const n = 2000
		var rate float64
		for b.Loop() {
			batch := make([]core.Memory, n)
			for i := range batch {
				batch[i] = core.Memory{ProjectID: p.ID, Content: d.dtext[i], Embedding: d.docs[i]}
			}
			t0 := time.Now()
			res, err := db.RememberBatch(ctx, batch)
			require.NoError(b, err)
			require.Len(b, res, n)
			rate = n / time.Since(t0).Seconds()
		}
		b.ReportMetric(rate, "docs/s")
	})
}
