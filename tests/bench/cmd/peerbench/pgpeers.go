package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/athena-edge/athena-edge/core"
)

// The raw PostgreSQL peers share one shape: a fresh schema, a COPY load in
// batches of 1000 rows (one COPY each), indexes, ANALYZE, then the timed
// queries over one connection with plain pgx. The schema is dropped after.
//
//   - pgvector-exact: (id, embedding vector(dim)), no index; ORDER BY
//     embedding <=> $1 LIMIT 10 is a full scan (PostgreSQL may run it as a
//     parallel sequential scan with a top-N sort).
//   - pgvector-hnsw: the same table plus USING hnsw (embedding
//     vector_cosine_ops) WITH (m = 16, ef_construction = 64), built after
//     the load (as pgvector's README advises); hnsw.ef_search stays at its
//     default, 40.
//   - seed-sql: the seed's table shape (project, content, embedding, type,
//     consolidation state, a generated tsvector with a GIN index, btree
//     indexes on project and state, no vector index) and its queries:
//     semantic search ORDER BY cosine distance, and hybrid
//     0.7·(1 − cosine distance) + 0.3·ts_rank(tsv, plainto_tsquery(text))
//     over the project's rows filtered by state, ORDER BY score DESC
//     LIMIT 10.
const (
	copyBatch = 1000
	tsConfig  = "english" // the seed's text search configuration
)

