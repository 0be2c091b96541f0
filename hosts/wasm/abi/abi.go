package abi

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/athena-edge/athena-edge/core"
)

// Version is the ABI version the module's abi_version export returns. It
// changes when an export's signature or the envelope changes; new ops and
// new optional fields do not change it.
const Version = 1

// Names of the module's exports.
const (
	ExportMalloc     = "malloc"      // (size i32) -> ptr i32
	ExportFree       = "free"        // (ptr i32)
	ExportCall       = "call"        // (ptr i32, len i32) -> ptr<<32|len i64
	ExportABIVersion = "abi_version" // () -> i32
	StartFunction    = "_initialize" // the reactor's initializer (Go runtime and package init)
)

// Error codes of a response's "error" object. The list only grows.
const (
	CodeBadRequest        = "bad_request"        // the request is not valid JSON for the op, or the op is unknown
	CodeInvalid           = "invalid"            // core.ErrInvalid
	CodeInvalidTransition = "invalid_transition" // core.ErrInvalidTransition
	CodeDimMismatch       = "dim_mismatch"       // core.ErrDimMismatch
	CodeNotFound          = "not_found"          // core.ErrNotFound
	CodeConflict          = "conflict"           // core.ErrConflict
	CodeInternal          = "internal"           // anything else, including a recovered panic
)

// ErrBadRequest is what [Error] unwraps to for [CodeBadRequest] and
// [CodeInternal].
var ErrBadRequest = errors.New("abi: bad request")

// Request is the envelope of every call: the op and its arguments.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is the envelope of every answer: exactly one of Result and
// Error is set.
type Response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Error is a failed op, as carried in [Response]. Field and Reason are set
// when core returned a [*core.FieldError]. It unwraps to the core sentinel
// its Code names, so callers on the host side branch with errors.Is exactly
// as they would on core's own error.
type Error struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the core sentinel of e.Code.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeInvalid:
		return core.ErrInvalid
	case CodeInvalidTransition:
		return core.ErrInvalidTransition
	case CodeDimMismatch:
		return core.ErrDimMismatch
	case CodeNotFound:
		return core.ErrNotFound
	case CodeConflict:
		return core.ErrConflict
	}
	return ErrBadRequest
}

// DecodeResponse decodes a response envelope. It returns the op's *Error
// if the op failed, and otherwise unmarshals the result into result (which
// may be nil to discard it).
func DecodeResponse(resp []byte, result any) error {
	var r Response
	if err := json.Unmarshal(resp, &r); err != nil {
		return fmt.Errorf("abi: decode response: %w", err)
	}
	if r.Error != nil {
		return r.Error
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, result); err != nil {
		return fmt.Errorf("abi: decode result: %w", err)
	}
	return nil
}

// EncodeRequest returns the request envelope for op with args (nil for
// none).
func EncodeRequest(op string, args any) ([]byte, error) {
	req := Request{Op: op}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return nil, fmt.Errorf("abi: encode %s args: %w", op, err)
		}
		req.Args = b
	}
	return json.Marshal(req)
}

func toError(err error) *Error {
	e := &Error{Code: CodeInternal, Message: err.Error()}
	switch {
	case errors.Is(err, ErrBadRequest):
		e.Code = CodeBadRequest
	case errors.Is(err, core.ErrInvalidTransition):
		e.Code = CodeInvalidTransition
	case errors.Is(err, core.ErrDimMismatch):
		e.Code = CodeDimMismatch
	case errors.Is(err, core.ErrInvalid):
		e.Code = CodeInvalid
	case errors.Is(err, core.ErrNotFound):
		e.Code = CodeNotFound
	case errors.Is(err, core.ErrConflict):
		e.Code = CodeConflict
	}
	var fe *core.FieldError
	if errors.As(err, &fe) {
		e.Field, e.Reason = fe.Field, fe.Reason
	}
	return e
}

// Vector is an embedding on the wire. It decodes from a JSON array of
// numbers or from a string holding the base64 (standard encoding) of
// little-endian IEEE 754 float32s; the string form can carry NaN and ±Inf,
// which JSON numbers cannot. It encodes as an array when every element is
// finite and as the base64 string otherwise.
type Vector []float32

// UnmarshalJSON implements json.Unmarshaler.
func (v *Vector) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("vector: %w", err)
		}
		if len(raw)%4 != 0 {
			return fmt.Errorf("vector: %d bytes is not a whole number of float32s", len(raw))
		}
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		*v = out
		return nil
	}
	var f []float32
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*v = f
	return nil
}

// MarshalJSON implements json.Marshaler.
func (v Vector) MarshalJSON() ([]byte, error) {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return json.Marshal(EncodeVector(v))
		}
	}
	return json.Marshal([]float32(v))
}

// EncodeVector returns the base64 wire form of v (see [Vector]).
func EncodeVector(v []float32) string {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// Float is a float64 result. Finite values encode as JSON numbers, exactly
// as encoding/json formats a float64; NaN, +Inf and -Inf, which JSON
// cannot carry, encode as the strings "NaN", "+Inf" and "-Inf". NaN payload
// bits are not preserved: WebAssembly does not define them.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	x := float64(f)
	switch {
	case math.IsNaN(x):
		return []byte(`"NaN"`), nil
	case math.IsInf(x, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(x, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(x)
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return err
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		*f = Float(x)
		return nil
	}
	var x float64
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*f = Float(x)
	return nil
}

// Text is a string on the wire that may hold invalid UTF-8. It decodes from
// a JSON string, or from an object {"base64": "..."} holding the bytes in
// standard base64; JSON strings cannot carry invalid UTF-8 (encoding/json
// replaces it with U+FFFD). It encodes as a JSON string when it is valid
// UTF-8 and as the base64 object otherwise.
type Text string

// MarshalJSON implements json.Marshaler.
func (t Text) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(t)) {
		return json.Marshal(string(t))
	}
	return json.Marshal(struct {
		Base64 string `json:"base64"`
	}{base64.StdEncoding.EncodeToString([]byte(t))})
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Text) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			Base64 string `json:"base64"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(o.Base64)
		if err != nil {
			return fmt.Errorf("text: %w", err)
		}
		*t = Text(raw)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*t = Text(s)
	return nil
}
