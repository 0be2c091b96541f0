package core

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Kind names what a change does.
type Kind string

// Change kinds. The list only grows: a kind, once shipped, keeps its name
// and payload meaning.
const (
	KindProjectPut      Kind = "project.put"
	KindProjectTouch    Kind = "project.touch"
	KindMemoryPut       Kind = "memory.put"
	KindMemoryAccess    Kind = "memory.access"
	KindMemoryState     Kind = "memory.state"
	KindMemoryDelete    Kind = "memory.delete"
	KindEventPut        Kind = "event.put"
	KindTaskPut         Kind = "task.put"
	KindGoalPut         Kind = "goal.put"
	KindCodeEntityPut   Kind = "code_entity.put"
	KindCodeDepPut      Kind = "code_dependency.put"
	KindRelationshipPut Kind = "relationship.put"
)

// Status is what happened to a change at the replica that recorded it.
type Status string

// Change statuses. Every change ends in one of them.
const (
	StatusApplied    Status = "applied"    // it changed the replica
	StatusSuperseded Status = "superseded" // a newer write already won; kept for the log, no effect
	StatusRejected   Status = "rejected"   // invalid here (see Reason); dead-lettered, never blocks the queue
)

// Change is one mutation, as recorded in the change log and moved by sync.
// (Device, Seq) identifies it: each device numbers its own changes 1, 2, 3...
// without gaps. HLC orders it against changes from other devices.
//
// Payload is the JSON of the kind's payload type; Vector carries an
// embedding, kept out of the JSON so that sync can move it as raw floats.
type Change struct {
	Device    string          `json:"device"`
	Seq       uint64          `json:"seq"`
	HLC       HLC             `json:"hlc"`
	Kind      Kind            `json:"kind"`
	ProjectID ID              `json:"project_id"`
	EntityID  ID              `json:"entity_id"`
	Payload   json.RawMessage `json:"payload"`
	Vector    []float32       `json:"vector,omitempty"`

	// Set by the replica that recorded the change, not replicated.
	Pos    int64  `json:"pos,omitempty"`    // position in the local log
	Status Status `json:"status,omitempty"` // outcome at this replica
	Reason string `json:"reason,omitempty"` // why it was rejected or superseded
}

// Stamp is the change's write stamp.
func (c *Change) Stamp() Stamp { return Stamp{HLC: c.HLC, Device: c.Device} }

// AccessPayload is the payload of KindMemoryAccess: the origin device's own
// access counter for the memory after the access (a grow-only counter, so
// applying it twice or out of order is harmless) and the access time.
type AccessPayload struct {
	Count int64 `json:"count"`
	AtMS  int64 `json:"at_ms"`
}

// StatePayload is the payload of KindMemoryState.
type StatePayload struct {
	From         State `json:"from"`
	To           State `json:"to"`
	SupersededBy ID    `json:"superseded_by,omitempty"`
	AtMS         int64 `json:"at_ms"`
}

// TouchPayload is the payload of KindProjectTouch.
type TouchPayload struct {
	AtMS int64 `json:"at_ms"`
}

