package sqlitevec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"unsafe"

	"github.com/athena-edge/athena-edge/core"
)

// The index snapshot is a cache of the in-memory index in a file beside
// the database (<path>-index), written by Close and read by Open instead
// of re-reading and re-quantizing every row. It records the generation
// and the change-log position it reflects: every write transaction that
// changes memories increments index_gen.gen in the same transaction and
// logs its changes. Open uses a snapshot whose checksum holds and whose
// generation is not ahead of the database's, and brings it up to date from
// the change log past its position (catchup.go) when few changes came
// after it; otherwise (many changes, a snapshot from the future, a missing
// or damaged file) it rebuilds from rows. SQLite stays the source of
// truth: deleting the file only costs one slower Open.
const snapMagic = "AEVIDX03"

func snapPath(db string) string { return db + "-index" }

type snapWriter struct {
	w   *bufio.Writer
	crc uint32
	err error
	buf [8]byte
}

func (s *snapWriter) bytes(b []byte) {
	if s.err != nil {
		return
	}
	s.crc = crc32.Update(s.crc, crc32.IEEETable, b)
	_, s.err = s.w.Write(b)
}
func (s *snapWriter) u64(v uint64) { binary.LittleEndian.PutUint64(s.buf[:], v); s.bytes(s.buf[:8]) }
func (s *snapWriter) i64(v int64)  { s.u64(uint64(v)) }
func (s *snapWriter) str(v string) { s.u64(uint64(len(v))); s.bytes([]byte(v)) }

func sliceBytes[T any](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*int(unsafe.Sizeof(v[0])))
}

func snapSlice[T any](s *snapWriter, v []T) { s.u64(uint64(len(v))); s.bytes(sliceBytes(v)) }

