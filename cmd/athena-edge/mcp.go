package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	mcpserver "github.com/athena-edge/athena-edge/hosts/mcp"
)

func mcpCommand() *command {
	return &command{
		name:    "mcp",
		summary: "serve the memory tools to agents over the Model Context Protocol on stdin/stdout (docs/MCP.md)",
		usage:   "",
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usageErr("mcp takes no arguments")
			}
			e.serving = true
			s, err := e.openProject()
			if err != nil {
				return err
			}
			defer s.Close()
			srv, err := mcpserver.New(mcpserver.Config{DB: s.DB, Project: s.project, Version: buildVersion().Version,
				Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
			if err != nil {
				return err
			}
			err = srv.Run(e.ctx, &mcp.IOTransport{Reader: io.NopCloser(e.stdin), Writer: nopWriteCloser{e.stdout}})
			if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
				return nil // a signal, or the client closed stdin
			}
			return err
		},
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
