package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ApplyResult is the outcome of one remote change.
type ApplyResult struct {
	Device string `json:"device"`
	Seq    uint64 `json:"seq"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Duplicate is true when the change was already recorded (a replay);
	// Status then repeats nothing and the change had no effect.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ApplyChanges applies remote changes in order, idempotently by (device,
// seq): a change already recorded is reported as a duplicate and has no
// effect. A change whose seq skips ahead of its device's last recorded one
// stops the batch with ErrSeqGap (the results so far are returned and, in
// the caller's transaction, may still commit). Invalid changes are recorded
// as rejected, with a reason, and do not block the changes behind them.
func (tx *Tx) ApplyChanges(ctx context.Context, cs []Change) ([]ApplyResult, error) {
	return tx.applyChanges(ctx, cs, false)
}

// ApplyPulled applies changes pulled from another replica's log, which may
// have been filtered (by project, say) and so skip sequence numbers of a
// device. Changes must arrive in each device's sequence order; a change at
// or below the last recorded seq of its device is a duplicate. Everything
// else is as [Tx.ApplyChanges].
func (tx *Tx) ApplyPulled(ctx context.Context, cs []Change) ([]ApplyResult, error) {
	return tx.applyChanges(ctx, cs, true)
}

func (tx *Tx) applyChanges(ctx context.Context, cs []Change, allowGaps bool) ([]ApplyResult, error) {
	w, err := tx.writer()
	if err != nil {
		return nil, err
	}
	out := make([]ApplyResult, 0, len(cs))
	last := map[string]uint64{}
	for i := range cs {
		c := cs[i] // copy: Pos and Status are ours
		l, ok := last[c.Device]
		if !ok {
			if l, err = w.LastSeq(ctx, c.Device); err != nil {
				return out, err
			}
		}
		if c.Seq <= l {
			out = append(out, ApplyResult{Device: c.Device, Seq: c.Seq, Status: StatusSuperseded, Reason: "already applied", Duplicate: true})
			last[c.Device] = l
			continue
		}
		if c.Seq != l+1 && !allowGaps {
			return out, fmt.Errorf("apply %s/%d: %w: last applied is %d", c.Device, c.Seq, ErrSeqGap, l)
		}
		var err error
		if c.Status, c.Reason, err = tx.applyRemote(ctx, w, &c); err != nil {
			return out, fmt.Errorf("apply %s/%d: %w", c.Device, c.Seq, err)
		}
		c.Pos = 0
		if err := w.AppendChange(ctx, &c); err != nil {
			return out, fmt.Errorf("apply %s/%d: %w", c.Device, c.Seq, err)
		}
		last[c.Device] = c.Seq
		out = append(out, ApplyResult{Device: c.Device, Seq: c.Seq, Status: c.Status, Reason: c.Reason})
	}
	return out, nil
}

// applyRemote merges one remote change into the replica and reports its
// status. A change the replica judges invalid (ErrInvalid, ErrConflict,
// ErrNotFound from the merge) is rejected with the reason; any other store
// error (a lost connection, a lock the store asks to retry) is returned, so
// the whole transaction fails and is retried or reported: a transient
// failure must never turn into a permanent rejection.
func (tx *Tx) applyRemote(ctx context.Context, w WriteTx, c *Change) (Status, string, error) {
	if c.Device == "" || c.Device == tx.db.device && c.Seq == 0 {
		return StatusRejected, "device: missing", nil
	}
	if err := tx.db.clock.Observe(c.HLC); err != nil {
		return StatusRejected, err.Error(), nil
	}
	st, reason, err := tx.mergeRemote(ctx, w, c)
	switch {
	case err == nil:
		return st, reason, nil
	case errors.Is(err, ErrInvalid) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound):
		return StatusRejected, err.Error(), nil
	}
	return "", "", err
}

func (tx *Tx) mergeRemote(ctx context.Context, w WriteTx, c *Change) (Status, string, error) {
	switch c.Kind {
	case KindMemoryPut, KindMemoryAccess, KindMemoryState, KindMemoryDelete:
		dead, err := w.Tombstoned(ctx, c.EntityID)
		if err != nil {
			return "", "", err
		}
		var cur *Memory
		if ms, err := w.Memories(ctx, MemoryFilter{IDs: []ID{c.EntityID}}); err != nil {
			return "", "", err
		} else if len(ms) > 0 {
			cur = &ms[0]
		}
		if c.Kind == KindMemoryPut && !dead {
			if err := tx.validateRemoteMemory(ctx, c); err != nil {
				return StatusRejected, err.Error(), nil
			}
		}
		if c.Kind == KindMemoryState && !dead && cur != nil {
			var p StatePayload
			if err := json.Unmarshal(c.Payload, &p); err == nil && p.To == StateSuperseded && p.SupersededBy != "" {
				if ok, err := tx.memoryExists(ctx, p.SupersededBy); err != nil {
					return "", "", err
				} else if !ok {
					return StatusRejected, "superseded_by: memory " + string(p.SupersededBy) + " not found", nil
				}
			}
		}
		eff := MergeMemory(cur, dead, c)
		if eff.Status != StatusApplied {
			return eff.Status, eff.Reason, nil
		}
		if eff.Delete {
			return StatusApplied, "", w.DeleteMemory(ctx, c.EntityID)
		}
		return StatusApplied, "", w.PutMemory(ctx, *eff.Memory)
	case KindProjectPut:
		var p Project
		if err := decodePayload(c, &p); err != nil {
			return StatusRejected, err.Error(), nil
		}
		p.ID, p.Version = c.EntityID, c.Stamp()
		if p.ID != ProjectIDFor(p.Name) {
			return StatusRejected, "id: project ID does not derive from its name", nil
		}
		if err := tx.db.limits.ValidateProject(&p); err != nil {
			return StatusRejected, err.Error(), nil
		}
		cur, err := w.Project(ctx, p.ID)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return "", "", err
		case !p.Version.After(cur.Version):
			return StatusSuperseded, "an equal or newer write already won", nil
		default:
			if cur.EmbeddingModel != p.EmbeddingModel || cur.EmbeddingDim != p.EmbeddingDim {
				// A project's embedder changes only together with every
				// memory's vector, which a project put cannot carry: each
				// replica re-embeds locally (Tx.SwapEmbedder).
				return StatusRejected, fmt.Sprintf("embedding_model: this change moves the project's embedder from %s/%d to %s/%d; "+
					"an embedder changes only by a local re-embed of every memory, which each replica runs itself (athena-edge reembed)",
					cur.EmbeddingModel, cur.EmbeddingDim, p.EmbeddingModel, p.EmbeddingDim), nil
			}
			if cur.LastAccessed.After(p.LastAccessed) {
				p.LastAccessed = cur.LastAccessed
			}
		}
		if err := w.PutProject(ctx, p); err != nil {
			if errors.Is(err, ErrConflict) {
				return StatusRejected, err.Error(), nil
			}
			return "", "", err
		}
		return StatusApplied, "", nil
	case KindProjectTouch:
		var t TouchPayload
		if err := decodePayload(c, &t); err != nil {
			return StatusRejected, err.Error(), nil
		}
		p, err := w.Project(ctx, c.EntityID)
		if errors.Is(err, ErrNotFound) {
			return StatusRejected, "project " + string(c.EntityID) + " not found", nil
		} else if err != nil {
			return "", "", err
		}
		at := FromUnixMilli(t.AtMS)
		if !at.After(p.LastAccessed) {
			return StatusSuperseded, "last_accessed already later", nil
		}
		p.LastAccessed = at
		return StatusApplied, "", w.PutProject(ctx, p)
	case KindEventPut:
		return mergeRecord(ctx, tx, c, func(v *Event) (ID, *Stamp) { return v.ProjectID, &v.Version },
			tx.db.limits.ValidateEvent, func(ctx context.Context, id ID) ([]Event, error) { return w.Events(ctx, EventFilter{ID: id}) }, w.PutEvent)
	case KindTaskPut:
		return mergeRecord(ctx, tx, c, func(v *Task) (ID, *Stamp) { return v.ProjectID, &v.Version },
			tx.db.limits.ValidateTask, func(ctx context.Context, id ID) ([]Task, error) { return w.Tasks(ctx, TaskFilter{ID: id}) }, w.PutTask)
	case KindGoalPut:
		return mergeRecord(ctx, tx, c, func(v *Goal) (ID, *Stamp) { return v.ProjectID, &v.Version },
			tx.db.limits.ValidateGoal, func(ctx context.Context, id ID) ([]Goal, error) { return w.Goals(ctx, GoalFilter{ID: id}) }, w.PutGoal)
	case KindCodeEntityPut:
		return mergeRecord(ctx, tx, c, func(v *CodeEntity) (ID, *Stamp) { return v.ProjectID, &v.Version },
			tx.db.limits.ValidateCodeEntity, func(ctx context.Context, id ID) ([]CodeEntity, error) {
				return w.CodeEntities(ctx, CodeFilter{ID: id})
			}, w.PutCodeEntity)
	case KindCodeDepPut:
		return mergeRecord(ctx, tx, c, func(v *CodeDependency) (ID, *Stamp) { return v.ProjectID, &v.Version },
			func(*CodeDependency) error { return nil }, func(ctx context.Context, id ID) ([]CodeDependency, error) {
				return w.CodeDependencies(ctx, CodeFilter{ID: id})
			}, w.PutCodeDependency)
	case KindRelationshipPut:
		return mergeRecord(ctx, tx, c, func(v *Relationship) (ID, *Stamp) { return v.ProjectID, &v.Version },
			func(*Relationship) error { return nil }, func(ctx context.Context, id ID) ([]Relationship, error) {
				return w.Relationships(ctx, RelationshipFilter{ID: id})
			}, w.PutRelationship)
	}
	return StatusRejected, "unknown change kind " + string(c.Kind), nil
}

func (tx *Tx) memoryExists(ctx context.Context, id ID) (bool, error) {
	ms, err := tx.r.Memories(ctx, MemoryFilter{IDs: []ID{id}})
	return len(ms) > 0, err
}

// validateRemoteMemory applies the same validator a local write gets.
func (tx *Tx) validateRemoteMemory(ctx context.Context, c *Change) error {
	var m Memory
	if err := decodePayload(c, &m); err != nil {
		return err
	}
	if _, err := ParseID(string(c.EntityID)); err != nil {
		return err
	}
	p, err := tx.r.Project(ctx, c.ProjectID)
	if err != nil {
		return fmt.Errorf("project_id: %w", err)
	}
	m.Embedding = c.Vector
	return tx.db.limits.ValidateMemory(&m, &p)
}

// mergeRecord is last-writer-wins for records other than memories and
// projects.
func mergeRecord[T any](ctx context.Context, tx *Tx, c *Change, meta func(*T) (ID, *Stamp), validate func(*T) error,
	get func(context.Context, ID) ([]T, error), put func(context.Context, T) error) (Status, string, error) {
	var v T
	if err := decodePayload(c, &v); err != nil {
		return StatusRejected, err.Error(), nil
	}
	project, stamp := meta(&v)
	*stamp = c.Stamp()
	if project != c.ProjectID {
		return StatusRejected, "project_id: payload and change disagree", nil
	}
	if _, err := tx.r.Project(ctx, project); err != nil {
		return StatusRejected, "project_id: " + err.Error(), nil
	}
	if err := validate(&v); err != nil {
		return StatusRejected, err.Error(), nil
	}
	cur, err := get(ctx, c.EntityID)
	if err != nil {
		return "", "", err
	}
	if len(cur) > 0 {
		_, cs := meta(&cur[0])
		if !newer(c.Stamp(), *cs) {
			return StatusSuperseded, "an equal or newer write already won", nil
		}
	}
	return StatusApplied, "", put(ctx, v)
}
