//go:build amd64 && !purego

package sqlitevec

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/cpu"
)

// TestVectorHammingKernels checks each kernel this CPU can run on its
// own against the Go references (the dispatching functions reach only the
// best one, and the scalar one for tails): every row count up to 600, for
// each of codeFills, codes 0..7 words into their buffer.
func TestVectorHammingKernels(t *testing.T) {
	t.Parallel()
	avx512 := cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPOPCNTDQ
	if !cpu.X86.HasPOPCNT {
		t.Skip("no POPCNT")
	}
	const w, rows = prefixWords + restWords, 700
	for _, tc := range codeFills() {
		r := rand.New(rand.NewPCG(17, 18))
		var pq [prefixWords]uint64
		var rq [restWords]uint64
		for i := range pq {
			pq[i] = tc.q(r)
		}
		for i := range rq {
			rq[i] = tc.q(r)
		}
		codes := tc.codes(r, rows*w)
		for n := range 601 {
			cand := make([]int32, n)
			for i := range cand {
				cand[i] = int32(r.IntN(rows))
			}
			want, got := make([]uint16, n), make([]uint16, n)

			prefixDistsGo(&pq, codes, want)
			prefixDistsPOPCNT(&pq, codes, got)
			require.Equal(t, want, got, "prefixDistsPOPCNT %d", n)
			if avx512 && n%8 == 0 {
				clear(got)
				prefixDistsAVX512(&pq, codes, got)
				require.Equal(t, want, got, "prefixDistsAVX512 %d", n)
			}

			restDistsGo(&rq, codes, w, cand, want)
			clear(got)
			restDistsPOPCNT(&rq, codes, w, cand, got)
			require.Equal(t, want, got, "restDistsPOPCNT %d", n)
			if avx512 && n%8 == 0 {
				clear(got)
				restDistsAVX512(&rq, codes, w, slices.Clip(cand), got)
				require.Equal(t, want, got, "restDistsAVX512 %d", n)
			}
		}
	}
}
