package core

import (
	"slices"
	"time"
)

// Defaults from the seed design.
const (
	DefaultEmbedDim              = 768
	DefaultConsolidationInterval = time.Hour
	DefaultWindow                = 60 * time.Minute // reconsolidation window
	DefaultProjectName           = "default"
)

// Project groups memories. Name and Path are each unique. Every vector
// stored in the project must carry its embedding model stamp and dimension.
// They are set at creation and change only by a local re-embed of every
// memory in one transaction ([Tx.SwapEmbedder], [Reembed]); a replica
// rejects a remote project put that changes them.
type Project struct {
	ID                    ID            `json:"id"`
	Name                  string        `json:"name"`
	Path                  string        `json:"path"`
	Language              string        `json:"language,omitempty"`
	Description           string        `json:"description,omitempty"`
	EmbeddingModel        string        `json:"embedding_model"`
	EmbeddingDim          int           `json:"embedding_dim"`
	ConsolidationInterval time.Duration `json:"consolidation_interval"`
	CreatedAt             time.Time     `json:"created_at"`
	UpdatedAt             time.Time     `json:"updated_at"`
	LastAccessed          time.Time     `json:"last_accessed"`
	Version               Stamp         `json:"version"`
}

// MemoryType classifies a memory.
type MemoryType string

// Memory types. The seed's default is fact.
const (
	TypeFact        MemoryType = "fact"
	TypePattern     MemoryType = "pattern"
	TypeDecision    MemoryType = "decision"
	TypeContext     MemoryType = "context"
	TypeEpisodic    MemoryType = "episodic"
	TypeSemantic    MemoryType = "semantic"
	TypeProcedural  MemoryType = "procedural"
	TypeCodeSnippet MemoryType = "code_snippet"
	TypePreference  MemoryType = "preference"
)

// MemoryTypes lists every memory type in a fixed order.
func MemoryTypes() []MemoryType {
	return []MemoryType{TypeFact, TypePattern, TypeDecision, TypeContext, TypeEpisodic,
		TypeSemantic, TypeProcedural, TypeCodeSnippet, TypePreference}
}

// Memory is one thing an agent remembers.
//
// Version, StateVersion and AccessByDevice are replication metadata: the
// stamp of the last field write, the stamp of the last state change, and one
// access counter per device (the total is their sum). Stores persist them
// verbatim; only core changes them.
type Memory struct {
	ID             ID               `json:"id"`
	ProjectID      ID               `json:"project_id"`
	Content        string           `json:"content"`
	Embedding      []float32        `json:"embedding,omitempty"`
	EmbeddingModel string           `json:"embedding_model"`
	MemoryType     MemoryType       `json:"memory_type"`
	Domain         string           `json:"domain"`
	Tags           []string         `json:"tags"`
	SessionID      string           `json:"session_id,omitempty"`
	EventType      string           `json:"event_type,omitempty"`
	CodeLanguage   string           `json:"code_language,omitempty"`
	CodeHash       string           `json:"code_hash,omitempty"`
	Usefulness     float64          `json:"usefulness"`
	Confidence     float64          `json:"confidence"`
	AccessCount    int64            `json:"access_count"`
	QualityScore   float64          `json:"quality_score"`
	State          State            `json:"consolidation_state"`
	SupersededBy   ID               `json:"superseded_by,omitempty"`
	CreatedAt      time.Time        `json:"created_at"`
	UpdatedAt      time.Time        `json:"updated_at"`
	LastAccessed   time.Time        `json:"last_accessed"`
	LastRetrieved  time.Time        `json:"last_retrieved"`
	ConsolidatedAt time.Time        `json:"consolidated_at"`
	Version        Stamp            `json:"version"`
	StateVersion   Stamp            `json:"state_version"`
	AccessByDevice map[string]int64 `json:"access_by_device,omitempty"`
}

// Clone returns a deep copy of m.
func (m Memory) Clone() Memory {
	m.Embedding = slices.Clone(m.Embedding)
	m.Tags = slices.Clone(m.Tags)
	if m.AccessByDevice != nil {
		c := make(map[string]int64, len(m.AccessByDevice))
		for k, v := range m.AccessByDevice {
			c[k] = v
		}
		m.AccessByDevice = c
	}
	return m
}

// Quality is the seed's formula:
//
//	0.5·usefulness + 0.3·confidence + 0.2·min(access_count/100, 1)
func Quality(usefulness, confidence float64, accessCount int64) float64 {
	// Each product is converted explicitly so that no platform fuses it
	// into a multiply-add: the result must be bit-identical everywhere.
	return float64(0.5*usefulness) + float64(0.3*confidence) + float64(0.2*min(float64(accessCount)/100, 1))
}

