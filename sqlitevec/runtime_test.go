package sqlitevec

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
)

// emptyModule is the smallest valid Wasm module: magic and version. It
// compiles in microseconds, which keeps the cache tests off SQLite's
// seconds-long compile.
var emptyModule = []byte("\x00asm\x01\x00\x00\x00")

func TestChooseEngine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		interpretCold, cached bool
		want                  Engine
	}{
		{false, false, EngineCompiler},
		{false, true, EngineCompiler},
		{true, false, EngineInterpreter},
		{true, true, EngineCompiler},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, chooseEngine(tc.interpretCold, tc.cached), "interpretCold=%v cached=%v", tc.interpretCold, tc.cached)
	}
}

func TestCompileCache(t *testing.T) {
	t.Parallel()
	// notDir is a path below a regular file: no cache can be made there.
	notDir := func(t *testing.T) string {
		f := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(f, nil, 0o600))
		return filepath.Join(f, "cache")
	}
	lockPath := func(dir string) string { return filepath.Join(dir, markerBase(emptyModule)+".lock") }
	tests := []struct {
		name         string
		setup        func(t *testing.T, dir string) string // returns the dir to compile into
		wantCompiled bool
		wantErr      bool
		wantMarker   bool
	}{
		{name: "cold", setup: func(t *testing.T, dir string) string { return dir }, wantCompiled: true, wantMarker: true},
		{name: "warm", setup: func(t *testing.T, dir string) string {
			require.NoError(t, writeMarker(dir, emptyModule))
			return dir
		}, wantMarker: true},
		{name: "another process compiling", setup: func(t *testing.T, dir string) string {
			require.NoError(t, os.WriteFile(lockPath(dir), []byte("1\n"), 0o600))
			return dir
		}},
		{name: "stale lock", setup: func(t *testing.T, dir string) string {
			require.NoError(t, os.WriteFile(lockPath(dir), []byte("1\n"), 0o600))
			old := time.Now().Add(-2 * lockStale)
			require.NoError(t, os.Chtimes(lockPath(dir), old, old))
			return dir
		}, wantCompiled: true, wantMarker: true},
		{name: "no dir", setup: func(t *testing.T, dir string) string { return "" }, wantErr: true},
		{name: "unusable dir", setup: func(t *testing.T, dir string) string { return notDir(t) }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := tc.setup(t, t.TempDir())
			compiled, err := compileCache(t.Context(), dir, emptyModule)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantCompiled, compiled)
			require.Equal(t, tc.wantMarker, cacheCompiled(dir, emptyModule))
			if tc.wantCompiled {
				require.NoFileExists(t, lockPath(dir), "the lock is released")
			}
		})
	}
}

func TestMarkerNamesBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, writeMarker(dir, emptyModule))
	require.True(t, cacheCompiled(dir, emptyModule))
	require.False(t, cacheCompiled(dir, sqlite3.Binary), "another binary is not compiled by the marker of one")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temp file is left")
}

// TestCompileCacheKey checks that CompileCache puts SQLite under the key a
// process's runtime looks up: after it, the entry is corrupted, and a
// compile with the runtime's configuration must then fail reading it
// rather than compile afresh.
func TestCompileCacheKey(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles SQLite")
	}
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	compiled, err := CompileCache(ctx, dir)
	require.NoError(t, err)
	require.True(t, compiled)
	require.True(t, cacheCompiled(dir, sqlite3.Binary))

	entries, err := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.NoError(t, os.WriteFile(entries[0], []byte("not machine code"), 0o600))

	cache, err := wazero.NewCompilationCacheWithDir(dir)
	require.NoError(t, err)
	r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(wazero.NewRuntimeConfig(), cache))
	defer r.Close(ctx)
	_, err = r.CompileModule(ctx, sqlite3.Binary)
	require.Error(t, err, "the runtime looked up the entry CompileCache wrote")
}
