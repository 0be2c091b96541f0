package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"

	"github.com/athena-edge/athena-edge/core"
	"github.com/athena-edge/athena-edge/hosts/native"
	"github.com/athena-edge/athena-edge/hosts/wasm/abi"
)

// The differential test of the two core hosts (STYLE §2 item 13): every
// request goes to an abi.Dispatcher compiled natively and to the same
// dispatcher compiled to wasip1 and run by hosts/native under wazero, and
// the two responses must be byte-identical. The module is built by the test
// itself, so CI needs no build step.

var wasmBuild struct {
	once  sync.Once
	bytes []byte
	cache wazero.CompilationCache // shared by every load in this test binary
	err   error
}

// coreWasm builds hosts/wasm with the flags of scripts/build-wasm.sh, once
// per test binary, and compiles it once into a shared compilation cache.
func coreWasm(tb testing.TB) ([]byte, wazero.CompilationCache) {
	tb.Helper()
	wasmBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "athena-core-wasm-")
		if err != nil {
			wasmBuild.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "core.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-ldflags=-s -w",
			"-o", out, module+"/hosts/wasm")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			wasmBuild.err = fmt.Errorf("go build hosts/wasm: %w\n%s", err, b)
			return
		}
		if wasmBuild.bytes, wasmBuild.err = os.ReadFile(out); wasmBuild.err != nil {
			return
		}
		wasmBuild.cache = wazero.NewCompilationCache()
		if base, err := os.UserCacheDir(); err == nil {
			// sqlitevec's default cache: reruns and other test binaries
			// skip the compile (seconds, a minute under -race).
			if c, err := wazero.NewCompilationCacheWithDir(filepath.Join(base, "athena-edge", "wazero")); err == nil {
				wasmBuild.cache = c
			}
		}
		ctx := context.Background()
		m, err := native.LoadCoreModule(ctx, wasmBuild.bytes, native.CoreModuleConfig{Cache: wasmBuild.cache})
		if err != nil {
			wasmBuild.err = err
			return
		}
		wasmBuild.err = m.Close(ctx)
	})
	require.NoError(tb, wasmBuild.err)
	return wasmBuild.bytes, wasmBuild.cache
}

// diffHarness sends each request to both hosts.
type diffHarness struct {
	native *abi.Dispatcher
	wasm   *native.CoreModule
}

func newDiffHarness(t *testing.T) *diffHarness {
	t.Helper()
	ctx := context.Background()
	b, cache := coreWasm(t)
	m, err := native.LoadCoreModule(ctx, b, native.CoreModuleConfig{Cache: cache, Stderr: os.Stderr})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, m.Close(ctx)) })
	return &diffHarness{native: abi.NewDispatcher(), wasm: m}
}

