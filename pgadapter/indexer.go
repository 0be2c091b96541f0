package pgadapter

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// The HNSW index is maintained off the write path. Inserting one 768-d row
// into pgvector's HNSW graph costs milliseconds at 100K rows, more than
// everything else a write does together, and a write transaction holding
// N new rows would pay it N times before it could commit (and, in sync,
// before the edge gets its acknowledgement). So a write commits its row
// with indexed = false, which keeps it out of the dimension's partial HNSW
// index, and the indexer sets indexed = true afterwards in small batches,
// which is when PostgreSQL inserts the row into the index.
//
// Nothing is ever missing from search meanwhile: the vector leg adds every
// unindexed row that matches its filter to the index's candidates and
// ranks them all by exact distance (the partial index memories_unindexed
// finds them). That costs a full-precision distance per unindexed row, so
// the leg slows while a large backlog waits; the indexer catches up at the
// rate HNSW inserts allow (docs/BENCHMARKS.md).
//
// Several processes may index the same database: each batch takes its
// rows with FOR UPDATE SKIP LOCKED, so they share the work and never wait
// for one another.
//
// The keyword index (postings, migration 11) is kept in the writing
// transaction: about 18 B-tree entries a memory cost far less than one
// HNSW insert.

// indexer runs IndexPending in the background: whenever a write
// transaction of this Store commits, and every Config.IndexInterval for
// rows other processes wrote. It is safe for concurrent use.
type indexer struct {
	kick chan struct{}
	// writes counts this Store's commits that left rows to index: a batch
	// during which it moved ran against writers (see run).
	writes atomic.Int64
	stop   context.CancelFunc
	done   chan struct{}
	// indexed and errs count rows indexed and failed batches, for Stats.
	indexed atomic.Int64
	errs    atomic.Int64
}

// startIndexer starts s's background indexer, unless the interval is
// negative (then wake and close are no-ops on a nil indexer).
func (s *Store) startIndexer() {
	if s.cfg.IndexInterval < 0 {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	x := &indexer{kick: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
	s.idx = x
	go x.run(ctx, s)
}

// wake asks the indexer to look for work now.
func (x *indexer) wake() {
	if x == nil {
		return
	}
	x.writes.Add(1)
	select {
	case x.kick <- struct{}{}:
	default: // a wake is already pending
	}
}

// close stops the indexer and waits for its batch in flight, whose
// transaction is cancelled: rows it held stay unindexed for the next
// indexer. If this Store wrote rows for the index, close then indexes one
// more batch (bounded by closeIndexTimeout), so that short-lived
// processes (a CLI command against PostgreSQL with no server running)
// index at least what they wrote instead of leaving a growing backlog.
func (x *indexer) close(s *Store) {
	if x == nil {
		return
	}
	x.stop()
	<-x.done
	if x.writes.Load() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeIndexTimeout)
	defer cancel()
	if n, err := s.indexBatch(ctx, s.cfg.IndexBatch); err != nil {
		x.errs.Add(1)
	} else {
		x.indexed.Add(int64(n))
	}
}

// closeIndexTimeout bounds the batch close indexes.
const closeIndexTimeout = 5 * time.Second

func (x *indexer) run(ctx context.Context, s *Store) {
	defer close(x.done)
	t := time.NewTicker(s.cfg.IndexInterval)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			start, seen := time.Now(), x.writes.Load()
			n, err := s.indexBatch(ctx, s.cfg.IndexBatch)
			if err != nil {
				if ctx.Err() == nil {
					x.errs.Add(1) // the next wake or tick retries
				}
				break
			}
			x.indexed.Add(int64(n))
			if n < s.cfg.IndexBatch {
				if s.cfg.indexerIdle != nil {
					s.cfg.indexerIdle()
				}
				break
			}
			if x.writes.Load() != seen && !x.pause(ctx, writerShare*time.Since(start)) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-x.kick:
		case <-t.C:
		}
	}
}

// writerShare is how many times its own duration the indexer pauses
// after a batch that ran while this Store's writers committed: under a
// write burst (a sync backlog draining) the indexer takes about a fifth
// of the time it could, so acknowledgements are not slowed by HNSW
// inserts, yet the backlog still shrinks; once the writes stop it runs
// flat out.
const writerShare = 4

// pause waits d, or until ctx is done (then it reports false).
func (x *indexer) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// IndexPending moves up to limit unindexed rows into their HNSW index, in
// one transaction, and returns how many it moved. Rows another
// transaction holds are skipped. The background indexer calls it
// continuously; call it directly to index without one (Config.IndexInterval
// negative) or to finish a backlog before measuring search.
func (s *Store) IndexPending(ctx context.Context, limit int) (int, error) {
	if s.closed.Load() {
		return 0, core.ErrClosed
	}
	if limit < 0 {
		return 0, fmt.Errorf("pgadapter: index pending: %w: limit %d is negative", core.ErrInvalid, limit)
	}
	return s.indexBatch(ctx, limit)
}

// pendingRows selects the memories waiting for the indexer: unindexed,
// of a dimension that has an index (a row of a dimension over
// maxIndexDim stays unindexed and is always scanned exactly).
const pendingRows = "NOT indexed AND embedding_dim IN (SELECT dim FROM vector_indexes)"

func (s *Store) indexBatch(ctx context.Context, limit int) (int, error) {
	if limit == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `WITH b AS (SELECT id FROM memories WHERE `+pendingRows+`
			LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE memories m SET indexed = true FROM b WHERE m.id = b.id`, limit)
	if err != nil {
		if errors.Is(err, context.Canceled) && s.closed.Load() {
			return 0, core.ErrClosed
		}
		return 0, translate("index pending", err)
	}
	return int(tag.RowsAffected()), nil
}

// IndexBacklog returns how many rows wait for the indexer.
func (s *Store) IndexBacklog(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, core.ErrClosed
	}
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM memories WHERE "+pendingRows).Scan(&n); err != nil {
		return 0, translate("index backlog", err)
	}
	return n, nil
}
