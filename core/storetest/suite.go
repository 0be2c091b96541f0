package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Run runs the whole conformance suite. open must return a new, empty
// store each time it is called, and arrange for its cleanup with
// t.Cleanup. Subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) core.Backend) {
	cases := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		// The seed's 21 integration scenarios, in its order, made strict.
		{"01_InitializeIsIdempotent", testInitialize},
		{"02_Ping", testPing},
		{"03_EveryEntityRoundTrips", testEveryEntity},
		{"04_CreateProjectEchoes", testCreateProject},
		{"05_ProjectByPath", testProjectByPath},
		{"06_UnknownPathNotFound", testUnknownPath},
		{"07_TouchProjectMovesForward", testTouchProject},
		{"08_StoreMemoryGetsID", testStoreMemory},
		{"09_GetReturnsEveryField", testGetEveryField},
		{"10_DeleteThenNotFound", testDelete},
		{"11_AccessStatsAndQuality", testAccessStats},
		{"12_SemanticSearch", testSemanticSearch},
		{"13_HybridSearch", testHybridSearch},
		{"14_ConsolidationSetsConsolidatedAt", testConsolidation},
		{"15_ReconsolidationWindow", testWindow},
		{"16_TaskPriority8", testTask},
		{"17_GoalPriority9", testGoal},
		{"18_EpisodicEventContext", testEvent},
		{"19_CodeEntityLinkedToSnippet", testCodeEntity},
		{"20_TransactionAtomic", testTransaction},
		{"21_StoreNamesItself", testName},
		// Beyond the seed.
		{"StateTransitionTable", testTransitionTable},
		{"BadInput", testBadInput},
		{"BatchKeepsGoodItems", testBatch},
		{"SearchFilters", testSearchFilters},
		{"FilteredVectorLegReturnsK", testFilteredK},
		{"SearchLimits", testSearchLimits},
		{"RewriteInOneTransaction", testRewriteInOneTransaction},
		{"ChangeLogSameTransaction", testChangeLog},
		{"ChangeLogIdempotentApply", testApplyIdempotent},
		{"ChangeLogConverges", testConverge},
		{"ChangeLogRejectsAndGaps", testRejectAndGap},
		{"ChangeLogBatchReadsItsOwnWrites", testApplyBatch},
		{"ChangeLogKeepsEachVector", testChangeVectors},
		{"ChangeLogApplyAfterAssumedSeq", testApplyAfter},
		{"ContextCancellation", testCancel},
		{"MetaIsTransactional", testMeta},
		{"ReembedSwap", testReembedSwap},
		{"ReembedStagedAndResumed", testReembedStaged},
		{"Hammer", testHammer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv(t, open))
		})
	}
}

func testInitialize(t *testing.T, e *env) {
	p := e.project("init")
	m := e.remember(p, "survives initialize", Vec(1), nil)
	in, ok := e.b.(core.Initializer)
	require.True(t, ok, "store must implement core.Initializer")
	for range 3 {
		require.NoError(t, in.Initialize(e.ctx))
	}
	got, err := e.db.Memory(e.ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, m.Content, got.Content)
}

func testPing(t *testing.T, e *env) {
	require.NoError(t, e.db.Ping(e.ctx))
}

func testEveryEntity(t *testing.T, e *env) {
	p := e.project("every")
	m := e.remember(p, "entity memory", Vec(2), func(m *core.Memory) { m.MemoryType = core.TypeCodeSnippet })
	m2 := e.remember(p, "other memory", Vec(3), nil)

	rel, err := e.db.Relate(e.ctx, core.Relationship{FromID: m.ID, ToID: m2.ID, Type: "relates_to", Strength: 0.5})
	require.NoError(t, err)
	ev, err := e.db.RecordEvent(e.ctx, core.Event{ProjectID: p.ID, SessionID: "s1", EventType: "action", Content: "ran tests"})
	require.NoError(t, err)
	task, err := e.db.CreateTask(e.ctx, core.Task{ProjectID: p.ID, Title: "write suite"})
	require.NoError(t, err)
	goal, err := e.db.CreateGoal(e.ctx, core.Goal{ProjectID: p.ID, Title: "ship"})
	require.NoError(t, err)
	ce, err := e.db.CreateCodeEntity(e.ctx, core.CodeEntity{ProjectID: p.ID, MemoryID: m.ID, FilePath: "a.go", Name: "F", EntityType: "function"})
	require.NoError(t, err)
	ce2, err := e.db.CreateCodeEntity(e.ctx, core.CodeEntity{ProjectID: p.ID, FilePath: "b.go", Name: "G", EntityType: "function"})
	require.NoError(t, err)
	dep, err := e.db.CreateCodeDependency(e.ctx, core.CodeDependency{FromID: ce.ID, ToID: ce2.ID, Type: "calls"})
	require.NoError(t, err)

	require.NoError(t, e.db.View(e.ctx, func(tx *core.Tx) error {
		rels, err := tx.Relationships(e.ctx, core.RelationshipFilter{MemoryID: m2.ID})
		require.NoError(t, err)
		assert.Equal(t, []core.Relationship{rel}, rels)
		evs, err := tx.Events(e.ctx, core.EventFilter{ProjectID: p.ID})
		require.NoError(t, err)
		assert.Equal(t, []core.Event{ev}, evs)
		tasks, err := tx.Tasks(e.ctx, core.TaskFilter{ID: task.ID})
		require.NoError(t, err)
		assert.Equal(t, []core.Task{task}, tasks)
		goals, err := tx.Goals(e.ctx, core.GoalFilter{ProjectID: p.ID})
		require.NoError(t, err)
		assert.Equal(t, []core.Goal{goal}, goals)
		ces, err := tx.CodeEntities(e.ctx, core.CodeFilter{MemoryID: m.ID})
		require.NoError(t, err)
		assert.Equal(t, []core.CodeEntity{ce}, ces)
		deps, err := tx.CodeDependencies(e.ctx, core.CodeFilter{ProjectID: p.ID})
		require.NoError(t, err)
		assert.Equal(t, []core.CodeDependency{dep}, deps)
		ps, err := tx.Projects(e.ctx)
		require.NoError(t, err)
		assert.Equal(t, []core.Project{p}, ps)
		return nil
	}))
}

func testCreateProject(t *testing.T, e *env) {
	p, err := e.db.CreateProject(e.ctx, core.Project{Name: "athena", Path: "/home/a/athena", Language: "go",
		Description: "memory", EmbeddingModel: Model, EmbeddingDim: Dim})
	require.NoError(t, err)
	assert.Equal(t, "athena", p.Name)
	assert.Equal(t, "/home/a/athena", p.Path)
	assert.Equal(t, core.DefaultConsolidationInterval, p.ConsolidationInterval)
	got, err := e.db.Project(e.ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, p, got)

	_, err = e.db.CreateProject(e.ctx, core.Project{Name: "athena", Path: "/elsewhere", EmbeddingModel: Model})
	require.ErrorIs(t, err, core.ErrConflict, "duplicate name")
	_, err = e.db.CreateProject(e.ctx, core.Project{Name: "other", Path: "/home/a/athena", EmbeddingModel: Model})
	require.ErrorIs(t, err, core.ErrConflict, "duplicate path")
}

func testProjectByPath(t *testing.T, e *env) {
	p := e.project("bypath")
	e.project("bypath2")
	got, err := e.db.ProjectByPath(e.ctx, "/work/bypath")
	require.NoError(t, err)
	assert.Equal(t, p, got)
	got, err = e.db.ProjectByName(e.ctx, "bypath")
	require.NoError(t, err)
	assert.Equal(t, p, got)
}

func testUnknownPath(t *testing.T, e *env) {
	e.project("known")
	_, err := e.db.ProjectByPath(e.ctx, "/work/unknown")
	require.ErrorIs(t, err, core.ErrNotFound)
	_, err = e.db.ProjectByPath(e.ctx, "/work/know") // a prefix is not a match
	require.ErrorIs(t, err, core.ErrNotFound)
}

func testTouchProject(t *testing.T, e *env) {
	p := e.project("touch")
	e.clock.Advance(time.Minute)
	got, err := e.db.TouchProject(e.ctx, p.ID)
	require.NoError(t, err)
	assert.True(t, got.LastAccessed.After(p.LastAccessed), "last_accessed %v not after %v", got.LastAccessed, p.LastAccessed)
	again, err := e.db.Project(e.ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, got.LastAccessed, again.LastAccessed)
	_, err = e.db.TouchProject(e.ctx, core.NewID(e.clock.Now()))
	require.ErrorIs(t, err, core.ErrNotFound)
}

func testStoreMemory(t *testing.T, e *env) {
	p := e.project("store")
	m := e.remember(p, "a 768-d memory", Vec(4), nil)
	_, err := core.ParseID(string(m.ID))
	require.NoError(t, err)
	assert.Len(t, m.Embedding, Dim)
	assert.Equal(t, core.StateUnconsolidated, m.State)
}

func testGetEveryField(t *testing.T, e *env) {
	p := e.project("fields")
	v := Vec(5)
	v[0] = float32(1e-40) // a subnormal must round-trip bit-exactly
	v[1] = float32(math.Copysign(0, -1))
	m := e.remember(p, "every field — ünïcode ✓", v, func(m *core.Memory) {
		m.MemoryType, m.Domain, m.Tags = core.TypeDecision, "architecture", []string{"Go", " wasm ", "go"}
		m.SessionID, m.EventType, m.CodeLanguage, m.CodeHash = "sess-1", "decision_made", "go", "abc123"
		m.Usefulness, m.Confidence = 0.25, 0.75
	})
	assert.Equal(t, []string{"go", "wasm"}, m.Tags, "tags are normalized")
	got, err := e.db.Memory(e.ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, m, got)
	assert.InDelta(t, core.Quality(0.25, 0.75, 0), got.QualityScore, 1e-12)
	for i := range v {
		require.Equal(t, math.Float32bits(v[i]), math.Float32bits(got.Embedding[i]), "embedding[%d] must round-trip bit-exactly", i)
	}
}

func testDelete(t *testing.T, e *env) {
	p := e.project("delete")
	m := e.remember(p, "to forget", Vec(6), nil)
	require.NoError(t, e.db.DeleteMemory(e.ctx, m.ID))
	_, err := e.db.Memory(e.ctx, m.ID)
	require.ErrorIs(t, err, core.ErrNotFound)
	require.ErrorIs(t, e.db.DeleteMemory(e.ctx, m.ID), core.ErrNotFound, "deleting twice")
	require.ErrorIs(t, e.db.DeleteMemory(e.ctx, core.NewID(epoch())), core.ErrNotFound, "deleting a missing ID")
	_, err = e.db.Remember(e.ctx, core.Memory{ID: m.ID, ProjectID: p.ID, Content: "resurrect", Embedding: Vec(6), EmbeddingModel: Model})
	require.ErrorIs(t, err, core.ErrConflict, "a deleted ID cannot be reused")
}

