package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
)

// ---- inputs ----

// RememberIn is the input of the remember tool.
type RememberIn struct {
	Content    string   `json:"content" jsonschema:"the memory, in one self-contained sentence or paragraph"`
	Type       string   `json:"type,omitempty" jsonschema:"memory type"`
	Tags       []string `json:"tags,omitempty" jsonschema:"tags (lowercased; no commas)"`
	Domain     string   `json:"domain,omitempty" jsonschema:"domain, a coarse area such as memory, code or ops"`
	Session    string   `json:"session,omitempty" jsonschema:"the agent session this came from"`
	EventType  string   `json:"event_type,omitempty" jsonschema:"for episodic memories: what kind of event"`
	Usefulness float64  `json:"usefulness,omitempty" jsonschema:"how useful, 0..1"`
	Confidence float64  `json:"confidence,omitempty" jsonschema:"how sure, 0..1"`
}

// RecallFilters narrow a recall.
type RecallFilters struct {
	Types        []string `json:"types,omitempty" jsonschema:"only these memory types"`
	States       []string `json:"states,omitempty" jsonschema:"only these consolidation states (default: every live state, i.e. not superseded or archived)"`
	Tags         []string `json:"tags,omitempty" jsonschema:"every result must have all of these tags"`
	Domain       string   `json:"domain,omitempty" jsonschema:"only this domain"`
	Since        string   `json:"since,omitempty" jsonschema:"only memories created since: a duration back from now (24h, 90m) or a date/time (2026-01-02, RFC 3339)"`
	SemanticOnly bool     `json:"semantic_only,omitempty" jsonschema:"vector search only, dropping hits below threshold"`
	Threshold    float64  `json:"threshold,omitempty" jsonschema:"minimum cosine similarity, -1..1 (semantic_only default 0.3)"`
	Fusion       string   `json:"fusion,omitempty" jsonschema:"how the semantic and keyword scores are fused"`
}

// RecallIn is the input of the recall tool.
type RecallIn struct {
	Query   string         `json:"query" jsonschema:"what to look for, in words"`
	K       int            `json:"k,omitempty" jsonschema:"number of results, 1..1000"`
	Filters *RecallFilters `json:"filters,omitempty" jsonschema:"optional filters and search options"`
	Explain bool           `json:"explain,omitempty" jsonschema:"explain each hit's score"`
	NoTouch bool           `json:"no_touch,omitempty" jsonschema:"do not record an access on the returned memories"`
}

// IDIn is the input of get and forget.
type IDIn struct {
	ID string `json:"id" jsonschema:"the memory ID (a UUID)"`
}

// UpdateStateIn is the input of update_state.
type UpdateStateIn struct {
	ID           string `json:"id" jsonschema:"the memory ID (a UUID)"`
	State        string `json:"state" jsonschema:"the new consolidation state; the state machine is enforced"`
	SupersededBy string `json:"superseded_by,omitempty" jsonschema:"the surviving memory's ID, required when state is superseded"`
}

// RecordEventIn is the input of record_event.
type RecordEventIn struct {
	Content    string   `json:"content" jsonschema:"what happened"`
	Session    string   `json:"session,omitempty" jsonschema:"the agent session"`
	EventType  string   `json:"event_type,omitempty" jsonschema:"kind of event: action, error, decision, observation, ..."`
	Outcome    string   `json:"outcome,omitempty" jsonschema:"how it turned out: success, failure, ..."`
	Cwd        string   `json:"cwd,omitempty" jsonschema:"working directory"`
	Files      []string `json:"files,omitempty" jsonschema:"files involved"`
	Task       string   `json:"task,omitempty" jsonschema:"the task being worked on"`
	Phase      string   `json:"phase,omitempty" jsonschema:"phase of the task"`
	Branch     string   `json:"branch,omitempty" jsonschema:"version-control branch"`
	Learned    string   `json:"learned,omitempty" jsonschema:"what was learned"`
	Surprise   float64  `json:"surprise,omitempty" jsonschema:"how surprising, 0..1"`
	Confidence float64  `json:"confidence,omitempty" jsonschema:"how sure, 0..1"`
	Timestamp  string   `json:"timestamp,omitempty" jsonschema:"when (RFC 3339 or unix milliseconds); default now"`
}

