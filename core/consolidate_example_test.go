package core_test

import (
	"context"
	"fmt"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

// PlanConsolidation is pure: the same memories give the same plan on every
// device. Here two memories say the same thing; the older one survives.
func ExamplePlanConsolidation() {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := core.Project{ID: core.ProjectIDFor("demo"), Name: "demo", EmbeddingModel: "m", EmbeddingDim: 2}
	mem := func(name, content string, age time.Duration) core.Memory {
		at := now.Add(-age)
		return core.Memory{ID: core.DeriveID(at, name), ProjectID: p.ID, Content: content, Embedding: []float32{1, 0},
			MemoryType: core.TypeFact, State: core.StateConsolidated, Usefulness: 0.5, Confidence: 1, CreatedAt: at, UpdatedAt: now}
	}
	old := mem("old", "Use pgx for Postgres.", 2*time.Hour)
	dup := mem("dup", "use PGX for postgres", time.Hour)
	plan := core.PlanConsolidation(core.ConsolidationInput{Project: p, Memories: []core.Memory{dup, old}, Now: now}, core.ConsolidationOptions{})
	for _, a := range plan.Actions {
		fmt.Println(a.Rule, a.MemoryIDs[0] == old.ID, a.Merged[0].ID == dup.ID, a.Merged[0].Match)
	}
	// Output:
	// merge true true exact
}

// Consolidate plans and applies through a DB; every write lands in the
// change log, so consolidation syncs like any other write. A second run
// right after the first has nothing to do.
func ExampleConsolidate() {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := now.Add(-2 * time.Hour)
	db := core.New(memstore.New(), core.Config{
		Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{}),
		Clock:    core.NewClock(core.ClockConfig{Now: func() time.Time { return clock }}),
	})
	p, _ := db.CreateProject(ctx, core.Project{Name: "demo", Path: "/demo"})
	_, _ = db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "Deploys happen on Tuesdays."})
	_, _ = db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "deploys happen on tuesdays", Tags: []string{"ops"}})
	clock = now

	r, err := core.Consolidate(ctx, db, p.ID, core.ConsolidationOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("merged:", len(r.Merged), "superseded:", len(r.Merged[0].Superseded), "tags:", r.Merged[0].Tags)
	fmt.Println("promoted:", len(r.Promoted))
	r, _ = core.Consolidate(ctx, db, p.ID, core.ConsolidationOptions{})
	fmt.Println("second run empty:", r.Empty())
	// Output:
	// merged: 1 superseded: 1 tags: [ops]
	// promoted: 1
	// second run empty: true
}
