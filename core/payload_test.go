package core

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// payloadTestMemory is the memory the payload tests vary, and its times.
func payloadTestMemory() (Memory, time.Time) {
	at := time.UnixMilli(1_780_000_000_123).UTC()
	return Memory{
		ID: "0190f3a2-0000-7000-8000-0000000000aa", ProjectID: "0190f3a2-0000-7000-8000-000000000001",
		Content: "plain words, numbers 12 and (punctuation)!", EmbeddingModel: "m", MemoryType: TypeFact,
		Domain: "d", Tags: []string{}, Usefulness: 0.5, Confidence: 1, QualityScore: Quality(0.5, 1, 0),
		State: StateUnconsolidated, CreatedAt: at, UpdatedAt: at,
		Version: Stamp{HLC: 1 << 40, Device: "edge-1"},
	}, at
}

// TestAppendMemoryJSON checks appendMemoryJSON against json.Marshal: the
// same bytes whenever it says ok, and ok for the memories a local put
// usually encodes.
func TestAppendMemoryJSON(t *testing.T) {
	t.Parallel()
	base, at := payloadTestMemory()
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
// it (a field it did not write would silently vanish from payloads), and
// so is parseMemoryJSON.
func TestAppendMemoryJSONFields(t *testing.T) {
	t.Parallel()
	var names []string
	for f := range reflect.TypeFor[Memory]().Fields() {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"ID", "ProjectID", "Content", "Embedding", "EmbeddingModel", "MemoryType", "Domain", "Tags",
		"SessionID", "EventType", "CodeLanguage", "CodeHash", "Usefulness", "Confidence", "AccessCount", "QualityScore", "State",
		"SupersededBy", "CreatedAt", "UpdatedAt", "LastAccessed", "LastRetrieved", "ConsolidatedAt", "Version", "StateVersion",
		"AccessByDevice"}, names, "Memory changed: update appendMemoryJSON and parseMemoryJSON (core/payload.go) and this list")
}

// checkParseMemoryJSON compares parseMemoryJSON with json.Unmarshal on b:
// when it says ok, json.Unmarshal must succeed with the same Memory.
// It returns parseMemoryJSON's ok.
func checkParseMemoryJSON(t *testing.T, b []byte) bool {
	t.Helper()
	var got Memory
	ok := parseMemoryJSON(b, &got)
	var want Memory
	err := json.Unmarshal(b, &want)
	if ok {
		require.NoError(t, err, "parseMemoryJSON accepted what json.Unmarshal rejects: %q", b)
		require.Equal(t, want, got, "%q", b)
	}
	// decodePayload gives json.Unmarshal's answer either way.
	var dec Memory
	derr := decodePayload(&Change{Kind: KindMemoryPut, Payload: b}, &dec)
	require.Equal(t, err == nil, derr == nil, "%q: %v / %v", b, err, derr)
	if err == nil {
		require.Equal(t, want, dec, "%q", b)
	}
	return ok
}

