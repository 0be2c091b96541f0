// Command peerbench measures athena-edge's stores against the peers a user
// would pick instead, on one dataset in the format of shared/bench/datagen,
// in one run:
//
//	edge            our edge store (sqlitevec) through core.DB (hosts/native.Bench)
//	central         our central store (pgadapter) through core.DB (hosts/native.Bench)
//	chromem-go      chromem-go v0.7.0, exact, in memory
//	sqlite-vec      sqlite-vec v0.1.6 + FTS5 on ncruces v0.21.3 (peers/sqlitevecpeer, a separate module and process)
//	pgvector-exact  raw pgvector, no index
//	pgvector-hnsw   raw pgvector, HNSW m 16, ef_construction 64, ef_search 40
//	seed-sql        the seed's hybrid SQL: 0.7·cosine + 0.3·ts_rank, no vector index
//
// Every store runs in its own child process, one after the other, so that
// one store's heap, caches and goroutines do not slow the next, and so
// that the sqlite-vec peer can use a different ncruces version than ours.
// Every store times the same queries (the first -queries of the dataset,
// plus 5 warm-up repeats) and reports ingest/s (until queryable), vector
// and hybrid p50/p99 and recall@10 of the vector query against truth.i32.
// Ratios are peer ÷ ours, edge peers against the edge store and
// PostgreSQL peers against the central store.
//
// Usage:
//
//	peerbench -dataset /tmp/ds100k -pg postgres://... [-queries 50] [-json out.json] [-stores edge,chromem-go,...]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/athena-edge/athena-edge/hosts/native"
)

const (
	storeEdge    = "edge"
	storeCentral = "central"
	storeChromem = "chromem-go"
	storeSQLVec  = "sqlite-vec"
	storePGExact = "pgvector-exact"
	storePGHNSW  = "pgvector-hnsw"
	storeSeed    = "seed-sql"
)

var allStores = []string{storeEdge, storeCentral, storeChromem, storeSQLVec, storePGExact, storePGHNSW, storeSeed}

// baseline is the store of ours each store is compared with.
func baseline(store string) string {
	switch store {
	case storeChromem, storeSQLVec:
		return storeEdge
	case storePGExact, storePGHNSW, storeSeed:
		return storeCentral
	}
	return ""
}

type opts struct {
	store   string
	ds      *native.Dataset
	queries int
	pgURL   string
}

func main() {
	var (
		dataset  = flag.String("dataset", "", "dataset directory (shared/bench/datagen format); required")
		pgURL    = flag.String("pg", os.Getenv("ATHENA_TEST_PG_URL"), "PostgreSQL URL (default $ATHENA_TEST_PG_URL)")
		queries  = flag.Int("queries", 0, "queries timed per store, the first Q of the dataset (default: all up to 20K docs, 50 above)")
		stores   = flag.String("stores", strings.Join(allStores, ","), "stores to run, comma-separated")
		jsonOut  = flag.String("json", "", "also write the results as JSON to this file")
		peer     = flag.String("sqlitevec-peer", "", "path of the sqlitevecpeer binary (default: next to this binary)")
		timeout  = flag.Duration("timeout", 30*time.Minute, "per-store limit")
		one      = flag.String("one", "", "internal: measure this one store in this process and print its JSON")
		noHeader = flag.Bool("no-header", false, "print only the table")
	)
	flag.Parse()
	if *dataset == "" {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *one != "" {
		os.Exit(runOne(ctx, *one, *dataset, *queries, *pgURL))
	}
	meta, err := readMeta(*dataset)
	if err != nil {
		fatal(err)
	}
	q := *queries
	if q <= 0 {
		q = meta.Q
		if meta.N > 20000 {
			q = min(50, meta.Q)
		}
	}
	q = min(q, meta.Q)
	list := strings.Split(*stores, ",")
	for _, s := range list {
		if !slices.Contains(allStores, s) {
			fatal(fmt.Errorf("unknown store %q (want some of %s)", s, strings.Join(allStores, ",")))
		}
	}
	if *peer == "" {
		exe, err := os.Executable()
		if err != nil {
			fatal(err)
		}
		*peer = filepath.Join(filepath.Dir(exe), "sqlitevecpeer")
	}
	run := Run{Started: time.Now().UTC().Format(time.RFC3339), Dataset: *dataset, N: meta.N, Dim: meta.Dim, Queries: q,
		Machine: describeMachine(), Command: strings.Join(os.Args, " ")}
	t0 := time.Now()
	for _, s := range list {
		if needsPG(s) && *pgURL == "" {
			run.Results = append(run.Results, Result{Store: s, Error: "no PostgreSQL: pass -pg or set ATHENA_TEST_PG_URL"})
			continue
		}
		fmt.Fprintf(os.Stderr, "peerbench: === %s (N=%d, %d queries)\n", s, meta.N, q)
		r := runChild(ctx, s, *dataset, q, *pgURL, *peer, *timeout)
		if r.Error != "" {
			fmt.Fprintf(os.Stderr, "peerbench: %s failed: %s\n", s, r.Error)
		}
		run.Results = append(run.Results, r)
		if ctx.Err() != nil {
			break
		}
	}
	run.WallS = time.Since(t0).Seconds()
	run.Ratios = ratios(run.Results)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(run, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fatal(err)
		}
	}
	printTable(os.Stdout, &run, !*noHeader)
	for _, r := range run.Results {
		if r.Error != "" {
			os.Exit(1)
		}
	}
}

