package manage

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/sqlite"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// env is a Service on the real SQLite store with the real engine as its Syncer, and one
// project created by Init.
type env struct {
	ctx     context.Context
	store   *sqlite.Store
	engine  *engine.Engine
	svc     *Service
	clock   *clock
	init    *InitResult
	project string
}

var testStart = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	c := &clock{t: testStart}
	eng := engine.New(st, engine.Options{Now: c.Now})
	e := &env{ctx: ctx, store: st, engine: eng, clock: c}
	e.svc = New(st, eng, Options{Now: c.Now})
	res, err := e.svc.Init(ctx, "Acme", "Shop")
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	e.init, e.project = res, res.Project.ID
	return e
}

// apply applies a YAML document and fails the test on error.
func (e *env) apply(t testing.TB, body string) *ApplyResult {
	t.Helper()
	res, err := e.svc.ApplyConfig(e.ctx, e.project, []byte(body), FormatYAML, false)
	if err != nil {
		t.Fatalf("ApplyConfig: %v %+v", err, problemsOf(err))
	}
	return res
}

func (e *env) revision(t testing.TB) int64 {
	t.Helper()
	p, err := e.store.GetProject(e.ctx, e.project)
	if err != nil {
		t.Fatal(err)
	}
	return p.Revision
}

func (e *env) config(t testing.TB) *thauth.Config {
	t.Helper()
	cfg, err := e.store.LoadConfig(e.ctx, e.project)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (e *env) export(t testing.TB, f Format) string {
	t.Helper()
	out, err := e.svc.ExportConfig(e.ctx, e.project, f)
	if err != nil {
		t.Fatalf("ExportConfig: %v", err)
	}
	return string(out)
}

// check asks the engine: may subject do feature.action (in tenant, on resource)?
func (e *env) check(t testing.TB, subject, feature, action, tenant, resource string) thauth.Decision {
	t.Helper()
	snap := e.engine.Snapshot(e.project)
	if snap == nil {
		t.Fatal("engine has no snapshot of the project")
	}
	return snap.Check(&thauth.CheckRequest{Subject: subject, Feature: feature, Action: action, Tenant: tenant, Resource: resource}, e.clock.Now())
}

func (e *env) grants(t testing.TB, subject string) *thauth.SubjectGrants {
	t.Helper()
	sg, err := e.store.LoadSubjectGrants(e.ctx, e.project, subject)
	if err != nil {
		t.Fatalf("LoadSubjectGrants(%s): %v", subject, err)
	}
	return sg
}

func wantCode(t testing.TB, err error, code thauth.ErrorCode) *thauth.Error {
	t.Helper()
	var te *thauth.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
	return te
}

// failingStore wraps the real store and makes one Data method fail inside transactions,
// to show that a write failing midway leaves nothing behind.
type failingStore struct {
	thauth.Store
	failOn string
}

var errInjected = errors.New("injected failure")

func (s *failingStore) Tx(ctx context.Context, fn func(context.Context, thauth.Data) error) error {
	return s.Store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		return fn(ctx, &failingData{Data: tx, failOn: s.failOn})
	})
}

type failingData struct {
	thauth.Data
	failOn string
}

func (d *failingData) ReplaceConfig(ctx context.Context, projectID string, cfg *thauth.Config) error {
	if d.failOn == "ReplaceConfig" {
		return errInjected
	}
	return d.Data.ReplaceConfig(ctx, projectID, cfg)
}

func (d *failingData) ReplaceOverrides(ctx context.Context, projectID, subjectID string, scope thauth.Scope, os []thauth.Override) error {
	if d.failOn == "ReplaceOverrides" {
		return errInjected
	}
	return d.Data.ReplaceOverrides(ctx, projectID, subjectID, scope, os)
}

func (d *failingData) AppendChanges(ctx context.Context, projectID string, changes []thauth.Change, at time.Time) (int64, error) {
	if d.failOn == "AppendChanges" {
		return 0, errInjected
	}
	return d.Data.AppendChanges(ctx, projectID, changes, at)
}
