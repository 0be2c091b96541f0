package tests

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/athena-edge/athena-edge/hosts/wasm/abi"
)

// Benchmarks of the core wasm module for docs/BENCHMARKS.md:
//
//	go test -run '^$' -bench 'Wasm' -benchtime 2s ./tests/
//
// The module is built by the benchmark (as by the differential test).

// BenchmarkWasmModuleSize reports the module's size, raw and gzip -9; the
// loop itself does nothing.
func BenchmarkWasmModuleSize(b *testing.B) {
	wasm, _ := coreWasm(b)
	var gz bytes.Buffer
	w, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	require.NoError(b, err)
	_, err = w.Write(wasm)
	require.NoError(b, err)
	require.NoError(b, w.Close())
	for b.Loop() {
	}
	b.ReportMetric(float64(len(wasm)), "bytes")
	b.ReportMetric(float64(gz.Len()), "gzip-bytes")
}

// BenchmarkWasmInstantiate loads and closes the module: cold compiles it
// each time (a fresh runtime, no cache), warm takes the machine code from
// an in-memory compilation cache, so it measures instantiation and the Go
// runtime's _initialize.
func BenchmarkWasmInstantiate(b *testing.B) {
	ctx := context.Background()
	wasm, _ := coreWasm(b)
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			m, err := native.LoadCoreModule(ctx, wasm, native.CoreModuleConfig{})
			require.NoError(b, err)
			require.NoError(b, m.Close(ctx))
		}
	})
	b.Run("warm", func(b *testing.B) {
		cache := wazero.NewCompilationCache()
		defer cache.Close(ctx)
		m, err := native.LoadCoreModule(ctx, wasm, native.CoreModuleConfig{Cache: cache})
		require.NoError(b, err)
		require.NoError(b, m.Close(ctx))
		for b.Loop() {
			m, err := native.LoadCoreModule(ctx, wasm, native.CoreModuleConfig{Cache: cache})
			require.NoError(b, err)
			require.NoError(b, m.Close(ctx))
		}
	})
}

func benchModule(b *testing.B) *native.CoreModule {
	b.Helper()
	ctx := context.Background()
	wasm, cache := coreWasm(b)
	m, err := native.LoadCoreModule(ctx, wasm, native.CoreModuleConfig{Cache: cache})
	require.NoError(b, err)
	b.Cleanup(func() { _ = m.Close(ctx) })
	return m
}

// BenchmarkWasmCall is the per-call cost of a trivial op (quality) and of
// cosine over two 768-dim vectors sent as JSON arrays and as base64: the
// native dispatcher (JSON in and out, no wasm) against the module (plus
// malloc, copy, call, free).
func BenchmarkWasmCall(b *testing.B) {
	ctx := context.Background()
	e := core.NewHashEmbedder(core.HashEmbedderConfig{})
	va, vb := e.EmbedOne("use pgx for postgres"), e.EmbedOne("postgres driver")
	reqs := []struct {
		name string
		req  []byte
	}{
		{"quality", request(b, abi.OpQuality, abi.QualityArgs{Usefulness: 0.5, Confidence: 1, AccessCount: 3})},
		{"cosine768", request(b, abi.OpCosine, abi.CosineArgs{A: va, B: vb})},
		{"cosine768b64", request(b, abi.OpCosine, `{"a":"`+abi.EncodeVector(va)+`","b":"`+abi.EncodeVector(vb)+`"}`)},
	}
	for _, r := range reqs {
		b.Run(r.name+"/native", func(b *testing.B) {
			d := abi.NewDispatcher()
			for b.Loop() {
				d.Call(r.req)
			}
		})
		b.Run(r.name+"/wasm", func(b *testing.B) {
			m := benchModule(b)
			for b.Loop() {
				if _, err := m.Call(ctx, r.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWasmSearch is one hybrid search (weighted fusion, explain) over
// 1,000 memories loaded once with corpus.load (768-dim hash embeddings),
// native against wasm.
func BenchmarkWasmSearch(b *testing.B) {
	ctx := context.Background()
	words := []string{"go", "postgres", "pgx", "wasm", "wazero", "sqlite", "search", "fusion", "cosine", "memory", "edge",
		"sync", "deploy", "test", "index", "vector", "token", "browser", "tab", "offline"}
	corpus := abi.CorpusArgs{Project: abi.CorpusProject{Name: "bench"}, NowMS: t0.UnixMilli()}
	for i := range 1000 {
		corpus.Memories = append(corpus.Memories, core.Memory{Content: fmt.Sprintf("memory %d about %s and %s with %s",
			i, words[i%len(words)], words[(i*7)%len(words)], words[(i*13)%len(words)])})
	}
	load := request(b, abi.OpCorpusLoad, corpus)
	search := request(b, abi.OpSearch, abi.SearchArgs{Corpus: 1, Query: abi.Query{Text: "postgres search in the browser", Explain: true}})
	b.Run("native", func(b *testing.B) {
		d := abi.NewDispatcher()
		require.NoError(b, abi.DecodeResponse(d.Call(load), nil))
		for b.Loop() {
			d.Call(search)
		}
	})
	b.Run("wasm", func(b *testing.B) {
		m := benchModule(b)
		resp, err := m.Call(ctx, load)
		require.NoError(b, err)
		require.NoError(b, abi.DecodeResponse(resp, nil))
		for b.Loop() {
			if _, err := m.Call(ctx, search); err != nil {
				b.Fatal(err)
			}
		}
	})
}