// request encodes op and args; args may be a string or json.RawMessage of
// raw JSON, or any value to marshal.
func request(t testing.TB, op string, args any) []byte {
	t.Helper()
	switch a := args.(type) {
	case string:
		return []byte(`{"op":` + quote(op) + `,"args":` + a + `}`)
	case json.RawMessage:
		return []byte(`{"op":` + quote(op) + `,"args":` + string(a) + `}`)
	}
	req, err := abi.EncodeRequest(op, args)
	require.NoError(t, err)
	return req
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// diff sends req to both hosts, requires identical responses and returns
// the response.
func (h *diffHarness) diff(t testing.TB, req []byte) []byte {
	t.Helper()
	want := h.native.Call(req)
	got, err := h.wasm.Call(context.Background(), req)
	require.NoError(t, err, "wasm call of %s", req)
	if !bytes.Equal(want, got) {
		t.Fatalf("native and wasm differ\nrequest: %s\nnative:  %s\nwasm:    %s", truncate(req), truncate(want), truncate(got))
	}
	return got
}

func truncate(b []byte) string {
	if len(b) > 4000 {
		return string(b[:4000]) + "..."
	}
	return string(b)
}

// code returns the error code of a response, "" for a result.
func code(t testing.TB, resp []byte) string {
	t.Helper()
	err := abi.DecodeResponse(resp, nil)
	if err == nil {
		return ""
	}
	var ae *abi.Error
	require.True(t, errors.As(err, &ae), "%v", err)
	return ae.Code
}

// ---- fixtures ----

var (
	t0      = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	diffP   = core.Project{ID: core.ProjectIDFor("diff"), Name: "diff", Path: "/diff", EmbeddingModel: core.HashEmbedderModel, EmbeddingDim: 4}
	nan32   = float32(math.NaN())
	inf32   = float32(math.Inf(1))
	badUTF8 = abi.Text("caf\xe9 \xff\xfe ok")
)

func memID(name string) core.ID { return core.DeriveID(t0, "diff", name) }

func diffMemory() core.Memory {
	return core.Memory{ID: memID("m"), ProjectID: diffP.ID, Content: "Use pgx for Postgres", Embedding: []float32{1, 0, 0.5, 0},
		Tags: []string{" Go ", "go", "DB", ""}, Usefulness: 0.5, Confidence: 1, CreatedAt: t0, UpdatedAt: t0}
}

func payload(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := core.EncodePayload(v)
	require.NoError(t, err)
	return b
}

type diffCase struct {
	name string
	op   string
	args any    // raw JSON string or a value
	code string // expected error code, "" for a result
	// status, if set, is the expected status of a merge_memory result.
	status core.Status
}

func fixedCases(t testing.TB) []diffCase {
	mem := diffMemory()
	withMem := func(f func(m *core.Memory)) core.Memory {
		m := mem
		m.Tags = append([]string(nil), mem.Tags...)
		f(&m)
		return m
	}
	vm := func(name string, m core.Memory, code string) diffCase {
		return diffCase{name: "validate_memory/" + name, op: abi.OpValidateMemory, args: abi.ValidateMemoryArgs{Memory: m, Project: diffP}, code: code}
	}
	cases := []diffCase{
		{name: "ops", op: abi.OpOps},
		{name: "ops/args", op: abi.OpOps, args: `{}`},
		{name: "unknown op", op: "nope", code: abi.CodeBadRequest},
		{name: "args not an object", op: abi.OpQuality, args: `[1,2]`, code: abi.CodeBadRequest},
		{name: "unknown field", op: abi.OpCosine, args: `{"a":[1],"c":[1]}`, code: abi.CodeBadRequest},
		{name: "bad base64 vector", op: abi.OpCosine, args: `{"a":"!!","b":[1]}`, code: abi.CodeBadRequest},
		{name: "vector of 3 bytes", op: abi.OpCosine, args: `{"a":"AAAA","b":[1]}`, code: abi.CodeBadRequest},

		vm("valid", mem, ""),
		vm("defaults", withMem(func(m *core.Memory) { m.MemoryType, m.Domain, m.State, m.EmbeddingModel = "", "", "", "" }), ""),
		vm("empty content", withMem(func(m *core.Memory) { m.Content = " \t" }), abi.CodeInvalid),
		vm("NUL in content", withMem(func(m *core.Memory) { m.Content = "a\x00b" }), abi.CodeInvalid),
		vm("content too long", withMem(func(m *core.Memory) { m.Content = strings.Repeat("x", core.DefaultMaxContentBytes+1) }), abi.CodeInvalid),
		vm("unknown type", withMem(func(m *core.Memory) { m.MemoryType = "gossip" }), abi.CodeInvalid),
		vm("unknown state", withMem(func(m *core.Memory) { m.State = "Consolidated" }), abi.CodeInvalid),
		vm("tag with comma", withMem(func(m *core.Memory) { m.Tags = []string{"a,b"} }), abi.CodeInvalid),
		vm("tag with control", withMem(func(m *core.Memory) { m.Tags = []string{"a\u0007"} }), abi.CodeInvalid),
		vm("usefulness over 1", withMem(func(m *core.Memory) { m.Usefulness = 1.5 }), abi.CodeInvalid),
		vm("negative access", withMem(func(m *core.Memory) { m.AccessCount = -1 }), abi.CodeInvalid),
		vm("bad superseded_by", withMem(func(m *core.Memory) { m.SupersededBy = "x" }), abi.CodeInvalid),
		vm("model mismatch", withMem(func(m *core.Memory) { m.EmbeddingModel = "other" }), abi.CodeDimMismatch),
		vm("wrong dims", withMem(func(m *core.Memory) { m.Embedding = []float32{1, 2, 3} }), abi.CodeDimMismatch),
		vm("no embedding", withMem(func(m *core.Memory) { m.Embedding = nil }), abi.CodeDimMismatch),
		vm("zero vector", withMem(func(m *core.Memory) { m.Embedding = []float32{0, 0, 0, 0} }), abi.CodeInvalid),
		{name: "validate_memory/NaN", op: abi.OpValidateMemory, args: abi.ValidateMemoryArgs{Memory: mem, Project: diffP, Embedding: abi.Vector{1, nan32, 0, 0}}, code: abi.CodeInvalid},
		{name: "validate_memory/Inf", op: abi.OpValidateMemory, args: abi.ValidateMemoryArgs{Memory: mem, Project: diffP, Embedding: abi.Vector{1, 0, -inf32, 0}}, code: abi.CodeInvalid},
		{name: "validate_memory/invalid UTF-8", op: abi.OpValidateMemory, args: abi.ValidateMemoryArgs{Memory: mem, Project: diffP, Content: &badUTF8}, code: abi.CodeInvalid},
		{name: "validate_memory/tight limits", op: abi.OpValidateMemory, args: abi.ValidateMemoryArgs{Memory: mem, Project: diffP, Limits: abi.Limits{MaxTags: 1}}, code: abi.CodeInvalid},

		{name: "validate_project/defaults", op: abi.OpValidateProject, args: abi.ValidateProjectArgs{Project: core.Project{Name: "p", Path: "/p", EmbeddingModel: "m"}}},
		{name: "validate_project/dim too big", op: abi.OpValidateProject, args: abi.ValidateProjectArgs{Project: core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 5000}}, code: abi.CodeInvalid},
		{name: "validate_project/no name", op: abi.OpValidateProject, args: abi.ValidateProjectArgs{Project: core.Project{Path: "/p", EmbeddingModel: "m"}}, code: abi.CodeInvalid},

		{name: "quality/seed", op: abi.OpQuality, args: abi.QualityArgs{Usefulness: 0.5, Confidence: 1, AccessCount: 3}},
		{name: "quality/capped access", op: abi.OpQuality, args: abi.QualityArgs{Usefulness: 0.1, Confidence: 0.7, AccessCount: 1 << 40}},
		{name: "quality/negative access", op: abi.OpQuality, args: abi.QualityArgs{Usefulness: 0.3, Confidence: 0.3, AccessCount: -5}},
		{name: "quality/NaN in", op: abi.OpQuality, args: `{"usefulness":"NaN","confidence":1}`},
		{name: "quality/Inf in", op: abi.OpQuality, args: `{"usefulness":"+Inf","confidence":"-Inf"}`},

		{name: "cosine/same", op: abi.OpCosine, args: abi.CosineArgs{A: abi.Vector{1, 2, 3}, B: abi.Vector{1, 2, 3}}},
		{name: "cosine/thirds", op: abi.OpCosine, args: abi.CosineArgs{A: abi.Vector{0.1, 0.2, 0.3}, B: abi.Vector{0.3, -0.2, 0.1}}},
		{name: "cosine/lengths differ", op: abi.OpCosine, args: abi.CosineArgs{A: abi.Vector{1, 2}, B: abi.Vector{1, 2, 3}}},
		{name: "cosine/zero", op: abi.OpCosine, args: abi.CosineArgs{A: abi.Vector{0, 0}, B: abi.Vector{1, 2}}},
		{name: "cosine/empty", op: abi.OpCosine, args: `{"a":[],"b":[]}`},
		{name: "cosine/NaN", op: abi.OpCosine, args: abi.CosineArgs{A: abi.Vector{1, nan32}, B: abi.Vector{1, 2}}},
		{name: "cosine/Inf", op: abi.OpCosine, args: abi.CosineArgs{A: abi.Vector{1, inf32}, B: abi.Vector{1, 2}}},
		{name: "cosine/subnormal", op: abi.OpCosine, args: abi.CosineArgs{A: abi.Vector{1e-45, 2e-45}, B: abi.Vector{3e-45, 1e-45}}},
		{name: "cosine/huge", op: abi.OpCosine, args: abi.CosineArgs{A: abi.Vector{3e38, 3e38}, B: abi.Vector{3e38, -1e38}}},

		{name: "tokenize/ascii", op: abi.OpTokenize, args: abi.TokenizeArgs{Text: "Use PGX, for Postgres -- use pgx!"}},
		{name: "tokenize/unicode", op: abi.OpTokenize, args: abi.TokenizeArgs{Text: "Ça marche: straße İstanbul 東京 café cafe\u0301 🙂 x²"}},
		{name: "tokenize/invalid UTF-8", op: abi.OpTokenize, args: abi.TokenizeArgs{Text: badUTF8}},
		{name: "tokenize/empty", op: abi.OpTokenize, args: abi.TokenizeArgs{}},
		{name: "tokenize/long word", op: abi.OpTokenize, args: abi.TokenizeArgs{Text: abi.Text(strings.Repeat("é", 200) + " b")}},
		{name: "tokenize/many tokens", op: abi.OpTokenize, args: abi.TokenizeArgs{Text: abi.Text(strings.Repeat("w1 w2 w3 ", 2000))}},

		{name: "bm25/default", op: abi.OpBM25, args: abi.BM25Args{Query: "pgx postgres", Doc: "use pgx for postgres, pgx is fast", Docs: 10, TotalLen: 80, DF: map[string]int64{"pgx": 2, "postgres": 5}}},
		{name: "bm25/params", op: abi.OpBM25, args: abi.BM25Args{K1: 2, B: 0.3, Query: "a b a", Doc: "a a a b c", Docs: 3, TotalLen: 9, DF: map[string]int64{"a": 3}}},
		{name: "bm25/bad params", op: abi.OpBM25, args: `{"k1":"NaN","b":7,"query":"a","doc":"a","docs":1,"total_len":1}`},
		{name: "bm25/inconsistent stats", op: abi.OpBM25, args: abi.BM25Args{QueryTerms: []string{"x", "x", "y"}, DocTF: map[string]int{"x": 3, "y": 1}, DocLen: -4, Docs: -1, TotalLen: 0, DF: map[string]int64{"x": 9}}},
		{name: "bm25/no match", op: abi.OpBM25, args: abi.BM25Args{Query: "zzz", Doc: "a b c", Docs: 3, TotalLen: 9}},

		{name: "embed/default dim", op: abi.OpEmbed, args: abi.EmbedArgs{Text: "Use pgx for Postgres"}},
		{name: "embed/dim 1", op: abi.OpEmbed, args: abi.EmbedArgs{Text: "a b", Dim: 1}},
		{name: "embed/dim 7", op: abi.OpEmbed, args: abi.EmbedArgs{Text: "straße İstanbul 東京", Dim: 7}},
		{name: "embed/empty", op: abi.OpEmbed, args: abi.EmbedArgs{Dim: 16}},
		{name: "embed/invalid UTF-8", op: abi.OpEmbed, args: abi.EmbedArgs{Text: badUTF8, Dim: 32}},
	}
	for _, from := range append(core.States(), "bogus") {
		for _, to := range append(core.States(), "bogus") {
			c := diffCase{name: fmt.Sprintf("check_transition/%s-%s", from, to), op: abi.OpCheckTransition, args: abi.CheckTransitionArgs{From: from, To: to}}
			switch err := core.CheckTransition(from, to); {
			case errors.Is(err, core.ErrInvalidTransition):
				c.code = abi.CodeInvalidTransition
			case err != nil:
				c.code = abi.CodeInvalid
			}
			cases = append(cases, c)
		}
	}
	return append(cases, mergeCases(t)...)
}

