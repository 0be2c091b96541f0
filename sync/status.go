package edgesync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/athena-edge/athena-edge/core"
)

// LocalStatus is an edge's sync state, read from its own database only (it
// works offline).
type LocalStatus struct {
	Device  string         `json:"device"`
	LastSeq uint64         `json:"last_seq"` // the device's newest change
	Servers []ServerStatus `json:"servers"`  // one per server this edge ever synced with
}

// ServerStatus is the edge's state against one server.
type ServerStatus struct {
	ServerID string       `json:"server_id"`
	URL      string       `json:"url"`
	Project  core.ID      `json:"project"`
	Acked    uint64       `json:"acked"`   // own changes acknowledged (by sequence number)
	Pending  uint64       `json:"pending"` // own changes not yet acknowledged
	Cursor   int64        `json:"cursor"`  // server log position pulled up to
	Pulled   int64        `json:"pulled"`  // changes pulled in total
	Rejected []DeadLetter `json:"rejected"`
}

// Status reads the edge's sync state from its database; see [ReadStatus].
func (c *Client) Status(ctx context.Context) (LocalStatus, error) { return ReadStatus(ctx, c.db) }

// ReadStatus reads an edge database's sync state without connecting:
// per server, the acknowledged and pending own changes, the pull cursor and
// count, and the dead letters (rejected changes with their reasons).
func ReadStatus(ctx context.Context, db *core.DB) (LocalStatus, error) {
	st := LocalStatus{Device: db.Device()}
	err := db.Backend().View(ctx, func(r core.ReadTx) error {
		var err error
		st.LastSeq, err = r.LastSeq(ctx, st.Device)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("edgesync: status: %w", err)
	}
	err = db.View(ctx, func(tx *core.Tx) error {
		servers, err := tx.MetaPrefix(ctx, metaServers)
		if err != nil {
			return err
		}
		for _, e := range servers {
			var info serverInfo
			_ = json.Unmarshal([]byte(e.Value), &info)
			id := strings.TrimPrefix(e.Key, metaServers)
			ss := ServerStatus{ServerID: id, URL: info.URL, Project: info.Project, Rejected: []DeadLetter{}}
			if ss.Acked, err = metaUint(ctx, tx, metaAcked+id); err != nil {
				return err
			}
			ss.Pending = st.LastSeq - min(st.LastSeq, ss.Acked)
			if ss.Cursor, err = metaInt(ctx, tx, metaPulled+id); err != nil {
				return err
			}
			if ss.Pulled, err = metaInt(ctx, tx, metaPulledN+id); err != nil {
				return err
			}
			dead, err := tx.MetaPrefix(ctx, metaDead+id+"/")
			if err != nil {
				return err
			}
			for _, d := range dead {
				var dl DeadLetter
				if err := json.Unmarshal([]byte(d.Value), &dl); err == nil {
					ss.Rejected = append(ss.Rejected, dl)
				}
			}
			st.Servers = append(st.Servers, ss)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("edgesync: status: %w", err)
	}
	return st, nil
}
