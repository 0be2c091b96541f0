package sqlitevec

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/athena-edge/athena-edge/core"
)

// The tests here are named Vector… so that scripts/test.sh's purego pass
// (-run 'Dot|Vector') runs them as well.

// prefixLengths are the row counts prefixDists is checked at: every count
// up to 600 (each tail of each eight-row step, and a few blocks of
// scanRange's), and some larger.
func prefixLengths() []int {
	ns := make([]int, 0, 610)
	for n := range 601 {
		ns = append(ns, n)
	}
	return append(ns, 1023, 1024, 1025, 4096+13)
}

// codeFill says how a kernel test fills the query's words (q) and the
// codes' words (cs).
type codeFill struct {
	name  string
	q, cs func(*rand.Rand) uint64
}

// codeFills are the fills the Hamming kernel tests run: random words,
// equal words (distance 0), opposite ones (the largest distance) and
// sparse ones.
func codeFills() []codeFill {
	random := func(r *rand.Rand) uint64 { return r.Uint64() }
	fixed := func(v uint64) func(*rand.Rand) uint64 { return func(*rand.Rand) uint64 { return v } }
	sparse := func(r *rand.Rand) uint64 { return r.Uint64() & r.Uint64() & r.Uint64() }
	return []codeFill{
		{"random", random, random},
		{"all zeros", fixed(0), fixed(0)},
		{"all ones", fixed(^uint64(0)), fixed(^uint64(0))},
		{"ones against zeros", fixed(^uint64(0)), fixed(0)},
		{"zeros against ones", fixed(0), fixed(^uint64(0))},
		{"sparse", sparse, random},
	}
}

// codes returns n code words filled by f.cs, starting 0..7 words into
// their buffer (so that eight-row steps are not aligned to cache lines).
func (f codeFill) codes(r *rand.Rand, n int) []uint64 {
	off := r.IntN(8)
	buf := make([]uint64, off+n)
	for i := range buf {
		buf[i] = f.cs(r)
	}
	return buf[off:]
}

// TestVectorPrefixDists checks that the dispatching prefixDists (the
// assembly where the CPU has it) writes the same distances as the Go
// reference, and as a bit-by-bit count, for every row count, with the
// codes starting 0..7 words into a buffer (so that eight-row steps are not
// aligned to cache lines) and out inside a buffer whose other elements
// must stay untouched.
func TestVectorPrefixDists(t *testing.T) {
	t.Parallel()
	for _, tc := range codeFills() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(9, 10))
			var q [prefixWords]uint64
			for i := range q {
				q[i] = tc.q(r)
			}
			for _, n := range prefixLengths() {
				off := r.IntN(8)
				buf := make([]uint64, off+n*prefixWords+64)
				for i := range buf {
					buf[i] = r.Uint64()
				}
				codes := buf[off : off+n*prefixWords]
				for i := range codes {
					codes[i] = tc.cs(r)
				}
				want := make([]uint16, n)
				for i := range want {
					for j, c := range codes[i*prefixWords : (i+1)*prefixWords] {
						want[i] += uint16(bits.OnesCount64(q[j] ^ c))
					}
				}

				out := make([]uint16, 3+n+16)
				for i := range out {
					out[i] = 0xdead
				}
				prefixDistsGo(&q, codes, out[3:3+n])
				require.Equal(t, want, out[3:3+n], n)

				for i := range out {
					out[i] = 0xdead
				}
				prefixDists(&q, buf[off:], out[3:3+n]) // longer codes: only n rows are read
				require.Equal(t, want, out[3:3+n], n)
				require.Equal(t, []uint16{0xdead, 0xdead, 0xdead}, out[:3], n)
				require.Equal(t, slices.Repeat([]uint16{0xdead}, 16), out[3+n:], n)
			}
		})
	}
}

// TestVectorPrefixDistsShort checks that codes shorter than out needs
// panic, as in the Go version, instead of being read past their end.
func TestVectorPrefixDistsShort(t *testing.T) {
	t.Parallel()
	var q [prefixWords]uint64
	for _, n := range []int{1, 8, 9, 64} {
		codes := make([]uint64, n*prefixWords-1)
		require.Panics(t, func() { prefixDists(&q, codes, make([]uint16, n)) }, n)
		require.Panics(t, func() { prefixDistsGo(&q, codes, make([]uint16, n)) }, n)
	}
}