// CreateTaskIn is the input of create_task.
type CreateTaskIn struct {
	Title       string `json:"title" jsonschema:"the task"`
	Description string `json:"description,omitempty" jsonschema:"details"`
	Status      string `json:"status,omitempty" jsonschema:"status (default pending)"`
	Priority    int    `json:"priority,omitempty" jsonschema:"priority 1..10, higher first (default 5)"`
	GoalID      string `json:"goal_id,omitempty" jsonschema:"the goal this task serves"`
	ParentID    string `json:"parent_id,omitempty" jsonschema:"the parent task"`
	Due         string `json:"due,omitempty" jsonschema:"due date (2026-01-02, RFC 3339 or unix milliseconds)"`
}

// ListTasksIn is the input of list_tasks.
type ListTasksIn struct {
	Status string `json:"status,omitempty" jsonschema:"only tasks with this status"`
	GoalID string `json:"goal_id,omitempty" jsonschema:"only tasks of this goal"`
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many (0: all)"`
}

// CreateGoalIn is the input of create_goal.
type CreateGoalIn struct {
	Title       string  `json:"title" jsonschema:"the goal"`
	Description string  `json:"description,omitempty" jsonschema:"details"`
	Status      string  `json:"status,omitempty" jsonschema:"status (default active)"`
	Priority    int     `json:"priority,omitempty" jsonschema:"priority 1..10, higher first (default 5)"`
	ParentID    string  `json:"parent_id,omitempty" jsonschema:"the parent goal"`
	Progress    float64 `json:"progress,omitempty" jsonschema:"progress 0..1"`
	Due         string  `json:"due,omitempty" jsonschema:"due date (2026-01-02, RFC 3339 or unix milliseconds)"`
}

// ListGoalsIn is the input of list_goals.
type ListGoalsIn struct {
	Status string `json:"status,omitempty" jsonschema:"only goals with this status"`
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many (0: all)"`
}

// LinkCodeIn is the input of link_code.
type LinkCodeIn struct {
	MemoryID     string `json:"memory_id,omitempty" jsonschema:"the memory this code entity belongs to"`
	FilePath     string `json:"file_path" jsonschema:"the file, relative to the project root"`
	Name         string `json:"name" jsonschema:"the entity's name"`
	EntityType   string `json:"entity_type,omitempty" jsonschema:"function, method, class, module, ... (default function)"`
	Language     string `json:"language,omitempty" jsonschema:"programming language"`
	Signature    string `json:"signature,omitempty" jsonschema:"signature"`
	Docstring    string `json:"docstring,omitempty" jsonschema:"doc comment"`
	SemanticHash string `json:"semantic_hash,omitempty" jsonschema:"a hash of the entity's normalized code"`
	Complexity   int    `json:"complexity,omitempty" jsonschema:"cyclomatic complexity"`
	LineStart    int    `json:"line_start,omitempty" jsonschema:"first line"`
	LineEnd      int    `json:"line_end,omitempty" jsonschema:"last line"`
}

// ConsolidateIn is the input of consolidate.
type ConsolidateIn struct {
	DryRun bool `json:"dry_run,omitempty" jsonschema:"report what would change without writing"`
}

// NoIn is the input of tools without arguments.
type NoIn struct{}

// ---- outputs ----

// Memory is a memory as tools return it: docs/CLI.md's JSON shape (no
// embedding, the project by name), shared with the CLI.
type Memory = native.MemoryJSON

// Hit is one recall result.
type Hit = native.HitJSON

// RecallOut is the result of recall, best hit first.
type RecallOut struct {
	Hits []Hit `json:"hits"`
}

// ForgetOut is the result of forget.
type ForgetOut struct {
	ID      core.ID `json:"id"`
	Deleted bool    `json:"deleted"`
}

// EventsOut, TasksOut, GoalsOut wrap lists.
type (
	TasksOut struct {
		Tasks []core.Task `json:"tasks"`
	}
	GoalsOut struct {
		Goals []core.Goal `json:"goals"`
	}
)

