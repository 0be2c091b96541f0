package sqlitevec

import (
	"slices"
	"time"

	"github.com/athena-edge/athena-edge/core"
)

// rowMeta is what the in-memory index keeps of a memory to filter it
// without touching SQLite: every field core.MemoryFilter looks at, with
// times as Unix milliseconds (0 for the zero time).
type rowMeta struct {
	kind     uint32 // bit i for allStates[i] | bit 16+j for allTypes[j] (j < 15), for the fast matcher
	id       core.ID
	state    core.State
	typ      core.MemoryType
	domain   string
	session  string
	tags     []string
	created  int64
	accessed int64
}

func rowFromMemory(m *core.Memory) rowMeta {
	r := rowMeta{
		id: m.ID, state: m.State, typ: m.MemoryType, domain: m.Domain, session: m.SessionID,
		tags: slices.Clone(m.Tags), created: ms(m.CreatedAt), accessed: ms(m.LastAccessed),
	}
	r.setKind()
	return r
}

var (
	allStates = core.States()
	allTypes  = core.MemoryTypes()
)

// setKind encodes state and type as one bit each; an unknown one gets no
// bit, and a filter naming one uses the slow path.
func (r *rowMeta) setKind() {
	// kindVec (index.go) takes bit 31.
	r.kind = 0
	if i := slices.Index(allStates, r.state); i >= 0 && i < 16 {
		r.kind |= 1 << i
	}
	if i := slices.Index(allTypes, r.typ); i >= 0 && i < 15 {
		r.kind |= 1 << (16 + i)
	}
}

// matcher is a core.MemoryFilter prepared for rowMeta. Its match gives
// the same answer as MemoryFilter.Match on the memory the row came from
// (ProjectID is handled by the caller, which picks the project's part).
type matcher struct {
	f       *core.MemoryFilter
	ids     map[core.ID]struct{}
	trivial bool // nothing but the project to check
	// fast: only states and/or types to check, by kind bits: a row
	// matches when it has a bit in stateMask and one in typeMask.
	fast                bool
	stateMask, typeMask uint32
}

func newMatcher(f *core.MemoryFilter) *matcher {
	m := &matcher{f: f}
	if len(f.IDs) > 0 {
		m.ids = make(map[core.ID]struct{}, len(f.IDs))
		for _, id := range f.IDs {
			m.ids[id] = struct{}{}
		}
	}
	m.trivial = len(f.IDs) == 0 && len(f.States) == 0 && len(f.Types) == 0 && f.Domain == "" && len(f.Tags) == 0 &&
		f.SessionID == "" && f.CreatedAfter.IsZero() && f.CreatedBefore.IsZero() && f.AccessedAfter.IsZero() &&
		f.AccessedBefore.IsZero() && f.AfterID == ""
	if !m.trivial && len(f.IDs) == 0 && f.Domain == "" && len(f.Tags) == 0 && f.SessionID == "" &&
		f.CreatedAfter.IsZero() && f.CreatedBefore.IsZero() && f.AccessedAfter.IsZero() &&
		f.AccessedBefore.IsZero() && f.AfterID == "" {
		m.fast = true
		m.stateMask, m.typeMask = 0xffff, 0x7fff0000
		if len(f.States) > 0 {
			m.stateMask = 0
			for _, s := range f.States {
				i := slices.Index(allStates, s)
				if i < 0 || i >= 16 {
					m.fast = false
				}
				m.stateMask |= 1 << (i & 15)
			}
		}
		if len(f.Types) > 0 {
			m.typeMask = 0
			for _, t := range f.Types {
				i := slices.Index(allTypes, t)
				if i < 0 || i >= 15 {
					m.fast = false
				}
				m.typeMask |= 1 << (16 + i&15)
			}
		}
	}
	return m
}

// before reports whether the time stored as ms (0 = zero time) is before
// t, exactly as core compares the memory's time.
func before(msv int64, t time.Time) bool { return core.FromUnixMilli(msv).Before(t) }

func (m *matcher) match(r *rowMeta) bool {
	if m.trivial {
		return true
	}
	if m.fast {
		return r.kind&m.stateMask != 0 && r.kind&m.typeMask != 0
	}
	f := m.f
	if m.ids != nil {
		if _, ok := m.ids[r.id]; !ok {
			return false
		}
	}
	if len(f.States) > 0 && !slices.Contains(f.States, r.state) {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, r.typ) {
		return false
	}
	if f.Domain != "" && r.domain != f.Domain {
		return false
	}
	for _, t := range f.Tags {
		if !slices.Contains(r.tags, t) {
			return false
		}
	}
	if f.SessionID != "" && r.session != f.SessionID {
		return false
	}
	if !f.CreatedAfter.IsZero() && before(r.created, f.CreatedAfter) {
		return false
	}
	if !f.CreatedBefore.IsZero() && !before(r.created, f.CreatedBefore) {
		return false
	}
	if !f.AccessedAfter.IsZero() && before(r.accessed, f.AccessedAfter) {
		return false
	}
	if !f.AccessedBefore.IsZero() && (r.accessed == 0 || !before(r.accessed, f.AccessedBefore)) {
		return false
	}
	if f.AfterID != "" {
		if f.Newest && r.id >= f.AfterID || !f.Newest && r.id <= f.AfterID {
			return false
		}
	}
	return true
}
