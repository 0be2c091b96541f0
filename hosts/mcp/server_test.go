package mcpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	mcpserver "github.com/athena-edge/athena-edge/hosts/mcp"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connect serves cfg (DB and Project filled in if unset) in-process and
// returns a client session on it.
func connect(t *testing.T, cfg mcpserver.Config) (*mcp.ClientSession, *core.DB) {
	t.Helper()
	ctx := t.Context()
	if cfg.DB == nil {
		cfg.DB = core.New(memstore.New(), core.Config{Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{})})
		t.Cleanup(func() { _ = cfg.DB.Close() })
	}
	if cfg.Project.ID == "" {
		p, err := cfg.DB.CreateProject(ctx, core.Project{Name: "demo", Path: "/src/demo"})
		require.NoError(t, err)
		cfg.Project = p
	}
	srv, err := mcpserver.New(cfg)
	require.NoError(t, err)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(context.Background(), st, nil)
	require.NoError(t, err)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil).Connect(ctx, ct, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = cs.Close()
		_ = ss.Wait()
	})
	return cs, cfg.DB
}

// callTool calls a tool and decodes its structured result into out (if
// not nil). It fails the test on a protocol error, and returns the result.
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err, "tools/call %s must not be a protocol error", name)
	if out != nil {
		require.False(t, res.IsError, "%s: %s", name, text(res))
		b, err := json.Marshal(res.StructuredContent)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, out))
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestMCPToolSchemas(t *testing.T) {
	t.Parallel()
	cs, _ := connect(t, mcpserver.Config{})
	res, err := cs.ListTools(t.Context(), nil)
	require.NoError(t, err)
	byName := map[string]*mcp.Tool{}
	for _, tl := range res.Tools {
		byName[tl.Name] = tl
	}

	tests := []struct {
		name     string
		required []string
		types    map[string]string // property → JSON type
		enums    map[string]string // property (or array property) → one allowed value
	}{
		{name: "remember", required: []string{"content"},
			types: map[string]string{"content": "string", "type": "string", "tags": "array", "domain": "string", "session": "string",
				"event_type": "string", "usefulness": "number", "confidence": "number"},
			enums: map[string]string{"type": "preference"}},
		{name: "recall", required: []string{"query"},
			types: map[string]string{"query": "string", "k": "integer", "filters": "object", "explain": "boolean", "no_touch": "boolean"}},
		{name: "get", required: []string{"id"}, types: map[string]string{"id": "string"}},
		{name: "forget", required: []string{"id"}, types: map[string]string{"id": "string"}},
		{name: "update_state", required: []string{"id", "state"},
			types: map[string]string{"id": "string", "state": "string", "superseded_by": "string"},
			enums: map[string]string{"state": "archived"}},
		{name: "record_event", required: []string{"content"},
			types: map[string]string{"content": "string", "session": "string", "event_type": "string", "outcome": "string", "cwd": "string",
				"files": "array", "task": "string", "phase": "string", "branch": "string", "learned": "string", "surprise": "number",
				"confidence": "number", "timestamp": "string"}},
		{name: "create_task", required: []string{"title"},
			types: map[string]string{"title": "string", "description": "string", "priority": "integer", "goal_id": "string",
				"parent_id": "string", "due": "string", "status": "string"},
			enums: map[string]string{"status": "in_progress"}},
		{name: "list_tasks", types: map[string]string{"status": "string", "goal_id": "string", "limit": "integer"}},
		{name: "create_goal", required: []string{"title"},
			types: map[string]string{"title": "string", "description": "string", "priority": "integer", "progress": "number",
				"status": "string", "parent_id": "string", "due": "string"},
			enums: map[string]string{"status": "on_hold"}},
		{name: "list_goals", types: map[string]string{"status": "string", "limit": "integer"}},
		{name: "link_code", required: []string{"file_path", "name"},
			types: map[string]string{"memory_id": "string", "file_path": "string", "name": "string", "entity_type": "string",
				"language": "string", "signature": "string", "docstring": "string", "semantic_hash": "string", "complexity": "integer",
				"line_start": "integer", "line_end": "integer"}},
		{name: "consolidate", types: map[string]string{"dry_run": "boolean"}},
		{name: "sync_status", types: map[string]string{}},
	}
	var want []string
	for _, tc := range tests {
		want = append(want, tc.name)
	}
	got := make([]string, 0, len(byName))
	for n := range byName {
		got = append(got, n)
	}
	require.ElementsMatch(t, want, got, "the tool list")

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tl := byName[tc.name]
			require.NotNil(t, tl)
			assert.NotEmpty(t, tl.Description)
			assert.NotContains(t, tl.Description, "\n", "one line")
			require.NotNil(t, tl.OutputSchema, "structured output")
			var in jsonschema.Schema
			b, err := json.Marshal(tl.InputSchema)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &in))
			assert.Equal(t, "object", in.Type)
			assert.ElementsMatch(t, tc.required, in.Required, "required")
			assert.Len(t, in.Properties, len(tc.types), "properties: %v", slices.Collect(mapsKeys(in.Properties)))
			for p, typ := range tc.types {
				ps := in.Properties[p]
				require.NotNil(t, ps, "property %s", p)
				assert.True(t, ps.Type == typ || slices.Contains(ps.Types, typ), "%s: type %q %v, want %s", p, ps.Type, ps.Types, typ)
				assert.NotEmpty(t, ps.Description, "%s has a description", p)
			}
			for p, v := range tc.enums {
				ps := in.Properties[p]
				if ps.Items != nil {
					ps = ps.Items
				}
				assert.Contains(t, ps.Enum, v, "%s enum", p)
			}
		})
	}

	t.Run("recall filters", func(t *testing.T) {
		t.Parallel()
		b, err := json.Marshal(byName["recall"].InputSchema)
		require.NoError(t, err)
		var in jsonschema.Schema
		require.NoError(t, json.Unmarshal(b, &in))
		f := in.Properties["filters"]
		require.NotNil(t, f)
		for _, p := range []string{"types", "states", "tags", "since", "semantic_only", "threshold", "fusion", "domain"} {
			assert.Contains(t, f.Properties, p)
		}
		assert.Contains(t, f.Properties["states"].Items.Enum, "labile")
		assert.Contains(t, f.Properties["types"].Items.Enum, "decision")
		assert.Contains(t, f.Properties["fusion"].Enum, "rrf")
		assert.JSONEq(t, `10`, string(in.Properties["k"].Default))
	})
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestMCPRememberRecallRanking(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		query   string
		want    int // index of the memory expected first
		fusion  string
		noTouch bool
	}{
		{name: "pooling", query: "database connection pooling latency", want: 0},
		{name: "lunch", query: "when is the team lunch", want: 1},
		{name: "deploy rrf", query: "deploy production friday freeze", want: 2, fusion: "rrf"},
		{name: "no touch", query: "database connection pooling", want: 0, noTouch: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs, _ := connect(t, mcpserver.Config{})
			contents := []string{
				"Use connection pooling to cut database latency under load",
				"The team lunch is on Fridays at noon in the atrium",
				"Never deploy to production on a Friday: the release freeze starts Thursday",
			}
			ids := make([]core.ID, len(contents))
			for i, c := range contents {
				var m mcpserver.Memory
				callTool(t, cs, "remember", map[string]any{"content": c, "tags": []string{"Demo"}, "type": "decision"}, &m)
				require.NotEmpty(t, m.ID)
				assert.Equal(t, []string{"demo"}, m.Tags)
				assert.Equal(t, core.TypeDecision, m.MemoryType)
				assert.Equal(t, "memory", m.Domain, "the schema default")
				assert.Equal(t, 0.5, m.Usefulness, "the schema default")
				ids[i] = m.ID
			}
			args := map[string]any{"query": tc.query, "k": 3, "explain": true, "no_touch": tc.noTouch}
			if tc.fusion != "" {
				args["filters"] = map[string]any{"fusion": tc.fusion}
			}
			var out mcpserver.RecallOut
			callTool(t, cs, "recall", args, &out)
			require.NotEmpty(t, out.Hits)
			assert.Equal(t, ids[tc.want], out.Hits[0].ID, "first hit: %s", out.Hits[0].Content)
			for i := 1; i < len(out.Hits); i++ {
				assert.GreaterOrEqual(t, out.Hits[i-1].HybridScore, out.Hits[i].HybridScore, "ordered by hybrid score")
			}
			require.NotNil(t, out.Hits[0].Explain)
			wantFusion := tc.fusion
			if wantFusion == "" {
				wantFusion = core.FusionWeighted
			}
			assert.Equal(t, wantFusion, out.Hits[0].Explain.Fusion)

			// recall records an access on what it returns unless no_touch.
			var got mcpserver.Memory
			callTool(t, cs, "get", map[string]any{"id": string(ids[tc.want])}, &got)
			wantAccess := int64(1)
			if tc.noTouch {
				wantAccess = 0
			}
			assert.Equal(t, wantAccess, got.AccessCount)
			assert.Equal(t, wantAccess, out.Hits[0].AccessCount)
		})
	}
}