func mergeCases(t testing.TB) []diffCase {
	cur := diffMemory()
	cur.State = core.StateConsolidated
	cur.Version = core.Stamp{HLC: core.MakeHLC(t0.UnixMilli(), 1), Device: "a"}
	cur.StateVersion = core.Stamp{HLC: core.MakeHLC(t0.UnixMilli(), 2), Device: "a"}
	cur.AccessByDevice = map[string]int64{"a": 2, "b": 1}
	cur.AccessCount = 3
	cur.LastAccessed = t0.Add(time.Hour)
	cur.QualityScore = core.Quality(cur.Usefulness, cur.Confidence, 3)
	put := diffMemory()
	put.Content, put.Tags, put.Embedding = "Use pgx v5 for Postgres", []string{"go"}, nil
	ch := func(kind core.Kind, hlc core.HLC, dev string, p any) core.Change {
		return core.Change{Device: dev, Seq: 7, HLC: hlc, Kind: kind, ProjectID: diffP.ID, EntityID: cur.ID, Payload: payload(t, p), Vector: []float32{0, 1, 0, 0}}
	}
	later, earlier := core.MakeHLC(t0.UnixMilli()+1000, 0), core.MakeHLC(t0.UnixMilli()-1000, 0)
	at := t0.UnixMilli() + 5000
	mc := func(name string, c *core.Memory, tomb bool, change core.Change, want core.Status) diffCase {
		return diffCase{name: "merge_memory/" + name, op: abi.OpMergeMemory, args: abi.MergeMemoryArgs{Current: c, Tombstoned: tomb, Change: change}, status: want}
	}
	return []diffCase{
		mc("put creates", nil, false, ch(core.KindMemoryPut, later, "b", put), core.StatusApplied),
		mc("put newer", &cur, false, ch(core.KindMemoryPut, later, "b", put), core.StatusApplied),
		mc("put older", &cur, false, ch(core.KindMemoryPut, earlier, "b", put), core.StatusSuperseded),
		mc("put same stamp", &cur, false, ch(core.KindMemoryPut, cur.Version.HLC, "a", put), core.StatusSuperseded),
		mc("put bad payload", &cur, false, core.Change{Device: "b", HLC: later, Kind: core.KindMemoryPut, EntityID: cur.ID, Payload: json.RawMessage(`[1]`)}, core.StatusRejected),
		mc("put on tombstone", nil, true, ch(core.KindMemoryPut, later, "b", put), core.StatusSuperseded),
		mc("access new device", &cur, false, ch(core.KindMemoryAccess, later, "c", core.AccessPayload{Count: 4, AtMS: at}), core.StatusApplied),
		mc("access grows", &cur, false, ch(core.KindMemoryAccess, later, "a", core.AccessPayload{Count: 3, AtMS: at}), core.StatusApplied),
		mc("access later only", &cur, false, ch(core.KindMemoryAccess, later, "a", core.AccessPayload{Count: 2, AtMS: t0.Add(2 * time.Hour).UnixMilli()}), core.StatusApplied),
		mc("access stale", &cur, false, ch(core.KindMemoryAccess, later, "a", core.AccessPayload{Count: 2, AtMS: at}), core.StatusSuperseded),
		mc("access missing", nil, false, ch(core.KindMemoryAccess, later, "a", core.AccessPayload{Count: 1, AtMS: at}), core.StatusRejected),
		mc("state legal", &cur, false, ch(core.KindMemoryState, later, "b", core.StatePayload{From: core.StateConsolidated, To: core.StateLabile, AtMS: at}), core.StatusApplied),
		mc("state illegal", &cur, false, ch(core.KindMemoryState, later, "b", core.StatePayload{From: core.StateSuperseded, To: core.StateLabile, AtMS: at}), core.StatusRejected),
		mc("state unknown", &cur, false, ch(core.KindMemoryState, later, "b", core.StatePayload{From: "x", To: core.StateLabile, AtMS: at}), core.StatusRejected),
		mc("supersede without target", &cur, false, ch(core.KindMemoryState, later, "b", core.StatePayload{From: core.StateConsolidated, To: core.StateSuperseded, AtMS: at}), core.StatusRejected),
		mc("supersede", &cur, false, ch(core.KindMemoryState, later, "b", core.StatePayload{From: core.StateConsolidated, To: core.StateSuperseded, SupersededBy: memID("other"), AtMS: at}), core.StatusApplied),
		mc("state older", &cur, false, ch(core.KindMemoryState, earlier, "b", core.StatePayload{From: core.StateConsolidated, To: core.StateArchived, AtMS: at}), core.StatusSuperseded),
		mc("state older consolidates later", &cur, false, ch(core.KindMemoryState, earlier, "b", core.StatePayload{From: core.StateLabile, To: core.StateConsolidated, AtMS: at}), core.StatusApplied),
		mc("delete", &cur, false, ch(core.KindMemoryDelete, later, "b", struct{}{}), core.StatusApplied),
		mc("delete tombstoned", nil, true, ch(core.KindMemoryDelete, later, "b", struct{}{}), core.StatusSuperseded),
		mc("unknown kind", &cur, false, ch("memory.frob", later, "b", struct{}{}), core.StatusRejected),
	}
}

