package httpserver

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
)

// The decision log: every decision answered by POST /v1/check and /v1/check/batch is handed
// to Deps.DecisionLog (internal/decisionlog writes it to the store in the background), and
// the project's log is read through GET /api/v1/projects/{project}/decisions[/{id}].

// DecisionRecorder receives the decisions the server answers. Record is called on the
// decision path: it must neither block nor do I/O (internal/decisionlog.Writer buffers, and
// drops and counts what does not fit). The record's strings point into the request's
// memory: a recorder copies what it keeps before Record returns. A record without an ID
// (batch items, failed checks: no id was returned) is to be given a fresh one.
type DecisionRecorder interface {
	Record(rec thauth.DecisionRecord)
}

// idRecorder is implemented by recorders that also take the decision id as an array
// (internal/decisionlog.Writer): passed by value it stays on the stack, where a string made
// of it would cost an allocation per decision, even for a record that is then dropped.
type idRecorder interface {
	RecordWithID(id [36]byte, rec thauth.DecisionRecord)
}

func asIDRecorder(r DecisionRecorder) idRecorder {
	ir, _ := r.(idRecorder)
	return ir
}

// DecisionObserver counts decisions by result and reason (the metrics). Decision is called
// on the decision path and must be cheap and non-blocking.
type DecisionObserver interface {
	Decision(allowed bool, reason string)
}

// observeDecision tells the configured consumers about one decision of p answered at now:
// the metrics, the abuse detector, and the decision log (with the latency since start).
func (s *server) observeDecision(p *engine.Principal, req *thauth.CheckRequest, id *[36]byte, now, start time.Time, allowed bool, reason string) {
	s.countDecision(p, now, allowed, reason)
	if s.decisionLog != nil {
		s.logDecision(p, req, id, now, time.Since(start), allowed, reason)
	}
}

// countDecision tells the metrics and the abuse detector about one decision.
func (s *server) countDecision(p *engine.Principal, now time.Time, allowed bool, reason string) {
	if s.decisionObserver != nil {
		s.decisionObserver.Decision(allowed, reason)
	}
	if s.abuse != nil {
		s.abuse.DecisionAt(now, p.ProjectID, p.OrganizationID, allowed, reason == thauth.ReasonError)
	}
}

// logDecision hands one decision to the decision log (which must be on). id is the decision
// id returned to the client, or nil when none was (batch items, failures): the recorder
// then gives the record an id of its own. The record's strings point into the request body:
// the recorder copies what it keeps.
func (s *server) logDecision(p *engine.Principal, req *thauth.CheckRequest, id *[36]byte, now time.Time, latency time.Duration, allowed bool, reason string) {
	rec := thauth.DecisionRecord{
		ProjectID: p.ProjectID, At: now, KeyID: p.KeyID,
		Subject: req.Subject, Feature: req.Feature, Action: req.Action, Tenant: req.Tenant, Resource: req.Resource,
		Allowed: allowed, Reason: reason, Latency: latency,
	}
	switch {
	case id == nil:
		s.decisionLog.Record(rec)
	case s.decisionLogID != nil:
		s.decisionLogID.RecordWithID(*id, rec)
	default:
		rec.ID = string(id[:])
		s.decisionLog.Record(rec)
	}
}

// itemDecision is the answer to one item of a batch, kept for the decision log.
type itemDecision struct {
	allowed bool
	reason  string
}

// observing reports whether any decision consumer is configured.
func (s *server) observing() bool {
	return s.decisionLog != nil || s.abuse != nil || s.decisionObserver != nil
}

// Query API.

// Wire shapes of the decision log routes: a record, or a gap marker (Gap decisions of the
// project that the log could not record, starting at At).
type (
	decisionJSON struct {
		DecisionID string    `json:"decision_id"`
		At         time.Time `json:"at"`
		KeyID      string    `json:"key_id"`
		Subject    string    `json:"subject"`
		Feature    string    `json:"feature"`
		Action     string    `json:"action"`
		Tenant     string    `json:"tenant"`
		Resource   string    `json:"resource"`
		Allowed    bool      `json:"allowed"`
		Reason     string    `json:"reason"`
		LatencyUS  int64     `json:"latency_us"`
	}
	gapJSON struct {
		DecisionID string    `json:"decision_id"`
		At         time.Time `json:"at"`
		Gap        int64     `json:"gap"`
	}
	decisionListJSON struct {
		Decisions  []any   `json:"decisions"`
		NextCursor *string `json:"next_cursor"`
	}
)

func decisionWire(r *thauth.DecisionRecord) any {
	if r.Gap > 0 {
		return gapJSON{DecisionID: r.ID, At: r.At.UTC(), Gap: r.Gap}
	}
	return decisionJSON{
		DecisionID: r.ID, At: r.At.UTC(), KeyID: r.KeyID, Subject: r.Subject, Feature: r.Feature, Action: r.Action,
		Tenant: r.Tenant, Resource: r.Resource, Allowed: r.Allowed, Reason: r.Reason, LatencyUS: r.Latency.Microseconds(),
	}
}

