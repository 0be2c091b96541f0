package native

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/pgadapter"
	"github.com/athena-edge/athena-edge/sqlitevec"
)

// BenchConfig configures [Bench].
type BenchConfig struct {
	Store    string           // KindSQLite or KindPostgres
	Dataset  *Dataset         // required
	Dir      string           // SQLite: directory for the database file (a temp dir if empty)
	Path     string           // SQLite: a new database file to create and keep (overrides Dir; must not exist)
	Postgres pgadapter.Config // Postgres: the server; Bench uses (and drops) a fresh schema
	Batch    int              // memories per ingest transaction (default 1000)
	// Loaders is how many bulk loads run at once on a store that has
	// BulkLoad (Postgres); 0 means GOMAXPROCS, at most 4.
	Loaders  int
	Queries  int    // queries to time (default all of the dataset's)
	CacheDir string // wazero compilation cache
	Progress func(stage string, done, total int)
}

// BenchResult is what `athena-edge bench --json` prints.
type BenchResult struct {
	Store           string  `json:"store"`
	N               int     `json:"n"`
	Dim             int     `json:"dim"`
	IngestPerS      float64 `json:"ingest_per_s"`
	IngestMode      string  `json:"ingest_mode"`
	SingleInsertP50 float64 `json:"single_insert_p50_ms"`
	IncrementalPerS float64 `json:"incremental_ingest_per_s,omitempty"`
	VectorP50       float64 `json:"vector_p50_ms"`
	VectorP99       float64 `json:"vector_p99_ms"`
	HybridP50       float64 `json:"hybrid_p50_ms"`
	HybridP99       float64 `json:"hybrid_p99_ms"`
	RecallAt10      float64 `json:"recall_at_10"`
	OpenMS          float64 `json:"open_ms"`
	RSSMB           float64 `json:"rss_mb"`
	IndexBuildS     float64 `json:"index_build_s,omitempty"`
	// IndexedPerS is how fast a store that indexes after commit (Postgres:
	// pgadapter's indexer) moved the incremental rows into its index, timed
	// after their commits; 0 when the store indexes as it writes.
	IndexedPerS float64 `json:"indexed_per_s,omitempty"`
	Queries     int     `json:"queries"`
	// CPUIngest and CPUSearch are the machine's CPU shares while the bench
	// wrote (ingest, index build, single inserts) and while it searched;
	// nil where /proc/stat cannot be read.
	CPUIngest *CPUShare `json:"cpu_ingest,omitempty"`
	CPUSearch *CPUShare `json:"cpu_search,omitempty"`
}

// deferredIndex is a store whose writes enter the vector index after
// commit (pgadapter).
type deferredIndex interface {
	IndexPending(ctx context.Context, limit int) (int, error)
}

type bulkStore interface {
	BulkLoad(ctx context.Context, ms []core.Memory) error
	DropIndexes(ctx context.Context) error
	BuildIndexes(ctx context.Context) error
}

// bulkLoad loads batches with n concurrent BulkLoad calls (each batch is
// one transaction, on its own connection), reporting the memories loaded
// so far to progress. It stops at the first error.
func bulkLoad(ctx context.Context, bs bulkStore, batches [][]core.Memory, n int, progress func(done int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan []core.Memory)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		done  int
	)
	for range n {
		wg.Go(func() {
			for ms := range next {
				err := bs.BulkLoad(ctx, ms)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				done += len(ms)
				progress(done)
				mu.Unlock()
			}
		})
	}
