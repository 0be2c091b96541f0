package sqlitevec

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

const crashEnv = "SQLITEVEC_CRASH_CHILD_DB"

// crashBatch is the number of memories each child transaction writes.
const crashBatch = 8

// TestCrashChild is the child of TestCrash: it writes batches of
// crashBatch marker memories, one transaction each, and prints "ack N"
// after batch N committed. It does nothing unless run by TestCrash.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("run by TestCrash")
	}
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: path, CacheDir: os.Getenv("SQLITEVEC_CRASH_CACHE")})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	db := core.New(s, core.Config{Device: "crash"})
	p, err := db.ProjectByName(ctx, "crash")
	if errors.Is(err, core.ErrNotFound) {
		p, err = db.CreateProject(ctx, core.Project{Name: "crash", Path: "/crash", EmbeddingModel: "m", EmbeddingDim: 16})
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	start, _ := strconv.Atoi(os.Getenv("SQLITEVEC_CRASH_START"))
	for n := start; ; n++ {
		ms := make([]core.Memory, crashBatch)
		for i := range ms {
			ms[i] = core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("batch b%d item %d", n, i),
				Embedding: unitVec(uint64(n*crashBatch+i), 16), Tags: []string{"b" + strconv.Itoa(n)}}
		}
		res, err := db.RememberBatch(ctx, ms)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		for _, r := range res {
			if r.Err != nil {
				fmt.Println("error", r.Err)
				os.Exit(3)
			}
		}
		fmt.Printf("ack %d\n", n)
	}
}

// TestCrash kills a writing child with SIGKILL at random points and checks
// after each kill that the database is intact, that every acknowledged
// batch is present and that no batch is partial.
func TestCrash(t *testing.T) {
	t.Parallel()
	kills := 100
	if testing.Short() {
		kills = 20
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	rng := rand.New(rand.NewPCG(1, 2))
	acked := -1 // highest acknowledged batch
	next := 0
	deadline := time.Now().Add(50 * time.Second)
	for k := 0; k < kills && time.Now().Before(deadline); k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path, "SQLITEVEC_CRASH_START="+strconv.Itoa(next))
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(out)
		want := rng.IntN(4) // kill after this many acks (0: as soon as the first line is read)
		got := 0
		for sc.Scan() {
			line := sc.Text()
			require.False(t, strings.HasPrefix(line, "error"), line)
			if n, ok := strings.CutPrefix(line, "ack "); ok {
				v, err := strconv.Atoi(n)
				require.NoError(t, err)
				acked = max(acked, v)
				next = v + 1
				got++
				if got > want {
					break
				}
			}
		}
		// Kill mid-write: the child is busy with its next batch.
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		checkCrashDB(t, path, acked)
		// The child may have committed batches it never acknowledged.
		next = max(next, lastBatch(t, path)+1)
	}
}

func lastBatch(t *testing.T, path string) int {
	s, err := Open(context.Background(), Config{Path: path})
	require.NoError(t, err)
	defer s.Close()
	last := -1
	require.NoError(t, s.View(context.Background(), func(r core.ReadTx) error {
		c := r.(*readTx).c
		return c.query(`SELECT count(*) FROM memories`, nil, func(st *sqlite3.Stmt) error {
			last = st.ColumnInt(0)/crashBatch - 1
			return nil
		})
	}))
	return last
}

func checkCrashDB(t *testing.T, path string, acked int) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Config{Path: path})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		c := r.(*readTx).c
		var res []string
		require.NoError(t, c.query(`PRAGMA integrity_check`, nil, func(st *sqlite3.Stmt) error {
			res = append(res, st.ColumnText(0))
			return nil
		}))
		require.Equal(t, []string{"ok"}, res)
		counts := map[string]int{}
		require.NoError(t, c.query(`SELECT tags FROM memories`, nil, func(st *sqlite3.Stmt) error {
			counts[st.ColumnText(0)]++
			return nil
		}))
		for tag, n := range counts {
			require.Equal(t, crashBatch, n, "batch %s is partial", tag)
		}
		for b := 0; b <= acked; b++ {
			require.Equal(t, crashBatch, counts[fmt.Sprintf(`["b%d"]`, b)], "acknowledged batch %d missing", b)
		}
		var changes int
		require.NoError(t, c.query(`SELECT count(*) FROM changes WHERE kind = 'memory.put'`, nil, func(st *sqlite3.Stmt) error {
			changes = st.ColumnInt(0)
			return nil
		}))
		require.Equal(t, len(counts)*crashBatch, changes, "every memory has its change, and no more")
		return nil
	}))
	require.Equal(t, s.Stats().Memories, s.index().count())
}

func TestCorruptFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data []byte
	}{
		{"garbage", []byte(strings.Repeat("this is not a database\n", 500))},
		{"truncated header", []byte("SQLite format 3\x00\x10\x00garbage")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "bad.db")
			require.NoError(t, os.WriteFile(path, tt.data, 0o600))
			_, err := Open(context.Background(), Config{Path: path})
			require.Error(t, err)
			require.Contains(t, err.Error(), path)
		})
	}
}

func TestCancelInterruptsQuery(t *testing.T) {
	t.Parallel()
	s := openTest(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := s.View(ctx, func(r core.ReadTx) error {
		c := r.(*readTx).c
		// A query that would run for minutes.
		return c.wrap("slow", c.query(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n) SELECT count(*) FROM n`, nil,
			func(*sqlite3.Stmt) error { return nil }))
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 2*time.Second)
	// Every reader connection is still usable.
	for range s.cfg.Readers + 1 {
		require.NoError(t, s.Ping(context.Background()))
	}
	// And so is the writer after a cancelled Update.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel2)
	err = s.Update(ctx2, func(w core.WriteTx) error {
		c := w.(*writeTx).c
		return c.wrap("slow", c.query(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n) SELECT count(*) FROM n`, nil,
			func(*sqlite3.Stmt) error { return nil }))
	})
	require.ErrorIs(t, err, context.Canceled)
	db := core.New(s, core.Config{})
	_, err = db.CreateProject(context.Background(), core.Project{Name: "after", Path: "/after", EmbeddingModel: "m", EmbeddingDim: 4})
	require.NoError(t, err)
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), Config{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Ping(context.Background()), core.ErrClosed)
	require.ErrorIs(t, s.Update(context.Background(), func(core.WriteTx) error { return nil }), core.ErrClosed)
}