// searchCorpus is a small corpus of varied memories.
func searchCorpus() abi.CorpusArgs {
	type m struct {
		content string
		typ     core.MemoryType
		tags    []string
		age     time.Duration
		useful  float64
	}
	day := 24 * time.Hour
	ms := []m{
		{"Use pgx for Postgres connections in Go", core.TypeDecision, []string{"go", "db"}, 2 * day, 0.9},
		{"pgvector HNSW index needs dimension at most 2000", core.TypeFact, []string{"db"}, 40 * day, 0.6},
		{"The deploy pipeline runs on Tuesdays", core.TypeProcedural, []string{"ops"}, 100 * day, 0.4},
		{"User prefers tabs over spaces", core.TypePreference, nil, 400 * day, 0.8},
		{"wazero runs the SQLite wasm build without cgo", core.TypeFact, []string{"go", "wasm"}, day, 0.5},
		{"Hybrid search fuses cosine similarity and BM25", core.TypeSemantic, []string{"search"}, 10 * day, 0.7},
		{"Debugged a flaky test in the sync loop today", core.TypeEpisodic, []string{"sync"}, 3 * day, 0.2},
		{"func Cosine(a, b []float32) float64", core.TypeCodeSnippet, []string{"go", "search"}, 5 * day, 0.5},
		{"Postgres tsvector keeps tokens verbatim", core.TypeFact, []string{"db", "search"}, 20 * day, 0.5},
		{"Reciprocal rank fusion uses k = 60", core.TypePattern, []string{"search"}, 60 * day, 0.3},
		{"Straße und Café: unicode tokens are lowercased", core.TypeContext, []string{"text"}, 7 * day, 0.5},
		{"use PGX for postgres connections in go", core.TypeFact, []string{"go"}, 0, 0.5},
	}
	now := t0.Add(500 * day)
	args := abi.CorpusArgs{Project: abi.CorpusProject{Name: "diff", EmbeddingDim: 32}, NowMS: now.UnixMilli()}
	for i, x := range ms {
		args.Memories = append(args.Memories, core.Memory{ID: core.DeriveID(now.Add(-x.age), "corpus", fmt.Sprint(i)), Content: x.content,
			MemoryType: x.typ, Tags: x.tags, CreatedAt: now.Add(-x.age), Usefulness: x.useful, Confidence: 0.9})
	}
	return args
}

