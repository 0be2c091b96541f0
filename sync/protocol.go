package edgesync

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// ProtocolVersion is the newest protocol version this package speaks.
// SupportedVersions lists every version it speaks, newest first.
const ProtocolVersion = 1

// SupportedVersions returns the protocol versions this package speaks,
// newest first.
func SupportedVersions() []int { return []int{ProtocolVersion} }

// Defaults of the limits; docs/SYNC.md, "Limits".
const (
	// DefaultReadLimit is the largest message either side reads (1 MiB). It
	// is above core's largest change (64 KiB of content, escaped in JSON,
	// plus a 2000-float vector and the other fields) with room to spare.
	DefaultReadLimit = 1 << 20
	// DefaultMaxBatch is the most changes one push or changes frame carries.
	DefaultMaxBatch = 1000
	// DefaultBatchSize is how many changes a client pushes per batch.
	DefaultBatchSize = 500
	// DefaultRate and DefaultBurst size the per-device token bucket:
	// messages per second, and the bucket's capacity.
	DefaultRate  = 50
	DefaultBurst = 100
	// DefaultMaxConnsPerDevice and DefaultMaxConns cap live connections.
	DefaultMaxConnsPerDevice = 4
	DefaultMaxConns          = 1024
	// DefaultPingInterval is how often each side pings a live connection;
	// a connection that does not answer within an interval is closed.
	DefaultPingInterval = 15 * time.Second
	// DefaultWriteTimeout bounds one message write.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultHandshakeTimeout bounds hello → welcome.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultRevalidateInterval is how often a live connection's token is
	// checked again; revoking a token closes its connections within it.
	DefaultRevalidateInterval = 2 * time.Second
	// DefaultTicketTTL is how long a browser ticket stays valid.
	DefaultTicketTTL = 30 * time.Second
	// DefaultReadHeaderTimeout is the handshake timeout to give the
	// http.Server that serves a Server (slowloris protection).
	DefaultReadHeaderTimeout = 5 * time.Second
)

// Limits are what a server announces in its welcome and enforces.
type Limits struct {
	MaxMessageBytes int     `json:"max_message_bytes"`
	MaxBatch        int     `json:"max_batch"`
	MaxDim          int     `json:"max_dim"`
	Rate            float64 `json:"rate"`
	Burst           int     `json:"burst"`
}

func (l Limits) frameLimits() FrameLimits {
	return FrameLimits{MaxMeta: l.MaxMessageBytes, MaxVectors: l.MaxBatch, MaxDim: l.MaxDim}
}

type helloMsg struct {
	Versions []int  `json:"versions"`
	Device   string `json:"device,omitempty"` // informational: the server uses the token's
	Client   string `json:"client,omitempty"`
	Acked    uint64 `json:"acked,omitempty"`  // informational
	Pulled   int64  `json:"pulled,omitempty"` // informational
}

type welcomeMsg struct {
	Version      int     `json:"version"`
	ServerID     string  `json:"server_id"`
	Device       string  `json:"device"`
	Project      core.ID `json:"project"`
	ServerTimeMS int64   `json:"server_time_ms"`
	LastSeq      uint64  `json:"last_seq"` // the server's last sequence number for the device
	Limits       Limits  `json:"limits"`
	// TombstoneHorizonMS is the server's tombstone horizon (0: tombstones
	// are kept forever). Informational: the server enforces it.
	TombstoneHorizonMS int64 `json:"tombstone_horizon_ms,omitempty"`
}

type pushMsg struct {
	Batch   uint64        `json:"batch"`
	Changes []core.Change `json:"changes"`
}

type ackMsg struct {
	Batch   uint64             `json:"batch"`
	Results []core.ApplyResult `json:"results"`
	LastSeq uint64             `json:"last_seq"`
}

type pullMsg struct {
	Req   uint64 `json:"req"`
	After int64  `json:"after"`
	Limit int    `json:"limit,omitempty"`
}

type changesMsg struct {
	Req     uint64        `json:"req"`
	Changes []core.Change `json:"changes"`
	Next    int64         `json:"next"`
	More    bool          `json:"more"`
}

