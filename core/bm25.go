package core

import (
	"math"
	"slices"
)

// Default BM25 parameters, used when a [BM25Params] field is zero.
const (
	DefaultBM25K1 = 1.2
	DefaultBM25B  = 0.75
)

// BM25Params are the free parameters of Okapi BM25.
//
// K1 controls term-frequency saturation and B the strength of document
// length normalization. The zero value means the defaults: a K1 or B that is
// zero — or negative, NaN or infinite — is read as [DefaultBM25K1] or
// [DefaultBM25B]; a B above 1 is read as 1. So BM25Params{} scores exactly
// like [DefaultBM25Params]. BM25Params is a value type; its methods are pure
// and safe for concurrent use.
type BM25Params struct {
	K1 float64
	B  float64
}

// DefaultBM25Params returns the standard parameters, K1 = 1.2 and B = 0.75.
func DefaultBM25Params() BM25Params {
	return BM25Params{K1: DefaultBM25K1, B: DefaultBM25B}
}

// CorpusStats are the statistics a store returns for the documents of one
// project that BM25 needs to score a query.
type CorpusStats struct {
	// Docs is the number of documents.
	Docs int64
	// TotalLen is the sum of the documents' lengths, in tokens of [Tokenize].
	TotalLen int64
	// DF is the document frequency of each query term: the number of
	// documents that contain it at least once. A term that is missing
	// counts as 0.
	DF map[string]int64
}

// AvgDocLen returns TotalLen/Docs, or 1 when either is not positive.
func (c CorpusStats) AvgDocLen() float64 {
	if c.Docs <= 0 || c.TotalLen <= 0 {
		return 1
	}
	return float64(c.TotalLen) / float64(c.Docs)
}

// resolved returns p with the zero-value and range rules applied.
func (p BM25Params) resolved() (k1, b float64) {
	k1, b = p.K1, p.B
	if !(k1 > 0) || math.IsInf(k1, 0) {
		k1 = DefaultBM25K1
	}
	if !(b > 0) || math.IsInf(b, 0) {
		b = DefaultBM25B
	}
	if b > 1 {
		b = 1
	}
	return k1, b
}

// IDF returns the inverse document frequency of a term found in df of docs
// documents, in the non-negative form used by Lucene:
//
//	ln(1 + (docs - df + 0.5) / (df + 0.5))
//
// Inconsistent inputs are clamped rather than rejected, so the result is
// always finite and positive: a negative df counts as 0, a negative docs
// counts as 0, and docs counts as at least df. IDF does not depend on p.
func (p BM25Params) IDF(df, docs int64) float64 {
	if df < 0 {
		df = 0
	}
	if docs < df {
		docs = df
	}
	n, d := float64(docs), float64(df)
	return math.Log1p((n - d + 0.5) / (d + 0.5))
}

// Score returns the BM25 score of one document for a query:
//
//	sum over unique t in queryTerms with tf = docTF[t] > 0 of
//	  IDF(df(t), Docs) * tf*(k1+1) / (tf + k1*(1 - b + b*docLen/avgdl))
//
// where avgdl is stats.AvgDocLen and df(t) is stats.DF[t]. Since the
// document contains t, df(t) counts as at least 1 and Docs as at least df(t).
// A negative docLen counts as 0. Duplicate query terms count once; pass
// [Terms] of the query. Terms are summed in the given order in float64, so
// the result is deterministic; it is finite and ≥ 0, and 0 when no query
// term occurs in the document.
func (p BM25Params) Score(queryTerms []string, docTF map[string]int, docLen int, stats CorpusStats) float64 {
	if len(queryTerms) == 0 || len(docTF) == 0 {
		return 0
	}
	k1, b := p.resolved()
	dl := float64(docLen)
	if docLen < 0 {
		dl = 0
	}
	// Explicit float64 conversions round each product, which forbids fused
	// multiply-adds: the score must have the same bits on every platform.
	norm := float64(k1 * (1 - b + float64(b*dl)/stats.AvgDocLen()))
	var seen map[string]struct{}
	if len(queryTerms) > MaxQueryTerms {
		seen = make(map[string]struct{}, len(queryTerms))
	}
	score := 0.0
	for i, t := range queryTerms {
		if seen != nil {
			if _, dup := seen[t]; dup {
				continue
			}
			seen[t] = struct{}{}
		} else if slices.Contains(queryTerms[:i], t) {
			continue
		}
		tf := docTF[t]
		if tf <= 0 {
			continue
		}
		df := max(stats.DF[t], 1)
		idf := p.IDF(df, stats.Docs)
		ftf := float64(tf)
		score += float64(idf * (k1 + 1) * (ftf / (ftf + norm)))
	}
	return score
}
