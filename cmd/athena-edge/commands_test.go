package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "update golden files")

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE = regexp.MustCompile(`"20\d\d-\d\d-\d\dT[0-9:.]+Z"`)
	devRE  = regexp.MustCompile(`edge-<id-\d+>`)
	hlcRE  = regexp.MustCompile(`"hlc": \d+`)
)

// normalize replaces IDs and times, which differ on every run, by stable
// placeholders numbered in order of appearance.
func normalize(s string) string {
	seen := map[string]string{}
	s = uuidRE.ReplaceAllStringFunc(s, func(id string) string {
		if p, ok := seen[id]; ok {
			return p
		}
		p := "<id-" + itoaTest(len(seen)+1) + ">"
		seen[id] = p
		return p
	})
	s = timeRE.ReplaceAllString(s, `"<time>"`)
	s = hlcRE.ReplaceAllString(s, `"hlc": "<hlc>"`)
	return devRE.ReplaceAllString(s, "edge-<device>")
}

func itoaTest(i int) string { b, _ := json.Marshal(i); return string(b) }

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create %s", path)
	assert.Equal(t, string(want), got)
}

// TestCommandsGolden drives every command in-process on a fresh SQLite
// file and compares the --json output shapes with golden files.
func TestCommandsGolden(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ATHENA_DB_PATH": filepath.Join(t.TempDir(), "m.db"), "PWD": "/nowhere"}
	var transcript strings.Builder
	step := func(args ...string) string {
		t.Helper()
		out, stderr, err := cli(t, env, args...)
		require.NoError(t, err, "%v: %s", args, stderr)
		transcript.WriteString("$ athena-edge " + strings.Join(args, " ") + "\n" + out)
		return out
	}
	id := func(out string) string {
		var v struct{ ID string }
		require.NoError(t, json.Unmarshal([]byte(out), &v))
		return v.ID
	}
	a := id(step("--json", "remember", "Database optimization techniques: add indexes", "--tags", "db,perf", "--type", "decision"))
	step("--json", "remember", "banana bread recipe")
	step("--json", "recall", "optimization techniques", "-k", "2", "--explain", "--no-touch")
	step("--json", "get", a)
	step("--json", "touch", a)
	step("--json", "state", a, "consolidating")
	step("--json", "labile")
	step("--json", "project", "create", "athena", "/work/athena", "--language", "go")
	step("--json", "project", "list")
	step("--json", "--project", "athena", "task", "add", "write tests", "--priority", "8", "--due", "2030-01-02")
	step("--json", "--project", "athena", "goal", "add", "ship it", "--priority", "9", "--progress", "0.5")
	step("--json", "--project", "athena", "event", "add", "ran the suite", "--session", "s1", "--files", "a.go,b.go",
		"--learned", "parallel is fast", "--confidence", "0.9", "--timestamp", "1767322800000")
	step("--json", "--project", "athena", "event", "list", "--session", "s1")
	step("--json", "code", "add", "--file", "math.go", "--name", "Add", "--memory", a, "--language", "go", "--line-start", "3", "--line-end", "9")
	step("--json", "code", "list", "--file", "math.go")
	step("--json", "forget", a)
	golden(t, "commands", normalize(transcript.String()))
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ATHENA_DB_PATH": filepath.Join(t.TempDir(), "m.db"), "PWD": "/nowhere"}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"remember no text", []string{"remember"}, 2, "TEXT"},
		{"remember bad type", []string{"remember", "x", "--type", "gossip"}, 1, "memory_type"},
		{"remember NUL", []string{"remember", "a\x00b"}, 1, "NUL"},
		{"remember bad usefulness", []string{"remember", "x", "--usefulness", "2"}, 1, "usefulness"},
		{"recall k -1", []string{"recall", "x", "-k", "-1"}, 1, "k: must be between 1"},
		{"recall bad fusion", []string{"recall", "x", "--fusion", "max"}, 1, "fusion"},
		{"recall bad state", []string{"recall", "x", "--state", "Labile"}, 1, "state"},
		{"recall bad since", []string{"recall", "x", "--since", "yesterday"}, 2, "--since"},
		{"get bad id", []string{"get", "nope"}, 2, "not a memory ID"},
		{"get missing", []string{"get", "01a21799-eea8-7460-baaf-aa8ec5b055b4"}, 1, "not found"},
		{"forget missing", []string{"forget", "01a21799-eea8-7460-baaf-aa8ec5b055b4"}, 1, "not found"},
		{"state bad", []string{"state", "01a21799-eea8-7460-baaf-aa8ec5b055b4", "dreaming"}, 2, "unknown state"},
		{"project unknown sub", []string{"project", "rename"}, 2, "unknown project subcommand"},
		{"missing project", []string{"--project", "nope", "remember", "x"}, 1, "does not exist"},
		{"task bad priority", []string{"task", "add", "t", "--priority", "11"}, 1, "priority"},
		{"event bad time", []string{"event", "add", "x", "--timestamp", "soon"}, 2, "timestamp"},
		{"import missing file", []string{"import", "/nonexistent.jsonl"}, 1, "no such file"},
		{"bench bad store", []string{"bench", "--store", "mysql", "--n", "10"}, 1, "mysql"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := cli(t, env, tc.args...)
			require.Error(t, err)
			assert.Equal(t, tc.code, code(err), "%v", err)
			assert.Contains(t, err.Error(), tc.contains)
		})
	}
}

func TestRememberStdinAndEmbeddingFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"ATHENA_DB_PATH": filepath.Join(dir, "m.db"), "PWD": "/nowhere"}
	var out, errb strings.Builder
	err := runEnv(t.Context(), []string{"--json", "remember", "-"}, strings.NewReader("from stdin\n"), &out, &errb, func(k string) string { return env[k] })
	require.NoError(t, err, errb.String())
	var got struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(out.String()), &got))
	o, _, err := cli(t, env, "--json", "get", got.ID)
	require.NoError(t, err)
	assert.Contains(t, o, `"content": "from stdin"`)

	vec := make([]float64, 768)
	vec[3] = 1
	b, _ := json.Marshal(vec)
	f := filepath.Join(dir, "v.json")
	require.NoError(t, os.WriteFile(f, b, 0o644))
	_, _, err = cli(t, env, "remember", "own vector", "--embedding-file", f)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f, []byte("[1,2,3]"), 0o644))
	_, _, err = cli(t, env, "remember", "short vector", "--embedding-file", f)
	require.ErrorContains(t, err, "768")
}

func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := map[string]string{"ATHENA_DB_PATH": filepath.Join(dir, "a.db"), "PWD": "/nowhere"}
	dst := map[string]string{"ATHENA_DB_PATH": filepath.Join(dir, "b.db"), "PWD": "/nowhere"}
	for _, s := range []string{"one", "two", "three"} {
		_, _, err := cli(t, src, "remember", s, "--tags", "x")
		require.NoError(t, err)
	}
	_, _, err := cli(t, src, "task", "add", "a task")
	require.NoError(t, err)
	exp, _, err := cli(t, src, "export")
	require.NoError(t, err)
	f := filepath.Join(dir, "exp.jsonl")
	require.NoError(t, os.WriteFile(f, []byte("not json\n"+exp), 0o644))
	out, stderr, err := cli(t, dst, "import", f)
	require.Error(t, err, "a bad line makes the exit status 1")
	assert.Contains(t, stderr, "line 1")
	assert.Contains(t, out, "imported 5 records, 1 failed")
	again, _, err := cli(t, dst, "export")
	require.NoError(t, err)
	assert.Equal(t, exp, again, "export → import → export is exact")
}

func TestConsolidateCommand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ATHENA_DB_PATH": filepath.Join(t.TempDir(), "m.db"), "PWD": "/nowhere"}
	for range 2 {
		_, _, err := cli(t, env, "remember", "the build uses Go 1.26")
		require.NoError(t, err)
	}
	type report struct {
		DryRun bool `json:"dry_run"`
		Writes int  `json:"writes"`
		Merged []struct {
			Survivor string `json:"survivor"`
		} `json:"merged"`
	}
	run := func(args ...string) report {
		out, _, err := cli(t, env, append([]string{"--json", "consolidate"}, args...)...)
		require.NoError(t, err)
		var r report
		require.NoError(t, json.Unmarshal([]byte(out), &r))
		return r
	}
	dry := run("--dry-run")
	assert.True(t, dry.DryRun)
	require.Len(t, dry.Merged, 1)
	again := run("--dry-run")
	assert.Equal(t, dry, again, "a dry run changes nothing")
	real := run()
	assert.Equal(t, dry.Merged, real.Merged)
	assert.Zero(t, run().Writes, "a second run right after the first changes nothing")
}

// TestBenchStores runs the bench end to end on a small generated set: the
// JSON has every key, the ingest loads everything (on Postgres through
// concurrent bulk loads), and the vector leg finds the true neighbours.
func TestBenchStores(t *testing.T) {
	t.Parallel()
	pg := os.Getenv("ATHENA_TEST_PG_URL")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"sqlite", []string{"--store", "sqlite"}},
		{"postgres", []string{"--store", "postgres", "--db", pg, "--loaders", "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.name == "postgres" && pg == "" {
				t.Skip("ATHENA_TEST_PG_URL not set; scripts/test.sh provides it")
			}
			env := map[string]string{"PWD": "/nowhere", "HOME": t.TempDir()}
			out, _, err := cli(t, env, append([]string{"--json", "bench", "--n", "500", "--dim", "16", "--queries", "20", "--batch", "40"}, tc.args...)...)
			require.NoError(t, err)
			var r map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &r))
			for _, k := range []string{"store", "n", "dim", "ingest_per_s", "vector_p50_ms", "vector_p99_ms", "hybrid_p50_ms",
				"hybrid_p99_ms", "recall_at_10", "open_ms", "rss_mb"} {
				assert.Contains(t, r, k)
			}
			assert.EqualValues(t, 500, r["n"])
			assert.Greater(t, r["ingest_per_s"], 0.0)
			assert.GreaterOrEqual(t, r["recall_at_10"], 0.9)
			if runtime.GOOS == "linux" {
				for _, k := range []string{"cpu_ingest", "cpu_search"} {
					share, ok := r[k].(map[string]any)
					require.True(t, ok, "%s: %v", k, r[k])
					assert.Contains(t, share, "busy_pct")
					assert.Contains(t, share, "steal_pct")
				}
			}
			if tc.name == "postgres" {
				assert.Contains(t, r["ingest_mode"], "3 concurrent loads")
				assert.Contains(t, r, "index_build_s")
			}
		})
	}
}
