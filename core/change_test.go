package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

var (
	changeTestProject = core.ID("0190f3a2-0000-7000-8000-000000000001")
	changeTestMemory  = core.ID("0190f3a2-0000-7000-8000-0000000000aa")
	changeTestOther   = core.ID("0190f3a2-0000-7000-8000-0000000000bb")
	changeTestBase    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	changeTestCreated = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// changeTestHLC is an HLC ms milliseconds after changeTestBase.
func changeTestHLC(ms int64, logical uint16) core.HLC {
	return core.MakeHLC(changeTestBase+ms, logical)
}

func changeTestPayload(t testing.TB, v any) json.RawMessage {
	t.Helper()
	raw, err := core.EncodePayload(v)
	require.NoError(t, err)
	return raw
}

func changeTestPut(t testing.TB, dev string, h core.HLC, m core.Memory) core.Change {
	t.Helper()
	vec := m.Embedding
	m.Embedding = nil
	return core.Change{Device: dev, HLC: h, Kind: core.KindMemoryPut, ProjectID: changeTestProject, EntityID: changeTestMemory,
		Payload: changeTestPayload(t, m), Vector: vec}
}

func changeTestAccess(t testing.TB, dev string, h core.HLC, count, atMS int64) core.Change {
	t.Helper()
	return core.Change{Device: dev, HLC: h, Kind: core.KindMemoryAccess, ProjectID: changeTestProject, EntityID: changeTestMemory,
		Payload: changeTestPayload(t, core.AccessPayload{Count: count, AtMS: atMS})}
}

func changeTestState(t testing.TB, dev string, h core.HLC, from, to core.State, by core.ID, atMS int64) core.Change {
	t.Helper()
	return core.Change{Device: dev, HLC: h, Kind: core.KindMemoryState, ProjectID: changeTestProject, EntityID: changeTestMemory,
		Payload: changeTestPayload(t, core.StatePayload{From: from, To: to, SupersededBy: by, AtMS: atMS})}
}

func changeTestDelete(t testing.TB, dev string, h core.HLC) core.Change {
	t.Helper()
	return core.Change{Device: dev, HLC: h, Kind: core.KindMemoryDelete, ProjectID: changeTestProject, EntityID: changeTestMemory,
		Payload: json.RawMessage(`{}`)}
}

// changeTestFields is a memory payload as a device would send it.
func changeTestFields(content string) core.Memory {
	return core.Memory{Content: content, Embedding: []float32{1, 2, 3}, EmbeddingModel: "m", MemoryType: core.TypeFact,
		Domain: "d", Tags: []string{"t"}, Usefulness: 0.5, Confidence: 1, CreatedAt: changeTestCreated, UpdatedAt: changeTestCreated}
}

// changeTestCreate returns the memory the creating put makes.
func changeTestCreate(t *testing.T, dev string, h core.HLC, m core.Memory) core.Memory {
	t.Helper()
	c := changeTestPut(t, dev, h, m)
	eff := core.MergeMemory(nil, false, &c)
	require.Equal(t, core.StatusApplied, eff.Status, eff.Reason)
	require.NotNil(t, eff.Memory)
	return *eff.Memory
}

func TestEncodePayload(t *testing.T) {
	t.Parallel()
	raw, err := core.EncodePayload(core.AccessPayload{Count: 3, AtMS: 7})
	require.NoError(t, err)
	assert.JSONEq(t, `{"count":3,"at_ms":7}`, string(raw))
	raw, err = core.EncodePayload(core.StatePayload{From: core.StateLabile, To: core.StateConsolidated, AtMS: 9})
	require.NoError(t, err)
	assert.JSONEq(t, `{"from":"labile","to":"consolidated","at_ms":9}`, string(raw))
	_, err = core.EncodePayload(func() {})
	assert.Error(t, err)
	_, err = core.EncodePayload(map[string]float64{"x": 0}) // fine
	assert.NoError(t, err)
}

func TestMergeMemoryCreate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mod       func(*core.Memory)
		wantState core.State
	}{
		{name: "state defaults to unconsolidated", mod: func(*core.Memory) {}, wantState: core.StateUnconsolidated},
		{name: "state from payload", mod: func(m *core.Memory) { m.State = core.StateConsolidated }, wantState: core.StateConsolidated},
		{name: "replication metadata in the payload is ignored", mod: func(m *core.Memory) {
			m.State = core.StateLabile
			m.StateVersion = core.Stamp{HLC: 999, Device: "x"}
			m.Version = core.Stamp{HLC: 999, Device: "x"}
			m.AccessByDevice = map[string]int64{"x": 50}
			m.AccessCount = 50
			m.QualityScore = 0.123
			m.LastAccessed = changeTestCreated
			m.LastRetrieved = changeTestCreated
			m.ID, m.ProjectID = changeTestOther, changeTestOther
		}, wantState: core.StateLabile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := changeTestFields("hello")
			in.Usefulness, in.Confidence = 0.8, 0.4
			tc.mod(&in)
			c := changeTestPut(t, "dev-a", changeTestHLC(0, 0), in)
			eff := core.MergeMemory(nil, false, &c)
			require.Equal(t, core.StatusApplied, eff.Status, eff.Reason)
			require.NotNil(t, eff.Memory)
			assert.False(t, eff.Delete)
			m := eff.Memory
			assert.Equal(t, changeTestMemory, m.ID, "ID comes from the change")
			assert.Equal(t, changeTestProject, m.ProjectID, "project comes from the change")
			assert.Equal(t, "hello", m.Content)
			assert.Equal(t, []float32{1, 2, 3}, m.Embedding, "embedding comes from the change's vector")
			assert.Equal(t, tc.wantState, m.State)
			assert.Equal(t, core.Stamp{}, m.StateVersion, "any state change outranks the state a put carries")
			assert.Equal(t, c.Stamp(), m.Version)
			assert.Nil(t, m.AccessByDevice)
			assert.Zero(t, m.AccessCount)
			assert.True(t, m.LastAccessed.IsZero())
			assert.True(t, m.LastRetrieved.IsZero())
			assert.Equal(t, core.Quality(0.8, 0.4, 0), m.QualityScore)
			assert.True(t, changeTestCreated.Equal(m.CreatedAt))
		})
	}
}