// TestParseMemoryJSON checks parseMemoryJSON against json.Unmarshal: the
// same Memory whenever it says ok, ok for what a put usually carries, and
// not ok for what it leaves to encoding/json.
func TestParseMemoryJSON(t *testing.T) {
	t.Parallel()
	base, at := payloadTestMemory()
	marshal := func(mutate func(*Memory)) string {
		m := base
		mutate(&m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return string(b)
	}
	plain := marshal(func(*Memory) {})
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain", plain, true},
		{"nil tags", marshal(func(m *Memory) { m.Tags = nil }), true},
		{"tags", marshal(func(m *Memory) { m.Tags = []string{"a", "b c", ""} }), true},
		{"optional strings", marshal(func(m *Memory) {
			m.SessionID, m.EventType, m.CodeLanguage, m.CodeHash, m.SupersededBy = "s", "e", "go", "h", "x"
		}), true},
		{"stamps", marshal(func(m *Memory) {
			m.Version, m.StateVersion = Stamp{HLC: math.MaxUint64, Device: "dev"}, Stamp{HLC: 1, Device: ""}
		}), true},
		{"small and large floats", marshal(func(m *Memory) { m.Usefulness, m.Confidence, m.QualityScore = 1e-7, 3e21, -2.5e-9 }), true},
		{"negative zero", marshal(func(m *Memory) { m.Confidence = math.Copysign(0, -1) }), true},
		{"access count", marshal(func(m *Memory) { m.AccessCount = math.MinInt64 }), true},
		{"zero times", marshal(func(m *Memory) { m.CreatedAt, m.UpdatedAt = time.Time{}, time.Time{} }), true},
		{"zone", marshal(func(m *Memory) { m.LastAccessed = at.In(time.FixedZone("x", -5*3600-30*60)) }), true},
		{"nanoseconds", marshal(func(m *Memory) { m.ConsolidatedAt = at.Add(123456789) }), true},
		{"unicode", marshal(func(m *Memory) { m.Content, m.Tags = "naïve café 東京 🙂", []string{"ü"} }), true},
		{"delete character", marshal(func(m *Memory) { m.Content = "a\x7fb" }), true},

		// Left to encoding/json, which accepts them.
		{"html escaped", marshal(func(m *Memory) { m.Content = "a <b> & c" }), false},
		{"quote", marshal(func(m *Memory) { m.Content = `say "hi"` }), false},
		{"control", marshal(func(m *Memory) { m.Content = "tab\there" }), false},
		{"invalid UTF-8 replaced", "{\"id\":\"a\xffb\"" + plain[len(`{"id":"0190f3a2-0000-7000-8000-0000000000aa"`):], false},
		{"embedding", marshal(func(m *Memory) { m.Embedding = []float32{1, 2} }), false},
		{"access map", marshal(func(m *Memory) { m.AccessByDevice = map[string]int64{"d": 1} }), false},
		{"space", " " + plain, false},
		{"trailing space", plain + "\n", false},
		{"keys reordered", `{"project_id":"p","id":"i"` + plain[len(`{"id":"0190f3a2-0000-7000-8000-0000000000aa","project_id":"0190f3a2-0000-7000-8000-000000000001"`):], false},
		{"null time", strings.Replace(plain, `"last_accessed":"0001-01-01T00:00:00Z"`, `"last_accessed":null`, 1), false},
		{"integer as float", strings.Replace(plain, `"access_count":0`, `"access_count":1.0`, 1), false},
		{"integer exponent", strings.Replace(plain, `"access_count":0`, `"access_count":1e2`, 1), false},
		{"upper-case key", strings.Replace(plain, `"domain"`, `"Domain"`, 1), false},
		{"unknown key", strings.Replace(plain, `"domain":"d"`, `"domain":"d","x":1`, 1), false},

		// Rejected by both.
		{"empty", ``, false},
		{"truncated", plain[:len(plain)-1], false},
		{"trailing bytes", plain + "}", false},
		{"float overflow", strings.Replace(plain, `"usefulness":0.5`, `"usefulness":1e400`, 1), false},
		{"integer overflow", strings.Replace(plain, `"access_count":0`, `"access_count":9223372036854775808`, 1), false},
		{"negative hlc", strings.Replace(plain, `{"hlc":1099511627776`, `{"hlc":-1`, 1), false},
		{"leading zero", strings.Replace(plain, `"access_count":0`, `"access_count":01`, 1), false},
		{"bad time", strings.Replace(plain, `"updated_at":"2026`, `"updated_at":"x2026`, 1), false},
		{"raw control", strings.Replace(plain, `plain words`, "plain\twords", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name != "plain" {
				require.NotEqual(t, plain, tt.in, "the case changes nothing")
			}
			require.Equal(t, tt.ok, checkParseMemoryJSON(t, []byte(tt.in)), "%s", tt.in)
		})
	}
}

// FuzzParseMemoryJSON is a differential fuzz target: parseMemoryJSON must
// agree with json.Unmarshal on whatever it accepts, and decodePayload
// with json.Unmarshal on everything.
func FuzzParseMemoryJSON(f *testing.F) {
	at := time.UnixMilli(1_780_000_000_123).UTC()
	for _, m := range []Memory{
		{ID: "i", ProjectID: "p", Content: "c", Tags: []string{"x"}, CreatedAt: at, Version: Stamp{HLC: 7, Device: "d"}},
		{Content: "naïve", Tags: nil, Usefulness: 1e-9, AccessCount: -3, SessionID: "s", SupersededBy: "o",
			LastAccessed: at.In(time.FixedZone("z", 3600))},
	} {
		b, err := json.Marshal(m)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"id":"a\u0041"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParseMemoryJSON(t, b)
	})
}

// BenchmarkDecodeMemoryPayload compares decodePayload on a put's payload
// with encoding/json, which it used alone before parseMemoryJSON.
func BenchmarkDecodeMemoryPayload(b *testing.B) {
	at := time.UnixMilli(1_780_000_000_123).UTC()
	m := Memory{
		ID: "0190f3a2-0000-7000-8000-0000000000aa", ProjectID: "0190f3a2-0000-7000-8000-000000000001",
		Content: strings.Repeat("the quick brown fox jumps over the lazy dog ", 12), EmbeddingModel: "athena-hash-768",
		MemoryType: TypeFact, Domain: "general", Tags: []string{"bench", "sync"}, Usefulness: 0.5, Confidence: 0.9,
		QualityScore: Quality(0.5, 0.9, 0), State: StateUnconsolidated, CreatedAt: at, UpdatedAt: at, LastAccessed: at,
		Version: Stamp{HLC: MakeHLC(at.UnixMilli(), 3), Device: "edge-1"},
	}
	p, err := EncodePayload(m)
	require.NoError(b, err)
	c := &Change{Kind: KindMemoryPut, Payload: p}
	b.Run("decodePayload", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			var got Memory
			if err := decodePayload(c, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			var got Memory
			if err := json.Unmarshal(p, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
