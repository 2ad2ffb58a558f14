package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/thauth/thauth"
)

// Security events, webhook endpoints with their deliveries and attempts, operators'
// incidents, organization suspension and audit retention. Webhook rows are addressed through
// their organization, so the id of another organization's row is ENotFound (or nothing, in
// listings) and left alone. Each method is one statement, atomic on its own, except
// UpdateDelivery with an attempt and AppendIncidentEvent, which the Store runs in a write
// transaction of their own.

// ---- security events ----

const securityEventColumns = `id, organization_id, project_id, kind, severity, at, title, evidence`

func scanSecurityEvent(sc rowScanner) (thauth.SecurityEvent, error) {
	var e thauth.SecurityEvent
	err := sc.Scan(&e.ID, &e.OrganizationID, &e.ProjectID, &e.Kind, &e.Severity, &e.At, &e.Title, &e.Evidence)
	e.At = e.At.UTC()
	return e, err
}

// AppendSecurityEvent inserts e (normalizing e.At; Evidence as given); EConflict if its id
// is taken.
func (d *data) AppendSecurityEvent(ctx context.Context, e *thauth.SecurityEvent) error {
	e.At = normTime(e.At)
	_, err := d.q.Exec(ctx, `INSERT INTO security_events (`+securityEventColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		e.ID, e.OrganizationID, e.ProjectID, e.Kind, e.Severity, e.At, e.Title, e.Evidence)
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "a security event with this id already exists")
	}
	return mapErr(err, "cannot record security event")
}

// ListSecurityEvents returns the organization's events ("" for the installation's), newest
// (at, then id) first, after before when it is not nil, along the (organization_id, at, id)
// index; a limit outside 1–1000 means 1000.
func (d *data) ListSecurityEvents(ctx context.Context, orgID string, before *thauth.DecisionCursor, limit int) ([]thauth.SecurityEvent, error) {
	var rows pgx.Rows
	var err error
	if before == nil {
		rows, err = d.q.Query(ctx, `SELECT `+securityEventColumns+` FROM security_events WHERE organization_id = $1
			ORDER BY at DESC, id DESC LIMIT $2`, orgID, listLimit(limit))
	} else {
		rows, err = d.q.Query(ctx, `SELECT `+securityEventColumns+` FROM security_events WHERE organization_id = $1
			AND (at, id) < ($3, $4) ORDER BY at DESC, id DESC LIMIT $2`, orgID, listLimit(limit), normTime(before.At), before.ID)
	}
	return collect(rows, err, "cannot list security events", scanSecurityEvent)
}

// ---- webhook endpoints ----

const webhookEndpointColumns = `id, organization_id, url, description, events, secret, previous_secret,
	previous_secret_expires_at, disabled_at, disabled_reason, created_at`

// encodeEvents stores an endpoint's event patterns as a JSON array (encoding/json's bytes,
// "[]" when empty), the same text as the SQLite store's so that backups cross engines.
func encodeEvents(events []string) string {
	if len(events) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(events) // a []string always marshals
	return string(b)
}

// decodeEvents reads a stored event list ("" is empty too).
func decodeEvents(s string) ([]string, error) {
	out := []string{}
	if s == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, thauth.Internal(err, "stored webhook event list is not a JSON array")
	}
	return out, nil
}

func scanWebhookEndpoint(sc rowScanner) (thauth.WebhookEndpoint, error) {
	var ep thauth.WebhookEndpoint
	var events string
	err := sc.Scan(&ep.ID, &ep.OrganizationID, &ep.URL, &ep.Description, &events, &ep.Secret, &ep.PreviousSecret,
		&ep.PreviousSecretExpiresAt, &ep.DisabledAt, &ep.DisabledReason, &ep.CreatedAt)
	if err != nil {
		return ep, err
	}
	ep.PreviousSecretExpiresAt, ep.DisabledAt = utcPtr(ep.PreviousSecretExpiresAt), utcPtr(ep.DisabledAt)
	ep.CreatedAt = ep.CreatedAt.UTC()
	ep.Events, err = decodeEvents(events)
	return ep, err
}

