package thauth

import (
	"errors"
	"fmt"
	"time"
)

// ErrorCode is the stable, machine-readable kind of an Error. The HTTP layer maps each code to
// one status in one table; nothing else decides statuses.
type ErrorCode string

// The error codes. They are part of the API (the optional "code" field of error bodies).
const (
	EInvalid         ErrorCode = "invalid"           // bad input: 400
	EUnauthenticated ErrorCode = "unauthenticated"   // no or bad credential: 401
	EForbidden       ErrorCode = "forbidden"         // credential lacks the right: 403
	ENotFound        ErrorCode = "not_found"         // no such thing (or not visible to the caller): 404
	EConflict        ErrorCode = "conflict"          // state conflict, e.g. duplicate name: 409
	ETooLarge        ErrorCode = "too_large"         // request body too large: 413
	EUnsupported     ErrorCode = "unsupported_media" // wrong content type: 415
	ERateLimited     ErrorCode = "rate_limited"      // 429
	EUnavailable     ErrorCode = "unavailable"       // not ready, store down, freshness not reached: 503
	EInternal        ErrorCode = "internal"          // anything unexpected: 500, details only in logs
)

// Problem is one thing wrong with an input document, located by its path in the document
// (for example "roles[2].permissions[0].feature").
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error is the one error type of Thauth. Message is safe to show to the caller; Err, when set,
// is the internal cause and is only ever logged.
type Error struct {
	Code     ErrorCode
	Message  string
	Problems []Problem // for EInvalid documents: every problem found
	// RetryAfter, for ERateLimited and EUnavailable, says when a retry may succeed (the
	// HTTP layer sends it as Retry-After); 0 means unknown.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted, caller-safe message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps an unexpected error as EInternal; the cause is kept for logs only.
func Internal(err error, format string, args ...any) *Error {
	return &Error{Code: EInternal, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCodeOf returns the code of the first *Error in err's chain, or EInternal when there is
// none (an error we did not classify is an internal one).
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the caller-safe message of err: the message of the first *Error in its
// chain, or a generic text for anything unclassified (internal details are never shown).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal {
		return e.Message
	}
	return "internal error"
}

// IsNotFound reports whether err is (or wraps) an ENotFound error.
func IsNotFound(err error) bool { return ErrorCodeOf(err) == ENotFound }
