package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mcpserver "github.com/athena-edge/athena-edge/hosts/mcp"
)

// mcpCall calls a tool and decodes its structured result into out. It
// returns an error for a protocol error or a tool error.
func mcpCall(ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any, out any) error {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return fmt.Errorf("%s: protocol error: %w", name, err)
	}
	if res.IsError {
		var msg strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				msg.WriteString(tc.Text)
			}
		}
		return fmt.Errorf("%s: tool error: %s", name, msg.String())
	}
	if out == nil {
		return nil
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// TestMCPCommandInProcess runs `athena-edge mcp` through run() on pipes and
// checks that it uses the CLI's current-project rule (the project whose
// path contains the working directory).
func TestMCPCommandInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "m.db")
	proj := filepath.Join(dir, "src", "app")
	tests := []struct {
		name        string
		pwd         string
		args        []string
		wantProject string
	}{
		{name: "working directory inside a project", pwd: filepath.Join(proj, "pkg"), wantProject: "app"},
		{name: "outside every project", pwd: "/nowhere", wantProject: "default"},
		{name: "--project", pwd: "/nowhere", args: []string{"--project", "app"}, wantProject: "app"},
	}
	env := map[string]string{"ATHENA_DB_PATH": db, "PWD": "/nowhere"}
	_, _, err := cli(t, env, "project", "create", "app", proj)
	require.NoError(t, err)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			done := make(chan error, 1)
			go func() {
				e := func(k string) string {
					if k == "PWD" {
						return tc.pwd
					}
					return env[k]
				}
				err := runEnv(ctx, append(slices.Clone(tc.args), "mcp"), inR, outW, io.Discard, e)
				_ = outW.Close()
				done <- err
			}()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil).
				Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
			require.NoError(t, err)
			var m mcpserver.Memory
			require.NoError(t, mcpCall(ctx, cs, "remember", map[string]any{"content": "in-process " + tc.name}, &m))
			assert.Equal(t, tc.wantProject, m.Project)
			require.NoError(t, cs.Close())
			require.NoError(t, <-done, "the command returns nil when the client closes stdin")
		})
	}
}

