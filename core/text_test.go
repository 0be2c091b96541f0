package core

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestTokenize(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 100)
	longMulti := strings.Repeat("é", 40) // 80 bytes, 2 bytes per rune
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "empty", in: "", want: nil},
		{name: "only separators", in: " \t\n.,;:!?-_()[]{}", want: nil},
		{name: "simple lowercase", in: "hello world", want: []string{"hello", "world"}},
		{name: "uppercase", in: "Hello WORLD", want: []string{"hello", "world"}},
		{name: "digits", in: "v2 release 2024", want: []string{"v2", "release", "2024"}},
		{name: "underscore separates", in: "snake_case_name", want: []string{"snake", "case", "name"}},
		{name: "punctuation", in: "foo.bar,baz;qux-quux", want: []string{"foo", "bar", "baz", "qux", "quux"}},
		{name: "fts5 syntax", in: `"a" OR b* NEAR(c d) col:foo {x y}:z ^w`, want: []string{"a", "or", "b", "near", "c", "d", "col", "foo", "x", "y", "z", "w"}},
		{name: "tsquery syntax", in: "a & b | !c <-> d:*", want: []string{"a", "b", "c", "d"}},
		{name: "unicode letters", in: "Café Straße ÅNGSTRÖM", want: []string{"café", "straße", "ångström"}},
		{name: "greek and cyrillic", in: "ΑΘΗΝΑ Привет", want: []string{"αθηνα", "привет"}},
		{name: "cjk run is one token", in: "日本語 テキスト", want: []string{"日本語", "テキスト"}},
		{name: "non-ascii digits", in: "٣٤ १२", want: []string{"٣٤", "१२"}},
		{name: "combining mark separates", in: "cafe\u0301 ok", want: []string{"cafe", "ok"}},
		{name: "emoji separates", in: "go🚀fast", want: []string{"go", "fast"}},
		{name: "invalid utf8 separates", in: "ab\xffcd\xfe\xfeef", want: []string{"ab", "cd", "ef"}},
		{name: "nul separates", in: "a\x00b", want: []string{"a", "b"}},
		{name: "rtl override separates", in: "abc\u202edef", want: []string{"abc", "def"}},
		{name: "zero width space separates", in: "ab\u200bcd", want: []string{"ab", "cd"}},
		{name: "long ascii truncated", in: long + " x", want: []string{long[:MaxTokenBytes], "x"}},
		{name: "long ascii upper truncated", in: strings.ToUpper(long), want: []string{long[:MaxTokenBytes]}},
		{name: "long multibyte truncated at rune", in: longMulti, want: []string{strings.Repeat("é", 32)}},
		{name: "long multibyte odd boundary", in: "a" + longMulti, want: []string{"a" + strings.Repeat("é", 31)}},
		{name: "dotted capital I", in: "İstanbul", want: []string{"istanbul"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Tokenize(tc.in)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if norm := NormalizeText(tc.in); norm != strings.Join(tc.want, " ") {
				t.Fatalf("NormalizeText(%q) = %q, want %q", tc.in, norm, strings.Join(tc.want, " "))
			}
		})
	}
}

func TestTokenizeMaxTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		word string
	}{
		{name: "ascii fast path", word: "w"},
		{name: "general path", word: "W"},
		{name: "non-ascii", word: "é"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := strings.Repeat(tc.word+" ", MaxTokens+10)
			got := Tokenize(in)
			if len(got) != MaxTokens {
				t.Fatalf("len = %d, want %d", len(got), MaxTokens)
			}
			want := strings.ToLower(tc.word)
			for i, tok := range got {
				if tok != want {
					t.Fatalf("token %d = %q, want %q", i, tok, want)
				}
			}
		})
	}
}