func searchCases() []diffCase {
	c := searchCorpus()
	s := func(name string, q abi.Query, code string) diffCase {
		return diffCase{name: "search/" + name, op: abi.OpSearch, args: abi.SearchArgs{Inline: &c, Query: q}, code: code}
	}
	e := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 32})
	vec := abi.Vector(e.EmbedOne("postgres driver for go"))
	nanVec := append(abi.Vector(nil), vec...)
	nanVec[3] = nan32
	return []diffCase{
		s("weighted", abi.Query{Text: "pgx postgres", Explain: true}, ""),
		s("rrf", abi.Query{Text: "search fusion", Fusion: core.FusionRRF, Explain: true}, ""),
		s("rrf weights", abi.Query{Text: "go wasm", Fusion: core.FusionRRF, SemanticWeight: 0.2, KeywordWeight: 0.9, RRFK: 5}, ""),
		s("semantic only", abi.Query{Text: "postgres index", SemanticOnly: true, Explain: true}, ""),
		s("semantic only low threshold", abi.Query{Text: "postgres index", SemanticOnly: true, Threshold: -1}, ""),
		s("threshold hybrid", abi.Query{Text: "tokens", Threshold: 0.2, Explain: true}, ""),
		s("vector only", abi.Query{Embedding: vec, K: 3, Explain: true}, ""),
		s("vector and text", abi.Query{Embedding: vec, Text: "Tuesdays deploy", Explain: true}, ""),
		s("filters", abi.Query{Text: "go", Types: []core.MemoryType{core.TypeFact, core.TypeDecision}, Tags: []string{"GO"}, Explain: true}, ""),
		s("boosts", abi.Query{Text: "postgres search go", QualityBoost: 0.5, RecencyBoost: 0.4, Explain: true}, ""),
		s("half life", abi.Query{Text: "postgres", RecencyBoost: 1, HalfLife: map[core.MemoryType]time.Duration{core.TypeFact: time.Hour}, Explain: true}, ""),
		s("states", abi.Query{Text: "postgres", States: []core.State{core.StateUnconsolidated}}, ""),
		s("k 1", abi.Query{Text: "the", K: 1}, ""),
		s("exact", abi.Query{Text: "cosine", Exact: true, Explain: true}, ""),
		s("no match", abi.Query{Text: "zebra", SemanticOnly: true, Threshold: 0.99}, ""),
		s("unicode query", abi.Query{Text: "STRASSE straße café", Explain: true}, ""),
		s("NaN embedding", abi.Query{Embedding: nanVec}, abi.CodeInvalid),
		s("wrong dims", abi.Query{Embedding: abi.Vector{1, 0, 0}}, abi.CodeDimMismatch),
		s("bad fusion", abi.Query{Text: "x", Fusion: "max"}, abi.CodeInvalid),
		s("k too big", abi.Query{Text: "x", K: 100000}, abi.CodeInvalid),
		s("negative weight", abi.Query{Text: "x", SemanticWeight: -1}, abi.CodeInvalid),
		s("bad state", abi.Query{Text: "x", States: []core.State{"gone"}}, abi.CodeInvalid),
		s("invalid UTF-8 query", abi.Query{Text: badUTF8}, abi.CodeInvalid),
		{name: "search/bad corpus memory", op: abi.OpSearch, code: abi.CodeInvalid, args: abi.SearchArgs{Query: abi.Query{Text: "x"},
			Inline: &abi.CorpusArgs{Project: abi.CorpusProject{EmbeddingDim: 8}, Memories: []core.Memory{{Content: "ok"}, {Content: ""}}}}},
		{name: "search/corpus and inline", op: abi.OpSearch, code: abi.CodeBadRequest, args: abi.SearchArgs{Corpus: 1, Inline: &c, Query: abi.Query{Text: "x"}}},
		{name: "search/no corpus", op: abi.OpSearch, code: abi.CodeNotFound, args: abi.SearchArgs{Corpus: 99, Query: abi.Query{Text: "x"}}},
		{name: "search/with embeddings", op: abi.OpSearch, args: abi.SearchArgs{Inline: &c, Query: abi.Query{Text: "pgx", K: 2}, WithEmbeddings: true}},
	}
}

