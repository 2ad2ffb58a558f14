package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/thauth/thauth"
)

const subjectColumns = `id, project_id, subject_id, subject_type, created_at, updated_at`

func scanSubject(sc interface{ Scan(...any) error }, s *thauth.Subject) error {
	var created, updated int64
	if err := sc.Scan(&s.ID, &s.ProjectID, &s.SubjectID, &s.SubjectType, &created, &updated); err != nil {
		return err
	}
	s.CreatedAt, s.UpdatedAt = fromMicros(created), fromMicros(updated)
	return nil
}

// UpsertSubject inserts the subject with a new UUIDv7 id, or updates the type and update
// time of the existing one, in one statement. ENotFound if the project does not exist.
func (d *data) UpsertSubject(ctx context.Context, projectID string, s *thauth.Subject, now time.Time) (bool, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return false, thauth.Internal(err, "cannot generate id")
	}
	candidate := id.String()
	ts := micros(now)
	st, err := d.stmt(ctx, `INSERT INTO subjects (`+subjectColumns+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (project_id, subject_id) DO UPDATE SET subject_type = excluded.subject_type, updated_at = excluded.updated_at
		RETURNING `+subjectColumns)
	if err != nil {
		return false, mapErr(err, "cannot write subject")
	}
	err = scanSubject(st.QueryRowContext(ctx, candidate, projectID, s.SubjectID, s.SubjectType, ts, ts), s)
	switch {
	case isForeignKeyViolation(err):
		return false, thauth.Errorf(thauth.ENotFound, "project not found")
	case err != nil:
		return false, mapErr(err, "cannot write subject")
	}
	return s.ID == candidate, nil
}

func (d *data) GetSubject(ctx context.Context, projectID, subjectID string) (*thauth.Subject, error) {
	st, err := d.stmt(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE project_id = ? AND subject_id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read subject")
	}
	var s thauth.Subject
	if err := scanSubject(st.QueryRowContext(ctx, projectID, subjectID), &s); err != nil {
		return nil, notFound(err, "subject")
	}
	return &s, nil
}

func (d *data) DeleteSubject(ctx context.Context, projectID, subjectID string) error {
	res, err := d.exec(ctx, `DELETE FROM subjects WHERE project_id = ? AND subject_id = ?`, projectID, subjectID)
	if err != nil {
		return mapErr(err, "cannot delete subject")
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return notFoundOr(err, "subject")
	}
	return nil
}

func notFoundOr(err error, what string) error {
	if err != nil {
		return mapErr(err, "cannot write "+what)
	}
	return thauth.Errorf(thauth.ENotFound, "%s not found", what)
}

// subjectExists returns ENotFound unless the subject exists in the project.
func (d *data) subjectExists(ctx context.Context, projectID, subjectID string) error {
	ok, err := d.exists(ctx, `SELECT 1 FROM subjects WHERE project_id = ? AND subject_id = ?`, projectID, subjectID)
	if err != nil {
		return mapErr(err, "cannot read subject")
	}
	if !ok {
		return thauth.Errorf(thauth.ENotFound, "subject not found")
	}
	return nil
}

// LoadSubjectGrants returns the subject with all its grants (names filled in) in the order
// of thauth.SubjectGrants.Sort. ENotFound if the subject does not exist in the project.
func (d *data) LoadSubjectGrants(ctx context.Context, projectID, subjectID string) (*thauth.SubjectGrants, error) {
	g := &thauth.SubjectGrants{Assignments: []thauth.Assignment{}, Overrides: []thauth.Override{}}
	st, err := d.stmt(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE project_id = ? AND subject_id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read subject")
	}
	if err := scanSubject(st.QueryRowContext(ctx, projectID, subjectID), &g.Subject); err != nil {
		return nil, notFound(err, "subject")
	}
	fail := func(err error) (*thauth.SubjectGrants, error) { return nil, mapErr(err, "cannot read grants") }

	rows, err := d.query(ctx, `SELECT a.role_id, r.name, a.tenant, a.valid_from, a.valid_until
		FROM assignments a JOIN roles r ON r.project_id = a.project_id AND r.id = a.role_id
		WHERE a.project_id = ? AND a.subject_id = ?`, projectID, subjectID)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var a thauth.Assignment
		var from, until sql.NullInt64
		if err := rows.Scan(&a.RoleID, &a.RoleName, &a.Tenant, &from, &until); err != nil {
			rows.Close()
			return fail(err)
		}
		a.From, a.Until = fromNullMicros(from), fromNullMicros(until)
		g.Assignments = append(g.Assignments, a)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}

	rows, err = d.query(ctx, `SELECT o.feature_id, f.name, o.action_id, a.name, o.effect, o.resource, o.tenant, o.valid_from, o.valid_until
		FROM overrides o
		JOIN actions a ON a.project_id = o.project_id AND a.feature_id = o.feature_id AND a.id = o.action_id
		JOIN features f ON f.project_id = o.project_id AND f.id = o.feature_id
		WHERE o.project_id = ? AND o.subject_id = ?`, projectID, subjectID)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var o thauth.Override
		var effect string
		var from, until sql.NullInt64
		if err := rows.Scan(&o.FeatureID, &o.FeatureName, &o.ActionID, &o.ActionName, &effect, &o.Resource, &o.Tenant, &from, &until); err != nil {
			rows.Close()
			return fail(err)
		}
		o.Effect = thauth.Effect(effect)
		o.From, o.Until = fromNullMicros(from), fromNullMicros(until)
		g.Overrides = append(g.Overrides, o)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	g.Sort()
	return g, nil
}

// ScanSubjectGrants calls fn for every subject of the project in subject id order (byte
// order), with its grants sorted as by LoadSubjectGrants. It runs three ordered queries —
// subjects, assignments, overrides — inside one read transaction (one consistent state) and
// merges them by subject id, so memory holds one subject at a time plus the names of the
// project's roles and actions. fn's error stops the scan and is returned as is. An unknown
// project is ENotFound.
func (d *data) ScanSubjectGrants(ctx context.Context, projectID string, fn func(*thauth.SubjectGrants) error) error {
	if err := d.projectExists(ctx, projectID); err != nil {
		return err
	}
	fail := func(err error) error { return mapErr(err, "cannot read grants") }

	// Names of roles and actions, and one shared copy of each id and tenant string, so
	// that a million grants do not allocate a million copies of a few hundred ids.
	roleName, err := d.stringMap(ctx, `SELECT id, name FROM roles WHERE project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	type actionNames struct{ featureID, feature, actionID, action string }
	actions := map[string]actionNames{}
	rows, err := d.query(ctx, `SELECT a.id, a.name, f.id, f.name FROM actions a JOIN features f ON f.project_id = a.project_id AND f.id = a.feature_id WHERE a.project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var n actionNames
		if err := rows.Scan(&n.actionID, &n.action, &n.featureID, &n.feature); err != nil {
			rows.Close()
			return fail(err)
		}
		actions[n.actionID] = n
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	roleIDs := map[string]string{}
	for id := range roleName {
		roleIDs[id] = id
	}
	tenants := interner{}

	subjects, err := d.query(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE project_id = ? ORDER BY subject_id`, projectID)
	if err != nil {
		return fail(err)
	}
	defer subjects.Close()
	assignments, err := d.query(ctx, `SELECT subject_id, role_id, tenant, valid_from, valid_until FROM assignments WHERE project_id = ? ORDER BY subject_id`, projectID)
	if err != nil {
		return fail(err)
	}
	defer assignments.Close()
	overrides, err := d.query(ctx, `SELECT subject_id, action_id, effect, resource, tenant, valid_from, valid_until FROM overrides WHERE project_id = ? ORDER BY subject_id`, projectID)
	if err != nil {
		return fail(err)
	}
	defer overrides.Close()

	// Each grant cursor holds the subject id of its next row (valid while has is true).
	var (
		aHas, oHas   bool
		aSubj, oSubj sql.RawBytes
		aRole, aTen  sql.RawBytes
		aFrom, aTo   sql.NullInt64
		oAct, oEff   sql.RawBytes
		oRes, oTen   sql.RawBytes
		oFrom, oTo   sql.NullInt64
		errMismatch  = errors.New("grant rows out of order with subject rows")
	)
	nextA := func() error {
		if aHas = assignments.Next(); aHas {
			return assignments.Scan(&aSubj, &aRole, &aTen, &aFrom, &aTo)
		}
		return assignments.Err()
	}
	nextO := func() error {
		if oHas = overrides.Next(); oHas {
			return overrides.Scan(&oSubj, &oAct, &oEff, &oRes, &oTen, &oFrom, &oTo)
		}
		return overrides.Err()
	}
	if err := nextA(); err != nil {
		return fail(err)
	}
	if err := nextO(); err != nil {
		return fail(err)
	}
	for subjects.Next() {
		g := &thauth.SubjectGrants{Assignments: []thauth.Assignment{}, Overrides: []thauth.Override{}}
		if err := scanSubject(subjects, &g.Subject); err != nil {
			return fail(err)
		}
		id := g.Subject.SubjectID
		for aHas && string(aSubj) <= id {
			if string(aSubj) != id {
				return thauth.Internal(errMismatch, "cannot read grants")
			}
			roleID, ok := roleIDs[string(aRole)]
			if !ok {
				return thauth.Internal(errMismatch, "cannot read grants")
			}
			g.Assignments = append(g.Assignments, thauth.Assignment{
				RoleID: roleID, RoleName: roleName[roleID], Tenant: tenants.get(aTen),
				Window: thauth.Window{From: fromNullMicros(aFrom), Until: fromNullMicros(aTo)},
			})
			if err := nextA(); err != nil {
				return fail(err)
			}
		}
		for oHas && string(oSubj) <= id {
			if string(oSubj) != id {
				return thauth.Internal(errMismatch, "cannot read grants")
			}
			n, ok := actions[string(oAct)]
			if !ok {
				return thauth.Internal(errMismatch, "cannot read grants")
			}
			g.Overrides = append(g.Overrides, thauth.Override{
				FeatureID: n.featureID, FeatureName: n.feature, ActionID: n.actionID, ActionName: n.action,
				Effect: effectOf(oEff), Resource: string(oRes), Tenant: tenants.get(oTen),
				Window: thauth.Window{From: fromNullMicros(oFrom), Until: fromNullMicros(oTo)},
			})
			if err := nextO(); err != nil {
				return fail(err)
			}
		}
		g.Sort()
		if err := fn(g); err != nil {
			return err
		}
	}
	if err := subjects.Err(); err != nil {
		return fail(err)
	}
	if aHas || oHas {
		return thauth.Internal(errMismatch, "cannot read grants")
	}
	return nil
}

func effectOf(b []byte) thauth.Effect {
	switch string(b) {
	case string(thauth.Allow):
		return thauth.Allow
	case string(thauth.Deny):
		return thauth.Deny
	}
	return thauth.Effect(b)
}

// interner shares one string per distinct value (tenants repeat across many grants). It
// stops growing at a bound, so a project with unbounded distinct tenants costs at most
// that much.
type interner map[string]string

func (m interner) get(b []byte) string {
	if s, ok := m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(m) < 10000 {
		m[s] = s
	}
	return s
}
