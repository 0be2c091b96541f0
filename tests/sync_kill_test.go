package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/sqlitevec"
	edgesync "github.com/athena-edge/athena-edge/sync"
	"github.com/stretchr/testify/require"
)

// Environment of TestSyncKillChild (set only by TestSyncKill).
const (
	killEnvPath  = "ATHENA_SYNC_KILL_PATH"
	killEnvURL   = "ATHENA_SYNC_KILL_URL"
	killEnvToken = "ATHENA_SYNC_KILL_TOKEN"
	killEnvMode  = "ATHENA_SYNC_KILL_MODE"
	killEnvRound = "ATHENA_SYNC_KILL_ROUND"
	killEnvAt    = "ATHENA_SYNC_KILL_AT"
	killEnvCache = "ATHENA_SYNC_KILL_CACHE"
	killDevice   = "kill-edge"
	killPerRound = 12
)

// TestSyncKillChild is the edge process of TestSyncKill: it opens the edge
// file, writes killPerRound memories in small transactions (printing
// "committed N" after each) and then, by mode:
//
//   - commit: blocks before any push (killed after the local commit);
//   - upload: syncs; the parent kills it while the server holds a batch
//     between commit and ack (during upload);
//   - afterack: syncs; on the ATHENA_SYNC_KILL_AT-th ack it prints
//     "afterack SEQ" and blocks before recording it (killed after the ack,
//     before the local mark);
//   - final: writes nothing, syncs to the end, prints "synced" and exits.
//
// It does nothing unless run by TestSyncKill.
func TestSyncKillChild(t *testing.T) {
	path := os.Getenv(killEnvPath)
	if path == "" {
		t.Skip("run by TestSyncKill")
	}
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(3)
	}
	ctx := context.Background()
	st, err := sqlitevec.Open(ctx, sqlitevec.Config{Path: path, CacheDir: os.Getenv(killEnvCache)})
	if err != nil {
		fail(err)
	}
	db := core.New(st, core.Config{Device: killDevice})
	p, err := db.ProjectByName(ctx, "kill")
	if errors.Is(err, core.ErrNotFound) {
		p, err = db.CreateProject(ctx, core.Project{Name: "kill", Path: "/kill", EmbeddingModel: "t", EmbeddingDim: 4})
	}
	if err != nil {
		fail(err)
	}
	mode := os.Getenv(killEnvMode)
	round, _ := strconv.Atoi(os.Getenv(killEnvRound))
	at, _ := strconv.Atoi(os.Getenv(killEnvAt))
	if mode != "final" {
		for i := range killPerRound {
			if _, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("kill round %d memory %d", round, i),
				Embedding: []float32{1, float32(round), float32(i), 0.5}, EmbeddingModel: "t"}); err != nil {
				fail(err)
			}
			fmt.Printf("committed %d\n", i)
		}
	}
	if mode == "commit" {
		fmt.Println("ready")
		select {} // killed here: committed locally, nothing pushed
	}
	acks := 0
	hooks := &edgesync.TestHooks{AfterAck: func(seq uint64) {
		if acks++; mode == "afterack" && acks == at {
			fmt.Printf("afterack %d\n", seq)
			select {} // killed here: acknowledged by the server, not recorded locally
		}
	}}
	c := edgesync.NewClient(edgesync.ClientConfig{DB: db, ServerURL: os.Getenv(killEnvURL), Token: os.Getenv(killEnvToken),
		BatchSize: 3, Pipeline: 2, MaxRetries: 20, MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond, TestHooks: hooks})
	if _, err := c.Sync(ctx); err != nil {
		fail(err)
	}
	if err := st.Close(); err != nil {
		fail(err)
	}
	fmt.Println("synced")
}

// killServerStore is the server's store: PostgreSQL when
// ATHENA_TEST_PG_URL is set, else a SQLite file.
func killServerStore(t *testing.T) core.Backend {
	if os.Getenv("ATHENA_TEST_PG_URL") != "" {
		return openPG(t, nil)
	}
	return openSQLite(t, sqlitevec.Config{Path: filepath.Join(t.TempDir(), "server.db")})
}

