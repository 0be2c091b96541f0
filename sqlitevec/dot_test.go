package sqlitevec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// dotLengths are the lengths the kernels are checked at: every length up
// to 300 (each tail and each step of every loop), the usual dimensions,
// and both sides of maxDimX2 and of int32 overflow (2¹⁷·128² = 2³¹).
func dotLengths() []int {
	ns := make([]int, 0, 310)
	for n := range 301 {
		ns = append(ns, n)
	}
	return append(ns, 768, 1536, 4096+13, maxDimX2, maxDimX2+1, 1<<17-1, 1<<17, 1<<17+29)
}

// TestDotI8I8 checks that the dispatching kernels (the assembly where
// the CPU has it) return the same bits as the Go reference for every
// length, with a, b and c read from inside longer buffers of other
// values, so that a read past the end would change the result.
func TestDotI8I8(t *testing.T) {
	t.Parallel()
	random := func(r *rand.Rand) int8 { return int8(r.IntN(256) - 128) }
	fixed := func(v int8) func(*rand.Rand) int8 { return func(*rand.Rand) int8 { return v } }
	extreme := func(r *rand.Rand) int8 { return [...]int8{-128, 127}[r.IntN(2)] }
	for _, tc := range []struct {
		name    string
		a, b, c func(*rand.Rand) int8
	}{
		{"random", random, random, random},
		{"all -128", fixed(-128), fixed(-128), fixed(-128)},
		{"all 127", fixed(127), fixed(127), fixed(127)},
		{"-128 by 127", fixed(-128), fixed(127), fixed(-128)},
		{"random extremes", extreme, extreme, extreme},
		{"zero b", random, fixed(0), random},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(5, 6))
			for _, n := range dotLengths() {
				// Each vector starts 0..3 bytes into its buffer (so loads
				// are unaligned) and is followed by 64 bytes of noise.
				fill := func(gen func(*rand.Rand) int8) []int8 {
					off := r.IntN(4)
					buf := make([]int8, off+n+64)
					for i := range buf {
						buf[i] = random(r)
					}
					for i := off; i < off+n; i++ {
						buf[i] = gen(r)
					}
					return buf[off : off+n]
				}
				a, b, c := fill(tc.a), fill(tc.b), fill(tc.c)
				wb, wc := dotI8I8Go(a, b), dotI8I8Go(a, c)
				require.Equal(t, wb, dotI8I8(a, b), n)
				require.Equal(t, wc, dotI8I8(a, c), n)
				x, y := dotI8I8x2(a, b, c)
				require.Equal(t, [2]int32{wb, wc}, [2]int32{x, y}, n)
				x, y = dotI8I8x2Go(a, b, c)
				require.Equal(t, [2]int32{wb, wc}, [2]int32{x, y}, n)
				// Longer b and c are cut to len(a), as in the Go versions.
				x, y = dotI8I8x2(a, b[:n+64], c[:n+64])
				require.Equal(t, [2]int32{wb, wc}, [2]int32{x, y}, n)
				require.Equal(t, wb, dotI8I8(a, b[:n+64]), n)
			}
		})
	}
}

// TestDotI8I8Closed checks the kernels against closed forms at the
// extremes, including where the int32 sum wraps.
func TestDotI8I8Closed(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 15, 16, 17, 63, 64, 65, 768, 1<<17 - 1, 1 << 17, 1<<17 + 1} {
		a, b, c := make([]int8, n), make([]int8, n), make([]int8, n)
		for i := range n {
			a[i], b[i], c[i] = -128, -128, 127
		}
		want := [2]int32{int32(int64(n) * 128 * 128), int32(int64(-n) * 128 * 127)} // wraps past 2³¹−1 as int32 does
		x, y := dotI8I8x2(a, b, c)
		require.Equal(t, want, [2]int32{x, y}, n)
		require.Equal(t, want, [2]int32{dotI8I8(a, b), dotI8I8(a, c)}, n)
		require.Equal(t, want, [2]int32{dotI8I8Go(a, b), dotI8I8Go(a, c)}, n)
	}
}

// TestDotI8I8Short checks that a b or c shorter than a panics, as it
// does in the Go versions, instead of being read past its end.
func TestDotI8I8Short(t *testing.T) {
	t.Parallel()
	a, short := make([]int8, 32), make([]int8, 31)
	require.Panics(t, func() { dotI8I8(a, short) })
	require.Panics(t, func() { dotI8I8x2(a, a, short) })
	require.Panics(t, func() { dotI8I8x2(a, short, a) })
}

// FuzzDotI8I8 compares the dispatching kernels with the Go reference on
// three equal thirds of the input.
func FuzzDotI8I8(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x80, 0x7f})
	f.Add(make([]byte, 3*100))
	seed := make([]byte, 3*768)
	for i := range seed {
		seed[i] = byte(i * 37)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		n := len(data) / 3
		v := make([]int8, 3*n)
		for i := range v {
			v[i] = int8(data[i])
		}
		a, b, c := v[:n], v[n:2*n], v[2*n:]
		wb, wc := dotI8I8Go(a, b), dotI8I8Go(a, c)
		require.Equal(t, wb, dotI8I8(a, b))
		x, y := dotI8I8x2(a, b, c)
		require.Equal(t, [2]int32{wb, wc}, [2]int32{x, y})
		x, y = dotI8I8x2Go(a, b, c)
		require.Equal(t, [2]int32{wb, wc}, [2]int32{x, y})
	})
}

// dotSink keeps the benchmarked results alive.
var dotSink int32

