package thauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Problem is one thing wrong with a configuration document or request, located by its path
// in the document (for example "roles[2].permissions[0].feature").
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error is returned by every method when the server answered with a non-success status.
// Use errors.Is with the class sentinels (ErrUnauthorized, ErrBadRequest, ...) to tell the
// kinds apart, or errors.As to read the details.
type Error struct {
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// Code is the machine-readable error code the server sent ("invalid", "forbidden", ...),
	// or "" when it sent none (a 401 never carries one).
	Code string
	// Message is the server's explanation, safe to show to a person.
	Message string
	// Problems lists every problem of a rejected document (ApplyConfig), if any.
	Problems []Problem
	// RetryAfter is how long the server asked to wait before retrying (429, 503), or 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("thauth: ")
	if s := statusClass(e.StatusCode); s != nil {
		b.WriteString(string(*s))
	} else {
		b.WriteString("unexpected status " + strconv.Itoa(e.StatusCode))
	}
	if e.Message != "" && e.Message != string(classUnauthorized) {
		b.WriteString(": " + e.Message)
	}
	if n := len(e.Problems); n > 0 {
		fmt.Fprintf(&b, " (%d problem", n)
		if n > 1 {
			b.WriteString("s")
		}
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether e belongs to the class target (one of the Err* sentinels), so that
// errors.Is(err, ErrUnauthorized) works on any *Error with status 401.
func (e *Error) Is(target error) bool {
	c, ok := target.(errorClass)
	if !ok {
		return false
	}
	if c == classServer {
		return e.StatusCode >= 500 && e.StatusCode <= 599
	}
	s := statusClass(e.StatusCode)
	return s != nil && *s == c
}

// errorClass is the type of the sentinels: a class of *Error, matched by (*Error).Is.
type errorClass string

func (c errorClass) Error() string { return "thauth: " + string(c) }

const (
	classUnauthorized errorClass = "unauthorized"
	classForbidden    errorClass = "forbidden"
	classBadRequest   errorClass = "bad request"
	classNotFound     errorClass = "not found"
	classConflict     errorClass = "conflict"
	classRateLimited  errorClass = "rate limited"
	classUnavailable  errorClass = "unavailable"
	classServer       errorClass = "server error"
)

// The error classes. An *Error matches exactly one of them with errors.Is, except that a 503
// matches both ErrUnavailable and ErrServer.
var (
	// ErrUnauthorized: 401, the key is missing, malformed, unknown, revoked or expired (the
	// server does not say which).
	ErrUnauthorized error = classUnauthorized
	// ErrForbidden: 403, the key is valid but lacks the scope the call needs.
	ErrForbidden error = classForbidden
	// ErrBadRequest: 400, 413 (body too large) or 415 (content type): the request was rejected
	// and retrying it unchanged will not help. Problems may list what was wrong.
	ErrBadRequest error = classBadRequest
	// ErrNotFound: 404, no such project, key or route (or not visible to this key).
	ErrNotFound error = classNotFound
	// ErrConflict: 409, the write conflicts with the stored state.
	ErrConflict error = classConflict
	// ErrRateLimited: 429, rate limited or over quota; RetryAfter says how long to wait.
	ErrRateLimited error = classRateLimited
	// ErrUnavailable: 503, the server is not ready (also matches ErrServer).
	ErrUnavailable error = classUnavailable
	// ErrServer: any 5xx status.
	ErrServer error = classServer
)

func statusClass(status int) *errorClass {
	var c errorClass
	switch {
	case status == http.StatusUnauthorized:
		c = classUnauthorized
	case status == http.StatusForbidden:
		c = classForbidden
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge,
		status == http.StatusUnsupportedMediaType:
		c = classBadRequest
	case status == http.StatusNotFound:
		c = classNotFound
	case status == http.StatusConflict:
		c = classConflict
	case status == http.StatusTooManyRequests:
		c = classRateLimited
	case status == http.StatusServiceUnavailable:
		c = classUnavailable
	case status >= 500 && status <= 599:
		c = classServer
	default:
		return nil
	}
	return &c
}

// errorFromResponse builds the *Error of a non-success response from its status, headers
// and (already read, possibly truncated) body.
func errorFromResponse(status int, h http.Header, body []byte, now time.Time) *Error {
	e := &Error{StatusCode: status, RetryAfter: parseRetryAfter(h.Get("Retry-After"), now)}
	var eb struct {
		Error    string    `json:"error"`
		Message  string    `json:"message"`
		Code     string    `json:"code"`
		Problems []Problem `json:"problems"`
		Reason   string    `json:"reason"` // the fail-closed check answer {"allowed": false, "reason": "error"}
	}
	trimmed := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &eb) == nil {
		e.Code = eb.Code
		e.Problems = eb.Problems
		switch {
		case eb.Error != "":
			e.Message = eb.Error
		case eb.Message != "":
			e.Message = eb.Message
		case eb.Reason != "":
			e.Message = eb.Reason
		}
	} else if len(trimmed) <= 200 && !strings.ContainsAny(trimmed, "<\n") {
		// Plain-text bodies such as the 401 "unauthorized".
		e.Message = trimmed
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(status))
	}
	return e
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
