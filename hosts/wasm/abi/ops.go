package abi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

// Op names.
const (
	OpOps               = "ops"
	OpValidateMemory    = "validate_memory"
	OpValidateProject   = "validate_project"
	OpCheckTransition   = "check_transition"
	OpQuality           = "quality"
	OpCosine            = "cosine"
	OpTokenize          = "tokenize"
	OpBM25              = "bm25"
	OpEmbed             = "embed"
	OpMergeMemory       = "merge_memory"
	OpSearch            = "search"
	OpCorpusLoad        = "corpus.load"
	OpCorpusDrop        = "corpus.drop"
	OpPlanConsolidation = "plan_consolidation"
)

// Ops lists every op in a fixed order.
func Ops() []string {
	return []string{OpOps, OpValidateMemory, OpValidateProject, OpCheckTransition, OpQuality, OpCosine,
		OpTokenize, OpBM25, OpEmbed, OpMergeMemory, OpSearch, OpCorpusLoad, OpCorpusDrop, OpPlanConsolidation}
}

// Dispatcher runs ops. The wasm module holds one; a native caller makes its
// own with [NewDispatcher] and gets byte-identical answers. The only state
// is the corpora loaded with corpus.load. A Dispatcher is not safe for
// concurrent use.
type Dispatcher struct {
	corpora map[uint32]*corpus
	next    uint32
}

// NewDispatcher returns a Dispatcher with no corpora.
func NewDispatcher() *Dispatcher { return &Dispatcher{corpora: map[uint32]*corpus{}} }

// Call runs one request and returns its response envelope. It never
// fails: a bad request, a core error or a panic becomes an "error"
// response.
func (d *Dispatcher) Call(req []byte) (resp []byte) {
	defer func() {
		if p := recover(); p != nil {
			resp = encodeResponse(nil, fmt.Errorf("panic: %v", p))
		}
	}()
	var r Request
	if err := decodeStrict(req, &r); err != nil {
		return encodeResponse(nil, err)
	}
	res, err := d.run(r.Op, r.Args)
	return encodeResponse(res, err)
}

func encodeResponse(res any, err error) []byte {
	var r Response
	if err != nil {
		r.Error = toError(err)
	} else {
		b, merr := json.Marshal(res)
		if merr != nil {
			r.Error = toError(fmt.Errorf("encode result: %w", merr))
		} else {
			r.Result = b
		}
	}
	out, merr := json.Marshal(r)
	if merr != nil { // cannot happen: every field is a string or raw JSON
		return []byte(`{"error":{"code":"internal","message":"encode response"}}`)
	}
	return out
}

// decodeStrict unmarshals b into v, rejecting unknown fields and trailing
// data. Empty b means {}.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the JSON value", ErrBadRequest)
	}
	return nil
}

func (d *Dispatcher) run(op string, args json.RawMessage) (any, error) {
	switch op {
	case OpOps:
		return map[string]any{"abi_version": Version, "ops": Ops()}, decodeStrict(args, &struct{}{})
	case OpValidateMemory:
		return call(args, opValidateMemory)
	case OpValidateProject:
		return call(args, opValidateProject)
	case OpCheckTransition:
		return call(args, opCheckTransition)
	case OpQuality:
		return call(args, opQuality)
	case OpCosine:
		return call(args, opCosine)
	case OpTokenize:
		return call(args, opTokenize)
	case OpBM25:
		return call(args, opBM25)
	case OpEmbed:
		return call(args, opEmbed)
	case OpMergeMemory:
		return call(args, opMergeMemory)
	case OpSearch:
		return call(args, d.opSearch)
	case OpCorpusLoad:
		return call(args, d.opCorpusLoad)
	case OpCorpusDrop:
		return call(args, d.opCorpusDrop)
	case OpPlanConsolidation:
		return call(args, opPlanConsolidation)
	}
	return nil, fmt.Errorf("%w: unknown op %q", ErrBadRequest, op)
}

func call[A any](args json.RawMessage, fn func(*A) (any, error)) (any, error) {
	var a A
	if err := decodeStrict(args, &a); err != nil {
		return nil, err
	}
	return fn(&a)
}

