package pgadapter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
// prefers a sequential scan), then rescores the index's best candidates
// (rescored) at full precision and keeps the best K. If that still yields
// fewer than K (the iterative scan hit hnsw.max_scan_tuples under a very
// selective filter), the leg falls back to the exact scan, so it never
// returns fewer than K when K match.
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
	args = append(args, rescored(ef, leg.K), leg.K)
	q = `SELECT id, 1 - (embedding <=> $1::vector) AS score FROM (` + approxRows(dim, "$1", w, "$"+strconv.Itoa(len(args)-1)) + `
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

// approxRows is the approximate leg's candidate rows (id, embedding) for
// dimension dim: the limit rows of the HNSW index nearest to vec (a
// placeholder) among the indexed rows matching cond, and every row
// matching cond that waits for the indexer (indexer.go). The caller ranks
// them by exact distance.
//
// The query's half-precision form is a scalar subquery, computed once:
// PostgreSQL evaluates the ORDER BY expression again for every row the
// index returns, and in a generic plan (legsPlanMode) the query's own
// normalization was part of it, 50 times a search (about 0.4 ms of a
// 2.4 ms hybrid statement at 100K memories).
func approxRows(dim int, vec, cond, limit string) string {
	d := strconv.Itoa(dim)
	return `(SELECT id, embedding FROM memories WHERE embedding_dim = ` + d + ` AND indexed AND ` + cond + `
		ORDER BY l2_normalize(embedding)::halfvec(` + d + `) <=> (SELECT l2_normalize(` + vec + `::vector)::halfvec(` + d + `))
		LIMIT ` + limit + `)
		UNION ALL
		SELECT id, embedding FROM memories WHERE embedding_dim = ` + d + ` AND NOT indexed AND ` + cond
}

// rescored is how many of the index's candidates, in the index's
// (half-precision) order, the approximate leg rescores at full precision
// to keep the best k: at most ef, and k (at least 20) whatever ef is.
// Every candidate the index returns costs a heap fetch and the index
// expression evaluated again (PostgreSQL keeps the ORDER BY expression in
// the scan's output), and half precision misorders only near-ties, so a
// larger ef_search buys recall through the graph search without rescoring
// more. On the 100K benchmark set at ef_search 128 and k 50, recall@10
// did not change rescoring 50 instead of 100 (0.9915 and 0.9977 on two
// graphs), nor 100 instead of all 128 (0.9965), and rescoring 50 instead
// of 100 cut a vector search's p50 by about 4% (docs/BENCHMARKS.md).
func rescored(ef, k int) int { return min(ef, max(k, 20)) }

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

// safeTerms keeps the terms that are each exactly one token of
// core.Tokenize (core.IsToken), deduplicated: the keyword index holds only
// such terms, so any other string matches nothing (as at the edge). Terms
// reach PostgreSQL only as one text[] parameter, never inside query text;
// each kept term is also made only of letters, digits and combining
// marks, and at most core.MaxTokenBytes long, far below a B-tree entry's
// limit.
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
		if ok && core.IsToken(s) {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// KeywordLeg proposes memories containing any of leg.Terms, ranked by an
// estimate of BM25, and returns the project's BM25 statistics: document
// count and total length from project_stats, and each term's document
// frequency counted in the keyword index (postings). One statement
// answers, the keyword part of SearchLegs's (keywordCTEs).
func (t *tx) KeywordLeg(ctx context.Context, leg core.KeywordLeg) (core.KeywordResult, error) {
	res := core.KeywordResult{Candidates: []core.Candidate{}, Stats: core.CorpusStats{DF: map[string]int64{}}}
	if leg.Limit < 0 {
		return res, fmt.Errorf("pgadapter: keyword leg: %w: limit %d is negative", core.ErrInvalid, leg.Limit)
	}
	args := []any{string(leg.Filter.ProjectID)}
	ctes := []string{statsCTE("$1")}
	dfCols, from := "'{}'::text[], '{}'::bigint[]", "st"
	krows := "SELECT NULL::text AS id, NULL::float8 AS s WHERE false"
	if terms := safeTerms(leg.Terms); len(terms) > 0 {
		ctes = keywordCTEs(ctes, &leg, terms, "$1", &args)
		dfCols, from = "df.terms, df.counts", "st, df"
		if leg.Limit > 0 {
			krows = "SELECT id, s FROM kc"
		}
	}
	q := "WITH " + strings.Join(ctes, ",\n") + `
		SELECT st.docs, st.total_len, ` + dfCols + `, NULL::bigint, NULL::text, NULL::float8 FROM ` + from + `
		UNION ALL
		SELECT NULL, NULL, NULL, NULL, row_number() OVER (ORDER BY s DESC, id), id, s FROM (` + krows + `) k`
	var st legStats
	var kw []rankedCandidate
	b := &pgx.Batch{}
	// Planned as the legs statement is (legsPlanMode), and never with a
	// scan of all postings, which a plan made while the table was small
	// would keep.
	b.Queue("SELECT set_config('plan_cache_mode', '" + legsPlanMode + "', true), set_config('enable_seqscan', 'off', true)")
	b.Queue(q, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var docs, totalLen, rank *int64
			var terms []string
			var counts []int64
			var id *string
			var score *float64
			if err := rows.Scan(&docs, &totalLen, &terms, &counts, &rank, &id, &score); err != nil {
				return err
			}
			if docs != nil {
				st = legStats{docs: *docs, totalLen: *totalLen, terms: terms, counts: counts}
				continue
			}
			kw = append(kw, rankedCandidate{*rank, core.Candidate{ID: core.ID(*id), Score: *score}})
		}
		return rows.Err()
	})
	b.Queue("RESET plan_cache_mode")
	b.Queue("RESET enable_seqscan")
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return res, translate("keyword leg", err)
	}
	res.Candidates = ranked(kw)
	res.Stats.Docs, res.Stats.TotalLen = st.docs, st.totalLen
	for i, term := range st.terms {
		res.Stats.DF[term] = st.counts[i]
	}
	return res, nil
}
