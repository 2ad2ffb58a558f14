// Package storetest is the conformance suite of thauth.Store: one set of tests that every
// storage engine (SQLite, PostgreSQL) must pass, so that the engines behave alike down to
// error codes, orderings and time precision.
//
// An engine's tests call Run with a function that opens a fresh, migrated, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) thauth.Store {
//			s := openFreshStore(t)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite only uses the thauth.Store interface. Beyond the doc comments of store.go it
// pins down these behaviours, which every engine must share:
//   - Times come back in UTC, truncated to microseconds.
//   - Slices come back empty or nil alike (compared with cmpopts.EquateEmpty).
//   - ScanSubjectGrants orders subjects by subject id in byte order (PostgreSQL: COLLATE "C").
//   - LoadSubjectGrants and ScanSubjectGrants order assignments by (tenant, role name, role id,
//     valid from, valid until) and overrides by (tenant, feature name, action name, resource,
//     effect, valid from, valid until), an absent time first.
//   - ListAPIKeys orders newest first.
//   - ChangesSince orders by revision then by position in the AppendChanges call, and never
//     splits a revision: when limit falls inside one, its remaining changes are returned too.
//   - Every method given an id of another project's row returns ENotFound (or nothing, for
//     listings and TouchAPIKeys) and leaves the other project unchanged.
//
// The suite does not run subtests in parallel, so open may hand out stores from a shared
// server as long as each is empty and private to its test.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/thauth/thauth"
)

// Run runs the whole suite. open must return a fresh, migrated, empty store for the test
// it is given and arrange its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) thauth.Store) {
	t.Run("Organizations", func(t *testing.T) { testOrganizations(t, open) })
	t.Run("Projects", func(t *testing.T) { testProjects(t, open) })
	t.Run("Config", func(t *testing.T) { testConfig(t, open) })
	t.Run("Subjects", func(t *testing.T) { testSubjects(t, open) })
	t.Run("Grants", func(t *testing.T) { testGrants(t, open) })
	t.Run("Scan", func(t *testing.T) { testScan(t, open) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, open) })
	t.Run("Changes", func(t *testing.T) { testChanges(t, open) })
	t.Run("Tx", func(t *testing.T) { testTx(t, open) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(t, open) })
	t.Run("Identity", func(t *testing.T) { testIdentity(t, open) })
	t.Run("Protection", func(t *testing.T) { testProtection(t, open) })
}

// opts compares stored values: times by instant (cmp uses time.Time.Equal), empty and nil
// slices alike.
var opts = cmp.Options{cmpopts.EquateEmpty()}

// base is an arbitrary instant with microseconds, in UTC.
var base = time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.UTC)

// at returns base plus d.
func at(d time.Duration) time.Time { return base.Add(d) }