func consolidationCase() diffCase {
	now := t0.Add(90 * 24 * time.Hour)
	p := core.Project{ID: core.ProjectIDFor("plan"), Name: "plan", Path: "/plan", EmbeddingModel: core.HashEmbedderModel, EmbeddingDim: 16,
		ConsolidationInterval: time.Hour}
	e := core.NewHashEmbedder(core.HashEmbedderConfig{Dim: 16})
	mem := func(name, content string, state core.State, age time.Duration, useful float64, access int64) core.Memory {
		at := now.Add(-age)
		return core.Memory{ID: core.DeriveID(at, name), ProjectID: p.ID, Content: content, Embedding: e.EmbedOne(content),
			EmbeddingModel: core.HashEmbedderModel, MemoryType: core.TypeFact, Domain: "memory", Tags: []string{name},
			State: state, Usefulness: useful, Confidence: 1, AccessCount: access, CreatedAt: at, UpdatedAt: at, LastAccessed: at, LastRetrieved: at}
	}
	ms := []core.Memory{
		mem("a", "Use pgx for Postgres.", core.StateConsolidated, 48*time.Hour, 0.5, 3),
		mem("b", "use PGX for postgres", core.StateUnconsolidated, 2*time.Hour, 0.5, 1),
		mem("c", "use pgx for postgres!!", core.StateConsolidated, 30*time.Hour, 0.6, 0),
		mem("d", "Deploys run on Tuesdays", core.StateUnconsolidated, 3*time.Hour, 0.5, 0),
		mem("e", "Old unused note nobody reads", core.StateConsolidated, 60*24*time.Hour, 0.05, 0),
		mem("f", "Labile memory whose window closed", core.StateLabile, 10*24*time.Hour, 0.5, 2),
		mem("g", "Fresh memory", core.StateUnconsolidated, time.Minute, 0.5, 0),
	}
	ev := func(i int, session string, age time.Duration, content string, files ...string) core.Event {
		at := now.Add(-age)
		return core.Event{ID: core.DeriveID(at, "ev", fmt.Sprint(i)), ProjectID: p.ID, SessionID: session, Timestamp: at, EventType: "edit",
			Content: content, Context: core.EventContext{Files: files}, Confidence: 1, CreatedAt: at}
	}
	evs := []core.Event{
		ev(1, "s1", 5*time.Hour, "Opened core/search.go to fix fusion. Then more.", "core/search.go"),
		ev(2, "s1", 4*time.Hour+50*time.Minute, "Changed rrf ranks in core/search.go", "core/search.go"),
		ev(3, "s1", 4*time.Hour+40*time.Minute, "Ran the tests; all pass", "core/search.go", "core/search_test.go"),
		ev(4, "s2", 10*time.Minute, "Still working on sync", "sync/client.go"),
	}
	return diffCase{name: "plan_consolidation", op: abi.OpPlanConsolidation, args: abi.PlanConsolidationArgs{
		Project: p, Memories: ms, Events: evs, NowMS: now.UnixMilli(), CanEmbed: false}}
}

