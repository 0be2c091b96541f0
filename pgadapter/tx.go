package pgadapter

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/athena-edge/athena-edge/core"
)

// tx implements core.WriteTx (and core.ReadTx) over one pgx transaction.
// It is not safe for concurrent use, like the transaction it wraps.
type tx struct {
	s     *Store
	tx    *pipeTx
	write bool
	// locked holds the IDs this transaction holds an advisory lock on.
	locked map[string]bool
	// prelock are IDs a previous attempt of this transaction needed: the
	// first lock takes them all at once, in order, so the re-run waits
	// instead of failing again.
	prelock []string
	// stats are BM25 statistic deltas per project, written at commit so the
	// hot per-project row is locked only briefly.
	stats map[core.ID]*statDelta
	// unindexed is set when the transaction may have left rows for the
	// indexer; a commit then wakes it.
	unindexed bool
	// expect holds the devices' last seqs the transaction assumed
	// (ExpectLastSeq), checked by flush.
	expect map[string]uint64
}

// lockBusyError carries the lock set a re-run should take up front.
type lockBusyError struct{ ids []string }

func (e *lockBusyError) Error() string {
	return fmt.Sprintf("pgadapter: lock %d ids: %v", len(e.ids), errLockBusy)
}

func (e *lockBusyError) Unwrap() error { return errLockBusy }

type statDelta struct{ docs, totalLen int64 }

var _ core.WriteTx = (*tx)(nil)

func (t *tx) checkWrite() error {
	if !t.write {
		return fmt.Errorf("pgadapter: %w: write in a read-only transaction", core.ErrInvalid)
	}
	return nil
}

// flush sends the queued writes and the pending statistics and, if xid
// is not nil, reads the transaction's ID into it (NULL, so nil, when the
// transaction wrote nothing) in the same round trip as the statistics.
// Called before COMMIT.
func (t *tx) flush(ctx context.Context, xid **uint64) error {
	// The assumed last seqs not yet checked: nothing was appended.
	t.tx.checks = append(t.tx.checks, t.seqChecks()...)
	if err := t.tx.send(ctx); err != nil { // the queue adds to t.stats
		return err
	}
	ids := make([]core.ID, 0, len(t.stats))
	for id := range t.stats {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a fixed order: no deadlocks between flushes
	b := &pgx.Batch{}
	for _, id := range ids {
		d := t.stats[id]
		if d.docs == 0 && d.totalLen == 0 {
			continue
		}
		b.Queue(`INSERT INTO project_stats (project_id, docs, total_len) VALUES ($1, $2, $3)
			ON CONFLICT (project_id) DO UPDATE SET docs = project_stats.docs + excluded.docs,
			total_len = project_stats.total_len + excluded.total_len`, string(id), d.docs, d.totalLen)
	}
	t.stats = nil
	if xid != nil {
		// In the same round trip: the transaction's ID, to learn the
		// outcome of a COMMIT whose answer is lost (NULL when nothing
		// was written).
		b.Queue("SELECT pg_current_xact_id_if_assigned()::text::bigint").QueryRow(func(r pgx.Row) error { return r.Scan(xid) })
	}
	if b.Len() == 0 {
		return nil
	}
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return translate("update stats", err)
	}
	return nil
}

func (t *tx) addStats(project core.ID, docs, length int64) {
	if t.stats == nil {
		t.stats = map[core.ID]*statDelta{}
	}
	d := t.stats[project]
	if d == nil {
		d = &statDelta{}
		t.stats[project] = d
	}
	d.docs += docs
	d.totalLen += length
}

