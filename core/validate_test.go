package core_test

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// validateTestField asserts that err is a *FieldError for field that
// matches core.ErrInvalid and, if sentinel is not nil, sentinel too.
func validateTestField(t *testing.T, err error, field string, sentinel error) {
	t.Helper()
	require.Error(t, err, "want an error on %q", field)
	assert.ErrorIs(t, err, core.ErrInvalid)
	if sentinel != nil {
		assert.ErrorIs(t, err, sentinel)
	}
	var fe *core.FieldError
	require.True(t, errors.As(err, &fe), "want *FieldError, got %T: %v", err, err)
	assert.Equal(t, field, fe.Field, "error: %v", err)
	assert.True(t, strings.HasPrefix(err.Error(), field+": "), "error text %q names the field", err)
}

// validateTestVec returns a dim-length vector with every element x.
func validateTestVec(dim int, x float32) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = x
	}
	return v
}

var validateTestNegZero = float32(math.Copysign(0, -1))

func TestCheckText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		s        string
		max      int
		required bool
		ok       bool
	}{
		{name: "plain", s: "hello", max: 10, ok: true},
		{name: "exactly max", s: "0123456789", max: 10, ok: true},
		{name: "one over max", s: "0123456789a", max: 10},
		{name: "max counts bytes not runes", s: "ééééé", max: 9}, // 10 bytes
		{name: "multibyte within max", s: "éééé", max: 8, ok: true},
		{name: "empty optional", s: "", max: 10, ok: true},
		{name: "empty optional zero max", s: "", max: 0, ok: true},
		{name: "empty required", s: "", max: 10, required: true},
		{name: "whitespace required", s: " \t\n\u00a0\u2003", max: 20, required: true},
		{name: "whitespace optional", s: "   ", max: 10, ok: true},
		{name: "NUL", s: "a\x00b", max: 10},
		{name: "NUL only", s: "\x00", max: 10},
		{name: "invalid UTF-8", s: "a\xffb", max: 10},
		{name: "truncated rune", s: "\xc3", max: 10},
		{name: "surrogate encoded", s: "\xed\xa0\x80", max: 10},
		{name: "other control chars are fine", s: "a\tb\r\n\x01", max: 10, ok: true},
		{name: "emoji", s: "🙂", max: 4, required: true, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := core.CheckText("some_field", tc.s, tc.max, tc.required)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			validateTestField(t, err, "some_field", nil)
			assert.NotErrorIs(t, err, core.ErrDimMismatch)
		})
	}
}

func TestCheckVector(t *testing.T) {
	t.Parallel()
	smallest := float32(math.SmallestNonzeroFloat32)
	tests := []struct {
		name     string
		v        []float32
		dim      int
		ok       bool
		mismatch bool // ErrDimMismatch rather than plain ErrInvalid
	}{
		{name: "768 of 768", v: validateTestVec(768, 0.1), dim: 768, ok: true},
		{name: "dim 0 of 768", v: []float32{}, dim: 768, mismatch: true},
		{name: "nil of 768", v: nil, dim: 768, mismatch: true},
		{name: "dim 1 of 768", v: []float32{1}, dim: 768, mismatch: true},
		{name: "dim 767 of 768", v: validateTestVec(767, 0.1), dim: 768, mismatch: true},
		{name: "dim 769 of 768", v: validateTestVec(769, 0.1), dim: 768, mismatch: true},
		{name: "one of one", v: []float32{-3}, dim: 1, ok: true},
		{name: "NaN", v: []float32{1, float32(math.NaN()), 1}, dim: 3},
		{name: "+Inf", v: []float32{1, float32(math.Inf(1)), 1}, dim: 3},
		{name: "-Inf", v: []float32{float32(math.Inf(-1)), 1, 1}, dim: 3},
		{name: "all zeros", v: validateTestVec(768, 0), dim: 768},
		{name: "-0 alone is the zero vector", v: []float32{validateTestNegZero}, dim: 1},
		{name: "mixed signed zeros", v: []float32{0, validateTestNegZero, 0}, dim: 3},
		{name: "nil of dim 0 is the zero vector", v: nil, dim: 0},
		{name: "subnormal alone", v: []float32{smallest}, dim: 1, ok: true},
		{name: "subnormals", v: validateTestVec(768, smallest), dim: 768, ok: true},
		{name: "negative subnormal", v: []float32{0, -smallest}, dim: 2, ok: true},
		{name: "max float32", v: validateTestVec(768, math.MaxFloat32), dim: 768, ok: true},
		{name: "one nonzero", v: append(validateTestVec(767, 0), 1e-20), dim: 768, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := core.CheckVector("embedding", tc.v, tc.dim)
			switch {
			case tc.ok:
				assert.NoError(t, err)
			case tc.mismatch:
				validateTestField(t, err, "embedding", core.ErrDimMismatch)
				assert.Contains(t, err.Error(), strconv.Itoa(tc.dim))
				assert.Contains(t, err.Error(), strconv.Itoa(len(tc.v)))
			default:
				validateTestField(t, err, "embedding", nil)
				assert.NotErrorIs(t, err, core.ErrDimMismatch)
			}
		})
	}
}

func TestCheckModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		got, want string
		ok        bool
	}{
		{name: "equal", got: "m-1", want: "m-1", ok: true},
		{name: "both empty", got: "", want: "", ok: true},
		{name: "different", got: "m-2", want: "m-1"},
		{name: "case matters", got: "M-1", want: "m-1"},
		{name: "empty got", got: "", want: "m-1"},
		{name: "trailing space", got: "m-1 ", want: "m-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := core.CheckModel("embedding_model", tc.got, tc.want)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			validateTestField(t, err, "embedding_model", core.ErrDimMismatch)
			assert.Contains(t, err.Error(), strconv.Quote(tc.got))
			assert.Contains(t, err.Error(), strconv.Quote(tc.want))
		})
	}
}

func TestCheckUnit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    float64
		ok   bool
	}{
		{name: "zero", v: 0, ok: true},
		{name: "negative zero", v: math.Copysign(0, -1), ok: true},
		{name: "half", v: 0.5, ok: true},
		{name: "one", v: 1, ok: true},
		{name: "smallest positive", v: math.SmallestNonzeroFloat64, ok: true},
		{name: "just below zero", v: -math.SmallestNonzeroFloat64},
		{name: "just above one", v: math.Nextafter(1, 2)},
		{name: "two", v: 2},
		{name: "NaN", v: math.NaN()},
		{name: "+Inf", v: math.Inf(1)},
		{name: "-Inf", v: math.Inf(-1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := core.CheckUnit("usefulness", tc.v)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			validateTestField(t, err, "usefulness", nil)
		})
	}
}

func TestCheckLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits core.Limits
		k      int
		ok     bool
	}{
		{name: "-1", k: -1},
		{name: "0", k: 0},
		{name: "1", k: 1, ok: true},
		{name: "max", k: core.DefaultMaxK, ok: true},
		{name: "max+1", k: core.DefaultMaxK + 1},
		{name: "huge", k: math.MaxInt},
		{name: "most negative", k: math.MinInt},
		{name: "custom max", limits: core.Limits{MaxK: 5}, k: 5, ok: true},
		{name: "custom max+1", limits: core.Limits{MaxK: 5}, k: 6},
		{name: "custom above default", limits: core.Limits{MaxK: 5000}, k: 5000, ok: true},
		{name: "negative cap means default: max", limits: core.Limits{MaxK: -3}, k: core.DefaultMaxK, ok: true},
		{name: "negative cap means default: max+1", limits: core.Limits{MaxK: -3}, k: core.DefaultMaxK + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.limits.CheckLimit("k", tc.k)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			validateTestField(t, err, "k", nil)
		})
	}
}

func TestNormalizeTags(t *testing.T) {
	t.Parallel()
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "t" + strconv.Itoa(i)
		}
		return out
	}
	tests := []struct {
		name     string
		limits   core.Limits
		in       []string
		want     []string
		errField string
	}{
		{name: "nil", in: nil, want: []string{}},
		{name: "trim lowercase dedupe keep order", in: []string{" Go ", "go", "RUST", "rust ", "zig", "Go"},
			want: []string{"go", "rust", "zig"}},
		{name: "empty and blank dropped", in: []string{"", "  ", "\t", "a", ""}, want: []string{"a"}},
		{name: "only empties", in: []string{"", " "}, want: []string{}},
		{name: "inner space kept", in: []string{"machine  learning"}, want: []string{"machine  learning"}},
		{name: "unicode lowercased", in: []string{"ÉCOLE", "école"}, want: []string{"école"}},
		{name: "dotted capital I", in: []string{"İ"}, want: []string{"i"}},
		{name: "64 ok", in: many(64), want: many(64)},
		{name: "65 rejected", in: many(65), errField: "tags"},
		{name: "65 inputs but 64 after dedupe ok", in: append(many(64), "T0"), want: many(64)},
		{name: "256 inputs collapsing to 1 ok", in: slices.Repeat([]string{"X"}, 256), want: []string{"x"}},
		{name: "257 inputs rejected before work", in: slices.Repeat([]string{"x"}, 257), errField: "tags"},
		{name: "10k rejected", in: many(10_000), errField: "tags"},
		{name: "128 bytes ok", in: []string{strings.Repeat("a", 128)}, want: []string{strings.Repeat("a", 128)}},
		{name: "129 bytes rejected", in: []string{strings.Repeat("a", 129)}, errField: "tags[0]"},
		{name: "129 bytes with padding trims to 128", in: []string{" " + strings.Repeat("a", 128) + "  "},
			want: []string{strings.Repeat("a", 128)}},
		{name: "128 bytes growing when lowercased rejected", in: []string{strings.Repeat("Ⱥ", 64)}, errField: "tags[0]"},
		{name: "129 bytes shrinking when lowercased ok", in: []string{strings.Repeat("K", 43)}, // Kelvin sign
			want: []string{strings.Repeat("k", 43)}},
		{name: "1 MiB rejected", in: []string{strings.Repeat("a", 1<<20)}, errField: "tags[0]"},
		{name: "1 MiB of spaces rejected", in: []string{strings.Repeat(" ", 1<<20)}, errField: "tags[0]"},
		{name: "comma", in: []string{"ok", "a,b"}, errField: "tags[1]"},
		{name: "lone comma", in: []string{","}, errField: "tags[0]"},
		{name: "tab inside", in: []string{"a\tb"}, errField: "tags[0]"},
		{name: "newline inside", in: []string{"a\nb"}, errField: "tags[0]"},
		{name: "DEL", in: []string{"a\x7fb"}, errField: "tags[0]"},
		{name: "C1 control", in: []string{"a\u0085b"}, errField: "tags[0]"},
		{name: "NUL", in: []string{"a", "b", "c\x00"}, errField: "tags[2]"},
		{name: "invalid UTF-8", in: []string{"\xff"}, errField: "tags[0]"},
		{name: "index counts dropped empties", in: []string{"", "", "", "bad,tag"}, errField: "tags[3]"},
		{name: "edge whitespace is trimmed, not refused", in: []string{"\ta\n"}, want: []string{"a"}},
		{name: "custom MaxTags ok", limits: core.Limits{MaxTags: 2}, in: []string{"a", "b", "A"}, want: []string{"a", "b"}},
		{name: "custom MaxTags over", limits: core.Limits{MaxTags: 2}, in: []string{"a", "b", "c"}, errField: "tags"},
		{name: "custom MaxTags prefilter", limits: core.Limits{MaxTags: 2}, in: slices.Repeat([]string{"a"}, 9), errField: "tags"},
		{name: "custom MaxTagBytes ok", limits: core.Limits{MaxTagBytes: 4}, in: []string{"abcd"}, want: []string{"abcd"}},
		{name: "custom MaxTagBytes over", limits: core.Limits{MaxTagBytes: 4}, in: []string{"abcde"}, errField: "tags[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := slices.Clone(tc.in)
			got, err := tc.limits.NormalizeTags(in)
			assert.Equal(t, tc.in, in, "the input is not modified")
			if tc.errField != "" {
				validateTestField(t, err, tc.errField, nil)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, got)
			assert.Equal(t, tc.want, got)
		})
	}
}

