package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Golden files are refreshed with -update, the flag defined in search_test.go.

// consTestNow is the fixed "now" of the pure tests.
var consTestNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	consTestDim   = 16
	consTestModel = "cons-model"
)

func consTestProject(dim int) core.Project {
	return core.Project{ID: core.ProjectIDFor("cons"), Name: "cons", Path: "/work/cons",
		EmbeddingModel: consTestModel, EmbeddingDim: dim, ConsolidationInterval: time.Hour}
}

func consTestID(name string) core.ID {
	return core.DeriveID(consTestNow.Add(-365*24*time.Hour), "test", name)
}

// consTestVec is a deterministic unit vector: a PCG(seed) Gaussian,
// normalized.
func consTestVec(seed uint64, dim int) []float32 {
	r := rand.New(rand.NewPCG(seed, 0xc0))
	v := make([]float64, dim)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return consTestUnit(v)
}

func consTestUnit(v []float64) []float32 {
	var n float64
	for _, x := range v {
		n += x * x
	}
	n = math.Sqrt(n)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x / n)
	}
	return out
}

// consTestNear is a unit vector at cosine ≈ sim to base.
func consTestNear(base []float32, seed uint64, sim float64) []float32 {
	noise := consTestVec(seed, len(base))
	// Remove the noise's component along base so the cosine is exactly sim
	// (up to rounding).
	var dot float64
	for i := range base {
		dot += float64(base[i]) * float64(noise[i])
	}
	orth := make([]float64, len(base))
	var n float64
	for i := range base {
		orth[i] = float64(noise[i]) - dot*float64(base[i])
		n += orth[i] * orth[i]
	}
	n = math.Sqrt(n)
	w := math.Sqrt(1 - sim*sim)
	out := make([]float64, len(base))
	for i := range base {
		out[i] = sim*float64(base[i]) + w*orth[i]/n
	}
	return consTestUnit(out)
}

// consTestMem is a memory of the test project with sane defaults.
func consTestMem(name, content string, seed uint64, mod func(*core.Memory)) core.Memory {
	created := consTestNow.Add(-10 * time.Minute)
	m := core.Memory{ID: consTestID(name), ProjectID: consTestProject(consTestDim).ID, Content: content,
		Embedding: consTestVec(seed, consTestDim), EmbeddingModel: consTestModel, MemoryType: core.TypeFact,
		Domain: "memory", Tags: []string{}, Usefulness: 0.5, Confidence: 1, State: core.StateUnconsolidated,
		CreatedAt: created, UpdatedAt: created}
	if mod != nil {
		mod(&m)
	}
	return m
}

func consTestEvent(name, session string, at time.Time, content string, mod func(*core.Event)) core.Event {
	e := core.Event{ID: consTestID("ev-" + name), ProjectID: consTestProject(consTestDim).ID, SessionID: session,
		Timestamp: at, EventType: "action", Content: content, Confidence: 0.8, CreatedAt: at}
	if mod != nil {
		mod(&e)
	}
	return e
}

func consTestAccess(m *core.Memory, n int64, at time.Time) {
	m.AccessCount = n
	m.AccessByDevice = map[string]int64{"dev": n}
	m.LastAccessed, m.LastRetrieved = at, at
}

// consTestFixture exercises every rule once.
func consTestFixture() core.ConsolidationInput {
	day := 24 * time.Hour
	now := consTestNow
	base1, base2 := consTestVec(1, consTestDim), consTestVec(2, consTestDim)
	ms := []core.Memory{
		consTestMem("a1", "Use pgx v5 for PostgreSQL access.", 0, func(m *core.Memory) {
			m.Embedding, m.Tags, m.State = base1, []string{"db"}, core.StateConsolidated
			m.CreatedAt, m.UpdatedAt = now.Add(-10*day), now.Add(-10*day)
			consTestAccess(m, 3, now.Add(-5*day))
		}),
		consTestMem("a2", "use PGX v5 for   postgresql access", 0, func(m *core.Memory) {
			m.Embedding, m.Tags = base1, []string{"go", "db"}
			m.CreatedAt, m.UpdatedAt = now.Add(-9*day), now.Add(-9*day)
			consTestAccess(m, 2, now.Add(-5*day))
		}),
		consTestMem("a3", "Use pgx v5 for the PostgreSQL database access.", 0, func(m *core.Memory) {
			m.Embedding, m.Tags, m.State = consTestNear(base1, 11, 0.98), []string{"postgres"}, core.StateLabile
			m.CreatedAt, m.UpdatedAt = now.Add(-8*day), now.Add(-8*day)
			consTestAccess(m, 1, now.Add(-3*time.Hour))
		}),
		consTestMem("t1", "Use pgx v5 for PostgreSQL access.", 0, func(m *core.Memory) {
			m.Embedding, m.MemoryType = base1, core.TypeDecision
			m.CreatedAt, m.UpdatedAt = now.Add(-8*day), now.Add(-30*time.Minute)
		}),
		consTestMem("v1", "Upgrade the driver to v1.2.3 before the release.", 0, func(m *core.Memory) {
			m.Embedding = base2
			m.CreatedAt, m.UpdatedAt = now.Add(-7*day), now.Add(-30*time.Minute)
		}),
		consTestMem("v2", "Upgrade the driver to v1.2.4 before the release.", 0, func(m *core.Memory) {
			m.Embedding = consTestNear(base2, 12, 0.995)
			m.CreatedAt, m.UpdatedAt = now.Add(-7*day), now.Add(-30*time.Minute)
		}),
		consTestMem("l1", "The staging cluster runs in eu-west.", 3, func(m *core.Memory) {
			m.State, m.CreatedAt, m.UpdatedAt = core.StateLabile, now.Add(-3*day), now.Add(-30*time.Minute)
			consTestAccess(m, 1, now.Add(-2*time.Hour))
		}),
		consTestMem("l2", "Deploys happen on Tuesdays.", 4, func(m *core.Memory) {
			m.State, m.CreatedAt, m.UpdatedAt = core.StateLabile, now.Add(-3*day), now.Add(-30*time.Minute)
			consTestAccess(m, 1, now.Add(-10*time.Minute))
		}),
		consTestMem("u1", "Tests must not sleep.", 5, func(m *core.Memory) {
			m.CreatedAt, m.UpdatedAt = now.Add(-2*time.Hour), now.Add(-2*time.Hour)
		}),
		consTestMem("u2", "Prefer table-driven tests.", 6, nil),
		consTestMem("z1", "An abandoned idea about caching.", 7, func(m *core.Memory) {
			m.State, m.Usefulness = core.StateConsolidated, 0.05
			m.CreatedAt, m.UpdatedAt = now.Add(-60*day), now.Add(-50*day)
			consTestAccess(m, 1, now.Add(-40*day))
		}),
		consTestMem("s1", "use pgx for postgres", 8, func(m *core.Memory) {
			m.State, m.SupersededBy = core.StateSuperseded, consTestID("a1")
			m.CreatedAt, m.UpdatedAt = now.Add(-6*day), now.Add(-6*day)
			consTestAccess(m, 4, now.Add(-6*day))
		}),
		consTestMem("r1", "An archived note.", 9, func(m *core.Memory) {
			m.State, m.Usefulness = core.StateArchived, 0.01
			m.CreatedAt, m.UpdatedAt = now.Add(-90*day), now.Add(-90*day)
		}),
	}
	evVec := func(seed uint64) func(*core.Event) {
		return func(e *core.Event) { e.Embedding, e.EmbeddingModel = consTestVec(seed, consTestDim), consTestModel }
	}
	with := func(files []string, learned string, seed uint64) func(*core.Event) {
		return func(e *core.Event) {
			evVec(seed)(e)
			e.Context.Files, e.Learned = files, learned
		}
	}
	evs := []core.Event{
		consTestEvent("e1", "s1", now.Add(-5*time.Hour), "Ran the migration. It failed on the index.", with([]string{"a.go"}, "Create indexes concurrently.", 21)),
		consTestEvent("e2", "s1", now.Add(-290*time.Minute), "Rewrote the migration! Now it passes.", with([]string{"a.go", "b.go"}, "", 22)),
		consTestEvent("e3", "s1", now.Add(-280*time.Minute), "Updated the README", with([]string{"README.md"}, "Docs need examples.", 23)),
		consTestEvent("e4", "s1", now.Add(-2*time.Hour), "Started on the sync loop.", func(e *core.Event) { e.EventType = "Plan" }),
		consTestEvent("f1", "s2", now.Add(-20*time.Minute), "Still working.", evVec(24)),
		consTestEvent("done", "s2", now.Add(-9*time.Hour), "Old news.", func(e *core.Event) { e.Consolidated = true }),
	}
	return core.ConsolidationInput{Project: consTestProject(consTestDim), Memories: ms, Events: evs, Now: now, CanEmbed: true}
}

