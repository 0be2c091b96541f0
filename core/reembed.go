package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// Re-embedding moves a project to another embedder (model, dimension, or
// both) in two phases:
//
//  1. Staging, resumable, while the project keeps working on its old
//     embedder: every memory is embedded with the new embedder in batches,
//     and each batch's vectors are written to the store's metadata
//     ([MetaTx], local to the replica) together with a progress key, in
//     one transaction. A run that is interrupted continues from the
//     progress key. A catch-up pass then re-embeds the memories created or
//     edited while staging ran: each staged vector carries the Version of
//     the memory it was computed from.
//  2. The swap, in one transaction ([Tx.SwapEmbedder]): the project's
//     model and dimension and every memory's embedding change together,
//     through the change log, and the staged data is deleted. Readers see
//     the old embedder or the new one, never a mix.
//
// Staged data lives under these metadata keys (<model> is path-escaped):
//
//	reembed/<project>/<model>/<dim>/last          the last memory ID staged by phase 1
//	reembed/<project>/<model>/<dim>/v/<memory ID> {"version":<stamp>,"vec":"<base64 of little-endian float32>"}
//
// Re-embedding is a local operation of one replica: a replica that
// receives a project put changing the embedder rejects it (see
// [Tx.SwapEmbedder]).

// DefaultReembedBatch is how many memories one staging transaction covers.
const DefaultReembedBatch = 128

// swapPage is how many memories SwapEmbedder reads (and hands to its
// vectors function) at a time.
const swapPage = 256

// ReembedOptions tune [Reembed]. The zero value works.
type ReembedOptions struct {
	// Batch is the number of memories embedded and staged per transaction
	// (DefaultReembedBatch if 0).
	Batch int
	// Progress, if set, is called once before staging starts and after
	// every committed batch, with the memories staged so far (including
	// those of an interrupted earlier run) and the project's memory count
	// when staging started. It runs outside any transaction.
	Progress func(done, total int)
}

// ReembedReport is what [Reembed] did.
type ReembedReport struct {
	Project   ID     `json:"project"`
	FromModel string `json:"from_model"`
	FromDim   int    `json:"from_dim"`
	ToModel   string `json:"to_model"`
	ToDim     int    `json:"to_dim"`
	// Memories is the number of memories the swap moved.
	Memories int `json:"memories"`
	// Resumed is set when staging continued an interrupted run.
	Resumed bool `json:"resumed"`
	// Unchanged is set when the project already used the target embedder:
	// nothing was done.
	Unchanged bool `json:"unchanged,omitempty"`
	// Embedded counts the memories this run embedded while staging;
	// Restaged those of them re-embedded by the catch-up pass because
	// they changed (or appeared) while staging ran; Inline those embedded
	// inside the swap transaction because they changed after the catch-up.
	Embedded int `json:"embedded"`
	Restaged int `json:"restaged"`
	Inline   int `json:"inline"`
	// Staging and Swap are the time spent in each phase.
	Staging time.Duration `json:"staging_ns"`
	Swap    time.Duration `json:"swap_ns"`
}

// reembedKeys names the metadata of one staging target.
type reembedKeys struct{ prefix string }

func reembedProjectPrefix(project ID) string { return "reembed/" + string(project) + "/" }

func newReembedKeys(project ID, model string, dim int) reembedKeys {
	return reembedKeys{prefix: reembedProjectPrefix(project) + url.PathEscape(model) + "/" + strconv.Itoa(dim) + "/"}
}

func (k reembedKeys) last() string     { return k.prefix + "last" }
func (k reembedKeys) vec(id ID) string { return k.prefix + "v/" + string(id) }

// stagedVector is the value of a staged vector key.
type stagedVector struct {
	Version Stamp  `json:"version"` // the memory's Version the vector was computed from
	Vec     []byte `json:"vec"`     // little-endian float32
}

func encodeStaged(v Stamp, vec []float32) (string, error) {
	b, err := json.Marshal(stagedVector{Version: v, Vec: float32Bytes(vec)})
	return string(b), err
}

// decodeStaged returns the staged vector and the version it was computed
// from; ok is false for a malformed value (treated as not staged).
func decodeStaged(s string, dim int) (Stamp, []float32, bool) {
	var sv stagedVector
	if err := json.Unmarshal([]byte(s), &sv); err != nil || len(sv.Vec) != 4*dim {
		return Stamp{}, nil, false
	}
	return sv.Version, bytesFloat32(sv.Vec), true
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		u := math.Float32bits(f)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}

