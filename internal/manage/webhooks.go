package manage

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// Webhook endpoints of an organization: where its security events are POSTed, signed per
// the Standard Webhooks specification (internal/webhook signs and delivers them; docs/
// webhooks.md tells receivers how to verify). Changing endpoints needs security:manage,
// reading them and their delivery history security:read.
//
// Secrets. A signing secret is "whsec_" + the base64 of 32 random bytes, the format
// internal/webhook uses. It is returned once, at creation or rotation, and stored sealed
// (Options.Sealer, purpose "webhook", row id = endpoint id) so that the delivery worker can
// read it back; listings never carry it. Rotation keeps the previous secret signing for
// WebhookRotationOverlap, so receivers can switch without losing a delivery.
//
// URLs. The caller chooses where our server sends requests, so registration refuses
// anything but https (http only with Options.AllowInsecureWebhooks), URLs with credentials
// (they would end up in listings and logs) and, through Options.CheckWebhookURL, addresses
// the sender would refuse anyway; the sender re-checks the address it actually connects to.
// The audit log records an endpoint's host only: webhook URLs often carry a token in their
// path.

// WebhookPurpose is the seal purpose of webhook signing secrets.
const WebhookPurpose = "webhook"

// WebhookTestEventType is the event type of SendTestEvent's deliveries.
const WebhookTestEventType = "security.test"

// WebhookRotationOverlap is how long the previous secret keeps signing after a rotation.
const WebhookRotationOverlap = 24 * time.Hour

// Bounds of webhook endpoints and listings.
const (
	MaxWebhookEndpoints      = 20
	maxWebhookURLBytes       = 2048
	maxWebhookDescription    = 500
	maxWebhookPatterns       = 50
	webhookSecretPrefix      = "whsec_"
	webhookSecretBytes       = 32
	DefaultWebhookListLimit  = 50
	MaxWebhookListLimit      = 1000
	webhookAttemptsScanLimit = 1000
)

var (
	errWebhookNotFound  = thauth.Errorf(thauth.ENotFound, "webhook endpoint not found")
	errDeliveryNotFound = thauth.Errorf(thauth.ENotFound, "webhook delivery not found")
)

// webhookNewSecret returns a new signing secret and its sealed form for endpoint id.
func (s *Service) webhookNewSecret(id string) (secret, sealed string, err error) {
	if s.opts.Sealer == nil {
		return "", "", errNoSealer
	}
	b := make([]byte, webhookSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", thauth.Internal(err, "could not generate a webhook secret")
	}
	secret = webhookSecretPrefix + base64.StdEncoding.EncodeToString(b)
	sealed, err = s.opts.Sealer.Seal(WebhookPurpose, id, []byte(secret))
	if err != nil {
		return "", "", thauth.Internal(err, "could not store the webhook secret")
	}
	return secret, sealed, nil
}

// webhookCheckURL validates an endpoint URL (see the file comment) and returns its host for
// the audit log.
func (s *Service) webhookCheckURL(raw string) (host string, err error) {
	if raw == "" {
		return "", thauth.Errorf(thauth.EInvalid, "url is required")
	}
	if len(raw) > maxWebhookURLBytes {
		return "", thauth.Errorf(thauth.EInvalid, "url is longer than %d bytes", maxWebhookURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", thauth.Errorf(thauth.EInvalid, "url is not a valid URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && s.opts.AllowInsecureWebhooks:
	case u.Scheme == "http":
		return "", thauth.Errorf(thauth.EInvalid, "url must use https")
	default:
		return "", thauth.Errorf(thauth.EInvalid, "url must be an absolute https:// URL")
	}
	if u.User != nil {
		return "", thauth.Errorf(thauth.EInvalid,
			"url must not contain credentials (user:password@): receivers authenticate us by the signature")
	}
	if u.Hostname() == "" {
		return "", thauth.Errorf(thauth.EInvalid, "url has no host")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return "", thauth.Errorf(thauth.EInvalid, "url must not have a #fragment (it is never sent)")
	}
	if s.opts.CheckWebhookURL != nil {
		if err := s.opts.CheckWebhookURL(raw); err != nil {
			msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "webhook: "), "URL not allowed: ")
			return "", thauth.Errorf(thauth.EInvalid, "url is not allowed: %s", msg)
		}
	}
	return u.Host, nil
}

