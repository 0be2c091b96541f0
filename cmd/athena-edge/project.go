package main

import (
	"flag"
	"fmt"
	"path/filepath"

	"github.com/athena-edge/athena-edge/core"
)

func projectCommand() *command {
	var language, description string
	return &command{
		name:    "project",
		summary: "manage projects: create NAME PATH, get PATH, list, touch",
		usage:   "create NAME PATH [--language L] [--description D] | get PATH | list | touch",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&language, "language", "", "main language (create)")
			fs.StringVar(&description, "description", "", "description (create)")
		},
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("project needs a subcommand: create, get, list or touch")
			}
			h, err := e.open()
			if err != nil {
				return err
			}
			defer h.Close()
			var out []core.Project
			switch sub := args[0]; sub {
			case "create":
				if len(args) != 3 {
					return usageErr("project create takes NAME and PATH")
				}
				path := args[2]
				if abs, err := filepath.Abs(path); err == nil {
					path = abs
				}
				p, err := h.DB.CreateProject(e.ctx, core.Project{Name: args[1], Path: path, Language: language, Description: description})
				if err != nil {
					return fmt.Errorf("project create: %w", err)
				}
				out = []core.Project{p}
			case "get":
				if len(args) != 2 {
					return usageErr("project get takes PATH")
				}
				path := args[1]
				if abs, err := filepath.Abs(path); err == nil && path != defaultProjectPath {
					path = abs
				}
				p, err := h.DB.ProjectByPath(e.ctx, path)
				if err != nil {
					return fmt.Errorf("project get: %w", err)
				}
				out = []core.Project{p}
			case "list":
				if len(args) != 1 {
					return usageErr("project list takes no arguments")
				}
				if out, err = h.DB.Projects(e.ctx); err != nil {
					return fmt.Errorf("project list: %w", err)
				}
			case "touch":
				if len(args) != 1 {
					return usageErr("project touch takes no arguments (it touches the current project)")
				}
				p, err := e.resolveProject(h.DB)
				if err != nil {
					return err
				}
				if p, err = h.DB.TouchProject(e.ctx, p.ID); err != nil {
					return fmt.Errorf("project touch: %w", err)
				}
				out = []core.Project{p}
			default:
				return usageErr("unknown project subcommand %q", sub)
			}
			if e.json {
				if args[0] == "list" {
					return printJSON(e.stdout, out)
				}
				return printJSON(e.stdout, out[0])
			}
			for _, p := range out {
				fmt.Fprintf(e.stdout, "%s  %s  (%s, %s/%d, last accessed %s)\n", p.Name, p.Path, orNone(p.Language),
					p.EmbeddingModel, p.EmbeddingDim, p.LastAccessed.Local().Format("2006-01-02 15:04"))
			}
			return nil
		},
	}
}
