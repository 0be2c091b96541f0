package memstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/athena-edge/athena-edge/core"
)

// Store is an in-memory core.Backend. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	closed bool
	s      state
}

var (
	_ core.Backend = (*Store)(nil)
	_ core.MetaTx  = (*tx)(nil)
)

// state is everything the store holds. Its fields are exported only so that
// Snapshot can encode them.
type state struct {
	Projects      map[core.ID]core.Project        `json:"projects"`
	Memories      map[core.ID]core.Memory         `json:"memories"`
	Tombstones    map[core.ID]bool                `json:"tombstones"`
	Events        map[core.ID]core.Event          `json:"events"`
	Tasks         map[core.ID]core.Task           `json:"tasks"`
	Goals         map[core.ID]core.Goal           `json:"goals"`
	Code          map[core.ID]core.CodeEntity     `json:"code"`
	Deps          map[core.ID]core.CodeDependency `json:"deps"`
	Relationships map[core.ID]core.Relationship   `json:"relationships"`
	Changes       []core.Change                   `json:"changes"`
	LastSeq       map[string]uint64               `json:"last_seq"`
	Meta          map[string]string               `json:"meta"`

	derived map[core.ID]derived // per-memory search data, rebuilt on Load
}

func newState() state {
	return state{
		Projects: map[core.ID]core.Project{}, Memories: map[core.ID]core.Memory{}, Tombstones: map[core.ID]bool{},
		Events: map[core.ID]core.Event{}, Tasks: map[core.ID]core.Task{}, Goals: map[core.ID]core.Goal{},
		Code: map[core.ID]core.CodeEntity{}, Deps: map[core.ID]core.CodeDependency{},
		Relationships: map[core.ID]core.Relationship{}, LastSeq: map[string]uint64{}, Meta: map[string]string{}, derived: map[core.ID]derived{},
	}
}

// New returns an empty store.
func New() *Store { return &Store{s: newState()} }

// Load returns a store holding a snapshot made by [Store.Snapshot].
func Load(snapshot []byte) (*Store, error) {
	s := New()
	if err := json.Unmarshal(snapshot, &s.s); err != nil {
		return nil, fmt.Errorf("memstore: load: %w: %w", core.ErrInvalid, err)
	}
	fresh := newState()
	orInit(&s.s.Projects, fresh.Projects)
	orInit(&s.s.Memories, fresh.Memories)
	orInit(&s.s.Tombstones, fresh.Tombstones)
	orInit(&s.s.Events, fresh.Events)
	orInit(&s.s.Tasks, fresh.Tasks)
	orInit(&s.s.Goals, fresh.Goals)
	orInit(&s.s.Code, fresh.Code)
	orInit(&s.s.Deps, fresh.Deps)
	orInit(&s.s.Relationships, fresh.Relationships)
	orInit(&s.s.LastSeq, fresh.LastSeq)
	orInit(&s.s.Meta, fresh.Meta)
	s.s.derived = map[core.ID]derived{}
	for id, m := range s.s.Memories {
		s.s.derived[id] = derive(&m)
	}
	return s, nil
}

func orInit[M ~map[K]V, K comparable, V any](m *M, fresh M) {
	if *m == nil {
		*m = fresh
	}
}

// derived is what a search needs of a memory, computed once when it is
// written: its core term frequencies, its length in tokens and the norm of
// its embedding.
type derived struct {
	tf   map[string]int
	n    int
	norm float64
}

func derive(m *core.Memory) derived {
	toks := core.Tokenize(m.Content)
	var n2 float64
	for _, x := range m.Embedding {
		n2 += float64(x) * float64(x)
	}
	return derived{tf: core.TermFreqs(toks), n: len(toks), norm: math.Sqrt(n2)}
}

// Snapshot encodes the whole store. It takes the read lock.
func (s *Store) Snapshot() ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := json.Marshal(&s.s)
	if err != nil {
		return nil, fmt.Errorf("memstore: snapshot: %w", err)
	}
	return b, nil
}

// Update runs fn in a write transaction, undoing every write if fn fails.
func (s *Store) Update(ctx context.Context, fn func(core.WriteTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return core.ErrClosed
	}
	tx := &tx{s: &s.s}
	if err := fn(tx); err != nil {
		tx.rollback()
		return err
	}
	if err := ctx.Err(); err != nil { // a cancelled transaction never commits
		tx.rollback()
		return err
	}
	return nil
}

// View runs fn in a read transaction.
func (s *Store) View(ctx context.Context, fn func(core.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return core.ErrClosed
	}
	return fn(&tx{s: &s.s, ro: true})
}

// Ping reports ErrClosed after Close.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return core.ErrClosed
	}
	return ctx.Err()
}