func TestMergeMemoryPutLWW(t *testing.T) {
	t.Parallel()
	curStamp := core.Stamp{HLC: changeTestHLC(100, 5), Device: "dev-b"}
	tests := []struct {
		name    string
		dev     string
		hlc     core.HLC
		applied bool
	}{
		{name: "newer wall wins", dev: "dev-a", hlc: changeTestHLC(101, 0), applied: true},
		{name: "newer logical wins", dev: "dev-a", hlc: changeTestHLC(100, 6), applied: true},
		{name: "older is superseded", dev: "dev-c", hlc: changeTestHLC(99, 9), applied: false},
		{name: "older logical is superseded", dev: "dev-c", hlc: changeTestHLC(100, 4), applied: false},
		{name: "equal is superseded", dev: "dev-b", hlc: changeTestHLC(100, 5), applied: false},
		{name: "same HLC higher device wins", dev: "dev-c", hlc: changeTestHLC(100, 5), applied: true},
		{name: "same HLC lower device loses", dev: "dev-a", hlc: changeTestHLC(100, 5), applied: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cur := changeTestCreate(t, curStamp.Device, curStamp.HLC, changeTestFields("old"))
			// Give cur state, access and consolidation metadata that a put must not touch.
			cur.State, cur.StateVersion = core.StateLabile, core.Stamp{HLC: changeTestHLC(100, 0), Device: "dev-z"}
			cur.AccessByDevice, cur.AccessCount = map[string]int64{"dev-a": 30, "dev-b": 20}, 50
			cur.LastAccessed = time.UnixMilli(changeTestBase).UTC()
			cur.LastRetrieved = cur.LastAccessed
			cur.ConsolidatedAt = time.UnixMilli(changeTestBase - 10).UTC()
			cur.SupersededBy = ""
			before := cur.Clone()

			in := changeTestFields("new")
			in.Embedding = []float32{4, 5, 6}
			in.Tags, in.Domain, in.MemoryType = []string{"x", "y"}, "d2", core.TypePattern
			in.SessionID, in.EventType, in.CodeLanguage, in.CodeHash = "s", "e", "go", "h"
			in.Usefulness, in.Confidence = 0.9, 0.7
			in.UpdatedAt = changeTestCreated.Add(time.Hour)
			in.State, in.AccessCount, in.CreatedAt = core.StateArchived, 999, changeTestCreated.Add(time.Hour)
			c := changeTestPut(t, tc.dev, tc.hlc, in)
			eff := core.MergeMemory(&cur, false, &c)
			assert.Equal(t, before, cur, "MergeMemory must not modify cur")
			if !tc.applied {
				assert.Equal(t, core.StatusSuperseded, eff.Status)
				assert.NotEmpty(t, eff.Reason)
				assert.Nil(t, eff.Memory)
				return
			}
			require.Equal(t, core.StatusApplied, eff.Status, eff.Reason)
			m := eff.Memory
			require.NotNil(t, m)
			assert.Equal(t, "new", m.Content)
			assert.Equal(t, []float32{4, 5, 6}, m.Embedding)
			assert.Equal(t, []string{"x", "y"}, m.Tags)
			assert.Equal(t, "d2", m.Domain)
			assert.Equal(t, core.TypePattern, m.MemoryType)
			assert.Equal(t, "s", m.SessionID)
			assert.Equal(t, "e", m.EventType)
			assert.Equal(t, "go", m.CodeLanguage)
			assert.Equal(t, "h", m.CodeHash)
			assert.True(t, in.UpdatedAt.Equal(m.UpdatedAt))
			assert.Equal(t, c.Stamp(), m.Version)
			assert.Equal(t, core.Quality(0.9, 0.7, 50), m.QualityScore, "quality uses the existing access count")
			// Untouched by a later put:
			assert.Equal(t, before.State, m.State)
			assert.Equal(t, before.StateVersion, m.StateVersion)
			assert.Equal(t, before.AccessByDevice, m.AccessByDevice)
			assert.Equal(t, before.AccessCount, m.AccessCount)
			assert.Equal(t, before.LastAccessed, m.LastAccessed)
			assert.Equal(t, before.ConsolidatedAt, m.ConsolidatedAt)
			assert.Equal(t, before.CreatedAt, m.CreatedAt)
			assert.Equal(t, before.ID, m.ID)
		})
	}
}

