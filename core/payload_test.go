package core

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAppendMemoryJSON checks appendMemoryJSON against json.Marshal: the
// same bytes whenever it says ok, and ok for the memories a local put
// usually encodes.
func TestAppendMemoryJSON(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_780_000_000_123).UTC()
	base := Memory{
		ID: "0190f3a2-0000-7000-8000-0000000000aa", ProjectID: "0190f3a2-0000-7000-8000-000000000001",
		Content: "plain words, numbers 12 and (punctuation)!", EmbeddingModel: "m", MemoryType: TypeFact,
		Domain: "d", Tags: []string{}, Usefulness: 0.5, Confidence: 1, QualityScore: Quality(0.5, 1, 0),
		State: StateUnconsolidated, CreatedAt: at, UpdatedAt: at,
	}
	tests := []struct {
		name   string
		mutate func(*Memory)
		ok     bool
	}{
		{"plain", func(*Memory) {}, true},
		{"nil tags", func(m *Memory) { m.Tags = nil }, true},
		{"tags", func(m *Memory) { m.Tags = []string{"a", "b c"} }, true},
		{"optional strings", func(m *Memory) {
			m.SessionID, m.EventType, m.CodeLanguage, m.CodeHash, m.SupersededBy = "s", "e", "go", "h", "x"
		}, true},
		{"stamps", func(m *Memory) {
			m.Version, m.StateVersion = Stamp{HLC: math.MaxUint64, Device: "dev"}, Stamp{HLC: 1, Device: ""}
		}, true},
		{"small and large floats", func(m *Memory) { m.Usefulness, m.Confidence, m.QualityScore = 1e-7, 3e21, -2.5e-9 }, true},
		{"zero floats", func(m *Memory) { m.Usefulness, m.Confidence, m.QualityScore = 0, math.Copysign(0, -1), 1e-6 }, true},
		{"access count", func(m *Memory) { m.AccessCount = -42 }, true},
		{"zero times", func(m *Memory) { m.CreatedAt, m.UpdatedAt = time.Time{}, time.Time{} }, true},
		{"nanoseconds", func(m *Memory) { m.ConsolidatedAt = at.Add(123456789) }, true},
		{"zone", func(m *Memory) { m.LastAccessed = at.In(time.FixedZone("x", -5*3600-30*60)) }, true},
		{"local with monotonic", func(m *Memory) { m.LastRetrieved = time.Now() }, true},
		{"zone with seconds", func(m *Memory) { m.LastAccessed = at.In(time.FixedZone("x", 61)) }, false},
		{"zone of a day", func(m *Memory) { m.LastAccessed = at.In(time.FixedZone("x", 24*3600)) }, false},
		{"year 10000", func(m *Memory) { m.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
		{"year -1", func(m *Memory) { m.CreatedAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }, false},
		{"html", func(m *Memory) { m.Content = "a <b> & c" }, false},
		{"quote", func(m *Memory) { m.Content = `say "hi"` }, false},
		{"backslash", func(m *Memory) { m.Domain = `a\b` }, false},
		{"control", func(m *Memory) { m.Content = "tab\there" }, false},
		{"unicode", func(m *Memory) { m.Content = "naïve" }, false},
		{"unicode tag", func(m *Memory) { m.Tags = []string{"ü"} }, false},
		{"invalid UTF-8", func(m *Memory) { m.Content = "a\xffb" }, false},
		{"NaN", func(m *Memory) { m.Usefulness = math.NaN() }, false},
		{"infinity", func(m *Memory) { m.Confidence = math.Inf(1) }, false},
		{"embedding", func(m *Memory) { m.Embedding = []float32{1} }, false},
		{"access map", func(m *Memory) { m.AccessByDevice = map[string]int64{"d": 1} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := base
			tt.mutate(&m)
			got, ok := appendMemoryJSON(nil, &m)
			require.Equal(t, tt.ok, ok)
			want, err := json.Marshal(m)
			if ok {
				require.NoError(t, err)
				require.Equal(t, string(want), string(got))
			}
			// EncodePayload gives json.Marshal's bytes either way.
			raw, err := EncodePayload(m)
			if err == nil {
				require.Equal(t, string(want), string(raw))
			}
		})
	}
	t.Run("random", func(t *testing.T) {
		t.Parallel()
		r := rand.New(rand.NewPCG(1, 2))
		word := func() string {
			b := make([]byte, r.IntN(12))
			for i := range b {
				b[i] = byte(0x20 + r.IntN(0x60))
			}
			return string(b)
		}
		for range 2000 {
			m := base
			m.Content, m.Domain, m.SessionID, m.Tags = word(), word(), word(), []string{word(), word()}
			m.Usefulness, m.Confidence = r.Float64(), math.Ldexp(r.Float64(), r.IntN(160)-80)
			m.AccessCount, m.Version.HLC = r.Int64(), HLC(r.Uint64())
			m.CreatedAt = time.Unix(r.Int64N(1<<36), r.Int64N(1e9)).In(time.FixedZone("z", 60*(r.IntN(2000)-1000)))
			want, err := json.Marshal(m)
			require.NoError(t, err)
			if got, ok := appendMemoryJSON(nil, &m); ok {
				require.Equal(t, string(want), string(got))
			}
		}
	})
}

// TestAppendMemoryJSONFields fails when Memory gains or loses a field, so
// that appendMemoryJSON, which writes each field by hand, is updated with
// it (a field it did not write would silently vanish from payloads).
func TestAppendMemoryJSONFields(t *testing.T) {
	t.Parallel()
	var names []string
	for f := range reflect.TypeFor[Memory]().Fields() {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"ID", "ProjectID", "Content", "Embedding", "EmbeddingModel", "MemoryType", "Domain", "Tags",
		"SessionID", "EventType", "CodeLanguage", "CodeHash", "Usefulness", "Confidence", "AccessCount", "QualityScore", "State",
		"SupersededBy", "CreatedAt", "UpdatedAt", "LastAccessed", "LastRetrieved", "ConsolidatedAt", "Version", "StateVersion",
		"AccessByDevice"}, names, "Memory changed: update appendMemoryJSON (core/payload.go) and this list")
}
