package sqlitevec

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"

	"github.com/ncruces/go-sqlite3"

	"github.com/athena-edge/athena-edge/core"
)

// scored is a row proposed by the in-memory index.
type scored struct {
	rid   int64
	id    core.ID
	score float32 // int8 estimate of the cosine similarity
	bound float32 // |estimate − true cosine| ≤ bound
}

// VectorLeg answers from the in-memory index. Per query it picks:
//
//   - exact, when leg.Exact is set or at most Config.ExactThreshold rows
//     match the filter: every matching row is scored from its int8 vector,
//     and the rows whose error bound lets them reach the top K are
//     rescored from their float32 embedding in SQLite, so the answer is
//     the exact top K;
//   - approximate otherwise: the Hamming distance of sign-bit codes picks
//     a shortlist of K×Oversample rows (at least 1000, and 0.4% of the
//     matching rows) among the matching ones, which are rescored from
//     their int8 vectors. In a large part the distance of the codes'
//     first 256 bits picks prefixKeep times as many rows first, and only
//     those are ranked by their whole code.
//
// Filters are applied in the index before ranking, so a filtered query
// returns K results whenever K rows match.
func (t *readTx) VectorLeg(ctx context.Context, leg core.VectorLeg) ([]core.Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cands, exact, err := t.vectorLeg(&leg, t.vectorScan(&leg))
	if err != nil {
		return nil, err
	}
	return candidates(cands, exact), nil
}

// vectorScan is the part of the vector leg done in the index: each
// row's int8 estimate, best first. It does not use the connection.
func (t *readTx) vectorScan(leg *core.VectorLeg) vecScan {
	if leg.K <= 0 || len(leg.Vector) == 0 {
		return vecScan{}
	}
	qv := quantize(leg.Vector)
	if qv == nil {
		return vecScan{}
	}
	q := normalized(leg.Vector)
	cfg := &t.s.cfg
	ix := t.s.index()
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
	sc := ix.getScratch()
	defer ix.scratch.Put(sc)
	for _, p := range parts {
		if p.dim != len(q) {
			continue
		}
		if exact {
			cands = p.scoreAll(q, p.matching(m), cands)
			continue
		}
		matched := p.hammingScan(m, q, sc)
		if matched <= cfg.ExactThreshold {
			sc.slots = sc.matched(matched)
			cands = p.scoreAll(q, sc.slots, cands)
			exact = true
		} else {
			n := max(leg.K*cfg.Oversample, defaultMinShortlist, matched/shortlistRowsPer)
			if sc.prefix {
				sc.slots = p.refine(sc.shortlist(prefixKeep*n), n, sc)
			} else {
				sc.slots = sc.shortlist(n)
			}
			short := p.scoreApprox(qv, sc.slots, sc.short[:0])
			sc.short = short
			// Integer scores pick the best few; float query × int8 orders them.
			if keep := max(4*leg.K, 64); len(short) > keep {
				selectTop(short, keep, func(a, b approx) int { return cmp.Compare(b.score, a.score) })
				short = short[:keep]
			}
			sc.slots = sc.slots[:0]
			for _, c := range short {
				sc.slots = append(sc.slots, c.slot)
			}
			cands = p.scoreAll(q, sc.slots, cands)
		}
	}
	ix.mu.RUnlock()

	byScore := func(a, b scored) int { return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.id, b.id)) }
	if !exact && len(cands) > leg.K {
		// Only the best K are kept (see vectorLeg): they are the same K
		// whatever the order of the rest, since IDs break ties.
		selectTop(cands, leg.K, byScore)
		cands = cands[:leg.K]
	}
	slices.SortFunc(cands, byScore)
	return vecScan{q: q, cands: cands, exact: exact}
}

// vecScan is what vectorScan found.
type vecScan struct {
	q     []float32 // the normalized query
	cands []scored
	exact bool // the exact mode: cands need rescoreExact
}

