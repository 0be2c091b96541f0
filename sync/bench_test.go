//go:build !js

package edgesync_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
	edgesync "github.com/athena-edge/athena-edge/sync"
)

const benchDim = 768

// benchEdge makes an edge holding n fresh memories of benchDim floats.
func benchEdge(b *testing.B, h *harness, device string, n int) (*core.DB, *edgesync.Client, *[]time.Duration) {
	b.Helper()
	ctx := context.Background()
	db := core.New(memstore.New(), core.Config{Device: device})
	p, err := db.CreateProject(ctx, core.Project{Name: "proj", Path: "/proj", EmbeddingModel: "bench", EmbeddingDim: benchDim})
	if err != nil {
		b.Fatal(err)
	}
	for done := 0; done < n; {
		k := min(1000, n-done)
		ms := make([]core.Memory, k)
		for i := range ms {
			v := make([]float32, benchDim)
			for j := range v {
				v[j] = float32((done+i+j)%97) + 0.25
			}
			ms[i] = core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("benchmark memory %d: the quick brown fox jumps over the lazy dog", done+i),
				Embedding: v, EmbeddingModel: "bench", Tags: []string{"bench"}}
		}
		res, err := db.RememberBatch(ctx, ms)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
		done += k
	}
	token := h.token("proj", device)
	lat := &[]time.Duration{}
	last := time.Now()
	c := edgesync.NewClient(edgesync.ClientConfig{DB: db, ServerURL: h.url(), Token: token, Progress: func(p edgesync.Progress) {
		now := time.Now()
		*lat = append(*lat, now.Sub(last))
		last = now
	}})
	return db, c, lat
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

// BenchmarkPush measures edge → server throughput (memstore on both sides,
// loopback WebSocket, 768-dim embeddings), the per-batch round trip (push
// → commit → ack → local cursor write) p99, and bytes per memory.
func BenchmarkPush(b *testing.B) {
	n := max(b.N, 2000)
	h := newHarness(&testing.T{}, edgesync.ServerConfig{Rate: -1})
	defer h.close()
	_, c, lat := benchEdge(b, h, fmt.Sprintf("bench-%d", n), n)
	b.ResetTimer()
	start := time.Now()
	st, err := c.Sync(context.Background())
	el := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Pushed)/el.Seconds(), "memories/s")
	b.ReportMetric(st.BytesPerChange(), "bytes/memory")
	b.ReportMetric(float64(p99(*lat).Microseconds())/1000, "batch_ack_p99_ms")
}

// BenchmarkBacklog50K drains a 50,000-change backlog in one Sync.
func BenchmarkBacklog50K(b *testing.B) {
	for range b.N {
		b.StopTimer()
		h := newHarness(&testing.T{}, edgesync.ServerConfig{Rate: -1})
		_, c, lat := benchEdge(b, h, "backlog", 50_000)
		b.StartTimer()
		start := time.Now()
		st, err := c.Sync(context.Background())
		el := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(el.Seconds(), "drain_s")
		b.ReportMetric(float64(st.Pushed)/el.Seconds(), "memories/s")
		b.ReportMetric(st.BytesPerChange(), "bytes/memory")
		b.ReportMetric(float64(p99(*lat).Microseconds())/1000, "batch_ack_p99_ms")
		h.close()
	}
}