func TestMergeMemoryAccess(t *testing.T) {
	t.Parallel()
	at := func(ms int64) time.Time { return time.UnixMilli(changeTestBase + ms).UTC() }
	type access struct {
		dev   string
		count int64
		atMS  int64 // relative to changeTestBase
	}
	tests := []struct {
		name       string
		steps      []access
		wantStatus []core.Status
		wantBy     map[string]int64
		wantLast   time.Time
	}{
		{name: "first access", steps: []access{{"a", 1, 10}},
			wantStatus: []core.Status{core.StatusApplied}, wantBy: map[string]int64{"a": 1}, wantLast: at(10)},
		{name: "max per device", steps: []access{{"a", 3, 10}, {"a", 1, 5}, {"a", 3, 10}, {"a", 5, 15}},
			wantStatus: []core.Status{core.StatusApplied, core.StatusSuperseded, core.StatusSuperseded, core.StatusApplied},
			wantBy:     map[string]int64{"a": 5}, wantLast: at(15)},
		{name: "last accessed is the max time", steps: []access{{"a", 1, 30}, {"b", 1, 10}, {"a", 2, 20}},
			wantStatus: []core.Status{core.StatusApplied, core.StatusApplied, core.StatusApplied},
			wantBy:     map[string]int64{"a": 2, "b": 1}, wantLast: at(30)},
		{name: "sum over devices", steps: []access{{"a", 2, 10}, {"b", 7, 30}, {"c", 1, 20}},
			wantStatus: []core.Status{core.StatusApplied, core.StatusApplied, core.StatusApplied},
			wantBy:     map[string]int64{"a": 2, "b": 7, "c": 1}, wantLast: at(30)},
		{name: "zero count is a no-op", steps: []access{{"a", 1, 10}, {"a", 0, 5}},
			wantStatus: []core.Status{core.StatusApplied, core.StatusSuperseded}, wantBy: map[string]int64{"a": 1}, wantLast: at(10)},
		{name: "negative count is a no-op", steps: []access{{"a", 2, 10}, {"a", -5, 5}},
			wantStatus: []core.Status{core.StatusApplied, core.StatusSuperseded}, wantBy: map[string]int64{"a": 2}, wantLast: at(10)},
		{name: "saturates quality at 100", steps: []access{{"a", 150, 1}, {"b", 60, 2}},
			wantStatus: []core.Status{core.StatusApplied, core.StatusApplied}, wantBy: map[string]int64{"a": 150, "b": 60}, wantLast: at(2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := changeTestFields("x")
			in.Usefulness, in.Confidence = 0.2, 0.6
			cur := changeTestCreate(t, "a", changeTestHLC(0, 0), in)
			for i, s := range tc.steps {
				c := changeTestAccess(t, s.dev, changeTestHLC(int64(i+1), 0), s.count, changeTestBase+s.atMS)
				before := cur.Clone()
				eff := core.MergeMemory(&cur, false, &c)
				assert.Equal(t, before, cur, "MergeMemory must not modify cur")
				require.Equal(t, tc.wantStatus[i], eff.Status, "step %d: %s", i, eff.Reason)
				if eff.Status == core.StatusApplied {
					require.NotNil(t, eff.Memory)
					cur = *eff.Memory
				}
			}
			assert.Equal(t, tc.wantBy, cur.AccessByDevice)
			var total int64
			for _, n := range tc.wantBy {
				total += n
			}
			assert.Equal(t, total, cur.AccessCount)
			assert.Equal(t, core.Quality(0.2, 0.6, total), cur.QualityScore)
			assert.Equal(t, tc.wantLast, cur.LastAccessed)
			assert.Equal(t, tc.wantLast, cur.LastRetrieved)
		})
	}
}

