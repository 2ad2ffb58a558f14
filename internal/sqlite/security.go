package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/thauth/thauth"
)

// Security events, webhook endpoints with their deliveries and attempts, operators'
// incidents, organization suspension and audit retention. Webhook rows are addressed through
// their organization, so an id of another organization's row is ENotFound (or nothing, for
// listings) and left alone.

// ---- security events ----

const securityEventColumns = `id, organization_id, project_id, kind, severity, at, title, evidence`

func scanSecurityEvent(sc scanner) (thauth.SecurityEvent, error) {
	var e thauth.SecurityEvent
	var ts int64
	err := sc.Scan(&e.ID, &e.OrganizationID, &e.ProjectID, &e.Kind, &e.Severity, &ts, &e.Title, &e.Evidence)
	e.At = fromMicros(ts)
	return e, err
}

// AppendSecurityEvent inserts e (normalizing e.At); EConflict if its id is taken.
func (d *data) AppendSecurityEvent(ctx context.Context, e *thauth.SecurityEvent) error {
	e.At = normTime(e.At)
	_, err := d.exec(ctx, `INSERT INTO security_events (`+securityEventColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.OrganizationID, e.ProjectID, e.Kind, e.Severity, micros(e.At), e.Title, e.Evidence)
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "a security event with this id already exists")
	}
	return mapErr(err, "cannot record security event")
}

// ListSecurityEvents returns the organization's events ("" for the installation's), newest
// (at, then id) first, after before when it is not nil; a limit outside 1–1000 means 1000.
func (d *data) ListSecurityEvents(ctx context.Context, orgID string, before *thauth.DecisionCursor, limit int) ([]thauth.SecurityEvent, error) {
	q := `SELECT ` + securityEventColumns + ` FROM security_events WHERE organization_id = ?`
	args := []any{orgID}
	if before != nil {
		b := micros(before.At)
		q += ` AND (at < ? OR (at = ? AND id < ?))`
		args = append(args, b, b, before.ID)
	}
	args = append(args, listLimit(limit))
	rows, err := d.query(ctx, q+` ORDER BY at DESC, id DESC LIMIT ?`, args...)
	return collect(rows, err, "cannot list security events", scanSecurityEvent)
}

// ---- webhook endpoints ----

const webhookEndpointColumns = `id, organization_id, url, description, events, secret, previous_secret,
	previous_secret_expires_at, disabled_at, disabled_reason, created_at`

// encodeEvents stores an endpoint's event patterns as a JSON array ("[]" when empty), the
// same text in every engine so that backups cross engines.
func encodeEvents(events []string) string {
	if len(events) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(events) // a []string always marshals
	return string(b)
}

func decodeEvents(s string) ([]string, error) {
	if s == "" {
		return []string{}, nil
	}
	out := []string{}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, thauth.Internal(err, "stored webhook event list is not a JSON array")
	}
	return out, nil
}

func scanWebhookEndpoint(sc scanner) (thauth.WebhookEndpoint, error) {
	var ep thauth.WebhookEndpoint
	var events string
	var prevExpires, disabled sql.NullInt64
	var created int64
	err := sc.Scan(&ep.ID, &ep.OrganizationID, &ep.URL, &ep.Description, &events, &ep.Secret, &ep.PreviousSecret,
		&prevExpires, &disabled, &ep.DisabledReason, &created)
	if err != nil {
		return ep, err
	}
	ep.PreviousSecretExpiresAt, ep.DisabledAt, ep.CreatedAt = fromNullMicros(prevExpires), fromNullMicros(disabled), fromMicros(created)
	ep.Events, err = decodeEvents(events)
	return ep, err
}

func normWebhookEndpoint(ep *thauth.WebhookEndpoint) {
	ep.CreatedAt = normTime(ep.CreatedAt)
	normOptTime(&ep.PreviousSecretExpiresAt)
	normOptTime(&ep.DisabledAt)
}

// CreateWebhookEndpoint inserts ep into organization orgID (setting ep.OrganizationID);
// ENotFound if the organization does not exist, EConflict if the id is taken.
func (d *data) CreateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	ep.OrganizationID = orgID
	normWebhookEndpoint(ep)
	_, err := d.exec(ctx, `INSERT INTO webhook_endpoints (`+webhookEndpointColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ep.ID, orgID, ep.URL, ep.Description, encodeEvents(ep.Events), ep.Secret, ep.PreviousSecret,
		nullMicros(ep.PreviousSecretExpiresAt), nullMicros(ep.DisabledAt), ep.DisabledReason, micros(ep.CreatedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "a webhook endpoint with this id already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "organization not found")
	}
	return mapErr(err, "cannot create webhook endpoint")
}

