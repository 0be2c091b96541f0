package sqlitevec

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/ncruces/go-sqlite3"

	"github.com/athena-edge/athena-edge/core"
)

// readTx implements core.ReadTx on one connection inside a transaction. It
// is used by one goroutine, only while the function given to View or
// Update runs.
type readTx struct {
	s *Store
	c *conn
}

// writeTx adds the writes. Index operations are buffered in ops and
// applied by Update after COMMIT succeeds; a rollback drops them.
type writeTx struct {
	readTx
	ops    []indexOp
	maxPos int64 // the highest change-log position this transaction wrote
	// ftsPending holds FTS5 rows to insert, written by flushFTS before
	// anything reads or deletes FTS5 rows and before COMMIT. FTS5 flushes
	// its buffered terms to disk whenever a later statement of the
	// transaction opens a statement savepoint (the change-log insert did,
	// for its UNIQUE constraint, before it became OR FAIL), so inserting
	// each memory's row beside its other statements wrote one tiny
	// segment per memory and merged them over and over: 3/4 of a batched
	// insert's time in SQLite. Inserted together, the rows of a batch
	// make one segment, whatever statements run in between.
	ftsPending []ftsRow
	// vecPending is the last change appended with its vector left in
	// the memory row (vector_in_memory 1), until PutMemory writes that
	// memory with that embedding; anything else first stores the vector
	// in the change row after all (resolveVec).
	vecPending struct {
		pos    int64 // 0: none
		entity core.ID
		vec    []float32 // the change's Vector (core does not modify it within the transaction)
	}
}

// resolveVec stores the pending change's vector in its own row: the
// memory row was not written with it.
func (t *writeTx) resolveVec() error {
	p := &t.vecPending
	if p.pos == 0 {
		return nil
	}
	err := t.c.exec(`UPDATE changes SET vector = ?, vector_in_memory = 0 WHERE pos = ?`, vecBlob(p.vec), p.pos)
	if err != nil {
		return t.c.wrap("append change: vector", err)
	}
	p.pos, p.entity, p.vec = 0, "", nil
	return nil
}

// keepChangeVectors copies memory row rid's embedding into every change
// of id that keeps its vector in that row (vector_in_memory), except the
// change at position except (0: none; positions start at 1), before the
// row's embedding changes or the row goes.
func (t *writeTx) keepChangeVectors(rid int64, id core.ID, except int64) error {
	return t.c.exec(`UPDATE changes SET vector = (SELECT embedding FROM memories WHERE rid = ?), vector_in_memory = 0
		WHERE entity_id = ? AND vector_in_memory = 1 AND pos <> ?`, rid, id, except)
}

// flush does what must happen before the transaction commits.
func (t *writeTx) flush() error {
	if err := t.resolveVec(); err != nil {
		return err
	}
	return t.flushFTS()
}

// ftsRow is an FTS5 row waiting for flushFTS.
type ftsRow struct {
	rid  int64
	body string
}

// flushFTS inserts the pending FTS5 rows.
func (t *writeTx) flushFTS() error {
	for i, r := range t.ftsPending {
		if err := t.c.exec(`INSERT INTO memories_fts (rowid, body) VALUES (?, ?)`, r.rid, r.body); err != nil {
			t.ftsPending = t.ftsPending[i:]
			return t.c.wrap("put memory: index text", err)
		}
	}
	t.ftsPending = t.ftsPending[:0]
	return nil
}

var (
	_ core.ReadTx  = (*readTx)(nil)
	_ core.WriteTx = (*writeTx)(nil)
)

// ---- encoding ----

func ms(t time.Time) int64 { return core.UnixMilli(t) }

func fromMS(v int64) time.Time { return core.FromUnixMilli(v) }

