package manage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

func TestGrantAndRevokeOperator(t *testing.T) {
	e := newConsoleEnv(t)
	op := orgNewAccount(t, e, "ops@example.com", false)

	_, err := e.svc.GrantOperator(e.ctx, "nobody@example.com", "support", "cli:root")
	orgWantErr(t, err, thauth.ENotFound, "no account with this email")
	_, err = e.svc.GrantOperator(e.ctx, "ops@example.com", "owner", "cli:root")
	orgWantErr(t, err, thauth.EInvalid, `unknown operator role "owner": use one of support, operator, superadmin`)

	got, err := e.svc.GrantOperator(e.ctx, " OPS@example.com", "support", "cli:root")
	if err != nil {
		t.Fatal(err)
	}
	want := &thauth.Operator{AccountID: op.AccountID, Role: "support", GrantedAt: testStart, GrantedBy: "cli:root"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GrantOperator (-want +got):\n%s", diff)
	}
	orgEngineAgrees(t, e, op)
	if _, err := e.svc.GrantOperator(e.ctx, "ops@example.com", "superadmin", "cli:root"); err != nil {
		t.Fatal(err)
	}
	orgEngineAgrees(t, e, op)
	list, err := e.svc.ListOperators(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantList := []OperatorAccount{{Operator: thauth.Operator{AccountID: op.AccountID, Role: "superadmin", GrantedAt: testStart,
		GrantedBy: "cli:root"}, Email: "ops@example.com"}}
	if diff := cmp.Diff(wantList, list); diff != "" {
		t.Errorf("ListOperators (-want +got):\n%s", diff)
	}

	if err := e.svc.RevokeOperator(e.ctx, "ops@example.com", "cli:root"); err != nil {
		t.Fatal(err)
	}
	orgEngineAgrees(t, e, op)
	err = e.svc.RevokeOperator(e.ctx, "ops@example.com", "cli:root")
	orgWantErr(t, err, thauth.ENotFound, "this account is not an operator")
	err = e.svc.RevokeOperator(e.ctx, "nobody@example.com", "cli:root")
	orgWantErr(t, err, thauth.ENotFound, "no account with this email")
	if list, err := e.svc.ListOperators(e.ctx); err != nil || len(list) != 0 {
		t.Errorf("ListOperators after revoke: %+v %v", list, err)
	}

	var got2 []string
	for _, a := range orgAudit(t, e, "") {
		if strings.HasPrefix(a.Action, "operator.") {
			got2 = append(got2, a.Action+" "+a.ActorType+":"+a.ActorID+" "+a.Target+" "+a.Data)
		}
	}
	wantAudit := []string{
		"operator.granted cli:root " + op.AccountID + ` {"email":"ops@example.com","role":"support"}`,
		"operator.granted cli:root " + op.AccountID + ` {"email":"ops@example.com","previous_role":"support","role":"superadmin"}`,
		"operator.revoked cli:root " + op.AccountID + ` {"email":"ops@example.com","role":"superadmin"}`,
	}
	if diff := cmp.Diff(wantAudit, got2); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func TestOperatorAccess(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", true)
	org := orgNewOrg(t, e, owner, "Acme")
	project := mustProject(t, e, owner, org.ID)
	support := orgNewAccount(t, e, "support@example.com", false)
	if _, err := e.svc.GrantOperator(e.ctx, "support@example.com", "support", "cli:root"); err != nil {
		t.Fatal(err)
	}
	auditLen := len(orgAudit(t, e, org.ID))

	// Without MFA the grant is unusable, and nothing is audited as access.
	_, err := e.svc.ListMembers(e.ctx, support, org.ID)
	orgWantErr(t, err, thauth.EForbidden, "operator access requires a session signed in with two-factor authentication")
	// A token never carries operator access, even with MFA on the account.
	token := Actor{AccountID: support.AccountID, Via: ViaToken, MFA: true, Scopes: []string{"read", "write"}}
	_, err = e.svc.ListMembers(e.ctx, token, org.ID)
	orgWantErr(t, err, thauth.EForbidden, "operator access requires a session")
	_, err = e.svc.OperatorListOrganizations(e.ctx, token)
	orgWantErr(t, err, thauth.EForbidden, "operator access requires a session")
	if n := len(orgAudit(t, e, org.ID)); n != auditLen {
		t.Errorf("refused operator access was audited as access")
	}

	// With MFA: reads work and each is audited in the organization's chain.
	support.MFA = true
	support.Client = ClientInfo{IP: "203.0.113.9", UserAgent: "ops-browser"}
	members, err := e.svc.ListMembers(e.ctx, support, org.ID)
	if err != nil || len(members) != 1 {
		t.Fatalf("support listing members: %+v %v", members, err)
	}
	p, err := e.svc.AuthorizeProject(e.ctx, support, project.ID, "config", "read")
	if err != nil || p.ID != project.ID {
		t.Fatalf("support reading a project's config: %v", err)
	}
	audit := orgAudit(t, e, org.ID)[auditLen:]
	if len(audit) != 2 {
		t.Fatalf("operator access audit: %+v", audit)
	}
	for i, perm := range []string{"members:read", "config:read"} {
		a := audit[i]
		if a.Action != "operator.access" || a.ActorType != thauth.ActorOperator || a.ActorID != support.AccountID ||
			a.Target != perm || a.IP != "203.0.113.9" || a.OrganizationID != org.ID ||
			a.Data != `{"operator_role":"support","permission":"`+perm+`"}` {
			t.Errorf("audit entry %d: %+v", i, a)
		}
	}

	// Support is read-only: writes are denied with the operator role named.
	_, err = e.svc.CreateProject(e.ctx, support, org.ID, "Mine")
	orgWantErr(t, err, thauth.EForbidden, `your operator role "support" does not allow projects:create (reason: default:deny)`)
	_, err = e.svc.AuthorizeProject(e.ctx, support, project.ID, "keys", "revoke")
	orgWantErr(t, err, thauth.EForbidden, `operator role "support" does not allow keys:revoke`)

	// The system organization stays out of reach, and out of listings.
	_, _, err = e.svc.GetOrganization(e.ctx, support, thauth.SystemOrganizationID)
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	orgs, err := e.svc.OperatorListOrganizations(e.ctx, support)
	if err != nil || len(orgs) != 1 || orgs[0].ID != org.ID {
		t.Errorf("OperatorListOrganizations: %+v %v", orgs, err)
	}
	var listed bool
	for _, a := range orgAudit(t, e, "") {
		if a.Action == "operator.access" && a.ActorID == support.AccountID && a.Target == "organizations" {
			listed = true
		}
	}
	if !listed {
		t.Error("OperatorListOrganizations was not audited")
	}
	// Non-operators cannot list every organization.
	_, err = e.svc.OperatorListOrganizations(e.ctx, owner)
	orgWantErr(t, err, thauth.EForbidden, "operator role")

	// A superadmin may act, also audited; an operator role never bypasses the last-owner rule.
	admin := orgNewAccount(t, e, "root@example.com", true)
	if _, err := e.svc.GrantOperator(e.ctx, "root@example.com", "superadmin", "cli:root"); err != nil {
		t.Fatal(err)
	}
	err = e.svc.RemoveMember(e.ctx, admin, org.ID, owner.AccountID)
	orgWantErr(t, err, thauth.EConflict, "at least one owner")
	if _, err := e.svc.CreateProject(e.ctx, admin, org.ID, "Support fix"); err != nil {
		t.Errorf("superadmin creating a project: %v", err)
	}
	last := orgAudit(t, e, org.ID)
	if got := last[len(last)-1]; got.Action != "project.created" || got.ActorType != thauth.ActorOperator || got.ActorID != admin.AccountID {
		t.Errorf("superadmin's project.created: %+v", got)
	}

	// Revoking the grant ends the access at once.
	if err := e.svc.RevokeOperator(e.ctx, "support@example.com", "cli:root"); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ListMembers(e.ctx, support, org.ID)
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	orgEngineAgrees(t, e, owner, support, admin)
}

// A member who is also an operator uses the member role for what it allows (no operator
// audit, no MFA demand beyond the organization's), and the operator role beyond it.
func TestOperatorWhoIsAlsoMember(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	both := orgNewAccount(t, e, "both@example.com", false)
	orgAddMember(t, e, owner, org.ID, both, "viewer")
	if _, err := e.svc.GrantOperator(e.ctx, "both@example.com", "support", "cli:root"); err != nil {
		t.Fatal(err)
	}
	orgEngineAgrees(t, e, both)
	auditLen := len(orgAudit(t, e, org.ID))
	// "support" sorts before "viewer", so the engine's reason names support; the member role
	// must still be the one used.
	acc, err := e.svc.Authorize(e.ctx, both, org.ID, "members", "read")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Access{Role: "viewer", Reason: "role:viewer"}, acc); diff != "" {
		t.Errorf("access (-want +got):\n%s", diff)
	}
	// Beyond the member role, the operator role applies, with its conditions.
	_, err = e.svc.Authorize(e.ctx, both, org.ID, "audit", "read")
	orgWantErr(t, err, thauth.EForbidden, "operator access requires")
	both.MFA = true
	acc, err = e.svc.Authorize(e.ctx, both, org.ID, "audit", "read")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Access{Role: "viewer", Operator: "support", Reason: "role:support"}, acc); diff != "" {
		t.Errorf("access (-want +got):\n%s", diff)
	}
	if got := orgActions(orgAudit(t, e, org.ID)[auditLen:]); strings.Join(got, ",") != "operator.access" {
		t.Errorf("audit after member and operator access: %v", got)
	}
	// Denials name the member role.
	_, err = e.svc.Authorize(e.ctx, both, org.ID, "keys", "create")
	orgWantErr(t, err, thauth.EForbidden, `your role "viewer" does not allow keys:create in this organization`)
}
