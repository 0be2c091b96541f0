package sqlitevec

import (
	"sync"
	"sync/atomic"

	"github.com/ncruces/go-sqlite3"
)

// DefaultCheckpointPages is the write-ahead log's size, in pages, at which
// a background connection copies it into the database file: SQLite's own
// automatic checkpoint threshold.
const DefaultCheckpointPages = 1000

// writerCheckpointFactor: the writer copies the whole log itself once it
// holds this many times Config.CheckpointPages pages without the background
// connection's help, so that the log stays bounded when that falls behind.
const writerCheckpointFactor = 4

// checkpointer copies the write-ahead log into the database file on its own
// connection and goroutine, beside the writer. SQLite's automatic
// checkpoint runs inside the COMMIT that takes the log past its threshold:
// that commit copies the whole log (16 MB at 1000 pages) into the database
// file, reading it back from the log, before it returns.
//
// The log restarts from its beginning only when all of it has been copied,
// and a checkpoint copies what was committed when it started. So a cycle
// goes: the first commit that finds the log at the threshold asks the
// background connection for a PASSIVE checkpoint (which waits for no one)
// and returns; the writer keeps committing; the first commit after that
// checkpoint has finished copies, on the writer, the little that was
// committed meanwhile, and the next transaction restarts the log. If the
// log reaches writerCheckpointFactor times the threshold first, the
// writer waits for a running background checkpoint and copies the rest
// itself, so the log grows past that by one commit at most (unless another
// process is checkpointing at that moment: then the next commit tries
// again).
//
// A checkpointer is safe for concurrent use: the writer's WAL hook calls
// committed and Store.Update calls afterCommit (under the write lock), the
// goroutine run checkpoints, and Store.Close calls close.
type checkpointer struct {
	c     *conn // used only by run, then by close
	pages int   // the threshold
	// logPages is the log's size after the writer's last commit, from the
	// WAL hook (it counts frames already copied).
	logPages atomic.Int64
	wake     chan struct{} // capacity 1
	stop     chan struct{}
	done     chan struct{}
	closeOne sync.Once

	mu sync.Mutex
	// cycle counts the writer's checkpoints: each one ends a cycle of the
	// log. asked is the cycle a background checkpoint was last asked for,
	// helped the cycle of the last one that finished (-1: none).
	cycle, asked, helped int64
	// running is set while the background checkpoint copies, writing
	// while the writer does; ran is signalled when running is cleared.
	running, writing bool
	ran              *sync.Cond
	runs             int // background checkpoints run (tests)
}

// newCheckpointer starts the background checkpoints on c, which it owns
// from now on.
func newCheckpointer(c *conn, pages int) *checkpointer {
	k := &checkpointer{c: c, pages: pages, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		done: make(chan struct{}), asked: -1, helped: -1}
	k.ran = sync.NewCond(&k.mu)
	go k.run()
	return k
}

// committed is the writer's WAL hook: pages is the log's size after a
// commit. Installing it turns off SQLite's automatic checkpoint.
func (k *checkpointer) committed(_ *sqlite3.Conn, _ string, pages int) error {
	k.logPages.Store(int64(pages))
	return nil
}

// afterCommit runs on the writer after each commit, under the write lock:
// it asks for a background checkpoint, or finishes the cycle (see
// checkpointer). Errors are left alone, as SQLite leaves those of its
// automatic checkpoint: the commit has succeeded, BUSY means another
// process is checkpointing, and anything worse fails the next commit too.
func (k *checkpointer) afterCommit(w *sqlite3.Conn) {
	pages := k.logPages.Load()
	if pages < int64(k.pages) {
		return
	}
	k.mu.Lock()
	if k.helped != k.cycle && pages < int64(writerCheckpointFactor*k.pages) {
		if k.asked != k.cycle {
			k.asked = k.cycle
			select {
			case k.wake <- struct{}{}:
			default:
			}
		}
		k.mu.Unlock()
		return
	}
	for k.running {
		k.ran.Wait()
	}
	k.writing = true
	k.mu.Unlock()
	_, _, err := w.WALCheckpoint("main", sqlite3.CHECKPOINT_PASSIVE)
	k.mu.Lock()
	k.writing = false
	if err == nil {
		k.cycle++
		k.logPages.Store(0)
	}
	k.mu.Unlock()
}

func (k *checkpointer) run() {
	defer close(k.done)
	for {
		select {
		case <-k.stop:
			return
		case <-k.wake:
		}
		k.mu.Lock()
		if k.writing || k.asked != k.cycle || k.helped == k.cycle {
			k.mu.Unlock()
			continue // the writer has copied, or is copying, this cycle's log
		}
		cycle := k.cycle
		k.running = true
		k.mu.Unlock()
		_, _, err := k.c.c.WALCheckpoint("main", sqlite3.CHECKPOINT_PASSIVE)
		k.mu.Lock()
		k.running = false
		if err == nil {
			k.helped = cycle
		}
		k.runs++
		k.ran.Broadcast()
		k.mu.Unlock()
	}
}

// close stops the goroutine and closes its connection. It is idempotent.
func (k *checkpointer) close() error {
	var err error
	k.closeOne.Do(func() {
		close(k.stop)
		<-k.done
		err = k.c.close()
	})
	return err
}
