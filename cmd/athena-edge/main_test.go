package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cli runs the CLI in-process with a private environment.
func cli(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := func(k string) string { return env[k] }
	err = runEnv(t.Context(), args, strings.NewReader(""), &out, &errb, e)
	return out.String(), errb.String(), err
}

func TestUsageAndHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantErr  bool
		wantCode int
		contains string
	}{
		{name: "no command", args: nil, wantErr: true, wantCode: 2, contains: "Commands:"},
		{name: "help", args: []string{"help"}, contains: "doctor"},
		{name: "help command", args: []string{"help", "doctor"}, contains: "Usage: athena-edge doctor"},
		{name: "-h", args: []string{"-h"}, contains: "Commands:"},
		{name: "unknown command", args: []string{"frobnicate"}, wantErr: true, wantCode: 2},
		{name: "unknown flag", args: []string{"version", "--bogus"}, wantErr: true, wantCode: 2},
		{name: "version", args: []string{"version"}, contains: "athena-edge"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := cli(t, nil, tc.args...)
			if tc.wantErr {
				require.Error(t, err)
				assert.Equal(t, tc.wantCode, code(err))
			} else {
				require.NoError(t, err)
			}
			assert.Contains(t, out, tc.contains)
		})
	}
}

func TestVersionJSON(t *testing.T) {
	t.Parallel()
	out, _, err := cli(t, nil, "--json", "version")
	require.NoError(t, err)
	var v versionInfo
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.NotEmpty(t, v.GoVersion)
}

func TestDoctorSQLite(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "memory.db")
	out, _, err := cli(t, map[string]string{"ATHENA_DB_PATH": db}, "doctor", "--json")
	require.NoError(t, err)
	var r doctorReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "sqlite", r.Backend)
	assert.Equal(t, db, r.Where)
	assert.True(t, r.Reachable)
	assert.NotEmpty(t, r.Device)
}

func TestDoctorExplicitPostgresUnreachable(t *testing.T) {
	t.Parallel()
	_, _, err := cli(t, map[string]string{"ATHENA_DB_TYPE": "postgres", "ATHENA_POSTGRES_HOST": "127.0.0.1", "ATHENA_POSTGRES_PORT": "1"}, "doctor")
	require.Error(t, err)
	assert.Equal(t, 1, code(err))
	assert.Contains(t, err.Error(), "not reachable")
}

func TestDoctorImplicitPostgresFallsBack(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "fallback.db")
	out, stderr, err := cli(t, map[string]string{"ATHENA_POSTGRES_HOST": "127.0.0.1", "ATHENA_POSTGRES_PORT": "1", "ATHENA_DB_PATH": db}, "--json", "doctor")
	require.NoError(t, err)
	assert.Contains(t, stderr, "falling back to SQLite")
	var r doctorReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.True(t, r.FellBack)
	assert.Equal(t, "sqlite", r.Backend)
}

// TestBinary builds the real binary once and checks exit codes from a
// separate process.
func TestBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "athena-edge")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	cmd := exec.Command(bin, "version")
	out, err = cmd.Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), "athena-edge")

	err = exec.Command(bin, "nope").Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())

	cmd = exec.Command(bin, "doctor")
	cmd.Env = []string{"ATHENA_DB_PATH=" + filepath.Join(t.TempDir(), "bin.db"), "HOME=" + t.TempDir()}
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "reachable:  yes")
}
