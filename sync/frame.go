package edgesync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// MsgType is the first content byte of a frame after the magic byte. The
// list only grows: a type, once shipped, keeps its number and meaning.
type MsgType uint8

// Message types (docs/SYNC.md, "Messages").
const (
	MsgHello   MsgType = 1 // edge → server: versions, informational device and cursors
	MsgWelcome MsgType = 2 // server → edge: chosen version, device, project, limits
	MsgPush    MsgType = 3 // edge → server: a batch of the edge's own changes
	MsgAck     MsgType = 4 // server → edge: per-change results, after commit
	MsgPull    MsgType = 5 // edge → server: changes after a cursor, please
	MsgChanges MsgType = 6 // server → edge: changes made elsewhere, next cursor
	MsgPoke    MsgType = 7 // server → edge: new changes exist, pull
	MsgError   MsgType = 8 // either way: a wire error with a stable code
)

func (t MsgType) String() string {
	switch t {
	case MsgHello:
		return "hello"
	case MsgWelcome:
		return "welcome"
	case MsgPush:
		return "push"
	case MsgAck:
		return "ack"
	case MsgPull:
		return "pull"
	case MsgChanges:
		return "changes"
	case MsgPoke:
		return "poke"
	case MsgError:
		return "error"
	}
	return fmt.Sprintf("type_%d", uint8(t))
}

// frameMagic opens every frame, so that a stray text message or another
// protocol is recognised at once.
const frameMagic = 0xAE

// Frame is one binary WebSocket message: a type, JSON metadata, and the
// raw embeddings of the changes the metadata lists (Vectors[i] belongs to
// the i-th change; nil when it has none).
//
// Encoding (all integers are unsigned LEB128 varints unless noted):
//
//	magic 0xAE | type (1 byte) | len(meta) | meta (JSON)
//	| count | count × ( dim | dim × float32 little-endian )
//
// A Frame is a plain value; it is not safe for concurrent mutation.
type Frame struct {
	Type    MsgType
	Meta    []byte
	Vectors [][]float32
}

// FrameLimits bounds what [DecodeFrame] accepts; every length is checked
// against them (and against the bytes actually present) before anything is
// allocated.
type FrameLimits struct {
	MaxMeta    int // bytes of JSON metadata (DefaultReadLimit if zero)
	MaxVectors int // vectors per frame (DefaultMaxBatch if zero)
	MaxDim     int // floats per vector (DefaultMaxWireDim if zero)
}

// DefaultMaxWireDim bounds a vector's length on the wire. core's validator
// applies the project's exact dimension afterwards.
const DefaultMaxWireDim = 16000

func (l FrameLimits) withDefaults() FrameLimits {
	if l.MaxMeta <= 0 {
		l.MaxMeta = DefaultReadLimit
	}
	if l.MaxVectors <= 0 {
		l.MaxVectors = DefaultMaxBatch
	}
	if l.MaxDim <= 0 {
		l.MaxDim = DefaultMaxWireDim
	}
	return l
}

// errFrame is wrapped by every decoding error; it matches ErrProtocol.
var errFrame = fmt.Errorf("%w: bad frame", ErrProtocol)

// AppendFrame appends the encoding of f to dst.
func AppendFrame(dst []byte, f *Frame) []byte {
	dst = append(dst, frameMagic, byte(f.Type))
	dst = binary.AppendUvarint(dst, uint64(len(f.Meta)))
	dst = append(dst, f.Meta...)
	dst = binary.AppendUvarint(dst, uint64(len(f.Vectors)))
	for _, v := range f.Vectors {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		for _, x := range v {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
		}
	}
	return dst
}

// EncodedSize is len(AppendFrame(nil, f)), without encoding.
func EncodedSize(f *Frame) int {
	n := 2 + uvarintLen(uint64(len(f.Meta))) + len(f.Meta) + uvarintLen(uint64(len(f.Vectors)))
	for _, v := range f.Vectors {
		n += uvarintLen(uint64(len(v))) + 4*len(v)
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// DecodeFrame parses one frame. It never panics and never allocates more
// than the input justifies: every length is checked against lim and
// against the remaining input first. The returned Meta aliases b.
func DecodeFrame(b []byte, lim FrameLimits) (Frame, error) {
	lim = lim.withDefaults()
	var f Frame
	if len(b) < 2 || b[0] != frameMagic {
		return f, fmt.Errorf("%w: missing magic byte", errFrame)
	}
	f.Type = MsgType(b[1])
	if f.Type == 0 {
		return f, fmt.Errorf("%w: message type 0", errFrame)
	}
	r := b[2:]
	n, err := readLen(&r, uint64(lim.MaxMeta), "meta length")
	if err != nil {
		return f, err
	}
	if n > len(r) {
		return f, fmt.Errorf("%w: meta length %d exceeds the %d bytes left", errFrame, n, len(r))
	}
	f.Meta, r = b[len(b)-len(r):len(b)-len(r)+n:len(b)-len(r)+n], r[n:]
	count, err := readLen(&r, uint64(lim.MaxVectors), "vector count")
	if err != nil {
		return f, err
	}
	if count > len(r) { // each vector takes at least one byte
		return f, fmt.Errorf("%w: vector count %d exceeds the %d bytes left", errFrame, count, len(r))
	}
	if count > 0 {
		f.Vectors = make([][]float32, count)
	}
	for i := range count {
		dim, err := readLen(&r, uint64(lim.MaxDim), "vector dimension")
		if err != nil {
			return f, err
		}
		if dim*4 > len(r) {
			return f, fmt.Errorf("%w: vector %d: %d floats exceed the %d bytes left", errFrame, i, dim, len(r))
		}
		if dim == 0 {
			continue
		}
		v := make([]float32, dim)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(r[4*j:]))
		}
		f.Vectors[i], r = v, r[4*dim:]
	}
	if len(r) != 0 {
		return f, fmt.Errorf("%w: %d trailing bytes", errFrame, len(r))
	}
	return f, nil
}

var errVarint = errors.New("bad varint")

func readLen(r *[]byte, max uint64, what string) (int, error) {
	x, n := binary.Uvarint(*r)
	if n <= 0 {
		return 0, fmt.Errorf("%w: %s: %w", errFrame, what, errVarint)
	}
	if x > max {
		return 0, fmt.Errorf("%w: %s %d over the limit %d", errFrame, what, x, max)
	}
	*r = (*r)[n:]
	return int(x), nil
}