func testAccessStats(t *testing.T, e *env) {
	p := e.project("access")
	m := e.remember(p, "accessed", Vec(7), func(m *core.Memory) { m.Usefulness, m.Confidence = 0.6, 0.9 })
	e.clock.Advance(time.Second)
	got, err := e.db.RecordAccess(e.ctx, m.ID)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.EqualValues(t, 1, got[0].AccessCount)
	assert.Equal(t, e.clock.Now(), got[0].LastAccessed)
	assert.Equal(t, e.clock.Now(), got[0].LastRetrieved)
	assert.InDelta(t, core.Quality(0.6, 0.9, 1), got[0].QualityScore, 1e-12)
	stored, err := e.db.Memory(e.ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, got[0], stored)
	_, err = e.db.RecordAccess(e.ctx, core.NewID(epoch()))
	require.ErrorIs(t, err, core.ErrNotFound)
}

func testSemanticSearch(t *testing.T, e *env) {
	p := e.project("semantic")
	q := Vec(100)
	want := []core.Memory{
		e.remember(p, "closest", Near(q, 1, 0.95), nil),
		e.remember(p, "close", Near(q, 2, 0.8), nil),
		e.remember(p, "far", Near(q, 3, 0.5), nil),
	}
	for i := range 20 {
		e.remember(p, fmt.Sprintf("noise %d", i), Vec(uint64(200+i)), nil)
	}
	hits, err := e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Embedding: q, K: 10, SemanticOnly: true, Threshold: 0.4})
	require.NoError(t, err)
	require.Equal(t, []core.ID{want[0].ID, want[1].ID, want[2].ID}, ids(hits), "ordered by similarity, threshold drops noise")
	for i := 1; i < len(hits); i++ {
		assert.GreaterOrEqual(t, hits[i-1].Semantic, hits[i].Semantic)
	}
	for _, h := range hits {
		assert.GreaterOrEqual(t, h.Semantic, 0.4)
		assert.InDelta(t, core.Cosine(q, h.Memory.Embedding), h.Semantic, 1e-12)
	}
	hits, err = e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Embedding: q, K: 1, SemanticOnly: true, Threshold: 0.9})
	require.NoError(t, err)
	require.Equal(t, []core.ID{want[0].ID}, ids(hits))
	// A leg asked to be exact says so, and --explain shows it.
	hits, err = e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Embedding: q, K: 3, SemanticOnly: true, Exact: true, Explain: true})
	require.NoError(t, err)
	require.NotEmpty(t, hits)
	for _, h := range hits {
		require.NotNil(t, h.Explain)
		assert.True(t, h.Explain.Exact, "an exact vector leg is reported exact")
	}
}

func testHybridSearch(t *testing.T, e *env) {
	p := e.project("hybrid")
	v := Vec(300)
	match := e.remember(p, "Database optimization techniques for indexes", v, nil)
	other := e.remember(p, "A recipe for banana bread", v, nil)
	for i := range 10 {
		e.remember(p, fmt.Sprintf("unrelated note %d about gardening", i), Vec(uint64(310+i)), nil)
	}
	hits, err := e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Text: "optimization techniques", Embedding: v, K: 5, Explain: true})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(hits), 2)
	assert.Equal(t, match.ID, hits[0].Memory.ID, "keyword match outranks an equal-vector non-match")
	assert.Equal(t, other.ID, hits[1].Memory.ID)
	assert.Greater(t, hits[0].Keyword, 0.0)
	assert.Zero(t, hits[1].Keyword)
	assert.InDelta(t, hits[0].Semantic, hits[1].Semantic, 1e-9)
	assert.InDelta(t, 0.7*hits[0].Semantic+0.3*1.0, hits[0].Hybrid, 1e-9)
	require.NotNil(t, hits[0].Explain)
	assert.Equal(t, []string{"optimization", "techniques"}, hits[0].Explain.MatchedTerms)
	assert.Equal(t, 1, hits[0].Explain.KeywordRank)
}

func testConsolidation(t *testing.T, e *env) {
	p := e.project("consolidate")
	m := e.remember(p, "to consolidate", Vec(8), nil)
	assert.True(t, m.ConsolidatedAt.IsZero())
	m1, err := e.db.SetState(e.ctx, m.ID, core.StateConsolidating, "")
	require.NoError(t, err)
	assert.Equal(t, core.StateConsolidating, m1.State)
	e.clock.Advance(time.Minute)
	m2, err := e.db.SetState(e.ctx, m.ID, core.StateConsolidated, "")
	require.NoError(t, err)
	assert.Equal(t, e.clock.Now(), m2.ConsolidatedAt)
	got, err := e.db.Memory(e.ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, core.StateConsolidated, got.State)
	assert.Equal(t, e.clock.Now(), got.ConsolidatedAt)
}

func (e *env) toState(p core.Project, name string, seed uint64, to core.State) core.Memory {
	e.t.Helper()
	m := e.remember(p, name, Vec(seed), nil)
	var path []core.State
	switch to {
	case core.StateConsolidating:
		path = []core.State{core.StateConsolidating}
	case core.StateConsolidated:
		path = []core.State{core.StateConsolidating, core.StateConsolidated}
	case core.StateLabile:
		path = []core.State{core.StateConsolidating, core.StateConsolidated, core.StateLabile}
	case core.StateReconsolidating:
		path = []core.State{core.StateConsolidating, core.StateConsolidated, core.StateLabile, core.StateReconsolidating}
	case core.StateArchived:
		path = []core.State{core.StateArchived}
	case core.StateSuperseded:
		other := e.remember(p, name+" survivor", Vec(seed+1_000_000), nil)
		got, err := e.db.SetState(e.ctx, m.ID, core.StateSuperseded, other.ID)
		require.NoError(e.t, err)
		return got
	}
	for _, s := range path {
		var err error
		m, err = e.db.SetState(e.ctx, m.ID, s, "")
		require.NoError(e.t, err)
	}
	return m
}

func testWindow(t *testing.T, e *env) {
	p := e.project("window")
	inside := e.toState(p, "inside", 9, core.StateConsolidated)
	outside := e.toState(p, "outside", 10, core.StateConsolidated)
	notLabile := e.remember(p, "never consolidated", Vec(11), nil)

	got, err := e.db.RecordAccess(e.ctx, outside.ID) // consolidated + retrieved → labile
	require.NoError(t, err)
	require.Equal(t, core.StateLabile, got[0].State)
	e.clock.Advance(61 * time.Minute)
	got, err = e.db.RecordAccess(e.ctx, inside.ID, notLabile.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateLabile, got[0].State)
	require.Equal(t, core.StateUnconsolidated, got[1].State)
	e.clock.Advance(30 * time.Minute)

	win, err := e.db.ReconsolidationWindow(e.ctx, p.ID, 60*time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []core.ID{inside.ID}, memIDs(win))
	win, err = e.db.ReconsolidationWindow(e.ctx, p.ID, 120*time.Minute)
	require.NoError(t, err)
	assert.ElementsMatch(t, []core.ID{inside.ID, outside.ID}, memIDs(win))
}