// TestVectorScanRangePrefix checks scanRange's prefix branch (distances a
// block at a time, then the filter) against its general branch, which it
// takes for the same prefixes when the histogram is shorter than 1024:
// the same distances, noDist marks, histogram and count, for ranges that
// start and end inside blocks, with removed slots and each kind of filter.
func TestVectorScanRangePrefix(t *testing.T) {
	t.Parallel()
	p := clusteredPart(3000, 3)
	pre := p.prefix()
	n := len(p.rids)
	ids := make([]core.ID, 0, n/5)
	for i := 0; i < n; i += 5 {
		ids = append(ids, core.ID(strconv.Itoa(i)))
	}
	r := rand.New(rand.NewPCG(11, 12))
	code := make([]uint64, prefixWords)
	for i := range code {
		code[i] = r.Uint64()
	}
	for _, tc := range []struct {
		name string
		f    core.MemoryFilter
	}{
		{"no filter", core.MemoryFilter{}},
		{"states", core.MemoryFilter{States: core.LiveStates()}},
		{"ids", core.MemoryFilter{IDs: ids}},
	} {
		for _, rg := range [][2]int{{0, n}, {0, 0}, {7, 7}, {1, n - 3}, {5, 5 + 3*distBlock + 7}, {distBlock, 2 * distBlock}, {n - 9, n}} {
			t.Run(fmt.Sprintf("%s/%d-%d", tc.name, rg[0], rg[1]), func(t *testing.T) {
				t.Parallel()
				m := newMatcher(&tc.f)
				lo, hi := rg[0], rg[1]
				dist, want := make([]uint16, n), make([]uint16, n)
				hist, wantHist := make([]int32, 1024), make([]int32, prefixWords*64+1)
				got := p.scanRange(m, code, pre[lo*prefixWords:hi*prefixWords], lo, hi, dist, hist)
				matched := p.scanRange(m, code, pre[lo*prefixWords:hi*prefixWords], lo, hi, want, wantHist)
				require.Equal(t, matched, got)
				require.Equal(t, want, dist)
				require.Equal(t, wantHist, hist[:len(wantHist)])
				require.Zero(t, slices.Max(hist[len(wantHist):]))
				if tc.name == "ids" && hi-lo > 100 {
					require.Less(t, matched, (hi-lo)/4) // the filter did filter
				}
			})
		}
	}
}

// TestVectorRestDists checks that the dispatching restDists (the
// assembly where the CPU has it) writes the same distances as the Go
// reference, and as a bit-by-bit count, for every count of slots up to
// 600 in sorted, shuffled and repeated orders, the first and last slots
// included, for codes of 12 words (768-d) and longer, starting 0..7 words
// into their buffer, with out inside a buffer whose other elements must
// stay untouched.
func TestVectorRestDists(t *testing.T) {
	t.Parallel()
	for _, tc := range codeFills() {
		for _, w := range []int{prefixWords + restWords, prefixWords + restWords + 1, 24} {
			t.Run(fmt.Sprintf("%s/w=%d", tc.name, w), func(t *testing.T) {
				t.Parallel()
				const rows = 700
				r := rand.New(rand.NewPCG(15, uint64(w)))
				var q [restWords]uint64
				for i := range q {
					q[i] = tc.q(r)
				}
				codes := tc.codes(r, rows*w)
				orders := []func(n int) []int32{
					func(n int) []int32 { // sorted, as refine has them, the last slot included
						c := make([]int32, 0, n)
						for _, s := range r.Perm(rows)[:n] {
							c = append(c, int32(s))
						}
						slices.Sort(c)
						if n > 0 {
							c[n-1] = rows - 1
						}
						return c
					},
					func(n int) []int32 { // any order, with repeats, the first slot included
						c := make([]int32, n)
						for i := range c {
							c[i] = int32(r.IntN(rows))
						}
						if n > 0 {
							c[r.IntN(n)] = 0
						}
						return c
					},
				}
				for n := range 601 {
					for _, order := range orders {
						cand := order(n)
						want := make([]uint16, n)
						for i, s := range cand {
							for j, c := range codes[int(s)*w+prefixWords : int(s)*w+prefixWords+restWords] {
								want[i] += uint16(bits.OnesCount64(q[j] ^ c))
							}
						}
						out := make([]uint16, 3+n+16)
						for i := range out {
							out[i] = 0xdead
						}
						restDistsGo(&q, codes, w, cand, out[3:3+n])
						require.Equal(t, want, out[3:3+n], n)

						for i := range out {
							out[i] = 0xdead
						}
						restDists(&q, codes, w, append(cand, 0, 1, 2), out[3:3+n]) // longer cand: only n slots are read
						require.Equal(t, want, out[3:3+n], n)
						require.Equal(t, []uint16{0xdead, 0xdead, 0xdead}, out[:3], n)
						require.Equal(t, slices.Repeat([]uint16{0xdead}, 16), out[3+n:], n)
					}
				}
			})
		}
	}
}

