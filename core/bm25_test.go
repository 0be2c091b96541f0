package core

import (
	"math"
	"testing"
)

func bm25AlmostEqual(a, b float64) bool {
	return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b))
}

func TestBM25Params(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		p     BM25Params
		k1, b float64
	}{
		{name: "zero value is default", p: BM25Params{}, k1: 1.2, b: 0.75},
		{name: "explicit default", p: DefaultBM25Params(), k1: 1.2, b: 0.75},
		{name: "custom", p: BM25Params{K1: 2, B: 0.5}, k1: 2, b: 0.5},
		{name: "only K1 zero", p: BM25Params{B: 0.3}, k1: 1.2, b: 0.3},
		{name: "negative and NaN", p: BM25Params{K1: -1, B: math.NaN()}, k1: 1.2, b: 0.75},
		{name: "infinite", p: BM25Params{K1: math.Inf(1), B: math.Inf(-1)}, k1: 1.2, b: 0.75},
		{name: "B above one clamps", p: BM25Params{K1: 1, B: 3}, k1: 1, b: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k1, b := tc.p.resolved()
			if k1 != tc.k1 || b != tc.b {
				t.Fatalf("resolved() = (%v, %v), want (%v, %v)", k1, b, tc.k1, tc.b)
			}
		})
	}
}

func TestBM25IDF(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		df, docs int64
		want     float64
	}{
		// ln(1 + (N - df + 0.5)/(df + 0.5)), reduced by hand.
		{name: "rare", df: 1, docs: 10, want: math.Log(22.0 / 3)},                   // 1 + 9.5/1.5
		{name: "half", df: 5, docs: 10, want: math.Log(2)},                          // 1 + 5.5/5.5
		{name: "everywhere", df: 10, docs: 10, want: math.Log(22.0 / 21)},           // 1 + 0.5/10.5
		{name: "unseen", df: 0, docs: 10, want: math.Log(22)},                       // 1 + 10.5/0.5
		{name: "empty corpus", df: 0, docs: 0, want: math.Log(2)},                   // 1 + 0.5/0.5
		{name: "df above docs clamps", df: 20, docs: 10, want: math.Log(42.0 / 41)}, // docs -> 20: 1 + 0.5/20.5,
		{name: "negative df clamps", df: -3, docs: 10, want: math.Log(22)},
		{name: "negative docs clamps", df: 2, docs: -5, want: math.Log(6.0 / 5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := BM25Params{}.IDF(tc.df, tc.docs)
			if !bm25AlmostEqual(got, tc.want) {
				t.Fatalf("IDF(%d, %d) = %v, want %v", tc.df, tc.docs, got, tc.want)
			}
			if got <= 0 {
				t.Fatalf("IDF(%d, %d) = %v, want > 0", tc.df, tc.docs, got)
			}
		})
	}
}

func TestBM25Score(t *testing.T) {
	t.Parallel()
	stats := CorpusStats{Docs: 10, TotalLen: 100, DF: map[string]int64{"a": 1, "b": 5, "c": 10}}
	tests := []struct {
		name   string
		p      BM25Params
		terms  []string
		tf     map[string]int
		docLen int
		stats  CorpusStats
		want   float64
	}{
		{
			// norm = 1.2*(0.25 + 0.75*10/10) = 1.2; tf part = 1*2.2/2.2 = 1.
			name: "single term average length", terms: []string{"a"}, tf: map[string]int{"a": 1},
			docLen: 10, stats: stats, want: math.Log(22.0 / 3),
		},
		{
			// norm = 1.2*(0.25 + 0.75*2) = 2.1; tf part = 3*2.2/5.1 = 22/17.
			name: "long doc tf 3", terms: []string{"b"}, tf: map[string]int{"b": 3},
			docLen: 20, stats: stats, want: math.Log(2) * 22 / 17,
		},
		{
			// a: tf 2, norm = 1.2*(0.25+0.75*0.5) = 0.75; part = 2*2.2/2.75 = 1.6.
			// c: tf 1, part = 2.2/1.75 = 44/35.
			name: "two terms short doc", terms: []string{"a", "c", "zzz"}, tf: map[string]int{"a": 2, "c": 1},
			docLen: 5, stats: stats, want: math.Log(22.0/3)*1.6 + math.Log(22.0/21)*44/35,
		},
		{
			// k1 = 2, b = 0.5: norm = 2*(0.5 + 0.5*20/10) = 3; part = 1*3/4.
			name: "custom params", p: BM25Params{K1: 2, B: 0.5}, terms: []string{"b"}, tf: map[string]int{"b": 1},
			docLen: 20, stats: stats, want: math.Log(2) * 0.75,
		},
		{
			name: "duplicate query terms count once", terms: []string{"a", "a", "a"}, tf: map[string]int{"a": 1},
			docLen: 10, stats: stats, want: math.Log(22.0 / 3),
		},
		{
			name: "no match", terms: []string{"x", "y"}, tf: map[string]int{"a": 4},
			docLen: 10, stats: stats, want: 0,
		},
		{name: "no terms", terms: nil, tf: map[string]int{"a": 1}, docLen: 1, stats: stats, want: 0},
		{name: "no doc terms", terms: []string{"a"}, tf: nil, docLen: 0, stats: stats, want: 0},
		{
			// Docs = 0 and DF missing: df counts as 1, docs as 1, avgdl as 1.
			// idf = ln(1 + 0.5/1.5) = ln(4/3); norm = 1.2*(0.25+0.75*1) = 1.2 -> part 1.
			name: "empty stats", terms: []string{"a"}, tf: map[string]int{"a": 1},
			docLen: 1, stats: CorpusStats{}, want: math.Log(4.0 / 3),
		},
		{
			// docLen -5 counts as 0: norm = 1.2*0.25 = 0.3; part = 2.2/1.3 = 22/13.
			name: "negative doc length", terms: []string{"b"}, tf: map[string]int{"b": 1},
			docLen: -5, stats: stats, want: math.Log(2) * 22 / 13,
		},
		{
			name: "non-positive tf ignored", terms: []string{"a", "b"}, tf: map[string]int{"a": 0, "b": -2},
			docLen: 10, stats: stats, want: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tc.p.Score(tc.terms, tc.tf, tc.docLen, tc.stats)
			if !bm25AlmostEqual(got, tc.want) {
				t.Fatalf("Score = %.17g, want %.17g", got, tc.want)
			}
		})
	}
}

