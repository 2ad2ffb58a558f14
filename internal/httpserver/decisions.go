package httpserver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/manage"
)

// checkFailureBody is the fail-closed answer to a check that could not be evaluated.
var checkFailureBody = []byte(`{"allowed":false,"reason":"error"}`)

// decide evaluates one check, turning a panic into the fail-closed decision. Snapshot.Check
// already recovers; this is the second line of defence, so one bad item cannot fail a batch.
func (s *server) decide(r *http.Request, snap *engine.Snapshot, req *thauth.CheckRequest, now time.Time) (d thauth.Decision) {
	defer func() {
		if p := recover(); p != nil {
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic evaluating a check",
				slog.String("request_id", requestID(r)), slog.String("panic", fmt.Sprint(p)))
			d = thauth.ErrorDecision
		}
	}()
	return s.evaluate(snap, req, now)
}

// snapshot returns the key's project snapshot. A nil snapshot for an authenticated key is an
// internal failure (the engine knows the key but not its project).
func (s *server) snapshot(r *http.Request, p engine.Principal) *engine.Snapshot {
	snap := s.snapshotOf(p.ProjectID)
	if snap == nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "no snapshot for an authenticated key's project",
			slog.String("request_id", requestID(r)), slog.String("project_id", p.ProjectID), slog.String("key_id", p.KeyID))
	}
	return snap
}

