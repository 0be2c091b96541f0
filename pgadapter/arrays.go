package pgadapter

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5/pgtype"
)

// The multi-row statements bind one array per column (putMemoriesSQL has
// 31). pgx encodes a Go slice through its generic array plan, one boxed
// interface value and one element plan call per element; for a push batch
// of 128 memories that was about 15 µs a memory on the server's critical
// path. The column types below write PostgreSQL's binary array format
// (array_send's) directly; arrayCodec hands them their plan and every other
// value to pgx's codec, so the rest of pgx is unchanged.

// textArray is a text[] parameter.
type textArray []string

// nullTextArray is a text[] parameter whose nil elements are SQL NULL.
type nullTextArray []*string

// vectorArray is a vector[] parameter (pgvector's binary form: dimension,
// a reserved zero, big-endian float32s). An element longer than the
// format's 65,535 is an error (pgvector's own limit is 16,000).
type vectorArray [][]float32

// arrayCodec wraps the ArrayCodec registered for text[] or vector[].
type arrayCodec struct {
	pgtype.Codec
	elemOID uint32
}

func (c arrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		switch value.(type) {
		case textArray, nullTextArray, vectorArray:
			return arrayPlan{elemOID: c.elemOID}
		}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

// arrayPlan encodes the three array types above.
type arrayPlan struct{ elemOID uint32 }

// Encode appends value, or nothing for a nil slice (SQL NULL, as pgx).
func (p arrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	switch v := value.(type) {
	case textArray:
		if v == nil {
			return nil, nil
		}
		size := 0
		for _, s := range v {
			size += 4 + len(s)
		}
		buf = appendArrayHeader(buf, len(v), false, p.elemOID, size)
		for _, s := range v {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
			buf = append(buf, s...)
		}
	case nullTextArray:
		if v == nil {
			return nil, nil
		}
		size, nulls := 0, false
		for _, s := range v {
			size += 4
			if s == nil {
				nulls = true
			} else {
				size += len(*s)
			}
		}
		buf = appendArrayHeader(buf, len(v), nulls, p.elemOID, size)
		for _, s := range v {
			if s == nil {
				buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32) // length -1: NULL
				continue
			}
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(*s)))
			buf = append(buf, *s...)
		}
	case vectorArray:
		if v == nil {
			return nil, nil
		}
		size := 0
		for i, x := range v {
			if len(x) > math.MaxUint16 {
				return nil, fmt.Errorf("pgadapter: vector %d of the array has %d dimensions, more than a vector holds", i, len(x))
			}
			size += 8 + 4*len(x)
		}
		buf = appendArrayHeader(buf, len(v), false, p.elemOID, size)
		for _, x := range v {
			buf = binary.BigEndian.AppendUint32(buf, uint32(4+4*len(x)))
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(x)))
			buf = binary.BigEndian.AppendUint16(buf, 0)
			for _, f := range x {
				buf = binary.BigEndian.AppendUint32(buf, math.Float32bits(f))
			}
		}
	}
	return buf, nil
}

// appendArrayHeader appends a one-dimensional array's header (as pgx
// does, also for an empty array) and grows buf for size more bytes of
// elements.
func appendArrayHeader(buf []byte, n int, nulls bool, elemOID uint32, size int) []byte {
	buf = slices.Grow(buf, 20+size)
	var flags uint32
	if nulls {
		flags = 1
	}
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, flags)
	buf = binary.BigEndian.AppendUint32(buf, elemOID)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	return binary.BigEndian.AppendUint32(buf, 1) // lower bound
}
