package core

import (
	"context"
	"time"
)

// The methods below run one Tx method in its own transaction. Use
// [DB.Update] to combine several writes atomically.

func write[T any](ctx context.Context, db *DB, fn func(*Tx) (T, error)) (T, error) {
	var out T
	err := db.Update(ctx, func(tx *Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}

func read[T any](ctx context.Context, db *DB, fn func(*Tx) (T, error)) (T, error) {
	var out T
	err := db.View(ctx, func(tx *Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}

// CreateProject runs [Tx.CreateProject] in its own transaction.
func (db *DB) CreateProject(ctx context.Context, p Project) (Project, error) {
	return write(ctx, db, func(tx *Tx) (Project, error) { return tx.CreateProject(ctx, p) })
}

// Project runs [Tx.Project].
func (db *DB) Project(ctx context.Context, id ID) (Project, error) {
	return read(ctx, db, func(tx *Tx) (Project, error) { return tx.Project(ctx, id) })
}

// ProjectByPath runs [Tx.ProjectByPath].
func (db *DB) ProjectByPath(ctx context.Context, path string) (Project, error) {
	return read(ctx, db, func(tx *Tx) (Project, error) { return tx.ProjectByPath(ctx, path) })
}

// ProjectByName runs [Tx.ProjectByName].
func (db *DB) ProjectByName(ctx context.Context, name string) (Project, error) {
	return read(ctx, db, func(tx *Tx) (Project, error) { return tx.ProjectByName(ctx, name) })
}

// Projects runs [Tx.Projects].
func (db *DB) Projects(ctx context.Context) ([]Project, error) {
	return read(ctx, db, func(tx *Tx) ([]Project, error) { return tx.Projects(ctx) })
}

// TouchProject runs [Tx.TouchProject] in its own transaction.
func (db *DB) TouchProject(ctx context.Context, id ID) (Project, error) {
	return write(ctx, db, func(tx *Tx) (Project, error) { return tx.TouchProject(ctx, id) })
}

// Remember runs [Tx.Remember] in its own transaction.
func (db *DB) Remember(ctx context.Context, m Memory) (Memory, error) {
	return write(ctx, db, func(tx *Tx) (Memory, error) { return tx.Remember(ctx, m) })
}

// BatchResult is the outcome of one item of a batch.
type BatchResult struct {
	ID  ID
	Err error
}

// RememberBatch stores many memories in one transaction. Each item is
// validated on its own: an invalid item gets its error in the result and
// the rest of the batch is stored. The returned error is for the
// transaction as a whole.
func (db *DB) RememberBatch(ctx context.Context, ms []Memory) ([]BatchResult, error) {
	return write(ctx, db, func(tx *Tx) ([]BatchResult, error) {
		out := make([]BatchResult, len(ms))
		projects := map[ID]*Project{}
		for i, m := range ms {
			p, ok := projects[m.ProjectID]
			if !ok {
				pp, err := tx.r.Project(ctx, m.ProjectID)
				if err != nil {
					projects[m.ProjectID] = nil
					out[i].Err = err
					continue
				}
				p = &pp
				projects[m.ProjectID] = p
			}
			if p == nil {
				out[i].Err = ErrNotFound
				continue
			}
			fresh := m.ID == ""
			if err := tx.prepareMemory(ctx, &m, p); err != nil {
				out[i].Err = err
				continue
			}
			got, err := tx.putNewMemory(ctx, m, fresh)
			if err != nil {
				out[i].Err = err
				continue
			}
			out[i].ID = got.ID
		}
		return out, nil
	})
}

// Memory runs [Tx.Memory].
func (db *DB) Memory(ctx context.Context, id ID) (Memory, error) {
	return read(ctx, db, func(tx *Tx) (Memory, error) { return tx.Memory(ctx, id) })
}

// Memories runs [Tx.Memories].
func (db *DB) Memories(ctx context.Context, f MemoryFilter) ([]Memory, error) {
	return read(ctx, db, func(tx *Tx) ([]Memory, error) { return tx.Memories(ctx, f) })
}

// UpdateMemory runs [Tx.UpdateMemory] in its own transaction.
func (db *DB) UpdateMemory(ctx context.Context, id ID, fn func(*Memory) error) (Memory, error) {
	return write(ctx, db, func(tx *Tx) (Memory, error) { return tx.UpdateMemory(ctx, id, fn) })
}

// DeleteMemory runs [Tx.DeleteMemory] in its own transaction.
func (db *DB) DeleteMemory(ctx context.Context, id ID) error {
	return db.Update(ctx, func(tx *Tx) error { return tx.DeleteMemory(ctx, id) })
}

// RecordAccess runs [Tx.RecordAccess] in its own transaction.
func (db *DB) RecordAccess(ctx context.Context, ids ...ID) ([]Memory, error) {
	return write(ctx, db, func(tx *Tx) ([]Memory, error) { return tx.RecordAccess(ctx, ids...) })
}

// SetState runs [Tx.SetState] in its own transaction.
func (db *DB) SetState(ctx context.Context, id ID, to State, supersededBy ID) (Memory, error) {
	return write(ctx, db, func(tx *Tx) (Memory, error) { return tx.SetState(ctx, id, to, supersededBy) })
}

// ReconsolidationWindow runs [Tx.ReconsolidationWindow].
func (db *DB) ReconsolidationWindow(ctx context.Context, project ID, window time.Duration) ([]Memory, error) {
	return read(ctx, db, func(tx *Tx) ([]Memory, error) { return tx.ReconsolidationWindow(ctx, project, window) })
}

// Search runs [Tx.Search] in a read transaction.
func (db *DB) Search(ctx context.Context, q Query) ([]Hit, error) {
	return read(ctx, db, func(tx *Tx) ([]Hit, error) { return tx.Search(ctx, q) })
}

// RecordEvent runs [Tx.RecordEvent] in its own transaction.
func (db *DB) RecordEvent(ctx context.Context, e Event) (Event, error) {
	return write(ctx, db, func(tx *Tx) (Event, error) { return tx.RecordEvent(ctx, e) })
}

// Events runs [Tx.Events].
func (db *DB) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	return read(ctx, db, func(tx *Tx) ([]Event, error) { return tx.Events(ctx, f) })
}

// CreateTask runs [Tx.CreateTask] in its own transaction.
func (db *DB) CreateTask(ctx context.Context, t Task) (Task, error) {
	return write(ctx, db, func(tx *Tx) (Task, error) { return tx.CreateTask(ctx, t) })
}

// PutTask runs [Tx.PutTask] in its own transaction.
func (db *DB) PutTask(ctx context.Context, t Task) (Task, error) {
	return write(ctx, db, func(tx *Tx) (Task, error) { return tx.PutTask(ctx, t) })
}

// Tasks runs [Tx.Tasks].
func (db *DB) Tasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	return read(ctx, db, func(tx *Tx) ([]Task, error) { return tx.Tasks(ctx, f) })
}

// CreateGoal runs [Tx.CreateGoal] in its own transaction.
func (db *DB) CreateGoal(ctx context.Context, g Goal) (Goal, error) {
	return write(ctx, db, func(tx *Tx) (Goal, error) { return tx.CreateGoal(ctx, g) })
}

// PutGoal runs [Tx.PutGoal] in its own transaction.
func (db *DB) PutGoal(ctx context.Context, g Goal) (Goal, error) {
	return write(ctx, db, func(tx *Tx) (Goal, error) { return tx.PutGoal(ctx, g) })
}

// Goals runs [Tx.Goals].
func (db *DB) Goals(ctx context.Context, f GoalFilter) ([]Goal, error) {
	return read(ctx, db, func(tx *Tx) ([]Goal, error) { return tx.Goals(ctx, f) })
}

// CreateCodeEntity runs [Tx.CreateCodeEntity] in its own transaction.
func (db *DB) CreateCodeEntity(ctx context.Context, c CodeEntity) (CodeEntity, error) {
	return write(ctx, db, func(tx *Tx) (CodeEntity, error) { return tx.CreateCodeEntity(ctx, c) })
}

// CodeEntities runs [Tx.CodeEntities].
func (db *DB) CodeEntities(ctx context.Context, f CodeFilter) ([]CodeEntity, error) {
	return read(ctx, db, func(tx *Tx) ([]CodeEntity, error) { return tx.CodeEntities(ctx, f) })
}

// CreateCodeDependency runs [Tx.CreateCodeDependency] in its own transaction.
func (db *DB) CreateCodeDependency(ctx context.Context, d CodeDependency) (CodeDependency, error) {
	return write(ctx, db, func(tx *Tx) (CodeDependency, error) { return tx.CreateCodeDependency(ctx, d) })
}

// Relate runs [Tx.Relate] in its own transaction.
func (db *DB) Relate(ctx context.Context, r Relationship) (Relationship, error) {
	return write(ctx, db, func(tx *Tx) (Relationship, error) { return tx.Relate(ctx, r) })
}

// Changes runs [Tx.Changes].
func (db *DB) Changes(ctx context.Context, after int64, limit int, exclude string) ([]Change, error) {
	return read(ctx, db, func(tx *Tx) ([]Change, error) { return tx.Changes(ctx, after, limit, exclude) })
}

// ApplyChanges runs [Tx.ApplyChanges] in one transaction: the batch
// commits as a whole. On ErrSeqGap nothing is committed.
func (db *DB) ApplyChanges(ctx context.Context, cs []Change) ([]ApplyResult, error) {
	return write(ctx, db, func(tx *Tx) ([]ApplyResult, error) { return tx.ApplyChanges(ctx, cs) })
}

// ApplyPulled runs [Tx.ApplyPulled] in one transaction.
func (db *DB) ApplyPulled(ctx context.Context, cs []Change) ([]ApplyResult, error) {
	return write(ctx, db, func(tx *Tx) ([]ApplyResult, error) { return tx.ApplyPulled(ctx, cs) })
}