feed:
	for _, ms := range batches {
		select {
		case next <- ms:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// Bench loads the dataset into a fresh store and measures it.
func Bench(ctx context.Context, cfg BenchConfig) (BenchResult, error) {
	d := cfg.Dataset
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.Queries <= 0 || cfg.Queries > d.Q {
		cfg.Queries = d.Q
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, int, int) {}
	}
	res := BenchResult{Store: cfg.Store, N: d.N, Dim: d.Dim, Queries: cfg.Queries}
	open, cleanup, err := benchOpener(ctx, &cfg)
	if err != nil {
		return res, err
	}
	defer cleanup()
	b, err := open()
	if err != nil {
		return res, err
	}
	clock := core.NewClock(core.ClockConfig{})
	db := core.New(b, core.Config{Device: "bench", Clock: clock})
	p, err := db.CreateProject(ctx, core.Project{Name: "bench", Path: "/bench", EmbeddingModel: "datagen", EmbeddingDim: d.Dim})
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	ids := make([]core.ID, d.N)

	// Ingest.
	meter := startCPUMeter()
	start := time.Now()
	if bs, ok := b.(bulkStore); ok {
		loaders := cfg.Loaders
		if loaders <= 0 {
			loaders = min(runtime.GOMAXPROCS(0), 4)
		}
		res.IngestMode = fmt.Sprintf("bulk COPY without index, %d concurrent loads of %d, then index build", loaders, cfg.Batch)
		if err := bs.DropIndexes(ctx); err != nil {
			return res, err
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		batches := make([][]core.Memory, 0, d.N/cfg.Batch+1)
		for lo := 0; lo < d.N; lo += cfg.Batch {
			hi := min(lo+cfg.Batch, d.N)
			ms := make([]core.Memory, 0, hi-lo)
			for i := lo; i < hi; i++ {
				ids[i] = core.NewID(now)
				ms = append(ms, core.Memory{ID: ids[i], ProjectID: p.ID, Content: d.DocText[i], Embedding: d.Docs[i],
					EmbeddingModel: "datagen", MemoryType: core.TypeFact, Domain: "memory", Tags: []string{}, Usefulness: 0.5,
					Confidence: 1, QualityScore: core.Quality(0.5, 1, 0), State: core.StateUnconsolidated, CreatedAt: now, UpdatedAt: now,
					Version: core.Stamp{HLC: clock.Now(), Device: "bench"}})
			}
			batches = append(batches, ms)
		}
		if err := bulkLoad(ctx, bs, batches, loaders, func(done int) { cfg.Progress("ingest", done, d.N) }); err != nil {
			return res, err
		}
		res.IngestPerS = float64(d.N) / time.Since(start).Seconds()
		t := time.Now()
		cfg.Progress("index", 0, 1)
		if err := bs.BuildIndexes(ctx); err != nil {
			return res, err
		}
		res.IndexBuildS = time.Since(t).Seconds()
	} else {
		res.IngestMode = fmt.Sprintf("core.DB.RememberBatch, %d per transaction, change log included", cfg.Batch)
		for lo := 0; lo < d.N; lo += cfg.Batch {
			hi := min(lo+cfg.Batch, d.N)
			ms := make([]core.Memory, 0, hi-lo)
			for i := lo; i < hi; i++ {
				ms = append(ms, core.Memory{ProjectID: p.ID, Content: d.DocText[i], Embedding: d.Docs[i], EmbeddingModel: "datagen"})
			}
			br, err := db.RememberBatch(ctx, ms)
			if err != nil {
				return res, fmt.Errorf("bench: ingest: %w", err)
			}
			for j, r := range br {
				if r.Err != nil {
					return res, fmt.Errorf("bench: ingest %d: %w", lo+j, r.Err)
				}
				ids[lo+j] = r.ID
			}
			cfg.Progress("ingest", hi, d.N)
		}
		res.IngestPerS = float64(d.N) / time.Since(start).Seconds()
	}

	// Single durable inserts (each its own transaction), and the
	// incremental rate they imply. They go to a second project of the same
	// dimension (same tables and indexes), so that their copies of the
	// first documents' vectors do not crowd the searched project's answers.
	xp, err := db.CreateProject(ctx, core.Project{Name: "bench-extra", Path: "/bench-extra", EmbeddingModel: "datagen", EmbeddingDim: d.Dim})
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	var single []float64
	extra := min(200, d.N)
	t0 := time.Now()
	for i := range extra {
		t := time.Now()
		if _, err := db.Remember(ctx, core.Memory{ProjectID: xp.ID, Content: "extra " + d.DocText[i], Embedding: d.Docs[i], EmbeddingModel: "datagen"}); err != nil {
			return res, fmt.Errorf("bench: single insert: %w", err)
		}
		single = append(single, ms(time.Since(t)))
	}
	res.IncrementalPerS = float64(extra) / time.Since(t0).Seconds()
	res.SingleInsertP50 = percentile(single, 50)
	if di, ok := b.(deferredIndex); ok {
		// The incremental rows wait for the index (the bench runs the store
		// without its background indexer): index them now and time it, so
		// that the searches below run on a caught-up index.
		t := time.Now()
		for {
			n, err := di.IndexPending(ctx, 256)
			if err != nil {
				return res, fmt.Errorf("bench: index: %w", err)
			}
			if n == 0 {
				break
			}
		}
		res.IndexedPerS = float64(extra) / time.Since(t).Seconds()
	}
	res.CPUIngest = meter.stop()

	// Reopen: open time includes rebuilding any in-memory index.
	if err := b.Close(); err != nil {
		return res, err
	}
	t := time.Now()
	if b, err = open(); err != nil {
		return res, err
	}
	res.OpenMS = ms(time.Since(t))
	defer b.Close()
	db = core.New(b, core.Config{Device: "bench", Clock: clock})

	index := make(map[core.ID]int32, d.N)
	for i, id := range ids {
		index[id] = int32(i)
	}
	var vec, hyb []float64
	var found, total int
	meter = startCPUMeter()
	for qi := range cfg.Queries + 5 {
		q := qi % cfg.Queries
		t := time.Now()
		hits, err := db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: d.Queries[q], K: 10, SemanticOnly: true, Threshold: -1})
		if err != nil {
			return res, fmt.Errorf("bench: vector search: %w", err)
		}
		dv := time.Since(t)
		t = time.Now()
		if _, err := db.Search(ctx, core.Query{ProjectID: p.ID, Text: d.QueryText[q], Embedding: d.Queries[q], K: 10}); err != nil {
			return res, fmt.Errorf("bench: hybrid search: %w", err)
		}
		dh := time.Since(t)
		if qi < 5 {
			continue // warm-up
		}
		vec, hyb = append(vec, ms(dv)), append(hyb, ms(dh))
		want := d.Truth[q][:min(10, len(d.Truth[q]))]
		for _, h := range hits {
			if i, ok := index[h.Memory.ID]; ok && slices.Contains(want, i) {
				found++
			}
		}
		total += len(want)
		cfg.Progress("search", qi-4, cfg.Queries)
	}
	res.CPUSearch = meter.stop()
	res.VectorP50, res.VectorP99 = percentile(vec, 50), percentile(vec, 99)
	res.HybridP50, res.HybridP99 = percentile(hyb, 50), percentile(hyb, 99)
	if total > 0 {
		res.RecallAt10 = float64(found) / float64(total)
	}
	res.RSSMB = PeakRSSMB()
	return res, nil
}

