package edgesync

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// checkParseMeta compares parseMeta with json.Unmarshal on b for message
// type T: when parseMeta says ok, json.Unmarshal must succeed with the
// same message. It returns parseMeta's ok.
func checkParseMeta[T any](t *testing.T, b []byte) bool {
	t.Helper()
	var got, want T
	ok := parseMeta(b, &got)
	err := json.Unmarshal(b, &want)
	if ok {
		require.NoError(t, err, "parseMeta accepted what json.Unmarshal rejects: %q", b)
		require.Equal(t, want, got, "%q", b)
	} else {
		var zero T
		require.Equal(t, zero, got, "a message parseMeta refused is left alone")
	}
	return ok
}

// TestParseMeta checks parseMeta against json.Unmarshal on what encodeMsg
// writes and on what it leaves to encoding/json.
func TestParseMeta(t *testing.T) {
	t.Parallel()
	put := core.Change{Device: "edge-1", Seq: 7, HLC: core.MakeHLC(1_780_000_000_000, 2), Kind: core.KindMemoryPut,
		ProjectID: "0190f3a2-0000-7000-8000-000000000001", EntityID: "0190f3a2-0000-7000-8000-0000000000aa",
		Payload: json.RawMessage(`{"id":"x","content":"a \"quoted\" naïve \u003cword\u003e","n":[1,-2.5e-3,true,null,{}],"o":{"a":[]}}`)}
	access := core.Change{Device: "edge-1", Seq: 8, HLC: 9, Kind: core.KindMemoryAccess, ProjectID: "p", EntityID: "e",
		Payload: json.RawMessage(`{"count":3,"at_ms":1780000000000}`)}
	meta := func(v any) string {
		f, err := encodeMsg(MsgPush, v)
		require.NoError(t, err)
		fr, err := DecodeFrame(f, FrameLimits{})
		require.NoError(t, err)
		return string(fr.Meta)
	}
	push := meta(&pushMsg{Batch: 3, Changes: []core.Change{put, access}})
	changes := meta(&changesMsg{Req: 4, Changes: []core.Change{access, put}, Next: 99, More: true})
	tests := []struct {
		name   string
		in     string
		isPush bool
		ok     bool
	}{
		{"push", push, true, true},
		{"changes", changes, false, true},
		{"empty push", meta(&pushMsg{Batch: 1, Changes: []core.Change{}}), true, true},
		{"null changes", meta(&pushMsg{Batch: 1}), true, true},
		{"last page", meta(&changesMsg{Req: 1, Changes: []core.Change{}, Next: -1}), false, true},
		{"unicode device", strings.Replace(push, `"edge-1"`, `"édge"`, 1), true, true},
		{"payload string", strings.Replace(push, `{"count":3,"at_ms":1780000000000}`, `"s\\u00e9\\n"`, 1), true, true},
		{"payload number", strings.Replace(push, `{"count":3,"at_ms":1780000000000}`, `-0.5E+7`, 1), true, true},
		{"payload null", strings.Replace(push, `{"count":3,"at_ms":1780000000000}`, `null`, 1), true, true},
		{"payload with invalid UTF-8", strings.Replace(push, `"at_ms"`, "\"at\xffms\"", 1), true, true},

		// Left to encoding/json, which accepts them.
		{"space", " " + push, true, false},
		{"space in payload", strings.Replace(push, `{"count":3,`, `{"count": 3,`, 1), true, false},
		{"escaped device", strings.Replace(push, `"edge-1"`, `"edge\\u002d1"`, 1), true, false},
		{"invalid UTF-8 in a field", strings.Replace(push, `"edge-1"`, "\"edge\xff\"", 1), true, false},
		{"fields reordered", `{"changes":[],"batch":3}`, true, false},
		{"extra field", strings.Replace(push, `"payload":{"count"`, `"pos":0,"payload":{"count"`, 1), true, false},

		// Rejected by both.
		{"empty", ``, true, false},
		{"truncated", push[:len(push)-1], true, false},
		{"trailing bytes", push + "x", true, false},
		{"bad payload", strings.Replace(push, `{"count":3,`, `{"count":03,`, 1), true, false},
		{"bad escape", strings.Replace(push, `\"quoted\"`, `\q`, 1), true, false},
		{"control in payload", strings.Replace(push, `naïve`, "na\tive", 1), true, false},
		{"negative seq", strings.Replace(push, `"seq":7`, `"seq":-7`, 1), true, false},
		{"fractional seq", strings.Replace(push, `"seq":7`, `"seq":7.5`, 1), true, false},
		{"seq overflow", strings.Replace(push, `"seq":7`, `"seq":18446744073709551616`, 1), true, false},
		{"bad bool", strings.Replace(changes, `"more":true`, `"more":1`, 1), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name != "push" && tt.name != "changes" {
				require.NotEqual(t, push, tt.in, "the case changes nothing")
				require.NotEqual(t, changes, tt.in, "the case changes nothing")
			}
			var ok bool
			if tt.isPush {
				ok = checkParseMeta[pushMsg](t, []byte(tt.in))
			} else {
				ok = checkParseMeta[changesMsg](t, []byte(tt.in))
			}
			require.Equal(t, tt.ok, ok, "%s", tt.in)
		})
	}
	t.Run("other messages", func(t *testing.T) {
		t.Parallel()
		var m pullMsg
		require.False(t, parseMeta([]byte(`{"req":1,"after":2,"limit":3}`), &m))
		require.False(t, parseMeta(nil, &m))
	})
}

