package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
)

// session is an opened store plus the current project.
type session struct {
	*native.Host
	project core.Project
}

// open opens the store the environment and flags select.
func (e *env) open() (*native.Host, error) {
	home, _ := os.UserHomeDir()
	sel, err := native.Select(e.getenv, home, e.db)
	if err != nil {
		return nil, err
	}
	emb, err := native.EmbedderFromEnv(e.getenv)
	if err != nil {
		return nil, err
	}
	opts := native.Options{Stderr: e.stderr, Embedder: emb, Readers: 1}
	if e.serving {
		opts.Readers = 0 // the store's default pool
	} else if e.quick {
		opts.Warm = e.warm
	}
	return native.Open(e.ctx, sel, opts)
}

// openProject opens the store and resolves the current project: --project,
// else the project whose path contains the working directory, else
// "default" (created on first use).
func (e *env) openProject() (*session, error) {
	h, err := e.open()
	if err != nil {
		return nil, err
	}
	p, err := e.resolveProject(h.DB)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return &session{Host: h, project: p}, nil
}

func (e *env) resolveProject(db *core.DB) (core.Project, error) {
	if e.project != "" {
		p, err := db.ProjectByName(e.ctx, e.project)
		if errors.Is(err, core.ErrNotFound) && e.project == core.DefaultProjectName {
			return ensureDefault(e, db)
		}
		if errors.Is(err, core.ErrNotFound) {
			return core.Project{}, fmt.Errorf("project %q does not exist (create it with 'athena-edge project create %s PATH')", e.project, e.project)
		}
		return p, err
	}
	wd := e.getenv("PWD")
	if wd == "" {
		wd, _ = os.Getwd()
	}
	ps, err := db.Projects(e.ctx)
	if err != nil {
		return core.Project{}, err
	}
	var best core.Project
	for _, p := range ps {
		if within(wd, p.Path) && len(p.Path) > len(best.Path) {
			best = p
		}
	}
	if best.ID != "" {
		return best, nil
	}
	return ensureDefault(e, db)
}

// within reports whether dir is path or below it.
func within(dir, path string) bool {
	if dir == "" || !filepath.IsAbs(path) {
		return false
	}
	rel, err := filepath.Rel(path, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// defaultProjectPath is the path of the implicit default project: not a
// directory, so it never captures a working directory.
const defaultProjectPath = "(default)"

func ensureDefault(e *env, db *core.DB) (core.Project, error) {
	p, err := db.ProjectByName(e.ctx, core.DefaultProjectName)
	if err == nil || !errors.Is(err, core.ErrNotFound) {
		return p, err
	}
	p, err = db.CreateProject(e.ctx, core.Project{Name: core.DefaultProjectName, Path: defaultProjectPath,
		Description: "memories made outside any project"})
	if errors.Is(err, core.ErrConflict) { // another process created it first
		return db.ProjectByName(e.ctx, core.DefaultProjectName)
	}
	return p, err
}
