package pgadapter

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/athena-edge/athena-edge/core"
)

var _ core.LegsSearcher = (*tx)(nil)

// SearchLegs runs both legs of a search and loads every candidate in one
// round trip: one statement computes the vector leg (approximate, falling
// back to exact exactly as VectorLeg does), the keyword leg and its BM25
// statistics, and returns the candidate rows with their ranks, preceded
// and followed in the same batch by the settings that force the HNSW
// index. The answer is the one VectorLeg, KeywordLeg and Memories give.
//
// The keyword part is KeywordLeg's statement (keywordCTEs).
//
// A write transaction falls back to the three calls: Memories takes the
// advisory locks a later read-modify-write of a hit relies on.
func (t *tx) SearchLegs(ctx context.Context, req core.LegsRequest) (core.LegsResult, error) {
	if t.write {
		return t.searchLegsSlow(ctx, req)
	}
	res := core.LegsResult{Memories: []core.Memory{}}
	vl, kl := req.Vector, req.Keyword
	if vl != nil {
		res.Vector = []core.Candidate{}
	}
	if kl != nil {
		res.Keyword = core.KeywordResult{Candidates: []core.Candidate{}, Stats: core.CorpusStats{DF: map[string]int64{}}}
	}
	if vl != nil {
		if vl.K < 0 {
			return res, fmt.Errorf("pgadapter: vector leg: %w: k %d is negative", core.ErrInvalid, vl.K)
		}
		if len(vl.Vector) == 0 && vl.K > 0 {
			return res, fmt.Errorf("pgadapter: vector leg: %w: empty vector", core.ErrInvalid)
		}
		if vl.K == 0 {
			vl = nil
		}
	}
	if kl != nil && kl.Limit < 0 {
		return res, fmt.Errorf("pgadapter: keyword leg: %w: limit %d is negative", core.ErrInvalid, kl.Limit)
	}
	if vl == nil && kl == nil {
		return res, nil
	}
	if vl != nil && kl != nil && vl.Filter.ProjectID != kl.Filter.ProjectID {
		return t.searchLegsSlow(ctx, req) // one statistics row per statement
	}
	pre, q, args := t.legsQuery(vl, kl)
	b := &pgx.Batch{}
	b.Queue(pre)
	var st legStats
	var vec, kw []rankedCandidate
	b.Queue(q, args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if rows.RawValues()[0] != nil { // the statistics row
				dest := make([]any, legsPrefix+memColCount)
				dest[0], dest[1], dest[2], dest[3] = &st.docs, &st.totalLen, &st.terms, &st.counts
				if err := rows.Scan(dest...); err != nil {
					return err
				}
				continue
			}
			var vr, kn *int64
			var vd *float64
			var vx *bool
			var ks *float64
			m, err := scanMemory(prefixedRow{rows: rows, prefix: []any{nil, nil, nil, nil, &vr, &vd, &vx, &kn, &ks}})
			if err != nil {
				return err
			}
			if vr != nil {
				vec = append(vec, rankedCandidate{*vr, core.Candidate{ID: m.ID, Score: 1 - *vd, Exact: *vx}})
			}
			if kn != nil {
				kw = append(kw, rankedCandidate{*kn, core.Candidate{ID: m.ID, Score: *ks}})
			}
			res.Memories = append(res.Memories, m)
		}
		return rows.Err()
	})
	for _, r := range resetLegSettings {
		b.Queue(r)
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return core.LegsResult{}, translate("search legs", err)
	}
	if vl != nil {
		res.Vector = ranked(vec)
	}
	if kl != nil {
		res.Keyword.Candidates = ranked(kw)
		res.Keyword.Stats.Docs, res.Keyword.Stats.TotalLen = st.docs, st.totalLen
		for i, term := range st.terms {
			res.Keyword.Stats.DF[term] = st.counts[i]
		}
	}
	return res, nil
}

