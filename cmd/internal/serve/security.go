package serve

// Security events and webhooks on a node: the webhook.Store the delivery worker needs, over
// thauth.Store and the node's sealer, and the consumer that turns the abuse detector's
// events into recorded security events (manage.RecordSecurityEvent stores them, mails the
// organization's owners and admins and enqueues the webhook deliveries).

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/abuse"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/webhook"
)

// Opener opens sealed values; *seal.Sealer implements it.
type Opener interface {
	Open(ctx context.Context, purpose, rowID, sealed string) ([]byte, error)
}

// NewWebhookStore returns the webhook.Store of the delivery worker over store: deliveries
// and endpoints map between the two packages' types, and GetEndpoint opens the endpoint's
// sealed secrets (purpose manage.WebhookPurpose, row id = endpoint id) with sealer. A
// previous secret whose overlap has ended is not opened. Safe for concurrent use.
func NewWebhookStore(store thauth.Store, sealer Opener) webhook.Store {
	return &webhookStore{store: store, sealer: sealer}
}

type webhookStore struct {
	store  thauth.Store
	sealer Opener
}

// ClaimDeliveries implements webhook.Store.
func (w *webhookStore) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]webhook.Delivery, error) {
	ds, err := w.store.ClaimDeliveries(ctx, now, leaseUntil, limit)
	if err != nil {
		return nil, err
	}
	out := make([]webhook.Delivery, len(ds))
	for i := range ds {
		out[i] = toWebhookDelivery(&ds[i])
	}
	return out, nil
}

// GetEndpoint implements webhook.Store.
func (w *webhookStore) GetEndpoint(ctx context.Context, orgID, endpointID string) (webhook.Endpoint, error) {
	ep, err := w.store.GetWebhookEndpoint(ctx, orgID, endpointID)
	if err != nil {
		return webhook.Endpoint{}, err
	}
	out := webhook.Endpoint{
		ID: ep.ID, OrganizationID: ep.OrganizationID, URL: ep.URL,
		Events: ep.Events, Disabled: ep.DisabledAt != nil,
	}
	secret, err := w.sealer.Open(ctx, manage.WebhookPurpose, ep.ID, ep.Secret)
	if err != nil {
		return webhook.Endpoint{}, fmt.Errorf("opening the signing secret of endpoint %s: %w", ep.ID, err)
	}
	out.Secret = string(secret)
	if ep.PreviousSecret != "" && ep.PreviousSecretExpiresAt != nil {
		prev, err := w.sealer.Open(ctx, manage.WebhookPurpose, ep.ID, ep.PreviousSecret)
		if err != nil {
			return webhook.Endpoint{}, fmt.Errorf("opening the previous signing secret of endpoint %s: %w", ep.ID, err)
		}
		out.PreviousSecret, out.PreviousSecretExpiresAt = string(prev), *ep.PreviousSecretExpiresAt
	}
	return out, nil
}

// UpdateDelivery implements webhook.Store.
func (w *webhookStore) UpdateDelivery(ctx context.Context, orgID string, d webhook.Delivery, a *webhook.Attempt) error {
	td := fromWebhookDelivery(&d)
	var ta *thauth.WebhookAttempt
	if a != nil {
		ta = &thauth.WebhookAttempt{DeliveryID: a.DeliveryID, Number: a.Number, At: a.At, Duration: a.Duration,
			StatusCode: a.StatusCode, Error: a.Error, RetryAfter: a.RetryAfter}
	}
	return w.store.UpdateDelivery(ctx, orgID, &td, ta)
}

// DisableEndpoint implements webhook.Store: it sets the endpoint's DisabledAt and
// DisabledReason, leaving its other fields as they are.
func (w *webhookStore) DisableEndpoint(ctx context.Context, orgID, endpointID, reason string, at time.Time) error {
	return w.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		ep, err := tx.GetWebhookEndpoint(ctx, orgID, endpointID)
		if err != nil {
			return err
		}
		if ep.DisabledAt != nil {
			return nil
		}
		ep.DisabledAt, ep.DisabledReason = &at, reason
		return tx.UpdateWebhookEndpoint(ctx, orgID, ep)
	})
}

func optTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toWebhookDelivery(d *thauth.WebhookDelivery) webhook.Delivery {
	return webhook.Delivery{
		ID: d.ID, OrganizationID: d.OrganizationID, EndpointID: d.EndpointID, EventID: d.EventID,
		EventType: d.EventType, Payload: d.Payload, Status: webhook.Status(d.Status), Attempts: d.Attempts,
		NextAttemptAt: optTime(d.NextAttemptAt), LastAttemptAt: optTime(d.LastAttemptAt),
		LastStatusCode: d.LastStatusCode, LastError: d.LastError, CreatedAt: d.CreatedAt,
		DeliveredAt: optTime(d.DeliveredAt),
	}
}

func fromWebhookDelivery(d *webhook.Delivery) thauth.WebhookDelivery {
	return thauth.WebhookDelivery{
		ID: d.ID, OrganizationID: d.OrganizationID, EndpointID: d.EndpointID, EventID: d.EventID,
		EventType: d.EventType, Payload: d.Payload, Status: string(d.Status), Attempts: d.Attempts,
		NextAttemptAt: timePtr(d.NextAttemptAt), LastAttemptAt: timePtr(d.LastAttemptAt),
		LastStatusCode: d.LastStatusCode, LastError: d.LastError, CreatedAt: d.CreatedAt,
		DeliveredAt: timePtr(d.DeliveredAt),
	}
}

// recordTimeout bounds the recording of one event, so that a store that stopped answering
// holds the consumer (and, behind it, only the detector's bounded queue) for a while, not
// forever.
const recordTimeout = 30 * time.Second

// ConsumeAbuseEvents records every event det reports with mg.RecordSecurityEvent, one at a
// time, until ctx is done. A failure is logged (with the event's kind and organization,
// never more than the event itself says) and the event dropped; a panic while recording one
// is logged and does not stop the consumer. While it is busy, the detector's queue absorbs
// bursts and counts what it drops (abuse.Detector.Dropped).
func ConsumeAbuseEvents(ctx context.Context, det *abuse.Detector, mg *manage.Service, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	events := det.Events()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			recordAbuseEvent(ctx, mg, log, ev)
		}
	}
}

// recordAbuseEvent records one detector event.
func recordAbuseEvent(ctx context.Context, mg *manage.Service, log *slog.Logger, ev abuse.Event) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("recording a security event panicked; event dropped", "kind", ev.Kind,
				"organization_id", ev.OrganizationID, "panic", fmt.Sprint(p))
		}
	}()
	se, err := SecurityEventOf(ev)
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, recordTimeout)
		_, err = mg.RecordSecurityEvent(rctx, se)
		cancel()
	}
	if err != nil {
		log.Error("could not record a security event; event dropped", "kind", ev.Kind, "severity", ev.Severity,
			"organization_id", ev.OrganizationID, "project_id", ev.ProjectID, "err", err)
	}
}

// SecurityEventOf converts a detector event into the stored form: the evidence becomes a
// JSON object of its non-empty values.
func SecurityEventOf(ev abuse.Event) (thauth.SecurityEvent, error) {
	evidence := make(map[string]string, len(ev.Evidence))
	for k, v := range ev.Evidence {
		if v != "" {
			evidence[k] = v
		}
	}
	b, err := json.Marshal(evidence)
	if err != nil {
		return thauth.SecurityEvent{}, fmt.Errorf("encoding the evidence: %w", err)
	}
	return thauth.SecurityEvent{
		OrganizationID: ev.OrganizationID, ProjectID: ev.ProjectID, Kind: ev.Kind, Severity: ev.Severity,
		At: ev.At, Title: ev.Title, Evidence: string(b),
	}, nil
}
