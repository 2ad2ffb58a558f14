// Package resendtest is a fake of Resend's email sending API for tests: an HTTP server on
// loopback that follows the published contract of POST /emails (see package resend) closely
// enough to test a client against it — authentication answers, the User-Agent requirement,
// required fields, idempotency keys, rate-limit and server-error answers — and records what
// it accepted. It sends nothing.
package resendtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Received is one email the fake accepted.
type Received struct {
	ID             string
	From           string
	To             []string
	ReplyTo        []string
	Subject        string
	HTML           string
	Text           string
	IdempotencyKey string
	UserAgent      string
	At             time.Time
}

// Server is a fake Resend API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give the client (Options.BaseURL).
	URL string
	// APIKey is the only key the fake accepts.
	APIKey string

	srv *httptest.Server

	mu       sync.Mutex
	now      func() time.Time
	emails   []Received
	requests int
	idem     map[string]idemEntry
	fails    []failure
}

type idemEntry struct {
	bodyHash string
	id       string
	at       time.Time
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// idempotencyWindow is how long Resend remembers an idempotency key.
const idempotencyWindow = 24 * time.Hour

// New starts a fake accepting apiKey; it is closed when t's test ends.
func New(t testing.TB, apiKey string) *Server {
	t.Helper()
	s := &Server{APIKey: apiKey, now: time.Now, idem: map[string]idemEntry{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Close stops the server (tests of network failures); it is also closed at the test's end.
func (s *Server) Close() { s.srv.Close() }

// SetNow sets the fake's clock (for the 24-hour idempotency window).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// FailNext makes the next n authenticated requests fail with status: 429 answers
// rate_limit_exceeded with retry-after (when retryAfter > 0, in whole seconds, at least 1)
// and ratelimit-* headers; 5xx answers internal_server_error. Failures queue up in order.
func (s *Server) FailNext(n, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fails = append(s.fails, failure{status: status, retryAfter: retryAfter})
	}
}

// Emails returns the emails accepted so far, in order.
func (s *Server) Emails() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.emails...)
}

// Requests returns how many requests reached the server.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// body is the accepted request body; "to" and "reply_to" take a string or an array.
type body struct {
	From    string      `json:"from"`
	To      stringOrArr `json:"to"`
	Subject string      `json:"subject"`
	HTML    string      `json:"html"`
	Text    string      `json:"text"`
	ReplyTo stringOrArr `json:"reply_to"`
}

type stringOrArr []string

func (s *stringOrArr) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++

	// Requests without a User-Agent are refused in front of the API, not by it: a 403
	// that is not Resend's JSON.
	if r.Header.Get("User-Agent") == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "error code: 1010")
		return
	}
	if r.URL.Path != "/emails" {
		s.fail(w, http.StatusNotFound, "not_found", "The requested endpoint does not exist.")
		return
	}
	if r.Method != http.MethodPost {
		s.fail(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method is not allowed for the requested path.")
		return
	}
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		s.fail(w, http.StatusUnauthorized, "missing_api_key", "Missing API key in the authorization header.")
		return
	}
	if token != s.APIKey {
		s.fail(w, http.StatusForbidden, "invalid_api_key", "API key is invalid.")
		return
	}
	if len(s.fails) > 0 {
		f := s.fails[0]
		s.fails = s.fails[1:]
		if f.status == http.StatusTooManyRequests {
			secs := int((f.retryAfter + time.Second - 1) / time.Second)
			if f.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			}
			w.Header().Set("Ratelimit-Limit", "2")
			w.Header().Set("Ratelimit-Remaining", "0")
			w.Header().Set("Ratelimit-Reset", strconv.Itoa(max(secs, 1)))
			s.fail(w, f.status, "rate_limit_exceeded", "Too many requests. Please limit the number of requests per second. Or contact support to increase rate limit.")
			return
		}
		s.fail(w, f.status, "internal_server_error", "An unexpected error occurred.")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		s.fail(w, http.StatusBadRequest, "validation_error", "The request body must be JSON (Content-Type: application/json).")
		return
	}
	key, hasKey := "", false
	if vs, ok := r.Header["Idempotency-Key"]; ok {
		key, hasKey = vs[0], true
		if len(key) < 1 || len(key) > 256 {
			s.fail(w, http.StatusBadRequest, "invalid_idempotency_key", "The key must be between 1-256 chars.")
			return
		}
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.fail(w, http.StatusBadRequest, "validation_error", "Could not read the request body.")
		return
	}
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		s.fail(w, http.StatusBadRequest, "validation_error", "The request body is not valid JSON.")
		return
	}
	if msg := validate(&b); msg != "" {
		s.fail(w, http.StatusUnprocessableEntity, "validation_error", msg)
		return
	}

	now := s.now()
	if hasKey {
		// "Same payload" is the decoded body, so formatting differences do not count.
		canon, _ := json.Marshal(b)
		sum := sha256.Sum256(canon)
		h := hex.EncodeToString(sum[:])
		if e, ok := s.idem[key]; ok && now.Sub(e.at) < idempotencyWindow {
			if e.bodyHash != h {
				s.fail(w, http.StatusConflict, "invalid_idempotent_request", "Same idempotency key used with a different request payload.")
				return
			}
			s.ok(w, e.id)
			return
		}
		id := newID()
		s.idem[key] = idemEntry{bodyHash: h, id: id, at: now}
		s.record(id, &b, key, r.Header.Get("User-Agent"), now)
		s.ok(w, id)
		return
	}
	id := newID()
	s.record(id, &b, "", r.Header.Get("User-Agent"), now)
	s.ok(w, id)
}

// validate returns the validation message naming the first bad field, or "".
func validate(b *body) string {
	switch {
	case strings.TrimSpace(b.From) == "":
		return "Missing `from` field."
	case len(b.To) == 0:
		return "Missing `to` field."
	case len(b.To) > 50:
		return "Invalid `to` field. The maximum number of recipients is 50."
	case strings.TrimSpace(b.Subject) == "":
		return "Missing `subject` field."
	case b.HTML == "" && b.Text == "":
		return "Missing `html` or `text` field."
	}
	if _, err := netmail.ParseAddress(b.From); err != nil {
		return "Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
	}
	for _, to := range b.To {
		if _, err := netmail.ParseAddress(to); err != nil {
			return "Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
		}
	}
	for _, rt := range b.ReplyTo {
		if _, err := netmail.ParseAddress(rt); err != nil {
			return "Invalid `reply_to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
		}
	}
	return ""
}

func (s *Server) record(id string, b *body, key, ua string, at time.Time) {
	s.emails = append(s.emails, Received{
		ID: id, From: b.From, To: append([]string(nil), b.To...), ReplyTo: append([]string(nil), b.ReplyTo...),
		Subject: b.Subject, HTML: b.HTML, Text: b.Text, IdempotencyKey: key, UserAgent: ua, At: at,
	})
}

func (s *Server) ok(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Ratelimit-Limit", "2")
	w.Header().Set("Ratelimit-Remaining", "1")
	w.Header().Set("Ratelimit-Reset", "1")
	json.NewEncoder(w).Encode(map[string]string{"id": id})
}

func (s *Server) fail(w http.ResponseWriter, status int, name, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "name": name, "message": message})
}

// newID returns a random UUID-shaped id, like Resend's.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
