package sqlitevec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/embed" // sets sqlite3.Binary: SQLite 3.51 with FTS5
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// This file is the only place that touches the ncruces package globals
// sqlite3.RuntimeConfig and (through the embed import) sqlite3.Binary.
//
// ncruces compiles the SQLite Wasm module once per process, the first time
// a connection is opened, with whatever sqlite3.RuntimeConfig holds at that
// moment; later changes have no effect. So the configuration is set once,
// under runtimeOnce, by the first [Open] in the process: its
// Config.CacheDir decides the compilation cache for every later Open. A
// store opened with a different CacheDir reuses the process-wide runtime.
//
// A persistent compilation cache turns the ~0.6 s cold compile of SQLite
// into a few milliseconds of reading the cached machine code. wazero fails
// compilation outright when it cannot write a cache entry, and ncruces keeps
// the first compile error for the life of the process, so the cache
// directory is probed for writability first and the cache is dropped (never
// the Open) when the probe fails.

var runtimeState struct {
	once     sync.Once
	err      error
	cacheDir string // the cache directory in use, "" for none
}

// initRuntime configures and compiles SQLite once per process.
func initRuntime(cacheDir string) (usedCacheDir string, err error) {
	runtimeState.once.Do(func() {
		cfg := wazero.NewRuntimeConfig().
			WithMemoryLimitPages(4096). // 256 MiB per connection, as ncruces' default on 64-bit
			WithCoreFeatures(api.CoreFeaturesV2)
		if dir := resolveCacheDir(cacheDir); dir != "" {
			if cache, err := wazero.NewCompilationCacheWithDir(dir); err == nil && cacheWritable(dir) {
				cfg = cfg.WithCompilationCache(cache)
				runtimeState.cacheDir = dir
			}
		}
		sqlite3.RuntimeConfig = cfg
		if err := sqlite3.Initialize(); err != nil {
			runtimeState.err = fmt.Errorf("sqlitevec: compile sqlite: %w", err)
		}
	})
	return runtimeState.cacheDir, runtimeState.err
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