// ---- validation and rules ----

// Limits are core.Limits on the wire; zero fields take core's defaults.
type Limits struct {
	MaxContentBytes int `json:"max_content_bytes,omitempty"`
	MaxTextBytes    int `json:"max_text_bytes,omitempty"`
	MaxDocBytes     int `json:"max_doc_bytes,omitempty"`
	MaxTags         int `json:"max_tags,omitempty"`
	MaxTagBytes     int `json:"max_tag_bytes,omitempty"`
	MaxFiles        int `json:"max_files,omitempty"`
	MaxDim          int `json:"max_dim,omitempty"`
	MaxK            int `json:"max_k,omitempty"`
}

func (l Limits) core() core.Limits { return core.Limits(l) }

// ValidateMemoryArgs are the arguments of validate_memory. Embedding and
// Content, when set, replace the memory's, so that a caller can send NaN
// vectors and invalid UTF-8.
type ValidateMemoryArgs struct {
	Memory    core.Memory  `json:"memory"`
	Project   core.Project `json:"project"`
	Limits    Limits       `json:"limits"`
	Embedding Vector       `json:"embedding,omitempty"`
	Content   *Text        `json:"content,omitempty"`
}

func opValidateMemory(a *ValidateMemoryArgs) (any, error) {
	m := a.Memory
	if a.Embedding != nil {
		m.Embedding = a.Embedding
	}
	if a.Content != nil {
		m.Content = string(*a.Content)
	}
	if err := a.Limits.core().ValidateMemory(&m, &a.Project); err != nil {
		return nil, err
	}
	return struct {
		Memory core.Memory `json:"memory"`
	}{m}, nil
}

// ValidateProjectArgs are the arguments of validate_project.
type ValidateProjectArgs struct {
	Project core.Project `json:"project"`
	Limits  Limits       `json:"limits"`
}

func opValidateProject(a *ValidateProjectArgs) (any, error) {
	p := a.Project
	if err := a.Limits.core().ValidateProject(&p); err != nil {
		return nil, err
	}
	return struct {
		Project core.Project `json:"project"`
	}{p}, nil
}

// CheckTransitionArgs are the arguments of check_transition.
type CheckTransitionArgs struct {
	From core.State `json:"from"`
	To   core.State `json:"to"`
}

func opCheckTransition(a *CheckTransitionArgs) (any, error) {
	if err := core.CheckTransition(a.From, a.To); err != nil {
		return nil, err
	}
	return struct {
		Allowed bool         `json:"allowed"`
		Next    []core.State `json:"next"`
	}{true, a.To.Next()}, nil
}

// QualityArgs are the arguments of quality.
type QualityArgs struct {
	Usefulness  Float `json:"usefulness"`
	Confidence  Float `json:"confidence"`
	AccessCount int64 `json:"access_count"`
}

func opQuality(a *QualityArgs) (any, error) {
	return struct {
		Quality Float `json:"quality"`
	}{Float(core.Quality(float64(a.Usefulness), float64(a.Confidence), a.AccessCount))}, nil
}

// CosineArgs are the arguments of cosine.
type CosineArgs struct {
	A Vector `json:"a"`
	B Vector `json:"b"`
}

func opCosine(a *CosineArgs) (any, error) {
	return struct {
		Cosine Float `json:"cosine"`
	}{Float(core.Cosine(a.A, a.B))}, nil
}

// ---- text ----

// TokenizeArgs are the arguments of tokenize.
type TokenizeArgs struct {
	Text Text `json:"text"`
}

func opTokenize(a *TokenizeArgs) (any, error) {
	s := string(a.Text)
	toks := core.Tokenize(s)
	return struct {
		Tokens      []string       `json:"tokens"`
		Terms       []string       `json:"terms"`
		TermFreqs   map[string]int `json:"term_freqs"`
		Normalized  string         `json:"normalized"`
		ContentHash string         `json:"content_hash"`
	}{toks, core.Terms(s), core.TermFreqs(toks), core.NormalizeText(s), core.NormalizeContentHash(s)}, nil
}

