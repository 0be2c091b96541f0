package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/athena-edge/athena-edge/pgadapter"
)

type doctorReport struct {
	versionInfo
	CacheDir  string          `json:"cache_dir"`
	Backend   string          `json:"backend"`
	Where     string          `json:"where"`
	Reason    string          `json:"reason"`
	Explicit  bool            `json:"explicit"`
	FellBack  bool            `json:"fell_back,omitempty"`
	Reachable bool            `json:"reachable"`
	Error     string          `json:"error,omitempty"`
	Device    string          `json:"device,omitempty"`
	OpenMS    float64         `json:"open_ms"`
	Projects  []projectCounts `json:"projects"`

	// SQLiteEngine and CacheHit describe how SQLite ran (SQLite only).
	// doctor always runs compiled SQLite, so a miss means it compiled
	// SQLite now, and filled the cache if it is usable.
	SQLiteEngine string `json:"sqlite_engine,omitempty"`
	CacheHit     bool   `json:"cache_hit,omitempty"`
	cacheUsable  bool   // the compilation cache could be written

	// Pool and IndexBacklog are the seed's pool monitoring and the rows
	// waiting for the HNSW index (Postgres only).
	Pool         *pgadapter.PoolStats `json:"pool,omitempty"`
	IndexBacklog *int64               `json:"index_backlog,omitempty"`
}

type projectCounts struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Memories int    `json:"memories"`
}

func doctorCommand() *command {
	return &command{
		name:    "doctor",
		summary: "report the environment: versions, cache, which backend is selected and whether it is reachable",
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("doctor takes no arguments")
			}
			r := doctorReport{versionInfo: buildVersion(), CacheDir: native.CacheDir(), Projects: []projectCounts{}}
			home, _ := os.UserHomeDir()
			sel, err := native.Select(e.getenv, home, e.db)
			if err != nil {
				return err
			}
			r.Backend, r.Where, r.Reason, r.Explicit = sel.Kind, sel.Where(), sel.Reason, sel.Explicit
			start := time.Now()
			h, err := native.Open(e.ctx, sel, native.Options{Stderr: e.stderr})
			r.OpenMS = float64(time.Since(start).Microseconds()) / 1000
			if err != nil {
				r.Error = err.Error()
			} else {
				defer h.Close()
				r.FellBack, r.Backend, r.Where, r.Reason, r.Device = h.FellBack, h.Selection.Kind, h.Selection.Where(), h.Selection.Reason, h.DB.Device()
				r.SQLiteEngine, r.CacheHit, r.cacheUsable = string(h.Runtime.Engine), h.Runtime.Cached, h.Runtime.CacheDir != ""
				if err := h.DB.Ping(e.ctx); err != nil {
					r.Error = err.Error()
				} else {
					r.Reachable = true
					r.Projects, err = countProjects(e.ctx, h.DB)
					if err != nil {
						r.Error = err.Error()
					}
					if pg, ok := h.Backend.(*pgadapter.Store); ok {
						if n, err := pg.IndexBacklog(e.ctx); err != nil {
							r.Error = err.Error()
						} else {
							r.IndexBacklog = &n
						}
						st := pg.Stats()
						r.Pool = &st
					}
				}
			}
			if e.json {
				if err := json.NewEncoder(e.stdout).Encode(r); err != nil {
					return err
				}
			} else {
				printDoctor(e, &r)
			}
			if !r.Reachable {
				return fmt.Errorf("doctor: %s at %s is not reachable: %s", r.Backend, r.Where, r.Error)
			}
			return nil
		},
	}
}

func countProjects(ctx context.Context, db *core.DB) ([]projectCounts, error) {
	out := []projectCounts{}
	ps, err := db.Projects(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		ms, err := db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
		if err != nil {
			return nil, err
		}
		out = append(out, projectCounts{Name: p.Name, Path: p.Path, Memories: len(ms)})
	}
	return out, nil
}

func printDoctor(e *env, r *doctorReport) {
	w := e.stdout
	fmt.Fprintf(w, "athena-edge %s (%s %s/%s)\n", r.Version, r.GoVersion, r.OS, r.Arch)
	fmt.Fprintf(w, "cache dir:  %s\n", orNone(r.CacheDir))
	switch {
	case r.SQLiteEngine == "":
	case r.CacheHit:
		fmt.Fprintf(w, "sqlite:     %s, machine code from the cache\n", r.SQLiteEngine)
	case r.cacheUsable:
		fmt.Fprintf(w, "sqlite:     %s, not in the cache: compiled by this process, and cached\n", r.SQLiteEngine)
	default:
		fmt.Fprintf(w, "sqlite:     %s, no usable cache: compiled by every process\n", r.SQLiteEngine)
	}
	fmt.Fprintf(w, "backend:    %s at %s (%s)\n", r.Backend, r.Where, r.Reason)
	if r.FellBack {
		fmt.Fprintln(w, "            fell back to SQLite: the implicit Postgres was unreachable")
	}
	if r.Reachable {
		fmt.Fprintf(w, "reachable:  yes (opened in %.1f ms, device %s)\n", r.OpenMS, r.Device)
	} else {
		fmt.Fprintf(w, "reachable:  NO: %s\n", r.Error)
	}
	if p := r.Pool; p != nil {
		fmt.Fprintf(w, "pool:       %d open (%d idle, %d in use, %d waiting) of %d\n", p.Size, p.Idle, p.InUse, p.Waiting, p.Max)
	}
	if r.IndexBacklog != nil {
		fmt.Fprintf(w, "index:      %d memories waiting for the HNSW index (searched exactly meanwhile)\n", *r.IndexBacklog)
	}
	for _, p := range r.Projects {
		fmt.Fprintf(w, "project:    %s (%s): %d memories\n", p.Name, p.Path, p.Memories)
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
