package httpserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// TestPostgresContract runs the main contract tests on PostgreSQL too (they run on SQLite
// as TestCheck, TestUpsert, ...). Skipped without PostgreSQL unless THAUTH_REQUIRE_POSTGRES=1.
func TestPostgresContract(t *testing.T) {
	for name, test := range map[string]func(*testing.T, func(testing.TB) *env){
		"Check":          testCheck,
		"Batch":          testBatch,
		"GetConfig":      testGetConfig,
		"Upsert":         testUpsert,
		"UpsertRejected": testUpsertRejected,
		"ManageConfig":   testManageConfig,
		"Keys":           testKeys,
		"CrossProject":   testCrossProject,
		"Freshness":      testFreshness,
		"FreshnessBatch": testFreshnessBatch,
		"WriteDeadline":  testWriteDeadline,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newPostgresEnv)
		})
	}
}

func TestRevisionToken(t *testing.T) {
	const project = "01970c2e-8a3b-7c1d-9e2f-3a4b5c6d7e8f"
	tok := revisionToken(project, 42)
	if tok != "r1.MDE5NzBjMmUtOGEzYi03YzFkLTllMmYtM2E0YjVjNmQ3ZThmOjQy" {
		t.Errorf("token = %q (docs/openapi.yaml shows this example)", tok)
	}
	if p, rev, ok := parseRevisionToken(tok); !ok || p != project || rev != 42 {
		t.Errorf("parse(%q) = %q, %d, %v", tok, p, rev, ok)
	}
	enc := func(s string) string { return tokenPrefix + tokenEncoding.EncodeToString([]byte(s)) }
	for _, bad := range []string{
		"", "r1.", "r2." + tok[3:], tok[3:], tok + "=", tok + "!", "r1.%%%",
		enc(project), enc(project + ":"), enc(":5"), enc(project + ":0"), enc(project + ":-1"),
		enc(project + ":+1"), enc(project + ":1x"), enc(project + ":99999999999999999999"),
		"r1." + strings.Repeat("A", maxTokenSize),
	} {
		if p, rev, ok := parseRevisionToken(bad); ok {
			t.Errorf("parse(%q) accepted: %q, %d", bad, p, rev)
		}
	}
}

// writeToken returns the revision token of a write answer and checks that the header and
// the JSON field (when the body is JSON) agree.
func writeToken(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	tok := rec.Header().Get("Thauth-Revision")
	if tok == "" {
		t.Fatalf("write answer %d without a Thauth-Revision header: %s", rec.Code, rec.Body)
	}
	if rec.Body.Len() > 0 {
		var b struct {
			Revision string `json:"revision"`
		}
		mustJSON(t, rec.Body.Bytes(), &b)
		if b.Revision != tok {
			t.Errorf("body revision %q, header %q", b.Revision, tok)
		}
	}
	return tok
}

func tokenRevision(t *testing.T, tok string) int64 {
	t.Helper()
	_, rev, ok := parseRevisionToken(tok)
	if !ok {
		t.Fatalf("bad token %q", tok)
	}
	return rev
}

func TestFreshness(t *testing.T) { testFreshness(t, newEnv) }

