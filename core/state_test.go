package core_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// stateTestTable is the transition table of docs/RATIONALE.md, written out
// here rather than read from core: every pair of States() × States(), so a
// change to the state machine must change this table too.
var stateTestTable = []struct {
	name     string
	from, to core.State
	ok       bool
}{
	{name: "unconsolidated to unconsolidated", from: core.StateUnconsolidated, to: core.StateUnconsolidated, ok: false},
	{name: "unconsolidated to consolidating", from: core.StateUnconsolidated, to: core.StateConsolidating, ok: true},
	{name: "unconsolidated to consolidated", from: core.StateUnconsolidated, to: core.StateConsolidated, ok: false},
	{name: "unconsolidated to labile", from: core.StateUnconsolidated, to: core.StateLabile, ok: false},
	{name: "unconsolidated to reconsolidating", from: core.StateUnconsolidated, to: core.StateReconsolidating, ok: false},
	{name: "unconsolidated to superseded", from: core.StateUnconsolidated, to: core.StateSuperseded, ok: true},
	{name: "unconsolidated to archived", from: core.StateUnconsolidated, to: core.StateArchived, ok: true},
	{name: "consolidating to unconsolidated", from: core.StateConsolidating, to: core.StateUnconsolidated, ok: true},
	{name: "consolidating to consolidating", from: core.StateConsolidating, to: core.StateConsolidating, ok: false},
	{name: "consolidating to consolidated", from: core.StateConsolidating, to: core.StateConsolidated, ok: true},
	{name: "consolidating to labile", from: core.StateConsolidating, to: core.StateLabile, ok: false},
	{name: "consolidating to reconsolidating", from: core.StateConsolidating, to: core.StateReconsolidating, ok: false},
	{name: "consolidating to superseded", from: core.StateConsolidating, to: core.StateSuperseded, ok: true},
	{name: "consolidating to archived", from: core.StateConsolidating, to: core.StateArchived, ok: false},
	{name: "consolidated to unconsolidated", from: core.StateConsolidated, to: core.StateUnconsolidated, ok: false},
	{name: "consolidated to consolidating", from: core.StateConsolidated, to: core.StateConsolidating, ok: false},
	{name: "consolidated to consolidated", from: core.StateConsolidated, to: core.StateConsolidated, ok: false},
	{name: "consolidated to labile", from: core.StateConsolidated, to: core.StateLabile, ok: true},
	{name: "consolidated to reconsolidating", from: core.StateConsolidated, to: core.StateReconsolidating, ok: false},
	{name: "consolidated to superseded", from: core.StateConsolidated, to: core.StateSuperseded, ok: true},
	{name: "consolidated to archived", from: core.StateConsolidated, to: core.StateArchived, ok: true},
	{name: "labile to unconsolidated", from: core.StateLabile, to: core.StateUnconsolidated, ok: false},
	{name: "labile to consolidating", from: core.StateLabile, to: core.StateConsolidating, ok: false},
	{name: "labile to consolidated", from: core.StateLabile, to: core.StateConsolidated, ok: true},
	{name: "labile to labile", from: core.StateLabile, to: core.StateLabile, ok: false},
	{name: "labile to reconsolidating", from: core.StateLabile, to: core.StateReconsolidating, ok: true},
	{name: "labile to superseded", from: core.StateLabile, to: core.StateSuperseded, ok: true},
	{name: "labile to archived", from: core.StateLabile, to: core.StateArchived, ok: false},
	{name: "reconsolidating to unconsolidated", from: core.StateReconsolidating, to: core.StateUnconsolidated, ok: false},
	{name: "reconsolidating to consolidating", from: core.StateReconsolidating, to: core.StateConsolidating, ok: false},
	{name: "reconsolidating to consolidated", from: core.StateReconsolidating, to: core.StateConsolidated, ok: true},
	{name: "reconsolidating to labile", from: core.StateReconsolidating, to: core.StateLabile, ok: false},
	{name: "reconsolidating to reconsolidating", from: core.StateReconsolidating, to: core.StateReconsolidating, ok: false},
	{name: "reconsolidating to superseded", from: core.StateReconsolidating, to: core.StateSuperseded, ok: true},
	{name: "reconsolidating to archived", from: core.StateReconsolidating, to: core.StateArchived, ok: false},
	{name: "superseded to unconsolidated", from: core.StateSuperseded, to: core.StateUnconsolidated, ok: false},
	{name: "superseded to consolidating", from: core.StateSuperseded, to: core.StateConsolidating, ok: false},
	{name: "superseded to consolidated", from: core.StateSuperseded, to: core.StateConsolidated, ok: false},
	{name: "superseded to labile", from: core.StateSuperseded, to: core.StateLabile, ok: false},
	{name: "superseded to reconsolidating", from: core.StateSuperseded, to: core.StateReconsolidating, ok: false},
	{name: "superseded to superseded", from: core.StateSuperseded, to: core.StateSuperseded, ok: false},
	{name: "superseded to archived", from: core.StateSuperseded, to: core.StateArchived, ok: false},
	{name: "archived to unconsolidated", from: core.StateArchived, to: core.StateUnconsolidated, ok: false},
	{name: "archived to consolidating", from: core.StateArchived, to: core.StateConsolidating, ok: false},
	{name: "archived to consolidated", from: core.StateArchived, to: core.StateConsolidated, ok: true},
	{name: "archived to labile", from: core.StateArchived, to: core.StateLabile, ok: false},
	{name: "archived to reconsolidating", from: core.StateArchived, to: core.StateReconsolidating, ok: false},
	{name: "archived to superseded", from: core.StateArchived, to: core.StateSuperseded, ok: true},
	{name: "archived to archived", from: core.StateArchived, to: core.StateArchived, ok: false},
}

