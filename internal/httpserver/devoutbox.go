package httpserver

// The development outbox: with the development mailer (the default), mail is not sent but
// kept, and this route shows it rendered, so that sign-up and invitation links can be
// followed on a laptop. It exists only when Deps.DevOutbox is set.

import (
	"net/http"
	"time"

	"github.com/thauth/thauth"
)

// DevMessage is one rendered message of the development outbox, newest first in listings.
// Text and HTML are the rendered bodies (they hold the message's live links).
type DevMessage struct {
	ID        string     `json:"id"`
	To        string     `json:"to"`
	Template  string     `json:"template"`
	Subject   string     `json:"subject"`
	Text      string     `json:"text"`
	HTML      string     `json:"html"`
	Status    string     `json:"status"`
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
}

// Dev outbox page sizes.
const (
	defaultDevOutboxLimit = 50
	maxDevOutboxLimit     = 500
)

var errNoDevOutbox = errorf(thauth.ENotFound, "not found")

// devOutbox serves GET /api/v1/dev/outbox?limit=: the newest messages, or 404 when this
// server has no development outbox (a real mailer is configured).
func (s *server) devOutbox(w http.ResponseWriter, r *http.Request) {
	if s.devOutboxFn == nil {
		s.consoleError(w, r, errNoDevOutbox)
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "limit" {
			s.consoleError(w, r, invalid("unknown query parameter %q", clip(k)))
			return
		}
	}
	limit, err := intParam(q.Get("limit"), "limit", 1, maxDevOutboxLimit, defaultDevOutboxLimit)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	msgs, err := s.devOutboxFn(r.Context(), int(limit))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	if msgs == nil {
		msgs = []DevMessage{}
	}
	s.writeJSON(w, http.StatusOK, map[string][]DevMessage{"messages": msgs})
}
