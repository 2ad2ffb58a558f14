package thauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth/sdk/go/thauth"
)

const testKey = "thauth_testkey"

// recorded is what the fake server saw of one request.
type recorded struct {
	Method, Path, Query, Auth, ContentType, Accept, UserAgent, IfNoneMatch string
	Body                                                                   string
}

// reqLog is the requests a fake server saw, safe for concurrent use.
type reqLog struct {
	mu   sync.Mutex
	reqs []recorded
}

func (l *reqLog) add(r recorded) { l.mu.Lock(); l.reqs = append(l.reqs, r); l.mu.Unlock() }

// at returns the i-th request seen.
func (l *reqLog) at(i int) recorded {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= len(l.reqs) {
		return recorded{}
	}
	return l.reqs[i]
}

// fake starts a server that records each request and answers with fn.
func fake(t *testing.T, fn func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *reqLog) {
	t.Helper()
	seen := &reqLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.add(recorded{
			Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"),
			Accept: r.Header.Get("Accept"), UserAgent: r.Header.Get("User-Agent"),
			IfNoneMatch: r.Header.Get("If-None-Match"), Body: string(b),
		})
		fn(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func reply(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func jsonEq(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("request body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("request body mismatch (-want +got):\n%s", d)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		req      thauth.CheckRequest
		wantBody string
	}{
		{"minimal", thauth.CheckRequest{Subject: "user:alice", Feature: "billing", Action: "read"},
			`{"subject":"user:alice","feature":"billing","action":"read"}`},
		{"all fields", thauth.CheckRequest{Subject: "user:alice", Feature: "billing", Action: "read",
			TenantID: thauth.String("tenant_acme"), Resource: thauth.String("invoices/1"), Explain: true},
			`{"subject":"user:alice","feature":"billing","action":"read","tenant":"tenant_acme","resource":"invoices/1","explain":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, seen := fake(t, reply(200, `{"allowed":true,"reason":"role:billing-admin","decision_id":"d1","explain":{"grants":[]}}`))
			c := thauth.NewClient(srv.URL+"/", testKey, thauth.WithUserAgent("test-agent"))
			d, err := c.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			want := &thauth.Decision{Allowed: true, Reason: "role:billing-admin", DecisionID: "d1", Explain: json.RawMessage(`{"grants":[]}`)}
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			r := seen.at(0)
			if r.Method != "POST" || r.Path != "/v1/check" || r.Auth != "Bearer "+testKey ||
				r.ContentType != "application/json" || r.UserAgent != "test-agent" {
				t.Errorf("request = %+v", r)
			}
			jsonEq(t, r.Body, tt.wantBody)
		})
	}
}

func TestCheckDenyIsNotAnError(t *testing.T) {
	srv, _ := fake(t, reply(200, `{"allowed":false,"reason":"default:deny"}`))
	d, err := thauth.NewClient(srv.URL, testKey).Check(context.Background(),
		thauth.CheckRequest{Subject: "s", Feature: "f", Action: "a"})
	if err != nil || d.Allowed || d.Reason != "default:deny" {
		t.Fatalf("Check = %+v, %v; want a deny without error", d, err)
	}
}

func TestCheckFailClosed(t *testing.T) {
	srv, _ := fake(t, reply(500, `{"allowed":false,"reason":"error"}`))
	d, err := thauth.NewClient(srv.URL, testKey).Check(context.Background(),
		thauth.CheckRequest{Subject: "s", Feature: "f", Action: "a"})
	if d != nil || !errors.Is(err, thauth.ErrServer) {
		t.Fatalf("Check = %+v, %v; want nil and ErrServer", d, err)
	}
	var e *thauth.Error
	if !errors.As(err, &e) || e.StatusCode != 500 || e.Message != "error" {
		t.Errorf("error = %#v", err)
	}
}

func TestCheckBatch(t *testing.T) {
	srv, seen := fake(t, reply(200, `{"results":[{"feature":"billing","action":"read","allowed":true,"reason":"role:viewer"},{"feature":"billing","action":"refund","resource":"invoices/1","allowed":false,"reason":"default:deny"}]}`))
	got, err := thauth.NewClient(srv.URL, testKey).CheckBatch(context.Background(), thauth.BatchRequest{
		Subject:  "user:alice",
		TenantID: thauth.String("t1"),
		Checks: []thauth.BatchItem{
			{Feature: "billing", Action: "read"},
			{Feature: "billing", Action: "refund", Resource: thauth.String("invoices/1")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []thauth.BatchResult{
		{Feature: "billing", Action: "read", Allowed: true, Reason: "role:viewer"},
		{Feature: "billing", Action: "refund", Resource: thauth.String("invoices/1"), Allowed: false, Reason: "default:deny"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	r := seen.at(0)
	if r.Method != "POST" || r.Path != "/v1/check/batch" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	jsonEq(t, r.Body, `{"subject":"user:alice","tenant":"t1","checks":[{"feature":"billing","action":"read"},{"feature":"billing","action":"refund","resource":"invoices/1"}]}`)
}

const configBody = `{"project":{"id":"p1","name":"app"},"version":"v1",
 "features":[{"id":"f1","name":"billing","description":"Billing","actions":[{"id":"a1","action":"read"}]}],
 "roles":[{"id":"r1","name":"viewer","permissions":[{"feature_id":"f1","feature_name":"billing","action_id":"a1","action":"read","resource":"invoices/*"}]}]}`

func TestGetConfigETag(t *testing.T) {
	var calls atomic.Int32
	srv, seen := fake(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, configBody)
	})
	c := thauth.NewClient(srv.URL, testKey)
	want := &thauth.Config{
		Project: thauth.ProjectRef{ID: "p1", Name: "app"}, Version: "v1",
		Features: []thauth.Feature{{ID: "f1", Name: "billing", Description: "Billing", Actions: []thauth.Action{{ID: "a1", Action: "read"}}}},
		Roles: []thauth.Role{{ID: "r1", Name: "viewer", Permissions: []thauth.Permission{
			{FeatureID: "f1", FeatureName: "billing", ActionID: "a1", Action: "read", Resource: "invoices/*"}}}},
	}
	first, err := c.GetConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, first); d != "" {
		t.Errorf("first config (-want +got):\n%s", d)
	}
	first.Roles[0].Name = "changed by caller" // must not leak into the cache
	second, err := c.GetConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, second); d != "" {
		t.Errorf("cached config (-want +got):\n%s", d)
	}
	if seen.at(0).IfNoneMatch != "" || seen.at(1).IfNoneMatch != `"v1"` {
		t.Errorf("If-None-Match sent: %q then %q", seen.at(0).IfNoneMatch, seen.at(1).IfNoneMatch)
	}
	if seen.at(1).Path != "/v1/config" || seen.at(1).Method != "GET" {
		t.Errorf("request %+v", seen.at(1))
	}
	if r := want.RoleByName("viewer"); r == nil || r.ID != "r1" {
		t.Errorf("RoleByName = %+v", r)
	}
	if f := want.FeatureByName("billing"); f == nil || f.ID != "f1" {
		t.Errorf("FeatureByName = %+v", f)
	}
	if want.RoleByName("nope") != nil || want.FeatureByName("nope") != nil {
		t.Error("lookup of an unknown name found something")
	}
}

func TestUpsertSubject(t *testing.T) {
	const resp = `{"created":true,"subject":{"id":"s1","project_id":"p1","subject_id":"user:bob","subject_type":"user","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}}`
	tests := []struct {
		name     string
		req      thauth.UpsertSubjectRequest
		wantBody string
	}{
		{"absent lists stay absent",
			thauth.UpsertSubjectRequest{SubjectID: "user:bob", SubjectType: "user"},
			`{"subject_id":"user:bob","subject_type":"user"}`},
		{"roles and permissions in a tenant",
			thauth.UpsertSubjectRequest{SubjectID: "user:bob", SubjectType: "user", TenantID: thauth.String("t1"),
				RoleIDs: []string{"r1"},
				Permissions: []thauth.UpsertPermission{
					{FeatureID: "f1", Action: "read", Effect: "deny", Resource: thauth.String("prod/*")}}},
			`{"subject_id":"user:bob","subject_type":"user","tenant_id":"t1","role_ids":["r1"],"permissions":[{"feature_id":"f1","action":"read","effect":"deny","resource":"prod/*"}]}`},
		{"replace with nothing clears",
			thauth.UpsertSubjectRequest{SubjectID: "user:bob", SubjectType: "user", ReplaceRoles: true, ReplacePermissions: true},
			`{"subject_id":"user:bob","subject_type":"user","role_ids":[],"permissions":[]}`},
		{"empty non-nil list is sent",
			thauth.UpsertSubjectRequest{SubjectID: "user:bob", SubjectType: "user", RoleIDs: []string{}},
			`{"subject_id":"user:bob","subject_type":"user","role_ids":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, seen := fake(t, reply(200, resp))
			got, err := thauth.NewClient(srv.URL, testKey).UpsertSubject(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			want := &thauth.UpsertSubjectResponse{Created: true, Subject: thauth.Subject{
				ID: "s1", ProjectID: "p1", SubjectID: "user:bob", SubjectType: "user", CreatedAt: ts, UpdatedAt: ts}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("response (-want +got):\n%s", d)
			}
			if r := seen.at(0); r.Method != "POST" || r.Path != "/v1/subjects/upsert" {
				t.Errorf("request %s %s", r.Method, r.Path)
			}
			jsonEq(t, seen.at(0).Body, tt.wantBody)
		})
	}
}

func TestApplyConfig(t *testing.T) {
	const resp = `{"version":"v2","changes":{"created":["feature billing"],"updated":[],"deleted":["role old"]}}`
	tests := []struct {
		name, contentType, wantCT, wantQuery string
		doc                                  string
		dryRun                               bool
	}{
		{"yaml given", thauth.ContentTypeYAML, "application/yaml", "", "version: 1\n", false},
		{"json sniffed dry run", "", "application/json", "dry_run=true", "  {\"version\":1}", true},
		{"yaml sniffed", "", "application/yaml", "", "version: 1\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, seen := fake(t, reply(200, resp))
			got, err := thauth.NewClient(srv.URL, testKey).ApplyConfig(context.Background(), "p 1", []byte(tt.doc), tt.contentType, tt.dryRun)
			if err != nil {
				t.Fatal(err)
			}
			want := &thauth.ApplyResult{Version: "v2", Changes: thauth.Changes{
				Created: []string{"feature billing"}, Updated: []string{}, Deleted: []string{"role old"}}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			if got.Changes.Empty() {
				t.Error("Changes.Empty() = true")
			}
			r := seen.at(0)
			if r.Method != "PUT" || r.Path != "/api/v1/projects/p%201/config" || r.ContentType != tt.wantCT ||
				r.Query != tt.wantQuery || r.Body != tt.doc {
				t.Errorf("request = %+v", r)
			}
		})
	}
}

func TestApplyConfigProblems(t *testing.T) {
	srv, _ := fake(t, reply(400, `{"error":"invalid document","code":"invalid","problems":[{"path":"roles[0].permissions[0].feature","message":"unknown feature \"x\""},{"path":"features[1].name","message":"duplicate"}]}`))
	_, err := thauth.NewClient(srv.URL, testKey).ApplyConfig(context.Background(), "p1", []byte("version: 1"), "", false)
	if !errors.Is(err, thauth.ErrBadRequest) {
		t.Fatalf("err = %v, want ErrBadRequest", err)
	}
	var e *thauth.Error
	if !errors.As(err, &e) {
		t.Fatalf("err %T is not *Error", err)
	}
	want := []thauth.Problem{
		{Path: "roles[0].permissions[0].feature", Message: `unknown feature "x"`},
		{Path: "features[1].name", Message: "duplicate"},
	}
	if d := cmp.Diff(want, e.Problems); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
	if e.Code != "invalid" || e.Message != "invalid document" {
		t.Errorf("code %q message %q", e.Code, e.Message)
	}
	if got := e.Error(); got != "thauth: bad request: invalid document (2 problems)" {
		t.Errorf("Error() = %q", got)
	}
}

func TestExportConfig(t *testing.T) {
	for _, tt := range []struct{ format, accept string }{{"yaml", "application/yaml"}, {"", "application/json"}, {"json", "application/json"}} {
		t.Run("format="+tt.format, func(t *testing.T) {
			srv, seen := fake(t, reply(200, "version: 1\n"))
			got, err := thauth.NewClient(srv.URL, testKey).ExportConfig(context.Background(), "p1", tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "version: 1\n" {
				t.Errorf("document = %q", got)
			}
			if r := seen.at(0); r.Method != "GET" || r.Path != "/api/v1/projects/p1/config" || r.Accept != tt.accept {
				t.Errorf("request = %+v", r)
			}
		})
	}
	if _, err := thauth.NewClient("http://127.0.0.1:1", testKey).ExportConfig(context.Background(), "p1", "xml"); err == nil {
		t.Error("format xml accepted")
	}
}

const keyJSON = `{"id":"k1","name":"ci","prefix":"abcd","scopes":["admin"],"created_at":"2026-01-02T03:04:05Z","last_used_at":null}`

func TestCreateKey(t *testing.T) {
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	srv, seen := fake(t, reply(201, strings.TrimSuffix(keyJSON, "}")+`,"key":"thauth_secret"}`))
	got, err := thauth.NewClient(srv.URL, testKey).CreateKey(context.Background(), "p1",
		thauth.CreateKeyRequest{Name: "ci", Scopes: []string{"admin"}, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	want := &thauth.CreatedKey{Token: "thauth_secret", Key: thauth.APIKey{
		ID: "k1", Name: "ci", Prefix: "abcd", Scopes: []string{"admin"},
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("key (-want +got):\n%s", d)
	}
	r := seen.at(0)
	if r.Method != "POST" || r.Path != "/api/v1/projects/p1/keys" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	jsonEq(t, r.Body, `{"name":"ci","scopes":["admin"],"expires_at":"2027-01-01T00:00:00Z"}`)
}

func TestListKeys(t *testing.T) {
	srv, seen := fake(t, reply(200, `{"keys":[`+keyJSON+`]}`))
	got, err := thauth.NewClient(srv.URL, testKey).ListKeys(context.Background(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "k1" || got[0].Scopes[0] != "admin" {
		t.Errorf("keys = %+v", got)
	}
	if r := seen.at(0); r.Method != "GET" || r.Path != "/api/v1/projects/p1/keys" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
}

func TestRevokeKey(t *testing.T) {
	srv, seen := fake(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if err := thauth.NewClient(srv.URL, testKey).RevokeKey(context.Background(), "p1", "k1"); err != nil {
		t.Fatal(err)
	}
	if r := seen.at(0); r.Method != "DELETE" || r.Path != "/api/v1/projects/p1/keys/k1" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
}

func TestErrorClasses(t *testing.T) {
	all := []error{thauth.ErrUnauthorized, thauth.ErrForbidden, thauth.ErrBadRequest, thauth.ErrNotFound,
		thauth.ErrConflict, thauth.ErrRateLimited, thauth.ErrUnavailable, thauth.ErrServer}
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		header      map[string]string
		want        []error
		wantCode    string
		wantMessage string
		wantRetry   time.Duration
		wantString  string
	}{
		{name: "401 plain text", status: 401, contentType: "text/plain", body: "unauthorized\n",
			want: []error{thauth.ErrUnauthorized}, wantMessage: "unauthorized", wantString: "thauth: unauthorized"},
		{name: "403", status: 403, body: `{"error":"key lacks scope admin","code":"forbidden"}`,
			want: []error{thauth.ErrForbidden}, wantCode: "forbidden", wantMessage: "key lacks scope admin",
			wantString: "thauth: forbidden: key lacks scope admin"},
		{name: "400", status: 400, body: `{"error":"subject: must not be empty"}`,
			want: []error{thauth.ErrBadRequest}, wantMessage: "subject: must not be empty"},
		{name: "413", status: 413, body: `{"error":"request body too large"}`,
			want: []error{thauth.ErrBadRequest}, wantMessage: "request body too large"},
		{name: "415", status: 415, body: `{"error":"content type must be application/json"}`,
			want: []error{thauth.ErrBadRequest}, wantMessage: "content type must be application/json"},
		{name: "404 empty body", status: 404, body: ``,
			want: []error{thauth.ErrNotFound}, wantMessage: "not found"},
		{name: "409", status: 409, body: `{"error":"duplicate"}`,
			want: []error{thauth.ErrConflict}, wantMessage: "duplicate"},
		{name: "429 seconds", status: 429, body: `{"error":"rate limited"}`, header: map[string]string{"Retry-After": "7"},
			want: []error{thauth.ErrRateLimited}, wantMessage: "rate limited", wantRetry: 7 * time.Second},
		{name: "429 http date", status: 429, body: `{"error":"over quota"}`,
			header: map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)},
			want:   []error{thauth.ErrRateLimited}, wantMessage: "over quota", wantRetry: -1},
		{name: "500", status: 500, body: `{"error":"internal error","code":"internal"}`,
			want: []error{thauth.ErrServer}, wantCode: "internal", wantMessage: "internal error"},
		{name: "502 html", status: 502, contentType: "text/html", body: "<html>bad gateway</html>",
			want: []error{thauth.ErrServer}, wantMessage: "bad gateway"},
		{name: "503", status: 503, body: `{"error":"not ready"}`, header: map[string]string{"Retry-After": "2"},
			want: []error{thauth.ErrUnavailable, thauth.ErrServer}, wantMessage: "not ready", wantRetry: 2 * time.Second},
		{name: "418 unclassified", status: 418, body: `{"error":"teapot"}`,
			want: nil, wantMessage: "teapot", wantString: "thauth: unexpected status 418: teapot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
				ct := tt.contentType
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, err := thauth.NewClient(srv.URL, testKey).Check(context.Background(),
				thauth.CheckRequest{Subject: "s", Feature: "f", Action: "a"})
			var e *thauth.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			for _, s := range all {
				want := false
				for _, w := range tt.want {
					want = want || w == s
				}
				if got := errors.Is(err, s); got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", s, got, want)
				}
			}
			if e.StatusCode != tt.status || e.Code != tt.wantCode || e.Message != tt.wantMessage {
				t.Errorf("Error = %+v", e)
			}
			switch {
			case tt.wantRetry == -1:
				if e.RetryAfter < 80*time.Second || e.RetryAfter > 91*time.Second {
					t.Errorf("RetryAfter = %v, want about 90s", e.RetryAfter)
				}
			case e.RetryAfter != tt.wantRetry:
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.wantRetry)
			}
			if tt.wantString != "" && e.Error() != tt.wantString {
				t.Errorf("Error() = %q, want %q", e.Error(), tt.wantString)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the API key", err)
			}
		})
	}
}

func TestTransportErrorMatchesNoClass(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	_, err := thauth.NewClient(url, testKey).Check(context.Background(), thauth.CheckRequest{Subject: "s", Feature: "f", Action: "a"})
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	var e *thauth.Error
	if errors.As(err, &e) || errors.Is(err, thauth.ErrServer) {
		t.Errorf("transport error %v classified as a server answer", err)
	}
}

func TestOptions(t *testing.T) {
	block := make(chan struct{})
	srv, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	defer close(block)
	t.Run("WithTimeout", func(t *testing.T) {
		shared := &http.Client{}
		c := thauth.NewClient(srv.URL, testKey, thauth.WithHTTPClient(shared), thauth.WithTimeout(50*time.Millisecond))
		_, err := c.Check(context.Background(), thauth.CheckRequest{Subject: "s", Feature: "f", Action: "a"})
		if err == nil {
			t.Fatal("no timeout")
		}
		if shared.Timeout != 0 {
			t.Error("WithTimeout modified the caller's http.Client")
		}
	})
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := thauth.NewClient(srv.URL, testKey).Check(ctx, thauth.CheckRequest{Subject: "s", Feature: "f", Action: "a"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
	})
}
