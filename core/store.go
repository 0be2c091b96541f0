package core

import (
	"context"
	"slices"
	"time"
)

// Backend is the contract a store implements: typed records in
// transactions, a change log, and the two search legs. Everything that must
// behave the same on every store (validation, merge, scoring) lives in [DB],
// which wraps a Backend.
//
// A Backend must be safe for concurrent use. Update runs at most one write
// transaction per device at a time (stores may serialize all writers);
// View may run alongside writers and sees a consistent snapshot.
type Backend interface {
	// Update runs fn in a write transaction. It commits if fn returns nil and
	// rolls back otherwise, returning fn's error unchanged (wrapped at most).
	// A commit that returns nil is durable as the store's docs promise.
	Update(ctx context.Context, fn func(WriteTx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(ReadTx) error) error
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store. Later calls return ErrClosed.
	Close() error
}

// ReadTx reads records. Methods return ErrNotFound only where documented;
// list methods return an empty slice when nothing matches. Returned values
// are the caller's: a store never keeps a reference to them.
type ReadTx interface {
	// Project returns the project with the ID, or ErrNotFound.
	Project(ctx context.Context, id ID) (Project, error)
	// ProjectBy returns the project with the exact name (if name is set) or
	// the exact path, or ErrNotFound.
	ProjectBy(ctx context.Context, name, path string) (Project, error)
	// Projects lists every project by name.
	Projects(ctx context.Context) ([]Project, error)

	// Memories returns the memories matching f, ordered by ID (ascending, or
	// descending if f.Newest). IDs in f.IDs that do not exist are skipped.
	Memories(ctx context.Context, f MemoryFilter) ([]Memory, error)
	// Tombstoned reports whether the memory ID was deleted.
	Tombstoned(ctx context.Context, id ID) (bool, error)

	Events(ctx context.Context, f EventFilter) ([]Event, error)
	Tasks(ctx context.Context, f TaskFilter) ([]Task, error)
	Goals(ctx context.Context, f GoalFilter) ([]Goal, error)
	CodeEntities(ctx context.Context, f CodeFilter) ([]CodeEntity, error)
	CodeDependencies(ctx context.Context, f CodeFilter) ([]CodeDependency, error)
	Relationships(ctx context.Context, f RelationshipFilter) ([]Relationship, error)

	// LastSeq returns the highest sequence number recorded for device, or 0.
	LastSeq(ctx context.Context, device string) (uint64, error)
	// Changes returns up to limit changes with Pos > after, in Pos order,
	// skipping changes whose Device is exclude (when exclude is not empty).
	Changes(ctx context.Context, after int64, limit int, exclude string) ([]Change, error)

	// VectorLeg returns up to leg.K memories matching leg.Filter, nearest
	// to leg.Vector by cosine similarity, best first. With leg.Exact the
	// answer must be the exact top K; otherwise it may be approximate. A
	// filter never makes the leg return fewer than K when K match.
	VectorLeg(ctx context.Context, leg VectorLeg) ([]Candidate, error)
	// KeywordLeg returns memories matching leg.Filter whose content
	// contains any of leg.Terms (as produced by [Tokenize]), up to
	// leg.Limit, the most relevant first, with the project's corpus
	// statistics for those terms. Terms are literal: stores never interpret
	// them as query syntax.
	KeywordLeg(ctx context.Context, leg KeywordLeg) (KeywordResult, error)
}

// WriteTx adds writes to ReadTx. Put methods insert or replace by ID.
// A store may queue PutMemory and AppendChange until the transaction's
// next call or its commit (pgadapter does, to pipeline them); their errors
// then surface there, and fail the transaction as they would have anyway.
type WriteTx interface {
	ReadTx
	// PutProject returns ErrConflict if another project has the name or path.
	PutProject(ctx context.Context, p Project) error
	PutMemory(ctx context.Context, m Memory) error
	// DeleteMemory removes the memory (if present) and records a tombstone.
	DeleteMemory(ctx context.Context, id ID) error
	PutEvent(ctx context.Context, e Event) error
	PutTask(ctx context.Context, t Task) error
	PutGoal(ctx context.Context, g Goal) error
	PutCodeEntity(ctx context.Context, c CodeEntity) error
	PutCodeDependency(ctx context.Context, d CodeDependency) error
	PutRelationship(ctx context.Context, r Relationship) error
	// AppendChange records c in the change log and sets c.Pos. It returns
	// ErrConflict if (c.Device, c.Seq) is already recorded. A store may
	// queue the write: then c.Pos is set, and the error returned, by the
	// transaction's next call or its commit.
	AppendChange(ctx context.Context, c *Change) error
}

// MemoryFilter selects memories. Zero fields do not filter. Tags must all
// be present on a memory for it to match.
type MemoryFilter struct {
	ProjectID      ID
	IDs            []ID
	States         []State
	Types          []MemoryType
	Domain         string
	Tags           []string
	SessionID      string
	CreatedAfter   time.Time // inclusive
	CreatedBefore  time.Time // exclusive
	AccessedAfter  time.Time // inclusive, on last_accessed
	AccessedBefore time.Time // exclusive
	AfterID        ID        // keyset pagination: only IDs > AfterID (< if Newest)
	Newest         bool      // order by ID descending
	Limit          int       // 0 means no limit
}

// Match reports whether m passes every filter except IDs order, AfterID
// and Limit semantics, which it also applies to a single memory. Stores
// that filter in Go use it, so filters mean the same everywhere.
func (f *MemoryFilter) Match(m *Memory) bool {
	if f.ProjectID != "" && m.ProjectID != f.ProjectID {
		return false
	}
	if len(f.IDs) > 0 && !slices.Contains(f.IDs, m.ID) {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, m.State) {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, m.MemoryType) {
		return false
	}
	if f.Domain != "" && m.Domain != f.Domain {
		return false
	}
	for _, t := range f.Tags {
		if !slices.Contains(m.Tags, t) {
			return false
		}
	}
	if f.SessionID != "" && m.SessionID != f.SessionID {
		return false
	}
	if !f.CreatedAfter.IsZero() && m.CreatedAt.Before(f.CreatedAfter) {
		return false
	}
	if !f.CreatedBefore.IsZero() && !m.CreatedAt.Before(f.CreatedBefore) {
		return false
	}
	if !f.AccessedAfter.IsZero() && m.LastAccessed.Before(f.AccessedAfter) {
		return false
	}
	if !f.AccessedBefore.IsZero() && (m.LastAccessed.IsZero() || !m.LastAccessed.Before(f.AccessedBefore)) {
		return false
	}
	if f.AfterID != "" {
		if f.Newest && m.ID >= f.AfterID || !f.Newest && m.ID <= f.AfterID {
			return false
		}
	}
	return true
}

// EventFilter selects events. Zero fields do not filter. Results are
// ordered by timestamp, then ID.
type EventFilter struct {
	ProjectID    ID
	ID           ID
	SessionID    string
	Consolidated *bool
	Limit        int
}

// TaskFilter selects tasks, ordered by priority (highest first), then ID.
type TaskFilter struct {
	ProjectID ID
	ID        ID
	Status    string
	GoalID    ID
	Limit     int
}

// GoalFilter selects goals, ordered by priority (highest first), then ID.
type GoalFilter struct {
	ProjectID ID
	ID        ID
	Status    string
	Limit     int
}

// CodeFilter selects code entities or dependencies, ordered by ID.
type CodeFilter struct {
	ProjectID ID
	ID        ID
	MemoryID  ID
	FilePath  string
	Limit     int
}

// RelationshipFilter selects relationships touching MemoryID (either end),
// ordered by ID.
type RelationshipFilter struct {
	ProjectID ID
	ID        ID
	MemoryID  ID
	Limit     int
}

// VectorLeg asks a store for vector candidates.
type VectorLeg struct {
	Vector []float32
	K      int
	Filter MemoryFilter
	Exact  bool
}

// Candidate is a memory a leg proposes. Score is the store's own estimate
// (cosine similarity for vector legs); core recomputes every score that
// reaches a user.
type Candidate struct {
	ID    ID
	Score float64
	// Exact is set by a vector leg that found this candidate by an exact
	// search (a full scan of the matching rows) rather than an index.
	Exact bool
}

// KeywordLeg asks a store for keyword candidates.
type KeywordLeg struct {
	Terms  []string
	Limit  int
	Filter MemoryFilter
}

// KeywordResult is a keyword leg's answer: candidates, best first by the
// store's estimate, and the statistics core needs to compute BM25 itself.
// Stats are over every memory of the project (any state), counting
// document length as len(Tokenize(content)).
type KeywordResult struct {
	Candidates []Candidate
	Stats      CorpusStats
}

// Initializer is an optional upgrade of Backend for stores with a schema.
// Initialize brings the schema up to date; it is idempotent and safe to run
// any number of times, concurrently with other processes doing the same.
type Initializer interface {
	Initialize(ctx context.Context) error
}

// ConcurrentWriter is an optional upgrade of Backend for stores whose write
// transactions may run at once, such as PostgreSQL. Such a store keeps each
// device's change sequence gapless itself: WriteTx.LastSeq holds the
// device until the transaction ends, so a second writer of that device
// waits, then numbers after the first. [DB] runs its write transactions
// one at a time unless its store reports ConcurrentWrites.
type ConcurrentWriter interface {
	ConcurrentWrites() bool
}

// SeqExpecter is an optional upgrade of WriteTx for a store whose write
// transactions run at once (ConcurrentWriter). ExpectLastSeq records, in
// place of a LastSeq call, that the transaction assumes seq is the highest
// sequence number recorded for device, and does not wait for the device:
// the transaction may run while another one that will record seq is still
// writing. The store verifies the assumption before the transaction
// appends to its change log, once every earlier transaction recording
// changes of that device has ended, and fails with an error wrapping
// ErrSeqGap if it does not hold, so an assumption never records a gap or
// a duplicate.
//
// Sync uses it to apply a device's next batch while the previous one
// commits ([Tx.ApplyChangesAfter]).
type SeqExpecter interface {
	ExpectLastSeq(device string, seq uint64)
}

// Namer is an optional upgrade of Backend: the store's kind, such as
// "memory", "sqlite" or "postgres", as reported by doctor and the factory.
type Namer interface {
	Name() string
}

// MetaTx is an optional upgrade of ReadTx/WriteTx: a small key-value table
// in the same transactions as everything else. Sync keeps its cursors,
// device identity and token hashes there, so a cursor moves in the same
// transaction as the changes it covers. Stores that sync must implement
// it; [Tx.Meta] and friends return ErrInvalid on stores that do not.
type MetaTx interface {
	// Meta returns the value under key, or ErrNotFound.
	Meta(ctx context.Context, key string) (string, error)
	// MetaPrefix returns every entry whose key starts with prefix, by key.
	MetaPrefix(ctx context.Context, prefix string) ([]MetaEntry, error)
	// PutMeta sets key to value (write transactions only).
	PutMeta(ctx context.Context, key, value string) error
	// DeleteMeta removes key; a missing key is not an error.
	DeleteMeta(ctx context.Context, key string) error
}

// MetaEntry is one key-value pair of a [MetaTx].
type MetaEntry struct {
	Key   string
	Value string
}

// TombstoneReader is an optional upgrade of ReadTx for stores where a round
// trip costs more than the lookup: [Tx.ApplyChanges] asks once for every
// memory a batch touches instead of once per change.
type TombstoneReader interface {
	// TombstonedIDs returns the subset of ids that were deleted.
	TombstonedIDs(ctx context.Context, ids []ID) (map[ID]bool, error)
}
