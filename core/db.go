package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultDevice is the device ID a DB uses when Config.Device is empty.
const DefaultDevice = "local"

// Config configures a [DB]. The zero value works: device "local", the
// system clock, default limits and window, and no embedder.
type Config struct {
	// Device identifies this replica in the change log. Every replica that
	// syncs must have its own.
	Device string
	// Clock issues HLC timestamps and the wall time of writes. Nil means
	// NewClock(ClockConfig{}).
	Clock *Clock
	// Limits are the validator's caps.
	Limits Limits
	// Window is the reconsolidation window (DefaultWindow if zero).
	Window time.Duration
	// Embedder embeds content and query text when the caller passes no
	// vector. Nil means callers must always pass vectors.
	Embedder Embedder
}

// DB is athena-edge's API over a [Backend]: every operation of the seed,
// validated, stamped into the change log in the same transaction, and
// merged by the rules of [MergeMemory]. DB is safe for concurrent use. It
// runs its write transactions one at a time, so that its device's sequence
// has no gaps, unless the store does that itself ([ConcurrentWriter]):
// then transactions that touch different memories and devices run at once
// (a server applying many devices' pushes).
type DB struct {
	b        Backend
	device   string
	clock    *Clock
	limits   Limits
	window   time.Duration
	embedder Embedder

	serial  bool // hold writeMu in Update
	writeMu sync.Mutex
}

// New returns a DB over b. It does no I/O.
func New(b Backend, cfg Config) *DB {
	db := &DB{b: b, device: cfg.Device, clock: cfg.Clock, limits: cfg.Limits.withDefaults(), window: cfg.Window, embedder: cfg.Embedder}
	cw, ok := b.(ConcurrentWriter)
	db.serial = !ok || !cw.ConcurrentWrites()
	if db.device == "" {
		db.device = DefaultDevice
	}
	if db.clock == nil {
		db.clock = NewClock(ClockConfig{})
	}
	if db.window <= 0 {
		db.window = DefaultWindow
	}
	return db
}

// Device returns the DB's device ID.
func (db *DB) Device() string { return db.device }

// Backend returns the store under db.
func (db *DB) Backend() Backend { return db.b }

// Clock returns the DB's clock.
func (db *DB) Clock() *Clock { return db.clock }

// Limits returns the validator caps in force.
func (db *DB) Limits() Limits { return db.limits }

// Embedder returns the configured embedder, or nil.
func (db *DB) Embedder() Embedder { return db.embedder }

// Ping checks the store.
func (db *DB) Ping(ctx context.Context) error { return db.b.Ping(ctx) }

// Close closes the store.
func (db *DB) Close() error { return db.b.Close() }

// Update runs fn in one write transaction: every write fn makes, and its
// change-log entry, commits together or not at all.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	if db.serial {
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
	}
	return db.b.Update(ctx, func(w WriteTx) error {
		return fn(&Tx{db: db, r: w, w: w})
	})
}

// View runs fn in a read-only transaction.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	return db.b.View(ctx, func(r ReadTx) error {
		return fn(&Tx{db: db, r: r})
	})
}

// Tx is a transaction handed to the function given to [DB.Update] or
// [DB.View]. It is not safe for concurrent use and must not be used after
// the function returns. Write methods on a read-only Tx return ErrInvalid.
type Tx struct {
	db      *DB
	r       ReadTx
	w       WriteTx
	nextSeq uint64
}

var errReadOnly = fmt.Errorf("%w: write in a read-only transaction", ErrInvalid)

func (tx *Tx) writer() (WriteTx, error) {
	if tx.w == nil {
		return nil, errReadOnly
	}
	return tx.w, nil
}

func (tx *Tx) now() time.Time { return truncMS(tx.db.clock.PhysicalNow()) }

