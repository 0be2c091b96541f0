package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	"github.com/athena-edge/athena-edge/sqlitevec"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The consolidation issue's "done when": the same input set, loaded into
// memstore, sqlitevec and pgadapter, gives identical consolidation outputs
// (IDs included) and identical memories; and two edges that consolidate the
// same synced memories independently converge once they exchange changes.

const (
	consDim   = 32
	consModel = "cons-tests-model"
)

var consNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// consClock is a settable clock, safe for concurrent use.
type consClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *consClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *consClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// consEmbedder embeds a text as consVec of its FNV-1a hash.
type consEmbedder struct{}

func (consEmbedder) Model() string { return consModel }
func (consEmbedder) Dim() int      { return consDim }
func (consEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, s := range texts {
		h := fnv.New64a()
		h.Write([]byte(s))
		out[i] = consVec(h.Sum64())
	}
	return out, ctx.Err()
}

func consUnit(v []float64) []float32 {
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

func consVec(seed uint64) []float32 {
	r := mrand.New(mrand.NewPCG(seed, 0xc1))
	v := make([]float64, consDim)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return consUnit(v)
}

func consNear(base []float32, seed uint64, sim float64) []float32 {
	noise := consVec(seed)
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
	return consUnit(out)
}

// consSpec is one memory of the input set, with the history the loader
// replays: remembered at Created, accessed Access times at Accessed, then
// moved along the state machine to State.
type consSpec struct {
	m        core.Memory
	access   int
	accessed time.Time
}

func consProject() core.Project {
	return core.Project{Name: "cons", Path: "/work/cons", EmbeddingModel: consModel, EmbeddingDim: consDim, ConsolidationInterval: time.Hour}
}

// consInput is a seeded input set that exercises every rule: exact and near
// duplicates (some blocked by version numbers), labile memories in and out
// of their window, old unconsolidated ones, useless old ones, and episodes.
func consInput(seed uint64) ([]consSpec, []core.Event) {
	r := mrand.New(mrand.NewPCG(seed, 3))
	pid := core.ProjectIDFor("cons")
	var specs []consSpec
	topics := []string{"Use pgx v5 for PostgreSQL access", "Deploys happen on Tuesdays", "The cache warms up in ten minutes",
		"Release v1.2.%d ships the sync loop", "Tests must not sleep", "Prefer table-driven tests"}
	for i := range 60 {
		k := r.IntN(len(topics))
		content := topics[k]
		if k == 3 {
			content = fmt.Sprintf(content, r.IntN(3))
		}
		vec := consVec(uint64(k))
		switch r.IntN(4) {
		case 1:
			content += ", indeed"
			vec = consNear(vec, r.Uint64(), 0.96+0.03*r.Float64())
		case 2:
			content = fmt.Sprintf("Unrelated note %d about %s", i, []string{"caching", "deploys", "tests"}[r.IntN(3)])
			vec = consVec(r.Uint64())
		}
		created := consNow.Add(-time.Duration(r.IntN(60*24)) * time.Hour)
		m := core.Memory{ID: core.DeriveID(created, "cons", fmt.Sprint(seed, i)), ProjectID: pid, Content: content,
			Embedding: vec, EmbeddingModel: consModel, MemoryType: []core.MemoryType{core.TypeFact, core.TypeFact, core.TypeDecision}[r.IntN(3)],
			Tags: []string{fmt.Sprint("t", r.IntN(5))}, Usefulness: []float64{0.05, 0.3, 0.5, 0.9}[r.IntN(4)], Confidence: 1,
			CreatedAt: created, State: core.StateUnconsolidated}
		s := consSpec{m: m}
		switch r.IntN(5) {
		case 0:
			s.m.State = core.StateConsolidated
		case 1:
			s.m.State = core.StateLabile
			s.access, s.accessed = 1+r.IntN(3), consNow.Add(-time.Duration(r.IntN(120))*time.Minute)
		case 2:
			s.m.State = core.StateArchived
		}
		if s.access == 0 && r.IntN(3) == 0 {
			s.access, s.accessed = 1+r.IntN(8), created.Add(time.Hour)
		}
		if s.accessed.After(consNow) {
			s.accessed = consNow.Add(-time.Minute)
		}
		specs = append(specs, s)
	}
	var evs []core.Event
	for i := range 25 {
		at := consNow.Add(-time.Duration(10*60-i*20-r.IntN(15)) * time.Minute)
		e := core.Event{ID: core.DeriveID(at, "cons-ev", fmt.Sprint(seed, i)), ProjectID: pid, SessionID: fmt.Sprint("s", r.IntN(3)),
			Timestamp: at, EventType: []string{"action", "error", "decision"}[r.IntN(3)],
			Content: fmt.Sprintf("Step %d of the work. Details follow.", i), Confidence: r.Float64(),
			Context: core.EventContext{Files: []string{fmt.Sprint("f", r.IntN(4), ".go")}}}
		if r.IntN(2) == 0 {
			e.Learned = fmt.Sprint("lesson ", i)
		}
		if r.IntN(3) > 0 {
			e.Embedding, e.EmbeddingModel = consVec(uint64(100+r.IntN(3))), consModel
		}
		evs = append(evs, e)
	}
	return specs, evs
}

// consLoad replays the input set through db's API with the clock set to
// each write's time, then sets the clock to consNow.
func consLoad(t *testing.T, db *core.DB, clock *consClock, specs []consSpec, evs []core.Event) {
	t.Helper()
	ctx := t.Context()
	clock.Set(consNow.Add(-400 * 24 * time.Hour))
	_, err := db.CreateProject(ctx, consProject())
	require.NoError(t, err)
	specs = slices.Clone(specs)
	slices.SortFunc(specs, func(a, b consSpec) int { return a.m.CreatedAt.Compare(b.m.CreatedAt) })
	for _, s := range specs {
		clock.Set(s.m.CreatedAt)
		put := s.m.Clone()
		put.State = ""
		_, err := db.Remember(ctx, put)
		require.NoError(t, err)
		for range s.access {
			clock.Set(s.accessed)
			_, err := db.RecordAccess(ctx, s.m.ID)
			require.NoError(t, err)
		}
		path := map[core.State][]core.State{
			core.StateConsolidated: {core.StateConsolidating, core.StateConsolidated},
			core.StateLabile:       {core.StateConsolidating, core.StateConsolidated, core.StateLabile},
			core.StateArchived:     {core.StateArchived},
		}[s.m.State]
		clock.Set(s.m.CreatedAt.Add(time.Minute))
		for _, st := range path {
			_, err := db.SetState(ctx, s.m.ID, st, "")
			require.NoError(t, err)
		}
	}
	for _, e := range evs {
		clock.Set(e.Timestamp)
		_, err := db.RecordEvent(ctx, e)
		require.NoError(t, err)
	}
	clock.Set(consNow)
}

func consDB(b core.Backend, device string, clock *consClock) *core.DB {
	return core.New(b, core.Config{Device: device, Embedder: consEmbedder{}, Clock: core.NewClock(core.ClockConfig{Now: clock.Now})})
}

// consOutcome is everything consolidation touched, normalized for
// comparison across stores (UTC times, empty rather than nil slices and
// maps), as JSON.
func consOutcome(t *testing.T, db *core.DB) string {
	t.Helper()
	ms, err := db.Memories(t.Context(), core.MemoryFilter{ProjectID: core.ProjectIDFor("cons")})
	require.NoError(t, err)
	for i := range ms {
		m := &ms[i]
		if m.Tags == nil {
			m.Tags = []string{}
		}
		if len(m.AccessByDevice) == 0 {
			m.AccessByDevice = nil
		}
		for _, tp := range []*time.Time{&m.CreatedAt, &m.UpdatedAt, &m.LastAccessed, &m.LastRetrieved, &m.ConsolidatedAt} {
			*tp = tp.UTC()
		}
	}
	evs, err := db.Events(t.Context(), core.EventFilter{ProjectID: core.ProjectIDFor("cons")})
	require.NoError(t, err)
	for i := range evs {
		e := &evs[i]
		e.Timestamp, e.CreatedAt = e.Timestamp.UTC(), e.CreatedAt.UTC()
	}
	b, err := json.MarshalIndent(struct {
		Memories []core.Memory
		Events   []core.Event
	}{ms, evs}, "", " ")
	require.NoError(t, err)
	return string(b)
}

func consJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	require.NoError(t, err)
	return string(b)
}

