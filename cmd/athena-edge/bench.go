package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/athena-edge/athena-edge/hosts/native"
)

func benchCommand() *command {
	var (
		store, dataset string
		n, q, dim      int
		batch, loaders int
	)
	return &command{
		name:    "bench",
		summary: "measure a store: ingest rate, vector and hybrid p50/p99, recall@10, open time, peak RSS, machine CPU shares",
		usage:   "--store sqlite|postgres (--dataset DIR | --n N [--dim 768]) [--queries Q] [--batch 1000] [--loaders N]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&store, "store", native.KindSQLite, "store to measure: sqlite or postgres (postgres from --db or the environment)")
			fs.StringVar(&dataset, "dataset", "", "a dataset directory in the format of shared/bench/datagen")
			fs.IntVar(&n, "n", 10000, "generate this many memories when no --dataset is given")
			fs.IntVar(&dim, "dim", 768, "dimension of generated memories")
			fs.IntVar(&q, "queries", 0, "queries to time (default: all of the dataset's, 200 when generating)")
			fs.IntVar(&batch, "batch", 1000, "memories per ingest transaction")
			fs.IntVar(&loaders, "loaders", 0, "concurrent bulk loads (postgres; default GOMAXPROCS, at most 4)")
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("bench takes flags only")
			}
			var d *native.Dataset
			var err error
			if dataset != "" {
				if d, err = native.LoadDataset(dataset); err != nil {
					return err
				}
			} else {
				if n < 10 || dim < 1 {
					return usageErr("--n must be ≥ 10 and --dim ≥ 1")
				}
				d = native.GenerateDataset(n, 200, dim, 42)
			}
			cfg := native.BenchConfig{Store: store, Dataset: d, Batch: batch, Loaders: loaders, Queries: q}
			if store == native.KindSQLite {
				cfg.Path = e.db // a new file, kept afterwards; a temp one if empty
			}
			if store == native.KindPostgres {
				home, _ := os.UserHomeDir()
				sel, err := native.Select(e.getenv, home, e.db)
				if err != nil {
					return err
				}
				cfg.Postgres = sel.Postgres
			}
			bar := newProgress(e.stderr, "bench", 0)
			cfg.Progress = func(stage string, done, total int) {
				bar.label, bar.total = "bench "+stage, int64(total)
				bar.set(int64(done))
			}
			r, err := native.Bench(e.ctx, cfg)
			bar.done(0)
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			if e.json {
				return printJSON(e.stdout, r)
			}
			w := e.stdout
			fmt.Fprintf(w, "store %s · n %d · dim %d · %d queries\n", r.Store, r.N, r.Dim, r.Queries)
			fmt.Fprintf(w, "ingest        %10.0f memories/s  (%s)\n", r.IngestPerS, r.IngestMode)
			if r.IndexBuildS > 0 {
				fmt.Fprintf(w, "index build   %10.1f s\n", r.IndexBuildS)
			}
			fmt.Fprintf(w, "single insert %10.2f ms p50 (%0.f/s incremental)\n", r.SingleInsertP50, r.IncrementalPerS)
			if r.IndexedPerS > 0 {
				fmt.Fprintf(w, "indexed after %10.0f memories/s  (the background indexer's HNSW inserts)\n", r.IndexedPerS)
			}
			fmt.Fprintf(w, "vector search %10.2f ms p50  %6.2f ms p99  recall@10 %.3f\n", r.VectorP50, r.VectorP99, r.RecallAt10)
			fmt.Fprintf(w, "hybrid search %10.2f ms p50  %6.2f ms p99\n", r.HybridP50, r.HybridP99)
			fmt.Fprintf(w, "open          %10.1f ms\n", r.OpenMS)
			fmt.Fprintf(w, "peak RSS      %10.1f MB\n", r.RSSMB)
			if r.CPUIngest != nil && r.CPUSearch != nil {
				fmt.Fprintf(w, "machine CPU   ingest busy %.0f%% steal %.0f%% · search busy %.0f%% steal %.0f%% (all processes)\n",
					r.CPUIngest.BusyPct, r.CPUIngest.StealPct, r.CPUSearch.BusyPct, r.CPUSearch.StealPct)
			}
			return nil
		},
	}
}
