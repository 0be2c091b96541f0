package sqlitevec

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/ncruces/go-sqlite3"

	"github.com/athena-edge/athena-edge/core"
)

// index is the in-memory side of the store: per project, the filter
// metadata of every memory, a compact form of its embedding, and the
// keyword statistics BM25 needs. SQLite rows are the source of truth: the
// index is rebuilt from them on Open and changed only after a commit.
//
// Embeddings are kept as int8 (per-vector scale, ~1/4 of float32) plus a
// sign-bit code per vector: 100K × 768-d costs ~87 MB instead of 307 MB.
// Each row also keeps the norm of its quantization error, which bounds how
// far the int8 score can be from the true cosine, so the exact mode can
// prove which rows need their float32 vector re-read from SQLite.
//
// index is safe for concurrent use: queries hold mu for reading, apply
// holds it for writing.
type index struct {
	mu    sync.RWMutex
	parts map[core.ID]*part
	where map[int64]loc // rid → where the row lives
	docs  int64         // documents in every part
	// byID is a memory ID's 32-bit hash (idKey) → its rid, built on first
	// use (ridsOf) and kept by apply from then on; nil until then.
	// Loading candidates by rid skips the UNIQUE(id) index: a B-tree
	// descent per row. Readers check the id of every row they read by
	// rid, so byID may be wrong: an ID whose hash another ID took, or
	// whose rid is above 2³², is missing and is looked up by ID. Hashes
	// instead of the IDs themselves: ~1.2 MB at 100K memories, with
	// nothing for the GC to scan; keyed by ID, the map added ~7 MB to
	// peak RSS (the GC lets the heap grow by as much as is live).
	byID map[uint32]uint32
	seed maphash.Seed

	scratch sync.Pool // *vecScratch, see VectorLeg
}

type loc struct {
	p    *part
	slot int32
}

// part is one project's rows.
type part struct {
	project core.ID
	dim     int // 0 until the first vector
	words   int // 64-bit words per sign code

	rids   []int64
	meta   []rowMeta
	alive  []bool
	hasVec []bool
	// kinds is slot → meta.kind, plus kindVec when the slot has a vector:
	// all the approximate scan reads besides the codes, 4 bytes a row
	// instead of a rowMeta's cache line.
	kinds []uint32
	codes []uint64  // slot*words
	q8    []int8    // slot*dim
	scale []float32 // int8 → normalized float32
	errb  []float32 // ‖normalized vector − dequantized‖
	free  []int32
	live  int

	// pre is the first prefixWords words of every code, slot*prefixWords,
	// or nil until the first approximate scan needs it (prefix): the scan
	// reads these contiguous 32 bytes a row instead of the whole code,
	// then the rest of the code of the few percent of rows they pick.
	// Once built, every change to codes changes it too. Built on demand
	// because a snapshot load sets codes directly.
	pre   []uint64
	preMu sync.Mutex // guards building pre under index.mu read-locked

	center   []float32 // codes are sign(v − center)
	centerN  int       // vectors when center was computed
	building bool      // during buildIndex: codes are computed at the end

	// keyword statistics over every memory of the project, and its
	// postings: term → the slots whose text contains it, with the term's
	// frequency there. df[t] is len(post[t].slots).
	docs     int64
	totalLen int64
	df       map[string]int64
	post     map[string]*postings
	dlen     []int32        // slot → document length in tokens
	seen     map[string]int // scratch for setText
}

// postings lists the slots holding a term, in no particular order.
type postings struct {
	slots []int32
	tf    []uint16
}

// qvec is a quantized, normalized vector.
type qvec struct {
	q     []int8
	scale float32
	errb  float32
}

// indexOp is one committed change to apply.
type indexOp struct {
	rid  int64
	del  bool
	row  rowMeta
	vec  *qvec
	proj core.ID
	// emb is the embedding (the transaction's own copy) that prepareOps
	// quantizes into vec. keepVec: the embedding is the one the index has
	// (a metadata-only put); vec stays nil and emb, if set, is quantized
	// only if the row is missing.
	keepVec bool
	emb     []float32

	textChanged bool
	hadText     bool
	oldProject  core.ID
	oldText     string
	newText     string
}

func newIndex() *index {
	return &index{parts: map[core.ID]*part{}, where: map[int64]loc{}}
}

func (ix *index) count() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.where)
}

