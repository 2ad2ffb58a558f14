package httpserver

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/manage"
)

// wantsYAML reports whether the Accept header prefers a YAML media type to JSON. Without a
// YAML type in it (or without the header) the answer is JSON.
func wantsYAML(accept string) bool {
	if accept == "" {
		return false
	}
	bestYAML, bestJSON := -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch {
		case yamlMedia(mt):
			bestYAML = max(bestYAML, q)
		case mt == mediaJSON || mt == "application/*" || mt == "*/*":
			bestJSON = max(bestJSON, q)
		}
	}
	return bestYAML > 0 && bestYAML > bestJSON
}

// projectJSON is a project as the management API shows it.
type projectJSON struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	Name           string    `json:"name"`
	CreatedAt      time.Time `json:"created_at"`
}

// listProjects serves GET /api/v1/projects: the projects the credential reaches. For an API
// key that is its own project, which is how a client holding only an admin key learns the
// project id the other management routes take. It reads the snapshot, not the store.
func (s *server) listProjects(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	snap := s.eng.Snapshot(p.ProjectID)
	if snap == nil {
		s.writeError(w, r, thauth.Errorf(thauth.EUnavailable, "project not loaded yet"))
		return
	}
	pr := snap.Project()
	s.writeJSON(w, http.StatusOK, map[string][]projectJSON{"projects": {{
		ID: pr.ID, OrganizationID: pr.OrganizationID, Name: pr.Name, CreatedAt: pr.CreatedAt,
	}}})
}

// exportConfig serves GET /api/v1/projects/{project}/config: the configuration document,
// YAML when the Accept header asks for it, JSON otherwise.
func (s *server) exportConfig(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	f, ct := manage.FormatJSON, hdrJSON
	if wantsYAML(r.Header.Get("Accept")) {
		f, ct = manage.FormatYAML, hdrYAML
	}
	doc, err := s.mg.ExportConfig(r.Context(), p.ProjectID, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header()["Content-Type"] = ct
	w.Header()["Vary"] = []string{"Accept"}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

var errNotDocument = thauth.Errorf(thauth.EUnsupported,
	"Content-Type must be application/json or application/yaml (also accepted: application/x-yaml, text/yaml)")

// applyConfig serves PUT /api/v1/projects/{project}/config: apply a whole configuration
// document (or, with ?dry_run=true, only report what would change). Bodies up to 32 MiB.
func (s *server) applyConfig(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	var f manage.Format
	switch mt := mediaType(r.Header.Get("Content-Type")); {
	case mt == mediaJSON:
		f = manage.FormatJSON
	case yamlMedia(mt):
		f = manage.FormatYAML
	default:
		s.writeError(w, r, errNotDocument)
		return
	}
	dryRun := false
	q := r.URL.Query()
	for k := range q {
		if k != "dry_run" {
			s.writeError(w, r, invalid("unknown query parameter %q", clip(k)))
			return
		}
	}
	if vs, ok := q["dry_run"]; ok {
		v := ""
		if len(vs) > 0 {
			v = vs[len(vs)-1]
		}
		switch v {
		case "true", "1", "":
			dryRun = true
		case "false", "0":
		default:
			s.writeError(w, r, invalid(`query parameter "dry_run" must be true or false`))
			return
		}
	}
	bp := s.getBuf()
	defer s.putBuf(bp)
	body, err := readBody(r, maxConfigBody, bp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.mg.ApplyConfig(r.Context(), p.ProjectID, body, f, dryRun)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := applyResponse{ApplyResult: res}
	if !dryRun {
		out.Revision = setRevision(w, p.ProjectID, res.Revision)
	}
	s.writeJSON(w, http.StatusOK, out)
}

// applyResponse is the body of PUT .../config: the result, plus the freshness token of the
// revision the project is at after the apply (not for a dry run).
type applyResponse struct {
	*manage.ApplyResult
	Revision string `json:"revision,omitempty"`
}

// keyJSON is an API key on the wire: metadata, never the hash. Key (the token) is only in
// the answer to a create.
type keyJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Key        string     `json:"key,omitempty"`
	Revision   string     `json:"revision,omitempty"` // freshness token, in the answer to a create
}

func toKeyJSON(k *thauth.APIKey) keyJSON {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return keyJSON{
		ID: k.ID, Name: k.Name, Prefix: k.LookupID, Scopes: scopes,
		ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt,
	}
}

// createKey serves POST /api/v1/projects/{project}/keys: a new key of the project, whose
// token is in the answer and never again.
func (s *server) createKey(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	bp := s.getBuf()
	defer s.putBuf(bp)
	body, err := readJSONBody(r, bp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req manage.KeyRequest
	if err := decodeKeyCreate(string(body), &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	k, token, rev, err := s.mg.CreateKeyRevision(r.Context(), p.ProjectID, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	kj := toKeyJSON(k)
	kj.Key = token
	kj.Revision = setRevision(w, p.ProjectID, rev)
	s.writeJSON(w, http.StatusCreated, kj)
}

// listKeys serves GET /api/v1/projects/{project}/keys: every key of the project (revoked
// ones included), with the newest last use the engine has seen.
func (s *server) listKeys(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	keys, err := s.mg.ListKeys(r.Context(), p.ProjectID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := struct {
		Keys []keyJSON `json:"keys"`
	}{Keys: make([]keyJSON, 0, len(keys))}
	for i := range keys {
		kj := toKeyJSON(&keys[i])
		if t, ok := s.eng.KeyLastUsed(p.ProjectID, keys[i].ID); ok {
			t = t.UTC().Truncate(time.Microsecond)
			if kj.LastUsedAt == nil || t.After(*kj.LastUsedAt) {
				kj.LastUsedAt = &t
			}
		}
		out.Keys = append(out.Keys, kj)
	}
	s.writeJSON(w, http.StatusOK, out)
}

// revokeKey serves DELETE /api/v1/projects/{project}/keys/{id}: the key stops working on
// the next request. Unknown ids (and other projects' keys) are 404.
func (s *server) revokeKey(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	rev, err := s.mg.RevokeKeyRevision(r.Context(), p.ProjectID, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	setRevision(w, p.ProjectID, rev)
	w.WriteHeader(http.StatusNoContent)
}
