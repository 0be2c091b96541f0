package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Tombstone horizon. Deletes are final ([MergeMemory]): a tombstone beats
// every put, access and state change for its memory, older or newer. A
// replica that drops a tombstone can no longer tell a stale edit of a
// deleted memory from a new memory, so tombstones may only be purged once
// no replica can still send such an edit. Sync enforces that with a
// horizon: a replica that has not caught up with the server within the
// horizon may not push (docs/SYNC.md, "Tombstone horizon"), and tombstones
// older than the horizon plus TombstoneGrace may be purged.
const (
	// DefaultTombstoneHorizon is the horizon sync servers use by default.
	DefaultTombstoneHorizon = 30 * 24 * time.Hour
	// TombstoneGrace is added to the horizon when purging, so that a push
	// checked against the horizon just before a purge (or by another
	// process whose clock is slightly off) never meets a tombstone that
	// the purge is dropping at the same moment.
	TombstoneGrace = time.Hour
)

// metaTombstonesPurged records the newest cutoff purged with, in Unix ms.
const metaTombstonesPurged = "core/tombstones/purged_before"

// TombstoneGC is an optional upgrade of Backend: a store that keeps the
// time each tombstone was recorded (wall clock of the writer) and can drop
// old ones. Without it a store keeps tombstones forever.
type TombstoneGC interface {
	// PurgeTombstones removes the tombstones recorded before before and
	// returns how many it removed. It touches nothing else: memories are
	// already gone, and the change log keeps the delete changes, so a
	// replica that pulls from the start still learns every delete. It runs
	// in its own transaction(s) and is safe alongside writers.
	PurgeTombstones(ctx context.Context, before time.Time) (int, error)
}

// CanPurgeTombstones reports whether b implements [TombstoneGC].
func CanPurgeTombstones(b Backend) bool {
	_, ok := b.(TombstoneGC)
	return ok
}

// TombstoneCutoff is the time before which tombstones may be purged at now
// under horizon: now − horizon − TombstoneGrace. A horizon ≤ 0 means keep
// forever and returns the zero time (nothing is before it).
func TombstoneCutoff(now time.Time, horizon time.Duration) time.Time {
	if horizon <= 0 {
		return time.Time{}
	}
	return now.Add(-horizon - TombstoneGrace)
}

// PastHorizon reports whether a replica that last caught up (had seen
// every change the server held) at caughtUp is past horizon at now: it may
// hold edits of memories whose tombstones were purged, so it must not push
// until it starts over. A horizon ≤ 0 (keep forever) never expires; a zero
// caughtUp (never caught up) is treated as expired only by callers that
// know the replica once synced.
func PastHorizon(caughtUp, now time.Time, horizon time.Duration) bool {
	return horizon > 0 && caughtUp.Before(now.Add(-horizon))
}

// PurgeTombstones drops the tombstones recorded before before (see
// [TombstoneGC]) and returns how many it dropped. Callers compute before
// with [TombstoneCutoff] and must make sure, as sync does, that no replica
// past the horizon can still push. On a store that keeps no tombstone
// times it returns an error wrapping ErrInvalid. On a store with metadata
// ([MetaTx]) it records the newest cutoff, read by
// [DB.TombstonesPurgedBefore].
func (db *DB) PurgeTombstones(ctx context.Context, before time.Time) (int, error) {
	gc, ok := db.b.(TombstoneGC)
	if !ok {
		return 0, fmt.Errorf("purge tombstones: %w: this store keeps tombstones forever (no core.TombstoneGC)", ErrInvalid)
	}
	if before.IsZero() {
		return 0, nil
	}
	n, err := gc.PurgeTombstones(ctx, before)
	if err != nil {
		return n, fmt.Errorf("purge tombstones: %w", err)
	}
	err = db.Update(ctx, func(tx *Tx) error {
		if _, ok := tx.r.(MetaTx); !ok {
			return nil
		}
		prev, err := tx.TombstonesPurgedBefore(ctx)
		if err != nil || !before.After(prev) {
			return err
		}
		return tx.PutMeta(ctx, metaTombstonesPurged, strconv.FormatInt(before.UnixMilli(), 10))
	})
	if err != nil {
		return n, fmt.Errorf("purge tombstones: record cutoff: %w", err)
	}
	return n, nil
}

// TombstonesPurgedBefore returns the newest cutoff tombstones were purged
// with on this replica, or the zero time if none ever was (or the store
// keeps no metadata).
func (db *DB) TombstonesPurgedBefore(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := db.View(ctx, func(tx *Tx) error {
		var err error
		t, err = tx.TombstonesPurgedBefore(ctx)
		return err
	})
	return t, err
}

// TombstonesPurgedBefore is [DB.TombstonesPurgedBefore] in a transaction.
func (tx *Tx) TombstonesPurgedBefore(ctx context.Context) (time.Time, error) {
	if _, ok := tx.r.(MetaTx); !ok {
		return time.Time{}, nil
	}
	v, err := tx.Meta(ctx, metaTombstonesPurged)
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("tombstones purged before: %w: %q", ErrInvalid, v)
	}
	return time.UnixMilli(ms).UTC(), nil
}
