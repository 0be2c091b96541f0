package native

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// ConsolidatorConfig configures [RunConsolidator].
type ConsolidatorConfig struct {
	// Check is how often projects are checked for being due (default 1m).
	// A project is consolidated when its consolidation interval (default
	// core.DefaultConsolidationInterval, 3600 s) has passed since the last
	// run recorded in the store's metadata.
	Check time.Duration
	// Report, if set, receives every report that changed something, and
	// every error (the loop keeps going after errors).
	Report func(project core.Project, r core.ConsolidationReport, err error)
}

const metaLastConsolidated = "consolidate/last/"

// RunConsolidator consolidates every project of db in the background, each
// at its own interval, until ctx is done. It never holds a transaction for
// long (core.Consolidate commits in small batches), so writers are not
// blocked. It returns ctx's error.
func RunConsolidator(ctx context.Context, db *core.DB, cfg ConsolidatorConfig) error {
	if cfg.Check <= 0 {
		cfg.Check = time.Minute
	}
	t := time.NewTicker(cfg.Check)
	defer t.Stop()
	for {
		if err := ConsolidateDue(ctx, db, cfg.Report); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ConsolidateDue runs one pass: it consolidates each project whose
// interval has passed since its last recorded run, and records the run.
func ConsolidateDue(ctx context.Context, db *core.DB, report func(core.Project, core.ConsolidationReport, error)) error {
	ps, err := db.Projects(ctx)
	if err != nil {
		return err
	}
	now := db.Clock().PhysicalNow()
	var errs []error
	for _, p := range ps {
		last, err := lastConsolidated(ctx, db, p.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		interval := p.ConsolidationInterval
		if interval <= 0 {
			interval = core.DefaultConsolidationInterval
		}
		if !last.IsZero() && now.Sub(last) < interval {
			continue
		}
		r, err := core.Consolidate(ctx, db, p.ID, core.ConsolidationOptions{})
		if err == nil {
			err = db.Update(ctx, func(tx *core.Tx) error {
				return tx.PutMeta(ctx, metaLastConsolidated+string(p.ID), strconv.FormatInt(now.UnixMilli(), 10))
			})
		}
		if report != nil && (err != nil || !r.Empty()) {
			report(p, r, err)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("consolidate %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

func lastConsolidated(ctx context.Context, db *core.DB, project core.ID) (time.Time, error) {
	var last time.Time
	err := db.View(ctx, func(tx *core.Tx) error {
		v, err := tx.Meta(ctx, metaLastConsolidated+string(project))
		if errors.Is(err, core.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil // a garbled marker only means "run now"
		}
		last = time.UnixMilli(ms)
		return nil
	})
	return last, err
}