// vectorLeg finishes the vector leg from its scan: the exact mode
// rescores with the connection; then the best leg.K are kept.
func (t *readTx) vectorLeg(leg *core.VectorLeg, vs vecScan) ([]scored, bool, error) {
	cands := vs.cands
	if vs.exact {
		var err error
		if cands, err = t.rescoreExact(vs.q, cands, leg.K); err != nil {
			return nil, false, err
		}
	}
	if k := max(leg.K, 0); len(cands) > k {
		cands = cands[:k]
	}
	return cands, vs.exact, nil
}

// candidates turns the vector leg's rows into its answer.
func candidates(cands []scored, exact bool) []core.Candidate {
	out := make([]core.Candidate, 0, len(cands))
	for _, c := range cands {
		out = append(out, core.Candidate{ID: c.id, Score: float64(c.score), Exact: exact})
	}
	return out
}

// SearchLegs implements core.LegsSearcher. With two legs and two cores,
// the keyword leg and the loading of its candidates run on another
// goroutine, with the connection, while this one scans the index for the
// vector leg (which needs no connection), whose serial phases leave a
// core idle; then the vector candidates the keyword leg did not have are
// loaded, by the rids the scan found (no lookup in index.byID).
func (t *readTx) SearchLegs(ctx context.Context, req core.LegsRequest) (core.LegsResult, error) {
	return t.searchLegs(ctx, req, t.KeywordLeg)
}

// SearchLegs in a write transaction runs its own keyword leg (see
// writeTx.KeywordLeg).
func (t *writeTx) SearchLegs(ctx context.Context, req core.LegsRequest) (core.LegsResult, error) {
	return t.searchLegs(ctx, req, t.KeywordLeg)
}

var (
	_ core.LegsSearcher = (*readTx)(nil)
	_ core.LegsSearcher = (*writeTx)(nil)
)

// kwSide is the keyword leg's result and its candidates' rows.
type kwSide struct {
	res core.KeywordResult
	ms  []core.Memory
	err error
}

func (t *readTx) searchLegs(ctx context.Context, req core.LegsRequest,
	keyword func(context.Context, core.KeywordLeg) (core.KeywordResult, error)) (core.LegsResult, error) {
	if err := ctx.Err(); err != nil {
		return core.LegsResult{}, err
	}
	runKeyword := func() (kw kwSide) {
		if kw.res, kw.err = keyword(ctx, *req.Keyword); kw.err != nil {
			kw.err = fmt.Errorf("keyword leg: %w", kw.err)
			return kw
		}
		want, rest := t.wantsOf(candidateIDs(kw.res.Candidates))
		if kw.ms, kw.err = t.loadMemories(want, rest); kw.err != nil {
			kw.err = fmt.Errorf("load candidates: %w", kw.err)
		}
		return kw
	}
	var kwc chan kwSide
	var kw kwSide
	if req.Keyword != nil && req.Vector != nil && runtime.GOMAXPROCS(0) > 1 {
		kwc = make(chan kwSide, 1)
		go func() { kwc <- runKeyword() }()
	} else if req.Keyword != nil {
		if kw = runKeyword(); kw.err != nil {
			return core.LegsResult{}, kw.err
		}
	}
	var vs vecScan
	if req.Vector != nil {
		vs = t.vectorScan(req.Vector)
	}
	if kwc != nil {
		// The connection is this goroutine's again once kwc delivers.
		if kw = <-kwc; kw.err != nil {
			return core.LegsResult{}, kw.err
		}
	}
	res := core.LegsResult{Keyword: kw.res, Memories: kw.ms}
	if req.Vector != nil {
		cands, exact, err := t.vectorLeg(req.Vector, vs)
		if err != nil {
			return core.LegsResult{}, fmt.Errorf("vector leg: %w", err)
		}
		res.Vector = candidates(cands, exact)
		loaded := make(map[core.ID]struct{}, len(kw.res.Candidates))
		for _, c := range kw.res.Candidates {
			loaded[c.ID] = struct{}{}
		}
		want := make([]ridWant, 0, len(cands))
		for _, c := range cands {
			if _, ok := loaded[c.id]; !ok {
				want = append(want, ridWant{rid: c.rid, id: c.id})
			}
		}
		ms, err := t.loadMemories(want, nil)
		if err != nil {
			return core.LegsResult{}, fmt.Errorf("load candidates: %w", err)
		}
		res.Memories = append(res.Memories, ms...)
	}
	if res.Memories == nil {
		res.Memories = []core.Memory{}
	}
	return res, nil
}