var errNoDecisionLog = thauth.Errorf(thauth.ENotFound, "the decision log is not enabled on this server")

// Limits of GET .../decisions.
const (
	defaultDecisionLimit = 100
	maxDecisionLimit     = 1000
	maxDecisionFilter    = 1024 // bytes of a filter value or id
)

// listDecisions serves GET /api/v1/projects/{project}/decisions: the project's decision log,
// newest first, filtered, a page at a time (next_cursor continues it). Gap markers in the
// time range are always included, whatever the other filters.
func (s *server) listDecisions(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	if s.decisionStore == nil {
		s.writeError(w, r, errNoDecisionLog)
		return
	}
	f, err := parseDecisionQuery(r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recs, err := s.decisionStore.ListDecisions(r.Context(), p.ProjectID, f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := decisionListJSON{Decisions: make([]any, 0, len(recs))}
	for i := range recs {
		out.Decisions = append(out.Decisions, decisionWire(&recs[i]))
	}
	if len(recs) == f.Limit {
		last := recs[len(recs)-1]
		c := encodeDecisionCursor(thauth.DecisionCursor{At: last.At, ID: last.ID})
		out.NextCursor = &c
	}
	s.writeJSON(w, http.StatusOK, out)
}

// getDecision serves GET /api/v1/projects/{project}/decisions/{id}: one record (or gap
// marker) of the project; 404 when the project has none with that id.
func (s *server) getDecision(w http.ResponseWriter, r *http.Request, p engine.Principal) {
	if s.decisionStore == nil {
		s.writeError(w, r, errNoDecisionLog)
		return
	}
	id := r.PathValue("id")
	if id == "" || len(id) > maxDecisionFilter {
		s.writeError(w, r, thauth.Errorf(thauth.ENotFound, "decision not found"))
		return
	}
	rec, err := s.decisionStore.GetDecision(r.Context(), p.ProjectID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, decisionWire(rec))
}

// parseDecisionQuery turns the query of GET .../decisions into a filter; every error is a
// 400 naming the parameter.
func parseDecisionQuery(q url.Values) (thauth.DecisionFilter, error) {
	f := thauth.DecisionFilter{Limit: defaultDecisionLimit}
	for k, vs := range q {
		if len(vs) > 1 {
			return f, invalid("query parameter %q is given more than once", clip(k))
		}
		v := vs[0]
		var str *string
		switch k {
		case "subject":
			str = &f.Subject
		case "feature":
			str = &f.Feature
		case "action":
			str = &f.Action
		case "tenant":
			str = &f.Tenant
		case "reason":
			str = &f.Reason
		case "key_id":
			str = &f.KeyID
		case "allowed":
			var b bool
			switch v {
			case "true":
				b = true
			case "false":
			default:
				return f, invalid("query parameter %q must be true or false", k)
			}
			f.Allowed = &b
		case "since", "until":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, invalid("query parameter %q must be an RFC 3339 time, such as 2026-11-28T10:42:00Z", k)
			}
			if k == "since" {
				f.Since = t
			} else {
				f.Until = t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxDecisionLimit {
				return f, invalid("query parameter %q must be an integer from 1 to %d", k, maxDecisionLimit)
			}
			f.Limit = n
		case "cursor":
			c, ok := decodeDecisionCursor(v)
			if !ok {
				return f, invalid("query parameter %q is not a cursor returned by this route", k)
			}
			f.Before = &c
		default:
			return f, invalid("unknown query parameter %q", clip(k))
		}
		if str != nil {
			if len(v) > maxDecisionFilter {
				return f, invalid("query parameter %q is longer than %d bytes", k, maxDecisionFilter)
			}
			*str = v
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, invalid("query parameter \"until\" must be after \"since\"")
	}
	return f, nil
}

// The cursor is opaque to clients: base64url (no padding) of "<Unix microseconds>.<id>" of
// the last record of the previous page.

func encodeDecisionCursor(c thauth.DecisionCursor) string {
	b := strconv.AppendInt(nil, c.At.UnixMicro(), 10)
	b = append(b, '.')
	b = append(b, c.ID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeDecisionCursor(s string) (thauth.DecisionCursor, bool) {
	if s == "" || len(s) > 2*maxDecisionFilter {
		return thauth.DecisionCursor{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return thauth.DecisionCursor{}, false
	}
	us, id, ok := strings.Cut(string(b), ".")
	if !ok || id == "" {
		return thauth.DecisionCursor{}, false
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return thauth.DecisionCursor{}, false
	}
	return thauth.DecisionCursor{At: time.UnixMicro(n).UTC(), ID: id}, true
}
