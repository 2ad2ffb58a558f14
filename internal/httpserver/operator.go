package httpserver

// Console routes of installation operators (roles granted only from the CLI). manage
// requires a session with a second factor and records every operator access in the audit
// log.

import (
	"net/http"

	"github.com/thauth/thauth"
)

// operatorOrganizations serves GET /api/v1/operator/organizations: every customer
// organization, for an operator signed in with a second factor (audited).
func (s *server) operatorOrganizations(w http.ResponseWriter, r *http.Request, c *caller) {
	orgs, err := s.mg.OperatorListOrganizations(r.Context(), c.actor)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	if orgs == nil {
		orgs = []thauth.Organization{}
	}
	s.writeJSON(w, http.StatusOK, map[string][]thauth.Organization{"organizations": orgs})
}
