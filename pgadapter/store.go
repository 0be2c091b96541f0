package pgadapter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/athena-edge/athena-edge/core"
)

// Store is a [core.Backend] on PostgreSQL with pgvector. It is safe for
// concurrent use by any number of goroutines and by several processes
// sharing one database.
type Store struct {
	pool   *pgxpool.Pool
	cfg    Config
	closed atomic.Bool
	// retries counts transaction re-runs (for tests and monitoring).
	retries atomic.Int64
	// idx is the background indexer; nil when Config.IndexInterval < 0.
	idx *indexer
}

var _ core.Backend = (*Store)(nil)

// ErrCommitUnknown reports that the connection failed while COMMIT was in
// flight and the outcome could not be determined afterwards. The
// transaction may or may not have committed; it is not retryable blindly.
var ErrCommitUnknown = errors.New("pgadapter: commit outcome unknown")

// New connects, migrates the schema (unless cfg.SkipMigrations) and
// returns a Store. ctx bounds the connection and the migrations only.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.dsn())
	if err != nil {
		return nil, fmt.Errorf("pgadapter: new: %w: %w", core.ErrInvalid, err)
	}
	// The store binds maps, arrays and vectors whose encoding depends on
	// the parameter types PostgreSQL reports, which these modes skip.
	untyped := map[pgx.QueryExecMode]string{pgx.QueryExecModeExec: "exec", pgx.QueryExecModeSimpleProtocol: "simple_protocol"}
	if name, ok := untyped[pc.ConnConfig.DefaultQueryExecMode]; ok {
		return nil, fmt.Errorf("pgadapter: new: %w: default_query_exec_mode %s is not supported, use cache_statement "+
			"(the default), cache_describe or describe_exec", core.ErrInvalid, name)
	}
	pc.MinConns, pc.MaxConns = cfg.MinConns, cfg.MaxConns
	rp := pc.ConnConfig.RuntimeParams
	rp["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize() + ", public"
	if cfg.StatementTimeout > 0 {
		rp["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	}
	// JIT compilation costs 50-150 ms per query and never pays off for
	// these short statements; forcing the HNSW index (enable_seqscan off)
	// inflates estimated costs past jit_above_cost, so it would always fire.
	rp["jit"] = "off"
	if rp["application_name"] == "" {
		rp["application_name"] = "athena-edge"
	}
	// Migrate on a single connection before the pool registers types: the
	// extension may not exist yet.
	if !cfg.SkipMigrations {
		conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig.Copy())
		if err != nil {
			return nil, fmt.Errorf("pgadapter: connect: %w", err)
		}
		err = migrate(ctx, conn, cfg.Schema)
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("pgadapter: migrate: %w", err)
		}
	}
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		return registerTypes(ctx, c)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgadapter: new pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgadapter: ping: %w", err)
	}
	s := &Store{pool: pool, cfg: cfg}
	s.startIndexer()
	return s, nil
}

// registerTypes registers pgvector's binary codec for the vector type, and
// arrayCodec for text[] and vector[].
func registerTypes(ctx context.Context, c *pgx.Conn) error {
	var oid, arrOID *uint32
	if err := c.QueryRow(ctx, "SELECT to_regtype('vector')::oid, to_regtype('_vector')::oid").Scan(&oid, &arrOID); err != nil {
		return err
	}
	if oid == nil {
		return errors.New("pgadapter: type vector not found (is pgvector installed and public on the search_path?)")
	}
	registerCodecs(c.TypeMap(), *oid, arrOID)
	return nil
}

// registerCodecs registers the vector type (OID oid) and its array type
// (arrOID, if the database has one) in tm, and arrayCodec for text[] and
// vector[].
func registerCodecs(tm *pgtype.Map, oid uint32, arrOID *uint32) {
	t := &pgtype.Type{Name: "vector", OID: oid, Codec: &pgxvec.VectorCodec{}}
	tm.RegisterType(t)
	if arrOID != nil {
		tm.RegisterType(&pgtype.Type{Name: "_vector", OID: *arrOID,
			Codec: arrayCodec{Codec: &pgtype.ArrayCodec{ElementType: t}, elemOID: oid}})
	}
	if text, ok := tm.TypeForOID(pgtype.TextArrayOID); ok {
		tm.RegisterType(&pgtype.Type{Name: text.Name, OID: text.OID, Codec: arrayCodec{Codec: text.Codec, elemOID: pgtype.TextOID}})
	}
}

// Close closes the pool. Later calls return core.ErrClosed.
func (s *Store) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.idx.close(s)
		s.pool.Close()
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return core.ErrClosed
	}
	if err := s.pool.Ping(ctx); err != nil {
		return translate("ping", err)
	}
	return nil
}

