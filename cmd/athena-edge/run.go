package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/athena-edge/athena-edge/hosts/native"
)

// errUsage marks errors that should exit with status 2.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// env is what every command gets: streams, the environment and the global
// flags.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	db      string // --db
	project string // --project
	json    bool   // --json

	// serving is set by long-running commands (serve, mcp, sync --watch):
	// they open the store with its full pool of reader connections, while
	// a one-shot command opens one, which starts faster.
	serving bool
	// quick is set for a command that does a few statements (see
	// quickCommand), and warm starts the background compile of SQLite (nil
	// in tests, which then compile in the process): together they let
	// open run SQLite interpreted on a cold compilation cache.
	quick bool
	warm  func(cacheDir string) error
}

// command is one subcommand. flags registers its own flags on fs; run gets
// the positional arguments left after parsing.
type command struct {
	name    string
	summary string
	usage   string // arguments, after the command name
	flags   func(fs *flag.FlagSet)
	run     func(e *env, args []string) error
}

func commands() []*command {
	return []*command{
		versionCommand(),
		doctorCommand(),
		rememberCommand(),
		recallCommand(),
		getCommand(),
		forgetCommand(),
		touchCommand(),
		stateCommand(),
		labileCommand(),
		projectCommand(),
		eventCommand(),
		taskCommand(),
		goalCommand(),
		codeCommand(),
		exportCommand(),
		importCommand(),
		benchCommand(),
		mcpCommand(),
		consolidateCommand(),
		serveCommand(),
		tokenCommand(),
		syncCommand(),
		reembedCommand(),
	}
}

// warmCacheCommand is the hidden command that compiles SQLite into the
// compilation cache, which a quick command starts in the background when
// it finds the cache cold: `athena-edge __warm-cache DIR`.
const warmCacheCommand = "__warm-cache"

// run is the whole CLI as the binary runs it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var warm func(string) error
	if exe, err := os.Executable(); err == nil {
		warm = native.CacheWarmer(exe, warmCacheCommand)
	}
	return runWarm(ctx, args, stdin, stdout, stderr, os.Getenv, warm)
}

// runEnv is run with the environment supplied, so tests need no os.Setenv,
// and no background processes.
func runEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	return runWarm(ctx, args, stdin, stdout, stderr, getenv, nil)
}

func runWarm(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, warm func(string) error) error {
	if len(args) == 2 && args[0] == warmCacheCommand {
		return native.WarmCache(ctx, args[1])
	}
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, warm: warm}
	cmds := commands()
	global := flag.NewFlagSet("athena-edge", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	registerGlobals(global, e)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, cmds)
			return nil
		}
		return usageErr("%v", err)
	}
	rest := global.Args()
	if len(rest) == 0 || rest[0] == "help" {
		if len(rest) > 1 {
			for _, c := range cmds {
				if c.name == rest[1] {
					printCommandHelp(stdout, c)
					return nil
				}
			}
		}
		printHelp(stdout, cmds)
		if len(rest) == 0 {
			return usageErr("no command given")
		}
		return nil
	}
	for _, c := range cmds {
		if c.name != rest[0] {
			continue
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		registerGlobals(fs, e)
		if c.flags != nil {
			c.flags(fs)
		}
		e.quick = quickCommand(c.name)
		pos, err := parseInterleaved(fs, rest[1:])
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(stdout, c)
			return nil
		}
		if err != nil {
			return usageErr("%s: %v (see 'athena-edge help %s')", c.name, err, c.name)
		}
		return c.run(e, pos)
	}
	return usageErr("unknown command %q (see 'athena-edge help')", rest[0])
}

// quickCommand reports whether command name does a few statements on the
// store, so that on a cold compilation cache it is done sooner on
// SQLite's interpreter than after compiling SQLite. Bulk commands
// (import, export, consolidate, reembed, sync) and the long-running ones
// compile; so does doctor, which reports the compiled runtime.
func quickCommand(name string) bool {
	switch name {
	case "remember", "recall", "get", "forget", "touch", "state", "labile",
		"project", "event", "task", "goal", "code", "token":
		return true
	}
	return false
}

func registerGlobals(fs *flag.FlagSet, e *env) {
	fs.StringVar(&e.db, "db", e.db, "database: a SQLite file path or a postgres:// URL (default from the environment)")
	fs.StringVar(&e.project, "project", e.project, "project name (default: the project whose path contains the working directory, else \"default\")")
	fs.BoolVar(&e.json, "json", e.json, "print JSON")
}

// parseInterleaved parses flags anywhere among the positional arguments
// ("remember TEXT --type fact"); "--" ends flag parsing.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func printHelp(w io.Writer, cmds []*command) {
	fmt.Fprintln(w, "athena-edge: a memory store for AI agents, offline at the edge, converging on a central server.")
	fmt.Fprintln(w, "\nUsage: athena-edge [--db PATH|URL] [--project NAME] [--json] COMMAND [ARGS]")
	fmt.Fprintln(w, "\nCommands:")
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'athena-edge help COMMAND' for a command's flags. Exit status: 0 ok, 1 error, 2 usage.")
}

func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: athena-edge %s %s\n\n%s\n", c.name, c.usage, c.summary)
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	registerGlobals(fs, &env{})
	if c.flags != nil {
		c.flags(fs)
	}
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nFlags:\n%s", b.String())
}
