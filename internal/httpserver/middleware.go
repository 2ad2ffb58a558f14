package httpserver

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
)

// respWriter wraps the ResponseWriter of every request. It records what the access log needs
// (status, key id), carries the request id, and turns the ServeMux's plain-text 404 and 405
// answers into JSON errors. It is handed down instead of context values, which would cost an
// allocation per value on the hot path.
type respWriter struct {
	http.ResponseWriter
	req     *http.Request
	status  int
	keyID   string
	swallow bool      // the mux's own error body is being replaced: drop its writes
	account bool      // keyID is the id of a console request's account (setAccountID)
	idv     [1]string // backing array of the X-Request-Id header values (saves an allocation)
}

func (w *respWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code < 200 {
		w.ResponseWriter.WriteHeader(code) // 1xx: informational, not the final status
		return
	}
	w.status = code
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && w.req.Pattern == "" {
		// No route matched: this is the mux's NotFound or MethodNotAllowed handler, about to
		// write "404 page not found". Answer with the JSON error instead.
		h := w.Header()
		h.Del("Content-Length")
		h["Content-Type"] = hdrJSON
		h["X-Content-Type-Options"] = hdrNosniff
		h["Cache-Control"] = hdrNoStore
		w.ResponseWriter.WriteHeader(code)
		body := []byte(`{"error":"not found","code":"not_found"}`)
		if code == http.StatusMethodNotAllowed {
			body = appendJSONString([]byte(`{"error":`), "method not allowed (allowed: "+h.Get("Allow")+")")
			body = append(body, '}')
		}
		_, _ = w.ResponseWriter.Write(body)
		w.swallow = true
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush, deadlines).
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setKeyID records the authenticated key for the access log.
func setKeyID(w http.ResponseWriter, id string) {
	if rw, ok := w.(*respWriter); ok {
		rw.keyID = id
	}
}

// requestID returns the id of the request, set by ServeHTTP on the request's own header so
// that handlers can log it without a context value.
func requestID(r *http.Request) string {
	if v := r.Header["X-Request-Id"]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// validRequestID accepts a client's X-Request-Id when it is 1–64 characters of
// [A-Za-z0-9_-], so that it is safe in logs and headers.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ServeHTTP is the outermost layer, shared by every route: request id, panic recovery,
// JSON 404/405 and the access log. Route-specific stacks (machine API; later the dashboard)
// are applied per route in routes.go.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := ""
	if v := r.Header["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		id = v[0]
	} else {
		id = string(appendUUIDv7(make([]byte, 0, 36), start, s.rand))
	}
	if len(s.trustedProxies) > 0 {
		s.useForwardedFor(r)
	}
	var span trace.Span // observability: nil unless tracing is on
	if s.tracer != nil {
		r, span = s.startSpan(r)
	}
	rw := &respWriter{ResponseWriter: w, req: r}
	rw.idv[0] = id
	idv := rw.idv[:]
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header["X-Request-Id"] = idv // handlers read it back with requestID(r)
	w.Header()["X-Request-Id"] = idv

	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
				slog.String("request_id", id), slog.String("route", r.Pattern),
				slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
			if rw.status == 0 {
				h := w.Header()
				h["Content-Type"] = hdrJSON
				h["X-Content-Type-Options"] = hdrNosniff
				h["Cache-Control"] = hdrNoStore
				rw.WriteHeader(http.StatusInternalServerError)
				_, _ = rw.Write([]byte(`{"error":"internal error","code":"internal"}`))
			}
		}
		var end time.Time // observability: metrics and span, when on
		if s.httpObs != nil || span != nil {
			end = s.observe(r, rw, start, span)
		}
		s.accessLog(r, rw, start, end)
	}()
	s.mux.ServeHTTP(rw, r)
}

