package edgesync

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/athena-edge/athena-edge/core"
)

// parseMeta decodes the metadata of a push or changes message into v
// exactly as json.Unmarshal would, for the form encodeMsg writes: the
// fields in their order, no whitespace outside values, strings without
// escapes (non-ASCII only as valid UTF-8), and each change's payload any
// valid JSON value, kept byte for byte. A server spent about 15 µs a
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

// changes reads a []core.Change as encoding/json decodes one into a nil
// slice, for changes encoded without their vector and local fields.
func (r *metaReader) changes() []core.Change {
	if r.has("null") {
		r.i += 4
		return nil
	}
	r.lit(`[`)
	out := []core.Change{}
	if r.has(`]`) {
		r.i++
		return out
	}
	for r.ok {
		var c core.Change
		r.lit(`{"device":`)
		c.Device = r.str()
		r.lit(`,"seq":`)
		c.Seq = r.uint()
		r.lit(`,"hlc":`)
		c.HLC = core.HLC(r.uint())
		r.lit(`,"kind":`)
		c.Kind = core.Kind(r.str())
		r.lit(`,"project_id":`)
		c.ProjectID = core.ID(r.str())
		r.lit(`,"entity_id":`)
		c.EntityID = core.ID(r.str())
		r.lit(`,"payload":`)
		start := r.i
		r.value(0)
		if r.ok {
			c.Payload = json.RawMessage(append([]byte(nil), r.b[start:r.i]...))
		}
		r.lit(`}`)
		out = append(out, c)
		if r.has(`,`) {
			r.i++
			continue
		}
		r.lit(`]`)
		break
	}
	return out
}

// str reads a string without escapes whose bytes encoding/json keeps as
// they are: no control character, non-ASCII only as valid UTF-8.
func (r *metaReader) str() string {
	if !r.has(`"`) {
		r.ok = false
		return ""
	}
	start, ascii := r.i+1, true
	for j := start; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			s := r.b[start:j]
			if !ascii && !utf8.Valid(s) {
				r.ok = false
				return ""
			}
			r.i = j + 1
			return string(s)
		case c < 0x20 || c == '\\':
			r.ok = false
			return ""
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	r.ok = false
	return ""
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

// maxMetaDepth bounds the nesting value follows; deeper values are left
// to encoding/json.
const maxMetaDepth = 64

// value skips one JSON value with no whitespace outside its strings,
// checking it as encoding/json's scanner does (strings may hold any byte
// but a control character, and only JSON's escapes).
func (r *metaReader) value(depth int) {
	if !r.ok || r.i >= len(r.b) || depth > maxMetaDepth {
		r.ok = false
		return
	}
	switch c := r.b[r.i]; {
	case c == '{':
		r.i++
		if r.has(`}`) {
			r.i++
			return
		}
		for r.ok {
			r.skipString()
			r.lit(`:`)
			r.value(depth + 1)
			if r.has(`,`) {
				r.i++
				continue
			}
			r.lit(`}`)
			return
		}
	case c == '[':
		r.i++
		if r.has(`]`) {
			r.i++
			return
		}
		for r.ok {
			r.value(depth + 1)
			if r.has(`,`) {
				r.i++
				continue
			}
			r.lit(`]`)
			return
		}
	case c == '"':
		r.skipString()
	case c == '-' || c >= '0' && c <= '9':
		r.skipNumber()
	case r.has("true"), r.has("null"):
		r.i += 4
	case r.has("false"):
		r.i += 5
	default:
		r.ok = false
	}
}

// skipString skips a JSON string, escapes included.
func (r *metaReader) skipString() {
	if !r.has(`"`) {
		r.ok = false
		return
	}
	for j := r.i + 1; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			r.i = j + 1
			return
		case c < 0x20:
			r.ok = false
			return
		case c == '\\':
			j++
			if j >= len(r.b) {
				r.ok = false
				return
			}
			switch r.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(r.b) {
					r.ok = false
					return
				}
				for _, h := range r.b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						r.ok = false
						return
					}
				}
				j += 4
			default:
				r.ok = false
				return
			}
		}
	}
	r.ok = false
}

// skipNumber skips a JSON number.
func (r *metaReader) skipNumber() {
	b, i := r.b, r.i
	digits := func() bool {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		r.ok = false
		return
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			r.ok = false
			return
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			r.ok = false
			return
		}
	}
	r.i = i
}
