package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/thauth/thauth"
)

// Authentication throttles and the mail outbox: the small shared counters and queues that let
// several nodes on one database agree on failures and never send one message twice at once.

// ---- throttles ----

const throttleColumns = `key, failures, last_failure_at, locked_until`

func scanThrottle(sc scanner) (thauth.Throttle, error) {
	var th thauth.Throttle
	var last int64
	var locked sql.NullInt64
	err := sc.Scan(&th.Key, &th.Failures, &last, &locked)
	th.LastFailureAt, th.LockedUntil = fromMicros(last), fromNullMicros(locked)
	return th, err
}

func (d *data) GetThrottle(ctx context.Context, key string) (*thauth.Throttle, error) {
	st, err := d.stmt(ctx, `SELECT `+throttleColumns+` FROM auth_throttles WHERE key = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read throttle")
	}
	th, err := scanThrottle(st.QueryRowContext(ctx, key))
	if err != nil {
		return nil, notFound(err, "throttle")
	}
	return &th, nil
}

// RecordFailure counts one failure of key at at in one upsert, restarting the count when
// the previous failure is older than resetBefore; the lock is kept.
func (d *data) RecordFailure(ctx context.Context, key string, at, resetBefore time.Time) (*thauth.Throttle, error) {
	st, err := d.stmt(ctx, `INSERT INTO auth_throttles (key, failures, last_failure_at) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN auth_throttles.last_failure_at < ? THEN 1 ELSE auth_throttles.failures + 1 END,
			last_failure_at = excluded.last_failure_at
		RETURNING `+throttleColumns)
	if err != nil {
		return nil, mapErr(err, "cannot record failure")
	}
	th, err := scanThrottle(st.QueryRowContext(ctx, key, micros(at), micros(resetBefore)))
	if err != nil {
		return nil, mapErr(err, "cannot record failure")
	}
	return &th, nil
}

// LockThrottle sets key's LockedUntil. A counter it creates has no failures; its
// LastFailureAt is the Unix epoch (no failure yet), so the next failure starts a new count.
func (d *data) LockThrottle(ctx context.Context, key string, until time.Time) error {
	_, err := d.exec(ctx, `INSERT INTO auth_throttles (key, failures, last_failure_at, locked_until) VALUES (?, 0, 0, ?)
		ON CONFLICT (key) DO UPDATE SET locked_until = excluded.locked_until`, key, micros(until))
	return mapErr(err, "cannot lock throttle")
}

// ClearThrottle deletes key's counter; a key without one is not an error.
func (d *data) ClearThrottle(ctx context.Context, key string) error {
	_, err := d.exec(ctx, `DELETE FROM auth_throttles WHERE key = ?`, key)
	return mapErr(err, "cannot clear throttle")
}

// ---- outbox ----

const mailColumns = `id, to_address, template, payload, status, attempts, next_attempt_at, last_error, provider_id, created_at, sent_at`

func scanMail(sc scanner) (thauth.OutboxMail, error) {
	var m thauth.OutboxMail
	var next, created int64
	var sent sql.NullInt64
	err := sc.Scan(&m.ID, &m.To, &m.Template, &m.Payload, &m.Status, &m.Attempts, &next, &m.LastError, &m.ProviderID, &created, &sent)
	m.NextAttemptAt, m.CreatedAt, m.SentAt = fromMicros(next), fromMicros(created), fromNullMicros(sent)
	return m, err
}

// EnqueueMail inserts m; EConflict if its id is taken.
func (d *data) EnqueueMail(ctx context.Context, m *thauth.OutboxMail) error {
	m.NextAttemptAt, m.CreatedAt = normTime(m.NextAttemptAt), normTime(m.CreatedAt)
	normOptTime(&m.SentAt)
	_, err := d.exec(ctx, `INSERT INTO mail_outbox (`+mailColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.To, m.Template, m.Payload, m.Status, m.Attempts, micros(m.NextAttemptAt), m.LastError, m.ProviderID,
		micros(m.CreatedAt), nullMicros(m.SentAt))
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "a message with this id already exists")
	}
	return mapErr(err, "cannot enqueue mail")
}

// ClaimMail selects the due pending messages (by NextAttemptAt then id) and moves them to
// now+lease in the same write transaction; SQLite's single writer makes that atomic with
// respect to every other claimer. The messages come back as stored, with the new
// NextAttemptAt, in the order they were due.
func (d *data) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]thauth.OutboxMail, error) {
	if limit <= 0 {
		return []thauth.OutboxMail{}, nil
	}
	rows, err := d.query(ctx, `SELECT `+mailColumns+` FROM mail_outbox WHERE status = ? AND next_attempt_at <= ?
		ORDER BY next_attempt_at, id LIMIT ?`, thauth.MailPending, micros(now), limit)
	ms, err := collect(rows, err, "cannot claim mail", scanMail)
	if err != nil {
		return nil, err
	}
	until := normTime(now.Add(lease))
	for i := range ms {
		if _, err := d.exec(ctx, `UPDATE mail_outbox SET next_attempt_at = ? WHERE id = ?`, micros(until), ms[i].ID); err != nil {
			return nil, mapErr(err, "cannot claim mail")
		}
		ms[i].NextAttemptAt = until
	}
	return ms, nil
}

// UpdateMail writes the delivery state of m.ID; ENotFound if there is no such message.
func (d *data) UpdateMail(ctx context.Context, m *thauth.OutboxMail) error {
	m.NextAttemptAt = normTime(m.NextAttemptAt)
	normOptTime(&m.SentAt)
	res, err := d.exec(ctx, `UPDATE mail_outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, provider_id = ?,
		sent_at = ?, payload = ? WHERE id = ?`,
		m.Status, m.Attempts, micros(m.NextAttemptAt), m.LastError, m.ProviderID, nullMicros(m.SentAt), m.Payload, m.ID)
	return affected(res, err, "message")
}

func (d *data) GetMail(ctx context.Context, id string) (*thauth.OutboxMail, error) {
	st, err := d.stmt(ctx, `SELECT `+mailColumns+` FROM mail_outbox WHERE id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read message")
	}
	m, err := scanMail(st.QueryRowContext(ctx, id))
	if err != nil {
		return nil, notFound(err, "message")
	}
	return &m, nil
}

// ListMail returns up to limit messages (every one when limit <= 0), newest first (ties by
// id, descending).
func (d *data) ListMail(ctx context.Context, limit int) ([]thauth.OutboxMail, error) {
	lim := int64(limit)
	if limit <= 0 {
		lim = -1 // SQLite: no limit
	}
	rows, err := d.query(ctx, `SELECT `+mailColumns+` FROM mail_outbox ORDER BY created_at DESC, id DESC LIMIT ?`, lim)
	return collect(rows, err, "cannot list mail", scanMail)
}

func (d *data) CountPendingMail(ctx context.Context) (int, error) {
	var n int
	err := d.queryRow(ctx, `SELECT count(*) FROM mail_outbox WHERE status = ?`, []any{thauth.MailPending}, &n)
	return n, mapErr(err, "cannot count mail")
}