// GetWebhookEndpoint returns the organization's endpoint; ENotFound if there is none.
func (d *data) GetWebhookEndpoint(ctx context.Context, orgID, endpointID string) (*thauth.WebhookEndpoint, error) {
	st, err := d.stmt(ctx, `SELECT `+webhookEndpointColumns+` FROM webhook_endpoints WHERE organization_id = ? AND id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read webhook endpoint")
	}
	ep, err := scanWebhookEndpoint(st.QueryRowContext(ctx, orgID, endpointID))
	if err != nil {
		return nil, notFound(err, "webhook endpoint")
	}
	return &ep, nil
}

// ListWebhookEndpoints returns the organization's endpoints, oldest (created_at, then id) first.
func (d *data) ListWebhookEndpoints(ctx context.Context, orgID string) ([]thauth.WebhookEndpoint, error) {
	rows, err := d.query(ctx, `SELECT `+webhookEndpointColumns+` FROM webhook_endpoints WHERE organization_id = ?
		ORDER BY created_at, id`, orgID)
	return collect(rows, err, "cannot list webhook endpoints", scanWebhookEndpoint)
}

// UpdateWebhookEndpoint writes ep's mutable fields (see thauth.WebhookStore); ENotFound if
// the organization has no such endpoint.
func (d *data) UpdateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	normOptTime(&ep.PreviousSecretExpiresAt)
	normOptTime(&ep.DisabledAt)
	res, err := d.exec(ctx, `UPDATE webhook_endpoints SET url = ?, description = ?, events = ?, secret = ?, previous_secret = ?,
		previous_secret_expires_at = ?, disabled_at = ?, disabled_reason = ? WHERE organization_id = ? AND id = ?`,
		ep.URL, ep.Description, encodeEvents(ep.Events), ep.Secret, ep.PreviousSecret, nullMicros(ep.PreviousSecretExpiresAt),
		nullMicros(ep.DisabledAt), ep.DisabledReason, orgID, ep.ID)
	return affected(res, err, "webhook endpoint")
}

// DeleteWebhookEndpoint deletes the organization's endpoint; its deliveries and their
// attempts go with it (foreign key cascades). ENotFound if there is no such endpoint.
func (d *data) DeleteWebhookEndpoint(ctx context.Context, orgID, endpointID string) error {
	res, err := d.exec(ctx, `DELETE FROM webhook_endpoints WHERE organization_id = ? AND id = ?`, orgID, endpointID)
	return affected(res, err, "webhook endpoint")
}

// ---- webhook deliveries ----

const webhookDeliveryColumns = `id, organization_id, endpoint_id, event_id, event_type, payload, status, attempts,
	next_attempt_at, last_attempt_at, last_status_code, last_error, created_at, delivered_at`

func scanWebhookDelivery(sc scanner) (thauth.WebhookDelivery, error) {
	var w thauth.WebhookDelivery
	var next, last, delivered sql.NullInt64
	var created int64
	err := sc.Scan(&w.ID, &w.OrganizationID, &w.EndpointID, &w.EventID, &w.EventType, &w.Payload, &w.Status, &w.Attempts,
		&next, &last, &w.LastStatusCode, &w.LastError, &created, &delivered)
	w.NextAttemptAt, w.LastAttemptAt, w.DeliveredAt = fromNullMicros(next), fromNullMicros(last), fromNullMicros(delivered)
	w.CreatedAt = fromMicros(created)
	if w.Payload == nil {
		w.Payload = []byte{}
	}
	return w, err
}

// EnqueueDeliveries inserts ds into organization orgID, as given (ds is not modified; the
// caller sets Status to pending). ENotFound if an endpoint is not the organization's,
// EConflict if an id is taken.
func (d *data) EnqueueDeliveries(ctx context.Context, orgID string, ds []thauth.WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	st, err := d.stmt(ctx, `INSERT INTO webhook_deliveries (`+webhookDeliveryColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return mapErr(err, "cannot enqueue webhook deliveries")
	}
	for i := range ds {
		w := &ds[i]
		payload := w.Payload
		if payload == nil {
			payload = []byte{} // NOT NULL
		}
		_, err := st.ExecContext(ctx, w.ID, orgID, w.EndpointID, w.EventID, w.EventType, payload, w.Status, w.Attempts,
			nullMicros(w.NextAttemptAt), nullMicros(w.LastAttemptAt), w.LastStatusCode, w.LastError, micros(w.CreatedAt),
			nullMicros(w.DeliveredAt))
		switch {
		case isUniqueViolation(err):
			return thauth.Errorf(thauth.EConflict, "a webhook delivery with this id already exists")
		case isForeignKeyViolation(err):
			return thauth.Errorf(thauth.ENotFound, "webhook endpoint not found")
		case err != nil:
			return mapErr(err, "cannot enqueue webhook deliveries")
		}
	}
	return nil
}

// ClaimDeliveries selects the due pending deliveries (by next_attempt_at, then id) and moves
// them to leaseUntil in the same write transaction; SQLite's single writer makes that atomic
// with respect to every other claimer. They come back as stored, with the new NextAttemptAt,
// in the order they were due.
func (d *data) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]thauth.WebhookDelivery, error) {
	if limit <= 0 {
		return []thauth.WebhookDelivery{}, nil
	}
	rows, err := d.query(ctx, `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries
		WHERE status = ? AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?
		ORDER BY next_attempt_at, id LIMIT ?`, thauth.DeliveryPending, micros(now), limit)
	ws, err := collect(rows, err, "cannot claim webhook deliveries", scanWebhookDelivery)
	if err != nil {
		return nil, err
	}
	until := normTime(leaseUntil)
	for i := range ws {
		if _, err := d.exec(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?`, micros(until), ws[i].ID); err != nil {
			return nil, mapErr(err, "cannot claim webhook deliveries")
		}
		ws[i].NextAttemptAt = ptr(until)
	}
	return ws, nil
}