func TestMergeMemoryState(t *testing.T) {
	t.Parallel()
	ms := func(d int64) int64 { return changeTestBase + d }
	tests := []struct {
		name   string
		start  core.State
		sv     core.Stamp // cur.StateVersion
		change func(t *testing.T) core.Change
		status core.Status
		state  core.State
		by     core.ID
		reason string // substring of the reason when not applied
	}{
		{name: "legal", start: core.StateUnconsolidated,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateUnconsolidated, core.StateConsolidating, "", ms(1))
			}, status: core.StatusApplied, state: core.StateConsolidating},
		{name: "illegal transition", start: core.StateUnconsolidated,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateUnconsolidated, core.StateLabile, "", ms(1))
			}, status: core.StatusRejected, state: core.StateUnconsolidated, reason: "unconsolidated -> labile"},
		{name: "same state", start: core.StateLabile,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateLabile, core.StateLabile, "", ms(1))
			}, status: core.StatusRejected, state: core.StateLabile},
		{name: "unknown state", start: core.StateUnconsolidated,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateUnconsolidated, "Consolidating", "", ms(1))
			}, status: core.StatusRejected, state: core.StateUnconsolidated, reason: "consolidation_state"},
		{name: "from superseded", start: core.StateSuperseded,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateSuperseded, core.StateConsolidated, "", ms(1))
			}, status: core.StatusRejected, state: core.StateSuperseded},
		{name: "superseded needs superseded_by", start: core.StateConsolidated,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateConsolidated, core.StateSuperseded, "", ms(1))
			}, status: core.StatusRejected, state: core.StateConsolidated, reason: "superseded_by"},
		{name: "superseded with superseded_by", start: core.StateConsolidated,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateConsolidated, core.StateSuperseded, changeTestOther, ms(1))
			}, status: core.StatusApplied, state: core.StateSuperseded, by: changeTestOther},
		{name: "superseded_by ignored for other states", start: core.StateConsolidated,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateConsolidated, core.StateArchived, changeTestOther, ms(1))
			}, status: core.StatusApplied, state: core.StateArchived},
		{name: "older state change loses", start: core.StateConsolidating, sv: core.Stamp{HLC: changeTestHLC(5, 0), Device: "b"},
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(4, 0), core.StateConsolidating, core.StateUnconsolidated, "", ms(1))
			}, status: core.StatusSuperseded, state: core.StateConsolidating},
		{name: "equal stamp loses", start: core.StateConsolidating, sv: core.Stamp{HLC: changeTestHLC(5, 0), Device: "b"},
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "b", changeTestHLC(5, 0), core.StateConsolidating, core.StateUnconsolidated, "", ms(1))
			}, status: core.StatusSuperseded, state: core.StateConsolidating},
		{name: "device tie-break wins", start: core.StateConsolidating, sv: core.Stamp{HLC: changeTestHLC(5, 0), Device: "b"},
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "c", changeTestHLC(5, 0), core.StateConsolidating, core.StateUnconsolidated, "", ms(1))
			}, status: core.StatusApplied, state: core.StateUnconsolidated},
		// The merge rule is last-writer-wins on the state, and From only
		// decides legality: it need not match the replica's state.
		{name: "from need not match current", start: core.StateArchived,
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(1, 0), core.StateLabile, core.StateReconsolidating, "", ms(1))
			}, status: core.StatusApplied, state: core.StateReconsolidating},
		// Last-writer-wins also lets a newer concurrent state change
		// outrank a supersede (superseded is final only locally).
		{name: "newer change outranks superseded", start: core.StateSuperseded, sv: core.Stamp{HLC: changeTestHLC(5, 0), Device: "b"},
			change: func(t *testing.T) core.Change {
				return changeTestState(t, "a", changeTestHLC(6, 0), core.StateConsolidated, core.StateLabile, "", ms(1))
			}, status: core.StatusApplied, state: core.StateLabile},
		{name: "bad payload", start: core.StateUnconsolidated,
			change: func(t *testing.T) core.Change {
				c := changeTestState(t, "a", changeTestHLC(1, 0), core.StateUnconsolidated, core.StateConsolidating, "", ms(1))
				c.Payload = json.RawMessage(`{"from":1}`)
				return c
			}, status: core.StatusRejected, state: core.StateUnconsolidated, reason: "payload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cur := changeTestCreate(t, "a", changeTestHLC(0, 0), changeTestFields("x"))
			cur.State, cur.StateVersion = tc.start, tc.sv
			if tc.start == core.StateSuperseded {
				cur.SupersededBy = changeTestOther
			}
			before := cur.Clone()
			c := tc.change(t)
			eff := core.MergeMemory(&cur, false, &c)
			assert.Equal(t, before, cur, "MergeMemory must not modify cur")
			require.Equal(t, tc.status, eff.Status, eff.Reason)
			if tc.status != core.StatusApplied {
				assert.Nil(t, eff.Memory)
				assert.NotEmpty(t, eff.Reason)
				assert.Contains(t, eff.Reason, tc.reason)
				return
			}
			require.NotNil(t, eff.Memory)
			assert.Equal(t, tc.state, eff.Memory.State)
			assert.Equal(t, c.Stamp(), eff.Memory.StateVersion)
			assert.Equal(t, tc.by, eff.Memory.SupersededBy)
		})
	}
}

