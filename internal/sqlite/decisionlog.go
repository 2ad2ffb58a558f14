package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// The decision log: what /v1/check answered, written in batches by the asynchronous log
// writer. Rows have no foreign key to their project (they outlive it until retention prunes
// them), so AppendDecisions checks that the project exists as part of each insert.

const decisionColumns = `id, project_id, at, key_id, subject, feature, action, tenant, resource, allowed, reason, latency_us, gap`

// maxListLimit bounds the listings whose limit is documented as 1–1000.
const maxListLimit = 1000

// listLimit is limit within 1–maxListLimit; a limit outside that range means maxListLimit.
func listLimit(limit int) int {
	if limit < 1 || limit > maxListLimit {
		return maxListLimit
	}
	return limit
}

func scanDecision(sc scanner) (thauth.DecisionRecord, error) {
	var r thauth.DecisionRecord
	var ts, allowed, latency int64
	err := sc.Scan(&r.ID, &r.ProjectID, &ts, &r.KeyID, &r.Subject, &r.Feature, &r.Action, &r.Tenant, &r.Resource,
		&allowed, &r.Reason, &latency, &r.Gap)
	r.At, r.Allowed, r.Latency = fromMicros(ts), allowed != 0, time.Duration(latency)*time.Microsecond
	return r, err
}

// AppendDecisions inserts recs with multi-row INSERT statements (decisionRowsPerInsert rows
// each: one statement per row costs several times more in this driver). A record of a
// project that does not exist is skipped (each distinct project is looked up once per call),
// and so is a record whose id is already stored (a retried batch inserts nothing twice).
// recs is not modified.
func (d *data) AppendDecisions(ctx context.Context, recs []thauth.DecisionRecord) error {
	if len(recs) == 0 {
		return nil
	}
	exists := map[string]bool{}
	keep := make([]*thauth.DecisionRecord, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		ok, seen := exists[r.ProjectID]
		if !seen {
			var one int
			err := d.queryRow(ctx, `SELECT 1 FROM projects WHERE id = ?`, []any{r.ProjectID}, &one)
			switch {
			case err == nil:
				ok = true
			case errors.Is(err, sql.ErrNoRows):
				ok = false
			default:
				return mapErr(err, "cannot append decisions")
			}
			exists[r.ProjectID] = ok
		}
		if ok {
			keep = append(keep, r)
		}
	}
	args := make([]any, 0, decisionRowsPerInsert*13)
	for len(keep) > 0 {
		n := min(len(keep), decisionRowsPerInsert)
		args = args[:0]
		for _, r := range keep[:n] {
			args = append(args, r.ID, r.ProjectID, micros(r.At), r.KeyID, r.Subject, r.Feature, r.Action, r.Tenant,
				r.Resource, boolInt(r.Allowed), r.Reason, r.Latency.Microseconds(), r.Gap)
		}
		if _, err := d.exec(ctx, decisionInsert(n), args...); err != nil {
			return mapErr(err, "cannot append decisions")
		}
		keep = keep[n:]
	}
	return nil
}

// decisionRowsPerInsert is the number of rows of one INSERT of AppendDecisions (13 bound
// values each, well under SQLite's limit on variables).
const decisionRowsPerInsert = 64

// decisionInsert returns the INSERT statement for n rows; the prepared statements of the few
// distinct sizes are reused within a transaction.
func decisionInsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO decision_log (` + decisionColumns + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	}
	b.WriteString(` ON CONFLICT (id) DO NOTHING`)
	return b.String()
}

// GetDecision returns the project's record with this id; ENotFound if there is none.
func (d *data) GetDecision(ctx context.Context, projectID, decisionID string) (*thauth.DecisionRecord, error) {
	st, err := d.stmt(ctx, `SELECT `+decisionColumns+` FROM decision_log WHERE project_id = ? AND id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read decision")
	}
	r, err := scanDecision(st.QueryRowContext(ctx, projectID, decisionID))
	if err != nil {
		return nil, notFound(err, "decision")
	}
	return &r, nil
}

// ListDecisions returns the project's records f selects, newest (at, then id) first; an
// unknown project has none. Gap markers are subject only to the time range and the cursor.
func (d *data) ListDecisions(ctx context.Context, projectID string, f thauth.DecisionFilter) ([]thauth.DecisionRecord, error) {
	where := []string{"project_id = ?"}
	args := []any{projectID}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "at < ?"), append(args, micros(f.Until))
	}
	if f.Before != nil {
		b := micros(f.Before.At)
		where, args = append(where, "(at < ? OR (at = ? AND id < ?))"), append(args, b, b, f.Before.ID)
	}
	var match []string
	for _, c := range []struct{ col, v string }{
		{"subject", f.Subject}, {"feature", f.Feature}, {"action", f.Action}, {"tenant", f.Tenant},
		{"reason", f.Reason}, {"key_id", f.KeyID},
	} {
		if c.v != "" {
			match, args = append(match, c.col+" = ?"), append(args, c.v)
		}
	}
	if f.Allowed != nil {
		match, args = append(match, "allowed = ?"), append(args, boolInt(*f.Allowed))
	}
	if len(match) > 0 {
		where = append(where, "(gap > 0 OR ("+strings.Join(match, " AND ")+"))")
	}
	args = append(args, listLimit(f.Limit))
	rows, err := d.query(ctx, `SELECT `+decisionColumns+` FROM decision_log WHERE `+strings.Join(where, " AND ")+
		` ORDER BY at DESC, id DESC LIMIT ?`, args...)
	return collect(rows, err, "cannot list decisions", scanDecision)
}

// PruneDecisions deletes up to limit records with at < before, oldest first, and returns
// how many; a limit <= 0 deletes nothing.
func (d *data) PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	res, err := d.exec(ctx, `DELETE FROM decision_log WHERE id IN
		(SELECT id FROM decision_log WHERE at < ? ORDER BY at, id LIMIT ?)`, micros(before), limit)
	return rowsAffected(res, err, "cannot prune the decision log")
}

// rowsAffected returns how many rows res changed.
func rowsAffected(res sql.Result, err error, msg string) (int, error) {
	if err != nil {
		return 0, mapErr(err, msg)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, mapErr(err, msg)
	}
	return int(n), nil
}
