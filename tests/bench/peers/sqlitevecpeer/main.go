// Command sqlitevecpeer measures sqlite-vec v0.1.6 (through
// github.com/asg017/sqlite-vec-go-bindings/ncruces) on
// github.com/ncruces/go-sqlite3 v0.21.3, on one dataset in the format of
// shared/bench/datagen, and prints one JSON result on stdout.
//
// It is its own module because athena-edge pins ncruces v0.32.0 and the
// sqlite-vec bindings only load on the v0.21 line; two versions of one
// module cannot live in one binary. tests/bench/cmd/peerbench runs it as a
// child process.
//
// What it measures, on a durable file (WAL, synchronous=FULL, like the
// edge store) with a page cache large enough to hold the vectors:
//   - ingest: documents into a rowid table, their vectors into a vec0
//     table (float[dim], cosine) and their text into an external-content
//     FTS5 table, 1000 per transaction;
//   - vector: vec0 KNN, `embedding MATCH ? AND k = 10` (exact, brute force);
//   - hybrid: sqlite-vec's documented FTS5 + vec0 recipe, reciprocal rank
//     fusion in SQL over the top 10 of each leg; the FTS5 query is an OR of
//     the query's words, as our keyword leg matches any term.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	sqlite_vec "github.com/asg017/sqlite-vec-go-bindings/ncruces"
	"github.com/ncruces/go-sqlite3"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// Result has the JSON shape peerbench reads (see cmd/peerbench/result.go).
type Result struct {
	Store       string  `json:"store"`
	Desc        string  `json:"desc"`
	N           int     `json:"n"`
	Dim         int     `json:"dim"`
	Queries     int     `json:"queries"`
	IngestPerS  float64 `json:"ingest_per_s"`
	LoadS       float64 `json:"load_s"`
	IndexBuildS float64 `json:"index_build_s"`
	IngestNote  string  `json:"ingest_note"`
	VectorP50   float64 `json:"vector_p50_ms"`
	VectorP99   float64 `json:"vector_p99_ms"`
	HasHybrid   bool    `json:"has_hybrid"`
	HybridP50   float64 `json:"hybrid_p50_ms"`
	HybridP99   float64 `json:"hybrid_p99_ms"`
	HybridNote  string  `json:"hybrid_note"`
	RecallAt10  float64 `json:"recall_at_10"`
	RSSMB       float64 `json:"rss_mb"`
	Versions    string  `json:"versions"`
	Error       string  `json:"error,omitempty"`
}

func main() {
	dataset := flag.String("dataset", "", "dataset directory (datagen format)")
	queries := flag.Int("queries", 0, "queries to time: the first Q of the dataset (default all)")
	dir := flag.String("dir", "", "directory for the database file (default a temp dir, removed after)")
	batch := flag.Int("batch", 1000, "documents per ingest transaction")
	cacheMiB := flag.Int("cache-mib", 512, "SQLite page cache (PRAGMA cache_size), enough to keep 100K×768 vectors in memory")
	flag.Parse()
	res, err := run(*dataset, *queries, *dir, *batch, *cacheMiB)
	if err != nil {
		res.Error = err.Error()
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqlitevecpeer:", err)
		os.Exit(1)
	}
}

const hybridSQL = `
WITH vec_matches AS (
  SELECT rowid AS id, row_number() OVER (ORDER BY distance) AS rank_number
  FROM vec_docs WHERE embedding MATCH ?1 AND k = 10
),
fts_matches AS (
  SELECT rowid AS id, row_number() OVER (ORDER BY rank) AS rank_number
  FROM fts_docs WHERE fts_docs MATCH ?2 ORDER BY rank LIMIT 10
),
final AS (
  SELECT docs.id,
    coalesce(1.0 / (60 + fts_matches.rank_number), 0.0) * 0.3 +
    coalesce(1.0 / (60 + vec_matches.rank_number), 0.0) * 0.7 AS combined
  FROM fts_matches
  FULL OUTER JOIN vec_matches ON vec_matches.id = fts_matches.id
  JOIN docs ON docs.id = coalesce(fts_matches.id, vec_matches.id)
)
SELECT id, combined FROM final ORDER BY combined DESC LIMIT 10`

