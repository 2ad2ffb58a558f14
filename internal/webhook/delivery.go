package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Endpoint is a URL an organization registered to receive webhooks.
type Endpoint struct {
	ID             string
	OrganizationID string
	URL            string
	// Secret is the current signing secret ("whsec_…"). Stores keep it sealed at rest and
	// return it opened.
	Secret string
	// PreviousSecret, while PreviousSecretExpiresAt is in the future, also signs every request,
	// so that receivers can switch secrets without losing a delivery (zero-downtime rotation).
	PreviousSecret          string
	PreviousSecretExpiresAt time.Time
	// Events lists the event types sent to this endpoint: exact names, "prefix.*" for a family,
	// or "*"; empty means every event.
	Events []string
	// Disabled endpoints receive nothing; a 410 Gone answer disables an endpoint.
	Disabled bool
}

// Wants reports whether the endpoint takes events of type eventType (see Events).
func (e *Endpoint) Wants(eventType string) bool {
	if e.Disabled {
		return false
	}
	if len(e.Events) == 0 {
		return true
	}
	for _, p := range e.Events {
		if p == "*" || p == eventType {
			return true
		}
		if fam, ok := strings.CutSuffix(p, "*"); ok && strings.HasSuffix(fam, ".") && strings.HasPrefix(eventType, fam) {
			return true
		}
	}
	return false
}

// secrets returns the secrets that sign a request at now: the current one, then the previous
// one while it is still valid.
func (e *Endpoint) secrets(now time.Time) []string {
	s := []string{e.Secret}
	if e.PreviousSecret != "" && now.Before(e.PreviousSecretExpiresAt) {
		s = append(s, e.PreviousSecret)
	}
	return s
}

// Status is the state of a Delivery.
type Status string

// Delivery states: pending until delivered (a 2xx answer) or failed (attempts exhausted,
// 410 Gone, or the endpoint disabled or deleted).
const (
	StatusPending   Status = "pending"
	StatusDelivered Status = "delivered"
	StatusFailed    Status = "failed"
)

// Delivery is one event on its way to one endpoint, with the summary of its attempts; each
// attempt is also kept as an Attempt (the delivery history).
type Delivery struct {
	ID             string
	OrganizationID string
	EndpointID     string
	// EventID is sent as webhook-id: the same for every attempt and every endpoint of the
	// event, so receivers can use it as an idempotency key. It must not contain "." (see Sign).
	EventID   string
	EventType string
	Payload   []byte // the exact bytes signed and sent (JSON)
	Status    Status
	Attempts  int // attempts made so far
	// NextAttemptAt is when a pending delivery is due (or, while a worker holds it, when its
	// claim lapses); zero once delivered or failed.
	NextAttemptAt  time.Time
	LastAttemptAt  time.Time
	LastStatusCode int    // HTTP status of the last attempt; 0 if no response
	LastError      string // why the last attempt failed, with up to 4 KiB of the response body; "" on success
	CreatedAt      time.Time
	DeliveredAt    time.Time // zero until delivered
}

// Attempt is one HTTP request of a delivery, kept as its history.
type Attempt struct {
	DeliveryID string
	Number     int // 1 for the first attempt
	At         time.Time
	Duration   time.Duration
	StatusCode int    // 0 when there was no response (network error, timeout, refused address)
	Error      string // "" on a 2xx answer
	// RetryAfter is the delay the response asked for in its Retry-After header; 0 if none.
	RetryAfter time.Duration
}

// NewDelivery returns a pending delivery of an event to ep, due at now.
func NewDelivery(id string, ep *Endpoint, eventID, eventType string, payload []byte, now time.Time) Delivery {
	return Delivery{
		ID:             id,
		OrganizationID: ep.OrganizationID,
		EndpointID:     ep.ID,
		EventID:        eventID,
		EventType:      eventType,
		Payload:        payload,
		Status:         StatusPending,
		NextAttemptAt:  now,
		CreatedAt:      now,
	}
}

// NewPayload returns the JSON body the specification recommends:
// {"type": eventType, "timestamp": at (RFC 3339, UTC), "data": data}.
func NewPayload(eventType string, at time.Time, data any) ([]byte, error) {
	return json.Marshal(struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      any       `json:"data"`
	}{eventType, at.UTC(), data})
}

// Store is what the Worker needs from storage. Implementations must be safe for concurrent use.
type Store interface {
	// ClaimDeliveries returns up to limit pending deliveries, of any organization, whose
	// NextAttemptAt is at or before now, oldest first, and in the same transaction sets their
	// NextAttemptAt to leaseUntil, so that no other worker (on this or another node) takes them
	// meanwhile. A worker that dies mid-delivery thus only delays it until the lease lapses.
	ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Delivery, error)
	// GetEndpoint returns an endpoint of organization orgID with its secrets opened. An
	// endpoint that does not exist gives an error for which thauth.IsNotFound is true.
	GetEndpoint(ctx context.Context, orgID, endpointID string) (Endpoint, error)
	// UpdateDelivery saves d (status, attempts, next attempt, last result) and, when a is not
	// nil, appends a to the delivery's history, atomically.
	UpdateDelivery(ctx context.Context, orgID string, d Delivery, a *Attempt) error
	// DisableEndpoint marks an endpoint disabled at time at, with a reason shown to its owners.
	DisableEndpoint(ctx context.Context, orgID, endpointID, reason string, at time.Time) error
}

// DefaultSchedule returns the delays between attempts, from the specification's example:
// after the first attempt, retries 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h
// later — 10 attempts over about 3 days and 3 hours — before the delivery fails.
func DefaultSchedule() []time.Duration {
	return []time.Duration{
		5 * time.Second,
		5 * time.Minute,
		30 * time.Minute,
		2 * time.Hour,
		5 * time.Hour,
		10 * time.Hour,
		14 * time.Hour,
		20 * time.Hour,
		24 * time.Hour,
	}
}

// MaxRetryAfter caps the delay a receiver can ask for with Retry-After.
const MaxRetryAfter = 24 * time.Hour

// advance returns d after attempt a: delivered on a 2xx answer; failed on 410 Gone or when
// schedule has no further delay; otherwise pending, due the next delay of schedule (or the
// response's Retry-After, if longer, up to MaxRetryAfter), passed through jitter, after a.At.
// Times count from a.At, the injected clock's reading when the attempt started; a.Duration is
// for the history only.
func advance(d Delivery, a Attempt, schedule []time.Duration, jitter func(time.Duration) time.Duration) Delivery {
	d.Attempts = a.Number
	d.LastAttemptAt = a.At
	d.LastStatusCode = a.StatusCode
	d.LastError = a.Error
	switch {
	case success(a.StatusCode):
		d.Status = StatusDelivered
		d.DeliveredAt = a.At
		d.NextAttemptAt = time.Time{}
	case a.StatusCode == 410 || d.Attempts > len(schedule):
		d.Status = StatusFailed
		d.NextAttemptAt = time.Time{}
	default:
		delay := schedule[d.Attempts-1]
		if ra := min(a.RetryAfter, MaxRetryAfter); ra > delay {
			delay = ra
		}
		if jitter != nil {
			delay = jitter(delay)
		}
		d.Status = StatusPending
		d.NextAttemptAt = a.At.Add(delay)
	}
	return d
}

func success(code int) bool { return code >= 200 && code <= 299 }