// queueLock queues in b the statement that takes transaction-scoped
// advisory locks on ids (write transactions only), in a fixed order,
// skipping those already held, and returns the check to run once b is
// sent, which records them; nil if no lock is needed. Advisory locks are
// database-wide, so the keys hash the schema name with the ID: stores in
// different schemas of one database never contend.
//
// A transaction that holds no lock yet waits for the ones it needs. One
// that already holds some only tries: if another transaction has one, the
// check fails with a retryable error instead of risking a deadlock (which
// PostgreSQL detects only after deadlock_timeout, 1 s by default), and
// Update re-runs it after a jittered backoff.
//
// Statements queued after it in b run once the locks are held: a batch's
// statements run one after another, and in READ COMMITTED each takes its
// snapshot when it starts. So a read of what the locks guard goes in the
// same round trip (lockedQuery); if a lock was busy, that read is thrown
// away with the attempt.
func (t *tx) queueLock(b *pgx.Batch, ids []string) (check func() error) {
	if !t.write {
		return nil
	}
	var need []string
	for _, id := range ids {
		if !t.locked[id] {
			need = append(need, id)
		}
	}
	if len(need) == 0 {
		return nil
	}
	if len(t.locked) == 0 {
		need = append(need, t.prelock...)
	}
	slices.Sort(need)
	need = slices.Compact(need)
	ok := true
	if len(t.locked) == 0 {
		b.Queue(`SELECT count(pg_advisory_xact_lock(k)) FROM
			(SELECT hashtextextended($2 || '/' || x, 7) AS k FROM unnest($1::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n) s`, need, t.s.cfg.Schema)
	} else {
		b.Queue(`SELECT bool_and(pg_try_advisory_xact_lock(k)) FROM
			(SELECT hashtextextended($2 || '/' || x, 7) AS k FROM unnest($1::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n) s`,
			need, t.s.cfg.Schema).QueryRow(func(r pgx.Row) error { return r.Scan(&ok) })
	}
	return func() error {
		if !ok {
			busy := slices.Clone(need)
			for id := range t.locked {
				// Not the change-log lock: a re-run takes it last again,
				// never waiting for others while it holds it.
				if id != changeLogLock {
					busy = append(busy, id)
				}
			}
			return &lockBusyError{ids: busy}
		}
		if t.locked == nil {
			t.locked = map[string]bool{}
		}
		for _, id := range need {
			t.locked[id] = true
		}
		return nil
	}
}

// lockedQuery runs q after taking the locks on ids (see queueLock), in one
// round trip, and hands its rows to scan.
func (t *tx) lockedQuery(ctx context.Context, op string, ids []string, scan func(pgx.Rows) error, q string, args ...any) error {
	b := &pgx.Batch{}
	check := t.queueLock(b, ids)
	b.Queue(q, args...).Query(func(rows pgx.Rows) error {
		if err := scan(rows); err != nil {
			return err
		}
		return rows.Err()
	})
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return translate(op, err)
	}
	if check != nil {
		return check()
	}
	return nil
}

// ---- projects ----

const projectCols = `id, name, path, language, description, embedding_model, embedding_dim, consolidation_interval_ns,
	created_at, updated_at, last_accessed, version_hlc, version_device`

func scanProject(row pgx.Row) (core.Project, error) {
	var p core.Project
	var id string
	var interval, created, updated, accessed, hlc int64
	err := row.Scan(&id, &p.Name, &p.Path, &p.Language, &p.Description, &p.EmbeddingModel, &p.EmbeddingDim, &interval,
		&created, &updated, &accessed, &hlc, &p.Version.Device)
	p.ID = core.ID(id)
	p.ConsolidationInterval = time.Duration(interval)
	p.CreatedAt, p.UpdatedAt, p.LastAccessed = core.FromUnixMilli(created), core.FromUnixMilli(updated), core.FromUnixMilli(accessed)
	p.Version.HLC = core.HLC(hlc)
	return p, err
}

func (t *tx) Project(ctx context.Context, id core.ID) (core.Project, error) {
	p, err := scanProject(t.tx.QueryRow(ctx, "SELECT "+projectCols+" FROM projects WHERE id = $1", string(id)))
	if err != nil {
		return core.Project{}, translate("project "+string(id), err)
	}
	return p, nil
}

func (t *tx) ProjectBy(ctx context.Context, name, path string) (core.Project, error) {
	var row pgx.Row
	if name != "" {
		row = t.tx.QueryRow(ctx, "SELECT "+projectCols+" FROM projects WHERE name = $1", name)
	} else {
		row = t.tx.QueryRow(ctx, "SELECT "+projectCols+" FROM projects WHERE path = $1", path)
	}
	p, err := scanProject(row)
	if err != nil {
		return core.Project{}, translate("project by name/path", err)
	}
	return p, nil
}