// searchLegsSlow answers with VectorLeg, KeywordLeg and Memories.
func (t *tx) searchLegsSlow(ctx context.Context, req core.LegsRequest) (core.LegsResult, error) {
	var res core.LegsResult
	var err error
	if req.Vector != nil {
		if res.Vector, err = t.VectorLeg(ctx, *req.Vector); err != nil {
			return res, err
		}
	}
	if req.Keyword != nil {
		if res.Keyword, err = t.KeywordLeg(ctx, *req.Keyword); err != nil {
			return res, err
		}
	}
	var ids []core.ID
	for _, cs := range [][]core.Candidate{res.Vector, res.Keyword.Candidates} {
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	res.Memories = []core.Memory{}
	if len(ids) > 0 {
		res.Memories, err = t.Memories(ctx, core.MemoryFilter{IDs: ids})
	}
	return res, err
}

type legStats struct {
	docs, totalLen int64
	terms          []string
	counts         []int64
}

type rankedCandidate struct {
	rank int64
	c    core.Candidate
}

func ranked(rc []rankedCandidate) []core.Candidate {
	slices.SortFunc(rc, func(a, b rankedCandidate) int { return int(a.rank - b.rank) })
	out := make([]core.Candidate, len(rc))
	for i := range rc {
		out[i] = rc[i].c
	}
	return out
}

// prefixedRow scans the columns before a memory's into prefix.
type prefixedRow struct {
	rows   pgx.Rows
	prefix []any
}

func (r prefixedRow) Scan(dest ...any) error {
	return r.rows.Scan(append(r.prefix, dest...)...)
}

// legsPrefix is the number of columns before the memory's in the legs
// statement: docs, total_len, df terms, df counts (the statistics row),
// then vector rank, distance, exact, keyword rank, keyword score.
const legsPrefix = 9

var (
	memColList  = strings.Split(strings.Join(strings.Fields(memCols), ""), ",")
	memColCount = len(memColList)
	// memColsM is memCols qualified with the alias m.
	memColsM = "m." + strings.Join(memColList, ", m.")
)

// legsPlanMode is how the legs and keyword statements are planned: once
// per connection and statement shape (each filter field present makes a
// different statement), not for each search's arguments. Planning the
// legs statement for its arguments cost 0.5–0.8 ms of a 4–5 ms hybrid
// search at 100K memories (docs/BENCHMARKS.md).
//
// A generic plan cannot see a filter's selectivity, so it must not be one
// that picks an index by it. None here can: the keyword leg reads only
// the postings index, by term and project, and memories by primary key;
// the approximate vector leg's settings leave the HNSW index its only
// plan; a memory's row is always found by its ID. (With the GIN keyword
// index this was not so: a generic plan ANDed each term's bitmap with the
// project's, which matched every row, and ran 52–70 ms where the custom
// plan ran 9–16 ms; custom plans were forced then.)
const legsPlanMode = "force_generic_plan"

// resetLegSettings restore the planner settings the legs statement ran
// with. RESET is a few microseconds; reading the reset values from
// pg_settings cost about a millisecond, as it builds every setting's row.
var resetLegSettings = []string{"RESET enable_seqscan", "RESET enable_sort", "RESET plan_cache_mode"}

// legsQuery builds the legs statement and the settings statement to run
// before it.
func (t *tx) legsQuery(vl *core.VectorLeg, kl *core.KeywordLeg) (pre, q string, args []any) {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var f *core.MemoryFilter
	if kl != nil {
		f = &kl.Filter
	} else {
		f = &vl.Filter
	}
	project := arg(string(f.ProjectID))
	// Plan once per connection and statement shape (legsPlanMode).
	pre = "SELECT set_config('plan_cache_mode', '" + legsPlanMode + "', true)"
	var ctes []string
	ctes = append(ctes, statsCTE(project))
	seqscanOff := false

	vrows := "SELECT NULL::text AS id, NULL::float8 AS d, NULL::bool AS x WHERE false"
	if vl != nil {
		dim := len(vl.Vector)
		v := arg(pgvector.NewVector(vl.Vector))
		w := where(&vl.Filter, &args, false)
		k := arg(vl.K)
		exact := vl.Exact || len(vl.Filter.IDs) > 0 || dim > maxIndexDim
		if !exact {
			gate := "TRUE"
			if vl.Filter.ProjectID != "" && t.s.cfg.ExactBelow > 0 {
				gate = "(SELECT docs FROM st) >= " + arg(t.s.cfg.ExactBelow)
			}
			ef := min(max(t.s.cfg.EfSearch, 2*vl.K), 1000) // pgvector's maximum
			ctes = append(ctes, `va AS MATERIALIZED (SELECT id, embedding <=> `+v+`::vector AS d FROM (
				`+approxRows(dim, v, w+` AND `+gate, arg(rescored(ef, vl.K)))+`
				) c ORDER BY d, id LIMIT `+k+`)`,
				`vn AS (SELECT count(*) AS n FROM va)`)
			// The exact leg runs only when the approximate one found fewer
			// than k (a one-time filter skips it otherwise).
			ctes = append(ctes, `ve AS MATERIALIZED (SELECT id, embedding <=> `+v+`::vector AS d FROM memories
				WHERE embedding_dim = `+arg(dim)+` AND `+w+` AND (SELECT n FROM vn) < `+k+`
				ORDER BY d, id LIMIT `+k+`)`)
			vrows = `SELECT id, d, false AS x FROM va WHERE (SELECT n FROM vn) >= ` + k + `
				UNION ALL SELECT id, d, true FROM ve`
			pre += `, set_config('hnsw.ef_search', '` + strconv.Itoa(ef) + `', true),
				set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.max_scan_tuples', '50000', true),
				set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)`
			seqscanOff = true
		} else {
			ctes = append(ctes, `ve AS MATERIALIZED (SELECT id, embedding <=> `+v+`::vector AS d FROM memories
				WHERE embedding_dim = `+arg(dim)+` AND `+w+` ORDER BY d, id LIMIT `+k+`)`)
			vrows = "SELECT id, d, true AS x FROM ve"
		}
	}
	ctes = append(ctes, "vr AS (SELECT id, d, x, row_number() OVER (ORDER BY d, id) AS n FROM ("+vrows+") v)")

	krows := "SELECT NULL::text AS id, NULL::float8 AS s WHERE false"
	dfCols := "NULL::text[], NULL::bigint[]"
	if kl != nil {
		dfCols = "'{}'::text[], '{}'::bigint[]"
		if terms := safeTerms(kl.Terms); len(terms) > 0 {
			ctes = keywordCTEs(ctes, kl, terms, project, &args)
			if !seqscanOff {
				pre += ", set_config('enable_seqscan', 'off', true)" // as in KeywordLeg
			}
			dfCols = "df.terms, df.counts"
			if kl.Limit > 0 {
				krows = "SELECT id, s FROM kc"
			}
		}
	}
	ctes = append(ctes, "kr AS (SELECT id, s, row_number() OVER (ORDER BY s DESC, id) AS n FROM ("+krows+") k)",
		`c AS (SELECT coalesce(vr.id, kr.id) AS id, vr.n AS vn, vr.d, vr.x, kr.n AS kn, kr.s FROM vr FULL JOIN kr ON vr.id = kr.id)`)
	from := "st"
	if strings.HasPrefix(dfCols, "df.") {
		from = "st, df"
	}
	nulls := strings.Repeat(", NULL", memColCount)
	q = "WITH " + strings.Join(ctes, ",\n") + `
		SELECT NULL::bigint, NULL::bigint, NULL::text[], NULL::bigint[], c.vn, c.d, c.x, c.kn, c.s, ` + memColsM + `
			FROM c JOIN memories m ON m.id = c.id
		UNION ALL
		SELECT st.docs, st.total_len, ` + dfCols + `, NULL, NULL, NULL, NULL, NULL` + nulls + ` FROM ` + from
	return pre, q, args
}

// statsCTE is the CTE st: the project's document count and total length
// (zero for a project without memories).
func statsCTE(project string) string {
	return `st AS (SELECT coalesce((SELECT docs FROM project_stats WHERE project_id = ` + project + `), 0) AS docs,
		coalesce((SELECT total_len FROM project_stats WHERE project_id = ` + project + `), 0) AS total_len)`
}

// keywordCTEs appends the keyword leg's CTEs to ctes, after st
// (statsCTE): kd, each term (non-empty, safeTerms) with its document
// frequency in the project and its idf; df, the terms and frequencies as
// two arrays in term order; and, when kl.Limit > 0, ks, the score of every
// memory holding a term, and kc: the top kl.Limit of them matching
// kl.Filter as (id, s), s the store's estimate. project is the
// placeholder of kl.Filter.ProjectID; arguments are appended to args.
//
// Everything but the filter comes from the keyword index alone
// (postings, migration 11), in index-only scans: a term's document
// frequency is the length of its range, and a memory's estimate needs
// only the terms it holds and its length, which the range's entries
// carry. Only the best-scored memories are then looked up, in score
// order, until kl.Limit of them pass the filter. The GIN index this
// replaced visited the heap for every (term, memory) pair instead, one
// page per 3 KB row: 1,540 pairs for a 4-term query at 100K memories
// cost about 2 ms of a 5.4 ms search.
//
// Without a project the document frequencies are zero, as for a project
// without memories; candidates still match kl.Filter.
func keywordCTEs(ctes []string, kl *core.KeywordLeg, terms []string, project string, args *[]any) []string {
	arg := func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
	tv := arg(terms)
	ctes = append(ctes,
		`kd AS MATERIALIZED (SELECT u.t, u.n, c.c, ln(1 + ((SELECT docs FROM st) - c.c + 0.5)::float8 / (c.c + 0.5)) AS idf
			FROM unnest(`+tv+`::text[]) WITH ORDINALITY AS u(t, n)
			CROSS JOIN LATERAL (SELECT count(*) AS c FROM postings p WHERE p.term = u.t AND p.project_id = `+project+`) c)`,
		`df AS (SELECT array_agg(t ORDER BY n) AS terms, array_agg(c ORDER BY n) AS counts FROM kd)`)
	if kl.Limit <= 0 {
		return ctes
	}
	// Every project's postings when the leg has none: the term's whole
	// range in the index.
	inProject := " AND p.project_id = " + project
	if kl.Filter.ProjectID == "" {
		inProject = ""
	}
	ok := where(&kl.Filter, args, false)
	// The store's estimate is BM25 with every term frequency taken as 1
	// (the index keeps no frequencies); core rescores exactly. The lateral
	// filter is evaluated in score order and stops at the limit.
	return append(ctes,
		`ks AS (SELECT p.id, sum(kd.idf) * 2.2 / (1 + 1.2 * (0.25 + 0.75::float8 * p.doc_len /
			(SELECT greatest(total_len::float8 / greatest(docs, 1), 1) FROM st))) AS s
			FROM kd CROSS JOIN LATERAL (SELECT p.id, p.doc_len FROM postings p WHERE p.term = kd.t`+inProject+`) p
			GROUP BY p.id, p.doc_len)`,
		`kc AS MATERIALIZED (SELECT ks.id, ks.s FROM (SELECT id, s FROM ks ORDER BY s DESC, id) ks
			CROSS JOIN LATERAL (SELECT 1 FROM memories m WHERE m.id = ks.id AND `+ok+` LIMIT 1) f
			ORDER BY ks.s DESC, ks.id LIMIT `+arg(kl.Limit)+`)`)
}
