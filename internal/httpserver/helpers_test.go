package httpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/sqlite"
)

// testClock is an injectable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lockedBuffer collects log output from concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a complete Thauth behind the handler: real SQLite, engine and manage.
type env struct {
	t         testing.TB
	h         http.Handler
	srv       *server
	store     thauth.Store
	eng       *engine.Engine
	mg        *manage.Service
	clock     *testClock
	logs      *lockedBuffer
	projectID string
	admin     string // admin-scoped key of the project
	decisions string // the init "decisions" key: decisions:read and subjects:write
	reader    string // decisions:read only (created through the API)
	writer    string // subjects:write key (created through the API)
}

// baseConfig is the configuration every env starts with.
const baseConfig = `version: 1
features:
  - name: billing
    description: Billing and invoices
    actions: [read, refund]
  - name: reports
    actions: [export, read]
roles:
  - name: analyst
    permissions:
      - {feature: reports, action: read}
  - name: billing-admin
    description: Can manage billing
    permissions:
      - {feature: billing, action: read}
      - {feature: billing, action: refund, resource: "invoices/*"}
subjects:
  - id: "user:alice"
    type: user
    roles:
      - {role: billing-admin}
    overrides:
      - {feature: billing, action: refund, effect: deny, resource: "invoices/locked"}
  - id: "user:bob"
    type: user
    roles:
      - {role: analyst, tenant: tenant_acme}
`

func newEnv(t testing.TB) *env { return newEnvOn(t, openSQLite) }

// newPostgresEnv is newEnv on a fresh PostgreSQL database (skipped without PostgreSQL, see
// pgtest).
func newPostgresEnv(t testing.TB) *env { return newEnvOn(t, openPostgres) }

// openStore opens a fresh, migrated store for a test.
type openStore func(t testing.TB, log *slog.Logger) thauth.Store

func openSQLite(t testing.TB, log *slog.Logger) thauth.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

func openPostgres(t testing.TB, log *slog.Logger) thauth.Store {
	t.Helper()
	st := pgtest.Open(t, pgtest.New(t), postgres.Options{Logger: log})
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

func newEnvOn(t testing.TB, open openStore) *env {
	t.Helper()
	e := newBareEnvOn(t, true, open)
	rec := e.do("PUT", "/api/v1/projects/"+e.projectID+"/config", e.admin, "application/yaml", baseConfig)
	if rec.Code != http.StatusOK {
		t.Fatalf("apply base config: %d %s", rec.Code, rec.Body)
	}
	e.writer = e.createKey("writer", "subjects:write")
	e.reader = e.createKey("reader", "decisions:read")
	return e
}

// newBareEnv builds the components and an initialized project; load says whether the
// engine runs LoadAll (it is not ready otherwise).
func newBareEnv(t testing.TB, load bool) *env { return newBareEnvOn(t, load, openSQLite) }

func newBareEnvOn(t testing.TB, load bool, open openStore) *env {
	t.Helper()
	ctx := t.Context()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := &testClock{t: time.Now().UTC().Truncate(time.Microsecond)}
	st := open(t, log)
	eng := engine.New(st, engine.Options{Now: clk.Now, Logger: log})
	mg := manage.New(st, eng, manage.Options{Now: clk.Now, Logger: log})
	res, err := mg.Init(ctx, "Acme", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if load {
		if err := eng.LoadAll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h := New(Deps{Engine: eng, Manage: mg, Ping: st.Ping, Logger: log, Now: clk.Now})
	return &env{
		t: t, h: h, srv: h.(*server), store: st, eng: eng, mg: mg, clock: clk, logs: logs,
		projectID: res.Project.ID, admin: res.AdminKey, decisions: res.DecisionsKey,
	}
}

// do sends one request through the handler. ct "" sends no Content-Type; hdr are extra
// header pairs.
func (e *env) do(method, path, token, ct, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	return rec
}

// post sends a JSON body.
func (e *env) post(path, token, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do("POST", path, token, "application/json", body)
}

// check posts a check and returns the decoded answer, failing unless the status is 200.
func (e *env) check(body string) checkAnswer {
	e.t.Helper()
	rec := e.post("/v1/check", e.decisions, body)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("check %s: %d %s", body, rec.Code, rec.Body)
	}
	var a checkAnswer
	mustJSON(e.t, rec.Body.Bytes(), &a)
	return a
}

type checkAnswer struct {
	Allowed    bool            `json:"allowed"`
	Reason     string          `json:"reason"`
	DecisionID string          `json:"decision_id"`
	Explain    json.RawMessage `json:"explain"`
}

// createKey makes a key through the API and returns its token.
func (e *env) createKey(name string, scopes ...string) string {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "scopes": scopes})
	rec := e.post("/api/v1/projects/"+e.projectID+"/keys", e.admin, string(body))
	if rec.Code != http.StatusCreated {
		e.t.Fatalf("create key: %d %s", rec.Code, rec.Body)
	}
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	mustJSON(e.t, rec.Body.Bytes(), &k)
	return k.Key
}

// config returns the decoded GET /v1/config of the project.
func (e *env) config() configResponse {
	e.t.Helper()
	rec := e.do("GET", "/v1/config", e.decisions, "", "")
	if rec.Code != http.StatusOK {
		e.t.Fatalf("GET /v1/config: %d %s", rec.Code, rec.Body)
	}
	var c configResponse
	mustJSON(e.t, rec.Body.Bytes(), &c)
	return c
}

func (e *env) roleID(name string) string {
	e.t.Helper()
	for _, r := range e.config().Roles {
		if r.Name == name {
			return r.ID
		}
	}
	e.t.Fatalf("no role %q", name)
	return ""
}

func (e *env) featureID(name string) string {
	e.t.Helper()
	for _, f := range e.config().Features {
		if f.Name == name {
			return f.ID
		}
	}
	e.t.Fatalf("no feature %q", name)
	return ""
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// errorOf decodes an error body and checks the JSON content type.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json (body %s)", ct, rec.Body)
	}
	var b errorBody
	mustJSON(t, rec.Body.Bytes(), &b)
	if b.Error == "" {
		t.Errorf("error body without message: %s", rec.Body)
	}
	return b
}

// wantError checks status and that the error message contains want.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, want string) errorBody {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	b := errorOf(t, rec)
	if !strings.Contains(b.Error, want) {
		t.Errorf("error = %q, want it to contain %q", b.Error, want)
	}
	return b
}

// wantUnauthorized checks the exact 401 answer.
func wantUnauthorized(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if got := rec.Body.String(); got != "unauthorized" {
		t.Errorf("body = %q, want exactly %q", got, "unauthorized")
	}
}

// httptestRequest builds a request with an optional bearer token and content type.
func httptestRequest(method, path, body, token, ct string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}
