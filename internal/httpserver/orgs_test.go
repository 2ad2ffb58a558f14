package httpserver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// TestConsoleOrganizationFlow: an owner creates an organization, invites a teammate, changes
// the teammate's role, and hands the organization over; a member without the role is denied
// with the permission and the reason.
func TestConsoleOrganizationFlow(t *testing.T) {
	e := newConsoleEnv(t)
	owner, ownerID := e.newAccount("olga@example.com")
	dev, devID := e.newAccount("dave@example.com")

	org := owner.createOrg("Acme")
	r := owner.do("GET", "/api/v1/orgs", nil)
	want(t, r, http.StatusOK)
	var list struct {
		Organizations []thauth.OrganizationMembership `json:"organizations"`
	}
	r.decode(t, &list)
	if len(list.Organizations) != 1 || list.Organizations[0].Organization.ID != org || list.Organizations[0].Role != "owner" {
		t.Fatalf("organizations = %s", r)
	}
	var o organizationAnswer
	owner.do("GET", "/api/v1/orgs/"+org, nil).decode(t, &o)
	if o.Organization.Name != "Acme" || o.Role != "owner" || o.Operator != "" {
		t.Fatalf("organization = %+v", o)
	}
	r = owner.do("PATCH", "/api/v1/orgs/"+org, map[string]any{"name": "Acme Inc"})
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), `"name":"Acme Inc"`) {
		t.Errorf("PATCH organization = %s", r)
	}
	wantErr(t, owner.do("PATCH", "/api/v1/orgs/"+org, map[string]any{}), http.StatusBadRequest, thauth.EInvalid, "nothing to change")

	// Invite as developer; the link is mailed, never in the answer.
	r = owner.do("POST", "/api/v1/orgs/"+org+"/invitations", map[string]string{"email": "dave@example.com", "role": "developer"})
	want(t, r, http.StatusCreated)
	var inv struct {
		Invitation thauth.Invitation `json:"invitation"`
	}
	r.decode(t, &inv)
	tok := e.linkToken("dave@example.com", manage.MailInvitation)
	if strings.Contains(r.String(), tok) {
		t.Fatal("the invitation answer holds its token")
	}
	r = owner.do("GET", "/api/v1/orgs/"+org+"/invitations", nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), inv.Invitation.ID) || strings.Contains(r.String(), tok) {
		t.Errorf("invitations = %s", r)
	}
	// Someone else cannot use it; the invitee can, once.
	mallory, _ := e.newAccount("mallory@example.com")
	r = mallory.do("POST", "/api/v1/invitations/accept", map[string]string{"token": tok})
	if r.status < 400 {
		t.Fatalf("another account accepted the invitation: %d %s", r.status, r)
	}
	r = dev.do("POST", "/api/v1/invitations/accept", map[string]string{"token": tok})
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), `"role":"developer"`) {
		t.Errorf("accept = %s", r)
	}
	if r := dev.do("POST", "/api/v1/invitations/accept", map[string]string{"token": tok}); r.status < 400 {
		t.Errorf("an invitation was accepted twice: %d %s", r.status, r)
	}

	var members struct {
		Members []thauth.Member `json:"members"`
	}
	r = dev.do("GET", "/api/v1/orgs/"+org+"/members", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &members)
	if len(members.Members) != 2 {
		t.Fatalf("members = %s", r)
	}

	// The developer may create projects but not manage members.
	dev.createProject(org, "shop")
	wantErr(t, dev.do("PATCH", "/api/v1/orgs/"+org+"/members/"+ownerID, map[string]string{"role": "viewer"}),
		http.StatusForbidden, thauth.EForbidden, `your role "developer" does not allow members:update`)

	// Demoted to viewer: denied with the permission and the engine's reason.
	r = owner.do("PATCH", "/api/v1/orgs/"+org+"/members/"+devID, map[string]string{"role": "viewer"})
	want(t, r, http.StatusOK)
	b := wantErr(t, dev.do("POST", "/api/v1/orgs/"+org+"/projects", map[string]string{"name": "another"}),
		http.StatusForbidden, thauth.EForbidden, `your role "viewer" does not allow projects:create`)
	if !strings.Contains(b.Error, "reason") {
		t.Errorf("denial without a reason: %q", b.Error)
	}
	wantErr(t, dev.do("PATCH", "/api/v1/orgs/"+org, map[string]any{"require_mfa": true}),
		http.StatusForbidden, thauth.EForbidden, "organization:update")
	want(t, dev.do("GET", "/api/v1/orgs/"+org+"/projects", nil), http.StatusOK)

	// A second invitation, revoked.
	r = owner.do("POST", "/api/v1/orgs/"+org+"/invitations", map[string]string{"email": "zed@example.com", "role": "viewer"})
	want(t, r, http.StatusCreated)
	r.decode(t, &inv)
	want(t, owner.do("DELETE", "/api/v1/orgs/"+org+"/invitations/"+inv.Invitation.ID, nil), http.StatusNoContent)

	// Ownership goes to the (promoted) developer; the old owner then leaves.
	want(t, owner.do("POST", "/api/v1/orgs/"+org+"/transfer-ownership", map[string]string{"account_id": devID}), http.StatusNoContent)
	dev.do("GET", "/api/v1/orgs/"+org, nil).decode(t, &o)
	if o.Role != "owner" {
		t.Fatalf("after the transfer the new owner's role is %q", o.Role)
	}
	want(t, owner.do("DELETE", "/api/v1/orgs/"+org+"/members/"+ownerID, nil), http.StatusNoContent)
	wantErr(t, owner.do("GET", "/api/v1/orgs/"+org, nil), http.StatusNotFound, thauth.ENotFound, "organization not found")
}

