package native

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Dataset is a benchmark dataset in the format of shared/bench/datagen:
// unit document vectors with text, queries, and the exact top-K answers.
type Dataset struct {
	N, Q, Dim, K int
	Docs         [][]float32
	DocText      []string
	Queries      [][]float32
	QueryText    []string
	Truth        [][]int32 // Truth[q] = the K nearest document indices, best first
}

// LoadDataset reads a datagen directory.
func LoadDataset(dir string) (*Dataset, error) {
	var meta struct {
		N, Q, Dim, K int
		Metric       string
	}
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, fmt.Errorf("dataset: meta.json: %w", err)
	}
	if meta.N <= 0 || meta.Dim <= 0 || meta.Q < 0 || meta.K <= 0 || meta.Metric != "cosine" {
		return nil, fmt.Errorf("dataset: meta.json: unsupported %+v", meta)
	}
	d := &Dataset{N: meta.N, Q: meta.Q, Dim: meta.Dim, K: meta.K}
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
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if len(raw) != d.Q*d.K*4 {
		return nil, fmt.Errorf("dataset: truth.i32 has %d bytes, want %d", len(raw), d.Q*d.K*4)
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
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if len(raw) != rows*dim*4 {
		return nil, fmt.Errorf("dataset: %s has %d bytes, want %d", path, len(raw), rows*dim*4)
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
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	out := make([]string, 0, n)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", path, err)
	}
	if len(out) != n {
		return nil, fmt.Errorf("dataset: %s has %d lines, want %d", path, len(out), n)
	}
	return out, nil
}

// GenerateDataset makes a dataset like datagen's (clustered unit vectors
// with topic words), with exact answers computed by brute force.
func GenerateDataset(n, q, dim int, seed uint64) *Dataset {
	const topics = 64
	r := rand.New(rand.NewPCG(seed, 7))
	noise := func(scale float64) []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(r.NormFloat64() * scale / math.Sqrt(float64(dim)))
		}
		return v
	}
	centers := make([][]float32, topics)
	for i := range centers {
		centers[i] = noise(1)
	}
	words := make([]string, topics*16+512)
	for i := range words {
		words[i] = fmt.Sprintf("w%x", uint32(i)*2654435761)
	}
	sample := func(count, nwords int) ([][]float32, []string) {
		vs, ts := make([][]float32, count), make([]string, count)
		for i := range vs {
			t := r.IntN(topics)
			v := noise(0.6)
			for j := range v {
				v[j] += centers[t][j]
			}
			vs[i] = unitVec(v)
			ws := make([]string, nwords)
			for j := range ws {
				if j%2 == 0 {
					ws[j] = words[t*16+r.IntN(16)]
				} else {
					ws[j] = words[r.IntN(len(words))]
				}
			}
			ts[i] = strings.Join(ws, " ")
		}
		return vs, ts
	}
	d := &Dataset{N: n, Q: q, Dim: dim, K: 10}
	d.Docs, d.DocText = sample(n, 20)
	d.Queries, d.QueryText = sample(q, 4)
	d.Truth = make([][]int32, q)
	for qi, qv := range d.Queries {
		d.Truth[qi] = exactTopK(d.Docs, qv, d.K)
	}
	return d
}

func unitVec(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	f := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= f
	}
	return v
}

func exactTopK(docs [][]float32, q []float32, k int) []int32 {
	type hit struct {
		i int32
		s float32
	}
	top := make([]hit, 0, k+1)
	for i, d := range docs {
		var s float32
		for j := range d {
			s += d[j] * q[j]
		}
		if len(top) == k && s <= top[k-1].s {
			continue
		}
		top = append(top, hit{int32(i), s})
		for j := len(top) - 1; j > 0 && (top[j].s > top[j-1].s || top[j].s == top[j-1].s && top[j].i < top[j-1].i); j-- {
			top[j], top[j-1] = top[j-1], top[j]
		}
		if len(top) > k {
			top = top[:k]
		}
	}
	out := make([]int32, len(top))
	for i, h := range top {
		out[i] = h.i
	}
	return out
}