// CreateWebhookEndpoint inserts ep into organization orgID (setting ep.OrganizationID and
// normalizing its times); ENotFound if the organization does not exist, EConflict if the id
// is taken.
func (d *data) CreateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	ep.OrganizationID = orgID
	ep.CreatedAt = normTime(ep.CreatedAt)
	normOptTime(&ep.PreviousSecretExpiresAt)
	normOptTime(&ep.DisabledAt)
	_, err := d.q.Exec(ctx, `INSERT INTO webhook_endpoints (`+webhookEndpointColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		ep.ID, orgID, ep.URL, ep.Description, encodeEvents(ep.Events), ep.Secret, ep.PreviousSecret,
		nullTime(ep.PreviousSecretExpiresAt), nullTime(ep.DisabledAt), ep.DisabledReason, ep.CreatedAt)
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
	ep, err := scanWebhookEndpoint(d.q.QueryRow(ctx, `SELECT `+webhookEndpointColumns+` FROM webhook_endpoints
		WHERE organization_id = $1 AND id = $2`, orgID, endpointID))
	if err != nil {
		return nil, notFound(err, "webhook endpoint")
	}
	return &ep, nil
}

// ListWebhookEndpoints returns the organization's endpoints, oldest (created_at, then id)
// first.
func (d *data) ListWebhookEndpoints(ctx context.Context, orgID string) ([]thauth.WebhookEndpoint, error) {
	rows, err := d.q.Query(ctx, `SELECT `+webhookEndpointColumns+` FROM webhook_endpoints WHERE organization_id = $1
		ORDER BY created_at, id`, orgID)
	return collect(rows, err, "cannot list webhook endpoints", scanWebhookEndpoint)
}

// UpdateWebhookEndpoint writes ep's mutable fields (see thauth.WebhookStore); ENotFound if
// the organization has no such endpoint.
func (d *data) UpdateWebhookEndpoint(ctx context.Context, orgID string, ep *thauth.WebhookEndpoint) error {
	normOptTime(&ep.PreviousSecretExpiresAt)
	normOptTime(&ep.DisabledAt)
	tag, err := d.q.Exec(ctx, `UPDATE webhook_endpoints SET url = $1, description = $2, events = $3, secret = $4,
		previous_secret = $5, previous_secret_expires_at = $6, disabled_at = $7, disabled_reason = $8
		WHERE organization_id = $9 AND id = $10`,
		ep.URL, ep.Description, encodeEvents(ep.Events), ep.Secret, ep.PreviousSecret, nullTime(ep.PreviousSecretExpiresAt),
		nullTime(ep.DisabledAt), ep.DisabledReason, orgID, ep.ID)
	return affected(tag, err, "webhook endpoint")
}

// DeleteWebhookEndpoint deletes the organization's endpoint; its deliveries and their
// attempts go with it (foreign key cascades, in the same statement). ENotFound if there is
// no such endpoint.
func (d *data) DeleteWebhookEndpoint(ctx context.Context, orgID, endpointID string) error {
	tag, err := d.q.Exec(ctx, `DELETE FROM webhook_endpoints WHERE organization_id = $1 AND id = $2`, orgID, endpointID)
	return affected(tag, err, "webhook endpoint")
}

// ---- webhook deliveries ----

const webhookDeliveryColumns = `id, organization_id, endpoint_id, event_id, event_type, payload, status, attempts,
	next_attempt_at, last_attempt_at, last_status_code, last_error, created_at, delivered_at`

// scanDelivery scans webhookDeliveryColumns, then extra.
func scanDelivery(sc rowScanner, extra ...any) (thauth.WebhookDelivery, error) {
	var w thauth.WebhookDelivery
	err := sc.Scan(append([]any{&w.ID, &w.OrganizationID, &w.EndpointID, &w.EventID, &w.EventType, &w.Payload, &w.Status,
		&w.Attempts, &w.NextAttemptAt, &w.LastAttemptAt, &w.LastStatusCode, &w.LastError, &w.CreatedAt, &w.DeliveredAt},
		extra...)...)
	w.NextAttemptAt, w.LastAttemptAt, w.DeliveredAt = utcPtr(w.NextAttemptAt), utcPtr(w.LastAttemptAt), utcPtr(w.DeliveredAt)
	w.CreatedAt = w.CreatedAt.UTC()
	w.Payload = nonNilBytes(w.Payload)
	return w, err
}

func scanDeliveryRow(sc rowScanner) (thauth.WebhookDelivery, error) { return scanDelivery(sc) }

// enqueueDeliveries inserts the deliveries given as arrays, one element per delivery, in
// one statement ($1 is the organization).
const enqueueDeliveries = `INSERT INTO webhook_deliveries (` + webhookDeliveryColumns + `)
SELECT d.id, $1, d.endpoint_id, d.event_id, d.event_type, d.payload, d.status, d.attempts, d.next_attempt_at,
	d.last_attempt_at, d.last_status_code, d.last_error, d.created_at, d.delivered_at
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[], $8::int4[], $9::timestamptz[],
	$10::timestamptz[], $11::int4[], $12::text[], $13::timestamptz[], $14::timestamptz[])
	AS d (id, endpoint_id, event_id, event_type, payload, status, attempts, next_attempt_at, last_attempt_at,
		last_status_code, last_error, created_at, delivered_at)`

