package core_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

// Example opens a DB over the in-memory store with the offline hash
// embedder, remembers two things and searches them.
func Example() {
	ctx := context.Background()
	db := core.New(memstore.New(), core.Config{Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{})})
	defer db.Close()

	// The project takes the embedder's model and dimension.
	p, err := db.CreateProject(ctx, core.Project{Name: "demo", Path: "/src/demo"})
	if err != nil {
		panic(err)
	}
	for _, content := range []string{
		"Use connection pooling to cut database latency",
		"The team lunch is on Fridays",
	} {
		if _, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: content, Tags: []string{"Demo"}}); err != nil {
			panic(err)
		}
	}

	hits, err := db.Search(ctx, core.Query{ProjectID: p.ID, Text: "database latency", K: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(hits), p.EmbeddingModel, p.EmbeddingDim)
	fmt.Println(hits[0].Memory.Content)
	fmt.Println(hits[0].Memory.State, hits[0].Memory.Tags)
	// Output:
	// 1 athena-hash-v1 768
	// Use connection pooling to cut database latency
	// unconsolidated [demo]
}

func ExampleCheckTransition() {
	fmt.Println(core.CheckTransition(core.StateConsolidated, core.StateLabile))
	err := core.CheckTransition(core.StateSuperseded, core.StateConsolidated)
	fmt.Println(err)
	fmt.Println(errors.Is(err, core.ErrInvalidTransition), errors.Is(err, core.ErrInvalid))
	err = core.CheckTransition(core.StateLabile, "Consolidated") // states are case-sensitive
	fmt.Println(errors.Is(err, core.ErrInvalidTransition), errors.Is(err, core.ErrInvalid))
	fmt.Println(core.StateLabile.Next())
	// Output:
	// <nil>
	// consolidation_state: transition superseded -> consolidated is not allowed
	// true true
	// false true
	// [reconsolidating consolidated superseded]
}

func ExampleClock() {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := core.NewClock(core.ClockConfig{Now: func() time.Time { return now }})
	fmt.Println(c.Now())
	fmt.Println(c.Now()) // same millisecond: the logical counter ticks
	now = now.Add(-time.Second)
	fmt.Println(c.Now()) // the physical clock went back: the HLC does not

	// A remote timestamp within the max skew moves the clock past it...
	fmt.Println(c.Observe(core.MakeHLC(now.UnixMilli()+5000, 7)), c.Now())
	// ...one too far ahead is refused.
	err := c.Observe(core.MakeHLC(now.Add(time.Hour).UnixMilli(), 0))
	var skew *core.SkewError
	fmt.Println(errors.As(err, &skew), errors.Is(err, core.ErrInvalid), skew.Max)
	// Output:
	// 1767323045000.0
	// 1767323045000.1
	// 1767323045000.2
	// <nil> 1767323049000.8
	// true true 1m0s
}

func ExampleNewID() {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	id := core.NewID(at)
	fmt.Println(len(id), "version", string(id[14]), id.Time())
	fmt.Println(core.NewID(at) < core.NewID(at.Add(time.Millisecond)))

	// DeriveID is a pure function of its inputs.
	fmt.Println(core.DeriveID(at, "a", "b") == core.DeriveID(at, "a", "b"), core.DeriveID(at, "ab") == core.DeriveID(at, "a", "b"))

	parsed, err := core.ParseID("0190F3A2-1B2C-7D5E-8F60-718293A4B5C6")
	fmt.Println(parsed, err)
	_, err = core.ParseID("not-a-uuid")
	fmt.Println(err)
	// Output:
	// 36 version 7 2026-01-02 03:04:05.678 +0000 UTC
	// true
	// true false
	// 0190f3a2-1b2c-7d5e-8f60-718293a4b5c6 <nil>
	// id: must be a 36-character UUID, got 10 bytes
}

func ExampleMergeMemory() {
	id, project := core.ID("0190f3a2-1b2c-7d5e-8f60-718293a4b5c6"), core.ID("0190f3a2-0000-7000-8000-000000000001")
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	change := func(dev string, ms int64, kind core.Kind, payload any) *core.Change {
		raw, err := core.EncodePayload(payload)
		if err != nil {
			panic(err)
		}
		return &core.Change{Device: dev, HLC: core.MakeHLC(base+ms, 0), Kind: kind, ProjectID: project, EntityID: id, Payload: raw}
	}

	// Device a creates the memory; devices a and b each count accesses.
	eff := core.MergeMemory(nil, false, change("a", 0, core.KindMemoryPut,
		core.Memory{Content: "cache results", MemoryType: core.TypeFact, Usefulness: 0.5, Confidence: 1}))
	m := eff.Memory
	for _, c := range []*core.Change{
		change("a", 1, core.KindMemoryAccess, core.AccessPayload{Count: 2, AtMS: base + 1}),
		change("b", 2, core.KindMemoryAccess, core.AccessPayload{Count: 3, AtMS: base + 2}),
		change("a", 3, core.KindMemoryAccess, core.AccessPayload{Count: 1, AtMS: base}), // stale: a is already at 2
	} {
		eff = core.MergeMemory(m, false, c)
		fmt.Println(eff.Status)
		if eff.Memory != nil {
			m = eff.Memory
		}
	}
	fmt.Println(m.AccessCount, m.QualityScore == core.Quality(0.5, 1, 5))

	// An illegal state change is rejected; a delete is final.
	fmt.Println(core.MergeMemory(m, false, change("b", 4, core.KindMemoryState,
		core.StatePayload{From: core.StateUnconsolidated, To: core.StateLabile})).Status)
	fmt.Println(core.MergeMemory(m, false, change("b", 5, core.KindMemoryDelete, struct{}{})).Delete)
	fmt.Println(core.MergeMemory(m, true, change("a", 9, core.KindMemoryPut, core.Memory{Content: "again"})).Status)
	// Output:
	// applied
	// applied
	// superseded
	// 5 true
	// rejected
	// true
	// superseded
}
