package storetest

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/stretchr/testify/require"
)

// Dim is the embedding dimension the suite uses, the seed's 768.
const Dim = 768

// Model is the embedding model stamp the suite's projects use.
const Model = "storetest-model"

// FakeClock is a settable clock for tests. It is safe for concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a clock at t (truncated to milliseconds, UTC).
func NewFakeClock(t time.Time) *FakeClock {
	return &FakeClock{now: time.UnixMilli(t.UnixMilli()).UTC()}
}

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// epoch is the suite's fixed start time.
func epoch() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

type env struct {
	t     *testing.T
	open  func(*testing.T) core.Backend
	ctx   context.Context
	b     core.Backend
	db    *core.DB
	clock *FakeClock
}

func newEnv(t *testing.T, open func(*testing.T) core.Backend) *env {
	t.Helper()
	b := open(t)
	require.NotNil(t, b)
	clock := NewFakeClock(epoch())
	db := core.New(b, core.Config{Device: "dev-a", Clock: core.NewClock(core.ClockConfig{Now: clock.Now})})
	return &env{t: t, open: open, ctx: t.Context(), b: b, db: db, clock: clock}
}

// second returns a DB on the same backend under another device ID.
func (e *env) dbAs(device string) *core.DB {
	return core.New(e.b, core.Config{Device: device, Clock: core.NewClock(core.ClockConfig{Now: e.clock.Now})})
}

func (e *env) project(name string) core.Project {
	e.t.Helper()
	p, err := e.db.CreateProject(e.ctx, core.Project{Name: name, Path: "/work/" + name, EmbeddingModel: Model, EmbeddingDim: Dim})
	require.NoError(e.t, err)
	return p
}

func (e *env) remember(p core.Project, content string, v []float32, mod func(*core.Memory)) core.Memory {
	e.t.Helper()
	m := core.Memory{ProjectID: p.ID, Content: content, Embedding: v, EmbeddingModel: p.EmbeddingModel}
	if mod != nil {
		mod(&m)
	}
	got, err := e.db.Remember(e.ctx, m)
	require.NoError(e.t, err)
	return got
}

// Vec returns a deterministic unit vector for seed.
func Vec(seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	v := make([]float32, Dim)
	var n float64
	for i := range v {
		x := r.NormFloat64()
		v[i] = float32(x)
		n += x * x
	}
	s := 1 / math.Sqrt(n)
	for i := range v {
		v[i] = float32(float64(v[i]) * s)
	}
	return v
}

// Near returns a unit vector at roughly cosine sim to base (0 < sim < 1).
func Near(base []float32, seed uint64, sim float64) []float32 {
	noise := Vec(seed)
	out := make([]float32, len(base))
	var n float64
	w := math.Sqrt(1 - sim*sim)
	for i := range out {
		x := sim*float64(base[i]) + w*float64(noise[i])
		out[i] = float32(x)
		n += x * x
	}
	s := 1 / math.Sqrt(n)
	for i := range out {
		out[i] = float32(float64(out[i]) * s)
	}
	return out
}

func ids(hits []core.Hit) []core.ID {
	out := make([]core.ID, len(hits))
	for i, h := range hits {
		out[i] = h.Memory.ID
	}
	return out
}