// TestMCPBinary builds the binary once and drives `athena-edge mcp` over
// stdio with the SDK's client: one session, then two server processes on
// one SQLite file.
func TestMCPBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "athena-edge")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	home := t.TempDir()

	// start runs `athena-edge mcp` on db and connects a client to it.
	start := func(t *testing.T, ctx context.Context, db string) *mcp.ClientSession {
		t.Helper()
		cmd := exec.Command(bin, "mcp")
		cmd.Env = append(os.Environ(), "ATHENA_DB_PATH="+db, "PWD=/nowhere", "HOME="+home,
			"ATHENA_POSTGRES_URL=", "ATHENA_POSTGRES_HOST=", "ATHENA_DB_TYPE=")
		cmd.Stderr = &testWriter{t: t}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil).
			Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cs.Close() })
		return cs
	}

	t.Run("stdio", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		cs := start(t, ctx, filepath.Join(t.TempDir(), "stdio.db"))
		init := cs.InitializeResult()
		require.NotNil(t, init)
		assert.Equal(t, "athena-edge", init.ServerInfo.Name)
		require.NotNil(t, init.Capabilities.Tools)
		require.NotNil(t, init.Capabilities.Resources)

		tools, err := cs.ListTools(ctx, nil)
		require.NoError(t, err)
		var names []string
		for _, tl := range tools.Tools {
			names = append(names, tl.Name)
		}
		assert.ElementsMatch(t, []string{"remember", "recall", "get", "forget", "update_state", "record_event", "create_task",
			"list_tasks", "create_goal", "list_goals", "link_code", "consolidate", "sync_status"}, names)

		contents := []string{
			"Database optimization techniques: add the missing index",
			"banana bread recipe with walnuts",
			"Deploys are frozen on Fridays",
		}
		var ids []string
		for _, c := range contents {
			var m mcpserver.Memory
			require.NoError(t, mcpCall(ctx, cs, "remember", map[string]any{"content": c, "tags": []string{"db"}}, &m))
			ids = append(ids, string(m.ID))
		}
		var rec mcpserver.RecallOut
		require.NoError(t, mcpCall(ctx, cs, "recall", map[string]any{"query": "optimization techniques", "k": 2, "explain": true}, &rec))
		require.NotEmpty(t, rec.Hits)
		assert.Equal(t, ids[0], string(rec.Hits[0].ID))
		assert.Equal(t, int64(1), rec.Hits[0].AccessCount)

		err = mcpCall(ctx, cs, "recall", map[string]any{"query": "x", "k": -1}, nil)
		require.ErrorContains(t, err, `invalid argument "k"`)
	})

	t.Run("two processes one file", func(t *testing.T) {
		t.Parallel()
		const (
			procs   = 2
			workers = 4   // concurrent callers per process
			opsEach = 125 // per worker: procs·workers·opsEach = 1,000 operations
		)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		db := filepath.Join(t.TempDir(), "shared.db")
		began := time.Now()
		sessions := make([]*mcp.ClientSession, procs)
		var wg sync.WaitGroup
		for i := range procs { // start both at once: a fresh file, opened concurrently
			wg.Go(func() { sessions[i] = start(t, ctx, db) })
		}
		wg.Wait()
		for _, s := range sessions {
			require.NotNil(t, s)
		}
		startup := time.Since(began)

		markers := strings.Fields("quokka narwhal axolotl pangolin okapi tapir wombat capybara") // one per worker
		vocab := strings.Fields("index cache latency deploy friday schema migration pool queue retry backoff lock " +
			"vector keyword token embed shard replica leader follower snapshot")
		type result struct {
			ops     map[string]int
			errs    []error
			created []string // IDs this worker remembered
			markers []string // a unique word per worker
		}
		results := make([]result, procs*workers)
		began = time.Now()
		for p := range procs {
			for w := range workers {
				wg.Go(func() {
					r := &results[p*workers+w]
					r.ops = map[string]int{}
					marker := markers[p*workers+w]
					r.markers = append(r.markers, marker)
					type tracked struct {
						id    string
						stage int // 0 unconsolidated, 1 archived, 2 consolidated (maybe labile), 3 superseded
					}
					var mine []*tracked
					cs := sessions[p]
					for i := range opsEach {
						var err error
						op := "remember"
						switch {
						case i%5 == 2 || i%5 == 3:
							op = "recall"
						case i%5 == 4 && slices.ContainsFunc(mine, func(m *tracked) bool { return m.stage < 3 }):
							op = "update_state"
						}
						switch op {
						case "remember":
							var m mcpserver.Memory
							content := fmt.Sprintf("%s %s %s note %d from process %d", vocab[(i+w)%len(vocab)], vocab[(i*7+p)%len(vocab)], marker, i, p)
							err = mcpCall(ctx, cs, "remember", map[string]any{"content": content, "tags": []string{fmt.Sprintf("p%d", p)}}, &m)
							if err == nil {
								mine = append(mine, &tracked{id: string(m.ID)})
								r.created = append(r.created, string(m.ID))
							}
						case "recall":
							var out mcpserver.RecallOut
							err = mcpCall(ctx, cs, "recall", map[string]any{"query": vocab[i%len(vocab)] + " " + vocab[(i*3+w)%len(vocab)], "k": 5}, &out)
						case "update_state":
							idx := slices.IndexFunc(mine, func(m *tracked) bool { return m.stage < 3 })
							m := mine[idx]
							args := map[string]any{"id": m.id}
							switch m.stage {
							case 0:
								args["state"] = "archived"
							case 1:
								args["state"] = "consolidated"
							case 2: // consolidated, or labile if a recall touched it: superseded is legal from both
								args["state"] = "superseded"
								args["superseded_by"] = mine[len(mine)-1].id
								if mine[len(mine)-1] == m {
									args["superseded_by"] = r.created[0]
								}
							}
							var got mcpserver.Memory
							if err = mcpCall(ctx, cs, "update_state", args, &got); err == nil {
								m.stage++
							}
						}
						r.ops[op]++
						if err != nil {
							r.errs = append(r.errs, err)
						}
					}
				})
			}
		}
		wg.Wait()
		elapsed := time.Since(began)

		total, counts := 0, map[string]int{}
		var errs []error
		for _, r := range results {
			for op, n := range r.ops {
				counts[op] += n
				total += n
			}
			errs = append(errs, r.errs...)
		}
		require.Equal(t, procs*workers*opsEach, total)
		for _, err := range errs[:min(len(errs), 10)] {
			t.Errorf("operation failed: %v", err)
		}
		require.Empty(t, errs, "%d of %d operations failed", len(errs), total)
		t.Logf("%d operations (%v) by %d processes × %d callers in %v (%.0f ops/s); both processes started in %v",
			total, counts, procs, workers, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), startup.Round(time.Millisecond))

		// Each process reads and recalls the other's writes: sqlitevec's
		// in-memory index catches up with commits made by other processes.
		missed := 0
		for p := range procs {
			other := sessions[(p+1)%procs]
			for w := range workers {
				r := results[p*workers+w]
				var m mcpserver.Memory
				require.NoError(t, mcpCall(ctx, other, "get", map[string]any{"id": r.created[len(r.created)-1]}, &m))
				assert.Contains(t, m.Content, r.markers[0])
				var rec mcpserver.RecallOut
				require.NoError(t, mcpCall(ctx, other, "recall", map[string]any{"query": r.markers[0], "k": 3, "no_touch": true}, &rec))
				if len(rec.Hits) == 0 || !strings.Contains(rec.Hits[0].Content, r.markers[0]) {
					missed++
				}
			}
		}
		var sum mcpserver.ProjectSummary
		rr, err := sessions[0].ReadResource(ctx, &mcp.ReadResourceParams{URI: mcpserver.URIProjectSummary})
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal([]byte(rr.Contents[0].Text), &sum))
		assert.Equal(t, counts["remember"], sum.Memories, "every remember landed once")
		assert.Zero(t, missed, "cross-process recalls that missed the other process's new memories")
	})
}

// testWriter sends a child's stderr to the test log.
type testWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("server stderr: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