// emit records a local change and returns it.
func (tx *Tx) emit(ctx context.Context, kind Kind, project, entity ID, payload any, vec []float32) (*Change, error) {
	w, err := tx.writer()
	if err != nil {
		return nil, err
	}
	if tx.nextSeq == 0 {
		last, err := w.LastSeq(ctx, tx.db.device)
		if err != nil {
			return nil, err
		}
		tx.nextSeq = last + 1
	}
	raw, err := EncodePayload(payload)
	if err != nil {
		return nil, err
	}
	c := &Change{Device: tx.db.device, Seq: tx.nextSeq, HLC: tx.db.clock.Now(), Kind: kind,
		ProjectID: project, EntityID: entity, Payload: raw, Vector: vec, Status: StatusApplied}
	if err := w.AppendChange(ctx, c); err != nil {
		return nil, err
	}
	tx.nextSeq++
	return c, nil
}

// ---- projects ----

// ProjectIDFor returns the ID a project named name always has. Project IDs
// derive from the name, so two devices that each create "default" offline
// create the same project and converge instead of conflicting.
func ProjectIDFor(name string) ID { return DeriveID(time.Unix(0, 0), "project", name) }

// CreateProject validates p, fills its ID, timestamps and embedding
// defaults (the DB's embedder, if any), and stores it. It returns
// ErrConflict if the name or path is taken.
func (tx *Tx) CreateProject(ctx context.Context, p Project) (Project, error) {
	if p.EmbeddingModel == "" && tx.db.embedder != nil {
		p.EmbeddingModel = tx.db.embedder.Model()
		if p.EmbeddingDim == 0 {
			p.EmbeddingDim = tx.db.embedder.Dim()
		}
	}
	if err := tx.db.limits.ValidateProject(&p); err != nil {
		return Project{}, fmt.Errorf("create project: %w", err)
	}
	p.ID = ProjectIDFor(p.Name)
	if _, err := tx.r.Project(ctx, p.ID); err == nil {
		return Project{}, fmt.Errorf("create project: %w: name %q is taken", ErrConflict, p.Name)
	} else if !errors.Is(err, ErrNotFound) {
		return Project{}, fmt.Errorf("create project: %w", err)
	}
	now := tx.now()
	p.CreatedAt, p.UpdatedAt, p.LastAccessed = now, now, now
	c, err := tx.emit(ctx, KindProjectPut, p.ID, p.ID, p, nil)
	if err != nil {
		return Project{}, fmt.Errorf("create project: %w", err)
	}
	p.Version = c.Stamp()
	if err := tx.w.PutProject(ctx, p); err != nil {
		return Project{}, fmt.Errorf("create project: %w", err)
	}
	return p, nil
}

// Project returns a project by ID, or ErrNotFound.
func (tx *Tx) Project(ctx context.Context, id ID) (Project, error) {
	p, err := tx.r.Project(ctx, id)
	if err != nil {
		return Project{}, fmt.Errorf("get project %s: %w", id, err)
	}
	return p, nil
}

// ProjectByPath returns the project whose path is exactly path, or
// ErrNotFound.
func (tx *Tx) ProjectByPath(ctx context.Context, path string) (Project, error) {
	p, err := tx.r.ProjectBy(ctx, "", path)
	if err != nil {
		return Project{}, fmt.Errorf("get project by path %q: %w", path, err)
	}
	return p, nil
}

// ProjectByName returns the project with that name, or ErrNotFound.
func (tx *Tx) ProjectByName(ctx context.Context, name string) (Project, error) {
	p, err := tx.r.ProjectBy(ctx, name, "")
	if err != nil {
		return Project{}, fmt.Errorf("get project %q: %w", name, err)
	}
	return p, nil
}

// Projects lists every project by name.
func (tx *Tx) Projects(ctx context.Context) ([]Project, error) { return tx.r.Projects(ctx) }

// TouchProject moves the project's last_accessed to now.
func (tx *Tx) TouchProject(ctx context.Context, id ID) (Project, error) {
	p, err := tx.Project(ctx, id)
	if err != nil {
		return Project{}, err
	}
	at := tx.now()
	if !at.After(p.LastAccessed) {
		at = p.LastAccessed.Add(time.Millisecond)
	}
	if _, err := tx.emit(ctx, KindProjectTouch, id, id, TouchPayload{AtMS: UnixMilli(at)}, nil); err != nil {
		return Project{}, fmt.Errorf("touch project: %w", err)
	}
	p.LastAccessed = at
	if err := tx.w.PutProject(ctx, p); err != nil {
		return Project{}, fmt.Errorf("touch project: %w", err)
	}
	return p, nil
}

