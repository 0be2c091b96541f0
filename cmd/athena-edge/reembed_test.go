package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/athena-edge/athena-edge/hosts/native"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// cliCtx is cli with a context of the caller's.
func cliCtx(t *testing.T, ctx context.Context, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := runEnv(ctx, args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	return out.String(), errb.String(), err
}

var reembedContents = []string{
	"Database optimization techniques: add indexes",
	"banana bread recipe with walnuts",
	"the deploy script needs the staging credentials",
	"prefer table driven tests in Go",
	"garden: water the tomatoes every morning",
	"HNSW index parameters m and ef_construction",
	"retry the embedding server with exponential backoff",
}

// seedStore creates a SQLite store with the memories above (on the
// default embedder, athena-hash-v1 at 768) and returns their IDs by
// content.
func seedStore(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, c := range reembedContents {
		out, stderr, err := cli(t, env, "--json", "remember", c)
		require.NoError(t, err, stderr)
		var m struct{ ID string }
		require.NoError(t, json.Unmarshal([]byte(out), &m))
		ids[c] = m.ID
	}
	return ids
}

func sqliteEnv(t *testing.T) map[string]string {
	return map[string]string{"ATHENA_DB_PATH": filepath.Join(t.TempDir(), "m.db"), "PWD": "/nowhere"}
}

func with(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func parseReembed(t *testing.T, out string) reembedJSON {
	t.Helper()
	var r reembedJSON
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	return r
}

// recallTop returns the content of recall's best hit.
func recallTop(t *testing.T, env map[string]string, query string) string {
	t.Helper()
	out, stderr, err := cli(t, env, "--json", "recall", query, "-k", "1", "--semantic-only")
	require.NoError(t, err, stderr)
	var hits []native.HitJSON
	require.NoError(t, json.Unmarshal([]byte(out), &hits), out)
	require.Len(t, hits, 1)
	return hits[0].Content
}

// exportedMemories reads every memory of an export: its model and vector
// by ID.
func exportedMemories(t *testing.T, env map[string]string) map[string]core.Memory {
	t.Helper()
	out, stderr, err := cli(t, env, "export")
	require.NoError(t, err, stderr)
	got := map[string]core.Memory{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r core.Record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		if r.Memory != nil {
			got[string(r.Memory.ID)] = *r.Memory
		}
	}
	return got
}

func TestReembedHash256(t *testing.T) {
	t.Parallel()
	env := sqliteEnv(t)
	ids := seedStore(t, env)

	out, stderr, err := cli(t, env, "--json", "reembed", "--model", core.HashEmbedderModel, "--dim", "256", "--batch", "3")
	require.NoError(t, err, stderr)
	r := parseReembed(t, out)
	assert.Equal(t, reembedJSON{Project: "default", FromModel: core.HashEmbedderModel, FromDim: 768, ToModel: core.HashEmbedderModel,
		ToDim: 256, Memories: len(reembedContents), StagedMS: r.StagedMS, SwapMS: r.SwapMS}, r)
	assert.Contains(t, stderr, "ATHENA_EMBED_DIM=256", "the environment still embeds at 768: say how to fix it")

	// The environment's embedder is still 768-d: recall says so.
	_, _, err = cli(t, env, "recall", "optimization techniques")
	require.ErrorIs(t, err, core.ErrDimMismatch)
	assert.Equal(t, 1, code(err))

	env256 := with(env, "ATHENA_EMBED_DIM", "256")
	assert.Equal(t, reembedContents[0], recallTop(t, env256, "database optimization indexes"))
	assert.Equal(t, reembedContents[4], recallTop(t, env256, "watering tomatoes in the garden"))
	out, stderr, err = cli(t, env256, "--json", "get", ids[reembedContents[1]])
	require.NoError(t, err, stderr)
	var m native.MemoryJSON
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	assert.Equal(t, 256, m.EmbeddingDim)
	assert.Equal(t, core.HashEmbedderModel, m.EmbeddingModel)
	out, stderr, err = cli(t, env256, "remember", "a memory made after the move")
	require.NoError(t, err, stderr)
	out, stderr, err = cli(t, env256, "--json", "get", strings.TrimSpace(out))
	require.NoError(t, err, stderr)
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	assert.Equal(t, 256, m.EmbeddingDim)
	_, _, err = cli(t, env, "remember", "made with the old embedder")
	require.ErrorIs(t, err, core.ErrDimMismatch, "a clear error, not a silent drop")

	// Again: nothing to do.
	out, _, err = cli(t, env256, "reembed", "--model", core.HashEmbedderModel, "--dim", "256")
	require.NoError(t, err)
	assert.Contains(t, out, "nothing to do")
	out, _, err = cli(t, env256, "--json", "reembed", "--model", core.HashEmbedderModel, "--dim", "256")
	require.NoError(t, err)
	assert.True(t, parseReembed(t, out).Unchanged)
}

// TestReembedResumed interrupts a re-embed after its first batch, checks
// that search works between batches, resumes it, and compares the result
// with an uninterrupted run on a copy of the same store.
func TestReembedResumed(t *testing.T) {
	t.Parallel()
	envA := sqliteEnv(t)
	seedStore(t, envA)
	envB := sqliteEnv(t)
	raw, err := os.ReadFile(envA["ATHENA_DB_PATH"])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(envB["ATHENA_DB_PATH"], raw, 0o600))
	args := []string{"--json", "reembed", "--model", core.HashEmbedderModel, "--dim", "256", "--batch", "2"}

	// Interrupted after the first batch.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen []int
	_, _, err = cliCtx(t, context.WithValue(ctx, reembedHookKey{}, func(done, total int) {
		seen = append(seen, done)
		assert.Equal(t, len(reembedContents), total)
		if done > 0 {
			cancel()
		}
	}), envA, args...)
	require.ErrorIs(t, err, core.ErrReembedInterrupted)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []int{0, 2}, seen)
	assert.Equal(t, reembedContents[1], recallTop(t, envA, "banana bread"), "still on the old embedder")

	// Resumed; recall (which also records accesses) between batches.
	seen = nil
	out, stderr, err := cliCtx(t, context.WithValue(t.Context(), reembedHookKey{}, func(done, total int) {
		seen = append(seen, done)
		assert.Equal(t, reembedContents[5], recallTop(t, envA, "HNSW ef_construction"), "search during staging (after %d)", done)
	}), envA, args...)
	require.NoError(t, err, stderr)
	assert.Equal(t, []int{2, 4, 6, 7}, seen, "continues after the first batch")
	ra := parseReembed(t, out)
	assert.True(t, ra.Resumed)
	assert.Equal(t, len(reembedContents), ra.Memories)

	// Uninterrupted, on the copy.
	out, stderr, err = cli(t, envB, args...)
	require.NoError(t, err, stderr)
	rb := parseReembed(t, out)
	assert.False(t, rb.Resumed)
	ra.Resumed, ra.StagedMS, ra.SwapMS, rb.StagedMS, rb.SwapMS = false, 0, 0, 0, 0
	assert.Equal(t, rb, ra)

	a, b := exportedMemories(t, envA), exportedMemories(t, envB)
	require.Len(t, a, len(reembedContents))
	require.Equal(t, len(a), len(b))
	for id, ma := range a {
		mb, ok := b[id]
		require.True(t, ok, id)
		assert.Equal(t, mb.Content, ma.Content)
		assert.Equal(t, core.HashEmbedderModel, ma.EmbeddingModel)
		assert.Len(t, ma.Embedding, 256)
		assert.Equal(t, mb.Embedding, ma.Embedding, "%s: same vector, interrupted or not", ma.Content)
	}
	env256 := with(envA, "ATHENA_EMBED_DIM", "256")
	assert.Equal(t, reembedContents[3], recallTop(t, env256, "table driven tests"))
}