// TestVectorRestDistsOutOfRange checks that a slot whose code is not in
// codes panics, as in the Go version, instead of being read, wherever it
// is in cand.
func TestVectorRestDistsOutOfRange(t *testing.T) {
	t.Parallel()
	const w, rows = prefixWords + restWords, 20
	var q [restWords]uint64
	codes := make([]uint64, rows*w)
	for _, bad := range []int32{rows, rows + 1000, -1, -100} {
		for _, at := range []int{0, 7, 8, 15} {
			cand := make([]int32, 16)
			cand[at] = bad
			require.Panics(t, func() { restDists(&q, codes, w, cand, make([]uint16, len(cand))) }, bad, at)
			require.Panics(t, func() { restDistsGo(&q, codes, w, cand, make([]uint16, len(cand))) }, bad, at)
		}
	}
	cand := []int32{rows - 1}
	require.NotPanics(t, func() { restDists(&q, codes, w, cand, make([]uint16, 1)) })
	require.Panics(t, func() { restDists(&q, codes, w, cand, make([]uint16, 2)) }) // out longer than cand
}

// FuzzVectorPrefixDists compares the dispatching prefixDists with the Go
// reference: the first 32 bytes are the query, the rest the codes.
func FuzzVectorPrefixDists(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add(slices.Repeat([]byte{0xff}, 32*10))
	seed := make([]byte, 32*41+5)
	for i := range seed {
		seed[i] = byte(i * 37)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		words := make([]uint64, len(data)/8)
		for i := range words {
			for j := range 8 {
				words[i] |= uint64(data[8*i+j]) << (8 * j)
			}
		}
		if len(words) < prefixWords {
			return
		}
		q := (*[prefixWords]uint64)(words)
		codes := words[prefixWords:]
		n := len(codes) / prefixWords
		want, got := make([]uint16, n), make([]uint16, n)
		prefixDistsGo(q, codes, want)
		prefixDists(q, codes, got)
		require.Equal(t, want, got)
	})
}

// FuzzVectorRestDists compares the dispatching restDists with the Go
// reference: the first byte picks the code length (12 to 27 words), the
// next 64 bytes are the query, every byte after them names a slot (mod
// the number of slots), and the codes are those bytes again.
func FuzzVectorRestDists(f *testing.F) {
	f.Add([]byte{0})
	f.Add(slices.Repeat([]byte{0xff}, 65+12*8*3))
	seed := make([]byte, 1+64+12*8*41)
	for i := range seed {
		seed[i] = byte(i * 37)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1+8*restWords {
			return
		}
		w := prefixWords + restWords + int(data[0]&15)
		var q [restWords]uint64
		for i := range q {
			for j := range 8 {
				q[i] |= uint64(data[1+8*i+j]) << (8 * j)
			}
		}
		data = data[1+8*restWords:]
		rows := len(data) / (8 * w)
		if rows == 0 {
			return
		}
		codes := make([]uint64, rows*w)
		for i := range codes {
			for j := range 8 {
				codes[i] |= uint64(data[8*i+j]) << (8 * j)
			}
		}
		cand := make([]int32, len(data))
		for i, b := range data {
			cand[i] = int32(int(b) % rows)
		}
		want, got := make([]uint16, len(cand)), make([]uint16, len(cand))
		restDistsGo(&q, codes, w, cand, want)
		restDists(&q, codes, w, cand, got)
		require.Equal(t, want, got)
	})
}

