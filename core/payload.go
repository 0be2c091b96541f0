package core

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendMemoryJSON appends json.Marshal(m) to b, byte for byte, for the
// memories a local put encodes (a batched insert spent a twentieth of its
// time in encoding/json's reflection). ok is false, and b is unchanged in
// meaning, when m holds anything whose encoding this does not reproduce:
// a string with a byte that encoding/json escapes or that is not ASCII,
// a float encoding/json rejects, a time it formats otherwise or rejects,
// an embedding or an access map. TestAppendMemoryJSON compares it with
// json.Marshal.
func appendMemoryJSON(b []byte, m *Memory) (_ []byte, ok bool) {
	if m.Embedding != nil || len(m.AccessByDevice) > 0 {
		return b, false
	}
	w := jsonWriter{b: b, ok: true}
	w.raw(`{"id":`)
	w.str(string(m.ID))
	w.raw(`,"project_id":`)
	w.str(string(m.ProjectID))
	w.raw(`,"content":`)
	w.str(m.Content)
	w.raw(`,"embedding_model":`)
	w.str(m.EmbeddingModel)
	w.raw(`,"memory_type":`)
	w.str(string(m.MemoryType))
	w.raw(`,"domain":`)
	w.str(m.Domain)
	w.raw(`,"tags":`)
	if m.Tags == nil {
		w.raw(`null`)
	} else {
		w.raw(`[`)
		for i, t := range m.Tags {
			if i > 0 {
				w.raw(`,`)
			}
			w.str(t)
		}
		w.raw(`]`)
	}
	w.optStr(`,"session_id":`, m.SessionID)
	w.optStr(`,"event_type":`, m.EventType)
	w.optStr(`,"code_language":`, m.CodeLanguage)
	w.optStr(`,"code_hash":`, m.CodeHash)
	w.raw(`,"usefulness":`)
	w.float(m.Usefulness)
	w.raw(`,"confidence":`)
	w.float(m.Confidence)
	w.raw(`,"access_count":`)
	w.b = strconv.AppendInt(w.b, m.AccessCount, 10)
	w.raw(`,"quality_score":`)
	w.float(m.QualityScore)
	w.raw(`,"consolidation_state":`)
	w.str(string(m.State))
	w.optStr(`,"superseded_by":`, string(m.SupersededBy))
	w.raw(`,"created_at":`)
	w.time(m.CreatedAt)
	w.raw(`,"updated_at":`)
	w.time(m.UpdatedAt)
	w.raw(`,"last_accessed":`)
	w.time(m.LastAccessed)
	w.raw(`,"last_retrieved":`)
	w.time(m.LastRetrieved)
	w.raw(`,"consolidated_at":`)
	w.time(m.ConsolidatedAt)
	w.raw(`,"version":`)
	w.stamp(m.Version)
	w.raw(`,"state_version":`)
	w.stamp(m.StateVersion)
	w.raw(`}`)
	return w.b, w.ok
}

// jsonWriter appends JSON; ok turns false at the first value it cannot
// write exactly as encoding/json would.
type jsonWriter struct {
	b  []byte
	ok bool
}

func (w *jsonWriter) raw(s string) { w.b = append(w.b, s...) }

// str writes s if encoding/json would write it verbatim in quotes:
// printable ASCII other than '"', '\\' and the HTML characters it escapes.
func (w *jsonWriter) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			w.ok = false
			return
		}
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

// optStr writes an omitempty string field.
func (w *jsonWriter) optStr(key, s string) {
	if s != "" {
		w.raw(key)
		w.str(s)
	}
}

// float writes f as encoding/json does (its floatEncoder, 64 bits).
func (w *jsonWriter) float(f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		w.ok = false
		return
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(w.b); n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
			w.b[n-2] = w.b[n-1]
			w.b = w.b[:n-1]
		}
	}
}

// time writes t as time.Time.MarshalJSON does, for the years and zone
// offsets it accepts (whole minutes only, to be safe).
func (w *jsonWriter) time(t time.Time) {
	if y := t.Year(); y < 0 || y > 9999 {
		w.ok = false
		return
	}
	if _, off := t.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		w.ok = false
		return
	}
	w.b = append(w.b, '"')
	w.b = t.AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

func (w *jsonWriter) stamp(s Stamp) {
	w.raw(`{"hlc":`)
	w.b = strconv.AppendUint(w.b, uint64(s.HLC), 10)
	w.raw(`,"device":`)
	w.str(s.Device)
	w.raw(`}`)
}

