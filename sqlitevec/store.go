package sqlitevec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/vfs/memdb" // registers the "memdb" VFS for in-memory stores

	"github.com/athena-edge/athena-edge/core"
)

// Defaults for [Config] fields left zero.
const (
	DefaultBusyTimeout    = 5 * time.Second
	DefaultSynchronous    = "FULL"
	DefaultReaders        = 4
	DefaultExactThreshold = 4096
	DefaultOversample     = 20
	DefaultMaxDFFraction  = 0.05
	DefaultMinCappedDF    = 1000
	defaultMinShortlist   = 1000
	// shortlistRowsPer is the matching rows per shortlisted row: the
	// shortlist is at least 0.4% of the rows that match. Up to 250K rows it
	// changes nothing (1,000). At 1M (docs/BENCHMARKS.md) a 1,000-row
	// shortlist (0.1%) gave recall@10 0.782, 2,500 rows 0.974, 4,000 rows
	// 0.999 at 25.5 ms hybrid p50, 10,000 rows 0.999 at 32.2 ms.
	shortlistRowsPer        = 250
	defaultKeywordOverfetch = 2
)

// Config configures [Open]. The zero value opens a fresh in-memory
// database with the defaults below. Config is a plain value; Open copies it.
type Config struct {
	// Path is the database file. "" opens a private in-memory database
	// (the ncruces "memdb" VFS), unique to this Open and gone on Close.
	Path string
	// BusyTimeout is how long a connection waits for a lock held by another
	// connection or process before failing with SQLITE_BUSY. Default 5s.
	BusyTimeout time.Duration
	// Synchronous is PRAGMA synchronous: "FULL" (default), "EXTRA",
	// "NORMAL" or "OFF". With FULL every acknowledged commit is fsynced to
	// the write-ahead log before Update returns (see the package docs'
	// Durability section); NORMAL, ncruces' default for WAL, may lose the
	// last commits on power loss.
	Synchronous string
	// Readers is the number of reader connections View draws from, so up to
	// Readers read transactions run at once, alongside the writer.
	// Default 4.
	Readers int
	// CacheDir holds wazero's compilation cache, so that a warm start skips
	// compiling SQLite to machine code. "" means os.UserCacheDir()/
	// athena-edge/wazero; "-" disables the cache. A missing directory is
	// created; one that cannot be created or written is ignored (no cache),
	// never an error. The first Open in a process fixes the cache for the
	// whole process (see runtime.go).
	CacheDir string

	// ExactThreshold is the number of rows matching a vector query's
	// filter at or below which the vector leg scans them exactly instead of
	// using the approximate index. Default 4096.
	ExactThreshold int
	// Oversample is how many candidates per wanted result the approximate
	// vector leg shortlists by Hamming distance of sign-bit codes before
	// rescoring them (at least 1000 and at least 0.4% of the matching rows
	// in all). Default 20.
	Oversample int
	// MaxDFFraction and MinCappedDF cap keyword terms: a term found in more
	// than max(MinCappedDF, MaxDFFraction × documents of the project)
	// documents is left out of the FTS5 MATCH (core still scores it on
	// every candidate). Defaults 0.05 and 1000. A negative MaxDFFraction
	// disables the cap.
	MaxDFFraction float64
	MinCappedDF   int
	// CheckpointPages is the write-ahead log's size in pages (16 KiB each)
	// at which a background connection copies the log into the database
	// file, beside the writer, instead of a commit doing it before it
	// returns (see the package docs' Checkpoints section). Default
	// DefaultCheckpointPages; a negative value leaves checkpoints to
	// SQLite's automatic one, inside the commit that takes the log past
	// 1000 pages.
	CheckpointPages int

	// KeywordFTS answers the keyword leg with FTS5 (the durable index)
	// instead of the in-memory postings. Both propose documents by BM25
	// over core's tokens; FTS5 applies the document-frequency cap above,
	// the postings do not need one. See the package docs.
	KeywordFTS bool
}