func memIDs(ms []core.Memory) []core.ID {
	out := make([]core.ID, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func testTask(t *testing.T, e *env) {
	p := e.project("task")
	task, err := e.db.CreateTask(e.ctx, core.Task{ProjectID: p.ID, Title: "refactor", Priority: 8, DueAt: epoch().Add(48 * time.Hour)})
	require.NoError(t, err)
	assert.Equal(t, 8, task.Priority)
	assert.Equal(t, core.TaskPending, task.Status)
	tasks, err := e.db.Tasks(e.ctx, core.TaskFilter{ProjectID: p.ID})
	require.NoError(t, err)
	require.Equal(t, []core.Task{task}, tasks)
	task.Status = core.TaskCompleted
	done, err := e.db.PutTask(e.ctx, task)
	require.NoError(t, err)
	assert.False(t, done.CompletedAt.IsZero())
	_, err = e.db.CreateTask(e.ctx, core.Task{ProjectID: p.ID, Title: "bad", Priority: 11})
	require.ErrorIs(t, err, core.ErrInvalid)
}

func testGoal(t *testing.T, e *env) {
	p := e.project("goal")
	g, err := e.db.CreateGoal(e.ctx, core.Goal{ProjectID: p.ID, Title: "ship athena-edge", Priority: 9, Progress: 0.25})
	require.NoError(t, err)
	assert.Equal(t, 9, g.Priority)
	goals, err := e.db.Goals(e.ctx, core.GoalFilter{ProjectID: p.ID, Status: core.GoalActive})
	require.NoError(t, err)
	require.Equal(t, []core.Goal{g}, goals)
}

func testEvent(t *testing.T, e *env) {
	p := e.project("event")
	ts := epoch().Add(-time.Hour)
	ev, err := e.db.RecordEvent(e.ctx, core.Event{ProjectID: p.ID, SessionID: "sess", Timestamp: ts, EventType: "test_run",
		Content: "ran the suite", Outcome: "success",
		Context: core.EventContext{Cwd: "/work/event", Files: []string{"a.go", "b.go"}, Task: "t1", Phase: "verify", Branch: "main"},
		Learned: "parallel subtests are fast", Surprise: 0.2, Confidence: 0.9})
	require.NoError(t, err)
	evs, err := e.db.Events(e.ctx, core.EventFilter{SessionID: "sess"})
	require.NoError(t, err)
	require.Equal(t, []core.Event{ev}, evs)
	assert.Equal(t, ts, evs[0].Timestamp)
	assert.Equal(t, []string{"a.go", "b.go"}, evs[0].Context.Files)
}

func testCodeEntity(t *testing.T, e *env) {
	p := e.project("code")
	m := e.remember(p, "func Add(a, b int) int { return a + b }", Vec(12), func(m *core.Memory) {
		m.MemoryType, m.CodeLanguage = core.TypeCodeSnippet, "go"
	})
	ce, err := e.db.CreateCodeEntity(e.ctx, core.CodeEntity{ProjectID: p.ID, MemoryID: m.ID, FilePath: "math.go", Name: "Add",
		EntityType: "function", Language: "go", Signature: "func Add(a, b int) int", Docstring: "Add adds.",
		SemanticHash: "h1", Complexity: 1, LineStart: 10, LineEnd: 12})
	require.NoError(t, err)
	got, err := e.db.CodeEntities(e.ctx, core.CodeFilter{FilePath: "math.go"})
	require.NoError(t, err)
	require.Equal(t, []core.CodeEntity{ce}, got)
	_, err = e.db.CreateCodeEntity(e.ctx, core.CodeEntity{ProjectID: p.ID, MemoryID: core.NewID(epoch()), FilePath: "x.go", Name: "X", EntityType: "function"})
	require.ErrorIs(t, err, core.ErrNotFound, "memory_id must exist")
}

func testTransaction(t *testing.T, e *env) {
	p := e.project("tx")
	var a, b core.Memory
	require.NoError(t, e.db.Update(e.ctx, func(tx *core.Tx) error {
		var err error
		if a, err = tx.Remember(e.ctx, core.Memory{ProjectID: p.ID, Content: "first", Embedding: Vec(13), EmbeddingModel: Model}); err != nil {
			return err
		}
		b, err = tx.Remember(e.ctx, core.Memory{ProjectID: p.ID, Content: "second", Embedding: Vec(14), EmbeddingModel: Model})
		return err
	}))
	for _, id := range []core.ID{a.ID, b.ID} {
		_, err := e.db.Memory(e.ctx, id)
		require.NoError(t, err)
	}
	before, err := e.db.Changes(e.ctx, 0, 1000, "")
	require.NoError(t, err)

	boom := errors.New("boom")
	var c core.Memory
	err = e.db.Update(e.ctx, func(tx *core.Tx) error {
		var err error
		if c, err = tx.Remember(e.ctx, core.Memory{ProjectID: p.ID, Content: "rolled back", Embedding: Vec(15), EmbeddingModel: Model}); err != nil {
			return err
		}
		if _, err := tx.RecordAccess(e.ctx, a.ID); err != nil {
			return err
		}
		if err := tx.DeleteMemory(e.ctx, b.ID); err != nil {
			return err
		}
		if _, err := tx.CreateTask(e.ctx, core.Task{ProjectID: p.ID, Title: "rolled back"}); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	_, err = e.db.Memory(e.ctx, c.ID)
	require.ErrorIs(t, err, core.ErrNotFound, "insert rolled back")
	got, err := e.db.Memory(e.ctx, a.ID)
	require.NoError(t, err)
	assert.Zero(t, got.AccessCount, "access rolled back")
	_, err = e.db.Memory(e.ctx, b.ID)
	require.NoError(t, err, "delete rolled back")
	tasks, err := e.db.Tasks(e.ctx, core.TaskFilter{ProjectID: p.ID})
	require.NoError(t, err)
	assert.Empty(t, tasks)
	after, err := e.db.Changes(e.ctx, 0, 1000, "")
	require.NoError(t, err)
	assert.Equal(t, before, after, "change log rolled back")
	// The sequence continues without a gap after a rollback.
	d := e.remember(p, "after rollback", Vec(16), nil)
	cs, err := e.db.Changes(e.ctx, after[len(after)-1].Pos, 10, "")
	require.NoError(t, err)
	require.Len(t, cs, 1)
	assert.Equal(t, d.ID, cs[0].EntityID)
	assert.Equal(t, after[len(after)-1].Seq+1, cs[0].Seq)
}

// testRewriteInOneTransaction: a memory written several times in one
// transaction (a sync batch that applies a put and later edits of it) ends
// as its last write: in its row, in the keyword postings, and in the BM25
// statistics of every project it passed through.
func testRewriteInOneTransaction(t *testing.T, e *env) {
	p1, p2 := e.project("rw1"), e.project("rw2")
	moved := e.remember(p1, "seed words here", Vec(31), nil)
	resident := e.remember(p2, "resident note", Vec(32), nil)
	fresh := moved
	fresh.ID = core.NewID(e.clock.Now())
	put := func(w core.WriteTx, m core.Memory, project core.ID, content string, v []float32) error {
		m.ProjectID, m.Content, m.Embedding = project, content, v
		return w.PutMemory(e.ctx, m)
	}
	require.NoError(t, e.b.Update(e.ctx, func(w core.WriteTx) error {
		return errors.Join(
			put(w, moved, p2.ID, "alpha alpha bravo", Vec(33)),
			put(w, moved, p1.ID, "charlie delta echo foxtrot", Vec(34)),
			put(w, fresh, p2.ID, "golf", Vec(35)),
			put(w, fresh, p2.ID, "hotel india", Vec(36)),
			put(w, fresh, p2.ID, "juliet", Vec(37)))
	}))

	got, err := e.db.Memory(e.ctx, moved.ID)
	require.NoError(t, err)
	assert.Equal(t, p1.ID, got.ProjectID)
	assert.Equal(t, "charlie delta echo foxtrot", got.Content)
	assert.Equal(t, Vec(34), got.Embedding)
	got, err = e.db.Memory(e.ctx, fresh.ID)
	require.NoError(t, err)
	assert.Equal(t, "juliet", got.Content)

	length := func(ss ...string) int64 {
		n := 0
		for _, s := range ss {
			n += len(core.Tokenize(s))
		}
		return int64(n)
	}
	for _, tc := range []struct {
		project core.ID
		terms   []string
		docs    int64
		total   int64
		df      map[string]int64
		found   []core.ID
	}{
		{p1.ID, []string{"seed", "alpha", "charlie"}, 1, length("charlie delta echo foxtrot"),
			map[string]int64{"charlie": 1}, []core.ID{moved.ID}},
		{p2.ID, []string{"alpha", "golf", "hotel", "juliet", "resident"}, 2, length("juliet", "resident note"),
			map[string]int64{"juliet": 1, "resident": 1}, []core.ID{fresh.ID, resident.ID}},
	} {
		var res core.KeywordResult
		require.NoError(t, e.b.View(e.ctx, func(r core.ReadTx) error {
			var err error
			res, err = r.KeywordLeg(e.ctx, core.KeywordLeg{Terms: tc.terms, Limit: 10, Filter: core.MemoryFilter{ProjectID: tc.project}})
			return err
		}))
		assert.Equal(t, tc.docs, res.Stats.Docs, "documents in %s", tc.project)
		assert.Equal(t, tc.total, res.Stats.TotalLen, "total length in %s", tc.project)
		df := map[string]int64{}
		for term, n := range res.Stats.DF {
			if n != 0 { // a store may leave out terms no document holds
				df[term] = n
			}
		}
		assert.Equal(t, tc.df, df, "document frequencies in %s", tc.project)
		assert.ElementsMatch(t, tc.found, candidateIDs(res.Candidates), "keyword candidates in %s", tc.project)
	}
	var vec []core.Candidate
	require.NoError(t, e.b.View(e.ctx, func(r core.ReadTx) error {
		var err error
		vec, err = r.VectorLeg(e.ctx, core.VectorLeg{Vector: Vec(33), K: 5, Filter: core.MemoryFilter{ProjectID: p2.ID}, Exact: true})
		return err
	}))
	assert.ElementsMatch(t, []core.ID{fresh.ID, resident.ID}, candidateIDs(vec), "vector candidates in rw2")
}

func candidateIDs(cs []core.Candidate) []core.ID {
	out := make([]core.ID, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func testName(t *testing.T, e *env) {
	n, ok := e.b.(core.Namer)
	require.True(t, ok, "store must implement core.Namer")
	assert.NotEmpty(t, n.Name())
}

func testTransitionTable(t *testing.T, e *env) {
	p := e.project("transitions")
	// The legal transitions, written out here rather than read from core,
	// so a change to the state machine must change this table too.
	legal := map[[2]core.State]bool{
		{core.StateUnconsolidated, core.StateConsolidating}: true,
		{core.StateUnconsolidated, core.StateArchived}:      true,
		{core.StateUnconsolidated, core.StateSuperseded}:    true,
		{core.StateConsolidating, core.StateConsolidated}:   true,
		{core.StateConsolidating, core.StateUnconsolidated}: true,
		{core.StateConsolidating, core.StateSuperseded}:     true,
		{core.StateConsolidated, core.StateLabile}:          true,
		{core.StateConsolidated, core.StateArchived}:        true,
		{core.StateConsolidated, core.StateSuperseded}:      true,
		{core.StateLabile, core.StateReconsolidating}:       true,
		{core.StateLabile, core.StateConsolidated}:          true,
		{core.StateLabile, core.StateSuperseded}:            true,
		{core.StateReconsolidating, core.StateConsolidated}: true,
		{core.StateReconsolidating, core.StateSuperseded}:   true,
		{core.StateArchived, core.StateConsolidated}:        true,
		{core.StateArchived, core.StateSuperseded}:          true,
	}
	survivor := e.remember(p, "survivor", Vec(17), nil)
	seed := uint64(1000)
	for _, from := range core.States() {
		for _, to := range append(core.States(), "Consolidated", "", "bogus") {
			seed++
			m := e.toState(p, fmt.Sprintf("%s to %s", from, to), seed, from)
			got, err := e.db.SetState(e.ctx, m.ID, to, survivor.ID)
			if legal[[2]core.State{from, to}] {
				require.NoError(t, err, "%s -> %s", from, to)
				assert.Equal(t, to, got.State)
				continue
			}
			require.ErrorIs(t, err, core.ErrInvalid, "%s -> %q must fail", from, to)
			if to.Valid() {
				require.ErrorIs(t, err, core.ErrInvalidTransition)
				assert.Contains(t, err.Error(), string(from))
				assert.Contains(t, err.Error(), string(to))
			}
			stored, err := e.db.Memory(e.ctx, m.ID)
			require.NoError(t, err)
			assert.Equal(t, from, stored.State, "a refused transition leaves the state alone")
		}
	}
	_, err := e.db.SetState(e.ctx, survivor.ID, core.StateSuperseded, "")
	require.ErrorIs(t, err, core.ErrInvalid, "superseded needs superseded_by")
	_, err = e.db.SetState(e.ctx, survivor.ID, core.StateSuperseded, core.NewID(epoch()))
	require.ErrorIs(t, err, core.ErrNotFound, "superseded_by must exist")
}

func testBadInput(t *testing.T, e *env) {
	p := e.project("bad")
	good := func() core.Memory {
		return core.Memory{ProjectID: p.ID, Content: "fine", Embedding: Vec(18), EmbeddingModel: Model}
	}
	nan := func(i int, x float32) func(*core.Memory) { return func(m *core.Memory) { m.Embedding[i] = x } }
	inf := float32(1)
	for range 200 {
		inf *= 10 // float32 overflows to +Inf
	}
	manyTags := make([]string, 10_000)
	for i := range manyTags {
		manyTags[i] = fmt.Sprintf("t%d", i)
	}
	cases := []struct {
		name  string
		mod   func(*core.Memory)
		field string
		is    error
	}{
		{"dim0", func(m *core.Memory) { m.Embedding = []float32{} }, "embedding", core.ErrDimMismatch},
		{"dim1", func(m *core.Memory) { m.Embedding = []float32{1} }, "embedding", core.ErrDimMismatch},
		{"dim767", func(m *core.Memory) { m.Embedding = m.Embedding[:767] }, "embedding", core.ErrDimMismatch},
		{"dim769", func(m *core.Memory) { m.Embedding = append(m.Embedding, 0.1) }, "embedding", core.ErrDimMismatch},
		{"nil embedding", func(m *core.Memory) { m.Embedding = nil }, "embedding", core.ErrDimMismatch},
		{"NaN", nan(3, float32(math.NaN())), "embedding", core.ErrInvalid},
		{"+Inf", nan(4, inf), "embedding", core.ErrInvalid},
		{"-Inf", nan(5, -inf), "embedding", core.ErrInvalid},
		{"zero vector", func(m *core.Memory) { m.Embedding = make([]float32, Dim) }, "embedding", core.ErrInvalid},
		{"wrong model", func(m *core.Memory) { m.EmbeddingModel = "other-model" }, "embedding_model", core.ErrDimMismatch},
		{"empty content", func(m *core.Memory) { m.Content = "" }, "content", core.ErrInvalid},
		{"whitespace content", func(m *core.Memory) { m.Content = " \t\n" }, "content", core.ErrInvalid},
		{"huge content", func(m *core.Memory) { m.Content = strings.Repeat("x", core.DefaultMaxContentBytes+1) }, "content", core.ErrInvalid},
		{"NUL content", func(m *core.Memory) { m.Content = "a\x00b" }, "content", core.ErrInvalid},
		{"invalid UTF-8", func(m *core.Memory) { m.Content = "a\xffb" }, "content", core.ErrInvalid},
		{"10K tags", func(m *core.Memory) { m.Tags = manyTags }, "tags", core.ErrInvalid},
		{"1MiB tag", func(m *core.Memory) { m.Tags = []string{strings.Repeat("t", 1<<20)} }, "tags[0]", core.ErrInvalid},
		{"65 tags", func(m *core.Memory) { m.Tags = manyTags[:65] }, "tags", core.ErrInvalid},
		{"comma tag", func(m *core.Memory) { m.Tags = []string{"a,b"} }, "tags[0]", core.ErrInvalid},
		{"NUL tag", func(m *core.Memory) { m.Tags = []string{"a\x00"} }, "tags[0]", core.ErrInvalid},
		{"unknown type", func(m *core.Memory) { m.MemoryType = "gossip" }, "memory_type", core.ErrInvalid},
		{"mis-cased type", func(m *core.Memory) { m.MemoryType = "Fact" }, "memory_type", core.ErrInvalid},
		{"unknown state", func(m *core.Memory) { m.State = "dreaming" }, "consolidation_state", core.ErrInvalid},
		{"mis-cased state", func(m *core.Memory) { m.State = "Consolidated" }, "consolidation_state", core.ErrInvalid},
		{"usefulness > 1", func(m *core.Memory) { m.Usefulness = 1.5 }, "usefulness", core.ErrInvalid},
		{"confidence < 0", func(m *core.Memory) { m.Usefulness, m.Confidence = 0.5, -0.1 }, "confidence", core.ErrInvalid},
		{"malformed ID", func(m *core.Memory) { m.ID = "not-a-uuid" }, "id", core.ErrInvalid},
		{"NUL domain", func(m *core.Memory) { m.Domain = "x\x00" }, "domain", core.ErrInvalid},
	}
	before, err := e.db.Changes(e.ctx, 0, 1000, "")
	require.NoError(t, err)
	for _, tc := range cases {
		m := good()
		tc.mod(&m)
		_, err := e.db.Remember(e.ctx, m)
		require.ErrorIs(t, err, tc.is, tc.name)
		var fe *core.FieldError
		require.ErrorAs(t, err, &fe, tc.name)
		assert.Equal(t, tc.field, fe.Field, tc.name)
	}
	ms, err := e.db.Memories(e.ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	assert.Empty(t, ms, "nothing invalid was stored")
	after, err := e.db.Changes(e.ctx, 0, 1000, "")
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing invalid reached the change log")

	_, err = e.db.Remember(e.ctx, core.Memory{ProjectID: core.NewID(epoch()), Content: "orphan", Embedding: Vec(19), EmbeddingModel: Model})
	require.ErrorIs(t, err, core.ErrNotFound, "unknown project")

	badProjects := []struct {
		name  string
		p     core.Project
		field string
	}{
		{"empty name", core.Project{Path: "/x", EmbeddingModel: Model}, "name"},
		{"empty path", core.Project{Name: "x", EmbeddingModel: Model}, "path"},
		{"no model", core.Project{Name: "x", Path: "/x"}, "embedding_model"},
		{"dim 0 ok, dim -1 bad", core.Project{Name: "x", Path: "/x", EmbeddingModel: Model, EmbeddingDim: -1}, "embedding_dim"},
		{"dim too big", core.Project{Name: "x", Path: "/x", EmbeddingModel: Model, EmbeddingDim: 16001}, "embedding_dim"},
		{"NUL path", core.Project{Name: "x", Path: "/x\x00", EmbeddingModel: Model}, "path"},
	}
	for _, tc := range badProjects {
		_, err := e.db.CreateProject(e.ctx, tc.p)
		var fe *core.FieldError
		require.ErrorAs(t, err, &fe, tc.name)
		assert.Equal(t, tc.field, fe.Field, tc.name)
	}
}

func testBatch(t *testing.T, e *env) {
	p := e.project("batch")
	ms := []core.Memory{
		// Tags with the characters of JSON, array literal and SQL syntax
		// (a store may pass a batch's tags through any of them).
		{ProjectID: p.ID, Content: "good one", Embedding: Vec(20), EmbeddingModel: Model,
			Tags: []string{`a"b`, `c\d`, `\`, `{x}`, `null`, `'q'`, `é`}},
		{ProjectID: p.ID, Content: "bad dim", Embedding: Vec(21)[:767], EmbeddingModel: Model},
		{ProjectID: p.ID, Content: "good two", Embedding: Vec(22), EmbeddingModel: Model, Tags: []string{"NULL", "[]"}},
		{ProjectID: p.ID, Content: "bad\x00nul", Embedding: Vec(23), EmbeddingModel: Model},
		{ProjectID: core.NewID(epoch()), Content: "no project", Embedding: Vec(24), EmbeddingModel: Model},
	}
	res, err := e.db.RememberBatch(e.ctx, ms)
	require.NoError(t, err)
	require.Len(t, res, len(ms))
	require.NoError(t, res[0].Err)
	require.ErrorIs(t, res[1].Err, core.ErrDimMismatch)
	require.NoError(t, res[2].Err)
	require.ErrorIs(t, res[3].Err, core.ErrInvalid)
	require.ErrorIs(t, res[4].Err, core.ErrNotFound)
	stored, err := e.db.Memories(e.ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	assert.ElementsMatch(t, []core.ID{res[0].ID, res[2].ID}, memIDs(stored))
	for _, m := range stored {
		want := []string{"null", "[]"}
		if m.ID == res[0].ID {
			want = []string{`a"b`, `c\d`, `\`, `{x}`, `null`, `'q'`, `é`}
		}
		assert.Equal(t, want, m.Tags, "memory %q", m.Content)
	}
}

func testSearchFilters(t *testing.T, e *env) {
	p := e.project("filters")
	other := e.project("filters-other")
	q := Vec(400)
	fact := e.remember(p, "fact about caching", Near(q, 1, 0.9), func(m *core.Memory) { m.Tags = []string{"perf"} })
	decision := e.remember(p, "decision about caching", Near(q, 2, 0.85), func(m *core.Memory) {
		m.MemoryType, m.Tags, m.Domain, m.SessionID = core.TypeDecision, []string{"perf", "arch"}, "design", "s9"
	})
	archived := e.toState(p, "archived caching note", 401, core.StateArchived)
	superseded := e.toState(p, "superseded caching note", 402, core.StateSuperseded)
	e.remember(other, "other project caching", Near(q, 3, 0.99), nil)

	search := func(mod func(*core.Query)) []core.ID {
		t.Helper()
		qq := core.Query{ProjectID: p.ID, Text: "caching", Embedding: q, K: 20}
		if mod != nil {
			mod(&qq)
		}
		hits, err := e.db.Search(e.ctx, qq)
		require.NoError(t, err)
		return ids(hits)
	}
	all := search(nil)
	assert.Contains(t, all, fact.ID)
	assert.Contains(t, all, decision.ID)
	assert.NotContains(t, all, archived.ID, "archived is excluded by default")
	assert.NotContains(t, all, superseded.ID, "superseded is excluded by default")
	assert.Len(t, all, 3, "the other project's memory never leaks in (3 = fact, decision, survivor)")
	assert.Equal(t, []core.ID{decision.ID}, search(func(q *core.Query) { q.Filter.Types = []core.MemoryType{core.TypeDecision} }))
	assert.Equal(t, []core.ID{decision.ID}, search(func(q *core.Query) { q.Filter.Tags = []string{"ARCH"} }))
	assert.ElementsMatch(t, []core.ID{fact.ID, decision.ID}, search(func(q *core.Query) { q.Filter.Tags = []string{"perf"} }))
	assert.Equal(t, []core.ID{decision.ID}, search(func(q *core.Query) { q.Filter.Domain = "design" }))
	assert.Equal(t, []core.ID{decision.ID}, search(func(q *core.Query) { q.Filter.SessionID = "s9" }))
	assert.Equal(t, []core.ID{archived.ID}, search(func(q *core.Query) { q.States = []core.State{core.StateArchived} }))
	assert.Empty(t, search(func(q *core.Query) { q.Filter.CreatedAfter = e.clock.Now().Add(time.Hour) }))
	assert.Len(t, search(func(q *core.Query) { q.Filter.CreatedBefore = e.clock.Now().Add(time.Hour) }), 3)
}

func testFilteredK(t *testing.T, e *env) {
	p := e.project("filtered-k")
	q := Vec(500)
	var batch []core.Memory
	for i := range 300 {
		m := core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("memory %d", i), Embedding: Vec(uint64(600 + i)), EmbeddingModel: Model}
		if i%10 == 0 {
			m.Tags = []string{"rare"}
		}
		batch = append(batch, m)
	}
	res, err := e.db.RememberBatch(e.ctx, batch)
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
	}
	for _, exact := range []bool{false, true} {
		hits, err := e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Embedding: q, K: 25, SemanticOnly: true, Threshold: -1,
			Filter: core.MemoryFilter{Tags: []string{"rare"}}, Exact: exact})
		require.NoError(t, err)
		assert.Len(t, hits, 25, "30 memories match the filter, so k=25 must be filled (exact=%v)", exact)
		for _, h := range hits {
			assert.Contains(t, h.Memory.Tags, "rare")
		}
	}
}

func testSearchLimits(t *testing.T, e *env) {
	p := e.project("limits")
	e.remember(p, "something", Vec(25), nil)
	for _, k := range []int{-1, core.DefaultMaxK + 1, 1 << 40} {
		_, err := e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Embedding: Vec(26), K: k})
		var fe *core.FieldError
		require.ErrorAs(t, err, &fe, "k=%d", k)
		assert.Equal(t, "k", fe.Field)
	}
	for _, text := range []string{`"unbalanced`, `a OR b NOT c`, `NEAR(a b, 3)`, `content:x`, `{a b}:c`, `^a*`, `a & b | !c <-> d`, `'; DROP TABLE memories; --`} {
		_, err := e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Text: text, Embedding: Vec(27), K: 5})
		require.NoError(t, err, "query text %q is literal", text)
	}
	_, err := e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Embedding: Vec(27)[:100], K: 5})
	require.ErrorIs(t, err, core.ErrDimMismatch)
	_, err = e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Embedding: Vec(27), K: 5, States: []core.State{"Labile"}})
	require.ErrorIs(t, err, core.ErrInvalid)
	_, err = e.db.Changes(e.ctx, 0, -1, "")
	require.ErrorIs(t, err, core.ErrInvalid)
}

