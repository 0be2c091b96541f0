package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// memoryJSON is the stable JSON shape of a memory (docs/CLI.md).
type memoryJSON struct {
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

// hitJSON is one recall result.
type hitJSON struct {
	memoryJSON
	SemanticSimilarity float64       `json:"semantic_similarity"`
	KeywordScore       float64       `json:"keyword_score"`
	HybridScore        float64       `json:"hybrid_score"`
	Explain            *core.Explain `json:"explain,omitempty"`
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toMemoryJSON(m core.Memory, project string) memoryJSON {
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	return memoryJSON{ID: m.ID, Project: project, Content: m.Content, MemoryType: m.MemoryType, Domain: m.Domain, Tags: tags,
		SessionID: m.SessionID, EventType: m.EventType, ConsolidationState: m.State, SupersededBy: m.SupersededBy,
		Usefulness: m.Usefulness, Confidence: m.Confidence, QualityScore: m.QualityScore, AccessCount: m.AccessCount,
		EmbeddingModel: m.EmbeddingModel, EmbeddingDim: len(m.Embedding), CreatedAt: tp(m.CreatedAt), UpdatedAt: tp(m.UpdatedAt),
		LastAccessed: tp(m.LastAccessed), ConsolidatedAt: tp(m.ConsolidatedAt)}
}

// printMemory prints one memory for people.
func printMemory(w io.Writer, m core.Memory) {
	fmt.Fprintf(w, "%s  [%s · %s · %s]\n", m.ID, m.MemoryType, m.State, m.Domain)
	fmt.Fprintf(w, "  %s\n", indent(m.Content))
	if len(m.Tags) > 0 {
		fmt.Fprintf(w, "  tags: %s\n", strings.Join(m.Tags, ", "))
	}
	fmt.Fprintf(w, "  quality %.2f · accessed %d× · created %s\n", m.QualityScore, m.AccessCount, m.CreatedAt.Local().Format("2006-01-02 15:04"))
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n  ") }

// truncate shortens s to n runes for one-line listings.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