func (t *tx) Projects(ctx context.Context) ([]core.Project, error) {
	rows, err := t.tx.Query(ctx, "SELECT "+projectCols+" FROM projects ORDER BY name")
	if err != nil {
		return nil, translate("projects", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (core.Project, error) { return scanProject(r) })
	if err != nil {
		return nil, translate("projects", err)
	}
	if out == nil {
		out = []core.Project{}
	}
	return out, nil
}

func (t *tx) PutProject(ctx context.Context, p core.Project) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO projects (`+projectCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, path = excluded.path, language = excluded.language,
		description = excluded.description, embedding_model = excluded.embedding_model, embedding_dim = excluded.embedding_dim,
		consolidation_interval_ns = excluded.consolidation_interval_ns, created_at = excluded.created_at,
		updated_at = excluded.updated_at, last_accessed = excluded.last_accessed, version_hlc = excluded.version_hlc,
		version_device = excluded.version_device`,
		string(p.ID), p.Name, p.Path, p.Language, p.Description, p.EmbeddingModel, p.EmbeddingDim, int64(p.ConsolidationInterval),
		core.UnixMilli(p.CreatedAt), core.UnixMilli(p.UpdatedAt), core.UnixMilli(p.LastAccessed), int64(p.Version.HLC), p.Version.Device)
	if err != nil {
		return translate("put project "+string(p.ID), err)
	}
	return t.ensureIndex(ctx, p.EmbeddingDim)
}

