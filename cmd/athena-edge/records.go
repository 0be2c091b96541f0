package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

func parseTime(flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil // the seed's unix-ms timestamps
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usageErr("--%s %q: want unix milliseconds, RFC 3339 or 2006-01-02", flagName, s)
}

func eventCommand() *command {
	var (
		session, typ, outcome, cwd, task, phase, branch, learned, ts string
		files                                                        listFlag
		surprise, confidence                                         float64
	)
	return &command{
		name: "event", summary: "episodic events: add CONTENT, list [--session S]",
		usage: "add CONTENT [--session S] [--type T] [--outcome O] [--cwd D] [--files a,b] [--task T] [--phase P] [--branch B] [--learned L] [--surprise X] [--confidence X] [--timestamp T] | list [--session S]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&session, "session", "", "session ID")
			fs.StringVar(&typ, "type", "action", "event type")
			fs.StringVar(&outcome, "outcome", "", "outcome")
			fs.StringVar(&cwd, "cwd", "", "working directory")
			fs.Var(&files, "files", "files involved (comma-separated, repeatable)")
			fs.StringVar(&task, "task", "", "task")
			fs.StringVar(&phase, "phase", "", "phase")
			fs.StringVar(&branch, "branch", "", "git branch")
			fs.StringVar(&learned, "learned", "", "what was learned")
			fs.Float64Var(&surprise, "surprise", 0, "surprise, 0..1")
			fs.Float64Var(&confidence, "confidence", 1, "confidence, 0..1")
			fs.StringVar(&ts, "timestamp", "", "when: unix milliseconds, RFC 3339 or a date (default now)")
		},
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("event needs a subcommand: add or list")
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			switch args[0] {
			case "add":
				if len(args) != 2 {
					return usageErr("event add takes CONTENT")
				}
				at, err := parseTime("timestamp", ts)
				if err != nil {
					return err
				}
				ev, err := s.DB.RecordEvent(e.ctx, core.Event{ProjectID: s.project.ID, SessionID: session, Timestamp: at, EventType: typ,
					Content: args[1], Outcome: outcome, Context: core.EventContext{Cwd: cwd, Files: files, Task: task, Phase: phase, Branch: branch},
					Learned: learned, Surprise: surprise, Confidence: confidence})
				if err != nil {
					return fmt.Errorf("event add: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, ev)
				}
				_, err = fmt.Fprintln(e.stdout, ev.ID)
				return err
			case "list":
				evs, err := s.DB.Events(e.ctx, core.EventFilter{ProjectID: s.project.ID, SessionID: session})
				if err != nil {
					return fmt.Errorf("event list: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, evs)
				}
				for _, ev := range evs {
					fmt.Fprintf(e.stdout, "%s  %s  %-12s %s\n", ev.Timestamp.Local().Format("2006-01-02 15:04:05"), orNone(ev.SessionID), ev.EventType, truncate(ev.Content, 70))
				}
				return nil
			}
			return usageErr("unknown event subcommand %q", args[0])
		},
	}
}

func taskCommand() *command {
	var (
		description, status, goal, parent, due string
		priority                               int
	)
	return &command{
		name: "task", summary: "prospective tasks: add TITLE, list [--status S], update ID",
		usage: "add TITLE [--priority 1..10] [--goal ID] [--parent ID] [--due DATE] [--description D] | list [--status S] | update ID [--status S] [--priority N] [--due DATE]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&description, "description", "", "description")
			fs.StringVar(&status, "status", "", "status: pending, in_progress, blocked, completed, cancelled")
			fs.StringVar(&goal, "goal", "", "goal ID")
			fs.StringVar(&parent, "parent", "", "parent task ID")
			fs.StringVar(&due, "due", "", "due date")
			fs.IntVar(&priority, "priority", 0, "priority 1..10 (default 5)")
		},
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("task needs a subcommand: add, list or update")
			}
			dueAt, err := parseTime("due", due)
			if err != nil {
				return err
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			var t core.Task
			switch args[0] {
			case "add":
				if len(args) != 2 {
					return usageErr("task add takes TITLE")
				}
				t, err = s.DB.CreateTask(e.ctx, core.Task{ProjectID: s.project.ID, Title: args[1], Description: description,
					Status: status, Priority: priority, GoalID: core.ID(goal), ParentID: core.ID(parent), DueAt: dueAt})
			case "update":
				if len(args) != 2 {
					return usageErr("task update takes ID")
				}
				ts, err := s.DB.Tasks(e.ctx, core.TaskFilter{ID: core.ID(args[1])})
				if err != nil {
					return fmt.Errorf("task update: %w", err)
				}
				if len(ts) == 0 {
					return fmt.Errorf("task update: %s: %w", args[1], core.ErrNotFound)
				}
				t = ts[0]
				if status != "" {
					t.Status = status
				}
				if priority != 0 {
					t.Priority = priority
				}
				if !dueAt.IsZero() {
					t.DueAt = dueAt
				}
				if description != "" {
					t.Description = description
				}
				t, err = s.DB.PutTask(e.ctx, t)
				if err != nil {
					return fmt.Errorf("task update: %w", err)
				}
			case "list":
				ts, err := s.DB.Tasks(e.ctx, core.TaskFilter{ProjectID: s.project.ID, Status: status})
				if err != nil {
					return fmt.Errorf("task list: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, ts)
				}
				for _, t := range ts {
					fmt.Fprintf(e.stdout, "%s  p%-2d %-11s %s\n", t.ID, t.Priority, t.Status, t.Title)
				}
				return nil
			default:
				return usageErr("unknown task subcommand %q", args[0])
			}
			if err != nil {
				return fmt.Errorf("task %s: %w", args[0], err)
			}
			if e.json {
				return printJSON(e.stdout, t)
			}
			_, err = fmt.Fprintln(e.stdout, t.ID)
			return err
		},
	}
}

