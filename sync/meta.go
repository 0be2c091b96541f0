package edgesync

import (
	"strconv"

	"github.com/athena-edge/athena-edge/core"
)

// parseMeta decodes the metadata of a push or changes message into v
// exactly as json.Unmarshal would, for the form encodeMsg writes: the
// fields in their order, no whitespace outside values, and the change
// list as core.DecodeChangesJSON reads it. A server spent about 15 µs a
// change in encoding/json on these, a twentieth of a push's time. ok is
// false, and v is unchanged, for anything else: the caller then uses
// encoding/json, which also reports the error if there is one.
// FuzzParseMeta compares the two.
func parseMeta(b []byte, v any) (ok bool) {
	r := metaReader{b: b, ok: true}
	switch v := v.(type) {
	case *pushMsg:
		var m pushMsg
		r.lit(`{"batch":`)
		m.Batch = r.uint()
		r.lit(`,"changes":`)
		m.Changes = r.changes()
		r.lit(`}`)
		if r.done() {
			*v = m
		}
	case *changesMsg:
		var m changesMsg
		r.lit(`{"req":`)
		m.Req = r.uint()
		r.lit(`,"changes":`)
		m.Changes = r.changes()
		r.lit(`,"next":`)
		m.Next = r.int()
		r.lit(`,"more":`)
		m.More = r.bool()
		r.lit(`}`)
		if r.done() {
			*v = m
		}
	default:
		return false
	}
	return r.done()
}

// metaReader reads message metadata; ok turns false at the first byte it
// does not expect, and every later read returns a zero value.
type metaReader struct {
	b  []byte
	i  int
	ok bool
}

// done reports whether the whole input was read as expected.
func (r *metaReader) done() bool { return r.ok && r.i == len(r.b) }

// has reports whether the input continues with s.
func (r *metaReader) has(s string) bool {
	return r.ok && len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s
}

// lit consumes s.
func (r *metaReader) lit(s string) {
	if !r.has(s) {
		r.ok = false
		return
	}
	r.i += len(s)
}

// changes reads a change list with core.DecodeChangesJSON.
func (r *metaReader) changes() []core.Change {
	if !r.ok {
		return nil
	}
	cs, n, ok := core.DecodeChangesJSON(r.b[r.i:])
	if !ok {
		r.ok = false
		return nil
	}
	r.i += n
	return cs
}

// digits reads an optional minus sign and the digits of an integer
// without leading zeros, as JSON writes one.
func (r *metaReader) digits() string {
	if !r.ok {
		return ""
	}
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	d := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	if r.i == d || (r.b[d] == '0' && r.i-d > 1) {
		r.ok = false
		return ""
	}
	return string(r.b[start:r.i])
}

// uint reads a uint64 as encoding/json does (strconv.ParseUint); a
// fraction or exponent, which encoding/json rejects, ends the fast path.
func (r *metaReader) uint() uint64 {
	n, err := strconv.ParseUint(r.digits(), 10, 64)
	if err != nil {
		r.ok = false
	}
	return n
}

// int reads an int64 as encoding/json does (strconv.ParseInt).
func (r *metaReader) int() int64 {
	n, err := strconv.ParseInt(r.digits(), 10, 64)
	if err != nil {
		r.ok = false
	}
	return n
}

func (r *metaReader) bool() bool {
	switch {
	case r.has("true"):
		r.i += 4
		return true
	case r.has("false"):
		r.i += 5
		return false
	}
	r.ok = false
	return false
}
