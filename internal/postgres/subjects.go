package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth"
)

const subjectColumns = `id, project_id, subject_id, subject_type, created_at, updated_at`

func scanSubject(sc interface{ Scan(...any) error }, s *thauth.Subject) error {
	if err := sc.Scan(&s.ID, &s.ProjectID, &s.SubjectID, &s.SubjectType, &s.CreatedAt, &s.UpdatedAt); err != nil {
		return err
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return nil
}

// UpsertSubject inserts the subject with a new UUIDv7 id, or updates the type and update
// time of the existing one, in one statement. ENotFound if the project does not exist.
func (d *data) UpsertSubject(ctx context.Context, projectID string, s *thauth.Subject, now time.Time) (bool, error) {
	if err := d.enter(ctx, projectID); err != nil {
		return false, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return false, thauth.Internal(err, "cannot generate id")
	}
	candidate := id.String()
	ts := normTime(now)
	err = scanSubject(d.q.QueryRow(ctx, `INSERT INTO subjects (`+subjectColumns+`) VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (project_id, subject_id) DO UPDATE SET subject_type = excluded.subject_type, updated_at = excluded.updated_at
		RETURNING `+subjectColumns, candidate, projectID, s.SubjectID, s.SubjectType, ts), s)
	switch {
	case isForeignKeyViolation(err):
		return false, thauth.Errorf(thauth.ENotFound, "project not found")
	case err != nil:
		return false, mapErr(err, "cannot write subject")
	}
	created := s.ID == candidate
	if created {
		d.markFresh(projectID, s.SubjectID)
	}
	return created, nil
}

func (d *data) GetSubject(ctx context.Context, projectID, subjectID string) (*thauth.Subject, error) {
	if err := d.enter(ctx, projectID); err != nil {
		return nil, err
	}
	var s thauth.Subject
	err := scanSubject(d.q.QueryRow(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE project_id = $1 AND subject_id = $2`,
		projectID, subjectID), &s)
	if err != nil {
		return nil, notFound(err, "subject")
	}
	return &s, nil
}

// DeleteSubject deletes the subject; its grants go with it (cascade). ENotFound if it does
// not exist in the project.
func (d *data) DeleteSubject(ctx context.Context, projectID, subjectID string) error {
	if err := d.enter(ctx, projectID); err != nil {
		return err
	}
	d.forget(projectID, subjectID)
	tag, err := d.q.Exec(ctx, `DELETE FROM subjects WHERE project_id = $1 AND subject_id = $2`, projectID, subjectID)
	if err != nil {
		return mapErr(err, "cannot delete subject")
	}
	if tag.RowsAffected() == 0 {
		return thauth.Errorf(thauth.ENotFound, "subject not found")
	}
	return nil
}

// LoadSubjectGrants returns the subject with all its grants (names filled in) in the order
// of thauth.SubjectGrants.Sort. ENotFound if the subject does not exist in the project. The three queries
// go to the server in one round trip.
func (d *data) LoadSubjectGrants(ctx context.Context, projectID, subjectID string) (*thauth.SubjectGrants, error) {
	if err := d.enter(ctx, projectID); err != nil {
		return nil, err
	}
	g := &thauth.SubjectGrants{Assignments: []thauth.Assignment{}, Overrides: []thauth.Override{}}
	b := &pgx.Batch{}
	b.Queue(`SELECT `+subjectColumns+` FROM subjects WHERE project_id = $1 AND subject_id = $2`, projectID, subjectID)
	b.Queue(`SELECT a.role_id, r.name, a.tenant, a.valid_from, a.valid_until
		FROM assignments a JOIN roles r ON r.project_id = a.project_id AND r.id = a.role_id
		WHERE a.project_id = $1 AND a.subject_id = $2`, projectID, subjectID)
	b.Queue(`SELECT o.feature_id, f.name, o.action_id, a.name, o.effect, o.resource, o.tenant, o.valid_from, o.valid_until
		FROM overrides o
		JOIN actions a ON a.project_id = o.project_id AND a.feature_id = o.feature_id AND a.id = o.action_id
		JOIN features f ON f.project_id = o.project_id AND f.id = o.feature_id
		WHERE o.project_id = $1 AND o.subject_id = $2`, projectID, subjectID)
	br := d.q.SendBatch(ctx, b)
	defer br.Close()
	if err := scanSubject(br.QueryRow(), &g.Subject); err != nil {
		return nil, notFound(err, "subject")
	}
	fail := func(err error) (*thauth.SubjectGrants, error) { return nil, mapErr(err, "cannot read grants") }
	err := forEachRow(br, func(rows pgx.Rows) error {
		var a thauth.Assignment
		if err := rows.Scan(&a.RoleID, &a.RoleName, &a.Tenant, &a.From, &a.Until); err != nil {
			return err
		}
		a.From, a.Until = utcPtr(a.From), utcPtr(a.Until)
		g.Assignments = append(g.Assignments, a)
		return nil
	})
	if err != nil {
		return fail(err)
	}
	err = forEachRow(br, func(rows pgx.Rows) error {
		var o thauth.Override
		var effect string
		if err := rows.Scan(&o.FeatureID, &o.FeatureName, &o.ActionID, &o.ActionName, &effect, &o.Resource, &o.Tenant, &o.From, &o.Until); err != nil {
			return err
		}
		o.Effect = effectOf(effect)
		o.From, o.Until = utcPtr(o.From), utcPtr(o.Until)
		g.Overrides = append(g.Overrides, o)
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if err := br.Close(); err != nil {
		return fail(err)
	}
	g.Sort()
	return g, nil
}

// effectOf returns the effect, sharing the constants' strings.
func effectOf(s string) thauth.Effect {
	switch s {
	case string(thauth.Allow):
		return thauth.Allow
	case string(thauth.Deny):
		return thauth.Deny
	}
	return thauth.Effect(s)
}
