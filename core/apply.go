package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	return tx.applyChanges(ctx, cs, false, nil)
}

// ApplyPulled applies changes pulled from another replica's log, which may
// have been filtered (by project, say) and so skip sequence numbers of a
// device. Changes must arrive in each device's sequence order; a change at
// or below the last recorded seq of its device is a duplicate. Everything
// else is as [Tx.ApplyChanges].
func (tx *Tx) ApplyPulled(ctx context.Context, cs []Change) ([]ApplyResult, error) {
	return tx.applyChanges(ctx, cs, true, nil)
}

// ApplyChangesAfter is ApplyChanges for changes of device whose highest
// recorded seq is assumed to be last, for a batch that follows one still
// being applied in another transaction. If the store checks such an
// assumption late (SeqExpecter), the transaction neither reads nor waits
// for the device's last seq, and its commit fails with ErrSeqGap unless
// the assumption held by then; any other store reads the last seq as
// ApplyChanges does. Changes of other devices are applied as by
// ApplyChanges.
func (tx *Tx) ApplyChangesAfter(ctx context.Context, cs []Change, device string, last uint64) ([]ApplyResult, error) {
	w, err := tx.writer()
	if err != nil {
		return nil, err
	}
	se, ok := w.(SeqExpecter)
	if !ok {
		return tx.applyChanges(ctx, cs, false, nil)
	}
	se.ExpectLastSeq(device, last)
	return tx.applyChanges(ctx, cs, false, map[string]uint64{device: last})
}