// ridsOf appends to dst the rid the index may hold each of ids at, 0
// for an ID it does not know. The index changes only after a commit, and
// byID may be wrong (see there), so a transaction may see no row at that
// rid, or another memory's: callers check.
func (ix *index) ridsOf(ids []core.ID, dst []int64) []int64 {
	ix.mu.RLock()
	if ix.byID == nil {
		ix.mu.RUnlock()
		ix.mu.Lock()
		ix.buildByID()
		ix.mu.Unlock()
		ix.mu.RLock()
	}
	for _, id := range ids {
		dst = append(dst, int64(ix.byID[ix.idKey(id)]))
	}
	ix.mu.RUnlock()
	return dst
}

// idKey is id's key in byID.
func (ix *index) idKey(id core.ID) uint32 { return uint32(maphash.String(ix.seed, string(id))) }

// buildByID fills byID, unless it is there already. ix.mu must be held
// for writing.
func (ix *index) buildByID() {
	if ix.byID != nil {
		return
	}
	ix.seed = maphash.MakeSeed()
	ix.byID = make(map[uint32]uint32, len(ix.where))
	for rid, at := range ix.where {
		ix.setRowID(rid, "", at.p.meta[at.slot].id)
	}
}

// setRowID records in byID, if it is built, that rid holds id instead of
// old ("" for none).
func (ix *index) setRowID(rid int64, old, id core.ID) {
	if ix.byID == nil || old == id {
		return
	}
	ix.dropRowID(rid, old)
	if id == "" {
		return
	}
	if rid > 0 && rid <= math.MaxUint32 {
		ix.byID[ix.idKey(id)] = uint32(rid)
	} else {
		delete(ix.byID, ix.idKey(id))
	}
}

// dropRowID removes id from byID, if it is built and id's entry is rid.
func (ix *index) dropRowID(rid int64, id core.ID) {
	if ix.byID == nil || id == "" {
		return
	}
	if k := ix.idKey(id); int64(ix.byID[k]) == rid {
		delete(ix.byID, k)
	}
}

// quantize normalizes v and quantizes it to int8. It returns nil for a
// nil or zero vector.
func quantize(v []float32) *qvec {
	if len(v) == 0 {
		return nil
	}
	var n float64
	var maxAbs float32
	for _, f := range v {
		n += float64(f) * float64(f)
		// Not the max builtin: its NaN and signed-zero rules cost a third
		// of quantize (a NaN makes n NaN, rejected below, either way).
		if a := float32(math.Abs(float64(f))); a > maxAbs {
			maxAbs = a
		}
	}
	if n == 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return nil
	}
	inv := float32(1 / math.Sqrt(n))
	scale := maxAbs * inv / 127
	toQ := 1 / scale
	q := make([]int8, len(v))
	var e float32
	for i, f := range v {
		u := f * inv
		r := int32(u*toQ+128.5) - 128 // round half up; u*toQ is in [-127, 127]
		q[i] = int8(r)
		d := u - float32(r)*scale
		e += d * d
	}
	// float32 rounding in u and the products is far below 1e-6 per
	// component; the slack keeps the bound an upper bound.
	return &qvec{q: q, scale: scale, errb: float32(math.Sqrt(float64(e))) + 1e-5}
}

func (p *part) ensureDim(dim int) bool {
	if p.dim != 0 && p.dim != dim && dim > 0 {
		// The project moved to another dimension (core.Tx.SwapEmbedder
		// rewrites every vector of the project in one commit, applied
		// under one lock): start over at the new one. Rows not rewritten
		// yet have no vector until their op comes.
		clear(p.hasVec)
		for i := range p.kinds {
			p.kinds[i] &^= kindVec
		}
		p.dim, p.centerN = 0, 0
	}
	if p.dim == 0 {
		p.dim = dim
		p.words = (dim + 63) / 64
		p.center = make([]float32, dim)
		// Rows added before the first vector had no room: give them some.
		n := len(p.rids)
		p.codes = make([]uint64, n*p.words)
		p.pre = nil
		p.q8 = make([]int8, n*dim)
	}
	return p.dim == dim
}

func (ix *index) part(project core.ID) *part {
	p := ix.parts[project]
	if p == nil {
		p = &part{project: project, df: map[string]int64{}, post: map[string]*postings{}}
		ix.parts[project] = p
	}
	return p
}