func consTestFind(p core.ConsolidationPlan, rule core.ConsolidationRule, id core.ID) *core.ConsolidationAction {
	for i := range p.Actions {
		if p.Actions[i].Rule == rule && p.Actions[i].MemoryIDs[0] == id {
			return &p.Actions[i]
		}
	}
	return nil
}

func consTestIDs(p core.ConsolidationPlan, rule core.ConsolidationRule) []core.ID {
	var out []core.ID
	for _, a := range p.Actions {
		if a.Rule == rule {
			out = append(out, a.MemoryIDs[0])
		}
	}
	return out
}

func TestPlanConsolidationFixture(t *testing.T) {
	t.Parallel()
	in := consTestFixture()
	p := core.PlanConsolidation(in, core.ConsolidationOptions{})
	id := consTestID

	merge := consTestFind(p, core.RuleMerge, id("a1"))
	require.NotNil(t, merge, "a1 survives its duplicates")
	assert.Equal(t, []core.ID{id("a1"), id("a2"), id("a3")}, merge.MemoryIDs)
	assert.Equal(t, []string{"db", "go", "postgres"}, merge.Tags)
	assert.Equal(t, int64(3+2+1+4), merge.AccessCount, "own + merged + previously superseded")
	require.Len(t, merge.Merged, 2)
	assert.Equal(t, "exact", merge.Merged[0].Match)
	assert.Equal(t, "near", merge.Merged[1].Match)
	assert.InDelta(t, 0.98, merge.Merged[1].Similarity, 1e-6)
	assert.Nil(t, consTestFind(p, core.RuleMerge, id("t1")), "another type is never merged")
	assert.Nil(t, consTestFind(p, core.RuleMerge, id("v1")), "v1.2.3 and v1.2.4 stay apart")

	assert.Equal(t, []core.ID{id("l1")}, consTestIDs(p, core.RuleReturn))
	promoted := []core.ID{id("u1"), id("t1"), id("v1"), id("v2")} // unconsolidated for over an hour
	slices.Sort(promoted)
	assert.Equal(t, promoted, consTestIDs(p, core.RulePromote))
	assert.Equal(t, []core.ID{id("z1")}, consTestIDs(p, core.RuleArchive))

	clusters := consTestIDs(p, core.RuleCluster)
	require.Len(t, clusters, 3, "e1+e2 share a file, e3 does not, e4 is after a gap; f1 is still open")
	assert.Equal(t, 1, p.EventsPending)
	first := consTestFind(p, core.RuleCluster, clusters[0])
	for _, a := range p.Actions {
		if a.Rule == core.RuleCluster && len(a.EventIDs) == 2 {
			first = &a
		}
	}
	require.Equal(t, []core.ID{id("ev-e1"), id("ev-e2")}, first.EventIDs)
	create := first.Ops[0]
	require.Equal(t, core.OpCreate, create.Op)
	assert.Equal(t, "Ran the migration.\nRewrote the migration!\nLearned: Create indexes concurrently.", create.Memory.Content)
	assert.Equal(t, core.TypeSemantic, create.Memory.MemoryType)
	assert.InDelta(t, 0.8, create.Memory.Confidence, 1e-12)
	assert.Equal(t, []string{"action"}, create.Memory.Tags)
	assert.Equal(t, core.DeriveID(in.Events[0].Timestamp, "episode", string(id("ev-e1")), string(id("ev-e2"))), create.MemoryID)
	assert.InDelta(t, 1, core.Cosine(create.Memory.Embedding, create.Memory.Embedding), 1e-6)
	assert.False(t, create.NeedsEmbedding)

	// Rescored: every live memory not updated for an hour, and a1 with the
	// summed count.
	resc := consTestFind(p, core.RuleRescore, id("a1"))
	require.NotNil(t, resc)
	assert.InDelta(t, core.RescoreUsefulness(0.5, 10), *resc.Ops[0].Usefulness, 1e-12)
	assert.Nil(t, consTestFind(p, core.RuleRescore, id("a2")), "superseded memories are not rescored")
	assert.Nil(t, consTestFind(p, core.RuleRescore, id("u2")), "recently updated")
	assert.NotNil(t, consTestFind(p, core.RuleRescore, id("u1")))
	assert.Empty(t, p.Skipped)
}

