package core

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Fusion methods.
const (
	FusionWeighted = "weighted" // the seed's weighted sum of semantic and keyword scores
	FusionRRF      = "rrf"      // reciprocal-rank fusion
)

// Search defaults, from the seed.
const (
	DefaultSemanticWeight = 0.7
	DefaultKeywordWeight  = 0.3
	DefaultThreshold      = 0.3 // semantic search's minimum cosine similarity
	DefaultRRFK           = 60
	DefaultK              = 10
	// ExactKeywordLimit is how many keyword candidates an exact search
	// asks for: all of them, on any collection exact search is meant for.
	ExactKeywordLimit = 100_000
)

// Query is a search. Zero fields take defaults: K 10, weighted fusion with
// weights 0.7/0.3, states = LiveStates.
type Query struct {
	ProjectID ID
	Text      string    // keyword leg input; also embedded if Embedding is nil and the DB has an embedder
	Embedding []float32 // vector leg input
	K         int

	Fusion         string  // FusionWeighted (default) or FusionRRF
	SemanticWeight float64 // weighted fusion; 0 and 0 mean 0.7 and 0.3
	KeywordWeight  float64
	RRFK           float64 // RRF constant (DefaultRRFK if 0)

	// Filters.
	States []State // default LiveStates()
	Filter MemoryFilter

	// SemanticOnly runs the vector leg alone and drops hits below
	// Threshold (cosine similarity, the same meaning on every store).
	SemanticOnly bool
	Threshold    float64 // minimum cosine similarity; 0 means none for hybrid, DefaultThreshold for semantic-only

	// Optional boosts, both off by default. QualityBoost adds
	// QualityBoost × quality_score; RecencyBoost adds RecencyBoost ×
	// 0.5^(age/half-life), age since creation, with a half-life per memory
	// type (HalfLife overrides DefaultHalfLife per type).
	QualityBoost float64
	RecencyBoost float64
	HalfLife     map[MemoryType]time.Duration

	Exact   bool // force the exact vector leg
	Explain bool
}

// DefaultHalfLife is the recency half-life of a memory type: episodes fade
// in days, decisions and facts in months, preferences and procedures
// barely.
func DefaultHalfLife(t MemoryType) time.Duration {
	const day = 24 * time.Hour
	switch t {
	case TypeEpisodic, TypeContext:
		return 7 * day
	case TypeCodeSnippet, TypeDecision, TypePattern:
		return 90 * day
	case TypePreference, TypeProcedural:
		return 365 * day
	}
	return 30 * day
}

// Hit is one search result. Semantic is the cosine similarity computed by
// core from the stored vector; Keyword is BM25 computed by core; Hybrid is
// the fused score that orders hits.
type Hit struct {
	Memory   Memory   `json:"memory"`
	Semantic float64  `json:"semantic_similarity"`
	Keyword  float64  `json:"keyword_score"`
	Hybrid   float64  `json:"hybrid_score"`
	Explain  *Explain `json:"explain,omitempty"`
}

// Explain says why a hit ranked where it did.
type Explain struct {
	Fusion               string   `json:"fusion"`
	VectorRank           int      `json:"vector_rank"`  // 1-based rank in the vector leg, 0 if it did not propose the hit
	KeywordRank          int      `json:"keyword_rank"` // 1-based rank in the keyword leg, 0 if absent
	Exact                bool     `json:"vector_exact"` // the vector leg ran exactly (a scan), not through an approximate index
	SemanticRaw          float64  `json:"semantic_raw"`
	SemanticContribution float64  `json:"semantic_contribution"`
	KeywordRaw           float64  `json:"keyword_raw"`
	KeywordNormalized    float64  `json:"keyword_normalized"`
	KeywordContribution  float64  `json:"keyword_contribution"`
	MatchedTerms         []string `json:"matched_terms,omitempty"`
	QualityContribution  float64  `json:"quality_contribution,omitempty"`
	Recency              float64  `json:"recency,omitempty"`
	RecencyContribution  float64  `json:"recency_contribution,omitempty"`
}

