package core

import (
	"context"
	"errors"
	"fmt"
)

// Record kinds in an export.
const (
	RecordProject      = "project"
	RecordMemory       = "memory"
	RecordEvent        = "event"
	RecordTask         = "task"
	RecordGoal         = "goal"
	RecordCodeEntity   = "code_entity"
	RecordCodeDep      = "code_dependency"
	RecordRelationship = "relationship"
)

// Record is one object of an export: exactly one pointer is set, matching
// Kind. Memories carry their embedding and model stamp, and every record
// its replication metadata, so an export imported into an empty store
// reproduces it exactly, on any store.
type Record struct {
	Kind         string          `json:"kind"`
	Project      *Project        `json:"project,omitempty"`
	Memory       *Memory         `json:"memory,omitempty"`
	Event        *Event          `json:"event,omitempty"`
	Task         *Task           `json:"task,omitempty"`
	Goal         *Goal           `json:"goal,omitempty"`
	CodeEntity   *CodeEntity     `json:"code_entity,omitempty"`
	CodeDep      *CodeDependency `json:"code_dependency,omitempty"`
	Relationship *Relationship   `json:"relationship,omitempty"`
}

// Export calls fn with every record of every project, projects first and
// each kind in ID order, reading memories in pages so memory use stays
// flat. It stops at fn's first error.
func (db *DB) Export(ctx context.Context, fn func(Record) error) error {
	ps, err := db.Projects(ctx)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for i := range ps {
		if err := fn(Record{Kind: RecordProject, Project: &ps[i]}); err != nil {
			return err
		}
	}
	for _, p := range ps {
		var after ID
		for {
			ms, err := db.Memories(ctx, MemoryFilter{ProjectID: p.ID, AfterID: after, Limit: 500})
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			for i := range ms {
				if err := fn(Record{Kind: RecordMemory, Memory: &ms[i]}); err != nil {
					return err
				}
			}
			if len(ms) < 500 {
				break
			}
			after = ms[len(ms)-1].ID
		}
		err := db.View(ctx, func(tx *Tx) error {
			evs, err := tx.Events(ctx, EventFilter{ProjectID: p.ID})
			if err != nil {
				return err
			}
			ts, err := tx.Tasks(ctx, TaskFilter{ProjectID: p.ID})
			if err != nil {
				return err
			}
			gs, err := tx.Goals(ctx, GoalFilter{ProjectID: p.ID})
			if err != nil {
				return err
			}
			cs, err := tx.CodeEntities(ctx, CodeFilter{ProjectID: p.ID})
			if err != nil {
				return err
			}
			ds, err := tx.CodeDependencies(ctx, CodeFilter{ProjectID: p.ID})
			if err != nil {
				return err
			}
			rs, err := tx.Relationships(ctx, RelationshipFilter{ProjectID: p.ID})
			if err != nil {
				return err
			}
			var recs []Record
			for i := range evs {
				recs = append(recs, Record{Kind: RecordEvent, Event: &evs[i]})
			}
			for i := range ts {
				recs = append(recs, Record{Kind: RecordTask, Task: &ts[i]})
			}
			for i := range gs {
				recs = append(recs, Record{Kind: RecordGoal, Goal: &gs[i]})
			}
			for i := range cs {
				recs = append(recs, Record{Kind: RecordCodeEntity, CodeEntity: &cs[i]})
			}
			for i := range ds {
				recs = append(recs, Record{Kind: RecordCodeDep, CodeDep: &ds[i]})
			}
			for i := range rs {
				recs = append(recs, Record{Kind: RecordRelationship, Relationship: &rs[i]})
			}
			for _, r := range recs {
				if err := fn(r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Import writes one exported record verbatim, after validating it like any
// other write, and records it in the change log so sync carries it. A
// record whose ID already exists is ErrConflict (a project with the same
// name and path is accepted as already there).
func (tx *Tx) Import(ctx context.Context, r Record) error {
	w, err := tx.writer()
	if err != nil {
		return err
	}
	bad := func() error { return fieldErr("kind", "record of kind %q has no %s object", r.Kind, r.Kind) }
	switch r.Kind {
	case RecordProject:
		if r.Project == nil {
			return bad()
		}
		p := *r.Project
		if err := tx.db.limits.ValidateProject(&p); err != nil {
			return err
		}
		if p.ID != ProjectIDFor(p.Name) {
			return fieldErr("id", "project ID does not derive from its name %q", p.Name)
		}
		if cur, err := w.Project(ctx, p.ID); err == nil {
			if cur.Path == p.Path && cur.EmbeddingModel == p.EmbeddingModel && cur.EmbeddingDim == p.EmbeddingDim {
				return nil
			}
			return fmt.Errorf("%w: project %q exists with another path or embedder", ErrConflict, p.Name)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if _, err := tx.emit(ctx, KindProjectPut, p.ID, p.ID, p, nil); err != nil {
			return err
		}
		return w.PutProject(ctx, p)
	case RecordMemory:
		if r.Memory == nil {
			return bad()
		}
		m := r.Memory.Clone()
		if _, err := ParseID(string(m.ID)); err != nil {
			return err
		}
		p, err := w.Project(ctx, m.ProjectID)
		if err != nil {
			return fmt.Errorf("project_id %s: %w", m.ProjectID, err)
		}
		if err := tx.db.limits.ValidateMemory(&m, &p); err != nil {
			return err
		}
		if ok, err := tx.memoryExists(ctx, m.ID); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%w: memory %s exists", ErrConflict, m.ID)
		}
		if dead, err := w.Tombstoned(ctx, m.ID); err != nil {
			return err
		} else if dead {
			return fmt.Errorf("%w: memory %s was deleted here", ErrConflict, m.ID)
		}
		payload := m.Clone()
		payload.Embedding, payload.AccessByDevice = nil, nil
		if _, err := tx.emit(ctx, KindMemoryPut, m.ProjectID, m.ID, payload, m.Embedding); err != nil {
			return err
		}
		m.QualityScore = Quality(m.Usefulness, m.Confidence, m.AccessCount)
		return w.PutMemory(ctx, m)
	case RecordEvent:
		if r.Event == nil {
			return bad()
		}
		return importRecord(ctx, tx, *r.Event, KindEventPut, r.Event.ProjectID, r.Event.ID, tx.db.limits.ValidateEvent,
			func(ctx context.Context, id ID) (bool, error) {
				xs, err := w.Events(ctx, EventFilter{ID: id})
				return len(xs) > 0, err
			}, w.PutEvent)
	case RecordTask:
		if r.Task == nil {
			return bad()
		}
		return importRecord(ctx, tx, *r.Task, KindTaskPut, r.Task.ProjectID, r.Task.ID, tx.db.limits.ValidateTask,
			func(ctx context.Context, id ID) (bool, error) {
				xs, err := w.Tasks(ctx, TaskFilter{ID: id})
				return len(xs) > 0, err
			}, w.PutTask)
	case RecordGoal:
		if r.Goal == nil {
			return bad()
		}
		return importRecord(ctx, tx, *r.Goal, KindGoalPut, r.Goal.ProjectID, r.Goal.ID, tx.db.limits.ValidateGoal,
			func(ctx context.Context, id ID) (bool, error) {
				xs, err := w.Goals(ctx, GoalFilter{ID: id})
				return len(xs) > 0, err
			}, w.PutGoal)
	case RecordCodeEntity:
		if r.CodeEntity == nil {
			return bad()
		}
		return importRecord(ctx, tx, *r.CodeEntity, KindCodeEntityPut, r.CodeEntity.ProjectID, r.CodeEntity.ID, tx.db.limits.ValidateCodeEntity,
			func(ctx context.Context, id ID) (bool, error) {
				xs, err := w.CodeEntities(ctx, CodeFilter{ID: id})
				return len(xs) > 0, err
			}, w.PutCodeEntity)
	case RecordCodeDep:
		if r.CodeDep == nil {
			return bad()
		}
		return importRecord(ctx, tx, *r.CodeDep, KindCodeDepPut, r.CodeDep.ProjectID, r.CodeDep.ID, func(*CodeDependency) error { return nil },
			func(ctx context.Context, id ID) (bool, error) {
				xs, err := w.CodeDependencies(ctx, CodeFilter{ID: id})
				return len(xs) > 0, err
			}, w.PutCodeDependency)
	case RecordRelationship:
		if r.Relationship == nil {
			return bad()
		}
		return importRecord(ctx, tx, *r.Relationship, KindRelationshipPut, r.Relationship.ProjectID, r.Relationship.ID, func(*Relationship) error { return nil },
			func(ctx context.Context, id ID) (bool, error) {
				xs, err := w.Relationships(ctx, RelationshipFilter{ID: id})
				return len(xs) > 0, err
			}, w.PutRelationship)
	}
	return fieldErr("kind", "unknown record kind %q", r.Kind)
}

func importRecord[T any](ctx context.Context, tx *Tx, v T, kind Kind, project, id ID, validate func(*T) error,
	exists func(context.Context, ID) (bool, error), put func(context.Context, T) error) error {
	if _, err := ParseID(string(id)); err != nil {
		return err
	}
	if _, err := tx.r.Project(ctx, project); err != nil {
		return fmt.Errorf("project_id %s: %w", project, err)
	}
	if err := validate(&v); err != nil {
		return err
	}
	if ok, err := exists(ctx, id); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: %s %s exists", ErrConflict, kind, id)
	}
	if _, err := tx.emit(ctx, kind, project, id, v, nil); err != nil {
		return err
	}
	return put(ctx, v)
}
