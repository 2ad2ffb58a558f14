package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/thauth/thauth"
)

// querier is what data runs statements on: a transaction, or the pool for statements that
// run on their own.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// data implements thauth.Data on a querier: the closure's transaction inside Store.Tx, a
// short read or write transaction for a Store method called on its own, or the pool for a
// method that is a single statement.
type data struct {
	q querier
	// lock is set in write transactions: the first call on a project locks its row (see
	// enter), so that the writers of a project run one after the other.
	lock   bool
	locked map[string]bool
	fresh  map[string]bool // grant tables known empty for a subject (see markFresh)
}

var _ thauth.Data = (*data)(nil)

// enter locks the project's row for the rest of the transaction if d is a write
// transaction that has not locked it yet. It does not report a missing project: the
// method's own statements do.
func (d *data) enter(ctx context.Context, projectID string) error {
	if !d.lock || d.locked[projectID] {
		return nil
	}
	var one int
	err := d.q.QueryRow(ctx, `SELECT 1 FROM projects WHERE id = $1 FOR NO KEY UPDATE`, projectID).Scan(&one)
	switch {
	case err == nil:
		d.entered(projectID)
	case !errors.Is(err, pgx.ErrNoRows):
		return mapErr(err, "cannot lock project")
	}
	return nil
}

// entered records that the transaction holds the project's row lock.
func (d *data) entered(projectID string) {
	if !d.lock {
		return
	}
	if d.locked == nil {
		d.locked = map[string]bool{}
	}
	d.locked[projectID] = true
}

// projectExists locks the project (in a write transaction) and returns ENotFound unless
// it exists.
func (d *data) projectExists(ctx context.Context, projectID string) error {
	if err := d.enter(ctx, projectID); err != nil {
		return err
	}
	if d.locked[projectID] {
		return nil
	}
	var ok bool
	if err := d.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)`, projectID).Scan(&ok); err != nil {
		return mapErr(err, "cannot read project")
	}
	if !ok {
		return thauth.Errorf(thauth.ENotFound, "project not found")
	}
	return nil
}

// Times are stored as timestamptz, written in UTC truncated to microseconds (PostgreSQL
// would round the nanoseconds, SQLite truncates) and read back in UTC.

// normTime is t as stored.
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// nullTime is an optional time as a parameter: NULL or the stored form.
func nullTime(t *time.Time) pgtype.Timestamptz {
	if t == nil {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: normTime(*t), Valid: true}
}

// utcPtr returns a scanned optional time in UTC.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// ---- organizations and projects ----

// CreateOrganization inserts org, with its suspension (SuspendedAt, SuspendedReason) as
// given; EConflict if its id is taken.
func (d *data) CreateOrganization(ctx context.Context, org *thauth.Organization) error {
	org.CreatedAt = normTime(org.CreatedAt)
	normOptTime(&org.SuspendedAt)
	_, err := d.q.Exec(ctx, `INSERT INTO organizations (id, name, created_at, require_mfa, suspended_at, suspended_reason)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		org.ID, org.Name, org.CreatedAt, boolInt(org.RequireMFA), nullTime(org.SuspendedAt), org.SuspendedReason)
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "organization %s already exists", org.ID)
	}
	return mapErr(err, "cannot create organization")
}

func (d *data) GetOrganization(ctx context.Context, orgID string) (*thauth.Organization, error) {
	o, err := scanOrganization(d.q.QueryRow(ctx, `SELECT `+organizationColumns+` FROM organizations o WHERE o.id = $1`, orgID))
	if err != nil {
		return nil, notFound(err, "organization")
	}
	return &o, nil
}

func (d *data) CreateProject(ctx context.Context, orgID string, p *thauth.Project) error {
	p.OrganizationID = orgID
	p.CreatedAt = normTime(p.CreatedAt)
	p.Revision = 0
	_, err := d.q.Exec(ctx, `INSERT INTO projects (id, organization_id, name, created_at, revision) VALUES ($1, $2, $3, $4, 0)`,
		p.ID, orgID, p.Name, p.CreatedAt)
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "project %s already exists", p.ID)
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "organization not found")
	}
	return mapErr(err, "cannot create project")
}

const projectColumns = `id, organization_id, name, created_at, revision`

func scanProject(sc interface{ Scan(...any) error }) (thauth.Project, error) {
	var p thauth.Project
	err := sc.Scan(&p.ID, &p.OrganizationID, &p.Name, &p.CreatedAt, &p.Revision)
	p.CreatedAt = p.CreatedAt.UTC()
	return p, err
}

