package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth"
)

// Bulk subject writes (thauth.SubjectBulkWriter). A chunk of subjects is copied (COPY) with
// its grants into temporary tables, which then feed a handful of set-based statements: one
// upsert of the subjects, one delete of the replaced grants per table, one insert per
// table. The grant tables' composite foreign keys still check every row against the
// project's roles and actions; explicit checks run first to name a missing one.

var (
	_ thauth.SubjectBulkWriter = (*data)(nil)
	_ thauth.SubjectBulkWriter = (*Store)(nil)
)

// bulkChunk is the number of subjects written per round of statements, so that each
// statement stays well within the statement timeout.
const bulkChunk = 10_000

// bulkSetup creates the temporary tables (dropped at commit) once per transaction and
// empties them.
const bulkSetup = `CREATE TEMP TABLE IF NOT EXISTS thauth_bulk_subjects (
    id           TEXT COLLATE "C" NOT NULL,
    subject_id   TEXT COLLATE "C" NOT NULL,
    subject_type TEXT COLLATE "C" NOT NULL,
    set_a        BOOLEAN NOT NULL,
    set_o        BOOLEAN NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS thauth_bulk_assignments (
    subject_id  TEXT COLLATE "C" NOT NULL,
    role_id     TEXT COLLATE "C" NOT NULL,
    tenant      TEXT COLLATE "C" NOT NULL,
    valid_from  TIMESTAMPTZ,
    valid_until TIMESTAMPTZ
) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS thauth_bulk_overrides (
    subject_id  TEXT COLLATE "C" NOT NULL,
    feature_id  TEXT COLLATE "C" NOT NULL,
    action_id   TEXT COLLATE "C" NOT NULL,
    effect      TEXT COLLATE "C" NOT NULL,
    resource    TEXT COLLATE "C" NOT NULL,
    tenant      TEXT COLLATE "C" NOT NULL,
    valid_from  TIMESTAMPTZ,
    valid_until TIMESTAMPTZ
) ON COMMIT DROP;
TRUNCATE thauth_bulk_subjects, thauth_bulk_assignments, thauth_bulk_overrides`

// The set-based statements of one chunk, in order ($1 is the project id).
const (
	bulkCheckRoles = `SELECT b.role_id FROM thauth_bulk_assignments b
		WHERE NOT EXISTS (SELECT 1 FROM roles r WHERE r.project_id = $1 AND r.id = b.role_id) LIMIT 1`
	bulkCheckActions = `SELECT b.feature_id, b.action_id FROM thauth_bulk_overrides b
		WHERE NOT EXISTS (SELECT 1 FROM actions c WHERE c.project_id = $1 AND c.feature_id = b.feature_id AND c.id = b.action_id) LIMIT 1`
	bulkUpsertSubjects = `INSERT INTO subjects (` + subjectColumns + `)
		SELECT b.id, $1, b.subject_id, b.subject_type, $2, $2 FROM thauth_bulk_subjects b ORDER BY b.subject_id
		ON CONFLICT (project_id, subject_id) DO UPDATE SET subject_type = excluded.subject_type, updated_at = excluded.updated_at`
	bulkDeleteAssignments = `DELETE FROM assignments a USING thauth_bulk_subjects b
		WHERE a.project_id = $1 AND a.subject_id = b.subject_id AND b.set_a`
	bulkDeleteOverrides = `DELETE FROM overrides o USING thauth_bulk_subjects b
		WHERE o.project_id = $1 AND o.subject_id = b.subject_id AND b.set_o`
	bulkInsertAssignments = `INSERT INTO assignments (project_id, subject_id, role_id, tenant, valid_from, valid_until)
		SELECT $1, b.subject_id, b.role_id, b.tenant, b.valid_from, b.valid_until FROM thauth_bulk_assignments b ORDER BY b.subject_id`
	bulkInsertOverrides = `INSERT INTO overrides (project_id, subject_id, feature_id, action_id, effect, resource, tenant, valid_from, valid_until)
		SELECT $1, b.subject_id, b.feature_id, b.action_id, b.effect, b.resource, b.tenant, b.valid_from, b.valid_until
		FROM thauth_bulk_overrides b ORDER BY b.subject_id`
)

// copier is the part of pgx.Tx that COPY needs.
type copier interface {
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
}