func TestMergeMemoryConsolidatedAtIsMax(t *testing.T) {
	t.Parallel()
	at := func(ms int64) time.Time { return time.UnixMilli(changeTestBase + ms).UTC() }
	cur := changeTestCreate(t, "a", changeTestHLC(0, 0), changeTestFields("x"))
	cur.State = core.StateConsolidating

	// The winner consolidates at +100.
	win := changeTestState(t, "b", changeTestHLC(10, 0), core.StateConsolidating, core.StateConsolidated, "", changeTestBase+100)
	eff := core.MergeMemory(&cur, false, &win)
	require.Equal(t, core.StatusApplied, eff.Status, eff.Reason)
	cur = *eff.Memory
	assert.Equal(t, at(100), cur.ConsolidatedAt)

	// An older change that consolidated later still moves consolidated_at,
	// but not the state.
	late := changeTestState(t, "a", changeTestHLC(5, 0), core.StateReconsolidating, core.StateConsolidated, "", changeTestBase+200)
	eff = core.MergeMemory(&cur, false, &late)
	require.Equal(t, core.StatusApplied, eff.Status, eff.Reason)
	assert.Equal(t, at(200), eff.Memory.ConsolidatedAt)
	assert.Equal(t, win.Stamp(), eff.Memory.StateVersion)
	cur = *eff.Memory

	// An older change that consolidated earlier has no effect at all.
	early := changeTestState(t, "c", changeTestHLC(6, 0), core.StateConsolidating, core.StateConsolidated, "", changeTestBase+50)
	eff = core.MergeMemory(&cur, false, &early)
	assert.Equal(t, core.StatusSuperseded, eff.Status)

	// A newer change to another state wins the state and keeps consolidated_at.
	lab := changeTestState(t, "a", changeTestHLC(20, 0), core.StateConsolidated, core.StateLabile, "", changeTestBase+300)
	eff = core.MergeMemory(&cur, false, &lab)
	require.Equal(t, core.StatusApplied, eff.Status, eff.Reason)
	assert.Equal(t, core.StateLabile, eff.Memory.State)
	assert.Equal(t, at(200), eff.Memory.ConsolidatedAt)

	// Replaying the winner is a no-op.
	eff = core.MergeMemory(&cur, false, &win)
	assert.Equal(t, core.StatusSuperseded, eff.Status)
}