func TestPlanConsolidationRules(t *testing.T) {
	t.Parallel()
	now := consTestNow
	day := 24 * time.Hour
	type want map[core.ConsolidationRule][]string
	tests := []struct {
		name   string
		ms     []core.Memory
		evs    []core.Event
		opts   core.ConsolidationOptions
		noEmb  bool
		want   want
		states map[string][]core.State // transitions planned per memory
	}{
		{
			name: "labile inside its window stays",
			ms: []core.Memory{consTestMem("m", "x", 1, func(m *core.Memory) {
				m.State = core.StateLabile
				consTestAccess(m, 1, now.Add(-59*time.Minute))
			})},
			want: want{},
		},
		{
			name: "labile past its window returns",
			ms: []core.Memory{consTestMem("m", "x", 1, func(m *core.Memory) {
				m.State = core.StateLabile
				consTestAccess(m, 1, now.Add(-61*time.Minute))
			})},
			want:   want{core.RuleReturn: {"m"}},
			states: map[string][]core.State{"m": {core.StateConsolidated}},
		},
		{
			name: "custom window",
			ms: []core.Memory{consTestMem("m", "x", 1, func(m *core.Memory) {
				m.State = core.StateLabile
				consTestAccess(m, 1, now.Add(-11*time.Minute))
			})},
			opts: core.ConsolidationOptions{Window: 10 * time.Minute},
			want: want{core.RuleReturn: {"m"}},
		},
		{
			name: "reconsolidating past its window returns",
			ms: []core.Memory{consTestMem("m", "x", 1, func(m *core.Memory) {
				m.State = core.StateReconsolidating
				consTestAccess(m, 1, now.Add(-2*time.Hour))
			})},
			want: want{core.RuleReturn: {"m"}},
		},
		{
			name: "exact duplicates: oldest survives, labile loser superseded directly",
			ms: []core.Memory{
				consTestMem("new", "Hello, World", 1, func(m *core.Memory) { m.State, m.CreatedAt = core.StateLabile, now.Add(-time.Minute) }),
				consTestMem("old", "hello world!", 2, nil),
			},
			want:   want{core.RuleMerge: {"old"}},
			states: map[string][]core.State{"new": {core.StateSuperseded}},
		},
		{
			name: "equal CreatedAt: smaller ID survives",
			ms: []core.Memory{
				consTestMem("p", "same", 1, nil),
				consTestMem("q", "same", 2, nil),
			},
			want: want{core.RuleMerge: {func() string {
				if consTestID("p") < consTestID("q") {
					return "p"
				}
				return "q"
			}()}},
		},
		{
			name: "archived and superseded memories are not merged",
			ms: []core.Memory{
				consTestMem("a", "same", 1, func(m *core.Memory) { m.State = core.StateArchived }),
				consTestMem("b", "same", 1, func(m *core.Memory) { m.State, m.SupersededBy = core.StateSuperseded, consTestID("c") }),
				consTestMem("c", "same", 1, nil),
			},
			want: want{},
		},
		{
			name: "near duplicates below the threshold stay",
			ms: []core.Memory{
				consTestMem("a", "the cache is warm", 1, nil),
				consTestMem("b", "the cache is warm now", 0, func(m *core.Memory) { m.Embedding = consTestNear(consTestVec(1, consTestDim), 5, 0.94) }),
			},
			want: want{},
		},
		{
			name: "near duplicates chain transitively",
			ms: []core.Memory{
				consTestMem("a", "the cache is warm", 1, func(m *core.Memory) { m.CreatedAt = now.Add(-30 * time.Minute) }),
				consTestMem("b", "the cache is warm now", 0, func(m *core.Memory) {
					m.Embedding = consTestNear(consTestVec(1, consTestDim), 5, 0.99)
					m.CreatedAt = now.Add(-20 * time.Minute)
				}),
				consTestMem("c", "The cache is warm now.", 0, func(m *core.Memory) {
					m.Embedding = consTestNear(consTestVec(1, consTestDim), 5, 0.99)
					m.CreatedAt = now.Add(-time.Minute)
				}),
			},
			want:   want{core.RuleMerge: {"a"}},
			states: map[string][]core.State{"b": {core.StateSuperseded}, "c": {core.StateSuperseded}},
		},
		{
			name: "differing numbers block a near merge",
			ms: []core.Memory{
				consTestMem("a", "timeout is 30 seconds", 1, nil),
				consTestMem("b", "timeout is 60 seconds", 0, func(m *core.Memory) { m.Embedding = consTestNear(consTestVec(1, consTestDim), 5, 0.99) }),
			},
			want: want{},
		},
		{
			name: "differing identifiers block a near merge",
			ms: []core.Memory{
				consTestMem("a", "call parseConfig first", 1, nil),
				consTestMem("b", "call parseConfigs first", 0, func(m *core.Memory) { m.Embedding = consTestNear(consTestVec(1, consTestDim), 5, 0.99) }),
			},
			want: want{},
		},
		{
			name: "promotion after the interval",
			ms: []core.Memory{
				consTestMem("old", "a", 1, func(m *core.Memory) { m.CreatedAt = now.Add(-time.Hour); m.UpdatedAt = now }),
				consTestMem("young", "b", 2, func(m *core.Memory) { m.CreatedAt = now.Add(-59 * time.Minute) }),
				consTestMem("stuck", "c", 3, func(m *core.Memory) {
					m.State, m.CreatedAt, m.UpdatedAt = core.StateConsolidating, now.Add(-2*time.Hour), now
				}),
			},
			want: want{core.RulePromote: {"old", "stuck"}},
			states: map[string][]core.State{
				"old":   {core.StateConsolidating, core.StateConsolidated},
				"stuck": {core.StateConsolidated},
			},
		},
		{
			name: "custom interval",
			ms: []core.Memory{
				consTestMem("m", "a", 1, func(m *core.Memory) { m.CreatedAt = now.Add(-10 * time.Minute) }),
			},
			opts: core.ConsolidationOptions{Interval: 5 * time.Minute},
			want: want{core.RulePromote: {"m"}, core.RuleRescore: {"m"}},
		},
		{
			name: "rescoring only after an interval without updates",
			ms: []core.Memory{
				consTestMem("fresh", "a", 1, func(m *core.Memory) {
					m.State, m.UpdatedAt = core.StateConsolidated, now.Add(-59*time.Minute)
				}),
				consTestMem("stale", "b", 2, func(m *core.Memory) {
					m.State, m.UpdatedAt = core.StateConsolidated, now.Add(-time.Hour)
				}),
				consTestMem("fixed", "c", 3, func(m *core.Memory) { // at the rule's fixed point
					m.State, m.UpdatedAt, m.Usefulness = core.StateConsolidated, now.Add(-time.Hour), 1
					consTestAccess(m, 10, now.Add(-2*time.Hour))
				}),
			},
			want: want{core.RuleRescore: {"stale"}},
		},
		{
			name: "archive: useless, unused, old",
			ms: []core.Memory{
				consTestMem("arch", "a", 1, func(m *core.Memory) {
					m.CreatedAt, m.UpdatedAt, m.Usefulness = now.Add(-31*day), now, 0.05
				}),
				consTestMem("used", "b", 2, func(m *core.Memory) {
					m.CreatedAt, m.UpdatedAt, m.Usefulness = now.Add(-31*day), now, 0.05
					consTestAccess(m, 2, now.Add(-31*day))
				}),
				consTestMem("young", "c", 3, func(m *core.Memory) {
					m.CreatedAt, m.UpdatedAt, m.Usefulness = now.Add(-29*day), now, 0.05
				}),
				consTestMem("useful", "d", 4, func(m *core.Memory) {
					m.CreatedAt, m.UpdatedAt, m.Usefulness = now.Add(-31*day), now, 0.1
				}),
				consTestMem("labile", "e", 5, func(m *core.Memory) {
					m.State, m.CreatedAt, m.UpdatedAt, m.Usefulness = core.StateLabile, now.Add(-31*day), now, 0.05
					consTestAccess(m, 1, now.Add(-time.Minute))
				}),
			},
			// arch goes straight from unconsolidated to archived; the others
			// old enough are promoted.
			want: want{core.RuleArchive: {"arch"}, core.RulePromote: {"used", "useful", "young"}},
			states: map[string][]core.State{
				"arch": {core.StateArchived},
			},
		},
		{
			name: "archive after returning from labile",
			ms: []core.Memory{
				consTestMem("m", "a", 1, func(m *core.Memory) {
					m.State, m.CreatedAt, m.UpdatedAt, m.Usefulness = core.StateLabile, now.Add(-90*day), now, 0.05
					consTestAccess(m, 1, now.Add(-40*day))
				}),
			},
			want:   want{core.RuleReturn: {"m"}, core.RuleArchive: {"m"}},
			states: map[string][]core.State{"m": {core.StateConsolidated, core.StateArchived}},
		},
		{
			name: "a survivor is never archived",
			ms: []core.Memory{
				consTestMem("m", "a", 1, func(m *core.Memory) {
					m.State, m.CreatedAt, m.UpdatedAt, m.Usefulness = core.StateConsolidated, now.Add(-90*day), now, 0.05
				}),
				consTestMem("s", "b", 2, func(m *core.Memory) { m.State, m.SupersededBy = core.StateSuperseded, consTestID("m") }),
			},
			want: want{},
		},
		{
			name: "episode: gap splits, open episode waits",
			evs: []core.Event{
				consTestEvent("1", "s", now.Add(-5*time.Hour), "one.", nil),
				consTestEvent("2", "s", now.Add(-4*time.Hour), "two.", nil),
				consTestEvent("3", "s", now.Add(-150*time.Minute), "three.", nil),
				consTestEvent("4", "s", now.Add(-30*time.Minute), "four.", nil),
			},
			want: want{core.RuleCluster: {"*", "*"}},
		},
		{
			name: "episode: without vectors or embedder it is skipped",
			evs: []core.Event{
				consTestEvent("1", "s", now.Add(-5*time.Hour), "one.", nil),
			},
			noEmb: true,
			want:  want{},
		},
		{
			name: "episode: unrelated embeddings split",
			evs: []core.Event{
				consTestEvent("1", "s", now.Add(-5*time.Hour), "one.", func(e *core.Event) {
					e.Embedding, e.EmbeddingModel = consTestVec(1, consTestDim), consTestModel
				}),
				consTestEvent("2", "s", now.Add(-5*time.Hour+time.Minute), "two.", func(e *core.Event) {
					e.Embedding, e.EmbeddingModel = consTestVec(2, consTestDim), consTestModel
				}),
				consTestEvent("3", "s", now.Add(-5*time.Hour+2*time.Minute), "three.", func(e *core.Event) {
					e.Embedding, e.EmbeddingModel = consTestNear(consTestVec(1, consTestDim), 3, 0.8), consTestModel
				}),
			},
			want: want{core.RuleCluster: {"*", "*"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := core.ConsolidationInput{Project: consTestProject(consTestDim), Memories: tc.ms, Events: tc.evs, Now: now, CanEmbed: !tc.noEmb}
			p := core.PlanConsolidation(in, tc.opts)
			names := map[core.ID]string{}
			for _, m := range tc.ms {
				for _, n := range []string{"m", "a", "b", "c", "d", "e", "p", "q", "s", "new", "old", "young", "stuck", "fresh", "stale", "fixed", "arch", "used", "useful", "labile"} {
					if m.ID == consTestID(n) {
						names[m.ID] = n
					}
				}
			}
			got := want{}
			for _, a := range p.Actions {
				n, ok := names[a.MemoryIDs[0]]
				if !ok {
					n = "*"
				}
				got[a.Rule] = append(got[a.Rule], n)
			}
			for r := range got {
				slices.Sort(got[r])
			}
			if tc.want[core.RuleRescore] == nil && tc.name != "rescoring only after an interval without updates" {
				delete(got, core.RuleRescore) // rescoring is checked in its own cases
			}
			assert.Equal(t, tc.want, got)
			for name, states := range tc.states {
				var seen []core.State
				for _, a := range p.Actions {
					for _, op := range a.Ops {
						if op.Op == core.OpState && op.MemoryID == consTestID(name) {
							seen = append(seen, op.To)
						}
					}
				}
				assert.Equal(t, states, seen, name)
			}
			if tc.noEmb {
				assert.Len(t, p.Skipped, 1)
			}
			consTestCheckPlanLegal(t, in, p)
		})
	}
}

// consTestCheckPlanLegal replays the plan's transitions on the input's
// states and checks each with CheckTransition, and that every superseded
// memory points at a memory that ends live.
func consTestCheckPlanLegal(t *testing.T, in core.ConsolidationInput, p core.ConsolidationPlan) {
	t.Helper()
	state := map[core.ID]core.State{}
	by := map[core.ID]core.ID{}
	for _, m := range in.Memories {
		state[m.ID], by[m.ID] = m.State, m.SupersededBy
	}
	for _, a := range p.Actions {
		for _, op := range a.Ops {
			switch op.Op {
			case core.OpCreate:
				_, exists := state[op.MemoryID]
				require.False(t, exists, "create of an existing memory")
				state[op.MemoryID] = core.StateUnconsolidated
			case core.OpState:
				require.Equal(t, state[op.MemoryID], op.From, "%s %s", a.Rule, op.MemoryID)
				require.NoError(t, core.CheckTransition(op.From, op.To), "%s %s", a.Rule, op.MemoryID)
				state[op.MemoryID], by[op.MemoryID] = op.To, op.SupersededBy
			}
		}
	}
	for id, s := range state {
		if s != core.StateSuperseded {
			continue
		}
		target := by[id]
		require.NotEmpty(t, target, id)
		ts, ok := state[target]
		require.True(t, ok, "superseded_by names an unknown memory")
		assert.Contains(t, core.LiveStates(), ts, "superseded memory %s points at %s, which is %s", id, target, ts)
	}
}

func TestPlanConsolidationDeterministic(t *testing.T) {
	t.Parallel()
	in := consTestFixture()
	// Add bulk so that LSH buckets and union-find order matter.
	for i := range 300 {
		base := consTestVec(uint64(1000+i%60), consTestDim)
		in.Memories = append(in.Memories, consTestMem(fmt.Sprint("bulk", i), fmt.Sprintf("bulk memory about topic %d", i%60), 0, func(m *core.Memory) {
			m.Embedding = consTestNear(base, uint64(i), 0.97+float64(i%3)/100)
			m.CreatedAt = consTestNow.Add(-time.Duration(i%7) * time.Hour)
			m.UpdatedAt = m.CreatedAt
		}))
	}
	want := core.PlanConsolidation(in, core.ConsolidationOptions{})
	require.NotEmpty(t, consTestIDs(want, core.RuleMerge))
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 7))
			cp := in
			cp.Memories = slices.Clone(in.Memories)
			cp.Events = slices.Clone(in.Events)
			r.Shuffle(len(cp.Memories), func(i, j int) { cp.Memories[i], cp.Memories[j] = cp.Memories[j], cp.Memories[i] })
			r.Shuffle(len(cp.Events), func(i, j int) { cp.Events[i], cp.Events[j] = cp.Events[j], cp.Events[i] })
			got := core.PlanConsolidation(cp, core.ConsolidationOptions{})
			assert.Equal(t, want, got)
			gotJSON, err := json.Marshal(got)
			require.NoError(t, err)
			assert.JSONEq(t, string(wantJSON), string(gotJSON))
		})
	}
}

