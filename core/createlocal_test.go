package core

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCreateLocalMemory checks that putNewMemory's shortcut gives exactly
// what MergeMemory gives after the JSON round trip of the payload, and
// that it declines the memories the round trip would change.
func TestCreateLocalMemory(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_780_000_000_123).UTC()
	base := Memory{
		ID: "0190f3a2-0000-7000-8000-0000000000aa", ProjectID: "0190f3a2-0000-7000-8000-000000000001",
		Content: "ünïcode and \"quotes\" <tags> & \\ \u2028", EmbeddingModel: "m", MemoryType: TypeFact,
		Domain: "d", Tags: []string{"a", "b"}, Usefulness: 0.25, Confidence: 1, State: StateUnconsolidated,
		CreatedAt: at, UpdatedAt: at.Add(time.Millisecond),
	}
	tests := []struct {
		name   string
		mutate func(*Memory)
		ok     bool
	}{
		{"plain", func(*Memory) {}, true},
		{"nil tags", func(m *Memory) { m.Tags = nil }, true},
		{"empty tags", func(m *Memory) { m.Tags = []string{} }, true},
		{"no state", func(m *Memory) { m.State = "" }, true},
		{"optional fields", func(m *Memory) {
			m.SessionID, m.EventType, m.CodeLanguage, m.CodeHash, m.SupersededBy = "s", "e", "go", "h", "x"
		}, true},
		{"access fields cleared", func(m *Memory) {
			m.AccessCount, m.AccessByDevice, m.LastAccessed, m.LastRetrieved = 3, map[string]int64{"a": 3}, at, at
			m.StateVersion = Stamp{HLC: 5, Device: "z"}
		}, true},
		{"negative zero", func(m *Memory) { m.Usefulness = -0.0 * m.Usefulness }, true},
		{"consolidated UTC", func(m *Memory) { m.ConsolidatedAt = at.Add(time.Nanosecond) }, true},
		{"consolidated in a zone", func(m *Memory) { m.ConsolidatedAt = at.In(time.FixedZone("x", 3600)) }, false},
		{"monotonic", func(m *Memory) { m.ConsolidatedAt = time.Now() }, false},
		{"invalid UTF-8 content", func(m *Memory) { m.Content = "a\xffb" }, false},
		{"invalid UTF-8 tag", func(m *Memory) { m.Tags = []string{"\xfe"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := base
			m.Tags = append([]string(nil), base.Tags...)
			tt.mutate(&m)
			raw, err := EncodePayload(m)
			require.NoError(t, err)
			c := &Change{Device: "dev", Seq: 1, HLC: 42, Kind: KindMemoryPut, ProjectID: m.ProjectID, EntityID: m.ID,
				Payload: raw, Vector: []float32{1, 2}, Status: StatusApplied}
			got, ok := createLocalMemory(&m, c)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			eff := MergeMemory(nil, false, c)
			require.Equal(t, StatusApplied, eff.Status)
			require.Equal(t, *eff.Memory, got)
			if len(m.Tags) > 0 {
				got.Tags[0] = "changed"
				require.NotEqual(t, "changed", m.Tags[0], "the result shares the caller's tags")
			}
		})
	}
}
