package sqlitevec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/embed" // sets sqlite3.Binary: SQLite 3.51 with FTS5
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// This file is the only place that touches the ncruces package globals
// sqlite3.RuntimeConfig and (through the embed import) sqlite3.Binary.
//
// ncruces compiles the SQLite Wasm module once per process, the first time
// a connection is opened, with whatever sqlite3.RuntimeConfig holds at that
// moment; later changes have no effect. So the configuration is set once,
// under runtimeState.once, by the first [InitRuntime] or [Open] in the
// process: its CacheDir decides the compilation cache for every later Open.
// A store opened with a different CacheDir reuses the process-wide runtime.
//
// A persistent compilation cache turns the cold compile of SQLite (2-4 s
// on a busy two-core machine) into ~0.1 s of reading the cached machine
// code. wazero fails compilation outright when it cannot write a cache
// entry, and ncruces keeps the first compile error for the life of the
// process, so the cache directory is probed for writability first and the
// cache is dropped (never the Open) when the probe fails.
//
// On a cold cache a one-shot process can instead run SQLite on wazero's
// interpreter (RuntimeConfig.InterpretCold): it starts in ~0.3 s but runs
// SQL several times slower, which a command doing a few statements on a
// small store does not notice, while another process fills the cache with
// [CompileCache]. Whether the cache is warm is told by a marker file
// written after SQLite was compiled into it (see markerName), because
// wazero's own entry names hash in CPU feature bits it does not export.

// Engine is how a process runs SQLite's Wasm.
type Engine string

const (
	// EngineCompiler runs machine code, compiled in the process or read
	// from the compilation cache.
	EngineCompiler Engine = "compiler"
	// EngineInterpreter runs wazero's interpreter: nothing to compile, but
	// SQL runs several times slower.
	EngineInterpreter Engine = "interpreter"
)

// RuntimeConfig configures [InitRuntime]. The zero value is what [Open]
// uses when nothing initialized the runtime before it.
type RuntimeConfig struct {
	// CacheDir is the compilation cache, as Config.CacheDir.
	CacheDir string
	// InterpretCold runs SQLite on the interpreter when the cache holds no
	// SQLite compiled by this build: it is cold, disabled or unusable. It
	// suits a process that opens a small store for a few statements and
	// exits; a long-running one should compile, which also fills the cache.
	InterpretCold bool
}

// RuntimeInfo describes the process's SQLite runtime.
type RuntimeInfo struct {
	Engine Engine
	// CacheDir is the usable compilation cache, "" for none. With
	// EngineCompiler the process runs the machine code cached there; with
	// EngineInterpreter it is where [CompileCache] would put it.
	CacheDir string
	// Cached reports whether the cache held SQLite compiled by this build
	// when the runtime was set up (a warm start).
	Cached bool
}

var runtimeState struct {
	once sync.Once
	info RuntimeInfo
	err  error
}

// InitRuntime sets up the process-wide SQLite runtime unless it is set up
// already, and describes it: the first InitRuntime or [Open] in a process
// decides, and later calls return that runtime's description. Setting up
// compiles SQLite unless the cache holds it or cfg.InterpretCold applies.
// It is safe for concurrent use.
func InitRuntime(cfg RuntimeConfig) (RuntimeInfo, error) {
	runtimeState.once.Do(func() {
		runtimeState.info, runtimeState.err = setupRuntime(cfg)
	})
	return runtimeState.info, runtimeState.err
}

// initRuntime sets up the runtime for Open and returns the compilation
// cache in use, "" for none.
func initRuntime(cacheDir string) (string, error) {
	info, err := InitRuntime(RuntimeConfig{CacheDir: cacheDir})
	if info.Engine != EngineCompiler {
		return "", err
	}
	return info.CacheDir, err
}

func setupRuntime(cfg RuntimeConfig) (RuntimeInfo, error) {
	var info RuntimeInfo
	var cache wazero.CompilationCache
	if dir := resolveCacheDir(cfg.CacheDir); dir != "" {
		if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil && cacheWritable(dir) {
			cache, info.CacheDir = c, dir
			info.Cached = cacheCompiled(dir, sqlite3.Binary)
		}
	}
	info.Engine = chooseEngine(cfg.InterpretCold, info.Cached)
	if info.Engine == EngineInterpreter {
		sqlite3.RuntimeConfig = runtimeConfig(wazero.NewRuntimeConfigInterpreter(), nil)
	} else {
		sqlite3.RuntimeConfig = runtimeConfig(wazero.NewRuntimeConfig(), cache)
	}
	if err := sqlite3.Initialize(); err != nil {
		return info, fmt.Errorf("sqlitevec: compile sqlite: %w", err)
	}
	if info.Engine == EngineCompiler && info.CacheDir != "" && !info.Cached {
		// This process compiled SQLite into the cache: say so for the
		// next one. A failure only costs that process the interpreter.
		_ = writeMarker(info.CacheDir, sqlite3.Binary)
	}
	return info, nil
}

// chooseEngine picks the interpreter only when asked to and no compiled
// SQLite is cached.
func chooseEngine(interpretCold, cached bool) Engine {
	if interpretCold && !cached {
		return EngineInterpreter
	}
	return EngineCompiler
}