// add puts a row in p and returns its slot.
func (p *part) add(rid int64, row rowMeta, v *qvec) int32 {
	if v != nil {
		p.ensureDim(len(v.q))
	}
	var slot int32
	if n := len(p.free); n > 0 {
		slot = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		slot = int32(len(p.rids))
		p.rids = append(p.rids, 0)
		p.meta = append(p.meta, rowMeta{})
		p.alive = append(p.alive, false)
		p.hasVec = append(p.hasVec, false)
		p.kinds = append(p.kinds, 0)
		p.scale = append(p.scale, 0)
		p.errb = append(p.errb, 0)
		p.dlen = append(p.dlen, 0)
		if p.dim > 0 {
			p.codes = append(p.codes, make([]uint64, p.words)...)
			if p.pre != nil {
				p.pre = append(p.pre, make([]uint64, prefixWords)...)
			}
			p.q8 = append(p.q8, make([]int8, p.dim)...)
		}
	}
	p.rids[slot], p.meta[slot], p.alive[slot] = rid, row, true
	p.live++
	p.setVec(slot, v)
	return slot
}

func (p *part) setVec(slot int32, v *qvec) {
	defer p.setKind(slot)
	if v == nil || p.dim == 0 || len(v.q) != p.dim {
		p.hasVec[slot] = false
		return
	}
	copy(p.q8[int(slot)*p.dim:], v.q)
	p.scale[slot], p.errb[slot], p.hasVec[slot] = v.scale, v.errb, true
	p.encode(slot)
}

// kindVec marks a kinds entry whose slot has a vector. Kind bits use 0-15
// for states and 16-30 for types, so bit 31 is free.
const kindVec uint32 = 1 << 31

// setKind refreshes kinds[slot] from meta and hasVec.
func (p *part) setKind(slot int32) {
	k := p.meta[slot].kind
	if p.hasVec[slot] {
		k |= kindVec
	}
	p.kinds[slot] = k
}

// encode computes the sign code of slot from its int8 vector and center.
// Branch-free: the bits are close to random, so a branch would mispredict
// half the time.
func (p *part) encode(slot int32) {
	if p.building {
		return // recenter encodes every row once the build is done
	}
	q := p.q8[int(slot)*p.dim : int(slot+1)*p.dim]
	code := p.codes[int(slot)*p.words : int(slot+1)*p.words]
	s := p.scale[slot]
	c := p.center[:len(q)]
	for w := range code {
		var word uint64
		lo := w * 64
		hi := min(lo+64, len(q))
		for i := lo; i < hi; i++ {
			// sign bit of center − value: 1 when the value is above the center
			word |= uint64(math.Float32bits(c[i]-float32(q[i])*s)>>31) << (i - lo)
		}
		code[w] = word
	}
	if p.pre != nil {
		copy(p.pre[int(slot)*prefixWords:int(slot+1)*prefixWords], code)
	}
}

// prefixWords is how many leading words of a code pre keeps: 256 bits,
// a third of a 768-d code. On the benchmark set the 50 best rows rank
// within the first ~430 by prefix distance (~410 by full distance), so
// the prefixKeep×shortlist rows taken by prefix leave a wide margin.
const prefixWords = 4

// hasPrefix reports whether the approximate scan of p goes through pre:
// its codes must be at least twice as long as the prefix, and it must
// have enough rows for the second pass to be a small part of the work.
func (p *part) hasPrefix() bool {
	return p.words >= 2*prefixWords && len(p.rids) >= prefixScanMin
}

// prefix returns pre, building it from codes if needed. ix.mu must be
// held, for reading at least.
func (p *part) prefix() []uint64 {
	p.preMu.Lock()
	defer p.preMu.Unlock()
	if p.pre == nil {
		n := len(p.rids)
		pre := make([]uint64, n*prefixWords)
		for s := range n {
			copy(pre[s*prefixWords:(s+1)*prefixWords], p.codes[s*p.words:])
		}
		p.pre = pre
	}
	return p.pre
}

func (p *part) remove(slot int32) {
	p.alive[slot], p.hasVec[slot] = false, false
	p.meta[slot] = rowMeta{}
	p.kinds[slot] = 0
	p.free = append(p.free, slot)
	p.live--
}