// prefixSink keeps the benchmarked results alive.
var prefixSink uint16

// BenchmarkVectorPrefixDists compares the dispatching prefixDists (the
// assembly where the CPU has it) with the Go reference on one of
// scanRange's blocks, in cache.
func BenchmarkVectorPrefixDists(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	var q [prefixWords]uint64
	codes := make([]uint64, distBlock*prefixWords)
	for i := range codes {
		codes[i] = r.Uint64()
	}
	for i := range q {
		q[i] = r.Uint64()
	}
	out := make([]uint16, distBlock)
	for _, k := range []struct {
		name string
		f    func(*[prefixWords]uint64, []uint64, []uint16)
	}{{"dispatch", prefixDists}, {"go", prefixDistsGo}} {
		b.Run(fmt.Sprintf("%d/%s", distBlock, k.name), func(b *testing.B) {
			b.SetBytes(int64(8 * len(codes)))
			for b.Loop() {
				k.f(&q, codes, out)
				prefixSink += out[0]
			}
		})
	}
}

// BenchmarkVectorRestDists is BenchmarkVectorPrefixDists for restDists,
// on refine's share of a 100K part: 4,000 sorted random slots of 768-d
// codes (9.6 MB, so mostly not in cache).
func BenchmarkVectorRestDists(b *testing.B) {
	const w, rows, n = prefixWords + restWords, 100_000, 4000
	r := rand.New(rand.NewPCG(19, 20))
	codes := make([]uint64, rows*w)
	for i := range codes {
		codes[i] = r.Uint64()
	}
	var q [restWords]uint64
	for i := range q {
		q[i] = r.Uint64()
	}
	cand := make([]int32, n)
	for i, s := range r.Perm(rows)[:n] {
		cand[i] = int32(s)
	}
	slices.Sort(cand)
	out := make([]uint16, n)
	for _, k := range []struct {
		name string
		f    func(*[restWords]uint64, []uint64, int, []int32, []uint16)
	}{{"dispatch", restDists}, {"go", restDistsGo}} {
		b.Run(fmt.Sprintf("%d/%s", n, k.name), func(b *testing.B) {
			for b.Loop() {
				k.f(&q, codes, w, cand, out)
				prefixSink += out[0]
			}
		})
	}
}

// BenchmarkVectorScanRange is the approximate scan's prefix branch over
// one scan worker's half of a 100K part (50,000 rows, 1.6 MB of prefixes,
// every row live in the searched states): distances, filter and
// histogram, as a 100K search runs it on each of two cores.
func BenchmarkVectorScanRange(b *testing.B) {
	const rows = 50_000
	r := rand.New(rand.NewPCG(21, 22))
	p := &part{kinds: make([]uint32, rows), meta: make([]rowMeta, rows)}
	codes := make([]uint64, rows*prefixWords)
	for i := range codes {
		codes[i] = r.Uint64()
	}
	for i := range p.kinds {
		p.kinds[i] = kindVec | 1<<(i%3) | 1<<16
	}
	code := make([]uint64, prefixWords)
	for i := range code {
		code[i] = r.Uint64()
	}
	dist := make([]uint16, rows)
	hist := make([]int32, 1024)
	for _, tc := range []struct {
		name string
		f    core.MemoryFilter
	}{
		{"trivial", core.MemoryFilter{ProjectID: "p"}},
		{"states", core.MemoryFilter{ProjectID: "p", States: core.LiveStates()}},
	} {
		m := newMatcher(&tc.f)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(8 * len(codes)))
			for b.Loop() {
				clear(hist)
				if n := p.scanRange(m, code, codes, 0, rows, dist, hist); n == 0 {
					b.Fatal("no row matched")
				}
			}
		})
	}
}
