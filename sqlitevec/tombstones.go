package sqlitevec

import (
	"context"
	"fmt"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

var _ core.TombstoneGC = (*Store)(nil)

// purgeChunk bounds how many tombstones one transaction removes, so the
// writer is never held for long.
const purgeChunk = 10_000

// PurgeTombstones removes tombstones recorded before before, in chunks of
// purgeChunk per write transaction, and reports how many it removed. The
// change log keeps the delete changes. See core.TombstoneGC.
func (s *Store) PurgeTombstones(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int
		err := s.Update(ctx, func(w core.WriteTx) error {
			c := w.(*writeTx).c
			if err := c.exec(`DELETE FROM tombstones WHERE id IN
				(SELECT id FROM tombstones WHERE deleted_at < ? LIMIT ?)`, before.UnixMilli(), purgeChunk); err != nil {
				return c.wrap("purge tombstones", err)
			}
			n = int(c.c.Changes())
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sqlitevec: purge tombstones: %w", err)
		}
		total += n
		if n < purgeChunk {
			return total, nil
		}
	}
}