func candidateIDs(cs []core.Candidate) []core.ID {
	ids := make([]core.ID, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
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

// approx is a shortlisted slot's int8 estimate. Only the best few are
// kept, and scoreAll rescores those with their IDs, so the shortlist
// carries no ID: an 8-byte element instead of a scored's 40 keeps the
// scan from loading every shortlisted row's metadata and makes the sort
// of the shortlist move a fifth of the bytes.
type approx struct {
	score float32
	slot  int32
}

// scoreApprox appends the int8 estimate of every slot, with the query
// quantized to int8 too (integer dot products, about twice as fast as
// scoreAll; the approximate mode uses no error bound). A long list is
// split between scanWorkers goroutines.
func (p *part) scoreApprox(qv *qvec, slots []int32, out []approx) []approx {
	q := qv.q[:p.dim]
	base := len(out)
	out = slices.Grow(out, len(slots))[:base+len(slots)]
	score := func(lo, hi int) {
		ss, o := slots[lo:hi], out[base+lo:base+hi]
		i := 0
		for ; i+1 < len(ss); i += 2 {
			s, t := ss[i], ss[i+1]
			ds, dt := dotI8I8x2(q, p.q8[int(s)*p.dim:int(s+1)*p.dim], p.q8[int(t)*p.dim:int(t+1)*p.dim])
			o[i] = approx{score: float32(ds) * qv.scale * p.scale[s], slot: s}
			o[i+1] = approx{score: float32(dt) * qv.scale * p.scale[t], slot: t}
		}
		if i < len(ss) {
			s := ss[i]
			o[i] = approx{score: float32(dotI8I8(q, p.q8[int(s)*p.dim:int(s+1)*p.dim])) * qv.scale * p.scale[s], slot: s}
		}
	}
	if len(slots) < 512 || runtime.GOMAXPROCS(0) < 2 {
		score(0, len(slots))
		return out
	}
	var wg sync.WaitGroup
	half := len(slots) / 2
	wg.Go(func() { score(0, half) })
	score(half, len(slots))
	wg.Wait()
	return out
}

// dotI8I8Go is Σ a[i]·b[i] in integers, wrapping modulo 2³² as int32
// does (which needs 2¹⁷ dimensions or more). It is the portable dotI8I8
// and the reference the assembly is tested against.
func dotI8I8Go(a, b []int8) int32 {
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

// dotI8I8x2Go is (Σ a[i]·b[i], Σ a[i]·c[i]), exactly, with one multiply
// per i instead of two: b[i] and c[i] go into the low and high halves of
// one int64, and a[i] times it adds a[i]·b[i] + a[i]·c[i]·2³² to the sum.
// With at most maxDimX2 dimensions each dot product is below 2³⁰ in
// magnitude, so the sum is exact (below 2⁶³) and its low 32 bits, read
// as a signed number, are the first dot product. It is the portable
// dotI8I8x2 and the reference the assembly is tested against.
func dotI8I8x2Go(a, b, c []int8) (int32, int32) {
	if len(a) > maxDimX2 {
		return dotI8I8Go(a, b), dotI8I8Go(a, c)
	}
	b, c = b[:len(a)], c[:len(a)]
	var s0, s1, s2, s3 int64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		aa, bb, cc := a[i:i+4:i+4], b[i:i+4:i+4], c[i:i+4:i+4]
		s0 += int64(aa[0]) * (int64(bb[0]) + int64(cc[0])<<32)
		s1 += int64(aa[1]) * (int64(bb[1]) + int64(cc[1])<<32)
		s2 += int64(aa[2]) * (int64(bb[2]) + int64(cc[2])<<32)
		s3 += int64(aa[3]) * (int64(bb[3]) + int64(cc[3])<<32)
	}
	for ; i < len(a); i++ {
		s0 += int64(a[i]) * (int64(b[i]) + int64(c[i])<<32)
	}
	s := s0 + s1 + s2 + s3
	lo := int32(s)
	return lo, int32((s - int64(lo)) >> 32)
}

// maxDimX2 is the most dimensions dotI8I8x2Go pairs products for: 2¹⁶·128²
// is 2³⁰.
const maxDimX2 = 1 << 16

// selectTop reorders s so that its first k elements are the k first in
// the order of cmp (in no particular order among themselves): a
// quickselect, O(len(s)) where sorting to keep a fifth of a shortlist
// cost ten times as much.
func selectTop[T any](s []T, k int, cmp func(a, b T) int) {
	if k <= 0 || k >= len(s) {
		return
	}
	// Put the k-th element (index t) in its place, the others on its side.
	t, lo, hi := k-1, 0, len(s)-1
	for lo < hi {
		// Median of three as the pivot; Hoare partition around it.
		mid := lo + (hi-lo)/2
		if cmp(s[mid], s[lo]) < 0 {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if cmp(s[hi], s[lo]) < 0 {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if cmp(s[hi], s[mid]) < 0 {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for cmp(s[i], pivot) < 0 {
				i++
			}
			for cmp(pivot, s[j]) < 0 {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		// s[lo..j] ≤ pivot ≤ s[i..hi], and s[j+1..i-1] = pivot.
		switch {
		case t <= j:
			hi = j
		case t >= i:
			lo = i
		default:
			return
		}
	}
}

// scoreAll appends the int8 estimate of every slot.
func (p *part) scoreAll(q []float32, slots []int32, out []scored) []scored {
	for _, s := range slots {
		d := dotI8(q, p.q8[int(s)*p.dim:int(s+1)*p.dim]) * p.scale[s]
		out = append(out, scored{rid: p.rids[s], id: p.meta[s].id, score: d, bound: p.errb[s]})
	}
	return out
}

// vecScratch is the per-query working memory of the approximate scan,
// reused through index.scratch so that a query allocates nothing
// proportional to the number of rows.
type vecScratch struct {
	dist  []uint16 // slot → Hamming distance, or noDist when the slot does not match
	hist  []int32  // distance → matching slots at that distance
	code  []uint64
	slots []int32
	// prefix: dist holds the distances of the codes' first prefixWords
	// words only (see part.pre); refine finishes the shortlist.
	prefix bool
	hist2  []int32 // refine's histogram
	short  []approx
}

// noDist marks a slot the scan skipped; distances are at most the
// dimension, far below it.
const noDist = math.MaxUint16

func (ix *index) getScratch() *vecScratch {
	if sc, ok := ix.scratch.Get().(*vecScratch); ok {
		return sc
	}
	return &vecScratch{}
}

// scanWorkers is how many goroutines share a scan of at least
// parallelScanMin rows: the scan is bound by memory bandwidth per core,
// so two cores halve it; more add scheduling cost for little gain.
//
// A part of at least prefixScanMin rows is scanned by code prefix first
// (see part.pre), keeping prefixKeep rows per shortlisted one for the
// whole code to rank: at 100K rows, the rest of 4000 codes (256 KB, random
// reads) on top of 3.2 MB instead of a scan of 9.6 MB.
const (
	scanWorkers     = 2
	parallelScanMin = 32 << 10
	prefixScanMin   = 16 << 10
	prefixKeep      = 4
)

// hammingScan computes, for every slot with a vector that passes the
// filter, the Hamming distance of its code to q's, into sc.dist (noDist
// for the others) and its histogram into sc.hist. It returns the number of
// matching slots. One sequential pass over the codes and kinds (split
// between scanWorkers goroutines for large parts); the filter's metadata
// is read only when the filter is not a state/type mask. In a part with
// a prefix (hasPrefix), the distances are of the prefixes only, and
// sc.prefix is set.
func (p *part) hammingScan(m *matcher, q []float32, sc *vecScratch) int {
	n := len(p.rids)
	sc.code = slices.Grow(sc.code[:0], p.words)[:p.words]
	code := sc.code
	clear(code)
	for i, x := range q {
		if x > p.center[i] {
			code[i>>6] |= 1 << (i & 63)
		}
	}
	codes, w := p.codes, p.words
	if sc.prefix = p.hasPrefix(); sc.prefix {
		codes, w = p.prefix(), prefixWords
	}
	scan := func(lo, hi int, hist []int32) int {
		return p.scanRange(m, code[:w], codes[lo*w:hi*w], lo, hi, sc.dist, hist)
	}
	sc.dist = slices.Grow(sc.dist[:0], n)[:n]
	h := max(p.dim+1, 1024) // ≥ 1024: see scanRange
	workers := 1
	if n >= parallelScanMin && runtime.GOMAXPROCS(0) > 1 {
		workers = scanWorkers
	}
	sc.hist = slices.Grow(sc.hist[:0], workers*h)[:workers*h]
	clear(sc.hist)
	if workers == 1 {
		return scan(0, n, sc.hist)
	}
	var matched [scanWorkers]int
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, n)
		wg.Go(func() { matched[w] = scan(lo, hi, sc.hist[w*h:(w+1)*h]) })
	}
	wg.Wait()
	total := matched[0]
	for w := 1; w < workers; w++ {
		for d, c := range sc.hist[w*h : (w+1)*h] {
			sc.hist[d] += c
		}
		total += matched[w]
	}
	sc.hist = sc.hist[:h]
	return total
}

// scanRange is hammingScan over slots [lo, hi), with its own histogram:
// codes are those slots' codes (or prefixes), len(code) words each.
func (p *part) scanRange(m *matcher, code, codes []uint64, lo, hi int, dist []uint16, hist []int32) int {
	kinds := p.kinds[lo:hi]
	meta := p.meta[lo:hi]
	dist = dist[lo:hi]
	w := len(code)
	codes = codes[:(hi-lo)*w]
	fast, slow, sm, tm := m.fast && !m.trivial, !m.fast && !m.trivial, m.stateMask, m.typeMask
	matched := 0
	if w == prefixWords && len(hist) > 1023 { // a prefix (or a 256-d code)
		return scanPrefixes((*[prefixWords]uint64)(code), m, codes, kinds, meta, dist, (*[1024]int32)(hist))
	}
	if w == 12 && len(hist) > 1023 { // 768-d, the common case: fixed-size arrays need no bounds checks
		q := (*[12]uint64)(code)
		hist := hist[:1024]
		for i, k := range kinds {
			ok := k&kindVec != 0
			if fast {
				ok = ok && k&sm != 0 && k&tm != 0
			} else if slow && ok {
				ok = m.match(&meta[i])
			}
			if !ok {
				dist[i] = noDist
				continue
			}
			c := (*[12]uint64)(codes[i*12:])
			d := bits.OnesCount64(q[0]^c[0]) + bits.OnesCount64(q[1]^c[1]) + bits.OnesCount64(q[2]^c[2]) +
				bits.OnesCount64(q[3]^c[3]) + bits.OnesCount64(q[4]^c[4]) + bits.OnesCount64(q[5]^c[5]) +
				bits.OnesCount64(q[6]^c[6]) + bits.OnesCount64(q[7]^c[7]) + bits.OnesCount64(q[8]^c[8]) +
				bits.OnesCount64(q[9]^c[9]) + bits.OnesCount64(q[10]^c[10]) + bits.OnesCount64(q[11]^c[11])
			dist[i] = uint16(d)
			hist[d&1023]++ // d ≤ 768: the mask only drops the bounds check
			matched++
		}
		return matched
	}
	for i, k := range kinds {
		ok := k&kindVec != 0
		if fast {
			ok = ok && k&sm != 0 && k&tm != 0
		} else if slow && ok {
			ok = m.match(&meta[i])
		}
		if !ok {
			dist[i] = noDist
			continue
		}
		d := hamming(code, codes[i*w:(i+1)*w])
		dist[i] = uint16(d)
		hist[d]++
		matched++
	}
	return matched
}

// scanPrefixes is scanRange's prefix branch: a block's distances first,
// all of them (in assembly where the CPU has it), then the filter over
// the block while they are still in L1. Four histograms take the rows in
// turn: prefix distances bunch around 128, and increments of one counter
// wait on each other (a store, then a load of the same address), so one
// histogram made the filter pass as slow as the distances. The number of
// matching rows is the histograms' total.
func scanPrefixes(q *[prefixWords]uint64, m *matcher, codes []uint64, kinds []uint32, meta []rowMeta,
	dist []uint16, hist *[1024]int32) int {
	// The trivial filter checks kindVec only: as state and type masks
	// it is kindVec twice.
	sm, tm := kindVec, kindVec
	if m.fast && !m.trivial {
		sm, tm = m.stateMask, m.typeMask
	}
	slow := !m.fast && !m.trivial
	var h [4][512]int32 // d ≤ 256: the mask below only drops bounds checks
	for b := 0; b < len(kinds); b += distBlock {
		e := min(b+distBlock, len(kinds))
		ks, ds := kinds[b:e], dist[b:e]
		prefixDists(q, codes[b*prefixWords:e*prefixWords], ds)
		if slow {
			for i, k := range ks {
				if k&kindVec == 0 || !m.match(&meta[b+i]) {
					ds[i] = noDist
					continue
				}
				h[i&3][ds[i]&511]++
			}
			continue
		}
		ds = ds[:len(ks)]
		i := 0
		// Unrolled by hand: as a loop over j < 4 (not unrolled by the
		// compiler) the pass took 1.5 times as long.
		for ; i+4 <= len(ks); i += 4 {
			k, d := ks[i:i+4:i+4], ds[i:i+4:i+4]
			if k[0]&kindVec != 0 && k[0]&sm != 0 && k[0]&tm != 0 {
				h[0][d[0]&511]++
			} else {
				d[0] = noDist
			}
			if k[1]&kindVec != 0 && k[1]&sm != 0 && k[1]&tm != 0 {
				h[1][d[1]&511]++
			} else {
				d[1] = noDist
			}
			if k[2]&kindVec != 0 && k[2]&sm != 0 && k[2]&tm != 0 {
				h[2][d[2]&511]++
			} else {
				d[2] = noDist
			}
			if k[3]&kindVec != 0 && k[3]&sm != 0 && k[3]&tm != 0 {
				h[3][d[3]&511]++
			} else {
				d[3] = noDist
			}
		}
		for ; i < len(ks); i++ {
			if k := ks[i]; k&kindVec != 0 && k&sm != 0 && k&tm != 0 {
				h[0][ds[i]&511]++
			} else {
				ds[i] = noDist
			}
		}
	}
	matched := 0
	for d := range prefixWords*64 + 1 {
		c := h[0][d] + h[1][d] + h[2][d] + h[3][d]
		hist[d] += c
		matched += int(c)
	}
	return matched
}

// distBlock is how many distances scanRange and refine take from
// prefixDists and restDists at a time: 512 bytes of them, which stay in L1
// for the pass that uses them.
//
// restWords is the length of the rest of a 768-d code after its prefix,
// the one restDists handles.
const (
	distBlock = 256
	restWords = 8
)

// prefixDistsGo sets out[i] to the Hamming distance between q and the
// i-th prefix in codes, for every i < len(out). It is the portable
// prefixDists and the reference the assembly is tested against.
func prefixDistsGo(q *[prefixWords]uint64, codes []uint64, out []uint16) {
	codes = codes[:len(out)*prefixWords]
	for i := range out {
		c := (*[prefixWords]uint64)(codes[i*prefixWords:])
		out[i] = uint16(bits.OnesCount64(q[0]^c[0]) + bits.OnesCount64(q[1]^c[1]) +
			bits.OnesCount64(q[2]^c[2]) + bits.OnesCount64(q[3]^c[3]))
	}
}

// restDistsGo sets out[i] to the Hamming distance between q and the
// restWords words after the prefix of slot cand[i]'s code (codes holds w
// words a slot), for every i < len(out). It is the portable restDists and
// the reference the assembly is tested against.
func restDistsGo(q *[restWords]uint64, codes []uint64, w int, cand []int32, out []uint16) {
	cand = cand[:len(out)]
	for i, s := range cand {
		out[i] = uint16(hamming(q[:], codes[int(s)*w+prefixWords:int(s)*w+prefixWords+restWords]))
	}
}

// matched returns the matching slots of the last scan (there are n).
func (sc *vecScratch) matched(n int) []int32 {
	out := slices.Grow(sc.slots[:0], n)
	for slot, d := range sc.dist {
		if d != noDist {
			out = append(out, int32(slot))
		}
	}
	return out
}

// refine returns the n slots of cand (in slot order, as shortlist
// returns them after a prefix scan) with the smallest distances of their
// whole codes, ties at the cut taken in slot order, and leaves those
// distances in sc.dist. It reuses cand. The candidates are gathered
// first, in shortlist's tight loop, so that the random reads of their
// codes overlap; reading each code as the scan of sc.dist met it cost
// half as much again (a mispredicted branch between reads). For 768-d
// codes restDists reads them, a block at a time, in a loop short enough
// to overlap many more.
func (p *part) refine(cand []int32, n int, sc *vecScratch) []int32 {
	if len(cand) <= n {
		return cand
	}
	w := p.words
	rest := sc.code[prefixWords:w]
	hist := slices.Grow(sc.hist2[:0], p.dim+1)[:p.dim+1]
	clear(hist)
	sc.hist2 = hist
	dist := sc.dist
	if w == prefixWords+restWords { // 768-d
		q := (*[restWords]uint64)(rest)
		var buf [distBlock]uint16
		for b := 0; b < len(cand); b += distBlock {
			block := cand[b:min(b+distBlock, len(cand))]
			ds := buf[:len(block)]
			restDists(q, p.codes, w, block, ds)
			for i, s := range block {
				d := int(dist[s]) + int(ds[i])
				dist[s] = uint16(d)
				hist[d]++
			}
		}
	} else {
		for _, s := range cand {
			d := int(dist[s]) + hamming(rest, p.codes[int(s)*w+prefixWords:int(s+1)*w])
			dist[s] = uint16(d)
			hist[d]++
		}
	}
	cut, ties := cutAt(hist, n)
	out := cand[:0]
	for _, s := range cand {
		if d := int(dist[s]); d < cut || d == cut && ties > 0 {
			if d == cut {
				ties--
			}
			out = append(out, s)
		}
	}
	return out
}

// cutAt returns the distance at which the n smallest of hist end, and
// how many of them are at that distance.
func cutAt(hist []int32, n int) (cut, ties int) {
	acc := 0
	for cut = range hist {
		if acc+int(hist[cut]) >= n {
			break
		}
		acc += int(hist[cut])
	}
	return cut, n - acc
}

// shortlist returns the n matching slots of the last scan with the
// smallest distances (ties at the cut taken in slot order). It tests
// four distances at a time (SWAR: a lane below the limit borrows into
// its top bit, which is clear in every distance and set in noDist) and
// looks at each only in the rare groups that hold one to take.
func (sc *vecScratch) shortlist(n int) []int32 {
	cut, ties := cutAt(sc.hist, n) // ties: slots wanted at distance cut
	out := slices.Grow(sc.slots[:0], n)
	c := uint16(cut)
	take := func(slot int, d uint16) {
		if d < c || d == c && ties > 0 {
			if d == c {
				ties--
			}
			out = append(out, int32(slot))
		}
	}
	dist := sc.dist
	lim := uint64(cut+1) * 0x0001_0001_0001_0001 // cut+1 in each lane
	groups := len(dist) / 4
	if cut >= 1<<15 {
		groups = 0 // the lanes' top bits would not tell
	}
	for g := range groups {
		d4 := dist[4*g : 4*g+4 : 4*g+4]
		x := uint64(d4[0]) | uint64(d4[1])<<16 | uint64(d4[2])<<32 | uint64(d4[3])<<48
		if (x-lim)&^x&0x8000_8000_8000_8000 == 0 {
			continue // no lane below cut+1
		}
		for i, d := range d4 {
			take(4*g+i, d)
		}
	}
	for slot := 4 * groups; slot < len(dist); slot++ {
		take(slot, dist[slot])
	}
	return out
}
