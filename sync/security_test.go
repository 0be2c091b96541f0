//go:build !js

package edgesync_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// handshake dials with the given headers and returns the HTTP status (101
// when upgraded).
func handshake(t *testing.T, h *harness, url string, hdr http.Header) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil {
		_ = ws.CloseNow()
		return http.StatusSwitchingProtocols
	}
	require.NotNil(t, resp, "dial: %v", err)
	return resp.StatusCode
}

func TestHandshakeRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesync.ServerConfig{OriginPatterns: []string{"app.example"}, RevalidateInterval: 50 * time.Millisecond})
	ctx := context.Background()
	good := h.token("proj", "edge-a")
	revoked, tok, err := edgesync.CreateToken(ctx, h.db, "proj", "edge-r")
	require.NoError(t, err)
	_, err = edgesync.RevokeToken(ctx, h.db, tok.ID)
	require.NoError(t, err)
	bearer := func(s string) http.Header { return http.Header{"Authorization": {"Bearer " + s}} }
	with := func(hd http.Header, k, v string) http.Header { hd = hd.Clone(); hd.Set(k, v); return hd }

	tests := []struct {
		name string
		hdr  http.Header
		want int
	}{
		{"valid token", bearer(good), http.StatusSwitchingProtocols},
		{"allowlisted origin", with(bearer(good), "Origin", "https://app.example"), http.StatusSwitchingProtocols},
		{"cross-origin with a valid token", with(bearer(good), "Origin", "https://evil.example"), http.StatusForbidden},
		{"cross-origin without a token", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"missing token", http.Header{}, http.StatusUnauthorized},
		{"invalid token", bearer("ae_not-a-real-token"), http.StatusUnauthorized},
		{"garbage scheme", http.Header{"Authorization": {"Basic Zm9vOmJhcg=="}}, http.StatusUnauthorized},
		{"revoked token", bearer(revoked), http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, handshake(t, h, h.url(), tc.hdr))
		})
	}
	require.NotContains(t, h.logs.String(), good)
	require.NotContains(t, h.logs.String(), revoked)
}

func TestTicket(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesyncCfg())
	tok := h.token("proj", "edge-a")
	getTicket := func(token string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, h.ts.URL+edgesync.PathTicket, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := h.ts.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out struct{ Ticket string }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out.Ticket
	}
	code, _ := getTicket("ae_wrong")
	require.Equal(t, http.StatusUnauthorized, code)
	code, ticket := getTicket(tok)
	require.Equal(t, http.StatusOK, code)
	url := h.url() + "?ticket=" + ticket
	require.Equal(t, http.StatusSwitchingProtocols, handshake(t, h, url, nil))
	require.Equal(t, http.StatusUnauthorized, handshake(t, h, url, nil), "a ticket is single-use")

	// A client with only a TicketFunc syncs.
	e := h.edge("edge-b")
	c := edgesync.NewClient(edgesync.ClientConfig{DB: e.db, ServerURL: h.url(), TicketFunc: func(ctx context.Context) (string, error) {
		_, t := getTicket(e.token)
		return t, nil
	}})
	e.remember("via ticket")
	st, err := c.Sync(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, st.Applied)
	require.NotContains(t, h.logs.String(), ticket)
	require.NotContains(t, h.logs.String(), tok)
}

func TestRevokeClosesLiveConnection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesyncCfg())
	e := h.edge("edge-a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := dialRaw(t, h, e.token)
	r.hello()
	toks, err := edgesync.ListTokens(ctx, h.db)
	require.NoError(t, err)
	require.Len(t, toks, 1)
	start := time.Now()
	_, err = edgesync.RevokeToken(ctx, h.db, toks[0].ID[:8])
	require.NoError(t, err)
	for {
		typ, m, err := r.tryRecv()
		if err != nil {
			require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "%v", err)
			break
		}
		require.Equal(t, edgesync.MsgError, typ)
		require.EqualValues(t, edgesync.CodeUnauthorized, m["code"])
	}
	require.Less(t, time.Since(start), 5*time.Second)
	// And the client reports it as permanent.
	_, err = e.client.Sync(ctx)
	require.ErrorIs(t, err, edgesync.ErrUnauthorized)
	require.False(t, edgesync.Retryable(err))
}

