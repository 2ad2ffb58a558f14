package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/thauth/thauth"
)

// scanPage is how many subjects ScanSubjectGrants reads per round trip (a variable for
// tests).
var scanPage = 2000

// scanQueries are the three queries of one page of ScanSubjectGrants: the next scanPage
// subjects after $2 (all of them from the first, with first set), and the assignments and
// overrides of exactly those subjects, each in subject order along an index. $1 is the
// project, $2 the last subject id of the previous page, $3 the page size.
type scanQueries struct{ subjects, assignments, overrides string }

func newScanQueries(first bool) scanQueries {
	after := ` AND subject_id > $2`
	if first {
		after = ` AND $2::text IS NOT NULL` // keeps $2 in use, so both variants take the same arguments
	}
	upTo := ` AND subject_id <= (SELECT max(p.subject_id) FROM (SELECT subject_id FROM subjects
		WHERE project_id = $1` + after + ` ORDER BY subject_id LIMIT $3) AS p)`
	return scanQueries{
		subjects: `SELECT ` + subjectColumns + ` FROM subjects WHERE project_id = $1` + after + ` ORDER BY subject_id LIMIT $3`,
		assignments: `SELECT subject_id, role_id, tenant, valid_from, valid_until FROM assignments
			WHERE project_id = $1` + after + upTo + ` ORDER BY subject_id`,
		overrides: `SELECT subject_id, action_id, effect, resource, tenant, valid_from, valid_until FROM overrides
			WHERE project_id = $1` + after + upTo + ` ORDER BY subject_id`,
	}
}

var (
	scanFirstPage = newScanQueries(true)
	scanNextPage  = newScanQueries(false)
)

var errMismatch = errors.New("grant rows out of order with subject rows")

