package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/core/memstore"
)

type benchReq struct {
	N       int `json:"n"`       // memories (default 5000)
	Queries int `json:"queries"` // recalls timed (default 50)
}

type benchResult struct {
	N        int     `json:"n"`
	Queries  int     `json:"queries"`
	AddMS    float64 `json:"add_ms"`    // RememberBatch of all n, embedding included
	P50MS    float64 `json:"p50_ms"`    // one hybrid recall with explain, K 10
	P95MS    float64 `json:"p95_ms"`    //
	MaxMS    float64 `json:"max_ms"`    //
	MeanMS   float64 `json:"mean_ms"`   //
	HitsMean float64 `json:"hits_mean"` // hits per recall (sanity)
}

// benchWords is the vocabulary of the benchmark's synthetic memories.
var benchWords = strings.Fields(`index query latency cache vector embedding shard replica cluster node
	schema migration rollback deploy release canary metric alert dashboard trace span log retention
	backup restore snapshot compaction vacuum checkpoint wal fsync lock mutex goroutine channel
	timeout retry backoff jitter token ticket session cookie origin socket frame batch queue
	worker pool thread heap stack profile flame allocation garbage collector pause budget
	recipe banana bread flour sugar butter oven garden tomato basil pepper weather rain
	meeting agenda roadmap milestone deadline review feedback design prototype user interview`)

// bench measures local recall in the tab: it builds a separate in-memory
// store (the page's own store is untouched and nothing is saved or
// synced) holding n synthetic memories embedded by the built-in embedder,
// then times hybrid recalls with explain, as the page runs them.
func bench(ctx context.Context, r benchReq) (benchResult, error) {
	if r.N <= 0 {
		r.N = 5000
	}
	if r.Queries <= 0 {
		r.Queries = 50
	}
	db := core.New(memstore.New(), core.Config{Device: "bench", Embedder: core.NewHashEmbedder(core.HashEmbedderConfig{})})
	p, err := db.CreateProject(ctx, core.Project{Name: "bench", Path: "(bench)"})
	if err != nil {
		return benchResult{}, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sentence := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = benchWords[rng.IntN(len(benchWords))]
		}
		return strings.Join(ws, " ")
	}
	ms := make([]core.Memory, r.N)
	for i := range ms {
		ms[i] = core.Memory{ProjectID: p.ID, Content: fmt.Sprintf("note %d: %s", i, sentence(8+rng.IntN(16))),
			MemoryType: core.TypeFact, Domain: "memory", Usefulness: 0.5, Confidence: 1}
	}
	start := time.Now()
	const batch = 500
	for i := 0; i < len(ms); i += batch {
		res, err := db.RememberBatch(ctx, ms[i:min(i+batch, len(ms))])
		if err != nil {
			return benchResult{}, err
		}
		for _, b := range res {
			if b.Err != nil {
				return benchResult{}, b.Err
			}
		}
	}
	out := benchResult{N: r.N, Queries: r.Queries, AddMS: ms2(time.Since(start))}
	took := make([]float64, r.Queries)
	hits := 0
	for i := range took {
		q := core.Query{ProjectID: p.ID, Text: sentence(2 + rng.IntN(3)), K: 10, Explain: true}
		t0 := time.Now()
		hs, err := db.Search(ctx, q)
		took[i] = ms2(time.Since(t0))
		if err != nil {
			return benchResult{}, err
		}
		hits += len(hs)
	}
	slices.Sort(took)
	var sum float64
	for _, t := range took {
		sum += t
	}
	out.P50MS, out.P95MS, out.MaxMS = took[len(took)/2], took[(len(took)*95)/100], took[len(took)-1]
	out.MeanMS = sum / float64(len(took))
	out.HitsMean = float64(hits) / float64(len(took))
	return out, nil
}

func ms2(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
