package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/philippgille/chromem-go"
)

// runChromem measures chromem-go v0.7.0: an in-memory DB (no persistence,
// the library's default), documents added with their precomputed
// embeddings (AddDocuments, concurrency = NumCPU, 1000 per call), queried
// with QueryEmbedding (exact: it scores every document). chromem-go has no
// keyword leg, so there is no hybrid.
func runChromem(ctx context.Context, o opts) (Result, error) {
	d := o.ds
	r := Result{Store: o.store, N: d.N, Dim: d.Dim, Queries: o.queries, Versions: buildVersions(),
		Desc: "chromem-go v0.7.0, in-memory DB (no persistence), exact (scores every document, NumCPU goroutines)"}
	db := chromem.NewDB()
	noEmbed := func(context.Context, string) ([]float32, error) {
		return nil, errors.New("peerbench: documents and queries carry their embeddings")
	}
	col, err := db.CreateCollection("bench", nil, noEmbed)
	if err != nil {
		return r, err
	}
	const batch = 1000
	start := time.Now()
	for lo := 0; lo < d.N; lo += batch {
		hi := min(lo+batch, d.N)
		docs := make([]chromem.Document, 0, hi-lo)
		for i := lo; i < hi; i++ {
			docs = append(docs, chromem.Document{ID: strconv.Itoa(i), Embedding: d.Docs[i], Content: d.DocText[i]})
		}
		if err := col.AddDocuments(ctx, docs, runtime.NumCPU()); err != nil {
			return r, fmt.Errorf("chromem: add: %w", err)
		}
	}
	r.LoadS = time.Since(start).Seconds()
	r.IngestPerS = float64(d.N) / r.LoadS
	r.IngestNote = fmt.Sprintf("AddDocuments with embeddings, %d per call, concurrency %d, memory only", batch, runtime.NumCPU())
	r.HybridNote = "n/a: chromem-go has no keyword leg (only a substring filter)"

	var t timer
	for qi := range o.queries + warmup {
		q := qi % o.queries
		s := time.Now()
		res, err := col.QueryEmbedding(ctx, d.Queries[q], 10, nil, nil)
		if err != nil {
			return r, fmt.Errorf("chromem: query: %w", err)
		}
		dv := time.Since(s)
		got := make([]int32, 0, len(res))
		for _, h := range res {
			i, err := strconv.Atoi(h.ID)
			if err != nil {
				return r, err
			}
			got = append(got, int32(i))
		}
		t.add(qi, dv, -1, got, d.Truth[q])
	}
	t.fill(&r)
	return r, nil
}