// EnqueueDeliveries inserts ds into organization orgID as given (ds is not modified; the
// caller sets Status to pending), all in one statement: ENotFound if an endpoint is not the
// organization's, EConflict if an id is taken, and then none is inserted.
func (d *data) EnqueueDeliveries(ctx context.Context, orgID string, ds []thauth.WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	n := len(ds)
	ids, endpoints, events, types := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	statuses, lastErrors := make([]string, n), make([]string, n)
	payloads := make([][]byte, n)
	attempts, codes := make([]int32, n), make([]int32, n)
	next, last := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	created, delivered := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	for i := range ds {
		w := &ds[i]
		ids[i], endpoints[i], events[i], types[i] = w.ID, w.EndpointID, w.EventID, w.EventType
		statuses[i], lastErrors[i] = w.Status, w.LastError
		payloads[i] = nonNilBytes(w.Payload)
		attempts[i], codes[i] = int32(w.Attempts), int32(w.LastStatusCode)
		next[i], last[i], delivered[i] = nullTime(w.NextAttemptAt), nullTime(w.LastAttemptAt), nullTime(w.DeliveredAt)
		created[i] = pgtype.Timestamptz{Time: normTime(w.CreatedAt), Valid: true}
	}
	_, err := d.q.Exec(ctx, enqueueDeliveries, orgID, ids, endpoints, events, types, payloads, statuses, attempts, next, last,
		codes, lastErrors, created, delivered)
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "a webhook delivery with this id already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "webhook endpoint not found")
	}
	return mapErr(err, "cannot enqueue webhook deliveries")
}

// claimDeliveries picks the due deliveries and moves them to the lease's end in one
// statement, as claimMail does for mail: FOR UPDATE SKIP LOCKED makes concurrent claimers
// (on any node) pass over the rows another one is claiming, and READ COMMITTED re-checks a
// row that another claimer moved and committed meanwhile against next_attempt_at <= now, so
// no delivery is claimed twice. The (status, next_attempt_at) index finds the due rows in
// order.
const claimDeliveries = `WITH due AS (
	SELECT id, next_attempt_at FROM webhook_deliveries WHERE status = $1 AND next_attempt_at <= $2
	ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries w SET next_attempt_at = $3 FROM due WHERE w.id = due.id
RETURNING w.id, w.organization_id, w.endpoint_id, w.event_id, w.event_type, w.payload, w.status, w.attempts,
	w.next_attempt_at, w.last_attempt_at, w.last_status_code, w.last_error, w.created_at, w.delivered_at, due.next_attempt_at`

// ClaimDeliveries returns up to limit due pending deliveries of any organization, with their
// new NextAttemptAt (leaseUntil), in the order they were due (then by id); none when limit
// <= 0.
func (d *data) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]thauth.WebhookDelivery, error) {
	if limit <= 0 {
		return []thauth.WebhookDelivery{}, nil
	}
	type claimed struct {
		w   thauth.WebhookDelivery
		due time.Time
	}
	rows, err := d.q.Query(ctx, claimDeliveries, thauth.DeliveryPending, normTime(now), normTime(leaseUntil), limit)
	cs, err := collect(rows, err, "cannot claim webhook deliveries", func(sc rowScanner) (claimed, error) {
		var c claimed
		var err error
		c.w, err = scanDelivery(sc, &c.due)
		return c, err
	})
	if err != nil {
		return nil, err
	}
	// RETURNING has no order.
	slices.SortFunc(cs, func(a, b claimed) int {
		return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.w.ID, b.w.ID))
	})
	ws := make([]thauth.WebhookDelivery, len(cs))
	for i, c := range cs {
		ws[i] = c.w
	}
	return ws, nil
}

const webhookAttemptColumns = `organization_id, delivery_id, number, at, duration_ms, status_code, error, retry_after_ms`