// applyChanges applies cs; known holds the devices whose last seq is
// already known (nil: none).
func (tx *Tx) applyChanges(ctx context.Context, cs []Change, allowGaps bool, known map[string]uint64) ([]ApplyResult, error) {
	w, err := tx.writer()
	if err != nil {
		return nil, err
	}
	out := make([]ApplyResult, 0, len(cs))
	last := make(map[string]uint64, len(known)+1)
	for d, l := range known {
		last[d] = l
	}
	for i := range cs {
		if _, ok := last[cs[i].Device]; !ok {
			if last[cs[i].Device], err = w.LastSeq(ctx, cs[i].Device); err != nil {
				return out, err
			}
		}
	}
	b, err := prefetch(ctx, w, cs, last)
	if err != nil {
		return out, err
	}
	for i := range cs {
		c := cs[i] // copy: Pos and Status are ours
		l := last[c.Device]
		if c.Seq <= l {
			out = append(out, ApplyResult{Device: c.Device, Seq: c.Seq, Status: StatusSuperseded, Reason: "already applied", Duplicate: true})
			continue
		}
		if c.Seq != l+1 && !allowGaps {
			return out, fmt.Errorf("apply %s/%d: %w: last applied is %d", c.Device, c.Seq, ErrSeqGap, l)
		}
		var err error
		if c.Status, c.Reason, err = tx.applyRemote(ctx, w, b, &c); err != nil {
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
func (tx *Tx) applyRemote(ctx context.Context, w WriteTx, b *applyBatch, c *Change) (Status, string, error) {
	if c.Device == "" || c.Device == tx.db.device && c.Seq == 0 {
		return StatusRejected, "device: missing", nil
	}
	if err := tx.db.clock.Observe(c.HLC); err != nil {
		return StatusRejected, err.Error(), nil
	}
	st, reason, err := tx.mergeRemote(ctx, w, b, c)
	switch {
	case err == nil:
		return st, reason, nil
	case errors.Is(err, ErrInvalid) || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound):
		return StatusRejected, err.Error(), nil
	}
	return "", "", err
}

func (tx *Tx) mergeRemote(ctx context.Context, w WriteTx, b *applyBatch, c *Change) (Status, string, error) {
	switch c.Kind {
	case KindMemoryPut, KindMemoryAccess, KindMemoryState, KindMemoryDelete:
		cur, dead, err := b.memory(ctx, w, c.EntityID)
		if err != nil {
			return "", "", err
		}
		var in *Memory // a put's payload, decoded once for validation and merge
		if c.Kind == KindMemoryPut && !dead {
			m, reason, err := tx.validateRemoteMemory(ctx, b, c)
			if err != nil {
				return "", "", err
			}
			if reason != "" {
				return StatusRejected, reason, nil
			}
			in = &m
		}
		if c.Kind == KindMemoryState && !dead && cur != nil {
			var p StatePayload
			if err := json.Unmarshal(c.Payload, &p); err == nil && p.To == StateSuperseded && p.SupersededBy != "" {
				if ok, err := b.exists(ctx, w, p.SupersededBy); err != nil {
					return "", "", err
				} else if !ok {
					return StatusRejected, "superseded_by: memory " + string(p.SupersededBy) + " not found", nil
				}
			}
		}
		eff := mergeMemory(cur, dead, c, in)
		if eff.Status != StatusApplied {
			return eff.Status, eff.Reason, nil
		}
		if eff.Delete {
			b.deleted(c.EntityID)
			return StatusApplied, "", w.DeleteMemory(ctx, c.EntityID)
		}
		b.put(eff.Memory)
		return StatusApplied, "", w.PutMemory(ctx, *eff.Memory)
	case KindProjectPut:
		b.forgetProject(c.EntityID)
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
		b.forgetProject(c.EntityID)
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

// validateRemoteMemory decodes a memory.put's payload and checks it as a
// local write would be checked. It returns the payload as decoded, not as
// validation normalized it (the merge takes the writer's values), and
// why the change is rejected ("" if it is not). err is the store's
// failure to read the project, which must fail the transaction rather
// than reject the change.
func (tx *Tx) validateRemoteMemory(ctx context.Context, b *applyBatch, c *Change) (m Memory, reason string, err error) {
	if err := decodePayload(c, &m); err != nil {
		return m, err.Error(), nil
	}
	if _, err := ParseID(string(c.EntityID)); err != nil {
		return m, err.Error(), nil
	}
	p, err := b.project(ctx, tx.r, c.ProjectID)
	if errors.Is(err, ErrNotFound) {
		return m, "project_id: " + err.Error(), nil
	}
	if err != nil {
		return m, "", err
	}
	v := m // ValidateMemory fills defaults in v; NormalizeTags returns a new slice
	v.Embedding = c.Vector
	if err := tx.db.limits.ValidateMemory(&v, &p); err != nil {
		return m, err.Error(), nil
	}
	return m, "", nil
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
	if _, err := tx.r.Project(ctx, project); errors.Is(err, ErrNotFound) {
		return StatusRejected, "project_id: " + err.Error(), nil
	} else if err != nil {
		return "", "", err
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

// applyBatch holds what one ApplyChanges call reads: every memory its
// changes touch and whether each is tombstoned, fetched up front (one
// Memories call and one tombstone lookup per prefetchChunk IDs), kept up to
// date as the batch merges, and the projects its memories validate against.
// On a store where the round trip is the cost (PostgreSQL) a batch then
// costs one read and a run of writes instead of a read before every write.
type applyBatch struct {
	mem      map[ID]*Memory // a nil value: known not to exist
	dead     map[ID]bool
	projects map[ID]Project
}

// prefetchChunk bounds the IDs of one prefetch read, well under SQLite's
// and PostgreSQL's parameter limits.
const prefetchChunk = 500

// prefetch reads the memories that cs's new changes (those past last, the
// highest seq recorded per device) touch, including the survivors that
// state changes name in superseded_by.
func prefetch(ctx context.Context, w WriteTx, cs []Change, last map[string]uint64) (*applyBatch, error) {
	b := &applyBatch{mem: map[ID]*Memory{}, dead: map[ID]bool{}, projects: map[ID]Project{}}
	var ids []ID
	seen := map[ID]bool{}
	add := func(id ID) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for i := range cs {
		c := &cs[i]
		if c.Seq <= last[c.Device] {
			continue
		}
		switch c.Kind {
		case KindMemoryPut, KindMemoryAccess, KindMemoryDelete:
			add(c.EntityID)
		case KindMemoryState:
			add(c.EntityID)
			var p StatePayload
			if json.Unmarshal(c.Payload, &p) == nil {
				add(p.SupersededBy)
			}
		}
	}
	for chunk := range slices.Chunk(ids, prefetchChunk) {
		if err := b.fetch(ctx, w, chunk); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// fetch reads ids into the cache.
func (b *applyBatch) fetch(ctx context.Context, w WriteTx, ids []ID) error {
	ms, err := w.Memories(ctx, MemoryFilter{IDs: ids})
	if err != nil {
		return err
	}
	for _, id := range ids {
		b.mem[id] = nil
	}
	for i := range ms {
		b.mem[ms[i].ID] = &ms[i]
	}
	if tr, ok := w.(TombstoneReader); ok {
		dead, err := tr.TombstonedIDs(ctx, ids)
		if err != nil {
			return err
		}
		for id := range dead {
			b.dead[id] = true
		}
		return nil
	}
	for _, id := range ids {
		dead, err := w.Tombstoned(ctx, id)
		if err != nil {
			return err
		}
		b.dead[id] = dead
	}
	return nil
}

// memory returns the replica's current row for id (nil if absent) and
// whether it is tombstoned.
func (b *applyBatch) memory(ctx context.Context, w WriteTx, id ID) (*Memory, bool, error) {
	if _, ok := b.mem[id]; !ok {
		if err := b.fetch(ctx, w, []ID{id}); err != nil {
			return nil, false, err
		}
	}
	return b.mem[id], b.dead[id], nil
}

// exists reports whether the memory id exists (and is not deleted).
func (b *applyBatch) exists(ctx context.Context, w WriteTx, id ID) (bool, error) {
	m, _, err := b.memory(ctx, w, id)
	return m != nil, err
}

// put records a memory the batch wrote.
func (b *applyBatch) put(m *Memory) { b.mem[m.ID] = m }

// deleted records a memory the batch deleted.
func (b *applyBatch) deleted(id ID) {
	b.mem[id] = nil
	b.dead[id] = true
}

// project returns the project id, read once per batch.
func (b *applyBatch) project(ctx context.Context, r ReadTx, id ID) (Project, error) {
	if p, ok := b.projects[id]; ok {
		return p, nil
	}
	p, err := r.Project(ctx, id)
	if err != nil {
		return Project{}, err
	}
	b.projects[id] = p
	return p, nil
}

// forgetProject drops a cached project a change is about to write.
func (b *applyBatch) forgetProject(id ID) { delete(b.projects, id) }