func benchOpener(ctx context.Context, cfg *BenchConfig) (open func() (core.Backend, error), cleanup func(), err error) {
	switch cfg.Store {
	case KindSQLite:
		dir, clean := cfg.Dir, func() {}
		if dir == "" {
			if dir, err = os.MkdirTemp("", "athena-bench-"); err != nil {
				return nil, nil, err
			}
			clean = func() { _ = os.RemoveAll(dir) }
		}
		path := filepath.Join(dir, "bench.db")
		if cfg.Path != "" {
			if _, err := os.Stat(cfg.Path); !errors.Is(err, fs.ErrNotExist) {
				clean()
				return nil, nil, fmt.Errorf("%w: bench --db %s: the bench creates a new database and never writes to an existing one", ErrConfig, cfg.Path)
			}
			path = cfg.Path
		}
		return func() (core.Backend, error) {
			return sqlitevec.Open(ctx, sqlitevec.Config{Path: path, CacheDir: cfg.CacheDir})
		}, clean, nil
	case KindPostgres:
		pc := cfg.Postgres
		pc.Schema = "bench_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		// Bench indexes the incremental rows itself (IndexPending), so that
		// their commits and their HNSW inserts are timed apart.
		pc.IndexInterval = -1
		drop := func() {
			s, err := pgadapter.New(context.WithoutCancel(ctx), pgadapter.Config{DSN: cfg.Postgres.DSN, Host: cfg.Postgres.Host,
				Port: cfg.Postgres.Port, DBName: cfg.Postgres.DBName, User: cfg.Postgres.User, Password: cfg.Postgres.Password})
			if err != nil {
				return
			}
			defer s.Close()
			_, _ = s.Pool().Exec(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+pc.Schema+" CASCADE")
		}
		return func() (core.Backend, error) { return pgadapter.New(ctx, pc) }, drop, nil
	}
	return nil, nil, fmt.Errorf("%w: bench --store %q (want sqlite or postgres)", ErrConfig, cfg.Store)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// PeakRSSMB returns the process's peak resident set size in MiB (VmHWM on
// Linux), or 0 where it is not available.
func PeakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
