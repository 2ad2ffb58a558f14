package httpserver

// Console routes of organizations: the organization itself, members, invitations and
// projects, and the project routes of the management API used with an account's
// credential. Who may do what is decided by manage (Authorize, through the decision engine
// and the console's system project); an organization or project the caller cannot see is
// 404, exactly as one that does not exist, and a refusal names the permission and the
// reason.

import (
	"net/http"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
)

// createOrganization serves POST /api/v1/orgs {name}: the caller becomes its owner.
func (s *server) createOrganization(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Name string `json:"name"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("name", req.Name); err != nil {
		s.consoleError(w, r, err)
		return
	}
	org, err := s.mg.CreateOrganization(r.Context(), c.actor, req.Name)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, organizationJSON{Organization: *org, Role: thauth.OrgRoleOwner})
}

// organizationJSON is an organization seen by the caller: its role there ("" when it is not
// a member) and the operator role it reaches it through, if any.
type organizationJSON struct {
	Organization thauth.Organization `json:"organization"`
	Role         string              `json:"role"`
	Operator     string              `json:"operator,omitempty"`
}

// listOrganizations serves GET /api/v1/orgs: the organizations the caller is a member of.
func (s *server) listOrganizations(w http.ResponseWriter, r *http.Request, c *caller) {
	ms, err := s.mg.ListOrganizations(r.Context(), c.actor)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	if ms == nil {
		ms = []thauth.OrganizationMembership{}
	}
	s.writeJSON(w, http.StatusOK, map[string][]thauth.OrganizationMembership{"organizations": ms})
}

// getOrganization serves GET /api/v1/orgs/{org}.
func (s *server) getOrganization(w http.ResponseWriter, r *http.Request, c *caller) {
	org, acc, err := s.mg.GetOrganization(r.Context(), c.actor, r.PathValue("org"))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := organizationJSON{Organization: *org}
	if acc != nil {
		out.Role, out.Operator = acc.Role, acc.Operator
	}
	s.writeJSON(w, http.StatusOK, out)
}

// updateOrganization serves PATCH /api/v1/orgs/{org} {name?, require_mfa?}.
func (s *server) updateOrganization(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Name       *string `json:"name"`
		RequireMFA *bool   `json:"require_mfa"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if req.Name == nil && req.RequireMFA == nil {
		s.consoleError(w, r, invalid(`nothing to change: give "name" or "require_mfa"`))
		return
	}
	org, err := s.mg.UpdateOrganization(r.Context(), c.actor, r.PathValue("org"), req.Name, req.RequireMFA)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]*thauth.Organization{"organization": org})
}

// listMembers serves GET /api/v1/orgs/{org}/members.
func (s *server) listMembers(w http.ResponseWriter, r *http.Request, c *caller) {
	ms, err := s.mg.ListMembers(r.Context(), c.actor, r.PathValue("org"))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	if ms == nil {
		ms = []thauth.Member{}
	}
	s.writeJSON(w, http.StatusOK, map[string][]thauth.Member{"members": ms})
}

