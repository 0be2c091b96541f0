package pgadapter_test

import (
	"context"
	"fmt"
	"os"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/pgadapter"
)

// ExampleNew opens the central store from the seed's environment variables
// and wraps it in core's DB. (No // Output: it needs a PostgreSQL server.)
func ExampleNew() {
	ctx := context.Background()
	cfg, err := pgadapter.ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Println(err)
		return
	}
	store, err := pgadapter.New(ctx, cfg)
	if err != nil {
		fmt.Println("postgres unavailable:", err)
		return
	}
	defer store.Close()
	db := core.New(store, core.Config{Device: "server"})
	p, err := db.CreateProject(ctx, core.Project{Name: "demo", Path: "/demo", EmbeddingModel: "hash-768", EmbeddingDim: 768})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Name, store.Stats().Max)
}