func (c Config) withDefaults() Config {
	if c.BusyTimeout <= 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.Synchronous == "" {
		c.Synchronous = DefaultSynchronous
	}
	if c.Readers <= 0 {
		c.Readers = DefaultReaders
	}
	if c.ExactThreshold <= 0 {
		c.ExactThreshold = DefaultExactThreshold
	}
	if c.Oversample <= 0 {
		c.Oversample = DefaultOversample
	}
	if c.MaxDFFraction == 0 {
		c.MaxDFFraction = DefaultMaxDFFraction
	}
	if c.MinCappedDF <= 0 {
		c.MinCappedDF = DefaultMinCappedDF
	}
	if c.CheckpointPages == 0 {
		c.CheckpointPages = DefaultCheckpointPages
	}
	return c
}

// pageSize is the page size of new database files. Large pages mean fewer
// WAL frames (one write each) per ingested memory, and a row of a 768-d
// embedding (3 KiB) and a long text stays on its page. 8 KiB pages, which
// halve what a search reads per candidate, measured within the noise of
// 16 KiB at 100K memories (docs/BENCHMARKS.md).
const pageSize = 16384

// OpenStats reports what Open spent its time on.
type OpenStats struct {
	Total    time.Duration // the whole Open
	Index    time.Duration // rebuilding the vector index and keyword statistics from rows
	Memories int           // memories indexed
	Snapshot bool          // the index came from the snapshot file, not from rows
	CacheDir string        // the wazero compilation cache in use, "" for none
	InMemory bool
}

// Store is the SQLite edge store, a [core.Backend]. It holds one writer
// connection (Update runs one transaction at a time), a pool of reader
// connections (View), an in-memory vector index and per-project keyword
// statistics. A Store is safe for concurrent use by multiple goroutines.
type Store struct {
	cfg     Config
	name    string // the path, or ":memory:"
	w       *conn
	writeMu sync.Mutex
	// Reader connections: tokens holds one token per connection View may
	// use (Config.Readers); idle is a stack of open ones. The most
	// recently used connection is reused first, so a sequential workload
	// keeps one warm page cache and one wasm heap instead of cycling
	// through all of them, and a connection is opened only when that many
	// run at once.
	tokens chan struct{}
	idleMu sync.Mutex
	idle   []*conn
	uri    string
	flags  sqlite3.OpenFlag
	idx    *index
	stats  OpenStats
	// applying is closed when the last committed transaction's index
	// operations are in idx: Update hands them to a goroutine after
	// COMMIT, so the next transaction's SQLite work runs beside them on
	// the other core. Readers of idx go through index(), which waits.
	applyMu  sync.Mutex
	applying chan struct{}
	// gen is the index_gen the in-memory index reflects, or -1 when
	// unknown: then Close writes no snapshot. logPos is the change-log
	// position it reflects. Both are guarded by catchMu (see catchup.go).
	catchMu sync.Mutex
	gen     int64
	logPos  int64
	// snapGen and snapPos are the generation and change-log position of
	// the snapshot file on disk, as far as this store knows (snapGen -1:
	// none). Close rewrites the snapshot only when the index has moved
	// more than snapSlack changes past it: a later Open catches up from
	// the change log.
	snapGen, snapPos int64
	// ckpt copies the write-ahead log into the database file beside the
	// writer (checkpoint.go); nil for an in-memory database or when
	// Config.CheckpointPages is negative.
	ckpt *checkpointer

	mu     sync.Mutex
	cond   *sync.Cond
	closed bool
	active int
}

var _ core.Backend = (*Store)(nil)
var _ core.Initializer = (*Store)(nil)
var _ core.Namer = (*Store)(nil)

