package core

import (
	"context"
	"math"
	"math/bits"
	"unicode/utf8"
)

// Embedder turns texts into dense vectors for semantic search.
//
// Every vector Embed returns must have length Dim() and unit L2 length, and
// must not be the zero vector; the validator rejects anything else. Model
// names the embedding space: vectors from different models, or from the same
// model with a different Dim, are not comparable and must not be mixed in one
// index. Each implementation documents whether it is safe for concurrent use.
type Embedder interface {
	// Model returns the stable name of the embedding model.
	Model() string
	// Dim returns the length of every vector Embed returns.
	Dim() int
	// Embed returns one vector per text, in order. It returns ctx.Err()
	// if ctx is done before it finishes.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// HashEmbedderModel is the model name of [HashEmbedder]. The features and
// hash are frozen under this name: any change to them that changes a vector
// needs a new name. A HashEmbedder built with a zero Dim has Dim
// [DefaultEmbedDim].
const HashEmbedderModel = "athena-hash-v1"

// Feature weights of HashEmbedder.
const (
	hashWordWeight  = 1.0
	hashGramWeight  = 0.5
	hashCheckEveryN = 64 // Embed checks ctx.Err() every this many texts
)

// Namespace bytes hashed before a feature, so that the word "abc" and the
// 3-gram "abc" are different features.
const (
	hashNSWord  = 'w'
	hashNSGram  = 'g'
	hashNSEmpty = 'e'
)

// HashEmbedderConfig configures [NewHashEmbedder]. The zero value is valid.
type HashEmbedderConfig struct {
	// Dim is the vector length; zero or negative means [DefaultEmbedDim].
	Dim int
}

// HashEmbedder is a deterministic, offline [Embedder] based on feature
// hashing. It needs no model weights and no network, and the same text
// always yields a bit-identical vector on every platform, which makes it the
// default embedder for tests, for the edge and for the browser. It captures
// lexical and sub-word similarity (shared words, shared stems and
// inflections), not meaning.
//
// Features of a text, from its tokens by [Tokenize] (so case and punctuation
// are ignored, and only the first [MaxTokens] tokens count):
//
//   - each word, weight 1.0;
//   - each character (rune) 3-gram of the word padded with the boundary
//     markers '^' and '$' — "db" gives "^db" and "db$", "abc" gives "^ab",
//     "abc" and "bc$", and "a" gives "^a$" — weight 0.5.
//
// Each feature is hashed with 64-bit FNV-1a (prefixed by a namespace byte
// that separates words from grams) followed by a 64-bit finalizer; the hash
// picks a bucket in [0, Dim) and a sign, and the weight is added there with
// that sign. Repeated features add up. The vector is then L2-normalized in
// float64 and stored as float32.
//
// A text with no token (empty, only spaces or punctuation) gets one fixed
// unit vector: a single ±1 at the bucket of the hashed marker
// "athena-hash-v1", never the zero vector. So does a text whose features
// cancel out exactly, which only tiny Dims make possible.
//
// The zero HashEmbedder is usable and has Dim [DefaultEmbedDim]. A
// HashEmbedder is immutable and safe for concurrent use.
type HashEmbedder struct {
	dim int
}

// NewHashEmbedder returns a HashEmbedder configured by cfg.
func NewHashEmbedder(cfg HashEmbedderConfig) *HashEmbedder {
	d := cfg.Dim
	if d <= 0 {
		d = DefaultEmbedDim
	}
	return &HashEmbedder{dim: d}
}

// Model returns [HashEmbedderModel].
func (e *HashEmbedder) Model() string { return HashEmbedderModel }

// Dim returns the length of the vectors e produces.
func (e *HashEmbedder) Dim() int {
	if e == nil || e.dim <= 0 {
		return DefaultEmbedDim
	}
	return e.dim
}

// Embed returns [HashEmbedder.EmbedOne] of each text, in order. It checks
// ctx before starting and every 64 texts, and returns nil and ctx.Err() if
// ctx is done. It never fails otherwise. It is safe for concurrent use.
func (e *HashEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if i > 0 && i%hashCheckEveryN == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		out[i] = e.EmbedOne(t)
	}
	return out, nil
}

// EmbedOne returns the unit vector of text, of length e.Dim(). It is pure
// and safe for concurrent use; the caller owns the returned slice.
func (e *HashEmbedder) EmbedOne(text string) []float32 {
	dim := e.Dim()
	v := make([]float32, dim)

	var stack [512]byte
	norm, _ := tokAppendNormalized(stack[:0], text, MaxTokens, MaxTokenBytes)

	// padded holds "^" + word + "$"; starts the rune offsets within it.
	var padded [MaxTokenBytes + 2]byte
	var starts [MaxTokenBytes + 3]uint8
	for len(norm) > 0 {
		end := 0
		for end < len(norm) && norm[end] != ' ' {
			end++
		}
		w := norm[:end]
		if end < len(norm) {
			end++ // skip the space
		}
		norm = norm[end:]

		hashEmbedAdd(v, hashEmbedFeature(hashNSWord, w), hashWordWeight)

		padded[0] = '^'
		n := copy(padded[1:], w)
		padded[n+1] = '$'
		p := padded[:n+2]
		nr := 0
		for i := 0; i < len(p); {
			starts[nr] = uint8(i)
			nr++
			if p[i] < utf8.RuneSelf {
				i++
			} else {
				_, size := utf8.DecodeRune(p[i:])
				i += size
			}
		}
		starts[nr] = uint8(len(p)) // nr >= 3: a word has at least one rune
		for i := 0; i+3 <= nr; i++ {
			hashEmbedAdd(v, hashEmbedFeature(hashNSGram, p[starts[i]:starts[i+3]]), hashGramWeight)
		}
	}

	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		hashEmbedAdd(v, hashEmbedFeature(hashNSEmpty, []byte(HashEmbedderModel)), 1)
		return v
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
	return v
}

// hashEmbedAdd adds ±w to the bucket of v that h selects: the high bits of h pick
// the bucket, its lowest bit the sign.
func hashEmbedAdd(v []float32, h uint64, w float32) {
	hi, _ := bits.Mul64(h, uint64(len(v)))
	if h&1 != 0 {
		w = -w
	}
	v[hi] += w
}

// hashEmbedFeature returns 64-bit FNV-1a of ns followed by b, passed through the
// murmur3 fmix64 finalizer so that every output bit depends on every input
// bit.
func hashEmbedFeature(ns byte, b []byte) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	h ^= uint64(ns)
	h *= prime64
	for _, c := range b {
		h ^= uint64(c)
		h *= prime64
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