// ensureIndex creates the HNSW index for dim the first time a project of
// that dimension appears.
func (t *tx) ensureIndex(ctx context.Context, dim int) error {
	if dim > maxIndexDim {
		return nil // exact search only
	}
	tag, err := t.tx.Exec(ctx, "INSERT INTO vector_indexes (dim) VALUES ($1) ON CONFLICT DO NOTHING", dim)
	if err != nil {
		return translate("vector index", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	if _, err := t.tx.Exec(ctx, hnswIndexSQL(dim, false)); err != nil {
		return translate("vector index", err)
	}
	return nil
}

// ---- memories ----

const memCols = `id, project_id, content, embedding, embedding_model, memory_type, domain, tags, session_id, event_type,
	code_language, code_hash, usefulness, confidence, access_count, quality_score, state, superseded_by, created_at,
	updated_at, last_accessed, last_retrieved, consolidated_at, version_hlc, version_device, state_hlc, state_device,
	access_by_device`

func scanMemory(row pgx.Row) (core.Memory, error) {
	var m core.Memory
	var id, project, mtype, state, superseded string
	var emb *pgvector.Vector
	var created, updated, accessed, retrieved, consolidated, hlc, shlc int64
	err := row.Scan(&id, &project, &m.Content, &emb, &m.EmbeddingModel, &mtype, &m.Domain, &m.Tags, &m.SessionID, &m.EventType,
		&m.CodeLanguage, &m.CodeHash, &m.Usefulness, &m.Confidence, &m.AccessCount, &m.QualityScore, &state, &superseded,
		&created, &updated, &accessed, &retrieved, &consolidated, &hlc, &m.Version.Device, &shlc, &m.StateVersion.Device,
		&m.AccessByDevice)
	m.ID, m.ProjectID, m.MemoryType, m.State, m.SupersededBy = core.ID(id), core.ID(project), core.MemoryType(mtype), core.State(state), core.ID(superseded)
	if emb != nil {
		m.Embedding = emb.Slice()
	}
	m.CreatedAt, m.UpdatedAt = core.FromUnixMilli(created), core.FromUnixMilli(updated)
	m.LastAccessed, m.LastRetrieved, m.ConsolidatedAt = core.FromUnixMilli(accessed), core.FromUnixMilli(retrieved), core.FromUnixMilli(consolidated)
	m.Version.HLC, m.StateVersion.HLC = core.HLC(hlc), core.HLC(shlc)
	return m, err
}

// where builds the SQL conditions of a memory filter (everything except
// order, AfterID and limit when keyset is false). Arguments are appended
// to args; placeholders continue from len(*args).
func where(f *core.MemoryFilter, args *[]any, keyset bool) string {
	var c []string
	arg := func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
	if f.ProjectID != "" {
		c = append(c, "project_id = "+arg(string(f.ProjectID)))
	}
	if len(f.IDs) > 0 {
		c = append(c, "id = ANY("+arg(idStrings(f.IDs))+"::text[])")
	}
	if len(f.States) > 0 {
		s := make([]string, len(f.States))
		for i, v := range f.States {
			s[i] = string(v)
		}
		c = append(c, "state = ANY("+arg(s)+"::text[])")
	}
	if len(f.Types) > 0 {
		s := make([]string, len(f.Types))
		for i, v := range f.Types {
			s[i] = string(v)
		}
		c = append(c, "memory_type = ANY("+arg(s)+"::text[])")
	}
	if f.Domain != "" {
		c = append(c, "domain = "+arg(f.Domain))
	}
	if len(f.Tags) > 0 {
		c = append(c, "tags @> "+arg(f.Tags)+"::text[]")
	}
	if f.SessionID != "" {
		c = append(c, "session_id = "+arg(f.SessionID))
	}
	if !f.CreatedAfter.IsZero() {
		c = append(c, "created_at >= "+arg(f.CreatedAfter.UnixMilli()))
	}
	if !f.CreatedBefore.IsZero() {
		c = append(c, "created_at < "+arg(f.CreatedBefore.UnixMilli()))
	}
	if !f.AccessedAfter.IsZero() {
		c = append(c, "last_accessed >= "+arg(f.AccessedAfter.UnixMilli()))
	}
	if !f.AccessedBefore.IsZero() {
		c = append(c, "last_accessed <> 0 AND last_accessed < "+arg(f.AccessedBefore.UnixMilli()))
	}
	if keyset && f.AfterID != "" {
		if f.Newest {
			c = append(c, "id < "+arg(string(f.AfterID)))
		} else {
			c = append(c, "id > "+arg(string(f.AfterID)))
		}
	}
	if len(c) == 0 {
		return "TRUE"
	}
	return strings.Join(c, " AND ")
}

func idStrings(ids []core.ID) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return s
}

func (t *tx) Memories(ctx context.Context, f core.MemoryFilter) ([]core.Memory, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("pgadapter: memories: %w: limit %d is negative", core.ErrInvalid, f.Limit)
	}
	var args []any
	q := "SELECT " + memCols + " FROM memories WHERE " + where(&f, &args, true) + " ORDER BY id"
	if f.Newest {
		q += " DESC"
	}
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += " LIMIT $" + strconv.Itoa(len(args))
	}
	out := []core.Memory{}
	err := t.lockedQuery(ctx, "memories", idStrings(f.IDs), func(rows pgx.Rows) error {
		for rows.Next() {
			m, err := scanMemory(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	}, q, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *tx) Tombstoned(ctx context.Context, id core.ID) (bool, error) {
	var dead bool
	err := t.lockedQuery(ctx, "tombstoned", []string{string(id)}, func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&dead); err != nil {
				return err
			}
		}
		return nil
	}, "SELECT EXISTS (SELECT 1 FROM tombstones WHERE id = $1)", string(id))
	return dead, err
}

var _ core.TombstoneReader = (*tx)(nil)

// TombstonedIDs reports which of ids were deleted, in one round trip.
func (t *tx) TombstonedIDs(ctx context.Context, ids []core.ID) (map[core.ID]bool, error) {
	out := map[core.ID]bool{}
	err := t.lockedQuery(ctx, "tombstoned", idStrings(ids), func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out[core.ID(id)] = true
		}
		return nil
	}, "SELECT id FROM tombstones WHERE id = ANY($1)", idStrings(ids))
	if err != nil {
		return nil, err
	}
	return out, nil
}

func vecArg(v []float32) any {
	if v == nil {
		return nil
	}
	return pgvector.NewVector(v)
}

