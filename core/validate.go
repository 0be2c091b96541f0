package core

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Default size caps. Every store and the sync server apply the same ones,
// so an edge never accepts what the server would refuse.
const (
	DefaultMaxContentBytes = 64 << 10 // content of a memory or event
	DefaultMaxTextBytes    = 4 << 10  // short fields: domain, session, titles, paths...
	DefaultMaxDocBytes     = 64 << 10 // long free text other than content: descriptions, docstrings
	DefaultMaxTags         = 64
	DefaultMaxTagBytes     = 128
	DefaultMaxFiles        = 256
	DefaultMaxDim          = 2000 // pgvector's HNSW limit
	DefaultMaxK            = 1000
)

// Limits holds the validator's caps. The zero value uses the Default*
// constants. Limits is a value type, safe for concurrent use.
type Limits struct {
	MaxContentBytes int
	MaxTextBytes    int
	MaxDocBytes     int
	MaxTags         int
	MaxTagBytes     int
	MaxFiles        int
	MaxDim          int
	MaxK            int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxContentBytes, DefaultMaxContentBytes)
	def(&l.MaxTextBytes, DefaultMaxTextBytes)
	def(&l.MaxDocBytes, DefaultMaxDocBytes)
	def(&l.MaxTags, DefaultMaxTags)
	def(&l.MaxTagBytes, DefaultMaxTagBytes)
	def(&l.MaxFiles, DefaultMaxFiles)
	def(&l.MaxDim, DefaultMaxDim)
	def(&l.MaxK, DefaultMaxK)
	return l
}

// CheckText validates a text field: valid UTF-8, no NUL byte, at most max
// bytes, and, if required, not empty or whitespace only.
func CheckText(field, s string, max int, required bool) error {
	if len(s) > max {
		return fieldErr(field, "is %d bytes, over the limit of %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, "is not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fieldErr(field, "contains a NUL byte")
	}
	if required && strings.TrimSpace(s) == "" {
		return fieldErr(field, "is empty")
	}
	return nil
}

// CheckVector validates an embedding: exactly dim finite float32 values,
// not all zero.
func CheckVector(field string, v []float32, dim int) error {
	if len(v) != dim {
		return &FieldError{Field: field, Reason: dimReason(len(v), dim), Err: ErrDimMismatch}
	}
	// A float32 is NaN or infinite when its exponent bits are all ones,
	// and zero when every bit but the sign is zero; a vector has a
	// nonzero norm when any element is nonzero (a subnormal squared is
	// still nonzero in float64). Checking the bits instead of summing
	// squares is about twice as fast at 768 dimensions.
	var nonzero uint32
	for i, x := range v {
		b := math.Float32bits(x) &^ (1 << 31)
		if b >= 0x7f800000 {
			if b > 0x7f800000 {
				return fieldErr(field, "element %d is NaN", i)
			}
			return fieldErr(field, "element %d is infinite", i)
		}
		nonzero |= b
	}
	if nonzero == 0 {
		return fieldErr(field, "is a zero vector (cosine similarity is undefined)")
	}
	return nil
}

func dimReason(got, want int) string {
	return "has " + strconv.Itoa(got) + " dimensions, the project's embedding dimension is " + strconv.Itoa(want)
}

// CheckModel validates an embedding model stamp against the project's.
func CheckModel(field, got, want string) error {
	if got != want {
		return &FieldError{Field: field, Reason: "is " + strconv.Quote(got) + ", the project's embedding model is " + strconv.Quote(want), Err: ErrDimMismatch}
	}
	return nil
}

// CheckUnit validates a value in [0, 1].
func CheckUnit(field string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fieldErr(field, "must be between 0 and 1, got %v", v)
	}
	return nil
}

// CheckLimit validates a result limit: 1 ≤ k ≤ max. (SQLite reads a
// negative LIMIT as "no limit" and PostgreSQL rejects it; we reject it on
// every store.)
func (l Limits) CheckLimit(field string, k int) error {
	l = l.withDefaults()
	if k < 1 || k > l.MaxK {
		return fieldErr(field, "must be between 1 and %d, got %d", l.MaxK, k)
	}
	return nil
}

// NormalizeTags trims, lowercases and de-duplicates tags, keeping the order
// of first appearance and dropping empty ones, then checks the caps. Tags
// may not contain commas or control characters.
func (l Limits) NormalizeTags(tags []string) ([]string, error) {
	l = l.withDefaults()
	if len(tags) > l.MaxTags*4 { // reject absurd input before doing work
		return nil, fieldErr("tags", "has %d tags, over the limit of %d", len(tags), l.MaxTags)
	}
	out := make([]string, 0, len(tags))
	for i, t := range tags {
		field := "tags[" + strconv.Itoa(i) + "]"
		if len(t) > l.MaxTagBytes*4 {
			return nil, fieldErr(field, "is %d bytes, over the limit of %d", len(t), l.MaxTagBytes)
		}
		if err := CheckText(field, t, l.MaxTagBytes*4, false); err != nil {
			return nil, err
		}
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		if len(t) > l.MaxTagBytes {
			return nil, fieldErr(field, "is %d bytes, over the limit of %d", len(t), l.MaxTagBytes)
		}
		for _, r := range t {
			if r == ',' || unicode.IsControl(r) {
				return nil, fieldErr(field, "contains %q; tags may not contain commas or control characters", r)
			}
		}
		dup := false
		for _, o := range out {
			if o == t {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, t)
		}
	}
	if len(out) > l.MaxTags {
		return nil, fieldErr("tags", "has %d tags, over the limit of %d", len(out), l.MaxTags)
	}
	return out, nil
}