// TestConsoleRequireMFA: an organization that requires MFA refuses members signed in without
// it, with a message that says so.
func TestConsoleRequireMFA(t *testing.T) {
	e := newConsoleEnv(t)
	owner, _ := e.newAccount("pia@example.com")
	member, _ := e.newAccount("quin@example.com")
	org := owner.createOrg("Strict")
	e.addMember(owner, member, org, "quin@example.com", "developer")
	owner.enrollMFA()
	want(t, owner.do("PATCH", "/api/v1/orgs/"+org, map[string]any{"require_mfa": true}), http.StatusOK)
	wantErr(t, member.do("GET", "/api/v1/orgs/"+org+"/projects", nil), http.StatusForbidden, thauth.EForbidden, "requires two-factor authentication")
	want(t, owner.do("GET", "/api/v1/orgs/"+org+"/projects", nil), http.StatusOK)
}

// TestConsoleCrossOrganization: an account outside an organization gets 404 for it and all
// of its routes, whether the organization exists or not, and no data of it.
func TestConsoleCrossOrganization(t *testing.T) {
	e := newConsoleEnv(t)
	alice, _ := e.newAccount("alice@example.com")
	bob, _ := e.newAccount("bob@example.com")
	orgA := alice.createOrg("Secret Alice Org")
	projA := alice.createProject(orgA, "secret-alice-project")
	bob.createOrg("Bob Org")
	keyA := alice.do("POST", "/api/v1/projects/"+projA+"/keys", map[string]any{"name": "k", "scopes": []string{"decisions:read"}})
	want(t, keyA, http.StatusCreated)
	var k keyJSON
	keyA.decode(t, &k)
	bobToken := bob.createToken("cli", "read", "write")

	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/orgs/" + orgA, nil},
		{"PATCH", "/api/v1/orgs/" + orgA, map[string]any{"name": "pwned"}},
		{"GET", "/api/v1/orgs/" + orgA + "/members", nil},
		{"DELETE", "/api/v1/orgs/" + orgA + "/members/" + k.ID, nil},
		{"GET", "/api/v1/orgs/" + orgA + "/invitations", nil},
		{"POST", "/api/v1/orgs/" + orgA + "/invitations", map[string]string{"email": "bob@example.com", "role": "owner"}},
		{"GET", "/api/v1/orgs/" + orgA + "/projects", nil},
		{"POST", "/api/v1/orgs/" + orgA + "/projects", map[string]string{"name": "x"}},
		{"GET", "/api/v1/projects/" + projA + "/config", nil},
		{"PUT", "/api/v1/projects/" + projA + "/config", map[string]any{"version": 1}},
		{"GET", "/api/v1/projects/" + projA + "/keys", nil},
		{"POST", "/api/v1/projects/" + projA + "/keys", map[string]any{"name": "x", "scopes": []string{"admin"}}},
		{"DELETE", "/api/v1/projects/" + projA + "/keys/" + k.ID, nil},
	} {
		for _, via := range []string{"session", "token"} {
			t.Run(tc.method+" "+tc.path+" "+via, func(t *testing.T) {
				var r *resp
				if via == "session" {
					r = bob.do(tc.method, tc.path, tc.body)
				} else {
					r = e.bearer(bobToken, tc.method, tc.path, tc.body)
				}
				wantErr(t, r, http.StatusNotFound, thauth.ENotFound, "not found")
				for _, leak := range []string{"Secret Alice Org", "secret-alice-project", "alice@example.com", k.Prefix} {
					if strings.Contains(r.String(), leak) {
						t.Errorf("404 body leaks %q: %s", leak, r)
					}
				}
			})
		}
	}
	// Alice's key still works; nothing was changed.
	r := alice.do("GET", "/api/v1/projects/"+projA+"/keys", nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), k.ID) || strings.Contains(r.String(), "revoked_at") {
		t.Errorf("keys after the attempts: %s", r)
	}
	// Bob's project listing holds only his own (none).
	r = bob.do("GET", "/api/v1/projects", nil)
	want(t, r, http.StatusOK)
	if r.String() != `{"projects":[]}` {
		t.Errorf("bob's projects = %s", r)
	}
	// A made-up organization id answers exactly the same.
	same := bob.do("GET", "/api/v1/orgs/00000000-0000-7000-8000-00000000abcd", nil)
	real := bob.do("GET", "/api/v1/orgs/"+orgA, nil)
	if same.status != real.status || same.String() != real.String() {
		t.Errorf("unknown org: %d %s; other org: %d %s", same.status, same, real.status, real)
	}
	// The console's own system project is out of reach too.
	wantErr(t, alice.do("GET", "/api/v1/projects/"+thauth.SystemProjectID+"/config", nil), http.StatusNotFound, thauth.ENotFound, "project not found")
}

