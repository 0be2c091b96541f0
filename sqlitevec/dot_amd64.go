//go:build amd64 && !purego

package sqlitevec

import "golang.org/x/sys/cpu"

// dotI8I8 is Σ a[i]·b[i] in integers: in AVX2 when the CPU has it,
// dotI8I8Go otherwise. Both wrap modulo 2³² alike, so the result is the
// same bits on every machine.
func dotI8I8(a, b []int8) int32 {
	b = b[:len(a)]
	if cpu.X86.HasAVX2 && cpu.X86.HasAVX {
		return dotI8I8AVX2(a, b)
	}
	return dotI8I8Go(a, b)
}

// dotI8I8x2 is (Σ a[i]·b[i], Σ a[i]·c[i]): in AVX2 when the CPU has it,
// loading a once for both; dotI8I8x2Go otherwise.
func dotI8I8x2(a, b, c []int8) (int32, int32) {
	b, c = b[:len(a)], c[:len(a)]
	if cpu.X86.HasAVX2 && cpu.X86.HasAVX {
		return dotI8I8x2AVX2(a, b, c)
	}
	return dotI8I8x2Go(a, b, c)
}

// dotI8Lanes is dotI8LanesGo: in AVX2 when the CPU has it, with the same
// lanes, products and order of additions, so the same bits.
func dotI8Lanes(q []float32, x []int8, s *[dotLanes]float32) {
	x = x[:len(q)]
	if cpu.X86.HasAVX2 && cpu.X86.HasAVX {
		dotI8LanesAVX2(q, x, s)
		return
	}
	dotI8LanesGo(q, x, s)
}

// dotI8LanesAVX2 is dotI8Lanes for len(x) ≥ len(q), len(q) a multiple of
// dotLanes, on a CPU with AVX2.
//
//go:noescape
func dotI8LanesAVX2(q []float32, x []int8, s *[dotLanes]float32)

// dotI8I8AVX2 is dotI8I8 for len(b) ≥ len(a), on a CPU with AVX2.
//
//go:noescape
func dotI8I8AVX2(a, b []int8) int32

// dotI8I8x2AVX2 is dotI8I8x2 for len(b), len(c) ≥ len(a), on a CPU with
// AVX2.
//
//go:noescape
func dotI8I8x2AVX2(a, b, c []int8) (x, y int32)