// ValidateProject checks p and fills defaults (embedding dimension and
// interval).
func (l Limits) ValidateProject(p *Project) error {
	l = l.withDefaults()
	if err := CheckText("name", p.Name, l.MaxTextBytes, true); err != nil {
		return err
	}
	if err := CheckText("path", p.Path, l.MaxTextBytes, true); err != nil {
		return err
	}
	if err := CheckText("language", p.Language, l.MaxTextBytes, false); err != nil {
		return err
	}
	if err := CheckText("description", p.Description, l.MaxDocBytes, false); err != nil {
		return err
	}
	if err := CheckText("embedding_model", p.EmbeddingModel, l.MaxTextBytes, true); err != nil {
		return err
	}
	if p.EmbeddingDim == 0 {
		p.EmbeddingDim = DefaultEmbedDim
	}
	if p.EmbeddingDim < 1 || p.EmbeddingDim > l.MaxDim {
		return fieldErr("embedding_dim", "must be between 1 and %d, got %d", l.MaxDim, p.EmbeddingDim)
	}
	if p.ConsolidationInterval == 0 {
		p.ConsolidationInterval = DefaultConsolidationInterval
	}
	if p.ConsolidationInterval < 0 {
		return fieldErr("consolidation_interval", "must be positive, got %s", p.ConsolidationInterval)
	}
	return nil
}

// ValidateMemory normalizes m (tags, defaults for type, domain, state) and
// checks every field against p, the project the memory belongs to.
func (l Limits) ValidateMemory(m *Memory, p *Project) error {
	l = l.withDefaults()
	if err := CheckText("content", m.Content, l.MaxContentBytes, true); err != nil {
		return err
	}
	if m.MemoryType == "" {
		m.MemoryType = TypeFact
	}
	if !validType(m.MemoryType) {
		return fieldErr("memory_type", "unknown memory type %q (want one of %v)", m.MemoryType, MemoryTypes())
	}
	if m.Domain == "" {
		m.Domain = "memory"
	}
	if m.State == "" {
		m.State = StateUnconsolidated
	}
	if !m.State.Valid() {
		return fieldErr("consolidation_state", "unknown state %q (want one of %v)", m.State, States())
	}
	for _, f := range []struct{ name, v string }{
		{"domain", m.Domain}, {"session_id", m.SessionID}, {"event_type", m.EventType},
		{"code_language", m.CodeLanguage}, {"code_hash", m.CodeHash}, {"embedding_model", m.EmbeddingModel},
	} {
		if err := CheckText(f.name, f.v, l.MaxTextBytes, false); err != nil {
			return err
		}
	}
	tags, err := l.NormalizeTags(m.Tags)
	if err != nil {
		return err
	}
	m.Tags = tags
	if err := CheckUnit("usefulness", m.Usefulness); err != nil {
		return err
	}
	if err := CheckUnit("confidence", m.Confidence); err != nil {
		return err
	}
	if m.AccessCount < 0 {
		return fieldErr("access_count", "must not be negative, got %d", m.AccessCount)
	}
	if m.SupersededBy != "" {
		if _, err := ParseID(string(m.SupersededBy)); err != nil {
			return fieldErr("superseded_by", "must be a UUID")
		}
	}
	if m.EmbeddingModel == "" {
		m.EmbeddingModel = p.EmbeddingModel
	}
	if err := CheckModel("embedding_model", m.EmbeddingModel, p.EmbeddingModel); err != nil {
		return err
	}
	return CheckVector("embedding", m.Embedding, p.EmbeddingDim)
}

func validType(t MemoryType) bool {
	for _, x := range MemoryTypes() {
		if x == t {
			return true
		}
	}
	return false
}

