package mcpserver

import (
	"context"

	"github.com/athena-edge/athena-edge/core"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

// SyncStatus is the result of the sync_status tool: this device's own
// changes and where they stand with each server it has synced with.
type SyncStatus struct {
	Device string `json:"device"`
	// OwnChanges is the number of changes this device has written (its
	// newest per-device sequence number).
	OwnChanges uint64 `json:"own_changes"`
	// Pending is the number of own changes no server has acknowledged yet
	// (all of them if the device never synced).
	Pending uint64 `json:"pending"`
	// Synced reports whether the device ever synced with a server.
	Synced  bool                    `json:"synced"`
	Servers []edgesync.ServerStatus `json:"servers"`
}

// LocalSyncStatus reads the sync state from db's own metadata with
// edgesync.ReadStatus; it works offline.
func LocalSyncStatus(ctx context.Context, db *core.DB) (SyncStatus, error) {
	st, err := edgesync.ReadStatus(ctx, db)
	if err != nil {
		return SyncStatus{}, err
	}
	out := SyncStatus{Device: st.Device, OwnChanges: st.LastSeq, Synced: len(st.Servers) > 0, Servers: st.Servers}
	var acked uint64
	for _, sv := range st.Servers {
		acked = max(acked, sv.Acked)
	}
	out.Pending = st.LastSeq - min(st.LastSeq, acked)
	if out.Servers == nil {
		out.Servers = []edgesync.ServerStatus{}
	}
	return out, nil
}
