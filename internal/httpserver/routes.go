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
//   - the browser dashboard will get its own stack (session cookie, CSRF, strict CSP) as a
//     third group here.
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

	return []route{
		// Probes (no authentication).
		{"GET", "/healthz", probe(s.healthz)},
		{"GET", "/readyz", probe(s.readyz)},

		// Public decision API (spec §4).
		{"GET", "/v1/config", api(thauth.ScopeDecisionsRead, s.getConfig)},
		{"POST", "/v1/check", api(thauth.ScopeDecisionsRead, s.check)},
		{"POST", "/v1/check/batch", api(thauth.ScopeDecisionsRead, s.checkBatch)},
		{"POST", "/v1/subjects/upsert", write(api(thauth.ScopeSubjectsWrite, s.upsertSubject))},

		// Management API (config-document.md, API keys).
		{"GET", "/api/v1/projects", api(thauth.ScopeAdmin, s.listProjects)},
		{"GET", "/api/v1/projects/{project}/config", document(manage(s.exportConfig))},
		{"PUT", "/api/v1/projects/{project}/config", document(manage(s.applyConfig))},
		{"POST", "/api/v1/projects/{project}/keys", write(manage(s.createKey))},
		{"GET", "/api/v1/projects/{project}/keys", write(manage(s.listKeys))},
		{"DELETE", "/api/v1/projects/{project}/keys/{id}", write(manage(s.revokeKey))},
	}
}
