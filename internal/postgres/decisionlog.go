package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth"
)

// The decision log. Records come in batches from the asynchronous log writer and go in with
// COPY, the fastest way into PostgreSQL; reads walk the (project_id, at, id) index newest
// first and stop at the limit. The log has no foreign key to projects (it outlives what it
// describes): AppendDecisions drops the records of projects that do not exist itself.

const decisionColumns = `id, project_id, at, key_id, subject, feature, action, tenant, resource, allowed, reason,
	latency_us, gap`

func scanDecision(sc rowScanner) (thauth.DecisionRecord, error) {
	var r thauth.DecisionRecord
	var allowed int32
	var latency int64
	err := sc.Scan(&r.ID, &r.ProjectID, &r.At, &r.KeyID, &r.Subject, &r.Feature, &r.Action, &r.Tenant, &r.Resource,
		&allowed, &r.Reason, &latency, &r.Gap)
	r.At, r.Allowed, r.Latency = r.At.UTC(), allowed != 0, time.Duration(latency)*time.Microsecond
	return r, err
}

// decisionBatch is the temporary table AppendDecisions copies a batch into: created once
// per connection, emptied at every commit (ON COMMIT DELETE ROWS truncates it in place,
// without touching the catalog) and by the insert that reads it.
const decisionBatch = `CREATE TEMP TABLE IF NOT EXISTS thauth_decision_batch (
    ord        INTEGER NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    key_id     TEXT COLLATE "C" NOT NULL,
    subject    TEXT COLLATE "C" NOT NULL,
    feature    TEXT COLLATE "C" NOT NULL,
    action     TEXT COLLATE "C" NOT NULL,
    tenant     TEXT COLLATE "C" NOT NULL,
    resource   TEXT COLLATE "C" NOT NULL,
    allowed    INTEGER NOT NULL,
    reason     TEXT COLLATE "C" NOT NULL,
    latency_us BIGINT NOT NULL,
    gap        BIGINT NOT NULL
) ON COMMIT DELETE ROWS`

// decisionBatchInsert moves the copied batch into the log, in batch order, skipping the
// records of projects that do not exist and the ids already stored.
const decisionBatchInsert = `WITH b AS (DELETE FROM thauth_decision_batch RETURNING *)
INSERT INTO decision_log (` + decisionColumns + `)
SELECT ` + decisionColumns + ` FROM b WHERE EXISTS (SELECT 1 FROM projects p WHERE p.id = b.project_id)
ORDER BY b.ord
ON CONFLICT (id) DO NOTHING`

// decisionBatchColumns are the temporary table's columns for COPY.
var decisionBatchColumns = []string{"ord", "id", "project_id", "at", "key_id", "subject", "feature", "action", "tenant",
	"resource", "allowed", "reason", "latency_us", "gap"}

// AppendDecisions writes recs with COPY: into a temporary table, then into the log with one
// INSERT … SELECT that skips the records of projects that do not exist and the ids already
// stored (a retried batch inserts nothing twice; of two records with one id in a batch the
// first is kept). It needs a write transaction (the Store runs it in one of its own), in
// which the batch goes in whole or not at all. recs is not modified; times are stored in
// UTC to the microsecond, latencies in whole microseconds.
func (d *data) AppendDecisions(ctx context.Context, recs []thauth.DecisionRecord) error {
	if len(recs) == 0 {
		return nil
	}
	cp, ok := d.q.(copier)
	if !ok || !d.lock {
		return thauth.Internal(errors.New("AppendDecisions outside a write transaction"), "cannot append decisions")
	}
	if _, err := d.q.Exec(ctx, decisionBatch); err != nil {
		return mapErr(err, "cannot append decisions")
	}
	_, err := cp.CopyFrom(ctx, pgx.Identifier{"thauth_decision_batch"}, decisionBatchColumns,
		pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
			r := &recs[i]
			return []any{int32(i), r.ID, r.ProjectID, normTime(r.At), r.KeyID, r.Subject, r.Feature, r.Action, r.Tenant,
				r.Resource, boolInt(r.Allowed), r.Reason, r.Latency.Microseconds(), r.Gap}, nil
		}))
	if err == nil {
		_, err = d.q.Exec(ctx, decisionBatchInsert)
	}
	return mapErr(err, "cannot append decisions")
}

// GetDecision returns the project's record with this id; ENotFound if there is none.
func (d *data) GetDecision(ctx context.Context, projectID, decisionID string) (*thauth.DecisionRecord, error) {
	r, err := scanDecision(d.q.QueryRow(ctx, `SELECT `+decisionColumns+` FROM decision_log
		WHERE id = $1 AND project_id = $2`, decisionID, projectID))
	if err != nil {
		return nil, notFound(err, "decision")
	}
	return &r, nil
}

// ListDecisions returns the project's records f selects, newest (at, then id) first. The
// statement walks the (project_id, at, id) index backwards from the cursor and stops at the
// limit, so a page costs the records it reads however large the log; the filters (and the
// "or a gap marker" that keeps gaps visible) are checked on the way. An unknown project
// has no records.
func (d *data) ListDecisions(ctx context.Context, projectID string, f thauth.DecisionFilter) ([]thauth.DecisionRecord, error) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where := []string{"project_id = " + arg(projectID)}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(normTime(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "at < "+arg(normTime(f.Until)))
	}
	if f.Before != nil {
		where = append(where, "(at, id) < ("+arg(normTime(f.Before.At))+", "+arg(f.Before.ID)+")")
	}
	var match []string
	for _, c := range []struct{ column, value string }{
		{"subject", f.Subject}, {"feature", f.Feature}, {"action", f.Action}, {"tenant", f.Tenant},
		{"reason", f.Reason}, {"key_id", f.KeyID},
	} {
		if c.value != "" {
			match = append(match, c.column+" = "+arg(c.value))
		}
	}
	if f.Allowed != nil {
		match = append(match, "allowed = "+arg(boolInt(*f.Allowed)))
	}
	if len(match) > 0 {
		where = append(where, "(gap > 0 OR ("+strings.Join(match, " AND ")+"))")
	}
	rows, err := d.q.Query(ctx, `SELECT `+decisionColumns+` FROM decision_log WHERE `+strings.Join(where, " AND ")+
		` ORDER BY at DESC, id DESC LIMIT `+arg(listLimit(f.Limit)), args...)
	return collect(rows, err, "cannot list decisions", scanDecision)
}

// listLimit is the limit of a listing documented as 1–1000: a limit outside that range
// means 1000.
func listLimit(limit int) int {
	if limit < 1 || limit > 1000 {
		return 1000
	}
	return limit
}

// PruneDecisions deletes up to limit of the oldest records (by at, then id) with at <
// before, found along the (at) index, and returns how many it deleted; none when limit <= 0.
func (d *data) PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	tag, err := d.q.Exec(ctx, `DELETE FROM decision_log WHERE id IN (
		SELECT id FROM decision_log WHERE at < $1 ORDER BY at, id LIMIT $2)`, normTime(before), limit)
	if err != nil {
		return 0, mapErr(err, "cannot prune decisions")
	}
	return int(tag.RowsAffected()), nil
}
