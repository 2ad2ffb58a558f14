package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth/cmd/internal/serve"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/sdk/go/thauth"
)

// End-to-end tests: everything goes through run(), as a person at a terminal would, plus the
// Go SDK against the real server on 127.0.0.1:0 with a temporary data directory.

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running server.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// getenvFrom returns a getenv reading only vars (never the real environment).
func getenvFrom(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// cli runs one command and returns its output and exit code.
func cli(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return cliIn(t, vars, "", args...)
}

func cliIn(t *testing.T, vars map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, args, getenvFrom(vars), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// server is a `thauth serve` running in a goroutine of the test.
type server struct {
	url    string
	srv    *serve.Server // the running node (to reload its certificate, look at its sealer)
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan int // receives run's exit code
}

// stop cancels the server's context (like SIGTERM) and returns its exit code.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code // let a second stop (the cleanup) see it too
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not stop; logs:\n%s", s.logs)
		return -1
	}
}

// startServer runs `thauth serve` with args and vars and waits until it listens.
func startServer(t *testing.T, vars map[string]string, args ...string) *server {
	t.Helper()
	started := make(chan *serve.Server, 1)
	ctx, cancel := context.WithCancel(context.Background())
	ctx = context.WithValue(ctx, startHookKey{}, func(srv *serve.Server) { started <- srv })
	s := &server{logs: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	// Servers of parallel tests must not share the default metrics port.
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--metrics-addr") }) && vars["THAUTH_METRICS_ADDR"] == "" {
		args = append(args, "--metrics-addr", "127.0.0.1:0")
	}
	go func() {
		s.done <- run(ctx, append([]string{"serve"}, args...), getenvFrom(vars), strings.NewReader(""), io.Discard, s.logs)
	}()
	select {
	case srv := <-started:
		s.srv, s.url = srv, srv.URL()
	case code := <-s.done:
		cancel()
		t.Fatalf("serve exited with %d before listening; logs:\n%s", code, s.logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve did not listen within 30s; logs:\n%s", s.logs)
	}
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs)
		}
	})
	return s
}

// initResult is the output of `thauth init --json`.
type initResult struct {
	OrganizationID string `json:"organization_id"`
	ProjectID      string `json:"project_id"`
	AdminKey       string `json:"admin_key"`
	DecisionsKey   string `json:"decisions_key"`
}

// initProject runs `thauth init` on the store named by storeArgs (--data-dir DIR or
// --database-url URL).
func initProject(t *testing.T, storeArgs ...string) initResult {
	t.Helper()
	args := append([]string{"init"}, storeArgs...)
	out, errOut, code := cli(t, nil, append(args, "--org", "Acme Inc", "--project", "app", "--json")...)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	var res initResult
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("init --json printed %q: %v", out, err)
	}
	if dec.More() {
		t.Fatalf("init --json printed more than one object: %q", out)
	}
	if res.OrganizationID == "" || res.ProjectID == "" || !strings.HasPrefix(res.AdminKey, "thauth_") ||
		!strings.HasPrefix(res.DecisionsKey, "thauth_") {
		t.Fatalf("init --json = %+v", res)
	}
	return res
}