func (s *server) memoryOut(m core.Memory) Memory {
	project := s.p.Name
	if m.ProjectID != s.p.ID {
		project = string(m.ProjectID) // a memory of another project, fetched by ID
	}
	return native.NewMemoryJSON(m, project)
}

// ---- schema helpers ----

func strs[T ~string](vs []T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func memoryTypes() []any { return strs(core.MemoryTypes()) }
func states() []any      { return strs(core.States()) }

func prop(s *jsonschema.Schema, path ...string) *jsonschema.Schema {
	for _, p := range path {
		s = s.Properties[p]
	}
	return s
}

// enum restricts a string property (or an array's items) to vs.
func enum(p *jsonschema.Schema, vs []any) {
	if p.Items != nil {
		p = p.Items
	}
	p.Enum = vs
}

// def sets a property's default, which the SDK fills in when the argument
// is absent.
func def(p *jsonschema.Schema, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only constants reach here
	}
	p.Default = b
}

func bounds(p *jsonschema.Schema, lo, hi float64) {
	p.Minimum, p.Maximum = &lo, &hi
}

// ---- parsing ----

func parseID(field, s string) (core.ID, error) {
	id, err := core.ParseID(s)
	if err != nil {
		if fe, ok := err.(*core.FieldError); ok {
			return "", &core.FieldError{Field: field, Reason: fe.Reason, Err: fe.Err}
		}
		return "", err
	}
	return id, nil
}

func optID(field, s string) (core.ID, error) {
	if s == "" {
		return "", nil
	}
	return parseID(field, s)
}

func fieldErr(field, format string, args ...any) error {
	return &core.FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Err: core.ErrInvalid}
}

// parseWhen parses "since"-style input: a duration back from now, a date,
// or RFC 3339.
func parseWhen(field, s string, now time.Time, durations bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if durations {
		if d, err := time.ParseDuration(s); err == nil && d >= 0 {
			return now.Add(-d), nil
		}
	} else if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 {
		return time.UnixMilli(ms).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t.UTC(), nil
		}
	}
	if durations {
		return time.Time{}, fieldErr(field, "%q: want a duration (24h) or a date (2006-01-02, RFC 3339)", s)
	}
	return time.Time{}, fieldErr(field, "%q: want RFC 3339, a date (2006-01-02) or unix milliseconds", s)
}

// ---- tools ----

