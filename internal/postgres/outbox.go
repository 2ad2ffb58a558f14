package postgres

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/thauth/thauth"
)

// Authentication throttles and the mail outbox: the small shared counters and queues that let
// several nodes on one database agree on failures and never hand one message to two senders
// at once. Each method is one statement, atomic on its own.

// ---- throttles ----

const throttleColumns = `key, failures, last_failure_at, locked_until`

func scanThrottle(sc rowScanner) (thauth.Throttle, error) {
	var th thauth.Throttle
	err := sc.Scan(&th.Key, &th.Failures, &th.LastFailureAt, &th.LockedUntil)
	th.LastFailureAt, th.LockedUntil = th.LastFailureAt.UTC(), utcPtr(th.LockedUntil)
	return th, err
}

func (d *data) GetThrottle(ctx context.Context, key string) (*thauth.Throttle, error) {
	th, err := scanThrottle(d.q.QueryRow(ctx, `SELECT `+throttleColumns+` FROM auth_throttles WHERE key = $1`, key))
	if err != nil {
		return nil, notFound(err, "throttle")
	}
	return &th, nil
}

// RecordFailure counts one failure of key at at in one upsert, restarting the count when
// the previous failure is older than resetBefore; the lock is kept. Concurrent failures of
// one key (from any node) each count: the upsert of the second waits for the first's row.
func (d *data) RecordFailure(ctx context.Context, key string, at, resetBefore time.Time) (*thauth.Throttle, error) {
	th, err := scanThrottle(d.q.QueryRow(ctx, `INSERT INTO auth_throttles (key, failures, last_failure_at) VALUES ($1, 1, $2)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN auth_throttles.last_failure_at < $3 THEN 1 ELSE auth_throttles.failures + 1 END,
			last_failure_at = excluded.last_failure_at
		RETURNING `+throttleColumns, key, normTime(at), normTime(resetBefore)))
	if err != nil {
		return nil, mapErr(err, "cannot record failure")
	}
	return &th, nil
}

// noFailure is the LastFailureAt of a counter created by LockThrottle: the Unix epoch, so
// the next failure starts a new count (as in the SQLite store).
var noFailure = time.Unix(0, 0).UTC()

// LockThrottle sets key's LockedUntil. A counter it creates has no failures and noFailure
// as its LastFailureAt.
func (d *data) LockThrottle(ctx context.Context, key string, until time.Time) error {
	_, err := d.q.Exec(ctx, `INSERT INTO auth_throttles (key, failures, last_failure_at, locked_until) VALUES ($1, 0, $2, $3)
		ON CONFLICT (key) DO UPDATE SET locked_until = excluded.locked_until`, key, noFailure, normTime(until))
	return mapErr(err, "cannot lock throttle")
}

// ClearThrottle deletes key's counter; a key without one is not an error.
func (d *data) ClearThrottle(ctx context.Context, key string) error {
	_, err := d.q.Exec(ctx, `DELETE FROM auth_throttles WHERE key = $1`, key)
	return mapErr(err, "cannot clear throttle")
}

// ---- outbox ----

const mailColumns = `id, to_address, template, payload, status, attempts, next_attempt_at, last_error, provider_id, created_at, sent_at`

// scanMail scans mailColumns, then extra.
func scanMail(sc rowScanner, extra ...any) (thauth.OutboxMail, error) {
	var m thauth.OutboxMail
	err := sc.Scan(append([]any{&m.ID, &m.To, &m.Template, &m.Payload, &m.Status, &m.Attempts, &m.NextAttemptAt,
		&m.LastError, &m.ProviderID, &m.CreatedAt, &m.SentAt}, extra...)...)
	m.NextAttemptAt, m.CreatedAt, m.SentAt = m.NextAttemptAt.UTC(), m.CreatedAt.UTC(), utcPtr(m.SentAt)
	return m, err
}

func scanMailRow(sc rowScanner) (thauth.OutboxMail, error) { return scanMail(sc) }

