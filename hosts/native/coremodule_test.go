package native_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/athena-edge/athena-edge/hosts/wasm/abi"
)

var coreWasm struct {
	once sync.Once
	b    []byte
	err  error
}

// testCache is shared by every test that loads the module: a cold
// compile of the module takes seconds (a minute under -race), a cached one
// milliseconds. See testCompilationCache.
var testCache = testCompilationCache()

// testCompilationCache is the on-disk cache sqlitevec uses by default
// (wazero keys entries by its version, the module and the config), so
// reruns and the other test binaries skip compiling; in memory if the
// directory cannot be used.
func testCompilationCache() wazero.CompilationCache {
	if base, err := os.UserCacheDir(); err == nil {
		if c, err := wazero.NewCompilationCacheWithDir(filepath.Join(base, "athena-edge", "wazero")); err == nil {
			return c
		}
	}
	return wazero.NewCompilationCache()
}

// buildCoreWasm builds hosts/wasm once per test binary, as
// scripts/build-wasm.sh does.
func buildCoreWasm(t testing.TB) []byte {
	t.Helper()
	coreWasm.once.Do(func() {
		dir, err := os.MkdirTemp("", "athena-core-wasm-")
		if err != nil {
			coreWasm.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "core.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-ldflags=-s -w",
			"-o", out, "github.com/athena-edge/athena-edge/hosts/wasm")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			coreWasm.err = errors.New("go build hosts/wasm: " + err.Error() + "\n" + string(b))
			return
		}
		if coreWasm.b, coreWasm.err = os.ReadFile(out); coreWasm.err != nil {
			return
		}
		// Compile once into the shared cache, so parallel tests do not
		// each compile the module.
		ctx := context.Background()
		m, err := native.LoadCoreModule(ctx, coreWasm.b, native.CoreModuleConfig{Cache: testCache})
		if err != nil {
			coreWasm.err = err
			return
		}
		coreWasm.err = m.Close(ctx)
	})
	require.NoError(t, coreWasm.err)
	return coreWasm.b
}

// loadCore loads the module with the shared compilation cache.
func loadCore(t *testing.T, cfg native.CoreModuleConfig) *native.CoreModule {
	t.Helper()
	ctx := context.Background()
	if cfg.Cache == nil {
		cfg.Cache = testCache
	}
	m, err := native.LoadCoreModule(ctx, buildCoreWasm(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close(ctx)) })
	return m
}

func TestCoreModuleDo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := loadCore(t, native.CoreModuleConfig{})

	var ops struct {
		ABIVersion int      `json:"abi_version"`
		Ops        []string `json:"ops"`
	}
	require.NoError(t, m.Do(ctx, abi.OpOps, nil, &ops))
	assert.Equal(t, abi.Version, ops.ABIVersion)
	assert.Equal(t, abi.Ops(), ops.Ops)

	var q struct{ Quality float64 }
	require.NoError(t, m.Do(ctx, abi.OpQuality, abi.QualityArgs{Usefulness: 0.5, Confidence: 1, AccessCount: 50}, &q))
	assert.Equal(t, core.Quality(0.5, 1, 50), q.Quality)

	var cos struct{ Cosine abi.Float }
	require.NoError(t, m.Do(ctx, abi.OpCosine, abi.CosineArgs{A: abi.Vector{1, 2, 3}, B: abi.Vector{3, 2, 1}}, &cos))
	assert.Equal(t, core.Cosine([]float32{1, 2, 3}, []float32{3, 2, 1}), float64(cos.Cosine))
}

func TestCoreModuleErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := loadCore(t, native.CoreModuleConfig{})

	tests := []struct {
		name string
		op   string
		args any
		want error
		code string
	}{
		{name: "illegal transition", op: abi.OpCheckTransition, args: abi.CheckTransitionArgs{From: core.StateSuperseded, To: core.StateConsolidated},
			want: core.ErrInvalidTransition, code: abi.CodeInvalidTransition},
		{name: "unknown state", op: abi.OpCheckTransition, args: abi.CheckTransitionArgs{From: "nope", To: core.StateConsolidated},
			want: core.ErrInvalid, code: abi.CodeInvalid},
		{name: "unknown op", op: "frobnicate", want: abi.ErrBadRequest, code: abi.CodeBadRequest},
		{name: "unknown field", op: abi.OpQuality, args: map[string]any{"usefulnes": 1}, want: abi.ErrBadRequest, code: abi.CodeBadRequest},
		{name: "missing corpus", op: abi.OpSearch, args: abi.SearchArgs{Corpus: 7}, want: core.ErrNotFound, code: abi.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := m.Do(ctx, tc.op, tc.args, nil)
			require.ErrorIs(t, err, tc.want)
			var ae *abi.Error
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.code, ae.Code)
		})
	}

	// A request that is not JSON at all is still answered.
	resp, err := m.Call(ctx, []byte("not json"))
	require.NoError(t, err)
	require.ErrorIs(t, abi.DecodeResponse(resp, nil), abi.ErrBadRequest)
	// So is an empty one.
	resp, err = m.Call(ctx, nil)
	require.NoError(t, err)
	require.ErrorIs(t, abi.DecodeResponse(resp, nil), abi.ErrBadRequest)
}