// parseMemoryJSON decodes b into m, which must be the zero Memory, exactly
// as json.Unmarshal would, for the payloads appendMemoryJSON writes: its
// keys in its order, no whitespace, strings without escapes (non-ASCII
// only as valid UTF-8), numbers as the field's type parses them, and times
// as time.Time.UnmarshalJSON reads them (it is called for each). A remote
// put's payload was decoded by encoding/json at a twelfth of a memory's
// share of a sync drain. ok is false, and m must be discarded, when b
// holds anything else (another key order, an escape, an embedding, an
// access map, a value the field rejects): the caller then decodes b with
// encoding/json, which also reports the error if there is one.
// FuzzParseMemoryJSON compares it with json.Unmarshal.
func parseMemoryJSON(b []byte, m *Memory) (ok bool) {
	r := jsonReader{b: b, ok: true}
	r.lit(`{"id":`)
	m.ID = ID(r.str())
	r.lit(`,"project_id":`)
	m.ProjectID = ID(r.str())
	r.lit(`,"content":`)
	m.Content = r.str()
	r.lit(`,"embedding_model":`)
	m.EmbeddingModel = r.str()
	r.lit(`,"memory_type":`)
	m.MemoryType = MemoryType(r.str())
	r.lit(`,"domain":`)
	m.Domain = r.str()
	r.lit(`,"tags":`)
	m.Tags = r.strs()
	m.SessionID = r.optStr(`,"session_id":`)
	m.EventType = r.optStr(`,"event_type":`)
	m.CodeLanguage = r.optStr(`,"code_language":`)
	m.CodeHash = r.optStr(`,"code_hash":`)
	r.lit(`,"usefulness":`)
	m.Usefulness = r.float()
	r.lit(`,"confidence":`)
	m.Confidence = r.float()
	r.lit(`,"access_count":`)
	m.AccessCount = r.int()
	r.lit(`,"quality_score":`)
	m.QualityScore = r.float()
	r.lit(`,"consolidation_state":`)
	m.State = State(r.str())
	m.SupersededBy = ID(r.optStr(`,"superseded_by":`))
	r.lit(`,"created_at":`)
	m.CreatedAt = r.time()
	r.lit(`,"updated_at":`)
	m.UpdatedAt = r.time()
	r.lit(`,"last_accessed":`)
	m.LastAccessed = r.time()
	r.lit(`,"last_retrieved":`)
	m.LastRetrieved = r.time()
	r.lit(`,"consolidated_at":`)
	m.ConsolidatedAt = r.time()
	r.lit(`,"version":`)
	m.Version = r.stamp()
	r.lit(`,"state_version":`)
	m.StateVersion = r.stamp()
	r.lit(`}`)
	return r.ok && r.i == len(r.b)
}

// jsonReader reads the JSON jsonWriter writes; ok turns false at the first
// byte it does not expect, and every later read returns a zero value.
type jsonReader struct {
	b  []byte
	i  int
	ok bool
}

// has reports whether the input continues with s.
func (r *jsonReader) has(s string) bool {
	return r.ok && len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s
}

// lit consumes s.
func (r *jsonReader) lit(s string) {
	if !r.has(s) {
		r.ok = false
		return
	}
	r.i += len(s)
}

// optStr reads an omitempty string field: key, then a string, if the
// input continues with key.
func (r *jsonReader) optStr(key string) string {
	if !r.has(key) {
		return ""
	}
	r.i += len(key)
	return r.str()
}

// quoted consumes a string without escapes and returns its contents. Its
// bytes are ones encoding/json keeps as they are: no control character,
// and non-ASCII only as valid UTF-8 (it replaces invalid bytes).
func (r *jsonReader) quoted() []byte {
	if !r.ok || r.i >= len(r.b) || r.b[r.i] != '"' {
		r.ok = false
		return nil
	}
	start, ascii := r.i+1, true
	for j := start; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			s := r.b[start:j]
			if !ascii && !utf8.Valid(s) {
				r.ok = false
				return nil
			}
			r.i = j + 1
			return s
		case c < 0x20 || c == '\\':
			r.ok = false
			return nil
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	r.ok = false
	return nil
}

func (r *jsonReader) str() string { return string(r.quoted()) }

// strs reads a []string as encoding/json decodes one into a nil slice:
// null stays nil, [] is empty but not nil.
func (r *jsonReader) strs() []string {
	if !r.ok {
		return nil
	}
	if len(r.b)-r.i >= 4 && string(r.b[r.i:r.i+4]) == "null" {
		r.i += 4
		return nil
	}
	r.lit(`[`)
	out := []string{}
	if r.has(`]`) {
		r.i++
		return out
	}
	for r.ok {
		out = append(out, r.str())
		if r.has(`,`) {
			r.i++
			continue
		}
		r.lit(`]`)
		break
	}
	return out
}

// number consumes a JSON number and returns its text; integer reports
// whether it has neither a fraction nor an exponent.
func (r *jsonReader) number() (s string, integer bool) {
	if !r.ok {
		return "", false
	}
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
		return "", false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			r.ok = false
			return "", false
		}
		integer = false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			r.ok = false
			return "", false
		}
		integer = false
	}
	s, r.i = string(b[r.i:i]), i
	return s, integer
}

// float reads a float64 as encoding/json does (strconv.ParseFloat).
func (r *jsonReader) float() float64 {
	s, _ := r.number()
	if !r.ok {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		r.ok = false
	}
	return f
}

// int reads an int64 as encoding/json does (strconv.ParseInt).
func (r *jsonReader) int() int64 {
	s, integer := r.number()
	if !r.ok || !integer {
		r.ok = false
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		r.ok = false
	}
	return n
}

// uint reads a uint64 as encoding/json does (strconv.ParseUint).
func (r *jsonReader) uint() uint64 {
	s, integer := r.number()
	if !r.ok || !integer {
		r.ok = false
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		r.ok = false
	}
	return n
}

// time reads a time.Time through its own UnmarshalJSON, given the quoted
// string as encoding/json would give it.
func (r *jsonReader) time() time.Time {
	start := r.i
	r.quoted()
	var t time.Time
	if r.ok && t.UnmarshalJSON(r.b[start:r.i]) != nil {
		r.ok = false
	}
	return t
}

func (r *jsonReader) stamp() Stamp {
	var s Stamp
	r.lit(`{"hlc":`)
	s.HLC = HLC(r.uint())
	r.lit(`,"device":`)
	s.Device = r.str()
	r.lit(`}`)
	return s
}
