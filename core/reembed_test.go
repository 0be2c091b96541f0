package core_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

// hookEmbedder wraps an embedder and calls hook before each Embed call
// (numbered from 1).
type hookEmbedder struct {
	core.Embedder
	calls int
	hook  func(call int, texts []string) error
}

func (h *hookEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	h.calls++
	if h.hook != nil {
		if err := h.hook(h.calls, texts); err != nil {
			return nil, err
		}
	}
	return h.Embedder.Embed(ctx, texts)
}

// wrongDim returns vectors one element short.
type wrongDim struct{ core.Embedder }

func (w wrongDim) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	vs, err := w.Embedder.Embed(ctx, texts)
	for i := range vs {
		vs[i] = vs[i][:len(vs[i])-1]
	}
	return vs, err
}

func reembedFixture(t *testing.T, n int) (*core.DB, core.Project, []core.Memory) {
	t.Helper()
	ctx := t.Context()
	old := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 64})
	db := core.New(memstore.New(), core.Config{Device: "dev", Embedder: old})
	p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p"})
	require.NoError(t, err)
	var ms []core.Memory
	for i := range n {
		m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("memory number %d about widgets", i)})
		require.NoError(t, err)
		ms = append(ms, m)
	}
	return db, p, ms
}

func TestReembedInlineAndDeleted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, p, _ := reembedFixture(t, 10)
	ms, err := db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID}) // in ID order, as staged
	require.NoError(t, err)
	target := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 16})
	// Call 1 stages the first batch; in call 2, edit a staged memory (the
	// catch-up re-stages it) and delete another; in the catch-up's call,
	// edit one more, which only the swap sees: it is embedded inline.
	emb := &hookEmbedder{Embedder: target}
	emb.hook = func(call int, texts []string) error {
		switch call {
		case 2:
			_, err := db.UpdateMemory(ctx, ms[0].ID, func(m *core.Memory) error { m.Content = "edited during staging"; return nil })
			require.NoError(t, err)
			require.NoError(t, db.DeleteMemory(ctx, ms[1].ID))
		case 5: // 4 batches of 3 (one memory deleted), then the catch-up
			assert.Equal(t, []string{"edited during staging"}, texts)
			_, err := db.UpdateMemory(ctx, ms[9].ID, func(m *core.Memory) error { m.Content = "edited after the catch-up"; return nil })
			require.NoError(t, err)
		}
		return nil
	}
	rep, err := core.Reembed(ctx, db, p.ID, emb, core.ReembedOptions{Batch: 3})
	require.NoError(t, err)
	assert.Equal(t, 9, rep.Memories)
	assert.Equal(t, 1, rep.Restaged)
	assert.Equal(t, 1, rep.Inline)
	assert.False(t, rep.Resumed)
	all, err := db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	require.Len(t, all, 9)
	for _, m := range all {
		assert.Equal(t, target.EmbedOne(m.Content), m.Embedding, m.Content)
	}
	got, err := db.Memory(ctx, ms[0].ID)
	require.NoError(t, err)
	assert.Equal(t, "edited during staging", got.Content)
	require.NoError(t, db.View(ctx, func(tx *core.Tx) error {
		left, err := tx.MetaPrefix(ctx, "reembed/")
		require.NoError(t, err)
		assert.Empty(t, left, "including the deleted memory's staged vector")
		return nil
	}))
}

func TestReembedFailuresKeepStagedWork(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, p, _ := reembedFixture(t, 5)
	target := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 16})

	_, err := core.Reembed(ctx, db, p.ID, wrongDim{target}, core.ReembedOptions{Batch: 2})
	require.ErrorIs(t, err, core.ErrReembedInterrupted)
	require.ErrorIs(t, err, core.ErrDimMismatch, "a misbehaving embedder is caught before anything is staged")

	down := errors.New("embedding server down")
	emb := &hookEmbedder{Embedder: target, hook: func(call int, _ []string) error {
		if call == 2 {
			return down
		}
		return nil
	}}
	_, err = core.Reembed(ctx, db, p.ID, emb, core.ReembedOptions{Batch: 2})
	require.ErrorIs(t, err, down)
	got, err := db.Project(ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, 64, got.EmbeddingDim)

	emb = &hookEmbedder{Embedder: target}
	var seen []int
	rep, err := core.Reembed(ctx, db, p.ID, emb, core.ReembedOptions{Batch: 2, Progress: func(done, total int) {
		seen = append(seen, done)
		assert.Equal(t, 5, total)
	}})
	require.NoError(t, err)
	assert.True(t, rep.Resumed)
	assert.Equal(t, []int{2, 4, 5}, seen, "resumes after the first batch")
	assert.Equal(t, 3, rep.Embedded)
	assert.Equal(t, 5, rep.Memories)
	assert.Equal(t, 2, emb.calls)

	_, err = core.Reembed(ctx, db, p.ID, nil, core.ReembedOptions{})
	require.ErrorIs(t, err, core.ErrInvalid)
	_, err = core.Reembed(ctx, db, p.ID, core.NewHashEmbedder(core.HashEmbedderConfig{Dim: core.DefaultMaxDim + 1}), core.ReembedOptions{})
	require.ErrorIs(t, err, core.ErrInvalid)
}

func TestSwapEmbedderReadOnly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, p, _ := reembedFixture(t, 1)
	err := db.View(ctx, func(tx *core.Tx) error {
		_, err := tx.SwapEmbedder(ctx, p.ID, "m", 4, func(ms []core.Memory) ([][]float32, error) { return nil, nil })
		return err
	})
	require.ErrorIs(t, err, core.ErrInvalid)
	_, err = db.SwapEmbedder(ctx, p.ID, "m", 4, func(ms []core.Memory) ([][]float32, error) { return nil, nil })
	require.ErrorIs(t, err, core.ErrInvalid, "fewer vectors than memories")
	_, err = db.SwapEmbedder(ctx, core.ProjectIDFor("nope"), "m", 4, nil)
	require.ErrorIs(t, err, core.ErrNotFound)
}
