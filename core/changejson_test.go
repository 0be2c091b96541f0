package core

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkDecodeChangesJSON compares DecodeChangesJSON with json.Unmarshal:
// when it says ok, json.Unmarshal of the bytes it read must succeed with
// the same changes. It returns DecodeChangesJSON's ok.
func checkDecodeChangesJSON(t *testing.T, b []byte) bool {
	t.Helper()
	cs, n, ok := DecodeChangesJSON(b)
	if !ok {
		require.Nil(t, cs)
		return false
	}
	require.LessOrEqual(t, n, len(b))
	var want []Change
	require.NoError(t, json.Unmarshal(b[:n], &want), "DecodeChangesJSON accepted what json.Unmarshal rejects: %q", b[:n])
	require.Equal(t, want, cs, "%q", b)
	return true
}

// TestDecodeChangesJSON checks DecodeChangesJSON against json.Unmarshal
// on what encoding/json writes for changes and on what it leaves to
// encoding/json.
func TestDecodeChangesJSON(t *testing.T) {
	t.Parallel()
	put := Change{Device: "edge-1", Seq: 7, HLC: MakeHLC(1_780_000_000_000, 2), Kind: KindMemoryPut,
		ProjectID: "0190f3a2-0000-7000-8000-000000000001", EntityID: "0190f3a2-0000-7000-8000-0000000000aa",
		Payload: json.RawMessage(`{"id":"x","content":"a \"quoted\" naïve \u003cword\u003e","n":[1,-2.5e-3,true,null,{}],"o":{"a":[]}}`)}
	access := Change{Device: "edge-1", Seq: 8, HLC: 9, Kind: KindMemoryAccess, ProjectID: "p", EntityID: "e",
		Payload: json.RawMessage(`{"count":3,"at_ms":1780000000000}`)}
	marshal := func(cs []Change) string {
		b, err := json.Marshal(cs)
		require.NoError(t, err)
		return string(b)
	}
	list := marshal([]Change{put, access})
	deep := strings.Repeat("[", 70) + strings.Repeat("]", 70)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"list", list, true},
		{"empty", `[]`, true},
		{"null", `null`, true},
		{"followed by more", list + `,"next":5}`, true},
		{"unicode device", strings.Replace(list, `"edge-1"`, `"édge"`, 1), true},
		{"payload string", strings.Replace(list, `{"count":3,"at_ms":1780000000000}`, `"s\u00e9\n\/"`, 1), true},
		{"payload number", strings.Replace(list, `{"count":3,"at_ms":1780000000000}`, `-0.5E+7`, 1), true},
		{"payload false", strings.Replace(list, `{"count":3,"at_ms":1780000000000}`, `false`, 1), true},
		{"payload with invalid UTF-8", strings.Replace(list, `"at_ms"`, "\"at\xffms\"", 1), true},

		// Left to encoding/json, which accepts them.
		{"space", " " + list, false},
		{"space in payload", strings.Replace(list, `{"count":3,`, `{"count": 3,`, 1), false},
		{"escaped device", strings.Replace(list, `"edge-1"`, `"edge\u002d1"`, 1), false},
		{"invalid UTF-8 in a field", strings.Replace(list, `"edge-1"`, "\"edge\xff\"", 1), false},
		{"local fields", strings.Replace(list, `"payload":{"count"`, `"pos":3,"payload":{"count"`, 1), false},
		{"vector", strings.Replace(list, `,"payload":{"count":3,"at_ms":1780000000000}`, `,"payload":{},"vector":[1]`, 1), false},
		{"deep payload", strings.Replace(list, `{"count":3,"at_ms":1780000000000}`, deep, 1), false},

		// Rejected by both.
		{"truncated", list[:len(list)-1], false},
		{"bad payload number", strings.Replace(list, `{"count":3,`, `{"count":03,`, 1), false},
		{"bad escape", strings.Replace(list, `\"quoted\"`, `\q`, 1), false},
		{"short unicode escape", strings.Replace(list, `\u003c`, `\u03c`, 1), false},
		{"control in payload", strings.Replace(list, `naïve`, "na\tive", 1), false},
		{"negative seq", strings.Replace(list, `"seq":7`, `"seq":-7`, 1), false},
		{"seq overflow", strings.Replace(list, `"seq":7`, `"seq":18446744073709551616`, 1), false},
		{"unterminated payload", `[{"device":"d","seq":1,"hlc":1,"kind":"k","project_id":"p","entity_id":"e","payload":{"a":`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name != "list" && strings.HasPrefix(tt.in, "[{") {
				require.NotEqual(t, list, tt.in, "the case changes nothing")
			}
			require.Equal(t, tt.ok, checkDecodeChangesJSON(t, []byte(tt.in)), "%s", tt.in)
		})
	}
}

// FuzzDecodeChangesJSON is a differential fuzz target: DecodeChangesJSON
// must agree with json.Unmarshal on whatever it accepts.
func FuzzDecodeChangesJSON(f *testing.F) {
	b, err := json.Marshal([]Change{
		{Device: "d", Seq: 1, HLC: 5, Kind: KindMemoryPut, ProjectID: "p", EntityID: "e", Payload: json.RawMessage(`{"a":[1,2.5,"x\"y\u00e9"],"b":null,"c":{"d":false}}`)},
		{Device: "d", Seq: 2, Kind: KindMemoryDelete, Payload: json.RawMessage(`{}`)},
	})
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeChangesJSON(t, b)
	})
}

