package pgadapter

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

// TestTerminateBackends kills every application backend several times
// while writers run (TESTING.md B2 #12): the pool recovers, no
// acknowledged write is lost or duplicated, and any error a writer sees is
// classed retryable.
func TestTerminateBackends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := testSchema(t)
	u, err := url.Parse(testURL(t))
	require.NoError(t, err)
	q := u.Query()
	app := "kill_" + schema
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	s := openTest(t, func(c *Config) { c.DSN = u.String(); c.Schema = schema; c.MaxConns = 8 })
	p, err := core.New(s, core.Config{Device: "setup"}).CreateProject(ctx, core.Project{Name: "k", Path: "/k", EmbeddingModel: "m", EmbeddingDim: 8})
	require.NoError(t, err)

	const writers, rounds = 6, 6
	var (
		stop     atomic.Bool
		mu       sync.Mutex
		acked    = map[core.ID]string{}
		failures []error
		wg       sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := core.New(s, core.Config{Device: fmt.Sprintf("w%d", w)})
			r := mrand.New(mrand.NewPCG(uint64(w), 1))
			for i := 0; !stop.Load(); i++ {
				content := fmt.Sprintf("writer %d write %d", w, i)
				m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: content, Embedding: randUnit(r, 8)})
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					acked[m.ID] = content
				}
				mu.Unlock()
			}
		}()
	}
	admin := adminConn(t)
	killed := 0
	for range rounds {
		time.Sleep(150 * time.Millisecond) // let writers make progress between kill rounds
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n))
		killed += n
	}
	time.Sleep(150 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("killed %d backends in %d rounds; %d writes acknowledged; %d failures; %d retries", killed, rounds, len(acked), len(failures), s.Stats().Retries)
	require.Positive(t, killed)
	for _, err := range failures {
		require.True(t, Retryable(err) || errors.Is(err, ErrCommitUnknown), "not retryable: %v", err)
	}

	// Recovered: every acknowledged write is there exactly once, and every
	// device's change log has no gaps.
	db := core.New(s, core.Config{Device: "check"})
	all, err := db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	byContent := map[string]int{}
	for _, m := range all {
		byContent[m.Content]++
	}
	for id, c := range acked {
		require.Equal(t, 1, byContent[c], "acknowledged write %s (%q) lost or duplicated", id, c)
	}
	for c, n := range byContent {
		require.Equal(t, 1, n, "duplicate %q", c)
	}
	require.NoError(t, s.View(ctx, func(r core.ReadTx) error {
		for w := range writers {
			dev := fmt.Sprintf("w%d", w)
			last, err := r.LastSeq(ctx, dev)
			require.NoError(t, err)
			var n uint64
			require.NoError(t, r.(*tx).tx.QueryRow(ctx, "SELECT count(*) FROM changes WHERE device = $1", dev).Scan(&n))
			require.Equal(t, last, n, "gap in %s's change log", dev)
		}
		return nil
	}))
	// Statistics survived the kills too.
	var docs int64
	require.NoError(t, s.pool.QueryRow(ctx, "SELECT docs FROM project_stats WHERE project_id = $1", string(p.ID)).Scan(&docs))
	require.Equal(t, int64(len(all)), docs)
}