// webhookCheckEvents validates and de-duplicates event type patterns: "*", "security.*" or
// "security.<kind>". An empty list means every event.
func webhookCheckEvents(events []string) ([]string, error) {
	if len(events) > maxWebhookPatterns {
		return nil, thauth.Errorf(thauth.EInvalid, "events may list at most %d patterns", maxWebhookPatterns)
	}
	var out []string
	for _, p := range events {
		kind, ok := strings.CutPrefix(p, SecurityEventTypePrefix)
		if p != "*" && !(ok && (kind == "*" || securityValidKind(kind))) {
			return nil, thauth.Errorf(thauth.EInvalid,
				`events: %q is not an event type pattern: use "security.*", "security.<kind>" (see docs/security-events.md) or "*"`,
				truncate(p, 80))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// webhookWants reports whether ep takes events of eventType; the same rule as
// internal/webhook's Endpoint.Wants.
func webhookWants(ep *thauth.WebhookEndpoint, eventType string) bool {
	if ep.DisabledAt != nil {
		return false
	}
	if len(ep.Events) == 0 {
		return true
	}
	for _, p := range ep.Events {
		if p == "*" || p == eventType {
			return true
		}
		if fam, ok := strings.CutSuffix(p, "*"); ok && strings.HasSuffix(fam, ".") && strings.HasPrefix(eventType, fam) {
			return true
		}
	}
	return false
}

// webhookPayload returns the body of a webhook, in internal/webhook's NewPayload envelope.
func webhookPayload(eventType string, at time.Time, data any) ([]byte, error) {
	b, err := json.Marshal(struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      any       `json:"data"`
	}{eventType, at.UTC(), data})
	if err != nil {
		return nil, thauth.Internal(err, "could not build the webhook payload")
	}
	return b, nil
}

// webhookDelivery returns a pending delivery of an event to ep, due now.
func (s *Service) webhookDelivery(ep *thauth.WebhookEndpoint, eventID, eventType string, payload []byte) (thauth.WebhookDelivery, error) {
	id, err := newID()
	if err != nil {
		return thauth.WebhookDelivery{}, err
	}
	now := s.clock()
	return thauth.WebhookDelivery{
		ID: id, OrganizationID: ep.OrganizationID, EndpointID: ep.ID, EventID: eventID, EventType: eventType,
		Payload: payload, Status: thauth.DeliveryPending, NextAttemptAt: &now, CreatedAt: now,
	}, nil
}

// webhookPublic returns ep as callers see it: without its sealed secrets, and without a
// rotation overlap that has ended.
func (s *Service) webhookPublic(ep thauth.WebhookEndpoint) thauth.WebhookEndpoint {
	ep.Secret, ep.PreviousSecret = "", ""
	if ep.PreviousSecretExpiresAt != nil && !ep.PreviousSecretExpiresAt.After(s.clock()) {
		ep.PreviousSecretExpiresAt = nil
	}
	if ep.Events == nil {
		ep.Events = []string{}
	}
	return ep
}

// webhookGet reads an endpoint of orgID through d; errWebhookNotFound when it has none.
func webhookGet(ctx context.Context, d thauth.Data, orgID, id string) (*thauth.WebhookEndpoint, error) {
	ep, err := d.GetWebhookEndpoint(ctx, orgID, id)
	if thauth.ErrorCodeOf(err) == thauth.ENotFound {
		return nil, errWebhookNotFound
	}
	return ep, err
}

// webhookHost is the host of an endpoint URL, for the audit log.
func webhookHost(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}

// CreateWebhookEndpoint registers rawURL to receive the organization's events matching
// events (nil or empty: every event), with a description of at most 500 characters, and
// returns the endpoint and its signing secret — the only time the secret is shown. Needs
// security:manage. EInvalid for a URL or pattern that is refused (see the file comment),
// EConflict when the organization has MaxWebhookEndpoints already, EUnavailable without a
// Sealer. Recorded as webhook.created.
func (s *Service) CreateWebhookEndpoint(ctx context.Context, a Actor, orgID, rawURL, description string, events []string) (*thauth.WebhookEndpoint, string, error) {
	acc, err := s.Authorize(ctx, a, orgID, "security", "manage")
	if err != nil {
		return nil, "", err
	}
	host, err := s.webhookCheckURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	if description != "" {
		if msg := validateLabel(description, maxWebhookDescription); msg != "" {
			return nil, "", thauth.Errorf(thauth.EInvalid, "description %s", msg)
		}
	}
	events, err = webhookCheckEvents(events)
	if err != nil {
		return nil, "", err
	}
	id, err := newID()
	if err != nil {
		return nil, "", err
	}
	secret, sealed, err := s.webhookNewSecret(id)
	if err != nil {
		return nil, "", err
	}
	ep := &thauth.WebhookEndpoint{ID: id, OrganizationID: orgID, URL: rawURL, Description: description,
		Events: events, Secret: sealed, CreatedAt: s.clock()}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		existing, err := tx.ListWebhookEndpoints(ctx, orgID)
		if err != nil {
			return err
		}
		if len(existing) >= MaxWebhookEndpoints {
			return thauth.Errorf(thauth.EConflict,
				"an organization can have at most %d webhook endpoints: delete one first", MaxWebhookEndpoints)
		}
		if err := tx.CreateWebhookEndpoint(ctx, orgID, ep); err != nil {
			return err
		}
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "webhook.created", Target: id, Client: a.Client,
			Data: map[string]string{"host": host, "events": strings.Join(events, " ")}})
	})
	if err != nil {
		return nil, "", storeError(err, "could not create the webhook endpoint")
	}
	s.log.InfoContext(ctx, "webhook endpoint created", "organization_id", orgID, "endpoint_id", id)
	out := s.webhookPublic(*ep)
	return &out, secret, nil
}

