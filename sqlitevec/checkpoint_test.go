package sqlitevec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// TestCheckpointer writes about 6 MB in small transactions with a
// checkpoint threshold of 8 pages (128 KiB). With the background
// checkpointer the log must stay within the writer's bound and the
// database file must receive the pages before Close; with it turned off,
// SQLite's automatic checkpoint (1000 pages) never runs here, so the log
// holds everything, which shows that the bound comes from the
// checkpointer. Either way every memory is there after reopening.
func TestCheckpointer(t *testing.T) {
	t.Parallel()
	const (
		txs, perTx = 60, 20
		pages      = 8
		frame      = pageSize + 24 // a WAL frame: header and page
	)
	// The log's largest extent with the checkpointer: the writer copies
	// it at writerCheckpointFactor × pages at the latest, after the commit
	// that got it there, and one of these commits is well under 40 pages.
	bound := int64((writerCheckpointFactor*pages + 40) * frame)
	for _, tc := range []struct {
		name       string
		checkpoint int
		background bool
	}{
		{"background", pages, true},
		{"off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "ckpt.db")
			s, err := Open(ctx, Config{Path: path, CheckpointPages: tc.checkpoint})
			require.NoError(t, err)
			require.Equal(t, tc.background, s.ckpt != nil)
			db := core.New(s, core.Config{Device: "ckpt"})
			p, err := db.CreateProject(ctx, core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 768})
			require.NoError(t, err)
			dbSize := fileSize(t, path)
			for i := range txs {
				ms := make([]core.Memory, perTx)
				for j := range ms {
					n := i*perTx + j
					ms[j] = core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("memory %d of the checkpoint test", n), Embedding: unitVec(uint64(n), 768)}
				}
				res, err := db.RememberBatch(ctx, ms)
				require.NoError(t, err)
				for _, r := range res {
					require.NoError(t, r.Err)
				}
			}
			walSize := fileSize(t, path+"-wal")
			written := int64(txs * perTx * 3072) // the vectors alone
			if tc.background {
				waitCheckpoints(t, s.ckpt, 1)
				require.LessOrEqual(t, walSize, bound, "the log outgrew the writer's bound")
				require.Greater(t, fileSize(t, path)-dbSize, written/2, "the pages did not reach the database file")
			} else {
				require.Greater(t, walSize, written, "the log should hold every page when nothing checkpoints")
				require.Greater(t, walSize, 3*bound)
			}
			require.NoError(t, s.Close())

			s, err = Open(ctx, Config{Path: path, CheckpointPages: tc.checkpoint})
			require.NoError(t, err)
			defer s.Close()
			require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
				c := r.(*readTx).c
				var n int
				require.NoError(t, c.query(`SELECT count(*) FROM memories`, nil, func(st *sqlite3.Stmt) error {
					n = st.ColumnInt(0)
					return nil
				}))
				require.Equal(t, txs*perTx, n)
				var res []string
				require.NoError(t, c.query(`PRAGMA integrity_check`, nil, func(st *sqlite3.Stmt) error {
					res = append(res, st.ColumnText(0))
					return nil
				}))
				require.Equal(t, []string{"ok"}, res)
				return nil
			}))
		})
	}
}

// TestCheckpointerOnlyOnFiles: an in-memory database has no log to copy.
func TestCheckpointerOnlyOnFiles(t *testing.T) {
	t.Parallel()
	require.Nil(t, openTest(t, false).ckpt)
	require.NotNil(t, openTest(t, true).ckpt, "the default turns it on for a file")
}

// waitCheckpoints waits until k has run n background checkpoints. The
// first commit that takes the log past the threshold asks for one, so it
// comes; the deadline only turns a hang into a failure.
func waitCheckpoints(t *testing.T, k *checkpointer, n int) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		k.waitRuns(n)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("no background checkpoint ran")
	}
}

// waitRuns blocks until at least n background checkpoints have run.
func (k *checkpointer) waitRuns(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for k.runs < n {
		k.ran.Wait()
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}
