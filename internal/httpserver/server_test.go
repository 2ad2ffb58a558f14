package httpserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/thauth/thauth"
)

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nope", 404, ""},
		{"GET", "/", 404, ""},
		{"POST", "/v1/checks", 404, ""},
		{"GET", "/v1/check/batch/x", 404, ""},
		{"GET", "/api/v1/projects/" + e.projectID + "/nothing", 404, ""},
		{"GET", "/v1/check", 405, "POST"},
		{"PUT", "/v1/check/batch", 405, "POST"},
		{"DELETE", "/v1/config", 405, "GET, HEAD"},
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"PATCH", "/api/v1/projects/x/config", 405, "GET, HEAD, PUT"},
		{"GET", "/api/v1/projects/x/keys/y", 405, "DELETE"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			rec := e.do(c.method, c.path, e.admin, "application/json", `{}`)
			b := wantError(t, rec, c.status, "")
			if c.status == 404 && (b.Error != "not found" || b.Code != thauth.ENotFound) {
				t.Errorf("body %s", rec.Body)
			}
			if c.status == 405 && !strings.Contains(b.Error, "method not allowed") {
				t.Errorf("body %s", rec.Body)
			}
			if got := rec.Header().Get("Allow"); got != c.allow {
				t.Errorf("Allow = %q, want %q", got, c.allow)
			}
			if rec.Header().Get("X-Request-Id") == "" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", rec.Header())
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	// A sane incoming id is kept.
	for _, id := range []string{"abc-123_XYZ", strings.Repeat("a", 64)} {
		rec := e.do("GET", "/healthz", "", "", "", "X-Request-Id", id)
		if got := rec.Header().Get("X-Request-Id"); got != id {
			t.Errorf("incoming %q: got %q", id, got)
		}
	}
	// Anything else is replaced by a generated one.
	seen := map[string]bool{}
	for _, id := range []string{"", strings.Repeat("a", 65), "has space", "semi;colon", "ünï", "a\tb"} {
		rec := e.do("GET", "/healthz", "", "", "", "X-Request-Id", id)
		got := rec.Header().Get("X-Request-Id")
		if got == id || !uuidV7.MatchString(got) || seen[got] {
			t.Errorf("incoming %q: got %q", id, got)
		}
		seen[got] = true
	}
	// It is in the access log line, also for errors.
	rec := e.do("POST", "/v1/check", e.decisions, "application/json", `{"bad":1}`, "X-Request-Id", "trace-me-42")
	if rec.Code != 400 || rec.Header().Get("X-Request-Id") != "trace-me-42" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	line := logLine(t, e.logs.String(), "trace-me-42")
	if line["route"] != "POST /v1/check" || line["status"] != float64(400) || line["method"] != "POST" || line["key_id"] == "" || line["key_id"] == nil {
		t.Errorf("access log line %v", line)
	}
	if _, ok := line["duration"]; !ok {
		t.Errorf("no duration in %v", line)
	}
}

// logLine returns the access log line (JSON) carrying request id id.
func logLine(t *testing.T, logs, id string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["request_id"] == id && m["msg"] == "http request" {
			return m
		}
	}
	t.Fatalf("no access log line for %s in:\n%s", id, logs)
	return nil
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t)
	e.srv.mux.Handle("GET /test-panic", apiHeaders(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret internal detail")
	})))
	rec := e.do("GET", "/test-panic", "", "", "", "X-Request-Id", "panic-1")
	if rec.Code != 500 || rec.Body.String() != `{"error":"internal error","code":"internal"}` || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("%d %q %v", rec.Code, rec.Body, rec.Header())
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "secret internal detail") || !strings.Contains(logs, `"request_id":"panic-1"`) {
		t.Error("panic not logged with the request id")
	}
	if line := logLine(t, logs, "panic-1"); line["status"] != float64(500) {
		t.Errorf("access log %v", line)
	}
}

