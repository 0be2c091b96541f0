package mcpserver_test

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	mcpserver "github.com/athena-edge/athena-edge/hosts/mcp"
)

// ExampleNew serves an in-memory store to an in-process client, remembers
// a memory, recalls it and sends a bad argument.
func ExampleNew() {
	ctx := context.Background()
	db := core.New(memstore.New(), core.Config{Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{})})
	defer db.Close()
	p, err := db.CreateProject(ctx, core.Project{Name: "demo", Path: "/src/demo"})
	if err != nil {
		panic(err)
	}
	srv, err := mcpserver.New(mcpserver.Config{DB: db, Project: p})
	if err != nil {
		panic(err)
	}
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		panic(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "example"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		panic(err)
	}
	defer func() { _ = cs.Close(); _ = ss.Wait() }()

	for _, args := range []map[string]any{
		{"content": "Use connection pooling to cut database latency"},
		{"content": "The team lunch is on Fridays"},
	} {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "remember", Arguments: args}); err != nil {
			panic(err)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "recall", Arguments: map[string]any{"query": "database latency", "k": 1}})
	if err != nil {
		panic(err)
	}
	hits := res.StructuredContent.(map[string]any)["hits"].([]any)
	fmt.Println(len(hits), hits[0].(map[string]any)["content"])

	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "recall", Arguments: map[string]any{"query": "x", "k": -1}})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.IsError, res.Content[0].(*mcp.TextContent).Text)
	// Output:
	// 1 Use connection pooling to cut database latency
	// true recall: invalid argument "k": must be between 1 and 1000, got -1
}
