package core

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// ID identifies any object athena-edge stores. It is a UUID in canonical
// lowercase text form. IDs made by [NewID] follow the UUIDv7 layout: the
// first 48 bits are the Unix time in milliseconds, so IDs sort by creation
// time as strings, and they are globally unique without coordination, which
// lets an edge-made memory keep its identity on the server.
type ID string

// NewID returns a new UUIDv7 for time t, with 74 random bits from
// crypto/rand. It is safe for concurrent use.
func NewID(t time.Time) ID {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		panic("core: crypto/rand failed: " + err.Error()) // crypto/rand.Read never fails since Go 1.24
	}
	return newV7(t, b)
}

// DeriveID returns an ID that is a pure function of t and parts: the same
// inputs give the same ID on every device. Consolidation uses it so that two
// devices merging the same memories create the same new memory. t gives the
// ID its sort position.
func DeriveID(t time.Time, parts ...string) ID {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var b [16]byte
	copy(b[6:], h.Sum(nil))
	return newV7(t, b)
}

func newV7(t time.Time, b [16]byte) ID {
	ms := uint64(t.UnixMilli())
	b[0], b[1], b[2] = byte(ms>>40), byte(ms>>32), byte(ms>>24)
	b[3], b[4], b[5] = byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return ID(encodeUUID(b))
}

func encodeUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// ParseID checks that s is a UUID in canonical form (any version, lower or
// upper case hex) and returns it lowercased. Malformed IDs give a
// *FieldError for field "id".
func ParseID(s string) (ID, error) {
	if err := checkUUID(s); err != nil {
		return "", err
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + ('a' - 'A')
		}
	}
	return ID(b), nil
}

func checkUUID(s string) *FieldError {
	if len(s) != 36 {
		return fieldErr("id", "must be a 36-character UUID, got %d bytes", len(s))
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return fieldErr("id", "must be a UUID: want '-' at offset %d", i)
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return fieldErr("id", "must be a UUID: invalid character at offset %d", i)
			}
		}
	}
	return nil
}

// Time returns the creation time embedded in a UUIDv7 ID, or the zero time
// for IDs of other versions or malformed IDs.
func (id ID) Time() time.Time {
	if checkUUID(string(id)) != nil || id[14] != '7' {
		return time.Time{}
	}
	var b [6]byte
	if _, err := hex.Decode(b[:4], []byte(id[0:8])); err != nil {
		return time.Time{}
	}
	if _, err := hex.Decode(b[4:], []byte(id[9:13])); err != nil {
		return time.Time{}
	}
	ms := int64(b[0])<<40 | int64(b[1])<<32 | int64(b[2])<<24 | int64(b[3])<<16 | int64(b[4])<<8 | int64(b[5])
	return time.UnixMilli(ms).UTC()
}