// BM25Args are the arguments of bm25. The query terms are QueryTerms if
// set, else Terms(Query); the document's term frequencies and length are
// DocTF and DocLen if DocTF is set, else those of Tokenize(Doc).
type BM25Args struct {
	K1         Float            `json:"k1"`
	B          Float            `json:"b"`
	Query      Text             `json:"query"`
	QueryTerms []string         `json:"query_terms"`
	Doc        Text             `json:"doc"`
	DocTF      map[string]int   `json:"doc_tf"`
	DocLen     int              `json:"doc_len"`
	Docs       int64            `json:"docs"`
	TotalLen   int64            `json:"total_len"`
	DF         map[string]int64 `json:"df"`
}

func opBM25(a *BM25Args) (any, error) {
	p := core.BM25Params{K1: float64(a.K1), B: float64(a.B)}
	terms := a.QueryTerms
	if terms == nil {
		terms = core.Terms(string(a.Query))
	}
	tf, n := a.DocTF, a.DocLen
	if tf == nil {
		toks := core.Tokenize(string(a.Doc))
		tf, n = core.TermFreqs(toks), len(toks)
	}
	stats := core.CorpusStats{Docs: a.Docs, TotalLen: a.TotalLen, DF: a.DF}
	idf := make(map[string]Float, len(terms))
	for _, t := range terms {
		idf[t] = Float(p.IDF(stats.DF[t], stats.Docs))
	}
	return struct {
		Score     Float            `json:"score"`
		Terms     []string         `json:"terms"`
		DocLen    int              `json:"doc_len"`
		AvgDocLen Float            `json:"avg_doc_len"`
		IDF       map[string]Float `json:"idf"`
	}{Float(p.Score(terms, tf, n, stats)), terms, n, Float(stats.AvgDocLen()), idf}, nil
}

// EmbedArgs are the arguments of embed: the core.HashEmbedder of Dim
// (core.DefaultEmbedDim if 0).
type EmbedArgs struct {
	Text Text `json:"text"`
	Dim  int  `json:"dim"`
}

func opEmbed(a *EmbedArgs) (any, error) {
	e := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: a.Dim})
	return struct {
		Model  string `json:"model"`
		Dim    int    `json:"dim"`
		Vector Vector `json:"vector"`
	}{e.Model(), e.Dim(), e.EmbedOne(string(a.Text))}, nil
}

// ---- merge ----

// MergeMemoryArgs are the arguments of merge_memory: core.MergeMemory of
// Current (absent: nil), Tombstoned and Change.
type MergeMemoryArgs struct {
	Current    *core.Memory `json:"current"`
	Tombstoned bool         `json:"tombstoned"`
	Change     core.Change  `json:"change"`
}

func opMergeMemory(a *MergeMemoryArgs) (any, error) {
	eff := core.MergeMemory(a.Current, a.Tombstoned, &a.Change)
	return struct {
		Status core.Status  `json:"status"`
		Reason string       `json:"reason,omitempty"`
		Delete bool         `json:"delete,omitempty"`
		Memory *core.Memory `json:"memory,omitempty"`
	}{eff.Status, eff.Reason, eff.Delete, eff.Memory}, nil
}

// ---- search ----

// CorpusArgs describe a store to search: a project and its memories, held
// in core/memstore behind a core.DB whose clock is stopped at NowMS and
// whose embedder is the HashEmbedder of the project's dimension. Memories
// are stored with [core.Tx.Remember], in order; a memory without ID gets
// core.DeriveID(now, "abi", index) and one without embedding is embedded.
type CorpusArgs struct {
	Project  CorpusProject `json:"project"`
	NowMS    int64         `json:"now_ms"`
	Memories []core.Memory `json:"memories"`
}

// CorpusProject is the project of a corpus; the embedding model is always
// core.HashEmbedderModel.
type CorpusProject struct {
	Name         string `json:"name"`
	Path         string `json:"path"`
	EmbeddingDim int    `json:"embedding_dim"`
}

type corpus struct {
	db      *core.DB
	project core.Project
}

