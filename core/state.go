package core

import "time"

// State is a memory's consolidation state.
type State string

// Consolidation states. The seed's lifecycle, now enforced:
//
//	unconsolidated → consolidating → consolidated
//	consolidating → unconsolidated              (an aborted consolidation)
//	consolidated → labile → reconsolidating → consolidated
//	labile → consolidated                       (the window closed untouched)
//	unconsolidated, consolidated → archived → consolidated
//	any state but superseded → superseded       (with superseded_by)
const (
	StateUnconsolidated  State = "unconsolidated"
	StateConsolidating   State = "consolidating"
	StateConsolidated    State = "consolidated"
	StateLabile          State = "labile"
	StateReconsolidating State = "reconsolidating"
	StateSuperseded      State = "superseded"
	StateArchived        State = "archived"
)

// States lists every state in a fixed order.
func States() []State {
	return []State{StateUnconsolidated, StateConsolidating, StateConsolidated, StateLabile,
		StateReconsolidating, StateSuperseded, StateArchived}
}

// LiveStates are the states default search covers: everything except
// superseded and archived.
func LiveStates() []State {
	return []State{StateUnconsolidated, StateConsolidating, StateConsolidated, StateLabile, StateReconsolidating}
}

// nextStates is the transition table. A switch, not a map, so the table is
// immutable.
func nextStates(s State) (next []State, known bool) {
	switch s {
	case StateUnconsolidated:
		return []State{StateConsolidating, StateArchived, StateSuperseded}, true
	case StateConsolidating:
		return []State{StateConsolidated, StateUnconsolidated, StateSuperseded}, true
	case StateConsolidated:
		return []State{StateLabile, StateArchived, StateSuperseded}, true
	case StateLabile:
		return []State{StateReconsolidating, StateConsolidated, StateSuperseded}, true
	case StateReconsolidating:
		return []State{StateConsolidated, StateSuperseded}, true
	case StateArchived:
		return []State{StateConsolidated, StateSuperseded}, true
	case StateSuperseded:
		return nil, true
	}
	return nil, false
}

// Valid reports whether s is one of the known states. States are
// case-sensitive: "Consolidated" is not valid.
func (s State) Valid() bool {
	_, ok := nextStates(s)
	return ok
}

// ParseState returns s as a State, or a *FieldError for field
// "consolidation_state" if it is unknown.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", fieldErr("consolidation_state", "unknown state %q (want one of %v)", s, States())
	}
	return st, nil
}

// Next lists the states s may move to.
func (s State) Next() []State { n, _ := nextStates(s); return n }

// CheckTransition returns nil if from → to is allowed, a *TransitionError
// (matching ErrInvalidTransition) if it is not, and a *FieldError if either
// state is unknown. A transition to the same state is not allowed.
func CheckTransition(from, to State) error {
	if !from.Valid() {
		return fieldErr("consolidation_state", "unknown current state %q", from)
	}
	if !to.Valid() {
		return fieldErr("consolidation_state", "unknown state %q (want one of %v)", to, States())
	}
	next, _ := nextStates(from)
	for _, n := range next {
		if n == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}

// InWindow reports whether m is inside its reconsolidation window at now: it
// is labile and was retrieved no longer than window ago (DefaultWindow if
// window ≤ 0).
func InWindow(m *Memory, now time.Time, window time.Duration) bool {
	if window <= 0 {
		window = DefaultWindow
	}
	if m.State != StateLabile || m.LastRetrieved.IsZero() {
		return false
	}
	return !m.LastRetrieved.Before(now.Add(-window))
}
