package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is one store's measurement. Every store, in-process or child,
// prints exactly this JSON (peers/sqlitevecpeer keeps a copy of the type).
type Result struct {
	Store       string  `json:"store"`
	Desc        string  `json:"desc"`
	N           int     `json:"n"`
	Dim         int     `json:"dim"`
	Queries     int     `json:"queries"`
	IngestPerS  float64 `json:"ingest_per_s"`  // N / (LoadS + IndexBuildS): until queryable
	LoadS       float64 `json:"load_s"`        // writing the rows
	IndexBuildS float64 `json:"index_build_s"` // building indexes after the load, if the store does that
	IngestNote  string  `json:"ingest_note"`
	VectorP50   float64 `json:"vector_p50_ms"`
	VectorP99   float64 `json:"vector_p99_ms"`
	HasHybrid   bool    `json:"has_hybrid"`
	HybridP50   float64 `json:"hybrid_p50_ms"`
	HybridP99   float64 `json:"hybrid_p99_ms"`
	HybridNote  string  `json:"hybrid_note"`
	RecallAt10  float64 `json:"recall_at_10"`
	RSSMB       float64 `json:"rss_mb"` // peak RSS of the measuring process (dataset included); client only for PostgreSQL stores
	Versions    string  `json:"versions"`
	Error       string  `json:"error,omitempty"`

	WallS float64 `json:"wall_s"` // set by the orchestrator: the child's whole run
	Load  string  `json:"load"`   // set by the orchestrator: 1-minute load average before → after (other work on the machine)
}

// timer accumulates per-query latencies and recall, with the same warm-up,
// percentile and recall rules as hosts/native.Bench: the first 5 queries
// are run once more as warm-up and not counted; p = nearest rank below.
type timer struct {
	vec, hyb     []float64
	found, total int
}

const warmup = 5

func (t *timer) add(qi int, dv, dh time.Duration, got []int32, truth []int32) {
	if qi < warmup {
		return
	}
	t.vec = append(t.vec, ms(dv))
	if dh >= 0 {
		t.hyb = append(t.hyb, ms(dh))
	}
	want := truth[:min(10, len(truth))]
	for _, id := range got {
		if slices.Contains(want, id) {
			t.found++
		}
	}
	t.total += len(want)
}

func (t *timer) fill(r *Result) {
	r.VectorP50, r.VectorP99 = percentile(t.vec, 50), percentile(t.vec, 99)
	if r.HasHybrid {
		r.HybridP50, r.HybridP99 = percentile(t.hyb, 50), percentile(t.hyb, 99)
	}
	if t.total > 0 {
		r.RecallAt10 = float64(t.found) / float64(t.total)
	}
	r.RSSMB = peakRSSMB()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p/100)]
}

func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