// terms is the text Postgres indexes for content: core's tokens, joined by
// spaces.
func terms(content string) (string, int) {
	toks := core.Tokenize(content)
	return strings.Join(toks, " "), len(toks)
}

func (t *tx) PutMemory(ctx context.Context, m core.Memory) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	if len(m.Embedding) == 0 {
		return fmt.Errorf("pgadapter: put memory %s: %w", m.ID, &core.FieldError{Field: "embedding", Reason: "is required", Err: core.ErrInvalid})
	}
	ts, n := terms(m.Content)
	// A new or re-embedded row waits for the indexer (indexer.go): the
	// HNSW insert is not paid here.
	t.unindexed = true
	// The row is queued (see pipeTx) and encoded only when sent: it is
	// copied now, since the caller owns its slices and map.
	t.tx.mems = append(t.tx.mems, memRow{m: m.Clone(), terms: ts, n: n})
	return nil
}

func accessArg(m map[string]int64) any {
	if m == nil {
		return nil
	}
	return m
}

func (t *tx) DeleteMemory(ctx context.Context, id core.ID) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	var project *string
	var n *int64
	// The changes that read their vector from the row (migration 10) get
	// a copy first.
	err := t.tx.QueryRow(ctx, `WITH d AS (DELETE FROM memories WHERE id = $1 RETURNING project_id, doc_len, embedding),
		kept AS (UPDATE changes c SET kept_vector = d.embedding, vector_in_memory = false FROM d
			WHERE c.entity_id = $1 AND c.vector_in_memory),
		ins AS (INSERT INTO tombstones (id, project_id, deleted_at)
			SELECT $1, coalesce((SELECT project_id FROM d), ''), $2 ON CONFLICT (id) DO NOTHING RETURNING 1)
		SELECT (SELECT project_id FROM d), (SELECT doc_len::bigint FROM d), (SELECT count(*) FROM ins)`,
		string(id), time.Now().UnixMilli()).Scan(&project, &n, new(int64))
	if err != nil {
		return translate("delete memory "+string(id), err)
	}
	if project != nil {
		t.addStats(core.ID(*project), -1, -*n)
	}
	return nil
}

// ---- LWW records kept as JSON ----

func putJSON[T any](ctx context.Context, t *tx, op, q string, v T, args ...any) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("pgadapter: %s: %w: %w", op, core.ErrInvalid, err)
	}
	if _, err := t.tx.Exec(ctx, q, append(args, b)...); err != nil {
		return translate(op, err)
	}
	return nil
}

