package sqlitevec

import (
	"context"
	"slices"
	"strings"

	"github.com/ncruces/go-sqlite3"

	"github.com/athena-edge/athena-edge/core"
)

// keywordSQL is the one shape of the keyword leg's query: FTS5's top N
// by bm25 in a MATERIALIZED CTE (so the planner cannot push joins or
// filters into the full-text scan), then a join by rowid to fetch IDs.
// Filters are applied afterwards, in Go, from the in-memory index.
const keywordSQL = `WITH hits(rid, rank) AS MATERIALIZED (
	SELECT rowid, rank FROM memories_fts WHERE memories_fts MATCH ? ORDER BY rank LIMIT ?
)
SELECT m.rid, m.id, h.rank FROM hits h JOIN memories m ON m.rid = h.rid ORDER BY h.rank`

// ftsTerm quotes a term for MATCH. Terms reaching here are single core
// tokens (lowercase letters and digits), so quoting is all the escaping
// needed; doubling quotes is belt and braces.
func ftsTerm(t string) string { return `"` + strings.ReplaceAll(t, `"`, `""`) + `"` }

// isToken reports whether t is exactly one token of core.Tokenize: only
// such terms exist in the index, so any other string matches nothing.
func isToken(t string) bool {
	toks := core.Tokenize(t)
	return len(toks) == 1 && toks[0] == t
}

// keywordPlan is what the keyword leg will ask FTS5.
type keywordPlan struct {
	stats   core.CorpusStats
	match   string // "" when no term is worth a full-text query
	dropped []string
}

// planKeyword computes the statistics and the MATCH expression.
func (s *Store) planKeyword(leg *core.KeywordLeg) keywordPlan {
	kp := keywordPlan{stats: core.CorpusStats{DF: make(map[string]int64, len(leg.Terms))}}
	ix := s.idx
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var parts []*part
	if leg.Filter.ProjectID != "" {
		if p := ix.parts[leg.Filter.ProjectID]; p != nil {
			parts = append(parts, p)
		}
	} else {
		for _, p := range ix.parts {
			parts = append(parts, p)
		}
	}
	for _, p := range parts {
		kp.stats.Docs += p.docs
		kp.stats.TotalLen += p.totalLen
	}
	capDF := int64(-1)
	if s.cfg.MaxDFFraction > 0 {
		capDF = max(int64(s.cfg.MinCappedDF), int64(s.cfg.MaxDFFraction*float64(kp.stats.Docs)))
	}
	var terms []string
	for _, t := range leg.Terms {
		if _, dup := kp.stats.DF[t]; dup {
			continue
		}
		var df int64
		for _, p := range parts {
			df += p.df[t]
		}
		kp.stats.DF[t] = df
		switch {
		case df == 0 || !isToken(t):
		case capDF >= 0 && df > capDF:
			kp.dropped = append(kp.dropped, t)
		default:
			terms = append(terms, ftsTerm(t))
		}
	}
	if len(terms) == 0 {
		return kp
	}
	kp.match = strings.Join(terms, " OR ")
	// Restrict to the project inside FTS5 when other projects hold most
	// documents, so that their matches cannot crowd out this one's. When
	// the project holds at least half, the AND with its (long) posting
	// list costs more than filtering in Go and refetching if needed.
	if leg.Filter.ProjectID != "" && 2*kp.stats.Docs < ix.docs {
		kp.match = ftsTerm(projectToken(leg.Filter.ProjectID)) + " AND (" + kp.match + ")"
	}
	return kp
}

// KeywordLeg runs the fixed FTS5 query shape over the terms worth it (see
// the package docs on the document-frequency cap) and filters its hits in
// Go. When filters drop hits it asks FTS5 again for more, so the leg
// returns leg.Limit candidates whenever that many match.
func (t *readTx) KeywordLeg(ctx context.Context, leg core.KeywordLeg) (core.KeywordResult, error) {
	if err := ctx.Err(); err != nil {
		return core.KeywordResult{}, err
	}
	kp := t.s.planKeyword(&leg)
	res := core.KeywordResult{Candidates: []core.Candidate{}, Stats: kp.stats}
	if kp.match == "" || leg.Limit <= 0 {
		return res, nil
	}
	m := newMatcher(&leg.Filter)
	ix := t.s.idx
	fetch := leg.Limit * defaultKeywordOverfetch
	for {
		res.Candidates = res.Candidates[:0]
		rows := 0
		err := t.c.query(keywordSQL, []any{kp.match, fetch}, func(st *sqlite3.Stmt) error {
			rows++
			if len(res.Candidates) >= leg.Limit {
				return nil
			}
			rid, id, rank := st.ColumnInt64(0), core.ID(st.ColumnText(1)), st.ColumnFloat(2)
			ix.mu.RLock()
			at, ok := ix.where[rid]
			keep := true
			if ok {
				keep = (leg.Filter.ProjectID == "" || at.p.project == leg.Filter.ProjectID) && m.match(&at.p.meta[at.slot])
			}
			ix.mu.RUnlock()
			// A row the index does not know yet (written in this very
			// transaction) is proposed anyway: core filters every candidate.
			if keep {
				res.Candidates = append(res.Candidates, core.Candidate{ID: id, Score: -rank})
			}
			return nil
		})
		if err != nil {
			return core.KeywordResult{}, t.c.wrap("keyword leg", err)
		}
		if len(res.Candidates) >= leg.Limit || rows < fetch {
			return res, nil
		}
		fetch *= 4
	}
}

var _ = slices.Contains[[]string]
