package core

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is; stores translate
// their driver errors into these at the boundary and keep the cause wrapped.
var (
	// ErrNotFound reports that the requested object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a uniqueness conflict, such as a project name or
	// path that is already taken, or an ID reused with different content.
	ErrConflict = errors.New("conflict")
	// ErrInvalid reports input that fails validation. The error is usually
	// a *FieldError naming the field.
	ErrInvalid = errors.New("invalid input")
	// ErrInvalidTransition reports a consolidation state change that the
	// state machine does not allow. It also matches ErrInvalid.
	ErrInvalidTransition = fmt.Errorf("%w: invalid state transition", ErrInvalid)
	// ErrDimMismatch reports an embedding whose dimension or model differs
	// from the project's. It also matches ErrInvalid.
	ErrDimMismatch = fmt.Errorf("%w: embedding dimension or model mismatch", ErrInvalid)
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("store closed")
	// ErrSeqGap reports a remote change whose per-device sequence number
	// skips ahead of the last one applied from that device.
	ErrSeqGap = errors.New("sequence gap")
)

// FieldError is a validation error that names the offending field. It
// matches ErrInvalid (and the more specific sentinel in Err, if any) with
// errors.Is.
type FieldError struct {
	Field  string // the field, e.g. "embedding" or "tags[3]"
	Reason string // what is wrong, for people
	Err    error  // the sentinel: ErrInvalid, ErrDimMismatch or ErrInvalidTransition
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns the sentinel the error matches.
func (e *FieldError) Unwrap() error {
	if e.Err == nil {
		return ErrInvalid
	}
	return e.Err
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

// TransitionError reports a state change the state machine forbids. It
// matches ErrInvalidTransition and ErrInvalid.
type TransitionError struct {
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("consolidation_state: transition %s -> %s is not allowed", e.From, e.To)
}

// Unwrap returns ErrInvalidTransition.
func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }
