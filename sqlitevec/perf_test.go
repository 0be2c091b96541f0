package sqlitevec

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// TestPerfOpenSearch measures, on an existing database built from
// $ATHENA_BENCH_DATASET (built into $ATHENA_PERF_DB first if that file does
// not exist), what a process that only opens the store and searches costs:
// open time, the legs, the candidate load, hybrid search, and peak RSS.
// The dataset itself is read only after the RSS sample.
//
//	ATHENA_BENCH_DATASET=/tmp/ds100k ATHENA_PERF_DB=/tmp/perf100k.db go test ./sqlitevec -run TestPerfOpenSearch -v
func TestPerfOpenSearch(t *testing.T) {
	path := os.Getenv("ATHENA_PERF_DB")
	if path == "" {
		t.Skip("set ATHENA_PERF_DB")
	}
	ctx := context.Background()
	if _, err := os.Stat(path); err != nil {
		d := loadDataset(t)
		dir := t.TempDir()
		b := ingestDataset(t, d, dir)
		t.Logf("ingest: %d in %v = %.0f/s", d.n, b.ingest, float64(d.n)/b.ingest.Seconds())
		require.NoError(t, b.s.Close())
		require.NoError(t, os.Rename(b.path, path))
	}
	runtime.GC()
	start := time.Now()
	s, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	defer s.Close()
	t.Logf("open: %v (index %v, %d memories)", time.Since(start), s.Stats().Index, s.Stats().Memories)
	if os.Getenv("ATHENA_PERF_REOPEN") != "" {
		t0 := time.Now()
		require.NoError(t, s.Close())
		t.Logf("close: %v", time.Since(t0))
		runtime.GC()
		start = time.Now()
		s, err = Open(ctx, Config{Path: path})
		require.NoError(t, err)
		defer s.Close()
		t.Logf("reopen: %v (index %v, %d memories, snapshot %v)", time.Since(start), s.Stats().Index, s.Stats().Memories, s.Stats().Snapshot)
	}
	db := core.New(s, core.Config{Device: "perf"})
	var ps []core.Project
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error { ps, err = r.Projects(ctx); return err }))
	var proj core.Project
	for _, p := range ps {
		if p.Name == "bench" {
			proj = p
		}
	}
	// Queries: read only the query files (small).
	dir := os.Getenv("ATHENA_BENCH_DATASET")
	qs := readF32(t, filepath.Join(dir, "queries.f32"))
	qt := readLines(t, filepath.Join(dir, "queries.txt"))
	dim := proj.EmbeddingDim
	nq := len(qt)
	query := func(i int) []float32 { return qs[i*dim : (i+1)*dim] }
	filter := core.MemoryFilter{ProjectID: proj.ID, States: core.LiveStates()}

	var vl, kl, ml, hl, sl []time.Duration
	for rep := range 3 {
		for qi := range nq {
			var cands []core.Candidate
			var kw core.KeywordResult
			t0 := time.Now()
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				var err error
				cands, err = r.VectorLeg(ctx, core.VectorLeg{Vector: query(qi), K: 50, Filter: filter})
				return err
			}))
			t1 := time.Now()
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				var err error
				kw, err = r.KeywordLeg(ctx, core.KeywordLeg{Terms: core.Terms(qt[qi]), Limit: 50, Filter: filter})
				return err
			}))
			t2 := time.Now()
			ids := make([]core.ID, 0, 100)
			for _, c := range cands {
				ids = append(ids, c.ID)
			}
			for _, c := range kw.Candidates {
				if !slices.Contains(ids, c.ID) {
					ids = append(ids, c.ID)
				}
			}
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				_, err := r.Memories(ctx, core.MemoryFilter{IDs: ids})
				return err
			}))
			t3 := time.Now()
			_, err := db.Search(ctx, core.Query{ProjectID: proj.ID, Text: qt[qi], Embedding: query(qi), K: 10})
			require.NoError(t, err)
			t4 := time.Now()
			_, err = db.Search(ctx, core.Query{ProjectID: proj.ID, Embedding: query(qi), K: 10, SemanticOnly: true, Threshold: -1})
			require.NoError(t, err)
			t5 := time.Now()
			if rep > 0 {
				vl, kl, ml, hl, sl = append(vl, t1.Sub(t0)), append(kl, t2.Sub(t1)), append(ml, t3.Sub(t2)), append(hl, t4.Sub(t3)), append(sl, t5.Sub(t4))
			}
		}
	}
	p := func(name string, ds []time.Duration) {
		t.Logf("%-22s p50 %8v p99 %8v", name, percentile(ds, 0.5).Round(time.Microsecond), percentile(ds, 0.99).Round(time.Microsecond))
	}
	p("vector leg K=50", vl)
	p("keyword leg limit=50", kl)
	p("load candidates", ml)
	p("hybrid Search", hl)
	p("vector-only Search", sl)
	t.Logf("%s (open + search only)", peakRSS())

	// Recall@10 of vector-only Search, matching hits to dataset rows by content.
	texts := readLines(t, filepath.Join(dir, "docs.txt"))
	row := make(map[string]int32, len(texts))
	for i, s := range texts {
		row[s] = int32(i)
	}
	tb, err := os.ReadFile(filepath.Join(dir, "truth.i32"))
	require.NoError(t, err)
	k := len(tb) / 4 / nq
	found := 0
	for qi := range nq {
		hits, err := db.Search(ctx, core.Query{ProjectID: proj.ID, Embedding: query(qi), K: 10, SemanticOnly: true, Threshold: -1})
		require.NoError(t, err)
		for _, h := range hits {
			r, ok := row[h.Memory.Content]
			if !ok {
				continue
			}
			for j := range 10 {
				if int32(binary.LittleEndian.Uint32(tb[4*(qi*k+j):])) == r {
					found++
				}
			}
		}
	}
	t.Logf("recall@10 (vector-only Search): %.4f", float64(found)/float64(10*nq))
	// The vector leg alone: its best 10, asked for 10 and for 50 (what
	// a hybrid search of 10 asks for).
	for _, legK := range []int{10, 50} {
		found = 0
		for qi := range nq {
			var ms []core.Memory
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				cands, err := r.VectorLeg(ctx, core.VectorLeg{Vector: query(qi), K: legK, Filter: filter})
				if err != nil {
					return err
				}
				var ids []core.ID
				for _, c := range cands[:min(10, len(cands))] {
					ids = append(ids, c.ID)
				}
				ms, err = r.Memories(ctx, core.MemoryFilter{IDs: ids})
				return err
			}))
			for _, m := range ms {
				r := row[m.Content]
				for j := range 10 {
					if int32(binary.LittleEndian.Uint32(tb[4*(qi*k+j):])) == r {
						found++
					}
				}
			}
		}
		t.Logf("recall@10 (vector leg, K=%d): %.4f", legK, float64(found)/float64(10*nq))
	}
}