// WriteSubjects implements thauth.SubjectBulkWriter in the caller's transaction. It needs
// a write transaction (Store.Tx); on error the transaction must be rolled back.
func (d *data) WriteSubjects(ctx context.Context, projectID string, subjects []*thauth.SubjectGrants, now time.Time) error {
	if len(subjects) == 0 {
		return nil
	}
	cp, ok := d.q.(copier)
	if !ok || !d.lock {
		return thauth.Internal(errors.New("WriteSubjects outside a write transaction"), "cannot write subjects")
	}
	seen := make(map[string]bool, len(subjects))
	for _, s := range subjects {
		if seen[s.Subject.SubjectID] {
			return thauth.Errorf(thauth.EInvalid, "subject %s given twice", s.Subject.SubjectID)
		}
		seen[s.Subject.SubjectID] = true
	}
	if err := d.projectExists(ctx, projectID); err != nil {
		return err
	}
	ts := normTime(now)
	for start := 0; start < len(subjects); start += bulkChunk {
		chunk := subjects[start:min(start+bulkChunk, len(subjects))]
		if err := d.writeChunk(ctx, cp, projectID, chunk, ts); err != nil {
			return err
		}
	}
	for _, s := range subjects {
		d.forget(projectID, s.Subject.SubjectID)
	}
	return nil
}

// writeChunk copies one chunk into the temporary tables and applies it.
func (d *data) writeChunk(ctx context.Context, cp copier, projectID string, chunk []*thauth.SubjectGrants, ts time.Time) error {
	if _, err := d.q.Exec(ctx, bulkSetup); err != nil {
		return mapErr(err, "cannot prepare subject writes")
	}
	srows := make([][]any, len(chunk))
	var arows, orows [][]any
	for i, s := range chunk {
		id := s.Subject.ID
		if id == "" {
			u, err := uuid.NewV7()
			if err != nil {
				return thauth.Internal(err, "cannot generate id")
			}
			id = u.String()
		}
		srows[i] = []any{id, s.Subject.SubjectID, s.Subject.SubjectType, s.Assignments != nil, s.Overrides != nil}
		for _, a := range s.Assignments {
			arows = append(arows, []any{s.Subject.SubjectID, a.RoleID, a.Tenant, nullTime(a.From), nullTime(a.Until)})
		}
		for _, o := range s.Overrides {
			orows = append(orows, []any{s.Subject.SubjectID, o.FeatureID, o.ActionID, string(o.Effect), o.Resource, o.Tenant, nullTime(o.From), nullTime(o.Until)})
		}
	}
	copies := []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"thauth_bulk_subjects", []string{"id", "subject_id", "subject_type", "set_a", "set_o"}, srows},
		{"thauth_bulk_assignments", []string{"subject_id", "role_id", "tenant", "valid_from", "valid_until"}, arows},
		{"thauth_bulk_overrides", []string{"subject_id", "feature_id", "action_id", "effect", "resource", "tenant", "valid_from", "valid_until"}, orows},
	}
	for _, c := range copies {
		if len(c.rows) == 0 {
			continue
		}
		if _, err := cp.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			return mapErr(err, "cannot write subjects")
		}
	}

	b := &pgx.Batch{}
	b.Queue(bulkCheckRoles, projectID)
	b.Queue(bulkCheckActions, projectID)
	b.Queue(bulkUpsertSubjects, projectID, ts)
	b.Queue(bulkDeleteAssignments, projectID)
	b.Queue(bulkDeleteOverrides, projectID)
	b.Queue(bulkInsertAssignments, projectID)
	b.Queue(bulkInsertOverrides, projectID)
	br := d.q.SendBatch(ctx, b)
	defer br.Close()
	var role string
	switch err := br.QueryRow().Scan(&role); {
	case err == nil:
		return thauth.Errorf(thauth.ENotFound, "role %s not found", role)
	case !errors.Is(err, pgx.ErrNoRows):
		return mapErr(err, "cannot write subjects")
	}
	var feature, action string
	switch err := br.QueryRow().Scan(&feature, &action); {
	case err == nil:
		return thauth.Errorf(thauth.ENotFound, "action %s of feature %s not found", action, feature)
	case !errors.Is(err, pgx.ErrNoRows):
		return mapErr(err, "cannot write subjects")
	}
	for range 5 {
		if _, err := br.Exec(); err != nil {
			if isForeignKeyViolation(err) {
				return thauth.Errorf(thauth.ENotFound, "a referenced row was not found")
			}
			return mapErr(err, "cannot write subjects")
		}
	}
	return mapErr(br.Close(), "cannot write subjects")
}

// WriteSubjects implements thauth.SubjectBulkWriter in a write transaction of its own.
func (s *Store) WriteSubjects(ctx context.Context, projectID string, subjects []*thauth.SubjectGrants, now time.Time) error {
	if len(subjects) == 0 {
		return nil
	}
	return s.write(ctx, func(d *data) error { return d.WriteSubjects(ctx, projectID, subjects, now) })
}