// accessLog writes one line per request. It never logs the Authorization header, the token
// or the body; key_id identifies the caller. It goes to the handler directly with no
// source position: slog.Logger would walk the stack for one on every request. end is the
// time observe took, or zero.
func (s *server) accessLog(r *http.Request, rw *respWriter, start, end time.Time) {
	h := s.log.Handler()
	ctx := r.Context()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if end.IsZero() {
		end = time.Now()
	}
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	rec := slog.NewRecord(end, slog.LevelInfo, "http request", 0)
	rec.AddAttrs(
		slog.String("request_id", rw.idv[0]),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Duration("duration", end.Sub(start)),
	)
	if rw.keyID != "" && !rw.account {
		rec.AddAttrs(slog.String("key_id", rw.keyID))
	}
	if rw.keyID != "" && rw.account {
		rec.AddAttrs(slog.String("account_id", rw.keyID))
	}
	_ = h.Handle(ctx, rec)
}

// apiHeaders sets the headers every machine-API response carries.
func apiHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = hdrNosniff
		h["Cache-Control"] = hdrNoStore
		next.ServeHTTP(w, r)
	})
}

// keyHandler is a handler that runs after bearer-key authentication.
type keyHandler func(w http.ResponseWriter, r *http.Request, p engine.Principal)

var (
	errNotReady      = thauth.Errorf(thauth.EUnavailable, "not ready: the decision engine is still loading")
	errProjectAbsent = thauth.Errorf(thauth.ENotFound, "project not found")
)

// bearerToken extracts the token of "Authorization: Bearer <token>" (scheme
// case-insensitive). More than one Authorization header is refused as ambiguous.
func bearerToken(r *http.Request) (string, bool) {
	v := r.Header["Authorization"]
	if len(v) != 1 {
		return "", false
	}
	const scheme = "bearer "
	a := v[0]
	if len(a) <= len(scheme) || !strings.EqualFold(a[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(a[len(scheme):])
	return tok, tok != ""
}

// requireKey authenticates the bearer key and requires scope. Every kind of bad key —
// missing, malformed, wrong checksum, unknown, revoked, expired — gets the same 401; a
// valid key without the scope gets 403. Rate limits and abuse blocking apply around the
// authentication (limits.go): a blocked client IP gets 429 before its key is looked at,
// failures past the IP's budget get 429 instead of 401, and a key past its own limit 429.
func (s *server) requireKey(scope string, next keyHandler) http.Handler {
	forbidden := thauth.Errorf(thauth.EForbidden, "this API key lacks the %s scope", scope)
	perKey := s.limiter != nil && !s.limits.PerKey.IsZero()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.eng.Ready() {
			s.writeError(w, r, errNotReady)
			return
		}
		if s.blockedIP(w, r) {
			return
		}
		tok, ok := bearerToken(r)
		if !ok {
			s.authFailed(w, r, false, engine.KeyCheck{})
			return
		}
		p, c := s.eng.AuthenticateDetail(tok)
		if c.Status != engine.KeyValid {
			s.authFailed(w, r, true, c)
			return
		}
		setKeyID(w, p.KeyID)
		if perKey && !s.allowKey(w, r, &p) {
			return
		}
		if !p.HasScope(scope) {
			s.writeError(w, r, forbidden)
			return
		}
		next(w, r, p)
	})
}

// ownProject confines a management route to the key's own project: any other {project}
// is "project not found", whether or not it exists, so that keys learn nothing about other
// projects.
func (s *server) ownProject(next keyHandler) keyHandler {
	return func(w http.ResponseWriter, r *http.Request, p engine.Principal) {
		if r.PathValue("project") != p.ProjectID {
			s.writeError(w, r, errProjectAbsent)
			return
		}
		next(w, r, p)
	}
}

// withTimeout gives the request's context a deadline d from now.
func withTimeout(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		// The response must still be writable when the handler uses all of d: move this
		// request's write deadline (the server's WriteTimeout otherwise) to just after it.
		// Writers that do not support deadlines (tests' recorders) are left as they are.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + 5*time.Second))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