// TestAccessHammer: 32 goroutines (on 4 devices) bump the same memories'
// access counts; the final counters are exact (TESTING.md B2 #16).
func TestAccessHammer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, func(c *Config) { c.MaxConns = 16 })
	setup := core.New(s, core.Config{Device: "setup"})
	p, err := setup.CreateProject(ctx, core.Project{Name: "h", Path: "/h", EmbeddingModel: "m", EmbeddingDim: 4})
	require.NoError(t, err)
	var ids []core.ID
	for i := range 3 {
		m, err := setup.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprint("hot ", i), Embedding: []float32{1, float32(i), 0, 0}})
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	const goroutines, devices, iters = 32, 4, 20
	dbs := make([]*core.DB, devices)
	for i := range dbs {
		dbs[i] = core.New(s, core.Config{Device: fmt.Sprintf("d%d", i)})
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*iters)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := dbs[g%devices]
			r := mrand.New(mrand.NewPCG(uint64(g), 2))
			for range iters {
				// Two memories in a random order: concurrent transactions lock
				// them in different orders, so deadlocks happen and are retried.
				a, b := ids[r.IntN(len(ids))], ids[r.IntN(len(ids))]
				if _, err := db.RecordAccess(ctx, a, b); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var total int64
	perDevice := map[string]int64{}
	for _, id := range ids {
		m, err := setup.Memory(ctx, id)
		require.NoError(t, err)
		var sum int64
		for d, n := range m.AccessByDevice {
			sum += n
			perDevice[d] += n
		}
		require.Equal(t, sum, m.AccessCount)
		total += m.AccessCount
	}
	require.Equal(t, int64(goroutines*iters*2), total, "lost updates")
	for i := range devices {
		require.Equal(t, int64(goroutines/devices*iters*2), perDevice[fmt.Sprintf("d%d", i)])
	}
	t.Logf("retries: %d", s.Stats().Retries)
}

// TestConcurrentWritesOneDB checks what ConcurrentWrites promises core.DB:
// one DB's write transactions run at once (a push from device b commits
// while device a's is still open), and its own device's sequence stays
// gapless when many of its writes race.
func TestConcurrentWritesOneDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTest(t, func(c *Config) { c.MaxConns = 12 })
	db := core.New(s, core.Config{Device: "server"})
	proj := core.Project{Name: "c", Path: "/c", EmbeddingModel: "m", EmbeddingDim: 4}
	_, err := db.CreateProject(ctx, proj)
	require.NoError(t, err)

	// The changes of two other devices (their project, a memory), made by
	// edges of their own.
	remote := map[string][]core.Change{}
	for _, dev := range []string{"a", "b"} {
		edge := core.New(memstore.New(), core.Config{Device: dev})
		p, err := edge.CreateProject(ctx, proj)
		require.NoError(t, err)
		_, err = edge.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "from " + dev, Embedding: []float32{1, 0, 0, 0}})
		require.NoError(t, err)
		cs, err := edge.Changes(ctx, 0, 10, "")
		require.NoError(t, err)
		remote[dev] = cs
	}
	apply := func(ctx context.Context, cs []core.Change, hold <-chan struct{}, in chan<- struct{}) error {
		return db.Update(ctx, func(tx *core.Tx) error {
			res, err := tx.ApplyChanges(ctx, cs)
			if err != nil {
				return err
			}
			if r := res[len(res)-1]; r.Status != core.StatusApplied {
				return fmt.Errorf("%s/%d: %s %s", r.Device, r.Seq, r.Status, r.Reason)
			}
			if in != nil {
				close(in)
				<-hold
			}
			return nil
		})
	}
	// The project changes first (both update the project's row), then the
	// memories, which have nothing in common.
	for _, dev := range []string{"a", "b"} {
		cs := remote[dev]
		require.NoError(t, apply(ctx, cs[:len(cs)-1], nil, nil))
		remote[dev] = cs[len(cs)-1:]
	}
	hold, in := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	go func() { aDone <- apply(ctx, remote["a"], hold, in) }()
	select {
	case <-in:
	case err := <-aDone:
		require.NoError(t, err)
		require.FailNow(t, "a's transaction ended before it was held")
	}
	bDone := make(chan error, 1)
	go func() { bDone <- apply(ctx, remote["b"], nil, nil) }()
	select {
	case err := <-bDone:
		close(hold)
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		close(hold)
		require.FailNow(t, "b's transaction waited for a's to end")
	}
	require.NoError(t, <-aDone)

	const writers, each = 8, 10
	p, err := db.Project(ctx, core.ProjectIDFor(proj.Name))
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("w%d %d", w, i), Embedding: []float32{0, 1, 0, 0}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	cs, err := db.Changes(ctx, 0, 1000, "")
	require.NoError(t, err)
	var seqs []uint64
	for _, c := range cs {
		if c.Device == "server" {
			seqs = append(seqs, c.Seq)
		}
	}
	slices.Sort(seqs)
	require.Len(t, seqs, writers*each+1) // and the project
	for i, q := range seqs {
		require.Equal(t, uint64(i+1), q, "the server's sequence has a gap or a duplicate")
	}
	t.Logf("retries: %d", s.Stats().Retries)
}

