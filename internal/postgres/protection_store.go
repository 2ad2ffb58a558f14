package postgres

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

// The thauth.ProtectionData methods of Store. Each is one statement, atomic on its own
// (autocommit), except:
//   - AppendDecisions, which copies its batch through a temporary table and so runs in a
//     write transaction of its own (the batch goes in whole or not at all);
//   - UpdateDelivery with an attempt, whose two statements share a write transaction;
//   - AppendIncidentEvent, which holds its incident's row lock in a write transaction of
//     its own until the event is in (see data.AppendIncidentEvent).
//
// None of them locks a project: the decision log is written by the asynchronous log writer,
// which must never wait for a project's configuration writers.

var _ thauth.ProtectionData = (*Store)(nil)

// AppendDecisions inserts the records of existing projects, skipping ids already stored.
func (s *Store) AppendDecisions(ctx context.Context, recs []thauth.DecisionRecord) error {
	if len(recs) == 0 {
		return nil
	}
	return s.write(ctx, func(d *data) error { return d.AppendDecisions(ctx, recs) })
}

// GetDecision returns the project's record with this id; ENotFound if there is none.
func (s *Store) GetDecision(ctx context.Context, projectID, decisionID string) (*thauth.DecisionRecord, error) {
	return s.direct().GetDecision(ctx, projectID, decisionID)
}

// ListDecisions returns the project's records f selects, newest first.
func (s *Store) ListDecisions(ctx context.Context, projectID string, f thauth.DecisionFilter) ([]thauth.DecisionRecord, error) {
	return s.direct().ListDecisions(ctx, projectID, f)
}

// PruneDecisions deletes up to limit of the oldest records with At < before.
func (s *Store) PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.direct().PruneDecisions(ctx, before, limit)
}

// AppendSecurityEvent inserts e; EConflict if its id is taken.
func (s *Store) AppendSecurityEvent(ctx context.Context, e *thauth.SecurityEvent) error {
	return s.direct().AppendSecurityEvent(ctx, e)
}

// ListSecurityEvents returns the organization's events, newest first.
func (s *Store) ListSecurityEvents(ctx context.Context, orgID string, before *thauth.DecisionCursor, limit int) ([]thauth.SecurityEvent, error) {
	return s.direct().ListSecurityEvents(ctx, orgID, before, limit)
}

// CreateWebhookEndpoint inserts ep; ENotFound or EConflict.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	return s.direct().CreateWebhookEndpoint(ctx, orgID, ep)
}

// GetWebhookEndpoint returns the organization's endpoint; ENotFound if there is none.
func (s *Store) GetWebhookEndpoint(ctx context.Context, orgID, endpointID string) (*thauth.WebhookEndpoint, error) {
	return s.direct().GetWebhookEndpoint(ctx, orgID, endpointID)
}

// ListWebhookEndpoints returns the organization's endpoints, oldest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, orgID string) ([]thauth.WebhookEndpoint, error) {
	return s.direct().ListWebhookEndpoints(ctx, orgID)
}

// UpdateWebhookEndpoint writes ep's mutable fields; ENotFound.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	return s.direct().UpdateWebhookEndpoint(ctx, orgID, ep)
}

// DeleteWebhookEndpoint deletes the endpoint with its deliveries and attempts; ENotFound.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, orgID, endpointID string) error {
	return s.direct().DeleteWebhookEndpoint(ctx, orgID, endpointID)
}

// EnqueueDeliveries inserts ds in one statement; ENotFound or EConflict, and then none.
func (s *Store) EnqueueDeliveries(ctx context.Context, orgID string, ds []thauth.WebhookDelivery) error {
	return s.direct().EnqueueDeliveries(ctx, orgID, ds)
}

// ClaimDeliveries claims up to limit due deliveries in one statement (no other claimer, on
// any node, gets them).
func (s *Store) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]thauth.WebhookDelivery, error) {
	return s.direct().ClaimDeliveries(ctx, now, leaseUntil, limit)
}

// UpdateDelivery writes d's state and appends a (when not nil), both or neither.
func (s *Store) UpdateDelivery(ctx context.Context, orgID string, d *thauth.WebhookDelivery, a *thauth.WebhookAttempt) error {
	if a == nil {
		return s.direct().UpdateDelivery(ctx, orgID, d, nil)
	}
	return s.write(ctx, func(tx *data) error { return tx.UpdateDelivery(ctx, orgID, d, a) })
}

// ListDeliveries returns the organization's deliveries, newest first.
func (s *Store) ListDeliveries(ctx context.Context, orgID, endpointID string, limit int) ([]thauth.WebhookDelivery, error) {
	return s.direct().ListDeliveries(ctx, orgID, endpointID, limit)
}

// ListAttempts returns the attempts of the organization's delivery in order.
func (s *Store) ListAttempts(ctx context.Context, orgID, deliveryID string) ([]thauth.WebhookAttempt, error) {
	return s.direct().ListAttempts(ctx, orgID, deliveryID)
}

// CreateIncident inserts inc; EConflict if its id is taken.
func (s *Store) CreateIncident(ctx context.Context, inc *thauth.Incident) error {
	return s.direct().CreateIncident(ctx, inc)
}

// GetIncident returns the incident; ENotFound if there is none.
func (s *Store) GetIncident(ctx context.Context, incidentID string) (*thauth.Incident, error) {
	return s.direct().GetIncident(ctx, incidentID)
}

// ListIncidents returns every incident, newest first.
func (s *Store) ListIncidents(ctx context.Context) ([]thauth.Incident, error) {
	return s.direct().ListIncidents(ctx)
}

// UpdateIncident writes inc's Title, Status and ClosedAt; ENotFound.
func (s *Store) UpdateIncident(ctx context.Context, inc *thauth.Incident) error {
	return s.direct().UpdateIncident(ctx, inc)
}

// AppendIncidentEvent appends ev with the incident's next Seq, gap-free under concurrency
// from every node.
func (s *Store) AppendIncidentEvent(ctx context.Context, ev *thauth.IncidentEvent) error {
	return s.write(ctx, func(d *data) error { return d.AppendIncidentEvent(ctx, ev) })
}

// ListIncidentEvents returns the incident's timeline in Seq order.
func (s *Store) ListIncidentEvents(ctx context.Context, incidentID string) ([]thauth.IncidentEvent, error) {
	return s.direct().ListIncidentEvents(ctx, incidentID)
}

// SetOrganizationSuspension suspends or reinstates the organization; ENotFound.
func (s *Store) SetOrganizationSuspension(ctx context.Context, orgID string, at *time.Time, reason string) error {
	return s.direct().SetOrganizationSuspension(ctx, orgID, at, reason)
}

// PruneAudit deletes up to limit of the oldest audit entries with At < before.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	return s.direct().PruneAudit(ctx, before, limit)
}
