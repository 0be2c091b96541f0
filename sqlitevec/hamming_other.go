//go:build !amd64 || purego

package sqlitevec

// prefixDists sets out[i] to the Hamming distance between q and the i-th
// prefix in codes (prefixWords words each), for every i < len(out).
func prefixDists(q *[prefixWords]uint64, codes []uint64, out []uint16) {
	prefixDistsGo(q, codes, out)
}

// restDists sets out[i] to the Hamming distance between q and the
// restWords words after the prefix of slot cand[i]'s code (codes holds w
// words a slot), for every i < len(out).
func restDists(q *[restWords]uint64, codes []uint64, w int, cand []int32, out []uint16) {
	restDistsGo(q, codes, w, cand, out)
}