func TestDeviceAndProjectComeFromToken(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesyncCfg())
	a, b := h.edge("edge-a"), h.edge("edge-b")
	b.remember("b's memory")
	a.remember("a's memory")

	// a's token sends b's changes: each is rejected, nothing is recorded
	// under b's name.
	r := dialRaw(t, h, a.token)
	r.hello()
	typ, m := r.push(1, ownChanges(t, b, 1, 2))
	require.Equal(t, edgesync.MsgAck, typ)
	for _, res := range results(t, m) {
		require.Equal(t, "rejected", res["status"])
		require.Contains(t, res["reason"], "token is for")
	}
	require.Empty(t, deviceLog(t, h.db, "edge-b"))
	require.Empty(t, deviceLog(t, h.db, "edge-a"))

	// b then syncs normally: its sequence was not disturbed.
	st := b.sync()
	require.Equal(t, 2, st.Applied)

	// a writes to a second project: those changes are rejected with a
	// reason, dead-lettered, and do not block the queue behind them.
	ctx := context.Background()
	other, err := a.db.CreateProject(ctx, core.Project{Name: "other", Path: "/other", EmbeddingModel: "test", EmbeddingDim: testDim})
	require.NoError(t, err)
	_, err = a.db.Remember(ctx, core.Memory{ProjectID: other.ID, Content: "elsewhere", Embedding: vec(), EmbeddingModel: "test"})
	require.NoError(t, err)
	last := a.remember("after the poison")
	st = a.sync()
	require.Equal(t, 2, st.Rejected)
	require.Equal(t, 3, st.Applied+st.Superseded)
	_, err = h.db.Memory(ctx, last)
	require.NoError(t, err)
	_, err = h.db.Project(ctx, other.ID)
	require.ErrorIs(t, err, core.ErrNotFound)
	status, err := a.client.Status(ctx)
	require.NoError(t, err)
	require.Len(t, status.Servers[0].Rejected, 2)
	require.Contains(t, status.Servers[0].Rejected[0].Reason, "project_id")
	require.Zero(t, status.Servers[0].Pending)
	requireExactlyOnce(t, h.db, a)
	// Rejected changes are not handed to other edges.
	b.sync()
	_, err = b.db.Project(ctx, other.ID)
	require.ErrorIs(t, err, core.ErrNotFound)
}

func TestOversizedMessageCloses1009(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesync.ServerConfig{ReadLimit: 64 << 10, Rate: -1})
	e := h.edge("edge-a")
	r := dialRaw(t, h, e.token)
	r.hello()
	big := make([]byte, 64<<10+1)
	big[0], big[1] = 0xAE, byte(edgesync.MsgPush)
	r.sendBytes(big)
	_, _, err := r.tryRecv()
	require.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "%v", err)
}

func TestConnectionCaps(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesync.ServerConfig{MaxConnsPerDevice: 1, MaxConns: 2, Rate: -1})
	a, b, c := h.token("proj", "a"), h.token("proj", "b"), h.token("proj", "c")
	bearer := func(s string) http.Header { return http.Header{"Authorization": {"Bearer " + s}} }
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, h.url(), &websocket.DialOptions{HTTPHeader: bearer(a)})
	require.NoError(t, err)
	defer ws.CloseNow()
	require.Equal(t, http.StatusTooManyRequests, handshake(t, h, h.url(), bearer(a)))
	ws2, _, err := websocket.Dial(ctx, h.url(), &websocket.DialOptions{HTTPHeader: bearer(b)})
	require.NoError(t, err)
	defer ws2.CloseNow()
	require.Equal(t, http.StatusServiceUnavailable, handshake(t, h, h.url(), bearer(c)))
}

// TestFloodIsThrottled: one device floods; it gets rate-limit errors while
// another device syncs normally.
func TestFloodIsThrottled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, edgesync.ServerConfig{Rate: 20, Burst: 20})
	flood, calm := h.edge("flood"), h.edge("calm")
	r := dialRaw(t, h, flood.token)
	r.hello()
	for i := range 200 {
		r.send(edgesync.MsgPull, map[string]any{"req": i + 1, "after": 0})
	}
	limited := 0
	for range 200 {
		typ, m := r.recv()
		if typ == edgesync.MsgError {
			require.EqualValues(t, edgesync.CodeRateLimited, m["code"])
			require.Greater(t, m["retry_after_ms"], 0.0)
			limited++
		}
	}
	require.Greater(t, limited, 100)
	calm.remember("still here")
	start := time.Now()
	st := calm.sync()
	require.Equal(t, 2, st.Applied)
	require.Less(t, time.Since(start), 2*time.Second)

	// The throttled device's own client waits it out and finishes.
	flood.remember("eventually")
	st = flood.sync()
	require.Equal(t, 2, st.Applied+st.Superseded)
}

func TestRetryableClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"rate limited", &edgesync.Error{Code: edgesync.CodeRateLimited}, true},
		{"seq gap", &edgesync.Error{Code: edgesync.CodeSeqGap}, true},
		{"unauthorized", edgesync.ErrUnauthorized, false},
		{"bad frame", &edgesync.Error{Code: edgesync.CodeBadFrame}, false},
		{"cancelled", context.Canceled, false},
		{"deadline", context.DeadlineExceeded, true},
		{"unavailable", edgesync.ErrUnavailable, true},
		{"invalid", core.ErrInvalid, false},
		{"unknown", errors.New("boom"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, edgesync.Retryable(tc.err))
		})
	}
	require.ErrorIs(t, &edgesync.Error{Code: edgesync.CodeSeqGap}, core.ErrSeqGap)
	require.ErrorIs(t, &edgesync.Error{Code: edgesync.CodeBadFrame}, core.ErrInvalid)
	require.True(t, strings.Contains((&edgesync.Error{Code: edgesync.CodeTooLarge, Message: "x"}).Error(), "too_large"))
}
