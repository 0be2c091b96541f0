package sqlitevec

import (
	"cmp"
	"context"
	"math"
	"math/bits"
	"slices"

	"github.com/ncruces/go-sqlite3"

	"github.com/athena-edge/athena-edge/core"
)

// scored is a row proposed by the in-memory index.
type scored struct {
	rid   int64
	id    core.ID
	score float32 // int8 estimate of the cosine similarity
	bound float32 // |estimate − true cosine| ≤ bound
	slot  int32
}

// VectorLeg answers from the in-memory index. Per query it picks:
//
//   - exact, when leg.Exact is set or at most Config.ExactThreshold rows
//     match the filter: every matching row is scored from its int8 vector,
//     and the rows whose error bound lets them reach the top K are
//     rescored from their float32 embedding in SQLite, so the answer is
//     the exact top K;
//   - approximate otherwise: the Hamming distance of sign-bit codes picks
//     a shortlist of K×Oversample rows (at least 1000) among the matching
//     ones, which are rescored from their int8 vectors.
//
// Filters are applied in the index before ranking, so a filtered query
// returns K results whenever K rows match.
func (t *readTx) VectorLeg(ctx context.Context, leg core.VectorLeg) ([]core.Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []core.Candidate{}
	if leg.K <= 0 || len(leg.Vector) == 0 {
		return out, nil
	}
	qv := quantize(leg.Vector)
	if qv == nil {
		return out, nil
	}
	q := normalized(leg.Vector)
	cfg := &t.s.cfg
	ix := t.s.idx
	m := newMatcher(&leg.Filter)

	ix.mu.RLock()
	var parts []*part
	if leg.Filter.ProjectID != "" {
		if p := ix.parts[leg.Filter.ProjectID]; p != nil {
			parts = append(parts, p)
		}
	} else {
		for _, p := range ix.parts {
			parts = append(parts, p)
		}
	}
	var cands []scored
	exact := leg.Exact
	for _, p := range parts {
		if p.dim != len(q) {
			continue
		}
		if exact {
			cands = p.scoreAll(q, p.matching(m), cands)
			continue
		}
		slots, dist := p.matchingDist(m, q)
		if len(slots) <= cfg.ExactThreshold {
			cands = p.scoreAll(q, slots, cands)
			exact = true
		} else {
			short := p.scoreApprox(qv, shortlist(slots, dist, p.dim, max(leg.K*cfg.Oversample, defaultMinShortlist)), nil)
			// Integer scores pick the best few; float query × int8 orders them.
			if keep := max(4*leg.K, 64); len(short) > keep {
				slices.SortFunc(short, func(a, b scored) int { return cmp.Compare(b.score, a.score) })
				short = short[:keep]
			}
			slots = slots[:0]
			for _, c := range short {
				slots = append(slots, c.slot)
			}
			cands = p.scoreAll(q, slots, cands)
		}
	}
	ix.mu.RUnlock()

	slices.SortFunc(cands, func(a, b scored) int { return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.id, b.id)) })
	if exact {
		var err error
		if cands, err = t.rescoreExact(q, cands, leg.K); err != nil {
			return nil, err
		}
	}
	if len(cands) > leg.K {
		cands = cands[:leg.K]
	}
	for _, c := range cands {
		out = append(out, core.Candidate{ID: c.id, Score: float64(c.score)})
	}
	return out, nil
}

// rescoreExact turns int8 estimates, sorted best first, into the exact top
// k: a row can only be in the top k if its estimate plus its error bound
// reaches the k-th best lower bound, and those rows are rescored from the
// float32 embedding stored in SQLite.
func (t *readTx) rescoreExact(q []float32, cands []scored, k int) ([]scored, error) {
	if len(cands) == 0 {
		return cands, nil
	}
	const slack = 1e-4 // float32 rounding in the estimates
	lows := make([]float32, len(cands))
	for i, c := range cands {
		lows[i] = c.score - c.bound - slack
	}
	var kth float32 = float32(math.Inf(-1))
	if len(cands) >= k {
		sorted := slices.Clone(lows)
		slices.SortFunc(sorted, func(a, b float32) int { return cmp.Compare(b, a) })
		kth = sorted[k-1]
	}
	var need []scored
	for _, c := range cands {
		if c.score+c.bound+slack >= kth {
			need = append(need, c)
		}
	}
	out := need[:0]
	for _, c := range need {
		var v []float32
		found := false
		err := t.c.query(`SELECT embedding FROM memories WHERE rid = ?`, []any{c.rid}, func(st *sqlite3.Stmt) error {
			v, found = blobVec(st.ColumnRawBlob(0)), true
			return nil
		})
		if err != nil {
			return nil, t.c.wrap("vector leg: rescore", err)
		}
		if !found {
			continue // deleted after this snapshot's index state
		}
		c.score = float32(core.Cosine(q, v))
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b scored) int { return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.id, b.id)) })
	return out, nil
}

func normalized(v []float32) []float32 {
	var n float64
	for _, f := range v {
		n += float64(f) * float64(f)
	}
	inv := 1 / math.Sqrt(n)
	out := make([]float32, len(v))
	for i, f := range v {
		out[i] = float32(float64(f) * inv)
	}
	return out
}