// check serves POST /v1/check: one decision. This is the hot path: the body is decoded and
// the answer encoded by hand, into one pooled buffer.
func (s *server) check(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	defer func() {
		// Whatever fails in here, the answer is a deny (the outer recovery would answer
		// {"error": ...}, which a client might not read as one).
		if p := recover(); p != nil {
			s.log.LogAttrs(r.Context(), slog.LevelError, "panic serving a check",
				slog.String("request_id", requestID(r)), slog.String("panic", fmt.Sprint(p)))
			if rw, ok := w.(*respWriter); !ok || rw.status == 0 {
				writeRaw(w, http.StatusInternalServerError, checkFailureBody)
			}
		}
	}()
	var start time.Time // for the decision log's latency
	if s.decisionLog != nil {
		start = time.Now()
	}
	bp := s.getBuf()
	defer s.putBuf(bp)
	body, err := readJSONBody(r, bp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req := s.getReq()
	defer s.putReq(req)
	var fresh string
	if err := decodeCheck(string(body), req, &fresh); err != nil {
		s.writeError(w, r, err)
		return
	}
	var snap *engine.Snapshot
	if fresh != "" {
		rev, err := freshRevision(fresh, p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if snap, err = s.freshSnapshot(r, p, rev); err != nil {
			s.writeFreshError(w, r, err)
			return
		}
	} else if snap = s.snapshot(r, p); snap == nil {
		if s.observing() {
			s.observeFailure(&p, req, s.now(), start)
		}
		writeRaw(w, http.StatusInternalServerError, checkFailureBody)
		return
	}
	now := s.now()
	d := s.decide(r, snap, req, now)
	if d.Reason == thauth.ReasonError {
		if s.observing() {
			s.observeFailure(&p, req, now, start)
		}
		writeRaw(w, http.StatusInternalServerError, checkFailureBody)
		return
	}
	var id [36]byte
	appendUUIDv7(id[:0], now, s.rand)
	out := (*bp)[:0] // the body is no longer needed: req holds copies
	out = append(out, `{"allowed":`...)
	if d.Allowed {
		out = append(out, "true"...)
	} else {
		out = append(out, "false"...)
	}
	out = append(out, `,"reason":`...)
	out = appendJSONString(out, d.Reason)
	out = append(out, `,"decision_id":"`...)
	out = append(out, id[:]...)
	out = append(out, '"')
	if req.Explain && d.Explain != nil {
		ex, err := json.Marshal(d.Explain)
		if err != nil {
			s.writeError(w, r, thauth.Internal(err, "encode explanation"))
			return
		}
		out = append(out, `,"explain":`...)
		out = append(out, ex...)
	}
	out = append(out, '}')
	*bp = out
	if s.observing() {
		s.observeDecision(&p, req, &id, now, start, d.Allowed, d.Reason)
	}
	writeRaw(w, http.StatusOK, out)
}

// observeFailure observes a check that could not be evaluated (answered with a 500 and no
// decision id): the log records it under a fresh id.
func (s *server) observeFailure(p *engine.Principal, req *thauth.CheckRequest, now, start time.Time) {
	s.observeDecision(p, req, nil, now, start, false, thauth.ReasonError)
}

// checkBatch serves POST /v1/check/batch: up to 1000 checks of one subject, all against the
// same snapshot, answered in request order. A failure on one item gives that item
// {"allowed": false, "reason": "error"} and the others are still evaluated.
func (s *server) checkBatch(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	var start time.Time // for the decision log's latency
	if s.decisionLog != nil {
		start = time.Now()
	}
	bp := s.getBuf()
	defer s.putBuf(bp)
	body, err := readJSONBody(r, bp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var breq batchRequest
	if err := decodeBatch(string(body), &breq); err != nil {
		s.writeError(w, r, err)
		return
	}
	var snap *engine.Snapshot
	if breq.Fresh != "" {
		rev, err := freshRevision(breq.Fresh, p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if snap, err = s.freshSnapshot(r, p, rev); err != nil {
			s.writeFreshError(w, r, err)
			return
		}
	} else if snap = s.snapshot(r, p); snap == nil {
		s.writeError(w, r, thauth.Internal(nil, "no snapshot"))
		return
	}
	now := s.now()
	out := (*bp)[:0]
	out = append(out, `{"results":[`...)
	req := s.getReq()
	defer s.putReq(req)
	req.Subject, req.Tenant = breq.Subject, breq.Tenant
	counting := s.decisionObserver != nil || s.abuse != nil
	var logged []itemDecision // the answers, for the decision log after the loop
	if s.decisionLog != nil {
		logged = make([]itemDecision, 0, len(breq.Checks))
	}
	for i, it := range breq.Checks {
		req.Feature, req.Action, req.Resource = it.Feature, it.Action, it.Resource
		d := s.decide(r, snap, req, now)
		if d.Reason == thauth.ReasonError {
			d = thauth.ErrorDecision
		}
		if counting {
			s.countDecision(&p, now, d.Allowed, d.Reason)
		}
		if logged != nil {
			logged = append(logged, itemDecision{d.Allowed, d.Reason})
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"feature":`...)
		out = appendJSONString(out, it.Feature)
		out = append(out, `,"action":`...)
		out = appendJSONString(out, it.Action)
		if it.Resource != "" {
			out = append(out, `,"resource":`...)
			out = appendJSONString(out, it.Resource)
		}
		if d.Allowed {
			out = append(out, `,"allowed":true,"reason":`...)
		} else {
			out = append(out, `,"allowed":false,"reason":`...)
		}
		out = appendJSONString(out, d.Reason)
		out = append(out, '}')
	}
	out = append(out, "]}"...)
	*bp = out
	if logged != nil {
		// Each item is a decision of its own, logged under an id of its own (the batch
		// answer carries none), with the latency of the whole batch.
		latency := time.Since(start)
		for i, it := range breq.Checks {
			req.Feature, req.Action, req.Resource = it.Feature, it.Action, it.Resource
			s.logDecision(&p, req, nil, now, latency, logged[i].allowed, logged[i].reason)
		}
	}
	writeRaw(w, http.StatusOK, out)
}

// Wire shapes of GET /v1/config (spec §4).
type (
	configResponse struct {
		Project  projectRef    `json:"project"`
		Version  string        `json:"version"`
		Features []featureJSON `json:"features"`
		Roles    []roleJSON    `json:"roles"`
	}
	projectRef struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	featureJSON struct {
		ID          string       `json:"id"`
		Name        string       `json:"name"`
		Description string       `json:"description,omitempty"`
		Actions     []actionJSON `json:"actions"`
	}
	actionJSON struct {
		ID     string `json:"id"`
		Action string `json:"action"`
	}
	roleJSON struct {
		ID          string           `json:"id"`
		Name        string           `json:"name"`
		Description string           `json:"description,omitempty"`
		Permissions []permissionJSON `json:"permissions"`
	}
	permissionJSON struct {
		FeatureID   string `json:"feature_id"`
		FeatureName string `json:"feature_name"`
		ActionID    string `json:"action_id"`
		Action      string `json:"action"`
		Resource    string `json:"resource,omitempty"`
	}
)

// getConfig serves GET /v1/config: the project's features, actions and roles with the
// configuration version, which is also the ETag (If-None-Match → 304).
func (s *server) getConfig(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	snap := s.snapshot(r, p)
	if snap == nil {
		s.writeError(w, r, thauth.Internal(nil, "no snapshot"))
		return
	}
	version := snap.Version()
	etag := `"` + version + `"`
	w.Header()["Etag"] = []string{etag}
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	cfg := snap.Config()
	proj := snap.Project()
	resp := configResponse{
		Project:  projectRef{ID: proj.ID, Name: proj.Name},
		Version:  version,
		Features: make([]featureJSON, 0, len(cfg.Features)),
		Roles:    make([]roleJSON, 0, len(cfg.Roles)),
	}
	for _, f := range cfg.Features {
		fj := featureJSON{ID: f.ID, Name: f.Name, Description: f.Description, Actions: make([]actionJSON, 0, len(f.Actions))}
		for _, a := range f.Actions {
			fj.Actions = append(fj.Actions, actionJSON{ID: a.ID, Action: a.Name})
		}
		resp.Features = append(resp.Features, fj)
	}
	for _, rl := range cfg.Roles {
		rj := roleJSON{ID: rl.ID, Name: rl.Name, Description: rl.Description, Permissions: make([]permissionJSON, 0, len(rl.Permissions))}
		for _, pm := range rl.Permissions {
			rj.Permissions = append(rj.Permissions, permissionJSON{
				FeatureID: pm.FeatureID, FeatureName: pm.FeatureName,
				ActionID: pm.ActionID, Action: pm.ActionName, Resource: pm.Resource,
			})
		}
		resp.Roles = append(resp.Roles, rj)
	}
	s.writeJSON(w, http.StatusOK, resp)
}

// etagMatches implements the weak comparison of If-None-Match against etag.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// upsertResponse is the body of POST /v1/subjects/upsert.
type upsertResponse struct {
	Created  bool           `json:"created"`
	Subject  thauth.Subject `json:"subject"`
	Revision string         `json:"revision"` // freshness token (extension)
}

// upsertSubject serves POST /v1/subjects/upsert: create or update a subject and replace its
// role assignments and/or overrides in one scope, atomically.
func (s *server) upsertSubject(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	bp := s.getBuf()
	defer s.putBuf(bp)
	body, err := readJSONBody(r, bp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req manage.UpsertRequest
	if err := decodeUpsert(string(body), &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.mg.UpsertSubject(r.Context(), p.ProjectID, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tok := setRevision(w, p.ProjectID, res.Revision)
	s.writeJSON(w, http.StatusOK, upsertResponse{Created: res.Created, Subject: res.Subject, Revision: tok})
}
