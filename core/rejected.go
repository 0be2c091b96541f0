package core

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxRejectReason caps the reason RecordRejected stores (bytes; longer
// reasons are cut at a rune boundary).
const MaxRejectReason = 1024

// RecordRejected records c in the change log as rejected, with reason,
// without merging it: nothing but the log changes. It exists for changes a
// layer above core refuses before they reach the merge (sync refuses a
// change for another project, or one too large to send), so that the
// device's sequence stays gapless and the refused change never blocks the
// changes behind it.
//
// It is idempotent by (device, seq) like [Tx.ApplyChanges]: a change at or
// below its device's last recorded seq is reported as a duplicate and has no
// effect; one that skips ahead returns ErrSeqGap. The payload and vector are
// not stored (a refused change must not leave its data in the log, which is
// replicated); device, seq, HLC, kind, project and entity are, so the
// rejection stays traceable. The HLC is not observed (a refused change must
// not move the clock). The result's Status is StatusRejected with reason.
func (tx *Tx) RecordRejected(ctx context.Context, c Change, reason string) (ApplyResult, error) {
	w, err := tx.writer()
	if err != nil {
		return ApplyResult{}, err
	}
	if c.Device == "" || c.Seq == 0 {
		return ApplyResult{}, fmt.Errorf("record rejected: %w: device and seq are required", ErrInvalid)
	}
	if err := CheckText("device", c.Device, DefaultMaxTextBytes, true); err != nil {
		return ApplyResult{}, fmt.Errorf("record rejected: %w", err)
	}
	if err := CheckText("kind", string(c.Kind), DefaultMaxTextBytes, false); err != nil {
		return ApplyResult{}, fmt.Errorf("record rejected: %w", err)
	}
	if err := CheckText("project_id", string(c.ProjectID), DefaultMaxTextBytes, false); err != nil {
		return ApplyResult{}, fmt.Errorf("record rejected: %w", err)
	}
	if err := CheckText("entity_id", string(c.EntityID), DefaultMaxTextBytes, false); err != nil {
		return ApplyResult{}, fmt.Errorf("record rejected: %w", err)
	}
	last, err := w.LastSeq(ctx, c.Device)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("record rejected %s/%d: %w", c.Device, c.Seq, err)
	}
	if c.Seq <= last {
		return ApplyResult{Device: c.Device, Seq: c.Seq, Status: StatusSuperseded, Reason: "already applied", Duplicate: true}, nil
	}
	if c.Seq != last+1 {
		return ApplyResult{}, fmt.Errorf("record rejected %s/%d: %w: last applied is %d", c.Device, c.Seq, ErrSeqGap, last)
	}
	reason = clipReason(reason)
	rec := Change{Device: c.Device, Seq: c.Seq, HLC: c.HLC, Kind: c.Kind, ProjectID: c.ProjectID, EntityID: c.EntityID,
		Payload: []byte("{}"), Status: StatusRejected, Reason: reason}
	if err := w.AppendChange(ctx, &rec); err != nil {
		return ApplyResult{}, fmt.Errorf("record rejected %s/%d: %w", c.Device, c.Seq, err)
	}
	if c.Device == tx.db.device && tx.nextSeq != 0 {
		tx.nextSeq = c.Seq + 1
	}
	return ApplyResult{Device: c.Device, Seq: c.Seq, Status: StatusRejected, Reason: reason}, nil
}

func clipReason(reason string) string {
	if reason == "" {
		return "rejected"
	}
	if !utf8.ValidString(reason) {
		reason = strings.ToValidUTF8(reason, "\uFFFD")
	}
	if len(reason) <= MaxRejectReason {
		return reason
	}
	cut := MaxRejectReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