func testChangeLog(t *testing.T, e *env) {
	p := e.project("changelog")
	m := e.remember(p, "logged", Vec(28), nil)
	_, err := e.db.RecordAccess(e.ctx, m.ID)
	require.NoError(t, err)
	_, err = e.db.SetState(e.ctx, m.ID, core.StateConsolidating, "")
	require.NoError(t, err)
	require.NoError(t, e.db.DeleteMemory(e.ctx, m.ID))
	cs, err := e.db.Changes(e.ctx, 0, 100, "")
	require.NoError(t, err)
	kinds := make([]core.Kind, len(cs))
	for i, c := range cs {
		kinds[i] = c.Kind
		assert.Equal(t, "dev-a", c.Device)
		assert.Equal(t, uint64(i+1), c.Seq, "gapless per-device sequence")
		assert.Equal(t, core.StatusApplied, c.Status)
		if i > 0 {
			assert.Greater(t, c.HLC, cs[i-1].HLC)
			assert.Greater(t, c.Pos, cs[i-1].Pos)
		}
	}
	assert.Equal(t, []core.Kind{core.KindProjectPut, core.KindMemoryPut, core.KindMemoryAccess, core.KindMemoryState, core.KindMemoryDelete}, kinds)
	assert.Equal(t, m.Embedding, cs[1].Vector, "the embedding travels beside the payload")
	// Cursor and exclusion.
	tail, err := e.db.Changes(e.ctx, cs[2].Pos, 100, "")
	require.NoError(t, err)
	assert.Equal(t, cs[3:], tail)
	none, err := e.db.Changes(e.ctx, 0, 100, "dev-a")
	require.NoError(t, err)
	assert.Empty(t, none)
}

