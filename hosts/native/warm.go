package native

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"

	"github.com/athena-edge/athena-edge/sqlitevec"
)

// A process's first SQLite open on a machine finds wazero's compilation
// cache cold, and compiling SQLite to machine code takes 2-4 s, far longer
// than a one-shot command's work. Such a command (Options.Warm set) runs
// SQLite on the interpreter instead, which starts in ~0.3 s, and hands the
// compile to a background process that fills the cache for the next one.

// interpretMaxBytes is the largest store (database plus write-ahead log)
// a one-shot command opens on the interpreter: beyond it, rebuilding the
// index from rows or a large result interpreted could cost more than
// compiling.
const interpretMaxBytes = 64 << 20

// interpretable reports whether the store at path is small enough to open
// on the interpreter. "" (in memory) and a missing file are empty.
func interpretable(path string) bool {
	if path == "" {
		return true
	}
	var size int64
	for _, p := range []string{path, path + "-wal"} {
		st, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return false
		default:
			size += st.Size()
		}
	}
	return size <= interpretMaxBytes
}

// CacheWarmer returns an [Options].Warm that starts `exe args... DIR` in
// the background to compile SQLite into the cache DIR; that process calls
// [WarmCache]. The process gets no standard streams, so a caller reading
// this one's output through a pipe sees EOF when this one exits, and on
// Unix it runs in a session of its own, so that the terminal's Ctrl-C or
// hangup for the command does not stop it. It is never waited for: it
// outlives the command, and init reaps it.
func CacheWarmer(exe string, args ...string) func(cacheDir string) error {
	return func(dir string) error {
		cmd := warmCommand(exe, args, dir)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("warm cache: %w", err)
		}
		return cmd.Process.Release()
	}
}

// warmCommand is the background process CacheWarmer starts.
func warmCommand(exe string, args []string, dir string) *exec.Cmd {
	cmd := exec.Command(exe, append(append([]string(nil), args...), dir)...)
	cmd.SysProcAttr = detachedAttr()
	return cmd
}

// WarmCache compiles SQLite into the compilation cache dir at a low CPU
// priority, unless the cache holds it already or another process is
// compiling it (see sqlitevec.CompileCache). It is the body of the process
// [CacheWarmer] starts.
func WarmCache(ctx context.Context, dir string) error {
	if dir == "" {
		return fmt.Errorf("%w: warm cache: no cache directory", ErrConfig)
	}
	lowerPriority()
	if _, err := sqlitevec.CompileCache(ctx, dir); err != nil {
		return fmt.Errorf("warm cache: %w", err)
	}
	return nil
}
