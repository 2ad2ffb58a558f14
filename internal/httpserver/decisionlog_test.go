package httpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/abuse"
	"github.com/thauth/thauth/internal/decisionlog"
	"github.com/thauth/thauth/internal/engine"
)

// countingObserver is a DecisionObserver counting decisions by result and reason.
type countingObserver struct {
	mu sync.Mutex
	n  map[string]int // "true role:x", "false default_deny", ...
}

func (o *countingObserver) Decision(allowed bool, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[fmt.Sprint(allowed, " ", reason)]++
}

// logEnv is env with the decision log on: a real decisionlog.Writer over the env's SQLite
// store, running in the background, and the abuse detector and an observer attached.
type logEnv struct {
	*env
	w   *decisionlog.Writer
	obs *countingObserver
	det *abuse.Detector
}

func newLogEnv(t *testing.T) *logEnv {
	t.Helper()
	e := newEnv(t)
	w := decisionlog.New(e.store, decisionlog.Options{Now: e.clock.Now, FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	obs := &countingObserver{}
	det := abuse.New(abuse.Options{Now: e.clock.Now})
	h := New(Deps{
		Engine: e.eng, Manage: e.mg, Ping: e.store.Ping, Now: e.clock.Now,
		DecisionLog: w, DecisionLogStore: e.store, DecisionObserver: obs, Abuse: det,
	})
	e.h, e.srv = h, h.(*server)
	return &logEnv{env: e, w: w, obs: obs, det: det}
}

// flush waits for the writer to have written every decision answered so far.
func (e *logEnv) flush() {
	e.t.Helper()
	if err := e.w.Flush(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// check answers one check and returns its decision id.
func (e *logEnv) check(body string) (id string, allowed bool) {
	e.t.Helper()
	rec := e.do("POST", "/v1/check", e.decisions, "application/json", body)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("check: %d %s", rec.Code, rec.Body)
	}
	var out struct {
		Allowed    bool   `json:"allowed"`
		DecisionID string `json:"decision_id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		e.t.Fatal(err)
	}
	return out.DecisionID, out.Allowed
}

func (e *logEnv) keyID(token string) string {
	e.t.Helper()
	p, ok := e.eng.Authenticate(token)
	if !ok {
		e.t.Fatal("unknown key")
	}
	return p.KeyID
}

// get reads a decision log route with the admin key and decodes the answer into v.
func (e *logEnv) get(path string, v any) {
	e.t.Helper()
	rec := e.do("GET", path, e.admin, "", "")
	if rec.Code != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		e.t.Fatal(err)
	}
}

// wireDecision is a record or gap marker as the routes answer it.
type wireDecision struct {
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
	LatencyUS  *int64    `json:"latency_us"`
	Gap        int64     `json:"gap"`
}

type wireList struct {
	Decisions  []wireDecision `json:"decisions"`
	NextCursor *string        `json:"next_cursor"`
}

// TestDecisionLogRoundTrip: the decision_id returned by POST /v1/check finds its record
// through GET .../decisions/{id}, with the fields of the check and its answer; batch items
// are recorded too, each with an id of its own; the observer and the abuse detector see
// every decision.
func TestDecisionLogRoundTrip(t *testing.T) {
	e := newLogEnv(t)
	id, allowed := e.check(`{"subject":"user:alice","feature":"billing","action":"refund","tenant":"tenant_acme","resource":"invoices/42"}`)
	if !allowed {
		t.Fatal("alice may refund invoices/42")
	}
	rec := e.do("POST", "/v1/check/batch", e.decisions, "application/json",
		`{"subject":"user:bob","tenant":"tenant_acme","checks":[{"feature":"reports","action":"read"},{"feature":"billing","action":"read"}]}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("batch: %d %s", rec.Code, rec.Body)
	}
	e.flush()

	var got wireDecision
	e.get("/api/v1/projects/"+e.projectID+"/decisions/"+id, &got)
	if got.LatencyUS == nil || *got.LatencyUS < 0 {
		t.Errorf("latency_us = %v", got.LatencyUS)
	}
	want := wireDecision{
		DecisionID: id, At: e.clock.Now(), KeyID: e.keyID(e.decisions), Subject: "user:alice", Feature: "billing",
		Action: "refund", Tenant: "tenant_acme", Resource: "invoices/42", Allowed: true, Reason: "role:billing-admin",
		LatencyUS: got.LatencyUS,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET decision (-want +got):\n%s", diff)
	}

	var list wireList
	e.get("/api/v1/projects/"+e.projectID+"/decisions?subject=user:bob", &list)
	if len(list.Decisions) != 2 || list.NextCursor != nil {
		t.Fatalf("bob's decisions = %+v", list)
	}
	byFeature := map[string]wireDecision{}
	for _, d := range list.Decisions {
		byFeature[d.Feature] = d
	}
	if d := byFeature["reports"]; !d.Allowed || d.Reason != "role:analyst" || d.Tenant != "tenant_acme" || d.DecisionID == "" {
		t.Errorf("batch item reports:read = %+v", d)
	}
	if d := byFeature["billing"]; d.Allowed || d.Reason != thauth.ReasonDefaultDeny || d.DecisionID == byFeature["reports"].DecisionID {
		t.Errorf("batch item billing:read = %+v", d)
	}

	e.obs.mu.Lock()
	seen := e.obs.n
	e.obs.mu.Unlock()
	wantSeen := map[string]int{"true role:billing-admin": 1, "true role:analyst": 1, "false " + thauth.ReasonDefaultDeny: 1}
	if diff := cmp.Diff(wantSeen, seen); diff != "" {
		t.Errorf("observed decisions (-want +got):\n%s", diff)
	}
}

// TestDecisionLogAbuse: the decisions reach the abuse detector: a burst of denies raises
// deny_spike for the project.
func TestDecisionLogAbuse(t *testing.T) {
	e := newLogEnv(t)
	for range abuse.DefaultSpikeMinDecisions {
		e.check(`{"subject":"user:mallory","feature":"billing","action":"refund"}`)
	}
	select {
	case ev := <-e.det.Events():
		if ev.Kind != abuse.KindDenySpike || ev.ProjectID != e.projectID {
			t.Errorf("event %+v, want deny_spike of the project", ev)
		}
	default:
		t.Fatal("no deny_spike after a burst of denies")
	}
}

// TestDecisionLogErrorDecision: a check that cannot be evaluated is answered 500 and still
// recorded, as an error.
func TestDecisionLogErrorDecision(t *testing.T) {
	e := newLogEnv(t)
	e.srv.evaluate = func(*engine.Snapshot, *thauth.CheckRequest, time.Time) thauth.Decision { return thauth.ErrorDecision }
	rec := e.do("POST", "/v1/check", e.decisions, "application/json", `{"subject":"user:alice","feature":"billing","action":"read"}`)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("check: %d %s", rec.Code, rec.Body)
	}
	e.flush()
	var list wireList
	e.get("/api/v1/projects/"+e.projectID+"/decisions?reason=error", &list)
	if len(list.Decisions) != 1 || list.Decisions[0].Allowed || list.Decisions[0].Subject != "user:alice" {
		t.Errorf("error decisions = %+v", list)
	}
}

// TestDecisionLogQuery: filters, cursor pagination, gap markers whatever the filters, and a
// 400 naming the parameter for every bad query.
func TestDecisionLogQuery(t *testing.T) {
	e := newLogEnv(t)
	start := e.clock.Now()
	var aliceIDs []string // newest first
	for i := range 5 {
		id, _ := e.check(fmt.Sprintf(`{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/%d"}`, i))
		aliceIDs = append([]string{id}, aliceIDs...)
		e.check(`{"subject":"user:bob","feature":"billing","action":"refund"}`)
		e.clock.Advance(time.Second)
	}
	e.flush()
	// A gap marker in the middle (as the writer leaves when it drops records).
	gapAt := start.Add(2500 * time.Millisecond)
	if err := e.store.AppendDecisions(t.Context(), []thauth.DecisionRecord{{ID: "0197ffff-0000-7000-8000-000000000001", ProjectID: e.projectID, At: gapAt, Gap: 42}}); err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/projects/" + e.projectID + "/decisions"

	// Alice's allowed decisions, two a page: 5 records and the gap marker.
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		q := url.Values{"subject": {"user:alice"}, "allowed": {"true"}, "limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var list wireList
		e.get(base+"?"+q.Encode(), &list)
		for _, d := range list.Decisions {
			if d.Gap > 0 {
				got = append(got, fmt.Sprintf("gap %d", d.Gap))
				if !d.At.Equal(gapAt) {
					t.Errorf("gap marker at %v, want %v", d.At, gapAt)
				}
				continue
			}
			if d.Subject != "user:alice" || !d.Allowed {
				t.Errorf("filtered listing returned %+v", d)
			}
			got = append(got, d.DecisionID)
		}
		if list.NextCursor == nil {
			break
		}
		cursor = *list.NextCursor
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	want := []string{aliceIDs[0], aliceIDs[1], "gap 42", aliceIDs[2], aliceIDs[3], aliceIDs[4]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}

	// A time range: [start+1s, start+3s) holds two seconds of checks, and the gap.
	var list wireList
	q := url.Values{"since": {start.Add(time.Second).Format(time.RFC3339Nano)}, "until": {start.Add(3 * time.Second).Format(time.RFC3339Nano)}}
	e.get(base+"?"+q.Encode(), &list)
	if len(list.Decisions) != 5 {
		t.Errorf("time range: %d entries, want 4 records and the gap marker: %+v", len(list.Decisions), list)
	}
	// Bob's, by reason and key.
	e.get(base+"?reason="+thauth.ReasonDefaultDeny+"&allowed=false&key_id="+e.keyID(e.decisions), &list)
	if n := len(list.Decisions); n != 6 { // 5 of bob's, and the gap marker
		t.Errorf("bob's denies: %d entries, want 6", n)
	}
	// A gap marker by id.
	var gap wireDecision
	e.get(base+"/0197ffff-0000-7000-8000-000000000001", &gap)
	if gap.Gap != 42 || gap.LatencyUS != nil {
		t.Errorf("gap marker = %+v", gap)
	}

	for _, c := range []struct{ query, param string }{
		{"allowed=yes", "allowed"},
		{"since=yesterday", "since"},
		{"until=2026-13-01T00:00:00Z", "until"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"cursor=%21%21", "cursor"},
		{"cursor=" + url.QueryEscape(encodeDecisionCursor(thauth.DecisionCursor{At: start})[:4]), "cursor"},
		{"subject=a&subject=b", "subject"},
		{"colour=red", "colour"},
		{"since=2026-11-28T10:00:00Z&until=2026-11-28T10:00:00Z", "until"},
	} {
		rec := e.do("GET", base+"?"+c.query, e.admin, "", "")
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `\"`+c.param+`\"`) {
			t.Errorf("?%s: %d %s, want 400 naming %q", c.query, rec.Code, rec.Body, c.param)
		}
	}
}

// TestDecisionLogAccess: only the project's admin key (or an account allowed
// decisions:read, see TestDecisionLogConsole) reads the log, and only the project's own
// records.
func TestDecisionLogAccess(t *testing.T) {
	e := newLogEnv(t)
	id, _ := e.check(`{"subject":"user:alice","feature":"billing","action":"read"}`)
	e.flush()
	base := "/api/v1/projects/" + e.projectID + "/decisions"
	if rec := e.do("GET", base+"/"+id, e.decisions, "", ""); rec.Code != http.StatusForbidden {
		t.Errorf("decisions key: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("GET", base+"/"+id, "", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("no key: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("GET", base+"/nope", e.admin, "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("unknown id: %d %s", rec.Code, rec.Body)
	}
	// A record of another project (of the same organization) is not found through this
	// project, and this key does not reach the other project.
	p, err := e.store.GetProject(t.Context(), e.projectID)
	if err != nil {
		t.Fatal(err)
	}
	other := &thauth.Project{ID: "0197ffff-0000-7000-8000-0000000000b2", Name: "blog", CreatedAt: e.clock.Now()}
	if err := e.store.CreateProject(t.Context(), p.OrganizationID, other); err != nil {
		t.Fatal(err)
	}
	otherID := "0197ffff-0000-7000-8000-0000000000c3"
	if err := e.store.AppendDecisions(t.Context(), []thauth.DecisionRecord{{ID: otherID, ProjectID: other.ID, At: e.clock.Now(), Subject: "x", Feature: "f", Action: "a", Reason: "r"}}); err != nil {
		t.Fatal(err)
	}
	if rec := e.do("GET", base+"/"+otherID, e.admin, "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("other project's record: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/api/v1/projects/"+other.ID+"/decisions", e.admin, "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("other project's log: %d %s", rec.Code, rec.Body)
	}

	// Without a store the routes say the log is off.
	plain := newEnv(t)
	rec := plain.do("GET", "/api/v1/projects/"+plain.projectID+"/decisions", plain.admin, "", "")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "not enabled") {
		t.Errorf("no decision log: %d %s", rec.Code, rec.Body)
	}
}

// lateLogStore is a DecisionLogStore whose target is set after the server is built (the
// console env creates its store inside).
type lateLogStore struct{ thauth.DecisionLogStore }

// TestDecisionLogConsole: accounts read the log when their role allows decisions:read
// (viewer), not otherwise (billing).
func TestDecisionLogConsole(t *testing.T) {
	ls := &lateLogStore{}
	e := newConsoleEnv(t, func(d *Deps) { d.DecisionLogStore = ls })
	ls.DecisionLogStore = e.store
	owner, _ := e.newAccount("rita@example.com")
	viewer, _ := e.newAccount("sam@example.com")
	biller, _ := e.newAccount("bill@example.com")
	org := owner.createOrg("Acme")
	proj := owner.createProject(org, "shop")
	e.addMember(owner, viewer, org, "sam@example.com", "viewer")
	e.addMember(owner, biller, org, "bill@example.com", "billing")
	id := "0197ffff-0000-7000-8000-0000000000d4"
	if err := e.store.AppendDecisions(e.ctx, []thauth.DecisionRecord{{ID: id, ProjectID: proj, At: e.clock.Now(),
		Subject: "user_123", Feature: "billing", Action: "refund", Reason: thauth.ReasonDefaultDeny}}); err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/projects/" + proj + "/decisions"
	for _, b := range []*browser{owner, viewer} {
		r := b.do("GET", base+"?subject=user_123", nil)
		want(t, r, http.StatusOK)
		if !strings.Contains(r.String(), id) {
			t.Errorf("listing = %s", r)
		}
		want(t, b.do("GET", base+"/"+id, nil), http.StatusOK)
	}
	wantErr(t, biller.do("GET", base, nil), http.StatusForbidden, thauth.EForbidden, "decisions:read")
	wantErr(t, viewer.do("GET", base+"?allowed=maybe", nil), http.StatusBadRequest, thauth.EInvalid, `"allowed"`)
	ro := viewer.createToken("ro", "read")
	want(t, e.bearer(ro, "GET", base+"/"+id, nil), http.StatusOK)
}