func bytesFloat32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		u := uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
		v[i] = math.Float32frombits(u)
	}
	return v
}

// SwapEmbedder moves a project to the embedder model/dim within tx: it
// records a project put with the new model and dimension, then a memory
// put for every memory of the project, carrying the vector that vectors
// returns for it, stamped with model. vectors is called with the project's
// memories a page at a time, in ID order, as they are in tx, and must
// return one vector per memory, in order, each of length dim. The
// memories' other fields (content, created_at, updated_at, state, access
// counters) are unchanged; their Version moves, as with any put.
//
// It returns the number of memories moved. On any error (a vector missing
// or of the wrong dimension, an error from vectors, a store error) some
// writes may have been made: the caller must roll the transaction back,
// which [DB.Update] does when its function returns the error. Events keep
// their own embeddings, each stamped with its model.
//
// Re-embedding is local to a replica. A replica that receives the project
// put rejects it, because a project's embedder must change together with
// all of its memories, and the receiving replica's memories are not
// re-embedded by a project put; it rejects the memory puts as well, as
// vectors of a dimension or model its project does not have. Each replica
// re-embeds on its own (the built-in embedder is deterministic, so
// replicas that do converge); once they agree on the embedder, their
// changes are accepted again.
func (tx *Tx) SwapEmbedder(ctx context.Context, project ID, model string, dim int, vectors func(ms []Memory) ([][]float32, error)) (int, error) {
	w, err := tx.writer()
	if err != nil {
		return 0, err
	}
	if dim <= 0 {
		return 0, fmt.Errorf("swap embedder: %w", fieldErr("embedding_dim", "must be positive, got %d", dim))
	}
	p, err := tx.Project(ctx, project)
	if err != nil {
		return 0, fmt.Errorf("swap embedder: %w", err)
	}
	next := p
	next.EmbeddingModel, next.EmbeddingDim, next.UpdatedAt = model, dim, tx.now()
	if err := tx.db.limits.ValidateProject(&next); err != nil {
		return 0, fmt.Errorf("swap embedder: %w", err)
	}
	c, err := tx.emit(ctx, KindProjectPut, p.ID, p.ID, next, nil)
	if err != nil {
		return 0, fmt.Errorf("swap embedder: %w", err)
	}
	next.Version = c.Stamp()
	if err := w.PutProject(ctx, next); err != nil {
		return 0, fmt.Errorf("swap embedder: %w", err)
	}
	n := 0
	var after ID
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		page, err := w.Memories(ctx, MemoryFilter{ProjectID: project, AfterID: after, Limit: swapPage})
		if err != nil {
			return n, fmt.Errorf("swap embedder: %w", err)
		}
		if len(page) == 0 {
			return n, nil
		}
		vs, err := vectors(page)
		if err != nil {
			return n, fmt.Errorf("swap embedder: %w", err)
		}
		if len(vs) != len(page) {
			return n, fmt.Errorf("swap embedder: %w: %d vectors for %d memories", ErrInvalid, len(vs), len(page))
		}
		for i := range page {
			cur := &page[i]
			m := cur.Clone()
			m.Embedding, m.EmbeddingModel = vs[i], model
			if err := tx.db.limits.ValidateMemory(&m, &next); err != nil {
				return n, fmt.Errorf("swap embedder: memory %s: %w", m.ID, err)
			}
			payload := m.Clone()
			payload.Embedding, payload.AccessByDevice = nil, nil
			c, err := tx.emit(ctx, KindMemoryPut, project, m.ID, payload, m.Embedding)
			if err != nil {
				return n, fmt.Errorf("swap embedder: memory %s: %w", m.ID, err)
			}
			if _, err := tx.applyMemory(ctx, cur, c); err != nil {
				return n, fmt.Errorf("swap embedder: memory %s: %w", m.ID, err)
			}
			n++
		}
		after = page[len(page)-1].ID
	}
}

// SwapEmbedder runs [Tx.SwapEmbedder] in its own transaction: on error
// nothing changes.
func (db *DB) SwapEmbedder(ctx context.Context, project ID, model string, dim int, vectors func(ms []Memory) ([][]float32, error)) (int, error) {
	return write(ctx, db, func(tx *Tx) (int, error) { return tx.SwapEmbedder(ctx, project, model, dim, vectors) })
}

// ErrReembedInterrupted wraps the error that stopped a re-embed: the work
// staged so far is kept (a failed swap rolls back entirely), and running
// it again resumes.
var ErrReembedInterrupted = errors.New("re-embed interrupted (run it again to resume)")