// waitForProject polls GET /v1/config until the server knows the project (its follow loop
// picks up writes made by other processes), for at most 10 seconds.
func waitForProject(t *testing.T, c *thauth.Client, projectID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cfg, err := c.GetConfig(context.Background())
		if err == nil {
			if cfg.Project.ID != projectID {
				t.Fatalf("GET /v1/config project = %q, want %q", cfg.Project.ID, projectID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not pick up the project within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backend is the store a test's server and commands use, as command-line flags.
type backend struct {
	name string
	args []string // --data-dir DIR, or --database-url URL
}

// backends returns the stores the end-to-end suite runs on: SQLite in a temporary data
// directory, and a fresh PostgreSQL database (migrated with `thauth migrate
// --database-url`; see pgtest for when PostgreSQL is skipped).
func backends() []struct {
	name string
	open func(t *testing.T) backend
} {
	return []struct {
		name string
		open func(t *testing.T) backend
	}{
		{"sqlite", func(t *testing.T) backend {
			return backend{"sqlite", []string{"--data-dir", t.TempDir()}}
		}},
		{"postgres", func(t *testing.T) backend {
			dbURL := pgtest.New(t)
			out, errOut, code := cli(t, nil, "migrate", "--database-url", dbURL)
			if code != 0 || !strings.Contains(out, "migrated from 0") {
				t.Fatalf("migrate --database-url: exit %d, %q %q", code, out, errOut)
			}
			return backend{"postgres", []string{"--database-url", dbURL}}
		}},
	}
}

func TestEndToEnd(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { testEndToEnd(t, b.open(t)) })
	}
}

func testEndToEnd(t *testing.T, b backend) {
	srv := startServer(t, nil, append([]string{"--addr", "127.0.0.1:0", "--sync-interval", "50ms", "--log-level", "warn"}, b.args...)...)

	// init writes to the store while the server runs on it.
	ids := initProject(t, b.args...)
	decisions := thauth.NewClient(srv.url, ids.DecisionsKey)
	waitForProject(t, decisions, ids.ProjectID)

	admin := map[string]string{"THAUTH_URL": srv.url, "THAUTH_KEY": ids.AdminKey, "THAUTH_PROJECT": ids.ProjectID}
	dec := map[string]string{"THAUTH_URL": srv.url, "THAUTH_KEY": ids.DecisionsKey}
	ctx := context.Background()

	t.Run("apply", func(t *testing.T) {
		out, errOut, code := cli(t, admin, "apply", "-f", "../../examples/acme.yaml", "--dry-run")
		if code != 0 || !strings.Contains(out, "dry run, nothing written") || !strings.Contains(out, "+ role billing-admin\n") {
			t.Fatalf("apply --dry-run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if _, err := decisions.Check(ctx, thauth.CheckRequest{Subject: "user:alice", Feature: "billing", Action: "read", TenantID: thauth.String("tenant_acme")}); err != nil {
			t.Fatal(err)
		}
		out, errOut, code = cli(t, admin, "apply", "-f", "../../examples/acme.yaml")
		if code != 0 {
			t.Fatalf("apply: exit %d: %s", code, errOut)
		}
		for _, want := range []string{"+ feature billing\n", "+ role billing-admin\n", "+ subject user:alice\n", "applied "} {
			if !strings.Contains(out, want) {
				t.Errorf("apply output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("check via CLI", func(t *testing.T) {
		out, errOut, code := cli(t, dec, "check", "--subject", "user:alice", "--feature", "billing", "--action", "read", "--tenant", "tenant_acme")
		if code != 0 || out != "allowed (role:billing-admin)\n" {
			t.Errorf("check: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		out, _, code = cli(t, dec, "check", "--subject", "user:alice", "--feature", "billing", "--action", "read")
		if code != 0 || out != "denied (default:deny)\n" {
			t.Errorf("check without tenant: exit %d, stdout %q (a deny is a successful answer: exit 0)", code, out)
		}
		_, _, code = cli(t, dec, "check", "--subject", "user:alice", "--feature", "billing", "--action", "read", "--exit-code")
		if code != exitDenied {
			t.Errorf("check --exit-code on a deny: exit %d, want %d", code, exitDenied)
		}
		out, _, code = cli(t, dec, "check", "--json", "--explain", "--subject", "user:alice", "--feature", "reports",
			"--action", "export", "--tenant", "tenant_acme", "--resource", "customers/42")
		var d thauth.Decision
		if err := json.Unmarshal([]byte(out), &d); err != nil || code != 0 {
			t.Fatalf("check --json: exit %d, %q: %v", code, out, err)
		}
		if d.Allowed || d.Reason != "override:deny" || len(d.Explain) == 0 {
			t.Errorf("check --json = %+v", d)
		}
	})

	t.Run("check via SDK", func(t *testing.T) {
		tests := []struct {
			subject, feature, action, tenant, resource string
			allowed                                    bool
			reason                                     string
		}{
			{"user:alice", "billing", "read", "tenant_acme", "", true, "role:billing-admin"},
			{"user:alice", "billing", "read", "", "", false, "default:deny"},
			{"user:alice", "billing", "read", "tenant_globex", "", false, "default:deny"},
			{"user:alice", "billing", "refund", "tenant_acme", "invoices/2026-001", true, "role:billing-admin"},
			{"user:alice", "billing", "refund", "tenant_acme", "", false, "default:deny"},
			{"user:alice", "reports", "read", "tenant_acme", "", true, "role:analyst"},
			{"user:alice", "reports", "export", "tenant_acme", "summary/q4", true, "role:analyst"},
			{"user:alice", "reports", "export", "tenant_acme", "customers/42", false, "override:deny"},
			{"user:alice", "reports", "export", "tenant_acme", "*", false, "override:deny"},
			{"user:bob", "projects", "write", "tenant_globex", "dev/api", true, "role:developer"},
			{"user:bob", "projects", "write", "tenant_globex", "prod/api", false, "default:deny"},
			{"user:carol", "projects", "delete", "tenant_globex", "dev/x", true, "role:workspace-admin"},
			{"user:carol", "projects", "delete", "tenant_globex", "prod/db", false, "override:deny"},
			{"service:invoicer", "billing", "write", "tenant_any", "", true, "role:billing-admin"},
			{"service:invoicer", "billing", "refund", "tenant_any", "invoices/1", false, "override:deny"},
			{"user:nobody", "billing", "read", "tenant_acme", "", false, "default:deny"},
			{"user:alice", "nope", "read", "tenant_acme", "", false, "default:deny"},
		}
		for _, tt := range tests {
			req := thauth.CheckRequest{Subject: tt.subject, Feature: tt.feature, Action: tt.action}
			if tt.tenant != "" {
				req.TenantID = thauth.String(tt.tenant)
			}
			if tt.resource != "" {
				req.Resource = thauth.String(tt.resource)
			}
			d, err := decisions.Check(ctx, req)
			if err != nil {
				t.Errorf("%+v: %v", tt, err)
				continue
			}
			if d.Allowed != tt.allowed || d.Reason != tt.reason {
				t.Errorf("%s %s.%s tenant=%q resource=%q = %v %q, want %v %q",
					tt.subject, tt.feature, tt.action, tt.tenant, tt.resource, d.Allowed, d.Reason, tt.allowed, tt.reason)
			}
		}
		res, err := decisions.CheckBatch(ctx, thauth.BatchRequest{Subject: "user:alice", TenantID: thauth.String("tenant_acme"),
			Checks: []thauth.BatchItem{{Feature: "billing", Action: "read"}, {Feature: "users", Action: "remove"}}})
		if err != nil {
			t.Fatal(err)
		}
		want := []thauth.BatchResult{
			{Feature: "billing", Action: "read", Allowed: true, Reason: "role:billing-admin"},
			{Feature: "users", Action: "remove", Allowed: false, Reason: "default:deny"},
		}
		if d := cmp.Diff(want, res); d != "" {
			t.Errorf("batch (-want +got):\n%s", d)
		}
	})

	t.Run("bad input is a 400", func(t *testing.T) {
		_, err := decisions.Check(ctx, thauth.CheckRequest{Subject: "user:alice", Feature: "billing", Action: ""})
		if !errors.Is(err, thauth.ErrBadRequest) {
			t.Errorf("empty action: err = %v, want ErrBadRequest", err)
		}
	})

	t.Run("upsert changes decisions", func(t *testing.T) {
		cfg, err := decisions.GetConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		billingAdmin, billing := cfg.RoleByName("billing-admin"), cfg.FeatureByName("billing")
		if billingAdmin == nil || billing == nil {
			t.Fatalf("config lacks billing-admin or billing: %+v", cfg)
		}
		check := func(subject string) string {
			t.Helper()
			d, err := decisions.Check(ctx, thauth.CheckRequest{Subject: subject, Feature: "billing", Action: "write", TenantID: thauth.String("tenant_acme")})
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(d.Allowed, " ", d.Reason)
		}
		if got := check("user:dave"); got != "false default:deny" {
			t.Fatalf("before upsert: %s", got)
		}
		res, err := decisions.UpsertSubject(ctx, thauth.UpsertSubjectRequest{
			SubjectID: "user:dave", SubjectType: "user", TenantID: thauth.String("tenant_acme"), RoleIDs: []string{billingAdmin.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Created || res.Subject.SubjectID != "user:dave" || res.Subject.ProjectID != ids.ProjectID {
			t.Errorf("upsert = %+v", res)
		}
		if got := check("user:dave"); got != "true role:billing-admin" {
			t.Errorf("after upsert: %s", got)
		}
		// A deny override in the same scope wins; the role stays (role_ids absent).
		_, err = decisions.UpsertSubject(ctx, thauth.UpsertSubjectRequest{
			SubjectID: "user:dave", SubjectType: "user", TenantID: thauth.String("tenant_acme"),
			Permissions: []thauth.UpsertPermission{{FeatureID: billing.ID, Action: "write", Effect: "deny"}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := check("user:dave"); got != "false override:deny" {
			t.Errorf("after deny override: %s", got)
		}
		// Clearing both lists leaves dave with nothing in tenant_acme.
		res, err = decisions.UpsertSubject(ctx, thauth.UpsertSubjectRequest{
			SubjectID: "user:dave", SubjectType: "user", TenantID: thauth.String("tenant_acme"),
			ReplaceRoles: true, ReplacePermissions: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Created {
			t.Error("second upsert reported created")
		}
		if got := check("user:dave"); got != "false default:deny" {
			t.Errorf("after clearing: %s", got)
		}
		_, err = decisions.UpsertSubject(ctx, thauth.UpsertSubjectRequest{
			SubjectID: "user:dave", SubjectType: "user", RoleIDs: []string{"00000000-0000-0000-0000-000000000000"}})
		if !errors.Is(err, thauth.ErrBadRequest) {
			t.Errorf("unknown role id: err = %v, want ErrBadRequest", err)
		}
	})

	t.Run("freshness token of a write", func(t *testing.T) {
		res, err := decisions.UpsertSubject(ctx, thauth.UpsertSubjectRequest{SubjectID: "user:erin", SubjectType: "user"})
		if err != nil || !strings.HasPrefix(res.Revision, "r1.") {
			t.Fatalf("upsert: %+v, %v", res, err)
		}
		d, err := decisions.Check(ctx, thauth.CheckRequest{Subject: "user:erin", Feature: "billing", Action: "read", AtLeastAsFresh: res.Revision})
		if err != nil || d.Allowed {
			t.Errorf("check with the token: %+v, %v", d, err)
		}
		_, err = decisions.Check(ctx, thauth.CheckRequest{Subject: "user:erin", Feature: "billing", Action: "read", AtLeastAsFresh: "r1.nope"})
		var se *thauth.Error
		if !errors.As(err, &se) || se.StatusCode != 400 || !strings.Contains(se.Message, "at_least_as_fresh") {
			t.Errorf("check with a bad token: %v", err)
		}
	})

	t.Run("export then apply changes nothing", func(t *testing.T) {
		for _, format := range []string{"yaml", "json"} {
			out, errOut, code := cli(t, admin, "export", "--format", format)
			if code != 0 {
				t.Fatalf("export %s: exit %d: %s", format, code, errOut)
			}
			if !strings.Contains(out, "user:dave") || !strings.Contains(out, "billing-admin") {
				t.Errorf("export %s lacks expected entries:\n%s", format, out)
			}
			file := filepath.Join(t.TempDir(), "exported."+format)
			if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code = cli(t, admin, "apply", "-f", file)
			if code != 0 || !strings.HasPrefix(out, "no changes; version ") {
				t.Errorf("re-apply of the %s export: exit %d, stdout %q, stderr %q", format, code, out, errOut)
			}
		}
		// The same through standard input, as JSON for scripts.
		doc, _, _ := cli(t, admin, "export", "--format", "json")
		out, _, code := cliIn(t, admin, doc, "apply", "-f", "-", "--json")
		var res struct {
			thauth.ApplyResult
			DryRun bool `json:"dry_run"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.Changes.Empty() || res.Version == "" {
			t.Errorf("apply -f - --json: exit %d, %q (%v)", code, out, err)
		}
	})

	t.Run("invalid document lists every problem", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "bad.yaml")
		doc := "version: 1\nfeatures:\n  - name: billing\n    actions: [read, read]\nroles:\n  - name: r\n    permissions: [{feature: nope, action: read}]\n"
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := cli(t, admin, "apply", "-f", file)
		if code != exitError || out != "" {
			t.Errorf("apply of a bad document: exit %d, stdout %q", code, out)
		}
		for _, want := range []string{"error: ", "\n  features[0].actions[1]: ", "\n  roles[0].permissions[0].feature: "} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errOut)
			}
		}
	})

	t.Run("project discovery", func(t *testing.T) {
		// An admin key finds its own project through GET /api/v1/projects.
		noProject := map[string]string{"THAUTH_URL": srv.url, "THAUTH_KEY": ids.AdminKey}
		out, errOut, code := cli(t, noProject, "keys", "list")
		if code != 0 || !strings.Contains(out, "decisions") {
			t.Errorf("keys list with an admin key and no project: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		// A key that can read /v1/config finds its project itself (and then lacks admin).
		_, errOut, code = cli(t, dec, "keys", "list")
		if code != exitError || !strings.Contains(errOut, "forbidden") {
			t.Errorf("keys list with a decisions key: exit %d, stderr %q", code, errOut)
		}
		out, _, code = cli(t, noProject, "keys", "list", "--project", ids.ProjectID)
		if code != 0 || !strings.Contains(out, "decisions") {
			t.Errorf("keys list --project: exit %d, %q", code, out)
		}
	})

	t.Run("keys", func(t *testing.T) {
		out, errOut, code := cli(t, admin, "keys", "create", "--name", "ci", "--scope", "decisions:read", "--scope", "subjects:write", "--expires-at", "720h", "--json")
		if code != 0 {
			t.Fatalf("keys create: exit %d: %s", code, errOut)
		}
		var created struct {
			ID, Name, Token string
			Scopes          []string
			ExpiresAt       *time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Token, "thauth_") ||
			created.ExpiresAt == nil || len(created.Scopes) != 2 {
			t.Fatalf("keys create --json = %q (%v)", out, err)
		}
		ci := thauth.NewClient(srv.url, created.Token)
		if d, err := ci.Check(ctx, thauth.CheckRequest{Subject: "user:alice", Feature: "billing", Action: "read", TenantID: thauth.String("tenant_acme")}); err != nil || !d.Allowed {
			t.Errorf("check with the new key: %+v, %v", d, err)
		}
		_, errOut, code = cli(t, admin, "keys", "create", "--name", "x", "--scope", "bogus")
		if code != exitError || !strings.Contains(errOut, "bogus") {
			t.Errorf("keys create with a bad scope: exit %d, %q", code, errOut)
		}

		out, _, code = cli(t, admin, "keys", "list", "--json")
		var keys []thauth.APIKey
		if err := json.Unmarshal([]byte(out), &keys); err != nil || code != 0 {
			t.Fatalf("keys list --json: exit %d, %q (%v)", code, out, err)
		}
		byName := map[string]thauth.APIKey{}
		for _, k := range keys {
			byName[k.Name] = k
		}
		for _, n := range []string{"admin", "decisions", "ci"} {
			if _, ok := byName[n]; !ok {
				t.Errorf("keys list lacks %q: %+v", n, keys)
			}
		}
		out, _, _ = cli(t, admin, "keys", "list")
		if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, byName["ci"].ID) {
			t.Errorf("keys list:\n%s", out)
		}

		// Revoking the decisions key takes effect on the next request.
		out, errOut, code = cli(t, admin, "keys", "revoke", byName["decisions"].ID)
		if code != 0 || !strings.Contains(out, "revoked") {
			t.Fatalf("keys revoke: exit %d, %q %q", code, out, errOut)
		}
		_, err := decisions.Check(ctx, thauth.CheckRequest{Subject: "user:alice", Feature: "billing", Action: "read"})
		if !errors.Is(err, thauth.ErrUnauthorized) {
			t.Errorf("check with the revoked key: err = %v, want ErrUnauthorized", err)
		}
		out, errOut, code = cli(t, dec, "check", "--subject", "user:alice", "--feature", "billing", "--action", "read")
		if code != exitError || out != "" || !strings.Contains(errOut, "error: unauthorized: check THAUTH_KEY") {
			t.Errorf("CLI check with the revoked key: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		_, _, code = cli(t, admin, "keys", "revoke", "00000000-0000-0000-0000-000000000000")
		if code != exitError {
			t.Errorf("revoking an unknown key: exit %d", code)
		}
	})
}

func TestGracefulShutdown(t *testing.T) {
	dataDir := t.TempDir()
	// The data directory comes from the environment; the flag --addr wins over a broken
	// THAUTH_ADDR (only the effective value is validated).
	vars := map[string]string{"THAUTH_DATA_DIR": dataDir, "THAUTH_ADDR": "not an address", "THAUTH_SYNC_INTERVAL": "50ms"}
	srv := startServer(t, vars, "--addr", "127.0.0.1:0", "--log-format", "json")
	if _, err := os.Stat(filepath.Join(dataDir, "thauth.db")); err != nil {
		t.Fatalf("THAUTH_DATA_DIR not used: %v", err)
	}
	ids := initProject(t, "--data-dir", dataDir)
	waitForProject(t, thauth.NewClient(srv.url, ids.DecisionsKey), ids.ProjectID)

	// Start a request whose body arrives slowly, so that it is in flight during shutdown.
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", srv.url+"/v1/check", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ids.DecisionsKey)
	req.Header.Set("Content-Type", "application/json")
	type result struct {
		status int
		body   string
		err    error
	}
	results := make(chan result, 1)
	dialed := make(chan struct{})
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			close(dialed)
			return c, err
		},
	}}
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			results <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		results <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	if _, err := io.WriteString(pw, `{"subject": "user:alice", `); err != nil {
		t.Fatal(err)
	}
	<-dialed
	time.Sleep(100 * time.Millisecond) // let the server accept the connection and read the headers

	srv.cancel() // like SIGTERM
	addr := strings.TrimPrefix(srv.url, "http://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // no longer accepting
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepts connections 10s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case code := <-srv.done:
		srv.done <- code
		t.Fatalf("server exited (%d) before the in-flight request finished", code)
	default:
	}
	if _, err := io.WriteString(pw, `"feature": "billing", "action": "read"}`); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-results
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"allowed":false`) {
		t.Errorf("in-flight request: status %d, body %q, err %v", r.status, r.body, r.err)
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exit code = %d, want 0", code)
	}
	// Logs are JSON (--log-format json) and name the listening address.
	var sawListening bool
	for _, line := range strings.Split(strings.TrimSpace(srv.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		sawListening = sawListening || (rec["msg"] == "listening" && rec["addr"] == addr)
	}
	if !sawListening {
		t.Errorf("no listening line with addr=%s in logs:\n%s", addr, srv.logs)
	}
	if strings.Contains(srv.logs.String(), ids.DecisionsKey) {
		t.Error("logs contain an API key")
	}

	// The key's last use, kept in memory while serving, was written at shutdown.
	store, err := sqlite.Open(context.Background(), dataDir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	keys, err := store.ListAPIKeys(context.Background(), ids.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Name == "decisions" && k.LastUsedAt == nil {
			t.Error("the decisions key's last use was not saved at shutdown")
		}
	}
}

func TestServeConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want func(c *serveConfig)
	}{
		{"defaults", nil, nil, func(c *serveConfig) {}},
		{"environment over default",
			nil,
			map[string]string{"THAUTH_ADDR": "127.0.0.1:9000", "THAUTH_DATA_DIR": "/var/lib/thauth", "THAUTH_LOG_FORMAT": "json",
				"THAUTH_LOG_LEVEL": "debug", "THAUTH_SYNC_INTERVAL": "2s", "THAUTH_SHUTDOWN_TIMEOUT": "3s"},
			func(c *serveConfig) {
				c.Addr, c.DataDir, c.LogFormat, c.LogLevel = "127.0.0.1:9000", "/var/lib/thauth", "json", slog.LevelDebug
				c.SyncInterval, c.ShutdownTimeout = 2*time.Second, 3*time.Second
			}},
		{"flag over environment",
			[]string{"--addr", "127.0.0.1:7000", "-data-dir=/tmp/x", "--log-level", "error", "--sync-interval", "1s"},
			map[string]string{"THAUTH_ADDR": "127.0.0.1:9000", "THAUTH_DATA_DIR": "/var/lib/thauth", "THAUTH_LOG_LEVEL": "debug",
				"THAUTH_SYNC_INTERVAL": "2s", "THAUTH_LOG_FORMAT": "json"},
			func(c *serveConfig) {
				c.Addr, c.DataDir, c.LogLevel, c.SyncInterval, c.LogFormat = "127.0.0.1:7000", "/tmp/x", slog.LevelError, time.Second, "json"
			}},
		{"empty environment variable means unset",
			nil, map[string]string{"THAUTH_ADDR": ""}, func(c *serveConfig) {}},
		{"PostgreSQL from the environment",
			nil,
			map[string]string{"THAUTH_DATABASE_URL": "postgres://u:p@db/thauth", "THAUTH_DB_MAX_CONNS": "7",
				"THAUTH_DB_STATEMENT_TIMEOUT": "2s", "THAUTH_AUTO_MIGRATE": "true", "THAUTH_FRESHNESS_WAIT": "750ms"},
			func(c *serveConfig) {
				c.DatabaseURL, c.DBMaxConns, c.DBStatementTimeout, c.AutoMigrate = "postgres://u:p@db/thauth", 7, 2*time.Second, true
				c.FreshnessWait = 750 * time.Millisecond
			}},
		{"PostgreSQL flags over environment",
			[]string{"--database-url", "postgres://a@b/c", "--db-max-conns", "3", "--db-statement-timeout", "-1s", "--auto-migrate", "--freshness-wait", "0s"},
			map[string]string{"THAUTH_DATABASE_URL": "postgres://u:p@db/thauth", "THAUTH_DB_MAX_CONNS": "7", "THAUTH_AUTO_MIGRATE": "false"},
			func(c *serveConfig) {
				c.DatabaseURL, c.DBMaxConns, c.DBStatementTimeout, c.AutoMigrate = "postgres://a@b/c", 3, -time.Second, true
				c.FreshnessWait = 0
			}},
		{"--auto-migrate=false over the environment",
			[]string{"--auto-migrate=false"}, map[string]string{"THAUTH_AUTO_MIGRATE": "1"}, func(c *serveConfig) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			e := &env{getenv: getenvFrom(tt.vars), stdout: io.Discard, stderr: &stderr}
			got, code, done := parseServeConfig(e, tt.args)
			if done {
				t.Fatalf("parseServeConfig: exit %d: %s", code, stderr.String())
			}
			want := defaultServeConfig()
			tt.want(&want)
			if d := cmp.Diff(want, got, cmp.Comparer(func(a, b seal.MasterKeys) bool { return slices.Equal(a.IDs(), b.IDs()) })); d != "" {
				t.Errorf("config (-want +got):\n%s", d)
			}
		})
	}
	if d := defaultServeConfig(); d.Addr != "127.0.0.1:8080" || d.DataDir != "./thauth-data" || d.LogFormat != "text" ||
		d.LogLevel != slog.LevelInfo || d.SyncInterval != 500*time.Millisecond {
		t.Errorf("defaults = %+v", d)
	}
}

func TestServeConfigReportsEveryProblem(t *testing.T) {
	vars := map[string]string{"THAUTH_SYNC_INTERVAL": "soon", "THAUTH_LOG_LEVEL": "loud", "THAUTH_DATA_DIR": "/ignored"}
	out, errOut, code := cli(t, vars, "serve", "--addr", "localhost", "--log-format", "xml", "--data-dir", " ", "--shutdown-timeout", "-1s")
	if code != exitUsage || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	wantLines := []string{
		"thauth serve: invalid configuration:",
		"  --log-format: \"xml\" is not a log format (text or json)",
		"  THAUTH_LOG_LEVEL: \"loud\" is not a log level (debug, info, warn or error)",
		"  THAUTH_SYNC_INTERVAL: \"soon\" is not a duration (for example 500ms, 2s, 1m)",
		"  --addr: must be host:port (for example 127.0.0.1:8080): missing port in address",
		"  --data-dir: must not be empty",
		"  --shutdown-timeout: must be between 0s and 1h0m0s, got -1s",
	}
	if d := cmp.Diff(wantLines, strings.Split(strings.TrimSpace(errOut), "\n")); d != "" {
		t.Errorf("stderr (-want +got):\n%s", d)
	}

	// PostgreSQL settings; the URL (with its password) is never echoed.
	vars = map[string]string{"THAUTH_DB_MAX_CONNS": "many", "THAUTH_AUTO_MIGRATE": "perhaps"}
	_, errOut, code = cli(t, vars, "serve", "--database-url", "postgres://u:hunter2secret@db/x", "--data-dir", "",
		"--db-statement-timeout", "48h", "--freshness-wait", "2m")
	wantLines = []string{
		"thauth serve: invalid configuration:",
		"  THAUTH_DB_MAX_CONNS: \"many\" is not a whole number",
		"  THAUTH_AUTO_MIGRATE: \"perhaps\" is not a boolean (true or false)",
		"  --db-statement-timeout: must be at most 24h, got 48h0m0s",
		"  --freshness-wait: must be between 0s and 1m0s, got 2m0s",
	}
	if d := cmp.Diff(wantLines, strings.Split(strings.TrimSpace(errOut), "\n")); code != exitUsage || d != "" {
		t.Errorf("exit %d, stderr (-want +got):\n%s", code, d)
	}
	if strings.Contains(errOut, "hunter2") {
		t.Errorf("the database password was echoed: %s", errOut)
	}

	_, errOut, code = cli(t, nil, "serve", "--no-such-flag")
	if code != exitUsage || !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("unknown flag: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, nil, "serve", "extra")
	if code != exitUsage || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("positional argument: exit %d, %q", code, errOut)
	}
}

// TestPostgresCommands: serve refuses a database whose schema is behind (and says what to
// run), migrate and init work with --database-url and THAUTH_DATABASE_URL, --auto-migrate
// migrates, and the URL's password never appears in any output or log.
func TestPostgresCommands(t *testing.T) {
	u, err := url.Parse(pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "e2e-s3cret-pw" // the test server trusts local connections: any password works
	u.User = url.UserPassword(u.User.Username(), secret)
	dbURL := u.String()
	noSecret := func(what, text string) {
		t.Helper()
		if strings.Contains(text, secret) {
			t.Errorf("%s shows the database password:\n%s", what, text)
		}
	}

	// serve and init refuse an unmigrated database, saying what to run.
	out, errOut, code := cli(t, nil, "serve", "--addr", "127.0.0.1:0", "--database-url", dbURL)
	if code != exitError || !strings.Contains(errOut, "database schema is at version 0, this binary needs") ||
		!strings.Contains(errOut, "thauth migrate --database-url") {
		t.Errorf("serve on an unmigrated database: exit %d, stderr:\n%s", code, errOut)
	}
	noSecret("serve", out+errOut)
	_, errOut, code = cli(t, map[string]string{"THAUTH_DATABASE_URL": dbURL}, "init", "--org", "Acme", "--project", "app")
	if code != exitError || !strings.Contains(errOut, "thauth migrate --database-url") {
		t.Errorf("init on an unmigrated database: exit %d, %q", code, errOut)
	}
	noSecret("init", errOut)

	// migrate through the environment variable; again: up to date.
	vars := map[string]string{"THAUTH_DATABASE_URL": dbURL}
	out, errOut, code = cli(t, vars, "migrate")
	if code != 0 || !strings.Contains(out, "migrated from 0") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, errOut)
	}
	out, _, code = cli(t, nil, "migrate", "--database-url", dbURL)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Errorf("second migrate: exit %d, %q", code, out)
	}
	noSecret("migrate", out)

	srv := startServer(t, vars, "--addr", "127.0.0.1:0", "--log-level", "debug", "--sync-interval", "1h")
	ids := initProject(t, "--database-url", dbURL)
	// Polling is off (1h): the new project arrives through the change notification.
	c := thauth.NewClient(srv.url, ids.DecisionsKey)
	waitForProject(t, c, ids.ProjectID)
	res, err := c.UpsertSubject(context.Background(), thauth.UpsertSubjectRequest{SubjectID: "user:a", SubjectType: "user"})
	if err != nil || res.Revision == "" {
		t.Fatalf("upsert: %+v, %v", res, err)
	}
	if _, err := c.Check(context.Background(), thauth.CheckRequest{Subject: "user:a", Feature: "f", Action: "a", AtLeastAsFresh: res.Revision}); err != nil {
		t.Errorf("check with the upsert's token: %v", err)
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exit %d", code)
	}
	noSecret("the server log", srv.logs.String())
	if !strings.Contains(srv.logs.String(), "store=postgresql") {
		t.Errorf("the log does not say which store is used:\n%s", srv.logs)
	}

	// --auto-migrate migrates a fresh database at start-up.
	fresh := startServer(t, map[string]string{"THAUTH_DATABASE_URL": pgtest.New(t)}, "--addr", "127.0.0.1:0", "--auto-migrate")
	if resp, err := http.Get(fresh.url + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("readyz of an auto-migrated node: %v %v", resp, err)
	}

	// A database that cannot be reached: a clear error, without the password.
	_, errOut, code = cli(t, nil, "migrate", "--database-url", "postgres://thauth:"+secret+"@127.0.0.1:1/thauth?connect_timeout=2")
	if code != exitError || !strings.Contains(errOut, "unavailable") {
		t.Errorf("migrate on an unreachable database: exit %d, %q", code, errOut)
	}
	noSecret("migrate on an unreachable database", errOut)
	_, errOut, code = cli(t, nil, "migrate", "--database-url", "postgres://thauth:"+secret+"@[bad")
	if code != exitError || !strings.Contains(errOut, "invalid database URL") {
		t.Errorf("migrate with a malformed URL: exit %d, %q", code, errOut)
	}
	noSecret("migrate with a malformed URL", errOut)
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"help"}, {"-h"}, {"serve", "-h"}, {"init", "--help"}, {"migrate", "-h"}, {"apply", "-h"}, {"export", "-h"},
		{"check", "-h"}, {"keys", "-h"}, {"keys", "create", "-h"}, {"keys", "list", "-h"}, {"keys", "revoke", "-h"},
		{"version", "-h"}, {"help", "check"},
		{"dev-cert", "-h"}, {"keys", "generate", "-h"}, {"keys", "rotate", "-h"}, {"backup", "-h"},
		{"backup", "verify", "-h"}, {"backup", "keygen", "-h"}, {"restore", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, errOut, code := cli(t, nil, args...)
			if code != 0 || !strings.Contains(out, "Usage: thauth") || errOut != "" {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
	out, _, _ := cli(t, nil, "check", "-h")
	if !strings.Contains(out, "exit status is 0 for an answer, allowed or denied") || !strings.Contains(out, "[$THAUTH_KEY]") {
		t.Errorf("check help does not explain exit codes and THAUTH_KEY:\n%s", out)
	}
	out, _, _ = cli(t, nil, "serve", "-h")
	for _, want := range []string{"--addr", "[$THAUTH_ADDR]", "(default 127.0.0.1:8080)", "--sync-interval", "(default 500ms)", "[$THAUTH_LOG_FORMAT]"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve help lacks %q:\n%s", want, out)
		}
	}
	for _, args := range [][]string{nil, {"frobnicate"}, {"keys"}, {"keys", "frob"}} {
		_, errOut, code := cli(t, nil, args...)
		if code != exitUsage || !strings.Contains(errOut, "Usage: thauth") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, code := cli(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "thauth dev (go1.") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestMigrateAndInitWithoutServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	out, errOut, code := cli(t, map[string]string{"THAUTH_DATA_DIR": dir}, "migrate")
	if code != 0 || !strings.HasPrefix(out, "schema version ") || !strings.Contains(out, "migrated from 0") {
		t.Fatalf("migrate: exit %d, %q %q", code, out, errOut)
	}
	out, _, code = cli(t, nil, "migrate", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Errorf("second migrate: exit %d, %q", code, out)
	}
	out, errOut, code = cli(t, nil, "init", "--data-dir", dir, "--org", "Acme", "--project", "app")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Organization  Acme", "Project       app", "thauth_", "export THAUTH_KEY=thauth_", "export THAUTH_PROJECT="} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	_, errOut, code = cli(t, nil, "init", "--data-dir", dir)
	if code != exitUsage || !strings.Contains(errOut, "missing --org and --project") {
		t.Errorf("init without names: exit %d, %q", code, errOut)
	}
}

func TestClientErrors(t *testing.T) {
	// Nothing listens on port 1 of the loopback address.
	down := map[string]string{"THAUTH_URL": "http://127.0.0.1:1", "THAUTH_KEY": "thauth_x"}
	_, errOut, code := cli(t, down, "check", "--subject", "s", "--feature", "f", "--action", "a")
	if code != exitError || !strings.Contains(errOut, "error: cannot reach the server at http://127.0.0.1:1") {
		t.Errorf("unreachable server: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, map[string]string{"THAUTH_URL": "http://127.0.0.1:1"}, "check", "--subject", "s", "--feature", "f", "--action", "a")
	if code != exitError || !strings.Contains(errOut, "no API key: set THAUTH_KEY") {
		t.Errorf("no key: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, map[string]string{"THAUTH_URL": "127.0.0.1:8080", "THAUTH_KEY": "k"}, "check", "--subject", "s", "--feature", "f", "--action", "a")
	if code != exitError || !strings.Contains(errOut, "THAUTH_URL") {
		t.Errorf("bad URL: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, down, "check", "--subject", "s")
	if code != exitUsage || !strings.Contains(errOut, "missing --feature, --action") {
		t.Errorf("missing flags: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, down, "apply")
	if code != exitUsage || !strings.Contains(errOut, "missing -f FILE") {
		t.Errorf("apply without -f: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, down, "apply", "-f", "/does/not/exist.yaml")
	if code != exitError || !strings.Contains(errOut, "reading the document") {
		t.Errorf("apply of a missing file: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, down, "keys", "create", "--name", "x", "--scope", "admin", "--expires-at", "yesterday")
	if code != exitUsage || !strings.Contains(errOut, "--expires-at") {
		t.Errorf("bad --expires-at: exit %d, %q", code, errOut)
	}
	_, errOut, code = cli(t, down, "keys", "revoke")
	if code != exitUsage || !strings.Contains(errOut, "missing argument") {
		t.Errorf("keys revoke without id: exit %d, %q", code, errOut)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2027-01-01T00:00:00Z":      time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		"2027-01-01T02:00:00+02:00": time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		"24h":                       now.Add(24 * time.Hour),
		"90d":                       now.Add(90 * 24 * time.Hour),
	} {
		got, err := parseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1h", "0d"} {
		if _, err := parseExpiry(in, now); err == nil {
			t.Errorf("parseExpiry(%q) succeeded", in)
		}
	}
}