func (d *data) GetProject(ctx context.Context, projectID string) (*thauth.Project, error) {
	if err := d.enter(ctx, projectID); err != nil {
		return nil, err
	}
	p, err := scanProject(d.q.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`, projectID))
	if err != nil {
		return nil, notFound(err, "project")
	}
	return &p, nil
}

// ListProjects returns the organization's projects, oldest first; ENotFound if the
// organization does not exist. One statement: the organization row, joined to its
// projects.
func (d *data) ListProjects(ctx context.Context, orgID string) ([]thauth.Project, error) {
	rows, err := d.q.Query(ctx, `SELECT p.id, p.organization_id, p.name, p.created_at, p.revision
		FROM organizations o LEFT JOIN projects p ON p.organization_id = o.id
		WHERE o.id = $1 ORDER BY p.created_at, p.id`, orgID)
	if err != nil {
		return nil, mapErr(err, "cannot list projects")
	}
	defer rows.Close()
	found := false
	ps := []thauth.Project{}
	for rows.Next() {
		found = true
		var id, org, name *string
		var created *time.Time
		var rev *int64
		if err := rows.Scan(&id, &org, &name, &created, &rev); err != nil {
			return nil, mapErr(err, "cannot list projects")
		}
		if id == nil { // the organization has no projects
			continue
		}
		ps = append(ps, thauth.Project{ID: *id, OrganizationID: *org, Name: *name, CreatedAt: created.UTC(), Revision: *rev})
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "cannot list projects")
	}
	if !found {
		return nil, thauth.Errorf(thauth.ENotFound, "organization not found")
	}
	return ps, nil
}

// ProjectRevisions returns every project ordered by id.
func (d *data) ProjectRevisions(ctx context.Context) ([]thauth.Project, error) {
	rows, err := d.q.Query(ctx, `SELECT `+projectColumns+` FROM projects ORDER BY id`)
	if err != nil {
		return nil, mapErr(err, "cannot list projects")
	}
	defer rows.Close()
	ps := []thauth.Project{}
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, mapErr(err, "cannot list projects")
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "cannot list projects")
	}
	return ps, nil
}

// ---- change log ----

// NotifyChannel is the PostgreSQL notification channel on which AppendChanges announces
// each new revision as "<project id>:<revision>" (see Listen).
const NotifyChannel = "thauth_changes"

// appendChanges bumps the revision, records the changes and queues the notification in
// one statement. The UPDATE takes the project's row lock, held until the transaction ends.
const appendChanges = `WITH p AS (
	UPDATE projects SET revision = revision + 1 WHERE id = $1 RETURNING id, revision
), c AS (
	INSERT INTO changes (project_id, revision, seq, kind, ref, created_at)
	SELECT p.id, p.revision, k.ord - 1, k.kind, k.ref, $4
	FROM p, unnest($2::text[], $3::text[]) WITH ORDINALITY AS k (kind, ref, ord)
)
SELECT p.revision, pg_notify('` + NotifyChannel + `', p.id || ':' || p.revision) IS NULL FROM p`

// AppendChanges bumps the project's revision, records changes under it (in order) and
// queues a notification on NotifyChannel, delivered when the transaction commits (at once
// outside Tx). ENotFound if the project does not exist.
func (d *data) AppendChanges(ctx context.Context, projectID string, changes []thauth.Change, at time.Time) (int64, error) {
	kinds := make([]string, len(changes))
	refs := make([]string, len(changes))
	for i, c := range changes {
		kinds[i], refs[i] = string(c.Kind), c.Ref
	}
	var rev int64
	var null bool
	err := d.q.QueryRow(ctx, appendChanges, projectID, kinds, refs, normTime(at)).Scan(&rev, &null)
	if err != nil {
		return 0, notFound(err, "project")
	}
	d.entered(projectID)
	return rev, nil
}

// ChangesSince returns the changes with revision > after in order. It returns at least
// min(limit, available) changes and at most limit, except that it never splits a revision:
// when the limit falls inside a revision, that revision's remaining changes are included
// too. limit <= 0 means no limit. An unknown project is ENotFound. One statement (two when
// there is nothing to return, to tell an unknown project from a current one).
func (d *data) ChangesSince(ctx context.Context, projectID string, after int64, limit int) ([]thauth.Change, error) {
	if err := d.enter(ctx, projectID); err != nil {
		return nil, err
	}
	var rows pgx.Rows
	var err error
	if limit > 0 {
		// Every change up to the revision of the limit-th one.
		rows, err = d.q.Query(ctx, `SELECT revision, kind, ref, created_at FROM changes
			WHERE project_id = $1 AND revision > $2 AND revision <= coalesce((
				SELECT revision FROM changes WHERE project_id = $1 AND revision > $2
				ORDER BY revision, seq OFFSET $3 LIMIT 1), 9223372036854775807)
			ORDER BY revision, seq`, projectID, after, limit-1)
	} else {
		rows, err = d.q.Query(ctx, `SELECT revision, kind, ref, created_at FROM changes
			WHERE project_id = $1 AND revision > $2 ORDER BY revision, seq`, projectID, after)
	}
	if err != nil {
		return nil, mapErr(err, "cannot read changes")
	}
	defer rows.Close()
	out := []thauth.Change{}
	for rows.Next() {
		c := thauth.Change{ProjectID: projectID}
		var kind string
		if err := rows.Scan(&c.Revision, &kind, &c.Ref, &c.At); err != nil {
			return nil, mapErr(err, "cannot read changes")
		}
		c.Kind = thauth.ChangeKind(kind)
		c.At = c.At.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "cannot read changes")
	}
	if len(out) == 0 {
		if err := d.projectExists(ctx, projectID); err != nil {
			return nil, err
		}
	}
	return out, nil
}
