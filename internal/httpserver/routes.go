package httpserver

import (
	"net/http"

	"github.com/thauth/thauth"
)

// route is one entry of the HTTP surface: a ServeMux method pattern and its handler. The
// surface is kept as data so that tests can enumerate it (docs/openapi.yaml must describe
// every route).
type route struct {
	Method  string
	Pattern string
	Handler http.Handler
}

// routes lists every route. Each group has its own middleware stack on top of the shared
// outer layer (request id, recovery, access log; see ServeHTTP):
//   - machine API (/v1, /api/v1): API headers, bearer key with a scope, JSON bodies;
//   - console API (/api/v1/auth, /account, /orgs, ...; console.go): console headers,
//     cross-origin protection, session cookie with CSRF or personal access token, JSON
//     errors for every status;
//   - the project routes of the management API take either: an API key goes through the
//     machine stack exactly as before, an account's credential through the console stack
//     and the console's authorization (projectRoute);
//   - the browser dashboard will get its own stack (strict CSP) as a further group here.
func (s *server) routes() []route {
	// Machine API: bearer key + JSON.
	api := func(scope string, h keyHandler) http.Handler {
		return apiHeaders(s.requireKey(scope, h))
	}
	// Management API of the key's own project: admin scope, {project} must be the key's.
	manage := func(h keyHandler) http.Handler {
		return apiHeaders(s.requireKey(thauth.ScopeAdmin, s.ownProject(h)))
	}
	// Routes that wait for the store get a deadline, so that a database that stopped
	// answering fails them with 503 instead of holding them (decisions never wait for it).
	write := func(h http.Handler) http.Handler { return withTimeout(s.writeWait, h) }
	document := func(h http.Handler) http.Handler { return withTimeout(s.docWait, h) }
	probe := func(h http.HandlerFunc) http.Handler { return apiHeaders(h) }
	// Console: public routes (no credential), and routes of a signed-in account.
	public := s.consolePublic
	signedIn := func(h consoleHandler) http.Handler { return s.consoleAuth(0, h) }
	session := func(h consoleHandler) http.Handler { return s.consoleAuth(sessionOnly, h) }
	org := func(h consoleHandler) http.Handler { return s.consoleAuth(needsEngine, h) }
	// Project routes: an API key (admin, own project) or an account allowed feature:action.
	project := func(feature, action string, h keyHandler) http.Handler {
		return s.projectRoute(feature, action, manage(h), h)
	}

	return []route{
		// Probes (no authentication).
		{"GET", "/healthz", probe(s.healthz)},
		{"GET", "/readyz", probe(s.readyz)},

		// Public decision API (spec §4).
		{"GET", "/v1/config", api(thauth.ScopeDecisionsRead, s.getConfig)},
		{"POST", "/v1/check", api(thauth.ScopeDecisionsRead, s.check)},
		{"POST", "/v1/check/batch", api(thauth.ScopeDecisionsRead, s.checkBatch)},
		{"POST", "/v1/subjects/upsert", write(api(thauth.ScopeSubjectsWrite, auditKeyActor(s.upsertSubject)))},

		// Management API (config-document.md, API keys), for API keys and accounts.
		{"GET", "/api/v1/projects", s.keyOrAccount(api(thauth.ScopeAdmin, s.listProjects), org(s.listAccountProjects))},
		{"GET", "/api/v1/projects/{project}/config", document(project("config", "read", s.exportConfig))},
		{"PUT", "/api/v1/projects/{project}/config", document(project("config", "write", auditKeyActor(s.applyConfig)))},
		{"POST", "/api/v1/projects/{project}/keys", write(project("keys", "create", auditKeyActor(s.createKey)))},
		{"GET", "/api/v1/projects/{project}/keys", write(project("keys", "read", s.listKeys))},
		{"DELETE", "/api/v1/projects/{project}/keys/{id}", write(project("keys", "revoke", auditKeyActor(s.revokeKey)))},

		// Decision log (decisionlog.go): the project's admin key, or an account allowed
		// decisions:read.
		{"GET", "/api/v1/projects/{project}/decisions", write(project("decisions", "read", s.listDecisions))},
		{"GET", "/api/v1/projects/{project}/decisions/{id}", write(project("decisions", "read", s.getDecision))},

		// Console: accounts and sign-in (account.go).
		{"POST", "/api/v1/auth/signup", public(s.signUp)},
		{"POST", "/api/v1/auth/verify-email", public(s.verifyEmail)},
		{"POST", "/api/v1/auth/resend-verification", public(s.resendVerification)},
		{"POST", "/api/v1/auth/signin", public(s.signIn)},
		{"POST", "/api/v1/auth/signin/mfa", s.consoleAuth(allowPending|sessionOnly, s.signInMFA)},
		{"POST", "/api/v1/auth/signout", s.consoleAuth(allowPending|sessionOnly, s.signOut)},
		{"POST", "/api/v1/auth/password-reset", public(s.requestPasswordReset)},
		{"POST", "/api/v1/auth/password-reset/confirm", public(s.resetPassword)},

		// Console: the signed-in account (account.go).
		{"GET", "/api/v1/account", signedIn(s.getAccount)},
		{"PATCH", "/api/v1/account", signedIn(s.updateAccount)},
		{"POST", "/api/v1/account/password", session(s.changePassword)},
		{"POST", "/api/v1/account/email", signedIn(s.changeEmail)},
		{"GET", "/api/v1/account/sessions", signedIn(s.listSessions)},
		{"DELETE", "/api/v1/account/sessions/{id}", signedIn(s.revokeSession)},
		{"POST", "/api/v1/account/sessions/revoke-all", signedIn(s.revokeAllSessions)},
		{"GET", "/api/v1/account/activity", signedIn(s.accountActivity)},
		{"POST", "/api/v1/account/mfa/totp", session(s.enrollTOTP)},
		{"POST", "/api/v1/account/mfa/totp/confirm", session(s.confirmTOTP)},
		{"POST", "/api/v1/account/mfa/totp/disable", session(s.disableTOTP)},
		{"POST", "/api/v1/account/mfa/recovery-codes", session(s.regenerateRecoveryCodes)},
		{"POST", "/api/v1/account/tokens", session(s.createAccessToken)},
		{"GET", "/api/v1/account/tokens", signedIn(s.listAccessTokens)},
		{"DELETE", "/api/v1/account/tokens/{id}", signedIn(s.revokeAccessToken)},

		// Console: organizations (orgs.go).
		{"POST", "/api/v1/orgs", org(s.createOrganization)},
		{"GET", "/api/v1/orgs", org(s.listOrganizations)},
		{"GET", "/api/v1/orgs/{org}", org(s.getOrganization)},
		{"PATCH", "/api/v1/orgs/{org}", org(s.updateOrganization)},
		{"GET", "/api/v1/orgs/{org}/members", org(s.listMembers)},
		{"PATCH", "/api/v1/orgs/{org}/members/{account}", org(s.changeMemberRole)},
		{"DELETE", "/api/v1/orgs/{org}/members/{account}", org(s.removeMember)},
		{"POST", "/api/v1/orgs/{org}/transfer-ownership", org(s.transferOwnership)},
		{"POST", "/api/v1/orgs/{org}/invitations", org(s.invite)},
		{"GET", "/api/v1/orgs/{org}/invitations", org(s.listInvitations)},
		{"DELETE", "/api/v1/orgs/{org}/invitations/{id}", org(s.revokeInvitation)},
		{"POST", "/api/v1/invitations/accept", org(s.acceptInvitation)},
		{"POST", "/api/v1/orgs/{org}/projects", org(s.createProject)},
		{"GET", "/api/v1/orgs/{org}/projects", org(s.listOrgProjects)},

		// Console: installation operators (operator.go).
		{"GET", "/api/v1/operator/organizations", org(s.operatorOrganizations)},

		// Console: security events and webhook endpoints (security.go).
		{"GET", "/api/v1/orgs/{org}/security-events", org(s.listSecurityEvents)},
		{"POST", "/api/v1/orgs/{org}/webhooks", org(s.createWebhookEndpoint)},
		{"GET", "/api/v1/orgs/{org}/webhooks", org(s.listWebhookEndpoints)},
		{"DELETE", "/api/v1/orgs/{org}/webhooks/{id}", org(s.deleteWebhookEndpoint)},
		{"POST", "/api/v1/orgs/{org}/webhooks/{id}/rotate-secret", org(s.rotateWebhookSecret)},
		{"POST", "/api/v1/orgs/{org}/webhooks/{id}/test", org(s.sendWebhookTest)},
		{"GET", "/api/v1/orgs/{org}/webhooks/{id}/deliveries", org(s.listWebhookDeliveries)},
		{"GET", "/api/v1/orgs/{org}/webhook-deliveries/{id}/attempts", org(s.listWebhookAttempts)},

		// Console: the organization's audit log (audit.go). The write routes above record
		// their actor with auditKeyActor (API keys) or withCallerAudit (accounts).
		{"GET", "/api/v1/orgs/{org}/audit", org(s.listAudit)},
		{"GET", "/api/v1/orgs/{org}/audit/export", s.auditExportRoute(s.exportAudit)},

		// Development outbox (devoutbox.go): 404 unless the development mailer is on.
		{"GET", "/api/v1/dev/outbox", public(s.devOutbox)},
	}
}
