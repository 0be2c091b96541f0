package sqlitevec_test

import (
	"context"
	"fmt"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/sqlitevec"
)

func ExampleOpen() {
	ctx := context.Background()
	store, err := sqlitevec.Open(ctx, sqlitevec.Config{}) // in memory; set Path for a file
	if err != nil {
		panic(err)
	}
	defer store.Close()

	db := core.New(store, core.Config{Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{})})
	p, err := db.CreateProject(ctx, core.Project{Name: "demo", Path: "/demo"})
	if err != nil {
		panic(err)
	}
	for _, text := range []string{"the build uses wazero", "coffee is brewed at nine", "sqlite runs in wasm"} {
		if _, err := db.Remember(ctx, core.Memory{ProjectID: p.ID, Content: text}); err != nil {
			panic(err)
		}
	}
	hits, err := db.Search(ctx, core.Query{ProjectID: p.ID, Text: "wasm sqlite", K: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(hits[0].Memory.Content)
	// Output: sqlite runs in wasm
}