// EncodePayload marshals v as a change payload.
func EncodePayload(v any) (json.RawMessage, error) {
	if m, ok := v.(Memory); ok {
		if b, ok := appendMemoryJSON(make([]byte, 0, 512+len(m.Content)), &m); ok {
			return b, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("core: encode payload: %w", err)
	}
	return b, nil
}

// decodePayload decodes c's payload into v, which points to a zero value.
func decodePayload(c *Change, v any) error {
	if m, ok := v.(*Memory); ok {
		if parseMemoryJSON(c.Payload, m) {
			return nil
		}
		*m = Memory{}
	}
	if err := json.Unmarshal(c.Payload, v); err != nil {
		return fieldErr("payload", "bad %s payload: %v", c.Kind, err)
	}
	return nil
}

// Effect is what a change does to the replica's memory row.
type Effect struct {
	Status Status
	Reason string
	Memory *Memory // the memory to write when Status is applied and Delete is false
	Delete bool    // remove the memory and keep a tombstone
}

// MergeMemory is the merge rule for memory changes, a pure function of the
// replica's current row (nil if absent), whether a tombstone exists for the
// ID, and the change:
//
//   - memory.put: fields are last-writer-wins by Stamp. Creation also sets
//     the initial state; later puts never touch state or access counters.
//   - memory.access: per-device grow-only counters; the total is their sum
//     and quality is recomputed.
//   - memory.state: the transition must be legal in the state machine (else
//     rejected); the newest state Stamp wins.
//   - memory.delete: a tombstone. Deletes are final: a tombstone beats every
//     put, access and state change, older or newer, so nothing is
//     resurrected.
//
// Applying the same change twice gives the same row: every rule is
// idempotent, commutative and associative, so replicas that see the same
// set of changes in any order converge.
func MergeMemory(cur *Memory, tombstoned bool, c *Change) Effect {
	return mergeMemory(cur, tombstoned, c, nil)
}

// mergeMemory is MergeMemory with a memory.put's payload already decoded
// (in), or nil to decode it here.
func mergeMemory(cur *Memory, tombstoned bool, c *Change, in *Memory) Effect {
	if tombstoned {
		return Effect{Status: StatusSuperseded, Reason: "memory was deleted"}
	}
	switch c.Kind {
	case KindMemoryDelete:
		return Effect{Status: StatusApplied, Delete: true}
	case KindMemoryPut:
		if in == nil {
			in = new(Memory)
			if err := decodePayload(c, in); err != nil {
				return Effect{Status: StatusRejected, Reason: err.Error()}
			}
		}
		in.ID, in.ProjectID, in.Embedding = c.EntityID, c.ProjectID, c.Vector
		in.Version = c.Stamp()
		if cur == nil {
			createMemory(in)
			return Effect{Status: StatusApplied, Memory: in}
		}
		if !in.Version.After(cur.Version) {
			return Effect{Status: StatusSuperseded, Reason: "an equal or newer write already won"}
		}
		next := cur.Clone()
		next.Content, next.Embedding, next.EmbeddingModel = in.Content, in.Embedding, in.EmbeddingModel
		next.MemoryType, next.Domain, next.Tags = in.MemoryType, in.Domain, in.Tags
		next.SessionID, next.EventType, next.CodeLanguage, next.CodeHash = in.SessionID, in.EventType, in.CodeLanguage, in.CodeHash
		next.Usefulness, next.Confidence, next.UpdatedAt = in.Usefulness, in.Confidence, in.UpdatedAt
		next.Version = in.Version
		next.QualityScore = Quality(next.Usefulness, next.Confidence, next.AccessCount)
		return Effect{Status: StatusApplied, Memory: &next}
	case KindMemoryAccess:
		if cur == nil {
			return Effect{Status: StatusRejected, Reason: "memory " + string(c.EntityID) + " not found"}
		}
		var p AccessPayload
		if err := decodePayload(c, &p); err != nil {
			return Effect{Status: StatusRejected, Reason: err.Error()}
		}
		// The device's counter and last_accessed are two independent
		// maximums, so the result does not depend on the order changes
		// arrive in, even when a device's clock stepped back between two
		// of its own accesses.
		at := FromUnixMilli(p.AtMS)
		higher, later := p.Count > cur.AccessByDevice[c.Device], at.After(cur.LastAccessed)
		if !higher && !later {
			return Effect{Status: StatusSuperseded, Reason: "counter and access time already at or past these values"}
		}
		next := cur.Clone()
		if higher {
			if next.AccessByDevice == nil {
				next.AccessByDevice = map[string]int64{}
			}
			next.AccessByDevice[c.Device] = p.Count
			next.AccessCount = 0
			for _, n := range next.AccessByDevice {
				next.AccessCount += n
			}
		}
		if later {
			next.LastAccessed, next.LastRetrieved = at, at
		}
		next.QualityScore = Quality(next.Usefulness, next.Confidence, next.AccessCount)
		return Effect{Status: StatusApplied, Memory: &next}
	case KindMemoryState:
		if cur == nil {
			return Effect{Status: StatusRejected, Reason: "memory " + string(c.EntityID) + " not found"}
		}
		var p StatePayload
		if err := decodePayload(c, &p); err != nil {
			return Effect{Status: StatusRejected, Reason: err.Error()}
		}
		if err := CheckTransition(p.From, p.To); err != nil {
			return Effect{Status: StatusRejected, Reason: err.Error()}
		}
		if p.To == StateSuperseded && p.SupersededBy == "" {
			return Effect{Status: StatusRejected, Reason: "superseded_by: required when superseding"}
		}
		next := cur.Clone()
		// consolidated_at is the latest time the memory was consolidated,
		// whether or not that change wins: a max is order-independent.
		if at := FromUnixMilli(p.AtMS); p.To == StateConsolidated && at.After(next.ConsolidatedAt) {
			next.ConsolidatedAt = at
		}
		if !c.Stamp().After(cur.StateVersion) {
			if !next.ConsolidatedAt.Equal(cur.ConsolidatedAt) {
				return Effect{Status: StatusApplied, Memory: &next}
			}
			return Effect{Status: StatusSuperseded, Reason: "a newer state change already won"}
		}
		next.State, next.StateVersion = p.To, c.Stamp()
		next.SupersededBy = ""
		if p.To == StateSuperseded {
			next.SupersededBy = p.SupersededBy
		}
		return Effect{Status: StatusApplied, Memory: &next}
	}
	return Effect{Status: StatusRejected, Reason: "unknown change kind " + string(c.Kind)}
}

// createMemory is what a memory.put does to a memory that is not there:
// the put's fields, with the state and access fields of a new memory.
func createMemory(in *Memory) {
	if in.State == "" {
		in.State = StateUnconsolidated
	}
	// The state a put carries is only a starting point: any state change
	// outranks it, so replicas that learn of the memory from different
	// puts still agree once they see the same state changes.
	in.StateVersion = Stamp{}
	in.AccessByDevice = nil
	in.AccessCount, in.LastAccessed, in.LastRetrieved = 0, time.Time{}, time.Time{}
	in.QualityScore = Quality(in.Usefulness, in.Confidence, 0)
}

// createLocalMemory returns MergeMemory(nil, false, c).Memory for the
// memory.put change c that was just encoded from m, without decoding
// c.Payload again (a third of the Go time of a batched insert). ok is
// false, and the caller must merge, when m holds something the JSON round
// trip would change: a string that is not valid UTF-8 (encoding/json
// replaces it) or a ConsolidatedAt that is not a UTC millisecond (the
// round trip keeps its zone offset only). createMemory clears every other
// time field it does not set itself; CreatedAt and UpdatedAt come from
// prepareMemory already truncated to UTC milliseconds (TestCreateLocalMemory
// checks both paths agree).
func createLocalMemory(m *Memory, c *Change) (Memory, bool) {
	if !jsonExactTime(m.ConsolidatedAt) || !jsonExactTime(m.CreatedAt) || !jsonExactTime(m.UpdatedAt) {
		return Memory{}, false
	}
	for _, s := range [...]string{string(m.ID), string(m.ProjectID), m.Content, m.EmbeddingModel, string(m.MemoryType),
		m.Domain, m.SessionID, m.EventType, m.CodeLanguage, m.CodeHash, string(m.State), string(m.SupersededBy)} {
		if !utf8.ValidString(s) {
			return Memory{}, false
		}
	}
	for _, s := range m.Tags {
		if !utf8.ValidString(s) {
			return Memory{}, false
		}
	}
	in := *m
	in.Tags = slices.Clone(m.Tags)
	in.ID, in.ProjectID, in.Embedding = c.EntityID, c.ProjectID, c.Vector
	in.Version = c.Stamp()
	createMemory(&in)
	return in, true
}

// jsonExactTime reports whether t survives a JSON round trip unchanged
// (==, not just Equal): the zero time, or a UTC time without a monotonic
// reading.
func jsonExactTime(t time.Time) bool {
	return t.IsZero() && t == time.Time{} || t.Location() == time.UTC && t == t.Round(0)
}

// newer reports whether a record stamped in should replace one stamped cur
// under last-writer-wins. Used for every entity other than memories.
func newer(in, cur Stamp) bool { return in.After(cur) }