// UpdateDelivery writes w's delivery state and, when a is not nil, appends a (setting
// a.DeliveryID and normalizing a.At) to its history; ENotFound if the organization has no
// such delivery, EConflict if the attempt number is taken. With an attempt it takes two
// statements: the Store runs it in a transaction of its own, so that both or neither apply.
func (d *data) UpdateDelivery(ctx context.Context, orgID string, w *thauth.WebhookDelivery, a *thauth.WebhookAttempt) error {
	normOptTime(&w.NextAttemptAt)
	normOptTime(&w.LastAttemptAt)
	normOptTime(&w.DeliveredAt)
	tag, err := d.q.Exec(ctx, `UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3,
		last_attempt_at = $4, last_status_code = $5, last_error = $6, delivered_at = $7 WHERE organization_id = $8 AND id = $9`,
		w.Status, w.Attempts, nullTime(w.NextAttemptAt), nullTime(w.LastAttemptAt), w.LastStatusCode, w.LastError,
		nullTime(w.DeliveredAt), orgID, w.ID)
	if err := affected(tag, err, "webhook delivery"); err != nil || a == nil {
		return err
	}
	a.DeliveryID, a.At = w.ID, normTime(a.At)
	_, err = d.q.Exec(ctx, `INSERT INTO webhook_attempts (`+webhookAttemptColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		orgID, a.DeliveryID, a.Number, a.At, a.Duration.Milliseconds(), a.StatusCode, a.Error, a.RetryAfter.Milliseconds())
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "this webhook attempt is already recorded")
	}
	return mapErr(err, "cannot record webhook attempt")
}

// ListDeliveries returns the organization's deliveries (of endpointID when it is not ""),
// newest (created_at, then id) first, up to limit (every one when limit <= 0).
func (d *data) ListDeliveries(ctx context.Context, orgID, endpointID string, limit int) ([]thauth.WebhookDelivery, error) {
	var lim *int64 // NULL: no limit
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	var rows pgx.Rows
	var err error
	if endpointID == "" {
		rows, err = d.q.Query(ctx, `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries WHERE organization_id = $1
			ORDER BY created_at DESC, id DESC LIMIT $2`, orgID, lim)
	} else {
		rows, err = d.q.Query(ctx, `SELECT `+webhookDeliveryColumns+` FROM webhook_deliveries
			WHERE organization_id = $1 AND endpoint_id = $3 ORDER BY created_at DESC, id DESC LIMIT $2`, orgID, lim, endpointID)
	}
	return collect(rows, err, "cannot list webhook deliveries", scanDeliveryRow)
}

// ListAttempts returns the attempts of the organization's delivery by number (none for
// another organization's delivery).
func (d *data) ListAttempts(ctx context.Context, orgID, deliveryID string) ([]thauth.WebhookAttempt, error) {
	rows, err := d.q.Query(ctx, `SELECT delivery_id, number, at, duration_ms, status_code, error, retry_after_ms
		FROM webhook_attempts WHERE organization_id = $1 AND delivery_id = $2 ORDER BY number`, orgID, deliveryID)
	return collect(rows, err, "cannot list webhook attempts", func(sc rowScanner) (thauth.WebhookAttempt, error) {
		var a thauth.WebhookAttempt
		var dur, retry int64
		err := sc.Scan(&a.DeliveryID, &a.Number, &a.At, &dur, &a.StatusCode, &a.Error, &retry)
		a.At, a.Duration, a.RetryAfter = a.At.UTC(), time.Duration(dur)*time.Millisecond, time.Duration(retry)*time.Millisecond
		return a, err
	})
}

// ---- incidents ----

const incidentColumns = `id, title, status, created_at, created_by, closed_at`

func scanIncident(sc rowScanner) (thauth.Incident, error) {
	var inc thauth.Incident
	err := sc.Scan(&inc.ID, &inc.Title, &inc.Status, &inc.CreatedAt, &inc.CreatedBy, &inc.ClosedAt)
	inc.CreatedAt, inc.ClosedAt = inc.CreatedAt.UTC(), utcPtr(inc.ClosedAt)
	return inc, err
}

// CreateIncident inserts inc (normalizing its times); EConflict if its id is taken.
func (d *data) CreateIncident(ctx context.Context, inc *thauth.Incident) error {
	inc.CreatedAt = normTime(inc.CreatedAt)
	normOptTime(&inc.ClosedAt)
	_, err := d.q.Exec(ctx, `INSERT INTO incidents (`+incidentColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		inc.ID, inc.Title, inc.Status, inc.CreatedAt, inc.CreatedBy, nullTime(inc.ClosedAt))
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "an incident with this id already exists")
	}
	return mapErr(err, "cannot create incident")
}

