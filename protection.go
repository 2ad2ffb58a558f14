package thauth

import "time"

// Protection and monitoring nouns: the decision log, security events, webhooks and incidents.
// internal/decisionlog, internal/abuse, internal/webhook and internal/manage hold their rules;
// these types only carry data.

// DecisionRecord is one entry of the decision log: a decision as it was answered, or — when
// Gap > 0 — a gap marker saying that Gap decisions of the project were not recorded because
// the log writer could not keep up (never silent).
type DecisionRecord struct {
	ID        string        `json:"decision_id"` // the decision_id returned by /v1/check; a fresh id for gap markers
	ProjectID string        `json:"project_id"`
	At        time.Time     `json:"at"`
	KeyID     string        `json:"key_id,omitempty"`
	Subject   string        `json:"subject,omitempty"`
	Feature   string        `json:"feature,omitempty"`
	Action    string        `json:"action,omitempty"`
	Tenant    string        `json:"tenant,omitempty"`
	Resource  string        `json:"resource,omitempty"`
	Allowed   bool          `json:"allowed"`
	Reason    string        `json:"reason,omitempty"`
	Latency   time.Duration `json:"-"` // time spent answering, stored in microseconds
	Gap       int64         `json:"gap,omitempty"`
}

// DecisionCursor is the position of a record in a newest-first listing.
type DecisionCursor struct {
	At time.Time
	ID string
}

// DecisionFilter selects decision log records of one project, newest first. Empty strings
// and nil mean "any". Since/Until bound At (Since <= At < Until) when not zero. Before, when
// set, continues a listing after the record it names. Limit is 1–1000. Gap markers in the
// time range are always included (so a reader sees where records are missing), whatever
// the other filters.
type DecisionFilter struct {
	Subject, Feature, Action, Tenant, Reason, KeyID string
	Allowed                                         *bool
	Since, Until                                    time.Time
	Before                                          *DecisionCursor
	Limit                                           int
}

// The severities of a SecurityEvent.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// SecurityEvent is something anomalous that Thauth noticed (internal/abuse) or an operator
// recorded, concerning one organization ("" for the installation). Evidence is a JSON
// object of strings; it never holds a secret.
type SecurityEvent struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id,omitempty"`
	ProjectID      string    `json:"project_id,omitempty"`
	Kind           string    `json:"kind"`
	Severity       string    `json:"severity"`
	At             time.Time `json:"at"`
	Title          string    `json:"title"`
	Evidence       string    `json:"evidence"`
}

// WebhookEndpoint is a URL an organization registered to receive security events, signed
// per the Standard Webhooks specification. Secret and PreviousSecret are sealed values
// (internal/seal, purpose "webhook", row id = ID) in the store; Events is the list of event
// type patterns ("security.*", exact names, "*"; empty = all).
type WebhookEndpoint struct {
	ID                      string     `json:"id"`
	OrganizationID          string     `json:"organization_id"`
	URL                     string     `json:"url"`
	Description             string     `json:"description"`
	Events                  []string   `json:"events"`
	Secret                  string     `json:"-"`
	PreviousSecret          string     `json:"-"`
	PreviousSecretExpiresAt *time.Time `json:"-"`
	DisabledAt              *time.Time `json:"disabled_at,omitempty"`
	DisabledReason          string     `json:"disabled_reason,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
}

// The states of a WebhookDelivery.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is one event on its way to one endpoint (see internal/webhook.Delivery).
type WebhookDelivery struct {
	ID             string     `json:"id"`
	OrganizationID string     `json:"organization_id"`
	EndpointID     string     `json:"endpoint_id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	Payload        []byte     `json:"-"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
}

// WebhookAttempt is one HTTP request of a delivery (its history).
type WebhookAttempt struct {
	DeliveryID string        `json:"delivery_id"`
	Number     int           `json:"number"`
	At         time.Time     `json:"at"`
	Duration   time.Duration `json:"-"` // stored in milliseconds
	StatusCode int           `json:"status_code,omitempty"`
	Error      string        `json:"error,omitempty"`
	RetryAfter time.Duration `json:"-"` // stored in milliseconds
}

// Incident is an operator's record of a security incident, with a timeline of what was done.
type Incident struct {
	ID        string     `json:"id"`
	Title     string     `json:"title"`
	Status    string     `json:"status"` // "open" or "closed"
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
}

// IncidentEvent is one entry of an incident's timeline (Seq from 1).
type IncidentEvent struct {
	IncidentID string    `json:"incident_id"`
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Kind       string    `json:"kind"`   // e.g. "opened", "org.suspended", "keys.revoked", "notified", "note", "closed"
	Detail     string    `json:"detail"` // JSON object of strings
}