// runtimeConfig is the one wazero configuration SQLite runs with. A
// compile by CompileCache must use it too, so that its cache entry is the
// one a process's runtime looks up. The compiler's base is
// wazero.NewRuntimeConfig, which falls back to the interpreter on a
// platform wazero cannot compile for.
func runtimeConfig(base wazero.RuntimeConfig, cache wazero.CompilationCache) wazero.RuntimeConfig {
	cfg := base.
		WithMemoryLimitPages(4096). // 256 MiB per connection, as ncruces' default on 64-bit
		WithCoreFeatures(api.CoreFeaturesV2)
	if cache != nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	return cfg
}

// CompileCache compiles SQLite into the compilation cache dir (resolved
// as Config.CacheDir) for later processes, in a wazero runtime of its own:
// the process's SQLite runtime is untouched. It reports whether it
// compiled: false without an error when the cache already holds SQLite or
// another process is compiling it. It is meant for a background process,
// and safe for concurrent use by processes: wazero publishes a cache entry
// by renaming a complete file, and a lock file keeps a second process from
// doing the work twice.
func CompileCache(ctx context.Context, dir string) (bool, error) {
	return compileCache(ctx, resolveCacheDir(dir), sqlite3.Binary)
}

// lockStale is the age after which a compile lock is taken to be left by
// a process that died: compiling takes seconds.
const lockStale = 10 * time.Minute

func compileCache(ctx context.Context, dir string, bin []byte) (compiled bool, err error) {
	if dir == "" {
		return false, errors.New("sqlitevec: compile cache: no cache directory")
	}
	if cacheCompiled(dir, bin) {
		return false, nil
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return false, fmt.Errorf("sqlitevec: compile cache: %w", err)
	}
	unlock, ok, err := lockCompile(dir, bin)
	if err != nil || !ok {
		return false, err
	}
	defer unlock()
	r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(wazero.NewRuntimeConfig(), cache))
	defer r.Close(ctx)
	// The worker count does not enter the cache key; half the CPUs leave
	// the rest to the foreground.
	cctx := experimental.WithCompilationWorkers(ctx, max(1, runtime.GOMAXPROCS(0)/2))
	if _, err := r.CompileModule(cctx, bin); err != nil {
		return false, fmt.Errorf("sqlitevec: compile cache: %w", err)
	}
	if err := writeMarker(dir, bin); err != nil {
		return false, fmt.Errorf("sqlitevec: compile cache: %w", err)
	}
	return true, nil
}

// lockCompile takes the compile lock of bin in dir. ok is false when
// another process holds it.
func lockCompile(dir string, bin []byte) (unlock func(), ok bool, err error) {
	name := filepath.Join(dir, markerBase(bin)+".lock")
	for range 2 {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
			return func() { _ = os.Remove(name) }, true, f.Close()
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, fmt.Errorf("sqlitevec: compile cache: lock: %w", err)
		}
		st, serr := os.Stat(name)
		if serr != nil || time.Since(st.ModTime()) < lockStale {
			return nil, false, nil // held, or just released: let the holder finish
		}
		_ = os.Remove(name) // stale: retry once
	}
	return nil, false, nil
}

// markerBase names SQLite binary bin as compiled by this build's wazero
// for this platform: the things wazero's cache directory and key depend
// on, except CPU features, which it does not export. A machine that shares
// its cache with another CPU may then find the marker but miss the entry,
// and compile in the process as if there were no marker.
func markerBase(bin []byte) string {
	h := sha256.New()
	h.Write(bin)
	fmt.Fprintf(h, "\x00%s\x00%s\x00%s", wazeroVersion(), runtime.GOARCH, runtime.GOOS)
	return "sqlite-" + hex.EncodeToString(h.Sum(nil)[:8])
}

func markerPath(dir string, bin []byte) string {
	return filepath.Join(dir, markerBase(bin)+".compiled")
}

// cacheCompiled reports whether the cache dir holds bin compiled by this
// build: one stat.
func cacheCompiled(dir string, bin []byte) bool {
	st, err := os.Stat(markerPath(dir, bin))
	return err == nil && st.Mode().IsRegular()
}

// writeMarker records that bin is compiled into dir. It is written after
// wazero published the entry, so a reader that sees it finds the entry;
// its content is for people.
func writeMarker(dir string, bin []byte) error {
	text := fmt.Sprintf("SQLite compiled by wazero %s for %s/%s\n", wazeroVersion(), runtime.GOARCH, runtime.GOOS)
	f, err := os.CreateTemp(dir, ".marker-*")
	if err != nil {
		return err
	}
	_, werr := f.WriteString(text)
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), markerPath(dir, bin)); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return nil
}

// wazeroVersion is the wazero version this binary was built with, found
// the way wazero finds it for its cache directory name.
func wazeroVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/tetratelabs/wazero" && dep.Version != "" && dep.Version != "(devel)" {
				return dep.Version
			}
		}
	}
	return "dev"
}

// resolveCacheDir applies the CacheDir defaults: "" means the user cache
// directory, "-" disables the cache.
func resolveCacheDir(dir string) string {
	switch dir {
	case "-":
		return ""
	case "":
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(base, "athena-edge", "wazero")
	}
	return dir
}

// cacheWritable reports whether dir and the version directories wazero
// created in it accept new files.
func cacheWritable(dir string) bool {
	dirs := []string{dir}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), "wazero-") {
				dirs = append(dirs, filepath.Join(dir, e.Name()))
			}
		}
	}
	for _, d := range dirs {
		f, err := os.CreateTemp(d, ".probe-*")
		if err != nil {
			return false
		}
		name := f.Name()
		errs := errors.Join(f.Close(), os.Remove(name))
		if errs != nil {
			return false
		}
	}
	return true
}
