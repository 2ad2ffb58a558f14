package postgres

// Temporary: protection store methods not implemented yet (replaced by the protection files).

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

var errProtectionTODO = thauth.Errorf(thauth.EInternal, "not implemented")

func (d *data) AppendDecisions(ctx context.Context, recs []thauth.DecisionRecord) error {
	return errProtectionTODO
}
func (d *data) GetDecision(ctx context.Context, projectID, decisionID string) (*thauth.DecisionRecord, error) {
	return nil, errProtectionTODO
}
func (d *data) ListDecisions(ctx context.Context, projectID string, f thauth.DecisionFilter) ([]thauth.DecisionRecord, error) {
	return nil, errProtectionTODO
}
func (d *data) PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error) {
	return 0, errProtectionTODO
}
func (d *data) AppendSecurityEvent(ctx context.Context, e *thauth.SecurityEvent) error {
	return errProtectionTODO
}
func (d *data) ListSecurityEvents(ctx context.Context, orgID string, before *thauth.DecisionCursor, limit int) ([]thauth.SecurityEvent, error) {
	return nil, errProtectionTODO
}
func (d *data) CreateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	return errProtectionTODO
}
func (d *data) GetWebhookEndpoint(ctx context.Context, orgID, endpointID string) (*thauth.WebhookEndpoint, error) {
	return nil, errProtectionTODO
}
func (d *data) ListWebhookEndpoints(ctx context.Context, orgID string) ([]thauth.WebhookEndpoint, error) {
	return nil, errProtectionTODO
}
func (d *data) UpdateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	return errProtectionTODO
}
func (d *data) DeleteWebhookEndpoint(ctx context.Context, orgID, endpointID string) error {
	return errProtectionTODO
}
func (d *data) EnqueueDeliveries(ctx context.Context, orgID string, ds []thauth.WebhookDelivery) error {
	return errProtectionTODO
}
func (d *data) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]thauth.WebhookDelivery, error) {
	return nil, errProtectionTODO
}
func (dd *data) UpdateDelivery(ctx context.Context, orgID string, d *thauth.WebhookDelivery, a *thauth.WebhookAttempt) error {
	return errProtectionTODO
}
func (d *data) ListDeliveries(ctx context.Context, orgID, endpointID string, limit int) ([]thauth.WebhookDelivery, error) {
	return nil, errProtectionTODO
}
func (d *data) ListAttempts(ctx context.Context, orgID, deliveryID string) ([]thauth.WebhookAttempt, error) {
	return nil, errProtectionTODO
}
func (d *data) CreateIncident(ctx context.Context, inc *thauth.Incident) error {
	return errProtectionTODO
}
func (d *data) GetIncident(ctx context.Context, incidentID string) (*thauth.Incident, error) {
	return nil, errProtectionTODO
}
func (d *data) ListIncidents(ctx context.Context) ([]thauth.Incident, error) {
	return nil, errProtectionTODO
}
func (d *data) UpdateIncident(ctx context.Context, inc *thauth.Incident) error {
	return errProtectionTODO
}
func (d *data) AppendIncidentEvent(ctx context.Context, ev *thauth.IncidentEvent) error {
	return errProtectionTODO
}
func (d *data) ListIncidentEvents(ctx context.Context, incidentID string) ([]thauth.IncidentEvent, error) {
	return nil, errProtectionTODO
}
func (d *data) SetOrganizationSuspension(ctx context.Context, orgID string, at *time.Time, reason string) error {
	return errProtectionTODO
}
func (d *data) PruneAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	return 0, errProtectionTODO
}
func (st *Store) AppendDecisions(ctx context.Context, recs []thauth.DecisionRecord) error {
	return errProtectionTODO
}
func (st *Store) GetDecision(ctx context.Context, projectID, decisionID string) (*thauth.DecisionRecord, error) {
	return nil, errProtectionTODO
}
func (st *Store) ListDecisions(ctx context.Context, projectID string, f thauth.DecisionFilter) ([]thauth.DecisionRecord, error) {
	return nil, errProtectionTODO
}
func (st *Store) PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error) {
	return 0, errProtectionTODO
}
func (st *Store) AppendSecurityEvent(ctx context.Context, e *thauth.SecurityEvent) error {
	return errProtectionTODO
}
func (st *Store) ListSecurityEvents(ctx context.Context, orgID string, before *thauth.DecisionCursor, limit int) ([]thauth.SecurityEvent, error) {
	return nil, errProtectionTODO
}
func (st *Store) CreateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	return errProtectionTODO
}
func (st *Store) GetWebhookEndpoint(ctx context.Context, orgID, endpointID string) (*thauth.WebhookEndpoint, error) {
	return nil, errProtectionTODO
}
func (st *Store) ListWebhookEndpoints(ctx context.Context, orgID string) ([]thauth.WebhookEndpoint, error) {
	return nil, errProtectionTODO
}
func (st *Store) UpdateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	return errProtectionTODO
}
func (st *Store) DeleteWebhookEndpoint(ctx context.Context, orgID, endpointID string) error {
	return errProtectionTODO
}
func (st *Store) EnqueueDeliveries(ctx context.Context, orgID string, ds []thauth.WebhookDelivery) error {
	return errProtectionTODO
}
func (st *Store) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]thauth.WebhookDelivery, error) {
	return nil, errProtectionTODO
}
func (st *Store) UpdateDelivery(ctx context.Context, orgID string, d *thauth.WebhookDelivery, a *thauth.WebhookAttempt) error {
	return errProtectionTODO
}
func (st *Store) ListDeliveries(ctx context.Context, orgID, endpointID string, limit int) ([]thauth.WebhookDelivery, error) {
	return nil, errProtectionTODO
}
func (st *Store) ListAttempts(ctx context.Context, orgID, deliveryID string) ([]thauth.WebhookAttempt, error) {
	return nil, errProtectionTODO
}
func (st *Store) CreateIncident(ctx context.Context, inc *thauth.Incident) error {
	return errProtectionTODO
}
func (st *Store) GetIncident(ctx context.Context, incidentID string) (*thauth.Incident, error) {
	return nil, errProtectionTODO
}
func (st *Store) ListIncidents(ctx context.Context) ([]thauth.Incident, error) {
	return nil, errProtectionTODO
}
func (st *Store) UpdateIncident(ctx context.Context, inc *thauth.Incident) error {
	return errProtectionTODO
}
func (st *Store) AppendIncidentEvent(ctx context.Context, ev *thauth.IncidentEvent) error {
	return errProtectionTODO
}
func (st *Store) ListIncidentEvents(ctx context.Context, incidentID string) ([]thauth.IncidentEvent, error) {
	return nil, errProtectionTODO
}
func (st *Store) SetOrganizationSuspension(ctx context.Context, orgID string, at *time.Time, reason string) error {
	return errProtectionTODO
}
func (st *Store) PruneAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	return 0, errProtectionTODO
}

var _ = time.Now