// TestApplyAfterRunsBeside: a transaction applying a device's next batch
// with ApplyChangesAfter does its work while the transaction applying the
// batch before is still open, and commits only after it: when that one
// commits, so does the next; when it rolls back, the next fails with
// ErrSeqGap and records nothing. The check of the assumed seq also holds
// when a read in the middle of the batch (a memory put reading its
// project after an access change was logged) runs it: the failure is not
// taken for a rejection of that put.
func TestApplyAfterRunsBeside(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		accessFirst bool // the second batch starts with an access change, so its check runs mid-batch
		commit      bool // the first transaction commits
	}{
		{"puts, first commits", false, true},
		{"puts, first rolls back", false, false},
		{"access first, first commits", true, true},
		{"access first, first rolls back", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := core.New(openTest(t), core.Config{Device: "server"})
			edge := core.New(memstore.New(), core.Config{Device: "e"})
			p, err := edge.CreateProject(ctx, core.Project{Name: "b", Path: "/b", EmbeddingModel: "m", EmbeddingDim: 4})
			require.NoError(t, err)
			var m0 core.ID
			for i := range 6 {
				if i == 4 && tc.accessFirst {
					_, err = edge.RecordAccess(ctx, m0)
					require.NoError(t, err)
				}
				m, err := edge.Remember(ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("m %d", i), Embedding: []float32{1, float32(i), 0, 0}})
				require.NoError(t, err)
				if i == 0 {
					m0 = m.ID
				}
			}
			cs, err := edge.Changes(ctx, 0, 10, "")
			require.NoError(t, err)
			_, err = db.ApplyChanges(ctx, cs[:2]) // the project, m0
			require.NoError(t, err)

			first, second := cs[2:5], cs[5:] // seqs 3-5, then the rest
			held, release := make(chan struct{}), make(chan struct{})
			firstDone := make(chan error, 1)
			go func() {
				firstDone <- db.Update(ctx, func(tx *core.Tx) error {
					if _, err := tx.ApplyChanges(ctx, first); err != nil {
						return err
					}
					close(held)
					<-release
					if !tc.commit {
						return errors.New("roll back")
					}
					return nil
				})
			}()
			<-held
			merged := make(chan struct{})
			secondDone := make(chan error, 1)
			go func() {
				secondDone <- db.Update(ctx, func(tx *core.Tx) error {
					res, err := tx.ApplyChangesAfter(ctx, second, "e", 5)
					if err != nil {
						return err
					}
					for _, r := range res {
						if r.Status != core.StatusApplied {
							return fmt.Errorf("%s/%d: %s %s", r.Device, r.Seq, r.Status, r.Reason)
						}
					}
					close(merged)
					return nil
				})
			}()
			if !tc.accessFirst {
				// All of its changes merged without waiting for the first
				// transaction (LastSeq would have waited).
				select {
				case <-merged:
				case err := <-secondDone:
					close(release)
					require.FailNow(t, "the second transaction ended while the first was open", "%v", err)
				case <-time.After(15 * time.Second):
					close(release)
					require.FailNow(t, "the second transaction waited for the first to merge its changes")
				}
			}
			select {
			case err := <-secondDone:
				close(release)
				require.FailNow(t, "the second transaction ended before the first", "%v", err)
			default:
			}
			close(release)
			firstErr, secondErr := <-firstDone, <-secondDone
			var last uint64
			require.NoError(t, db.Backend().View(ctx, func(r core.ReadTx) error {
				var err error
				last, err = r.LastSeq(ctx, "e")
				return err
			}))
			ms, err := db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
			require.NoError(t, err)
			if tc.commit {
				require.NoError(t, firstErr)
				require.NoError(t, secondErr)
				assert.EqualValues(t, cs[len(cs)-1].Seq, last)
				assert.Len(t, ms, 6)
				return
			}
			require.Error(t, firstErr)
			require.ErrorIs(t, secondErr, core.ErrSeqGap)
			assert.EqualValues(t, 2, last)
			assert.Len(t, ms, 1)
		})
	}
}
