package core

import (
	"math"
	"strconv"
	"time"
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