// GetIncident returns the incident; ENotFound if there is none.
func (d *data) GetIncident(ctx context.Context, incidentID string) (*thauth.Incident, error) {
	inc, err := scanIncident(d.q.QueryRow(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = $1`, incidentID))
	if err != nil {
		return nil, notFound(err, "incident")
	}
	return &inc, nil
}

// ListIncidents returns every incident, newest (created_at, then id) first.
func (d *data) ListIncidents(ctx context.Context) ([]thauth.Incident, error) {
	rows, err := d.q.Query(ctx, `SELECT `+incidentColumns+` FROM incidents ORDER BY created_at DESC, id DESC`)
	return collect(rows, err, "cannot list incidents", scanIncident)
}

// UpdateIncident writes inc's Title, Status and ClosedAt; ENotFound if there is no such
// incident.
func (d *data) UpdateIncident(ctx context.Context, inc *thauth.Incident) error {
	normOptTime(&inc.ClosedAt)
	tag, err := d.q.Exec(ctx, `UPDATE incidents SET title = $1, status = $2, closed_at = $3 WHERE id = $4`,
		inc.Title, inc.Status, nullTime(inc.ClosedAt), inc.ID)
	return affected(tag, err, "incident")
}

// appendIncidentEvent inserts an event with the incident's next seq. It must run after the
// incident's row is locked, in a statement of its own: in READ COMMITTED that statement's
// snapshot then includes every event appended by the transactions that held the lock before.
const appendIncidentEvent = `INSERT INTO incident_events (incident_id, seq, at, actor, kind, detail)
SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5 FROM incident_events WHERE incident_id = $1
RETURNING seq`

// AppendIncidentEvent appends ev (normalizing ev.At) to its incident's timeline with the
// next Seq (1 first), setting ev.Seq; ENotFound for an unknown incident. It locks the
// incident's row (SELECT … FOR NO KEY UPDATE) and then reads the last Seq and inserts in one
// statement, so appends to one incident from any number of nodes run one after the other,
// each seeing the previous one's event: Seq has no gaps and no duplicates. It needs a write
// transaction (the Store runs it in one of its own), which holds the lock until it ends;
// both statements go in one round trip.
func (d *data) AppendIncidentEvent(ctx context.Context, ev *thauth.IncidentEvent) error {
	if !d.lock {
		return thauth.Internal(errors.New("AppendIncidentEvent outside a write transaction"), "cannot append incident event")
	}
	ev.At = normTime(ev.At)
	b := &pgx.Batch{}
	b.Queue(`SELECT 1 FROM incidents WHERE id = $1 FOR NO KEY UPDATE`, ev.IncidentID)
	b.Queue(appendIncidentEvent, ev.IncidentID, ev.At, ev.Actor, ev.Kind, ev.Detail)
	br := d.q.SendBatch(ctx, b)
	var one int
	var seq int64
	err := br.QueryRow().Scan(&one)
	if err == nil {
		err = br.QueryRow().Scan(&seq)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return notFound(err, "incident")
	}
	ev.Seq = seq
	return nil
}

// ListIncidentEvents returns the incident's timeline in Seq order (none for an unknown
// incident).
func (d *data) ListIncidentEvents(ctx context.Context, incidentID string) ([]thauth.IncidentEvent, error) {
	rows, err := d.q.Query(ctx, `SELECT incident_id, seq, at, actor, kind, detail FROM incident_events
		WHERE incident_id = $1 ORDER BY seq`, incidentID)
	return collect(rows, err, "cannot list incident events", func(sc rowScanner) (thauth.IncidentEvent, error) {
		var ev thauth.IncidentEvent
		err := sc.Scan(&ev.IncidentID, &ev.Seq, &ev.At, &ev.Actor, &ev.Kind, &ev.Detail)
		ev.At = ev.At.UTC()
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
	tag, err := d.q.Exec(ctx, `UPDATE organizations SET suspended_at = $1, suspended_reason = $2 WHERE id = $3`,
		nullTime(at), reason, orgID)
	return affected(tag, err, "organization")
}

// PruneAudit deletes up to limit of the oldest audit entries (by at, then chain and seq) with
// at < before and returns how many; a limit <= 0 deletes nothing. audit_chains keeps every
// chain's head.
func (d *data) PruneAudit(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	tag, err := d.q.Exec(ctx, `DELETE FROM audit_log WHERE id IN (
		SELECT id FROM audit_log WHERE at < $1 ORDER BY at, chain, seq LIMIT $2)`, normTime(before), limit)
	if err != nil {
		return 0, mapErr(err, "cannot prune the audit log")
	}
	return int(tag.RowsAffected()), nil
}