// Open opens (creating if needed) the database cfg.Path, migrates its
// schema and rebuilds the in-memory indexes from its rows. A file that is
// not an SQLite database, or is corrupt, fails with an error naming it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	start := time.Now()
	cfg = cfg.withDefaults()
	switch strings.ToUpper(cfg.Synchronous) {
	case "OFF", "NORMAL", "FULL", "EXTRA":
		cfg.Synchronous = strings.ToUpper(cfg.Synchronous)
	default:
		return nil, fmt.Errorf("sqlitevec: open: synchronous %q: %w (want OFF, NORMAL, FULL or EXTRA)", cfg.Synchronous, core.ErrInvalid)
	}
	cacheDir, err := initRuntime(cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, name: cfg.Path, tokens: make(chan struct{}, cfg.Readers), snapGen: -1}
	s.cond = sync.NewCond(&s.mu)
	s.stats.CacheDir = cacheDir
	uri := cfg.Path
	flags := sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE | sqlite3.OPEN_NOMUTEX
	if cfg.Path == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		uri = "file:/athena-edge-" + hex.EncodeToString(b[:]) + "?vfs=memdb"
		flags |= sqlite3.OPEN_URI
		s.name = ":memory:"
		s.stats.InMemory = true
	}
	fail := func(op string, err error) (*Store, error) {
		s.closeConns()
		if errors.Is(err, sqlite3.NOTADB) || errors.Is(err, sqlite3.CORRUPT) {
			return nil, fmt.Errorf("sqlitevec: open %s: not an SQLite database or corrupt: %w", s.name, err)
		}
		return nil, fmt.Errorf("sqlitevec: open %s: %s: %w", s.name, op, err)
	}
	if s.w, err = openConn(ctx, uri, flags); err != nil {
		return fail("connect", err)
	}
	if err := s.setup(s.w, true); err != nil {
		return fail("configure", err)
	}
	if err := migrate(ctx, s.w); err != nil {
		return fail("migrate", err)
	}
	s.uri, s.flags = uri, flags
	// One reader now, so that a database readers cannot open fails Open;
	// the others when concurrent Views need them.
	r, err := s.openReader(ctx)
	if err != nil {
		return fail("connect reader", err)
	}
	s.idle = append(s.idle, r)
	if cfg.Path != "" && cfg.CheckpointPages > 0 {
		if err := s.startCheckpointer(ctx); err != nil {
			return fail("connect checkpointer", err)
		}
	}
	t := time.Now()
	if err := s.loadIndex(ctx); err != nil {
		return fail("build index", err)
	}
	s.stats.Index = time.Since(t)
	s.stats.Memories = s.idx.count()
	s.stats.Total = time.Since(start)
	return s, nil
}

// loadIndex reads the index snapshot if it matches the database's
// generation, and otherwise rebuilds the index from rows, all in one read
// transaction on the writer connection.
func (s *Store) loadIndex(ctx context.Context) (err error) {
	c := s.w
	if err := c.c.Exec(`BEGIN DEFERRED`); err != nil {
		return err
	}
	defer func() {
		if eerr := c.c.Exec(`COMMIT`); err == nil {
			err = eerr
		}
	}()
	gen, err := c.indexGen()
	if err != nil {
		return err
	}
	maxPos, err := c.maxChangePos()
	if err != nil {
		return err
	}
	if s.cfg.Path != "" {
		ix, snapGen, snapPos, err := readSnapshot(snapPath(s.cfg.Path), gen)
		if err == nil && ix != nil && snapPos <= maxPos && maxPos-snapPos <= snapCatchUpMax {
			s.idx, s.gen, s.logPos = ix, snapGen, snapPos
			s.snapGen, s.snapPos = snapGen, snapPos
			s.stats.Snapshot = true
			return s.catchUp(ctx, c) // the changes made after the snapshot
		}
	}
	s.gen, s.logPos = gen, maxPos
	s.idx, err = buildIndex(ctx, c, &s.cfg)
	return err
}

func (c *conn) indexGen() (int64, error) {
	var gen int64
	err := c.query(`SELECT gen FROM index_gen`, nil, func(st *sqlite3.Stmt) error { gen = st.ColumnInt64(0); return nil })
	return gen, err
}

// setup configures a connection. Every connection gets the busy timeout
// and the synchronous level; the writer also switches the file to WAL.
func (s *Store) setup(c *conn, writer bool) error {
	if err := c.c.BusyTimeout(s.cfg.BusyTimeout); err != nil {
		return err
	}
	pragmas := `PRAGMA synchronous = ` + s.cfg.Synchronous + `; PRAGMA temp_store = MEMORY;`
	if writer {
		if s.cfg.Path != "" {
			// page_size only takes effect on a new, empty database. Setting
			// the journal mode reads the header: a garbage file fails here.
			if err := c.c.Exec(fmt.Sprintf(`PRAGMA page_size = %d; PRAGMA journal_mode = WAL`, pageSize)); err != nil {
				return err
			}
		}
		pragmas += ` PRAGMA cache_size = -16384;`
	} else {
		pragmas += ` PRAGMA query_only = 1; PRAGMA cache_size = -8192;`
	}
	if err := c.c.Exec(pragmas); err != nil {
		return err
	}
	if s.cfg.Path != "" && writer {
		// Verify that WAL is really on (it is not on read-only media).
		var mode string
		err := c.query(`PRAGMA journal_mode`, nil, func(st *sqlite3.Stmt) error { mode = st.ColumnText(0); return nil })
		if err != nil {
			return err
		}
		if mode != "wal" {
			return fmt.Errorf("journal mode is %q, want wal", mode)
		}
	}
	return nil
}