// changeMemberRole serves PATCH /api/v1/orgs/{org}/members/{account} {role}.
func (s *server) changeMemberRole(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Role string `json:"role"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("role", req.Role); err != nil {
		s.consoleError(w, r, err)
		return
	}
	m, err := s.mg.ChangeMemberRole(r.Context(), c.actor, r.PathValue("org"), r.PathValue("account"), req.Role)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]*thauth.Membership{"membership": m})
}

// removeMember serves DELETE /api/v1/orgs/{org}/members/{account} (one's own account:
// leaving the organization).
func (s *server) removeMember(w http.ResponseWriter, r *http.Request, c *caller) {
	if err := s.mg.RemoveMember(r.Context(), c.actor, r.PathValue("org"), r.PathValue("account")); err != nil {
		s.consoleError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// transferOwnership serves POST /api/v1/orgs/{org}/transfer-ownership {account_id}.
func (s *server) transferOwnership(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		AccountID string `json:"account_id"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("account_id", req.AccountID); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if err := s.mg.TransferOwnership(r.Context(), c.actor, r.PathValue("org"), req.AccountID); err != nil {
		s.consoleError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// invite serves POST /api/v1/orgs/{org}/invitations {email, role}: a single-use link is
// mailed to the address (the answer never holds it).
func (s *server) invite(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("email", req.Email, "role", req.Role); err != nil {
		s.consoleError(w, r, err)
		return
	}
	inv, err := s.mg.Invite(r.Context(), c.actor, r.PathValue("org"), req.Email, req.Role)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, map[string]*thauth.Invitation{"invitation": inv})
}

// listInvitations serves GET /api/v1/orgs/{org}/invitations.
func (s *server) listInvitations(w http.ResponseWriter, r *http.Request, c *caller) {
	invs, err := s.mg.ListInvitations(r.Context(), c.actor, r.PathValue("org"))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	if invs == nil {
		invs = []thauth.Invitation{}
	}
	s.writeJSON(w, http.StatusOK, map[string][]thauth.Invitation{"invitations": invs})
}

// revokeInvitation serves DELETE /api/v1/orgs/{org}/invitations/{id}.
func (s *server) revokeInvitation(w http.ResponseWriter, r *http.Request, c *caller) {
	if err := s.mg.RevokeInvitation(r.Context(), c.actor, r.PathValue("org"), r.PathValue("id")); err != nil {
		s.consoleError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// acceptInvitation serves POST /api/v1/invitations/accept {token}: the caller (whose
// verified address must be the invited one) joins the organization.
func (s *server) acceptInvitation(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Token string `json:"token"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("token", req.Token); err != nil {
		s.consoleError(w, r, err)
		return
	}
	m, err := s.mg.AcceptInvitation(r.Context(), c.actor, req.Token)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]*thauth.Membership{"membership": m})
}

func toProjectJSON(p *thauth.Project) projectJSON {
	return projectJSON{ID: p.ID, OrganizationID: p.OrganizationID, Name: p.Name, CreatedAt: p.CreatedAt}
}

// createProject serves POST /api/v1/orgs/{org}/projects {name}. Its configuration and API
// keys are then managed through the /api/v1/projects/{project} routes.
func (s *server) createProject(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Name string `json:"name"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("name", req.Name); err != nil {
		s.consoleError(w, r, err)
		return
	}
	p, err := s.mg.CreateProject(r.Context(), c.actor, r.PathValue("org"), req.Name)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, map[string]projectJSON{"project": toProjectJSON(p)})
}

// listOrgProjects serves GET /api/v1/orgs/{org}/projects.
func (s *server) listOrgProjects(w http.ResponseWriter, r *http.Request, c *caller) {
	ps, err := s.mg.ListProjects(r.Context(), c.actor, r.PathValue("org"))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := make([]projectJSON, 0, len(ps))
	for i := range ps {
		out = append(out, toProjectJSON(&ps[i]))
	}
	s.writeJSON(w, http.StatusOK, map[string][]projectJSON{"projects": out})
}

// listAccountProjects serves GET /api/v1/projects for an account: the projects of every
// organization where it may projects:read (organizations where it may not, for example
// because they require a second factor this credential lacks, are left out).
func (s *server) listAccountProjects(w http.ResponseWriter, r *http.Request, c *caller) {
	ms, err := s.mg.ListOrganizations(r.Context(), c.actor)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := []projectJSON{}
	for _, m := range ms {
		ps, err := s.mg.ListProjects(r.Context(), c.actor, m.Organization.ID)
		switch thauth.ErrorCodeOf(err) {
		case "":
		case thauth.EForbidden, thauth.ENotFound:
			continue
		default:
			s.consoleError(w, r, err)
			return
		}
		for i := range ps {
			out = append(out, toProjectJSON(&ps[i]))
		}
	}
	s.writeJSON(w, http.StatusOK, map[string][]projectJSON{"projects": out})
}

// projectRoute serves one project route of the management API to both kinds of caller:
// a project API key exactly as before (keyPath: admin scope, its own project only), or an
// account — a session cookie (with CSRF on unsafe methods) or a personal access token —
// that manage.AuthorizeProject allows feature:action in the project's organization. h then
// runs with the principal of the project.
func (s *server) projectRoute(feature, action string, keyPath http.Handler, h keyHandler) http.Handler {
	acct := consoleHeaders(s.cop.Handler(s.authenticate(needsEngine, func(w http.ResponseWriter, r *http.Request, c *caller) {
		pid := r.PathValue("project")
		if pid == thauth.SystemProjectID {
			// The console's own model comes from the binary (manage.EnsureConsole); editing
			// it or minting its keys through the API would be a way around it.
			s.consoleError(w, r, errProjectAbsent)
			return
		}
		p, err := s.mg.AuthorizeProject(r.Context(), c.actor, pid, feature, action)
		if err != nil {
			s.consoleError(w, r, err)
			return
		}
		h(w, withCallerAudit(r, c), engine.Principal{ProjectID: p.ID, OrganizationID: p.OrganizationID})
	})))
	return s.keyOrAccount(keyPath, acct)
}

// keyOrAccount routes a request carrying an account's credential to acct and everything
// else (API keys, and requests without any credential, which get the API's 401) to keyPath.
func (s *server) keyOrAccount(keyPath, acct http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.accountCredential(r) {
			acct.ServeHTTP(w, r)
			return
		}
		keyPath.ServeHTTP(w, r)
	})
}