func TestMergeMemoryDeleteAndTombstone(t *testing.T) {
	t.Parallel()
	cur := changeTestCreate(t, "a", changeTestHLC(0, 0), changeTestFields("x"))
	future := changeTestHLC(1_000_000, 0)
	changes := []struct {
		name string
		c    core.Change
	}{
		{name: "newer put", c: changeTestPut(t, "z", future, changeTestFields("resurrect"))},
		{name: "older put", c: changeTestPut(t, "a", 1, changeTestFields("old"))},
		{name: "access", c: changeTestAccess(t, "z", future, 100, changeTestBase)},
		{name: "state", c: changeTestState(t, "z", future, core.StateUnconsolidated, core.StateConsolidating, "", changeTestBase)},
		{name: "delete again", c: changeTestDelete(t, "z", future)},
		{name: "unknown kind", c: core.Change{Device: "z", HLC: future, Kind: "memory.bogus", EntityID: changeTestMemory}},
		{name: "bad payload", c: core.Change{Device: "z", HLC: future, Kind: core.KindMemoryPut, EntityID: changeTestMemory, Payload: json.RawMessage(`{`)}},
	}
	for _, tc := range changes {
		t.Run("tombstone beats "+tc.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range []*core.Memory{nil, &cur} {
				eff := core.MergeMemory(c, true, &tc.c)
				assert.Equal(t, core.StatusSuperseded, eff.Status)
				assert.NotEmpty(t, eff.Reason)
				assert.Nil(t, eff.Memory)
				assert.False(t, eff.Delete)
			}
		})
	}
	tests := []struct {
		name string
		cur  *core.Memory
		hlc  core.HLC
	}{
		{name: "delete existing", cur: &cur, hlc: changeTestHLC(1, 0)},
		{name: "delete older than the row", cur: &cur, hlc: 1},
		{name: "delete unknown", cur: nil, hlc: changeTestHLC(1, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := changeTestDelete(t, "b", tc.hlc)
			eff := core.MergeMemory(tc.cur, false, &c)
			assert.Equal(t, core.StatusApplied, eff.Status)
			assert.True(t, eff.Delete)
			assert.Nil(t, eff.Memory)
		})
	}
}

func TestMergeMemoryRejects(t *testing.T) {
	t.Parallel()
	cur := changeTestCreate(t, "a", changeTestHLC(0, 0), changeTestFields("x"))
	mk := func(kind core.Kind, payload string) core.Change {
		return core.Change{Device: "b", HLC: changeTestHLC(5, 0), Kind: kind, ProjectID: changeTestProject,
			EntityID: changeTestMemory, Payload: json.RawMessage(payload)}
	}
	tests := []struct {
		name   string
		cur    *core.Memory
		c      core.Change
		reason string
	}{
		{name: "unknown kind", cur: &cur, c: mk("memory.bogus", `{}`), reason: "unknown change kind memory.bogus"},
		{name: "empty kind", cur: &cur, c: mk("", `{}`), reason: "unknown change kind"},
		{name: "other entity's kind", cur: &cur, c: mk(core.KindTaskPut, `{}`), reason: "unknown change kind task.put"},
		{name: "put bad JSON", cur: &cur, c: mk(core.KindMemoryPut, `{"content":`), reason: "payload"},
		{name: "put wrong JSON type", cur: &cur, c: mk(core.KindMemoryPut, `{"content":5}`), reason: "payload"},
		{name: "create bad JSON", cur: nil, c: mk(core.KindMemoryPut, `not json`), reason: "payload"},
		{name: "put nil payload", cur: nil, c: mk(core.KindMemoryPut, ``), reason: "payload"},
		{name: "access bad JSON", cur: &cur, c: mk(core.KindMemoryAccess, `[]`), reason: "payload"},
		{name: "access before create", cur: nil, c: mk(core.KindMemoryAccess, `{"count":1,"at_ms":1}`), reason: "not found"},
		{name: "state bad JSON", cur: &cur, c: mk(core.KindMemoryState, `{"to":true}`), reason: "payload"},
		{name: "state before create", cur: nil, c: mk(core.KindMemoryState, `{"from":"unconsolidated","to":"consolidating"}`), reason: "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eff := core.MergeMemory(tc.cur, false, &tc.c)
			assert.Equal(t, core.StatusRejected, eff.Status)
			assert.Contains(t, eff.Reason, tc.reason)
			assert.Nil(t, eff.Memory)
			assert.False(t, eff.Delete)
		})
	}
}

// changeTestReplica is one replica's view of the memory.
type changeTestReplica struct {
	cur  *core.Memory
	dead bool
}

func (r *changeTestReplica) apply(c *core.Change) core.Effect {
	eff := core.MergeMemory(r.cur, r.dead, c)
	if eff.Status == core.StatusApplied {
		if eff.Delete {
			r.cur, r.dead = nil, true
		} else {
			m := eff.Memory.Clone()
			r.cur = &m
		}
	}
	return eff
}