func TestPlanConsolidationDoesNotModifyInput(t *testing.T) {
	t.Parallel()
	in := consTestFixture()
	before, err := json.Marshal(in)
	require.NoError(t, err)
	core.PlanConsolidation(in, core.ConsolidationOptions{})
	after, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, string(before), string(after))
}

func TestPlanConsolidationGolden(t *testing.T) {
	t.Parallel()
	p := core.PlanConsolidation(consTestFixture(), core.ConsolidationOptions{})
	got, err := json.MarshalIndent(struct {
		Plan   core.ConsolidationPlan   `json:"plan"`
		Report core.ConsolidationReport `json:"report"`
	}{p, p.Report()}, "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	path := filepath.Join("testdata", "consolidate", "fixture.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./core -run TestPlanConsolidationGolden -update")
	assert.Equal(t, string(want), string(got))
}

func TestRescoreUsefulness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		old    float64
		access int64
		want   float64
	}{
		{"no access decays", 0.5, 0, 0.4},
		{"some access", 0.5, 3, 0.46},
		{"more than 5 adds 0.1", 0.5, 6, 0.62},
		{"access is capped at 10", 0.5, 100, 0.7},
		{"capped at 1", 1, 10, 1},
		{"zero stays zero", 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.InDelta(t, tc.want, core.RescoreUsefulness(tc.old, tc.access), 1e-12)
		})
	}
}