// TestConsolidationSameOnEveryStore loads the same input set into each store
// and requires identical reports and identical resulting memories and
// events.
func TestConsolidationSameOnEveryStore(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			specs, evs := consInput(seed)
			type result struct{ report, outcome, second string }
			results := map[string]result{}
			var mu sync.Mutex
			t.Run("stores", func(t *testing.T) {
				for _, st := range allStores() {
					t.Run(st.name, func(t *testing.T) {
						t.Parallel()
						clock := &consClock{}
						db := consDB(st.open(t), "dev", clock)
						consLoad(t, db, clock, specs, evs)
						rep, err := core.Consolidate(t.Context(), db, core.ProjectIDFor("cons"), core.ConsolidationOptions{BatchSize: 50})
						require.NoError(t, err)
						require.False(t, rep.Empty())
						second, err := core.Consolidate(t.Context(), db, core.ProjectIDFor("cons"), core.ConsolidationOptions{})
						require.NoError(t, err)
						assert.True(t, second.Empty(), "second run: %+v", second)
						mu.Lock()
						results[st.name] = result{consJSON(t, rep), consOutcome(t, db), consJSON(t, second)}
						mu.Unlock()
					})
				}
			})
			ref, ok := results["memstore"]
			require.True(t, ok)
			for name, r := range results {
				assert.Equal(t, ref.report, r.report, "%s report differs from memstore's", name)
				assert.Equal(t, ref.outcome, r.outcome, "%s memories differ from memstore's", name)
			}
		})
	}
}