func (s *server) addTools(srv *mcp.Server) error {
	ro := &mcp.ToolAnnotations{ReadOnlyHint: true}
	no := false
	yes := true
	additive := &mcp.ToolAnnotations{DestructiveHint: &no}
	memFields := map[string]string{"memory_type": "type", "session_id": "session", "consolidation_state": "state"}

	regs := []error{
		tool(srv, s, &mcp.Tool{Name: "remember", Annotations: additive,
			Description: "Store a memory (a fact, decision, pattern, preference, ...) in the current project; returns it with its ID."},
			memFields, func(sch *jsonschema.Schema) {
				enum(prop(sch, "type"), memoryTypes())
				def(prop(sch, "type"), string(core.TypeFact))
				def(prop(sch, "domain"), "memory")
				def(prop(sch, "usefulness"), 0.5)
				def(prop(sch, "confidence"), 1.0)
				bounds(prop(sch, "usefulness"), 0, 1)
				bounds(prop(sch, "confidence"), 0, 1)
			}, s.remember),
		tool(srv, s, &mcp.Tool{Name: "recall", Annotations: &mcp.ToolAnnotations{DestructiveHint: &no, IdempotentHint: true},
			Description: "Search the current project's memories by meaning and keywords (hybrid); returns the best hits first and records an access on them unless no_touch."},
			map[string]string{"memory_type": "filters.types", "state": "filters.states", "tags": "filters.tags",
				"threshold": "filters.threshold", "fusion": "filters.fusion", "domain": "filters.domain"},
			func(sch *jsonschema.Schema) {
				def(prop(sch, "k"), core.DefaultK)
				f := prop(sch, "filters")
				enum(prop(f, "types"), memoryTypes())
				enum(prop(f, "states"), states())
				enum(prop(f, "fusion"), []any{core.FusionWeighted, core.FusionRRF})
			}, s.recall),
		tool(srv, s, &mcp.Tool{Name: "get", Annotations: ro,
			Description: "Fetch one memory by ID."}, nil, nil, s.get),
		tool(srv, s, &mcp.Tool{Name: "forget", Annotations: &mcp.ToolAnnotations{DestructiveHint: &yes, IdempotentHint: false},
			Description: "Delete a memory by ID (a tombstone that syncs to other devices)."}, nil, nil, s.forget),
		tool(srv, s, &mcp.Tool{Name: "update_state", Annotations: &mcp.ToolAnnotations{DestructiveHint: &no},
			Description: "Change a memory's consolidation state (e.g. archive it, or mark it superseded by a newer memory); illegal transitions are refused."},
			map[string]string{"consolidation_state": "state"},
			func(sch *jsonschema.Schema) { enum(prop(sch, "state"), states()) }, s.updateState),
		tool(srv, s, &mcp.Tool{Name: "record_event", Annotations: additive,
			Description: "Record an episodic event (something that happened in this session, with its context and outcome); consolidation later turns episodes into memories."},
			map[string]string{"session_id": "session", "context.cwd": "cwd", "context.files": "files",
				"context.task": "task", "context.phase": "phase", "context.branch": "branch"},
			func(sch *jsonschema.Schema) {
				def(prop(sch, "event_type"), "action")
				def(prop(sch, "confidence"), 1.0)
				bounds(prop(sch, "surprise"), 0, 1)
				bounds(prop(sch, "confidence"), 0, 1)
			}, s.recordEvent),
		tool(srv, s, &mcp.Tool{Name: "create_task", Annotations: additive,
			Description: "Create a task in the current project (optionally under a goal); returns it with its ID."},
			map[string]string{"due_at": "due"},
			func(sch *jsonschema.Schema) {
				enum(prop(sch, "status"), taskStatuses())
			}, s.createTask),
		tool(srv, s, &mcp.Tool{Name: "list_tasks", Annotations: ro,
			Description: "List the current project's tasks, highest priority first."}, nil,
			func(sch *jsonschema.Schema) { enum(prop(sch, "status"), taskStatuses()) }, s.listTasks),
		tool(srv, s, &mcp.Tool{Name: "create_goal", Annotations: additive,
			Description: "Create a goal in the current project; returns it with its ID."},
			map[string]string{"due_at": "due"},
			func(sch *jsonschema.Schema) {
				enum(prop(sch, "status"), goalStatuses())
				bounds(prop(sch, "progress"), 0, 1)
			}, s.createGoal),
		tool(srv, s, &mcp.Tool{Name: "list_goals", Annotations: ro,
			Description: "List the current project's goals, highest priority first."}, nil,
			func(sch *jsonschema.Schema) { enum(prop(sch, "status"), goalStatuses()) }, s.listGoals),
		tool(srv, s, &mcp.Tool{Name: "link_code", Annotations: additive,
			Description: "Record a code entity (function, class, ...) and link it to a memory, so memories can point at code."},
			map[string]string{"entity_name": "name"},
			func(sch *jsonschema.Schema) { def(prop(sch, "entity_type"), "function") }, s.linkCode),
		tool(srv, s, &mcp.Tool{Name: "consolidate", Annotations: &mcp.ToolAnnotations{DestructiveHint: &no, IdempotentHint: true},
			Description: "Consolidate the current project's memory: merge near duplicates, turn finished episodes into memories, promote, rescore and archive; dry_run only reports."},
			nil, nil, s.consolidate),
		tool(srv, s, &mcp.Tool{Name: "sync_status", Annotations: ro,
			Description: "Report this device's sync state: own changes pending upload, acknowledged by each server, pulled, and rejected."},
			nil, nil, s.syncStatus),
	}
	for _, err := range regs {
		if err != nil {
			return err
		}
	}
	return nil
}

func taskStatuses() []any {
	return []any{core.TaskPending, core.TaskInProgress, core.TaskBlocked, core.TaskCompleted, core.TaskCancelled}
}

func goalStatuses() []any {
	return []any{core.GoalActive, core.GoalOnHold, core.GoalCompleted, core.GoalAbandoned}
}