func TestEffectiveAccessCounts(t *testing.T) {
	t.Parallel()
	ms := []core.Memory{
		{ID: "a", State: core.StateConsolidated, AccessCount: 1},
		{ID: "b", State: core.StateSuperseded, SupersededBy: "a", AccessCount: 2},
		{ID: "c", State: core.StateSuperseded, SupersededBy: "b", AccessCount: 4},
		{ID: "d", State: core.StateSuperseded, SupersededBy: "gone", AccessCount: 8},
		{ID: "e", State: core.StateSuperseded, SupersededBy: "f", AccessCount: 16},
		{ID: "f", State: core.StateSuperseded, SupersededBy: "e", AccessCount: 32},
	}
	assert.Equal(t, map[core.ID]int64{"a": 7}, core.EffectiveAccessCounts(ms))
}

// ---- through a DB ----

// consTestClock is a settable clock, safe for concurrent use.
type consTestClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *consTestClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *consTestClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func consTestDB(t *testing.T, device string, clock *consTestClock) *core.DB {
	t.Helper()
	return core.New(memstore.New(), core.Config{Device: device, Embedder: consTestEmbedder{},
		Clock: core.NewClock(core.ClockConfig{Now: clock.Now})})
}

// consTestEmbedder embeds a text as consTestVec of its FNV hash, in the
// fixture project's model and dimension.
type consTestEmbedder struct{}

func (consTestEmbedder) Model() string { return consTestModel }
func (consTestEmbedder) Dim() int      { return consTestDim }
func (consTestEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, s := range texts {
		h := fnv.New64a()
		h.Write([]byte(s))
		out[i] = consTestVec(h.Sum64(), consTestDim)
	}
	return out, ctx.Err()
}

// consTestLoad writes the fixture through db's API: each memory is
// remembered at its UpdatedAt, accessed at LastAccessed and moved to its
// state; superseded ones after their target exists.
func consTestLoad(t *testing.T, db *core.DB, clock *consTestClock, in core.ConsolidationInput) {
	t.Helper()
	ctx := t.Context()
	clock.Set(in.Now.Add(-400 * 24 * time.Hour))
	_, err := db.CreateProject(ctx, in.Project)
	require.NoError(t, err)
	ms := slices.Clone(in.Memories)
	slices.SortFunc(ms, func(a, b core.Memory) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	for _, m := range ms {
		clock.Set(m.UpdatedAt)
		put := m.Clone()
		put.State, put.SupersededBy, put.AccessCount, put.AccessByDevice = "", "", 0, nil
		put.LastAccessed, put.LastRetrieved = time.Time{}, time.Time{}
		_, err := db.Remember(ctx, put)
		require.NoError(t, err)
	}
	for _, m := range ms {
		if m.AccessCount > 0 {
			clock.Set(m.LastAccessed)
			for range m.AccessCount {
				_, err := db.RecordAccess(ctx, m.ID)
				require.NoError(t, err)
			}
		}
		path := map[core.State][]core.State{
			core.StateConsolidating:   {core.StateConsolidating},
			core.StateConsolidated:    {core.StateConsolidating, core.StateConsolidated},
			core.StateLabile:          {core.StateConsolidating, core.StateConsolidated, core.StateLabile},
			core.StateReconsolidating: {core.StateConsolidating, core.StateConsolidated, core.StateLabile, core.StateReconsolidating},
			core.StateArchived:        {core.StateArchived},
			core.StateSuperseded:      {core.StateSuperseded},
		}[m.State]
		clock.Set(m.CreatedAt)
		for _, s := range path {
			_, err := db.SetState(ctx, m.ID, s, m.SupersededBy)
			require.NoError(t, err)
		}
		got, err := db.Memory(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, m.State, got.State, m.Content)
	}
	for _, e := range in.Events {
		clock.Set(e.Timestamp)
		_, err := db.RecordEvent(ctx, e)
		require.NoError(t, err)
	}
	clock.Set(in.Now)
}

// consTestLoadable drops what the API cannot reproduce exactly
// (UpdatedAt older than the state changes) from the fixture: UpdatedAt
// becomes the creation time when it is later than LastAccessed.
func consTestLoadable() core.ConsolidationInput {
	in := consTestFixture()
	for i := range in.Memories {
		m := &in.Memories[i]
		if m.UpdatedAt.After(m.CreatedAt) {
			m.UpdatedAt = m.CreatedAt
		}
	}
	return in
}

func consTestAll(t *testing.T, db *core.DB) []core.Memory {
	t.Helper()
	ms, err := db.Memories(t.Context(), core.MemoryFilter{})
	require.NoError(t, err)
	return ms
}

func TestConsolidateIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := &consTestClock{}
	db := consTestDB(t, "dev-a", clock)
	in := consTestLoadable()
	consTestLoad(t, db, clock, in)

	dry, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{DryRun: true})
	require.NoError(t, err)
	assert.True(t, dry.DryRun)
	assert.False(t, dry.Empty())
	changes, err := db.Changes(ctx, 0, 1000, "")
	require.NoError(t, err)

	first, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	assert.Empty(t, first.Skipped)
	dry.DryRun = false
	assert.Equal(t, dry, first, "a dry run reports what the run does")
	after, err := db.Changes(ctx, 0, 1000, "")
	require.NoError(t, err)
	assert.Len(t, after, len(changes)+first.Writes, "every write is one change")

	second, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	assert.True(t, second.Empty(), "second run: %+v", second)

	// The outcome, as stored.
	byID := map[core.ID]core.Memory{}
	for _, m := range consTestAll(t, db) {
		byID[m.ID] = m
	}
	a1 := byID[consTestID("a1")]
	assert.Equal(t, []string{"db", "go", "postgres"}, a1.Tags)
	assert.Equal(t, core.StateSuperseded, byID[consTestID("a2")].State)
	assert.Equal(t, consTestID("a1"), byID[consTestID("a3")].SupersededBy)
	assert.Equal(t, core.StateArchived, byID[consTestID("z1")].State)
	assert.Equal(t, core.StateConsolidated, byID[consTestID("l1")].State)
	assert.Equal(t, core.StateLabile, byID[consTestID("l2")].State)
	assert.Equal(t, int64(10), core.EffectiveAccessCounts(consTestAll(t, db))[a1.ID])
	evs, err := db.Events(ctx, core.EventFilter{ProjectID: in.Project.ID})
	require.NoError(t, err)
	for _, e := range evs {
		if e.SessionID == "s1" {
			assert.True(t, e.Consolidated, e.Content)
			require.Contains(t, byID, e.ConsolidatedInto)
			assert.Equal(t, core.StateConsolidated, byID[e.ConsolidatedInto].State)
			assert.Equal(t, core.TypeSemantic, byID[e.ConsolidatedInto].MemoryType)
		}
	}

	// Time passes: the open episode closes, memories decay once more.
	clock.Set(in.Now.Add(2 * time.Hour))
	third, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	assert.Len(t, third.Clustered, 1)
	assert.NotEmpty(t, third.Rescored)
	fourth, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	assert.True(t, fourth.Empty(), "fourth run: %+v", fourth)
}

