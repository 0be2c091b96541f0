package sqlitevec

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/athena-edge/athena-edge/core"
	"github.com/ncruces/go-sqlite3"
)

// Several processes may share one database file (a CLI beside a daemon,
// two MCP servers). Each keeps its own in-memory index, which its own
// commits update; commits by another process are found here. Every write
// transaction that changes memories increments index_gen, so a
// transaction that sees a generation newer than the index's reads the
// change log past the index's position, reloads each memory it names, and
// applies the difference. The text a memory had (needed to take its terms
// out of the keyword statistics) is the content of the newest memory.put
// change at or before that position.
//
// catchUp runs at the start of every View and Update, inside the
// transaction, so what it reads is the snapshot the transaction sees.
func (s *Store) catchUp(ctx context.Context, c *conn) error {
	gen, err := c.indexGen()
	if err != nil {
		return err
	}
	s.catchMu.Lock()
	defer s.catchMu.Unlock()
	if s.gen >= 0 && gen <= s.gen {
		return nil
	}
	from := s.logPos
	to := from
	var ids []core.ID
	seen := map[core.ID]bool{}
	err = c.query(`SELECT pos, kind, entity_id FROM changes WHERE pos > ? ORDER BY pos`, []any{from}, func(st *sqlite3.Stmt) error {
		to = st.ColumnInt64(0)
		if id := core.ID(st.ColumnText(2)); strings.HasPrefix(st.ColumnText(1), "memory.") && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rt := &readTx{s: s, c: c}
	ops := make([]indexOp, 0, len(ids))
	var byID map[core.ID]int64 // built only if a memory was deleted
	for _, id := range ids {
		rid, found := int64(0), false
		if err := c.query(`SELECT rid FROM memories WHERE id = ?`, []any{id}, func(st *sqlite3.Stmt) error {
			rid, found = st.ColumnInt64(0), true
			return nil
		}); err != nil {
			return err
		}
		if !found {
			if byID == nil {
				byID = s.index().ridsByID()
			}
			oldRID, had := byID[id]
			if !had {
				continue
			}
			oldProject, _ := s.index().projectOf(oldRID)
			oldText, err := c.contentAt(id, from)
			if err != nil {
				return err
			}
			ops = append(ops, indexOp{rid: oldRID, del: true, oldProject: oldProject, oldText: oldText, hadText: true})
			continue
		}
		ms, err := rt.Memories(ctx, core.MemoryFilter{IDs: []core.ID{id}})
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			continue
		}
		m := &ms[0]
		op := indexOp{rid: rid, row: rowFromMemory(m), proj: m.ProjectID, vec: quantize(m.Embedding)}
		oldProject, had := s.index().projectOf(rid)
		var oldText string
		if had {
			if oldText, err = c.contentAt(id, from); err != nil {
				return err
			}
		}
		if !had || oldText != m.Content || oldProject != m.ProjectID {
			op.textChanged, op.newText = true, m.Content
			if had {
				op.hadText, op.oldText, op.oldProject = true, oldText, oldProject
			}
		}
		ops = append(ops, op)
	}
	s.index().apply(ops)
	s.gen, s.logPos = gen, to
	return nil
}

// maxChangePos is the newest change-log position, 0 for an empty log.
func (c *conn) maxChangePos() (int64, error) {
	var pos int64
	err := c.query(`SELECT coalesce(max(pos), 0) FROM changes`, nil, func(st *sqlite3.Stmt) error {
		pos = st.ColumnInt64(0)
		return nil
	})
	return pos, err
}

// contentAt is a memory's content as of change-log position pos: that of
// its newest memory.put at or before pos.
func (c *conn) contentAt(id core.ID, pos int64) (string, error) {
	var payload string
	err := c.query(`SELECT payload FROM changes WHERE entity_id = ? AND pos <= ? AND kind = ? ORDER BY pos DESC LIMIT 1`,
		[]any{id, pos, string(core.KindMemoryPut)}, func(st *sqlite3.Stmt) error {
			payload = st.ColumnText(0)
			return nil
		})
	if err != nil || payload == "" {
		return "", err
	}
	var m struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return "", err
	}
	return m.Content, nil
}

// projectOf reports the project of an indexed row.
func (ix *index) projectOf(rid int64) (core.ID, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	at, ok := ix.where[rid]
	if !ok {
		return "", false
	}
	return at.p.project, true
}

// ridsByID maps every indexed memory's ID to its row.
func (ix *index) ridsByID() map[core.ID]int64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make(map[core.ID]int64, len(ix.where))
	for r, at := range ix.where {
		out[at.p.meta[at.slot].id] = r
	}
	return out
}