func run(dir string, queries int, dbDir string, batch, cacheMiB int) (res Result, err error) {
	res.Store = "sqlite-vec"
	if dir == "" {
		return res, fmt.Errorf("-dataset is required")
	}
	d, err := loadDataset(dir)
	if err != nil {
		return res, err
	}
	res.N, res.Dim = d.N, d.Dim
	if queries <= 0 || queries > d.Q {
		queries = d.Q
	}
	res.Queries = queries

	// The bindings' build of SQLite uses atomics and shared memory, so
	// wazero's threads feature must be on (ncruces v0.21.3 also forces it
	// in compileSQLite; setting it here keeps that explicit). 1 GiB of wasm
	// memory holds the page cache, vec0's chunks and FTS5's merges.
	//
	// wazero: ncruces v0.21.3 asks for v1.8.2, whose compiler miscompiles
	// under Go ≥ 1.24 on amd64 (wazero issue #2375, fixed in v1.9.0): with
	// it every vec0 insert of a 768-dim vector traps with "out of bounds
	// memory access" in accessPayload. go.mod therefore requires wazero
	// v1.12.0, the version the edge store runs on.
	sqlite3.RuntimeConfig = wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesThreads).
		WithMemoryLimitPages(16384)

	if dbDir == "" {
		if dbDir, err = os.MkdirTemp("", "sqlitevecpeer-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(dbDir)
	}
	path := filepath.Join(dbDir, "peer.db")
	open := func() (*sqlite3.Conn, error) {
		c, err := sqlite3.Open(path)
		if err != nil {
			return nil, err
		}
		if err := c.Exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;` +
			fmt.Sprintf(` PRAGMA cache_size = -%d;`, cacheMiB*1024)); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	c, err := open()
	if err != nil {
		return res, fmt.Errorf("open: %w", err)
	}
	var sqliteVersion, vecVersion string
	if err := query(c, `SELECT sqlite_version(), vec_version()`, func(s *sqlite3.Stmt) {
		sqliteVersion, vecVersion = s.ColumnText(0), s.ColumnText(1)
	}); err != nil {
		c.Close()
		return res, fmt.Errorf("vec_version: %w", err)
	}
	res.Versions = fmt.Sprintf("sqlite-vec %s, SQLite %s, ncruces/go-sqlite3 v0.21.3, wazero v1.12.0", vecVersion, sqliteVersion)
	res.Desc = fmt.Sprintf("sqlite-vec %s vec0 (exact, brute force) on ncruces v0.21.3 + wazero v1.12.0; file DB, WAL, synchronous=FULL, %d MiB page cache", vecVersion, cacheMiB)
	fmt.Fprintf(os.Stderr, "sqlitevecpeer: %s\n", res.Versions)

	schema := fmt.Sprintf(`
CREATE TABLE docs(id INTEGER PRIMARY KEY, content TEXT NOT NULL);
CREATE VIRTUAL TABLE vec_docs USING vec0(embedding float[%d] distance_metric=cosine);
CREATE VIRTUAL TABLE fts_docs USING fts5(content, content='docs', content_rowid='id');`, d.Dim)
	if err := c.Exec(schema); err != nil {
		c.Close()
		return res, fmt.Errorf("schema: %w", err)
	}

	// Ingest.
	start := time.Now()
	insDoc, _, err := c.Prepare(`INSERT INTO docs(id, content) VALUES (?, ?)`)
	if err != nil {
		return res, err
	}
	insVec, _, err := c.Prepare(`INSERT INTO vec_docs(rowid, embedding) VALUES (?, ?)`)
	if err != nil {
		return res, err
	}
	insFTS, _, err := c.Prepare(`INSERT INTO fts_docs(rowid, content) VALUES (?, ?)`)
	if err != nil {
		return res, err
	}
	for lo := 0; lo < d.N; lo += batch {
		hi := min(lo+batch, d.N)
		if err := c.Exec(`BEGIN IMMEDIATE`); err != nil {
			return res, err
		}
		for i := lo; i < hi; i++ {
			blob, err := sqlite_vec.SerializeFloat32(d.Docs[i])
			if err != nil {
				return res, err
			}
			if err := exec(insDoc, int64(i), d.DocText[i]); err != nil {
				return res, fmt.Errorf("insert doc %d: %w", i, err)
			}
			if err := exec(insVec, int64(i), blob); err != nil {
				return res, fmt.Errorf("insert vec %d: %w", i, err)
			}
			if err := exec(insFTS, int64(i), d.DocText[i]); err != nil {
				return res, fmt.Errorf("insert fts %d: %w", i, err)
			}
		}
		if err := c.Exec(`COMMIT`); err != nil {
			return res, err
		}
		if hi%(batch*10) == 0 || hi == d.N {
			fmt.Fprintf(os.Stderr, "sqlitevecpeer: ingest %d/%d\n", hi, d.N)
		}
	}
	res.LoadS = time.Since(start).Seconds()
	res.IngestPerS = float64(d.N) / res.LoadS
	res.IngestNote = fmt.Sprintf("rowid table + vec0 + external-content FTS5, %d per transaction, WAL, synchronous=FULL", batch)
	insDoc.Close()
	insVec.Close()
	insFTS.Close()
	if err := c.Close(); err != nil {
		return res, err
	}

	// Reopen, as the edge store's bench does, then time queries.
	if c, err = open(); err != nil {
		return res, err
	}
	defer c.Close()
	vecStmt, _, err := c.Prepare(`SELECT rowid, distance FROM vec_docs WHERE embedding MATCH ? AND k = 10 ORDER BY distance`)
	if err != nil {
		return res, fmt.Errorf("prepare vector query: %w", err)
	}
	defer vecStmt.Close()
	hybStmt, _, err := c.Prepare(hybridSQL)
	if err != nil {
		return res, fmt.Errorf("prepare hybrid query: %w", err)
	}
	defer hybStmt.Close()
	res.HasHybrid = true
	res.HybridNote = "FTS5 (OR of the query words, bm25 top 10) + vec0 top 10, RRF k=60 weights 0.3/0.7 in SQL"

	var vec, hyb []float64
	found, total := 0, 0
	for qi := range queries + 5 {
		q := qi % queries
		blob, _ := sqlite_vec.SerializeFloat32(d.Queries[q])
		t := time.Now()
		var got []int32
		if err := bindRows(vecStmt, func(s *sqlite3.Stmt) { got = append(got, int32(s.ColumnInt64(0))) }, blob); err != nil {
			return res, fmt.Errorf("vector query: %w", err)
		}
		dv := time.Since(t)
		t = time.Now()
		n := 0
		if err := bindRows(hybStmt, func(*sqlite3.Stmt) { n++ }, blob, ftsOr(d.QueryText[q])); err != nil {
			return res, fmt.Errorf("hybrid query: %w", err)
		}
		dh := time.Since(t)
		if qi < 5 {
			continue
		}
		vec, hyb = append(vec, ms(dv)), append(hyb, ms(dh))
		want := d.Truth[q][:min(10, len(d.Truth[q]))]
		for _, id := range got {
			if slices.Contains(want, id) {
				found++
			}
		}
		total += len(want)
	}
	res.VectorP50, res.VectorP99 = percentile(vec, 50), percentile(vec, 99)
	res.HybridP50, res.HybridP99 = percentile(hyb, 50), percentile(hyb, 99)
	if total > 0 {
		res.RecallAt10 = float64(found) / float64(total)
	}
	res.RSSMB = peakRSSMB()
	return res, nil
}

// ftsOr quotes each word of text and joins them with OR: a literal query
// matching documents with any of the words.
func ftsOr(text string) string {
	var parts []string
	for _, w := range strings.Fields(text) {
		parts = append(parts, `"`+strings.ReplaceAll(w, `"`, `""`)+`"`)
	}
	return strings.Join(parts, " OR ")
}

