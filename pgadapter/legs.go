package pgadapter

import (
	"context"
	"fmt"
	"strconv"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/athena-edge/athena-edge/core"
)

// VectorLeg proposes the K memories nearest to leg.Vector.
//
// Approximate mode searches the dimension's HNSW index over halfvec, plus
// the rows still waiting for the indexer (indexer.go), with
// hnsw.ef_search = max(Config.EfSearch, 2K) and pgvector 0.8 iterative
// scans (relaxed order) so that filters do not starve the result, forcing
// the index with enable_seqscan = off (at 10K rows the default planner
// prefers a sequential scan), then rescores the ef_search candidates at
// full precision and keeps the best K. If that still yields fewer than K
// (the iterative scan hit hnsw.max_scan_tuples under a very selective
// filter), the leg falls back to the exact scan, so it never returns fewer
// than K when K match.
//
// Exact mode (leg.Exact, an ID filter, or a project smaller than
// Config.ExactBelow) orders the filtered rows by full-precision cosine
// distance without the index.
func (t *tx) VectorLeg(ctx context.Context, leg core.VectorLeg) ([]core.Candidate, error) {
	if leg.K <= 0 {
		if leg.K < 0 {
			return nil, fmt.Errorf("pgadapter: vector leg: %w: k %d is negative", core.ErrInvalid, leg.K)
		}
		return []core.Candidate{}, nil
	}
	dim := len(leg.Vector)
	if dim == 0 {
		return nil, fmt.Errorf("pgadapter: vector leg: %w: empty vector", core.ErrInvalid)
	}
	vec := pgvector.NewVector(leg.Vector)
	exact := leg.Exact || len(leg.Filter.IDs) > 0 || dim > maxIndexDim
	if !exact && leg.Filter.ProjectID != "" && t.s.cfg.ExactBelow > 0 {
		var docs int64
		err := t.tx.QueryRow(ctx, "SELECT coalesce((SELECT docs FROM project_stats WHERE project_id = $1), 0)", string(leg.Filter.ProjectID)).Scan(&docs)
		if err != nil {
			return nil, translate("vector leg", err)
		}
		exact = docs < int64(t.s.cfg.ExactBelow)
	}
	if !exact {
		out, err := t.approxLeg(ctx, vec, dim, &leg)
		if err != nil || len(out) >= leg.K {
			return out, err
		}
	}
	return t.exactLeg(ctx, vec, dim, &leg)
}

func (t *tx) exactLeg(ctx context.Context, vec pgvector.Vector, dim int, leg *core.VectorLeg) ([]core.Candidate, error) {
	args := []any{vec, dim}
	w := where(&leg.Filter, &args, false)
	args = append(args, leg.K)
	q := `SELECT id, 1 - (embedding <=> $1::vector) FROM memories WHERE embedding_dim = $2 AND ` + w +
		` ORDER BY embedding <=> $1::vector, id LIMIT $` + strconv.Itoa(len(args))
	out, err := t.candidates(ctx, "vector leg", nil, q, args)
	for i := range out {
		out[i].Exact = true
	}
	return out, err
}

func (t *tx) approxLeg(ctx context.Context, vec pgvector.Vector, dim int, leg *core.VectorLeg) ([]core.Candidate, error) {
	pre, q, args := approxQuery(vec, dim, leg, t.s.cfg.EfSearch)
	return t.candidates(ctx, "vector leg", pre, q, args)
}

// approxQuery is the approximate vector leg: settings to run first, then
// the query and its arguments.
func approxQuery(vec pgvector.Vector, dim int, leg *core.VectorLeg, efSearch int) (pre []string, q string, args []any) {
	ef := max(efSearch, 2*leg.K)
	ef = min(ef, 1000) // pgvector's maximum
	args = []any{vec}
	w := where(&leg.Filter, &args, false)
	args = append(args, ef, leg.K)
	d := strconv.Itoa(dim)
	q = `SELECT id, 1 - (embedding <=> $1::vector) AS score FROM (
		(SELECT id, embedding FROM memories WHERE embedding_dim = ` + d + ` AND indexed AND ` + w + `
		ORDER BY l2_normalize(embedding)::halfvec(` + d + `) <=> l2_normalize($1::vector)::halfvec(` + d + `)
		LIMIT $` + strconv.Itoa(len(args)-1) + `)
		UNION ALL
		SELECT id, embedding FROM memories WHERE embedding_dim = ` + d + ` AND NOT indexed AND ` + w + `
		) c ORDER BY embedding <=> $1::vector, id LIMIT $` + strconv.Itoa(len(args))
	pre = []string{
		"SET LOCAL hnsw.ef_search = " + strconv.Itoa(ef),
		"SET LOCAL hnsw.iterative_scan = relaxed_order",
		"SET LOCAL hnsw.max_scan_tuples = 50000",
		// Make the HNSW ordering the only cheap plan: otherwise the planner
		// may prefer a sequential or bitmap scan plus a sort (at 10K rows it
		// does), which is exact but grows with the table.
		"SET LOCAL enable_seqscan = off",
		"SET LOCAL enable_bitmapscan = off",
		"SET LOCAL enable_sort = off",
	}
	return pre, q, args
}

