package native_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeEmbedServer is a local OpenAI-compatible server. fail(n) decides the
// HTTP status of request n (0 = 200); dim is the dimension it returns.
func fakeEmbedServer(t *testing.T, dim int, fail func(n int64) int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Path != "/v1/embeddings" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if code := fail(n); code != 0 {
			http.Error(w, `{"error":{"message":"boom"}}`, code)
			return
		}
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		type item struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		}
		var resp struct {
			Data []item `json:"data"`
		}
		for i, s := range req.Input {
			v := make([]float64, dim)
			for j := range v {
				v[j] = float64((len(s)+j*7+i)%11) + 1
			}
			resp.Data = append(resp.Data, item{Index: i, Embedding: v})
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestHTTPEmbedder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		serverDim int
		fail      func(int64) int
		texts     int
		wantErr   error
		wantCalls int64
	}{
		{name: "ok batches", serverDim: 8, fail: func(int64) int { return 0 }, texts: 5, wantCalls: 3},
		{name: "retries 503 then succeeds", serverDim: 8, fail: func(n int64) int {
			if n <= 2 {
				return 503
			}
			return 0
		}, texts: 1, wantCalls: 3},
		{name: "gives up after retries", serverDim: 8, fail: func(int64) int { return 500 }, texts: 1, wantErr: native.ErrEmbedder, wantCalls: 3},
		{name: "400 is not retried", serverDim: 8, fail: func(int64) int { return 400 }, texts: 1, wantErr: native.ErrEmbedder, wantCalls: 1},
		{name: "wrong dimension is a clear error", serverDim: 7, fail: func(int64) int { return 0 }, texts: 1, wantErr: core.ErrDimMismatch, wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := fakeEmbedServer(t, tc.serverDim, tc.fail)
			e, err := native.NewHTTPEmbedder(native.HTTPEmbedderConfig{URL: srv.URL, Model: "fake", Dim: 8, Batch: 2, Retries: 2, Backoff: time.Millisecond})
			require.NoError(t, err)
			texts := make([]string, tc.texts)
			for i := range texts {
				texts[i] = "text " + string(rune('a'+i))
			}
			vs, err := e.Embed(t.Context(), texts)
			assert.Equal(t, tc.wantCalls, calls.Load())
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, vs, tc.texts)
			for _, v := range vs {
				require.Len(t, v, 8)
				require.NoError(t, core.CheckVector("embedding", v, 8))
				assert.InDelta(t, 1, core.Cosine(v, v), 1e-6)
			}
		})
	}
}

func TestHTTPEmbedderTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	e, err := native.NewHTTPEmbedder(native.HTTPEmbedderConfig{URL: srv.URL, Model: "m", Dim: 4, Timeout: 20 * time.Millisecond, Retries: -1})
	require.NoError(t, err)
	_, err = e.Embed(t.Context(), []string{"x"})
	require.ErrorIs(t, err, native.ErrEmbedder)
	assert.Contains(t, err.Error(), "timed out")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = e.Embed(ctx, []string{"x"})
	require.Error(t, err)
}

func TestEmbedderFromEnv(t *testing.T) {
	t.Parallel()
	e, err := native.EmbedderFromEnv(func(string) string { return "" })
	require.NoError(t, err)
	assert.Equal(t, core.HashEmbedderModel, e.Model())
	assert.Equal(t, 768, e.Dim())
	_, err = native.EmbedderFromEnv(envOf(map[string]string{"ATHENA_EMBED_URL": "http://x"}))
	require.True(t, errors.Is(err, native.ErrConfig))
	e, err = native.EmbedderFromEnv(envOf(map[string]string{"ATHENA_EMBED_URL": "http://x", "ATHENA_EMBED_MODEL": "nomic", "ATHENA_EMBED_DIM": "768"}))
	require.NoError(t, err)
	assert.Equal(t, "nomic", e.Model())
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