func TestTerms(t *testing.T) {
	t.Parallel()
	var many strings.Builder
	for i := range MaxQueryTerms + 20 {
		many.WriteString("t")
		many.WriteString(strings.Repeat("x", i))
		many.WriteString(" ")
	}
	tests := []struct {
		name    string
		in      string
		want    []string
		wantLen int
	}{
		{name: "empty", in: "", want: nil},
		{name: "dedupe keeps first order", in: "b a B c A b", want: []string{"b", "a", "c"}},
		{name: "case folds", in: "Go GO go", want: []string{"go"}},
		{name: "syntax stripped", in: `"foo" AND bar*`, want: []string{"foo", "and", "bar"}},
		{name: "capped", in: many.String(), wantLen: MaxQueryTerms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Terms(tc.in)
			if tc.wantLen > 0 {
				if len(got) != tc.wantLen {
					t.Fatalf("len(Terms) = %d, want %d", len(got), tc.wantLen)
				}
				if got[0] != "t" || got[1] != "tx" {
					t.Fatalf("Terms order wrong: %q", got[:2])
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Terms(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestIsToken(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxTokenBytes)
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"fox", true},
		{"état", true},
		{"a1b2", true},
		{long, true},
		{long + "x", false}, // Tokenize truncates it
		{"", false},
		{"Fox", false}, // Tokenize folds case
		{"two words", false},
		{"fox*", false},
		{"'fox'", false},
		{"\x00", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := IsToken(tc.in); got != tc.want {
				t.Fatalf("IsToken(%q) = %v, want %v (Tokenize: %q)", tc.in, got, tc.want, Tokenize(tc.in))
			}
		})
	}
}

func TestTermFreqs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want map[string]int
	}{
		{name: "nil", in: nil, want: map[string]int{}},
		{name: "counts", in: []string{"a", "b", "a", "c", "a"}, want: map[string]int{"a": 3, "b": 1, "c": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := TermFreqs(tc.in)
			if got == nil {
				t.Fatal("TermFreqs returned nil map")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("TermFreqs = %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("TermFreqs[%q] = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

func TestNormalizeContentHash(t *testing.T) {
	t.Parallel()
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	long := strings.Repeat("a", 100)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: sum("")},
		{name: "punctuation only", in: "?!...", want: sum("")},
		{name: "normalized", in: "  Hello,   WORLD!! ", want: sum("hello world")},
		{name: "unicode", in: "Straße—Café", want: sum("straße café")},
		{name: "long token not truncated", in: long, want: sum(long)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := NormalizeContentHash(tc.in); got != tc.want {
				t.Fatalf("NormalizeContentHash(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}

	t.Run("differs past MaxTokens", func(t *testing.T) {
		t.Parallel()
		base := strings.Repeat("w ", MaxTokens)
		if NormalizeContentHash(base+"x") == NormalizeContentHash(base+"y") {
			t.Fatal("texts differing after MaxTokens tokens hash equal")
		}
	})
	t.Run("same for equivalent texts", func(t *testing.T) {
		t.Parallel()
		if NormalizeContentHash("The quick, brown fox.") != NormalizeContentHash("the QUICK brown\tfox") {
			t.Fatal("equivalent texts hash differently")
		}
	})
}

func TestTokenizeAllocs(t *testing.T) {
	// Not parallel: AllocsPerRun needs a quiet heap.
	tests := []struct {
		name string
		in   string
		max  float64
	}{
		{name: "lowercase ascii", in: "the quick brown fox jumps over the lazy dog", max: 1},
		{name: "mixed case", in: "The Quick Brown Fox Jumps Over The Lazy Dog", max: 3},
		{name: "unicode", in: "Ünïcödé wörds ärë fïnë", max: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := testing.AllocsPerRun(100, func() { _ = Tokenize(tc.in) })
			if got > tc.max {
				t.Fatalf("Tokenize allocs = %v, want <= %v", got, tc.max)
			}
		})
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"",
		"hello world",
		`"a" OR b*`,
		`NEAR(a b)`,
		`col:foo`,
		`{a b}:c`,
		"\x00",
		"\xff\xfe",
		`"unbalanced`,
		"e\u0301\u0302\u0303 a\u0308",
		"abc\u202edef\u202c",
		"a & b | !c <-> d:*",
		"İSTANBUL ǅemal ΣΊΣΥΦΟΣ",
		strings.Repeat("é", 40),
		// No huge seeds: minimizing inputs grown from them stalls fuzzing.
		// TestTokenizeMaxTokens covers the token cap.
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks := Tokenize(s)
		if len(toks) > MaxTokens {
			t.Fatalf("%d tokens > MaxTokens", len(toks))
		}
		for _, tok := range toks {
			if tok == "" {
				t.Fatal("empty token")
			}
			if len(tok) > MaxTokenBytes {
				t.Fatalf("token %q is %d bytes", tok, len(tok))
			}
			if !utf8.ValidString(tok) {
				t.Fatalf("token %q is not valid UTF-8", tok)
			}
			if strings.ToLower(tok) != tok {
				t.Fatalf("token %q is not lowercase", tok)
			}
			for _, r := range tok {
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					t.Fatalf("token %q holds %U", tok, r)
				}
			}
		}
		if got := NormalizeText(s); got != strings.Join(toks, " ") {
			t.Fatalf("NormalizeText = %q, want %q", got, strings.Join(toks, " "))
		}
		terms := Terms(s)
		if len(terms) > MaxQueryTerms {
			t.Fatalf("%d terms > MaxQueryTerms", len(terms))
		}
		seen := make(map[string]bool, len(terms))
		for _, term := range terms {
			if seen[term] {
				t.Fatalf("duplicate term %q", term)
			}
			seen[term] = true
		}
		// Tokenizing the normalized text is the identity.
		if again := Tokenize(strings.Join(toks, " ")); !slices.Equal(again, toks) {
			t.Fatalf("Tokenize is not idempotent: %q then %q", toks, again)
		}
	})
}

const tokenizeBenchText = "The Athena edge store keeps an agent's memories: facts, patterns and " +
	"decisions, ranked with BM25 over SQLite FTS5 or Postgres, and by cosine " +
	"similarity over embeddings. Tokenize runs on every insert."

func BenchmarkTokenize(b *testing.B) {
	cases := []struct {
		name string
		in   string
	}{
		{name: "mixed_case_ascii", in: tokenizeBenchText},
		{name: "lowercase_ascii", in: strings.ToLower(tokenizeBenchText)},
		{name: "unicode", in: "Die Straße führt über die Brücke zum Café; Ελληνικά και русский текст, 日本語のテキスト."},
		{name: "long_4KiB", in: strings.Repeat(tokenizeBenchText+" ", 4096/len(tokenizeBenchText)+1)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.in)))
			b.ReportAllocs()
			for b.Loop() {
				_ = Tokenize(c.in)
			}
		})
	}
}
