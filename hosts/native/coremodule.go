package native

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/wasm/abi"
)

// DefaultCoreMemoryLimitPages caps the core module's linear memory: 4096
// pages of 64 KiB, 256 MiB.
const DefaultCoreMemoryLimitPages = 4096

// CoreModuleConfig configures [LoadCoreModule]. The zero value works.
type CoreModuleConfig struct {
	// Cache is a wazero compilation cache shared between loads, for
	// example wazero.NewCompilationCache() or
	// wazero.NewCompilationCacheWithDir(dir). Nil compiles the module on
	// every load. The caller owns the cache and closes it after the
	// modules that use it.
	Cache wazero.CompilationCache
	// MemoryLimitPages caps the module's memory, in 64 KiB pages
	// (DefaultCoreMemoryLimitPages if 0).
	MemoryLimitPages uint32
	// Stdout and Stderr receive the module's output (the Go runtime prints
	// a fatal error to stderr). Nil discards it.
	Stdout, Stderr io.Writer
	// Interruptible makes a done ctx abort a call that is running, which
	// then closes the module. It costs: wazero checks for it at every
	// function entry and loop, which made calls about 3x slower in our
	// benchmarks. Without it (the default), ctx is checked before each
	// call and a running call always finishes.
	Interruptible bool
}

// CoreModule is a running instance of the core wasm module built from
// hosts/wasm, with its own wazero Runtime. It is safe for concurrent use:
// calls are serialized, since the module is single-threaded. Close it when
// done.
type CoreModule struct {
	mu        sync.Mutex
	r         wazero.Runtime
	mod       api.Module
	malloc    api.Function
	free      api.Function
	call      api.Function
	closeOnce sync.Once
	closed    bool
}

// LoadCoreModule compiles (or takes from cfg.Cache) and instantiates the
// core module in wasmBytes as a WASI reactor, and checks its ABI version.
// It returns an error wrapping core.ErrInvalid if the bytes are not a core
// module of ABI [abi.Version].
func LoadCoreModule(ctx context.Context, wasmBytes []byte, cfg CoreModuleConfig) (*CoreModule, error) {
	if cfg.MemoryLimitPages == 0 {
		cfg.MemoryLimitPages = DefaultCoreMemoryLimitPages
	}
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(cfg.MemoryLimitPages).
		WithCoreFeatures(api.CoreFeaturesV2).
		WithCloseOnContextDone(cfg.Interruptible)
	if cfg.Cache != nil {
		rc = rc.WithCompilationCache(cfg.Cache)
	}
	r := wazero.NewRuntimeWithConfig(ctx, rc)
	m, err := instantiateCore(ctx, r, wasmBytes, cfg)
	if err != nil {
		return nil, errors.Join(err, r.Close(ctx))
	}
	return m, nil
}

func instantiateCore(ctx context.Context, r wazero.Runtime, wasmBytes []byte, cfg CoreModuleConfig) (*CoreModule, error) {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		return nil, fmt.Errorf("native: core module: wasi: %w", err)
	}
	compiled, err := r.CompileModule(ctx, wasmBytes)
	if err != nil {
		return nil, fmt.Errorf("native: core module: compile: %w: %w", core.ErrInvalid, err)
	}
	for _, name := range []string{abi.ExportMalloc, abi.ExportFree, abi.ExportCall, abi.ExportABIVersion, abi.StartFunction} {
		if _, ok := compiled.ExportedFunctions()[name]; !ok {
			return nil, fmt.Errorf("native: core module: %w: no export %q (not built from hosts/wasm with -buildmode=c-shared?)", core.ErrInvalid, name)
		}
	}
	mc := wazero.NewModuleConfig().
		WithName("athena-core").
		WithStartFunctions(abi.StartFunction). // a reactor: never _start
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	if cfg.Stdout != nil {
		mc = mc.WithStdout(cfg.Stdout)
	}
	if cfg.Stderr != nil {
		mc = mc.WithStderr(cfg.Stderr)
	}
	mod, err := r.InstantiateModule(ctx, compiled, mc)
	if err != nil {
		return nil, fmt.Errorf("native: core module: instantiate: %w", err)
	}
	m := &CoreModule{r: r, mod: mod,
		malloc: mod.ExportedFunction(abi.ExportMalloc),
		free:   mod.ExportedFunction(abi.ExportFree),
		call:   mod.ExportedFunction(abi.ExportCall)}
	v, err := mod.ExportedFunction(abi.ExportABIVersion).Call(ctx)
	if err != nil {
		return nil, fmt.Errorf("native: core module: abi_version: %w", err)
	}
	if uint32(v[0]) != abi.Version {
		return nil, fmt.Errorf("native: core module: %w: ABI version %d, this host speaks %d", core.ErrInvalid, uint32(v[0]), abi.Version)
	}
	return m, nil
}

// Call sends one request envelope ({"op": ..., "args": ...}, see package
// abi) to the module and returns the response envelope. It returns an
// error only when the call itself fails: ctx done before the call (or,
// with Interruptible, during it, which closes the module), a trap, or a
// closed module (core.ErrClosed). An op that fails returns a response with
// an "error" object and a nil error; [CoreModule.Do] turns that into a Go
// error.
func (m *CoreModule) Call(ctx context.Context, request []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("native: core module: %w", core.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("native: core module: %w", err)
	}
	res, err := m.malloc.Call(ctx, uint64(len(request)))
	if err != nil {
		return nil, m.fail("malloc", err)
	}
	reqPtr := uint32(res[0])
	if !m.mod.Memory().Write(reqPtr, request) {
		return nil, fmt.Errorf("native: core module: request block %d+%d outside memory", reqPtr, len(request))
	}
	res, err = m.call.Call(ctx, uint64(reqPtr), uint64(len(request)))
	if err != nil {
		return nil, m.fail("call", err)
	}
	respPtr, respLen := uint32(res[0]>>32), uint32(res[0])
	view, ok := m.mod.Memory().Read(respPtr, respLen)
	if !ok {
		return nil, fmt.Errorf("native: core module: response block %d+%d outside memory", respPtr, respLen)
	}
	resp := make([]byte, len(view)) // view aliases guest memory: copy before freeing
	copy(resp, view)
	if _, err := m.free.Call(ctx, uint64(respPtr)); err != nil {
		return nil, m.fail("free", err)
	}
	if _, err := m.free.Call(ctx, uint64(reqPtr)); err != nil {
		return nil, m.fail("free", err)
	}
	return resp, nil
}

// fail wraps a guest call error. After a trap or an exit the module is
// unusable, so later calls return core.ErrClosed.
func (m *CoreModule) fail(what string, err error) error {
	if m.mod.IsClosed() {
		m.closed = true
	}
	return fmt.Errorf("native: core module: %s: %w", what, err)
}

// Do runs op with args (marshaled to JSON; nil for none) and unmarshals
// the result into result (nil to discard it). An op that fails returns
// its *abi.Error, which matches the core sentinel of its code with
// errors.Is (core.ErrInvalid, core.ErrInvalidTransition, ...).
func (m *CoreModule) Do(ctx context.Context, op string, args, result any) error {
	req, err := abi.EncodeRequest(op, args)
	if err != nil {
		return err
	}
	resp, err := m.Call(ctx, req)
	if err != nil {
		return err
	}
	return abi.DecodeResponse(resp, result)
}

// Close closes the module and its Runtime. It is safe to call more than
// once; calls after Close return core.ErrClosed.
func (m *CoreModule) Close(ctx context.Context) error {
	var err error
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		err = m.r.Close(ctx)
	})
	return err
}
