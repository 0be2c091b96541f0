//go:build !js

package edgesync_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// rawConn speaks the protocol frame by frame, to send what a well-behaved
// client never would.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, h *harness, token string) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, h.url(), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	require.NoError(t, err)
	ws.SetReadLimit(4 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &rawConn{t: t, ws: ws}
}

func (r *rawConn) send(typ edgesync.MsgType, meta any, vecs ...[]float32) {
	r.t.Helper()
	b, err := json.Marshal(meta)
	require.NoError(r.t, err)
	r.sendBytes(edgesync.AppendFrame(nil, &edgesync.Frame{Type: typ, Meta: b, Vectors: vecs}))
}

func (r *rawConn) sendBytes(b []byte) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(r.t, r.ws.Write(ctx, websocket.MessageBinary, b))
}

// recv returns the next non-poke frame and its metadata decoded into a map.
func (r *rawConn) recv() (edgesync.MsgType, map[string]any) {
	r.t.Helper()
	for {
		typ, m, err := r.tryRecv()
		require.NoError(r.t, err)
		if typ != edgesync.MsgPoke {
			return typ, m
		}
	}
}

func (r *rawConn) tryRecv() (edgesync.MsgType, map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := r.ws.Read(ctx)
	if err != nil {
		return 0, nil, err
	}
	f, err := edgesync.DecodeFrame(b, edgesync.FrameLimits{MaxMeta: 4 << 20})
	require.NoError(r.t, err)
	var m map[string]any
	require.NoError(r.t, json.Unmarshal(f.Meta, &m))
	return f.Type, m, nil
}

func (r *rawConn) hello(versions ...int) map[string]any {
	r.t.Helper()
	if versions == nil {
		versions = []int{edgesync.ProtocolVersion}
	}
	r.send(edgesync.MsgHello, map[string]any{"versions": versions})
	typ, m := r.recv()
	require.Equal(r.t, edgesync.MsgWelcome, typ, "%v", m)
	return m
}

// ownChanges returns the edge's own changes seq from..to.
func ownChanges(t *testing.T, e *edge, from, to uint64) []core.Change {
	t.Helper()
	var out []core.Change
	cs, err := e.db.Changes(context.Background(), 0, 1000, "")
	require.NoError(t, err)
	for _, c := range cs {
		if c.Device == e.db.Device() && c.Seq >= from && c.Seq <= to {
			out = append(out, c)
		}
	}
	require.Len(t, out, int(to-from+1))
	return out
}

func (r *rawConn) push(batch uint64, cs []core.Change) (edgesync.MsgType, map[string]any) {
	r.t.Helper()
	vecs := make([][]float32, len(cs))
	for i := range cs {
		vecs[i], cs[i].Vector = cs[i].Vector, nil
	}
	r.send(edgesync.MsgPush, map[string]any{"batch": batch, "changes": cs}, vecs...)
	return r.recv()
}

func results(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range m["results"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

func TestDuplicateAndReorderedFrames(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesyncCfg())
	e := h.edge("edge-a")
	for range 3 {
		e.remember("x")
	}
	r := dialRaw(t, h, e.token)
	w := r.hello()
	require.Equal(t, "edge-a", w["device"])
	require.Equal(t, string(e.project), w["project"])

	first, second := ownChanges(t, e, 1, 2), ownChanges(t, e, 3, 4)
	// Out of order: the gap is refused, nothing is applied.
	typ, m := r.push(2, second)
	require.Equal(t, edgesync.MsgError, typ)
	require.EqualValues(t, edgesync.CodeSeqGap, m["code"])
	require.EqualValues(t, 2, m["batch"])
	require.Empty(t, deviceLog(t, h.db, "edge-a"))

	typ, m = r.push(1, first)
	require.Equal(t, edgesync.MsgAck, typ)
	for _, res := range results(t, m) {
		require.Equal(t, "applied", res["status"])
	}
	// The same batch again, twice: duplicates, no effect.
	for range 2 {
		typ, m = r.push(1, ownChanges(t, e, 1, 2))
		require.Equal(t, edgesync.MsgAck, typ)
		for _, res := range results(t, m) {
			require.Equal(t, true, res["duplicate"])
		}
	}
	typ, m = r.push(2, ownChanges(t, e, 3, 4))
	require.Equal(t, edgesync.MsgAck, typ)
	require.Len(t, results(t, m), 2)
	// A stale batch overlapping the past: acked, the old part as duplicates.
	typ, m = r.push(3, ownChanges(t, e, 2, 4))
	require.Equal(t, edgesync.MsgAck, typ)
	for _, res := range results(t, m) {
		require.Equal(t, true, res["duplicate"])
	}
	require.Equal(t, []uint64{1, 2, 3, 4}, deviceLog(t, h.db, "edge-a"))

	// Unknown message types and garbage get error frames; the connection
	// survives.
	r.send(edgesync.MsgType(200), map[string]any{})
	typ, m = r.recv()
	require.Equal(t, edgesync.MsgError, typ)
	require.EqualValues(t, edgesync.CodeUnknownType, m["code"])
	r.sendBytes([]byte{0xAE, 3, 0xff})
	typ, m = r.recv()
	require.Equal(t, edgesync.MsgError, typ)
	require.EqualValues(t, edgesync.CodeBadFrame, m["code"])
	r.send(edgesync.MsgPull, map[string]any{"req": 9, "after": 0})
	typ, m = r.recv()
	require.Equal(t, edgesync.MsgChanges, typ)
	require.EqualValues(t, 9, m["req"])

	// The regular client never saw those acks: it resends, and every
	// change comes back as a duplicate.
	st := e.sync()
	require.Equal(t, 4, st.Pushed)
	require.Equal(t, 4, st.Duplicates)
	require.Zero(t, e.sync().Pushed)
	requireExactlyOnce(t, h.db, e)
}

func TestVersionNegotiation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesyncCfg())
	e := h.edge("edge-a")
	r := dialRaw(t, h, e.token)
	r.send(edgesync.MsgHello, map[string]any{"versions": []int{99, 100}})
	typ, m := r.recv()
	require.Equal(t, edgesync.MsgError, typ)
	require.EqualValues(t, edgesync.CodeUnsupportedVersion, m["code"])
	_, _, err := r.tryRecv()
	require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err))

	r = dialRaw(t, h, e.token)
	w := r.hello(99, 1)
	require.EqualValues(t, 1, w["version"])
}
