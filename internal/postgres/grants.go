package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/thauth/thauth"
)

// A grant table (assignments, overrides) is written by difference: a replace reads the
// subject's rows in scope (in the same round trip as its checks), keeps those that are
// wanted, deletes the others and inserts the missing ones (in a second round trip, only if
// something changed). Rows compare as multisets: the n-th copy of a row matches the n-th
// wanted copy. Re-applying a document in which most subjects did not change then writes
// nothing for them — no dead tuples, no WAL — and a subject created in the same
// transaction skips the read.
//
// The transaction holds the project's lock (see enter), so the rows read cannot change
// before they are deleted by their ctid.
type grantTable struct {
	name       string
	strColumns []string // the text columns after project_id and subject_id; then valid_from, valid_until

	selectAll, selectTenant, insert, delete string
}

func newGrantTable(name string, strColumns ...string) *grantTable {
	cols := strings.Join(strColumns, ", ") + ", valid_from, valid_until"
	var arrays []string
	for i := range strColumns {
		arrays = append(arrays, fmt.Sprintf("$%d::text[]", i+3))
	}
	n := len(strColumns) + 3
	arrays = append(arrays, fmt.Sprintf("$%d::timestamptz[]", n), fmt.Sprintf("$%d::timestamptz[]", n+1))
	return &grantTable{
		name:         name,
		strColumns:   strColumns,
		selectAll:    `SELECT ctid, ` + cols + ` FROM ` + name + ` WHERE project_id = $1 AND subject_id = $2`,
		selectTenant: `SELECT ctid, ` + cols + ` FROM ` + name + ` WHERE project_id = $1 AND subject_id = $2 AND tenant = $3`,
		insert: `INSERT INTO ` + name + ` (project_id, subject_id, ` + cols + `)
			SELECT $1, $2, g.* FROM unnest(` + strings.Join(arrays, ", ") + `) AS g`,
		delete: `DELETE FROM ` + name + ` WHERE project_id = $1 AND subject_id = $2 AND ctid = ANY ($3::tid[])`,
	}
}

var (
	assignmentsTable = newGrantTable("assignments", "role_id", "tenant")
	overridesTable   = newGrantTable("overrides", "feature_id", "action_id", "effect", "resource", "tenant")
)

// grantRow is one row of a grant table: its text columns, then its window.
type grantRow struct {
	strs        []string
	from, until pgtype.Timestamptz
}

// key encodes the row's values unambiguously, for comparing stored and wanted rows.
func (r *grantRow) key(buf []byte) []byte {
	buf = buf[:0]
	for _, s := range r.strs {
		buf = strconv.AppendInt(buf, int64(len(s)), 10)
		buf = append(buf, ':')
		buf = append(buf, s...)
	}
	for _, t := range []pgtype.Timestamptz{r.from, r.until} {
		if t.Valid {
			buf = append(buf, 't')
			buf = strconv.AppendInt(buf, t.Time.UnixMicro(), 10)
		}
		buf = append(buf, ';')
	}
	return buf
}

// refCheck is the query that checks a replace's references: it returns, as a text array,
// the first one that does not exist in the project, or no row.
type refCheck struct {
	sql     string
	args    []any
	missing func(ref []string) error
}

// freshKey names a (table, project, subject) in data.fresh.
func freshKey(table, projectID, subjectID string) string {
	return table + "\x00" + projectID + "\x00" + subjectID
}

// replace makes the subject's rows of t in scope equal to want. ENotFound if the subject
// does not exist (or check reports a missing reference).
func (t *grantTable) replace(ctx context.Context, d *data, projectID, subjectID string, scope thauth.Scope, want []grantRow, check refCheck) error {
	if err := d.enter(ctx, projectID); err != nil {
		return err
	}
	fk := freshKey(t.name, projectID, subjectID)
	fresh := d.fresh[fk] // created in this transaction: no rows yet
	stored := map[string][]pgtype.TID{}
	if !fresh {
		b := &pgx.Batch{}
		b.Queue(`SELECT EXISTS (SELECT 1 FROM subjects WHERE project_id = $1 AND subject_id = $2)`, projectID, subjectID)
		if len(want) > 0 {
			b.Queue(check.sql, check.args...)
		}
		if scope.All {
			b.Queue(t.selectAll, projectID, subjectID)
		} else {
			b.Queue(t.selectTenant, projectID, subjectID, scope.Tenant)
		}
		br := d.q.SendBatch(ctx, b)
		err := t.readStored(br, len(want) > 0, check, stored)
		if cerr := br.Close(); err == nil {
			err = mapErr(cerr, "cannot read grants")
		}
		if err != nil {
			return err
		}
	}

	var insert []grantRow
	var buf []byte
	for i := range want {
		buf = want[i].key(buf)
		if ids := stored[string(buf)]; len(ids) > 0 {
			stored[string(buf)] = ids[1:] // already there: keep it
			continue
		}
		insert = append(insert, want[i])
	}
	var del []pgtype.TID
	for _, ids := range stored {
		del = append(del, ids...)
	}
	if len(del) == 0 && len(insert) == 0 {
		return nil
	}

	b := &pgx.Batch{}
	if fresh && len(insert) > 0 {
		b.Queue(check.sql, check.args...)
	}
	if len(del) > 0 {
		b.Queue(t.delete, projectID, subjectID, del)
	}
	if len(insert) > 0 {
		args := []any{projectID, subjectID}
		for c := range t.strColumns {
			col := make([]string, len(insert))
			for i := range insert {
				col[i] = insert[i].strs[c]
			}
			args = append(args, col)
		}
		from := make([]pgtype.Timestamptz, len(insert))
		until := make([]pgtype.Timestamptz, len(insert))
		for i := range insert {
			from[i], until[i] = insert[i].from, insert[i].until
		}
		b.Queue(t.insert, append(args, from, until)...)
	}
	br := d.q.SendBatch(ctx, b)
	defer br.Close()
	if fresh && len(insert) > 0 {
		if err := readCheck(br, check); err != nil {
			return err
		}
	}
	if len(del) > 0 {
		if _, err := br.Exec(); err != nil {
			return mapErr(err, "cannot write grants")
		}
	}
	if len(insert) > 0 {
		if _, err := br.Exec(); err != nil {
			return mapErr(err, "cannot write grants")
		}
	}
	if err := br.Close(); err != nil {
		return mapErr(err, "cannot write grants")
	}
	delete(d.fresh, fk)
	return nil
}