// EnqueueMail inserts m; EConflict if its id is taken.
func (d *data) EnqueueMail(ctx context.Context, m *thauth.OutboxMail) error {
	m.NextAttemptAt, m.CreatedAt = normTime(m.NextAttemptAt), normTime(m.CreatedAt)
	normOptTime(&m.SentAt)
	_, err := d.q.Exec(ctx, `INSERT INTO mail_outbox (`+mailColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		m.ID, m.To, m.Template, m.Payload, m.Status, m.Attempts, m.NextAttemptAt, m.LastError, m.ProviderID,
		m.CreatedAt, nullTime(m.SentAt))
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "a message with this id already exists")
	}
	return mapErr(err, "cannot enqueue mail")
}

// claimMail picks the due messages and moves them in one statement. FOR UPDATE SKIP LOCKED
// makes concurrent claimers (on any node) pass over the rows another one is claiming instead
// of waiting for them, and READ COMMITTED re-checks a row that another claimer moved and
// committed meanwhile against next_attempt_at <= now, so no message is claimed twice.
const claimMail = `WITH due AS (
	SELECT id, next_attempt_at FROM mail_outbox WHERE status = $1 AND next_attempt_at <= $2
	ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED
)
UPDATE mail_outbox m SET next_attempt_at = $3 FROM due WHERE m.id = due.id
RETURNING m.id, m.to_address, m.template, m.payload, m.status, m.attempts, m.next_attempt_at, m.last_error,
	m.provider_id, m.created_at, m.sent_at, due.next_attempt_at`

// ClaimMail returns up to limit due pending messages, with their new NextAttemptAt
// (now+lease), in the order they were due (then by id); none when limit <= 0.
func (d *data) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]thauth.OutboxMail, error) {
	if limit <= 0 {
		return []thauth.OutboxMail{}, nil
	}
	type claimed struct {
		m   thauth.OutboxMail
		due time.Time
	}
	rows, err := d.q.Query(ctx, claimMail, thauth.MailPending, normTime(now), normTime(now.Add(lease)), limit)
	cs, err := collect(rows, err, "cannot claim mail", func(sc rowScanner) (claimed, error) {
		var c claimed
		var err error
		c.m, err = scanMail(sc, &c.due)
		return c, err
	})
	if err != nil {
		return nil, err
	}
	// RETURNING has no order.
	slices.SortFunc(cs, func(a, b claimed) int {
		return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.m.ID, b.m.ID))
	})
	ms := make([]thauth.OutboxMail, len(cs))
	for i, c := range cs {
		ms[i] = c.m
	}
	return ms, nil
}

// UpdateMail writes the delivery state of m.ID; ENotFound if there is no such message.
func (d *data) UpdateMail(ctx context.Context, m *thauth.OutboxMail) error {
	m.NextAttemptAt = normTime(m.NextAttemptAt)
	normOptTime(&m.SentAt)
	tag, err := d.q.Exec(ctx, `UPDATE mail_outbox SET status = $1, attempts = $2, next_attempt_at = $3, last_error = $4,
		provider_id = $5, sent_at = $6, payload = $7 WHERE id = $8`,
		m.Status, m.Attempts, m.NextAttemptAt, m.LastError, m.ProviderID, nullTime(m.SentAt), m.Payload, m.ID)
	return affected(tag, err, "message")
}

func (d *data) GetMail(ctx context.Context, id string) (*thauth.OutboxMail, error) {
	m, err := scanMail(d.q.QueryRow(ctx, `SELECT `+mailColumns+` FROM mail_outbox WHERE id = $1`, id))
	if err != nil {
		return nil, notFound(err, "message")
	}
	return &m, nil
}

// ListMail returns up to limit messages (every one when limit <= 0), newest first (ties by
// id, descending).
func (d *data) ListMail(ctx context.Context, limit int) ([]thauth.OutboxMail, error) {
	var lim *int64 // NULL: no limit
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	rows, err := d.q.Query(ctx, `SELECT `+mailColumns+` FROM mail_outbox ORDER BY created_at DESC, id DESC LIMIT $1`, lim)
	return collect(rows, err, "cannot list mail", scanMailRow)
}

func (d *data) CountPendingMail(ctx context.Context) (int, error) {
	var n int
	err := d.q.QueryRow(ctx, `SELECT count(*) FROM mail_outbox WHERE status = $1`, thauth.MailPending).Scan(&n)
	return n, mapErr(err, "cannot count mail")
}
