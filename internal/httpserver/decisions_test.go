package httpserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestCheck(t *testing.T) { testCheck(t, newEnv) }

func testCheck(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	cases := []struct {
		name, body string
		allowed    bool
		reason     string
	}{
		{"role", `{"subject":"user:alice","feature":"billing","action":"read"}`, true, "role:billing-admin"},
		{"role with resource", `{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/42"}`, true, "role:billing-admin"},
		{"override deny", `{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/locked"}`, false, "override:deny"},
		{"wildcard touching a deny", `{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/*"}`, false, "override:deny"},
		{"resource outside pattern", `{"subject":"user:alice","feature":"billing","action":"refund","resource":"orders/1"}`, false, "default:deny"},
		{"unknown subject", `{"subject":"user:nobody","feature":"billing","action":"read"}`, false, "default:deny"},
		{"unknown feature", `{"subject":"user:alice","feature":"nope","action":"read"}`, false, "default:deny"},
		{"tenant grant without tenant", `{"subject":"user:bob","feature":"reports","action":"read"}`, false, "default:deny"},
		{"tenant grant in tenant", `{"subject":"user:bob","feature":"reports","action":"read","tenant":"tenant_acme"}`, true, "role:analyst"},
		{"tenant grant in other tenant", `{"subject":"user:bob","feature":"reports","action":"read","tenant":"tenant_other"}`, false, "default:deny"},
		{"global grant in a tenant", `{"subject":"user:alice","feature":"billing","action":"read","tenant":"tenant_acme"}`, true, "role:billing-admin"},
		{"nulls are absent", `{"subject":"user:alice","feature":"billing","action":"read","tenant":null,"resource":null,"explain":null}`, true, "role:billing-admin"},
		{"escapes decoded", `{"subject":"user:\u0061lice","feature":"bill\u0069ng","action":"re\/ad"}`, false, "default:deny"},
		{"escapes decoded (match)", `{"subject":"user:\u0061lice","feature":"bill\u0069ng","action":"r\u0065ad"}`, true, "role:billing-admin"},
		{"white space", " \n{ \"subject\" : \"user:alice\" ,\t\"feature\":\"billing\", \"action\":\"read\" } \n", true, "role:billing-admin"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.post("/v1/check", e.decisions, c.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			for h, want := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
				if got := rec.Header().Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			var raw map[string]any
			mustJSON(t, rec.Body.Bytes(), &raw)
			if len(raw) != 3 {
				t.Errorf("answer has fields %v, want allowed, reason, decision_id", raw)
			}
			var a checkAnswer
			mustJSON(t, rec.Body.Bytes(), &a)
			if a.Allowed != c.allowed || a.Reason != c.reason {
				t.Errorf("got (%v, %q), want (%v, %q)", a.Allowed, a.Reason, c.allowed, c.reason)
			}
			if !uuidV7.MatchString(a.DecisionID) {
				t.Errorf("decision_id %q is not a UUIDv7", a.DecisionID)
			}
			if seen[a.DecisionID] {
				t.Errorf("decision_id %q repeated", a.DecisionID)
			}
			seen[a.DecisionID] = true
		})
	}

	t.Run("decision id is time-ordered and parses", func(t *testing.T) {
		a1 := e.check(`{"subject":"user:alice","feature":"billing","action":"read"}`)
		e.clock.Advance(5 * time.Millisecond)
		a2 := e.check(`{"subject":"user:alice","feature":"billing","action":"read"}`)
		u1, err1 := uuid.Parse(a1.DecisionID)
		u2, err2 := uuid.Parse(a2.DecisionID)
		if err1 != nil || err2 != nil || u1.Version() != 7 || u2.Version() != 7 {
			t.Fatalf("ids %q %q: %v %v", a1.DecisionID, a2.DecisionID, err1, err2)
		}
		if !(a1.DecisionID < a2.DecisionID) {
			t.Errorf("ids not ordered by time: %s !< %s", a1.DecisionID, a2.DecisionID)
		}
		sec, nsec := u1.Time().UnixTime()
		if got := time.Unix(sec, nsec); got.Sub(e.clock.Now()).Abs() > time.Second {
			t.Errorf("id time %v far from clock %v", got, e.clock.Now())
		}
	})

	t.Run("explain", func(t *testing.T) {
		a := e.check(`{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/locked","explain":true}`)
		if a.Allowed || a.Reason != "override:deny" {
			t.Errorf("got %+v", a)
		}
		var ex thauth.Explanation
		mustJSON(t, a.Explain, &ex)
		if !ex.SubjectKnown || !ex.FeatureKnown || !ex.ActionKnown || len(ex.Grants) == 0 {
			t.Errorf("explanation %s", a.Explain)
		}
		if b := e.check(`{"subject":"user:alice","feature":"billing","action":"read","explain":false}`); b.Explain != nil {
			t.Errorf("explain:false gave an explanation %s", b.Explain)
		}
	})
}

