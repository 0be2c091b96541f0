package sqlitevec

import (
	"context"
	"slices"
	"strings"
	"sync"

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

// keywordPlan is what the keyword leg will ask FTS5.
type keywordPlan struct {
	stats   core.CorpusStats
	match   string // "" when no term is worth a full-text query
	dropped []string
}

// planKeyword computes the statistics and the MATCH expression.
func (s *Store) planKeyword(leg *core.KeywordLeg) keywordPlan {
	kp := keywordPlan{stats: core.CorpusStats{DF: make(map[string]int64, len(leg.Terms))}}
	ix := s.index()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	parts := ix.partsFor(leg.Filter.ProjectID)
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
		case df == 0 || !core.IsToken(t):
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

// KeywordLeg answers from the in-memory postings (see keywordMem), or
// with FTS5 when Config.KeywordFTS is set.
func (t *readTx) KeywordLeg(ctx context.Context, leg core.KeywordLeg) (core.KeywordResult, error) {
	if err := ctx.Err(); err != nil {
		return core.KeywordResult{}, err
	}
	if t.s.cfg.KeywordFTS {
		return t.keywordFTS(ctx, leg)
	}
	return t.s.keywordMem(&leg), nil
}

// KeywordLeg in a write transaction that has written memories uses FTS5,
// which sees the transaction's own rows; the in-memory postings see only
// committed ones.
func (t *writeTx) KeywordLeg(ctx context.Context, leg core.KeywordLeg) (core.KeywordResult, error) {
	if err := t.flushFTS(); err != nil {
		return core.KeywordResult{}, err
	}
	if len(t.ops) > 0 {
		if err := ctx.Err(); err != nil {
			return core.KeywordResult{}, err
		}
		return t.keywordFTS(ctx, leg)
	}
	return t.readTx.KeywordLeg(ctx, leg)
}

// scorePool holds per-slot score accumulators for keywordMem, all zero.
var scorePool sync.Pool

// keywordMem is the keyword leg over the in-memory postings: exact BM25
// (k1 1.2, b 0.75, core's statistics) of every document of the filtered
// projects holding any query term, no document-frequency cap, filtered
// with the in-memory metadata before the top leg.Limit are taken. It costs
// O(Σ df) of the query terms.
func (s *Store) keywordMem(leg *core.KeywordLeg) core.KeywordResult {
	ix := s.index()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	parts := ix.partsFor(leg.Filter.ProjectID)
	res := core.KeywordResult{Candidates: []core.Candidate{}, Stats: core.CorpusStats{DF: make(map[string]int64, len(leg.Terms))}}
	st := &res.Stats
	for _, p := range parts {
		st.Docs += p.docs
		st.TotalLen += p.totalLen
	}
	terms := make([]string, 0, len(leg.Terms))
	for _, t := range leg.Terms {
		if _, dup := st.DF[t]; dup {
			continue
		}
		var df int64
		for _, p := range parts {
			df += p.df[t]
		}
		st.DF[t] = df
		if df > 0 {
			terms = append(terms, t)
		}
	}
	if len(terms) == 0 || leg.Limit <= 0 {
		return res
	}
	const k1, b = core.DefaultBM25K1, core.DefaultBM25B
	bm := core.BM25Params{}
	avgdl := st.AvgDocLen()
	m := newMatcher(&leg.Filter)
	top := topN{n: leg.Limit}
	var touched []int32
	for _, p := range parts {
		var sc []float32
		if v, ok := scorePool.Get().(*[]float32); ok && len(*v) >= len(p.rids) {
			sc = *v
		} else {
			sc = make([]float32, len(p.rids)+len(p.rids)/4)
		}
		touched = touched[:0]
		for _, t := range terms {
			pl := p.post[t]
			if pl == nil {
				continue
			}
			idf := bm.IDF(st.DF[t], st.Docs) * (k1 + 1)
			for i, slot := range pl.slots {
				tf := float64(pl.tf[i])
				norm := k1 * (1 - b + b*float64(p.dlen[slot])/avgdl)
				if sc[slot] == 0 {
					touched = append(touched, slot)
				}
				sc[slot] += float32(idf * tf / (tf + norm))
			}
		}
		for _, slot := range touched {
			x := sc[slot]
			sc[slot] = 0
			// Once top is full, a lower score cannot enter it: skip the
			// filter, which reads the row's metadata (a cache miss).
			if !top.full(x) && m.match(&p.meta[slot]) {
				top.push(x, p.meta[slot].id)
			}
		}
		scorePool.Put(&sc)
	}
	for _, c := range top.sorted() {
		res.Candidates = append(res.Candidates, core.Candidate{ID: c.id, Score: float64(c.score)})
	}
	return res
}

// topN keeps the n best (score, id) pairs: highest score, then lowest id.
// h is a min-heap on that order (the worst kept pair at h[0]).
type topN struct {
	n int
	h []kwHit
}

type kwHit struct {
	score float32
	id    core.ID
}

// worse reports whether a ranks below b.
func worse(a, b kwHit) bool { return a.score < b.score || a.score == b.score && a.id > b.id }

// full reports whether t holds n pairs that all score above score, so
// that no pair with that score can enter.
func (t *topN) full(score float32) bool { return len(t.h) == t.n && t.n > 0 && score < t.h[0].score }

func (t *topN) push(score float32, id core.ID) {
	x := kwHit{score, id}
	h := t.h
	if len(h) < t.n {
		h = append(h, x)
		for i := len(h) - 1; i > 0; {
			parent := (i - 1) / 2
			if !worse(h[i], h[parent]) {
				break
			}
			h[i], h[parent] = h[parent], h[i]
			i = parent
		}
		t.h = h
		return
	}
	if !worse(h[0], x) {
		return
	}
	h[0] = x
	for i := 0; ; {
		l, r, w := 2*i+1, 2*i+2, i
		if l < len(h) && worse(h[l], h[w]) {
			w = l
		}
		if r < len(h) && worse(h[r], h[w]) {
			w = r
		}
		if w == i {
			break
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

func (t *topN) sorted() []kwHit {
	slices.SortFunc(t.h, func(a, b kwHit) int {
		if worse(a, b) {
			return 1
		}
		if worse(b, a) {
			return -1
		}
		return 0
	})
	return t.h
}

// keywordFTS runs the fixed FTS5 query shape over the terms worth it (see
// the package docs on the document-frequency cap) and filters its hits in
// Go. When filters drop hits it asks FTS5 again for more, so the leg
// returns leg.Limit candidates whenever that many match.
func (t *readTx) keywordFTS(ctx context.Context, leg core.KeywordLeg) (core.KeywordResult, error) {
	kp := t.s.planKeyword(&leg)
	res := core.KeywordResult{Candidates: []core.Candidate{}, Stats: kp.stats}
	if kp.match == "" || leg.Limit <= 0 {
		return res, nil
	}
	m := newMatcher(&leg.Filter)
	ix := t.s.index()
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

// partsFor returns the part of project, or every part for "". The caller
// holds ix.mu.
func (ix *index) partsFor(project core.ID) []*part {
	if project != "" {
		if p := ix.parts[project]; p != nil {
			return []*part{p}
		}
		return nil
	}
	parts := make([]*part, 0, len(ix.parts))
	for _, p := range ix.parts {
		parts = append(parts, p)
	}
	return parts
}