// changeTestGen generates a realistic history of one memory on three
// devices: every device's HLCs strictly increase (HLCs of different
// devices may tie), access counters grow by one per access, access times
// follow each device's physical clock (which may step backwards when
// backwards is set), and at most one delete. The creating put comes first.
func changeTestGen(t testing.TB, r *rand.Rand, backwards bool) (create core.Change, rest []core.Change) {
	devs := []string{"dev-a", "dev-b", "dev-c"}
	wall := map[string]int64{"dev-a": 0, "dev-b": 0, "dev-c": 0}
	phys := map[string]int64{"dev-a": 0, "dev-b": 0, "dev-c": 0}
	logical := map[string]uint16{}
	count := map[string]int64{}
	next := func(d string) core.HLC {
		if r.IntN(3) == 0 {
			logical[d]++
		} else {
			wall[d] += 1 + int64(r.IntN(3))
			logical[d] = 0
		}
		return changeTestHLC(wall[d], logical[d])
	}
	tick := func(d string) int64 {
		if backwards && r.IntN(4) == 0 {
			phys[d] -= int64(r.IntN(50))
		} else {
			phys[d] += int64(r.IntN(50))
		}
		return changeTestBase + phys[d]
	}
	states := core.States()
	create = changeTestPut(t, "dev-a", next("dev-a"), changeTestFields("v0"))
	n := 8 + r.IntN(24)
	deleted := false
	for i := range n {
		d := devs[r.IntN(len(devs))]
		switch k := r.IntN(10); {
		case k < 3:
			m := changeTestFields(fmt.Sprintf("v%d-%s", i, d))
			m.Usefulness, m.Confidence = float64(r.IntN(11))/10, float64(r.IntN(11))/10
			m.Tags = []string{fmt.Sprintf("t%d", r.IntN(3))}
			m.Embedding = []float32{float32(i), 1, 2}
			m.State = states[r.IntN(len(states))] // ignored by later puts
			rest = append(rest, changeTestPut(t, d, next(d), m))
		case k < 6:
			count[d]++
			rest = append(rest, changeTestAccess(t, d, next(d), count[d], tick(d)))
		case k < 9:
			from := states[r.IntN(len(states))]
			var to core.State
			if nx := from.Next(); len(nx) > 0 && r.IntN(5) > 0 {
				to = nx[r.IntN(len(nx))] // mostly legal
			} else {
				to = states[r.IntN(len(states))]
			}
			var by core.ID
			if to == core.StateSuperseded && r.IntN(4) > 0 {
				by = changeTestOther
			}
			rest = append(rest, changeTestState(t, d, next(d), from, to, by, tick(d)))
		default:
			if !deleted && r.IntN(4) == 0 {
				deleted = true
				rest = append(rest, changeTestDelete(t, d, next(d)))
			}
		}
	}
	return create, rest
}

func changeTestRun(create core.Change, rest []core.Change, twice bool) changeTestReplica {
	var r changeTestReplica
	r.apply(&create)
	for i := range rest {
		r.apply(&rest[i])
		if twice {
			r.apply(&rest[i])
		}
	}
	return r
}

// changeTestPerDeviceOrder reorders cs, stably, so that each device's
// changes keep their original relative order, as sync delivers them.
func changeTestPerDeviceOrder(perm, orig []core.Change) []core.Change {
	byDev := map[string][]core.Change{}
	for _, c := range orig {
		byDev[c.Device] = append(byDev[c.Device], c)
	}
	out := make([]core.Change, 0, len(perm))
	for _, c := range perm {
		out = append(out, byDev[c.Device][0])
		byDev[c.Device] = byDev[c.Device][1:]
	}
	return out
}

func TestMergeMemoryConverges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// backwards lets a device's physical clock step back between
		// two of its own changes.
		backwards bool
		// perDevice keeps each device's own changes in order (as sync
		// does: it applies a device's changes in seq order); otherwise
		// the order is arbitrary.
		perDevice bool
	}{
		{name: "monotonic clocks any order", backwards: false, perDevice: false},
		{name: "backwards clocks sync order", backwards: true, perDevice: true},
		{name: "backwards clocks any order", backwards: true, perDevice: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= 60; seed++ {
				r := rand.New(rand.NewPCG(seed, 0xc0ffee))
				create, rest := changeTestGen(t, r, tc.backwards)
				want := changeTestRun(create, rest, false)
				for p := range 6 {
					perm := append([]core.Change(nil), rest...)
					r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
					if tc.perDevice {
						perm = changeTestPerDeviceOrder(perm, rest)
					}
					got := changeTestRun(create, perm, false)
					if !reflect.DeepEqual(want, got) {
						assert.Equal(t, want, got, "seed %d permutation %d diverges\n%s", seed, p, changeTestDescribe(perm))
						return
					}
				}
				// Idempotence: every change applied twice in a row, and
				// the whole history replayed after itself.
				if got := changeTestRun(create, rest, true); !reflect.DeepEqual(want, got) {
					assert.Equal(t, want, got, "seed %d: applying each change twice", seed)
				}
				if got := changeTestRun(create, append(append([]core.Change(nil), rest...), rest...), false); !reflect.DeepEqual(want, got) {
					assert.Equal(t, want, got, "seed %d: replaying the history", seed)
				}
			}
		})
	}
}