// TestCheckBadRequests covers every kind of rejected body: 400 with a message naming the
// field.
func TestCheckBadRequests(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ name, body, want string }{
		{"unknown field", `{"subject":"a","feature":"b","action":"c","foo":1}`, `unknown field "foo"`},
		{"field names are case-sensitive", `{"Subject":"a","feature":"b","action":"c"}`, `unknown field "Subject"`},
		{"duplicate field", `{"subject":"a","subject":"b","feature":"b","action":"c"}`, `duplicate field "subject"`},
		{"missing subject", `{"feature":"b","action":"c"}`, `field "subject" is required`},
		{"missing feature", `{"subject":"a","action":"c"}`, `field "feature" is required`},
		{"missing action", `{"subject":"a","feature":"b"}`, `field "action" is required`},
		{"null subject", `{"subject":null,"feature":"b","action":"c"}`, `field "subject" is required`},
		{"empty subject", `{"subject":"","feature":"b","action":"c"}`, `field "subject" must not be empty`},
		{"empty action", `{"subject":"a","feature":"b","action":""}`, `field "action" must not be empty`},
		{"empty tenant", `{"subject":"a","feature":"b","action":"c","tenant":""}`, `field "tenant" must not be empty`},
		{"empty resource", `{"subject":"a","feature":"b","action":"c","resource":""}`, `field "resource" must not be empty`},
		{"bad resource", `{"subject":"a","feature":"b","action":"c","resource":"a//b"}`, `field "resource" must not contain an empty path segment`},
		{"bad wildcard", `{"subject":"a","feature":"b","action":"c","resource":"a/*/b"}`, `field "resource" may contain "*" only`},
		{"control char in tenant", `{"subject":"a","feature":"b","action":"c","tenant":"t\u0001"}`, `field "tenant" must not contain control characters`},
		{"number for string", `{"subject":"a","feature":1,"action":"c"}`, `field "feature" must be a string`},
		{"object for string", `{"subject":{},"feature":"b","action":"c"}`, `field "subject" must be a string`},
		{"array for string", `{"subject":"a","feature":"b","action":["c"]}`, `field "action" must be a string`},
		{"bool for string", `{"subject":true,"feature":"b","action":"c"}`, `field "subject" must be a string`},
		{"string for bool", `{"subject":"a","feature":"b","action":"c","explain":"yes"}`, `field "explain" must be true or false`},
		{"malformed", `{"subject":"a",`, `malformed JSON`},
		{"malformed value", `{"subject":x}`, `malformed JSON`},
		{"single quotes", `{'subject':'a'}`, `malformed JSON`},
		{"trailing comma", `{"subject":"a","feature":"b","action":"c",}`, `malformed JSON`},
		{"trailing data", `{"subject":"a","feature":"b","action":"c"} {}`, `unexpected data after the top-level object`},
		{"trailing garbage", `{"subject":"a","feature":"b","action":"c"}x`, `unexpected data after`},
		{"empty body", ``, `request body is empty`},
		{"white space only", "  \n", `request body is empty`},
		{"array body", `[{"subject":"a"}]`, `must be a JSON object`},
		{"string body", `"a"`, `must be a JSON object`},
		{"null body", `null`, `must be a JSON object`},
		{"raw control char", "{\"subject\":\"a\tb\",\"feature\":\"b\",\"action\":\"c\"}", `control character`},
		{"invalid UTF-8", "{\"subject\":\"\xff\",\"feature\":\"b\",\"action\":\"c\"}", `invalid UTF-8`},
		{"bad escape", `{"subject":"\x","feature":"b","action":"c"}`, `bad escape`},
		{"bad unicode escape", `{"subject":"\u12","feature":"b","action":"c"}`, `bad \u escape`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do("POST", "/v1/check", e.decisions, "application/json", c.body)
			b := wantError(t, rec, http.StatusBadRequest, c.want)
			if b.Code != thauth.EInvalid {
				t.Errorf("code = %q", b.Code)
			}
		})
	}
}

// TestBodyLimitsAndMediaTypes: 413 beyond 1 MiB, 415 for anything but JSON, on every JSON
// route.
func TestBodyLimitsAndMediaTypes(t *testing.T) {
	e := newEnv(t)
	routes := []struct{ path, token string }{
		{"/v1/check", e.decisions},
		{"/v1/check/batch", e.decisions},
		{"/v1/subjects/upsert", e.writer},
		{"/api/v1/projects/" + e.projectID + "/keys", e.admin},
	}
	big := `{"subject":"` + strings.Repeat("a", maxJSONBody) + `"}`
	for _, rt := range routes {
		t.Run(rt.path, func(t *testing.T) {
			rec := e.do("POST", rt.path, rt.token, "application/json", big)
			b := wantError(t, rec, http.StatusRequestEntityTooLarge, "larger than 1 MiB")
			if b.Code != thauth.ETooLarge {
				t.Errorf("code = %q", b.Code)
			}
			// Without a Content-Length (chunked): the limit holds while reading.
			r := httptestRequest("POST", rt.path, big, rt.token, "application/json")
			r.ContentLength = -1
			rec = serve(e.h, r)
			wantError(t, rec, http.StatusRequestEntityTooLarge, "larger than 1 MiB")

			for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/jsonx", "application/yaml"} {
				rec := e.do("POST", rt.path, rt.token, ct, `{}`)
				b := wantError(t, rec, http.StatusUnsupportedMediaType, "application/json")
				if b.Code != thauth.EUnsupported {
					t.Errorf("code = %q", b.Code)
				}
			}
		})
	}
	t.Run("charset utf-8 accepted", func(t *testing.T) {
		for _, ct := range []string{"application/json; charset=utf-8", "application/json;charset=UTF-8", "Application/JSON"} {
			rec := e.do("POST", "/v1/check", e.decisions, ct, `{"subject":"a","feature":"b","action":"c"}`)
			if rec.Code != http.StatusOK {
				t.Errorf("%q: status %d %s", ct, rec.Code, rec.Body)
			}
		}
	})
	t.Run("exactly 1 MiB is accepted", func(t *testing.T) {
		prefix := `{"subject":"user:alice","feature":"billing","action":"read"}`
		body := prefix + strings.Repeat(" ", maxJSONBody-len(prefix))
		rec := e.post("/v1/check", e.decisions, body)
		if rec.Code != http.StatusOK {
			t.Errorf("status %d %s", rec.Code, rec.Body)
		}
	})
}