// recenter recomputes the center of the codes and re-encodes every row,
// when the part has grown enough since the last time for it to matter.
func (p *part) recenter(force bool) {
	if p.dim == 0 || !force && (p.live < 256 || p.live < 2*p.centerN) {
		return
	}
	sum := make([]float64, p.dim)
	n := 0
	for slot := range p.rids {
		if !p.hasVec[slot] {
			continue
		}
		s := float64(p.scale[slot])
		for i, x := range p.q8[slot*p.dim : (slot+1)*p.dim] {
			sum[i] += float64(x) * s
		}
		n++
	}
	if n == 0 {
		return
	}
	for i := range sum {
		p.center[i] = float32(sum[i] / float64(n))
	}
	p.centerN = n
	p.building = false
	var wg sync.WaitGroup
	const workers = 2
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for slot := w; slot < len(p.rids); slot += workers {
				if p.hasVec[slot] {
					p.encode(int32(slot))
				}
			}
		}()
	}
	wg.Wait()
}

// setText adds (sign 1) or removes (sign -1) the text of slot: the
// statistics and the postings.
func (p *part) setText(slot int32, content string, sign int64) {
	toks := core.Tokenize(content)
	p.docs += sign
	p.totalLen += sign * int64(len(toks))
	if p.seen == nil {
		p.seen = map[string]int{}
	}
	tf := p.seen
	clear(tf)
	for _, t := range toks {
		tf[t]++
	}
	if sign > 0 {
		p.dlen[slot] = int32(len(toks))
	} else {
		p.dlen[slot] = 0
	}
	for t, n := range tf {
		pl := p.post[t]
		if sign > 0 {
			if pl == nil {
				t = strings.Clone(t) // tokens may share memory with content
				pl = &postings{}
				p.post[t] = pl
			}
			pl.slots = append(pl.slots, slot)
			pl.tf = append(pl.tf, uint16(min(n, math.MaxUint16)))
			p.df[t]++
			continue
		}
		if pl != nil {
			if i := slices.Index(pl.slots, slot); i >= 0 {
				last := len(pl.slots) - 1
				pl.slots[i], pl.tf[i] = pl.slots[last], pl.tf[last]
				pl.slots, pl.tf = pl.slots[:last], pl.tf[:last]
			}
		}
		if n := p.df[t] - 1; n > 0 {
			p.df[t] = n
		} else {
			delete(p.df, t)
			delete(p.post, t)
		}
	}
}

// prepareOps quantizes the embeddings of ops that bring a new vector,
// before apply takes the index's lock.
func prepareOps(ops []indexOp) {
	for i := range ops {
		if op := &ops[i]; !op.del && !op.keepVec && op.vec == nil && op.emb != nil {
			op.vec, op.emb = quantize(op.emb), nil
		}
	}
}

