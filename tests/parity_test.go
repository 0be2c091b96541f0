package tests

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "update golden files")

const (
	parityN       = 2000
	parityQueries = 100
	parityDim     = 768
	parityModel   = "parity-fixture"
)

// parityFixture is ~2,000 memories with topic text and clustered
// embeddings (the shared datagen recipe, seed 7), plus 100 queries.
var parityFixture = sync.OnceValue(func() *native.Dataset {
	return native.GenerateDataset(parityN, parityQueries, parityDim, 7)
})

// parityLoad loads the fixture into a store with IDs that are the same on
// every store.
func parityLoad(t *testing.T, b core.Backend) (*core.DB, core.Project) {
	t.Helper()
	now := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	db := core.New(b, core.Config{Device: "parity", Clock: core.NewClock(core.ClockConfig{Now: func() time.Time { return now }})})
	p, err := db.CreateProject(t.Context(), core.Project{Name: "parity", Path: "/parity", EmbeddingModel: parityModel, EmbeddingDim: parityDim})
	require.NoError(t, err)
	d := parityFixture()
	for lo := 0; lo < d.N; lo += 500 {
		var ms []core.Memory
		for i := lo; i < min(lo+500, d.N); i++ {
			ms = append(ms, core.Memory{ID: core.DeriveID(now, "parity", fmt.Sprint(i)), ProjectID: p.ID, Content: d.DocText[i],
				Embedding: d.Docs[i], EmbeddingModel: parityModel})
		}
		res, err := db.RememberBatch(t.Context(), ms)
		require.NoError(t, err)
		for _, r := range res {
			require.NoError(t, r.Err)
		}
	}
	return db, p
}

type parityHit struct {
	ID       core.ID `json:"id"`
	Hybrid   float64 `json:"hybrid"`
	Semantic float64 `json:"semantic"`
	Keyword  float64 `json:"keyword"`
}

type parityAnswer struct {
	Query  int         `json:"query"`
	Fusion string      `json:"fusion"`
	Hits   []parityHit `json:"hits"`
}

// parityRun runs every query, exact, with both fusions.
func parityRun(t *testing.T, db *core.DB, p core.Project, exact bool, semanticOnly bool) []parityAnswer {
	t.Helper()
	d := parityFixture()
	var out []parityAnswer
	for q := range d.Q {
		for _, fusion := range []string{core.FusionWeighted, core.FusionRRF} {
			if semanticOnly && fusion == core.FusionRRF {
				continue
			}
			query := core.Query{ProjectID: p.ID, Text: d.QueryText[q], Embedding: d.Queries[q], K: 10, Fusion: fusion, Exact: exact}
			if semanticOnly {
				query.Text, query.SemanticOnly, query.Threshold = "", true, -1
			}
			hits, err := db.Search(t.Context(), query)
			require.NoError(t, err)
			a := parityAnswer{Query: q, Fusion: fusion}
			for _, h := range hits {
				a.Hits = append(a.Hits, parityHit{ID: h.Memory.ID, Hybrid: h.Hybrid, Semantic: h.Semantic, Keyword: h.Keyword})
			}
			out = append(out, a)
		}
	}
	return out
}

// TestSearchParity: the same fixture and queries, run in exact mode on
// memstore, sqlitevec and pgadapter, give identical top-10 IDs with
// scores equal within 1e-6; and the approximate vector leg of each store
// has recall@10 ≥ 0.98 against its own exact answers. The exact answers
// are also kept as a golden file (refresh with -update).
func TestSearchParity(t *testing.T) {
	t.Parallel()
	results := make(map[string][]parityAnswer)
	var mu sync.Mutex
	t.Run("stores", func(t *testing.T) {
		for _, sk := range allStores() {
			t.Run(sk.name, func(t *testing.T) {
				t.Parallel()
				db, p := parityLoad(t, sk.open(t))
				exact := parityRun(t, db, p, true, false)
				mu.Lock()
				results[sk.name] = exact
				mu.Unlock()

				// The approximate vector leg, forced even at this size,
				// against the exact one.
				if sk.approx == nil {
					return
				}
				ex := parityRun(t, db, p, true, true)
				adb, ap := parityLoad(t, sk.approx(t))
				apAns := parityRun(t, adb, ap, false, true)
				found, total := 0, 0
				for i := range ex {
					want := map[core.ID]bool{}
					for _, h := range ex[i].Hits {
						want[h.ID] = true
					}
					for _, h := range apAns[i].Hits {
						if want[h.ID] {
							found++
						}
					}
					total += len(ex[i].Hits)
				}
				recall := float64(found) / float64(total)
				t.Logf("%s: approximate vector recall@10 vs exact = %.4f", sk.name, recall)
				assert.GreaterOrEqual(t, recall, 0.98)
			})
		}
	})
	ref, ok := results["memstore"]
	require.True(t, ok)
	for name, got := range results {
		if name == "memstore" {
			continue
		}
		require.Len(t, got, len(ref), name)
		for i := range ref {
			require.Len(t, got[i].Hits, len(ref[i].Hits), "%s query %d %s", name, ref[i].Query, ref[i].Fusion)
			for j := range ref[i].Hits {
				w, g := ref[i].Hits[j], got[i].Hits[j]
				require.Equal(t, w.ID, g.ID, "%s query %d %s rank %d", name, ref[i].Query, ref[i].Fusion, j+1)
				for _, s := range [][2]float64{{w.Hybrid, g.Hybrid}, {w.Semantic, g.Semantic}, {w.Keyword, g.Keyword}} {
					require.LessOrEqual(t, math.Abs(s[0]-s[1]), 1e-6, "%s query %d rank %d scores %v", name, ref[i].Query, j+1, s)
				}
			}
		}
	}
	golden := filepath.Join("testdata", "parity_golden.json")
	b, err := json.MarshalIndent(ref, "", " ")
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(golden, b, 0o644))
		return
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test ./tests -run TestSearchParity -update to create %s", golden)
	var wantAns []parityAnswer
	require.NoError(t, json.Unmarshal(want, &wantAns))
	require.Len(t, ref, len(wantAns))
	for i := range wantAns {
		require.Len(t, ref[i].Hits, len(wantAns[i].Hits))
		for j := range wantAns[i].Hits {
			require.Equal(t, wantAns[i].Hits[j].ID, ref[i].Hits[j].ID, "golden query %d rank %d", wantAns[i].Query, j+1)
			require.InDelta(t, wantAns[i].Hits[j].Hybrid, ref[i].Hits[j].Hybrid, 1e-9)
		}
	}
}
