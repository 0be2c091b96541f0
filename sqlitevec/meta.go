package sqlitevec

import (
	"context"
	"fmt"

	"github.com/ncruces/go-sqlite3"

	"github.com/athena-edge/athena-edge/core"
)

var (
	_ core.MetaTx = (*readTx)(nil)
	_ core.MetaTx = (*writeTx)(nil)
)

var errReadOnly = fmt.Errorf("sqlitevec: write in a read-only transaction: %w", core.ErrInvalid)

func (t *readTx) Meta(ctx context.Context, key string) (string, error) {
	var v string
	found := false
	err := t.c.query(`SELECT value FROM meta WHERE key = ?`, []any{key}, func(st *sqlite3.Stmt) error {
		v, found = st.ColumnText(0), true
		return nil
	})
	if err != nil {
		return "", t.c.wrap("meta", err)
	}
	if !found {
		return "", fmt.Errorf("sqlitevec: meta %q: %w", key, core.ErrNotFound)
	}
	return v, nil
}

func (t *readTx) MetaPrefix(ctx context.Context, prefix string) ([]core.MetaEntry, error) {
	out := []core.MetaEntry{}
	// substr instead of LIKE/GLOB: the prefix is literal, wildcards and all.
	err := t.c.query(`SELECT key, value FROM meta WHERE key >= ? AND substr(key, 1, length(?)) = ? ORDER BY key`,
		[]any{prefix, prefix, prefix}, func(st *sqlite3.Stmt) error {
			out = append(out, core.MetaEntry{Key: st.ColumnText(0), Value: st.ColumnText(1)})
			return nil
		})
	return out, t.c.wrap("meta prefix", err)
}

// PutMeta fails in a read transaction.
func (t *readTx) PutMeta(ctx context.Context, key, value string) error { return errReadOnly }

// DeleteMeta fails in a read transaction.
func (t *readTx) DeleteMeta(ctx context.Context, key string) error { return errReadOnly }

func (t *writeTx) PutMeta(ctx context.Context, key, value string) error {
	err := t.c.exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return t.c.wrap("put meta", err)
}

func (t *writeTx) DeleteMeta(ctx context.Context, key string) error {
	return t.c.wrap("delete meta", t.c.exec(`DELETE FROM meta WHERE key = ?`, key))
}