func TestConsolidateEmbedder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := &consTestClock{t: consTestNow.Add(-24 * time.Hour)}
	emb := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 64})
	db := core.New(memstore.New(), core.Config{Device: "dev", Embedder: emb, Clock: core.NewClock(core.ClockConfig{Now: clock.Now})})
	p, err := db.CreateProject(ctx, core.Project{Name: "e", Path: "/e"})
	require.NoError(t, err)
	old, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, MemoryType: core.TypeSemantic, Content: "fixed the flaky test"})
	require.NoError(t, err)
	clock.Set(clock.Now().Add(time.Minute))
	_, err = db.RecordEvent(ctx, core.Event{ProjectID: p.ID, SessionID: "s", Content: "Fixed the flaky test. It used time.Sleep.", Timestamp: clock.Now()})
	require.NoError(t, err)
	clock.Set(consTestNow)
	r, err := core.Consolidate(ctx, db, p.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	require.Len(t, r.Clustered, 1)
	m, err := db.Memory(ctx, r.Clustered[0].MemoryID)
	require.NoError(t, err)
	assert.Equal(t, "Fixed the flaky test.", m.Content)
	assert.Equal(t, emb.EmbedOne(m.Content), m.Embedding)
	// The new memory is an exact duplicate of an older one: it is born
	// superseded, nothing is lost.
	assert.Equal(t, core.StateSuperseded, m.State)
	assert.Equal(t, old.ID, m.SupersededBy)
	r, err = core.Consolidate(ctx, db, p.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	assert.True(t, r.Empty(), "%+v", r)
}

func TestConsolidateSkipsConcurrentChanges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := &consTestClock{}
	db := consTestDB(t, "dev", clock)
	in := consTestLoadable()
	consTestLoad(t, db, clock, in)
	in.Memories = consTestAll(t, db)
	p := core.PlanConsolidation(in, core.ConsolidationOptions{})
	// Someone archives the memory that the plan returns from labile...
	_, err := db.SetState(ctx, consTestID("l1"), core.StateConsolidated, "")
	require.NoError(t, err)
	_, err = db.SetState(ctx, consTestID("l1"), core.StateArchived, "")
	require.NoError(t, err)
	// ...so Consolidate, which plans afresh, leaves it alone; a stale plan
	// would have been refused by the state machine.
	r, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	assert.NotContains(t, r.ReturnedFromLabile, consTestID("l1"))
	assert.Contains(t, consTestIDs(p, core.RuleReturn), consTestID("l1"))
}

func TestConsolidateTwoDevicesConverge(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := &consTestClock{}
	src := consTestDB(t, "origin", clock)
	in := consTestLoadable()
	consTestLoad(t, src, clock, in)
	a, b := consTestDB(t, "edge-a", clock), consTestDB(t, "edge-b", clock)
	consTestSync(t, src, a)
	consTestSync(t, src, b)
	ra, err := core.Consolidate(ctx, a, in.Project.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	clock.Set(in.Now.Add(time.Minute)) // b runs a little later
	rb, err := core.Consolidate(ctx, b, in.Project.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	ra.At, rb.At = time.Time{}, time.Time{}
	assert.Equal(t, ra, rb, "same input, same decisions")
	consTestSync(t, a, b)
	consTestSync(t, b, a)
	assert.Equal(t, consTestAll(t, a), consTestAll(t, b))
	ea, err := a.Events(ctx, core.EventFilter{})
	require.NoError(t, err)
	eb, err := b.Events(ctx, core.EventFilter{})
	require.NoError(t, err)
	assert.Equal(t, ea, eb)
	r, err := core.Consolidate(ctx, a, in.Project.ID, core.ConsolidationOptions{})
	require.NoError(t, err)
	assert.True(t, r.Empty(), "%+v", r)
}

// consTestSync pulls every change of src that dst has not seen.
func consTestSync(t *testing.T, src, dst *core.DB) {
	t.Helper()
	var after int64
	for {
		cs, err := src.Changes(t.Context(), after, 1000, dst.Device())
		require.NoError(t, err)
		if len(cs) == 0 {
			return
		}
		res, err := dst.ApplyPulled(t.Context(), cs)
		require.NoError(t, err)
		for _, r := range res {
			require.NotEqual(t, core.StatusRejected, r.Status, "%+v", r)
		}
		after = cs[len(cs)-1].Pos
	}
}

// TestConsolidateProperty runs random operation sequences and checks, after
// every step, that nothing illegal happened: every state is valid, no
// content ever remembered is lost, every superseded memory's chain ends in
// a live memory (or one a user archived), and a consolidation right after
// a consolidation changes nothing.
func TestConsolidateProperty(t *testing.T) {
	t.Parallel()
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			consTestProperty(t, seed)
		})
	}
}

