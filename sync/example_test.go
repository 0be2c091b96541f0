//go:build !js

package edgesync_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

// A server and an edge, both on in-memory stores: the edge writes offline,
// then one Sync pushes its changes and pulls the others'.
func ExampleNewServer() {
	ctx := context.Background()
	central := core.New(memstore.New(), core.Config{Device: "server"})
	srv := edgesync.NewServer(edgesync.ServerConfig{DB: central})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Shutdown(ctx) //nolint:errcheck

	// `athena-edge token create --project notes --device laptop`
	token, tok, err := edgesync.CreateToken(ctx, central, "notes", "laptop")
	if err != nil {
		panic(err)
	}
	fmt.Println("token for", tok.Device, strings.HasPrefix(token, edgesync.TokenPrefix))

	laptop := core.New(memstore.New(), core.Config{Device: "laptop"})
	p, _ := laptop.CreateProject(ctx, core.Project{Name: "notes", Path: "/notes", EmbeddingModel: "demo", EmbeddingDim: 3})
	_, _ = laptop.Remember(ctx, core.Memory{ProjectID: p.ID, Content: "written offline", Embedding: []float32{1, 0, 0}, EmbeddingModel: "demo"})

	client := edgesync.NewClient(edgesync.ClientConfig{
		DB:        laptop,
		ServerURL: "ws" + strings.TrimPrefix(ts.URL, "http") + edgesync.PathSync,
		Token:     token,
	})
	st, err := client.Sync(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("pushed", st.Pushed, "applied", st.Applied, "rejected", st.Rejected)
	ms, _ := central.Memories(ctx, core.MemoryFilter{ProjectID: p.ID})
	fmt.Println("server has:", ms[0].Content)
	status, _ := client.Status(ctx)
	fmt.Println("pending", status.Servers[0].Pending)
	// Output:
	// token for laptop true
	// pushed 2 applied 2 rejected 0
	// server has: written offline
	// pending 0
}
