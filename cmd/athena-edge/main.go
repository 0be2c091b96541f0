// Command athena-edge is the memory store for AI agents: an offline edge on
// embedded SQLite that converges on a central PostgreSQL server.
//
// Run `athena-edge help` for the commands. This package is wiring only:
// the store, the rules and the host live in their own packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "athena-edge:", err)
	}
	os.Exit(code(err))
}

// code maps an error to the process exit status: 0 ok, 2 usage, 1 anything
// else.
func code(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}