func TestLoadCoreModuleRejects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := native.LoadCoreModule(ctx, []byte("\x00asm\x01\x00\x00\x00"), native.CoreModuleConfig{})
	require.ErrorIs(t, err, core.ErrInvalid, "an empty module has none of the exports")
	_, err = native.LoadCoreModule(ctx, []byte("garbage"), native.CoreModuleConfig{})
	require.ErrorIs(t, err, core.ErrInvalid)
}

func TestCoreModuleClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m, err := native.LoadCoreModule(ctx, buildCoreWasm(t), native.CoreModuleConfig{Cache: testCache})
	require.NoError(t, err)
	require.NoError(t, m.Close(ctx))
	require.NoError(t, m.Close(ctx), "Close twice")
	_, err = m.Call(ctx, []byte(`{"op":"ops"}`))
	require.ErrorIs(t, err, core.ErrClosed)
}

func TestCoreModuleContextCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		m := loadCore(t, native.CoreModuleConfig{})
		_, err := m.Call(ctx, []byte(`{"op":"ops"}`))
		require.ErrorIs(t, err, context.Canceled)
		_, err = m.Call(context.Background(), []byte(`{"op":"ops"}`))
		require.NoError(t, err, "the module is still usable")
	})
	t.Run("interruptible", func(t *testing.T) {
		t.Parallel()
		m := loadCore(t, native.CoreModuleConfig{Interruptible: true})
		// doneLater passes Call's own check, so the call starts and
		// wazero sees the done ctx.
		_, err := m.Call(&doneLater{Context: ctx}, []byte(`{"op":"ops"}`))
		require.Error(t, err)
		_, err = m.Call(context.Background(), []byte(`{"op":"ops"}`))
		require.ErrorIs(t, err, core.ErrClosed, "an interrupted call closes the module")
	})
}

// doneLater is a done context whose first Err is nil, as if it were
// canceled just after Call checked it.
type doneLater struct {
	context.Context
	checked atomic.Bool
}

func (c *doneLater) Err() error {
	if !c.checked.Swap(true) {
		return nil
	}
	return c.Context.Err()
}

// TestCoreModuleInstances: instances that share a cache are independent;
// a corpus loaded in one is unknown to the other.
func TestCoreModuleInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := loadCore(t, native.CoreModuleConfig{}), loadCore(t, native.CoreModuleConfig{})
	var loaded struct{ Corpus uint32 }
	require.NoError(t, a.Do(ctx, abi.OpCorpusLoad, abi.CorpusArgs{Project: abi.CorpusProject{EmbeddingDim: 16},
		Memories: []core.Memory{{Content: "wazero runs the core"}}}, &loaded))
	require.NoError(t, a.Do(ctx, abi.OpSearch, abi.SearchArgs{Corpus: loaded.Corpus, Query: abi.Query{Text: "core"}}, nil))
	require.ErrorIs(t, b.Do(ctx, abi.OpSearch, abi.SearchArgs{Corpus: loaded.Corpus, Query: abi.Query{Text: "core"}}, nil), core.ErrNotFound)
}

// TestCoreModuleHammer calls one module from many goroutines: calls are
// serialized, and every answer matches its request.
func TestCoreModuleHammer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := loadCore(t, native.CoreModuleConfig{})
	const P, N = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, P)
	for p := range P {
		wg.Go(func() {
			for i := range N {
				var q struct{ Quality float64 }
				u := float64(p) / P
				if err := m.Do(ctx, abi.OpQuality, abi.QualityArgs{Usefulness: abi.Float(u), Confidence: 1, AccessCount: int64(i)}, &q); err != nil {
					errs <- err
					return
				}
				if q.Quality != core.Quality(u, 1, int64(i)) {
					errs <- errors.New("answer does not match the request")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
