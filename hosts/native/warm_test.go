package native

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/sqlitevec"
)

// TestOpenWarm opens a store with Options.Warm on a cold cache: SQLite
// runs interpreted, Warm gets the cache directory, and the store works.
// It is not parallel so that it runs before every parallel test: the
// process's first SQLite open decides its runtime, and no other test in
// this package opens SQLite.
func TestOpenWarm(t *testing.T) {
	ctx := t.Context()
	cache := t.TempDir()
	warmed := make(chan string, 2)
	opts := Options{CacheDir: cache, Readers: 1, Warm: func(dir string) error {
		warmed <- dir
		return errors.New("a failed warmer does not fail Open")
	}}
	sel := Selection{Kind: KindSQLite, Path: filepath.Join(t.TempDir(), "warm.db")}
	h, err := Open(ctx, sel, opts)
	require.NoError(t, err)
	defer func() { require.NoError(t, h.Close()) }()
	// With -count=2 the runtime is the one the first run set up, on its
	// own cache directory.
	require.Equal(t, sqlitevec.EngineInterpreter, h.Runtime.Engine)
	require.False(t, h.Runtime.Cached)
	require.NotEmpty(t, h.Runtime.CacheDir)
	require.Len(t, warmed, 1)
	require.Equal(t, h.Runtime.CacheDir, <-warmed)

	p, err := h.DB.CreateProject(ctx, core.Project{Name: "p", Path: "/p"})
	require.NoError(t, err)
	m, err := h.DB.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "hello interpreted world"})
	require.NoError(t, err)
	hits, err := h.DB.Search(ctx, core.Query{ProjectID: p.ID, Text: "interpreted", K: 1})
	require.NoError(t, err)
	require.Len(t, hits, 1)
	require.Equal(t, m.ID, hits[0].Memory.ID)
}

func TestInterpretable(t *testing.T) {
	t.Parallel()
	// sized makes a sparse file of n bytes.
	sized := func(t *testing.T, path string, n int64) {
		f, err := os.Create(path)
		require.NoError(t, err)
		require.NoError(t, f.Truncate(n))
		require.NoError(t, f.Close())
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  bool
	}{
		{name: "new store", setup: func(t *testing.T, path string) {}, want: true},
		{name: "small store", setup: func(t *testing.T, path string) { sized(t, path, 1<<20) }, want: true},
		{name: "large store", setup: func(t *testing.T, path string) { sized(t, path, interpretMaxBytes+1) }},
		{name: "large log", setup: func(t *testing.T, path string) {
			sized(t, path, interpretMaxBytes/2)
			sized(t, path+"-wal", interpretMaxBytes/2+1)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "s.db")
			tc.setup(t, path)
			require.Equal(t, tc.want, interpretable(path))
		})
	}
	require.True(t, interpretable(""), "in memory")
}

func TestWarmCommand(t *testing.T) {
	t.Parallel()
	args := []string{"__warm-cache"}
	cmd := warmCommand("/bin/athena-edge", args, "/cache")
	require.Equal(t, []string{"/bin/athena-edge", "__warm-cache", "/cache"}, cmd.Args)
	require.Equal(t, []string{"__warm-cache"}, args, "the caller's args are not appended to")
	require.Nil(t, cmd.Stdin)
	require.Nil(t, cmd.Stdout, "no pipe of the caller's is held open")
	require.Nil(t, cmd.Stderr)
	require.Equal(t, detachedAttr(), cmd.SysProcAttr)
}

func TestCacheWarmerStartError(t *testing.T) {
	t.Parallel()
	err := CacheWarmer(filepath.Join(t.TempDir(), "missing"), "__warm-cache")(t.TempDir())
	require.Error(t, err)
}

func TestWarmCacheNoDir(t *testing.T) {
	t.Parallel()
	require.ErrorIs(t, WarmCache(t.Context(), ""), ErrConfig)
}
