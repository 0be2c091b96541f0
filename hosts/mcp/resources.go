package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
)

// ProjectSummary is the content of [URIProjectSummary].
type ProjectSummary struct {
	ID       core.ID `json:"id"`
	Name     string  `json:"name"`
	Path     string  `json:"path"`
	Memories int     `json:"memories"` // every memory, any state
	// ByState and ByType count memories; every state and type is present.
	ByState map[core.State]int      `json:"by_state"`
	ByType  map[core.MemoryType]int `json:"by_type"`
	// ProjectAccessed is the project's own last access; MemoryAccessed the
	// newest last access of any of its memories.
	ProjectAccessed *time.Time `json:"project_last_accessed,omitempty"`
	MemoryAccessed  *time.Time `json:"memory_last_accessed,omitempty"`
	EmbeddingModel  string     `json:"embedding_model"`
	EmbeddingDim    int        `json:"embedding_dim"`
}

// RecentMemories is the content of [URIRecentMemories].
type RecentMemories struct {
	Project  string   `json:"project"`
	Memories []Memory `json:"memories"` // newest first
}

const summaryPage = 1000

func (s *server) addResources(srv *mcp.Server) {
	srv.AddResource(&mcp.Resource{URI: URIProjectSummary, Name: "project-summary", Title: "Current project summary",
		MIMEType:    "application/json",
		Description: "The current project: name, path, memory counts by consolidation state and type, last access."},
		s.resourceHandler(URIProjectSummary, func(ctx context.Context) (any, error) { return s.summary(ctx) }))
	srv.AddResource(&mcp.Resource{URI: URIRecentMemories, Name: "recent-memories", Title: "Recent memories",
		MIMEType:    "application/json",
		Description: fmt.Sprintf("The current project's %d newest memories, newest first.", RecentLimit)},
		s.resourceHandler(URIRecentMemories, func(ctx context.Context) (any, error) { return s.recent(ctx) }))
}

func (s *server) resourceHandler(uri string, fn func(context.Context) (any, error)) mcp.ResourceHandler {
	return func(ctx context.Context, _ *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		v, err := call(ctx, s, fn)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", uri, err)
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}}, nil
	}
}

// summary counts the project's memories page by page.
func (s *server) summary(ctx context.Context) (ProjectSummary, error) {
	p, err := s.db.Project(ctx, s.p.ID)
	if err != nil {
		return ProjectSummary{}, err
	}
	out := ProjectSummary{ID: p.ID, Name: p.Name, Path: p.Path, ByState: map[core.State]int{}, ByType: map[core.MemoryType]int{},
		ProjectAccessed: native.TimePtr(p.LastAccessed), EmbeddingModel: p.EmbeddingModel, EmbeddingDim: p.EmbeddingDim}
	for _, st := range core.States() {
		out.ByState[st] = 0
	}
	for _, t := range core.MemoryTypes() {
		out.ByType[t] = 0
	}
	var last time.Time
	f := core.MemoryFilter{ProjectID: p.ID, States: core.States(), Limit: summaryPage}
	for {
		ms, err := s.db.Memories(ctx, f)
		if err != nil {
			return ProjectSummary{}, err
		}
		for _, m := range ms {
			out.Memories++
			out.ByState[m.State]++
			out.ByType[m.MemoryType]++
			if m.LastAccessed.After(last) {
				last = m.LastAccessed
			}
		}
		if len(ms) < summaryPage {
			break
		}
		f.AfterID = ms[len(ms)-1].ID
	}
	out.MemoryAccessed = native.TimePtr(last)
	return out, nil
}

func (s *server) recent(ctx context.Context) (RecentMemories, error) {
	ms, err := s.db.Memories(ctx, core.MemoryFilter{ProjectID: s.p.ID, States: core.States(), Newest: true, Limit: RecentLimit})
	if err != nil {
		return RecentMemories{}, err
	}
	out := RecentMemories{Project: s.p.Name, Memories: make([]Memory, len(ms))}
	for i, m := range ms {
		out.Memories[i] = s.memoryOut(m)
	}
	return out, nil
}