// writeSnapshot writes ix at generation gen to path, atomically (a
// temporary file renamed over it). The caller holds no lock: the store is
// closing and nothing else touches ix.
func writeSnapshot(path string, ix *index, gen, logPos int64) (err error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	s := &snapWriter{w: bufio.NewWriterSize(f, 1<<20)}
	s.bytes([]byte(snapMagic))
	s.i64(gen)
	s.i64(logPos)
	s.i64(ix.docs)
	s.u64(uint64(len(ix.parts)))
	for _, p := range ix.parts {
		s.str(string(p.project))
		s.i64(int64(p.dim))
		s.i64(int64(p.centerN))
		s.i64(int64(p.live))
		s.i64(p.docs)
		s.i64(p.totalLen)
		snapSlice(s, p.center)
		snapSlice(s, p.rids)
		snapSlice(s, p.alive)
		snapSlice(s, p.hasVec)
		snapSlice(s, p.codes)
		snapSlice(s, p.q8)
		snapSlice(s, p.scale)
		snapSlice(s, p.errb)
		snapSlice(s, p.free)
		snapSlice(s, p.dlen)
		for i := range p.meta {
			m := &p.meta[i]
			s.str(string(m.id))
			s.str(string(m.state))
			s.str(string(m.typ))
			s.str(m.domain)
			s.str(m.session)
			s.i64(m.created)
			s.i64(m.accessed)
			s.u64(uint64(len(m.tags)))
			for _, t := range m.tags {
				s.str(t)
			}
		}
		s.u64(uint64(len(p.post)))
		for t, pl := range p.post {
			s.str(t)
			snapSlice(s, pl.slots)
			snapSlice(s, pl.tf)
		}
	}
	crc := s.crc
	s.u64(uint64(crc))
	if s.err == nil {
		s.err = s.w.Flush()
	}
	if s.err != nil {
		return s.err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// snapReader reads the snapshot body straight into the index's own
// slices, checksumming as it goes: the file is never held in memory whole
// (it is ~100 MB at 100K × 768, and the index would otherwise keep the
// buffer alive or hold two copies while loading).
type snapReader struct {
	r    *bufio.Reader
	crc  uint32
	left uint64 // body bytes not read yet
	err  error
	buf  [8]byte
	// strs interns the short strings many rows share (state, type,
	// domain, session), so that 100K rows do not hold 100K copies each.
	strs map[string]string
}

var errSnap = errors.New("index snapshot: truncated or inconsistent")

func (r *snapReader) read(b []byte) {
	if r.err != nil {
		return
	}
	if uint64(len(b)) > r.left {
		r.err = errSnap
		return
	}
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.err = errSnap
		return
	}
	r.crc = crc32.Update(r.crc, crc32.IEEETable, b)
	r.left -= uint64(len(b))
}

func (r *snapReader) u64() uint64 {
	r.read(r.buf[:])
	if r.err != nil {
		return 0
	}
	return binary.LittleEndian.Uint64(r.buf[:])
}
func (r *snapReader) i64() int64 { return int64(r.u64()) }

func (r *snapReader) str() string {
	n := r.u64()
	if r.err != nil || n > r.left {
		r.err = errSnap
		return ""
	}
	return r.strN(n)
}

// strN reads a string of n bytes (n ≤ r.left).
func (r *snapReader) strN(n uint64) string {
	if n == 0 {
		return ""
	}
	b := make([]byte, n)
	r.read(b)
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is not used again
}

// interned reads a string and returns the shared copy of its value.
func (r *snapReader) interned() string {
	n := r.u64()
	if r.err != nil || n > r.left {
		r.err = errSnap
		return ""
	}
	if n > 64 {
		return r.strN(n)
	}
	var b [64]byte
	r.read(b[:n])
	if s, ok := r.strs[string(b[:n])]; ok {
		return s
	}
	s := string(b[:n])
	r.strs[s] = s
	return s
}

func readSlice[T any](r *snapReader) []T {
	n := r.u64()
	var zero T
	size := uint64(unsafe.Sizeof(zero))
	if r.err != nil || n > math.MaxInt32*4 || n*size > r.left {
		r.err = errSnap
		return nil
	}
	out := make([]T, n)
	r.read(sliceBytes(out))
	return out
}

// readSnapshot loads the snapshot at path and the generation and
// change-log position it reflects. It returns a nil index when there is
// none, or when it was written at a generation newer than maxGen.
func readSnapshot(path string, maxGen int64) (ix *index, gen, logPos int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, nil
	}
	defer f.Close()
	head := make([]byte, len(snapMagic)+16)
	if _, err := io.ReadFull(f, head); err != nil || string(head[:len(snapMagic)]) != snapMagic {
		return nil, 0, 0, nil
	}
	gen = int64(binary.LittleEndian.Uint64(head[len(snapMagic):]))
	logPos = int64(binary.LittleEndian.Uint64(head[len(snapMagic)+8:]))
	if gen > maxGen {
		return nil, 0, 0, nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() < int64(len(head))+8 {
		return nil, 0, 0, nil
	}
	r := &snapReader{r: bufio.NewReaderSize(f, 1<<20), crc: crc32.ChecksumIEEE(head),
		left: uint64(fi.Size()) - uint64(len(head)) - 8, strs: map[string]string{}}
	ix = newIndex()
	ix.docs = r.i64()
	nparts := r.u64()
	for range nparts {
		if r.err != nil {
			break
		}
		p := ix.part(core.ID(r.str()))
		p.dim = int(r.i64())
		p.words = (p.dim + 63) / 64
		p.centerN = int(r.i64())
		p.live = int(r.i64())
		p.docs = r.i64()
		p.totalLen = r.i64()
		p.center = readSlice[float32](r)
		p.rids = readSlice[int64](r)
		p.alive = readSlice[bool](r)
		p.hasVec = readSlice[bool](r)
		p.codes = readSlice[uint64](r)
		p.q8 = readSlice[int8](r)
		p.scale = readSlice[float32](r)
		p.errb = readSlice[float32](r)
		p.free = readSlice[int32](r)
		p.dlen = readSlice[int32](r)
		n := len(p.rids)
		if r.err != nil || len(p.alive) != n || len(p.hasVec) != n || len(p.scale) != n || len(p.errb) != n ||
			len(p.dlen) != n || len(p.codes) != n*p.words || len(p.q8) != n*p.dim {
			return nil, 0, 0, errSnap
		}
		p.meta = make([]rowMeta, n)
		p.kinds = make([]uint32, n)
		for i := range p.meta {
			m := &p.meta[i]
			m.id, m.state, m.typ = core.ID(r.str()), core.State(r.interned()), core.MemoryType(r.interned())
			m.domain, m.session = r.interned(), r.interned()
			m.created, m.accessed = r.i64(), r.i64()
			if nt := r.u64(); nt > 0 && nt < 1<<20 {
				m.tags = make([]string, nt)
				for j := range m.tags {
					m.tags[j] = r.str()
				}
			}
			m.setKind()
			p.setKind(int32(i))
			if p.alive[i] {
				ix.where[p.rids[i]] = loc{p: p, slot: int32(i)}
			}
		}
		nt := r.u64()
		for range nt {
			if r.err != nil {
				break
			}
			t := r.str()
			pl := &postings{slots: readSlice[int32](r), tf: readSlice[uint16](r)}
			if len(pl.slots) != len(pl.tf) {
				return nil, 0, 0, errSnap
			}
			p.post[t] = pl
			p.df[t] = int64(len(pl.slots))
		}
	}
	if r.err != nil || r.left != 0 {
		return nil, 0, 0, errSnap
	}
	var tail [8]byte
	if _, err := io.ReadFull(r.r, tail[:]); err != nil {
		return nil, 0, 0, errSnap
	}
	if uint64(r.crc) != binary.LittleEndian.Uint64(tail[:]) {
		return nil, 0, 0, fmt.Errorf("index snapshot %s: checksum mismatch", path)
	}
	return ix, gen, logPos, nil
}