func TestCheckTransitionTable(t *testing.T) {
	t.Parallel()
	// The table above must cover exactly States() × States().
	require.Len(t, core.States(), 7)
	require.Len(t, stateTestTable, len(core.States())*len(core.States()))
	covered := map[[2]core.State]bool{}
	for _, tc := range stateTestTable {
		covered[[2]core.State{tc.from, tc.to}] = true
	}
	for _, from := range core.States() {
		for _, to := range core.States() {
			require.True(t, covered[[2]core.State{from, to}], "table misses %s -> %s", from, to)
		}
	}

	for _, tc := range stateTestTable {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := core.CheckTransition(tc.from, tc.to)
			assert.Equal(t, tc.ok, slices.Contains(tc.from.Next(), tc.to), "Next() agrees with the table")
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, core.ErrInvalidTransition)
			assert.ErrorIs(t, err, core.ErrInvalid)
			var te *core.TransitionError
			require.True(t, errors.As(err, &te), "want *TransitionError, got %T", err)
			assert.Equal(t, tc.from, te.From)
			assert.Equal(t, tc.to, te.To)
			assert.Contains(t, err.Error(), string(tc.from))
			assert.Contains(t, err.Error(), string(tc.to))
		})
	}
}

func TestCheckTransitionUnknownStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		from, to core.State
		mention  string // the text the error must quote
	}{
		{name: "empty from", from: "", to: core.StateConsolidating, mention: `""`},
		{name: "empty to", from: core.StateUnconsolidated, to: "", mention: `""`},
		{name: "both empty", from: "", to: "", mention: `""`},
		{name: "mis-cased from", from: "Unconsolidated", to: core.StateConsolidating, mention: "Unconsolidated"},
		{name: "mis-cased to", from: core.StateUnconsolidated, to: "Consolidating", mention: "Consolidating"},
		{name: "upper case to", from: core.StateConsolidated, to: "LABILE", mention: "LABILE"},
		{name: "padded to", from: core.StateConsolidated, to: " labile", mention: " labile"},
		{name: "unknown from", from: "bogus", to: core.StateSuperseded, mention: "bogus"},
		{name: "unknown to", from: core.StateLabile, to: "bogus", mention: "bogus"},
		{name: "unknown to itself", from: "bogus", to: "bogus", mention: "bogus"},
		{name: "unknown from superseded", from: "deleted", to: core.StateSuperseded, mention: "deleted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := core.CheckTransition(tc.from, tc.to)
			require.Error(t, err)
			assert.ErrorIs(t, err, core.ErrInvalid)
			assert.NotErrorIs(t, err, core.ErrInvalidTransition, "an unknown state is not a transition error")
			var fe *core.FieldError
			require.True(t, errors.As(err, &fe), "want *FieldError, got %T", err)
			assert.Equal(t, "consolidation_state", fe.Field)
			assert.Contains(t, err.Error(), tc.mention)
		})
	}
}

func TestStateValidAndParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{name: "unconsolidated", in: "unconsolidated", valid: true},
		{name: "consolidating", in: "consolidating", valid: true},
		{name: "consolidated", in: "consolidated", valid: true},
		{name: "labile", in: "labile", valid: true},
		{name: "reconsolidating", in: "reconsolidating", valid: true},
		{name: "superseded", in: "superseded", valid: true},
		{name: "archived", in: "archived", valid: true},
		{name: "empty", in: ""},
		{name: "title case", in: "Consolidated"},
		{name: "upper case", in: "ARCHIVED"},
		{name: "trailing space", in: "labile "},
		{name: "unknown", in: "deleted"},
		{name: "NUL", in: "labile\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.valid, core.State(tc.in).Valid())
			got, err := core.ParseState(tc.in)
			if tc.valid {
				require.NoError(t, err)
				assert.Equal(t, core.State(tc.in), got)
				return
			}
			require.Error(t, err)
			assert.Empty(t, got)
			assert.ErrorIs(t, err, core.ErrInvalid)
			var fe *core.FieldError
			require.True(t, errors.As(err, &fe))
			assert.Equal(t, "consolidation_state", fe.Field)
			assert.Nil(t, core.State(tc.in).Next())
		})
	}
}

func TestStateLists(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []core.State{"unconsolidated", "consolidating", "consolidated", "labile",
		"reconsolidating", "superseded", "archived"}, core.States())
	assert.Equal(t, []core.State{"unconsolidated", "consolidating", "consolidated", "labile",
		"reconsolidating"}, core.LiveStates())
	// The lists are fresh copies: callers cannot corrupt them.
	s := core.States()
	s[0] = "corrupted"
	assert.Equal(t, core.StateUnconsolidated, core.States()[0])
	n := core.StateUnconsolidated.Next()
	n[0] = "corrupted"
	assert.NoError(t, core.CheckTransition(core.StateUnconsolidated, core.StateConsolidating))
	assert.Empty(t, core.StateSuperseded.Next(), "superseded is final")
}

func TestInWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name      string
		state     core.State
		retrieved time.Time
		window    time.Duration
		want      bool
	}{
		{name: "labile just retrieved", state: core.StateLabile, retrieved: now, window: time.Hour, want: true},
		{name: "labile inside", state: core.StateLabile, retrieved: now.Add(-30 * time.Minute), window: time.Hour, want: true},
		{name: "labile exactly at window", state: core.StateLabile, retrieved: now.Add(-time.Hour), window: time.Hour, want: true},
		{name: "labile 1ns outside", state: core.StateLabile, retrieved: now.Add(-time.Hour - time.Nanosecond), window: time.Hour, want: false},
		{name: "labile 1ms outside", state: core.StateLabile, retrieved: now.Add(-time.Hour - time.Millisecond), window: time.Hour, want: false},
		{name: "labile far outside", state: core.StateLabile, retrieved: now.Add(-48 * time.Hour), window: time.Hour, want: false},
		{name: "labile retrieved in the future", state: core.StateLabile, retrieved: now.Add(time.Minute), window: time.Hour, want: true},
		{name: "short window", state: core.StateLabile, retrieved: now.Add(-2 * time.Minute), window: time.Minute, want: false},
		{name: "zero last retrieved", state: core.StateLabile, retrieved: time.Time{}, window: time.Hour, want: false},
		{name: "zero last retrieved huge window", state: core.StateLabile, retrieved: time.Time{}, window: 1<<63 - 1, want: false},
		{name: "consolidated", state: core.StateConsolidated, retrieved: now, window: time.Hour, want: false},
		{name: "reconsolidating", state: core.StateReconsolidating, retrieved: now, window: time.Hour, want: false},
		{name: "unconsolidated", state: core.StateUnconsolidated, retrieved: now, window: time.Hour, want: false},
		{name: "superseded", state: core.StateSuperseded, retrieved: now, window: time.Hour, want: false},
		{name: "mis-cased labile", state: "Labile", retrieved: now, window: time.Hour, want: false},
		{name: "zero window is 60m: inside", state: core.StateLabile, retrieved: now.Add(-59 * time.Minute), window: 0, want: true},
		{name: "zero window is 60m: boundary", state: core.StateLabile, retrieved: now.Add(-60 * time.Minute), window: 0, want: true},
		{name: "zero window is 60m: outside", state: core.StateLabile, retrieved: now.Add(-61 * time.Minute), window: 0, want: false},
		{name: "negative window is 60m: inside", state: core.StateLabile, retrieved: now.Add(-59 * time.Minute), window: -time.Second, want: true},
		{name: "negative window is 60m: outside", state: core.StateLabile, retrieved: now.Add(-61 * time.Minute), window: -time.Hour, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := core.Memory{State: tc.state, LastRetrieved: tc.retrieved}
			assert.Equal(t, tc.want, core.InWindow(&m, now, tc.window))
		})
	}
	assert.Equal(t, 60*time.Minute, core.DefaultWindow)
}