// ---- memories ----

// Remember validates m against its project, fills ID (if empty), times,
// state and, when m has no embedding and the DB has an embedder, the
// embedding; then stores it and returns it as stored.
func (tx *Tx) Remember(ctx context.Context, m Memory) (Memory, error) {
	p, err := tx.r.Project(ctx, m.ProjectID)
	if err != nil {
		return Memory{}, fmt.Errorf("remember: project %s: %w", m.ProjectID, err)
	}
	fresh := m.ID == ""
	if err := tx.prepareMemory(ctx, &m, &p); err != nil {
		return Memory{}, fmt.Errorf("remember: %w", err)
	}
	got, err := tx.putNewMemory(ctx, m, fresh)
	if err != nil {
		return Memory{}, err
	}
	return got.Clone(), nil
}

func (tx *Tx) prepareMemory(ctx context.Context, m *Memory, p *Project) error {
	if m.Embedding == nil && tx.db.embedder != nil && CheckText("content", m.Content, tx.db.limits.MaxContentBytes, true) == nil {
		if tx.db.embedder.Model() != p.EmbeddingModel || tx.db.embedder.Dim() != p.EmbeddingDim {
			return &FieldError{Field: "embedding_model", Reason: fmt.Sprintf("embedder %s/%d does not match the project's %s/%d",
				tx.db.embedder.Model(), tx.db.embedder.Dim(), p.EmbeddingModel, p.EmbeddingDim), Err: ErrDimMismatch}
		}
		vs, err := tx.db.embedder.Embed(ctx, []string{m.Content})
		if err != nil {
			return fmt.Errorf("embed: %w", err)
		}
		m.Embedding, m.EmbeddingModel = vs[0], tx.db.embedder.Model()
	}
	if m.ID == "" {
		m.ID = NewID(tx.now())
	} else if _, err := ParseID(string(m.ID)); err != nil {
		return err
	}
	if m.Usefulness == 0 && m.Confidence == 0 {
		m.Usefulness, m.Confidence = 0.5, 1.0 // the seed's defaults
	}
	if err := tx.db.limits.ValidateMemory(m, p); err != nil {
		return err
	}
	now := tx.now()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	m.CreatedAt, m.UpdatedAt = truncMS(m.CreatedAt), now
	return nil
}

// putNewMemory stores a prepared new memory and returns it as stored,
// sharing its slices with m (callers that hand it out clone it). fresh
// means its ID was just made by NewID, so it cannot exist or have been
// deleted: the two lookups that guard a caller-chosen ID are skipped,
// which is most of the cost of a batched insert.
func (tx *Tx) putNewMemory(ctx context.Context, m Memory, fresh bool) (Memory, error) {
	w, err := tx.writer()
	if err != nil {
		return Memory{}, err
	}
	if !fresh {
		if dead, err := w.Tombstoned(ctx, m.ID); err != nil {
			return Memory{}, fmt.Errorf("remember: %w", err)
		} else if dead {
			return Memory{}, fmt.Errorf("remember: %w: memory %s was deleted", ErrConflict, m.ID)
		}
		if old, err := w.Memories(ctx, MemoryFilter{IDs: []ID{m.ID}}); err != nil {
			return Memory{}, fmt.Errorf("remember: %w", err)
		} else if len(old) > 0 {
			return Memory{}, fmt.Errorf("remember: %w: memory %s exists", ErrConflict, m.ID)
		}
	}
	vec := m.Embedding
	m.Embedding = nil
	c, err := tx.emit(ctx, KindMemoryPut, m.ProjectID, m.ID, m, vec)
	if err != nil {
		return Memory{}, fmt.Errorf("remember: %w", err)
	}
	created, ok := createLocalMemory(&m, c)
	if !ok {
		eff := MergeMemory(nil, false, c)
		if eff.Status != StatusApplied {
			return Memory{}, fmt.Errorf("remember: %w: %s", ErrInvalid, eff.Reason)
		}
		created = *eff.Memory
	}
	if err := w.PutMemory(ctx, created); err != nil {
		return Memory{}, fmt.Errorf("remember: %w", err)
	}
	return created, nil
}