func consTestProperty(t *testing.T, seed uint64) {
	ctx := t.Context()
	r := rand.New(rand.NewPCG(seed, 99))
	clock := &consTestClock{t: consTestNow}
	db := consTestDB(t, "dev", clock)
	p, err := db.CreateProject(ctx, consTestProject(consTestDim))
	require.NoError(t, err)
	contents := map[string]bool{}
	userArchived := map[core.ID]bool{}
	var ids []core.ID
	topics := []string{"the cache is warm", "deploy on tuesdays", "use pgx for postgres", "release v1.2.%d is out", "tests must not sleep"}
	for step := range 120 {
		switch op := r.IntN(10); {
		case op < 4: // remember, often a duplicate or near duplicate
			k := r.IntN(len(topics))
			content := topics[k]
			if k == 3 {
				content = fmt.Sprintf(content, r.IntN(3))
			}
			vec := consTestVec(uint64(k), consTestDim)
			switch r.IntN(3) {
			case 1:
				content += " indeed"
				vec = consTestNear(vec, r.Uint64(), 0.97)
			case 2:
				content = fmt.Sprintf("unrelated note %d", r.IntN(1000))
				vec = consTestVec(r.Uint64(), consTestDim)
			}
			m, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: content, Embedding: vec,
				Tags: []string{fmt.Sprint("t", r.IntN(4))}, Usefulness: r.Float64()})
			require.NoError(t, err)
			contents[content] = true
			ids = append(ids, m.ID)
		case op < 5 && len(ids) > 0: // access
			_, err := db.RecordAccess(ctx, ids[r.IntN(len(ids))])
			require.NoError(t, err)
		case op < 6 && len(ids) > 0: // a user's state change (never to superseded)
			id := ids[r.IntN(len(ids))]
			m, err := db.Memory(ctx, id)
			require.NoError(t, err)
			var next []core.State
			for _, s := range m.State.Next() {
				if s != core.StateSuperseded {
					next = append(next, s)
				}
			}
			if len(next) == 0 {
				continue
			}
			to := next[r.IntN(len(next))]
			_, err = db.SetState(ctx, id, to, "")
			require.NoError(t, err)
			if to == core.StateArchived {
				userArchived[id] = true
			}
		case op < 7: // an event
			_, err := db.RecordEvent(ctx, core.Event{ProjectID: p.ID, SessionID: fmt.Sprint("s", r.IntN(2)),
				Content: fmt.Sprintf("did step %d. then more.", step), Confidence: r.Float64(),
				Embedding: consTestVec(uint64(r.IntN(3)), consTestDim), EmbeddingModel: consTestModel,
				Context: core.EventContext{Files: []string{fmt.Sprint("f", r.IntN(3))}}})
			require.NoError(t, err)
		case op < 8:
			clock.Set(clock.Now().Add(time.Duration(r.IntN(180)) * time.Minute))
		default:
			rep, err := core.Consolidate(ctx, db, p.ID, core.ConsolidationOptions{ArchiveAge: 3 * time.Hour, BatchSize: 1 + r.IntN(8)})
			require.NoError(t, err)
			assert.Empty(t, rep.Skipped)
			again, err := core.Consolidate(ctx, db, p.ID, core.ConsolidationOptions{ArchiveAge: 3 * time.Hour})
			require.NoError(t, err)
			require.True(t, again.Empty(), "step %d: second run not empty: %+v", step, again)
		}
		consTestInvariants(t, db, contents, userArchived)
	}
}

func consTestInvariants(t *testing.T, db *core.DB, contents map[string]bool, userArchived map[core.ID]bool) {
	t.Helper()
	ms := consTestAll(t, db)
	byID := map[core.ID]core.Memory{}
	have := map[string]bool{}
	for _, m := range ms {
		require.True(t, m.State.Valid(), m.State)
		byID[m.ID] = m
		have[m.Content] = true
	}
	for c := range contents {
		require.True(t, have[c], "content lost: %q", c)
	}
	for _, m := range ms {
		if m.State != core.StateSuperseded {
			require.Empty(t, m.SupersededBy)
			continue
		}
		cur := m
		for range len(ms) + 1 {
			if cur.State != core.StateSuperseded {
				break
			}
			next, ok := byID[cur.SupersededBy]
			require.True(t, ok, "%s points at a missing memory", cur.ID)
			cur = next
		}
		require.NotEqual(t, core.StateSuperseded, cur.State, "superseded chain of %s loops", m.ID)
		if !userArchived[cur.ID] {
			require.Contains(t, core.LiveStates(), cur.State, "superseded %s ends at %s, which is %s", m.ID, cur.ID, cur.State)
		}
	}
	evs, err := db.Events(t.Context(), core.EventFilter{})
	require.NoError(t, err)
	for _, e := range evs {
		if e.Consolidated {
			require.Contains(t, byID, e.ConsolidatedInto)
		}
	}
}

// ---- benchmark ----

// consTestBenchInput is n memories of dim 768 (the seed's), 5% exact and 5%
// near duplicates (cosine 0.97 to 0.99) of other memories.
func consTestBenchInput(n int) core.ConsolidationInput {
	const dim = 768
	p := consTestProject(dim)
	r := rand.New(rand.NewPCG(42, 42))
	ms := make([]core.Memory, 0, n)
	uniq := n - n/10
	for i := range uniq {
		t := consTestNow.Add(-time.Duration(n-i) * time.Minute)
		ms = append(ms, core.Memory{ID: core.DeriveID(t, "bench", fmt.Sprint(i)), ProjectID: p.ID,
			Content:   fmt.Sprintf("memory %d about topic %d and some words", i, r.IntN(1000)),
			Embedding: consTestVec(uint64(i), dim), EmbeddingModel: p.EmbeddingModel, MemoryType: core.TypeFact,
			State: core.StateConsolidated, Usefulness: 0.5, Confidence: 1, CreatedAt: t, UpdatedAt: t})
	}
	for i := range n / 10 {
		src := ms[r.IntN(uniq)]
		t := src.CreatedAt.Add(time.Second)
		d := core.Memory{ID: core.DeriveID(t, "dup", fmt.Sprint(i)), ProjectID: p.ID, Content: src.Content,
			Embedding: src.Embedding, EmbeddingModel: p.EmbeddingModel, MemoryType: core.TypeFact,
			State: core.StateConsolidated, Usefulness: 0.5, Confidence: 1, CreatedAt: t, UpdatedAt: t}
		if i%2 == 1 {
			d.Content = src.Content + ", again"
			d.Embedding = consTestNear(src.Embedding, uint64(i), 0.97+0.02*r.Float64())
		}
		ms = append(ms, d)
	}
	return core.ConsolidationInput{Project: p, Memories: ms, Now: consTestNow}
}

func BenchmarkPlanConsolidation(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		if n > 10_000 && testing.Short() {
			continue
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			in := consTestBenchInput(n)
			var p core.ConsolidationPlan
			for b.Loop() {
				p = core.PlanConsolidation(in, core.ConsolidationOptions{})
			}
			superseded := 0
			for _, a := range p.Actions {
				if a.Rule == core.RuleMerge {
					superseded += len(a.Merged)
				}
			}
			b.ReportMetric(float64(superseded)/float64(n/10), "dup-recall")
		})
	}
}