func TestInternalErrorsAreNotShown(t *testing.T) {
	e := newEnv(t)
	e.store.Close() // every store call now fails
	rec := e.do("GET", "/api/v1/projects/"+e.projectID+"/keys", e.admin, "", "", "X-Request-Id", "broken-store")
	if rec.Code != 500 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if rec.Body.String() != `{"error":"internal error","code":"internal"}` {
		t.Errorf("body %s", rec.Body)
	}
	if !strings.Contains(e.logs.String(), `"msg":"internal error","request_id":"broken-store"`) {
		t.Errorf("internal error not logged with the request id:\n%s", e.logs)
	}
	// Decisions keep working from memory.
	if a := e.check(`{"subject":"user:alice","feature":"billing","action":"read"}`); !a.Allowed {
		t.Errorf("check with the store down: %+v", a)
	}
	// And readiness reports the store, but keeps the node in service: it still decides.
	rec = e.do("GET", "/readyz", "", "", "")
	var ready readyAnswer
	mustJSON(t, rec.Body.Bytes(), &ready)
	if rec.Code != http.StatusOK || ready.Status != "degraded" || ready.Store != "unreachable" ||
		ready.Checks["store"] != "unreachable" || ready.Checks["engine"] != "ok" {
		t.Errorf("readyz with the store down: %d %s", rec.Code, rec.Body)
	}
}

type readyAnswer struct {
	Status    string            `json:"status"`
	Store     string            `json:"store"`
	Staleness *float64          `json:"snapshot_staleness_seconds"`
	Checks    map[string]string `json:"checks"`
}

func TestProbes(t *testing.T) {
	e := newEnv(t)
	rec := e.do("GET", "/healthz", "", "", "")
	if rec.Code != 200 || rec.Body.String() != "ok" || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("healthz %d %q", rec.Code, rec.Body)
	}
	rec = e.do("GET", "/readyz", "", "", "")
	const want = `{"status":"ready","store":"ok","snapshot_staleness_seconds":0,"checks":{"engine":"ok","store":"ok"}}`
	if rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("readyz %d %s", rec.Code, rec.Body)
	}
	// Staleness is the time since the engine last caught up with the store.
	e.clock.Advance(1500 * time.Millisecond)
	rec = e.do("GET", "/readyz", "", "", "")
	var ready readyAnswer
	mustJSON(t, rec.Body.Bytes(), &ready)
	if ready.Staleness == nil || *ready.Staleness != 1.5 {
		t.Errorf("readyz after 1.5s without sync: %s", rec.Body)
	}
	// A failing store: degraded but 200 (decisions are served from memory), and the cause
	// stays in the log.
	e.srv.ping = func(ctx context.Context) error { return errors.New("connection refused to 10.0.0.9") }
	rec = e.do("GET", "/readyz", "", "", "")
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "10.0.0.9") ||
		!strings.Contains(rec.Body.String(), `"status":"degraded","store":"unreachable"`) {
		t.Errorf("readyz with failing ping: %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(e.logs.String(), "10.0.0.9") {
		t.Error("the ping failure is not logged")
	}
}

// TestLogsNeverContainTokens runs a full cycle — key creation, use, listing, bad keys,
// revocation, errors — and checks that no token (nor its secret part) reaches the log.
func TestLogsNeverContainTokens(t *testing.T) {
	e := newEnv(t)
	tokens := []string{e.admin, e.decisions, e.writer}
	keys := "/api/v1/projects/" + e.projectID + "/keys"
	rec := e.post(keys, e.admin, `{"name":"logged","scopes":["decisions:read"]}`)
	var k keyAnswer
	mustJSON(t, rec.Body.Bytes(), &k)
	tokens = append(tokens, k.Key)
	e.check(`{"subject":"user:alice","feature":"billing","action":"read","explain":true}`)
	e.post("/v1/check", k.Key, `{"subject":"user:alice","feature":"billing","action":"read"}`)
	e.post("/v1/check/batch", k.Key, `{"subject":"user:alice","checks":[{"feature":"billing","action":"read"}]}`)
	e.post("/v1/check", k.Key, `{"bad json`)
	e.post("/v1/subjects/upsert", e.writer, `{"subject_id":"user:x","subject_type":"user","role_ids":["nope"]}`)
	e.do("GET", keys, e.admin, "", "")
	e.do("DELETE", keys+"/"+k.ID, e.admin, "", "")
	e.post("/v1/check", k.Key, `{"subject":"user:alice","feature":"billing","action":"read"}`) // revoked
	bad := k.Key[:len(k.Key)-1] + "x"
	tokens = append(tokens, bad)
	e.post("/v1/check", bad, `{}`)
	e.do("GET", "/api/v1/projects/other/config", e.admin, "", "")
	e.do("PUT", "/api/v1/projects/"+e.projectID+"/config", e.admin, "application/yaml", "version: 2")
	e.do("GET", "/nope", e.admin, "", "")

	logs := e.logs.String()
	if !strings.Contains(logs, `"msg":"http request"`) {
		t.Fatal("no access log captured")
	}
	for _, tok := range tokens {
		secret := tok[len("thauth_")+17:]
		if strings.Contains(logs, tok) || strings.Contains(logs, secret) {
			t.Errorf("a token (or its secret) is in the logs")
		}
	}
	if strings.Contains(logs, "Bearer") || strings.Contains(strings.ToLower(logs), "authorization") {
		t.Error("the Authorization header is in the logs")
	}
}

