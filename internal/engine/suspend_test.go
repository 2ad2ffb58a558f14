package engine

import (
	"context"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// suspendOrg suspends (at != nil) or reinstates the organization the way internal/manage
// does: the flag and a project change in each of its projects, in one transaction.
func (f *storeFixture) suspendOrg(orgID string, at *time.Time, projectIDs ...string) {
	f.t.Helper()
	err := f.st.Tx(f.ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.SetOrganizationSuspension(ctx, orgID, at, "test"); err != nil {
			return err
		}
		for _, id := range projectIDs {
			if _, err := tx.AppendChanges(ctx, id, []thauth.Change{{Kind: thauth.ChangeProject}}, f.now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func TestSuspendedOrganizationKeys(t *testing.T) {
	f := newStoreFixture(t)
	pa1, pa2 := f.createProject("a1"), f.createProject("a2")
	other := thauth.Organization{ID: newID(), Name: "globex", CreatedAt: f.now}
	if err := f.st.CreateOrganization(f.ctx, &other); err != nil {
		t.Fatal(err)
	}
	pb := thauth.Project{ID: newID(), Name: "b", CreatedAt: f.now}
	f.tx([]thauth.Change{{Kind: thauth.ChangeProject}}, pb.ID, func(tx thauth.Data) error {
		return tx.CreateProject(f.ctx, other.ID, &pb)
	})
	ka1, _ := f.createKey(pa1.ID, nil, thauth.ScopeDecisionsRead)
	ka2, _ := f.createKey(pa2.ID, nil, thauth.ScopeAdmin)
	kb, _ := f.createKey(pb.ID, nil, thauth.ScopeDecisionsRead)
	revoked, rk := f.createKey(pa1.ID, nil, thauth.ScopeDecisionsRead)
	f.revokeKey(pa1.ID, rk.ID)

	e := New(f.st, Options{Now: func() time.Time { return f.now }})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	// want checks every key: active keys authenticate; suspended ones do not, and
	// AuthenticateDetail names them KeySuspended with their ids; the revoked key stays
	// revoked.
	want := func(step string, suspended bool) {
		t.Helper()
		for _, k := range []struct {
			name, token, project string
			suspendable          bool
		}{{"a1", ka1, pa1.ID, true}, {"a2", ka2, pa2.ID, true}, {"b", kb, pb.ID, false}} {
			s := suspended && k.suspendable
			p, ok := e.Authenticate(k.token)
			if ok == s || ok && p.ProjectID != k.project {
				t.Errorf("%s: key %s: Authenticate = %+v, %v; want authenticated %v", step, k.name, p, ok, !s)
			}
			_, c := e.AuthenticateDetail(k.token)
			if s && (c.Status != KeySuspended || c.ProjectID != k.project || c.OrganizationID != f.org.ID) {
				t.Errorf("%s: key %s: AuthenticateDetail = %+v, want suspended", step, k.name, c)
			}
		}
		if _, ok := e.Authenticate(revoked); ok {
			t.Errorf("%s: revoked key authenticates", step)
		}
		if _, c := e.AuthenticateDetail(revoked); c.Status != KeyRevoked {
			t.Errorf("%s: revoked key: %v", step, c.Status)
		}
		if _, c := e.AuthenticateDetail(ka1 + "x"); c.Status == KeySuspended || c.Status == KeyValid {
			t.Errorf("%s: a wrong secret is %v", step, c.Status)
		}
	}
	want("before", false)

	at := f.now
	f.suspendOrg(f.org.ID, &at, pa1.ID, pa2.ID)
	if err := e.SyncAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	want("suspended (incremental)", true)

	// A key created while suspended does not authenticate either.
	ka3, _ := f.createKey(pa1.ID, nil, thauth.ScopeDecisionsRead)
	if _, err := e.Sync(f.ctx, pa1.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Authenticate(ka3); ok {
		t.Error("key created during the suspension authenticates")
	}
	if _, c := e.AuthenticateDetail(ka3); c.Status != KeySuspended {
		t.Errorf("key created during the suspension: %v, want suspended", c.Status)
	}
	// Decisions are untouched: the snapshots stay.
	if e.Snapshot(pa1.ID) == nil || e.Snapshot(pb.ID) == nil {
		t.Error("suspension dropped a snapshot")
	}

	// A node that starts during the suspension (full load) holds the keys as suspended.
	fresh := New(f.st, Options{Now: func() time.Time { return f.now }})
	if err := fresh.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{ka1, ka2, ka3} {
		if _, ok := fresh.Authenticate(tok); ok {
			t.Error("full load: a suspended organization's key authenticates")
		}
	}
	if _, ok := fresh.Authenticate(kb); !ok {
		t.Error("full load: another organization's key does not authenticate")
	}

	f.suspendOrg(f.org.ID, nil, pa1.ID, pa2.ID)
	for _, eng := range []*Engine{e, fresh} {
		if err := eng.SyncAll(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	e2 := e
	want("reinstated", false)
	e = fresh
	want("reinstated (fresh node)", false)
	for _, eng := range []*Engine{e2, fresh} {
		if _, ok := eng.Authenticate(ka3); !ok {
			t.Error("reinstated: key created during the suspension does not authenticate")
		}
	}
}