func changeTestDescribe(cs []core.Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  %s %s %s %s\n", c.Device, c.HLC, c.Kind, c.Payload)
	}
	return b.String()
}

// TestMergeMemoryAccessTimeCommutes is the minimal case of the access rule's
// order dependence: one device accesses the memory twice and its physical
// clock steps back in between. The second access carries the higher count
// but the earlier time. Applied in log order, last_accessed is the max of
// the two times; applied in the other order, the first access is
// superseded whole and its later time is lost.
func TestMergeMemoryAccessTimeCommutes(t *testing.T) {
	t.Parallel()
	create := changeTestPut(t, "dev-a", changeTestHLC(0, 0), changeTestFields("x"))
	first := changeTestAccess(t, "dev-b", changeTestHLC(1, 0), 1, changeTestBase+1000)
	second := changeTestAccess(t, "dev-b", changeTestHLC(2, 0), 2, changeTestBase+900) // clock stepped back
	inOrder := changeTestRun(create, []core.Change{first, second}, false)
	reversed := changeTestRun(create, []core.Change{second, first}, false)
	require.NotNil(t, inOrder.cur)
	require.NotNil(t, reversed.cur)
	assert.Equal(t, time.UnixMilli(changeTestBase+1000).UTC(), inOrder.cur.LastAccessed)
	assert.Equal(t, inOrder.cur.LastAccessed, reversed.cur.LastAccessed, "last_accessed must not depend on order")
	assert.Equal(t, inOrder, reversed)
}

// changeTestFaultyProject is a memstore whose write transactions fail to
// read projects with err (a lost connection, say): a fault to inject.
type changeTestFaultyProject struct {
	core.Backend
	err error
}

func (b changeTestFaultyProject) Update(ctx context.Context, fn func(core.WriteTx) error) error {
	return b.Backend.Update(ctx, func(w core.WriteTx) error { return fn(changeTestFaultyTx{WriteTx: w, err: b.err}) })
}

type changeTestFaultyTx struct {
	core.WriteTx
	err error
}

func (t changeTestFaultyTx) Project(context.Context, core.ID) (core.Project, error) {
	return core.Project{}, t.err
}

// TestApplyProjectReadFailureIsNotARejection: a remote change whose
// project cannot be read because the store failed fails the batch, to be
// applied again later; only a project that is not there rejects it, for
// good.
func TestApplyProjectReadFailureIsNotARejection(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	edge := core.New(memstore.New(), core.Config{Device: "edge"})
	p, err := edge.CreateProject(ctx, core.Project{Name: "f", Path: "/f", EmbeddingModel: "m", EmbeddingDim: 2})
	require.NoError(t, err)
	_, err = edge.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "a memory", Embedding: []float32{1, 0}})
	require.NoError(t, err)
	_, err = edge.CreateTask(ctx, core.Task{ProjectID: p.ID, Title: "a task"})
	require.NoError(t, err)
	cs, err := edge.Changes(ctx, 0, 10, "")
	require.NoError(t, err)
	require.Len(t, cs, 3)
	lost := errors.New("connection lost")
	tests := []struct {
		name   string
		err    error
		status core.Status // "" when the batch fails
	}{
		{"store failure", lost, ""},
		{"no such project", fmt.Errorf("project: %w", core.ErrNotFound), core.StatusRejected},
	}
	for _, tc := range tests {
		for _, c := range cs[1:] { // the memory put, the task put
			t.Run(tc.name+"/"+string(c.Kind), func(t *testing.T) {
				t.Parallel()
				db := core.New(changeTestFaultyProject{Backend: memstore.New(), err: tc.err}, core.Config{Device: "server"})
				res, err := db.ApplyPulled(ctx, []core.Change{c}) // without its project put
				if tc.status == "" {
					require.ErrorIs(t, err, lost)
					return
				}
				require.NoError(t, err)
				require.Len(t, res, 1)
				assert.Equal(t, tc.status, res[0].Status, res[0].Reason)
			})
		}
	}
}