// vecBlob encodes v for binding. On a little-endian machine it is v's
// own memory, no copy: binding copies it into SQLite at once.
func vecBlob(v []float32) []byte {
	if v == nil {
		return nil
	}
	if nativeLE() && len(v) > 0 {
		return sliceBytes(v)
	}
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func blobVec(b []byte) []float32 {
	if b == nil {
		return nil
	}
	v := make([]float32, len(b)/4)
	if nativeLE() {
		copy(sliceBytes(v), b) // the BLOB is little-endian float32 already
		return v
	}
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// nativeLE reports whether the machine is little-endian (a constant the
// compiler folds).
func nativeLE() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

func jsonText(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// ---- projects ----

const projectCols = `id, name, path, language, description, embedding_model, embedding_dim,
	consolidation_interval_ns, created_at, updated_at, last_accessed, version_hlc, version_device`

func scanProject(st *sqlite3.Stmt) core.Project {
	return core.Project{
		ID: core.ID(st.ColumnText(0)), Name: st.ColumnText(1), Path: st.ColumnText(2),
		Language: st.ColumnText(3), Description: st.ColumnText(4), EmbeddingModel: st.ColumnText(5),
		EmbeddingDim: st.ColumnInt(6), ConsolidationInterval: time.Duration(st.ColumnInt64(7)),
		CreatedAt: fromMS(st.ColumnInt64(8)), UpdatedAt: fromMS(st.ColumnInt64(9)),
		LastAccessed: fromMS(st.ColumnInt64(10)),
		Version:      core.Stamp{HLC: core.HLC(st.ColumnInt64(11)), Device: st.ColumnText(12)},
	}
}

func (t *readTx) projects(op, where string, args ...any) ([]core.Project, error) {
	out := []core.Project{}
	err := t.c.query(`SELECT `+projectCols+` FROM projects `+where, args, func(st *sqlite3.Stmt) error {
		out = append(out, scanProject(st))
		return nil
	})
	return out, t.c.wrap(op, err)
}

func (t *readTx) Project(ctx context.Context, id core.ID) (core.Project, error) {
	ps, err := t.projects("project", `WHERE id = ?`, id)
	if err != nil {
		return core.Project{}, err
	}
	if len(ps) == 0 {
		return core.Project{}, fmt.Errorf("sqlitevec: project %s: %w", id, core.ErrNotFound)
	}
	return ps[0], nil
}

func (t *readTx) ProjectBy(ctx context.Context, name, path string) (core.Project, error) {
	var ps []core.Project
	var err error
	if name != "" {
		ps, err = t.projects("project by name", `WHERE name = ?`, name)
	} else {
		ps, err = t.projects("project by path", `WHERE path = ?`, path)
	}
	if err != nil {
		return core.Project{}, err
	}
	if len(ps) == 0 {
		return core.Project{}, fmt.Errorf("sqlitevec: project %q%q: %w", name, path, core.ErrNotFound)
	}
	return ps[0], nil
}

func (t *readTx) Projects(ctx context.Context) ([]core.Project, error) {
	return t.projects("projects", `ORDER BY name`)
}

func (t *writeTx) PutProject(ctx context.Context, p core.Project) error {
	err := t.c.exec(`INSERT INTO projects (`+projectCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, path = excluded.path, language = excluded.language,
		description = excluded.description, embedding_model = excluded.embedding_model,
		embedding_dim = excluded.embedding_dim, consolidation_interval_ns = excluded.consolidation_interval_ns,
		created_at = excluded.created_at, updated_at = excluded.updated_at, last_accessed = excluded.last_accessed,
		version_hlc = excluded.version_hlc, version_device = excluded.version_device`,
		p.ID, p.Name, p.Path, p.Language, p.Description, p.EmbeddingModel, p.EmbeddingDim,
		int64(p.ConsolidationInterval), ms(p.CreatedAt), ms(p.UpdatedAt), ms(p.LastAccessed),
		uint64(p.Version.HLC), p.Version.Device)
	return t.c.wrap("put project", err)
}

// ---- memories ----

// memoryCols are a memory row's columns; memoryColsNoRid all but rid.
const (
	memoryCols      = `rid, ` + memoryColsNoRid
	memoryColsNoRid = `id, project_id, content, embedding, embedding_model, memory_type, domain, tags,
	session_id, event_type, code_language, code_hash, usefulness, confidence, access_count, quality_score,
	state, superseded_by, created_at, updated_at, last_accessed, last_retrieved, consolidated_at,
	version_hlc, version_device, state_version_hlc, state_version_device, access_by_device`
)

// memoryColCount is the number of columns in memoryCols.
const memoryColCount = 29

// memDecoder reads rows of memoryCols. It fetches every column in one
// call into SQLite (ColumnsRaw) instead of one call per column: with
// SQLite in WebAssembly each call costs more than decoding the value. It
// keeps each text column's last value and hands it out again while rows
// repeat it (project, model, type, state, device...), instead of
// allocating one string per column per row.
type memDecoder struct {
	raw  [memoryColCount]any
	last [memoryColCount]string
}

// fetch reads the current row's columns into d.raw.
func (d *memDecoder) fetch(st *sqlite3.Stmt) error { return st.ColumnsRaw(d.raw[:]...) }

// scan reads a row of memoryCols.
func (d *memDecoder) scan(st *sqlite3.Stmt) (core.Memory, error) {
	if err := d.fetch(st); err != nil {
		return core.Memory{}, err
	}
	return d.memory()
}

// memory decodes the row fetch read.
func (d *memDecoder) memory() (core.Memory, error) {
	c := &d.raw
	m := core.Memory{
		ID: core.ID(rawText(c[1])), ProjectID: core.ID(d.text(2)), Content: rawText(c[3]),
		Embedding: blobVec(rawBlob(c[4])), EmbeddingModel: d.text(5),
		MemoryType: core.MemoryType(d.text(6)), Domain: d.text(7),
		SessionID: d.text(9), EventType: d.text(10), CodeLanguage: d.text(11),
		CodeHash: d.text(12), Usefulness: rawFloat(c[13]), Confidence: rawFloat(c[14]),
		AccessCount: rawInt(c[15]), QualityScore: rawFloat(c[16]), State: core.State(d.text(17)),
		SupersededBy: core.ID(d.text(18)), CreatedAt: fromMS(rawInt(c[19])),
		UpdatedAt: fromMS(rawInt(c[20])), LastAccessed: fromMS(rawInt(c[21])),
		LastRetrieved: fromMS(rawInt(c[22])), ConsolidatedAt: fromMS(rawInt(c[23])),
		Version:      core.Stamp{HLC: core.HLC(rawInt(c[24])), Device: d.text(25)},
		StateVersion: core.Stamp{HLC: core.HLC(rawInt(c[26])), Device: d.text(27)},
	}
	if tags := rawBlob(c[8]); string(tags) == "[]" {
		m.Tags = []string{} // what json.Unmarshal makes of it, without its cost
	} else if err := json.Unmarshal(tags, &m.Tags); err != nil {
		return m, fmt.Errorf("memory %s: tags: %w", m.ID, err)
	}
	if raw := rawBlob(c[28]); len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &m.AccessByDevice); err != nil {
			return m, fmt.Errorf("memory %s: access_by_device: %w", m.ID, err)
		}
	}
	return m, nil
}

// text is text column i of the fetched row, the same string as the last
// row's when the value is the same (strings are immutable: sharing is
// safe).
func (d *memDecoder) text(i int) string {
	b := rawBlob(d.raw[i])
	if len(b) == 0 {
		return ""
	}
	if s := d.last[i]; s == string(b) {
		return s
	}
	s := string(b)
	d.last[i] = s
	return s
}

// rawText, rawBlob, rawInt and rawFloat convert what ColumnsRaw returns:
// TEXT and BLOB as []byte owned by SQLite, INTEGER as int64, FLOAT as
// float64, NULL as nil (read as the zero value, as the Column methods do).
func rawText(v any) string { b, _ := v.([]byte); return string(b) }
func rawBlob(v any) []byte { b, _ := v.([]byte); return b }

func rawInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	}
	return 0
}

func rawFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	}
	return 0
}

func (t *readTx) Memories(ctx context.Context, f core.MemoryFilter) ([]core.Memory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(f.IDs) > 0 {
		return t.memoriesByID(&f)
	}
	var where []string
	var args []any
	if f.ProjectID != "" {
		where, args = append(where, `project_id = ?`), append(args, f.ProjectID)
	}
	if len(f.States) > 0 {
		v, _ := jsonText(f.States)
		where, args = append(where, `state IN (SELECT value FROM json_each(?))`), append(args, v)
	}
	if len(f.Types) > 0 {
		v, _ := jsonText(f.Types)
		where, args = append(where, `memory_type IN (SELECT value FROM json_each(?))`), append(args, v)
	}
	if f.Domain != "" {
		where, args = append(where, `domain = ?`), append(args, f.Domain)
	}
	if f.SessionID != "" {
		where, args = append(where, `session_id = ?`), append(args, f.SessionID)
	}
	if f.AfterID != "" {
		op := `id > ?`
		if f.Newest {
			op = `id < ?`
		}
		where, args = append(where, op), append(args, f.AfterID)
	}
	sql := `SELECT ` + memoryCols + ` FROM memories`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, ` AND `)
	}
	if f.Newest {
		sql += ` ORDER BY id DESC`
	} else {
		sql += ` ORDER BY id`
	}
	// Tags and time ranges are checked in Go with core's own Match, so
	// that filters mean exactly the same on every store.
	out := []core.Memory{}
	var d memDecoder
	err := t.c.query(sql, args, func(st *sqlite3.Stmt) error {
		m, err := d.scan(st)
		if err != nil {
			return err
		}
		if f.Match(&m) {
			out = append(out, m)
		}
		if f.Limit > 0 && len(out) >= f.Limit {
			return errStop
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	return out, t.c.wrap("memories", err)
}

// memoriesByID loads the rows of f.IDs: by rid where the index knows the
// ID (loadByRid), the others by ID (memoriesByIDs).
func (t *readTx) memoriesByID(f *core.MemoryFilter) ([]core.Memory, error) {
	out := make([]core.Memory, 0, len(f.IDs))
	d := new(memDecoder)
	keep := func(m *core.Memory) {
		if f.Match(m) {
			out = append(out, *m)
		}
	}
	rest := f.IDs
	if len(f.IDs) > 1 {
		var want []ridWant
		want, rest = t.wantsOf(f.IDs)
		missed, err := t.loadByRid(want, d, keep)
		if err != nil {
			return nil, err
		}
		rest = append(rest, missed...)
	}
	if err := t.memoriesByIDs(rest, d, keep); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b core.Memory) int {
		if f.Newest {
			return cmp.Compare(b.ID, a.ID)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// loadMemories loads the rows of want (by rid) and of ids (by ID), each
// row once, in no particular order.
func (t *readTx) loadMemories(want []ridWant, ids []core.ID) ([]core.Memory, error) {
	out := make([]core.Memory, 0, len(want)+len(ids))
	d := new(memDecoder)
	keep := func(m *core.Memory) { out = append(out, *m) }
	missed, err := t.loadByRid(want, d, keep)
	if err != nil {
		return nil, err
	}
	if err := t.memoriesByIDs(slices.Concat(ids, missed), d, keep); err != nil {
		return nil, err
	}
	return out, nil
}

// ridWant is an ID asked for, the rid the index holds it at, and whether
// that row was read.
type ridWant struct {
	rid   int64
	id    core.ID
	found bool
}

// wantsOf pairs each of ids with the rid the index holds it at; it
// returns the IDs the index does not hold apart.
func (t *readTx) wantsOf(ids []core.ID) (want []ridWant, rest []core.ID) {
	rids := t.s.index().ridsOf(ids, make([]int64, 0, len(ids)))
	want = make([]ridWant, 0, len(ids))
	for i, id := range ids {
		if rids[i] == 0 {
			rest = append(rest, id)
		} else {
			want = append(want, ridWant{rid: rids[i], id: id})
		}
	}
	return want, rest
}

// loadByRid loads, with one statement, the rows of want by rid, and
// passes each to keep once. Looking rows up by rid skips the UNIQUE(id)
// index (a B-tree descent per row): a search's ~95 candidates load ~20%
// faster. The index is changed only after a commit, so this transaction
// may see no row at a rid, or another memory's: a row counts only if its
// id column is the ID asked for (IDs are unique, so it is then the row
// the ID lookup finds). It returns the IDs it did not find, for
// memoriesByIDs. It sorts want.
func (t *readTx) loadByRid(want []ridWant, d *memDecoder, keep func(*core.Memory)) ([]core.ID, error) {
	slices.SortFunc(want, func(a, b ridWant) int { return cmp.Or(cmp.Compare(a.rid, b.rid), cmp.Compare(a.id, b.id)) })
	want = slices.CompactFunc(want, func(a, b ridWant) bool { return a.rid == b.rid && a.id == b.id })
	if len(want) == 0 {
		return nil, nil
	}
	list := make([]byte, 0, 12*len(want))
	for i, w := range want {
		list = append(list, ',')
		if i == 0 {
			list[0] = '['
		}
		list = strconv.AppendInt(list, w.rid, 10)
	}
	list = append(list, ']')
	// IN (a set) yields each row once; rows come in rid order.
	err := t.c.query(`SELECT `+memoryCols+` FROM memories WHERE rid IN (SELECT value FROM json_each(?))`, []any{string(list)},
		func(st *sqlite3.Stmt) error {
			if err := d.fetch(st); err != nil {
				return err
			}
			rid, id := rawInt(d.raw[0]), rawBlob(d.raw[1])
			i, ok := slices.BinarySearchFunc(want, rid, func(w ridWant, rid int64) int { return cmp.Compare(w.rid, rid) })
			if !ok || string(want[i].id) != string(id) {
				return nil // not the row asked for: left to the ID lookup
			}
			want[i].found = true
			m, err := d.memory()
			if err != nil {
				return err
			}
			keep(&m)
			return nil
		})
	if err != nil {
		return nil, t.c.wrap("memories", err)
	}
	var missed []core.ID
	for _, w := range want {
		if !w.found {
			missed = append(missed, w.id)
		}
	}
	return missed, nil
}

// memoriesByIDs loads the rows of ids with one statement: the IDs go in
// as one JSON array and SQLite looks each up by the unique index (no ORDER
// BY, which would let the planner scan the whole index in order instead).
// One statement instead of one per ID saves a bind, a reset and a final
// step per ID, each a call into WebAssembly: ~15% of loading a search's
// ~90 candidates. JSON cannot carry invalid UTF-8 exactly, so such IDs,
// and a single ID, are looked up one at a time. Each row found is passed
// to keep once.
func (t *readTx) memoriesByIDs(ids []core.ID, d *memDecoder, keep func(*core.Memory)) error {
	row := func(st *sqlite3.Stmt) error {
		m, err := d.scan(st)
		if err != nil {
			return err
		}
		keep(&m)
		return nil
	}
	if len(ids) > 1 && !slices.ContainsFunc(ids, func(id core.ID) bool { return !utf8.ValidString(string(id)) }) {
		list, err := jsonText(ids)
		if err != nil {
			return fmt.Errorf("sqlitevec: memories: %w", err)
		}
		// IN (a set) yields each row once, however often its ID repeats.
		err = t.c.query(`SELECT `+memoryCols+` FROM memories WHERE id IN (SELECT value FROM json_each(?))`, []any{list}, row)
		return t.c.wrap("memories", err)
	}
	seen := make(map[core.ID]struct{}, len(ids))
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		if err := t.c.query(`SELECT `+memoryCols+` FROM memories WHERE id = ?`, []any{id}, row); err != nil {
			return t.c.wrap("memories", err)
		}
	}
	return nil
}

var errStop = fmt.Errorf("stop")

func (t *readTx) Tombstoned(ctx context.Context, id core.ID) (bool, error) {
	found := false
	err := t.c.query(`SELECT 1 FROM tombstones WHERE id = ?`, []any{id}, func(*sqlite3.Stmt) error {
		found = true
		return nil
	})
	return found, t.c.wrap("tombstoned", err)
}

func (t *writeTx) PutMemory(ctx context.Context, m core.Memory) error {
	err := t.putMemory(ctx, m)
	if t.vecPending.pos != 0 {
		// putMemory resolved a pending change it did not match; one it
		// matched stays in this memory's row, if the row was written.
		if err != nil {
			if rerr := t.resolveVec(); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
		t.vecPending.pos, t.vecPending.entity, t.vecPending.vec = 0, "", nil
	}
	return err
}

func (t *writeTx) putMemory(ctx context.Context, m core.Memory) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	newVec := vecBlob(m.Embedding)
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	tagsJSON, err := jsonText(tags)
	if err != nil {
		return fmt.Errorf("sqlitevec: put memory: tags: %w", err)
	}
	abd := ""
	if len(m.AccessByDevice) > 0 {
		if abd, err = jsonText(m.AccessByDevice); err != nil {
			return fmt.Errorf("sqlitevec: put memory: access_by_device: %w", err)
		}
	}
	// The pending change's vector may stay in this row if the row gets
	// exactly that embedding; every other change whose vector is in this
	// row gets it back before the row's embedding changes.
	keepPos := int64(0)
	if p := &t.vecPending; p.pos != 0 {
		if p.entity == m.ID && bytes.Equal(vecBlob(p.vec), newVec) {
			keepPos = p.pos
		} else if err := t.resolveVec(); err != nil {
			return err
		}
	}
	args := []any{m.ID, m.ProjectID, m.Content, newVec, m.EmbeddingModel, string(m.MemoryType), m.Domain,
		tagsJSON, m.SessionID, m.EventType, m.CodeLanguage, m.CodeHash, m.Usefulness, m.Confidence,
		m.AccessCount, m.QualityScore, string(m.State), m.SupersededBy, ms(m.CreatedAt), ms(m.UpdatedAt),
		ms(m.LastAccessed), ms(m.LastRetrieved), ms(m.ConsolidatedAt), uint64(m.Version.HLC), m.Version.Device,
		uint64(m.StateVersion.HLC), m.StateVersion.Device, abd}
	// An ID the table does not hold (every memory Remember makes) is
	// inserted without looking for its row first: OR FAIL finds a UNIQUE
	// violation of id before it writes anything (see AppendChange), and
	// then the put takes the general path.
	var old struct {
		found   bool
		rid     int64
		project core.ID
		content string
		sameVec bool
	}
	err = t.c.exec(insertMemorySQL, args...)
	if errors.Is(err, sqlite3.CONSTRAINT_UNIQUE) {
		// The previous row: its rid, project and content decide what
		// the keyword statistics lose; its embedding, whether the
		// vector index must change.
		err = t.c.query(`SELECT rid, project_id, content, embedding FROM memories WHERE id = ?`, []any{m.ID}, func(st *sqlite3.Stmt) error {
			old.found, old.rid, old.project, old.content = true, st.ColumnInt64(0), core.ID(st.ColumnText(1)), st.ColumnText(2)
			old.sameVec = (st.ColumnType(3) == sqlite3.NULL) == (newVec == nil) && bytes.Equal(st.ColumnRawBlob(3), newVec)
			return nil
		})
		if err != nil {
			return t.c.wrap("put memory", err)
		}
		if !old.found {
			return t.c.wrap("put memory", errors.New("UNIQUE constraint failed, but no row has the id"))
		}
		if !old.sameVec {
			if err := t.keepChangeVectors(old.rid, m.ID, keepPos); err != nil {
				return t.c.wrap("put memory: keep change vectors", err)
			}
		}
		if old.sameVec && old.content == m.Content && old.project == m.ProjectID {
			return t.putMetadata(&m, old.rid, tagsJSON, abd)
		}
		err = t.c.exec(insertMemorySQL+upsertMemorySQL, args...)
	}
	if err != nil {
		return t.c.wrap("put memory", err)
	}
	var rid int64
	// The row is the one found above (the upsert keeps its rid) or a new
	// one. Not RETURNING: that costs an ephemeral table and two more calls
	// into SQLite per row.
	rid = old.rid
	if !old.found {
		rid = t.c.c.LastInsertRowID()
	}
	textChanged := !old.found || old.content != m.Content || old.project != m.ProjectID
	op := indexOp{rid: rid, row: rowFromMemory(&m), proj: m.ProjectID}
	if textChanged {
		if old.found {
			if err := t.flushFTS(); err != nil {
				return err
			}
			if err := t.c.exec(`DELETE FROM memories_fts WHERE rowid = ?`, rid); err != nil {
				return t.c.wrap("put memory: unindex text", err)
			}
			op.oldProject, op.oldText, op.hadText = old.project, old.content, true
		}
		t.ftsPending = append(t.ftsPending, ftsRow{rid: rid, body: ftsBody(m.ProjectID, m.Content)})
		op.newText, op.textChanged = m.Content, true
	}
	// A copy: the index takes it after Update has returned (prepareOps).
	op.emb = slices.Clone(m.Embedding)
	t.ops = append(t.ops, op)
	return nil
}

// insertMemorySQL inserts a memory row; OR FAIL (see AppendChange): a
// NOT NULL or UNIQUE violation is found before the statement writes
// anything. upsertMemorySQL makes it replace an existing row of the ID,
// keeping its rid.
const (
	insertMemorySQL = `INSERT OR FAIL INTO memories (` + memoryColsNoRid + `)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	upsertMemorySQL = `
		ON CONFLICT (id) DO UPDATE SET project_id = excluded.project_id, content = excluded.content,
		embedding = excluded.embedding, embedding_model = excluded.embedding_model,
		memory_type = excluded.memory_type, domain = excluded.domain, tags = excluded.tags,
		session_id = excluded.session_id, event_type = excluded.event_type,
		code_language = excluded.code_language, code_hash = excluded.code_hash,
		usefulness = excluded.usefulness, confidence = excluded.confidence,
		access_count = excluded.access_count, quality_score = excluded.quality_score, state = excluded.state,
		superseded_by = excluded.superseded_by, created_at = excluded.created_at,
		updated_at = excluded.updated_at, last_accessed = excluded.last_accessed,
		last_retrieved = excluded.last_retrieved, consolidated_at = excluded.consolidated_at,
		version_hlc = excluded.version_hlc, version_device = excluded.version_device,
		state_version_hlc = excluded.state_version_hlc, state_version_device = excluded.state_version_device,
		access_by_device = excluded.access_by_device`
)

// putMetadata rewrites an existing row whose content, project and
// embedding are unchanged (consolidation rewrites state and usefulness of
// every memory): it leaves the content and the embedding out of the
// statement, and the FTS5 row, the B-tree indexes on id and project and
// the vector index alone.
func (t *writeTx) putMetadata(m *core.Memory, rid int64, tagsJSON, abd string) error {
	err := t.c.exec(`UPDATE memories SET embedding_model = ?, memory_type = ?, domain = ?, tags = ?,
		session_id = ?, event_type = ?, code_language = ?, code_hash = ?, usefulness = ?, confidence = ?,
		access_count = ?, quality_score = ?, state = ?, superseded_by = ?, created_at = ?, updated_at = ?,
		last_accessed = ?, last_retrieved = ?, consolidated_at = ?, version_hlc = ?, version_device = ?,
		state_version_hlc = ?, state_version_device = ?, access_by_device = ? WHERE rid = ?`,
		m.EmbeddingModel, string(m.MemoryType), m.Domain, tagsJSON, m.SessionID, m.EventType, m.CodeLanguage,
		m.CodeHash, m.Usefulness, m.Confidence, m.AccessCount, m.QualityScore, string(m.State), m.SupersededBy,
		ms(m.CreatedAt), ms(m.UpdatedAt), ms(m.LastAccessed), ms(m.LastRetrieved), ms(m.ConsolidatedAt),
		uint64(m.Version.HLC), m.Version.Device, uint64(m.StateVersion.HLC), m.StateVersion.Device, abd, rid)
	if err != nil {
		return t.c.wrap("put memory", err)
	}
	op := indexOp{rid: rid, row: rowFromMemory(m), proj: m.ProjectID, keepVec: true}
	if _, ok := t.s.index().projectOf(rid); !ok {
		// Not in the index (it holds every committed row, so this is
		// not expected): the index quantizes a copy of the embedding.
		op.emb = slices.Clone(m.Embedding)
	}
	t.ops = append(t.ops, op)
	return nil
}

// ftsBody is what the FTS5 table indexes for a memory: its project token
// and core's normalized text.
func ftsBody(project core.ID, content string) string {
	return projectToken(project) + " " + core.NormalizeText(content)
}

// projectToken is the FTS5 token that marks a project's documents.
func projectToken(project core.ID) string {
	return "_p" + strings.ReplaceAll(string(project), "-", "")
}

func (t *writeTx) DeleteMemory(ctx context.Context, id core.ID) error {
	var old struct {
		found   bool
		rid     int64
		project core.ID
		content string
	}
	err := t.c.query(`SELECT rid, project_id, content FROM memories WHERE id = ?`, []any{id}, func(st *sqlite3.Stmt) error {
		old.found, old.rid, old.project, old.content = true, st.ColumnInt64(0), core.ID(st.ColumnText(1)), st.ColumnText(2)
		return nil
	})
	if err != nil {
		return t.c.wrap("delete memory", err)
	}
	if err := t.resolveVec(); err != nil {
		return err
	}
	if old.found {
		if err := t.flushFTS(); err != nil {
			return err
		}
		if err := t.keepChangeVectors(old.rid, id, 0); err != nil {
			return t.c.wrap("delete memory: keep change vectors", err)
		}
		if err := t.c.exec(`DELETE FROM memories WHERE rid = ?`, old.rid); err != nil {
			return t.c.wrap("delete memory", err)
		}
		if err := t.c.exec(`DELETE FROM memories_fts WHERE rowid = ?`, old.rid); err != nil {
			return t.c.wrap("delete memory: unindex text", err)
		}
		t.ops = append(t.ops, indexOp{rid: old.rid, del: true, oldProject: old.project, oldText: old.content, hadText: true})
	}
	err = t.c.exec(`INSERT INTO tombstones (id, deleted_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, id, time.Now().UnixMilli())
	return t.c.wrap("delete memory: tombstone", err)
}

// ---- events, tasks, goals, code, relationships ----

const eventCols = `id, project_id, session_id, ts, event_type, content, outcome, context, learned, surprise,
	confidence, embedding, embedding_model, consolidated, consolidated_into, created_at, version_hlc, version_device`

func (t *readTx) Events(ctx context.Context, f core.EventFilter) ([]core.Event, error) {
	where, args := filterSQL([]string{"project_id", "id", "session_id"}, string(f.ProjectID), string(f.ID), f.SessionID)
	if f.Consolidated != nil {
		where, args = appendWhere(where, `consolidated = ?`), append(args, *f.Consolidated)
	}
	out := []core.Event{}
	err := t.c.query(`SELECT `+eventCols+` FROM events`+where+` ORDER BY ts, id`+limitSQL(f.Limit), args, func(st *sqlite3.Stmt) error {
		e := core.Event{
			ID: core.ID(st.ColumnText(0)), ProjectID: core.ID(st.ColumnText(1)), SessionID: st.ColumnText(2),
			Timestamp: fromMS(st.ColumnInt64(3)), EventType: st.ColumnText(4), Content: st.ColumnText(5),
			Outcome: st.ColumnText(6), Learned: st.ColumnText(8), Surprise: st.ColumnFloat(9),
			Confidence: st.ColumnFloat(10), Embedding: blobVec(st.ColumnRawBlob(11)), EmbeddingModel: st.ColumnText(12),
			Consolidated: st.ColumnBool(13), ConsolidatedInto: core.ID(st.ColumnText(14)),
			CreatedAt: fromMS(st.ColumnInt64(15)),
			Version:   core.Stamp{HLC: core.HLC(st.ColumnInt64(16)), Device: st.ColumnText(17)},
		}
		if err := json.Unmarshal(st.ColumnRawText(7), &e.Context); err != nil {
			return fmt.Errorf("event %s: context: %w", e.ID, err)
		}
		out = append(out, e)
		return nil
	})
	return out, t.c.wrap("events", err)
}

func (t *writeTx) PutEvent(ctx context.Context, e core.Event) error {
	evctx, err := jsonText(e.Context)
	if err != nil {
		return fmt.Errorf("sqlitevec: put event: context: %w", err)
	}
	err = t.c.exec(`INSERT OR REPLACE INTO events (`+eventCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.ID, e.ProjectID, e.SessionID, ms(e.Timestamp), e.EventType, e.Content, e.Outcome, evctx, e.Learned,
		e.Surprise, e.Confidence, vecBlob(e.Embedding), e.EmbeddingModel, e.Consolidated, e.ConsolidatedInto,
		ms(e.CreatedAt), uint64(e.Version.HLC), e.Version.Device)
	return t.c.wrap("put event", err)
}

const taskCols = `id, project_id, title, description, status, priority, goal_id, parent_id, due_at,
	created_at, updated_at, completed_at, version_hlc, version_device`

func (t *readTx) Tasks(ctx context.Context, f core.TaskFilter) ([]core.Task, error) {
	where, args := filterSQL([]string{"project_id", "id", "status", "goal_id"}, string(f.ProjectID), string(f.ID), f.Status, string(f.GoalID))
	out := []core.Task{}
	err := t.c.query(`SELECT `+taskCols+` FROM tasks`+where+` ORDER BY priority DESC, id`+limitSQL(f.Limit), args, func(st *sqlite3.Stmt) error {
		out = append(out, core.Task{
			ID: core.ID(st.ColumnText(0)), ProjectID: core.ID(st.ColumnText(1)), Title: st.ColumnText(2),
			Description: st.ColumnText(3), Status: st.ColumnText(4), Priority: st.ColumnInt(5),
			GoalID: core.ID(st.ColumnText(6)), ParentID: core.ID(st.ColumnText(7)), DueAt: fromMS(st.ColumnInt64(8)),
			CreatedAt: fromMS(st.ColumnInt64(9)), UpdatedAt: fromMS(st.ColumnInt64(10)),
			CompletedAt: fromMS(st.ColumnInt64(11)),
			Version:     core.Stamp{HLC: core.HLC(st.ColumnInt64(12)), Device: st.ColumnText(13)},
		})
		return nil
	})
	return out, t.c.wrap("tasks", err)
}

func (t *writeTx) PutTask(ctx context.Context, v core.Task) error {
	err := t.c.exec(`INSERT OR REPLACE INTO tasks (`+taskCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		v.ID, v.ProjectID, v.Title, v.Description, v.Status, v.Priority, v.GoalID, v.ParentID, ms(v.DueAt),
		ms(v.CreatedAt), ms(v.UpdatedAt), ms(v.CompletedAt), uint64(v.Version.HLC), v.Version.Device)
	return t.c.wrap("put task", err)
}

const goalCols = `id, project_id, title, description, status, priority, parent_id, progress, due_at,
	created_at, updated_at, version_hlc, version_device`

func (t *readTx) Goals(ctx context.Context, f core.GoalFilter) ([]core.Goal, error) {
	where, args := filterSQL([]string{"project_id", "id", "status"}, string(f.ProjectID), string(f.ID), f.Status)
	out := []core.Goal{}
	err := t.c.query(`SELECT `+goalCols+` FROM goals`+where+` ORDER BY priority DESC, id`+limitSQL(f.Limit), args, func(st *sqlite3.Stmt) error {
		out = append(out, core.Goal{
			ID: core.ID(st.ColumnText(0)), ProjectID: core.ID(st.ColumnText(1)), Title: st.ColumnText(2),
			Description: st.ColumnText(3), Status: st.ColumnText(4), Priority: st.ColumnInt(5),
			ParentID: core.ID(st.ColumnText(6)), Progress: st.ColumnFloat(7), DueAt: fromMS(st.ColumnInt64(8)),
			CreatedAt: fromMS(st.ColumnInt64(9)), UpdatedAt: fromMS(st.ColumnInt64(10)),
			Version: core.Stamp{HLC: core.HLC(st.ColumnInt64(11)), Device: st.ColumnText(12)},
		})
		return nil
	})
	return out, t.c.wrap("goals", err)
}

func (t *writeTx) PutGoal(ctx context.Context, v core.Goal) error {
	err := t.c.exec(`INSERT OR REPLACE INTO goals (`+goalCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		v.ID, v.ProjectID, v.Title, v.Description, v.Status, v.Priority, v.ParentID, v.Progress, ms(v.DueAt),
		ms(v.CreatedAt), ms(v.UpdatedAt), uint64(v.Version.HLC), v.Version.Device)
	return t.c.wrap("put goal", err)
}

const codeCols = `id, project_id, memory_id, file_path, name, entity_type, language, signature, docstring,
	semantic_hash, complexity, line_start, line_end, created_at, updated_at, version_hlc, version_device`

func (t *readTx) CodeEntities(ctx context.Context, f core.CodeFilter) ([]core.CodeEntity, error) {
	where, args := filterSQL([]string{"project_id", "id", "memory_id", "file_path"}, string(f.ProjectID), string(f.ID), string(f.MemoryID), f.FilePath)
	out := []core.CodeEntity{}
	err := t.c.query(`SELECT `+codeCols+` FROM code_entities`+where+` ORDER BY id`+limitSQL(f.Limit), args, func(st *sqlite3.Stmt) error {
		out = append(out, core.CodeEntity{
			ID: core.ID(st.ColumnText(0)), ProjectID: core.ID(st.ColumnText(1)), MemoryID: core.ID(st.ColumnText(2)),
			FilePath: st.ColumnText(3), Name: st.ColumnText(4), EntityType: st.ColumnText(5),
			Language: st.ColumnText(6), Signature: st.ColumnText(7), Docstring: st.ColumnText(8),
			SemanticHash: st.ColumnText(9), Complexity: st.ColumnInt(10), LineStart: st.ColumnInt(11),
			LineEnd: st.ColumnInt(12), CreatedAt: fromMS(st.ColumnInt64(13)), UpdatedAt: fromMS(st.ColumnInt64(14)),
			Version: core.Stamp{HLC: core.HLC(st.ColumnInt64(15)), Device: st.ColumnText(16)},
		})
		return nil
	})
	return out, t.c.wrap("code entities", err)
}

func (t *writeTx) PutCodeEntity(ctx context.Context, v core.CodeEntity) error {
	err := t.c.exec(`INSERT OR REPLACE INTO code_entities (`+codeCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		v.ID, v.ProjectID, v.MemoryID, v.FilePath, v.Name, v.EntityType, v.Language, v.Signature, v.Docstring,
		v.SemanticHash, v.Complexity, v.LineStart, v.LineEnd, ms(v.CreatedAt), ms(v.UpdatedAt),
		uint64(v.Version.HLC), v.Version.Device)
	return t.c.wrap("put code entity", err)
}

const depCols = `id, project_id, from_id, to_id, dependency_type, created_at, version_hlc, version_device`

func (t *readTx) CodeDependencies(ctx context.Context, f core.CodeFilter) ([]core.CodeDependency, error) {
	where, args := filterSQL([]string{"project_id", "id"}, string(f.ProjectID), string(f.ID))
	out := []core.CodeDependency{}
	err := t.c.query(`SELECT `+depCols+` FROM code_dependencies`+where+` ORDER BY id`+limitSQL(f.Limit), args, func(st *sqlite3.Stmt) error {
		out = append(out, core.CodeDependency{
			ID: core.ID(st.ColumnText(0)), ProjectID: core.ID(st.ColumnText(1)), FromID: core.ID(st.ColumnText(2)),
			ToID: core.ID(st.ColumnText(3)), Type: st.ColumnText(4), CreatedAt: fromMS(st.ColumnInt64(5)),
			Version: core.Stamp{HLC: core.HLC(st.ColumnInt64(6)), Device: st.ColumnText(7)},
		})
		return nil
	})
	return out, t.c.wrap("code dependencies", err)
}

func (t *writeTx) PutCodeDependency(ctx context.Context, v core.CodeDependency) error {
	err := t.c.exec(`INSERT OR REPLACE INTO code_dependencies (`+depCols+`) VALUES (?,?,?,?,?,?,?,?)`,
		v.ID, v.ProjectID, v.FromID, v.ToID, v.Type, ms(v.CreatedAt), uint64(v.Version.HLC), v.Version.Device)
	return t.c.wrap("put code dependency", err)
}

const relCols = `id, project_id, from_id, to_id, relationship_type, strength, created_at, version_hlc, version_device`

func (t *readTx) Relationships(ctx context.Context, f core.RelationshipFilter) ([]core.Relationship, error) {
	where, args := filterSQL([]string{"project_id", "id"}, string(f.ProjectID), string(f.ID))
	if f.MemoryID != "" {
		where, args = appendWhere(where, `(from_id = ? OR to_id = ?)`), append(args, f.MemoryID, f.MemoryID)
	}
	out := []core.Relationship{}
	err := t.c.query(`SELECT `+relCols+` FROM relationships`+where+` ORDER BY id`+limitSQL(f.Limit), args, func(st *sqlite3.Stmt) error {
		out = append(out, core.Relationship{
			ID: core.ID(st.ColumnText(0)), ProjectID: core.ID(st.ColumnText(1)), FromID: core.ID(st.ColumnText(2)),
			ToID: core.ID(st.ColumnText(3)), Type: st.ColumnText(4), Strength: st.ColumnFloat(5),
			CreatedAt: fromMS(st.ColumnInt64(6)),
			Version:   core.Stamp{HLC: core.HLC(st.ColumnInt64(7)), Device: st.ColumnText(8)},
		})
		return nil
	})
	return out, t.c.wrap("relationships", err)
}

func (t *writeTx) PutRelationship(ctx context.Context, v core.Relationship) error {
	err := t.c.exec(`INSERT OR REPLACE INTO relationships (`+relCols+`) VALUES (?,?,?,?,?,?,?,?,?)`,
		v.ID, v.ProjectID, v.FromID, v.ToID, v.Type, v.Strength, ms(v.CreatedAt), uint64(v.Version.HLC), v.Version.Device)
	return t.c.wrap("put relationship", err)
}

// filterSQL builds "WHERE col = ? AND ..." for the non-empty values.
func filterSQL(cols []string, vals ...string) (string, []any) {
	where := ""
	var args []any
	for i, v := range vals {
		if v != "" {
			where = appendWhere(where, cols[i]+` = ?`)
			args = append(args, v)
		}
	}
	return where, args
}

func appendWhere(where, cond string) string {
	if where == "" {
		return ` WHERE ` + cond
	}
	return where + ` AND ` + cond
}

func limitSQL(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(` LIMIT %d`, n)
}

// ---- change log ----

func (t *readTx) LastSeq(ctx context.Context, device string) (uint64, error) {
	var seq int64
	err := t.c.query(`SELECT coalesce(max(seq), 0) FROM changes WHERE device = ?`, []any{device}, func(st *sqlite3.Stmt) error {
		seq = st.ColumnInt64(0)
		return nil
	})
	return uint64(seq), t.c.wrap("last seq", err)
}

func (t *readTx) Changes(ctx context.Context, after int64, limit int, exclude string) ([]core.Change, error) {
	out := []core.Change{}
	if limit <= 0 {
		return out, nil
	}
	// A vector kept in the memory row (vector_in_memory) is read from
	// there: the row still has it, since a memory's embedding never
	// changes, nor is the row deleted, before its changes get their
	// vectors back.
	err := t.c.query(`SELECT pos, device, seq, hlc, kind, project_id, entity_id, payload,
		CASE WHEN vector_in_memory THEN (SELECT embedding FROM memories WHERE id = changes.entity_id) ELSE vector END,
		status, reason
		FROM changes WHERE pos > ? AND (? = '' OR device != ?) ORDER BY pos LIMIT ?`, []any{after, exclude, exclude, limit},
		func(st *sqlite3.Stmt) error {
			out = append(out, core.Change{
				Pos: st.ColumnInt64(0), Device: st.ColumnText(1), Seq: uint64(st.ColumnInt64(2)),
				HLC: core.HLC(st.ColumnInt64(3)), Kind: core.Kind(st.ColumnText(4)),
				ProjectID: core.ID(st.ColumnText(5)), EntityID: core.ID(st.ColumnText(6)),
				Payload: json.RawMessage(st.ColumnText(7)), Vector: blobVec(st.ColumnRawBlob(8)),
				Status: core.Status(st.ColumnText(9)), Reason: st.ColumnText(10),
			})
			return nil
		})
	return out, t.c.wrap("changes", err)
}

// Changes in a write transaction first stores a pending change's vector
// in its row: the memory row does not hold it yet.
func (t *writeTx) Changes(ctx context.Context, after int64, limit int, exclude string) ([]core.Change, error) {
	if err := t.resolveVec(); err != nil {
		return nil, err
	}
	return t.readTx.Changes(ctx, after, limit, exclude)
}

func (t *writeTx) AppendChange(ctx context.Context, c *core.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.resolveVec(); err != nil {
		return err
	}
	// A memory.put's vector is, almost always, the embedding the next
	// call (PutMemory) writes into the memory row: it is left out of the
	// change row (a 768-d vector is 3 KiB, most of the row) and read from
	// the memory row, unless that call does not come (see vecPending).
	vec, inMemory := vecBlob(c.Vector), c.Kind == core.KindMemoryPut && len(c.Vector) > 0
	bound := vec
	if inMemory {
		bound = nil
	}
	// OR FAIL instead of the default ABORT: a single-row INSERT finds a
	// constraint violation before it writes, so there is nothing for a
	// statement journal to undo, and without the journal SQLite does not
	// copy every page the statement touches (16 KiB each) into it first:
	// 15 µs of each of the two inserts per memory. An I/O error or full
	// disk then rolls back the whole transaction (conn.lost) instead of
	// the statement.
	var pos int64
	err := t.c.exec(`INSERT OR FAIL INTO changes (device, seq, hlc, kind, project_id, entity_id, payload, vector, status, reason,
		vector_in_memory) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		c.Device, c.Seq, uint64(c.HLC), string(c.Kind), c.ProjectID, c.EntityID, string(c.Payload),
		bound, string(c.Status), c.Reason, inMemory)
	if err != nil {
		return t.c.wrap(fmt.Sprintf("append change %s/%d", c.Device, c.Seq), err)
	}
	pos = t.c.c.LastInsertRowID()
	if inMemory {
		t.vecPending.pos, t.vecPending.entity, t.vecPending.vec = pos, c.EntityID, c.Vector
	}
	c.Pos = pos
	t.maxPos = max(t.maxPos, pos)
	return nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
