package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/thauth/thauth"
)

// data implements thauth.Data on one transaction: the closure's tx inside Store.Tx, or a
// short read or write transaction for a Store method called on its own.
type data struct {
	tx    *sql.Tx
	mu    sync.Mutex           // guards stmts: a closure may share its Data among goroutines
	stmts map[string]*sql.Stmt // prepared statements of this transaction, by query
}

var _ thauth.Data = (*data)(nil)

// stmt returns the prepared statement for query, preparing it on first use in this
// transaction. Reusing statements matters for bulk writes (a config apply with many
// subjects runs the same few statements hundreds of thousands of times); they are closed
// with the transaction.
func (d *data) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, ok := d.stmts[query]; ok {
		return st, nil
	}
	st, err := d.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if d.stmts == nil {
		d.stmts = map[string]*sql.Stmt{}
	}
	d.stmts[query] = st
	return st, nil
}

func (d *data) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := d.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (d *data) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := d.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a one-row query and scans it into dest; no row is sql.ErrNoRows.
func (d *data) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	st, err := d.stmt(ctx, query)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

// exists reports whether query returns a row.
func (d *data) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var one int
	err := d.queryRow(ctx, query, args, &one)
	if err == sql.ErrNoRows {
		return false, nil
	}
	return err == nil, err
}

// projectExists returns ENotFound unless the project exists.
func (d *data) projectExists(ctx context.Context, projectID string) error {
	ok, err := d.exists(ctx, `SELECT 1 FROM projects WHERE id = ?`, projectID)
	if err != nil {
		return mapErr(err, "cannot read project")
	}
	if !ok {
		return thauth.Errorf(thauth.ENotFound, "project not found")
	}
	return nil
}

// Times are stored as unix microseconds (UTC); optional times as NULL.

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// normTime is t as stored: UTC, truncated to microseconds.
func normTime(t time.Time) time.Time { return fromMicros(micros(t)) }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(*t), Valid: true}
}

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// ---- organizations and projects ----

func (d *data) CreateOrganization(ctx context.Context, org *thauth.Organization) error {
	org.CreatedAt = normTime(org.CreatedAt)
	normOptTime(&org.SuspendedAt)
	_, err := d.exec(ctx, `INSERT INTO organizations (id, name, created_at, require_mfa, suspended_at, suspended_reason)
		VALUES (?, ?, ?, ?, ?, ?)`,
		org.ID, org.Name, micros(org.CreatedAt), boolInt(org.RequireMFA), nullMicros(org.SuspendedAt), org.SuspendedReason)
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "organization %s already exists", org.ID)
	}
	return mapErr(err, "cannot create organization")
}

func (d *data) GetOrganization(ctx context.Context, orgID string) (*thauth.Organization, error) {
	st, err := d.stmt(ctx, `SELECT `+organizationColumns+` FROM organizations o WHERE o.id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read organization")
	}
	o, err := scanOrganization(st.QueryRowContext(ctx, orgID))
	if err != nil {
		return nil, notFound(err, "organization")
	}
	return &o, nil
}

func (d *data) CreateProject(ctx context.Context, orgID string, p *thauth.Project) error {
	p.OrganizationID = orgID
	p.CreatedAt = normTime(p.CreatedAt)
	p.Revision = 0
	_, err := d.exec(ctx, `INSERT INTO projects (id, organization_id, name, created_at, revision) VALUES (?, ?, ?, ?, 0)`,
		p.ID, orgID, p.Name, micros(p.CreatedAt))
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
	var created int64
	err := sc.Scan(&p.ID, &p.OrganizationID, &p.Name, &created, &p.Revision)
	p.CreatedAt = fromMicros(created)
	return p, err
}

func (d *data) GetProject(ctx context.Context, projectID string) (*thauth.Project, error) {
	st, err := d.stmt(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read project")
	}
	p, err := scanProject(st.QueryRowContext(ctx, projectID))
	if err != nil {
		return nil, notFound(err, "project")
	}
	return &p, nil
}

func (d *data) listProjects(ctx context.Context, query string, args ...any) ([]thauth.Project, error) {
	rows, err := d.query(ctx, query, args...)
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

// ListProjects returns the organization's projects, oldest first; ENotFound if the
// organization does not exist.
func (d *data) ListProjects(ctx context.Context, orgID string) ([]thauth.Project, error) {
	ok, err := d.exists(ctx, `SELECT 1 FROM organizations WHERE id = ?`, orgID)
	if err != nil {
		return nil, mapErr(err, "cannot read organization")
	}
	if !ok {
		return nil, thauth.Errorf(thauth.ENotFound, "organization not found")
	}
	return d.listProjects(ctx, `SELECT `+projectColumns+` FROM projects WHERE organization_id = ? ORDER BY created_at, id`, orgID)
}

// ProjectRevisions returns every project ordered by id.
func (d *data) ProjectRevisions(ctx context.Context) ([]thauth.Project, error) {
	return d.listProjects(ctx, `SELECT `+projectColumns+` FROM projects ORDER BY id`)
}

// ---- change log ----

func (d *data) AppendChanges(ctx context.Context, projectID string, changes []thauth.Change, at time.Time) (int64, error) {
	var rev int64
	err := d.queryRow(ctx, `UPDATE projects SET revision = revision + 1 WHERE id = ? RETURNING revision`, []any{projectID}, &rev)
	if err != nil {
		return 0, notFound(err, "project")
	}
	ts := micros(at)
	for i, c := range changes {
		if _, err := d.exec(ctx, `INSERT INTO changes (project_id, revision, seq, kind, ref, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			projectID, rev, i, string(c.Kind), c.Ref, ts); err != nil {
			return 0, mapErr(err, "cannot record change")
		}
	}
	return rev, nil
}

// ChangesSince returns the changes with revision > after in order. It returns at least
// min(limit, available) changes and at most limit, except that it never splits a revision:
// when the limit falls inside a revision, that revision's remaining changes are included too,
// so a caller that applies every change it got is at a whole revision. limit <= 0 means no
// limit. An unknown project is ENotFound.
func (d *data) ChangesSince(ctx context.Context, projectID string, after int64, limit int) ([]thauth.Change, error) {
	if err := d.projectExists(ctx, projectID); err != nil {
		return nil, err
	}
	lim := int64(limit)
	if limit <= 0 {
		lim = -1 // SQLite: no limit
	}
	out := []thauth.Change{}
	var lastSeq int64
	read := func(query string, args ...any) error {
		rows, err := d.query(ctx, query, args...)
		if err != nil {
			return mapErr(err, "cannot read changes")
		}
		defer rows.Close()
		for rows.Next() {
			c := thauth.Change{ProjectID: projectID}
			var kind string
			var at int64
			if err := rows.Scan(&c.Revision, &lastSeq, &kind, &c.Ref, &at); err != nil {
				return mapErr(err, "cannot read changes")
			}
			c.Kind = thauth.ChangeKind(kind)
			c.At = fromMicros(at)
			out = append(out, c)
		}
		return mapErr(rows.Err(), "cannot read changes")
	}
	if err := read(`SELECT revision, seq, kind, ref, created_at FROM changes
		WHERE project_id = ? AND revision > ? ORDER BY revision, seq LIMIT ?`, projectID, after, lim); err != nil {
		return nil, err
	}
	if limit > 0 && len(out) == limit {
		last := out[len(out)-1].Revision
		if err := read(`SELECT revision, seq, kind, ref, created_at FROM changes
			WHERE project_id = ? AND revision = ? AND seq > ? ORDER BY seq`, projectID, last, lastSeq); err != nil {
			return nil, err
		}
	}
	return out, nil
}
