package core

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"unicode"
	"unicode/utf8"
)

// Tokenizer limits. They are part of the on-disk contract: every store
// indexes the output of [Tokenize], so changing them changes which documents
// a keyword query matches and how they rank.
const (
	// MaxTokenBytes is the longest token, in bytes, that [Tokenize] returns.
	// Longer tokens are truncated at the last rune boundary that fits.
	MaxTokenBytes = 64
	// MaxTokens is the most tokens [Tokenize] returns for one text; tokens
	// beyond it are dropped.
	MaxTokens = 4096
	// MaxQueryTerms is the most unique terms [Terms] returns for one query.
	MaxQueryTerms = 64
)

// Tokenize splits s into the normalized words that keyword search indexes
// and queries. It is the one tokenizer every store uses, so that BM25 ranks
// identically whatever the backend (SQLite FTS5, Postgres, in-memory).
//
// Rules, applied rune by rune:
//
//   - a token is a maximal run of runes for which unicode.IsLetter or
//     unicode.IsDigit is true; every other rune — space, punctuation,
//     symbols, '_', combining marks, control and format characters, and
//     invalid UTF-8 bytes — separates tokens;
//   - each rune is lowercased with unicode.ToLower;
//   - a token longer than [MaxTokenBytes] bytes (after lowercasing) is cut
//     at the last rune boundary that fits;
//   - at most [MaxTokens] tokens are returned; the rest of s is ignored.
//
// No Unicode normalization (NFC/NFKC) or diacritic folding is done: "é"
// written as one code point is a letter, but "e" followed by a combining
// acute accent is the letter "e" followed by a separator.
//
// Because a token holds only lowercase letters and digits it can never carry
// FTS5 query syntax (quotes, '*', '^', ':', parentheses, AND/OR/NOT/NEAR are
// all either separators or, once lowercased, plain words) nor tsquery syntax
// ('&', '|', '!', '<->', ':*'). Stores may therefore build MATCH and tsquery
// expressions from tokens without escaping beyond quoting.
//
// The returned tokens may share memory with s. Tokenize returns nil when s
// has no token. It is pure and safe for concurrent use.
func Tokenize(s string) []string {
	if n, ok := countLowerASCIITokens(s); ok {
		return splitLowerASCII(s, n)
	}
	buf, n := tokAppendNormalized(make([]byte, 0, tokBufCap(s)), s, MaxTokens, MaxTokenBytes)
	if n == 0 {
		return nil
	}
	return tokSplitSpaces(string(buf), n)
}

// NormalizeText returns the tokens of s, as [Tokenize] returns them, joined
// by single spaces. Stores index this text, not the raw content, so that the
// backend's own tokenizer only ever sees lowercase letter/digit words
// separated by one space and splits exactly where Tokenize did. With SQLite
// FTS5 the "ascii" tokenizer does that exactly; "unicode61" would by default
// also fold diacritics and uses Unicode 6.1 tables. With Postgres,
// array_to_tsvector(string_to_array(text, ' ')) keeps the tokens verbatim,
// where the default parser behind to_tsvector('simple', ...) may still split
// or classify some of them. It is pure and safe for concurrent use.
func NormalizeText(s string) string {
	buf, _ := tokAppendNormalized(make([]byte, 0, tokBufCap(s)), s, MaxTokens, MaxTokenBytes)
	return string(buf)
}

// tokBufCap is the initial capacity of the buffer that normalizes s for
// Tokenize: len(s), bounded by the most that MaxTokens tokens can take.
func tokBufCap(s string) int {
	return min(len(s), MaxTokens*(MaxTokenBytes+1))
}

// Terms returns the unique terms of the query s, tokenized as by [Tokenize],
// in order of first appearance and capped at [MaxQueryTerms] terms. It is
// pure and safe for concurrent use.
func Terms(s string) []string {
	toks := Tokenize(s)
	if len(toks) == 0 {
		return nil
	}
	out := make([]string, 0, min(len(toks), MaxQueryTerms))
next:
	for _, t := range toks {
		for _, u := range out {
			if u == t {
				continue next
			}
		}
		out = append(out, t)
		if len(out) == MaxQueryTerms {
			break
		}
	}
	return out
}

