package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

func TestRecordRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := core.New(memstore.New(), core.Config{Device: "server"})
	ch := func(seq uint64) core.Change {
		return core.Change{Device: "edge", Seq: seq, HLC: core.MakeHLC(1, 0), Kind: core.KindMemoryPut,
			ProjectID: "p-other", EntityID: "m1", Payload: []byte(`{"content":"secret"}`), Vector: []float32{1, 2}}
	}
	tests := []struct {
		name    string
		seq     uint64
		reason  string
		want    core.ApplyResult
		wantErr error
	}{
		{name: "first", seq: 1, reason: "project_id: wrong project", want: core.ApplyResult{Device: "edge", Seq: 1, Status: core.StatusRejected, Reason: "project_id: wrong project"}},
		{name: "duplicate", seq: 1, reason: "again", want: core.ApplyResult{Device: "edge", Seq: 1, Status: core.StatusSuperseded, Reason: "already applied", Duplicate: true}},
		{name: "gap", seq: 3, reason: "x", wantErr: core.ErrSeqGap},
		{name: "next, empty reason", seq: 2, want: core.ApplyResult{Device: "edge", Seq: 2, Status: core.StatusRejected, Reason: "rejected"}},
		{name: "long reason is clipped", seq: 3, reason: strings.Repeat("é", core.MaxRejectReason),
			want: core.ApplyResult{Device: "edge", Seq: 3, Status: core.StatusRejected, Reason: strings.Repeat("é", core.MaxRejectReason/2)}},
	}
	for _, tc := range tests { // sequential: each case builds on the log of the previous ones
		var got core.ApplyResult
		err := db.Update(ctx, func(tx *core.Tx) error {
			var err error
			got, err = tx.RecordRejected(ctx, ch(tc.seq), tc.reason)
			return err
		})
		if tc.wantErr != nil {
			require.True(t, errors.Is(err, tc.wantErr), "%s: %v", tc.name, err)
			continue
		}
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
	cs, err := db.Changes(ctx, 0, 100, "")
	require.NoError(t, err)
	require.Len(t, cs, 3)
	for i, c := range cs {
		require.Equal(t, uint64(i+1), c.Seq)
		require.Equal(t, core.StatusRejected, c.Status)
		require.JSONEq(t, `{}`, string(c.Payload), "the refused payload is not stored")
		require.Nil(t, c.Vector)
		require.Equal(t, core.KindMemoryPut, c.Kind)
		require.Equal(t, core.ID("m1"), c.EntityID)
	}
	ms, err := db.Memories(ctx, core.MemoryFilter{})
	require.NoError(t, err)
	require.Empty(t, ms, "nothing was merged")

	// A rejected change never blocks the changes behind it.
	res, err := db.ApplyChanges(ctx, []core.Change{{Device: "edge", Seq: 4, HLC: core.MakeHLC(2, 0), Kind: "unknown.kind", Payload: []byte(`{}`)}})
	require.NoError(t, err)
	require.Equal(t, uint64(4), res[0].Seq)

	// Read-only transactions and missing identities are refused.
	err = db.View(ctx, func(tx *core.Tx) error { _, err := tx.RecordRejected(ctx, ch(5), "x"); return err })
	require.ErrorIs(t, err, core.ErrInvalid)
	err = db.Update(ctx, func(tx *core.Tx) error { _, err := tx.RecordRejected(ctx, core.Change{Seq: 1}, "x"); return err })
	require.ErrorIs(t, err, core.ErrInvalid)
}

// TestRecordRejectedOwnDevice: recording a rejection of the replica's own
// next change keeps local writes after it gapless.
func TestRecordRejectedOwnDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := core.New(memstore.New(), core.Config{Device: "me"})
	p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 2})
	require.NoError(t, err)
	require.NoError(t, db.Update(ctx, func(tx *core.Tx) error {
		if _, err := tx.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "a", Embedding: []float32{1, 0}}); err != nil {
			return err
		}
		if _, err := tx.RecordRejected(ctx, core.Change{Device: "me", Seq: 3, Kind: "x"}, "test"); err != nil {
			return err
		}
		_, err := tx.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "b", Embedding: []float32{0, 1}})
		return err
	}))
	cs, err := db.Changes(ctx, 0, 100, "")
	require.NoError(t, err)
	var seqs []uint64
	for _, c := range cs {
		seqs = append(seqs, c.Seq)
	}
	require.Equal(t, []uint64{1, 2, 3, 4}, seqs)
}
