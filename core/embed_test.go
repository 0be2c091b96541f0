package core

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
)

// Compile-time check that HashEmbedder implements Embedder.
var _ Embedder = (*HashEmbedder)(nil)

func embedTestNorm(v []float32) float64 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	return math.Sqrt(ss)
}

func embedTestCosine(a, b []float32) float64 {
	var dot float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
	}
	return dot / (embedTestNorm(a) * embedTestNorm(b))
}

func embedTestCheckUnit(t *testing.T, text string, v []float32, dim int) {
	t.Helper()
	if len(v) != dim {
		t.Fatalf("len(EmbedOne(%q)) = %d, want %d", text, len(v), dim)
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("EmbedOne(%q)[%d] = %v", text, i, x)
		}
	}
	if n := embedTestNorm(v); math.Abs(n-1) >= 1e-5 {
		t.Fatalf("|EmbedOne(%q)| = %v, want 1", text, n)
	}
}

// embedTestInputs returns texts that exercise the embedder's edge cases.
func embedTestInputs() []string {
	return []string{
		"",
		" ",
		"?!.,;",
		"a",
		"A",
		"go",
		"database optimization techniques",
		"The quick brown fox jumps over the lazy dog.",
		"Die Straße führt über die Brücke zum Café",
		"日本語のテキスト",
		"\xff\xfe invalid utf8 \x00",
		strings.Repeat("long ", 5000),
		strings.Repeat("x", 1000),
	}
}

func TestNewHashEmbedder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    *HashEmbedder
		dim  int
	}{
		{name: "zero config", e: NewHashEmbedder(HashEmbedderConfig{}), dim: DefaultEmbedDim},
		{name: "negative dim", e: NewHashEmbedder(HashEmbedderConfig{Dim: -3}), dim: DefaultEmbedDim},
		{name: "zero value struct", e: &HashEmbedder{}, dim: DefaultEmbedDim},
		{name: "nil pointer", e: nil, dim: DefaultEmbedDim},
		{name: "dim 1", e: NewHashEmbedder(HashEmbedderConfig{Dim: 1}), dim: 1},
		{name: "dim 64", e: NewHashEmbedder(HashEmbedderConfig{Dim: 64}), dim: 64},
		{name: "dim 384", e: NewHashEmbedder(HashEmbedderConfig{Dim: 384}), dim: 384},
		{name: "dim 768", e: NewHashEmbedder(HashEmbedderConfig{Dim: 768}), dim: 768},
		{name: "dim 1536", e: NewHashEmbedder(HashEmbedderConfig{Dim: 1536}), dim: 1536},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.e.Model(); got != "athena-hash-v1" {
				t.Fatalf("Model() = %q", got)
			}
			if got := tc.e.Dim(); got != tc.dim {
				t.Fatalf("Dim() = %d, want %d", got, tc.dim)
			}
			for _, text := range embedTestInputs() {
				embedTestCheckUnit(t, text, tc.e.EmbedOne(text), tc.dim)
			}
		})
	}
}

func TestHashEmbedderDeterministic(t *testing.T) {
	t.Parallel()
	a := NewHashEmbedder(HashEmbedderConfig{})
	b := NewHashEmbedder(HashEmbedderConfig{Dim: DefaultEmbedDim})
	for _, text := range embedTestInputs() {
		va, vb := a.EmbedOne(text), b.EmbedOne(text)
		for i := range va {
			if math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
				t.Fatalf("EmbedOne(%q)[%d]: %v vs %v", text, i, va[i], vb[i])
			}
		}
	}
}

func TestHashEmbedderGolden(t *testing.T) {
	t.Parallel()
	// Freezes athena-hash-v1: if this fails, vectors changed, and the model
	// name must change with them.
	e := NewHashEmbedder(HashEmbedderConfig{Dim: 16})
	tests := []struct {
		name string
		text string
		want string
	}{
		{name: "empty", text: "", want: embedGoldenEmpty},
		{name: "punctuation is empty", text: "...", want: embedGoldenEmpty},
		{name: "one word", text: "a", want: embedGoldenA},
		{name: "case and punctuation ignored", text: "A!", want: embedGoldenA},
		{name: "words and grams", text: "Hello, wörld db", want: embedGoldenWords},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := fmt.Sprintf("%.6f", e.EmbedOne(tc.text)); got != tc.want {
				t.Fatalf("EmbedOne(%q) = %s, want %s", tc.text, got, tc.want)
			}
		})
	}
}