func ptr(t time.Time) *time.Time { return &t }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// wantCode fails the test unless err carries code.
func wantCode(t *testing.T, err error, code thauth.ErrorCode) {
	t.Helper()
	if got := thauth.ErrorCodeOf(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

// wantNotFoundOrEmpty fails unless err is ENotFound or (err is nil and n is 0).
func wantNotFoundOrEmpty(t *testing.T, err error, n int) {
	t.Helper()
	if err == nil && n == 0 {
		return
	}
	if thauth.ErrorCodeOf(err) != thauth.ENotFound {
		t.Fatalf("got %d results, error %v; want ENotFound or nothing", n, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got, opts); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func wantUTC(t *testing.T, what string, ts time.Time) {
	t.Helper()
	if ts.Location() != time.UTC {
		t.Errorf("%s = %v: location %v, want UTC", what, ts, ts.Location())
	}
}

// fixture is an organization with one project and a small configuration.
type fixture struct {
	org     thauth.Organization
	project thauth.Project
	pid     string         // project.ID
	cfg     *thauth.Config // as stored: canonical order, names filled

	billing, reports                      string // feature ids
	billingRead, billingRefund, billingWr string // action ids of billing
	reportsRead, reportsExport            string // action ids of reports
	admin, viewer                         string // role ids
}

// newFixture creates an organization, a project and the standard configuration.
func newFixture(t *testing.T, s thauth.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{
		org:     thauth.Organization{ID: newID(), Name: "Acme", CreatedAt: base},
		billing: newID(), reports: newID(),
		billingRead: newID(), billingRefund: newID(), billingWr: newID(),
		reportsRead: newID(), reportsExport: newID(),
		admin: newID(), viewer: newID(),
	}
	f.project = thauth.Project{ID: newID(), Name: "Shop", CreatedAt: at(time.Second)}
	f.pid = f.project.ID
	must(t, s.CreateOrganization(ctx, &f.org))
	must(t, s.CreateProject(ctx, f.org.ID, &f.project))
	f.cfg = f.config()
	must(t, s.ReplaceConfig(ctx, f.pid, f.config()))
	return f
}

// config returns the fixture's configuration, in canonical order with names filled.
func (f *fixture) config() *thauth.Config {
	return &thauth.Config{
		Features: []thauth.Feature{
			{ID: f.billing, Name: "billing", Description: "Billing and invoices", Actions: []thauth.Action{
				{ID: f.billingRead, Name: "read"}, {ID: f.billingRefund, Name: "refund"}, {ID: f.billingWr, Name: "write"},
			}},
			{ID: f.reports, Name: "reports", Actions: []thauth.Action{
				{ID: f.reportsExport, Name: "export"}, {ID: f.reportsRead, Name: "read"},
			}},
		},
		Roles: []thauth.Role{
			{ID: f.admin, Name: "billing-admin", Description: "Can manage billing", Permissions: []thauth.Permission{
				{FeatureID: f.billing, FeatureName: "billing", ActionID: f.billingRead, ActionName: "read"},
				{FeatureID: f.billing, FeatureName: "billing", ActionID: f.billingRefund, ActionName: "refund"},
				{FeatureID: f.billing, FeatureName: "billing", ActionID: f.billingRefund, ActionName: "refund", Resource: "invoices/*"},
			}},
			{ID: f.viewer, Name: "viewer", Permissions: []thauth.Permission{
				{FeatureID: f.billing, FeatureName: "billing", ActionID: f.billingRead, ActionName: "read"},
				{FeatureID: f.reports, FeatureName: "reports", ActionID: f.reportsRead, ActionName: "read", Resource: "*"},
			}},
		},
	}
}

// subject upserts a subject of type "user" at base and returns it.
func (f *fixture) subject(t *testing.T, s thauth.Store, subjectID string) thauth.Subject {
	t.Helper()
	sub := thauth.Subject{SubjectID: subjectID, SubjectType: "user"}
	_, err := s.UpsertSubject(context.Background(), f.pid, &sub, base)
	must(t, err)
	return sub
}

// assignment is an assignment of fixture role roleID (name filled in) in tenant.
func (f *fixture) assignment(roleID, tenant string) thauth.Assignment {
	names := map[string]string{f.admin: "billing-admin", f.viewer: "viewer"}
	return thauth.Assignment{RoleID: roleID, RoleName: names[roleID], Tenant: tenant}
}

// override is an override of a fixture action, names filled.
func (f *fixture) override(actionID string, effect thauth.Effect, resource, tenant string) thauth.Override {
	type fa struct{ fid, fname, aname string }
	m := map[string]fa{
		f.billingRead: {f.billing, "billing", "read"}, f.billingRefund: {f.billing, "billing", "refund"},
		f.billingWr: {f.billing, "billing", "write"}, f.reportsRead: {f.reports, "reports", "read"},
		f.reportsExport: {f.reports, "reports", "export"},
	}
	x := m[actionID]
	return thauth.Override{FeatureID: x.fid, FeatureName: x.fname, ActionID: actionID, ActionName: x.aname,
		Effect: effect, Resource: resource, Tenant: tenant}
}

// state is everything a store holds for one project, for before/after comparisons.
type state struct {
	Project  *thauth.Project
	Config   *thauth.Config
	Subjects []*thauth.SubjectGrants
	Keys     []thauth.APIKey
	Changes  []thauth.Change
}

func snapshot(t *testing.T, s thauth.Store, projectID string) state {
	t.Helper()
	ctx := context.Background()
	var st state
	var err error
	st.Project, err = s.GetProject(ctx, projectID)
	must(t, err)
	st.Config, err = s.LoadConfig(ctx, projectID)
	must(t, err)
	must(t, s.ScanSubjectGrants(ctx, projectID, func(g *thauth.SubjectGrants) error {
		st.Subjects = append(st.Subjects, g)
		return nil
	}))
	st.Keys, err = s.ListAPIKeys(ctx, projectID)
	must(t, err)
	st.Changes, err = s.ChangesSince(ctx, projectID, 0, 0)
	must(t, err)
	return st
}

// populate gives the fixture's project subjects with grants, API keys and changes.
func (f *fixture) populate(t *testing.T, s thauth.Store) {
	t.Helper()
	ctx := context.Background()
	for i, id := range []string{"user:alice", "user:bob", "user:shared"} {
		f.subject(t, s, id)
		must(t, s.ReplaceAssignments(ctx, f.pid, id, thauth.Scope{All: true}, []thauth.Assignment{
			f.assignment(f.admin, ""), f.assignment(f.viewer, fmt.Sprintf("tenant_%d", i)),
		}))
		must(t, s.ReplaceOverrides(ctx, f.pid, id, thauth.Scope{All: true}, []thauth.Override{
			f.override(f.reportsExport, thauth.Deny, "prod/*", ""),
		}))
	}
	for i := range 2 {
		k := newKey(f.pid, fmt.Sprintf("key %d", i), at(time.Duration(i)*time.Minute))
		must(t, s.CreateAPIKey(ctx, f.pid, &k))
	}
	for range 2 {
		_, err := s.AppendChanges(ctx, f.pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base)
		must(t, err)
	}
}

// newKey returns an API key (not stored) with a fresh id and lookup id.
func newKey(projectID, name string, created time.Time) thauth.APIKey {
	_, lookup, hash := thauth.NewToken()
	return thauth.APIKey{
		ID: newID(), ProjectID: projectID, Name: name, LookupID: lookup, Hash: hash,
		Scopes: []string{thauth.ScopeDecisionsRead, thauth.ScopeAdmin}, CreatedAt: created,
	}
}

// scanAll collects every subject of a project.
func scanAll(t *testing.T, s thauth.Store, projectID string) []*thauth.SubjectGrants {
	t.Helper()
	var out []*thauth.SubjectGrants
	must(t, s.ScanSubjectGrants(context.Background(), projectID, func(g *thauth.SubjectGrants) error {
		out = append(out, g)
		return nil
	}))
	return out
}

func subjectIDs(gs []*thauth.SubjectGrants) []string {
	ids := []string{}
	for _, g := range gs {
		ids = append(ids, g.Subject.SubjectID)
	}
	return ids
}

func sortedProjects(ps []thauth.Project) []thauth.Project {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b thauth.Project) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return ps
}

var errStop = errors.New("stop")