func TestWasmDiffFixtures(t *testing.T) {
	t.Parallel()
	h := newDiffHarness(t)
	cases := append(fixedCases(t), searchCases()...)
	cases = append(cases, consolidationCase())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.diff(t, request(t, tc.op, tc.args))
			assert.Equal(t, tc.code, code(t, resp), "%s", resp)
			if tc.status != "" {
				var eff struct {
					Status core.Status `json:"status"`
				}
				require.NoError(t, abi.DecodeResponse(resp, &eff))
				assert.Equal(t, tc.status, eff.Status, "%s", resp)
			}
		})
	}
}

// TestWasmDiffCorpus runs the stateful ops in the same order on both
// hosts.
func TestWasmDiffCorpus(t *testing.T) {
	t.Parallel()
	h := newDiffHarness(t)
	corpus := searchCorpus()
	resp := h.diff(t, request(t, abi.OpCorpusLoad, corpus))
	var loaded struct {
		Corpus uint32 `json:"corpus"`
	}
	require.NoError(t, abi.DecodeResponse(resp, &loaded))
	for _, q := range []abi.Query{{Text: "postgres"}, {Text: "search", Fusion: core.FusionRRF, Explain: true}, {Text: "go", SemanticOnly: true}} {
		h.diff(t, request(t, abi.OpSearch, abi.SearchArgs{Corpus: loaded.Corpus, Query: q}))
	}
	resp = h.diff(t, request(t, abi.OpCorpusDrop, abi.CorpusDropArgs{Corpus: loaded.Corpus}))
	assert.Empty(t, code(t, resp))
	resp = h.diff(t, request(t, abi.OpCorpusDrop, abi.CorpusDropArgs{Corpus: loaded.Corpus}))
	assert.Equal(t, abi.CodeNotFound, code(t, resp))
}

// ---- randomized ----

var diffVocab = strings.Fields("go postgres pgx wasm wazero sqlite search fusion cosine bm25 memory edge sync " +
	"deploy tuesday test flaky index vector token the a of and to café straße İstanbul 東京 naïve ÅNGSTRÖM x² 42 v1.2")

// diffRunes are pieces random texts are made of, including separators,
// combining marks, emoji and bytes that are not UTF-8.
var diffRunes = []string{" ", " ", ", ", ".", "-", "_", "'", "\n", "\t", "\u0301", "🙂", "ß", "İ", "Σ", "ς", "\u00a0", "\u200b", "\xff", "\xc3", "\x00"}

func randText(r *rand.Rand, words int) abi.Text {
	var b strings.Builder
	for range words {
		if r.IntN(5) == 0 {
			b.WriteString(diffRunes[r.IntN(len(diffRunes))])
		}
		w := diffVocab[r.IntN(len(diffVocab))]
		if r.IntN(4) == 0 {
			w = strings.ToUpper(w)
		}
		b.WriteString(w)
		b.WriteString(diffRunes[r.IntN(3)])
	}
	return abi.Text(b.String())
}

