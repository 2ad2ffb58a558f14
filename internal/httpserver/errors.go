package httpserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/thauth/thauth"
)

// statusByCode is the one table that maps error codes to HTTP statuses. Nothing else in the
// server decides the status of an error.
var statusByCode = map[thauth.ErrorCode]int{
	thauth.EInvalid:         http.StatusBadRequest,
	thauth.EUnauthenticated: http.StatusUnauthorized,
	thauth.EForbidden:       http.StatusForbidden,
	thauth.ENotFound:        http.StatusNotFound,
	thauth.EConflict:        http.StatusConflict,
	thauth.ETooLarge:        http.StatusRequestEntityTooLarge,
	thauth.EUnsupported:     http.StatusUnsupportedMediaType,
	thauth.ERateLimited:     http.StatusTooManyRequests,
	thauth.EUnavailable:     http.StatusServiceUnavailable,
	thauth.EInternal:        http.StatusInternalServerError,
}

// statusOf returns the HTTP status for an error code; unknown codes are internal errors.
func statusOf(code thauth.ErrorCode) int {
	if st, ok := statusByCode[code]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON body of every error response except 401 (which is plain text).
type errorBody struct {
	Error    string            `json:"error"`
	Code     thauth.ErrorCode  `json:"code,omitempty"`
	Problems []thauth.Problem  `json:"problems,omitempty"`
	Checks   map[string]string `json:"checks,omitempty"` // /readyz only
}

// Shared, never-mutated header values (assigning them avoids an allocation per response).
var (
	hdrJSON      = []string{"application/json"}
	hdrTextPlain = []string{"text/plain; charset=utf-8"}
	hdrYAML      = []string{"application/yaml"}
	hdrNosniff   = []string{"nosniff"}
	hdrNoStore   = []string{"no-store"}
	hdrBearer    = []string{"Bearer"}
	hdrClose     = []string{"close"}
	hdrRetry     = []string{"1"}
)

var unauthorizedBody = []byte("unauthorized")

// writeUnauthorized answers 401 with the plain-text body "unauthorized", the same bytes for
// every kind of bad credential so that keys cannot be probed (spec §4).
func writeUnauthorized(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = hdrTextPlain
	h["Www-Authenticate"] = hdrBearer
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(unauthorizedBody)
}

// writeError answers err with the status of its code and {"error", "code", "problems"?}.
// Internal errors are logged with the request id and answered with a generic message; the
// cause never reaches the client.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := thauth.ErrorCodeOf(err)
	if code == thauth.EInternal && errors.Is(err, context.DeadlineExceeded) && r.Context().Err() != nil {
		// The request's deadline (see withTimeout) ran out while the store worked: the
		// database is too slow or unreachable, whatever error the driver made of it.
		err = &thauth.Error{Code: thauth.EUnavailable, Message: "database unavailable: the request timed out", Err: err}
		code = thauth.EUnavailable
	}
	if code == thauth.EUnauthenticated {
		writeUnauthorized(w)
		return
	}
	status := statusOf(code)
	body := errorBody{Error: thauth.ErrorMessage(err), Code: code}
	var te *thauth.Error
	if errors.As(err, &te) {
		body.Problems = te.Problems
	}
	switch {
	case status >= 500 && code != thauth.EUnavailable:
		body.Code = thauth.EInternal
		body.Error = "internal error"
		body.Problems = nil
		s.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("request_id", requestID(r)), slog.String("route", r.Pattern), slog.Any("err", err))
	case code == thauth.EUnavailable:
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "unavailable",
			slog.String("request_id", requestID(r)), slog.String("route", r.Pattern), slog.Any("err", err))
	case code == thauth.ERateLimited:
		w.Header()["Retry-After"] = hdrRetry
		if te != nil && te.RetryAfter > 0 {
			w.Header()["Retry-After"] = []string{strconv.FormatInt(int64((te.RetryAfter+time.Second-1)/time.Second), 10)}
		}
	case code == thauth.ETooLarge:
		// The rest of the body is not read; do not let the connection be reused for it.
		w.Header()["Connection"] = hdrClose
	}
	s.writeJSON(w, status, body)
}

// errorf is a shorthand for a caller-safe *thauth.Error.
func errorf(code thauth.ErrorCode, format string, args ...any) error {
	return thauth.Errorf(code, format, args...)
}