// TestOpenAPICoversRoutes fails when a route of routes.go is not in docs/openapi.yaml (with
// its method), or the document lists a path or method the server does not serve.
func TestOpenAPICoversRoutes(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "docs", "openapi.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	served := map[string]bool{}
	for _, rt := range (&server{}).routes() {
		key := strings.ToLower(rt.Method) + " " + rt.Pattern
		served[key] = true
		ops, ok := doc.Paths[rt.Pattern]
		if !ok {
			t.Errorf("route %s %s: path missing from docs/openapi.yaml", rt.Method, rt.Pattern)
			continue
		}
		op, ok := ops[strings.ToLower(rt.Method)].(map[string]any)
		if !ok {
			t.Errorf("route %s %s: method missing from docs/openapi.yaml", rt.Method, rt.Pattern)
			continue
		}
		if _, ok := op["responses"]; !ok {
			t.Errorf("route %s %s: no responses documented", rt.Method, rt.Pattern)
		}
	}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}
	for p, ops := range doc.Paths {
		for m := range ops {
			if slices.Contains(methods, m) && !served[m+" "+p] {
				t.Errorf("docs/openapi.yaml documents %s %s, which is not served", strings.ToUpper(m), p)
			}
		}
	}
}

// TestRouteTable: the route list is well-formed and every route is reachable through New.
func TestRouteTable(t *testing.T) {
	e := newEnv(t)
	for _, rt := range (&server{}).routes() {
		r, _ := http.NewRequest(rt.Method, strings.NewReplacer("{project}", e.projectID, "{id}", "x").Replace(rt.Pattern), nil)
		if _, pattern := e.srv.mux.Handler(r); pattern != rt.Method+" "+rt.Pattern {
			t.Errorf("%s %s routes to %q", rt.Method, rt.Pattern, pattern)
		}
	}
}

// TestConcurrentRequests mixes requests from many goroutines (run it with -race): pooled
// buffers and requests must never leak between requests.
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t)
	type probe struct {
		path, body, want string
		status           int
	}
	probes := []probe{
		{"/v1/check", `{"subject":"user:alice","feature":"billing","action":"read"}`, `"allowed":true,"reason":"role:billing-admin"`, 200},
		{"/v1/check", `{"subject":"user:bob","feature":"reports","action":"read","tenant":"tenant_acme","explain":true}`, `"allowed":true,"reason":"role:analyst"`, 200},
		{"/v1/check", `{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/locked"}`, `"allowed":false,"reason":"override:deny"`, 200},
		{"/v1/check", `{"subject":"user:alice","feature":"billing"}`, `field \"action\" is required`, 400},
		{"/v1/check/batch", `{"subject":"user:alice","checks":[{"feature":"billing","action":"read"},{"feature":"reports","action":"read"}]}`,
			`{"results":[{"feature":"billing","action":"read","allowed":true,"reason":"role:billing-admin"},{"feature":"reports","action":"read","allowed":false,"reason":"default:deny"}]}`, 200},
	}
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; i < 150; i++ {
				p := probes[(g+i)%len(probes)]
				rec := serve(e.h, httptestRequest("POST", p.path, p.body, e.decisions, "application/json"))
				if rec.Code != p.status || !strings.Contains(rec.Body.String(), p.want) {
					done <- errors.New(p.body + " → " + rec.Body.String())
					return
				}
			}
			done <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestOpenAPIRefsResolve: every $ref of docs/openapi.yaml points at an existing component.
func TestOpenAPIRefsResolve(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	resolve := func(ref string) bool {
		if !strings.HasPrefix(ref, "#/") {
			return false
		}
		var cur any = doc
		for _, part := range strings.Split(ref[2:], "/") {
			m, ok := cur.(map[string]any)
			if !ok {
				return false
			}
			if cur, ok = m[part]; !ok {
				return false
			}
		}
		return true
	}
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					n++
					if !resolve(s) {
						t.Errorf("unresolved $ref %q", s)
					}
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if n < 50 {
		t.Errorf("only %d $refs found", n)
	}
}