// TestConsolidationEdgesConverge: two sqlitevec edges with the same synced
// memories consolidate independently (at slightly different times), then
// exchange their change logs and end with the same memories and events; a
// further run on either changes nothing.
func TestConsolidationEdgesConverge(t *testing.T) {
	t.Parallel()
	open := allStores()[1].open
	specs, evs := consInput(7)
	clock := &consClock{}
	origin := consDB(memstore.New(), "origin", clock)
	consLoad(t, origin, clock, specs, evs)
	a, b := consDB(open(t), "edge-a", clock), consDB(open(t), "edge-b", clock)
	consSync(t, origin, a)
	consSync(t, origin, b)
	pid := core.ProjectIDFor("cons")

	ra, err := core.Consolidate(t.Context(), a, pid, core.ConsolidationOptions{})
	require.NoError(t, err)
	clock.Set(consNow.Add(2 * time.Minute))
	rb, err := core.Consolidate(t.Context(), b, pid, core.ConsolidationOptions{})
	require.NoError(t, err)
	ra.At, rb.At = time.Time{}, time.Time{}
	assert.Equal(t, consJSON(t, ra), consJSON(t, rb), "same memories, same decisions")

	consSync(t, a, b)
	consSync(t, b, a)
	assert.Equal(t, consOutcome(t, a), consOutcome(t, b))
	for _, db := range []*core.DB{a, b} {
		r, err := core.Consolidate(t.Context(), db, pid, core.ConsolidationOptions{})
		require.NoError(t, err)
		assert.True(t, r.Empty(), "%s: %+v", db.Device(), r)
	}
	// And the origin, once it hears from both, agrees too.
	consSync(t, a, origin)
	consSync(t, b, origin)
	assert.Equal(t, consOutcome(t, a), consOutcome(t, origin))
}

// consSync pulls every change of src that dst has not recorded.
func consSync(t *testing.T, src, dst *core.DB) {
	t.Helper()
	var after int64
	for {
		cs, err := src.Changes(t.Context(), after, 500, dst.Device())
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

// BenchmarkConsolidateSqlitevec consolidates n memories of dimension 768
// (5% exact and 5% near duplicates, everything old enough to be promoted
// and rescored) on an in-memory sqlitevec store, end to end: reading,
// planning and writing every change. 100K runs only with
// ATHENA_BENCH_CONSOLIDATE_100K=1.
func BenchmarkConsolidateSqlitevec(b *testing.B) {
	sizes := []int{10_000}
	if os.Getenv("ATHENA_BENCH_CONSOLIDATE_100K") == "1" {
		sizes = append(sizes, 100_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			const dim = 768
			ctx := b.Context()
			r := mrand.New(mrand.NewPCG(1, 1))
			vec := func(seed uint64) []float32 {
				rr := mrand.New(mrand.NewPCG(seed, 9))
				v := make([]float64, dim)
				for i := range v {
					v[i] = rr.NormFloat64()
				}
				return consUnit(v)
			}
			ms := make([]core.Memory, 0, n)
			uniq := n - n/10
			for i := range uniq {
				ms = append(ms, core.Memory{Content: fmt.Sprintf("memory %d about topic %d", i, r.IntN(1000)), Embedding: vec(uint64(i))})
			}
			for i := range n / 10 {
				src := ms[r.IntN(uniq)]
				d := core.Memory{Content: src.Content, Embedding: src.Embedding}
				if i%2 == 1 {
					d.Content += ", again"
					noise := vec(uint64(n + i))
					mix := make([]float64, dim)
					for j := range mix {
						mix[j] = 0.98*float64(src.Embedding[j]) + 0.2*float64(noise[j])
					}
					d.Embedding = consUnit(mix)
				}
				ms = append(ms, d)
			}
			for b.Loop() {
				b.StopTimer()
				s, err := sqlitevec.Open(ctx, sqlitevec.Config{})
				require.NoError(b, err)
				clock := &consClock{t: consNow.Add(-48 * time.Hour)}
				db := core.New(s, core.Config{Device: "bench", Clock: core.NewClock(core.ClockConfig{Now: clock.Now})})
				p, err := db.CreateProject(ctx, core.Project{Name: "bench", Path: "/bench", EmbeddingModel: "m", EmbeddingDim: dim})
				require.NoError(b, err)
				for start := 0; start < len(ms); start += 1000 {
					batch := slices.Clone(ms[start:min(len(ms), start+1000)])
					for i := range batch {
						batch[i].ProjectID, batch[i].EmbeddingModel = p.ID, "m"
					}
					res, err := db.RememberBatch(ctx, batch)
					require.NoError(b, err)
					for _, r := range res {
						require.NoError(b, r.Err)
					}
				}
				clock.Set(consNow)
				b.StartTimer()
				rep, err := core.Consolidate(ctx, db, p.ID, core.ConsolidationOptions{})
				require.NoError(b, err)
				b.StopTimer()
				superseded := 0
				for _, m := range rep.Merged {
					superseded += len(m.Superseded)
				}
				b.ReportMetric(float64(superseded), "superseded")
				b.ReportMetric(float64(rep.Writes), "writes")
				require.NoError(b, s.Close())
				b.StartTimer()
			}
		})
	}
}