func listJSON[T any](ctx context.Context, t *tx, op, q string, args ...any) ([]T, error) {
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, translate(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) {
		var b []byte
		var v T
		if err := r.Scan(&b); err != nil {
			return v, err
		}
		return v, json.Unmarshal(b, &v)
	})
	if err != nil {
		return nil, translate(op, err)
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

type conds struct {
	c    []string
	args []any
}

func (c *conds) eq(col, v string) {
	if v != "" {
		c.args = append(c.args, v)
		c.c = append(c.c, col+" = $"+strconv.Itoa(len(c.args)))
	}
}

func (c *conds) sql(order string, limit int) string {
	w := "TRUE"
	if len(c.c) > 0 {
		w = strings.Join(c.c, " AND ")
	}
	s := " WHERE " + w + " ORDER BY " + order
	if limit > 0 {
		c.args = append(c.args, limit)
		s += " LIMIT $" + strconv.Itoa(len(c.args))
	}
	return s
}

func (t *tx) PutEvent(ctx context.Context, e core.Event) error {
	body := e
	body.Embedding = nil
	return putJSON(ctx, t, "put event "+string(e.ID), `INSERT INTO events (id, project_id, session_id, ts, consolidated, embedding, body)
		VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, session_id = excluded.session_id,
		ts = excluded.ts, consolidated = excluded.consolidated, embedding = excluded.embedding, body = excluded.body`,
		body, string(e.ID), string(e.ProjectID), e.SessionID, core.UnixMilli(e.Timestamp), e.Consolidated, vecArg(e.Embedding))
}

func (t *tx) Events(ctx context.Context, f core.EventFilter) ([]core.Event, error) {
	var c conds
	c.eq("project_id", string(f.ProjectID))
	c.eq("id", string(f.ID))
	c.eq("session_id", f.SessionID)
	if f.Consolidated != nil {
		c.args = append(c.args, *f.Consolidated)
		c.c = append(c.c, "consolidated = $"+strconv.Itoa(len(c.args)))
	}
	q := "SELECT body, embedding FROM events" + c.sql("ts, id", f.Limit)
	rows, err := t.tx.Query(ctx, q, c.args...)
	if err != nil {
		return nil, translate("events", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (core.Event, error) {
		var b []byte
		var emb *pgvector.Vector
		var e core.Event
		if err := r.Scan(&b, &emb); err != nil {
			return e, err
		}
		err := json.Unmarshal(b, &e)
		if emb != nil {
			e.Embedding = emb.Slice()
		}
		return e, err
	})
	if err != nil {
		return nil, translate("events", err)
	}
	if out == nil {
		out = []core.Event{}
	}
	return out, nil
}

func (t *tx) PutTask(ctx context.Context, v core.Task) error {
	return putJSON(ctx, t, "put task "+string(v.ID), `INSERT INTO tasks (id, project_id, status, priority, goal_id, body)
		VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, status = excluded.status,
		priority = excluded.priority, goal_id = excluded.goal_id, body = excluded.body`,
		v, string(v.ID), string(v.ProjectID), v.Status, v.Priority, string(v.GoalID))
}

func (t *tx) Tasks(ctx context.Context, f core.TaskFilter) ([]core.Task, error) {
	var c conds
	c.eq("project_id", string(f.ProjectID))
	c.eq("id", string(f.ID))
	c.eq("status", f.Status)
	c.eq("goal_id", string(f.GoalID))
	return listJSON[core.Task](ctx, t, "tasks", "SELECT body FROM tasks"+c.sql("priority DESC, id", f.Limit), c.args...)
}

func (t *tx) PutGoal(ctx context.Context, v core.Goal) error {
	return putJSON(ctx, t, "put goal "+string(v.ID), `INSERT INTO goals (id, project_id, status, priority, body)
		VALUES ($1,$2,$3,$4,$5) ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, status = excluded.status,
		priority = excluded.priority, body = excluded.body`,
		v, string(v.ID), string(v.ProjectID), v.Status, v.Priority)
}

func (t *tx) Goals(ctx context.Context, f core.GoalFilter) ([]core.Goal, error) {
	var c conds
	c.eq("project_id", string(f.ProjectID))
	c.eq("id", string(f.ID))
	c.eq("status", f.Status)
	return listJSON[core.Goal](ctx, t, "goals", "SELECT body FROM goals"+c.sql("priority DESC, id", f.Limit), c.args...)
}

func (t *tx) PutCodeEntity(ctx context.Context, v core.CodeEntity) error {
	return putJSON(ctx, t, "put code entity "+string(v.ID), `INSERT INTO code_entities (id, project_id, memory_id, file_path, body)
		VALUES ($1,$2,$3,$4,$5) ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, memory_id = excluded.memory_id,
		file_path = excluded.file_path, body = excluded.body`,
		v, string(v.ID), string(v.ProjectID), string(v.MemoryID), v.FilePath)
}

func (t *tx) CodeEntities(ctx context.Context, f core.CodeFilter) ([]core.CodeEntity, error) {
	var c conds
	c.eq("project_id", string(f.ProjectID))
	c.eq("id", string(f.ID))
	c.eq("memory_id", string(f.MemoryID))
	c.eq("file_path", f.FilePath)
	return listJSON[core.CodeEntity](ctx, t, "code entities", "SELECT body FROM code_entities"+c.sql("id", f.Limit), c.args...)
}

func (t *tx) PutCodeDependency(ctx context.Context, v core.CodeDependency) error {
	return putJSON(ctx, t, "put code dependency "+string(v.ID), `INSERT INTO code_dependencies (id, project_id, from_id, to_id, body)
		VALUES ($1,$2,$3,$4,$5) ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, from_id = excluded.from_id,
		to_id = excluded.to_id, body = excluded.body`,
		v, string(v.ID), string(v.ProjectID), string(v.FromID), string(v.ToID))
}

func (t *tx) CodeDependencies(ctx context.Context, f core.CodeFilter) ([]core.CodeDependency, error) {
	var c conds
	c.eq("project_id", string(f.ProjectID))
	c.eq("id", string(f.ID))
	return listJSON[core.CodeDependency](ctx, t, "code dependencies", "SELECT body FROM code_dependencies"+c.sql("id", f.Limit), c.args...)
}

func (t *tx) PutRelationship(ctx context.Context, v core.Relationship) error {
	return putJSON(ctx, t, "put relationship "+string(v.ID), `INSERT INTO relationships (id, project_id, from_id, to_id, body)
		VALUES ($1,$2,$3,$4,$5) ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, from_id = excluded.from_id,
		to_id = excluded.to_id, body = excluded.body`,
		v, string(v.ID), string(v.ProjectID), string(v.FromID), string(v.ToID))
}

func (t *tx) Relationships(ctx context.Context, f core.RelationshipFilter) ([]core.Relationship, error) {
	var c conds
	c.eq("project_id", string(f.ProjectID))
	c.eq("id", string(f.ID))
	if f.MemoryID != "" {
		c.args = append(c.args, string(f.MemoryID))
		n := "$" + strconv.Itoa(len(c.args))
		c.c = append(c.c, "(from_id = "+n+" OR to_id = "+n+")")
	}
	return listJSON[core.Relationship](ctx, t, "relationships", "SELECT body FROM relationships"+c.sql("id", f.Limit), c.args...)
}

// ---- change log ----

func (t *tx) LastSeq(ctx context.Context, device string) (uint64, error) {
	// In a write transaction, serialize writers of one device: the second
	// sees the first's changes and numbers after them.
	var n int64
	err := t.lockedQuery(ctx, "last seq", []string{"device:" + device}, func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&n); err != nil {
				return err
			}
		}
		return nil
	}, "SELECT coalesce(max(seq), 0) FROM changes WHERE device = $1", device)
	return uint64(n), err
}