// loadAvg is the 1-minute load average (on 2 CPUs, above ~2 means other
// work competed with the measurement).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func needsPG(s string) bool { return s == storeCentral || baseline(s) == storeCentral }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "peerbench:", err)
	os.Exit(1)
}

// runChild measures one store in a child process and parses its JSON.
func runChild(ctx context.Context, store, dataset string, q int, pgURL, peer string, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var cmd *exec.Cmd
	if store == storeSQLVec {
		cmd = exec.CommandContext(ctx, peer, "-dataset", dataset, "-queries", strconv.Itoa(q))
	} else {
		exe, err := os.Executable()
		if err != nil {
			return Result{Store: store, Error: err.Error()}
		}
		cmd = exec.CommandContext(ctx, exe, "-one", store, "-dataset", dataset, "-queries", strconv.Itoa(q), "-pg", pgURL)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	t, load0 := time.Now(), loadAvg()
	err := cmd.Run()
	var r Result
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		r = Result{Store: store}
		if err == nil {
			err = fmt.Errorf("bad JSON from child: %w: %q", jerr, out.String())
		}
	}
	r.Store = store
	r.WallS = time.Since(t).Seconds()
	r.Load = load0 + " → " + loadAvg()
	if err != nil && r.Error == "" {
		r.Error = err.Error()
		if ctx.Err() == context.DeadlineExceeded {
			r.Error = fmt.Sprintf("timed out after %s", timeout)
		}
	}
	return r
}

