package httpserver

// Console routes of security events and webhook endpoints (manage/security.go,
// manage/webhooks.go). Reading needs security:read, changing endpoints security:manage; an
// organization, endpoint or delivery the caller cannot see is 404. A signing secret appears
// in exactly two answers — creation and rotation — and nowhere else (never in listings or
// logs: the access log records route patterns only).

import (
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// securityQuery rejects query parameters other than allowed.
func securityQuery(q url.Values, allowed ...string) error {
	for k := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return invalid("unknown query parameter %q", clip(k))
		}
	}
	return nil
}

// securityEventJSON is a security event with its evidence as a JSON object.
type securityEventJSON struct {
	thauth.SecurityEvent
	Evidence json.RawMessage `json:"evidence"`
}

func toSecurityEventJSON(e thauth.SecurityEvent) securityEventJSON {
	out := securityEventJSON{SecurityEvent: e, Evidence: json.RawMessage("{}")}
	if e.Evidence != "" && json.Valid([]byte(e.Evidence)) {
		out.Evidence = json.RawMessage(e.Evidence)
	}
	return out
}

// listSecurityEvents serves GET /api/v1/orgs/{org}/security-events?cursor=&limit=: newest
// first; next_cursor continues the listing (null on the last page).
func (s *server) listSecurityEvents(w http.ResponseWriter, r *http.Request, c *caller) {
	q := r.URL.Query()
	if err := securityQuery(q, "cursor", "limit"); err != nil {
		s.consoleError(w, r, err)
		return
	}
	limit, err := intParam(q.Get("limit"), "limit", 1, manage.MaxSecurityEventsPage, manage.DefaultSecurityEventsPage)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	events, next, err := s.mg.ListSecurityEvents(r.Context(), c.actor, r.PathValue("org"), q.Get("cursor"), int(limit))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := struct {
		Events     []securityEventJSON `json:"events"`
		NextCursor *string             `json:"next_cursor"`
	}{Events: make([]securityEventJSON, 0, len(events))}
	for _, e := range events {
		out.Events = append(out.Events, toSecurityEventJSON(e))
	}
	if next != "" {
		out.NextCursor = &next
	}
	s.writeJSON(w, http.StatusOK, out)
}

// webhookEndpointJSON is an endpoint as the console shows it: with the end of a secret
// rotation's overlap, when one is running.
type webhookEndpointJSON struct {
	thauth.WebhookEndpoint
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
}

func toWebhookEndpointJSON(ep *thauth.WebhookEndpoint) webhookEndpointJSON {
	out := webhookEndpointJSON{WebhookEndpoint: *ep, PreviousSecretExpiresAt: ep.PreviousSecretExpiresAt}
	if out.Events == nil {
		out.Events = []string{}
	}
	return out
}

// webhookSecretJSON answers creation and rotation: the endpoint and its new secret, shown
// this once.
type webhookSecretJSON struct {
	Endpoint webhookEndpointJSON `json:"endpoint"`
	Secret   string              `json:"secret"`
}