func (s *server) remember(ctx context.Context, in RememberIn) (Memory, error) {
	m, err := s.db.Remember(ctx, core.Memory{ProjectID: s.p.ID, Content: in.Content, MemoryType: core.MemoryType(in.Type),
		Domain: in.Domain, Tags: in.Tags, SessionID: in.Session, EventType: in.EventType,
		Usefulness: in.Usefulness, Confidence: in.Confidence})
	if err != nil {
		return Memory{}, err
	}
	return s.memoryOut(m), nil
}

func (s *server) recall(ctx context.Context, in RecallIn) (RecallOut, error) {
	q := core.Query{ProjectID: s.p.ID, Text: in.Query, K: in.K, Explain: in.Explain}
	if in.K == 0 {
		// An explicit 0 is an error, like any k outside 1..MaxK; the
		// schema's default fills an absent k.
		return RecallOut{}, fieldErr("k", "must be between 1 and %d, got 0", s.db.Limits().MaxK)
	}
	if f := in.Filters; f != nil {
		for _, st := range f.States {
			q.States = append(q.States, core.State(st))
		}
		for _, t := range f.Types {
			q.Filter.Types = append(q.Filter.Types, core.MemoryType(t))
		}
		q.Filter.Tags, q.Filter.Domain = f.Tags, f.Domain
		q.SemanticOnly, q.Threshold, q.Fusion = f.SemanticOnly, f.Threshold, f.Fusion
		t, err := parseWhen("filters.since", f.Since, s.cfg.Now(), true)
		if err != nil {
			return RecallOut{}, err
		}
		q.Filter.CreatedAfter = t
	}
	hits, err := s.db.Search(ctx, q)
	if err != nil {
		return RecallOut{}, err
	}
	if !in.NoTouch && len(hits) > 0 {
		ids := make([]core.ID, len(hits))
		for i, h := range hits {
			ids[i] = h.Memory.ID
		}
		touched, err := s.db.RecordAccess(ctx, ids...)
		if err != nil {
			return RecallOut{}, fmt.Errorf("record access: %w", err)
		}
		for i := range hits {
			hits[i].Memory = touched[i]
		}
	}
	out := RecallOut{Hits: make([]Hit, len(hits))}
	for i, h := range hits {
		out.Hits[i] = Hit{MemoryJSON: s.memoryOut(h.Memory), SemanticSimilarity: h.Semantic, KeywordScore: h.Keyword,
			HybridScore: h.Hybrid, Explain: h.Explain}
	}
	return out, nil
}

func (s *server) get(ctx context.Context, in IDIn) (Memory, error) {
	id, err := parseID("id", in.ID)
	if err != nil {
		return Memory{}, err
	}
	m, err := s.db.Memory(ctx, id)
	if err != nil {
		return Memory{}, err // core's error names the ID
	}
	return s.memoryOut(m), nil
}

func (s *server) forget(ctx context.Context, in IDIn) (ForgetOut, error) {
	id, err := parseID("id", in.ID)
	if err != nil {
		return ForgetOut{}, err
	}
	if err := s.db.DeleteMemory(ctx, id); err != nil {
		return ForgetOut{}, fmt.Errorf("%s: %w", id, err)
	}
	return ForgetOut{ID: id, Deleted: true}, nil
}

func (s *server) updateState(ctx context.Context, in UpdateStateIn) (Memory, error) {
	id, err := parseID("id", in.ID)
	if err != nil {
		return Memory{}, err
	}
	to, err := core.ParseState(in.State)
	if err != nil {
		return Memory{}, err
	}
	by, err := optID("superseded_by", in.SupersededBy)
	if err != nil {
		return Memory{}, err
	}
	m, err := s.db.SetState(ctx, id, to, by)
	if err != nil {
		return Memory{}, fmt.Errorf("%s: %w", id, err)
	}
	return s.memoryOut(m), nil
}