// runOne is the child: measure one store, print its Result as JSON.
func runOne(ctx context.Context, store, dataset string, q int, pgURL string) int {
	ds, err := native.LoadDataset(dataset)
	r := Result{Store: store}
	if err == nil {
		if q <= 0 || q > ds.Q {
			q = ds.Q
		}
		o := opts{store: store, ds: ds, queries: q, pgURL: pgURL}
		switch store {
		case storeEdge, storeCentral:
			r, err = runOurs(ctx, o)
		case storeChromem:
			r, err = runChromem(ctx, o)
		case storePGExact, storePGHNSW, storeSeed:
			r, err = runPG(ctx, o)
		default:
			err = fmt.Errorf("store %q does not run in-process", store)
		}
	}
	code := 0
	if err != nil {
		r.Error = err.Error()
		code = 1
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	fmt.Println(string(b))
	return code
}

type datasetMeta struct {
	N, Q, Dim, K int
}

func readMeta(dir string) (datasetMeta, error) {
	var m datasetMeta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// Run is the JSON file's content.
type Run struct {
	Started string           `json:"started"`
	Command string           `json:"command"`
	Machine Machine          `json:"machine"`
	Dataset string           `json:"dataset"`
	N       int              `json:"n"`
	Dim     int              `json:"dim"`
	Queries int              `json:"queries"`
	WallS   float64          `json:"wall_s"`
	Results []Result         `json:"results"`
	Ratios  map[string]Ratio `json:"ratios"` // by peer store
}

// Ratio is peer ÷ ours for each metric (0 where either side is missing).
// For latencies > 1 means the peer is slower (ours is that many times
// faster); for ingest/s > 1 means the peer ingests faster.
type Ratio struct {
	Versus    string  `json:"versus"`
	Ingest    float64 `json:"ingest_per_s"`
	VectorP50 float64 `json:"vector_p50"`
	VectorP99 float64 `json:"vector_p99"`
	HybridP50 float64 `json:"hybrid_p50"`
	HybridP99 float64 `json:"hybrid_p99"`
}

func ratios(rs []Result) map[string]Ratio {
	by := map[string]Result{}
	for _, r := range rs {
		if r.Error == "" {
			by[r.Store] = r
		}
	}
	div := func(a, b float64) float64 {
		if a <= 0 || b <= 0 {
			return 0
		}
		return a / b
	}
	out := map[string]Ratio{}
	for _, p := range rs {
		base, ok := by[baseline(p.Store)]
		if !ok || p.Error != "" {
			continue
		}
		r := Ratio{Versus: base.Store, Ingest: div(p.IngestPerS, base.IngestPerS),
			VectorP50: div(p.VectorP50, base.VectorP50), VectorP99: div(p.VectorP99, base.VectorP99)}
		if p.HasHybrid && base.HasHybrid {
			r.HybridP50, r.HybridP99 = div(p.HybridP50, base.HybridP50), div(p.HybridP99, base.HybridP99)
		}
		out[p.Store] = r
	}
	return out
}

// Machine describes where the run happened.
type Machine struct {
	CPU    string `json:"cpu"`
	CPUs   int    `json:"cpus"`
	MemGiB int    `json:"mem_gib"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

func describeMachine() Machine {
	m := Machine{Go: buildVersions()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok && m.CPU == "" {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
			if strings.HasPrefix(l, "processor") {
				m.CPUs++
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.Atoi(strings.Fields(v)[0])
				m.MemGiB = (kb + 512*1024) / (1024 * 1024)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if i := strings.Index(m.Go, ","); i > 0 {
		m.Go = m.Go[:i]
	}
	return m
}

func printTable(w io.Writer, run *Run, header bool) {
	if header {
		fmt.Fprintf(w, "### N = %d, dim %d, %d queries (the same first %d for every store, + 5 warm-up)\n\n", run.N, run.Dim, run.Queries, run.Queries)
		fmt.Fprintf(w, "Measured %s on %s (%d CPUs, %d GiB), Linux %s, %s; total %.0f s.\n\n",
			run.Started, run.Machine.CPU, run.Machine.CPUs, run.Machine.MemGiB, run.Machine.Kernel, run.Machine.Go, run.WallS)
	}
	fmt.Fprintln(w, "| store | ingest/s | vector p50 ms | vector p99 ms | hybrid p50 ms | hybrid p99 ms | recall@10 | vs | ingest × | vec p50 × | vec p99 × | hyb p50 × | hyb p99 × |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|")
	for _, r := range run.Results {
		if r.Error != "" {
			fmt.Fprintf(w, "| %s | failed: %s |||||||||||| \n", r.Store, oneLine(r.Error))
			continue
		}
		hp50, hp99 := "n/a", "n/a"
		if r.HasHybrid {
			hp50, hp99 = fmtMS(r.HybridP50), fmtMS(r.HybridP99)
		}
		vs, ri, rv50, rv99, rh50, rh99 := "—", "", "", "", "", ""
		if ra, ok := run.Ratios[r.Store]; ok {
			vs = "ours " + ra.Versus
			ri, rv50, rv99 = fmtX(ra.Ingest), fmtX(ra.VectorP50), fmtX(ra.VectorP99)
			rh50, rh99 = "n/a", "n/a"
			if r.HasHybrid {
				rh50, rh99 = fmtX(ra.HybridP50), fmtX(ra.HybridP99)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.3f | %s | %s | %s | %s | %s | %s |\n", r.Store, fmtRate(r.IngestPerS),
			fmtMS(r.VectorP50), fmtMS(r.VectorP99), hp50, hp99, r.RecallAt10, vs, ri, rv50, rv99, rh50, rh99)
	}
	if header {
		fmt.Fprintln(w, "\n× = peer ÷ ours (edge peers vs our edge store, PostgreSQL peers vs our central store): for latencies, >1 means ours is that many times faster; for ingest/s, >1 means the peer ingests faster.")
		fmt.Fprintln(w, "ingest/s = N ÷ (load + any index build after it), i.e. until queryable. recall@10 is of the vector query against truth.i32. load = the machine's 1-minute load average before → after each store (other work competing for the CPUs).")
		fmt.Fprintln(w)
		for _, r := range run.Results {
			if r.Error != "" {
				continue
			}
			fmt.Fprintf(w, "- **%s**: %s. Ingest: %s.", r.Store, r.Desc, r.IngestNote)
			if r.HybridNote != "" {
				fmt.Fprintf(w, " Hybrid: %s.", r.HybridNote)
			}
			fmt.Fprintf(w, " (%.0f s wall, peak RSS %.0f MiB, load %s)\n", r.WallS, r.RSSMB, r.Load)
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func fmtRate(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtX(v float64) string {
	if v <= 0 {
		return "—"
	}
	if v >= 10 {
		return strconv.FormatFloat(v, 'f', 0, 64) + "×"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}
