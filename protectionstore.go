package thauth

import (
	"context"
	"time"
)

// Storage contracts of the protection nouns (protection.go); the conventions of store.go and
// identitystore.go apply.

// DecisionLogStore is the decision log.
type DecisionLogStore interface {
	// AppendDecisions inserts recs (of any projects) in one transaction. Records of projects
	// that no longer exist are skipped, not an error. It is called by the asynchronous log
	// writer, never on the decision path.
	AppendDecisions(ctx context.Context, recs []DecisionRecord) error
	// GetDecision returns the project's record with this decision id.
	GetDecision(ctx context.Context, projectID, decisionID string) (*DecisionRecord, error)
	// ListDecisions returns the project's records f selects, newest (At, then ID) first.
	ListDecisions(ctx context.Context, projectID string, f DecisionFilter) ([]DecisionRecord, error)
	// PruneDecisions deletes up to limit records (of any project) with At < before and
	// returns how many (retention; called repeatedly until it returns less than limit).
	PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error)
}

// SecurityEventStore keeps security events.
type SecurityEventStore interface {
	AppendSecurityEvent(ctx context.Context, e *SecurityEvent) error
	// ListSecurityEvents returns the organization's events ("" for installation-level ones),
	// newest (At, then ID) first, continuing after before when it is not nil; limit 1–1000.
	ListSecurityEvents(ctx context.Context, orgID string, before *DecisionCursor, limit int) ([]SecurityEvent, error)
}

// WebhookStore keeps webhook endpoints, deliveries and their attempts.
type WebhookStore interface {
	CreateWebhookEndpoint(ctx context.Context, orgID string, ep *WebhookEndpoint) error
	GetWebhookEndpoint(ctx context.Context, orgID, endpointID string) (*WebhookEndpoint, error)
	// ListWebhookEndpoints returns the organization's endpoints, oldest first.
	ListWebhookEndpoints(ctx context.Context, orgID string) ([]WebhookEndpoint, error)
	// UpdateWebhookEndpoint writes URL, Description, Events, Secret, PreviousSecret,
	// PreviousSecretExpiresAt, DisabledAt and DisabledReason.
	UpdateWebhookEndpoint(ctx context.Context, orgID string, ep *WebhookEndpoint) error
	// DeleteWebhookEndpoint deletes the endpoint with its deliveries and attempts.
	DeleteWebhookEndpoint(ctx context.Context, orgID, endpointID string) error
	// EnqueueDeliveries inserts pending deliveries (of one organization's endpoints).
	EnqueueDeliveries(ctx context.Context, orgID string, ds []WebhookDelivery) error
	// ClaimDeliveries returns up to limit pending deliveries of any organization with
	// NextAttemptAt <= now, oldest first, and sets their NextAttemptAt to leaseUntil in the
	// same atomic step (no other claimer gets them).
	ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]WebhookDelivery, error)
	// UpdateDelivery writes Status, Attempts, NextAttemptAt, LastAttemptAt, LastStatusCode,
	// LastError and DeliveredAt of d and, when a is not nil, appends a to its history, in
	// one transaction.
	UpdateDelivery(ctx context.Context, orgID string, d *WebhookDelivery, a *WebhookAttempt) error
	// ListDeliveries returns the organization's deliveries (of one endpoint when endpointID
	// is not ""), newest first, up to limit.
	ListDeliveries(ctx context.Context, orgID, endpointID string, limit int) ([]WebhookDelivery, error)
	// ListAttempts returns a delivery's attempts in order.
	ListAttempts(ctx context.Context, orgID, deliveryID string) ([]WebhookAttempt, error)
}

// IncidentStore keeps operators' incident records.
type IncidentStore interface {
	CreateIncident(ctx context.Context, inc *Incident) error
	GetIncident(ctx context.Context, incidentID string) (*Incident, error)
	// ListIncidents returns every incident, newest first.
	ListIncidents(ctx context.Context) ([]Incident, error)
	// UpdateIncident writes Title, Status and ClosedAt.
	UpdateIncident(ctx context.Context, inc *Incident) error
	// AppendIncidentEvent appends ev to its incident's timeline, setting ev.Seq (gap-free
	// per incident, atomic under concurrency).
	AppendIncidentEvent(ctx context.Context, ev *IncidentEvent) error
	// ListIncidentEvents returns an incident's timeline in Seq order.
	ListIncidentEvents(ctx context.Context, incidentID string) ([]IncidentEvent, error)
}

// SuspensionStore suspends organizations.
type SuspensionStore interface {
	// SetOrganizationSuspension suspends the organization at at with reason, or — with at
	// nil — reinstates it. GetOrganization and ListOrganizations return SuspendedAt and
	// SuspendedReason.
	SetOrganizationSuspension(ctx context.Context, orgID string, at *time.Time, reason string) error
	// PruneAudit deletes audit entries with At < before, up to limit, and returns how many
	// (retention). The chain heads are kept, so verification of what remains still detects
	// edits, deletions and reordering after the oldest retained entry.
	PruneAudit(ctx context.Context, before time.Time, limit int) (int, error)
}

// ProtectionData is every protection store.
type ProtectionData interface {
	DecisionLogStore
	SecurityEventStore
	WebhookStore
	IncidentStore
	SuspensionStore
}