// candidates runs pre (settings) and q in one round trip and reads
// (id, score) rows; settings are reset afterwards in the same batch.
func (t *tx) candidates(ctx context.Context, op string, pre []string, q string, args []any) ([]core.Candidate, error) {
	b := &pgx.Batch{}
	for _, s := range pre {
		b.Queue(s)
	}
	out := []core.Candidate{}
	b.Queue(q, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var score float64
			if err := rows.Scan(&id, &score); err != nil {
				return err
			}
			out = append(out, core.Candidate{ID: core.ID(id), Score: score})
		}
		return rows.Err()
	})
	if len(pre) > 0 {
		b.Queue("RESET enable_seqscan")
		b.Queue("RESET enable_bitmapscan")
		b.Queue("RESET enable_sort")
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, translate(op, err)
	}
	return out, nil
}

// safeTerms keeps terms made only of letters and digits (what
// core.Tokenize produces), deduplicated. Anything else is dropped, so no
// user text ever reaches tsquery syntax.
func safeTerms(in []string) []string {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, s := range in {
		if s == "" || seen[s] {
			continue
		}
		ok := true
		for _, r := range s {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) {
				ok = false
				break
			}
		}
		if ok {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// KeywordLeg proposes memories containing any of leg.Terms, ranked by
// ts_rank, and returns the project's BM25 statistics: document count and
// total length from project_stats, and each term's document frequency
// counted through the GIN index. Both statements go in one round trip.
//
// Each term is quoted as a tsquery lexeme and parsed by
// to_tsquery('simple', ...), the configuration the tsvector was built
// with; terms are letters and digits only (others are dropped), so the
// quoting cannot be escaped.
func (t *tx) KeywordLeg(ctx context.Context, leg core.KeywordLeg) (core.KeywordResult, error) {
	res := core.KeywordResult{Candidates: []core.Candidate{}, Stats: core.CorpusStats{DF: map[string]int64{}}}
	if leg.Limit < 0 {
		return res, fmt.Errorf("pgadapter: keyword leg: %w: limit %d is negative", core.ErrInvalid, leg.Limit)
	}
	terms := safeTerms(leg.Terms)
	project := string(leg.Filter.ProjectID)
	b := &pgx.Batch{}
	b.Queue(`SELECT coalesce((SELECT docs FROM project_stats WHERE project_id = $1), 0),
		coalesce((SELECT total_len FROM project_stats WHERE project_id = $1), 0)`, project).QueryRow(func(r pgx.Row) error {
		return r.Scan(&res.Stats.Docs, &res.Stats.TotalLen)
	})
	if len(terms) == 0 {
		if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
			return res, translate("keyword leg", err)
		}
		return res, nil
	}
	// The GIN index answers each term first (OFFSET 0 keeps the planner
	// from scanning the project's rows and testing tsv on each one).
	b.Queue(`SELECT u.term, (SELECT count(*) FROM (SELECT m.project_id FROM memories m
			WHERE m.tsv @@ to_tsquery('simple', '''' || u.term || '''') OFFSET 0) h WHERE h.project_id = $1)
		FROM unnest($2::text[]) AS u(term)`, project, terms).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var term string
			var n int64
			if err := rows.Scan(&term, &n); err != nil {
				return err
			}
			res.Stats.DF[term] = n
		}
		return rows.Err()
	})
	if leg.Limit > 0 {
		args := []any{terms}
		w := where(&leg.Filter, &args, false)
		args = append(args, leg.Limit)
		b.Queue(`WITH q AS MATERIALIZED (SELECT to_tsquery('simple', string_agg('''' || t || '''', ' | ')) AS q FROM unnest($1::text[]) t),
			hits AS MATERIALIZED (SELECT m.*, ts_rank(m.tsv, q.q) AS r FROM memories m, q WHERE m.tsv @@ q.q)
			SELECT id, r FROM hits WHERE `+w+`
			ORDER BY r DESC, id LIMIT $`+strconv.Itoa(len(args)), args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				var r float32
				if err := rows.Scan(&id, &r); err != nil {
					return err
				}
				res.Candidates = append(res.Candidates, core.Candidate{ID: core.ID(id), Score: float64(r)})
			}
			return rows.Err()
		})
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return res, translate("keyword leg", err)
	}
	return res, nil
}