// Memory returns a memory by ID, or ErrNotFound.
func (tx *Tx) Memory(ctx context.Context, id ID) (Memory, error) {
	ms, err := tx.r.Memories(ctx, MemoryFilter{IDs: []ID{id}})
	if err != nil {
		return Memory{}, fmt.Errorf("get memory %s: %w", id, err)
	}
	if len(ms) == 0 {
		return Memory{}, fmt.Errorf("get memory %s: %w", id, ErrNotFound)
	}
	return ms[0], nil
}

// Memories lists memories matching f.
func (tx *Tx) Memories(ctx context.Context, f MemoryFilter) ([]Memory, error) {
	if f.Limit < 0 {
		return nil, fieldErr("limit", "must not be negative, got %d", f.Limit)
	}
	return tx.r.Memories(ctx, f)
}

// UpdateMemory applies fn to the memory's fields and stores the result
// (last writer wins). fn may change content, embedding, type, domain, tags,
// session, event type, code fields, usefulness and confidence; changes to
// anything else are ignored. When content changes and the embedding does
// not, the DB's embedder (if any) re-embeds it.
func (tx *Tx) UpdateMemory(ctx context.Context, id ID, fn func(*Memory) error) (Memory, error) {
	cur, err := tx.Memory(ctx, id)
	if err != nil {
		return Memory{}, fmt.Errorf("update memory: %w", err)
	}
	p, err := tx.r.Project(ctx, cur.ProjectID)
	if err != nil {
		return Memory{}, fmt.Errorf("update memory: %w", err)
	}
	next := cur.Clone()
	if err := fn(&next); err != nil {
		return Memory{}, err
	}
	next.ID, next.ProjectID, next.CreatedAt = cur.ID, cur.ProjectID, cur.CreatedAt
	next.State, next.SupersededBy = cur.State, cur.SupersededBy
	if next.Content != cur.Content && slicesEqual(next.Embedding, cur.Embedding) && tx.db.embedder != nil {
		next.Embedding = nil
	}
	if err := tx.prepareMemory(ctx, &next, &p); err != nil {
		return Memory{}, fmt.Errorf("update memory: %w", err)
	}
	vec := next.Embedding
	payload := next.Clone()
	payload.Embedding, payload.AccessByDevice = nil, nil
	c, err := tx.emit(ctx, KindMemoryPut, next.ProjectID, next.ID, payload, vec)
	if err != nil {
		return Memory{}, fmt.Errorf("update memory: %w", err)
	}
	return tx.applyMemory(ctx, &cur, c)
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (tx *Tx) applyMemory(ctx context.Context, cur *Memory, c *Change) (Memory, error) {
	eff := MergeMemory(cur, false, c)
	switch {
	case eff.Status != StatusApplied:
		return Memory{}, fmt.Errorf("%s %s: %w: %s", c.Kind, c.EntityID, ErrConflict, eff.Reason)
	case eff.Delete:
		return Memory{}, tx.w.DeleteMemory(ctx, c.EntityID)
	}
	if err := tx.w.PutMemory(ctx, *eff.Memory); err != nil {
		return Memory{}, err
	}
	return eff.Memory.Clone(), nil
}

// DeleteMemory deletes a memory and leaves a tombstone. It returns
// ErrNotFound if the memory does not exist (the seed returned true
// regardless).
func (tx *Tx) DeleteMemory(ctx context.Context, id ID) error {
	cur, err := tx.Memory(ctx, id)
	if err != nil {
		return fmt.Errorf("delete memory: %w", err)
	}
	c, err := tx.emit(ctx, KindMemoryDelete, cur.ProjectID, id, struct{}{}, nil)
	if err != nil {
		return fmt.Errorf("delete memory: %w", err)
	}
	if _, err := tx.applyMemory(ctx, &cur, c); err != nil {
		return fmt.Errorf("delete memory: %w", err)
	}
	return nil
}

// RecordAccess is the seed's update_access_stats: for each memory it adds
// one to this device's access counter, sets last_accessed and
// last_retrieved to now and recomputes quality. A consolidated memory that
// is retrieved becomes labile, opening its reconsolidation window.
func (tx *Tx) RecordAccess(ctx context.Context, ids ...ID) ([]Memory, error) {
	out := make([]Memory, 0, len(ids))
	at := tx.now()
	for _, id := range ids {
		cur, err := tx.Memory(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("record access: %w", err)
		}
		p := AccessPayload{Count: cur.AccessByDevice[tx.db.device] + 1, AtMS: UnixMilli(at)}
		c, err := tx.emit(ctx, KindMemoryAccess, cur.ProjectID, id, p, nil)
		if err != nil {
			return nil, fmt.Errorf("record access: %w", err)
		}
		m, err := tx.applyMemory(ctx, &cur, c)
		if err != nil {
			return nil, fmt.Errorf("record access: %w", err)
		}
		if m.State == StateConsolidated {
			if m, err = tx.setState(ctx, m, StateLabile, ""); err != nil {
				return nil, fmt.Errorf("record access: %w", err)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// SetState moves a memory to state to, enforcing the state machine. When
// to is superseded, supersededBy must name another existing memory.
// Moving to consolidated sets consolidated_at.
func (tx *Tx) SetState(ctx context.Context, id ID, to State, supersededBy ID) (Memory, error) {
	if _, err := ParseState(string(to)); err != nil {
		return Memory{}, fmt.Errorf("set state: %w", err)
	}
	cur, err := tx.Memory(ctx, id)
	if err != nil {
		return Memory{}, fmt.Errorf("set state: %w", err)
	}
	if err := CheckTransition(cur.State, to); err != nil {
		return Memory{}, fmt.Errorf("set state %s: %w", id, err)
	}
	if to == StateSuperseded {
		if supersededBy == "" || supersededBy == id {
			return Memory{}, fmt.Errorf("set state %s: %w", id, fieldErr("superseded_by", "must name another memory"))
		}
		if _, err := tx.Memory(ctx, supersededBy); err != nil {
			return Memory{}, fmt.Errorf("set state %s: superseded_by: %w", id, err)
		}
	}
	m, err := tx.setState(ctx, cur, to, supersededBy)
	if err != nil {
		return Memory{}, fmt.Errorf("set state %s: %w", id, err)
	}
	return m, nil
}

func (tx *Tx) setState(ctx context.Context, cur Memory, to State, by ID) (Memory, error) {
	p := StatePayload{From: cur.State, To: to, SupersededBy: by, AtMS: UnixMilli(tx.now())}
	c, err := tx.emit(ctx, KindMemoryState, cur.ProjectID, cur.ID, p, nil)
	if err != nil {
		return Memory{}, err
	}
	return tx.applyMemory(ctx, &cur, c)
}

// ReconsolidationWindow returns the project's labile memories retrieved
// within window (the DB's window if zero) of now, newest first.
func (tx *Tx) ReconsolidationWindow(ctx context.Context, project ID, window time.Duration) ([]Memory, error) {
	if window <= 0 {
		window = tx.db.window
	}
	now := tx.now()
	ms, err := tx.r.Memories(ctx, MemoryFilter{ProjectID: project, States: []State{StateLabile}, Newest: true})
	if err != nil {
		return nil, fmt.Errorf("reconsolidation window: %w", err)
	}
	out := ms[:0]
	for i := range ms {
		if InWindow(&ms[i], now, window) {
			out = append(out, ms[i])
		}
	}
	return out, nil
}

// ---- other entities: last-writer-wins records ----

// RecordEvent validates and stores an episodic event.
func (tx *Tx) RecordEvent(ctx context.Context, e Event) (Event, error) {
	if _, err := tx.Project(ctx, e.ProjectID); err != nil {
		return Event{}, fmt.Errorf("record event: %w", err)
	}
	if e.ID == "" {
		e.ID = NewID(tx.now())
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = tx.now()
	}
	e.Timestamp = truncMS(e.Timestamp)
	e.CreatedAt = tx.now()
	if err := tx.db.limits.ValidateEvent(&e); err != nil {
		return Event{}, fmt.Errorf("record event: %w", err)
	}
	return putRecord(ctx, tx, KindEventPut, e.ProjectID, e.ID, e, func(v *Event, s Stamp) { v.Version = s }, tx.w.PutEvent)
}

// Events lists events matching f.
func (tx *Tx) Events(ctx context.Context, f EventFilter) ([]Event, error) { return tx.r.Events(ctx, f) }

// CreateTask validates and stores a task (status pending, priority 5 by
// default).
func (tx *Tx) CreateTask(ctx context.Context, t Task) (Task, error) {
	if _, err := tx.Project(ctx, t.ProjectID); err != nil {
		return Task{}, fmt.Errorf("create task: %w", err)
	}
	if t.ID == "" {
		t.ID = NewID(tx.now())
	}
	t.CreatedAt = tx.now()
	return tx.PutTask(ctx, t)
}

// PutTask validates and stores (creates or updates) a task.
func (tx *Tx) PutTask(ctx context.Context, t Task) (Task, error) {
	t.UpdatedAt = tx.now()
	if t.Status == TaskCompleted && t.CompletedAt.IsZero() {
		t.CompletedAt = t.UpdatedAt
	}
	if err := tx.db.limits.ValidateTask(&t); err != nil {
		return Task{}, fmt.Errorf("put task: %w", err)
	}
	return putRecord(ctx, tx, KindTaskPut, t.ProjectID, t.ID, t, func(v *Task, s Stamp) { v.Version = s }, tx.w.PutTask)
}

// Tasks lists tasks matching f.
func (tx *Tx) Tasks(ctx context.Context, f TaskFilter) ([]Task, error) { return tx.r.Tasks(ctx, f) }

// CreateGoal validates and stores a goal (status active, priority 5 by
// default).
func (tx *Tx) CreateGoal(ctx context.Context, g Goal) (Goal, error) {
	if _, err := tx.Project(ctx, g.ProjectID); err != nil {
		return Goal{}, fmt.Errorf("create goal: %w", err)
	}
	if g.ID == "" {
		g.ID = NewID(tx.now())
	}
	g.CreatedAt = tx.now()
	return tx.PutGoal(ctx, g)
}

// PutGoal validates and stores (creates or updates) a goal.
func (tx *Tx) PutGoal(ctx context.Context, g Goal) (Goal, error) {
	g.UpdatedAt = tx.now()
	if err := tx.db.limits.ValidateGoal(&g); err != nil {
		return Goal{}, fmt.Errorf("put goal: %w", err)
	}
	return putRecord(ctx, tx, KindGoalPut, g.ProjectID, g.ID, g, func(v *Goal, s Stamp) { v.Version = s }, tx.w.PutGoal)
}

// Goals lists goals matching f.
func (tx *Tx) Goals(ctx context.Context, f GoalFilter) ([]Goal, error) { return tx.r.Goals(ctx, f) }

// CreateCodeEntity validates and stores a code entity. A MemoryID, if set,
// must name an existing memory.
func (tx *Tx) CreateCodeEntity(ctx context.Context, c CodeEntity) (CodeEntity, error) {
	if _, err := tx.Project(ctx, c.ProjectID); err != nil {
		return CodeEntity{}, fmt.Errorf("create code entity: %w", err)
	}
	if c.MemoryID != "" {
		if _, err := tx.Memory(ctx, c.MemoryID); err != nil {
			return CodeEntity{}, fmt.Errorf("create code entity: memory_id: %w", err)
		}
	}
	if c.ID == "" {
		c.ID = NewID(tx.now())
	}
	c.CreatedAt, c.UpdatedAt = tx.now(), tx.now()
	if err := tx.db.limits.ValidateCodeEntity(&c); err != nil {
		return CodeEntity{}, fmt.Errorf("create code entity: %w", err)
	}
	return putRecord(ctx, tx, KindCodeEntityPut, c.ProjectID, c.ID, c, func(v *CodeEntity, s Stamp) { v.Version = s }, tx.w.PutCodeEntity)
}

// CodeEntities lists code entities matching f.
func (tx *Tx) CodeEntities(ctx context.Context, f CodeFilter) ([]CodeEntity, error) {
	return tx.r.CodeEntities(ctx, f)
}

// CreateCodeDependency stores an edge between two existing code entities.
func (tx *Tx) CreateCodeDependency(ctx context.Context, d CodeDependency) (CodeDependency, error) {
	for _, end := range []struct {
		field string
		id    ID
	}{{"from_id", d.FromID}, {"to_id", d.ToID}} {
		es, err := tx.r.CodeEntities(ctx, CodeFilter{ID: end.id})
		if err != nil {
			return CodeDependency{}, fmt.Errorf("create code dependency: %w", err)
		}
		if len(es) == 0 {
			return CodeDependency{}, fmt.Errorf("create code dependency: %s %s: %w", end.field, end.id, ErrNotFound)
		}
		d.ProjectID = es[0].ProjectID
	}
	if d.ID == "" {
		d.ID = NewID(tx.now())
	}
	d.CreatedAt = tx.now()
	if err := CheckText("dependency_type", d.Type, tx.db.limits.MaxTextBytes, true); err != nil {
		return CodeDependency{}, fmt.Errorf("create code dependency: %w", err)
	}
	return putRecord(ctx, tx, KindCodeDepPut, d.ProjectID, d.ID, d, func(v *CodeDependency, s Stamp) { v.Version = s }, tx.w.PutCodeDependency)
}

// CodeDependencies lists code dependencies matching f (MemoryID and
// FilePath are ignored).
func (tx *Tx) CodeDependencies(ctx context.Context, f CodeFilter) ([]CodeDependency, error) {
	return tx.r.CodeDependencies(ctx, f)
}

// Relate stores a relationship between two existing memories.
func (tx *Tx) Relate(ctx context.Context, r Relationship) (Relationship, error) {
	from, err := tx.Memory(ctx, r.FromID)
	if err != nil {
		return Relationship{}, fmt.Errorf("relate: from_id: %w", err)
	}
	if _, err := tx.Memory(ctx, r.ToID); err != nil {
		return Relationship{}, fmt.Errorf("relate: to_id: %w", err)
	}
	r.ProjectID = from.ProjectID
	if r.ID == "" {
		r.ID = NewID(tx.now())
	}
	if r.Strength == 0 {
		r.Strength = 1
	}
	r.CreatedAt = tx.now()
	if err := CheckText("relationship_type", r.Type, tx.db.limits.MaxTextBytes, true); err != nil {
		return Relationship{}, fmt.Errorf("relate: %w", err)
	}
	if err := CheckUnit("strength", r.Strength); err != nil {
		return Relationship{}, fmt.Errorf("relate: %w", err)
	}
	return putRecord(ctx, tx, KindRelationshipPut, r.ProjectID, r.ID, r, func(v *Relationship, s Stamp) { v.Version = s }, tx.w.PutRelationship)
}

// Relationships lists relationships matching f.
func (tx *Tx) Relationships(ctx context.Context, f RelationshipFilter) ([]Relationship, error) {
	return tx.r.Relationships(ctx, f)
}

// putRecord stamps a last-writer-wins record with a new local change and
// stores it.
func putRecord[T any](ctx context.Context, tx *Tx, kind Kind, project, id ID, v T, stamp func(*T, Stamp), put func(context.Context, T) error) (T, error) {
	var zero T
	c, err := tx.emit(ctx, kind, project, id, v, nil)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", kind, err)
	}
	stamp(&v, c.Stamp())
	if err := put(ctx, v); err != nil {
		return zero, fmt.Errorf("%s: %w", kind, err)
	}
	return v, nil
}

// ---- change log ----

// Changes returns up to limit changes recorded after position after,
// skipping those from device exclude (if set). Sync pulls with it.
func (tx *Tx) Changes(ctx context.Context, after int64, limit int, exclude string) ([]Change, error) {
	if err := tx.db.limits.CheckLimit("limit", limit); err != nil {
		return nil, err
	}
	return tx.r.Changes(ctx, after, limit, exclude)
}

func (tx *Tx) memoryExists(ctx context.Context, id ID) (bool, error) {
	ms, err := tx.r.Memories(ctx, MemoryFilter{IDs: []ID{id}})
	return len(ms) > 0, err
}