func TestMCPInvalidArguments(t *testing.T) {
	t.Parallel()
	cs, db := connect(t, mcpserver.Config{})
	var m mcpserver.Memory
	callTool(t, cs, "remember", map[string]any{"content": "a memory to act on"}, &m)
	missing := string(core.NewID(time.Now()))
	_ = db

	tests := []struct {
		name  string
		tool  string
		args  map[string]any
		field string // the argument the error must name
	}{
		{name: "k negative", tool: "recall", args: map[string]any{"query": "x", "k": -1}, field: `"k"`},
		{name: "k zero", tool: "recall", args: map[string]any{"query": "x", "k": 0}, field: `"k"`},
		{name: "k too large", tool: "recall", args: map[string]any{"query": "x", "k": 1_000_000}, field: `"k"`},
		{name: "k wrong type", tool: "recall", args: map[string]any{"query": "x", "k": "ten"}, field: "/properties/k"},
		{name: "query missing", tool: "recall", args: map[string]any{"k": 3}, field: "query"},
		{name: "unknown state filter", tool: "recall", args: map[string]any{"query": "x", "filters": map[string]any{"states": []string{"asleep"}}}, field: "states"},
		{name: "unknown type filter", tool: "recall", args: map[string]any{"query": "x", "filters": map[string]any{"types": []string{"gossip"}}}, field: "types"},
		{name: "bad since", tool: "recall", args: map[string]any{"query": "x", "filters": map[string]any{"since": "last tuesday"}}, field: `"filters.since"`},
		{name: "bad threshold", tool: "recall", args: map[string]any{"query": "x", "filters": map[string]any{"threshold": 2}}, field: `"filters.threshold"`},
		{name: "NUL query", tool: "recall", args: map[string]any{"query": "a\x00b"}, field: `"query"`},
		{name: "NUL content", tool: "remember", args: map[string]any{"content": "a\x00b"}, field: `"content"`},
		{name: "empty content", tool: "remember", args: map[string]any{"content": "  "}, field: `"content"`},
		{name: "unknown type", tool: "remember", args: map[string]any{"content": "x", "type": "gossip"}, field: "/properties/type"},
		{name: "usefulness out of range", tool: "remember", args: map[string]any{"content": "x", "usefulness": 7}, field: "/properties/usefulness"},
		{name: "bad tag", tool: "remember", args: map[string]any{"content": "x", "tags": []string{"a,b"}}, field: `"tags`},
		{name: "unknown argument", tool: "remember", args: map[string]any{"content": "x", "colour": "red"}, field: "colour"},
		{name: "bad ID get", tool: "get", args: map[string]any{"id": "not-a-uuid"}, field: `"id"`},
		{name: "bad ID forget", tool: "forget", args: map[string]any{"id": "01234"}, field: `"id"`},
		{name: "unknown state", tool: "update_state", args: map[string]any{"id": string(m.ID), "state": "asleep"}, field: "/properties/state"},
		{name: "illegal transition", tool: "update_state", args: map[string]any{"id": string(m.ID), "state": "labile"}, field: `"state"`},
		{name: "superseded without survivor", tool: "update_state", args: map[string]any{"id": string(m.ID), "state": "superseded"}, field: `"superseded_by"`},
		{name: "bad superseded_by", tool: "update_state", args: map[string]any{"id": string(m.ID), "state": "superseded", "superseded_by": "zz"}, field: `"superseded_by"`},
		{name: "bad event timestamp", tool: "record_event", args: map[string]any{"content": "x", "timestamp": "soon"}, field: `"timestamp"`},
		{name: "NUL event file", tool: "record_event", args: map[string]any{"content": "x", "files": []string{"a\x00"}}, field: `"files[0]"`},
		{name: "task priority", tool: "create_task", args: map[string]any{"title": "t", "priority": 99}, field: `"priority"`},
		{name: "task goal ID", tool: "create_task", args: map[string]any{"title": "t", "goal_id": "g1"}, field: `"goal_id"`},
		{name: "goal progress", tool: "create_goal", args: map[string]any{"title": "g", "progress": 3}, field: "/properties/progress"},
		{name: "list limit", tool: "list_tasks", args: map[string]any{"limit": -2}, field: `"limit"`},
		{name: "code without name", tool: "link_code", args: map[string]any{"file_path": "a.go", "name": ""}, field: `"name"`},
		{name: "code memory ID", tool: "link_code", args: map[string]any{"file_path": "a.go", "name": "f", "memory_id": "m"}, field: `"memory_id"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := callTool(t, cs, tc.tool, tc.args, nil)
			require.True(t, res.IsError, "want a tool error, got %s", text(res))
			assert.Contains(t, text(res), tc.field)
		})
	}

	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		res := callTool(t, cs, "get", map[string]any{"id": missing}, nil)
		require.True(t, res.IsError)
		assert.Contains(t, text(res), "not found")
	})
	t.Run("unknown tool is a protocol error", func(t *testing.T) {
		t.Parallel()
		_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "telepathy", Arguments: map[string]any{}})
		require.Error(t, err)
	})
}

func TestMCPRecordsAndLifecycle(t *testing.T) {
	t.Parallel()
	cs, _ := connect(t, mcpserver.Config{})

	var a, b mcpserver.Memory
	callTool(t, cs, "remember", map[string]any{"content": "Prefer table-driven tests", "type": "preference"}, &a)
	callTool(t, cs, "remember", map[string]any{"content": "Prefer table-driven tests with t.Parallel", "type": "preference"}, &b)

	var m mcpserver.Memory
	callTool(t, cs, "update_state", map[string]any{"id": string(a.ID), "state": "archived"}, &m)
	assert.Equal(t, core.StateArchived, m.ConsolidationState)
	callTool(t, cs, "update_state", map[string]any{"id": string(a.ID), "state": "superseded", "superseded_by": string(b.ID)}, &m)
	assert.Equal(t, core.StateSuperseded, m.ConsolidationState)
	assert.Equal(t, b.ID, m.SupersededBy)

	var ev core.Event
	callTool(t, cs, "record_event", map[string]any{"content": "ran the tests", "session": "s1", "outcome": "success",
		"files": []string{"a_test.go"}, "branch": "main", "surprise": 0.2}, &ev)
	assert.Equal(t, "action", ev.EventType, "the schema default")
	assert.Equal(t, []string{"a_test.go"}, ev.Context.Files)
	assert.Empty(t, ev.Embedding)

	var g core.Goal
	callTool(t, cs, "create_goal", map[string]any{"title": "ship MCP", "progress": 0.5, "due": "2030-01-02"}, &g)
	assert.Equal(t, core.GoalActive, g.Status)
	var task core.Task
	callTool(t, cs, "create_task", map[string]any{"title": "write docs", "goal_id": string(g.ID), "priority": 8}, &task)
	assert.Equal(t, g.ID, task.GoalID)
	var tasks mcpserver.TasksOut
	callTool(t, cs, "list_tasks", map[string]any{"goal_id": string(g.ID)}, &tasks)
	require.Len(t, tasks.Tasks, 1)
	assert.Equal(t, 8, tasks.Tasks[0].Priority)
	var goals mcpserver.GoalsOut
	callTool(t, cs, "list_goals", map[string]any{"status": "active"}, &goals)
	require.Len(t, goals.Goals, 1)
	callTool(t, cs, "list_goals", map[string]any{"status": "completed"}, &goals)
	assert.Empty(t, goals.Goals)
	assert.NotNil(t, goals.Goals, "an empty list, not null")

	var c core.CodeEntity
	callTool(t, cs, "link_code", map[string]any{"memory_id": string(b.ID), "file_path": "x_test.go", "name": "TestX",
		"language": "go", "line_start": 10}, &c)
	assert.Equal(t, b.ID, c.MemoryID)
	assert.Equal(t, "function", c.EntityType)
	assert.Equal(t, 10, c.LineEnd)

	var rep core.ConsolidationReport
	callTool(t, cs, "consolidate", map[string]any{"dry_run": true}, &rep)
	assert.True(t, rep.DryRun)
	assert.Equal(t, 2, rep.MemoriesScanned)
	callTool(t, cs, "consolidate", map[string]any{}, &rep)
	assert.False(t, rep.DryRun)

	var st mcpserver.SyncStatus
	callTool(t, cs, "sync_status", map[string]any{}, &st)
	assert.False(t, st.Synced)
	assert.Positive(t, st.OwnChanges)
	assert.Equal(t, st.OwnChanges, st.Pending, "never synced: everything is pending")

	var f mcpserver.ForgetOut
	callTool(t, cs, "forget", map[string]any{"id": string(b.ID)}, &f)
	assert.True(t, f.Deleted)
	res := callTool(t, cs, "get", map[string]any{"id": string(b.ID)}, nil)
	assert.True(t, res.IsError)
}

func TestMCPResources(t *testing.T) {
	t.Parallel()
	cs, _ := connect(t, mcpserver.Config{})
	for i := range 25 {
		typ := "fact"
		if i%5 == 0 {
			typ = "decision"
		}
		callTool(t, cs, "remember", map[string]any{"content": fmt.Sprintf("memory number %d", i), "type": typ}, &mcpserver.Memory{})
	}
	var out mcpserver.RecallOut
	callTool(t, cs, "recall", map[string]any{"query": "memory number 3", "k": 1}, &out)

	res, err := cs.ListResources(t.Context(), nil)
	require.NoError(t, err)
	var uris []string
	for _, r := range res.Resources {
		uris = append(uris, r.URI)
		assert.NotEmpty(t, r.Description)
	}
	assert.ElementsMatch(t, []string{mcpserver.URIProjectSummary, mcpserver.URIRecentMemories}, uris)

	tests := []struct {
		name  string
		uri   string
		check func(t *testing.T, body []byte)
	}{
		{name: "summary", uri: mcpserver.URIProjectSummary, check: func(t *testing.T, body []byte) {
			var s mcpserver.ProjectSummary
			require.NoError(t, json.Unmarshal(body, &s))
			assert.Equal(t, "demo", s.Name)
			assert.Equal(t, "/src/demo", s.Path)
			assert.Equal(t, 25, s.Memories)
			assert.Equal(t, 25, s.ByState[core.StateUnconsolidated])
			assert.Equal(t, 0, s.ByState[core.StateArchived])
			assert.Equal(t, 5, s.ByType[core.TypeDecision])
			assert.Equal(t, 20, s.ByType[core.TypeFact])
			require.NotNil(t, s.MemoryAccessed, "recall recorded an access")
		}},
		{name: "recent", uri: mcpserver.URIRecentMemories, check: func(t *testing.T, body []byte) {
			var r mcpserver.RecentMemories
			require.NoError(t, json.Unmarshal(body, &r))
			require.Len(t, r.Memories, mcpserver.RecentLimit)
			assert.Equal(t, "memory number 24", r.Memories[0].Content, "newest first")
			assert.Equal(t, "memory number 5", r.Memories[19].Content)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rr, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: tc.uri})
			require.NoError(t, err)
			require.Len(t, rr.Contents, 1)
			assert.Equal(t, "application/json", rr.Contents[0].MIMEType)
			tc.check(t, []byte(rr.Contents[0].Text))
		})
	}
}

func TestMCPBusyRetryAndPanics(t *testing.T) {
	t.Parallel()
	locked := errors.New("sqlitevec: begin: sqlite3: database is locked")
	tests := []struct {
		name      string
		failures  int32 // calls that fail with locked before one succeeds
		retries   int
		panics    bool
		wantError string
		wantCalls int32
	}{
		{name: "retried until it succeeds", failures: 3, retries: 5, wantCalls: 4},
		{name: "gives up", failures: 100, retries: 2, wantError: "database is locked", wantCalls: 3},
		{name: "no retries", failures: 1, retries: -1, wantError: "database is locked", wantCalls: 1},
		{name: "panic is a tool error", panics: true, wantError: "internal error: boom", wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			cs, _ := connect(t, mcpserver.Config{BusyRetries: tc.retries, BusyBackoff: time.Nanosecond,
				SyncStatus: func(ctx context.Context, db *core.DB) (mcpserver.SyncStatus, error) {
					n := calls.Add(1)
					if tc.panics {
						panic("boom")
					}
					if n <= tc.failures {
						return mcpserver.SyncStatus{}, fmt.Errorf("sync status: %w", locked)
					}
					return mcpserver.SyncStatus{Device: "d", Servers: []edgesync.ServerStatus{}}, nil
				}})
			res := callTool(t, cs, "sync_status", map[string]any{}, nil)
			assert.Equal(t, tc.wantCalls, calls.Load())
			if tc.wantError == "" {
				require.False(t, res.IsError, text(res))
				return
			}
			require.True(t, res.IsError)
			assert.Contains(t, text(res), tc.wantError)
		})
	}
}

func TestMCPNewConfig(t *testing.T) {
	t.Parallel()
	db := core.New(memstore.New(), core.Config{})
	t.Cleanup(func() { _ = db.Close() })
	tests := []struct {
		name string
		cfg  mcpserver.Config
	}{
		{name: "no DB", cfg: mcpserver.Config{Project: core.Project{ID: "x"}}},
		{name: "no project", cfg: mcpserver.Config{DB: db}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := mcpserver.New(tc.cfg)
			require.ErrorIs(t, err, core.ErrInvalid)
		})
	}
}