// Close marks the store closed. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// tx implements core.WriteTx over the state, with an undo log.
type tx struct {
	s    *state
	ro   bool
	undo []func()
}

func (t *tx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
}

// remember records how to restore key in m before it is changed.
func remember[K comparable, V any](t *tx, m map[K]V, k K) {
	old, had := m[k]
	t.undo = append(t.undo, func() {
		if had {
			m[k] = old
		} else {
			delete(m, k)
		}
	})
}

func (t *tx) Project(ctx context.Context, id core.ID) (core.Project, error) {
	if err := ctx.Err(); err != nil {
		return core.Project{}, err
	}
	p, ok := t.s.Projects[id]
	if !ok {
		return core.Project{}, core.ErrNotFound
	}
	return p, nil
}

func (t *tx) ProjectBy(ctx context.Context, name, path string) (core.Project, error) {
	if err := ctx.Err(); err != nil {
		return core.Project{}, err
	}
	for _, p := range t.s.Projects {
		if name != "" && p.Name == name || name == "" && p.Path == path {
			return p, nil
		}
	}
	return core.Project{}, core.ErrNotFound
}

func (t *tx) Projects(ctx context.Context) ([]core.Project, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]core.Project, 0, len(t.s.Projects))
	for _, p := range t.s.Projects {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b core.Project) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

func (t *tx) Memories(ctx context.Context, f core.MemoryFilter) ([]core.Memory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []core.Memory
	if len(f.IDs) > 0 {
		for _, id := range f.IDs {
			if m, ok := t.s.Memories[id]; ok && f.Match(&m) && !slices.ContainsFunc(out, func(o core.Memory) bool { return o.ID == id }) {
				out = append(out, m.Clone())
			}
		}
	} else {
		for _, m := range t.s.Memories {
			if f.Match(&m) {
				out = append(out, m.Clone())
			}
		}
	}
	slices.SortFunc(out, func(a, b core.Memory) int {
		if f.Newest {
			return cmp.Compare(b.ID, a.ID)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	if out == nil {
		out = []core.Memory{}
	}
	return out, nil
}

func (t *tx) Tombstoned(ctx context.Context, id core.ID) (bool, error) {
	return t.s.Tombstones[id], ctx.Err()
}

// list filters, sorts and limits the values of m.
func list[V any](ctx context.Context, m map[core.ID]V, keep func(*V) bool, order func(a, b V) int, limit int) ([]V, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []V{}
	for _, v := range m {
		if keep(&v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, order)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (t *tx) Events(ctx context.Context, f core.EventFilter) ([]core.Event, error) {
	out, err := list(ctx, t.s.Events, func(e *core.Event) bool {
		return (f.ProjectID == "" || e.ProjectID == f.ProjectID) && (f.ID == "" || e.ID == f.ID) &&
			(f.SessionID == "" || e.SessionID == f.SessionID) && (f.Consolidated == nil || e.Consolidated == *f.Consolidated)
	}, func(a, b core.Event) int {
		return cmp.Or(a.Timestamp.Compare(b.Timestamp), cmp.Compare(a.ID, b.ID))
	}, f.Limit)
	for i := range out {
		out[i].Context.Files = slices.Clone(out[i].Context.Files)
		out[i].Embedding = slices.Clone(out[i].Embedding)
	}
	return out, err
}

func (t *tx) Tasks(ctx context.Context, f core.TaskFilter) ([]core.Task, error) {
	return list(ctx, t.s.Tasks, func(v *core.Task) bool {
		return (f.ProjectID == "" || v.ProjectID == f.ProjectID) && (f.ID == "" || v.ID == f.ID) &&
			(f.Status == "" || v.Status == f.Status) && (f.GoalID == "" || v.GoalID == f.GoalID)
	}, func(a, b core.Task) int { return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.ID, b.ID)) }, f.Limit)
}

func (t *tx) Goals(ctx context.Context, f core.GoalFilter) ([]core.Goal, error) {
	return list(ctx, t.s.Goals, func(v *core.Goal) bool {
		return (f.ProjectID == "" || v.ProjectID == f.ProjectID) && (f.ID == "" || v.ID == f.ID) && (f.Status == "" || v.Status == f.Status)
	}, func(a, b core.Goal) int { return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.ID, b.ID)) }, f.Limit)
}

func (t *tx) CodeEntities(ctx context.Context, f core.CodeFilter) ([]core.CodeEntity, error) {
	return list(ctx, t.s.Code, func(v *core.CodeEntity) bool {
		return (f.ProjectID == "" || v.ProjectID == f.ProjectID) && (f.ID == "" || v.ID == f.ID) &&
			(f.MemoryID == "" || v.MemoryID == f.MemoryID) && (f.FilePath == "" || v.FilePath == f.FilePath)
	}, func(a, b core.CodeEntity) int { return cmp.Compare(a.ID, b.ID) }, f.Limit)
}

func (t *tx) CodeDependencies(ctx context.Context, f core.CodeFilter) ([]core.CodeDependency, error) {
	return list(ctx, t.s.Deps, func(v *core.CodeDependency) bool {
		return (f.ProjectID == "" || v.ProjectID == f.ProjectID) && (f.ID == "" || v.ID == f.ID)
	}, func(a, b core.CodeDependency) int { return cmp.Compare(a.ID, b.ID) }, f.Limit)
}

func (t *tx) Relationships(ctx context.Context, f core.RelationshipFilter) ([]core.Relationship, error) {
	return list(ctx, t.s.Relationships, func(v *core.Relationship) bool {
		return (f.ProjectID == "" || v.ProjectID == f.ProjectID) && (f.ID == "" || v.ID == f.ID) &&
			(f.MemoryID == "" || v.FromID == f.MemoryID || v.ToID == f.MemoryID)
	}, func(a, b core.Relationship) int { return cmp.Compare(a.ID, b.ID) }, f.Limit)
}

func (t *tx) LastSeq(ctx context.Context, device string) (uint64, error) {
	return t.s.LastSeq[device], ctx.Err()
}

func (t *tx) Changes(ctx context.Context, after int64, limit int, exclude string) ([]core.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []core.Change{}
	start := max(after, 0) // Pos is index+1
	for i := start; i < int64(len(t.s.Changes)) && len(out) < limit; i++ {
		c := t.s.Changes[i]
		if exclude != "" && c.Device == exclude {
			continue
		}
		c.Payload = slices.Clone(c.Payload)
		c.Vector = slices.Clone(c.Vector)
		out = append(out, c)
	}
	return out, nil
}

func (t *tx) VectorLeg(ctx context.Context, leg core.VectorLeg) ([]core.Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var qn float64
	for _, x := range leg.Vector {
		qn += float64(x) * float64(x)
	}
	qn = math.Sqrt(qn)
	out := []core.Candidate{}
	for id, d := range t.s.derived {
		m := t.s.Memories[id]
		if !leg.Filter.Match(&m) {
			continue
		}
		var score float64
		if len(m.Embedding) == len(leg.Vector) && d.norm > 0 && qn > 0 {
			var dot float64
			for i, x := range m.Embedding {
				dot += float64(x) * float64(leg.Vector[i])
			}
			score = dot / (d.norm * qn)
		}
		out = append(out, core.Candidate{ID: m.ID, Score: score, Exact: true})
	}
	sortCandidates(out)
	if len(out) > leg.K {
		out = out[:leg.K]
	}
	return out, nil
}

func sortCandidates(cs []core.Candidate) {
	slices.SortFunc(cs, func(a, b core.Candidate) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.ID, b.ID))
	})
}