func randVector(r *rand.Rand, dim int) abi.Vector {
	v := make(abi.Vector, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	if dim > 0 && r.IntN(10) == 0 {
		specials := []float32{nan32, inf32, -inf32, 0, float32(math.Copysign(0, -1)), 1e-45, 3.4e38, -3.4e38, 1.17549435e-38}
		v[r.IntN(dim)] = specials[r.IntN(len(specials))]
	}
	return v
}

func TestWasmDiffRandom(t *testing.T) {
	t.Parallel()
	h := newDiffHarness(t)
	n := 1
	if testing.Short() {
		n = 4 // a quarter of the cases
	}
	dims := []int{1, 2, 3, 7, 16, 64, 768}
	t.Run("cosine", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 1))
		for range 200 / n {
			d := dims[r.IntN(len(dims))]
			b := randVector(r, d)
			if r.IntN(10) == 0 {
				b = randVector(r, d+1)
			}
			h.diff(t, request(t, abi.OpCosine, abi.CosineArgs{A: randVector(r, d), B: b}))
		}
	})
	t.Run("quality", func(t *testing.T) {
		r := rand.New(rand.NewPCG(2, 2))
		for range 100 / n {
			h.diff(t, request(t, abi.OpQuality, abi.QualityArgs{Usefulness: abi.Float(r.Float64()), Confidence: abi.Float(r.Float64()), AccessCount: r.Int64N(300) - 50}))
		}
	})
	t.Run("tokenize", func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 3))
		for range 200 / n {
			h.diff(t, request(t, abi.OpTokenize, abi.TokenizeArgs{Text: randText(r, r.IntN(30))}))
		}
	})
	t.Run("bm25", func(t *testing.T) {
		r := rand.New(rand.NewPCG(4, 4))
		for range 200 / n {
			df := map[string]int64{}
			for range r.IntN(8) {
				df[diffVocab[r.IntN(len(diffVocab))]] = r.Int64N(50)
			}
			h.diff(t, request(t, abi.OpBM25, abi.BM25Args{K1: abi.Float(r.Float64() * 3), B: abi.Float(r.Float64()),
				Query: randText(r, 1+r.IntN(6)), Doc: randText(r, r.IntN(60)), Docs: r.Int64N(100), TotalLen: r.Int64N(5000), DF: df}))
		}
	})
	t.Run("embed", func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 5))
		for range 150 / n {
			h.diff(t, request(t, abi.OpEmbed, abi.EmbedArgs{Text: randText(r, r.IntN(40)), Dim: dims[r.IntN(len(dims))]}))
		}
	})
	t.Run("validate_memory", func(t *testing.T) {
		r := rand.New(rand.NewPCG(6, 6))
		for range 100 / n {
			m := diffMemory()
			m.Embedding = nil // sent as Embedding, which can carry NaN
			content := randText(r, r.IntN(10))
			m.Tags = []string{string(randText(r, 1)), string(randText(r, 1))}
			h.diff(t, request(t, abi.OpValidateMemory, abi.ValidateMemoryArgs{Memory: m, Project: diffP, Content: &content, Embedding: randVector(r, 3+r.IntN(2))}))
		}
	})
	t.Run("search", func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 7))
		types := core.MemoryTypes()
		for range 60 / n {
			dim := 8 + r.IntN(40)
			now := t0.Add(time.Duration(r.Int64N(1000)) * time.Hour)
			c := abi.CorpusArgs{Project: abi.CorpusProject{Name: "r", EmbeddingDim: dim}, NowMS: now.UnixMilli()}
			for i := range 5 + r.IntN(40) {
				content := randText(r, 1+r.IntN(20))
				if !strings.ContainsFunc(string(content), func(c rune) bool { return c > ' ' }) || strings.ContainsAny(string(content), "\x00\xff\xc3") {
					content = "plain words " + abi.Text(fmt.Sprint(i))
				}
				created := now.Add(-time.Duration(r.Int64N(2000)) * time.Hour)
				c.Memories = append(c.Memories, core.Memory{ID: core.DeriveID(created, fmt.Sprint(i)), Content: string(content),
					MemoryType: types[r.IntN(len(types))], CreatedAt: created, Usefulness: r.Float64(), Confidence: r.Float64()})
			}
			q := abi.Query{Text: randText(r, 1+r.IntN(5)), K: 1 + r.IntN(15), Explain: r.IntN(2) == 0}
			if strings.ContainsAny(string(q.Text), "\x00\xff\xc3") {
				q.Text = "go search"
			}
			switch r.IntN(4) {
			case 0:
				q.Fusion = core.FusionRRF
			case 1:
				q.SemanticOnly, q.Threshold = true, abi.Float(r.Float64()*0.5)
			case 2:
				q.Embedding = randVector(r, dim)
			}
			if r.IntN(3) == 0 {
				q.QualityBoost, q.RecencyBoost = abi.Float(r.Float64()), abi.Float(r.Float64())
			}
			resp := h.diff(t, request(t, abi.OpSearch, abi.SearchArgs{Inline: &c, Query: q}))
			if !nonFinite(q.Embedding) {
				assert.Empty(t, code(t, resp), "%s", resp)
			}
		}
	})
}

func nonFinite(v abi.Vector) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return true
		}
	}
	return false
}