func encodeVector(v []float32) []byte {
	if v == nil {
		return nil
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeVector(b []byte) []float32 {
	if b == nil {
		return nil
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// changeLogLock is the advisory-lock key that serializes appends to the
// change log. Positions come from a sequence, which hands them out in
// call order, not commit order; holding this lock from the first append
// until commit makes the two orders equal, so a reader that has seen
// position P has seen every change below P, and a sync cursor never skips
// a change that committed late.
const changeLogLock = "athena-edge/change-log"

// AppendChange queues c (see pipeTx); c.Pos is set when the queue is sent,
// by the transaction's next statement or its commit.
func (t *tx) AppendChange(ctx context.Context, c *core.Change) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	t.lockChangeLog()
	// Encoded now: the caller may reuse c's slices once this returns.
	payload := string(c.Payload)
	if len(c.Payload) == 0 {
		payload = "null"
	}
	t.tx.changes = append(t.tx.changes, changeRow{c: c, v: *c, payload: payload, vector: encodeVector(c.Vector)})
	return nil
}

// lockChangeLog queues the change-log lock, unless the transaction holds
// it or has queued it: ahead of the first append, after the memory rows
// (see pipeTx). It waits even when the transaction holds other locks: the
// holder of this lock only ever tries for others (see queueLock), so it
// never waits on a transaction that waits here.
func (t *tx) lockChangeLog() {
	if t.locked[changeLogLock] {
		return
	}
	t.tx.lockChanges = `SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7))`
	t.tx.lockChangesArgs = []any{t.s.cfg.Schema, changeLogLock}
	if t.locked == nil {
		t.locked = map[string]bool{}
	}
	t.locked[changeLogLock] = true
	// The assumed last seqs are checked in the same batch, before this
	// lock: waiting for a device's lock while holding it could deadlock.
	t.tx.checks = append(t.tx.checks, t.seqChecks()...)
}

// ExpectLastSeq records that the transaction assumes seq is device's last
// recorded seq, instead of reading it under the device's lock (LastSeq),
// so it does not wait for a transaction of that device still writing
// (core.SeqExpecter). flush checks the assumption: after the memory rows,
// it waits for the device's lock, which every transaction that numbers
// the device's changes holds until it ends (LastSeq's, or this one's),
// and then reads the highest seq recorded, which is final.
//
// That wait is the one this store makes while holding other locks
// (memory locks) outside the change-log lock. A transaction numbering the
// device's changes takes the device's lock first and then only tries for
// others, and waits only for the change-log lock, whose holder never
// waits; so a cycle needs a re-run that takes its locks at once (prelock),
// holding the device's and waiting for a memory's. PostgreSQL breaks such
// a deadlock after deadlock_timeout, and Update re-runs the attempt.
func (t *tx) ExpectLastSeq(device string, seq uint64) {
	if t.expect == nil {
		t.expect = map[string]uint64{}
	}
	t.expect[device] = seq
}

// seqChecks takes t.expect as the checks to send (see ExpectLastSeq), in
// device order, and marks the devices' locks as held.
func (t *tx) seqChecks() []seqCheck {
	if len(t.expect) == 0 {
		return nil
	}
	devices := make([]string, 0, len(t.expect))
	for d := range t.expect {
		devices = append(devices, d)
	}
	slices.Sort(devices)
	out := make([]seqCheck, 0, len(devices))
	for _, d := range devices {
		key := "device:" + d
		out = append(out, seqCheck{device: d, schema: t.s.cfg.Schema, want: t.expect[d], held: t.locked[key]})
		if t.locked == nil {
			t.locked = map[string]bool{}
		}
		t.locked[key] = true
	}
	t.expect = nil
	return out
}

var _ core.SeqExpecter = (*tx)(nil)

func (t *tx) Changes(ctx context.Context, after int64, limit int, exclude string) ([]core.Change, error) {
	if limit < 0 {
		return nil, fmt.Errorf("pgadapter: changes: %w: limit %d is negative", core.ErrInvalid, limit)
	}
	// A change's vector is in its own row (vector, or kept_vector once
	// copied there), or in its memory's row (vector_in_memory: see
	// pipeTx.linkVectors).
	rows, err := t.tx.Query(ctx, `SELECT c.pos, c.device, c.seq, c.hlc, c.kind, c.project_id, c.entity_id, c.payload::text,
			c.vector, CASE WHEN c.vector_in_memory THEN m.embedding ELSE c.kept_vector END, c.vector_in_memory, c.status, c.reason
		FROM changes c LEFT JOIN memories m ON c.vector_in_memory AND m.id = c.entity_id
		WHERE c.pos > $1 AND ($3 = '' OR c.device <> $3) ORDER BY c.pos LIMIT $2`, after, limit, exclude)
	if err != nil {
		return nil, translate("changes", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (core.Change, error) {
		var c core.Change
		var seq, hlc int64
		var kind, project, entity, payload, status string
		var vec []byte
		var kept *pgvector.Vector
		var inMemory bool
		err := r.Scan(&c.Pos, &c.Device, &seq, &hlc, &kind, &project, &entity, &payload, &vec, &kept, &inMemory, &status, &c.Reason)
		if err != nil {
			return c, err
		}
		c.Seq, c.HLC, c.Kind, c.ProjectID, c.EntityID = uint64(seq), core.HLC(hlc), core.Kind(kind), core.ID(project), core.ID(entity)
		c.Payload, c.Vector, c.Status = json.RawMessage(payload), decodeVector(vec), core.Status(status)
		switch {
		case kept != nil:
			c.Vector = kept.Slice()
		case inMemory:
			// The row went or changed without copying its embedding here.
			return c, fmt.Errorf("change %d: its vector is missing from memory %s", c.Pos, c.EntityID)
		}
		return c, nil
	})
	if err != nil {
		return nil, translate("changes", err)
	}
	if out == nil {
		out = []core.Change{}
	}
	return out, nil
}