// fakeOpenAI is a local OpenAI-compatible embedding server that embeds
// with the built-in embedder at dim (so similar texts stay similar).
func fakeOpenAI(t *testing.T, model string, dim int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var texts atomic.Int64
	emb := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: dim})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != model {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		if r.Header.Get("Authorization") != "Bearer sekret" {
			http.Error(w, `{"error":{"message":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		type item struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		var resp struct {
			Data []item `json:"data"`
		}
		for i, s := range req.Input {
			resp.Data = append(resp.Data, item{Index: i, Embedding: emb.EmbedOne("fake " + s)})
		}
		texts.Add(int64(len(req.Input)))
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv, &texts
}

func TestReembedHTTP(t *testing.T) {
	t.Parallel()
	env := sqliteEnv(t)
	ids := seedStore(t, env)
	srv, texts := fakeOpenAI(t, "fake-embed-1", 24)
	envHTTP := with(env, "ATHENA_EMBED_URL", srv.URL, "ATHENA_EMBED_MODEL", "fake-embed-1", "ATHENA_EMBED_DIM", "24", "ATHENA_EMBED_KEY", "sekret")

	_, _, err := cli(t, envHTTP, "reembed", "--model", "fake-embed-1", "--dim", "32")
	require.Error(t, err)
	assert.Equal(t, 2, code(err), "--dim disagrees with ATHENA_EMBED_DIM")

	out, stderr, err := cli(t, envHTTP, "--json", "reembed", "--model", "fake-embed-1", "--batch", "4")
	require.NoError(t, err, stderr)
	r := parseReembed(t, out)
	assert.Equal(t, "fake-embed-1", r.ToModel)
	assert.Equal(t, 24, r.ToDim)
	assert.Equal(t, core.HashEmbedderModel, r.FromModel)
	assert.Equal(t, len(reembedContents), r.Memories)
	assert.EqualValues(t, len(reembedContents), texts.Load(), "each memory embedded once")
	assert.NotContains(t, stderr, "note:", "the environment already names the new embedder")

	out, stderr, err = cli(t, envHTTP, "--json", "get", ids[reembedContents[2]])
	require.NoError(t, err, stderr)
	var m native.MemoryJSON
	require.NoError(t, json.Unmarshal([]byte(out), &m))
	assert.Equal(t, 24, m.EmbeddingDim)
	assert.Equal(t, "fake-embed-1", m.EmbeddingModel)
	assert.Equal(t, reembedContents[2], recallTop(t, envHTTP, "deploy script staging credentials"))

	// Back to the built-in embedder; the note says how to configure it.
	out, stderr, err = cli(t, envHTTP, "reembed", "--model", core.HashEmbedderModel, "--dim", "64")
	require.NoError(t, err, stderr)
	assert.Contains(t, out, "from fake-embed-1/24 to athena-hash-v1/64")
	assert.Contains(t, stderr, "ATHENA_EMBED_DIM=64 and unset ATHENA_EMBED_URL")
}

func TestReembedUsage(t *testing.T) {
	t.Parallel()
	env := sqliteEnv(t)
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		contains string
	}{
		{"no model", env, nil, "reembed needs --model"},
		{"unknown model", env, []string{"--model", "gpt-embed"}, "athena-hash-v1"},
		{"model without url", with(env, "ATHENA_EMBED_MODEL", "gpt-embed", "ATHENA_EMBED_DIM", "8"), []string{"--model", "gpt-embed"},
			"ATHENA_EMBED_URL is not set"},
		{"other configured model", with(env, "ATHENA_EMBED_URL", "http://127.0.0.1:1", "ATHENA_EMBED_MODEL", "a", "ATHENA_EMBED_DIM", "8"),
			[]string{"--model", "b"}, `ATHENA_EMBED_MODEL="a"`},
		{"negative dim", env, []string{"--model", core.HashEmbedderModel, "--dim", "-1"}, "--dim"},
		{"huge dim", env, []string{"--model", core.HashEmbedderModel, "--dim", "5000"}, "--dim"},
		{"zero batch", env, []string{"--model", core.HashEmbedderModel, "--batch", "0"}, "--batch"},
		{"argument", env, []string{"--model", core.HashEmbedderModel, "extra"}, "no arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := cli(t, tc.env, append([]string{"reembed"}, tc.args...)...)
			require.Error(t, err)
			assert.Equal(t, 2, code(err), "%v", err)
			assert.Contains(t, err.Error(), tc.contains)
		})
	}
	out, _, err := cli(t, nil, "help", "reembed")
	require.NoError(t, err)
	assert.Contains(t, out, "--model")
	assert.Contains(t, fmt.Sprint(out), "resumable")
}