func ptr[T any](v T) *T { return &v }

// UpdateDelivery writes w's delivery state and, when a is not nil, appends a (setting
// a.DeliveryID) to its history; ENotFound if the organization has no such delivery,
// EConflict if the attempt number is taken.
func (d *data) UpdateDelivery(ctx context.Context, orgID string, w *thauth.WebhookDelivery, a *thauth.WebhookAttempt) error {
	normOptTime(&w.NextAttemptAt)
	normOptTime(&w.LastAttemptAt)
	normOptTime(&w.DeliveredAt)
	res, err := d.exec(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?,
		last_status_code = ?, last_error = ?, delivered_at = ? WHERE organization_id = ? AND id = ?`,
		w.Status, w.Attempts, nullMicros(w.NextAttemptAt), nullMicros(w.LastAttemptAt), w.LastStatusCode, w.LastError,
		nullMicros(w.DeliveredAt), orgID, w.ID)
	if err := affected(res, err, "webhook delivery"); err != nil || a == nil {
		return err
	}
	a.DeliveryID, a.At = w.ID, normTime(a.At)
	_, err = d.exec(ctx, `INSERT INTO webhook_attempts (`+webhookAttemptColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		orgID, a.DeliveryID, a.Number, micros(a.At), a.Duration.Milliseconds(), a.StatusCode, a.Error, a.RetryAfter.Milliseconds())
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "this webhook attempt is already recorded")
	}
	return mapErr(err, "cannot record webhook attempt")
}

// ListDeliveries returns the organization's deliveries (of endpointID when it is not ""),
// newest (created_at, then id) first, up to limit (every one when limit <= 0).
func (d *data) ListDeliveries(ctx context.Context, orgID, endpointID string, limit int) ([]thauth.WebhookDelivery, error) {
	lim := int64(limit)
	if limit <= 0 {
		lim = -1 // SQLite: no limit
	}
	rows, err := d.query(ctx, `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries
		WHERE organization_id = ? AND (? = '' OR endpoint_id = ?) ORDER BY created_at DESC, id DESC LIMIT ?`,
		orgID, endpointID, endpointID, lim)
	return collect(rows, err, "cannot list webhook deliveries", scanWebhookDelivery)
}

const webhookAttemptColumns = `organization_id, delivery_id, number, at, duration_ms, status_code, error, retry_after_ms`

// ListAttempts returns the attempts of the organization's delivery by number (none for
// another organization's delivery).
func (d *data) ListAttempts(ctx context.Context, orgID, deliveryID string) ([]thauth.WebhookAttempt, error) {
	rows, err := d.query(ctx, `SELECT delivery_id, number, at, duration_ms, status_code, error, retry_after_ms
		FROM webhook_attempts WHERE organization_id = ? AND delivery_id = ? ORDER BY number`, orgID, deliveryID)
	return collect(rows, err, "cannot list webhook attempts", func(sc scanner) (thauth.WebhookAttempt, error) {
		var a thauth.WebhookAttempt
		var ts, dur, retry int64
		err := sc.Scan(&a.DeliveryID, &a.Number, &ts, &dur, &a.StatusCode, &a.Error, &retry)
		a.At, a.Duration, a.RetryAfter = fromMicros(ts), time.Duration(dur)*time.Millisecond, time.Duration(retry)*time.Millisecond
		return a, err
	})
}

// ---- incidents ----

const incidentColumns = `id, title, status, created_at, created_by, closed_at`

func scanIncident(sc scanner) (thauth.Incident, error) {
	var inc thauth.Incident
	var created int64
	var closed sql.NullInt64
	err := sc.Scan(&inc.ID, &inc.Title, &inc.Status, &created, &inc.CreatedBy, &closed)
	inc.CreatedAt, inc.ClosedAt = fromMicros(created), fromNullMicros(closed)
	return inc, err
}

// CreateIncident inserts inc; EConflict if its id is taken.
func (d *data) CreateIncident(ctx context.Context, inc *thauth.Incident) error {
	inc.CreatedAt = normTime(inc.CreatedAt)
	normOptTime(&inc.ClosedAt)
	_, err := d.exec(ctx, `INSERT INTO incidents (`+incidentColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		inc.ID, inc.Title, inc.Status, micros(inc.CreatedAt), inc.CreatedBy, nullMicros(inc.ClosedAt))
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "an incident with this id already exists")
	}
	return mapErr(err, "cannot create incident")
}

func (d *data) GetIncident(ctx context.Context, incidentID string) (*thauth.Incident, error) {
	st, err := d.stmt(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read incident")
	}
	inc, err := scanIncident(st.QueryRowContext(ctx, incidentID))
	if err != nil {
		return nil, notFound(err, "incident")
	}
	return &inc, nil
}

// ListIncidents returns every incident, newest (created_at, then id) first.
func (d *data) ListIncidents(ctx context.Context) ([]thauth.Incident, error) {
	rows, err := d.query(ctx, `SELECT `+incidentColumns+` FROM incidents ORDER BY created_at DESC, id DESC`)
	return collect(rows, err, "cannot list incidents", scanIncident)
}

// UpdateIncident writes inc's Title, Status and ClosedAt; ENotFound if there is no such incident.
func (d *data) UpdateIncident(ctx context.Context, inc *thauth.Incident) error {
	normOptTime(&inc.ClosedAt)
	res, err := d.exec(ctx, `UPDATE incidents SET title = ?, status = ?, closed_at = ? WHERE id = ?`,
		inc.Title, inc.Status, nullMicros(inc.ClosedAt), inc.ID)
	return affected(res, err, "incident")
}

// AppendIncidentEvent appends ev to its incident's timeline with the next Seq (1 first); the
// read of the last Seq and the insert share the write transaction, and SQLite has one
// writer, so concurrent appends never collide or leave gaps. ENotFound for an unknown incident.
func (d *data) AppendIncidentEvent(ctx context.Context, ev *thauth.IncidentEvent) error {
	ev.At = normTime(ev.At)
	var seq int64
	err := d.queryRow(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM incident_events WHERE incident_id = ?`,
		[]any{ev.IncidentID}, &seq)
	if err != nil {
		return mapErr(err, "cannot append incident event")
	}
	_, err = d.exec(ctx, `INSERT INTO incident_events (incident_id, seq, at, actor, kind, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		ev.IncidentID, seq, micros(ev.At), ev.Actor, ev.Kind, ev.Detail)
	if isForeignKeyViolation(err) {
		return thauth.Errorf(thauth.ENotFound, "incident not found")
	}
	if err != nil {
		return mapErr(err, "cannot append incident event")
	}
	ev.Seq = seq
	return nil
}

// ListIncidentEvents returns the incident's timeline in Seq order (none for an unknown incident).
func (d *data) ListIncidentEvents(ctx context.Context, incidentID string) ([]thauth.IncidentEvent, error) {
	rows, err := d.query(ctx, `SELECT incident_id, seq, at, actor, kind, detail FROM incident_events
		WHERE incident_id = ? ORDER BY seq`, incidentID)
	return collect(rows, err, "cannot list incident events", func(sc scanner) (thauth.IncidentEvent, error) {
		var ev thauth.IncidentEvent
		var ts int64
		err := sc.Scan(&ev.IncidentID, &ev.Seq, &ts, &ev.Actor, &ev.Kind, &ev.Detail)
		ev.At = fromMicros(ts)
		return ev, err
	})
}

// ---- suspension and audit retention ----

// SetOrganizationSuspension suspends the organization at at with reason or, with at nil,
// reinstates it (clearing the reason); ENotFound for an unknown organization.
func (d *data) SetOrganizationSuspension(ctx context.Context, orgID string, at *time.Time, reason string) error {
	if at == nil {
		reason = ""
	}
	res, err := d.exec(ctx, `UPDATE organizations SET suspended_at = ?, suspended_reason = ? WHERE id = ?`,
		nullMicros(at), reason, orgID)
	return affected(res, err, "organization")
}

// PruneAudit deletes up to limit audit entries with at < before, oldest first, and returns
// how many; a limit <= 0 deletes nothing. audit_chains keeps every chain's head.
func (d *data) PruneAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	res, err := d.exec(ctx, `DELETE FROM audit_log WHERE id IN
		(SELECT id FROM audit_log WHERE at < ? ORDER BY at, chain, seq LIMIT ?)`, micros(before), limit)
	return rowsAffected(res, err, "cannot prune the audit log")
}