// validateTestProject is a valid project for memory validation: dim 4.
func validateTestProject() core.Project {
	return core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: 4}
}

func TestValidateProject(t *testing.T) {
	t.Parallel()
	good := func() core.Project {
		return core.Project{Name: "proj", Path: "/work/proj", Language: "go", Description: "d", EmbeddingModel: "m", EmbeddingDim: 768,
			ConsolidationInterval: time.Minute}
	}
	tests := []struct {
		name   string
		limits core.Limits
		mod    func(*core.Project)
		field  string // "" means valid
		check  func(*testing.T, core.Project)
	}{
		{name: "valid", mod: func(*core.Project) {}, check: func(t *testing.T, p core.Project) {
			assert.Equal(t, 768, p.EmbeddingDim)
			assert.Equal(t, time.Minute, p.ConsolidationInterval)
		}},
		{name: "defaults filled", mod: func(p *core.Project) { p.EmbeddingDim, p.ConsolidationInterval = 0, 0 },
			check: func(t *testing.T, p core.Project) {
				assert.Equal(t, core.DefaultEmbedDim, p.EmbeddingDim)
				assert.Equal(t, core.DefaultConsolidationInterval, p.ConsolidationInterval)
			}},
		{name: "empty name", mod: func(p *core.Project) { p.Name = "" }, field: "name"},
		{name: "blank name", mod: func(p *core.Project) { p.Name = "  " }, field: "name"},
		{name: "long name", mod: func(p *core.Project) { p.Name = strings.Repeat("n", core.DefaultMaxTextBytes+1) }, field: "name"},
		{name: "name at cap", mod: func(p *core.Project) { p.Name = strings.Repeat("n", core.DefaultMaxTextBytes) }},
		{name: "empty path", mod: func(p *core.Project) { p.Path = "" }, field: "path"},
		{name: "path NUL", mod: func(p *core.Project) { p.Path = "/a\x00" }, field: "path"},
		{name: "language bad UTF-8", mod: func(p *core.Project) { p.Language = "\xfe" }, field: "language"},
		{name: "empty language ok", mod: func(p *core.Project) { p.Language = "" }},
		{name: "description at doc cap", mod: func(p *core.Project) { p.Description = strings.Repeat("d", core.DefaultMaxDocBytes) }},
		{name: "description over doc cap", mod: func(p *core.Project) { p.Description = strings.Repeat("d", core.DefaultMaxDocBytes+1) }, field: "description"},
		{name: "empty model", mod: func(p *core.Project) { p.EmbeddingModel = "" }, field: "embedding_model"},
		{name: "negative dim", mod: func(p *core.Project) { p.EmbeddingDim = -1 }, field: "embedding_dim"},
		{name: "dim 1", mod: func(p *core.Project) { p.EmbeddingDim = 1 }},
		{name: "dim at max", mod: func(p *core.Project) { p.EmbeddingDim = core.DefaultMaxDim }},
		{name: "dim over max", mod: func(p *core.Project) { p.EmbeddingDim = core.DefaultMaxDim + 1 }, field: "embedding_dim"},
		{name: "custom max dim", limits: core.Limits{MaxDim: 512}, mod: func(p *core.Project) { p.EmbeddingDim = 513 }, field: "embedding_dim"},
		{name: "custom max dim rejects default dim", limits: core.Limits{MaxDim: 512}, mod: func(p *core.Project) { p.EmbeddingDim = 0 }, field: "embedding_dim"},
		{name: "negative interval", mod: func(p *core.Project) { p.ConsolidationInterval = -time.Second }, field: "consolidation_interval"},
		{name: "custom text cap", limits: core.Limits{MaxTextBytes: 3}, mod: func(p *core.Project) { p.Name = "abcd" }, field: "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := good()
			tc.mod(&p)
			err := tc.limits.ValidateProject(&p)
			if tc.field != "" {
				validateTestField(t, err, tc.field, nil)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestValidateMemory(t *testing.T) {
	t.Parallel()
	good := func() core.Memory {
		return core.Memory{Content: "remember me", Embedding: []float32{1, 0, 0, 0}, EmbeddingModel: "m",
			MemoryType: core.TypeDecision, Domain: "d", Tags: []string{" A ", "a", "b"}, Usefulness: 0.5, Confidence: 1,
			State: core.StateConsolidated}
	}
	tests := []struct {
		name     string
		limits   core.Limits
		mod      func(*core.Memory)
		field    string
		sentinel error
		check    func(*testing.T, core.Memory)
	}{
		{name: "valid", mod: func(*core.Memory) {}, check: func(t *testing.T, m core.Memory) {
			assert.Equal(t, []string{"a", "b"}, m.Tags, "tags normalized in place")
			assert.Equal(t, core.TypeDecision, m.MemoryType)
			assert.Equal(t, core.StateConsolidated, m.State)
		}},
		{name: "defaults", mod: func(m *core.Memory) { m.MemoryType, m.Domain, m.State, m.EmbeddingModel, m.Tags = "", "", "", "", nil },
			check: func(t *testing.T, m core.Memory) {
				assert.Equal(t, core.TypeFact, m.MemoryType)
				assert.Equal(t, "memory", m.Domain)
				assert.Equal(t, core.StateUnconsolidated, m.State)
				assert.Equal(t, "m", m.EmbeddingModel, "model defaults to the project's")
				assert.Empty(t, m.Tags)
			}},
		{name: "every type", mod: func(m *core.Memory) { m.MemoryType = core.TypeCodeSnippet }},
		{name: "empty content", mod: func(m *core.Memory) { m.Content = "" }, field: "content"},
		{name: "blank content", mod: func(m *core.Memory) { m.Content = " \n\t " }, field: "content"},
		{name: "content NUL", mod: func(m *core.Memory) { m.Content = "a\x00" }, field: "content"},
		{name: "content bad UTF-8", mod: func(m *core.Memory) { m.Content = "caf\xe9" }, field: "content"},
		{name: "content at cap", mod: func(m *core.Memory) { m.Content = strings.Repeat("c", core.DefaultMaxContentBytes) }},
		{name: "content over cap", mod: func(m *core.Memory) { m.Content = strings.Repeat("c", core.DefaultMaxContentBytes+1) }, field: "content"},
		{name: "unknown type", mod: func(m *core.Memory) { m.MemoryType = "Fact" }, field: "memory_type"},
		{name: "unknown state", mod: func(m *core.Memory) { m.State = "Labile" }, field: "consolidation_state"},
		{name: "domain over cap", mod: func(m *core.Memory) { m.Domain = strings.Repeat("d", core.DefaultMaxTextBytes+1) }, field: "domain"},
		{name: "session bad UTF-8", mod: func(m *core.Memory) { m.SessionID = "\xc0" }, field: "session_id"},
		{name: "event type NUL", mod: func(m *core.Memory) { m.EventType = "\x00" }, field: "event_type"},
		{name: "code language NUL", mod: func(m *core.Memory) { m.CodeLanguage = "go\x00" }, field: "code_language"},
		{name: "code hash over cap", mod: func(m *core.Memory) { m.CodeHash = strings.Repeat("h", core.DefaultMaxTextBytes+1) }, field: "code_hash"},
		{name: "model over cap", mod: func(m *core.Memory) { m.EmbeddingModel = strings.Repeat("m", core.DefaultMaxTextBytes+1) }, field: "embedding_model"},
		{name: "bad tag", mod: func(m *core.Memory) { m.Tags = []string{"ok", "not,ok"} }, field: "tags[1]"},
		{name: "too many tags", mod: func(m *core.Memory) { m.Tags = slices.Repeat([]string{"x"}, 10_000) }, field: "tags"},
		{name: "usefulness below 0", mod: func(m *core.Memory) { m.Usefulness = -0.1 }, field: "usefulness"},
		{name: "usefulness NaN", mod: func(m *core.Memory) { m.Usefulness = math.NaN() }, field: "usefulness"},
		{name: "confidence above 1", mod: func(m *core.Memory) { m.Confidence = 1.5 }, field: "confidence"},
		{name: "confidence +Inf", mod: func(m *core.Memory) { m.Confidence = math.Inf(1) }, field: "confidence"},
		{name: "negative access count", mod: func(m *core.Memory) { m.AccessCount = -1 }, field: "access_count"},
		{name: "superseded_by not a UUID", mod: func(m *core.Memory) { m.SupersededBy = "nope" }, field: "superseded_by"},
		{name: "superseded_by UUID ok", mod: func(m *core.Memory) { m.SupersededBy = "0190f3a2-1b2c-7d5e-8f60-718293a4b5c6" }},
		{name: "other model", mod: func(m *core.Memory) { m.EmbeddingModel = "other" }, field: "embedding_model", sentinel: core.ErrDimMismatch},
		{name: "no embedding", mod: func(m *core.Memory) { m.Embedding = nil }, field: "embedding", sentinel: core.ErrDimMismatch},
		{name: "short embedding", mod: func(m *core.Memory) { m.Embedding = []float32{1, 0, 0} }, field: "embedding", sentinel: core.ErrDimMismatch},
		{name: "long embedding", mod: func(m *core.Memory) { m.Embedding = []float32{1, 0, 0, 0, 0} }, field: "embedding", sentinel: core.ErrDimMismatch},
		{name: "zero embedding", mod: func(m *core.Memory) { m.Embedding = []float32{0, 0, 0, 0} }, field: "embedding"},
		{name: "NaN embedding", mod: func(m *core.Memory) { m.Embedding = []float32{1, float32(math.NaN()), 0, 0} }, field: "embedding"},
		{name: "custom content cap", limits: core.Limits{MaxContentBytes: 5}, mod: func(m *core.Memory) { m.Content = "123456" }, field: "content"},
		{name: "custom content cap at cap", limits: core.Limits{MaxContentBytes: 5}, mod: func(m *core.Memory) { m.Content = "12345" }},
		{name: "custom text cap", limits: core.Limits{MaxTextBytes: 2}, mod: func(m *core.Memory) { m.Domain = "abc" }, field: "domain"},
		{name: "custom tag caps", limits: core.Limits{MaxTags: 1}, mod: func(m *core.Memory) { m.Tags = []string{"a", "b"} }, field: "tags"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, p := good(), validateTestProject()
			tc.mod(&m)
			err := tc.limits.ValidateMemory(&m, &p)
			if tc.field != "" {
				validateTestField(t, err, tc.field, tc.sentinel)
				if tc.sentinel == nil {
					assert.NotErrorIs(t, err, core.ErrDimMismatch)
				}
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestValidateEvent(t *testing.T) {
	t.Parallel()
	good := func() core.Event {
		return core.Event{SessionID: "s", Content: "ran tests", Outcome: "ok", Learned: "x", Surprise: 0.2, Confidence: 0.9,
			Context:   core.EventContext{Cwd: "/w", Files: []string{"a.go"}, Task: "t", Phase: "p", Branch: "main"},
			Timestamp: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
	}
	long := strings.Repeat("x", core.DefaultMaxTextBytes+1)
	tests := []struct {
		name   string
		limits core.Limits
		mod    func(*core.Event)
		field  string
		check  func(*testing.T, core.Event)
	}{
		{name: "valid", mod: func(*core.Event) {}},
		{name: "defaults", mod: func(e *core.Event) { e.EventType, e.Context.Files = "", []string{} }, check: func(t *testing.T, e core.Event) {
			assert.Equal(t, "action", e.EventType)
			assert.Nil(t, e.Context.Files, "an empty file list is normalized to nil")
		}},
		{name: "empty content", mod: func(e *core.Event) { e.Content = "" }, field: "content"},
		{name: "content over cap", mod: func(e *core.Event) { e.Content = strings.Repeat("c", core.DefaultMaxContentBytes+1) }, field: "content"},
		{name: "session over cap", mod: func(e *core.Event) { e.SessionID = long }, field: "session_id"},
		{name: "event type NUL", mod: func(e *core.Event) { e.EventType = "a\x00" }, field: "event_type"},
		{name: "cwd", mod: func(e *core.Event) { e.Context.Cwd = long }, field: "context.cwd"},
		{name: "task", mod: func(e *core.Event) { e.Context.Task = "\xff" }, field: "context.task"},
		{name: "phase", mod: func(e *core.Event) { e.Context.Phase = long }, field: "context.phase"},
		{name: "branch", mod: func(e *core.Event) { e.Context.Branch = "\x00" }, field: "context.branch"},
		{name: "model", mod: func(e *core.Event) { e.EmbeddingModel = long }, field: "embedding_model"},
		{name: "outcome at doc cap", mod: func(e *core.Event) { e.Outcome = strings.Repeat("o", core.DefaultMaxDocBytes) }},
		{name: "outcome over doc cap", mod: func(e *core.Event) { e.Outcome = strings.Repeat("o", core.DefaultMaxDocBytes+1) }, field: "outcome"},
		{name: "learned NUL", mod: func(e *core.Event) { e.Learned = "\x00" }, field: "learned"},
		{name: "files at cap", mod: func(e *core.Event) { e.Context.Files = slices.Repeat([]string{"f"}, core.DefaultMaxFiles) }},
		{name: "too many files", mod: func(e *core.Event) { e.Context.Files = slices.Repeat([]string{"f"}, core.DefaultMaxFiles+1) }, field: "context.files"},
		{name: "custom max files", limits: core.Limits{MaxFiles: 1}, mod: func(e *core.Event) { e.Context.Files = []string{"a", "b"} }, field: "context.files"},
		{name: "empty file", mod: func(e *core.Event) { e.Context.Files = []string{"a", " "} }, field: "context.files[1]"},
		{name: "file over cap", mod: func(e *core.Event) { e.Context.Files = []string{long} }, field: "context.files[0]"},
		{name: "surprise over 1", mod: func(e *core.Event) { e.Surprise = 1.01 }, field: "surprise"},
		{name: "confidence NaN", mod: func(e *core.Event) { e.Confidence = math.NaN() }, field: "confidence"},
		{name: "embedding without model", mod: func(e *core.Event) { e.Embedding = []float32{1} }, field: "embedding_model"},
		{name: "embedding with model", mod: func(e *core.Event) { e.Embedding, e.EmbeddingModel = []float32{1, 2}, "m" }},
		{name: "zero embedding", mod: func(e *core.Event) { e.Embedding, e.EmbeddingModel = []float32{0, 0}, "m" }, field: "embedding"},
		{name: "empty non-nil embedding", mod: func(e *core.Event) { e.Embedding, e.EmbeddingModel = []float32{}, "m" }, field: "embedding"},
		{name: "Inf embedding", mod: func(e *core.Event) { e.Embedding, e.EmbeddingModel = []float32{float32(math.Inf(1))}, "m" }, field: "embedding"},
		{name: "zero timestamp ok", mod: func(e *core.Event) { e.Timestamp = time.Time{} }},
		{name: "year 1970 ok", mod: func(e *core.Event) { e.Timestamp = time.Unix(0, 0).UTC() }},
		{name: "year 1969", mod: func(e *core.Event) { e.Timestamp = time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC) }, field: "timestamp"},
		{name: "year 9999 ok", mod: func(e *core.Event) { e.Timestamp = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) }},
		{name: "year 10000", mod: func(e *core.Event) { e.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, field: "timestamp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := good()
			tc.mod(&e)
			err := tc.limits.ValidateEvent(&e)
			if tc.field != "" {
				validateTestField(t, err, tc.field, nil)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func TestValidateTask(t *testing.T) {
	t.Parallel()
	good := func() core.Task {
		return core.Task{Title: "do it", Description: "d", Status: core.TaskInProgress, Priority: 3,
			GoalID: "0190f3a2-1b2c-7d5e-8f60-718293a4b5c6", DueAt: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
	}
	tests := []struct {
		name  string
		mod   func(*core.Task)
		field string
		check func(*testing.T, core.Task)
	}{
		{name: "valid", mod: func(*core.Task) {}},
		{name: "defaults", mod: func(tk *core.Task) { tk.Status, tk.Priority = "", 0 }, check: func(t *testing.T, tk core.Task) {
			assert.Equal(t, core.TaskPending, tk.Status)
			assert.Equal(t, 5, tk.Priority)
		}},
		{name: "empty title", mod: func(tk *core.Task) { tk.Title = " " }, field: "title"},
		{name: "description over doc cap", mod: func(tk *core.Task) { tk.Description = strings.Repeat("d", core.DefaultMaxDocBytes+1) }, field: "description"},
		{name: "every status", mod: func(tk *core.Task) { tk.Status = core.TaskCancelled }},
		{name: "blocked", mod: func(tk *core.Task) { tk.Status = core.TaskBlocked }},
		{name: "unknown status", mod: func(tk *core.Task) { tk.Status = "done" }, field: "status"},
		{name: "mis-cased status", mod: func(tk *core.Task) { tk.Status = "Pending" }, field: "status"},
		{name: "priority 1", mod: func(tk *core.Task) { tk.Priority = 1 }},
		{name: "priority 10", mod: func(tk *core.Task) { tk.Priority = 10 }},
		{name: "priority 11", mod: func(tk *core.Task) { tk.Priority = 11 }, field: "priority"},
		{name: "priority -1", mod: func(tk *core.Task) { tk.Priority = -1 }, field: "priority"},
		{name: "bad goal id", mod: func(tk *core.Task) { tk.GoalID = "goal-1" }, field: "goal_id"},
		{name: "bad parent id", mod: func(tk *core.Task) { tk.ParentID = "p" }, field: "parent_id"},
		{name: "due year 1900", mod: func(tk *core.Task) { tk.DueAt = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC) }, field: "due_at"},
		{name: "zero due", mod: func(tk *core.Task) { tk.DueAt = time.Time{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := good()
			tc.mod(&tk)
			err := core.Limits{}.ValidateTask(&tk)
			if tc.field != "" {
				validateTestField(t, err, tc.field, nil)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, tk)
			}
		})
	}
}

func TestValidateGoal(t *testing.T) {
	t.Parallel()
	good := func() core.Goal {
		return core.Goal{Title: "ship", Status: core.GoalOnHold, Priority: 7, Progress: 0.25}
	}
	tests := []struct {
		name  string
		mod   func(*core.Goal)
		field string
		check func(*testing.T, core.Goal)
	}{
		{name: "valid", mod: func(*core.Goal) {}},
		{name: "defaults", mod: func(g *core.Goal) { g.Status, g.Priority = "", 0 }, check: func(t *testing.T, g core.Goal) {
			assert.Equal(t, core.GoalActive, g.Status)
			assert.Equal(t, 5, g.Priority)
		}},
		{name: "empty title", mod: func(g *core.Goal) { g.Title = "" }, field: "title"},
		{name: "title over cap", mod: func(g *core.Goal) { g.Title = strings.Repeat("t", core.DefaultMaxTextBytes+1) }, field: "title"},
		{name: "description NUL", mod: func(g *core.Goal) { g.Description = "\x00" }, field: "description"},
		{name: "abandoned", mod: func(g *core.Goal) { g.Status = core.GoalAbandoned }},
		{name: "task status is not a goal status", mod: func(g *core.Goal) { g.Status = core.TaskPending }, field: "status"},
		{name: "priority 0 defaults", mod: func(g *core.Goal) { g.Priority = 0 }},
		{name: "priority 11", mod: func(g *core.Goal) { g.Priority = 11 }, field: "priority"},
		{name: "progress 1", mod: func(g *core.Goal) { g.Progress = 1 }},
		{name: "progress over 1", mod: func(g *core.Goal) { g.Progress = 1.5 }, field: "progress"},
		{name: "progress negative", mod: func(g *core.Goal) { g.Progress = -0.5 }, field: "progress"},
		{name: "bad parent", mod: func(g *core.Goal) { g.ParentID = "x" }, field: "parent_id"},
		{name: "due year 10000", mod: func(g *core.Goal) { g.DueAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, field: "due_at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := good()
			tc.mod(&g)
			err := core.Limits{}.ValidateGoal(&g)
			if tc.field != "" {
				validateTestField(t, err, tc.field, nil)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, g)
			}
		})
	}
}

func TestValidateCodeEntity(t *testing.T) {
	t.Parallel()
	good := func() core.CodeEntity {
		return core.CodeEntity{FilePath: "a.go", Name: "F", EntityType: "function", Language: "go", Signature: "func F()",
			Docstring: "F does.", SemanticHash: "h", Complexity: 2, LineStart: 10, LineEnd: 20}
	}
	long := strings.Repeat("x", core.DefaultMaxTextBytes+1)
	tests := []struct {
		name  string
		mod   func(*core.CodeEntity)
		field string
	}{
		{name: "valid", mod: func(*core.CodeEntity) {}},
		{name: "empty file path", mod: func(c *core.CodeEntity) { c.FilePath = "" }, field: "file_path"},
		{name: "empty name", mod: func(c *core.CodeEntity) { c.Name = "" }, field: "entity_name"},
		{name: "empty type", mod: func(c *core.CodeEntity) { c.EntityType = "\t" }, field: "entity_type"},
		{name: "language over cap", mod: func(c *core.CodeEntity) { c.Language = long }, field: "language"},
		{name: "signature NUL", mod: func(c *core.CodeEntity) { c.Signature = "\x00" }, field: "signature"},
		{name: "semantic hash bad UTF-8", mod: func(c *core.CodeEntity) { c.SemanticHash = "\xff" }, field: "semantic_hash"},
		{name: "docstring at doc cap", mod: func(c *core.CodeEntity) { c.Docstring = strings.Repeat("d", core.DefaultMaxDocBytes) }},
		{name: "docstring over doc cap", mod: func(c *core.CodeEntity) { c.Docstring = strings.Repeat("d", core.DefaultMaxDocBytes+1) }, field: "docstring"},
		{name: "negative complexity", mod: func(c *core.CodeEntity) { c.Complexity = -1 }, field: "complexity"},
		{name: "single line", mod: func(c *core.CodeEntity) { c.LineStart, c.LineEnd = 5, 5 }},
		{name: "zero lines", mod: func(c *core.CodeEntity) { c.LineStart, c.LineEnd = 0, 0 }},
		{name: "end before start", mod: func(c *core.CodeEntity) { c.LineStart, c.LineEnd = 5, 4 }, field: "line_end"},
		{name: "negative start", mod: func(c *core.CodeEntity) { c.LineStart = -1 }, field: "line_start"},
		{name: "bad memory id", mod: func(c *core.CodeEntity) { c.MemoryID = "m" }, field: "memory_id"},
		{name: "good memory id", mod: func(c *core.CodeEntity) { c.MemoryID = "0190F3A2-1B2C-7D5E-8F60-718293A4B5C6" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := good()
			tc.mod(&c)
			err := core.Limits{}.ValidateCodeEntity(&c)
			if tc.field != "" {
				validateTestField(t, err, tc.field, nil)
				return
			}
			require.NoError(t, err)
		})
	}
}

// TestZeroLimitsAreDefaults checks, at each cap's boundary, that the zero
// Limits (and negative caps) behave exactly like the Default* constants.
func TestZeroLimitsAreDefaults(t *testing.T) {
	t.Parallel()
	explicit := core.Limits{MaxContentBytes: core.DefaultMaxContentBytes, MaxTextBytes: core.DefaultMaxTextBytes,
		MaxDocBytes: core.DefaultMaxDocBytes, MaxTags: core.DefaultMaxTags, MaxTagBytes: core.DefaultMaxTagBytes,
		MaxFiles: core.DefaultMaxFiles, MaxDim: core.DefaultMaxDim, MaxK: core.DefaultMaxK}
	negative := core.Limits{MaxContentBytes: -1, MaxTextBytes: -1, MaxDocBytes: -1, MaxTags: -1, MaxTagBytes: -1,
		MaxFiles: -1, MaxDim: -1, MaxK: -1}
	probes := []struct {
		name string
		run  func(core.Limits) error
	}{
		{name: "content at cap", run: func(l core.Limits) error {
			m, p := core.Memory{Content: strings.Repeat("c", core.DefaultMaxContentBytes), Embedding: []float32{1, 0, 0, 0}}, validateTestProject()
			return l.ValidateMemory(&m, &p)
		}},
		{name: "content over cap", run: func(l core.Limits) error {
			m, p := core.Memory{Content: strings.Repeat("c", core.DefaultMaxContentBytes+1), Embedding: []float32{1, 0, 0, 0}}, validateTestProject()
			return l.ValidateMemory(&m, &p)
		}},
		{name: "text at cap", run: func(l core.Limits) error {
			tk := core.Task{Title: strings.Repeat("t", core.DefaultMaxTextBytes)}
			return l.ValidateTask(&tk)
		}},
		{name: "text over cap", run: func(l core.Limits) error {
			tk := core.Task{Title: strings.Repeat("t", core.DefaultMaxTextBytes+1)}
			return l.ValidateTask(&tk)
		}},
		{name: "doc over cap", run: func(l core.Limits) error {
			g := core.Goal{Title: "g", Description: strings.Repeat("d", core.DefaultMaxDocBytes+1)}
			return l.ValidateGoal(&g)
		}},
		{name: "tags at cap", run: func(l core.Limits) error {
			tags := make([]string, core.DefaultMaxTags)
			for i := range tags {
				tags[i] = strings.Repeat("x", core.DefaultMaxTagBytes-3) + strconv.Itoa(100+i)
			}
			_, err := l.NormalizeTags(tags)
			return err
		}},
		{name: "tags over cap", run: func(l core.Limits) error {
			_, err := l.NormalizeTags([]string{strings.Repeat("x", core.DefaultMaxTagBytes+1)})
			return err
		}},
		{name: "files over cap", run: func(l core.Limits) error {
			e := core.Event{Content: "c", Context: core.EventContext{Files: slices.Repeat([]string{"f"}, core.DefaultMaxFiles+1)}}
			return l.ValidateEvent(&e)
		}},
		{name: "dim at cap", run: func(l core.Limits) error {
			p := core.Project{Name: "n", Path: "/p", EmbeddingModel: "m", EmbeddingDim: core.DefaultMaxDim}
			return l.ValidateProject(&p)
		}},
		{name: "dim over cap", run: func(l core.Limits) error {
			p := core.Project{Name: "n", Path: "/p", EmbeddingModel: "m", EmbeddingDim: core.DefaultMaxDim + 1}
			return l.ValidateProject(&p)
		}},
		{name: "k over cap", run: func(l core.Limits) error { return l.CheckLimit("k", core.DefaultMaxK+1) }},
		{name: "k at cap", run: func(l core.Limits) error { return l.CheckLimit("k", core.DefaultMaxK) }},
	}
	for _, tc := range probes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := tc.run(explicit)
			for _, l := range []core.Limits{{}, negative} {
				got := tc.run(l)
				if want == nil {
					assert.NoError(t, got)
				} else {
					require.Error(t, got)
					assert.Equal(t, want.Error(), got.Error())
				}
			}
		})
	}
}

// FuzzValidateMemory: ValidateMemory never panics, and whatever it accepts
// is what every store can hold.
func FuzzValidateMemory(f *testing.F) {
	f.Add("hello", "Go", 8, float32(0.5))
	f.Add("", "", 0, float32(0))
	f.Add("a\x00b", "a,b", 8, float32(math.NaN()))
	f.Add("caf\xe9", "\xff", 7, float32(math.Inf(1)))
	f.Add(" ", " Ⱥ ", 9, float32(-0.0))
	f.Add("ok", strings.Repeat("K", 60), 8, float32(math.SmallestNonzeroFloat32))
	f.Add("ok", "İSTANBUL", -8, float32(1e30))
	const dim = 8
	f.Fuzz(func(t *testing.T, content, tag string, n int, x float32) {
		vlen := n % 20
		if vlen < 0 {
			vlen = -vlen
		}
		vec := make([]float32, vlen)
		for i := range vec {
			vec[i] = x
			if i%3 == 1 {
				vec[i] = -x
			}
		}
		p := core.Project{Name: "p", Path: "/p", EmbeddingModel: "m", EmbeddingDim: dim}
		m := core.Memory{Content: content, Tags: []string{tag, strings.ToUpper(tag), " " + tag + " ", ""}, Embedding: vec}
		err := core.Limits{}.ValidateMemory(&m, &p)
		if err != nil {
			var fe *core.FieldError
			if !errors.Is(err, core.ErrInvalid) || !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error %T %v: want a *FieldError matching ErrInvalid", err, err)
			}
			return
		}
		if !utf8.ValidString(m.Content) || strings.IndexByte(m.Content, 0) >= 0 {
			t.Fatalf("accepted content %q", m.Content)
		}
		if len(m.Content) > core.DefaultMaxContentBytes || strings.TrimSpace(m.Content) == "" {
			t.Fatalf("accepted content of %d bytes", len(m.Content))
		}
		if len(m.Tags) > core.DefaultMaxTags {
			t.Fatalf("accepted %d tags", len(m.Tags))
		}
		for i, tg := range m.Tags {
			switch {
			case tg == "" || strings.TrimSpace(tg) != tg:
				t.Fatalf("tag %d %q is empty or untrimmed", i, tg)
			case strings.ToLower(tg) != tg:
				t.Fatalf("tag %d %q is not lowercase", i, tg)
			case len(tg) > core.DefaultMaxTagBytes:
				t.Fatalf("tag %d is %d bytes", i, len(tg))
			case strings.ContainsRune(tg, ','):
				t.Fatalf("tag %d %q has a comma", i, tg)
			case strings.IndexFunc(tg, unicode.IsControl) >= 0:
				t.Fatalf("tag %d %q has a control character", i, tg)
			case !utf8.ValidString(tg):
				t.Fatalf("tag %d %q is not UTF-8", i, tg)
			case slices.Contains(m.Tags[:i], tg):
				t.Fatalf("tag %q duplicated", tg)
			}
		}
		if len(m.Embedding) != dim || math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || x == 0 {
			t.Fatalf("accepted embedding %v", m.Embedding)
		}
		if m.MemoryType != core.TypeFact || m.State != core.StateUnconsolidated || m.EmbeddingModel != "m" || m.Domain != "memory" {
			t.Fatalf("defaults not filled: %+v", m)
		}
	})
}

// BenchmarkCheckVector validates a 768-d embedding (2026-11-27: 1.9 µs
// summing squares in float64, 0.7 µs checking the bits).
func BenchmarkCheckVector(b *testing.B) {
	v := validateTestVec(768, 0.1)
	for b.Loop() {
		if err := core.CheckVector("embedding", v, 768); err != nil {
			b.Fatal(err)
		}
	}
}
