package core

import (
	"encoding/json"
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