// stateTestCandidates are the targets the property test draws from: every
// state plus some that are not states.
var stateTestCandidates = append(core.States(), "", "Consolidated", "bogus", "LABILE")

func TestStateMachineProperty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		seed uint64
	}{
		{name: "seed 1", seed: 1},
		{name: "seed 2", seed: 2},
		{name: "seed 42", seed: 42},
		{name: "seed 20260102", seed: 20260102},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(tc.seed, 0x57a7e))
			visited := map[core.State]bool{}
			for restart := 0; restart < 100; restart++ {
				st := core.StateUnconsolidated
				// An occasional restart from a random state, so that every
				// state, including superseded, is exercised repeatedly.
				if restart%2 == 1 {
					st = core.States()[r.IntN(len(core.States()))]
				}
				for range 100 { // 100 × 100 = 10k operations per seed
					to := stateTestCandidates[r.IntN(len(stateTestCandidates))]
					err := core.CheckTransition(st, to)
					if st == core.StateSuperseded {
						require.Error(t, err, "superseded is absorbing, yet %s -> %q was allowed", st, to)
					}
					if err == nil {
						require.NotEqual(t, st, to, "a transition to the same state must be refused")
						st = to
					} else {
						require.ErrorIs(t, err, core.ErrInvalid)
					}
					require.True(t, st.Valid(), "state became %q", st)
					visited[st] = true
				}
			}
			for _, s := range core.States() {
				assert.True(t, visited[s], "state %s never reached", s)
			}
		})
	}
}

func FuzzStateMachine(f *testing.F) {
	for _, from := range stateTestCandidates {
		for _, to := range stateTestCandidates {
			f.Add(string(from), string(to))
		}
	}
	f.Fuzz(func(t *testing.T, from, to string) {
		err := core.CheckTransition(core.State(from), core.State(to))
		fromOK, toOK := core.State(from).Valid(), core.State(to).Valid()
		if err == nil {
			if !fromOK || !toOK {
				t.Fatalf("%q -> %q allowed with an unknown state", from, to)
			}
			if from == to {
				t.Fatalf("%q -> %q: a same-state transition was allowed", from, to)
			}
			if core.State(from) == core.StateSuperseded {
				t.Fatalf("superseded -> %q allowed", to)
			}
			if !slices.Contains(core.State(from).Next(), core.State(to)) {
				t.Fatalf("%q -> %q allowed but not in Next()", from, to)
			}
			return
		}
		if !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("%q -> %q: error %v does not match ErrInvalid", from, to, err)
		}
		var te *core.TransitionError
		var fe *core.FieldError
		switch {
		case fromOK && toOK:
			if !errors.As(err, &te) || !errors.Is(err, core.ErrInvalidTransition) {
				t.Fatalf("%q -> %q: want *TransitionError, got %T %v", from, to, err, err)
			}
			if slices.Contains(core.State(from).Next(), core.State(to)) {
				t.Fatalf("%q -> %q refused but listed in Next()", from, to)
			}
		default:
			if !errors.As(err, &fe) || fe.Field != "consolidation_state" || errors.Is(err, core.ErrInvalidTransition) {
				t.Fatalf("%q -> %q: want *FieldError on consolidation_state, got %T %v", from, to, err, err)
			}
		}
	})
}