// checkAppendChangesJSON compares AppendChangesJSON with json.Marshal:
// when it says ok it must have appended exactly what json.Marshal writes.
// It returns AppendChangesJSON's ok.
func checkAppendChangesJSON(t *testing.T, cs []Change) bool {
	t.Helper()
	got, ok := AppendChangesJSON([]byte("prefix"), cs)
	if !ok {
		return false
	}
	want, err := json.Marshal(cs)
	require.NoError(t, err, "AppendChangesJSON wrote what json.Marshal rejects: %q", got)
	require.Equal(t, "prefix"+string(want), string(got))
	return true
}

// TestAppendChangesJSON checks AppendChangesJSON against json.Marshal on
// the changes a device sends, and that it leaves to encoding/json what it
// cannot write byte for byte.
func TestAppendChangesJSON(t *testing.T) {
	t.Parallel()
	put := Change{Device: "edge-1", Seq: 7, HLC: MakeHLC(1_780_000_000_000, 2), Kind: KindMemoryPut,
		ProjectID: "0190f3a2-0000-7000-8000-000000000001", EntityID: "0190f3a2-0000-7000-8000-0000000000aa",
		Payload: json.RawMessage(`{"id":"x","content":"a \"quoted\" naïve \u003cword\u003e","n":[1,-2.5e-3,true,null,{}],"o":{"a":[]}}`)}
	with := func(f func(c *Change)) []Change {
		c := put
		f(&c)
		return []Change{put, c}
	}
	tests := []struct {
		name string
		cs   []Change
		ok   bool
	}{
		{"nil", nil, true},
		{"empty", []Change{}, true},
		{"one", []Change{put}, true},
		{"two", with(func(c *Change) {
			c.Seq, c.Kind, c.Payload = 8, KindMemoryAccess, json.RawMessage(`{"count":3,"at_ms":1}`)
		}), true},
		{"max numbers", with(func(c *Change) { c.Seq, c.HLC = math.MaxUint64, math.MaxUint64 }), true},
		{"nil payload", with(func(c *Change) { c.Payload = nil }), true},
		{"payload string", with(func(c *Change) { c.Payload = json.RawMessage(`"s\u00e9\n\/"`) }), true},
		{"payload with invalid UTF-8", with(func(c *Change) { c.Payload = json.RawMessage("\"a\xffb\"") }), true},

		// Left to encoding/json, which writes them otherwise or rejects them.
		{"empty payload", with(func(c *Change) { c.Payload = json.RawMessage{} }), false},
		{"payload with spaces", with(func(c *Change) { c.Payload = json.RawMessage(`{"a": 1}`) }), false},
		{"payload with <", with(func(c *Change) { c.Payload = json.RawMessage(`"<b>"`) }), false},
		{"payload with &", with(func(c *Change) { c.Payload = json.RawMessage(`"a&b"`) }), false},
		{"payload with U+2028", with(func(c *Change) { c.Payload = json.RawMessage("\"a\u2028b\"") }), false},
		{"invalid payload", with(func(c *Change) { c.Payload = json.RawMessage(`{"a":}`) }), false},
		{"two payload values", with(func(c *Change) { c.Payload = json.RawMessage(`1 2`) }), false},
		{"unicode device", with(func(c *Change) { c.Device = "édge" }), false},
		{"quote in kind", with(func(c *Change) { c.Kind = `a"b` }), false},
		{"vector", with(func(c *Change) { c.Vector = []float32{1} }), false},
		{"pos", with(func(c *Change) { c.Pos = 3 }), false},
		{"status", with(func(c *Change) { c.Status = StatusApplied }), false},
		{"reason", with(func(c *Change) { c.Reason = "r" }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.ok, checkAppendChangesJSON(t, tc.cs))
		})
	}
}

// FuzzAppendChangesJSON compares AppendChangesJSON with json.Marshal on
// two changes built from the inputs.
func FuzzAppendChangesJSON(f *testing.F) {
	f.Add("d", "memory.put", uint64(1), uint64(5), []byte(`{"a":[1,2.5,"x\"y\u00e9"],"b":null,"c":{"d":false}}`))
	f.Add("édge", "k", uint64(0), uint64(0), []byte(`"<&>"`))
	f.Add("d", "k", uint64(1), uint64(1), []byte(`[1, 2]`))
	f.Fuzz(func(t *testing.T, device, kind string, seq, hlc uint64, payload []byte) {
		c := Change{Device: device, Seq: seq, HLC: HLC(hlc), Kind: Kind(kind), ProjectID: "p", EntityID: ID(kind), Payload: payload}
		checkAppendChangesJSON(t, []Change{c, {Device: "d", Payload: json.RawMessage(`{}`)}})
	})
}

// BenchmarkEncodeChanges encodes a push batch's 128 put changes, as
// edgesync does, with json.Marshal and with AppendChangesJSON.
func BenchmarkEncodeChanges(b *testing.B) {
	m := Memory{ID: "0190f3a2-0000-7000-8000-0000000000aa", ProjectID: "0190f3a2-0000-7000-8000-000000000001",
		Content: strings.Repeat("agents remember what they learn offline and sync it later ", 5), EmbeddingModel: "bench",
		MemoryType: TypeFact, Domain: "general", Tags: []string{"bench"}, Usefulness: 0.5, Confidence: 0.9,
		State: StateUnconsolidated, Version: Stamp{HLC: 5, Device: "edge-1"}}
	payload, err := json.Marshal(&m)
	require.NoError(b, err)
	cs := make([]Change, 128)
	for i := range cs {
		cs[i] = Change{Device: "edge-1", Seq: uint64(i + 1), HLC: MakeHLC(1_780_000_000_000, uint16(i)), Kind: KindMemoryPut,
			ProjectID: m.ProjectID, EntityID: m.ID, Payload: payload}
	}
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(cs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendChangesJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			var ok bool
			if buf, ok = AppendChangesJSON(buf[:0], cs); !ok {
				b.Fatal("not ok")
			}
		}
	})
}
