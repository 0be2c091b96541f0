package native

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// HTTPEmbedderConfig configures an OpenAI-compatible embedder
// (POST {URL}/v1/embeddings), which llama.cpp, Ollama, vLLM and OpenAI all
// serve. The zero value is not usable: URL, Model and Dim are required.
type HTTPEmbedderConfig struct {
	URL     string        // base URL, e.g. http://127.0.0.1:8080 (ATHENA_EMBED_URL)
	Model   string        // model name sent and stamped on vectors (ATHENA_EMBED_MODEL)
	Dim     int           // expected dimension (ATHENA_EMBED_DIM)
	Key     string        // optional bearer key (ATHENA_EMBED_KEY)
	Batch   int           // texts per request (default 64)
	Retries int           // retries of a failed request (default 3)
	Timeout time.Duration // per request (default 30s)
	Client  *http.Client  // default: a client with no overall timeout (Timeout applies per request)
	// Backoff is the first retry delay, doubled each retry with jitter
	// (default 200ms).
	Backoff time.Duration
}

// HTTPEmbedder calls an OpenAI-compatible /v1/embeddings endpoint. It is
// safe for concurrent use.
type HTTPEmbedder struct {
	cfg HTTPEmbedderConfig
}

var _ core.Embedder = (*HTTPEmbedder)(nil)

// ErrEmbedder reports an embedding server failure or a malformed answer.
var ErrEmbedder = errors.New("embedder")

// NewHTTPEmbedder validates cfg and returns an embedder.
func NewHTTPEmbedder(cfg HTTPEmbedderConfig) (*HTTPEmbedder, error) {
	if cfg.URL == "" || cfg.Model == "" || cfg.Dim <= 0 {
		return nil, fmt.Errorf("%w: the HTTP embedder needs a URL, a model and a dimension (ATHENA_EMBED_URL, ATHENA_EMBED_MODEL, ATHENA_EMBED_DIM)", ErrConfig)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	return &HTTPEmbedder{cfg: cfg}, nil
}

// EmbedderFromEnv returns the HTTP embedder when ATHENA_EMBED_URL is set,
// and the built-in offline embedder otherwise.
func EmbedderFromEnv(getenv func(string) string) (core.Embedder, error) {
	url := getenv("ATHENA_EMBED_URL")
	if url == "" {
		dim := 0
		if s := getenv("ATHENA_EMBED_DIM"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%w: ATHENA_EMBED_DIM=%q", ErrConfig, s)
			}
			dim = n
		}
		return core.NewHashEmbedder(core.HashEmbedderConfig{Dim: dim}), nil
	}
	dim, err := strconv.Atoi(getenv("ATHENA_EMBED_DIM"))
	if err != nil || dim <= 0 {
		return nil, fmt.Errorf("%w: ATHENA_EMBED_DIM=%q must be a positive integer with ATHENA_EMBED_URL", ErrConfig, getenv("ATHENA_EMBED_DIM"))
	}
	return NewHTTPEmbedder(HTTPEmbedderConfig{URL: url, Model: getenv("ATHENA_EMBED_MODEL"), Dim: dim, Key: getenv("ATHENA_EMBED_KEY")})
}

// Model returns the configured model name.
func (e *HTTPEmbedder) Model() string { return e.cfg.Model }

// Dim returns the configured dimension.
func (e *HTTPEmbedder) Dim() int { return e.cfg.Dim }

// Embed embeds texts in batches. Every vector is checked for dimension and
// finiteness, then normalized to unit length.
func (e *HTTPEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for lo := 0; lo < len(texts); lo += e.cfg.Batch {
		hi := min(lo+e.cfg.Batch, len(texts))
		vs, err := e.embedBatch(ctx, texts[lo:hi])
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	return out, nil
}

type embedRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embedResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// retryable marks a failure worth retrying (network, 429, 5xx).
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

func (e *HTTPEmbedder) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(embedRequest{Model: e.cfg.Model, Input: texts})
	if err != nil {
		return nil, err
	}
	delay := e.cfg.Backoff
	for attempt := 0; ; attempt++ {
		vs, err := e.post(ctx, body, len(texts))
		if err == nil {
			return vs, nil
		}
		var r retryable
		if !errors.As(err, &r) || attempt >= e.cfg.Retries {
			return nil, fmt.Errorf("embed %d texts with %s: %w", len(texts), e.cfg.Model, err)
		}
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay)))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay *= 2
	}
}

func (e *HTTPEmbedder) post(ctx context.Context, body []byte, n int) ([][]float32, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL+"/v1/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEmbedder, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if e.cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+e.cfg.Key)
	}
	resp, err := e.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, retryable{fmt.Errorf("%w: timed out after %s", ErrEmbedder, e.cfg.Timeout)}
		}
		return nil, retryable{fmt.Errorf("%w: %w", ErrEmbedder, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, retryable{fmt.Errorf("%w: read: %w", ErrEmbedder, err)}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return nil, retryable{fmt.Errorf("%w: HTTP %d: %s", ErrEmbedder, resp.StatusCode, snippet(raw))}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: HTTP %d: %s", ErrEmbedder, resp.StatusCode, snippet(raw))
	}
	var er embedResponse
	if err := json.Unmarshal(raw, &er); err != nil {
		return nil, fmt.Errorf("%w: malformed response: %w", ErrEmbedder, err)
	}
	if er.Error != nil {
		return nil, fmt.Errorf("%w: %s", ErrEmbedder, er.Error.Message)
	}
	if len(er.Data) != n {
		return nil, fmt.Errorf("%w: got %d embeddings for %d inputs", ErrEmbedder, len(er.Data), n)
	}
	out := make([][]float32, n)
	for _, d := range er.Data {
		if d.Index < 0 || d.Index >= n || out[d.Index] != nil {
			return nil, fmt.Errorf("%w: bad or repeated index %d", ErrEmbedder, d.Index)
		}
		if len(d.Embedding) != e.cfg.Dim {
			return nil, &core.FieldError{Field: "embedding", Err: core.ErrDimMismatch,
				Reason: fmt.Sprintf("the embedder %s returned %d dimensions, configured %d", e.cfg.Model, len(d.Embedding), e.cfg.Dim)}
		}
		v := make([]float32, len(d.Embedding))
		var norm float64
		for _, x := range d.Embedding {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("%w: non-finite value in embedding %d", ErrEmbedder, d.Index)
			}
			norm += x * x
		}
		if norm == 0 {
			return nil, fmt.Errorf("%w: zero embedding for input %d", ErrEmbedder, d.Index)
		}
		s := 1 / math.Sqrt(norm)
		for i, x := range d.Embedding {
			v[i] = float32(x * s)
		}
		out[d.Index] = v
	}
	return out, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