type errorMsg struct {
	Code         Code   `json:"code"`
	Message      string `json:"message"`
	Batch        uint64 `json:"batch,omitempty"`
	Req          uint64 `json:"req,omitempty"`
	LastSeq      uint64 `json:"last_seq,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

func (m *errorMsg) err() *Error {
	return &Error{Code: m.Code, Message: m.Message, Batch: m.Batch, Req: m.Req, LastSeq: m.LastSeq,
		RetryAfter: time.Duration(m.RetryAfterMS) * time.Millisecond}
}

func wireError(e *Error) *errorMsg {
	return &errorMsg{Code: e.Code, Message: e.Message, Batch: e.Batch, Req: e.Req, LastSeq: e.LastSeq,
		RetryAfterMS: e.RetryAfter.Milliseconds()}
}

// encodeMsg builds a frame from a message; changes' vectors move out of the
// JSON into the frame's raw float section.
func encodeMsg(t MsgType, v any) ([]byte, error) {
	f := Frame{Type: t}
	var cs []core.Change
	switch m := v.(type) {
	case *pushMsg:
		cs = m.Changes
	case *changesMsg:
		cs = m.Changes
	}
	if cs != nil {
		stripped := make([]core.Change, len(cs))
		f.Vectors = make([][]float32, len(cs))
		for i, c := range cs {
			f.Vectors[i] = c.Vector
			c.Vector, c.Pos, c.Status, c.Reason = nil, 0, "", ""
			stripped[i] = c
		}
		switch m := v.(type) {
		case *pushMsg:
			cp := *m
			cp.Changes = stripped
			v = &cp
		case *changesMsg:
			cp := *m
			cp.Changes = stripped
			v = &cp
		}
	}
	meta, ok := appendMeta(nil, v)
	if !ok {
		var err error
		if meta, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("edgesync: encode %s: %w", t, err)
		}
	}
	f.Meta = meta
	return AppendFrame(make([]byte, 0, EncodedSize(&f)), &f), nil
}

// appendMeta appends json.Marshal(v) for the messages that carry changes
// (the vectors already moved out), byte for byte, with
// core.AppendChangesJSON; ok is false for any other message or when the
// changes need encoding/json.
func appendMeta(b []byte, v any) (_ []byte, ok bool) {
	switch m := v.(type) {
	case *pushMsg:
		b = strconv.AppendUint(append(b, `{"batch":`...), m.Batch, 10)
		if b, ok = core.AppendChangesJSON(append(b, `,"changes":`...), m.Changes); !ok {
			return nil, false
		}
		return append(b, '}'), true
	case *changesMsg:
		b = strconv.AppendUint(append(b, `{"req":`...), m.Req, 10)
		if b, ok = core.AppendChangesJSON(append(b, `,"changes":`...), m.Changes); !ok {
			return nil, false
		}
		b = strconv.AppendInt(append(b, `,"next":`...), m.Next, 10)
		b = strconv.AppendBool(append(b, `,"more":`...), m.More)
		return append(b, '}'), true
	}
	return nil, false
}

// decodeMsg unmarshals a frame's metadata into v and puts vectors back.
func decodeMsg(f *Frame, v any) error {
	if !parseMeta(f.Meta, v) {
		if err := json.Unmarshal(f.Meta, v); err != nil {
			return fmt.Errorf("%w: %s: %v", errFrame, f.Type, err)
		}
	}
	var cs []core.Change
	switch m := v.(type) {
	case *pushMsg:
		cs = m.Changes
	case *changesMsg:
		cs = m.Changes
	default:
		if len(f.Vectors) > 0 {
			return fmt.Errorf("%w: %s carries vectors", errFrame, f.Type)
		}
		return nil
	}
	if len(f.Vectors) != len(cs) && len(f.Vectors) != 0 {
		return fmt.Errorf("%w: %d vectors for %d changes", errFrame, len(f.Vectors), len(cs))
	}
	for i := range cs {
		cs[i].Pos, cs[i].Status, cs[i].Reason = 0, "", ""
		cs[i].Vector = nil
		if len(f.Vectors) > 0 {
			cs[i].Vector = f.Vectors[i]
		}
	}
	return nil
}