// Golden vectors of athena-hash-v1 at Dim 16, printed with %.6f.
const (
	embedGoldenEmpty = "[0.000000 0.000000 0.000000 0.000000 0.000000 0.000000 0.000000 0.000000 " +
		"0.000000 0.000000 0.000000 0.000000 -1.000000 0.000000 0.000000 0.000000]"
	embedGoldenA = "[0.000000 0.000000 0.000000 0.000000 0.000000 0.000000 0.000000 0.000000 " +
		"0.000000 0.000000 -0.894427 0.000000 0.000000 -0.447214 0.000000 0.000000]"
	embedGoldenWords = "[0.000000 -0.288675 -0.288675 0.000000 -0.288675 0.000000 -0.288675 0.000000 " +
		"0.288675 -0.288675 0.577350 0.000000 0.288675 0.000000 0.288675 0.000000]"
)

func TestHashEmbedderEmptyIsFixed(t *testing.T) {
	t.Parallel()
	e := NewHashEmbedder(HashEmbedderConfig{Dim: 32})
	want := e.EmbedOne("")
	nonZero := 0
	for _, x := range want {
		if x != 0 {
			nonZero++
			if x != 1 && x != -1 {
				t.Fatalf("empty vector entry %v, want ±1", x)
			}
		}
	}
	if nonZero != 1 {
		t.Fatalf("empty vector has %d non-zero entries, want 1", nonZero)
	}
	for _, text := range []string{" ", "\t\n", "!!!", "\xff", "_-_"} {
		got := e.EmbedOne(text)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("EmbedOne(%q) differs from the empty-text vector", text)
			}
		}
	}
}

func TestHashEmbedderSimilarity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		anchor, near, far string
	}{
		{
			name:   "database",
			anchor: "database optimization techniques", near: "optimizing the database", far: "banana bread recipe",
		},
		{
			name:   "inflection",
			anchor: "running tests in parallel", near: "the test runner runs in parallel", far: "chocolate cake frosting",
		},
		{
			name:   "case and punctuation",
			anchor: "Deploy the API server!", near: "deploy api server", far: "watering the garden plants",
		},
	}
	for _, dim := range []int{64, 384, 768} {
		e := NewHashEmbedder(HashEmbedderConfig{Dim: dim})
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/dim%d", tc.name, dim), func(t *testing.T) {
				t.Parallel()
				a, n, f := e.EmbedOne(tc.anchor), e.EmbedOne(tc.near), e.EmbedOne(tc.far)
				near, far := embedTestCosine(a, n), embedTestCosine(a, f)
				if !(near > far) {
					t.Fatalf("cos(near) = %v <= cos(far) = %v", near, far)
				}
				if self := embedTestCosine(a, a); math.Abs(self-1) > 1e-5 {
					t.Fatalf("cos(self) = %v", self)
				}
			})
		}
	}
}

func TestHashEmbedderEmbed(t *testing.T) {
	t.Parallel()
	e := NewHashEmbedder(HashEmbedderConfig{Dim: 64})

	t.Run("matches EmbedOne in order", func(t *testing.T) {
		t.Parallel()
		got, err := e.Embed(context.Background(), embedTestInputs())
		if err != nil {
			t.Fatalf("Embed: %v", err)
		}
		if len(got) != len(embedTestInputs()) {
			t.Fatalf("len = %d, want %d", len(got), len(embedTestInputs()))
		}
		for i, text := range embedTestInputs() {
			want := e.EmbedOne(text)
			for j := range want {
				if got[i][j] != want[j] {
					t.Fatalf("Embed[%d] differs from EmbedOne(%q)", i, text)
				}
			}
		}
	})
	t.Run("empty input", func(t *testing.T) {
		t.Parallel()
		got, err := e.Embed(context.Background(), nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("Embed(nil) = %v, %v", got, err)
		}
	})
	t.Run("cancelled before start", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got, err := e.Embed(ctx, []string{"a"})
		if !errors.Is(err, context.Canceled) || got != nil {
			t.Fatalf("Embed = %v, %v; want nil, context.Canceled", got, err)
		}
	})
	t.Run("cancelled midway", func(t *testing.T) {
		t.Parallel()
		texts := make([]string, 10*hashCheckEveryN)
		for i := range texts {
			texts[i] = fmt.Sprintf("text number %d", i)
		}
		ctx := &embedTestCancelCtx{Context: context.Background(), after: 2}
		got, err := e.Embed(ctx, texts)
		if !errors.Is(err, context.Canceled) || got != nil {
			t.Fatalf("Embed = %d vectors, %v; want nil, context.Canceled", len(got), err)
		}
	})
}