func bind(s *sqlite3.Stmt, args ...any) error {
	if err := s.Reset(); err != nil {
		return err
	}
	for i, a := range args {
		var err error
		switch v := a.(type) {
		case int64:
			err = s.BindInt64(i+1, v)
		case string:
			err = s.BindText(i+1, v)
		case []byte:
			err = s.BindBlob(i+1, v)
		default:
			err = fmt.Errorf("bind %T", a)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func exec(s *sqlite3.Stmt, args ...any) error {
	if err := bind(s, args...); err != nil {
		return err
	}
	return s.Exec()
}

func bindRows(s *sqlite3.Stmt, row func(*sqlite3.Stmt), args ...any) error {
	if err := bind(s, args...); err != nil {
		return err
	}
	for s.Step() {
		row(s)
	}
	return s.Err()
}

func query(c *sqlite3.Conn, sql string, row func(*sqlite3.Stmt)) error {
	s, _, err := c.Prepare(sql)
	if err != nil {
		return err
	}
	defer s.Close()
	return bindRows(s, row)
}

// dataset is the datagen format (see shared/bench/datagen/main.go).
type dataset struct {
	N, Q, Dim, K int
	Docs         [][]float32
	DocText      []string
	Queries      [][]float32
	QueryText    []string
	Truth        [][]int32
}

func loadDataset(dir string) (*dataset, error) {
	var meta struct {
		N, Q, Dim, K int
		Metric       string
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, err
	}
	if meta.Metric != "cosine" || meta.N <= 0 || meta.Dim <= 0 || meta.K <= 0 {
		return nil, fmt.Errorf("meta.json: unsupported %+v", meta)
	}
	d := &dataset{N: meta.N, Q: meta.Q, Dim: meta.Dim, K: meta.K}
	if d.Docs, err = readF32(filepath.Join(dir, "docs.f32"), d.N, d.Dim); err != nil {
		return nil, err
	}
	if d.Queries, err = readF32(filepath.Join(dir, "queries.f32"), d.Q, d.Dim); err != nil {
		return nil, err
	}
	if d.DocText, err = readLines(filepath.Join(dir, "docs.txt"), d.N); err != nil {
		return nil, err
	}
	if d.QueryText, err = readLines(filepath.Join(dir, "queries.txt"), d.Q); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "truth.i32"))
	if err != nil {
		return nil, err
	}
	if len(raw) != d.Q*d.K*4 {
		return nil, fmt.Errorf("truth.i32: %d bytes, want %d", len(raw), d.Q*d.K*4)
	}
	d.Truth = make([][]int32, d.Q)
	for q := range d.Truth {
		d.Truth[q] = make([]int32, d.K)
		for i := range d.K {
			d.Truth[q][i] = int32(binary.LittleEndian.Uint32(raw[(q*d.K+i)*4:]))
		}
	}
	return d, nil
}

func readF32(path string, rows, dim int) ([][]float32, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) != rows*dim*4 {
		return nil, fmt.Errorf("%s: %d bytes, want %d", path, len(raw), rows*dim*4)
	}
	flat := make([]float32, rows*dim)
	for i := range flat {
		flat[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[i*4:]))
	}
	out := make([][]float32, rows)
	for i := range out {
		out[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return out, nil
}

func readLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	out := make([]string, 0, n)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("%s: %d lines, want %d", path, len(out), n)
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the nearest-rank-below percentile used by hosts/native.Bench.
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