func TestBM25ScoreProperties(t *testing.T) {
	t.Parallel()
	p := DefaultBM25Params()
	stats := CorpusStats{Docs: 1000, TotalLen: 50_000, DF: map[string]int64{"rare": 3, "common": 900}}

	t.Run("monotonic in tf", func(t *testing.T) {
		t.Parallel()
		prev := 0.0
		for tf := 1; tf <= 200; tf++ {
			s := p.Score([]string{"rare"}, map[string]int{"rare": tf}, 50, stats)
			if !(s > prev) {
				t.Fatalf("tf %d: score %v not above %v", tf, s, prev)
			}
			prev = s
		}
		// Saturation: bounded by idf*(k1+1).
		if limit := p.IDF(3, 1000) * 2.2; prev >= limit {
			t.Fatalf("score %v reached saturation bound %v", prev, limit)
		}
	})
	t.Run("shorter doc scores higher", func(t *testing.T) {
		t.Parallel()
		short := p.Score([]string{"rare"}, map[string]int{"rare": 2}, 10, stats)
		long := p.Score([]string{"rare"}, map[string]int{"rare": 2}, 500, stats)
		if !(short > long) {
			t.Fatalf("short %v <= long %v", short, long)
		}
	})
	t.Run("rare term beats common term", func(t *testing.T) {
		t.Parallel()
		rare := p.Score([]string{"rare", "common"}, map[string]int{"rare": 1}, 50, stats)
		common := p.Score([]string{"rare", "common"}, map[string]int{"common": 1}, 50, stats)
		if !(rare > common) {
			t.Fatalf("rare %v <= common %v", rare, common)
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		t.Parallel()
		terms := []string{"rare", "common", "x"}
		tf := map[string]int{"rare": 2, "common": 7}
		want := p.Score(terms, tf, 42, stats)
		for range 100 {
			if got := p.Score(terms, tf, 42, stats); math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("Score not bit-identical: %v vs %v", got, want)
			}
		}
	})
	t.Run("many duplicate terms use map path", func(t *testing.T) {
		t.Parallel()
		terms := make([]string, 0, 3*MaxQueryTerms)
		for range 3 * MaxQueryTerms {
			terms = append(terms, "rare")
		}
		got := p.Score(terms, map[string]int{"rare": 1}, 50, stats)
		want := p.Score([]string{"rare"}, map[string]int{"rare": 1}, 50, stats)
		if got != want {
			t.Fatalf("Score with duplicates = %v, want %v", got, want)
		}
	})
}

func FuzzBM25Score(f *testing.F) {
	f.Add(1, int64(1), int64(10), int64(100), 10, 0.0, 0.0)
	f.Add(0, int64(0), int64(0), int64(0), 0, 1.2, 0.75)
	f.Add(-5, int64(-1), int64(-10), int64(-100), -3, -1.0, 2.0)
	f.Add(math.MaxInt, int64(math.MaxInt64), int64(1), int64(math.MaxInt64), math.MaxInt, 3.0, 1.0)
	f.Add(1, int64(math.MaxInt64), int64(math.MaxInt64), int64(1), 0, 100.0, 0.01)
	f.Fuzz(func(t *testing.T, tf int, df, docs, totalLen int64, docLen int, k1, b float64) {
		// Keep parameters in the documented useful range; everything else
		// is fuzzed freely.
		if math.IsNaN(k1) || math.Abs(k1) > 1000 {
			k1 = 0
		}
		p := BM25Params{K1: k1, B: b}
		stats := CorpusStats{Docs: docs, TotalLen: totalLen, DF: map[string]int64{"t": df, "u": docs - df}}
		s := p.Score([]string{"t", "u", "t"}, map[string]int{"t": tf, "u": tf / 2}, docLen, stats)
		if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
			t.Fatalf("Score = %v", s)
		}
		if tf <= 0 && s != 0 {
			t.Fatalf("Score = %v for tf %d", s, tf)
		}
		idf := p.IDF(df, docs)
		if math.IsNaN(idf) || math.IsInf(idf, 0) || idf <= 0 {
			t.Fatalf("IDF(%d, %d) = %v", df, docs, idf)
		}
	})
}

func BenchmarkBM25Score(b *testing.B) {
	p := DefaultBM25Params()
	stats := CorpusStats{Docs: 10_000, TotalLen: 500_000, DF: map[string]int64{"a": 10, "b": 500, "c": 9000}}
	terms := []string{"a", "b", "c", "d"}
	tf := map[string]int{"a": 1, "b": 3, "c": 2}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Score(terms, tf, 60, stats)
	}
}