// startCheckpointer opens the background checkpoint connection
// (checkpoint.go) and hands it the writer's WAL hook, which turns off
// SQLite's automatic checkpoint on the writer.
func (s *Store) startCheckpointer(ctx context.Context) error {
	c, err := openConn(ctx, s.uri, s.flags)
	if err != nil {
		return err
	}
	// A checkpoint fsyncs the database file as synchronous says.
	if err := c.c.Exec(`PRAGMA synchronous = ` + s.cfg.Synchronous); err != nil {
		return errors.Join(err, c.close())
	}
	s.ckpt = newCheckpointer(c, s.cfg.CheckpointPages)
	s.w.c.WALHook(s.ckpt.committed)
	return nil
}

// Stats returns what Open measured.
func (s *Store) Stats() OpenStats { return s.stats }

// Name returns "sqlite".
func (s *Store) Name() string { return "sqlite" }

// Initialize brings the schema up to date. Open already did; it is safe to
// call any number of times.
func (s *Store) Initialize(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := migrate(ctx, s.w); err != nil {
		return fmt.Errorf("sqlitevec: initialize: %w", err)
	}
	return nil
}

func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return core.ErrClosed
	}
	s.active++
	return nil
}

func (s *Store) leave() {
	s.mu.Lock()
	s.active--
	if s.active == 0 {
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

// Update runs fn in a write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits it if fn returns nil. The in-memory
// indexes see fn's writes only once the commit has succeeded.
func (s *Store) Update(ctx context.Context, fn func(core.WriteTx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	c := s.w
	if err := c.begin(ctx, `BEGIN IMMEDIATE`); err != nil {
		err = c.wrap("begin", err)
		_ = c.end(false)
		return err
	}
	if err := s.catchUp(ctx, c); err != nil {
		_ = c.end(false)
		return c.wrap("catch up", err)
	}
	tx := &writeTx{readTx: readTx{s: s, c: c}}
	if err := fn(tx); err != nil {
		if eerr := c.end(false); eerr != nil {
			return errors.Join(err, c.wrap("rollback", eerr))
		}
		return err
	}
	if err := tx.flush(); err != nil {
		_ = c.end(false)
		return err
	}
	if err := ctx.Err(); err != nil { // a cancelled transaction never commits
		_ = c.end(false)
		return err
	}
	gen := int64(-1)
	if len(tx.ops) > 0 {
		err := c.query(`UPDATE index_gen SET gen = gen + 1 RETURNING gen`, nil, func(st *sqlite3.Stmt) error {
			gen = st.ColumnInt64(0)
			return nil
		})
		if err != nil {
			_ = c.end(false)
			return c.wrap("index generation", err)
		}
	}
	if err := c.end(true); err != nil {
		return c.wrap("commit", err)
	}
	if s.ckpt != nil {
		// Last, under the write lock only: after the index updates
		// have gone to their goroutine and catchMu is released.
		defer s.ckpt.afterCommit(c.c)
	}
	s.catchMu.Lock()
	defer s.catchMu.Unlock()
	// catchUp ran inside this IMMEDIATE transaction, so no other process
	// wrote in between: the index now reflects everything up to this
	// transaction's own changes.
	if len(tx.ops) > 0 {
		if s.gen >= 0 && gen == s.gen+1 {
			s.gen = gen
		} else {
			s.gen = -1
		}
	}
	s.logPos = max(s.logPos, tx.maxPos)
	if len(tx.ops) > 0 {
		ix := s.index() // the previous transaction's operations go first
		done := make(chan struct{})
		s.applyMu.Lock()
		s.applying = done
		s.applyMu.Unlock()
		go func(ops []indexOp) {
			defer close(done)
			prepareOps(ops)
			ix.apply(ops)
		}(tx.ops)
	}
	return nil
}

// index returns the in-memory index once every committed transaction's
// operations are in it. Update applies them on another goroutine after
// COMMIT, so everything that reads the index (the legs, rows by rid, the
// snapshot, catching up) comes through here: a search after Update
// returns sees its writes.
func (s *Store) index() *index {
	s.applyMu.Lock()
	done := s.applying
	s.applyMu.Unlock()
	if done != nil {
		<-done
	}
	return s.idx
}

// View runs fn in a read transaction on a reader connection: a consistent
// snapshot of the database as of its first read.
func (s *Store) View(ctx context.Context, fn func(core.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	c, err := s.getReader(ctx)
	if err != nil {
		return err
	}
	defer s.putReader(c)
	if err := c.begin(ctx, `BEGIN DEFERRED`); err != nil {
		err = c.wrap("begin", err)
		_ = c.end(false)
		return err
	}
	if err := s.catchUp(ctx, c); err != nil {
		_ = c.end(false)
		return c.wrap("catch up", err)
	}
	err = fn(&readTx{s: s, c: c})
	if eerr := c.end(false); eerr != nil && err == nil {
		err = c.wrap("end read", eerr)
	}
	return err
}

// getReader takes a reader token, waiting while Config.Readers Views
// run, and returns the most recently used idle connection, or a new one.
func (s *Store) getReader(ctx context.Context) (*conn, error) {
	select {
	case s.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.idleMu.Lock()
	if n := len(s.idle); n > 0 {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.idleMu.Unlock()
		return c, nil
	}
	s.idleMu.Unlock()
	c, err := s.openReader(ctx)
	if err != nil {
		<-s.tokens
		return nil, fmt.Errorf("sqlitevec: open reader %s: %w", s.name, err)
	}
	return c, nil
}

func (s *Store) putReader(c *conn) {
	s.idleMu.Lock()
	s.idle = append(s.idle, c)
	s.idleMu.Unlock()
	<-s.tokens
}

func (s *Store) openReader(ctx context.Context) (*conn, error) {
	c, err := openConn(ctx, s.uri, s.flags)
	if err != nil {
		return nil, err
	}
	if err := s.setup(c, false); err != nil {
		return nil, errors.Join(err, c.close())
	}
	return c, nil
}

// Ping runs a trivial query on a reader connection.
func (s *Store) Ping(ctx context.Context) error {
	return s.View(ctx, func(r core.ReadTx) error {
		c := r.(*readTx).c
		return c.wrap("ping", c.query(`SELECT 1`, nil, func(*sqlite3.Stmt) error { return nil }))
	})
}

// Close waits for running transactions, then closes every connection. Later
// calls to any method return core.ErrClosed; Close itself is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for s.active > 0 {
		s.cond.Wait()
	}
	s.mu.Unlock()
	if s.idx != nil {
		s.index() // the last transaction's operations, before the snapshot
	}
	s.saveSnapshot()
	if err := s.closeConns(); err != nil {
		return fmt.Errorf("sqlitevec: close: %w", err)
	}
	return nil
}

// saveSnapshot writes the index snapshot if the index is known to match
// the database. A failure only costs the next Open a rebuild.
// snapSlack is how many changes the index may move past the snapshot
// on disk before Close rewrites it; snapCatchUpMax is how many changes
// past a snapshot Open still catches up from the change log rather than
// rebuilding from rows (catching up reloads each changed memory, a
// rebuild reads every row).
const (
	snapSlack      = 256
	snapCatchUpMax = 20_000
)

func (s *Store) saveSnapshot() {
	if s.cfg.Path == "" || s.w == nil || s.idx == nil || s.gen < 0 {
		return
	}
	gen, err := s.w.indexGen()
	if err != nil || gen != s.gen {
		return // another process wrote after this index last caught up
	}
	if s.snapGen >= 0 && s.logPos-s.snapPos <= snapSlack {
		return // the next Open catches up from the change log instead
	}
	_ = writeSnapshot(snapPath(s.cfg.Path), s.idx, gen, s.logPos)
}

func (s *Store) closeConns() error {
	var errs []error
	s.idleMu.Lock()
	for _, r := range s.idle {
		errs = append(errs, r.close())
	}
	s.idle = nil
	s.idleMu.Unlock()
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
		s.ckpt = nil
	}
	if s.w != nil {
		// The writer closes last: closing the last connection of a WAL
		// database checkpoints it and removes the -wal and -shm files.
		errs = append(errs, s.w.close())
		s.w = nil
	}
	return errors.Join(errs...)
}