func (t *tx) KeywordLeg(ctx context.Context, leg core.KeywordLeg) (core.KeywordResult, error) {
	if err := ctx.Err(); err != nil {
		return core.KeywordResult{}, err
	}
	res := core.KeywordResult{Candidates: []core.Candidate{}, Stats: core.CorpusStats{DF: map[string]int64{}}}
	type doc struct {
		m   *core.Memory
		tfs map[string]int
		n   int
	}
	var matches []doc
	for id, d := range t.s.derived {
		m := t.s.Memories[id]
		if m.ProjectID != leg.Filter.ProjectID {
			continue
		}
		res.Stats.Docs++
		res.Stats.TotalLen += int64(d.n)
		hit := false
		for _, term := range leg.Terms {
			if d.tf[term] > 0 {
				res.Stats.DF[term]++
				hit = true
			}
		}
		if hit && leg.Filter.Match(&m) {
			matches = append(matches, doc{m: &m, tfs: d.tf, n: d.n})
		}
	}
	bm := core.BM25Params{}
	for _, d := range matches {
		res.Candidates = append(res.Candidates, core.Candidate{ID: d.m.ID, Score: bm.Score(leg.Terms, d.tfs, d.n, res.Stats)})
	}
	sortCandidates(res.Candidates)
	if len(res.Candidates) > leg.Limit {
		res.Candidates = res.Candidates[:leg.Limit]
	}
	return res, nil
}

func (t *tx) write() error {
	if t.ro {
		return fmt.Errorf("memstore: write in a read-only transaction: %w", core.ErrInvalid)
	}
	return nil
}