func (s *server) recordEvent(ctx context.Context, in RecordEventIn) (core.Event, error) {
	at, err := parseWhen("timestamp", in.Timestamp, s.cfg.Now(), false)
	if err != nil {
		return core.Event{}, err
	}
	ev, err := s.db.RecordEvent(ctx, core.Event{ProjectID: s.p.ID, SessionID: in.Session, Timestamp: at,
		EventType: in.EventType, Content: in.Content, Outcome: in.Outcome,
		Context: core.EventContext{Cwd: in.Cwd, Files: in.Files, Task: in.Task, Phase: in.Phase, Branch: in.Branch},
		Learned: in.Learned, Surprise: in.Surprise, Confidence: in.Confidence})
	ev.Embedding = nil
	return ev, err
}

func (s *server) createTask(ctx context.Context, in CreateTaskIn) (core.Task, error) {
	due, err := parseWhen("due", in.Due, s.cfg.Now(), false)
	if err != nil {
		return core.Task{}, err
	}
	goal, err := optID("goal_id", in.GoalID)
	if err != nil {
		return core.Task{}, err
	}
	parent, err := optID("parent_id", in.ParentID)
	if err != nil {
		return core.Task{}, err
	}
	return s.db.CreateTask(ctx, core.Task{ProjectID: s.p.ID, Title: in.Title, Description: in.Description, Status: in.Status,
		Priority: in.Priority, GoalID: goal, ParentID: parent, DueAt: due})
}

func (s *server) listTasks(ctx context.Context, in ListTasksIn) (TasksOut, error) {
	goal, err := optID("goal_id", in.GoalID)
	if err != nil {
		return TasksOut{}, err
	}
	if in.Limit < 0 {
		return TasksOut{}, fieldErr("limit", "must not be negative, got %d", in.Limit)
	}
	ts, err := s.db.Tasks(ctx, core.TaskFilter{ProjectID: s.p.ID, Status: in.Status, GoalID: goal, Limit: in.Limit})
	if ts == nil {
		ts = []core.Task{}
	}
	return TasksOut{Tasks: ts}, err
}

func (s *server) createGoal(ctx context.Context, in CreateGoalIn) (core.Goal, error) {
	due, err := parseWhen("due", in.Due, s.cfg.Now(), false)
	if err != nil {
		return core.Goal{}, err
	}
	parent, err := optID("parent_id", in.ParentID)
	if err != nil {
		return core.Goal{}, err
	}
	return s.db.CreateGoal(ctx, core.Goal{ProjectID: s.p.ID, Title: in.Title, Description: in.Description, Status: in.Status,
		Priority: in.Priority, ParentID: parent, Progress: in.Progress, DueAt: due})
}

func (s *server) listGoals(ctx context.Context, in ListGoalsIn) (GoalsOut, error) {
	if in.Limit < 0 {
		return GoalsOut{}, fieldErr("limit", "must not be negative, got %d", in.Limit)
	}
	gs, err := s.db.Goals(ctx, core.GoalFilter{ProjectID: s.p.ID, Status: in.Status, Limit: in.Limit})
	if gs == nil {
		gs = []core.Goal{}
	}
	return GoalsOut{Goals: gs}, err
}

func (s *server) linkCode(ctx context.Context, in LinkCodeIn) (core.CodeEntity, error) {
	mem, err := optID("memory_id", in.MemoryID)
	if err != nil {
		return core.CodeEntity{}, err
	}
	if in.LineEnd == 0 {
		in.LineEnd = in.LineStart
	}
	return s.db.CreateCodeEntity(ctx, core.CodeEntity{ProjectID: s.p.ID, MemoryID: mem, FilePath: in.FilePath, Name: in.Name,
		EntityType: in.EntityType, Language: in.Language, Signature: in.Signature, Docstring: in.Docstring,
		SemanticHash: in.SemanticHash, Complexity: in.Complexity, LineStart: in.LineStart, LineEnd: in.LineEnd})
}

func (s *server) consolidate(ctx context.Context, in ConsolidateIn) (core.ConsolidationReport, error) {
	return core.Consolidate(ctx, s.db, s.p.ID, core.ConsolidationOptions{DryRun: in.DryRun})
}

func (s *server) syncStatus(ctx context.Context, _ NoIn) (SyncStatus, error) {
	return s.cfg.SyncStatus(ctx, s.db)
}