func goalCommand() *command {
	var (
		description, status, parent, due string
		priority                         int
		progress                         float64
	)
	return &command{
		name: "goal", summary: "goals: add TITLE, list [--status S], update ID",
		usage: "add TITLE [--priority 1..10] [--parent ID] [--due DATE] [--progress 0..1] | list [--status S] | update ID [--status S] [--progress X] [--priority N]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&description, "description", "", "description")
			fs.StringVar(&status, "status", "", "status: active, on_hold, completed, abandoned")
			fs.StringVar(&parent, "parent", "", "parent goal ID")
			fs.StringVar(&due, "due", "", "due date")
			fs.IntVar(&priority, "priority", 0, "priority 1..10 (default 5)")
			fs.Float64Var(&progress, "progress", -1, "progress 0..1")
		},
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("goal needs a subcommand: add, list or update")
			}
			dueAt, err := parseTime("due", due)
			if err != nil {
				return err
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			var g core.Goal
			switch args[0] {
			case "add":
				if len(args) != 2 {
					return usageErr("goal add takes TITLE")
				}
				g = core.Goal{ProjectID: s.project.ID, Title: args[1], Description: description, Status: status,
					Priority: priority, ParentID: core.ID(parent), DueAt: dueAt}
				if progress >= 0 {
					g.Progress = progress
				}
				g, err = s.DB.CreateGoal(e.ctx, g)
			case "update":
				if len(args) != 2 {
					return usageErr("goal update takes ID")
				}
				gs, err := s.DB.Goals(e.ctx, core.GoalFilter{ID: core.ID(args[1])})
				if err != nil {
					return fmt.Errorf("goal update: %w", err)
				}
				if len(gs) == 0 {
					return fmt.Errorf("goal update: %s: %w", args[1], core.ErrNotFound)
				}
				g = gs[0]
				if status != "" {
					g.Status = status
				}
				if priority != 0 {
					g.Priority = priority
				}
				if progress >= 0 {
					g.Progress = progress
				}
				if !dueAt.IsZero() {
					g.DueAt = dueAt
				}
				if description != "" {
					g.Description = description
				}
				g, err = s.DB.PutGoal(e.ctx, g)
				if err != nil {
					return fmt.Errorf("goal update: %w", err)
				}
			case "list":
				gs, err := s.DB.Goals(e.ctx, core.GoalFilter{ProjectID: s.project.ID, Status: status})
				if err != nil {
					return fmt.Errorf("goal list: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, gs)
				}
				for _, g := range gs {
					fmt.Fprintf(e.stdout, "%s  p%-2d %-9s %3.0f%%  %s\n", g.ID, g.Priority, g.Status, g.Progress*100, g.Title)
				}
				return nil
			default:
				return usageErr("unknown goal subcommand %q", args[0])
			}
			if err != nil {
				return fmt.Errorf("goal %s: %w", args[0], err)
			}
			if e.json {
				return printJSON(e.stdout, g)
			}
			_, err = fmt.Fprintln(e.stdout, g.ID)
			return err
		},
	}
}

func codeCommand() *command {
	var (
		memory, file, name, typ, language, signature, docstring, hash string
		complexity, lineStart, lineEnd                                int
	)
	return &command{
		name: "code", summary: "code entities: add, list [--file F]",
		usage: "add --file F --name N --type T [--memory ID] [--language L] [--signature S] [--docstring D] [--hash H] [--complexity N] [--lines A-B | --line-start A --line-end B] | list [--file F]",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&memory, "memory", "", "linked memory ID")
			fs.StringVar(&file, "file", "", "file path")
			fs.StringVar(&name, "name", "", "entity name")
			fs.StringVar(&typ, "type", "function", "entity type: function, method, class, module, ...")
			fs.StringVar(&language, "language", "", "language")
			fs.StringVar(&signature, "signature", "", "signature")
			fs.StringVar(&docstring, "docstring", "", "docstring")
			fs.StringVar(&hash, "hash", "", "semantic hash")
			fs.IntVar(&complexity, "complexity", 0, "cyclomatic complexity")
			fs.IntVar(&lineStart, "line-start", 0, "first line")
			fs.IntVar(&lineEnd, "line-end", 0, "last line")
		},
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usageErr("code needs a subcommand: add or list")
			}
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			switch args[0] {
			case "add":
				if len(args) != 1 {
					return usageErr("code add takes flags only")
				}
				if lineEnd < lineStart {
					lineEnd = lineStart
				}
				c, err := s.DB.CreateCodeEntity(e.ctx, core.CodeEntity{ProjectID: s.project.ID, MemoryID: core.ID(memory), FilePath: file,
					Name: name, EntityType: typ, Language: language, Signature: signature, Docstring: docstring, SemanticHash: hash,
					Complexity: complexity, LineStart: lineStart, LineEnd: lineEnd})
				if err != nil {
					return fmt.Errorf("code add: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, c)
				}
				_, err = fmt.Fprintln(e.stdout, c.ID)
				return err
			case "list":
				cs, err := s.DB.CodeEntities(e.ctx, core.CodeFilter{ProjectID: s.project.ID, FilePath: file})
				if err != nil {
					return fmt.Errorf("code list: %w", err)
				}
				if e.json {
					return printJSON(e.stdout, cs)
				}
				for _, c := range cs {
					fmt.Fprintf(e.stdout, "%s  %s:%d-%d  %s %s\n", c.ID, c.FilePath, c.LineStart, c.LineEnd, c.EntityType, c.Name)
				}
				return nil
			}
			return usageErr("unknown code subcommand %q", args[0])
		},
	}
}