// FuzzParseMeta is a differential fuzz target: parseMeta must agree with
// json.Unmarshal on whatever it accepts, for both message types.
func FuzzParseMeta(f *testing.F) {
	for _, v := range []any{
		&pushMsg{Batch: 2, Changes: []core.Change{{Device: "d", Seq: 1, HLC: 5, Kind: core.KindMemoryPut, ProjectID: "p",
			EntityID: "e", Payload: json.RawMessage(`{"a":[1,2.5,"x\"y"],"b":null,"c":{"d":false}}`)}}},
		&changesMsg{Req: 1, Changes: []core.Change{{Device: "d", Seq: 2, Kind: core.KindMemoryDelete, Payload: json.RawMessage(`{}`)}}, Next: 5},
	} {
		b, err := json.Marshal(v)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParseMeta[pushMsg](t, b)
		checkParseMeta[changesMsg](t, b)
	})
}

// BenchmarkDecodePushMeta compares decodeMsg's metadata decode of a push
// of 128 memory puts with encoding/json, which it used alone before
// parseMeta.
func BenchmarkDecodePushMeta(b *testing.B) {
	m := pushMsg{Batch: 9}
	for i := range 128 {
		p, err := core.EncodePayload(core.Memory{ID: core.ID("0190f3a2-0000-7000-8000-0000000000aa"), ProjectID: "0190f3a2-0000-7000-8000-000000000001",
			Content: strings.Repeat("the quick brown fox jumps over the lazy dog ", 12), EmbeddingModel: "athena-hash-768",
			MemoryType: core.TypeFact, Domain: "general", Tags: []string{"bench"}, State: core.StateUnconsolidated})
		require.NoError(b, err)
		m.Changes = append(m.Changes, core.Change{Device: "edge-1", Seq: uint64(i + 1), HLC: core.MakeHLC(1_780_000_000_000, 0),
			Kind: core.KindMemoryPut, ProjectID: "0190f3a2-0000-7000-8000-000000000001", EntityID: "0190f3a2-0000-7000-8000-0000000000aa", Payload: p})
	}
	meta, err := json.Marshal(&m)
	require.NoError(b, err)
	b.Run("parseMeta", func(b *testing.B) {
		b.SetBytes(int64(len(meta)))
		for b.Loop() {
			var got pushMsg
			if !parseMeta(meta, &got) {
				b.Fatal("not parsed")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(meta)))
		for b.Loop() {
			var got pushMsg
			if err := json.Unmarshal(meta, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestAppendMeta checks appendMeta against json.Marshal for the messages
// it writes, and that it leaves every other message to encoding/json.
func TestAppendMeta(t *testing.T) {
	t.Parallel()
	put := core.Change{Device: "edge-1", Seq: 7, HLC: core.MakeHLC(1_780_000_000_000, 2), Kind: core.KindMemoryPut,
		ProjectID: "p", EntityID: "e", Payload: json.RawMessage(`{"id":"x","content":"naïve"}`)}
	tests := []struct {
		name string
		v    any
		ok   bool
	}{
		{"push", &pushMsg{Batch: 3, Changes: []core.Change{put, put}}, true},
		{"push, no changes", &pushMsg{Batch: 0, Changes: []core.Change{}}, true},
		{"push, nil changes", &pushMsg{Batch: 1}, true},
		{"changes, more", &changesMsg{Req: 9, Changes: []core.Change{put}, Next: 1 << 40, More: true}, true},
		{"changes, last", &changesMsg{Req: 0, Changes: []core.Change{}, Next: -1}, true},
		{"push left to encoding/json", &pushMsg{Batch: 2, Changes: []core.Change{{Device: "é"}}}, false},
		{"changes left to encoding/json", &changesMsg{Changes: []core.Change{{Device: "<"}}}, false},
		{"ack", &ackMsg{Batch: 1}, false},
		{"pull", &pullMsg{Req: 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := appendMeta(nil, tc.v)
			require.Equal(t, tc.ok, ok)
			if !ok {
				require.Nil(t, got)
				return
			}
			want, err := json.Marshal(tc.v)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}