// ListWebhookEndpoints returns the organization's endpoints, oldest first, without their
// secrets. Needs security:read.
func (s *Service) ListWebhookEndpoints(ctx context.Context, a Actor, orgID string) ([]thauth.WebhookEndpoint, error) {
	if _, err := s.Authorize(ctx, a, orgID, "security", "read"); err != nil {
		return nil, err
	}
	list, err := s.store.ListWebhookEndpoints(ctx, orgID)
	if err != nil {
		return nil, storeError(err, "could not list the webhook endpoints")
	}
	out := make([]thauth.WebhookEndpoint, len(list))
	for i := range list {
		out[i] = s.webhookPublic(list[i])
	}
	return out, nil
}

// DeleteWebhookEndpoint deletes an endpoint with its delivery history; deliveries still
// pending are dropped. Needs security:manage; ENotFound "webhook endpoint not found" for an
// id the organization does not have. Recorded as webhook.deleted.
func (s *Service) DeleteWebhookEndpoint(ctx context.Context, a Actor, orgID, endpointID string) error {
	acc, err := s.Authorize(ctx, a, orgID, "security", "manage")
	if err != nil {
		return err
	}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		ep, err := webhookGet(ctx, tx, orgID, endpointID)
		if err != nil {
			return err
		}
		if err := tx.DeleteWebhookEndpoint(ctx, orgID, endpointID); err != nil {
			return err
		}
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "webhook.deleted", Target: endpointID, Client: a.Client,
			Data: map[string]string{"host": webhookHost(ep.URL)}})
	})
	if err != nil {
		return storeError(err, "could not delete the webhook endpoint")
	}
	s.log.InfoContext(ctx, "webhook endpoint deleted", "organization_id", orgID, "endpoint_id", endpointID)
	return nil
}

// RotateWebhookSecret gives the endpoint a new signing secret, returned once. The current
// secret becomes the previous one and keeps signing (every request carries both signatures)
// for WebhookRotationOverlap; a secret that was already being rotated out stops at once.
// Needs security:manage; ENotFound for an unknown endpoint. Recorded as
// webhook.secret_rotated.
func (s *Service) RotateWebhookSecret(ctx context.Context, a Actor, orgID, endpointID string) (*thauth.WebhookEndpoint, string, error) {
	acc, err := s.Authorize(ctx, a, orgID, "security", "manage")
	if err != nil {
		return nil, "", err
	}
	secret, sealed, err := s.webhookNewSecret(endpointID)
	if err != nil {
		return nil, "", err
	}
	var ep *thauth.WebhookEndpoint
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		var err error
		if ep, err = webhookGet(ctx, tx, orgID, endpointID); err != nil {
			return err
		}
		until := s.clock().Add(WebhookRotationOverlap)
		// The sealed value is bound to the purpose and the endpoint id, not to the column,
		// so the current secret moves to previous_secret as it is.
		ep.PreviousSecret, ep.PreviousSecretExpiresAt, ep.Secret = ep.Secret, &until, sealed
		if err := tx.UpdateWebhookEndpoint(ctx, orgID, ep); err != nil {
			return err
		}
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "webhook.secret_rotated", Target: endpointID, Client: a.Client,
			Data: map[string]string{"previous_secret_valid_until": until.Format(time.RFC3339)}})
	})
	if err != nil {
		return nil, "", storeError(err, "could not rotate the webhook secret")
	}
	s.log.InfoContext(ctx, "webhook secret rotated", "organization_id", orgID, "endpoint_id", endpointID)
	out := s.webhookPublic(*ep)
	return &out, secret, nil
}