// replicate applies every change of src (after pos 0) to dst.
func replicate(t *testing.T, ctx context.Context, src, dst *core.DB) []core.ApplyResult {
	t.Helper()
	cs, err := src.Changes(ctx, 0, core.DefaultMaxK, "")
	require.NoError(t, err)
	res, err := dst.ApplyChanges(ctx, cs)
	require.NoError(t, err)
	return res
}

// snapshot reads every memory of every project, for comparing replicas.
func snapshot(t *testing.T, ctx context.Context, db *core.DB) map[core.ID]core.Memory {
	t.Helper()
	out := map[core.ID]core.Memory{}
	ps, err := db.Projects(ctx)
	require.NoError(t, err)
	for _, p := range ps {
		ms, err := db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
		require.NoError(t, err)
		for _, m := range ms {
			out[m.ID] = m
		}
	}
	return out
}

func testApplyIdempotent(t *testing.T, e *env) {
	src := core.New(e.open(t), core.Config{Device: "edge-1", Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	p, err := src.CreateProject(e.ctx, core.Project{Name: "replicated", Path: "/r", EmbeddingModel: Model, EmbeddingDim: Dim})
	require.NoError(t, err)
	m, err := src.Remember(e.ctx, core.Memory{ProjectID: p.ID, Content: "replicated memory", Embedding: Vec(29), EmbeddingModel: Model, Tags: []string{"x"}})
	require.NoError(t, err)
	_, err = src.RecordAccess(e.ctx, m.ID, m.ID)
	require.NoError(t, err)
	_, err = src.SetState(e.ctx, m.ID, core.StateConsolidating, "")
	require.NoError(t, err)
	_, err = src.CreateTask(e.ctx, core.Task{ProjectID: p.ID, Title: "replicated task", Priority: 3})
	require.NoError(t, err)

	first := replicate(t, e.ctx, src, e.db)
	for _, r := range first {
		require.Equal(t, core.StatusApplied, r.Status, "%+v", r)
		require.False(t, r.Duplicate)
	}
	want := snapshot(t, e.ctx, src)
	require.Equal(t, want, snapshot(t, e.ctx, e.db))
	second := replicate(t, e.ctx, src, e.db)
	for _, r := range second {
		require.True(t, r.Duplicate, "a replay is a duplicate: %+v", r)
	}
	require.Equal(t, want, snapshot(t, e.ctx, e.db), "applying twice has no effect")
	got, err := e.db.Memory(e.ctx, m.ID)
	require.NoError(t, err)
	assert.EqualValues(t, 2, got.AccessCount)
	tasks, err := e.db.Tasks(e.ctx, core.TaskFilter{ProjectID: p.ID})
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	// Applied remote changes are visible to other pullers, and keep their origin.
	cs, err := e.db.Changes(e.ctx, 0, 100, "dev-a")
	require.NoError(t, err)
	require.Len(t, cs, len(first))
	assert.Equal(t, "edge-1", cs[0].Device)
}

func testConverge(t *testing.T, e *env) {
	// Two edges write offline (with a conflicting edit, access bumps on
	// both, and a delete), then exchange changes in opposite orders.
	ctx := e.ctx
	a := core.New(e.open(t), core.Config{Device: "edge-a", Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	b := core.New(e.open(t), core.Config{Device: "edge-b", Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	pa, err := a.CreateProject(ctx, core.Project{Name: "shared", Path: "/shared", EmbeddingModel: Model, EmbeddingDim: Dim})
	require.NoError(t, err)
	shared, err := a.Remember(ctx, core.Memory{ProjectID: pa.ID, Content: "shared v1", Embedding: Vec(30), EmbeddingModel: Model})
	require.NoError(t, err)
	doomed, err := a.Remember(ctx, core.Memory{ProjectID: pa.ID, Content: "doomed", Embedding: Vec(31), EmbeddingModel: Model})
	require.NoError(t, err)
	replicate(t, ctx, a, b) // b starts from a's state
	bSeen := len(mustChanges(t, ctx, a))

	e.clock.Advance(time.Second)
	_, err = a.UpdateMemory(ctx, shared.ID, func(m *core.Memory) error { m.Content = "shared edited on a"; return nil })
	require.NoError(t, err)
	_, err = a.RecordAccess(ctx, shared.ID)
	require.NoError(t, err)
	e.clock.Advance(time.Second)
	_, err = b.UpdateMemory(ctx, shared.ID, func(m *core.Memory) error { m.Content = "shared edited on b, later"; return nil })
	require.NoError(t, err)
	_, err = b.RecordAccess(ctx, shared.ID, shared.ID)
	require.NoError(t, err)
	_, err = b.RecordAccess(ctx, doomed.ID)
	require.NoError(t, err)
	require.NoError(t, a.DeleteMemory(ctx, doomed.ID))
	_, err = b.Remember(ctx, core.Memory{ProjectID: pa.ID, Content: "new on b", Embedding: Vec(32), EmbeddingModel: Model})
	require.NoError(t, err)

	// The store under test is the server: a then b.
	for _, src := range []*core.DB{a, b} {
		cs := mustChanges(t, ctx, src)
		_, err := e.db.ApplyChanges(ctx, cs)
		require.NoError(t, err)
	}
	// Each edge pulls what the other made.
	aNew := mustChanges(t, ctx, a)[bSeen:]
	_, err = b.ApplyChanges(ctx, aNew)
	require.NoError(t, err)
	var bOwn []core.Change
	for _, c := range mustChanges(t, ctx, b) {
		if c.Device == "edge-b" {
			bOwn = append(bOwn, c)
		}
	}
	_, err = a.ApplyChanges(ctx, bOwn)
	require.NoError(t, err)

	server, sa, sb := snapshot(t, ctx, e.db), snapshot(t, ctx, a), snapshot(t, ctx, b)
	require.Equal(t, sa, sb, "edges converge")
	require.Equal(t, sa, server, "server converges with the edges")
	got := server[shared.ID]
	assert.Equal(t, "shared edited on b, later", got.Content, "last writer wins by HLC")
	assert.EqualValues(t, 3, got.AccessCount, "access counters sum across devices")
	_, alive := server[doomed.ID]
	assert.False(t, alive, "the delete wins over b's access")
	assert.Len(t, server, 2)
}

func testApplyBatch(t *testing.T, e *env) {
	// One ApplyChanges call whose later changes depend on its earlier ones:
	// a survivor created in the batch, a memory accessed, superseded and
	// its successor deleted, a put after a delete. Applied as one batch it
	// must give the same statuses and rows as applied one change at a time.
	ctx := e.ctx
	src := core.New(e.open(t), core.Config{Device: "edge-batch", Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	p, err := src.CreateProject(ctx, core.Project{Name: "batch", Path: "/batch", EmbeddingModel: Model, EmbeddingDim: Dim})
	require.NoError(t, err)
	keep, err := src.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "survivor", Embedding: Vec(40), EmbeddingModel: Model})
	require.NoError(t, err)
	dup, err := src.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "duplicate", Embedding: Vec(41), EmbeddingModel: Model})
	require.NoError(t, err)
	gone, err := src.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "gone", Embedding: Vec(42), EmbeddingModel: Model})
	require.NoError(t, err)
	_, err = src.RecordAccess(ctx, dup.ID, dup.ID, keep.ID)
	require.NoError(t, err)
	e.clock.Advance(time.Second)
	_, err = src.UpdateMemory(ctx, keep.ID, func(m *core.Memory) error { m.Content = "survivor, edited"; return nil })
	require.NoError(t, err)
	_, err = src.SetState(ctx, dup.ID, core.StateSuperseded, keep.ID)
	require.NoError(t, err)
	require.NoError(t, src.DeleteMemory(ctx, gone.ID))
	cs := mustChanges(t, ctx, src)
	// A replayed put of the deleted memory, as a late duplicate from
	// another device would arrive: the tombstone wins inside the batch.
	late := cs[3] // gone's put
	require.Equal(t, gone.ID, late.EntityID)
	late.Device, late.Seq, late.HLC = "edge-late", 1, late.HLC+1
	cs = append(cs, late)

	batch, err := e.db.ApplyChanges(ctx, cs)
	require.NoError(t, err)
	single := core.New(e.open(t), core.Config{Device: "single", Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	var one []core.ApplyResult
	for _, c := range cs {
		r, err := single.ApplyChanges(ctx, []core.Change{c})
		require.NoError(t, err)
		one = append(one, r...)
	}
	require.Equal(t, one, batch, "statuses of one batch and of one change at a time")
	for _, r := range batch {
		assert.NotEqual(t, core.StatusRejected, r.Status, "%s/%d: %s", r.Device, r.Seq, r.Reason)
	}
	assert.Equal(t, core.StatusSuperseded, batch[len(batch)-1].Status, "a put after the delete is superseded")
	got, want := snapshot(t, ctx, e.db), snapshot(t, ctx, src)
	require.Equal(t, want, got, "the batch replica equals the source")
	require.Equal(t, snapshot(t, ctx, single), got, "and the one-at-a-time replica")
	assert.Equal(t, core.StateSuperseded, got[dup.ID].State)
	assert.Equal(t, keep.ID, got[dup.ID].SupersededBy)
	assert.EqualValues(t, 2, got[dup.ID].AccessCount)
}

// testChangeVectors checks that every logged change reads back the vector
// it carried, whatever happened to its memory afterwards: re-embedded
// (also only a zero's sign), edited with the same vector, deleted,
// replaced by a remote change, and changes whose memory row was never
// written with their vector (a rejected put, a put overtaken in its own
// transaction). A store that keeps a put's vector once, in the memory
// row, must copy it out before that row changes.
func testChangeVectors(t *testing.T, e *env) {
	ctx := e.ctx
	p := e.project("change-vectors")
	want := map[string][]float32{} // device/seq → the vector the change carried
	key := func(c core.Change) string { return fmt.Sprintf("%s/%d", c.Device, c.Seq) }
	lastPut := func(db *core.DB, id core.ID) string {
		t.Helper()
		k := ""
		for _, c := range mustChanges(t, ctx, db) {
			if c.EntityID == id && c.Kind == core.KindMemoryPut {
				k = key(c)
			}
		}
		require.NotEmpty(t, k, "no put of %s", id)
		return k
	}
	a := e.remember(p, "alpha", Vec(40), nil)
	want[lastPut(e.db, a.ID)] = Vec(40)
	res, err := e.db.RememberBatch(ctx, []core.Memory{
		{ProjectID: p.ID, Content: "beta", Embedding: Vec(41), EmbeddingModel: Model},
		{ProjectID: p.ID, Content: "gamma", Embedding: Vec(42), EmbeddingModel: Model},
	})
	require.NoError(t, err)
	b, g := res[0].ID, res[1].ID
	want[lastPut(e.db, b)], want[lastPut(e.db, g)] = Vec(41), Vec(42)
	signed := Vec(43)
	signed[0] = float32(math.Copysign(0, -1))
	z := e.remember(p, "signed zero", signed, nil)
	want[lastPut(e.db, z.ID)] = signed

	_, err = e.db.UpdateMemory(ctx, a.ID, func(m *core.Memory) error { m.Embedding = Vec(44); return nil })
	require.NoError(t, err)
	want[lastPut(e.db, a.ID)] = Vec(44)
	_, err = e.db.UpdateMemory(ctx, g, func(m *core.Memory) error { m.Content = "gamma two"; return nil })
	require.NoError(t, err)
	want[lastPut(e.db, g)] = Vec(42)
	unsigned := slices.Clone(signed)
	unsigned[0] = 0
	_, err = e.db.UpdateMemory(ctx, z.ID, func(m *core.Memory) error { m.Embedding = unsigned; return nil })
	require.NoError(t, err)
	want[lastPut(e.db, z.ID)] = unsigned
	require.NoError(t, e.db.DeleteMemory(ctx, b))

	// Remote puts, applied as a sync server applies them, then overtaken
	// by a newer remote put with another vector.
	src := core.New(e.open(t), core.Config{Device: "edge-v", Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	replicate(t, ctx, e.db, src)
	r, err := src.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "remote", Embedding: Vec(45), EmbeddingModel: Model})
	require.NoError(t, err)
	seen := len(mustChanges(t, ctx, src))
	_, err = e.db.ApplyChanges(ctx, mustChanges(t, ctx, src)[seen-1:])
	require.NoError(t, err)
	want[lastPut(src, r.ID)] = Vec(45)
	e.clock.Advance(time.Second)
	_, err = src.UpdateMemory(ctx, r.ID, func(m *core.Memory) error { m.Embedding = Vec(46); return nil })
	require.NoError(t, err)
	_, err = e.db.ApplyChanges(ctx, mustChanges(t, ctx, src)[seen:])
	require.NoError(t, err)
	want[lastPut(src, r.ID)] = Vec(46)

	// A put logged rejected (its row is not written), and one whose row is
	// written with another vector in the same transaction, after a read.
	cur, err := e.db.Memory(ctx, a.ID)
	require.NoError(t, err)
	other := core.NewID(e.clock.Now())
	require.NoError(t, e.b.Update(ctx, func(w core.WriteTx) error {
		for i, c := range []*core.Change{
			{Device: "edge-w", Seq: 1, HLC: 1, Kind: core.KindMemoryPut, ProjectID: p.ID, EntityID: other, Payload: []byte(`{}`), Vector: Vec(47), Status: core.StatusRejected, Reason: "test"},
			{Device: "edge-w", Seq: 2, HLC: 2, Kind: core.KindMemoryPut, ProjectID: p.ID, EntityID: other, Payload: []byte(`{}`), Vector: Vec(48), Status: core.StatusApplied},
		} {
			require.NoError(t, w.AppendChange(ctx, c))
			want[key(*c)] = c.Vector
			if i == 0 {
				continue
			}
			cs, err := w.Changes(ctx, 0, core.DefaultMaxK, "")
			require.NoError(t, err)
			require.Equal(t, Vec(48), cs[len(cs)-1].Vector, "read in the appending transaction")
			m := cur
			m.ID, m.Embedding = other, Vec(49)
			require.NoError(t, w.PutMemory(ctx, m))
		}
		return nil
	}))

	check := func(cs []core.Change) {
		t.Helper()
		n := 0
		for _, c := range cs {
			if v, ok := want[key(c)]; ok {
				require.Equal(t, v, c.Vector, "change %s", key(c))
				require.Equal(t, math.Signbit(float64(v[0])), math.Signbit(float64(c.Vector[0])), "change %s: the sign of zero", key(c))
				n++
			} else {
				require.Nil(t, c.Vector, "change %s (%s)", key(c), c.Kind)
			}
		}
		require.Len(t, want, n, "every put was read")
	}
	check(mustChanges(t, ctx, e.db))
	// And after the memories go.
	require.NoError(t, e.db.DeleteMemory(ctx, a.ID))
	require.NoError(t, e.db.DeleteMemory(ctx, r.ID))
	check(mustChanges(t, ctx, e.db))
}

func mustChanges(t *testing.T, ctx context.Context, db *core.DB) []core.Change {
	t.Helper()
	cs, err := db.Changes(ctx, 0, core.DefaultMaxK, "")
	require.NoError(t, err)
	return cs
}

// testApplyAfter: Tx.ApplyChangesAfter with a device's true last seq
// applies as ApplyChanges; with a wrong one, a store that checks the
// assumption (core.SeqExpecter) fails the transaction with ErrSeqGap and
// records nothing, and any other store reads the true last seq. Either
// way no seq is skipped or recorded twice.
func testApplyAfter(t *testing.T, e *env) {
	const dev = "edge-after"
	src := core.New(e.open(t), core.Config{Device: dev, Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	p, err := src.CreateProject(e.ctx, core.Project{Name: "after", Path: "/after", EmbeddingModel: Model, EmbeddingDim: Dim})
	require.NoError(t, err)
	var ids []core.ID
	for i := range 5 {
		m, err := src.Remember(e.ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("after %d", i), Embedding: Vec(uint64(60 + i)), EmbeddingModel: Model})
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	cs := mustChanges(t, e.ctx, src) // seqs 1 (the project) to 6
	require.Len(t, cs, 6)
	_, err = e.db.ApplyChanges(e.ctx, cs[:3])
	require.NoError(t, err)
	after := func(cs []core.Change, last uint64) ([]core.ApplyResult, error) {
		var res []core.ApplyResult
		err := e.db.Update(e.ctx, func(tx *core.Tx) error {
			var err error
			res, err = tx.ApplyChangesAfter(e.ctx, cs, dev, last)
			return err
		})
		return res, err
	}
	lastSeq := func() uint64 {
		var n uint64
		require.NoError(t, e.b.View(e.ctx, func(r core.ReadTx) error {
			var err error
			n, err = r.LastSeq(e.ctx, dev)
			return err
		}))
		return n
	}
	_, checks := e.b.(core.ConcurrentWriter)
	tests := []struct {
		name string
		last uint64 // assumed; the truth is 3
	}{
		{"assumed too high", 4},
		{"assumed too low", 1},
	}
	for _, tc := range tests {
		res, err := after(cs[3:5], tc.last)
		if err != nil {
			require.ErrorIs(t, err, core.ErrSeqGap, tc.name)
			assert.EqualValues(t, 3, lastSeq(), "%s: nothing recorded", tc.name)
			_, err = e.db.Memory(e.ctx, ids[2])
			require.ErrorIs(t, err, core.ErrNotFound, tc.name)
			continue
		}
		// A store that does not check reads the truth.
		assert.False(t, checks && tc.last == 4, "%s: a concurrent store must check the assumption", tc.name)
		require.Len(t, res, 2, tc.name)
		for _, r := range res {
			assert.Equal(t, core.StatusApplied, r.Status, "%s: %+v", tc.name, r)
		}
		_, err = e.db.Memory(e.ctx, ids[2])
		require.NoError(t, err, tc.name)
		break // applied: the true last seq is 5 now
	}
	truth := lastSeq()
	res, err := after(cs[truth:], truth)
	require.NoError(t, err)
	for _, r := range res {
		assert.Equal(t, core.StatusApplied, r.Status, "%+v", r)
		assert.False(t, r.Duplicate)
	}
	assert.EqualValues(t, 6, lastSeq())
	seqs := map[uint64]int{}
	for _, c := range mustChanges(t, e.ctx, e.db) {
		if c.Device == dev {
			seqs[c.Seq]++
		}
	}
	for seq := uint64(1); seq <= 6; seq++ {
		assert.Equal(t, 1, seqs[seq], "seq %d recorded once", seq)
	}
	for _, id := range ids {
		_, err := e.db.Memory(e.ctx, id)
		require.NoError(t, err)
	}
}

func testRejectAndGap(t *testing.T, e *env) {
	src := core.New(e.open(t), core.Config{Device: "edge-r", Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	p, err := src.CreateProject(e.ctx, core.Project{Name: "rejects", Path: "/rej", EmbeddingModel: Model, EmbeddingDim: Dim})
	require.NoError(t, err)
	m, err := src.Remember(e.ctx, core.Memory{ProjectID: p.ID, Content: "ok", Embedding: Vec(33), EmbeddingModel: Model})
	require.NoError(t, err)
	cs := mustChanges(t, e.ctx, src)
	require.Len(t, cs, 2)

	// A poison change (NUL byte, as an old client might send) and an
	// illegal transition are rejected with reasons and do not block what
	// follows.
	poison := cs[1]
	poison.Seq, poison.EntityID = 3, core.NewID(epoch())
	poison.Payload = []byte(strings.Replace(string(poison.Payload), `"ok"`, `"bad\u0000"`, 1))
	illegal := core.Change{Device: "edge-r", Seq: 4, HLC: cs[1].HLC + 10, Kind: core.KindMemoryState, ProjectID: p.ID, EntityID: m.ID,
		Payload: []byte(`{"from":"unconsolidated","to":"labile","at_ms":1}`)}
	skew := core.Change{Device: "edge-r", Seq: 5, HLC: core.MakeHLC(e.clock.Now().Add(time.Hour).UnixMilli(), 0), Kind: core.KindMemoryState,
		ProjectID: p.ID, EntityID: m.ID, Payload: []byte(`{"from":"unconsolidated","to":"consolidating","at_ms":1}`)}
	fine := core.Change{Device: "edge-r", Seq: 6, HLC: cs[1].HLC + 20, Kind: core.KindMemoryState, ProjectID: p.ID, EntityID: m.ID,
		Payload: []byte(`{"from":"unconsolidated","to":"consolidating","at_ms":1}`)}
	res, err := e.db.ApplyChanges(e.ctx, []core.Change{cs[0], cs[1], poison, illegal, skew, fine})
	require.NoError(t, err)
	require.Len(t, res, 6)
	st := []core.Status{core.StatusApplied, core.StatusApplied, core.StatusRejected, core.StatusRejected, core.StatusRejected, core.StatusApplied}
	for i, r := range res {
		assert.Equal(t, st[i], r.Status, "change %d: %+v", i, r)
	}
	assert.Contains(t, res[2].Reason, "content")
	assert.Contains(t, res[3].Reason, "labile")
	got, err := e.db.Memory(e.ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, core.StateConsolidating, got.State)
	_, err = e.db.Memory(e.ctx, poison.EntityID)
	require.ErrorIs(t, err, core.ErrNotFound)
	rejected := 0
	for _, c := range mustChanges(t, e.ctx, e.db) {
		if c.Status == core.StatusRejected {
			rejected++
			assert.NotEmpty(t, c.Reason)
		}
	}
	assert.Equal(t, 3, rejected, "rejections are recorded, visible, with reasons")

	gap := fine
	gap.Seq = 8
	_, err = e.db.ApplyChanges(e.ctx, []core.Change{gap})
	require.ErrorIs(t, err, core.ErrSeqGap)
}

func testCancel(t *testing.T, e *env) {
	p := e.project("cancel")
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err := e.db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "never", Embedding: Vec(34), EmbeddingModel: Model})
	require.ErrorIs(t, err, context.Canceled)
	_, err = e.db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: Vec(34)})
	require.ErrorIs(t, err, context.Canceled)
	ms, err := e.db.Memories(e.ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	assert.Empty(t, ms)
	// Cancelling inside a transaction rolls it back.
	ctx, cancel = context.WithCancel(e.ctx)
	err = e.db.Update(ctx, func(tx *core.Tx) error {
		if _, err := tx.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "never either", Embedding: Vec(35), EmbeddingModel: Model}); err != nil {
			return err
		}
		cancel()
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	ms, err = e.db.Memories(e.ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	assert.Empty(t, ms)
	require.NoError(t, e.db.Ping(e.ctx), "the store stays usable")
}

func testHammer(t *testing.T, e *env) {
	p := e.project("hammer")
	const shared = 4
	var targets []core.ID
	for i := range shared {
		targets = append(targets, e.remember(p, fmt.Sprintf("shared %d", i), Vec(uint64(40+i)), nil).ID)
	}
	const workers, iters = 8, 25
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, workers*iters)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range iters {
				var err error
				switch i % 3 {
				case 0:
					_, err = e.db.Remember(e.ctx, core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("w%d i%d", w, i),
						Embedding: Vec(uint64(1000 + w*iters + i)), EmbeddingModel: Model})
				case 1:
					_, err = e.db.RecordAccess(e.ctx, targets[(w+i)%shared])
				case 2:
					_, err = e.db.Search(e.ctx, core.Query{ProjectID: p.ID, Text: "shared", Embedding: Vec(uint64(w)), K: 5})
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var total int64
	ms, err := e.db.Memories(e.ctx, core.MemoryFilter{IDs: targets})
	require.NoError(t, err)
	for _, m := range ms {
		total += m.AccessCount
	}
	perWorker := func(kind int) int { return (iters - kind + 2) / 3 } // how many i in [0, iters) have i%3 == kind
	assert.EqualValues(t, workers*perWorker(1), total, "no lost access updates")
	all, err := e.db.Memories(e.ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	assert.Len(t, all, shared+workers*perWorker(0))
	cs := mustChanges(t, e.ctx, e.db)
	for i, c := range cs {
		require.Equal(t, uint64(i+1), c.Seq, "no gaps under concurrency")
	}
}

func testMeta(t *testing.T, e *env) {
	require.NoError(t, e.db.Update(e.ctx, func(tx *core.Tx) error {
		for _, kv := range [][2]string{{"sync/cursor/a", "10"}, {"sync/cursor/b", "20"}, {"device", "edge-x"}} {
			if err := tx.PutMeta(e.ctx, kv[0], kv[1]); err != nil {
				return err
			}
		}
		return tx.PutMeta(e.ctx, "sync/cursor/a", "11")
	}))
	boom := errors.New("boom")
	require.ErrorIs(t, e.db.Update(e.ctx, func(tx *core.Tx) error {
		if err := tx.PutMeta(e.ctx, "sync/cursor/b", "99"); err != nil {
			return err
		}
		if err := tx.DeleteMeta(e.ctx, "device"); err != nil {
			return err
		}
		return boom
	}), boom)
	require.NoError(t, e.db.View(e.ctx, func(tx *core.Tx) error {
		v, err := tx.Meta(e.ctx, "device")
		require.NoError(t, err, "delete rolled back")
		assert.Equal(t, "edge-x", v)
		_, err = tx.Meta(e.ctx, "missing")
		require.ErrorIs(t, err, core.ErrNotFound)
		got, err := tx.MetaPrefix(e.ctx, "sync/cursor/")
		require.NoError(t, err)
		assert.Equal(t, []core.MetaEntry{{Key: "sync/cursor/a", Value: "11"}, {Key: "sync/cursor/b", Value: "20"}}, got)
		require.ErrorIs(t, tx.PutMeta(e.ctx, "x", "y"), core.ErrInvalid, "read-only transaction")
		return nil
	}))
	require.NoError(t, e.db.Update(e.ctx, func(tx *core.Tx) error { return tx.DeleteMeta(e.ctx, "never-set") }))
}

// vecDim is Vec for another dimension.
func vecDim(seed uint64, dim int) []float32 {
	v := Vec(seed)
	out := make([]float32, dim)
	for i := range out {
		out[i] = v[i%len(v)] + float32(i/len(v))*v[(i*7)%len(v)]
	}
	var n float64
	for _, x := range out {
		n += float64(x) * float64(x)
	}
	s := 1 / math.Sqrt(n)
	for i := range out {
		out[i] = float32(float64(out[i]) * s)
	}
	return out
}

// testReembedSwap moves a project to an embedder of another model and
// dimension in one transaction: a failed swap changes nothing, a
// successful one changes the project and every memory together, and a
// replica that did not re-embed rejects the swap's changes.
func testReembedSwap(t *testing.T, e *env) {
	ctx := e.ctx
	const newModel, newDim = "storetest-model-v2", 48
	p := e.project("reembed")
	other := e.project("reembed-other")
	ms := []core.Memory{
		e.remember(p, "alpha database indexes", Vec(501), func(m *core.Memory) { m.Tags = []string{"db"} }),
		e.remember(p, "beta banana bread", Vec(502), nil),
		e.remember(p, "gamma garden notes", Vec(503), nil),
	}
	keep := e.remember(other, "other project keeps its embedder", Vec(504), nil)
	e.clock.Advance(time.Second)
	_, err := e.db.RecordAccess(ctx, ms[0].ID)
	require.NoError(t, err)
	_, err = e.db.SetState(ctx, ms[1].ID, core.StateConsolidating, "")
	require.NoError(t, err)
	replica := core.New(e.open(t), core.Config{Device: "replica", Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
	replicate(t, ctx, e.db, replica)

	pBefore, err := e.db.Project(ctx, p.ID)
	require.NoError(t, err)
	before := snapshot(t, ctx, e.db)
	changesBefore := len(mustChanges(t, ctx, e.db))
	newVecs := map[core.ID][]float32{}
	for i, m := range ms {
		newVecs[m.ID] = vecDim(uint64(600+i), newDim)
	}
	vectors := func(skip core.ID) func([]core.Memory) ([][]float32, error) {
		return func(page []core.Memory) ([][]float32, error) {
			out := make([][]float32, len(page))
			for i, m := range page {
				if m.ID != skip {
					out[i] = newVecs[m.ID]
				}
			}
			return out, nil
		}
	}
	e.clock.Advance(time.Second)

	// Failed swaps: the last memory has no vector (after the project and
	// two memories were written), or vectors fails. Nothing changes.
	_, err = e.db.SwapEmbedder(ctx, p.ID, newModel, newDim, vectors(ms[2].ID))
	require.ErrorIs(t, err, core.ErrDimMismatch)
	boom := errors.New("boom")
	_, err = e.db.SwapEmbedder(ctx, p.ID, newModel, newDim, func([]core.Memory) ([][]float32, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	_, err = e.db.SwapEmbedder(ctx, p.ID, newModel, 0, vectors(""))
	require.ErrorIs(t, err, core.ErrInvalid)
	got, err := e.db.Project(ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, pBefore, got, "a failed swap leaves the project as it was")
	assert.Equal(t, before, snapshot(t, ctx, e.db), "a failed swap leaves every memory as it was")
	assert.Len(t, mustChanges(t, ctx, e.db), changesBefore, "a failed swap records no change")
	hits, err := e.db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: Vec(502), K: 3, SemanticOnly: true})
	require.NoError(t, err)
	require.NotEmpty(t, hits)
	assert.Equal(t, ms[1].ID, hits[0].Memory.ID, "search still works on the old embedder")

	// The swap.
	n, err := e.db.SwapEmbedder(ctx, p.ID, newModel, newDim, vectors(""))
	require.NoError(t, err)
	assert.Equal(t, len(ms), n)
	pAfter, err := e.db.Project(ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, newModel, pAfter.EmbeddingModel)
	assert.Equal(t, newDim, pAfter.EmbeddingDim)
	assert.True(t, pAfter.Version.After(pBefore.Version))
	assert.Equal(t, pBefore.Name, pAfter.Name)
	assert.Equal(t, pBefore.Path, pAfter.Path)
	assert.Equal(t, pBefore.CreatedAt, pAfter.CreatedAt)
	for _, m := range ms {
		got, err := e.db.Memory(ctx, m.ID)
		require.NoError(t, err)
		old := before[m.ID]
		assert.Equal(t, newVecs[m.ID], got.Embedding, "%s: the new vector, bit for bit", m.Content)
		assert.Equal(t, newModel, got.EmbeddingModel)
		assert.True(t, got.Version.After(old.Version))
		old.Embedding, old.EmbeddingModel, old.Version = got.Embedding, got.EmbeddingModel, got.Version
		assert.Equal(t, old, got, "%s: nothing else changes", m.Content)
	}
	cs := mustChanges(t, ctx, e.db)
	require.Len(t, cs, changesBefore+1+len(ms))
	swapped := cs[changesBefore:]
	assert.Equal(t, core.KindProjectPut, swapped[0].Kind, "the project put comes first")
	for _, c := range swapped[1:] {
		assert.Equal(t, core.KindMemoryPut, c.Kind)
		assert.Len(t, c.Vector, newDim)
	}

	for _, exact := range []bool{true, false} {
		hits, err := e.db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: newVecs[ms[1].ID], K: 3, SemanticOnly: true, Exact: exact})
		require.NoError(t, err)
		require.NotEmpty(t, hits, "exact=%v", exact)
		assert.Equal(t, ms[1].ID, hits[0].Memory.ID, "exact=%v", exact)
		assert.InDelta(t, 1, hits[0].Semantic, 1e-6)
	}
	hits, err = e.db.Search(ctx, core.Query{ProjectID: p.ID, Text: "alpha database", Embedding: newVecs[ms[0].ID], K: 3})
	require.NoError(t, err)
	require.NotEmpty(t, hits)
	assert.Equal(t, ms[0].ID, hits[0].Memory.ID)
	assert.Greater(t, hits[0].Keyword, 0.0, "the keyword leg is unaffected")
	_, err = e.db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: Vec(501), K: 3, SemanticOnly: true})
	require.ErrorIs(t, err, core.ErrDimMismatch, "a query of the old dimension")
	_, err = e.db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "old dim", Embedding: Vec(505), EmbeddingModel: Model})
	require.ErrorIs(t, err, core.ErrDimMismatch)
	_, err = e.db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "old model", Embedding: vecDim(506, newDim), EmbeddingModel: Model})
	require.ErrorIs(t, err, core.ErrDimMismatch)
	fresh, err := e.db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "new embedder", Embedding: vecDim(507, newDim), EmbeddingModel: newModel})
	require.NoError(t, err)
	hits, err = e.db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: vecDim(507, newDim), K: 1, SemanticOnly: true})
	require.NoError(t, err)
	require.Len(t, hits, 1)
	assert.Equal(t, fresh.ID, hits[0].Memory.ID)
	hits, err = e.db.Search(ctx, core.Query{ProjectID: other.ID, Embedding: Vec(504), K: 1, SemanticOnly: true})
	require.NoError(t, err)
	require.Len(t, hits, 1)
	assert.Equal(t, keep.ID, hits[0].Memory.ID, "another project keeps its embedder")

	// A replica that did not re-embed rejects the swap, with a reason, and
	// keeps its own state.
	replicaBefore := snapshot(t, ctx, replica)
	res, err := replica.ApplyChanges(ctx, swapped)
	require.NoError(t, err)
	require.Len(t, res, len(swapped))
	for _, r := range res {
		assert.Equal(t, core.StatusRejected, r.Status, "%+v", r)
	}
	assert.Contains(t, res[0].Reason, "re-embed")
	assert.Equal(t, replicaBefore, snapshot(t, ctx, replica))
	rp, err := replica.Project(ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, Model, rp.EmbeddingModel)
	assert.Equal(t, Dim, rp.EmbeddingDim)
}