func runPG(ctx context.Context, o opts) (r Result, err error) {
	d := o.ds
	r = Result{Store: o.store, N: d.N, Dim: d.Dim, Queries: o.queries}
	conn, err := pgx.Connect(ctx, o.pgURL)
	if err != nil {
		return r, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var pgVersion, vecVersion string
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), (SELECT extversion FROM pg_extension WHERE extname = 'vector')`).
		Scan(&pgVersion, &vecVersion); err != nil {
		return r, fmt.Errorf("versions (is pgvector installed?): %w", err)
	}
	r.Versions = fmt.Sprintf("PostgreSQL %s, pgvector %s, %s", pgVersion, vecVersion, buildVersions())
	if err := pgxvec.RegisterTypes(ctx, conn); err != nil {
		return r, err
	}
	schema := "peer_" + strings.ReplaceAll(o.store, "-", "_") + "_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema+"; SET search_path = "+schema+", public"); err != nil {
		return r, err
	}
	defer func() {
		if _, derr := conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); derr != nil && err == nil {
			err = derr
		}
	}()

	var (
		ddl, index  []string
		table       string
		cols        []string
		row         func(i int) []any
		vecSQL      string
		vecArgs     func(q int) []any
		hybSQL      string
		hybArgs     func(q int) []any
		wantIndexed bool
	)
	vecRow := func(i int) []any { return []any{int64(i), pgvector.NewVector(d.Docs[i])} }
	switch o.store {
	case storePGExact, storePGHNSW:
		table, cols, row = "items", []string{"id", "embedding"}, vecRow
		ddl = []string{fmt.Sprintf(`CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(%d) NOT NULL)`, d.Dim)}
		vecSQL = `SELECT id FROM items ORDER BY embedding <=> $1 LIMIT 10`
		vecArgs = func(q int) []any { return []any{pgvector.NewVector(d.Queries[q])} }
		r.HybridNote = "n/a: vector only (the keyword leg on PostgreSQL is the seed-sql row)"
		if o.store == storePGExact {
			r.Desc = "pgvector, exact: no index, ORDER BY embedding <=> q LIMIT 10 (sequential scan)"
		} else {
			r.Desc = "pgvector HNSW (m 16, ef_construction 64, vector_cosine_ops), default hnsw.ef_search 40"
			index = []string{`CREATE INDEX items_embedding_hnsw ON items USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)`}
			wantIndexed = true
		}
	case storeSeed:
		table = "memories"
		cols = []string{"id", "project_id", "content", "embedding", "memory_type", "consolidation_state"}
		row = func(i int) []any {
			return []any{int64(i), int32(1), d.DocText[i], pgvector.NewVector(d.Docs[i]), "fact", string(core.StateUnconsolidated)}
		}
		ddl = []string{fmt.Sprintf(`CREATE TABLE memories (
			id bigint PRIMARY KEY,
			project_id integer NOT NULL,
			content text NOT NULL,
			embedding vector(%d),
			memory_type text NOT NULL DEFAULT 'fact',
			consolidation_state text NOT NULL DEFAULT 'unconsolidated',
			created_at timestamptz NOT NULL DEFAULT now(),
			tsv tsvector GENERATED ALWAYS AS (to_tsvector('%s', content)) STORED)`, d.Dim, tsConfig),
			`CREATE INDEX memories_tsv ON memories USING gin (tsv)`,
			`CREATE INDEX memories_project ON memories (project_id)`,
			`CREATE INDEX memories_state ON memories (consolidation_state)`}
		states := make([]string, 0, len(core.LiveStates()))
		for _, s := range core.LiveStates() {
			states = append(states, string(s))
		}
		vecSQL = `SELECT id FROM memories WHERE project_id = $2 AND consolidation_state = ANY($3)
			ORDER BY embedding <=> $1 LIMIT 10`
		vecArgs = func(q int) []any { return []any{pgvector.NewVector(d.Queries[q]), int32(1), states} }
		hybSQL = `SELECT id, 0.7 * (1 - (embedding <=> $1)) + 0.3 * ts_rank(tsv, plainto_tsquery('` + tsConfig + `', $2)) AS score
			FROM memories WHERE project_id = $3 AND consolidation_state = ANY($4)
			ORDER BY score DESC LIMIT 10`
		hybArgs = func(q int) []any { return []any{pgvector.NewVector(d.Queries[q]), d.QueryText[q], int32(1), states} }
		r.HasHybrid = true
		r.Desc = "the seed's SQL: one table, generated tsvector ('" + tsConfig + "') + GIN, no vector index, filtered by project and state"
		r.HybridNote = "0.7·(1 − (embedding <=> q)) + 0.3·ts_rank(tsv, plainto_tsquery(text)), project + live states, ORDER BY score DESC LIMIT 10"
	default:
		return r, fmt.Errorf("runPG: %s", o.store)
	}
	for _, s := range ddl {
		if _, err := conn.Exec(ctx, s); err != nil {
			return r, fmt.Errorf("%s: %w", s, err)
		}
	}

	// Ingest: COPY batches, then indexes built after the load, then ANALYZE.
	start := time.Now()
	for lo := 0; lo < d.N; lo += copyBatch {
		hi := min(lo+copyBatch, d.N)
		i := lo
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i >= hi {
				return nil, nil
			}
			i++
			return row(i - 1), nil
		})
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{table}, cols, src); err != nil {
			return r, fmt.Errorf("copy: %w", err)
		}
		if hi%(copyBatch*20) == 0 || hi == d.N {
			progress(o.store)("ingest", hi, d.N)
		}
	}
	r.LoadS = time.Since(start).Seconds()
	t0 := time.Now()
	for _, s := range index {
		progress(o.store)("index", 0, 1)
		if _, err := conn.Exec(ctx, s); err != nil {
			return r, fmt.Errorf("%s: %w", s, err)
		}
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+table); err != nil {
		return r, err
	}
	r.IndexBuildS = time.Since(t0).Seconds()
	r.IngestPerS = float64(d.N) / (r.LoadS + r.IndexBuildS)
	r.IngestNote = fmt.Sprintf("COPY (binary), %d rows per COPY, then index build + ANALYZE (%.1f s)", copyBatch, r.IndexBuildS)
	if o.store == storeSeed {
		r.IngestNote = fmt.Sprintf("COPY (binary), %d rows per COPY into the indexed table (GIN + btree maintained), then ANALYZE", copyBatch)
	}

	// The plan actually used, so the table can say what ran.
	var plan strings.Builder
	rows, err := conn.Query(ctx, "EXPLAIN "+vecSQL, vecArgs(0)...)
	if err != nil {
		return r, fmt.Errorf("explain: %w", err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return r, err
		}
		plan.WriteString(line + "\n")
	}
	rows.Close()
	indexed := strings.Contains(plan.String(), "items_embedding_hnsw")
	if indexed != wantIndexed {
		return r, fmt.Errorf("vector query plan: index used = %v, want %v:\n%s", indexed, wantIndexed, plan.String())
	}
	if strings.Contains(plan.String(), "Parallel") {
		r.Desc += "; plan: parallel scan"
	}

	ids := func(sql string, args []any) ([]int32, error) {
		rows, err := conn.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var got []int32
		for rows.Next() {
			var id int64
			vals, err := rows.Values()
			if err != nil {
				return nil, err
			}
			id = vals[0].(int64)
			got = append(got, int32(id))
		}
		return got, rows.Err()
	}
	var t timer
	for qi := range o.queries + warmup {
		q := qi % o.queries
		s := time.Now()
		got, err := ids(vecSQL, vecArgs(q))
		if err != nil {
			return r, fmt.Errorf("vector query: %w", err)
		}
		dv, dh := time.Since(s), time.Duration(-1)
		if r.HasHybrid {
			s = time.Now()
			if _, err := ids(hybSQL, hybArgs(q)); err != nil {
				return r, fmt.Errorf("hybrid query: %w", err)
			}
			dh = time.Since(s)
		}
		t.add(qi, dv, dh, got, d.Truth[q])
		if qi >= warmup && (qi-warmup+1)%max(o.queries/5, 1) == 0 {
			progress(o.store)("search", qi-warmup+1, o.queries)
		}
	}
	t.fill(&r)
	return r, nil
}