func (t *tx) PutProject(ctx context.Context, p core.Project) error {
	if err := t.write(); err != nil {
		return err
	}
	for _, o := range t.s.Projects {
		if o.ID != p.ID && (o.Name == p.Name || o.Path == p.Path) {
			return fmt.Errorf("memstore: put project: %w: name or path taken by %s", core.ErrConflict, o.ID)
		}
	}
	remember(t, t.s.Projects, p.ID)
	t.s.Projects[p.ID] = p
	return ctx.Err()
}

func (t *tx) PutMemory(ctx context.Context, m core.Memory) error {
	if err := t.write(); err != nil {
		return err
	}
	remember(t, t.s.Memories, m.ID)
	remember(t, t.s.derived, m.ID)
	t.s.Memories[m.ID] = m.Clone()
	t.s.derived[m.ID] = derive(&m)
	return ctx.Err()
}

func (t *tx) DeleteMemory(ctx context.Context, id core.ID) error {
	if err := t.write(); err != nil {
		return err
	}
	remember(t, t.s.Memories, id)
	remember(t, t.s.derived, id)
	remember(t, t.s.Tombstones, id)
	delete(t.s.Memories, id)
	delete(t.s.derived, id)
	t.s.Tombstones[id] = true
	return ctx.Err()
}

func put[V any](t *tx, m map[core.ID]V, id core.ID, v V) error {
	if err := t.write(); err != nil {
		return err
	}
	remember(t, m, id)
	m[id] = v
	return nil
}

func (t *tx) PutEvent(ctx context.Context, e core.Event) error {
	e.Context.Files = slices.Clone(e.Context.Files)
	e.Embedding = slices.Clone(e.Embedding)
	return put(t, t.s.Events, e.ID, e)
}

func (t *tx) PutTask(ctx context.Context, v core.Task) error { return put(t, t.s.Tasks, v.ID, v) }
func (t *tx) PutGoal(ctx context.Context, v core.Goal) error { return put(t, t.s.Goals, v.ID, v) }
func (t *tx) PutCodeEntity(ctx context.Context, v core.CodeEntity) error {
	return put(t, t.s.Code, v.ID, v)
}
func (t *tx) PutCodeDependency(ctx context.Context, v core.CodeDependency) error {
	return put(t, t.s.Deps, v.ID, v)
}
func (t *tx) PutRelationship(ctx context.Context, v core.Relationship) error {
	return put(t, t.s.Relationships, v.ID, v)
}

func (t *tx) AppendChange(ctx context.Context, c *core.Change) error {
	if err := t.write(); err != nil {
		return err
	}
	if c.Seq <= t.s.LastSeq[c.Device] {
		for _, o := range t.s.Changes {
			if o.Device == c.Device && o.Seq == c.Seq {
				return fmt.Errorf("memstore: append change %s/%d: %w", c.Device, c.Seq, core.ErrConflict)
			}
		}
	}
	cc := *c
	cc.Payload = slices.Clone(c.Payload)
	cc.Vector = slices.Clone(c.Vector)
	cc.Pos = int64(len(t.s.Changes)) + 1
	c.Pos = cc.Pos
	n := len(t.s.Changes)
	t.s.Changes = append(t.s.Changes, cc)
	remember(t, t.s.LastSeq, c.Device)
	t.s.LastSeq[c.Device] = max(t.s.LastSeq[c.Device], c.Seq)
	t.undo = append(t.undo, func() { t.s.Changes = t.s.Changes[:n] })
	return ctx.Err()
}

// Initialize does nothing: a memstore has no schema. It exists so that the
// store answers core.Initializer like every other store.
func (s *Store) Initialize(ctx context.Context) error { return s.Ping(ctx) }

// Name returns "memory".
func (s *Store) Name() string { return "memory" }

func (t *tx) Meta(ctx context.Context, key string) (string, error) {
	v, ok := t.s.Meta[key]
	if !ok {
		return "", core.ErrNotFound
	}
	return v, ctx.Err()
}

func (t *tx) MetaPrefix(ctx context.Context, prefix string) ([]core.MetaEntry, error) {
	out := []core.MetaEntry{}
	for k, v := range t.s.Meta {
		if strings.HasPrefix(k, prefix) {
			out = append(out, core.MetaEntry{Key: k, Value: v})
		}
	}
	slices.SortFunc(out, func(a, b core.MetaEntry) int { return cmp.Compare(a.Key, b.Key) })
	return out, ctx.Err()
}

func (t *tx) PutMeta(ctx context.Context, key, value string) error {
	if err := t.write(); err != nil {
		return err
	}
	remember(t, t.s.Meta, key)
	t.s.Meta[key] = value
	return ctx.Err()
}

func (t *tx) DeleteMeta(ctx context.Context, key string) error {
	if err := t.write(); err != nil {
		return err
	}
	remember(t, t.s.Meta, key)
	delete(t.s.Meta, key)
	return ctx.Err()
}
