package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startServe runs `serve --addr 127.0.0.1:0` in-process and returns the
// sync URL; the server stops when the test ends.
func startServe(t *testing.T, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runEnv(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--no-consolidate"}, strings.NewReader(""), pw, io.Discard,
			func(k string) string { return env[k] })
		pw.CloseWithError(err)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	m := regexp.MustCompile(`sync: (ws://\S+/v1/sync)`).FindStringSubmatch(line)
	require.NotNil(t, m, line)
	return m[1]
}

func deviceOf(t *testing.T, env map[string]string) string {
	t.Helper()
	out, _, err := cli(t, env, "--json", "doctor")
	require.NoError(t, err)
	var r doctorReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	return r.Device
}

// TestServeAndSync: an edge pushes to a server started by `serve`, a second
// edge pulls what the first made, and `sync status` reports it.
func TestServeAndSync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	serverEnv := map[string]string{"ATHENA_DB_PATH": filepath.Join(dir, "server.db"), "PWD": "/nowhere"}
	a := map[string]string{"ATHENA_DB_PATH": filepath.Join(dir, "a.db"), "PWD": "/nowhere"}
	b := map[string]string{"ATHENA_DB_PATH": filepath.Join(dir, "b.db"), "PWD": "/nowhere"}
	url := startServe(t, serverEnv)

	tokens := map[string]string{}
	for name, env := range map[string]map[string]string{"a": a, "b": b} {
		out, _, err := cli(t, serverEnv, "--json", "--project", "default", "token", "create", "--device", deviceOf(t, env))
		require.NoError(t, err)
		var tok struct{ Token string }
		require.NoError(t, json.Unmarshal([]byte(out), &tok))
		tokens[name] = tok.Token
	}
	_, _, err := cli(t, a, "remember", "edge a knows the deploy key rotates monthly")
	require.NoError(t, err)
	out, _, err := cli(t, a, "--json", "sync", "--server", url, "--token", tokens["a"])
	require.NoError(t, err)
	var st struct{ Pushed, Applied, Rejected int }
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, 2, st.Pushed, "the default project and the memory")
	assert.Equal(t, 2, st.Applied)

	_, _, err = cli(t, b, "sync", "--server", url, "--token", tokens["b"])
	require.NoError(t, err)
	out, _, err = cli(t, b, "--json", "recall", "deploy key", "--no-touch")
	require.NoError(t, err)
	assert.Contains(t, out, "edge a knows the deploy key rotates monthly", "b pulled what a made")

	out, _, err = cli(t, a, "--json", "sync", "status")
	require.NoError(t, err)
	assert.Contains(t, out, `"pending": 0`)

	_, _, err = cli(t, b, "sync", "--server", url, "--token", tokens["a"])
	require.ErrorContains(t, err, "--device", "a token of another device is refused with a hint")
	_, _, err = cli(t, a, "sync", "--server", url, "--token", "ae_bogus")
	require.Error(t, err)
}

// TestPostgresSameCommandLines: the CLI's command lines work unchanged with
// ATHENA_DB_TYPE=postgres against the provisioned server.
func TestPostgresSameCommandLines(t *testing.T) {
	t.Parallel()
	url := os.Getenv("ATHENA_TEST_PG_URL")
	if url == "" {
		t.Skip("ATHENA_TEST_PG_URL not set; scripts/test.sh provides it")
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	schema := "cli_" + hex.EncodeToString(rb[:])
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err == nil {
			_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			_ = conn.Close(context.Background())
		}
	})
	env := map[string]string{"ATHENA_DB_TYPE": "postgres", "ATHENA_POSTGRES_URL": url, "ATHENA_POSTGRES_SCHEMA": schema, "PWD": "/nowhere"}
	out, _, err := cli(t, env, "--json", "remember", "Database optimization techniques: add indexes", "--tags", "db")
	require.NoError(t, err)
	var id struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(out), &id))
	_, _, err = cli(t, env, "remember", "banana bread recipe")
	require.NoError(t, err)
	out, _, err = cli(t, env, "--json", "recall", "optimization techniques", "-k", "1")
	require.NoError(t, err)
	assert.Contains(t, out, id.ID)
	for _, args := range [][]string{
		{"get", id.ID}, {"touch", id.ID}, {"state", id.ID, "consolidating"}, {"labile"},
		{"project", "list"}, {"task", "add", "t", "--priority", "8"}, {"goal", "add", "g", "--priority", "9"},
		{"event", "add", "e", "--files", "a.go"}, {"event", "list"}, {"code", "add", "--file", "f.go", "--name", "F", "--memory", id.ID},
		{"consolidate", "--dry-run"}, {"export"}, {"doctor"},
	} {
		_, stderr, err := cli(t, env, args...)
		require.NoError(t, err, "%v: %s", args, stderr)
	}
	out, _, err = cli(t, env, "--json", "doctor")
	require.NoError(t, err)
	var r doctorReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "postgres", r.Backend)
	require.NotNil(t, r.Pool)
	assert.Positive(t, r.Pool.Max)
	require.NotNil(t, r.IndexBacklog)
	assert.GreaterOrEqual(t, *r.IndexBacklog, int64(0))
	out, _, err = cli(t, env, "doctor")
	require.NoError(t, err)
	assert.Contains(t, out, "pool:")
	assert.Contains(t, out, "waiting for the HNSW index")
	_, _, err = cli(t, env, "forget", id.ID)
	require.NoError(t, err)
}