func TestConsolidateBenchInputRecall(t *testing.T) {
	t.Parallel()
	in := consTestBenchInput(2000)
	p := core.PlanConsolidation(in, core.ConsolidationOptions{})
	superseded := 0
	for _, a := range p.Actions {
		if a.Rule == core.RuleMerge {
			superseded += len(a.Merged)
		}
	}
	assert.GreaterOrEqual(t, superseded, 198, "found %d of 200 duplicates", superseded)
	assert.LessOrEqual(t, superseded, 200)
}

// consTestCountingBackend counts, per write transaction, the PutMemory
// calls for each memory, and can run a write of its own at the start of
// each write transaction (before its caller's function) to stand in for a
// concurrent writer between planning and applying.
type consTestCountingBackend struct {
	core.Backend
	mu     sync.Mutex
	puts   []map[core.ID]int // one map per write transaction
	before func(ctx context.Context, w core.WriteTx) error
}

func (b *consTestCountingBackend) Update(ctx context.Context, fn func(core.WriteTx) error) error {
	return b.Backend.Update(ctx, func(w core.WriteTx) error {
		b.mu.Lock()
		puts := map[core.ID]int{}
		b.puts = append(b.puts, puts)
		before := b.before
		b.mu.Unlock()
		if before != nil {
			if err := before(ctx, w); err != nil {
				return err
			}
		}
		return fn(consTestCountingTx{WriteTx: w, b: b, puts: puts})
	})
}

type consTestCountingTx struct {
	core.WriteTx
	b    *consTestCountingBackend
	puts map[core.ID]int
}

func (t consTestCountingTx) PutMemory(ctx context.Context, m core.Memory) error {
	t.b.mu.Lock()
	t.puts[m.ID]++
	t.b.mu.Unlock()
	return t.WriteTx.PutMemory(ctx, m)
}

// TestConsolidateWritesEachRowOnce: however many outcomes a memory has in
// one run (promoted and rescored, say), each transaction stores its row at
// most once, while the report still lists every outcome and the change log
// still holds one change per outcome.
func TestConsolidateWritesEachRowOnce(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{0, 3, 50} {
		t.Run(fmt.Sprint("batch", batch), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			clock := &consTestClock{}
			b := &consTestCountingBackend{Backend: memstore.New()}
			db := core.New(b, core.Config{Device: "dev", Embedder: consTestEmbedder{}, Clock: core.NewClock(core.ClockConfig{Now: clock.Now})})
			in := consTestLoadable()
			// Old, unconsolidated, not updated since: promoted and rescored.
			for i := range 5 {
				at := in.Now.Add(-time.Duration(48+i) * time.Hour)
				in.Memories = append(in.Memories, core.Memory{ID: consTestID(fmt.Sprint("both", i)), ProjectID: in.Project.ID,
					Content: fmt.Sprint("Unrelated note number ", i), Embedding: consTestVec(uint64(900+i), consTestDim),
					EmbeddingModel: consTestModel, MemoryType: core.TypeFact, State: core.StateUnconsolidated,
					Usefulness: 0.5, Confidence: 1, CreatedAt: at, UpdatedAt: at})
			}
			consTestLoad(t, db, clock, in)
			before := consTestChanges(t, db)
			b.mu.Lock()
			b.puts = nil
			b.mu.Unlock()

			r, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{BatchSize: batch})
			require.NoError(t, err)
			require.Empty(t, r.Skipped)
			var both []core.ID
			for _, s := range r.Rescored {
				if slices.Contains(r.Promoted, s.ID) {
					both = append(both, s.ID)
				}
			}
			assert.GreaterOrEqual(t, len(both), 5, "promoted and rescored: %v", both)
			for i, puts := range b.puts {
				for id, n := range puts {
					assert.Equal(t, 1, n, "transaction %d stored %s %d times", i, id, n)
				}
			}
			after := consTestChanges(t, db)
			require.Len(t, after, len(before)+r.Writes, "every outcome is a change")
			kinds := map[core.ID][]core.Kind{}
			for _, c := range after[len(before):] {
				kinds[c.EntityID] = append(kinds[c.EntityID], c.Kind)
			}
			for _, id := range both {
				assert.Equal(t, []core.Kind{core.KindMemoryState, core.KindMemoryState, core.KindMemoryPut}, kinds[id], "changes of %s", id)
				m, err := db.Memory(ctx, id)
				require.NoError(t, err)
				assert.Equal(t, core.StateConsolidated, m.State)
				assert.Equal(t, core.RescoreUsefulness(0.5, 0), m.Usefulness)
			}
			second, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{BatchSize: batch})
			require.NoError(t, err)
			assert.True(t, second.Empty(), "second run: %+v", second)
		})
	}
}

// consTestChanges is db's whole change log.
func consTestChanges(t *testing.T, db *core.DB) []core.Change {
	t.Helper()
	var out []core.Change
	for {
		var after int64
		if len(out) > 0 {
			after = out[len(out)-1].Pos
		}
		cs, err := db.Changes(t.Context(), after, 1000, "")
		require.NoError(t, err)
		if len(cs) == 0 {
			return out
		}
		out = append(out, cs...)
	}
}

// TestConsolidateSkipsChangesAfterPlanning: a write that lands between
// planning and applying (here, in the applying transaction itself, before
// consolidation's own writes) makes the affected action a skip, not a
// lost update; the next run picks it up.
func TestConsolidateSkipsChangesAfterPlanning(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := &consTestClock{}
	b := &consTestCountingBackend{Backend: memstore.New()}
	db := core.New(b, core.Config{Device: "dev", Embedder: consTestEmbedder{}, Clock: core.NewClock(core.ClockConfig{Now: clock.Now})})
	in := consTestLoadable()
	consTestLoad(t, db, clock, in)
	dry, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{DryRun: true})
	require.NoError(t, err)
	require.NotEmpty(t, dry.Rescored)
	target := dry.Rescored[0].ID
	var once sync.Once
	b.mu.Lock()
	b.before = func(ctx context.Context, w core.WriteTx) error {
		var err error
		once.Do(func() {
			var ms []core.Memory
			if ms, err = w.Memories(ctx, core.MemoryFilter{IDs: []core.ID{target}}); err != nil || len(ms) != 1 {
				err = fmt.Errorf("read %s: %d memories, %w", target, len(ms), err)
				return
			}
			ms[0].Usefulness = 0.77
			err = w.PutMemory(ctx, ms[0])
		})
		return err
	}
	b.mu.Unlock()

	r, err := core.Consolidate(ctx, db, in.Project.ID, core.ConsolidationOptions{BatchSize: 100000})
	require.NoError(t, err)
	require.Len(t, r.Skipped, 1, "%+v", r.Skipped)
	assert.Equal(t, target, r.Skipped[0].ID)
	assert.Contains(t, r.Skipped[0].Reason, "usefulness")
	m, err := db.Memory(ctx, target)
	require.NoError(t, err)
	assert.Equal(t, 0.77, m.Usefulness, "the concurrent write survives")
	for _, s := range r.Rescored {
		assert.NotEqual(t, target, s.ID)
	}
}
