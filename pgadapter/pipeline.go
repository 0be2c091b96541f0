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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgvector/pgvector-go"

	"github.com/athena-edge/athena-edge/core"
)

// pipeTx is the pgx transaction a tx talks to. Writes whose results matter
// only to the transaction itself (memory rows and change-log entries) are
// queued instead of sent, and go to the server the next time the
// transaction sends anything else or commits: the queued memory rows as one
// multi-row upsert, then the change-log lock and the queued entries as one
// multi-row insert, pipelined in a single round trip. A batch of N remote
// changes then costs a few round trips and two statements instead of 2N
// of each: on loopback a round trip is worth more than the statement it
// carries, and a one-row statement's fixed cost (bind, executor start,
// snapshot) was half of a row's insert.
//
// Every other statement first sends the queue, so the transaction always
// reads its own writes. A queued statement's error (a constraint, a lost
// connection, a serialization failure) surfaces from that later call or
// from commit, and fails the transaction as it would have anyway: in
// PostgreSQL any failed statement aborts the whole transaction.
//
// Queued change-log entries go after the queued memory rows, behind the
// change-log lock (see changeLogLock): the rows of transactions from
// different devices then run concurrently, and only the short tail of
// appends and commit is serialized.
//
// A pipeTx is not safe for concurrent use, like the transaction it wraps.
type pipeTx struct {
	pgx.Tx
	mems    []memRow    // queued memory writes, in call order
	changes []changeRow // queued change-log appends, sent after mems
	// lockChanges is the statement that takes the change-log lock, queued
	// ahead of the first append; "" once taken.
	lockChanges     string
	lockChangesArgs []any
	// checks are assumed last seqs to verify, after the memory rows and
	// before the change-log lock, queued with it or at flush
	// (tx.ExpectLastSeq).
	checks []seqCheck
	// stats receives the BM25 statistic deltas of the memory rows sent.
	stats func(project core.ID, docs, length int64)
	// err is the first failed send's error (see send).
	err error
}

// memRow is a queued memory write: the memory (owned by the queue) and
// its indexed text.
type memRow struct {
	m     core.Memory
	terms string
	n     int // terms' token count, the BM25 document length
}

// changeRow is a queued change-log append: the caller's change, whose
// Pos the insert sets, and its values when it was queued.
type changeRow struct {
	c       *core.Change
	v       core.Change
	payload string
	vector  []byte // nil when inMemory
	// inMemory: vector is the embedding of the memory row queued with
	// this change, and is read from there (linkVectors).
	inMemory bool
}

// maxRowsPerStatement bounds a multi-row statement's arrays.
const maxRowsPerStatement = 1000

// seqCheck is an assumed last seq of a device (tx.ExpectLastSeq).
type seqCheck struct {
	device string
	schema string // of the lock keys
	want   uint64
	held   bool // the transaction holds the device's lock already
}

// queued reports whether anything waits to be sent.
func (p *pipeTx) queued() bool { return len(p.mems)+len(p.changes)+len(p.checks) > 0 }

// send sends the queue as one batch and runs its result callbacks. Once
// a send has failed, every later one returns its error, and so does
// Commit: a failed seq check (queueChecks) leaves the server's transaction
// usable, and a caller that took its error for a rejection (a read that
// sent the queue first) must still not commit.
func (p *pipeTx) send(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	if !p.queued() {
		return nil
	}
	b := &pgx.Batch{}
	p.linkVectors()
	p.queueMems(b)
	p.queueChecks(b)
	if len(p.changes) > 0 && p.lockChanges != "" {
		b.Queue(p.lockChanges, p.lockChangesArgs...)
		p.lockChanges, p.lockChangesArgs = "", nil
	}
	p.queueChanges(b)
	p.mems, p.changes = nil, nil
	p.err = p.Tx.SendBatch(ctx, b).Close()
	return p.err
}