// TestCheckFailsClosed: an internal failure is a 500 deny with reason error.
func TestCheckFailsClosed(t *testing.T) {
	e := newEnv(t)
	const body = `{"subject":"user:alice","feature":"billing","action":"read"}`
	want := `{"allowed":false,"reason":"error"}`

	t.Run("no snapshot for the key's project", func(t *testing.T) {
		orig := e.srv.snapshotOf
		defer func() { e.srv.snapshotOf = orig }()
		e.srv.snapshotOf = func(string) *engine.Snapshot { return nil }
		rec := e.post("/v1/check", e.decisions, body)
		if rec.Code != 500 || rec.Body.String() != want {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
		if !strings.Contains(e.logs.String(), "no snapshot") {
			t.Error("failure not logged")
		}
	})
	t.Run("handler panics outside evaluation", func(t *testing.T) {
		orig := e.srv.snapshotOf
		defer func() { e.srv.snapshotOf = orig }()
		e.srv.snapshotOf = func(string) *engine.Snapshot { panic("lost") }
		rec := e.post("/v1/check", e.decisions, body)
		if rec.Code != 500 || rec.Body.String() != want {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("evaluation panics", func(t *testing.T) {
		orig := e.srv.evaluate
		defer func() { e.srv.evaluate = orig }()
		e.srv.evaluate = func(*engine.Snapshot, *thauth.CheckRequest, time.Time) thauth.Decision { panic("boom") }
		rec := e.post("/v1/check", e.decisions, body)
		if rec.Code != 500 || rec.Body.String() != want {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("engine answers error", func(t *testing.T) {
		orig := e.srv.evaluate
		defer func() { e.srv.evaluate = orig }()
		e.srv.evaluate = func(*engine.Snapshot, *thauth.CheckRequest, time.Time) thauth.Decision { return thauth.ErrorDecision }
		rec := e.post("/v1/check", e.decisions, body)
		if rec.Code != 500 || rec.Body.String() != want {
			t.Errorf("got %d %s", rec.Code, rec.Body)
		}
	})
	// And the real thing still works afterwards.
	if a := e.check(body); !a.Allowed {
		t.Errorf("after restore: %+v", a)
	}
}

type batchAnswer struct {
	Results []batchResult `json:"results"`
}

type batchResult struct {
	Feature  string  `json:"feature"`
	Action   string  `json:"action"`
	Resource *string `json:"resource,omitempty"`
	Allowed  bool    `json:"allowed"`
	Reason   string  `json:"reason"`
}

func strp(s string) *string { return &s }

func TestBatch(t *testing.T) { testBatch(t, newEnv) }

func testBatch(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	rec := e.post("/v1/check/batch", e.decisions, `{"subject":"user:alice","checks":[
		{"feature":"billing","action":"read"},
		{"feature":"billing","action":"refund","resource":"invoices/locked"},
		{"feature":"reports","action":"read"},
		{"feature":"billing","action":"refund","resource":"invoices/7"},
		{"feature":"nope","action":"x","resource":null}
	]}`)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var got batchAnswer
	mustJSON(t, rec.Body.Bytes(), &got)
	want := batchAnswer{Results: []batchResult{
		{Feature: "billing", Action: "read", Allowed: true, Reason: "role:billing-admin"},
		{Feature: "billing", Action: "refund", Resource: strp("invoices/locked"), Allowed: false, Reason: "override:deny"},
		{Feature: "reports", Action: "read", Allowed: false, Reason: "default:deny"},
		{Feature: "billing", Action: "refund", Resource: strp("invoices/7"), Allowed: true, Reason: "role:billing-admin"},
		{Feature: "nope", Action: "x", Allowed: false, Reason: "default:deny"},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}

	t.Run("tenant applies to every item", func(t *testing.T) {
		rec := e.post("/v1/check/batch", e.decisions, `{"subject":"user:bob","tenant":"tenant_acme","checks":[{"feature":"reports","action":"read"},{"feature":"reports","action":"export"}]}`)
		var got batchAnswer
		mustJSON(t, rec.Body.Bytes(), &got)
		if len(got.Results) != 2 || !got.Results[0].Allowed || got.Results[1].Allowed {
			t.Errorf("got %s", rec.Body)
		}
	})

	item := `{"feature":"billing","action":"read"}`
	items := func(n int) string {
		return `{"subject":"user:alice","checks":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
	}
	t.Run("1000 items", func(t *testing.T) {
		rec := e.post("/v1/check/batch", e.decisions, items(1000))
		var got batchAnswer
		mustJSON(t, rec.Body.Bytes(), &got)
		if rec.Code != 200 || len(got.Results) != 1000 {
			t.Fatalf("%d, %d results", rec.Code, len(got.Results))
		}
	})

	bad := []struct{ name, body, want string }{
		{"no items", `{"subject":"user:alice","checks":[]}`, `field "checks" must contain at least 1 check`},
		{"1001 items", items(1001), `field "checks" must contain at most 1000 checks`},
		{"checks missing", `{"subject":"user:alice"}`, `field "checks" is required`},
		{"checks null", `{"subject":"user:alice","checks":null}`, `field "checks" is required`},
		{"checks not an array", `{"subject":"user:alice","checks":{}}`, `field "checks" must be an array`},
		{"subject missing", `{"checks":[` + item + `]}`, `field "subject" is required`},
		{"subject empty", `{"subject":"","checks":[` + item + `]}`, `field "subject" must not be empty`},
		{"tenant empty", `{"subject":"a","tenant":"","checks":[` + item + `]}`, `field "tenant" must not be empty`},
		{"unknown top-level field", `{"subject":"a","explain":true,"checks":[` + item + `]}`, `unknown field "explain"`},
		{"unknown item field", `{"subject":"a","checks":[` + item + `,{"feature":"f","action":"a","subject":"x"}]}`, `unknown field "checks[1].subject"`},
		{"item feature missing", `{"subject":"a","checks":[{"action":"a"}]}`, `field "checks[0].feature" is required`},
		{"item action null", `{"subject":"a","checks":[{"feature":"f","action":null}]}`, `field "checks[0].action" is required`},
		{"item action empty", `{"subject":"a","checks":[` + item + `,` + item + `,{"feature":"f","action":""}]}`, `field "checks[2].action" must not be empty`},
		{"item feature number", `{"subject":"a","checks":[{"feature":7,"action":"a"}]}`, `field "checks[0].feature" must be a string`},
		{"item resource bad", `{"subject":"a","checks":[{"feature":"f","action":"a","resource":"/x"}]}`, `field "checks[0].resource" must not contain an empty path segment`},
		{"item not an object", `{"subject":"a","checks":["billing"]}`, `field "checks[0]" must be an object`},
		{"item null", `{"subject":"a","checks":[null]}`, `field "checks[0]" must be an object`},
		{"item duplicate field", `{"subject":"a","checks":[{"feature":"f","feature":"g","action":"a"}]}`, `duplicate field "checks[0].feature"`},
		{"trailing data", `{"subject":"a","checks":[` + item + `]}]`, `unexpected data after`},
		{"malformed", `{"subject":"a","checks":[` + item, `malformed JSON`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.post("/v1/check/batch", e.decisions, c.body), http.StatusBadRequest, c.want)
		})
	}
}

// TestBatchItemFailure: one item failing gives that item allowed:false reason:error; the
// others are still evaluated, all against one snapshot.
func TestBatchItemFailure(t *testing.T) {
	e := newEnv(t)
	orig := e.srv.evaluate
	defer func() { e.srv.evaluate = orig }()
	var snaps []*engine.Snapshot
	e.srv.evaluate = func(s *engine.Snapshot, req *thauth.CheckRequest, now time.Time) thauth.Decision {
		snaps = append(snaps, s)
		switch req.Action {
		case "panic":
			panic("item panics")
		case "fail":
			return thauth.ErrorDecision
		}
		return orig(s, req, now)
	}
	rec := e.post("/v1/check/batch", e.decisions, `{"subject":"user:alice","checks":[
		{"feature":"billing","action":"panic"},
		{"feature":"billing","action":"read"},
		{"feature":"billing","action":"fail"},
		{"feature":"billing","action":"read"}]}`)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var got batchAnswer
	mustJSON(t, rec.Body.Bytes(), &got)
	want := []batchResult{
		{Feature: "billing", Action: "panic", Allowed: false, Reason: "error"},
		{Feature: "billing", Action: "read", Allowed: true, Reason: "role:billing-admin"},
		{Feature: "billing", Action: "fail", Allowed: false, Reason: "error"},
		{Feature: "billing", Action: "read", Allowed: true, Reason: "role:billing-admin"},
	}
	if d := cmp.Diff(want, got.Results); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	for _, s := range snaps {
		if s != snaps[0] {
			t.Error("items evaluated against different snapshots")
		}
	}
	if !strings.Contains(e.logs.String(), "item panics") {
		t.Error("the panic was not logged")
	}
}

func TestGetConfig(t *testing.T) { testGetConfig(t, newEnv) }

func testGetConfig(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	rec := e.do("GET", "/v1/config", e.decisions, "", "")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var raw map[string]any
	mustJSON(t, rec.Body.Bytes(), &raw)
	keys := []string{}
	for k := range raw {
		keys = append(keys, k)
	}
	if len(keys) != 4 || raw["project"] == nil || raw["version"] == nil || raw["features"] == nil || raw["roles"] == nil {
		t.Errorf("top-level fields %v", keys)
	}
	c := e.config()
	if c.Project.ID != e.projectID || c.Project.Name != "shop" {
		t.Errorf("project %+v", c.Project)
	}
	if c.Version == "" || rec.Header().Get("ETag") != `"`+c.Version+`"` {
		t.Errorf("ETag %q, version %q", rec.Header().Get("ETag"), c.Version)
	}
	// Shape: canonical order, description and resource omitted when empty.
	body := rec.Body.String()
	for _, want := range []string{
		`"description":"Billing and invoices"`,
		`"actions":[{"id":"`,
		`"feature_name":"billing","action_id":"`,
		`"action":"refund","resource":"invoices/*"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
	var shape struct {
		Features []map[string]json.RawMessage
		Roles    []struct {
			Name        string
			Permissions []map[string]json.RawMessage
		}
	}
	mustJSON(t, rec.Body.Bytes(), &shape)
	if _, ok := shape.Features[1]["description"]; ok || shape.Features[1]["name"] == nil {
		t.Errorf("reports feature should have no description: %v", shape.Features[1])
	}
	if len(shape.Roles) != 2 || shape.Roles[0].Name != "analyst" {
		t.Fatalf("roles %+v", shape.Roles)
	}
	if _, ok := shape.Roles[0].Permissions[0]["resource"]; ok {
		t.Error("empty resource not omitted")
	}
	gotNames := []string{c.Features[0].Name, c.Features[1].Name, c.Features[1].Actions[0].Action, c.Features[1].Actions[1].Action}
	if d := cmp.Diff([]string{"billing", "reports", "export", "read"}, gotNames); d != "" {
		t.Errorf("order: %s", d)
	}

	etag := rec.Header().Get("ETag")
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		rec := e.do("GET", "/v1/config", e.decisions, "", "", "If-None-Match", inm)
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d %q", inm, rec.Code, rec.Body)
		}
	}
	if rec := e.do("GET", "/v1/config", e.decisions, "", "", "If-None-Match", `"stale"`); rec.Code != 200 {
		t.Errorf("stale ETag: %d", rec.Code)
	}

	// The version changes when the configuration does, and not for subject changes.
	up := e.post("/v1/subjects/upsert", e.writer, `{"subject_id":"user:carol","subject_type":"user","role_ids":["`+e.roleID("analyst")+`"]}`)
	if up.Code != 200 {
		t.Fatalf("upsert %d %s", up.Code, up.Body)
	}
	if v := e.config().Version; v != c.Version {
		t.Errorf("subject upsert changed the version %s → %s", c.Version, v)
	}
	doc := strings.Replace(baseConfig, "actions: [export, read]", "actions: [export, read, share]", 1)
	if rec := e.do("PUT", "/api/v1/projects/"+e.projectID+"/config", e.admin, "application/yaml", doc); rec.Code != 200 {
		t.Fatalf("apply: %d %s", rec.Code, rec.Body)
	}
	if rec := e.do("GET", "/v1/config", e.decisions, "", "", "If-None-Match", etag); rec.Code != 200 {
		t.Errorf("old ETag after a config change: %d", rec.Code)
	}
}

type upsertAnswer struct {
	Created bool           `json:"created"`
	Subject thauth.Subject `json:"subject"`
}

func TestUpsert(t *testing.T) { testUpsert(t, newEnv) }

func testUpsert(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	analyst, admin := e.roleID("analyst"), e.roleID("billing-admin")
	billing := e.featureID("billing")
	upsert := func(body string) upsertAnswer {
		t.Helper()
		rec := e.post("/v1/subjects/upsert", e.writer, body)
		if rec.Code != 200 {
			t.Fatalf("upsert %s: %d %s", body, rec.Code, rec.Body)
		}
		var raw map[string]json.RawMessage
		mustJSON(t, rec.Body.Bytes(), &raw)
		var subj map[string]any
		mustJSON(t, raw["subject"], &subj)
		if len(raw) != 3 || len(subj) != 6 {
			t.Errorf("answer shape %s", rec.Body)
		}
		if hdr := rec.Header().Get("Thauth-Revision"); hdr == "" || string(raw["revision"]) != `"`+hdr+`"` {
			t.Errorf("revision header %q, body %s", hdr, rec.Body)
		}
		var a upsertAnswer
		mustJSON(t, rec.Body.Bytes(), &a)
		return a
	}
	allowed := func(subject, feature, action, extra string) bool {
		t.Helper()
		return e.check(fmt.Sprintf(`{"subject":%q,"feature":%q,"action":%q%s}`, subject, feature, action, extra)).Allowed
	}

	a := upsert(`{"subject_id":"user:carol","subject_type":"user","role_ids":["` + analyst + `"]}`)
	if !a.Created || a.Subject.SubjectID != "user:carol" || a.Subject.SubjectType != "user" || a.Subject.ProjectID != e.projectID || a.Subject.ID == "" {
		t.Errorf("first upsert %+v", a)
	}
	if a.Subject.CreatedAt.IsZero() || !a.Subject.CreatedAt.Equal(a.Subject.UpdatedAt) {
		t.Errorf("times %+v", a.Subject)
	}
	if !allowed("user:carol", "reports", "read", "") {
		t.Error("role not effective right after the upsert")
	}

	// Tenant scope: the global grants stay as they are.
	a = upsert(`{"subject_id":"user:carol","subject_type":"user","tenant_id":"tenant_acme","role_ids":["` + admin + `"]}`)
	if a.Created {
		t.Error("second upsert reported created")
	}
	if !allowed("user:carol", "billing", "read", `,"tenant":"tenant_acme"`) || allowed("user:carol", "billing", "read", "") {
		t.Error("tenant-scoped role wrong")
	}
	if !allowed("user:carol", "reports", "read", "") || !allowed("user:carol", "reports", "read", `,"tenant":"tenant_acme"`) {
		t.Error("global role lost by a tenant upsert")
	}

	// role_ids absent: assignments untouched; permissions given: overrides replaced.
	upsert(`{"subject_id":"user:carol","subject_type":"user","permissions":[{"feature_id":"` + billing + `","action":"refund","effect":"allow","resource":"invoices/9"}]}`)
	if !allowed("user:carol", "reports", "read", "") {
		t.Error("absent role_ids removed roles")
	}
	if !allowed("user:carol", "billing", "refund", `,"resource":"invoices/9"`) {
		t.Error("override not applied")
	}
	// role_ids null is absent too.
	upsert(`{"subject_id":"user:carol","subject_type":"user","role_ids":null}`)
	if !allowed("user:carol", "reports", "read", "") {
		t.Error("null role_ids removed roles")
	}
	// [] removes every role in the (global) scope, and only there.
	upsert(`{"subject_id":"user:carol","subject_type":"user","role_ids":[]}`)
	if allowed("user:carol", "reports", "read", "") {
		t.Error("empty role_ids kept the global role")
	}
	if !allowed("user:carol", "billing", "read", `,"tenant":"tenant_acme"`) {
		t.Error("empty global role_ids removed the tenant role")
	}
	if !allowed("user:carol", "billing", "refund", `,"resource":"invoices/9"`) {
		t.Error("role_ids:[] removed overrides")
	}
	upsert(`{"subject_id":"user:carol","subject_type":"user","permissions":[]}`)
	if allowed("user:carol", "billing", "refund", `,"resource":"invoices/9"`) {
		t.Error("permissions:[] kept the override")
	}
	// Deny override in a tenant.
	upsert(`{"subject_id":"user:carol","subject_type":"service","tenant_id":"tenant_acme","permissions":[{"feature_id":"` + billing + `","action":"read","effect":"deny"}]}`)
	if d := e.check(`{"subject":"user:carol","feature":"billing","action":"read","tenant":"tenant_acme"}`); d.Allowed || d.Reason != "override:deny" {
		t.Errorf("deny override: %+v", d)
	}
}

// TestUpsertRejected: bad bodies are 400s naming the field, and unknown ids are 400s naming
// them with nothing written (a follow-up check is unchanged).
func TestUpsertRejected(t *testing.T) { testUpsertRejected(t, newEnv) }

func testUpsertRejected(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	analyst := e.roleID("analyst")
	billing := e.featureID("billing")
	before := e.check(`{"subject":"user:alice","feature":"billing","action":"read"}`)

	cases := []struct{ name, body, want string }{
		{"unknown role id", `{"subject_id":"user:alice","subject_type":"user","role_ids":["` + analyst + `","00000000-0000-7000-8000-0000000000aa"]}`, "00000000-0000-7000-8000-0000000000aa"},
		{"unknown feature id", `{"subject_id":"user:alice","subject_type":"user","role_ids":[],"permissions":[{"feature_id":"00000000-0000-7000-8000-0000000000bb","action":"read","effect":"deny"}]}`, "00000000-0000-7000-8000-0000000000bb"},
		{"unknown action", `{"subject_id":"user:alice","subject_type":"user","role_ids":[],"permissions":[{"feature_id":"` + billing + `","action":"fly","effect":"deny"}]}`, "fly"},
		{"missing subject_id", `{"subject_type":"user"}`, `field "subject_id" is required`},
		{"missing subject_type", `{"subject_id":"user:alice","role_ids":[]}`, `field "subject_type" is required`},
		{"empty subject_id", `{"subject_id":"","subject_type":"user"}`, `field "subject_id" must not be empty`},
		{"empty tenant_id", `{"subject_id":"user:alice","subject_type":"user","tenant_id":""}`, `field "tenant_id" must not be empty`},
		{"unknown field", `{"subject_id":"user:alice","subject_type":"user","roles":[]}`, `unknown field "roles"`},
		{"role_ids not an array", `{"subject_id":"user:alice","subject_type":"user","role_ids":"x"}`, `field "role_ids" must be an array`},
		{"role id not a string", `{"subject_id":"user:alice","subject_type":"user","role_ids":[1]}`, `field "role_ids[0]" must be a string`},
		{"role id empty", `{"subject_id":"user:alice","subject_type":"user","role_ids":["` + analyst + `",""]}`, `field "role_ids[1]" must not be empty`},
		{"permission missing effect", `{"subject_id":"user:alice","subject_type":"user","permissions":[{"feature_id":"` + billing + `","action":"read"}]}`, `field "permissions[0].effect" is required`},
		{"permission bad effect", `{"subject_id":"user:alice","subject_type":"user","permissions":[{"feature_id":"` + billing + `","action":"read","effect":"maybe"}]}`, `field "permissions[0].effect" must be "allow" or "deny"`},
		{"permission unknown field", `{"subject_id":"user:alice","subject_type":"user","permissions":[{"feature_id":"` + billing + `","action":"read","effect":"deny","tenant":"t"}]}`, `unknown field "permissions[0].tenant"`},
		{"permission empty resource", `{"subject_id":"user:alice","subject_type":"user","permissions":[{"feature_id":"` + billing + `","action":"read","effect":"deny","resource":""}]}`, `field "permissions[0].resource" must not be empty`},
		{"permission not an object", `{"subject_id":"user:alice","subject_type":"user","permissions":[[]]}`, `field "permissions[0]" must be an object`},
		{"malformed", `{"subject_id":"user:alice"`, `malformed JSON`},
		{"trailing data", `{"subject_id":"user:alice","subject_type":"user"}{}`, `unexpected data after`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.post("/v1/subjects/upsert", e.writer, c.body), http.StatusBadRequest, c.want)
			if got := e.check(`{"subject":"user:alice","feature":"billing","action":"read"}`); got.Allowed != before.Allowed || got.Reason != before.Reason {
				t.Errorf("rejected upsert changed the decision: %+v → %+v", before, got)
			}
		})
	}
	// The deny override of alice is still there too.
	if d := e.check(`{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/locked"}`); d.Reason != "override:deny" {
		t.Errorf("override lost: %+v", d)
	}
}