// IsToken reports whether s is exactly one token of [Tokenize]. A store's
// keyword index holds only such tokens, so a query term that is not one
// matches nothing (and stores drop it rather than pass it to their query
// syntax). It is pure and safe for concurrent use.
func IsToken(s string) bool {
	toks := Tokenize(s)
	return len(toks) == 1 && toks[0] == s
}

// TermFreqs counts how often each token occurs in tokens. It returns an
// empty, non-nil map for no tokens. It is pure and safe for concurrent use
// (it does not modify tokens).
func TermFreqs(tokens []string) map[string]int {
	m := make(map[string]int, len(tokens))
	for _, t := range tokens {
		m[t]++
	}
	return m
}

// NormalizeContentHash returns the lowercase hex SHA-256 of the normalized
// content of s: its tokens, by the rules of [Tokenize], joined by single
// spaces. Two texts that differ only in case, punctuation or spacing hash
// the same, which is what exact-duplicate detection wants.
//
// Unlike [Tokenize], no token is truncated and there is no cap on the number
// of tokens, so long texts that differ only past the [MaxTokens]th token, or
// in a word past its [MaxTokenBytes]th byte, still hash differently. The hash
// of a text with no token is the SHA-256 of the empty string. It is pure and
// safe for concurrent use.
func NormalizeContentHash(s string) string {
	buf, _ := tokAppendNormalized(make([]byte, 0, len(s)), s, 0, 0)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// tokASCIIAlnum reports whether the ASCII byte c is a letter or digit.
func tokASCIIAlnum(c byte) bool {
	return c-'a' < 26 || c-'0' < 10 || c-'A' < 26
}

// countLowerASCIITokens counts the tokens of s, up to MaxTokens, when s
// (up to the end of the MaxTokens-th token) is ASCII with no uppercase
// letter, in which case tokens are substrings of s. ok is false otherwise.
func countLowerASCIITokens(s string) (n int, ok bool) {
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf || c-'A' < 26:
			return 0, false
		case c-'a' < 26 || c-'0' < 10:
			if !in {
				if n == MaxTokens {
					return n, true
				}
				n++
				in = true
			}
		default:
			in = false
		}
	}
	return n, true
}

// splitLowerASCII returns the n tokens of the lowercase ASCII string s.
func splitLowerASCII(s string, n int) []string {
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	start := -1
	for i := 0; i < len(s) && len(out) < n; i++ {
		if tokASCIIAlnum(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			out = append(out, s[start:min(i, start+MaxTokenBytes)])
			start = -1
		}
	}
	if start >= 0 && len(out) < n {
		out = append(out, s[start:min(len(s), start+MaxTokenBytes)])
	}
	return out
}

// tokSplitSpaces splits s, made of n non-empty words separated by single
// spaces, into its words.
func tokSplitSpaces(s string, n int) []string {
	out := make([]string, 0, n)
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// tokAppendNormalized appends to dst the tokens of s joined by single spaces
// and returns the extended buffer and the number of tokens. maxTokens and
// maxBytes limit the number of tokens and the bytes per token; zero means
// no limit.
func tokAppendNormalized(dst []byte, s string, maxTokens, maxBytes int) ([]byte, int) {
	const full = math.MaxInt / 2 // tokLen of a token that was cut
	if maxBytes <= 0 {
		maxBytes = full
	}
	if maxTokens <= 0 {
		maxTokens = math.MaxInt
	}
	n := 0       // tokens started
	tokLen := -1 // bytes in the current token; -1 between tokens
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			i++
			if !tokASCIIAlnum(c) {
				tokLen = -1
				continue
			}
			if tokLen < 0 {
				if n == maxTokens {
					break
				}
				if n > 0 {
					dst = append(dst, ' ')
				}
				n++
				tokLen = 0
			}
			if tokLen >= maxBytes {
				tokLen = full
				continue
			}
			if c-'A' < 26 {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			tokLen++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			// Includes utf8.RuneError for invalid bytes.
			tokLen = -1
			continue
		}
		if tokLen < 0 {
			if n == maxTokens {
				break
			}
			if n > 0 {
				dst = append(dst, ' ')
			}
			n++
			tokLen = 0
		}
		r = unicode.ToLower(r)
		rl := utf8.RuneLen(r)
		if tokLen+rl > maxBytes {
			tokLen = full
			continue
		}
		dst = utf8.AppendRune(dst, r)
		tokLen += rl
	}
	return dst, n
}