// testReembedStaged runs core.Reembed with the built-in embedder: staged
// in batches through the store's metadata, interrupted and resumed, with
// a memory edited and one created while staging, then swapped.
func testReembedStaged(t *testing.T, e *env) {
	ctx := e.ctx
	p := e.project("restage")
	var ms []core.Memory
	for i := range 7 {
		ms = append(ms, e.remember(p, fmt.Sprintf("note %d about topic %d", i, i*i), Vec(uint64(700+i)), nil))
	}
	slices.SortFunc(ms, func(a, b core.Memory) int { return strings.Compare(string(a.ID), string(b.ID)) }) // staging order
	emb := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 32})

	// Interrupted after the first batch of 3.
	cctx, cancel := context.WithCancel(ctx)
	var calls []int
	_, err := core.Reembed(cctx, e.db, p.ID, emb, core.ReembedOptions{Batch: 3, Progress: func(done, total int) {
		calls = append(calls, done)
		assert.Equal(t, len(ms), total)
		if done == 3 {
			cancel()
		}
	}})
	cancel()
	require.ErrorIs(t, err, core.ErrReembedInterrupted)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []int{0, 3}, calls)
	require.NoError(t, e.db.View(ctx, func(tx *core.Tx) error {
		staged, err := tx.MetaPrefix(ctx, "reembed/"+string(p.ID)+"/")
		require.NoError(t, err)
		assert.Len(t, staged, 4, "three vectors and the progress key")
		return nil
	}))
	got, err := e.db.Project(ctx, p.ID)
	require.NoError(t, err)
	assert.Equal(t, Dim, got.EmbeddingDim, "staging does not change the project")

	// Resumed: an already staged memory is edited and a memory is created
	// meanwhile; both are caught.
	e.clock.Advance(time.Second)
	edited, err := e.db.UpdateMemory(ctx, ms[0].ID, func(m *core.Memory) error { m.Content = "first note, edited"; return nil })
	require.NoError(t, err)
	var added core.Memory
	rep, err := core.Reembed(ctx, e.db, p.ID, emb, core.ReembedOptions{Batch: 3, Progress: func(done, total int) {
		if done == 3 {
			hits, err := e.db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: ms[4].Embedding, K: 1, SemanticOnly: true})
			require.NoError(t, err, "search works during staging")
			require.Len(t, hits, 1)
			assert.Equal(t, ms[4].ID, hits[0].Memory.ID)
		}
		if done == 6 && added.ID == "" {
			added = e.remember(p, "added while staging", Vec(799), nil)
		}
	}})
	require.NoError(t, err)
	assert.True(t, rep.Resumed)
	assert.Equal(t, len(ms)+1, rep.Memories)
	assert.Equal(t, 1, rep.Restaged, "the edited memory")
	assert.Equal(t, 0, rep.Inline)
	assert.Equal(t, len(ms)-3+1+1, rep.Embedded, "the rest, the added one and the edited one")
	assert.Equal(t, Model, rep.FromModel)
	assert.Equal(t, core.HashEmbedderModel, rep.ToModel)
	assert.Equal(t, 32, rep.ToDim)

	all, err := e.db.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
	require.NoError(t, err)
	require.Len(t, all, len(ms)+1)
	for _, m := range all {
		assert.Equal(t, emb.EmbedOne(m.Content), m.Embedding, "%s: embedded from its current content", m.Content)
		assert.Equal(t, core.HashEmbedderModel, m.EmbeddingModel)
	}
	assert.Equal(t, "first note, edited", edited.Content)
	require.NoError(t, e.db.View(ctx, func(tx *core.Tx) error {
		staged, err := tx.MetaPrefix(ctx, "reembed/")
		require.NoError(t, err)
		assert.Empty(t, staged, "the swap deletes the staged data")
		return nil
	}))
	hits, err := e.db.Search(ctx, core.Query{ProjectID: p.ID, Embedding: emb.EmbedOne("added while staging"), K: 1, SemanticOnly: true})
	require.NoError(t, err)
	require.Len(t, hits, 1)
	assert.Equal(t, added.ID, hits[0].Memory.ID)

	rep, err = core.Reembed(ctx, e.db, p.ID, emb, core.ReembedOptions{})
	require.NoError(t, err)
	assert.True(t, rep.Unchanged, "already on the target")
}
