package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/athena-edge/athena-edge/core"
)

// Defaults of [Config].
const (
	// DefaultName is the implementation name the server reports.
	DefaultName = "athena-edge"
	// DefaultBusyRetries is how many times a tool call that failed because
	// the database was locked is retried.
	DefaultBusyRetries = 5
	// DefaultBusyBackoff is the first retry's delay; it doubles each time.
	DefaultBusyBackoff = 50 * time.Millisecond
	// RecentLimit is how many memories [URIRecentMemories] lists.
	RecentLimit = 20
)

// Resource URIs.
const (
	URIProjectSummary = "athena-edge://project/summary"
	URIRecentMemories = "athena-edge://project/memories/recent"
)

// Config configures [New]. DB and Project are required; the other fields
// have usable zero values.
type Config struct {
	// DB is the opened store. The server does not close it.
	DB *core.DB
	// Project is the current project: memories, events, tasks, goals and
	// code entities are created in it, and recall and the lists search it.
	Project core.Project
	// Name and Version are reported to clients (DefaultName and "(devel)"
	// if empty).
	Name, Version string
	// Logger receives the SDK's log records; nil discards them.
	Logger *slog.Logger
	// SyncStatus reports this edge's sync state for the sync_status tool;
	// nil uses [LocalSyncStatus] (the edgesync metadata in DB).
	SyncStatus func(ctx context.Context, db *core.DB) (SyncStatus, error)
	// BusyRetries is how many times a call failing with "database is
	// locked" is retried (DefaultBusyRetries if 0, none if negative).
	BusyRetries int
	// BusyBackoff is the first retry's delay (DefaultBusyBackoff if 0).
	BusyBackoff time.Duration
	// Now is the wall clock for recall's relative "since"; nil is time.Now.
	Now func() time.Time
}

// server holds the configuration the handlers share. It is read-only after
// New, so it is safe for concurrent use.
type server struct {
	cfg Config
	db  *core.DB
	p   core.Project
}

// New returns an MCP server with athena-edge's tools and resources on
// cfg.DB and cfg.Project. It returns an error wrapping core.ErrInvalid if
// DB or the project is missing. Run it with (*mcp.Server).Run on a
// transport, for example &mcp.StdioTransport{}.
func New(cfg Config) (*mcp.Server, error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("%w: mcpserver: Config.DB is nil", core.ErrInvalid)
	}
	if cfg.Project.ID == "" {
		return nil, fmt.Errorf("%w: mcpserver: Config.Project has no ID", core.ErrInvalid)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Version == "" {
		cfg.Version = "(devel)"
	}
	if cfg.BusyRetries == 0 {
		cfg.BusyRetries = DefaultBusyRetries
	}
	if cfg.BusyBackoff <= 0 {
		cfg.BusyBackoff = DefaultBusyBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SyncStatus == nil {
		cfg.SyncStatus = LocalSyncStatus
	}
	s := &server{cfg: cfg, db: cfg.DB, p: cfg.Project}
	srv := mcp.NewServer(&mcp.Implementation{Name: cfg.Name, Title: "athena-edge memory", Version: cfg.Version},
		&mcp.ServerOptions{
			Logger: cfg.Logger,
			Instructions: fmt.Sprintf("athena-edge is a persistent memory for agents; the current project is %q. "+
				"Use recall before you start a task and remember what you learn (facts, decisions, patterns, preferences).",
				cfg.Project.Name),
		})
	if err := s.addTools(srv); err != nil {
		return nil, err
	}
	s.addResources(srv)
	return srv, nil
}

// tool registers a typed handler under name. The wrapper retries busy
// errors, turns panics into tool errors and names the argument a core
// validation error is about (fields maps core's field names to the tool's
// argument names where they differ).
func tool[In, Out any](srv *mcp.Server, s *server, t *mcp.Tool, fields map[string]string, fix func(*jsonschema.Schema),
	fn func(ctx context.Context, in In) (Out, error)) error {
	if fix != nil {
		sch, err := jsonschema.For[In](nil)
		if err != nil {
			return fmt.Errorf("mcpserver: schema of %s: %w", t.Name, err)
		}
		fix(sch)
		t.InputSchema = sch
	}
	var failed error
	func() {
		defer func() {
			if r := recover(); r != nil {
				failed = fmt.Errorf("mcpserver: tool %s: %v", t.Name, r)
			}
		}()
		mcp.AddTool(srv, t, func(ctx context.Context, _ *mcp.CallToolRequest, in In) (res *mcp.CallToolResult, out Out, err error) {
			out, err = call(ctx, s, func(ctx context.Context) (Out, error) { return fn(ctx, in) })
			if err != nil {
				var zero Out
				return nil, zero, toolError(t.Name, fields, err)
			}
			return nil, out, nil
		})
	}()
	return failed
}

// call runs fn, converting a panic to an error and retrying while the
// database reports it is locked.
func call[Out any](ctx context.Context, s *server, fn func(context.Context) (Out, error)) (Out, error) {
	delay := s.cfg.BusyBackoff
	for attempt := 0; ; attempt++ {
		out, err := protect(ctx, fn)
		if err == nil || !isBusy(err) || attempt >= s.cfg.BusyRetries {
			return out, err
		}
		if s.cfg.Logger != nil {
			s.cfg.Logger.Warn("mcpserver: database busy, retrying", "attempt", attempt+1, "delay", delay, "error", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return out, errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay *= 2
	}
}

func protect[Out any](ctx context.Context, fn func(context.Context) (Out, error)) (out Out, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return fn(ctx)
}

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY)
// or "database table is locked" (SQLITE_LOCKED). It matches the text: the
// driver's error codes are in github.com/ncruces/go-sqlite3, which this
// package does not import (see the package docs).
func isBusy(err error) bool {
	if errors.Is(err, core.ErrInvalid) || errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrConflict) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "database table is locked") ||
		strings.Contains(msg, "SQLITE_BUSY")
}

// toolError is the error a tool returns to the agent: "tool: message",
// with a core validation error's field renamed to the tool's argument.
func toolError(name string, fields map[string]string, err error) error {
	var fe *core.FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("%s: invalid argument %q: %s", name, argName(fields, fe.Field), fe.Reason)
	}
	var te *core.TransitionError
	if errors.As(err, &te) {
		return fmt.Errorf("%s: invalid argument %q: transition %s -> %s is not allowed (from %s the state may become %v)",
			name, argName(fields, "consolidation_state"), te.From, te.To, te.From, te.From.Next())
	}
	return fmt.Errorf("%s: %w", name, err)
}

// argName maps core's field name ("tags[3]", "memory_type") to the tool's
// argument name ("tags[3]", "type").
func argName(fields map[string]string, field string) string {
	base, rest := field, ""
	if i := strings.IndexByte(field, '['); i >= 0 {
		base, rest = field[:i], field[i:]
	}
	if n, ok := fields[base]; ok {
		return n + rest
	}
	return field
}
