package manage

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

// orgTeam is an organization with one member of each role.
type orgTeam struct {
	org                                   *thauth.Organization
	owner, admin, developer, viewer, bill Actor
}

func orgNewTeam(t testing.TB, e *consoleEnv) *orgTeam {
	t.Helper()
	tm := &orgTeam{owner: orgNewAccount(t, e, "owner@example.com", false)}
	tm.org = orgNewOrg(t, e, tm.owner, "Acme")
	for _, m := range []struct {
		a    *Actor
		role string
	}{{&tm.admin, "admin"}, {&tm.developer, "developer"}, {&tm.viewer, "viewer"}, {&tm.bill, "billing"}} {
		*m.a = orgNewAccount(t, e, m.role+"@example.com", false)
		orgAddMember(t, e, tm.owner, tm.org.ID, *m.a, m.role)
	}
	return tm
}

func (tm *orgTeam) all() []Actor {
	return []Actor{tm.owner, tm.admin, tm.developer, tm.viewer, tm.bill}
}

// orgRoles returns account id → role of the organization's members.
func orgRoles(t testing.TB, e *consoleEnv, orgID string) map[string]string {
	t.Helper()
	members, err := e.store.ListMembers(e.ctx, orgID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range members {
		out[m.AccountID] = m.Role
	}
	return out
}

func TestListMembers(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	for _, a := range tm.all() {
		list, err := e.svc.ListMembers(e.ctx, a, tm.org.ID)
		if err != nil {
			t.Fatalf("ListMembers: %v", err)
		}
		var got []string
		for _, m := range list {
			got = append(got, m.Email+"/"+m.Role)
		}
		want := []string{"owner@example.com/owner", "admin@example.com/admin", "developer@example.com/developer",
			"viewer@example.com/viewer", "billing@example.com/billing"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListMembers (-want +got):\n%s", diff)
		}
	}
	orgEngineAgrees(t, e, tm.all()...)
}

func TestChangeMemberRole(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	org := tm.org.ID

	_, err := e.svc.ChangeMemberRole(e.ctx, tm.admin, org, tm.viewer.AccountID, "root")
	orgWantErr(t, err, thauth.EInvalid, `unknown role "root": use one of owner, admin, developer, viewer, billing`)
	_, err = e.svc.ChangeMemberRole(e.ctx, tm.developer, org, tm.viewer.AccountID, "admin")
	orgWantErr(t, err, thauth.EForbidden, `your role "developer" does not allow members:update in this organization (reason: default:deny)`)
	_, err = e.svc.ChangeMemberRole(e.ctx, tm.admin, org, "0190e6c2-0000-7000-8000-00000000dead", "viewer")
	orgWantErr(t, err, thauth.ENotFound, "member not found")

	// An admin manages non-owners, but neither grants nor touches the owner role.
	m, err := e.svc.ChangeMemberRole(e.ctx, tm.admin, org, tm.viewer.AccountID, "developer")
	if err != nil || m.Role != "developer" || m.AccountID != tm.viewer.AccountID {
		t.Fatalf("admin promoting a viewer: %+v %v", m, err)
	}
	orgEngineAgrees(t, e, tm.all()...)
	_, err = e.svc.ChangeMemberRole(e.ctx, tm.admin, org, tm.viewer.AccountID, "owner")
	orgWantErr(t, err, thauth.EForbidden, `role "admin" does not allow members:manage_owners`)
	_, err = e.svc.ChangeMemberRole(e.ctx, tm.admin, org, tm.admin.AccountID, "owner")
	orgWantErr(t, err, thauth.EForbidden, `role "admin" does not allow members:manage_owners`)
	_, err = e.svc.ChangeMemberRole(e.ctx, tm.admin, org, tm.owner.AccountID, "viewer")
	orgWantErr(t, err, thauth.EForbidden, `role "admin" does not allow members:manage_owners`)

	// The last owner cannot step down; with a second owner, it can.
	_, err = e.svc.ChangeMemberRole(e.ctx, tm.owner, org, tm.owner.AccountID, "admin")
	orgWantErr(t, err, thauth.EConflict, "an organization must keep at least one owner: transfer ownership first")
	if _, err := e.svc.ChangeMemberRole(e.ctx, tm.owner, org, tm.admin.AccountID, "owner"); err != nil {
		t.Fatalf("owner making an admin owner: %v", err)
	}
	orgEngineAgrees(t, e, tm.all()...)
	if _, err := e.svc.ChangeMemberRole(e.ctx, tm.owner, org, tm.owner.AccountID, "viewer"); err != nil {
		t.Fatalf("owner stepping down beside another owner: %v", err)
	}
	orgEngineAgrees(t, e, tm.all()...)
	// The former owner lost its powers at once: the engine agrees with the table.
	_, err = e.svc.Invite(e.ctx, tm.owner, org, "x@example.com", "viewer")
	orgWantErr(t, err, thauth.EForbidden, `your role "viewer" does not allow members:invite`)

	want := map[string]string{
		tm.owner.AccountID: "viewer", tm.admin.AccountID: "owner", tm.developer.AccountID: "developer",
		tm.viewer.AccountID: "developer", tm.bill.AccountID: "billing",
	}
	if diff := cmp.Diff(want, orgRoles(t, e, org)); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	// A no-op change records nothing.
	n := len(orgAudit(t, e, org))
	if _, err := e.svc.ChangeMemberRole(e.ctx, tm.admin, org, tm.bill.AccountID, "billing"); err != nil {
		t.Fatal(err)
	}
	audit := orgAudit(t, e, org)
	if len(audit) != n {
		t.Errorf("no-op role change audited: %v", orgActions(audit[n:]))
	}
	var changes []string
	for _, a := range audit {
		if a.Action == "member.role_changed" {
			changes = append(changes, a.Target+" "+a.Data)
		}
	}
	wantChanges := []string{
		tm.viewer.AccountID + ` {"from":"viewer","to":"developer"}`,
		tm.admin.AccountID + ` {"from":"admin","to":"owner"}`,
		tm.owner.AccountID + ` {"from":"owner","to":"viewer"}`,
	}
	if diff := cmp.Diff(wantChanges, changes); diff != "" {
		t.Errorf("member.role_changed entries (-want +got):\n%s", diff)
	}
}

func TestRemoveMember(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	org := tm.org.ID

	err := e.svc.RemoveMember(e.ctx, tm.developer, org, tm.viewer.AccountID)
	orgWantErr(t, err, thauth.EForbidden, `role "developer" does not allow members:remove`, "default:deny")
	err = e.svc.RemoveMember(e.ctx, tm.admin, org, tm.owner.AccountID)
	orgWantErr(t, err, thauth.EForbidden, `role "admin" does not allow members:manage_owners`)
	err = e.svc.RemoveMember(e.ctx, tm.owner, org, tm.owner.AccountID)
	orgWantErr(t, err, thauth.EConflict, "an organization must keep at least one owner")

	if err := e.svc.RemoveMember(e.ctx, tm.admin, org, tm.viewer.AccountID); err != nil {
		t.Fatalf("admin removing a viewer: %v", err)
	}
	err = e.svc.RemoveMember(e.ctx, tm.admin, org, tm.viewer.AccountID)
	orgWantErr(t, err, thauth.ENotFound, "member not found")
	// A removed member is an outsider now: the organization is invisible to it.
	_, _, err = e.svc.GetOrganization(e.ctx, tm.viewer, org)
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	orgEngineAgrees(t, e, tm.all()...)

	// Any member may leave, without members:remove.
	if err := e.svc.RemoveMember(e.ctx, tm.bill, org, tm.bill.AccountID); err != nil {
		t.Fatalf("billing member leaving: %v", err)
	}
	orgEngineAgrees(t, e, tm.all()...)

	// A second owner may leave or be removed by an owner.
	if _, err := e.svc.ChangeMemberRole(e.ctx, tm.owner, org, tm.admin.AccountID, "owner"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RemoveMember(e.ctx, tm.admin, org, tm.owner.AccountID); err != nil {
		t.Fatalf("owner removing the other owner: %v", err)
	}
	err = e.svc.RemoveMember(e.ctx, tm.admin, org, tm.admin.AccountID)
	orgWantErr(t, err, thauth.EConflict, "an organization must keep at least one owner")

	want := map[string]string{tm.admin.AccountID: "owner", tm.developer.AccountID: "developer"}
	if diff := cmp.Diff(want, orgRoles(t, e, org)); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	var removed []string
	for _, a := range orgAudit(t, e, org) {
		if a.Action == "member.removed" {
			removed = append(removed, a.ActorID+" "+a.Target+" "+a.Data)
		}
	}
	wantRemoved := []string{
		tm.admin.AccountID + " " + tm.viewer.AccountID + ` {"role":"viewer"}`,
		tm.bill.AccountID + " " + tm.bill.AccountID + ` {"left":"true","role":"billing"}`,
		tm.admin.AccountID + " " + tm.owner.AccountID + ` {"role":"owner"}`,
	}
	if diff := cmp.Diff(wantRemoved, removed); diff != "" {
		t.Errorf("member.removed entries (-want +got):\n%s", diff)
	}
	orgEngineAgrees(t, e, tm.all()...)
}

func TestTransferOwnership(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	org := tm.org.ID
	outsider := orgNewAccount(t, e, "outsider@example.com", false)

	err := e.svc.TransferOwnership(e.ctx, tm.admin, org, tm.admin.AccountID)
	orgWantErr(t, err, thauth.EForbidden, `role "admin" does not allow organization:transfer`)
	err = e.svc.TransferOwnership(e.ctx, tm.owner, org, outsider.AccountID)
	orgWantErr(t, err, thauth.ENotFound, "member not found")
	err = e.svc.TransferOwnership(e.ctx, tm.owner, org, tm.owner.AccountID)
	orgWantErr(t, err, thauth.EInvalid, "already an owner")

	if err := e.svc.TransferOwnership(e.ctx, tm.owner, org, tm.developer.AccountID); err != nil {
		t.Fatalf("TransferOwnership: %v", err)
	}
	roles := orgRoles(t, e, org)
	if roles[tm.developer.AccountID] != "owner" || roles[tm.owner.AccountID] != "admin" {
		t.Errorf("after the transfer: %v", roles)
	}
	orgEngineAgrees(t, e, append(tm.all(), outsider)...)
	// The new owner has the owner's powers and the former one no longer does.
	if _, err := e.svc.Authorize(e.ctx, tm.developer, org, "organization", "transfer"); err != nil {
		t.Errorf("new owner: %v", err)
	}
	err = e.svc.TransferOwnership(e.ctx, tm.owner, org, tm.owner.AccountID)
	orgWantErr(t, err, thauth.EForbidden, `role "admin" does not allow organization:transfer`)

	audit := orgAudit(t, e, org)
	last := audit[len(audit)-1]
	if last.Action != "org.ownership_transferred" || last.ActorID != tm.owner.AccountID || last.Target != tm.developer.AccountID {
		t.Errorf("audit: %+v", last)
	}
}

// Two owners stepping down at the same moment: the owner count is read under the lock that
// serializes membership writes, so exactly one succeeds and the organization keeps an owner.
func TestLastOwnerConcurrent(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	org := tm.org.ID
	if _, err := e.svc.ChangeMemberRole(e.ctx, tm.owner, org, tm.admin.AccountID, "owner"); err != nil {
		t.Fatal(err)
	}
	owners := []Actor{tm.owner, tm.admin}
	errs := make([]error, len(owners))
	var wg sync.WaitGroup
	for i, a := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.svc.ChangeMemberRole(e.ctx, a, org, a.AccountID, "developer")
		}()
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			// The loser either lost its own owner role first (no longer allowed) or was the
			// last owner.
			if c := thauth.ErrorCodeOf(err); c != thauth.EConflict && c != thauth.EForbidden {
				t.Errorf("unexpected error: %v", err)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d of 2 concurrent step-downs failed, want exactly 1: %v", failed, errs)
	}
	n := 0
	for _, role := range orgRoles(t, e, org) {
		if role == "owner" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d owners left, want 1", n)
	}
	orgEngineAgrees(t, e, tm.all()...)
}