// Relationship links two memories.
type Relationship struct {
	ID        ID        `json:"id"`
	ProjectID ID        `json:"project_id"`
	FromID    ID        `json:"from_id"`
	ToID      ID        `json:"to_id"`
	Type      string    `json:"relationship_type"`
	Strength  float64   `json:"strength"`
	CreatedAt time.Time `json:"created_at"`
	Version   Stamp     `json:"version"`
}

// EventContext is where an episodic event happened.
type EventContext struct {
	Cwd    string   `json:"cwd,omitempty"`
	Files  []string `json:"files,omitempty"`
	Task   string   `json:"task,omitempty"`
	Phase  string   `json:"phase,omitempty"`
	Branch string   `json:"branch,omitempty"`
}

// Event is an episodic event: something that happened in a session.
type Event struct {
	ID               ID           `json:"id"`
	ProjectID        ID           `json:"project_id"`
	SessionID        string       `json:"session_id"`
	Timestamp        time.Time    `json:"timestamp"`
	EventType        string       `json:"event_type"`
	Content          string       `json:"content"`
	Outcome          string       `json:"outcome,omitempty"`
	Context          EventContext `json:"context"`
	Learned          string       `json:"learned,omitempty"`
	Surprise         float64      `json:"surprise"`
	Confidence       float64      `json:"confidence"`
	Embedding        []float32    `json:"embedding,omitempty"`
	EmbeddingModel   string       `json:"embedding_model,omitempty"`
	Consolidated     bool         `json:"consolidated"`
	ConsolidatedInto ID           `json:"consolidated_into,omitempty"`
	CreatedAt        time.Time    `json:"created_at"`
	Version          Stamp        `json:"version"`
}

// Task statuses.
const (
	TaskPending    = "pending"
	TaskInProgress = "in_progress"
	TaskBlocked    = "blocked"
	TaskCompleted  = "completed"
	TaskCancelled  = "cancelled"
)

// Task is a prospective task.
type Task struct {
	ID          ID        `json:"id"`
	ProjectID   ID        `json:"project_id"`
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	Status      string    `json:"status"`
	Priority    int       `json:"priority"`
	GoalID      ID        `json:"goal_id,omitempty"`
	ParentID    ID        `json:"parent_id,omitempty"`
	DueAt       time.Time `json:"due_at"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	CompletedAt time.Time `json:"completed_at"`
	Version     Stamp     `json:"version"`
}

// Goal statuses.
const (
	GoalActive    = "active"
	GoalOnHold    = "on_hold"
	GoalCompleted = "completed"
	GoalAbandoned = "abandoned"
)

// Goal is a longer-lived objective that tasks may serve.
type Goal struct {
	ID          ID        `json:"id"`
	ProjectID   ID        `json:"project_id"`
	Title       string    `json:"title"`
	Description string    `json:"description,omitempty"`
	Status      string    `json:"status"`
	Priority    int       `json:"priority"`
	ParentID    ID        `json:"parent_id,omitempty"`
	Progress    float64   `json:"progress"`
	DueAt       time.Time `json:"due_at"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Version     Stamp     `json:"version"`
}

// CodeEntity is a piece of code (function, class, ...) linked to a memory.
type CodeEntity struct {
	ID           ID        `json:"id"`
	ProjectID    ID        `json:"project_id"`
	MemoryID     ID        `json:"memory_id,omitempty"`
	FilePath     string    `json:"file_path"`
	Name         string    `json:"entity_name"`
	EntityType   string    `json:"entity_type"`
	Language     string    `json:"language,omitempty"`
	Signature    string    `json:"signature,omitempty"`
	Docstring    string    `json:"docstring,omitempty"`
	SemanticHash string    `json:"semantic_hash,omitempty"`
	Complexity   int       `json:"complexity"`
	LineStart    int       `json:"line_start"`
	LineEnd      int       `json:"line_end"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Version      Stamp     `json:"version"`
}

// CodeDependency is an edge between two code entities (imports, calls, ...).
type CodeDependency struct {
	ID        ID        `json:"id"`
	ProjectID ID        `json:"project_id"`
	FromID    ID        `json:"from_id"`
	ToID      ID        `json:"to_id"`
	Type      string    `json:"dependency_type"`
	CreatedAt time.Time `json:"created_at"`
	Version   Stamp     `json:"version"`
}

// UnixMilli converts t to Unix milliseconds, mapping the zero time to 0.
// Stores use it for every timestamp column.
func UnixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromUnixMilli is the inverse of [UnixMilli]: 0 gives the zero time, any
// other value a UTC time.
func FromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// truncMS normalizes t to what stores keep: UTC, millisecond precision.
func truncMS(t time.Time) time.Time { return FromUnixMilli(UnixMilli(t)) }