// ValidateEvent normalizes and checks an episodic event.
func (l Limits) ValidateEvent(e *Event) error {
	l = l.withDefaults()
	if err := CheckText("content", e.Content, l.MaxContentBytes, true); err != nil {
		return err
	}
	if e.EventType == "" {
		e.EventType = "action"
	}
	for _, f := range []struct{ name, v string }{
		{"session_id", e.SessionID}, {"event_type", e.EventType}, {"context.cwd", e.Context.Cwd},
		{"context.task", e.Context.Task}, {"context.phase", e.Context.Phase}, {"context.branch", e.Context.Branch},
		{"embedding_model", e.EmbeddingModel},
	} {
		if err := CheckText(f.name, f.v, l.MaxTextBytes, false); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{{"outcome", e.Outcome}, {"learned", e.Learned}} {
		if err := CheckText(f.name, f.v, l.MaxDocBytes, false); err != nil {
			return err
		}
	}
	if len(e.Context.Files) == 0 {
		e.Context.Files = nil
	}
	if len(e.Context.Files) > l.MaxFiles {
		return fieldErr("context.files", "has %d files, over the limit of %d", len(e.Context.Files), l.MaxFiles)
	}
	for i, f := range e.Context.Files {
		if err := CheckText("context.files["+strconv.Itoa(i)+"]", f, l.MaxTextBytes, true); err != nil {
			return err
		}
	}
	if err := CheckUnit("surprise", e.Surprise); err != nil {
		return err
	}
	if err := CheckUnit("confidence", e.Confidence); err != nil {
		return err
	}
	if e.Embedding != nil {
		if e.EmbeddingModel == "" {
			return fieldErr("embedding_model", "is required with an embedding")
		}
		if err := CheckVector("embedding", e.Embedding, len(e.Embedding)); err != nil {
			return err
		}
	}
	return checkYear("timestamp", e.Timestamp)
}

// checkYear rejects timestamps outside years 1970..9999, which some stores
// cannot represent and which are never real.
func checkYear(field string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if y := t.Year(); y < 1970 || y > 9999 {
		return fieldErr(field, "year %d is out of range 1970..9999", y)
	}
	return nil
}

func checkPriority(p *int) error {
	if *p == 0 {
		*p = 5
	}
	if *p < 1 || *p > 10 {
		return fieldErr("priority", "must be between 1 and 10, got %d", *p)
	}
	return nil
}

func checkOptionalID(field string, id ID) error {
	if id == "" {
		return nil
	}
	if _, err := ParseID(string(id)); err != nil {
		return fieldErr(field, "must be a UUID")
	}
	return nil
}

// ValidateTask normalizes and checks a task.
func (l Limits) ValidateTask(t *Task) error {
	l = l.withDefaults()
	if err := CheckText("title", t.Title, l.MaxTextBytes, true); err != nil {
		return err
	}
	if err := CheckText("description", t.Description, l.MaxDocBytes, false); err != nil {
		return err
	}
	if t.Status == "" {
		t.Status = TaskPending
	}
	switch t.Status {
	case TaskPending, TaskInProgress, TaskBlocked, TaskCompleted, TaskCancelled:
	default:
		return fieldErr("status", "unknown task status %q (want pending, in_progress, blocked, completed or cancelled)", t.Status)
	}
	if err := checkPriority(&t.Priority); err != nil {
		return err
	}
	if err := checkOptionalID("goal_id", t.GoalID); err != nil {
		return err
	}
	if err := checkOptionalID("parent_id", t.ParentID); err != nil {
		return err
	}
	return checkYear("due_at", t.DueAt)
}

// ValidateGoal normalizes and checks a goal.
func (l Limits) ValidateGoal(g *Goal) error {
	l = l.withDefaults()
	if err := CheckText("title", g.Title, l.MaxTextBytes, true); err != nil {
		return err
	}
	if err := CheckText("description", g.Description, l.MaxDocBytes, false); err != nil {
		return err
	}
	if g.Status == "" {
		g.Status = GoalActive
	}
	switch g.Status {
	case GoalActive, GoalOnHold, GoalCompleted, GoalAbandoned:
	default:
		return fieldErr("status", "unknown goal status %q (want active, on_hold, completed or abandoned)", g.Status)
	}
	if err := checkPriority(&g.Priority); err != nil {
		return err
	}
	if err := CheckUnit("progress", g.Progress); err != nil {
		return err
	}
	if err := checkOptionalID("parent_id", g.ParentID); err != nil {
		return err
	}
	return checkYear("due_at", g.DueAt)
}

// ValidateCodeEntity checks a code entity.
func (l Limits) ValidateCodeEntity(c *CodeEntity) error {
	l = l.withDefaults()
	for _, f := range []struct {
		name, v  string
		required bool
	}{
		{"file_path", c.FilePath, true}, {"entity_name", c.Name, true}, {"entity_type", c.EntityType, true},
		{"language", c.Language, false}, {"signature", c.Signature, false}, {"semantic_hash", c.SemanticHash, false},
	} {
		if err := CheckText(f.name, f.v, l.MaxTextBytes, f.required); err != nil {
			return err
		}
	}
	if err := CheckText("docstring", c.Docstring, l.MaxDocBytes, false); err != nil {
		return err
	}
	if c.Complexity < 0 {
		return fieldErr("complexity", "must not be negative, got %d", c.Complexity)
	}
	if c.LineStart < 0 {
		return fieldErr("line_start", "must not be negative, got %d", c.LineStart)
	}
	if c.LineEnd < c.LineStart {
		return fieldErr("line_end", "lines must satisfy 0 <= line_start <= line_end, got %d..%d", c.LineStart, c.LineEnd)
	}
	return checkOptionalID("memory_id", c.MemoryID)
}