// BenchmarkDotI8I8x2 compares the dispatching kernel (the assembly
// where the CPU has it) with the Go reference, on vectors in cache.
func BenchmarkDotI8I8x2(b *testing.B) {
	for _, n := range []int{768} {
		r := rand.New(rand.NewPCG(7, 8))
		x, y, z := make([]int8, n), make([]int8, n), make([]int8, n)
		for i := range n {
			x[i], y[i], z[i] = int8(r.IntN(256)-128), int8(r.IntN(256)-128), int8(r.IntN(256)-128)
		}
		for _, k := range []struct {
			name string
			f    func(a, b, c []int8) (int32, int32)
		}{{"dispatch", dotI8I8x2}, {"go", dotI8I8x2Go}} {
			b.Run(fmt.Sprintf("%d/%s", n, k.name), func(b *testing.B) {
				b.SetBytes(int64(3 * n))
				for b.Loop() {
					s, t := k.f(x, y, z)
					dotSink += s + t
				}
			})
		}
	}
}

// BenchmarkDotI8I8 is BenchmarkDotI8I8x2 for the single dot product.
func BenchmarkDotI8I8(b *testing.B) {
	for _, n := range []int{768} {
		r := rand.New(rand.NewPCG(7, 8))
		x, y := make([]int8, n), make([]int8, n)
		for i := range n {
			x[i], y[i] = int8(r.IntN(256)-128), int8(r.IntN(256)-128)
		}
		for _, k := range []struct {
			name string
			f    func(a, b []int8) int32
		}{{"dispatch", dotI8I8}, {"go", dotI8I8Go}} {
			b.Run(fmt.Sprintf("%d/%s", n, k.name), func(b *testing.B) {
				b.SetBytes(int64(2 * n))
				for b.Loop() {
					dotSink += k.f(x, y)
				}
			})
		}
	}
}

// TestDotI8 checks that the dispatching float-by-int8 lanes (the
// assembly where the CPU has it) give the same bits as the Go reference
// for every length, reading q and x from inside longer buffers, and
// that dotI8 is the dot product to float32 precision.
func TestDotI8(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	floats := []struct {
		name string
		gen  func() float32
	}{
		{"unit", func() float32 { return float32(r.NormFloat64() / 28) }},
		{"wide", func() float32 { return float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(60)-30))) }},
		{"tiny", func() float32 { return math.Float32frombits(r.Uint32N(1 << 23)) }}, // subnormal
		{"signed zero", func() float32 { return float32(math.Copysign(0, float64(r.IntN(2)*2-1))) }},
	}
	for _, fl := range floats {
		for _, n := range dotLengths()[:310] {
			qoff, xoff := r.IntN(4), r.IntN(4)
			qbuf, xbuf := make([]float32, qoff+n+16), make([]int8, xoff+n+64)
			for i := range qbuf {
				qbuf[i] = fl.gen()
			}
			for i := range xbuf {
				xbuf[i] = int8(r.IntN(256) - 128)
			}
			q, x := qbuf[qoff:qoff+n], xbuf[xoff:xoff+n]
			m := n &^ (dotLanes - 1)
			var got, want [dotLanes]float32
			for j := range got {
				got[j] = fl.gen()
			}
			want = got
			dotI8Lanes(q[:m], x[:m], &got)
			dotI8LanesGo(q[:m], x[:m], &want)
			for j := range got {
				require.Equal(t, math.Float32bits(want[j]), math.Float32bits(got[j]), "%s n %d lane %d", fl.name, n, j)
			}
			var exact float64
			for i := range q {
				exact += float64(q[i]) * float64(x[i])
			}
			var mag float64
			for i := range q {
				mag += math.Abs(float64(q[i]) * float64(x[i]))
			}
			require.InDelta(t, exact, float64(dotI8(q, x)), 1e-5*mag+1e-30, "%s n %d", fl.name, n)
		}
	}
}

// FuzzDotI8 compares the dispatching lanes with the Go reference, bit for
// bit: the input's first 4·n bytes are n float32s (any bits: NaN and Inf
// too), the next n the int8 code.
func FuzzDotI8(f *testing.F) {
	f.Add([]byte{})
	seed := make([]byte, 5*48)
	for i := range seed {
		seed[i] = byte(i * 91)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		n := len(data) / 5 &^ (dotLanes - 1)
		q, x := make([]float32, n), make([]int8, n)
		for i := range q {
			q[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
			x[i] = int8(data[4*n+i])
		}
		var got, want [dotLanes]float32
		dotI8Lanes(q, x, &got)
		dotI8LanesGo(q, x, &want)
		for j := range got {
			// NaN payloads may differ between the two: compare NaN-ness.
			if math.IsNaN(float64(want[j])) {
				require.True(t, math.IsNaN(float64(got[j])), "lane %d", j)
				continue
			}
			require.Equal(t, math.Float32bits(want[j]), math.Float32bits(got[j]), "lane %d", j)
		}
	})
}

// dotF32Sink keeps the benchmarked results alive.
var dotF32Sink float32

// BenchmarkDotI8 compares dotI8 with the dispatching lanes against
// dotI8 with the Go lanes, 768-d, in cache.
func BenchmarkDotI8(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	q, x := make([]float32, 768), make([]int8, 768)
	for i := range q {
		q[i], x[i] = float32(r.NormFloat64()), int8(r.IntN(256)-128)
	}
	b.Run("dispatch", func(b *testing.B) {
		for b.Loop() {
			dotF32Sink += dotI8(q, x)
		}
	})
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			var s [dotLanes]float32
			dotI8LanesGo(q, x, &s)
			dotF32Sink += s[0]
		}
	})
}
