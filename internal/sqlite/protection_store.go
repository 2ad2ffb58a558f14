package sqlite

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

// The thauth.ProtectionData methods of Store, each in its own transaction like those of store.go.

// AppendDecisions inserts recs in one transaction, skipping records of unknown projects and ids already stored.
func (s *Store) AppendDecisions(ctx context.Context, recs []thauth.DecisionRecord) error {
	return s.write(ctx, func(d *data) error { return d.AppendDecisions(ctx, recs) })
}

// GetDecision returns the project's record with this id; ENotFound if there is none.
func (s *Store) GetDecision(ctx context.Context, projectID, decisionID string) (*thauth.DecisionRecord, error) {
	return readValue(ctx, s, func(d *data) (*thauth.DecisionRecord, error) { return d.GetDecision(ctx, projectID, decisionID) })
}

// ListDecisions returns the project's records f selects, newest first.
func (s *Store) ListDecisions(ctx context.Context, projectID string, f thauth.DecisionFilter) ([]thauth.DecisionRecord, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.DecisionRecord, error) { return d.ListDecisions(ctx, projectID, f) })
}

// PruneDecisions deletes up to limit records older than before, oldest first, and returns how many.
func (s *Store) PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error) {
	return writeValue(ctx, s, func(d *data) (int, error) { return d.PruneDecisions(ctx, before, limit) })
}

// AppendSecurityEvent inserts e; EConflict if its id is taken.
func (s *Store) AppendSecurityEvent(ctx context.Context, e *thauth.SecurityEvent) error {
	return s.write(ctx, func(d *data) error { return d.AppendSecurityEvent(ctx, e) })
}

// ListSecurityEvents returns the organization's events, newest first, after before.
func (s *Store) ListSecurityEvents(ctx context.Context, orgID string, before *thauth.DecisionCursor, limit int) ([]thauth.SecurityEvent, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.SecurityEvent, error) { return d.ListSecurityEvents(ctx, orgID, before, limit) })
}

// CreateWebhookEndpoint inserts ep into the organization; ENotFound or EConflict.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	return s.write(ctx, func(d *data) error { return d.CreateWebhookEndpoint(ctx, orgID, ep) })
}

// GetWebhookEndpoint returns the organization's endpoint; ENotFound if there is none.
func (s *Store) GetWebhookEndpoint(ctx context.Context, orgID, endpointID string) (*thauth.WebhookEndpoint, error) {
	return readValue(ctx, s, func(d *data) (*thauth.WebhookEndpoint, error) { return d.GetWebhookEndpoint(ctx, orgID, endpointID) })
}

// ListWebhookEndpoints returns the organization's endpoints, oldest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, orgID string) ([]thauth.WebhookEndpoint, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.WebhookEndpoint, error) { return d.ListWebhookEndpoints(ctx, orgID) })
}

// UpdateWebhookEndpoint writes ep's mutable fields; ENotFound if it is not the organization's.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	return s.write(ctx, func(d *data) error { return d.UpdateWebhookEndpoint(ctx, orgID, ep) })
}

// DeleteWebhookEndpoint deletes the endpoint with its deliveries and attempts; ENotFound if it is not the organization's.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, orgID, endpointID string) error {
	return s.write(ctx, func(d *data) error { return d.DeleteWebhookEndpoint(ctx, orgID, endpointID) })
}

// EnqueueDeliveries inserts ds in one transaction; ENotFound (endpoint) or EConflict.
func (s *Store) EnqueueDeliveries(ctx context.Context, orgID string, ds []thauth.WebhookDelivery) error {
	return s.write(ctx, func(d *data) error { return d.EnqueueDeliveries(ctx, orgID, ds) })
}

// ClaimDeliveries leases up to limit due pending deliveries until leaseUntil and returns them.
func (s *Store) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]thauth.WebhookDelivery, error) {
	return writeValue(ctx, s, func(d *data) ([]thauth.WebhookDelivery, error) { return d.ClaimDeliveries(ctx, now, leaseUntil, limit) })
}

// UpdateDelivery writes w's state and appends a (if not nil) in one transaction; ENotFound if it is not the organization's.
func (s *Store) UpdateDelivery(ctx context.Context, orgID string, w *thauth.WebhookDelivery, a *thauth.WebhookAttempt) error {
	return s.write(ctx, func(d *data) error { return d.UpdateDelivery(ctx, orgID, w, a) })
}

// ListDeliveries returns the organization's deliveries, newest first, up to limit.
func (s *Store) ListDeliveries(ctx context.Context, orgID, endpointID string, limit int) ([]thauth.WebhookDelivery, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.WebhookDelivery, error) {
		return d.ListDeliveries(ctx, orgID, endpointID, limit)
	})
}

// ListAttempts returns the attempts of the organization's delivery in order.
func (s *Store) ListAttempts(ctx context.Context, orgID, deliveryID string) ([]thauth.WebhookAttempt, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.WebhookAttempt, error) { return d.ListAttempts(ctx, orgID, deliveryID) })
}

// CreateIncident inserts inc; EConflict if its id is taken.
func (s *Store) CreateIncident(ctx context.Context, inc *thauth.Incident) error {
	return s.write(ctx, func(d *data) error { return d.CreateIncident(ctx, inc) })
}

// GetIncident returns the incident; ENotFound if there is none.
func (s *Store) GetIncident(ctx context.Context, incidentID string) (*thauth.Incident, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Incident, error) { return d.GetIncident(ctx, incidentID) })
}

// ListIncidents returns every incident, newest first.
func (s *Store) ListIncidents(ctx context.Context) ([]thauth.Incident, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Incident, error) { return d.ListIncidents(ctx) })
}

// UpdateIncident writes inc's Title, Status and ClosedAt; ENotFound if there is none.
func (s *Store) UpdateIncident(ctx context.Context, inc *thauth.Incident) error {
	return s.write(ctx, func(d *data) error { return d.UpdateIncident(ctx, inc) })
}

// AppendIncidentEvent appends ev with the next Seq of its incident; ENotFound for an unknown incident.
func (s *Store) AppendIncidentEvent(ctx context.Context, ev *thauth.IncidentEvent) error {
	return s.write(ctx, func(d *data) error { return d.AppendIncidentEvent(ctx, ev) })
}

// ListIncidentEvents returns the incident's timeline in Seq order.
func (s *Store) ListIncidentEvents(ctx context.Context, incidentID string) ([]thauth.IncidentEvent, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.IncidentEvent, error) { return d.ListIncidentEvents(ctx, incidentID) })
}

// SetOrganizationSuspension suspends (at not nil) or reinstates the organization; ENotFound if it does not exist.
func (s *Store) SetOrganizationSuspension(ctx context.Context, orgID string, at *time.Time, reason string) error {
	return s.write(ctx, func(d *data) error { return d.SetOrganizationSuspension(ctx, orgID, at, reason) })
}

// PruneAudit deletes up to limit audit entries older than before and returns how many.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	return writeValue(ctx, s, func(d *data) (int, error) { return d.PruneAudit(ctx, before, limit) })
}
