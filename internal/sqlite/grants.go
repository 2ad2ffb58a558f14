package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"

	"github.com/thauth/thauth"
)

// A grant table (assignments, overrides) is written by difference: a replace reads the
// subject's rows in scope, keeps those that are wanted, deletes the others and inserts the
// missing ones. Re-applying a document where most subjects did not change then costs one
// indexed read per subject instead of deleting and re-inserting every grant, and a first
// apply costs no more than plain inserts.
type grantTable struct {
	name    string
	columns []string // the columns after project_id and subject_id
	// selectAll and selectTenant read (rowid, columns...) of a subject in every scope or in
	// one tenant; insert inserts one row.
	selectAll, selectTenant, insert string
}

func newGrantTable(name string, columns ...string) *grantTable {
	cols := strings.Join(columns, ", ")
	return &grantTable{
		name:         name,
		columns:      columns,
		selectAll:    `SELECT rowid, ` + cols + ` FROM ` + name + ` WHERE project_id = ? AND subject_id = ?`,
		selectTenant: `SELECT rowid, ` + cols + ` FROM ` + name + ` WHERE project_id = ? AND subject_id = ? AND tenant = ?`,
		insert: `INSERT INTO ` + name + ` (project_id, subject_id, ` + cols + `) VALUES (?, ?` +
			strings.Repeat(", ?", len(columns)) + `)`,
	}
}

var (
	assignmentsTable = newGrantTable("assignments", "role_id", "tenant", "valid_from", "valid_until")
	overridesTable   = newGrantTable("overrides", "feature_id", "action_id", "effect", "resource", "tenant", "valid_from", "valid_until")
)

// rowKey encodes a row's values (string, int64 or nil, as the driver returns them)
// unambiguously, for comparing stored and wanted rows.
func rowKey(buf []byte, vals []any) []byte {
	buf = buf[:0]
	for _, v := range vals {
		switch v := v.(type) {
		case nil:
			buf = append(buf, 'n')
		case int64:
			buf = append(buf, 'i')
			buf = strconv.AppendInt(buf, v, 10)
		case string:
			buf = append(buf, 's')
			buf = strconv.AppendInt(buf, int64(len(v)), 10)
			buf = append(buf, ':')
			buf = append(buf, v...)
		case []byte:
			buf = append(buf, 's')
			buf = strconv.AppendInt(buf, int64(len(v)), 10)
			buf = append(buf, ':')
			buf = append(buf, v...)
		default:
			panic("sqlite: unexpected grant column type")
		}
		buf = append(buf, ';')
	}
	return buf
}

// optMicros is an optional time as a row value.
func optMicros(v sql.NullInt64) any {
	if !v.Valid {
		return nil
	}
	return v.Int64
}

// replace makes the subject's rows of t in scope equal to want (each row: the values of
// t.columns). It returns the insert error unmapped, so the caller can explain a foreign key
// violation; ENotFound if the subject does not exist.
func (t *grantTable) replace(ctx context.Context, d *data, projectID, subjectID string, scope thauth.Scope, want [][]any) error {
	var rows *sql.Rows
	var err error
	if scope.All {
		rows, err = d.query(ctx, t.selectAll, projectID, subjectID)
	} else {
		rows, err = d.query(ctx, t.selectTenant, projectID, subjectID, scope.Tenant)
	}
	if err != nil {
		return mapErr(err, "cannot read grants")
	}
	stored := map[string][]int64{} // row key → rowids
	nStored := 0
	vals := make([]any, len(t.columns))
	dest := make([]any, len(t.columns)+1)
	var rowid int64
	dest[0] = &rowid
	for i := range vals {
		dest[i+1] = &vals[i]
	}
	var buf []byte
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return mapErr(err, "cannot read grants")
		}
		buf = rowKey(buf, vals)
		stored[string(buf)] = append(stored[string(buf)], rowid)
		nStored++
	}
	if err := closeRows(rows); err != nil {
		return mapErr(err, "cannot read grants")
	}

	var insert [][]any
	for _, w := range want {
		buf = rowKey(buf, w)
		if ids := stored[string(buf)]; len(ids) > 0 {
			stored[string(buf)] = ids[1:] // already there: keep it
			continue
		}
		insert = append(insert, w)
	}
	if nStored == 0 && len(insert) == 0 {
		// Nothing proves the subject exists (a stored row or an insert's foreign key would).
		return d.subjectExists(ctx, projectID, subjectID)
	}
	var del []int64
	for _, ids := range stored {
		del = append(del, ids...)
	}
	slices.Sort(del)
	for _, id := range del {
		if _, err := d.exec(ctx, `DELETE FROM `+t.name+` WHERE rowid = ?`, id); err != nil {
			return mapErr(err, "cannot write grants")
		}
	}
	args := make([]any, 0, len(t.columns)+2)
	for _, w := range insert {
		args = append(append(args[:0], projectID, subjectID), w...)
		if _, err := d.exec(ctx, t.insert, args...); err != nil {
			return err
		}
	}
	return nil
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
	want := make([][]any, len(as))
	for i, a := range as {
		if err := inScope(scope, a.Tenant); err != nil {
			return err
		}
		want[i] = []any{a.RoleID, a.Tenant, optMicros(nullMicros(a.From)), optMicros(nullMicros(a.Until))}
	}
	err := assignmentsTable.replace(ctx, d, projectID, subjectID, scope, want)
	if isForeignKeyViolation(err) {
		if err := d.subjectExists(ctx, projectID, subjectID); err != nil {
			return err
		}
		for _, a := range as {
			ok, err := d.exists(ctx, `SELECT 1 FROM roles WHERE project_id = ? AND id = ?`, projectID, a.RoleID)
			if err != nil {
				return mapErr(err, "cannot read role")
			}
			if !ok {
				return thauth.Errorf(thauth.ENotFound, "role %s not found", a.RoleID)
			}
		}
	}
	return mapErr(err, "cannot write assignments")
}

// ReplaceOverrides replaces the subject's overrides in scope with os. ENotFound if the
// subject, or the feature and action of an override, do not exist in the project; EInvalid
// if an override lies outside scope.
func (d *data) ReplaceOverrides(ctx context.Context, projectID, subjectID string, scope thauth.Scope, os []thauth.Override) error {
	want := make([][]any, len(os))
	for i, o := range os {
		if err := inScope(scope, o.Tenant); err != nil {
			return err
		}
		want[i] = []any{o.FeatureID, o.ActionID, string(o.Effect), o.Resource, o.Tenant, optMicros(nullMicros(o.From)), optMicros(nullMicros(o.Until))}
	}
	err := overridesTable.replace(ctx, d, projectID, subjectID, scope, want)
	if isForeignKeyViolation(err) {
		if err := d.subjectExists(ctx, projectID, subjectID); err != nil {
			return err
		}
		for _, o := range os {
			ok, err := d.exists(ctx, `SELECT 1 FROM actions WHERE project_id = ? AND feature_id = ? AND id = ?`, projectID, o.FeatureID, o.ActionID)
			if err != nil {
				return mapErr(err, "cannot read action")
			}
			if !ok {
				return thauth.Errorf(thauth.ENotFound, "action %s of feature %s not found", o.ActionID, o.FeatureID)
			}
		}
	}
	return mapErr(err, "cannot write overrides")
}