// matching returns the slots with a vector that pass the filter.
func (p *part) matching(m *matcher) []int32 {
	out := make([]int32, 0, p.live)
	for slot := range p.rids {
		if p.hasVec[slot] && m.match(&p.meta[slot]) {
			out = append(out, int32(slot))
		}
	}
	return out
}

// scoreApprox appends the int8 estimate of every slot, with the query
// quantized to int8 too (integer dot products, about twice as fast as
// scoreAll; the approximate mode uses no error bound).
func (p *part) scoreApprox(qv *qvec, slots []int32, out []scored) []scored {
	q := qv.q[:p.dim]
	for _, s := range slots {
		d := float32(dotI8I8(q, p.q8[int(s)*p.dim:int(s+1)*p.dim])) * qv.scale * p.scale[s]
		out = append(out, scored{rid: p.rids[s], id: p.meta[s].id, score: d, bound: p.errb[s], slot: s})
	}
	return out
}

// dotI8I8 is Σ a[i]·b[i] in integers.
func dotI8I8(a, b []int8) int32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		aa, bb := a[i:i+8:i+8], b[i:i+8:i+8]
		s0 += int32(aa[0])*int32(bb[0]) + int32(aa[4])*int32(bb[4])
		s1 += int32(aa[1])*int32(bb[1]) + int32(aa[5])*int32(bb[5])
		s2 += int32(aa[2])*int32(bb[2]) + int32(aa[6])*int32(bb[6])
		s3 += int32(aa[3])*int32(bb[3]) + int32(aa[7])*int32(bb[7])
	}
	for ; i < len(a); i++ {
		s0 += int32(a[i]) * int32(b[i])
	}
	return s0 + s1 + s2 + s3
}

// scoreAll appends the int8 estimate of every slot.
func (p *part) scoreAll(q []float32, slots []int32, out []scored) []scored {
	for _, s := range slots {
		d := dotI8(q, p.q8[int(s)*p.dim:int(s+1)*p.dim]) * p.scale[s]
		out = append(out, scored{rid: p.rids[s], id: p.meta[s].id, score: d, bound: p.errb[s]})
	}
	return out
}

// matchingDist returns the slots with a vector that pass the filter and
// the Hamming distance of each one's code to q's, in one pass.
func (p *part) matchingDist(m *matcher, q []float32) ([]int32, []uint16) {
	code := make([]uint64, p.words)
	for i, x := range q {
		if x > p.center[i] {
			code[i>>6] |= 1 << (i & 63)
		}
	}
	slots := make([]int32, 0, p.live)
	dist := make([]uint16, 0, p.live)
	w := p.words
	codes := p.codes
	meta := p.meta[:len(p.rids)]
	hasVec := p.hasVec[:len(p.rids)]
	if w == 12 { // 768-d, the common case: a fixed-size array needs no bounds checks
		q := (*[12]uint64)(code)
		fast, slow, sm, tm := m.fast && !m.trivial, !m.fast && !m.trivial, m.stateMask, m.typeMask
		for slot := range meta {
			if !hasVec[slot] {
				continue
			}
			if fast {
				if k := meta[slot].kind; k&sm == 0 || k&tm == 0 {
					continue
				}
			} else if slow && !m.match(&meta[slot]) {
				continue
			}
			c := (*[12]uint64)(codes[slot*12:])
			d := bits.OnesCount64(q[0]^c[0]) + bits.OnesCount64(q[1]^c[1]) + bits.OnesCount64(q[2]^c[2]) +
				bits.OnesCount64(q[3]^c[3]) + bits.OnesCount64(q[4]^c[4]) + bits.OnesCount64(q[5]^c[5]) +
				bits.OnesCount64(q[6]^c[6]) + bits.OnesCount64(q[7]^c[7]) + bits.OnesCount64(q[8]^c[8]) +
				bits.OnesCount64(q[9]^c[9]) + bits.OnesCount64(q[10]^c[10]) + bits.OnesCount64(q[11]^c[11])
			slots = append(slots, int32(slot))
			dist = append(dist, uint16(d))
		}
		return slots, dist
	}
	for slot := range meta {
		if !hasVec[slot] || !m.match(&meta[slot]) {
			continue
		}
		slots = append(slots, int32(slot))
		dist = append(dist, uint16(hamming(code, codes[slot*w:(slot+1)*w])))
	}
	return slots, dist
}

// shortlist returns the n slots with the smallest distances.
func shortlist(slots []int32, dist []uint16, dim, n int) []int32 {
	if len(slots) <= n {
		return slots
	}
	hist := make([]int, dim+1)
	for _, d := range dist {
		hist[d]++
	}
	cut, acc := 0, 0
	for cut = range hist {
		acc += hist[cut]
		if acc >= n {
			break
		}
	}
	out := make([]int32, 0, n)
	for i, s := range slots {
		if int(dist[i]) < cut {
			out = append(out, s)
		}
	}
	for i, s := range slots {
		if len(out) >= n {
			break
		}
		if int(dist[i]) == cut {
			out = append(out, s)
		}
	}
	return out
}
