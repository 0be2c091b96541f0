package sqlitevec

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// benchData is $ATHENA_BENCH_DATASET, or 2000 synthetic 768-d memories
// when it is unset, loaded once per test binary.
var benchData struct {
	once sync.Once
	d    *dataset
	b    *benchDB
	dir  string
}

func syntheticDataset(n, q, dim int) *dataset {
	d := &dataset{n: n, q: q, dim: dim, k: 10}
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}
	for i := range n {
		d.docs = append(d.docs, unitVec(uint64(i+1), dim)...)
		d.texts = append(d.texts, fmt.Sprintf("%s %s %s note %d", words[i%10], words[(i/10)%10], words[(i/100)%10], i))
	}
	for i := range q {
		d.queries = append(d.queries, unitVec(uint64(n+i+1), dim)...)
		d.qtexts = append(d.qtexts, words[i%10]+" "+words[(i+3)%10])
	}
	return d
}

func loadBench(b *testing.B) (*dataset, *benchDB) {
	benchData.once.Do(func() {
		if os.Getenv("ATHENA_BENCH_DATASET") != "" {
			benchData.d = loadDataset(b)
		} else {
			benchData.d = syntheticDataset(2000, 50, 768)
		}
		dir, err := os.MkdirTemp("", "sqlitevec-bench-*")
		require.NoError(b, err)
		benchData.dir = dir
		benchData.b = ingestDataset(b, benchData.d, dir)
	})
	return benchData.d, benchData.b
}

func BenchmarkVectorLeg(b *testing.B) {
	d, db := loadBench(b)
	ctx := context.Background()
	for _, exact := range []bool{false, true} {
		b.Run(fmt.Sprintf("exact=%v", exact), func(b *testing.B) {
			f := core.MemoryFilter{ProjectID: db.project.ID, States: core.LiveStates()}
			i := 0
			for b.Loop() {
				err := db.s.View(ctx, func(r core.ReadTx) error {
					_, err := r.VectorLeg(ctx, core.VectorLeg{Vector: d.query(i % d.q), K: 10, Filter: f, Exact: exact})
					return err
				})
				require.NoError(b, err)
				i++
			}
		})
	}
}

func BenchmarkHybrid(b *testing.B) {
	d, db := loadBench(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		_, err := db.db.Search(ctx, core.Query{ProjectID: db.project.ID, Text: d.qtexts[i%d.q], Embedding: d.query(i % d.q), K: 10})
		require.NoError(b, err)
		i++
	}
}

// BenchmarkIngest measures batched ingest (1000 memories per transaction,
// synchronous=FULL, on a file); ns/op is per memory.
func BenchmarkIngest(b *testing.B) {
	d := syntheticDataset(1000, 1, 768)
	s := openTest(b, true)
	db := core.New(s, core.Config{})
	ctx := context.Background()
	p, err := db.CreateProject(ctx, core.Project{Name: "i", Path: "/i", EmbeddingModel: "m", EmbeddingDim: 768})
	require.NoError(b, err)
	batch := make([]core.Memory, 0, 1000)
	flush := func() {
		res, err := db.RememberBatch(ctx, batch)
		require.NoError(b, err)
		require.NoError(b, res[0].Err)
		batch = batch[:0]
	}
	i := 0
	for b.Loop() {
		batch = append(batch, core.Memory{ProjectID: p.ID, Content: d.texts[i%d.n], Embedding: d.doc(i % d.n)})
		if len(batch) == cap(batch) {
			flush()
		}
		i++
	}
	if len(batch) > 0 {
		flush()
	}
}