// TestSyncKill kills a real edge process (SIGKILL) at three points — after
// a local commit before any push, during an upload (the server committed a
// batch and holds its ack), and after an ack before the edge recorded it —
// restarting it on the same SQLite file each time. After a final sync:
// nothing lost, nothing duplicated, the queue drained and both replicas
// equal. ATHENA_SYNC_KILL_ITER sets the rounds per point (default 2).
func TestSyncKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	central := core.New(killServerStore(t), core.Config{Device: "server"})
	var (
		armed   atomic.Int64 // > 0: block the armed-th commit of the edge's batches
		hits    atomic.Int64
		holding = make(chan struct{}, 1)
		release = make(chan struct{})
		relOnce sync.Once
	)
	t.Cleanup(func() { relOnce.Do(func() { close(release) }) })
	srv := edgesync.NewServer(edgesync.ServerConfig{DB: central, Rate: -1, AfterCommit: func(device string, _ uint64) error {
		if device != killDevice || armed.Load() == 0 || hits.Add(1) != armed.Load() {
			return nil
		}
		holding <- struct{}{}
		<-release // the edge is killed meanwhile; the ack is never sent
		return errors.New("failpoint: the edge died before the ack")
	}})
	url := serveSync(t, srv)
	t.Cleanup(func() { relOnce.Do(func() { close(release) }) }) // runs first: a held commit lets Shutdown finish
	tok, _, err := edgesync.CreateToken(ctx, central, "kill", killDevice)
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.db")
	// The children share the default wazero compilation cache; warm it here
	// so that no child spends its first seconds compiling SQLite.
	cache := ""
	warm, err := sqlitevec.Open(ctx, sqlitevec.Config{Path: filepath.Join(dir, "warm.db")})
	require.NoError(t, err)
	require.NoError(t, warm.Close())

	iters := envInt("ATHENA_SYNC_KILL_ITER", 2)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	seed := rng.Uint64()
	t.Logf("kill test seed %d, %d rounds per point", seed, iters)
	rng = rand.New(rand.NewPCG(seed, 11))
	committed := map[string]bool{} // contents the edge reported committed
	round := 0
	run := func(mode string, at int, waitFor string, onStart func()) []string {
		round++
		cmd := exec.Command(os.Args[0], "-test.run=^TestSyncKillChild$", "-test.count=1", "-test.v=false")
		cmd.Env = append(os.Environ(), killEnvPath+"="+path, killEnvURL+"="+url, killEnvToken+"="+tok, killEnvMode+"="+mode,
			killEnvRound+"="+strconv.Itoa(round), killEnvAt+"="+strconv.Itoa(at), killEnvCache+"="+cache)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		if onStart != nil {
			onStart()
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var got []string
		timeout := time.After(90 * time.Second)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				got = append(got, l)
				require.False(t, strings.HasPrefix(l, "error"), "%s round %d: %s", mode, round, l)
				if n, ok := strings.CutPrefix(l, "committed "); ok {
					committed[fmt.Sprintf("kill round %d memory %s", round, n)] = true
				}
				if waitFor != "" && strings.HasPrefix(l, waitFor) {
					break read
				}
			case <-holding: // upload: the server committed a batch and holds its ack
				got = append(got, "holding")
				break read
			case <-timeout:
				_ = cmd.Process.Kill()
				t.Fatalf("%s round %d: child stuck; output %v", mode, round, got)
			}
		}
		if mode != "final" {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		}
		go func() {
			for range lines { // drain
			}
		}()
		err = cmd.Wait()
		if mode == "final" {
			require.NoError(t, err, "final sync: %v", got)
		}
		return got
	}
	points := []string{"commit", "upload", "afterack"}
	for i := range iters * len(points) {
		switch mode := points[i%len(points)]; mode {
		case "commit":
			run(mode, 0, fmt.Sprintf("committed %d", rng.IntN(killPerRound)), nil)
		case "upload":
			hits.Store(0)
			armed.Store(int64(1 + rng.IntN(4)))
			got := run(mode, 0, "", nil)
			require.Equal(t, "holding", got[len(got)-1], "upload: the server held a batch when the edge died")
			armed.Store(0)
			release <- struct{}{} // let the held handler fail its connection
		case "afterack":
			got := run(mode, 1+rng.IntN(4), "afterack ", nil)
			require.True(t, strings.HasPrefix(got[len(got)-1], "afterack "), "afterack: %v", got)
		}
	}
	got := run("final", 0, "", nil)
	require.Contains(t, got, "synced")

	// Verify on the edge file and the server.
	st, err := sqlitevec.Open(ctx, sqlitevec.Config{Path: path, CacheDir: cache})
	require.NoError(t, err)
	defer st.Close()
	edge := core.New(st, core.Config{Device: killDevice})
	p, err := edge.ProjectByName(ctx, "kill")
	require.NoError(t, err)
	dump := func(db *core.DB) []core.Memory {
		ms, err := db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
		require.NoError(t, err)
		for i := range ms {
			ms[i].CreatedAt, ms[i].UpdatedAt, ms[i].LastAccessed, ms[i].LastRetrieved, ms[i].ConsolidatedAt =
				ms[i].CreatedAt.UTC(), ms[i].UpdatedAt.UTC(), ms[i].LastAccessed.UTC(), ms[i].LastRetrieved.UTC(), ms[i].ConsolidatedAt.UTC()
		}
		slices.SortFunc(ms, func(x, y core.Memory) int { return strings.Compare(string(x.ID), string(y.ID)) })
		return ms
	}
	onEdge, onServer := dump(edge), dump(central)
	seen := map[string]int{}
	for _, m := range onServer {
		seen[m.Content]++
	}
	lost, dup := 0, 0
	for c := range committed {
		if seen[c] == 0 {
			lost++
		}
	}
	for _, n := range seen {
		dup += n - 1
	}
	fmt.Printf("sync kill: rounds=%d committed=%d on_edge=%d on_server=%d lost=%d duplicated=%d\n",
		round, len(committed), len(onEdge), len(onServer), lost, dup)
	require.Zero(t, lost)
	require.Zero(t, dup)
	require.Equal(t, onEdge, onServer, "replicas equal")
	require.GreaterOrEqual(t, len(onServer), len(committed))

	status, err := edgesync.ReadStatus(ctx, edge)
	require.NoError(t, err)
	require.Len(t, status.Servers, 1)
	require.Zero(t, status.Servers[0].Pending, "queue drained")
	require.Empty(t, status.Servers[0].Rejected)
	last := status.LastSeq
	var seqs []uint64
	var after int64
	for {
		cs, err := central.Changes(ctx, after, 1000, "")
		require.NoError(t, err)
		for _, c := range cs {
			after = c.Pos
			if c.Device == killDevice {
				seqs = append(seqs, c.Seq)
			}
		}
		if len(cs) < 1000 {
			break
		}
	}
	require.Len(t, seqs, int(last), "each change once on the server")
	for i, s := range seqs {
		require.Equal(t, uint64(i+1), s)
	}
}