// Health is the seed's health check: the database answers a query and
// pgvector is installed. It returns nil when healthy.
func (s *Store) Health(ctx context.Context) error {
	if s.closed.Load() {
		return core.ErrClosed
	}
	var v string
	if err := s.pool.QueryRow(ctx, "SELECT extversion FROM pg_extension WHERE extname = 'vector'").Scan(&v); err != nil {
		return translate("health", err)
	}
	return nil
}

// PoolStats is a snapshot of the connection pool, the seed's monitoring
// fields.
type PoolStats struct {
	Size        int32         `json:"size"`         // open connections (idle + in use + being opened)
	Idle        int32         `json:"idle"`         // idle connections
	InUse       int32         `json:"in_use"`       // connections handed out
	Waiting     int64         `json:"waiting"`      // acquires waiting for a connection right now (approximated by in-flight constructions)
	Max         int32         `json:"max"`          // MaxConns
	Acquires    int64         `json:"acquires"`     // total successful acquires
	EmptyWaits  int64         `json:"empty_waits"`  // acquires that had to wait for a connection
	WaitTime    time.Duration `json:"wait_time"`    // total time spent waiting in acquires
	Retries     int64         `json:"retries"`      // transactions re-run by Update
	NewConns    int64         `json:"new_conns"`    // connections opened since New
	ClosedConns int64         `json:"closed_conns"` // connections closed as broken or expired
	Indexed     int64         `json:"indexed"`      // rows the background indexer moved into the HNSW index
	IndexErrors int64         `json:"index_errors"` // indexer batches that failed (each is retried)
}

// Stats returns pool statistics.
func (s *Store) Stats() PoolStats {
	st := s.pool.Stat()
	ps := PoolStats{
		Size: st.TotalConns(), Idle: st.IdleConns(), InUse: st.AcquiredConns(),
		Waiting: int64(st.ConstructingConns()), Max: st.MaxConns(),
		Acquires: st.AcquireCount(), EmptyWaits: st.EmptyAcquireCount(), WaitTime: st.EmptyAcquireWaitTime(),
		Retries: s.retries.Load(), NewConns: st.NewConnsCount(),
		ClosedConns: st.MaxLifetimeDestroyCount() + st.MaxIdleDestroyCount(),
	}
	if s.idx != nil {
		ps.Indexed, ps.IndexErrors = s.idx.indexed.Load(), s.idx.errs.Load()
	}
	return ps
}

// Pool returns the underlying pool, for benchmarks and administration.
// Statements run on it bypass the store's retry and translation.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Update runs fn in a READ COMMITTED write transaction and commits.
//
// Reads of memories by ID and of tombstones inside fn take a
// transaction-scoped advisory lock on each ID first, so read-modify-write
// of one memory is serialized across connections and processes (no lost
// updates) without SERIALIZABLE's aborts. Serialization failures,
// deadlocks and connection failures before COMMIT re-run fn, up to
// Config.MaxRetries times with jittered exponential backoff. If the
// connection fails during COMMIT, Update asks the server whether the
// transaction committed (pg_xact_status) and returns nil if it did, re-runs
// fn if it did not, and returns an error wrapping ErrCommitUnknown if it
// cannot tell.
func (s *Store) Update(ctx context.Context, fn func(core.WriteTx) error) error {
	return s.run(ctx, false, func(t *tx) error { return fn(t) })
}

// View runs fn in a read-only REPEATABLE READ transaction (one snapshot).
func (s *Store) View(ctx context.Context, fn func(core.ReadTx) error) error {
	return s.run(ctx, true, func(t *tx) error { return fn(t) })
}

func (s *Store) run(ctx context.Context, readOnly bool, fn func(*tx) error) error {
	var prelock []string
	for attempt := 0; ; attempt++ {
		if s.closed.Load() {
			return core.ErrClosed
		}
		err, retry := s.attempt(ctx, readOnly, prelock, fn)
		if err == nil || !retry || attempt >= s.cfg.MaxRetries || ctx.Err() != nil {
			return err
		}
		var lb *lockBusyError
		if errors.As(err, &lb) {
			prelock = append(prelock, lb.ids...)
		}
		s.retries.Add(1)
		backoff := min(2*time.Millisecond<<min(attempt, 8), 250*time.Millisecond)
		t := time.NewTimer(rand.N(backoff) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// attempt runs fn once. retry reports whether re-running fn is safe and
// useful.
func (s *Store) attempt(ctx context.Context, readOnly bool, prelock []string, fn func(*tx) error) (err error, retry bool) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		if s.closed.Load() {
			return core.ErrClosed, false
		}
		err = translate("acquire", err)
		return err, Retryable(err)
	}
	defer conn.Release()
	opts := pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	if readOnly {
		opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	}
	ptx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		err = translate("begin", err)
		return err, Retryable(err)
	}
	t := &tx{s: s, tx: &pipeTx{Tx: ptx}, write: !readOnly, prelock: prelock}
	t.tx.stats = t.addStats
	if err := fn(t); err != nil {
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		// fn's error is returned as is (it already went through translate
		// where it came from the database).
		return err, Retryable(err)
	}
	// A write transaction learns its own ID, to find out the outcome of a
	// COMMIT whose answer is lost; nil when nothing was written.
	var xid *uint64
	xp := &xid
	if readOnly {
		xp = nil
	}
	if err := t.flush(ctx, xp); err != nil {
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		return err, Retryable(err)
	}
	if err := ctx.Err(); err != nil { // a cancelled transaction never commits
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		return err, false
	}
	if err := ptx.Commit(ctx); err != nil {
		if xid == nil || isServerError(err) {
			// Nothing written, or the server refused the commit: it did not
			// happen.
			err = translate("commit", err)
			return err, Retryable(err)
		}
		err, retry := s.resolveCommit(ctx, *xid, err)
		if err == nil && t.unindexed {
			s.idx.wake()
		}
		return err, retry
	}
	if t.unindexed {
		s.idx.wake()
	}
	return nil, false
}