// createWebhookEndpoint serves POST /api/v1/orgs/{org}/webhooks {url, description?,
// events?}.
func (s *server) createWebhookEndpoint(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		URL         string   `json:"url"`
		Description string   `json:"description"`
		Events      []string `json:"events"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("url", req.URL); err != nil {
		s.consoleError(w, r, err)
		return
	}
	ep, secret, err := s.mg.CreateWebhookEndpoint(r.Context(), c.actor, r.PathValue("org"), req.URL, req.Description, req.Events)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, webhookSecretJSON{Endpoint: toWebhookEndpointJSON(ep), Secret: secret})
}

// listWebhookEndpoints serves GET /api/v1/orgs/{org}/webhooks.
func (s *server) listWebhookEndpoints(w http.ResponseWriter, r *http.Request, c *caller) {
	eps, err := s.mg.ListWebhookEndpoints(r.Context(), c.actor, r.PathValue("org"))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := make([]webhookEndpointJSON, len(eps))
	for i := range eps {
		out[i] = toWebhookEndpointJSON(&eps[i])
	}
	s.writeJSON(w, http.StatusOK, map[string][]webhookEndpointJSON{"endpoints": out})
}

// deleteWebhookEndpoint serves DELETE /api/v1/orgs/{org}/webhooks/{id}.
func (s *server) deleteWebhookEndpoint(w http.ResponseWriter, r *http.Request, c *caller) {
	if err := s.mg.DeleteWebhookEndpoint(r.Context(), c.actor, r.PathValue("org"), r.PathValue("id")); err != nil {
		s.consoleError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rotateWebhookSecret serves POST /api/v1/orgs/{org}/webhooks/{id}/rotate-secret (no body).
func (s *server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, c *caller) {
	ep, secret, err := s.mg.RotateWebhookSecret(r.Context(), c.actor, r.PathValue("org"), r.PathValue("id"))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, webhookSecretJSON{Endpoint: toWebhookEndpointJSON(ep), Secret: secret})
}

// webhookDeliveryJSON is a delivery with the payload it sends.
type webhookDeliveryJSON struct {
	thauth.WebhookDelivery
	Payload json.RawMessage `json:"payload,omitempty"`
}

func toWebhookDeliveryJSON(d *thauth.WebhookDelivery) webhookDeliveryJSON {
	out := webhookDeliveryJSON{WebhookDelivery: *d}
	if len(d.Payload) > 0 && json.Valid(d.Payload) {
		out.Payload = json.RawMessage(d.Payload)
	}
	return out
}

// sendWebhookTest serves POST /api/v1/orgs/{org}/webhooks/{id}/test (no body): a
// security.test event is queued for the endpoint; 202 with the delivery to follow.
func (s *server) sendWebhookTest(w http.ResponseWriter, r *http.Request, c *caller) {
	d, err := s.mg.SendTestEvent(r.Context(), c.actor, r.PathValue("org"), r.PathValue("id"))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusAccepted, map[string]webhookDeliveryJSON{"delivery": toWebhookDeliveryJSON(d)})
}

// listWebhookDeliveries serves GET /api/v1/orgs/{org}/webhooks/{id}/deliveries?limit=:
// newest first.
func (s *server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, c *caller) {
	q := r.URL.Query()
	if err := securityQuery(q, "limit"); err != nil {
		s.consoleError(w, r, err)
		return
	}
	limit, err := intParam(q.Get("limit"), "limit", 1, manage.MaxWebhookListLimit, manage.DefaultWebhookListLimit)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	ds, err := s.mg.ListWebhookDeliveries(r.Context(), c.actor, r.PathValue("org"), r.PathValue("id"), int(limit))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := make([]webhookDeliveryJSON, len(ds))
	for i := range ds {
		out[i] = toWebhookDeliveryJSON(&ds[i])
	}
	s.writeJSON(w, http.StatusOK, map[string][]webhookDeliveryJSON{"deliveries": out})
}

// webhookAttemptJSON is one attempt of a delivery, durations in milliseconds.
type webhookAttemptJSON struct {
	thauth.WebhookAttempt
	DurationMS   int64 `json:"duration_ms"`
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

// listWebhookAttempts serves GET /api/v1/orgs/{org}/webhook-deliveries/{id}/attempts.
func (s *server) listWebhookAttempts(w http.ResponseWriter, r *http.Request, c *caller) {
	as, err := s.mg.ListWebhookAttempts(r.Context(), c.actor, r.PathValue("org"), r.PathValue("id"))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := make([]webhookAttemptJSON, len(as))
	for i, a := range as {
		out[i] = webhookAttemptJSON{WebhookAttempt: a, DurationMS: a.Duration.Milliseconds(),
			RetryAfterMS: a.RetryAfter.Milliseconds()}
	}
	s.writeJSON(w, http.StatusOK, map[string][]webhookAttemptJSON{"attempts": out})
}