// embedTestCancelCtx reports context.Canceled from its (after+1)th Err call on.
type embedTestCancelCtx struct {
	context.Context
	mu    sync.Mutex
	after int
	calls int
}

func (c *embedTestCancelCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls > c.after {
		return context.Canceled
	}
	return nil
}

func TestHashEmbedderConcurrent(t *testing.T) {
	t.Parallel()
	e := NewHashEmbedder(HashEmbedderConfig{Dim: 128})
	want := make([][]float32, len(embedTestInputs()))
	for i, text := range embedTestInputs() {
		want[i] = e.EmbedOne(text)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			got, err := e.Embed(context.Background(), embedTestInputs())
			if err != nil {
				errs <- err.Error()
				return
			}
			for i := range got {
				for j := range got[i] {
					if got[i][j] != want[i][j] {
						errs <- fmt.Sprintf("vector %d differs", i)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Fatal(msg)
	}
}

func TestHashEmbedderAllocs(t *testing.T) {
	// Not parallel: AllocsPerRun needs a quiet heap.
	e := NewHashEmbedder(HashEmbedderConfig{})
	text := "the quick brown fox jumps over the lazy dog"
	if got := testing.AllocsPerRun(100, func() { _ = e.EmbedOne(text) }); got > 1 {
		t.Fatalf("EmbedOne allocs = %v, want <= 1", got)
	}
}

func FuzzHashEmbedder(f *testing.F) {
	for _, s := range embedTestInputs() {
		if len(s) <= 64 { // huge seeds make minimization stall fuzzing
			f.Add(s, 16)
		}
	}
	f.Add("a b", 1)
	f.Add("x", 3)
	f.Fuzz(func(t *testing.T, text string, dim int) {
		dim = 1 + (dim&0x7fffffff)%1024
		e := NewHashEmbedder(HashEmbedderConfig{Dim: dim})
		v := e.EmbedOne(text)
		embedTestCheckUnit(t, text, v, dim)
		w := e.EmbedOne(text)
		for i := range v {
			if math.Float32bits(v[i]) != math.Float32bits(w[i]) {
				t.Fatalf("EmbedOne(%q) not deterministic", text)
			}
		}
	})
}

// embedBenchTexts returns n distinct texts of about 20 words.
func embedBenchTexts(n int) []string {
	words := strings.Fields("agent memory store keeps facts patterns decisions about the " +
		"project code tests deploy database query index vector search ranking fusion " +
		"consolidation window clock merge sync edge browser server conflict resolution")
	out := make([]string, n)
	for i := range out {
		var sb strings.Builder
		for j := range 20 {
			if j > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(words[(i*7+j*13+j*j)%len(words)])
		}
		fmt.Fprintf(&sb, " %d.", i)
		out[i] = sb.String()
	}
	return out
}

func BenchmarkHashEmbedder(b *testing.B) {
	texts := embedBenchTexts(1024)
	for _, dim := range []int{384, 768} {
		b.Run(fmt.Sprintf("dim%d", dim), func(b *testing.B) {
			e := NewHashEmbedder(HashEmbedderConfig{Dim: dim})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = e.EmbedOne(texts[i%len(texts)])
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "texts/s")
		})
	}
	b.Run("Embed_batch64_dim768", func(b *testing.B) {
		e := NewHashEmbedder(HashEmbedderConfig{})
		ctx := context.Background()
		batch := texts[:64]
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Embed(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "texts/s")
	})
}