// ListWebhookDeliveries returns the endpoint's deliveries, newest first, up to limit (0
// means DefaultWebhookListLimit; at most MaxWebhookListLimit). Needs security:read;
// ENotFound for an unknown endpoint.
func (s *Service) ListWebhookDeliveries(ctx context.Context, a Actor, orgID, endpointID string, limit int) ([]thauth.WebhookDelivery, error) {
	if _, err := s.Authorize(ctx, a, orgID, "security", "read"); err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = DefaultWebhookListLimit
	}
	if limit < 1 || limit > MaxWebhookListLimit {
		return nil, thauth.Errorf(thauth.EInvalid, "limit must be from 1 to %d", MaxWebhookListLimit)
	}
	if _, err := webhookGet(ctx, s.store, orgID, endpointID); err != nil {
		return nil, storeError(err, "could not read the webhook endpoint")
	}
	list, err := s.store.ListDeliveries(ctx, orgID, endpointID, limit)
	if err != nil {
		return nil, storeError(err, "could not list the webhook deliveries")
	}
	return list, nil
}

// ListWebhookAttempts returns the attempts of one of the organization's deliveries, in
// order. Needs security:read; ENotFound "webhook delivery not found" for a delivery of
// another organization or none. (A delivery without attempts is looked for among the
// organization's newest 1000; an older one that was never attempted answers not found.)
func (s *Service) ListWebhookAttempts(ctx context.Context, a Actor, orgID, deliveryID string) ([]thauth.WebhookAttempt, error) {
	if _, err := s.Authorize(ctx, a, orgID, "security", "read"); err != nil {
		return nil, err
	}
	list, err := s.store.ListAttempts(ctx, orgID, deliveryID)
	if err != nil {
		return nil, storeError(err, "could not list the webhook attempts")
	}
	if len(list) > 0 {
		return list, nil
	}
	// The store answers "none" both for a delivery not yet attempted and for one that is
	// not the organization's; only the first is an empty history.
	ds, err := s.store.ListDeliveries(ctx, orgID, "", webhookAttemptsScanLimit)
	if err != nil {
		return nil, storeError(err, "could not read the webhook delivery")
	}
	if !slices.ContainsFunc(ds, func(d thauth.WebhookDelivery) bool { return d.ID == deliveryID }) {
		return nil, errDeliveryNotFound
	}
	return []thauth.WebhookAttempt{}, nil
}

// SendTestEvent queues a delivery of a "security.test" event to the endpoint, whatever
// events it subscribes to, and returns the delivery (its history shows the outcome). Needs
// security:manage; ENotFound for an unknown endpoint, EConflict for a disabled one.
// Recorded as webhook.test_sent.
func (s *Service) SendTestEvent(ctx context.Context, a Actor, orgID, endpointID string) (*thauth.WebhookDelivery, error) {
	acc, err := s.Authorize(ctx, a, orgID, "security", "manage")
	if err != nil {
		return nil, err
	}
	eventID, err := newID()
	if err != nil {
		return nil, err
	}
	now := s.clock()
	payload, err := webhookPayload(WebhookTestEventType, now, securityEventJSON{
		ID: eventID, OrganizationID: orgID, Kind: "test", Severity: thauth.SeverityLow, At: now,
		Title: "Test event sent from the Thauth console", Evidence: map[string]string{},
	})
	if err != nil {
		return nil, err
	}
	var d thauth.WebhookDelivery
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		ep, err := webhookGet(ctx, tx, orgID, endpointID)
		if err != nil {
			return err
		}
		if ep.DisabledAt != nil {
			return thauth.Errorf(thauth.EConflict, "this webhook endpoint is disabled (%s): create a new one",
				truncate(ep.DisabledReason, 200))
		}
		if d, err = s.webhookDelivery(ep, eventID, WebhookTestEventType, payload); err != nil {
			return err
		}
		if err := tx.EnqueueDeliveries(ctx, orgID, []thauth.WebhookDelivery{d}); err != nil {
			return err
		}
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "webhook.test_sent", Target: endpointID, Client: a.Client,
			Data: map[string]string{"delivery_id": d.ID, "event_id": eventID}})
	})
	if err != nil {
		return nil, storeError(err, "could not queue the test event")
	}
	return &d, nil
}
