package pgadapter

import (
	"context"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

var _ core.TombstoneGC = (*Store)(nil)

// purgeChunk bounds the tombstones one purge statement deletes, so a large
// purge never holds many row locks at once.
const purgeChunk = 10_000

// PurgeTombstones implements core.TombstoneGC: it deletes the tombstones
// recorded (deleted_at, the deleting process's wall clock) before before,
// in chunks of its own transactions, and returns how many it deleted.
func (s *Store) PurgeTombstones(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		if s.closed.Load() {
			return total, core.ErrClosed
		}
		tag, err := s.pool.Exec(ctx, `DELETE FROM tombstones WHERE id IN
			(SELECT id FROM tombstones WHERE deleted_at < $1 LIMIT $2)`, before.UnixMilli(), purgeChunk)
		if err != nil {
			return total, translate("purge tombstones", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < purgeChunk {
			return total, nil
		}
	}
}