// TestConsoleProjectRoutes: accounts manage their projects' configuration and keys through
// the management API's project routes, with a session (CSRF for writes) or an access token,
// as far as their role allows; API keys keep working exactly as before.
func TestConsoleProjectRoutes(t *testing.T) {
	e := newConsoleEnv(t)
	owner, _ := e.newAccount("rita@example.com")
	viewer, _ := e.newAccount("sam@example.com")
	org := owner.createOrg("Acme")
	proj := owner.createProject(org, "shop")
	other := owner.createProject(org, "blog")
	e.addMember(owner, viewer, org, "sam@example.com", "viewer")
	base := "/api/v1/projects/" + proj

	// Configuration: PUT with a session needs the CSRF token; then GET it back as YAML.
	r := owner.do("PUT", base+"/config", baseConfig, "Content-Type", "application/yaml", "X-CSRF-Token", "")
	wantErr(t, r, http.StatusForbidden, thauth.EForbidden, "CSRF")
	r = owner.do("PUT", base+"/config", baseConfig, "Content-Type", "application/yaml")
	want(t, r, http.StatusOK)
	r = owner.do("GET", base+"/config", nil, "Accept", "application/yaml")
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), "billing-admin") || r.header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("config = %s (headers %v)", r, r.header)
	}

	// Keys: create, list, use, revoke.
	r = owner.do("POST", base+"/keys", map[string]any{"name": "backend", "scopes": []string{"decisions:read"}})
	want(t, r, http.StatusCreated)
	var k keyJSON
	r.decode(t, &k)
	r = owner.do("POST", base+"/keys", map[string]any{"name": "admin", "scopes": []string{"admin"}})
	want(t, r, http.StatusCreated)
	var adminKey keyJSON
	r.decode(t, &adminKey)
	r = e.bearer(k.Key, "POST", "/v1/check", map[string]string{"subject": "user:alice", "feature": "billing", "action": "read"})
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), `"allowed":true`) {
		t.Errorf("check with the new key = %s", r)
	}
	r = viewer.do("GET", base+"/keys", nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), k.ID) || strings.Contains(r.String(), k.Key) {
		t.Errorf("keys = %s", r)
	}
	want(t, owner.do("DELETE", base+"/keys/"+k.ID, nil), http.StatusNoContent)
	wantUnauthorizedResp(t, e.bearer(k.Key, "POST", "/v1/check", map[string]string{"subject": "user:alice", "feature": "billing", "action": "read"}))

	// The viewer reads but does not write, and is told why.
	want(t, viewer.do("GET", base+"/config", nil), http.StatusOK)
	wantErr(t, viewer.do("PUT", base+"/config", baseConfig, "Content-Type", "application/yaml"),
		http.StatusForbidden, thauth.EForbidden, `your role "viewer" does not allow config:write`)
	wantErr(t, viewer.do("POST", base+"/keys", map[string]any{"name": "x", "scopes": []string{"admin"}}),
		http.StatusForbidden, thauth.EForbidden, "keys:create")
	wantErr(t, viewer.do("DELETE", base+"/keys/"+adminKey.ID, nil), http.StatusForbidden, thauth.EForbidden, "keys:revoke")

	// Access tokens: read-only refused on writes, write tokens need no CSRF token.
	ro := owner.createToken("ro", "read")
	rw := owner.createToken("rw", "read", "write")
	want(t, e.bearer(ro, "GET", base+"/keys", nil), http.StatusOK)
	wantErr(t, e.bearer(ro, "POST", base+"/keys", map[string]any{"name": "x", "scopes": []string{"admin"}}),
		http.StatusForbidden, thauth.EForbidden, "read-only")
	want(t, e.bearer(rw, "POST", base+"/keys", map[string]any{"name": "ci", "scopes": []string{"decisions:read"}}), http.StatusCreated)

	// Listing: the account sees both projects of its organization.
	r = owner.do("GET", "/api/v1/projects", nil)
	want(t, r, http.StatusOK)
	var pl struct {
		Projects []projectJSON `json:"projects"`
	}
	r.decode(t, &pl)
	if len(pl.Projects) != 2 {
		t.Errorf("projects = %s", r)
	}

	// The API key path is as before: its own project only, plain-text 401 without a key,
	// and API keys are refused on the console routes.
	want(t, e.bearer(adminKey.Key, "GET", base+"/config", nil), http.StatusOK)
	wantErr(t, e.bearer(adminKey.Key, "GET", "/api/v1/projects/"+other+"/config", nil), http.StatusNotFound, thauth.ENotFound, "project not found")
	wantErr(t, e.bearer(adminKey.Key, "GET", "/api/v1/projects/"+other+"/keys", nil), http.StatusNotFound, thauth.ENotFound, "project not found")
	r = e.bearer(adminKey.Key, "GET", "/api/v1/projects", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &pl)
	if len(pl.Projects) != 1 || pl.Projects[0].ID != proj {
		t.Errorf("API key's projects = %s", r)
	}
	wantUnauthorizedResp(t, e.send(e.newBrowser().hc, "GET", base+"/config", nil))
	wantErr(t, e.bearer(adminKey.Key, "GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "API keys")
	wantErr(t, e.bearer(adminKey.Key, "GET", "/api/v1/orgs", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "API keys")
}

// wantUnauthorizedResp checks the machine API's exact plain-text 401.
func wantUnauthorizedResp(t *testing.T, r *resp) {
	t.Helper()
	if r.status != http.StatusUnauthorized || r.String() != "unauthorized" || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("want the plain 401, got %d %q (%s)", r.status, r, r.header.Get("Content-Type"))
	}
}

// TestConsoleOperator: operators list every organization, only from a session with a
// second factor; others are refused.
func TestConsoleOperator(t *testing.T) {
	e := newConsoleEnv(t)
	cust, _ := e.newAccount("cust@example.com")
	org := cust.createOrg("Customer")
	op, _ := e.newAccount("op@example.com")
	if _, err := e.mg.GrantOperator(e.ctx, "op@example.com", thauth.OperatorSupport, "test"); err != nil {
		t.Fatal(err)
	}

	wantErr(t, cust.do("GET", "/api/v1/operator/organizations", nil), http.StatusForbidden, thauth.EForbidden, "operator role")
	wantErr(t, op.do("GET", "/api/v1/operator/organizations", nil), http.StatusForbidden, thauth.EForbidden, "two-factor")
	op.enrollMFA()
	r := op.do("GET", "/api/v1/operator/organizations", nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), org) || strings.Contains(r.String(), thauth.SystemOrganizationID) {
		t.Errorf("operator organizations = %s", r)
	}
	var o organizationAnswer
	r = op.do("GET", "/api/v1/orgs/"+org, nil)
	want(t, r, http.StatusOK)
	r.decode(t, &o)
	if o.Operator != thauth.OperatorSupport || o.Role != "" {
		t.Errorf("operator view = %s", r)
	}
	// Support is read-only.
	wantErr(t, op.do("PATCH", "/api/v1/orgs/"+org, map[string]any{"name": "x"}), http.StatusForbidden, thauth.EForbidden, "organization:update")
	// A token is not an operator credential.
	tok := op.createToken("cli", "read")
	wantErr(t, e.bearer(tok, "GET", "/api/v1/operator/organizations", nil), http.StatusForbidden, thauth.EForbidden, "two-factor")
}
