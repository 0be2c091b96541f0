package pgadapter

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/athena-edge/athena-edge/core"
)

var (
	_ core.Initializer      = (*Store)(nil)
	_ core.Namer            = (*Store)(nil)
	_ core.ConcurrentWriter = (*Store)(nil)
	_ core.MetaTx           = (*tx)(nil)
)

// Name returns "postgres".
func (s *Store) Name() string { return "postgres" }

// ConcurrentWrites reports true: write transactions may run at once, in
// one process as in several sharing the database. LastSeq holds its
// device (a transaction-scoped advisory lock) until the transaction ends,
// memories are locked before they are read for a change, and lock
// conflicts and deadlocks are retried (Update), so core.DB need not run
// its writes one at a time.
func (s *Store) ConcurrentWrites() bool { return true }

// Initialize brings the schema up to date. It is idempotent and safe to
// run concurrently from several processes (an advisory lock serializes
// migrations). New already does it unless Config.SkipMigrations.
func (s *Store) Initialize(ctx context.Context) error {
	if s.closed.Load() {
		return core.ErrClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return translate("initialize", err)
	}
	defer conn.Release()
	if err := migrate(ctx, conn.Conn(), s.cfg.Schema); err != nil {
		return fmt.Errorf("pgadapter: initialize: %w", err)
	}
	return nil
}

func (t *tx) Meta(ctx context.Context, key string) (string, error) {
	var v string
	if err := t.tx.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", key).Scan(&v); err != nil {
		return "", translate("meta "+key, err)
	}
	return v, nil
}

func (t *tx) MetaPrefix(ctx context.Context, prefix string) ([]core.MetaEntry, error) {
	rows, err := t.tx.Query(ctx, "SELECT key, value FROM meta WHERE starts_with(key, $1) ORDER BY key", prefix)
	if err != nil {
		return nil, translate("meta prefix", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (core.MetaEntry, error) {
		var e core.MetaEntry
		err := r.Scan(&e.Key, &e.Value)
		return e, err
	})
	if err != nil {
		return nil, translate("meta prefix", err)
	}
	if out == nil {
		out = []core.MetaEntry{}
	}
	return out, nil
}

func (t *tx) PutMeta(ctx context.Context, key, value string) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return translate("put meta "+key, err)
	}
	return nil
}

func (t *tx) DeleteMeta(ctx context.Context, key string) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, "DELETE FROM meta WHERE key = $1", key); err != nil {
		return translate("delete meta "+key, err)
	}
	return nil
}