// Cosine is the cosine similarity of a and b, computed in float64 so every
// store and platform gets the same bits. It returns 0 if either is zero or
// the lengths differ.
func Cosine(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// plan is what the planner decided for a query.
type plan struct {
	vectorK, keywordK int
	exact             bool
	terms             []string
	filter            MemoryFilter
}

func (db *DB) planQuery(q *Query) (plan, error) {
	if q.K == 0 {
		q.K = DefaultK
	}
	if err := db.limits.CheckLimit("k", q.K); err != nil {
		return plan{}, err
	}
	if q.Fusion == "" {
		q.Fusion = FusionWeighted
	}
	if q.Fusion != FusionWeighted && q.Fusion != FusionRRF {
		return plan{}, fieldErr("fusion", "unknown fusion %q (want weighted or rrf)", q.Fusion)
	}
	if q.SemanticWeight == 0 && q.KeywordWeight == 0 {
		q.SemanticWeight, q.KeywordWeight = DefaultSemanticWeight, DefaultKeywordWeight
	}
	for _, w := range []struct {
		name string
		v    float64
	}{{"semantic_weight", q.SemanticWeight}, {"keyword_weight", q.KeywordWeight}} {
		if math.IsNaN(w.v) || w.v < 0 || w.v > 1 {
			return plan{}, fieldErr(w.name, "must be between 0 and 1, got %v", w.v)
		}
	}
	if q.RRFK == 0 {
		q.RRFK = DefaultRRFK
	}
	if q.RRFK < 0 || math.IsNaN(q.RRFK) {
		return plan{}, fieldErr("rrf_k", "must be positive, got %v", q.RRFK)
	}
	if math.IsNaN(q.Threshold) || q.Threshold < -1 || q.Threshold > 1 {
		return plan{}, fieldErr("threshold", "must be between -1 and 1, got %v", q.Threshold)
	}
	for _, b := range []struct {
		name string
		v    float64
	}{{"quality_boost", q.QualityBoost}, {"recency_boost", q.RecencyBoost}} {
		if math.IsNaN(b.v) || b.v < 0 || b.v > 1 {
			return plan{}, fieldErr(b.name, "must be between 0 and 1, got %v", b.v)
		}
	}
	for t, hl := range q.HalfLife {
		if hl <= 0 {
			return plan{}, fieldErr("half_life", "half-life of %s must be positive, got %s", t, hl)
		}
	}
	if q.SemanticOnly && q.Threshold == 0 {
		q.Threshold = DefaultThreshold
	}
	if err := CheckText("query", q.Text, db.limits.MaxContentBytes, false); err != nil {
		return plan{}, err
	}
	f := q.Filter
	f.ProjectID = q.ProjectID
	f.States = q.States
	if len(f.States) == 0 {
		f.States = LiveStates()
	}
	for _, s := range f.States {
		if !s.Valid() {
			return plan{}, fieldErr("state", "unknown state %q (want one of %v)", s, States())
		}
	}
	for _, t := range f.Types {
		if !validType(t) {
			return plan{}, fieldErr("memory_type", "unknown memory type %q (want one of %v)", t, MemoryTypes())
		}
	}
	tags, err := db.limits.NormalizeTags(f.Tags)
	if err != nil {
		return plan{}, err
	}
	f.Tags = tags
	f.Limit, f.AfterID, f.Newest = 0, "", false
	p := plan{filter: f, exact: q.Exact}
	p.vectorK = max(q.K*4, 50)
	if !q.SemanticOnly {
		p.terms = Terms(q.Text)
		if len(p.terms) > 0 {
			p.keywordK = max(q.K*4, 50)
			if q.Exact {
				// An exact search scores every keyword match, so the
				// candidate set cannot depend on how a store pre-ranks
				// them: the answer is the same on every store.
				p.keywordK = ExactKeywordLimit
			}
		}
	}
	return p, nil
}

// Search runs a hybrid (or, with SemanticOnly, a semantic) search: the
// store's vector and keyword legs propose candidates, and core scores every
// candidate with both signals and fuses them.
func (tx *Tx) Search(ctx context.Context, q Query) ([]Hit, error) {
	p, err := tx.db.planQuery(&q)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	proj, err := tx.r.Project(ctx, q.ProjectID)
	if err != nil {
		return nil, fmt.Errorf("search: project %s: %w", q.ProjectID, err)
	}
	if q.Embedding == nil && q.Text != "" && tx.db.embedder != nil {
		if tx.db.embedder.Model() != proj.EmbeddingModel || tx.db.embedder.Dim() != proj.EmbeddingDim {
			return nil, fmt.Errorf("search: %w", &FieldError{Field: "embedding_model",
				Reason: fmt.Sprintf("embedder %s/%d does not match the project's %s/%d", tx.db.embedder.Model(), tx.db.embedder.Dim(),
					proj.EmbeddingModel, proj.EmbeddingDim), Err: ErrDimMismatch})
		}
		vs, err := tx.db.embedder.Embed(ctx, []string{q.Text})
		if err != nil {
			return nil, fmt.Errorf("search: embed: %w", err)
		}
		q.Embedding = vs[0]
	}
	if q.Embedding == nil && (q.SemanticOnly || len(p.terms) == 0) {
		return nil, fmt.Errorf("search: %w", fieldErr("embedding", "is required for a semantic search (no embedder configured)"))
	}
	if q.Embedding != nil {
		if err := CheckVector("embedding", q.Embedding, proj.EmbeddingDim); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
	}

	var vleg *VectorLeg
	if q.Embedding != nil {
		vleg = &VectorLeg{Vector: q.Embedding, K: p.vectorK, Filter: p.filter, Exact: p.exact}
	}
	var kleg *KeywordLeg
	if p.keywordK > 0 {
		kleg = &KeywordLeg{Terms: p.terms, Limit: p.keywordK, Filter: p.filter}
	}
	legs, err := runLegs(ctx, tx.r, LegsRequest{Vector: vleg, Keyword: kleg})
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	vec, kw, ms := legs.Vector, legs.Keyword, legs.Memories

	vexact := len(vec) > 0
	for _, c := range vec {
		vexact = vexact && c.Exact
	}
	vrank := make(map[ID]int, len(vec))
	krank := make(map[ID]int, len(kw.Candidates))
	for i, c := range vec {
		if _, dup := vrank[c.ID]; !dup {
			vrank[c.ID] = i + 1
		}
	}
	for i, c := range kw.Candidates {
		if _, dup := krank[c.ID]; !dup {
			krank[c.ID] = i + 1
		}
	}
	hits := make([]Hit, 0, len(ms))
	bm := BM25Params{}
	var maxKW float64
	for i := range ms {
		m := &ms[i]
		if !p.filter.Match(m) {
			continue // a store proposed something outside the filter: core has the last word
		}
		h := Hit{Memory: *m}
		if q.Embedding != nil {
			h.Semantic = Cosine(q.Embedding, m.Embedding)
		}
		var matched []string
		if len(p.terms) > 0 {
			toks := Tokenize(m.Content)
			tf := TermFreqs(toks)
			h.Keyword = bm.Score(p.terms, tf, len(toks), kw.Stats)
			if q.Explain {
				for _, t := range p.terms {
					if tf[t] > 0 {
						matched = append(matched, t)
					}
				}
			}
		}
		maxKW = max(maxKW, h.Keyword)
		if q.Explain {
			h.Explain = &Explain{Fusion: q.Fusion, VectorRank: vrank[m.ID], KeywordRank: krank[m.ID], Exact: vexact,
				SemanticRaw: h.Semantic, KeywordRaw: h.Keyword, MatchedTerms: matched}
		}
		hits = append(hits, h)
	}
	if q.SemanticOnly || q.Threshold != 0 {
		hits = slices.DeleteFunc(hits, func(h Hit) bool { return h.Semantic < q.Threshold })
	}
	fuse(hits, &q, maxKW)
	boost(hits, &q, tx.now())
	slices.SortFunc(hits, func(a, b Hit) int {
		if a.Hybrid != b.Hybrid {
			if a.Hybrid > b.Hybrid {
				return -1
			}
			return 1
		}
		return strings.Compare(string(a.Memory.ID), string(b.Memory.ID))
	})
	if len(hits) > q.K {
		hits = hits[:q.K]
	}
	return hits, nil
}

// LegsSearcher is an optional upgrade of [ReadTx]: a store that runs both
// legs and loads every candidate in one call (pgadapter does it in one
// round trip). Tx.Search uses it when the store's transaction implements
// it, and otherwise calls VectorLeg, KeywordLeg and Memories.
//
// A LegsSearcher must answer exactly as those three calls would: each
// leg's result as VectorLeg and KeywordLeg return it, and Memories holding
// every candidate of either leg (in any order, each once; core applies the
// filter again and scores from these rows).
type LegsSearcher interface {
	SearchLegs(ctx context.Context, req LegsRequest) (LegsResult, error)
}

// LegsRequest asks a [LegsSearcher] for both legs; a nil leg is not run.
type LegsRequest struct {
	Vector  *VectorLeg
	Keyword *KeywordLeg
}

// LegsResult is a [LegsSearcher]'s answer.
type LegsResult struct {
	Vector   []Candidate
	Keyword  KeywordResult
	Memories []Memory
}

// runLegs runs req's legs and loads their candidates, in one call when r
// is a LegsSearcher and in three otherwise.
func runLegs(ctx context.Context, r ReadTx, req LegsRequest) (LegsResult, error) {
	if ls, ok := r.(LegsSearcher); ok {
		res, err := ls.SearchLegs(ctx, req)
		if err != nil {
			return LegsResult{}, fmt.Errorf("legs: %w", err)
		}
		return res, nil
	}
	var res LegsResult
	var err error
	if req.Vector != nil {
		if res.Vector, err = r.VectorLeg(ctx, *req.Vector); err != nil {
			return LegsResult{}, fmt.Errorf("vector leg: %w", err)
		}
	}
	if req.Keyword != nil {
		if res.Keyword, err = r.KeywordLeg(ctx, *req.Keyword); err != nil {
			return LegsResult{}, fmt.Errorf("keyword leg: %w", err)
		}
	}
	seen := make(map[ID]bool, len(res.Vector)+len(res.Keyword.Candidates))
	ids := make([]ID, 0, len(res.Vector)+len(res.Keyword.Candidates))
	for _, cs := range [][]Candidate{res.Vector, res.Keyword.Candidates} {
		for _, c := range cs {
			if !seen[c.ID] {
				seen[c.ID] = true
				ids = append(ids, c.ID)
			}
		}
	}
	if len(ids) == 0 {
		res.Memories = []Memory{}
		return res, nil
	}
	if res.Memories, err = r.Memories(ctx, MemoryFilter{IDs: ids}); err != nil {
		return LegsResult{}, fmt.Errorf("load candidates: %w", err)
	}
	return res, nil
}

// fuse sets each hit's Hybrid score. Weighted: w_s·cosine + w_k·BM25/max
// BM25 over the candidates. RRF: Σ 1/(k + rank) over both signals, with
// ranks computed by core from its own scores (not the stores' estimates).
func fuse(hits []Hit, q *Query, maxKW float64) {
	if q.SemanticOnly {
		for i := range hits {
			hits[i].Hybrid = hits[i].Semantic
			if e := hits[i].Explain; e != nil {
				e.SemanticContribution = hits[i].Semantic
			}
		}
		return
	}
	switch q.Fusion {
	case FusionRRF:
		sr := rankBy(hits, func(h *Hit) float64 { return h.Semantic })
		kr := rankBy(hits, func(h *Hit) float64 { return h.Keyword })
		for i := range hits {
			s := q.SemanticWeight / (q.RRFK + float64(sr[i]))
			if q.Embedding == nil { // keyword-only: no semantic signal to rank by
				s = 0
			}
			var k float64
			if hits[i].Keyword > 0 {
				k = q.KeywordWeight / (q.RRFK + float64(kr[i]))
			}
			hits[i].Hybrid = s + k
			if e := hits[i].Explain; e != nil {
				e.SemanticContribution, e.KeywordContribution = s, k
			}
		}
	default:
		for i := range hits {
			var kn float64
			if maxKW > 0 {
				kn = hits[i].Keyword / maxKW
			}
			s, k := float64(q.SemanticWeight*hits[i].Semantic), float64(q.KeywordWeight*kn)
			hits[i].Hybrid = s + k
			if e := hits[i].Explain; e != nil {
				e.KeywordNormalized, e.SemanticContribution, e.KeywordContribution = kn, s, k
			}
		}
	}
}

// boost adds the optional quality and recency boosts.
func boost(hits []Hit, q *Query, now time.Time) {
	if q.QualityBoost == 0 && q.RecencyBoost == 0 {
		return
	}
	for i := range hits {
		h := &hits[i]
		qc := float64(q.QualityBoost * h.Memory.QualityScore)
		var rec, rc float64
		if q.RecencyBoost > 0 {
			hl, ok := q.HalfLife[h.Memory.MemoryType]
			if !ok {
				hl = DefaultHalfLife(h.Memory.MemoryType)
			}
			age := max(now.Sub(h.Memory.CreatedAt), 0)
			rec = math.Exp2(-float64(age) / float64(hl))
			rc = float64(q.RecencyBoost * rec)
		}
		h.Hybrid += qc + rc
		if e := h.Explain; e != nil {
			e.QualityContribution, e.Recency, e.RecencyContribution = qc, rec, rc
		}
	}
}

// rankBy returns the 1-based rank of each hit by score (ties broken by ID).
func rankBy(hits []Hit, score func(*Hit) float64) []int {
	idx := make([]int, len(hits))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		sa, sb := score(&hits[a]), score(&hits[b])
		if sa != sb {
			if sa > sb {
				return -1
			}
			return 1
		}
		return strings.Compare(string(hits[a].Memory.ID), string(hits[b].Memory.ID))
	})
	rank := make([]int, len(hits))
	for r, i := range idx {
		rank[i] = r + 1
	}
	return rank
}
