package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/athena-edge/athena-edge/pgadapter"
)

// runOurs measures our edge store (sqlitevec) or our central store
// (pgadapter) with hosts/native.Bench, the code behind `athena-edge bench`:
// the same ingest, the same core.DB searches (vector: SemanticOnly,
// threshold off; hybrid: text + vector, default weighted fusion, default
// states), the same warm-up, percentiles and recall.
func runOurs(ctx context.Context, o opts) (Result, error) {
	r := Result{Store: o.store}
	cfg := native.BenchConfig{Dataset: o.ds, Queries: o.queries, CacheDir: native.CacheDir(), Progress: progress(o.store)}
	switch o.store {
	case storeEdge:
		cfg.Store = native.KindSQLite
		r.Desc = "athena-edge sqlitevec (edge) through core.DB: SQLite on ncruces v0.32.0 + wazero v1.12.0, durable file (WAL, synchronous=FULL)"
	case storeCentral:
		cfg.Store = native.KindPostgres
		cfg.Postgres = pgadapter.Config{DSN: o.pgURL}
		r.Desc = "athena-edge pgadapter (central) through core.DB: PostgreSQL + pgvector via pgx, HNSW built after the bulk load"
	default:
		return r, fmt.Errorf("runOurs: %s", o.store)
	}
	br, err := native.Bench(ctx, cfg)
	if err != nil {
		return r, err
	}
	r.N, r.Dim, r.Queries = br.N, br.Dim, br.Queries
	r.LoadS = float64(br.N) / br.IngestPerS
	r.IndexBuildS = br.IndexBuildS
	r.IngestPerS = float64(br.N) / (r.LoadS + r.IndexBuildS)
	r.IngestNote = fmt.Sprintf("%s; then %d single durable inserts at %.0f/s (p50 %.2f ms); reopen %.0f ms",
		br.IngestMode, min(200, br.N), br.IncrementalPerS, br.SingleInsertP50, br.OpenMS)
	r.VectorP50, r.VectorP99 = br.VectorP50, br.VectorP99
	r.HasHybrid = true
	r.HybridP50, r.HybridP99 = br.HybridP50, br.HybridP99
	r.HybridNote = "core.DB.Search: vector leg + keyword leg (BM25 over core's terms, any query term), 0.7·cosine + 0.3·BM25/max, live states"
	r.RecallAt10 = br.RecallAt10
	r.RSSMB = br.RSSMB
	r.Versions = buildVersions()
	return r, nil
}

func progress(store string) func(stage string, done, total int) {
	last := map[string]int{}
	return func(stage string, done, total int) {
		step := max(total/10, 1)
		if done == total || done-last[stage] >= step {
			last[stage] = done
			fmt.Fprintf(os.Stderr, "peerbench: %s: %s %d/%d\n", store, stage, done, total)
		}
	}
}

// buildVersions lists the module versions this binary was built with.
func buildVersions() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	s := bi.GoVersion
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/ncruces/go-sqlite3", "github.com/tetratelabs/wazero", "github.com/jackc/pgx/v5",
			"github.com/philippgille/chromem-go", "github.com/pgvector/pgvector-go":
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
			s += ", " + d.Path + " " + v
		}
	}
	return s
}
