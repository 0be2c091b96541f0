package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/pgadapter"
	"github.com/athena-edge/athena-edge/sqlitevec"
)

// Options tune [Open]. The zero value works.
type Options struct {
	// Stderr receives the fallback notice when an implicit Postgres is
	// unreachable. Nil discards it.
	Stderr io.Writer
	// Device overrides the device ID. By default a SQLite edge keeps a
	// generated ID in a file beside the database (PATH.device), and a
	// Postgres server is "server-" + the host name.
	Device string
	// Embedder embeds text; nil means the built-in offline embedder
	// (core.HashEmbedder, 768 dimensions).
	Embedder core.Embedder
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// CacheDir is the wazero compilation cache (see sqlitevec.Config).
	CacheDir string
	// Readers is the number of SQLite reader connections (see
	// sqlitevec.Config; 0 means its default). Each one is a wasm
	// instance, so a one-shot command opens faster with 1.
	Readers int
	// PingTimeout bounds the reachability check of an implicit Postgres
	// before falling back. Default 3s.
	PingTimeout time.Duration
	// Warm, if not nil, is for a one-shot process doing a few statements:
	// when the compilation cache holds no compiled SQLite (it is cold or
	// unusable) and the store is small, SQLite runs on wazero's interpreter
	// instead of being compiled for seconds, and Warm is called with a
	// usable cache directory to fill it for the next process (see
	// [CacheWarmer]). It is the process's first SQLite open that decides
	// (see sqlitevec.InitRuntime). Nil compiles in the process, which fills
	// the cache too: right for a long-running process or a bulk command.
	Warm func(cacheDir string) error
}

// Host is an opened store with the process's clock and embedder, ready to
// use through DB. It is safe for concurrent use; Close it when done.
type Host struct {
	Selection Selection    // what was asked for (after a fallback, Kind is sqlite)
	FellBack  bool         // an implicit Postgres was unreachable, so SQLite was opened
	Backend   core.Backend // *sqlitevec.Store or *pgadapter.Store
	DB        *core.DB
	// Runtime is how the process runs SQLite; zero for Postgres.
	Runtime sqlitevec.RuntimeInfo
}

// Close closes the store.
func (h *Host) Close() error { return h.Backend.Close() }

// Open opens the selected store. An implicit Postgres that cannot be
// reached falls back to SQLite with a notice on opts.Stderr; an explicit
// one fails.
func Open(ctx context.Context, sel Selection, opts Options) (*Host, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Embedder == nil {
		opts.Embedder = core.NewHashEmbedder(core.HashEmbedderConfig{})
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 3 * time.Second
	}
	h := &Host{Selection: sel}
	switch sel.Kind {
	case KindPostgres:
		b, err := openPostgres(ctx, sel, opts)
		if err == nil {
			h.Backend = b
			break
		}
		if sel.Explicit {
			return nil, fmt.Errorf("open postgres at %s (%s): %w", sel.Where(), sel.Reason, err)
		}
		if opts.Stderr != nil {
			fmt.Fprintf(opts.Stderr, "athena-edge: postgres at %s is unreachable (%v); falling back to SQLite at %s\n",
				sel.Where(), shortErr(err), sel.Path)
		}
		h.FellBack, h.Selection.Kind, h.Selection.Reason = true, KindSQLite, "fallback: implicit postgres unreachable"
		fallthrough
	case KindSQLite:
		b, info, err := openSQLite(ctx, h.Selection.Path, opts)
		if err != nil {
			return nil, err
		}
		h.Backend, h.Runtime = b, info
	default:
		return nil, fmt.Errorf("%w: unknown backend kind %q", ErrConfig, sel.Kind)
	}
	device := opts.Device
	if device == "" {
		var err error
		if device, err = defaultDevice(h.Selection); err != nil {
			_ = h.Backend.Close()
			return nil, err
		}
	}
	h.DB = core.New(h.Backend, core.Config{
		Device:   device,
		Clock:    core.NewClock(core.ClockConfig{Now: opts.Now}),
		Embedder: opts.Embedder,
	})
	return h, nil
}

func shortErr(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func openPostgres(ctx context.Context, sel Selection, opts Options) (*pgadapter.Store, error) {
	pctx, cancel := context.WithTimeout(ctx, opts.PingTimeout)
	defer cancel()
	s, err := pgadapter.New(pctx, sel.Postgres)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(pctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(ctx context.Context, path string, opts Options) (*sqlitevec.Store, sqlitevec.RuntimeInfo, error) {
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, sqlitevec.RuntimeInfo{}, fmt.Errorf("open sqlite: %w", err)
		}
	}
	info, err := sqlitevec.InitRuntime(sqlitevec.RuntimeConfig{
		CacheDir:      opts.CacheDir,
		InterpretCold: opts.Warm != nil && interpretable(path),
	})
	if err != nil {
		return nil, info, fmt.Errorf("open sqlite at %s: %w", path, err)
	}
	if info.Engine == sqlitevec.EngineInterpreter && info.CacheDir != "" && opts.Warm != nil {
		// A warmer that fails to start costs the next process the
		// interpreter again, not this one anything.
		_ = opts.Warm(info.CacheDir)
	}
	s, err := sqlitevec.Open(ctx, sqlitevec.Config{Path: path, CacheDir: opts.CacheDir, Readers: opts.Readers})
	if err != nil {
		return nil, info, fmt.Errorf("open sqlite at %s: %w", path, err)
	}
	return s, info, nil
}

// DeviceID returns the device ID a store opened from sel uses (see
// Options.Device), creating it on first use.
func DeviceID(sel Selection) (string, error) { return defaultDevice(sel) }

// defaultDevice returns the store's device ID: for SQLite a random ID kept
// in PATH.device (created on first use), for Postgres "server-HOSTNAME".
func defaultDevice(sel Selection) (string, error) {
	if sel.Kind == KindPostgres {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "unknown"
		}
		return "server-" + h, nil
	}
	if sel.Path == "" {
		return "edge-" + string(core.NewID(time.Now())), nil
	}
	file := sel.Path + ".device"
	b, err := os.ReadFile(file)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read device id: %w", err)
	}
	// Publish atomically: write a private temp file, then hard-link it to
	// the final name. Link fails if another process got there first, and
	// then its ID wins, so two processes opening a new store at once agree.
	id := "edge-" + string(core.NewID(time.Now()))
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("write device id: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(id + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write device id: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write device id: %w", err)
	}
	if err := os.Link(tmp.Name(), file); err != nil {
		if errors.Is(err, os.ErrExist) {
			return defaultDevice(sel)
		}
		return "", fmt.Errorf("write device id: %w", err)
	}
	return id, nil
}

// CacheDir returns the directory athena-edge caches compiled code in
// (os.UserCacheDir()/athena-edge), or "" if there is none.
func CacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "athena-edge")
}