// queueChecks queues the seq checks: each waits for its device's lock,
// then fails the batch unless the device's highest recorded seq is the
// one assumed (tx.ExpectLastSeq).
func (p *pipeTx) queueChecks(b *pgx.Batch) {
	for _, c := range p.checks {
		if !c.held {
			b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1 || '/device:' || $2, 7))`, c.schema, c.device)
		}
		// A statement of its own, so that its snapshot is taken once the
		// lock is held.
		b.Queue(`SELECT coalesce(max(seq), 0) FROM changes WHERE device = $1`, c.device).QueryRow(func(r pgx.Row) error {
			var last int64
			if err := r.Scan(&last); err != nil {
				return err
			}
			if uint64(last) != c.want {
				return fmt.Errorf("pgadapter: apply: %w: device %s: assumed last seq %d, recorded %d", core.ErrSeqGap, c.device, c.want, last)
			}
			return nil
		})
	}
	p.checks = nil
}

// linkVectors leaves out of the queued change rows the vectors that the
// memory rows queued with them hold (migration 10): a memory.put whose
// vector is bit for bit the embedding its entity's row is written with.
// The row is written in the same batch, before the change, and the
// upserts that later change or delete that embedding first copy it into
// the change's kept_vector (keptVectorsSQL).
//
// That copy sees every change linked to the row because whoever writes
// an existing memory row holds the memory's advisory lock (core reads a
// memory, which locks it, before it writes it; a memory with a fresh ID
// is unknown to other transactions until its own commits), so the
// changing statement starts after the linking transaction committed.
func (p *pipeTx) linkVectors() {
	if len(p.changes) == 0 || len(p.mems) == 0 {
		return
	}
	last := make(map[core.ID]*core.Memory, len(p.mems))
	for i := range p.mems {
		last[p.mems[i].m.ID] = &p.mems[i].m
	}
	for i := range p.changes {
		r := &p.changes[i]
		if r.v.Kind != core.KindMemoryPut || r.vector == nil {
			continue
		}
		if m := last[r.v.EntityID]; m != nil && sameBits(r.vector, m.Embedding) {
			r.vector, r.inMemory = nil, true
		}
	}
}

// sameBits reports whether b (encodeVector's form) encodes v exactly.
func sameBits(b []byte, v []float32) bool {
	if len(b) != 4*len(v) {
		return false
	}
	for i, x := range v {
		if binary.LittleEndian.Uint32(b[4*i:]) != math.Float32bits(x) {
			return false
		}
	}
	return true
}

// keptVectorsSQL is the CTE, for putMemoriesSQL and putMemorySQL, that
// copies the embedding of each existing row the statement re-embeds into
// kept_vector of the changes reading their vector from it. old is the CTE
// of the existing rows as they were before the upsert (every CTE of the
// statement sees them so), n that of the new (id, embedding). The
// embeddings are compared by their binary form, so a -0 becoming 0 counts
// as a change.
const keptVectorsSQL = `kept AS (UPDATE changes c SET kept_vector = o.embedding, vector_in_memory = false
		FROM old o JOIN n ON n.id = o.id
		WHERE c.entity_id = o.id AND c.vector_in_memory AND vector_send(o.embedding) IS DISTINCT FROM vector_send(n.embedding))`

// queueMems queues the upserts of the queued memory rows. A memory put
// twice is written once, as its last put: a put replaces the whole row, and
// the statistics deltas of the puts in between cancel out. Rows go in ID
// order, so that concurrent transactions lock shared rows in one order.
func (p *pipeTx) queueMems(b *pgx.Batch) {
	if len(p.mems) == 0 {
		return
	}
	last := make(map[core.ID]int, len(p.mems))
	for i := range p.mems {
		last[p.mems[i].m.ID] = i
	}
	rows := make([]*memRow, 0, len(last))
	for i := range p.mems {
		if last[p.mems[i].m.ID] == i {
			rows = append(rows, &p.mems[i])
		}
	}
	slices.SortFunc(rows, func(a, b *memRow) int { return strings.Compare(string(a.m.ID), string(b.m.ID)) })
	for chunk := range slices.Chunk(rows, maxRowsPerStatement) {
		op := "put memories"
		if len(chunk) == 1 {
			op = "put memory " + string(chunk[0].m.ID)
		}
		q, args := putMemorySQL, chunk[0].args()
		if len(chunk) > 1 {
			var cols memColumns
			for _, r := range chunk {
				cols.add(r)
			}
			q, args = putMemoriesSQL, cols.args()
		}
		b.Queue(q, args...).Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var project string
				var length int64
				if err := rs.Scan(&project, &length); err != nil {
					return translate(op, err)
				}
				p.stats(core.ID(project), -1, -length)
			}
			if err := rs.Err(); err != nil {
				return translate(op, err)
			}
			for _, r := range chunk {
				p.stats(r.m.ProjectID, 1, int64(r.n))
			}
			return nil
		})
	}
}

// putMemoriesSQL upserts rows given as one array per column (memColumns),
// and returns the project and document length each existing row had
// before (the statement's snapshot), for the statistics. (A data-modifying
// CTE runs to completion whether or not the query reads it.)
const putMemoriesSQL = `WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::vector[], $5::text[],
		$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::float8[], $14::float8[],
		$15::bigint[], $16::float8[], $17::text[], $18::text[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[],
		$23::bigint[], $24::bigint[], $25::text[], $26::bigint[], $27::text[], $28::text[], $29::text[], $30::int[], $31::int[])
		AS v(` + memCols + `, terms, doc_len, embedding_dim)),
	old AS (SELECT id, project_id, doc_len::bigint, embedding FROM memories WHERE id = ANY($1::text[])),
	n AS (SELECT id, embedding FROM v),
	` + keptVectorsSQL + `,
	up AS (INSERT INTO memories (` + memCols + `, terms, doc_len, embedding_dim)
		SELECT id, project_id, content, embedding, embedding_model, memory_type, domain,
			tags::text[],
			session_id, event_type, code_language, code_hash, usefulness, confidence, access_count, quality_score, state,
			superseded_by, created_at, updated_at, last_accessed, last_retrieved, consolidated_at, version_hlc,
			version_device, state_hlc, state_device, access_by_device::jsonb, terms, doc_len, embedding_dim FROM v
		` + upsertSet + `)
	SELECT project_id, doc_len FROM old`

// putMemorySQL is putMemoriesSQL for one row, as plain parameters: a
// single put (an interactive remember) was 0.1–0.3 ms slower through the
// arrays.
const putMemorySQL = `WITH old AS (SELECT id, project_id, doc_len::bigint, embedding FROM memories WHERE id = $1),
	n AS (SELECT $1::text AS id, $4::vector AS embedding),
	` + keptVectorsSQL + `,
	up AS (INSERT INTO memories (` + memCols + `, terms, doc_len, embedding_dim)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
			$24, $25, $26, $27, $28, $29, $30, $31)
		` + upsertSet + `)
	SELECT project_id, doc_len FROM old`

// upsertSet is how a put replaces an existing row. A new or re-embedded
// row waits for the indexer (indexer.go): the HNSW insert is not paid
// here; a row whose vector is unchanged keeps its indexed flag, and its
// terms if its content is unchanged.
const upsertSet = `ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, content = excluded.content, embedding = excluded.embedding,
		embedding_model = excluded.embedding_model, memory_type = excluded.memory_type, domain = excluded.domain, tags = excluded.tags,
		session_id = excluded.session_id, event_type = excluded.event_type, code_language = excluded.code_language,
		code_hash = excluded.code_hash, usefulness = excluded.usefulness, confidence = excluded.confidence,
		access_count = excluded.access_count, quality_score = excluded.quality_score, state = excluded.state,
		superseded_by = excluded.superseded_by, created_at = excluded.created_at, updated_at = excluded.updated_at,
		last_accessed = excluded.last_accessed, last_retrieved = excluded.last_retrieved, consolidated_at = excluded.consolidated_at,
		version_hlc = excluded.version_hlc, version_device = excluded.version_device, state_hlc = excluded.state_hlc,
		state_device = excluded.state_device, access_by_device = excluded.access_by_device,
		terms = CASE WHEN memories.content = excluded.content THEN memories.terms ELSE excluded.terms END,
		doc_len = excluded.doc_len, embedding_dim = excluded.embedding_dim,
		indexed = CASE WHEN memories.embedding_dim <> excluded.embedding_dim THEN false
			WHEN memories.embedding = excluded.embedding THEN memories.indexed ELSE false END`

// args are putMemorySQL's arguments for r.
func (r *memRow) args() []any {
	m := &r.m
	return []any{string(m.ID), string(m.ProjectID), m.Content, pgvector.NewVector(m.Embedding), m.EmbeddingModel,
		string(m.MemoryType), m.Domain, m.Tags, m.SessionID, m.EventType, m.CodeLanguage, m.CodeHash, m.Usefulness,
		m.Confidence, m.AccessCount, m.QualityScore, string(m.State), string(m.SupersededBy), core.UnixMilli(m.CreatedAt),
		core.UnixMilli(m.UpdatedAt), core.UnixMilli(m.LastAccessed), core.UnixMilli(m.LastRetrieved),
		core.UnixMilli(m.ConsolidatedAt), int64(m.Version.HLC), m.Version.Device, int64(m.StateVersion.HLC),
		m.StateVersion.Device, accessArg(m.AccessByDevice), r.terms, r.n, len(m.Embedding)}
}

// memColumns holds putMemoriesSQL's arguments: one array per column.
type memColumns struct {
	ids, projects, contents, models, types, domains textArray
	sessions, events, langs, hashes, states, supers textArray
	vdevices, sdevices, terms                       textArray
	tags                                            nullTextArray // text[] literals (arrayLiteral)
	access                                          nullTextArray // JSON text, nil for SQL NULL
	vecs                                            vectorArray
	useful, conf, quality                           []float64
	counts, created, updated, accessed, retrieved   []int64
	consolidated, vhlcs, shlcs                      []int64
	lens, dims                                      []int32
}

func (c *memColumns) add(r *memRow) {
	m := &r.m
	c.ids, c.projects, c.contents = append(c.ids, string(m.ID)), append(c.projects, string(m.ProjectID)), append(c.contents, m.Content)
	c.vecs = append(c.vecs, m.Embedding)
	c.models, c.types, c.domains = append(c.models, m.EmbeddingModel), append(c.types, string(m.MemoryType)), append(c.domains, m.Domain)
	c.tags = append(c.tags, arrayLiteral(m.Tags))
	c.sessions, c.events = append(c.sessions, m.SessionID), append(c.events, m.EventType)
	c.langs, c.hashes = append(c.langs, m.CodeLanguage), append(c.hashes, m.CodeHash)
	c.useful, c.conf = append(c.useful, m.Usefulness), append(c.conf, m.Confidence)
	c.counts, c.quality = append(c.counts, m.AccessCount), append(c.quality, m.QualityScore)
	c.states, c.supers = append(c.states, string(m.State)), append(c.supers, string(m.SupersededBy))
	c.created, c.updated = append(c.created, core.UnixMilli(m.CreatedAt)), append(c.updated, core.UnixMilli(m.UpdatedAt))
	c.accessed, c.retrieved = append(c.accessed, core.UnixMilli(m.LastAccessed)), append(c.retrieved, core.UnixMilli(m.LastRetrieved))
	c.consolidated = append(c.consolidated, core.UnixMilli(m.ConsolidatedAt))
	c.vhlcs, c.vdevices = append(c.vhlcs, int64(m.Version.HLC)), append(c.vdevices, m.Version.Device)
	c.shlcs, c.sdevices = append(c.shlcs, int64(m.StateVersion.HLC)), append(c.sdevices, m.StateVersion.Device)
	c.access = append(c.access, jsonText(m.AccessByDevice, m.AccessByDevice == nil))
	c.terms, c.lens, c.dims = append(c.terms, r.terms), append(c.lens, int32(r.n)), append(c.dims, int32(len(m.Embedding)))
}

// args are the arrays in putMemoriesSQL's order (memCols, then terms,
// doc_len, embedding_dim).
func (c *memColumns) args() []any {
	return []any{c.ids, c.projects, c.contents, c.vecs, c.models, c.types, c.domains, c.tags, c.sessions, c.events,
		c.langs, c.hashes, c.useful, c.conf, c.counts, c.quality, c.states, c.supers, c.created, c.updated, c.accessed,
		c.retrieved, c.consolidated, c.vhlcs, c.vdevices, c.shlcs, c.sdevices, c.access, c.terms, c.lens, c.dims}
}

// arrayLiteral is ss as a text[] literal, every element quoted (with its
// '"' and '\\' escaped), or nil (SQL NULL) for a nil ss. A text[] cannot
// hold one array per row, so each row's tags travel as one literal; its
// cast took 0.6–1.0 µs a row against 2.2–3.7 µs for the JSON array it
// replaced (psql, 100K generated rows).
func arrayLiteral(ss []string) *string {
	if ss == nil {
		return nil
	}
	b := make([]byte, 0, 2+8*len(ss))
	b = append(b, '{')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b = append(b, '\\')
			}
			b = append(b, s[j])
		}
		b = append(b, '"')
	}
	b = append(b, '}')
	s := string(b)
	return &s
}

// jsonText is v as JSON text, or nil (SQL NULL) if null. Access counters
// are strings and integers, which always encode.
func jsonText(v any, null bool) *string {
	if null {
		return nil
	}
	b, _ := json.Marshal(v)
	s := string(b)
	return &s
}

// queueChanges queues the insert of the queued change-log entries, which
// sets each one's Pos. Entries get positions in queue order (the order of
// the unnest, kept by ORDER BY) and are matched back by (device, seq),
// which is unique.
func (p *pipeTx) queueChanges(b *pgx.Batch) {
	for chunk := range slices.Chunk(p.changes, maxRowsPerStatement) {
		n := len(chunk)
		devices, kinds, projects, entities, payloads, statuses, reasons := make(textArray, n), make(textArray, n),
			make(textArray, n), make(textArray, n), make(textArray, n), make(textArray, n), make(textArray, n)
		seqs, hlcs := make([]int64, n), make([]int64, n)
		vecs := make([][]byte, n)
		inMem := make([]bool, n)
		byKey := make(map[changeKey]*core.Change, n)
		for i, r := range chunk {
			c := &r.v
			devices[i], seqs[i], hlcs[i], kinds[i] = c.Device, int64(c.Seq), int64(c.HLC), string(c.Kind)
			projects[i], entities[i], statuses[i], reasons[i] = string(c.ProjectID), string(c.EntityID), string(c.Status), c.Reason
			payloads[i], vecs[i], inMem[i] = r.payload, r.vector, r.inMemory
			byKey[changeKey{c.Device, int64(c.Seq)}] = r.c
		}
		op, q, args := "append changes", appendChangesSQL, []any{devices, seqs, hlcs, kinds, projects, entities, payloads, vecs, statuses, reasons, inMem}
		if n == 1 { // one row as plain parameters, as for a lone memory row
			op, q = "append change "+devices[0]+"/"+strconv.FormatInt(seqs[0], 10), appendChangeSQL
			args = []any{devices[0], seqs[0], hlcs[0], kinds[0], projects[0], entities[0], payloads[0], vecs[0], statuses[0], reasons[0], inMem[0]}
		}
		b.Queue(q, args...).Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var k changeKey
				var pos int64
				if err := rs.Scan(&pos, &k.device, &k.seq); err != nil {
					return translate(op, err)
				}
				if c := byKey[k]; c != nil {
					c.Pos = pos
				}
			}
			if err := rs.Err(); err != nil {
				return translate(op, err)
			}
			return nil
		})
	}
}

// appendChangesSQL inserts change-log entries given as one array per
// column, in array order, and returns their positions.
const appendChangesSQL = `INSERT INTO changes (device, seq, hlc, kind, project_id, entity_id, payload, vector, status, reason,
		vector_in_memory)
	SELECT device, seq, hlc, kind, project_id, entity_id, payload::json, vector, status, reason, vector_in_memory
	FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[],
		$9::text[], $10::text[], $11::bool[]) WITH ORDINALITY
		AS u(device, seq, hlc, kind, project_id, entity_id, payload, vector, status, reason, vector_in_memory, n)
	ORDER BY n RETURNING pos, device, seq`

// appendChangeSQL is appendChangesSQL for one entry.
const appendChangeSQL = `INSERT INTO changes (device, seq, hlc, kind, project_id, entity_id, payload, vector, status, reason,
		vector_in_memory)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING pos, device, seq`

type changeKey struct {
	device string
	seq    int64
}

func (p *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := p.send(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return p.Tx.Exec(ctx, sql, args...)
}

func (p *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := p.send(ctx); err != nil {
		return nil, err
	}
	return p.Tx.Query(ctx, sql, args...)
}

func (p *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := p.send(ctx); err != nil {
		return errRow{err}
	}
	return p.Tx.QueryRow(ctx, sql, args...)
}

func (p *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := p.send(ctx); err != nil {
		return errBatch{err}
	}
	return p.Tx.SendBatch(ctx, b)
}

func (p *pipeTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := p.send(ctx); err != nil {
		return 0, err
	}
	return p.Tx.CopyFrom(ctx, table, cols, src)
}

func (p *pipeTx) Commit(ctx context.Context) error {
	if err := p.send(ctx); err != nil {
		return err
	}
	return p.Tx.Commit(ctx)
}

// errRow is a pgx.Row whose Scan returns err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// errBatch is a pgx.BatchResults whose every call returns err.
type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }
