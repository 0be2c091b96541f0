//go:build amd64 && !purego

package sqlitevec

import "golang.org/x/sys/cpu"

// prefixDists sets out[i] to the Hamming distance between q and the i-th
// prefix in codes (prefixWords words each), for every i < len(out): eight
// at a time in AVX-512 when the CPU counts bits in vectors (VPOPCNTQ), the
// others in a scalar POPCNT loop, and in prefixDistsGo on a CPU without
// POPCNT. Counts are exact, so all give the same distances.
func prefixDists(q *[prefixWords]uint64, codes []uint64, out []uint16) {
	codes = codes[:len(out)*prefixWords]
	if !cpu.X86.HasPOPCNT {
		prefixDistsGo(q, codes, out)
		return
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPOPCNTDQ {
		n := len(out) &^ 7
		prefixDistsAVX512(q, codes[:n*prefixWords], out[:n])
		codes, out = codes[n*prefixWords:], out[n:]
	}
	prefixDistsPOPCNT(q, codes, out)
}

// restDists sets out[i] to the Hamming distance between q and the
// restWords words after the prefix of slot cand[i]'s code (codes holds w
// words a slot), for every i < len(out), in the same kernels as
// prefixDists. Besides the counting, the gain is in the reads: the
// kernels' loops are short enough that the out-of-order core has the
// codes of many slots in flight, where the Go loop's random reads mostly
// wait on each other.
func restDists(q *[restWords]uint64, codes []uint64, w int, cand []int32, out []uint16) {
	cand = cand[:len(out)]
	if !cpu.X86.HasPOPCNT {
		restDistsGo(q, codes, w, cand, out)
		return
	}
	for _, s := range cand {
		_ = codes[int(s)*w+prefixWords : int(s)*w+prefixWords+restWords] // what the kernels read
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPOPCNTDQ {
		n := len(out) &^ 7
		restDistsAVX512(q, codes, w, cand[:n], out[:n])
		cand, out = cand[n:], out[n:]
	}
	restDistsPOPCNT(q, codes, w, cand, out)
}

// prefixDistsAVX512 is prefixDists for len(out) a multiple of 8 and
// len(codes) ≥ prefixWords·len(out), on a CPU with AVX-512F and
// VPOPCNTDQ.
//
//go:noescape
func prefixDistsAVX512(q *[prefixWords]uint64, codes []uint64, out []uint16)

// prefixDistsPOPCNT is prefixDists for len(codes) ≥
// prefixWords·len(out), on a CPU with POPCNT.
//
//go:noescape
func prefixDistsPOPCNT(q *[prefixWords]uint64, codes []uint64, out []uint16)

// restDistsAVX512 is restDists for len(out) a multiple of 8, len(cand) ≥
// len(out) and every code it reads inside codes, on a CPU with AVX-512F
// and VPOPCNTDQ.
//
//go:noescape
func restDistsAVX512(q *[restWords]uint64, codes []uint64, w int, cand []int32, out []uint16)

// restDistsPOPCNT is restDists for len(cand) ≥ len(out) and every code it
// reads inside codes, on a CPU with POPCNT.
//
//go:noescape
func restDistsPOPCNT(q *[restWords]uint64, codes []uint64, w int, cand []int32, out []uint16)