// Reembed moves a project to embedder e: it stages a vector for every
// memory (resumably; the project stays searchable on its old embedder
// meanwhile), then swaps in one transaction. See [Tx.SwapEmbedder] for
// the swap and what it means for sync. When the project already uses e's
// model and dimension it does nothing and reports Unchanged.
//
// If ctx is cancelled or a step fails (the embedder, the store, the
// swap), the error wraps [ErrReembedInterrupted]: the batches already
// committed stay staged, the project stays on its old embedder, and
// running Reembed again resumes. A store without [MetaTx] cannot stage:
// Reembed returns ErrInvalid before doing anything.
func Reembed(ctx context.Context, db *DB, project ID, e Embedder, opts ReembedOptions) (ReembedReport, error) {
	if e == nil {
		return ReembedReport{}, fmt.Errorf("reembed: %w: no embedder", ErrInvalid)
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = DefaultReembedBatch
	}
	p, err := db.Project(ctx, project)
	if err != nil {
		return ReembedReport{}, fmt.Errorf("reembed: %w", err)
	}
	model, dim := e.Model(), e.Dim()
	rep := ReembedReport{Project: p.ID, FromModel: p.EmbeddingModel, FromDim: p.EmbeddingDim, ToModel: model, ToDim: dim}
	if p.EmbeddingModel == model && p.EmbeddingDim == dim {
		rep.Unchanged = true
		return rep, nil
	}
	target := p
	target.EmbeddingModel, target.EmbeddingDim = model, dim
	if dim <= 0 {
		return rep, fmt.Errorf("reembed: %w", fieldErr("embedding_dim", "must be positive, got %d", dim))
	}
	if err := db.limits.ValidateProject(&target); err != nil {
		return rep, fmt.Errorf("reembed: %w", err)
	}
	keys := newReembedKeys(p.ID, model, dim)
	interrupted := func(err error) error { return fmt.Errorf("reembed: %w: %w", ErrReembedInterrupted, err) }

	start := time.Now()
	// Where phase 1 stopped, and how far that is.
	var last ID
	total, done := 0, 0
	if err := db.View(ctx, func(tx *Tx) error {
		v, err := tx.Meta(ctx, keys.last())
		switch {
		case err == nil:
			last = ID(v)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return countMemories(ctx, tx, project, last, &total, &done)
	}); err != nil {
		return rep, fmt.Errorf("reembed: %w", err)
	}
	rep.Resumed = last != ""
	progress := func() {
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	progress()

	// Phase 1: every memory, in ID order, from where the last run stopped.
	// Memories created meanwhile get later IDs, so most of them are
	// picked up here too.
	for {
		var page []Memory
		if err := db.View(ctx, func(tx *Tx) error {
			var err error
			page, err = tx.Memories(ctx, MemoryFilter{ProjectID: project, AfterID: last, Limit: batch})
			return err
		}); err != nil {
			return rep, interrupted(err)
		}
		if len(page) == 0 {
			break
		}
		if err := stage(ctx, db, e, keys, page, true); err != nil {
			return rep, interrupted(err)
		}
		rep.Embedded += len(page)
		last = page[len(page)-1].ID
		done += len(page)
		total = max(total, done) // memories created meanwhile
		progress()
	}

	// Catch-up: memories edited (or created with an earlier ID) while
	// phase 1 ran have no staged vector of their current version.
	var stale []Memory
	var after ID
	for {
		var page []Memory
		if err := db.View(ctx, func(tx *Tx) error {
			var err error
			if page, err = tx.Memories(ctx, MemoryFilter{ProjectID: project, AfterID: after, Limit: swapPage}); err != nil {
				return err
			}
			for i := range page {
				if _, ok, err := stagedFor(ctx, tx, keys, &page[i], dim); err != nil {
					return err
				} else if !ok {
					m := page[i]
					m.Embedding = nil
					stale = append(stale, m)
				}
			}
			return nil
		}); err != nil {
			return rep, interrupted(err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
	}
	for lo := 0; lo < len(stale); lo += batch {
		hi := min(lo+batch, len(stale))
		if err := stage(ctx, db, e, keys, stale[lo:hi], false); err != nil {
			return rep, interrupted(err)
		}
		rep.Restaged += hi - lo
		rep.Embedded += hi - lo
	}
	rep.Staging = time.Since(start)

	// Phase 2: the swap. Memories that changed since the catch-up are
	// embedded inside the transaction (normally none or a handful).
	start = time.Now()
	err = db.Update(ctx, func(tx *Tx) error {
		cur, err := tx.Project(ctx, project)
		if err != nil {
			return err
		}
		rep.FromModel, rep.FromDim, rep.Inline = cur.EmbeddingModel, cur.EmbeddingDim, 0
		if cur.EmbeddingModel == model && cur.EmbeddingDim == dim {
			rep.Unchanged = true // another run swapped first
			return deleteStaged(ctx, tx, project)
		}
		rep.Memories, err = tx.SwapEmbedder(ctx, project, model, dim, func(ms []Memory) ([][]float32, error) {
			out := make([][]float32, len(ms))
			var missing []int
			for i := range ms {
				v, ok, err := stagedFor(ctx, tx, keys, &ms[i], dim)
				if err != nil {
					return nil, err
				}
				if !ok {
					missing = append(missing, i)
				}
				out[i] = v
				if err := tx.DeleteMeta(ctx, keys.vec(ms[i].ID)); err != nil {
					return nil, err
				}
			}
			if len(missing) > 0 {
				texts := make([]string, len(missing))
				for j, i := range missing {
					texts[j] = ms[i].Content
				}
				vs, err := e.Embed(ctx, texts)
				if err != nil {
					return nil, fmt.Errorf("embed: %w", err)
				}
				if len(vs) != len(texts) {
					return nil, fmt.Errorf("embed: %w: %d vectors for %d texts", ErrInvalid, len(vs), len(texts))
				}
				for j, i := range missing {
					out[i] = vs[j]
				}
				rep.Inline += len(missing)
			}
			return out, nil
		})
		if err != nil {
			return err
		}
		return deleteStaged(ctx, tx, project)
	})
	rep.Swap = time.Since(start)
	if err != nil {
		return rep, interrupted(fmt.Errorf("swap: %w", err))
	}
	return rep, nil
}

// countMemories counts the project's memories, and those with an ID up to
// last (staged by an earlier run), a page at a time.
func countMemories(ctx context.Context, tx *Tx, project, last ID, total, done *int) error {
	var after ID
	for {
		page, err := tx.Memories(ctx, MemoryFilter{ProjectID: project, AfterID: after, Limit: 1024})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for i := range page {
			*total++
			if last != "" && page[i].ID <= last {
				*done++
			}
		}
		after = page[len(page)-1].ID
	}
}

// stage embeds ms with e (outside any transaction) and stores the
// vectors, with the progress key when advance is set, in one transaction.
func stage(ctx context.Context, db *DB, e Embedder, keys reembedKeys, ms []Memory, advance bool) error {
	texts := make([]string, len(ms))
	for i := range ms {
		texts[i] = ms[i].Content
	}
	vs, err := e.Embed(ctx, texts)
	if err != nil {
		return fmt.Errorf("embed: %w", err)
	}
	if len(vs) != len(ms) {
		return fmt.Errorf("embed: %w: %d vectors for %d texts", ErrInvalid, len(vs), len(ms))
	}
	for i, v := range vs {
		if err := CheckVector("embedding", v, e.Dim()); err != nil {
			return fmt.Errorf("embed memory %s: %w", ms[i].ID, err)
		}
	}
	return db.Update(ctx, func(tx *Tx) error {
		for i := range ms {
			val, err := encodeStaged(ms[i].Version, vs[i])
			if err != nil {
				return err
			}
			if err := tx.PutMeta(ctx, keys.vec(ms[i].ID), val); err != nil {
				return err
			}
		}
		if advance {
			return tx.PutMeta(ctx, keys.last(), string(ms[len(ms)-1].ID))
		}
		return nil
	})
}

// stagedFor returns the staged vector of m if it was computed from m's
// current version.
func stagedFor(ctx context.Context, tx *Tx, keys reembedKeys, m *Memory, dim int) ([]float32, bool, error) {
	s, err := tx.Meta(ctx, keys.vec(m.ID))
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, vec, ok := decodeStaged(s, dim)
	if !ok || v != m.Version {
		return nil, false, nil
	}
	return vec, true, nil
}

// deleteStaged removes every staged key of the project, for any target.
func deleteStaged(ctx context.Context, tx *Tx, project ID) error {
	es, err := tx.MetaPrefix(ctx, reembedProjectPrefix(project))
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := tx.DeleteMeta(ctx, e.Key); err != nil {
			return err
		}
	}
	return nil
}