func testFreshness(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	e.srv.freshWait = 100 * time.Millisecond
	keys := "/api/v1/projects/" + e.projectID + "/keys"
	carol := `{"subject":"user:carol","feature":"reports","action":"read"%s}`
	fresh := func(tok string) string { return fmt.Sprintf(`,"at_least_as_fresh":%q`, tok) }

	// Every write answers with a token; tokens grow with the revision.
	rec := e.post("/v1/subjects/upsert", e.writer,
		fmt.Sprintf(`{"subject_id":"user:carol","subject_type":"user","role_ids":[%q]}`, e.roleID("analyst")))
	if rec.Code != 200 {
		t.Fatalf("upsert: %d %s", rec.Code, rec.Body)
	}
	upsertTok := writeToken(t, rec)
	rec = e.post(keys, e.admin, `{"name":"k","scopes":["decisions:read"]}`)
	if rec.Code != 201 {
		t.Fatalf("create key: %d %s", rec.Code, rec.Body)
	}
	keyTok := writeToken(t, rec)
	var k struct{ ID string }
	mustJSON(t, rec.Body.Bytes(), &k)
	rec = e.do("DELETE", keys+"/"+k.ID, e.admin, "", "")
	if rec.Code != 204 {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	revokeTok := writeToken(t, rec)
	rec = e.do("DELETE", keys+"/"+k.ID, e.admin, "", "") // again: a no-op, current revision
	if rec.Code != 204 || writeToken(t, rec) != revokeTok {
		t.Errorf("second revoke: %d, token %q, want %q", rec.Code, rec.Header().Get("Thauth-Revision"), revokeTok)
	}
	rec = e.do("PUT", "/api/v1/projects/"+e.projectID+"/config", e.admin, "application/yaml", baseConfig)
	if rec.Code != 200 {
		t.Fatalf("apply: %d %s", rec.Code, rec.Body)
	}
	applyTok := writeToken(t, rec) // subjects changed (carol is not in the document): a write
	revs := []int64{tokenRevision(t, upsertTok), tokenRevision(t, keyTok), tokenRevision(t, revokeTok), tokenRevision(t, applyTok)}
	for i := 1; i < len(revs); i++ {
		if revs[i] != revs[i-1]+1 {
			t.Errorf("revisions of consecutive writes: %v", revs)
		}
	}
	rec = e.do("PUT", "/api/v1/projects/"+e.projectID+"/config?dry_run=true", e.admin, "application/yaml", baseConfig)
	if rec.Code != 200 || rec.Header().Get("Thauth-Revision") != "" || strings.Contains(rec.Body.String(), "revision") {
		t.Errorf("dry run: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	// An apply that changes nothing answers the current revision.
	rec = e.do("PUT", "/api/v1/projects/"+e.projectID+"/config", e.admin, "application/yaml", baseConfig)
	if rec.Code != 200 || writeToken(t, rec) != applyTok {
		t.Errorf("no-op apply: %d, token %q, want %q", rec.Code, rec.Header().Get("Thauth-Revision"), applyTok)
	}

	t.Run("tokens of this node's writes are honoured at once", func(t *testing.T) {
		for _, tok := range []string{upsertTok, applyTok} {
			rec := e.post("/v1/check", e.decisions, fmt.Sprintf(carol, fresh(tok)))
			if rec.Code != 200 {
				t.Fatalf("check: %d %s", rec.Code, rec.Body)
			}
		}
	})

	t.Run("a node behind catches up on demand", func(t *testing.T) {
		// Another writer (another node, or `thauth init`) writes to the store; this node's
		// engine is not told (no follow loop runs in this test).
		other := manage.New(e.store, nil, manage.Options{})
		res, err := other.UpsertSubject(t.Context(), e.projectID, manage.UpsertRequest{
			SubjectID: "user:dave", SubjectType: "user", RoleIDs: &[]string{e.roleID("analyst")},
		})
		if err != nil {
			t.Fatal(err)
		}
		dave := `{"subject":"user:dave","feature":"reports","action":"read"%s}`
		if a := e.check(fmt.Sprintf(dave, "")); a.Allowed {
			t.Fatal("the engine saw the other writer's upsert without syncing: the test proves nothing")
		}
		tok := revisionToken(e.projectID, res.Revision)
		rec := e.post("/v1/check", e.decisions, fmt.Sprintf(dave, fresh(tok)))
		var a checkAnswer
		mustJSON(t, rec.Body.Bytes(), &a)
		if rec.Code != 200 || !a.Allowed || a.Reason != "role:analyst" {
			t.Errorf("check with the other writer's token: %d %s", rec.Code, rec.Body)
		}
		if s := e.eng.Snapshot(e.projectID); s.Revision() < res.Revision {
			t.Errorf("snapshot at %d after the fresh check, want ≥ %d", s.Revision(), res.Revision)
		}
	})

	t.Run("a revision the store has not reached: 503 after the bounded wait", func(t *testing.T) {
		cur := e.eng.Snapshot(e.projectID).Revision()
		tok := revisionToken(e.projectID, cur+1000)
		start := time.Now()
		rec := e.post("/v1/check", e.decisions, fmt.Sprintf(carol, fresh(tok)))
		b := wantError(t, rec, http.StatusServiceUnavailable, "this node has not caught up to the requested revision yet")
		if b.Code != thauth.EUnavailable || rec.Header().Get("Retry-After") != "1" {
			t.Errorf("code %q, Retry-After %q", b.Code, rec.Header().Get("Retry-After"))
		}
		if time.Since(start) < e.srv.freshWait {
			t.Errorf("answered before the wait was over")
		}
	})

	t.Run("bad tokens are 400 naming the field", func(t *testing.T) {
		other := revisionToken("01970c2e-8a3b-7c1d-9e2f-3a4b5c6d7e8f", 1)
		for tok, want := range map[string]string{
			"nonsense":       `field "at_least_as_fresh" is not a revision token`,
			upsertTok + "xx": `field "at_least_as_fresh" is not a revision token`,
			"":               `field "at_least_as_fresh" must not be empty`,
			other:            `field "at_least_as_fresh" is a revision token of another project`,
		} {
			rec := e.post("/v1/check", e.decisions, fmt.Sprintf(carol, fresh(tok)))
			if b := wantError(t, rec, http.StatusBadRequest, want); b.Code != thauth.EInvalid {
				t.Errorf("code %q", b.Code)
			}
		}
		rec := e.post("/v1/check", e.decisions, fmt.Sprintf(carol, `,"at_least_as_fresh":42`))
		wantError(t, rec, http.StatusBadRequest, `"at_least_as_fresh"`)
	})
}

func TestFreshnessBatch(t *testing.T) { testFreshnessBatch(t, newEnv) }

func testFreshnessBatch(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	e.srv.freshWait = 50 * time.Millisecond
	other := manage.New(e.store, nil, manage.Options{})
	res, err := other.UpsertSubject(t.Context(), e.projectID, manage.UpsertRequest{
		SubjectID: "user:erin", SubjectType: "user", RoleIDs: &[]string{e.roleID("billing-admin")},
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := func(tok string) *httptest.ResponseRecorder {
		return e.post("/v1/check/batch", e.decisions, fmt.Sprintf(
			`{"subject":"user:erin","at_least_as_fresh":%q,"checks":[{"feature":"billing","action":"read"},{"feature":"reports","action":"read"}]}`, tok))
	}
	rec := batch(revisionToken(e.projectID, res.Revision))
	var out struct {
		Results []struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		} `json:"results"`
	}
	if rec.Code != 200 {
		t.Fatalf("batch: %d %s", rec.Code, rec.Body)
	}
	mustJSON(t, rec.Body.Bytes(), &out)
	if len(out.Results) != 2 || !out.Results[0].Allowed || out.Results[1].Allowed {
		t.Errorf("batch with a fresh token: %s", rec.Body)
	}
	rec = batch(revisionToken(e.projectID, res.Revision+50))
	wantError(t, rec, http.StatusServiceUnavailable, "not caught up")
	if rec.Header().Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
	rec = batch("r1.bad!")
	wantError(t, rec, http.StatusBadRequest, `field "at_least_as_fresh"`)
}

// TestWriteDeadline: routes that wait for the store run with a deadline, and a write that
// runs out of it fails with 503 while decisions keep working.
func TestWriteDeadline(t *testing.T) { testWriteDeadline(t, newEnv) }

func testWriteDeadline(t *testing.T, newEnv func(testing.TB) *env) {
	var left time.Duration
	h := withTimeout(3*time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, ok := r.Context().Deadline(); ok {
			left = time.Until(d)
		}
	}))
	serve(h, httptest.NewRequest("POST", "/", nil))
	if left <= 2*time.Second || left > 3*time.Second {
		t.Errorf("deadline in %v, want about 3s", left)
	}

	e := newEnv(t)
	analyst := e.roleID("analyst")
	e.srv.writeWait = time.Nanosecond // expired before the store is reached
	e.srv.docWait = time.Nanosecond
	e.srv.mux = http.NewServeMux()
	for _, rt := range e.srv.routes() {
		e.srv.mux.Handle(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	rec := e.post("/v1/subjects/upsert", e.writer,
		fmt.Sprintf(`{"subject_id":"user:zed","subject_type":"user","role_ids":[%q]}`, analyst))
	if b := wantError(t, rec, http.StatusServiceUnavailable, "database"); b.Code != thauth.EUnavailable {
		t.Errorf("code %q", b.Code)
	}
	rec = e.do("PUT", "/api/v1/projects/"+e.projectID+"/config", e.admin, "application/yaml", baseConfig)
	wantError(t, rec, http.StatusServiceUnavailable, "database")
	rec = e.post("/api/v1/projects/"+e.projectID+"/keys", e.admin, `{"name":"k","scopes":["admin"]}`)
	wantError(t, rec, http.StatusServiceUnavailable, "database")
	if a := e.check(`{"subject":"user:alice","feature":"billing","action":"read"}`); !a.Allowed {
		t.Errorf("check: %+v", a)
	}
}