// ScanSubjectGrants calls fn for every subject of the project in subject id order (byte
// order: the columns are COLLATE "C"), with its grants sorted as by LoadSubjectGrants. It
// reads the subjects a page at a time: one round trip fetches a page of subjects and the
// assignments and overrides of exactly those subjects (three index range scans in subject
// order), which are merged by subject id. Memory holds one page plus the names of the
// project's roles and actions, whatever the size of the project; every statement is short,
// so statement_timeout bounds a page, not the scan. d should be a REPEATABLE READ
// transaction (Store does it), so that every page comes from the same state. fn's error stops
// the scan and is returned as is. An unknown project is ENotFound.
func (d *data) ScanSubjectGrants(ctx context.Context, projectID string, fn func(*thauth.SubjectGrants) error) error {
	if err := d.projectExists(ctx, projectID); err != nil {
		return err
	}
	fail := func(err error) error { return mapErr(err, "cannot read grants") }

	// Names of roles and actions, and one shared copy of each id and tenant string, so
	// that a million grants do not hold a million copies of a few hundred ids.
	type roleNames struct{ id, name string }
	type actionNames struct{ featureID, feature, actionID, action string }
	roles := map[string]roleNames{}
	actions := map[string]actionNames{}
	b := &pgx.Batch{}
	b.Queue(`SELECT id, name FROM roles WHERE project_id = $1`, projectID)
	b.Queue(`SELECT a.id, a.name, f.id, f.name FROM actions a
		JOIN features f ON f.project_id = a.project_id AND f.id = a.feature_id WHERE a.project_id = $1`, projectID)
	br := d.q.SendBatch(ctx, b)
	err := forEachRow(br, func(rows pgx.Rows) error {
		var r roleNames
		err := rows.Scan(&r.id, &r.name)
		roles[r.id] = r
		return err
	})
	if err == nil {
		err = forEachRow(br, func(rows pgx.Rows) error {
			var n actionNames
			err := rows.Scan(&n.actionID, &n.action, &n.featureID, &n.feature)
			actions[n.actionID] = n
			return err
		})
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}

	tenants := interner{}
	page := make([]*thauth.SubjectGrants, 0, scanPage)
	q, after := scanFirstPage, ""
	for {
		page = page[:0]
		b := &pgx.Batch{}
		b.Queue(q.subjects, projectID, after, scanPage)
		b.Queue(q.assignments, projectID, after, scanPage)
		b.Queue(q.overrides, projectID, after, scanPage)
		br := d.q.SendBatch(ctx, b)
		err := forEachRow(br, func(rows pgx.Rows) error {
			g := &thauth.SubjectGrants{Assignments: []thauth.Assignment{}, Overrides: []thauth.Override{}}
			page = append(page, g)
			return scanSubject(rows, &g.Subject)
		})
		// Grant rows are decoded from the wire format directly: no copy of the subject id,
		// ids and tenants shared, for the sake of scans of millions of grants.
		i := 0 // the subject of the page the grant rows have reached
		at := func(subject []byte) (*thauth.SubjectGrants, error) {
			for i < len(page) && page[i].Subject.SubjectID < string(subject) {
				i++
			}
			if i == len(page) || page[i].Subject.SubjectID != string(subject) {
				return nil, errMismatch
			}
			return page[i], nil
		}
		if err == nil {
			err = forEachRow(br, func(rows pgx.Rows) error {
				v := rows.RawValues()
				g, err := at(v[0])
				if err != nil {
					return err
				}
				r, ok := roles[string(v[1])]
				if !ok {
					return errMismatch
				}
				from, until, err := window(rows, 3, 4)
				if err != nil {
					return err
				}
				g.Assignments = append(g.Assignments, thauth.Assignment{
					RoleID: r.id, RoleName: r.name, Tenant: tenants.get(v[2]), Window: thauth.Window{From: from, Until: until},
				})
				return nil
			})
		}
		if err == nil {
			i = 0
			err = forEachRow(br, func(rows pgx.Rows) error {
				v := rows.RawValues()
				g, err := at(v[0])
				if err != nil {
					return err
				}
				n, ok := actions[string(v[1])]
				if !ok {
					return errMismatch
				}
				from, until, err := window(rows, 5, 6)
				if err != nil {
					return err
				}
				g.Overrides = append(g.Overrides, thauth.Override{
					FeatureID: n.featureID, FeatureName: n.feature, ActionID: n.actionID, ActionName: n.action,
					Effect: effectOfBytes(v[2]), Resource: string(v[3]), Tenant: tenants.get(v[4]),
					Window: thauth.Window{From: from, Until: until},
				})
				return nil
			})
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, errMismatch) {
			return thauth.Internal(err, "cannot read grants")
		}
		if err != nil {
			return fail(err)
		}
		for _, g := range page {
			g.Sort()
			if err := fn(g); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		q, after = scanNextPage, page[len(page)-1].Subject.SubjectID
	}
}

// pgEpochUnix is the zero of PostgreSQL's binary timestamps (2000-01-01 UTC) in Unix
// seconds.
const pgEpochUnix = 946684800

// window decodes the current row's two optional timestamptz columns at from and until.
func window(rows pgx.Rows, from, until int) (*time.Time, *time.Time, error) {
	f, err := optTime(rows, from)
	if err != nil {
		return nil, nil, err
	}
	u, err := optTime(rows, until)
	return f, u, err
}

// optTime decodes the current row's optional timestamptz column i, in UTC. The binary
// format (microseconds since 2000-01-01 UTC), which pgx asks for, is decoded here without
// allocating; any other form goes through pgx's codec.
func optTime(rows pgx.Rows, i int) (*time.Time, error) {
	raw := rows.RawValues()[i]
	if raw == nil {
		return nil, nil
	}
	format := rows.FieldDescriptions()[i].Format
	if format == pgx.BinaryFormatCode && len(raw) == 8 {
		us := int64(binary.BigEndian.Uint64(raw))
		if us != 1<<63-1 && us != -1<<63 { // not ±infinity
			t := time.Unix(pgEpochUnix+us/1e6, us%1e6*1e3).UTC()
			return &t, nil
		}
	}
	var ts pgtype.Timestamptz
	if err := rows.Conn().TypeMap().Scan(pgtype.TimestamptzOID, format, raw, &ts); err != nil {
		return nil, err
	}
	t := ts.Time.UTC()
	return &t, nil
}

func effectOfBytes(b []byte) thauth.Effect {
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