func loadCorpus(a *CorpusArgs) (*corpus, error) {
	ctx := context.Background()
	now := core.FromUnixMilli(a.NowMS)
	if now.IsZero() {
		now = time.Unix(0, 0).UTC()
	}
	emb := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: a.Project.EmbeddingDim})
	db := core.New(memstore.New(), core.Config{
		Device:   "abi",
		Clock:    core.NewClock(core.ClockConfig{Now: func() time.Time { return now }}),
		Embedder: emb,
	})
	name, path := a.Project.Name, a.Project.Path
	if name == "" {
		name = core.DefaultProjectName
	}
	if path == "" {
		path = "/" + name
	}
	c := &corpus{db: db}
	err := db.Update(ctx, func(tx *core.Tx) error {
		p, err := tx.CreateProject(ctx, core.Project{Name: name, Path: path, EmbeddingModel: emb.Model(), EmbeddingDim: emb.Dim()})
		if err != nil {
			return err
		}
		c.project = p
		for i, m := range a.Memories {
			m.ProjectID = p.ID
			if m.ID == "" {
				m.ID = core.DeriveID(now, "abi", fmt.Sprint(i))
			}
			if _, err := tx.Remember(ctx, m); err != nil {
				return fmt.Errorf("memories[%d]: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Query is core.Query on the wire. Durations are nanoseconds, as in
// core's own JSON.
type Query struct {
	Text           Text                              `json:"text"`
	Embedding      Vector                            `json:"embedding,omitempty"`
	K              int                               `json:"k"`
	Fusion         string                            `json:"fusion"`
	SemanticWeight Float                             `json:"semantic_weight"`
	KeywordWeight  Float                             `json:"keyword_weight"`
	RRFK           Float                             `json:"rrf_k"`
	States         []core.State                      `json:"states"`
	Types          []core.MemoryType                 `json:"types"`
	Domain         string                            `json:"domain"`
	Tags           []string                          `json:"tags"`
	SessionID      string                            `json:"session_id"`
	SemanticOnly   bool                              `json:"semantic_only"`
	Threshold      Float                             `json:"threshold"`
	QualityBoost   Float                             `json:"quality_boost"`
	RecencyBoost   Float                             `json:"recency_boost"`
	HalfLife       map[core.MemoryType]time.Duration `json:"half_life"`
	Exact          bool                              `json:"exact"`
	Explain        bool                              `json:"explain"`
}

func (q *Query) core(project core.ID) core.Query {
	return core.Query{
		ProjectID: project, Text: string(q.Text), Embedding: q.Embedding, K: q.K,
		Fusion: q.Fusion, SemanticWeight: float64(q.SemanticWeight), KeywordWeight: float64(q.KeywordWeight), RRFK: float64(q.RRFK),
		States:       q.States,
		Filter:       core.MemoryFilter{Types: q.Types, Domain: q.Domain, Tags: q.Tags, SessionID: q.SessionID},
		SemanticOnly: q.SemanticOnly, Threshold: float64(q.Threshold),
		QualityBoost: float64(q.QualityBoost), RecencyBoost: float64(q.RecencyBoost), HalfLife: q.HalfLife,
		Exact: q.Exact, Explain: q.Explain,
	}
}

// SearchArgs are the arguments of search: a query against a corpus loaded
// with corpus.load (Corpus) or given inline (CorpusArgs, loaded for this
// call only). Hits carry no embedding unless WithEmbeddings.
type SearchArgs struct {
	Corpus         uint32      `json:"corpus"`
	Inline         *CorpusArgs `json:"inline"`
	Query          Query       `json:"query"`
	WithEmbeddings bool        `json:"with_embeddings"`
}

func (d *Dispatcher) opSearch(a *SearchArgs) (any, error) {
	var c *corpus
	switch {
	case a.Inline != nil && a.Corpus != 0:
		return nil, fmt.Errorf("%w: search: corpus and inline are exclusive", ErrBadRequest)
	case a.Inline != nil:
		var err error
		if c, err = loadCorpus(a.Inline); err != nil {
			return nil, fmt.Errorf("search: load: %w", err)
		}
	default:
		c = d.corpora[a.Corpus]
		if c == nil {
			return nil, fmt.Errorf("search: corpus %d: %w", a.Corpus, core.ErrNotFound)
		}
	}
	hits, err := c.db.Search(context.Background(), a.Query.core(c.project.ID))
	if err != nil {
		return nil, err
	}
	if !a.WithEmbeddings {
		for i := range hits {
			hits[i].Memory.Embedding = nil
		}
	}
	return struct {
		Hits []core.Hit `json:"hits"`
	}{hits}, nil
}

func (d *Dispatcher) opCorpusLoad(a *CorpusArgs) (any, error) {
	c, err := loadCorpus(a)
	if err != nil {
		return nil, fmt.Errorf("corpus.load: %w", err)
	}
	d.next++
	d.corpora[d.next] = c
	return struct {
		Corpus    uint32  `json:"corpus"`
		ProjectID core.ID `json:"project_id"`
		Memories  int     `json:"memories"`
	}{d.next, c.project.ID, len(a.Memories)}, nil
}

// CorpusDropArgs are the arguments of corpus.drop.
type CorpusDropArgs struct {
	Corpus uint32 `json:"corpus"`
}

func (d *Dispatcher) opCorpusDrop(a *CorpusDropArgs) (any, error) {
	if d.corpora[a.Corpus] == nil {
		return nil, fmt.Errorf("corpus.drop: corpus %d: %w", a.Corpus, core.ErrNotFound)
	}
	delete(d.corpora, a.Corpus)
	return struct {
		Dropped uint32 `json:"dropped"`
	}{a.Corpus}, nil
}

// ---- consolidation ----

// ConsolidationOptions are core.ConsolidationOptions on the wire (the
// planning fields only); zero fields take core's defaults. Durations are
// nanoseconds.
type ConsolidationOptions struct {
	NearDuplicateThreshold Float         `json:"near_duplicate_threshold"`
	EventGap               time.Duration `json:"event_gap"`
	EventSimilarity        Float         `json:"event_similarity"`
	Window                 time.Duration `json:"window"`
	Interval               time.Duration `json:"interval"`
	ArchiveAge             time.Duration `json:"archive_age"`
	ArchiveUsefulness      Float         `json:"archive_usefulness"`
	ArchiveMaxAccess       int64         `json:"archive_max_access"`
	Limits                 Limits        `json:"limits"`
}

// PlanConsolidationArgs are the arguments of plan_consolidation:
// core.PlanConsolidation of a core.ConsolidationInput.
type PlanConsolidationArgs struct {
	Project    core.Project         `json:"project"`
	Memories   []core.Memory        `json:"memories"`
	Events     []core.Event         `json:"events"`
	NowMS      int64                `json:"now_ms"`
	Embeddings map[core.ID]Vector   `json:"embeddings"`
	CanEmbed   bool                 `json:"can_embed"`
	Options    ConsolidationOptions `json:"options"`
}

func opPlanConsolidation(a *PlanConsolidationArgs) (any, error) {
	var embs map[core.ID][]float32
	if a.Embeddings != nil {
		embs = make(map[core.ID][]float32, len(a.Embeddings))
		for id, v := range a.Embeddings {
			embs[id] = v
		}
	}
	o := a.Options
	plan := core.PlanConsolidation(core.ConsolidationInput{
		Project: a.Project, Memories: a.Memories, Events: a.Events, Now: core.FromUnixMilli(a.NowMS),
		Embeddings: embs, CanEmbed: a.CanEmbed,
	}, core.ConsolidationOptions{
		NearDuplicateThreshold: float64(o.NearDuplicateThreshold), EventGap: o.EventGap,
		EventSimilarity: float64(o.EventSimilarity), Window: o.Window, Interval: o.Interval,
		ArchiveAge: o.ArchiveAge, ArchiveUsefulness: float64(o.ArchiveUsefulness), ArchiveMaxAccess: o.ArchiveMaxAccess,
		Limits: o.Limits.core(),
	})
	return struct {
		Plan   core.ConsolidationPlan   `json:"plan"`
		Report core.ConsolidationReport `json:"report"`
	}{plan, plan.Report()}, nil
}