// apply applies committed operations, in order.
func (ix *index) apply(ops []indexOp) {
	if len(ops) == 0 {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	touched := map[*part]struct{}{}
	for i := range ops {
		op := &ops[i]
		at, exists := ix.where[op.rid]
		if op.hadText && op.textChanged || op.del {
			if exists && at.p.project == op.oldProject {
				at.p.setText(at.slot, op.oldText, -1)
				ix.docs--
			}
		}
		if op.del {
			if exists {
				ix.dropRowID(op.rid, at.p.meta[at.slot].id)
				at.p.remove(at.slot)
				delete(ix.where, op.rid)
			}
			continue
		}
		if exists && at.p.project != op.proj {
			ix.dropRowID(op.rid, at.p.meta[at.slot].id)
			at.p.remove(at.slot)
			delete(ix.where, op.rid)
			exists = false
		}
		if exists {
			ix.setRowID(op.rid, at.p.meta[at.slot].id, op.row.id)
		}
		if exists && op.keepVec {
			at.p.meta[at.slot] = op.row
			at.p.setKind(at.slot)
		} else if exists {
			at.p.meta[at.slot] = op.row
			if op.vec != nil {
				at.p.ensureDim(len(op.vec.q))
			}
			at.p.setVec(at.slot, op.vec)
		} else {
			if op.keepVec {
				op.vec = quantize(op.emb)
			}
			p := ix.part(op.proj)
			at = loc{p: p, slot: p.add(op.rid, op.row, op.vec)}
			ix.where[op.rid] = at
			ix.setRowID(op.rid, "", op.row.id)
		}
		if op.textChanged {
			at.p.setText(at.slot, op.newText, 1)
			ix.docs++
		}
		touched[at.p] = struct{}{}
	}
	for p := range touched {
		p.recenter(false)
	}
}

// buildIndex reads every memory row and builds the index.
func buildIndex(ctx context.Context, c *conn, cfg *Config) (*index, error) {
	ix := newIndex()
	type raw struct {
		rid     int64
		row     rowMeta
		project core.ID
		content string
		emb     []byte
	}
	// One goroutine reads rows (SQLite is single-threaded per connection)
	// while another quantizes vectors and counts terms.
	const batch = 512
	ch := make(chan []raw, 8)
	type done struct {
		rid  int64
		proj core.ID
		row  rowMeta
		vec  *qvec
		text string
	}
	out := make(chan []done, 8)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rs := range ch {
				ds := make([]done, len(rs))
				for i := range rs {
					r := &rs[i]
					ds[i] = done{rid: r.rid, proj: r.project, row: r.row, vec: quantizeBlob(r.emb), text: r.content}
				}
				out <- ds
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	readErr := make(chan error, 1)
	go func() {
		defer close(ch)
		cur := make([]raw, 0, batch)
		err := c.query(`SELECT rid, id, project_id, content, embedding, memory_type, domain, tags, session_id,
			state, created_at, last_accessed FROM memories`, nil, func(st *sqlite3.Stmt) error {
			r := raw{rid: st.ColumnInt64(0), project: core.ID(st.ColumnText(2)), content: st.ColumnText(3),
				emb: st.ColumnBlob(4, nil)}
			r.row = rowMeta{id: core.ID(st.ColumnText(1)), typ: core.MemoryType(st.ColumnText(5)),
				domain: st.ColumnText(6), session: st.ColumnText(8), state: core.State(st.ColumnText(9)),
				created: st.ColumnInt64(10), accessed: st.ColumnInt64(11)}
			r.row.setKind()
			if tags := st.ColumnRawText(7); len(tags) > 2 {
				if err := jsonUnmarshal(tags, &r.row.tags); err != nil {
					return err
				}
			}
			cur = append(cur, r)
			if len(cur) == batch {
				ch <- cur
				cur = make([]raw, 0, batch)
			}
			return nil
		})
		if len(cur) > 0 {
			ch <- cur
		}
		readErr <- err
	}()
	for ds := range out {
		for i := range ds {
			d := &ds[i]
			p := ix.part(d.proj)
			p.building = true
			slot := p.add(d.rid, d.row, d.vec)
			p.setText(slot, d.text, 1)
			ix.docs++
			ix.where[d.rid] = loc{p: p, slot: slot}
		}
	}
	if err := <-readErr; err != nil {
		return nil, err
	}
	for _, p := range ix.parts {
		p.recenter(true)
	}
	return ix, ctx.Err()
}

func quantizeBlob(b []byte) *qvec {
	if len(b) < 4 {
		return nil
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return quantize(v)
}

// hamming is the number of differing bits of two codes.
func hamming(a, b []uint64) int {
	n := 0
	for i := range a {
		n += bits.OnesCount64(a[i] ^ b[i])
	}
	return n
}

// dotI8 is Σ q[i]·x[i] in float32, summed in an order fixed for every
// machine: element i goes into lane i mod dotLanes (dotI8Lanes, in
// assembly where the CPU has it), each product rounded to float32 before
// it is added (no fused multiply-add), and the lanes are added pairwise
// at the end. The same query and code give the same bits everywhere, so
// every machine ranks near-ties alike.
func dotI8(q []float32, x []int8) float32 {
	x = x[:len(q)]
	var s [dotLanes]float32
	n := len(q) &^ (dotLanes - 1)
	dotI8Lanes(q[:n], x[:n], &s)
	for i := n; i < len(q); i++ {
		s[i-n] += float32(q[i] * float32(x[i]))
	}
	for w := dotLanes / 2; w > 0; w /= 2 {
		for j := range w {
			s[j] += s[j+w]
		}
	}
	return s[0]
}

// dotLanes is how many partial sums dotI8 keeps: two AVX registers.
const dotLanes = 16

// dotI8LanesGo adds q[i]·x[i] to s[i mod dotLanes] for every i, in order;
// len(q) is a multiple of dotLanes. It is the portable dotI8Lanes and
// the reference the assembly is tested against.
func dotI8LanesGo(q []float32, x []int8, s *[dotLanes]float32) {
	x = x[:len(q)]
	for i := 0; i+dotLanes <= len(q); i += dotLanes {
		qq, xx := q[i:i+dotLanes:i+dotLanes], x[i:i+dotLanes:i+dotLanes]
		for j := range dotLanes {
			// The conversion rounds the product: it forbids fusing the
			// multiply and the add, which the assembly does not do.
			s[j] += float32(qq[j] * float32(xx[j]))
		}
	}
}
