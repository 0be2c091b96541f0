package native

import (
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// MemoryJSON is the stable JSON shape of a memory that the CLI's --json and
// the MCP tools share (docs/CLI.md): no embedding, its dimension instead,
// the project by name, and times that are never set left out.
type MemoryJSON struct {
	ID                 core.ID         `json:"id"`
	Project            string          `json:"project"`
	Content            string          `json:"content"`
	MemoryType         core.MemoryType `json:"memory_type"`
	Domain             string          `json:"domain"`
	Tags               []string        `json:"tags"`
	SessionID          string          `json:"session_id,omitempty"`
	EventType          string          `json:"event_type,omitempty"`
	ConsolidationState core.State      `json:"consolidation_state"`
	SupersededBy       core.ID         `json:"superseded_by,omitempty"`
	Usefulness         float64         `json:"usefulness"`
	Confidence         float64         `json:"confidence"`
	QualityScore       float64         `json:"quality_score"`
	AccessCount        int64           `json:"access_count"`
	EmbeddingModel     string          `json:"embedding_model"`
	EmbeddingDim       int             `json:"embedding_dim"`
	CreatedAt          *time.Time      `json:"created_at"`
	UpdatedAt          *time.Time      `json:"updated_at,omitempty"`
	LastAccessed       *time.Time      `json:"last_accessed,omitempty"`
	ConsolidatedAt     *time.Time      `json:"consolidated_at,omitempty"`
}

// HitJSON is one search result in the same shape, with core's scores.
type HitJSON struct {
	MemoryJSON
	SemanticSimilarity float64       `json:"semantic_similarity"`
	KeywordScore       float64       `json:"keyword_score"`
	HybridScore        float64       `json:"hybrid_score"`
	Explain            *core.Explain `json:"explain,omitempty"`
}

// NewMemoryJSON shapes m, naming its project.
func NewMemoryJSON(m core.Memory, project string) MemoryJSON {
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	return MemoryJSON{ID: m.ID, Project: project, Content: m.Content, MemoryType: m.MemoryType, Domain: m.Domain, Tags: tags,
		SessionID: m.SessionID, EventType: m.EventType, ConsolidationState: m.State, SupersededBy: m.SupersededBy,
		Usefulness: m.Usefulness, Confidence: m.Confidence, QualityScore: m.QualityScore, AccessCount: m.AccessCount,
		EmbeddingModel: m.EmbeddingModel, EmbeddingDim: len(m.Embedding), CreatedAt: TimePtr(m.CreatedAt),
		UpdatedAt: TimePtr(m.UpdatedAt), LastAccessed: TimePtr(m.LastAccessed), ConsolidatedAt: TimePtr(m.ConsolidatedAt)}
}

// NewHitJSON shapes a search hit.
func NewHitJSON(h core.Hit, project string) HitJSON {
	return HitJSON{MemoryJSON: NewMemoryJSON(h.Memory, project), SemanticSimilarity: h.Semantic, KeywordScore: h.Keyword,
		HybridScore: h.Hybrid, Explain: h.Explain}
}

// TimePtr is nil for the zero time, so that JSON leaves "never" out.
func TimePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