// resolveCommit finds out whether transaction xid committed after its
// COMMIT failed on the wire.
func (s *Store) resolveCommit(ctx context.Context, xid uint64, cause error) (error, bool) {
	for i := 0; i < 50; i++ {
		var status *string
		err := s.pool.QueryRow(ctx, "SELECT pg_xact_status($1::text::xid8)", strconv.FormatUint(xid, 10)).Scan(&status)
		if err == nil && status != nil {
			switch *status {
			case "committed":
				return nil, false
			case "aborted":
				err := translate("commit", cause)
				return err, true
			}
			// "in progress": the terminated backend has not finished yet.
		}
		if ctx.Err() != nil {
			break
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return fmt.Errorf("pgadapter: commit: %w: %w", ErrCommitUnknown, cause), false
}

func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Severity != "FATAL" && pe.Severity != "PANIC"
}

// Retryable reports whether err is transient: re-running the whole
// transaction may succeed. True for serialization failures (40001),
// deadlocks (40P01), lost or refused connections (class 08, admin
// shutdown 57P01-57P03, and any error pgconn marks safe to retry), pool
// acquire failures caused by those, and a lock that Update gave up waiting
// for to avoid a deadlock. False for everything else,
// including ErrCommitUnknown, context errors and statement timeouts.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrCommitUnknown) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03",
			len(pe.Code) == 5 && pe.Code[:2] == "08":
			return true
		}
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	// A connection that died mid-statement (the server terminated the
	// backend): pgx reports an I/O error and closes the connection. Inside
	// a transaction that has not sent COMMIT the transaction is lost, so
	// re-running it is safe.
	var ioe interface{ Timeout() bool }
	if errors.As(err, &ioe) {
		return true
	}
	return errors.Is(err, errConnLost) || errors.Is(err, errLockBusy)
}

var (
	errConnLost = errors.New("connection lost")
	// errLockBusy: a transaction holding locks found another one it needs
	// taken; re-running it avoids a deadlock.
	errLockBusy = errors.New("lock busy (would risk a deadlock)")
)

// translate maps driver errors to core's sentinels, keeping the cause.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("pgadapter: %s: %w: %w", op, core.ErrNotFound, err)
	case errors.As(err, &pe):
		switch {
		case pe.Code == "23505":
			return fmt.Errorf("pgadapter: %s: %w: %w", op, core.ErrConflict, err)
		case pe.Code == "23503" && pe.ConstraintName == "memories_project_dim_fkey",
			pe.Code == "23514" && pe.ConstraintName == "memories_embedding_dim_check",
			pe.Code == "22000" && (contains(pe.Message, "dimensions")):
			return fmt.Errorf("pgadapter: %s: %w: %w", op, core.ErrDimMismatch, err)
		case pe.Code == "23503" || pe.Code == "23502" || pe.Code == "23514" || pe.Code == "22P02" ||
			pe.Code == "22021" || pe.Code == "22003" || pe.Code == "22023" || pe.Code == "54000":
			return fmt.Errorf("pgadapter: %s: %w: %w", op, core.ErrInvalid, err)
		}
	case pgconn.Timeout(err) && !errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("pgadapter: %s: %w: %w", op, errConnLost, err)
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && isConnError(err) {
		return fmt.Errorf("pgadapter: %s: %w: %w", op, errConnLost, err)
	}
	return fmt.Errorf("pgadapter: %s: %w", op, err)
}

// isConnError reports a broken connection that is not a server error.
func isConnError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false
	}
	if errors.Is(err, pgx.ErrTxClosed) || errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne interface{ Timeout() bool } // net.Error
	if errors.As(err, &ne) {
		return true
	}
	return contains(err.Error(), "conn closed") || contains(err.Error(), "unexpected EOF") || contains(err.Error(), "connection reset")
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