// readStored reads the first batch of replace: subject check, reference check, stored rows.
func (t *grantTable) readStored(br pgx.BatchResults, checked bool, check refCheck, stored map[string][]pgtype.TID) error {
	var exists bool
	if err := br.QueryRow().Scan(&exists); err != nil {
		return mapErr(err, "cannot read subject")
	}
	if !exists {
		return thauth.Errorf(thauth.ENotFound, "subject not found")
	}
	if checked {
		if err := readCheck(br, check); err != nil {
			return err
		}
	}
	var row grantRow
	row.strs = make([]string, len(t.strColumns))
	var tid pgtype.TID
	dest := []any{&tid}
	for i := range row.strs {
		dest = append(dest, &row.strs[i])
	}
	dest = append(dest, &row.from, &row.until)
	var buf []byte
	return mapErr(forEachRow(br, func(rows pgx.Rows) error {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		buf = row.key(buf)
		stored[string(buf)] = append(stored[string(buf)], tid)
		return nil
	}), "cannot read grants")
}

// readCheck reads the result of a reference check.
func readCheck(br pgx.BatchResults, check refCheck) error {
	var ref []string
	err := br.QueryRow().Scan(&ref)
	switch {
	case err == nil:
		return check.missing(ref)
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	}
	return mapErr(err, "cannot read grants")
}

// markFresh records that the subject was just created in this transaction, so it has no
// grants yet.
func (d *data) markFresh(projectID, subjectID string) {
	if !d.lock { // outside a write transaction the next call is another transaction
		return
	}
	if d.fresh == nil {
		d.fresh = map[string]bool{}
	}
	d.fresh[freshKey(assignmentsTable.name, projectID, subjectID)] = true
	d.fresh[freshKey(overridesTable.name, projectID, subjectID)] = true
}

// forget drops what markFresh recorded (the subject was deleted, or may have been
// recreated with rows by something d did not see).
func (d *data) forget(projectID, subjectID string) {
	delete(d.fresh, freshKey(assignmentsTable.name, projectID, subjectID))
	delete(d.fresh, freshKey(overridesTable.name, projectID, subjectID))
}

func inScope(scope thauth.Scope, tenant string) error {
	if !scope.All && tenant != scope.Tenant {
		return thauth.Errorf(thauth.EInvalid, "grant in tenant %q lies outside the scope being replaced (tenant %q)", tenant, scope.Tenant)
	}
	return nil
}

// ReplaceAssignments replaces the subject's assignments in scope with as. ENotFound if the
// subject or a role does not exist in the project; EInvalid if an assignment lies outside
// scope.
func (d *data) ReplaceAssignments(ctx context.Context, projectID, subjectID string, scope thauth.Scope, as []thauth.Assignment) error {
	want := make([]grantRow, len(as))
	roles := make([]string, len(as))
	for i, a := range as {
		if err := inScope(scope, a.Tenant); err != nil {
			return err
		}
		want[i] = grantRow{strs: []string{a.RoleID, a.Tenant}, from: nullTime(a.From), until: nullTime(a.Until)}
		roles[i] = a.RoleID
	}
	return assignmentsTable.replace(ctx, d, projectID, subjectID, scope, want, refCheck{
		sql: `SELECT ARRAY[x.id] FROM unnest($2::text[]) AS x (id)
			WHERE NOT EXISTS (SELECT 1 FROM roles r WHERE r.project_id = $1 AND r.id = x.id) LIMIT 1`,
		args:    []any{projectID, roles},
		missing: func(ref []string) error { return thauth.Errorf(thauth.ENotFound, "role %s not found", ref[0]) },
	})
}

// ReplaceOverrides replaces the subject's overrides in scope with os. ENotFound if the
// subject, or the feature and action of an override, do not exist in the project; EInvalid
// if an override lies outside scope.
func (d *data) ReplaceOverrides(ctx context.Context, projectID, subjectID string, scope thauth.Scope, os []thauth.Override) error {
	want := make([]grantRow, len(os))
	features := make([]string, len(os))
	actions := make([]string, len(os))
	for i, o := range os {
		if err := inScope(scope, o.Tenant); err != nil {
			return err
		}
		want[i] = grantRow{strs: []string{o.FeatureID, o.ActionID, string(o.Effect), o.Resource, o.Tenant}, from: nullTime(o.From), until: nullTime(o.Until)}
		features[i], actions[i] = o.FeatureID, o.ActionID
	}
	return overridesTable.replace(ctx, d, projectID, subjectID, scope, want, refCheck{
		sql: `SELECT ARRAY[x.f, x.a] FROM unnest($2::text[], $3::text[]) AS x (f, a)
			WHERE NOT EXISTS (SELECT 1 FROM actions c WHERE c.project_id = $1 AND c.feature_id = x.f AND c.id = x.a) LIMIT 1`,
		args: []any{projectID, features, actions},
		missing: func(ref []string) error {
			return thauth.Errorf(thauth.ENotFound, "action %s of feature %s not found", ref[1], ref[0])
		},
	})
}
