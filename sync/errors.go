package edgesync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/athena-edge/athena-edge/core"
	"github.com/coder/websocket"
)

// Code is a wire error code. Codes are stable: a code, once shipped, keeps
// its number and meaning, and new codes are only ever appended. Receivers
// treat an unknown code as CodeInternal.
type Code uint16

// Wire error codes (docs/SYNC.md, "Error codes"). Append only.
const (
	CodeBadFrame           Code = 1  // the frame could not be decoded, or a field is out of range
	CodeUnsupportedVersion Code = 2  // no protocol version in common
	CodeUnauthorized       Code = 3  // missing, invalid or revoked credentials
	CodeForbidden          Code = 4  // authenticated, but not allowed (origin, device, project)
	CodeRateLimited        Code = 5  // the device's token bucket is empty; retry after RetryAfter
	CodeSeqGap             Code = 6  // a pushed batch skips sequence numbers; resend from LastSeq+1
	CodeTooLarge           Code = 7  // a batch has too many changes or bytes
	CodeUnknownType        Code = 8  // unknown message type
	CodeInternal           Code = 9  // the server failed; retry
	CodeShuttingDown       Code = 10 // the server is going away; reconnect later
	CodeUnexpected         Code = 11 // a valid message at the wrong time (e.g. push before hello)
	CodeDeviceMismatch     Code = 12 // the token's device is not the edge database's device
	CodeResyncRequired     Code = 13 // the device is past the tombstone horizon: it must start over from a fresh database
)

var codeNames = map[Code]string{
	CodeBadFrame: "bad_frame", CodeUnsupportedVersion: "unsupported_version", CodeUnauthorized: "unauthorized",
	CodeForbidden: "forbidden", CodeRateLimited: "rate_limited", CodeSeqGap: "seq_gap", CodeTooLarge: "too_large",
	CodeUnknownType: "unknown_type", CodeInternal: "internal", CodeShuttingDown: "shutting_down",
	CodeUnexpected: "unexpected", CodeDeviceMismatch: "device_mismatch", CodeResyncRequired: "resync_required",
}

func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return "code_" + strconv.Itoa(int(c))
}

// Retryable reports whether an operation failing with a wire error of this
// code may succeed if retried unchanged (after a delay or a reconnect).
func (c Code) Retryable() bool {
	switch c {
	case CodeRateLimited, CodeSeqGap, CodeInternal, CodeShuttingDown:
		return true
	}
	return false
}

// Sentinel errors of the package. Wire errors (*Error) match the one for
// their code with errors.Is, and also the core sentinel they stand for.
var (
	// ErrUnauthorized: missing, invalid, expired or revoked token or ticket.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: cross-origin handshake, or a device/project the
	// credentials do not cover.
	ErrForbidden = errors.New("forbidden")
	// ErrRateLimited: the server throttled the device or refused a
	// connection over its caps. Retryable.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable: the server is shutting down or full. Retryable.
	ErrUnavailable = errors.New("server unavailable")
	// ErrProtocol: a malformed or unexpected frame, or no common version.
	ErrProtocol = errors.New("protocol error")
	// ErrTooLarge: a message over the negotiated limits.
	ErrTooLarge = errors.New("message too large")
	// ErrDeviceMismatch: the token belongs to another device than the edge
	// database's (core.Config.Device).
	ErrDeviceMismatch = errors.New("token device does not match the database device")
	// ErrResyncRequired: the device has not caught up with the server
	// within the tombstone horizon; its pushes are refused and it must
	// start over from a fresh database (docs/SYNC.md, "Tombstone horizon").
	ErrResyncRequired = errors.New("past the tombstone horizon: re-sync from a fresh database")
	// ErrClosed: the Server was shut down.
	ErrClosed = errors.New("edgesync: server closed")
)

// Error is an error frame received from (or sent to) the peer. It matches
// the package sentinel of its Code and, where one exists, the core
// sentinel (CodeSeqGap matches core.ErrSeqGap; CodeBadFrame matches
// core.ErrInvalid).
type Error struct {
	Code       Code
	Message    string
	Batch      uint64        // the push batch it answers, if any
	Req        uint64        // the pull request it answers, if any
	LastSeq    uint64        // CodeSeqGap: the last sequence number the server holds for the device
	RetryAfter time.Duration // CodeRateLimited: how long to wait
}

func (e *Error) Error() string {
	return fmt.Sprintf("edgesync: server error %d (%s): %s", e.Code, e.Code, e.Message)
}

// Is matches the sentinel for the code.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case CodeUnauthorized:
		return target == ErrUnauthorized
	case CodeForbidden:
		return target == ErrForbidden
	case CodeRateLimited:
		return target == ErrRateLimited
	case CodeShuttingDown:
		return target == ErrUnavailable
	case CodeSeqGap:
		return target == core.ErrSeqGap
	case CodeBadFrame:
		return target == ErrProtocol || target == core.ErrInvalid
	case CodeUnsupportedVersion, CodeUnknownType, CodeUnexpected:
		return target == ErrProtocol
	case CodeTooLarge:
		return target == ErrTooLarge
	case CodeDeviceMismatch:
		return target == ErrDeviceMismatch
	case CodeResyncRequired:
		return target == ErrResyncRequired
	}
	return false
}

// Retryable reports whether err is transient: retrying the same sync (after
// a backoff, on a new connection) may succeed. Network failures, dropped
// connections, timeouts of a single step, server restarts, rate limits and
// connection caps are retryable; bad credentials, forbidden origins,
// protocol violations and the caller's own cancellation are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var we *Error
	if errors.As(err, &we) {
		return we.Code.Retryable()
	}
	if certificateError(err) {
		return false // an untrusted or mismatched certificate does not fix itself
	}
	switch {
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrForbidden), errors.Is(err, ErrProtocol),
		errors.Is(err, ErrDeviceMismatch), errors.Is(err, ErrTooLarge), errors.Is(err, core.ErrInvalid),
		errors.Is(err, ErrResyncRequired):
		return false
	case errors.Is(err, ErrRateLimited), errors.Is(err, ErrUnavailable):
		return true
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusPolicyViolation, websocket.StatusMessageTooBig, websocket.StatusUnsupportedData,
		websocket.StatusInvalidFramePayloadData:
		return false
	case -1:
	default:
		return true // going away, abnormal closure, internal error...
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errConnLost) {
		return true
	}
	return false
}

func certificateError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// errConnLost marks a session that ended without an explicit error.
var errConnLost = errors.New("connection lost")
