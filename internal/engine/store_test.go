package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/sqlite"
)

// storeFixture is a real SQLite store with helpers that write the way internal/manage does:
// one transaction per write, ending with AppendChanges.
type storeFixture struct {
	t   *testing.T
	ctx context.Context
	st  *sqlite.Store
	org thauth.Organization
	now time.Time
}

func newStoreFixture(t *testing.T) *storeFixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &storeFixture{t: t, ctx: ctx, st: st, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	f.org = thauth.Organization{ID: newID(), Name: "acme", CreatedAt: f.now}
	if err := st.CreateOrganization(ctx, &f.org); err != nil {
		t.Fatal(err)
	}
	return f
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func (f *storeFixture) tx(changes []thauth.Change, projectID string, fn func(tx thauth.Data) error) {
	f.t.Helper()
	err := f.st.Tx(f.ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.AppendChanges(ctx, projectID, changes, f.now)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *storeFixture) createProject(name string) thauth.Project {
	f.t.Helper()
	p := thauth.Project{ID: newID(), Name: name, CreatedAt: f.now}
	f.tx([]thauth.Change{{Kind: thauth.ChangeProject}}, p.ID, func(tx thauth.Data) error {
		return tx.CreateProject(f.ctx, f.org.ID, &p)
	})
	return p
}

// testModel is a small configuration with fixed ids: features docs (read, write) and billing
// (read), roles editor (docs read+write) and viewer (docs read).
type testModel struct {
	docs, docsRead, docsWrite, billing, billingRead string
	editor, viewer                                  string
}

func newTestModel() testModel {
	return testModel{docs: newID(), docsRead: newID(), docsWrite: newID(), billing: newID(), billingRead: newID(), editor: newID(), viewer: newID()}
}

func (m testModel) config(withEditor bool) *thauth.Config {
	cfg := &thauth.Config{
		Features: []thauth.Feature{
			{ID: m.docs, Name: "docs", Actions: []thauth.Action{{ID: m.docsRead, Name: "read"}, {ID: m.docsWrite, Name: "write"}}},
			{ID: m.billing, Name: "billing", Actions: []thauth.Action{{ID: m.billingRead, Name: "read"}}},
		},
		Roles: []thauth.Role{
			{ID: m.viewer, Name: "viewer", Permissions: []thauth.Permission{{FeatureID: m.docs, ActionID: m.docsRead}}},
		},
	}
	if withEditor {
		cfg.Roles = append(cfg.Roles, thauth.Role{ID: m.editor, Name: "editor", Permissions: []thauth.Permission{
			{FeatureID: m.docs, ActionID: m.docsRead}, {FeatureID: m.docs, ActionID: m.docsWrite},
		}})
	}
	return cfg
}

func (f *storeFixture) applyConfig(projectID string, cfg *thauth.Config) {
	f.t.Helper()
	f.tx([]thauth.Change{{Kind: thauth.ChangeConfig}}, projectID, func(tx thauth.Data) error {
		return tx.ReplaceConfig(f.ctx, projectID, cfg)
	})
}

// setSubject creates or updates a subject and replaces all its grants.
func (f *storeFixture) setSubject(projectID, subjectID string, as []thauth.Assignment, os []thauth.Override) {
	f.t.Helper()
	f.tx([]thauth.Change{{Kind: thauth.ChangeSubject, Ref: subjectID}}, projectID, func(tx thauth.Data) error {
		s := thauth.Subject{SubjectID: subjectID, SubjectType: "user"}
		if _, err := tx.UpsertSubject(f.ctx, projectID, &s, f.now); err != nil {
			return err
		}
		if err := tx.ReplaceAssignments(f.ctx, projectID, subjectID, thauth.Scope{All: true}, as); err != nil {
			return err
		}
		return tx.ReplaceOverrides(f.ctx, projectID, subjectID, thauth.Scope{All: true}, os)
	})
}

func (f *storeFixture) deleteSubject(projectID, subjectID string) {
	f.t.Helper()
	f.tx([]thauth.Change{{Kind: thauth.ChangeSubject, Ref: subjectID}}, projectID, func(tx thauth.Data) error {
		return tx.DeleteSubject(f.ctx, projectID, subjectID)
	})
}

func (f *storeFixture) createKey(projectID string, expires *time.Time, scopes ...string) (token string, k thauth.APIKey) {
	f.t.Helper()
	token, lookup, hash := thauth.NewToken()
	k = thauth.APIKey{ID: newID(), Name: "test", LookupID: lookup, Hash: hash, Scopes: scopes, ExpiresAt: expires, CreatedAt: f.now}
	f.tx([]thauth.Change{{Kind: thauth.ChangeKey, Ref: k.ID}}, projectID, func(tx thauth.Data) error {
		return tx.CreateAPIKey(f.ctx, projectID, &k)
	})
	return token, k
}

func (f *storeFixture) revokeKey(projectID, keyID string) {
	f.t.Helper()
	f.tx([]thauth.Change{{Kind: thauth.ChangeKey, Ref: keyID}}, projectID, func(tx thauth.Data) error {
		return tx.RevokeAPIKey(f.ctx, projectID, keyID, f.now)
	})
}

// countingLoader wraps a real store and counts the calls the engine makes, and can make calls
// fail on demand.
type countingLoader struct {
	Loader
	scans, subjectLoads, configLoads atomic.Int64
	failConfig                       atomic.Bool
}

func (c *countingLoader) ScanSubjectGrants(ctx context.Context, projectID string, fn func(*thauth.SubjectGrants) error) error {
	c.scans.Add(1)
	return c.Loader.ScanSubjectGrants(ctx, projectID, fn)
}

func (c *countingLoader) LoadSubjectGrants(ctx context.Context, projectID, subjectID string) (*thauth.SubjectGrants, error) {
	c.subjectLoads.Add(1)
	return c.Loader.LoadSubjectGrants(ctx, projectID, subjectID)
}

func (c *countingLoader) LoadConfig(ctx context.Context, projectID string) (*thauth.Config, error) {
	c.configLoads.Add(1)
	if c.failConfig.Load() {
		return nil, thauth.Errorf(thauth.EUnavailable, "injected failure")
	}
	return c.Loader.LoadConfig(ctx, projectID)
}

// check asserts one decision of the engine's current snapshot of projectID.
func check(t *testing.T, e *Engine, projectID string, now time.Time, req thauth.CheckRequest, allowed bool, reason string) {
	t.Helper()
	s := e.Snapshot(projectID)
	if s == nil {
		t.Fatalf("no snapshot of %s", projectID)
	}
	d := s.Check(&req, now)
	if d.Allowed != allowed || d.Reason != reason {
		t.Fatalf("Check(%+v) = %v %q, want %v %q", req, d.Allowed, d.Reason, allowed, reason)
	}
}

func docsRead(subject string) thauth.CheckRequest {
	return thauth.CheckRequest{Subject: subject, Feature: "docs", Action: "read"}
}

func docsWrite(subject string) thauth.CheckRequest {
	return thauth.CheckRequest{Subject: subject, Feature: "docs", Action: "write"}
}

func TestSyncFromStore(t *testing.T) {
	f := newStoreFixture(t)
	m := newTestModel()
	p := f.createProject("app")
	f.applyConfig(p.ID, m.config(true))
	f.setSubject(p.ID, "alice", []thauth.Assignment{{RoleID: m.editor}}, nil)

	cl := &countingLoader{Loader: f.st}
	e := New(cl, Options{Now: func() time.Time { return f.now }})
	if e.Ready() {
		t.Fatal("ready before LoadAll")
	}
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	if !e.Ready() {
		t.Fatal("not ready after LoadAll")
	}
	s := e.Snapshot(p.ID)
	if s == nil || s.Revision() != 3 || s.Project().Name != "app" || s.Project().OrganizationID != f.org.ID {
		t.Fatalf("snapshot %+v", s)
	}
	if s.Version() != s.Config().Version() || len(s.Config().Roles) != 2 || s.Config().Roles[0].Name != "editor" {
		t.Fatalf("config %+v", s.Config())
	}
	check(t, e, p.ID, f.now, docsWrite("alice"), true, "role:editor")
	check(t, e, p.ID, f.now, docsRead("bob"), false, "default:deny")

	t.Run("subject upsert", func(t *testing.T) {
		f.setSubject(p.ID, "bob", []thauth.Assignment{{RoleID: m.viewer}}, nil)
		rev, err := e.Sync(f.ctx, p.ID)
		if err != nil || rev != 4 {
			t.Fatalf("Sync = %d, %v", rev, err)
		}
		check(t, e, p.ID, f.now, docsRead("bob"), true, "role:viewer")
		check(t, e, p.ID, f.now, docsWrite("bob"), false, "default:deny")
		if e.Snapshot(p.ID).Subjects() != 2 {
			t.Fatalf("subjects = %d", e.Snapshot(p.ID).Subjects())
		}
	})

	t.Run("override with tenant, window and resource", func(t *testing.T) {
		until := f.now.Add(time.Hour)
		f.setSubject(p.ID, "bob", []thauth.Assignment{{RoleID: m.viewer}}, []thauth.Override{
			{FeatureID: m.docs, ActionID: m.docsRead, Effect: thauth.Deny, Resource: "secret/*", Tenant: "t1", Window: thauth.Window{Until: &until}},
		})
		if _, err := e.Sync(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		req := thauth.CheckRequest{Subject: "bob", Feature: "docs", Action: "read", Tenant: "t1", Resource: "secret/x"}
		check(t, e, p.ID, f.now, req, false, "override:deny")
		check(t, e, p.ID, until, req, true, "role:viewer")
		req.Tenant = "t2"
		check(t, e, p.ID, f.now, req, true, "role:viewer")
	})

	t.Run("config change does not reread subjects", func(t *testing.T) {
		scans, loads := cl.scans.Load(), cl.subjectLoads.Load()
		// Removing the editor role cascades to alice's assignment in the store; the engine
		// reloads the configuration only, and alice's dangling grant stops matching.
		f.applyConfig(p.ID, m.config(false))
		if _, err := e.Sync(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if cl.scans.Load() != scans || cl.subjectLoads.Load() != loads {
			t.Fatalf("config change reread subjects: scans %d→%d, loads %d→%d", scans, cl.scans.Load(), loads, cl.subjectLoads.Load())
		}
		check(t, e, p.ID, f.now, docsWrite("alice"), false, "default:deny")
		check(t, e, p.ID, f.now, docsRead("alice"), false, "default:deny")
		check(t, e, p.ID, f.now, docsRead("bob"), true, "role:viewer")
		if len(e.Snapshot(p.ID).Config().Roles) != 1 {
			t.Fatal("config not replaced")
		}
	})

	t.Run("subject deleted", func(t *testing.T) {
		f.deleteSubject(p.ID, "bob")
		if _, err := e.Sync(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		check(t, e, p.ID, f.now, docsRead("bob"), false, "default:deny")
	})

	t.Run("sync without changes", func(t *testing.T) {
		before := e.Snapshot(p.ID)
		rev, err := e.Sync(f.ctx, p.ID)
		if err != nil || rev != before.Revision() || e.Snapshot(p.ID) != before {
			t.Fatalf("Sync = %d, %v; snapshot replaced: %v", rev, err, e.Snapshot(p.ID) != before)
		}
	})

	t.Run("failed reload keeps the snapshot", func(t *testing.T) {
		before := e.Snapshot(p.ID)
		f.applyConfig(p.ID, m.config(true))
		cl.failConfig.Store(true)
		if _, err := e.Sync(f.ctx, p.ID); thauth.ErrorCodeOf(err) != thauth.EUnavailable {
			t.Fatalf("Sync err = %v", err)
		}
		if e.Snapshot(p.ID) != before {
			t.Fatal("snapshot replaced after a failed sync")
		}
		cl.failConfig.Store(false)
		if _, err := e.Sync(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if len(e.Snapshot(p.ID).Config().Roles) != 2 {
			t.Fatal("config not reloaded after recovery")
		}
	})
}

func TestSyncUnknownProject(t *testing.T) {
	f := newStoreFixture(t)
	e := New(f.st, Options{})
	if _, err := e.Sync(f.ctx, newID()); !thauth.IsNotFound(err) {
		t.Fatalf("Sync of unknown project: %v", err)
	}
	if n := len(*e.projects.Load()); n != 0 {
		t.Fatalf("unknown project left %d entries", n)
	}
}

func TestSyncFullReloadWhenFarBehind(t *testing.T) {
	f := newStoreFixture(t)
	m := newTestModel()
	p := f.createProject("app")
	f.applyConfig(p.ID, m.config(true))
	cl := &countingLoader{Loader: f.st}
	e := New(cl, Options{MaxCatchUp: 2})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	if cl.scans.Load() != 1 {
		t.Fatalf("scans = %d", cl.scans.Load())
	}
	// Two pending changes: applied one by one.
	f.setSubject(p.ID, "a", []thauth.Assignment{{RoleID: m.viewer}}, nil)
	f.setSubject(p.ID, "b", []thauth.Assignment{{RoleID: m.viewer}}, nil)
	if _, err := e.Sync(f.ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if cl.scans.Load() != 1 || cl.subjectLoads.Load() != 2 {
		t.Fatalf("incremental sync: scans %d, loads %d", cl.scans.Load(), cl.subjectLoads.Load())
	}
	// Three pending: full reload.
	f.setSubject(p.ID, "c", []thauth.Assignment{{RoleID: m.editor}}, nil)
	f.deleteSubject(p.ID, "a")
	f.setSubject(p.ID, "d", []thauth.Assignment{{RoleID: m.viewer}}, nil)
	rev, err := e.Sync(f.ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cl.scans.Load() != 2 || cl.subjectLoads.Load() != 2 {
		t.Fatalf("full reload: scans %d, loads %d", cl.scans.Load(), cl.subjectLoads.Load())
	}
	if rev != 7 || e.Snapshot(p.ID).Subjects() != 3 {
		t.Fatalf("rev %d, subjects %d", rev, e.Snapshot(p.ID).Subjects())
	}
	check(t, e, p.ID, f.now, docsRead("a"), false, "default:deny")
	check(t, e, p.ID, f.now, docsWrite("c"), true, "role:editor")
	check(t, e, p.ID, f.now, docsRead("d"), true, "role:viewer")
}

func TestSyncManySubjectsChange(t *testing.T) {
	f := newStoreFixture(t)
	m := newTestModel()
	p := f.createProject("app")
	f.applyConfig(p.ID, m.config(true))
	f.setSubject(p.ID, "a", []thauth.Assignment{{RoleID: m.viewer}}, nil)
	cl := &countingLoader{Loader: f.st}
	e := New(cl, Options{})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	// A bulk write that reports "subjects" rescans every subject.
	f.tx([]thauth.Change{{Kind: thauth.ChangeSubjects}}, p.ID, func(tx thauth.Data) error {
		for _, id := range []string{"a", "b", "c"} {
			s := thauth.Subject{SubjectID: id, SubjectType: "user"}
			if _, err := tx.UpsertSubject(f.ctx, p.ID, &s, f.now); err != nil {
				return err
			}
			if err := tx.ReplaceAssignments(f.ctx, p.ID, id, thauth.Scope{All: true}, []thauth.Assignment{{RoleID: m.editor}}); err != nil {
				return err
			}
		}
		return nil
	})
	if _, err := e.Sync(f.ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if cl.scans.Load() != 2 || cl.configLoads.Load() != 1 {
		t.Fatalf("scans %d, config loads %d", cl.scans.Load(), cl.configLoads.Load())
	}
	for _, id := range []string{"a", "b", "c"} {
		check(t, e, p.ID, f.now, docsWrite(id), true, "role:editor")
	}
}

func TestSyncAllAndFollow(t *testing.T) {
	f := newStoreFixture(t)
	m := newTestModel()
	p1 := f.createProject("one")
	f.applyConfig(p1.ID, m.config(true))
	e := New(f.st, Options{})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	// Another process writes: a new project and a change to the old one.
	p2 := f.createProject("two")
	m2 := newTestModel()
	f.applyConfig(p2.ID, m2.config(true))
	f.setSubject(p2.ID, "x", []thauth.Assignment{{RoleID: m2.viewer}}, nil)
	f.setSubject(p1.ID, "y", []thauth.Assignment{{RoleID: m.editor}}, nil)
	if e.Snapshot(p2.ID) != nil {
		t.Fatal("p2 known before sync")
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { e.Follow(ctx, 5*time.Millisecond); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s1, s2 := e.Snapshot(p1.ID), e.Snapshot(p2.ID)
		if s1 != nil && s2 != nil && s1.Revision() == 3 && s2.Revision() == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Follow did not catch up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	check(t, e, p2.ID, f.now, docsRead("x"), true, "role:viewer")
	check(t, e, p1.ID, f.now, docsWrite("y"), true, "role:editor")
	// Projects are isolated: p1's subject is unknown in p2.
	check(t, e, p2.ID, f.now, docsWrite("y"), false, "default:deny")
}

// TestConcurrentChecksAndSyncs runs checks against whatever snapshot is current while writers
// change the store and sync concurrently (run with -race). Every write replaces bob's grants
// in one transaction, so every check must see one whole state: editor or viewer, never a mix,
// never an error.
func TestConcurrentChecksAndSyncs(t *testing.T) {
	f := newStoreFixture(t)
	m := newTestModel()
	p := f.createProject("app")
	f.applyConfig(p.ID, m.config(true))
	f.setSubject(p.ID, "bob", []thauth.Assignment{{RoleID: m.viewer}}, nil)
	e := New(f.st, Options{})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var checks atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := e.Snapshot(p.ID)
				r := s.Check(&thauth.CheckRequest{Subject: "bob", Feature: "docs", Action: "read"}, f.now)
				w := s.Check(&thauth.CheckRequest{Subject: "bob", Feature: "docs", Action: "write"}, f.now)
				viewer := r == thauth.Decision{Allowed: true, Reason: "role:viewer"} && w == thauth.Decision{Reason: "default:deny"}
				editor := r == thauth.Decision{Allowed: true, Reason: "role:editor"} && w == thauth.Decision{Allowed: true, Reason: "role:editor"}
				if !viewer && !editor {
					t.Errorf("inconsistent state: read %+v, write %+v", r, w)
					return
				}
				checks.Add(1)
			}
		}()
	}
	var syncErrs atomic.Int64
	for i := range 20 {
		role := m.viewer
		if i%2 == 0 {
			role = m.editor
		}
		f.setSubject(p.ID, "bob", []thauth.Assignment{{RoleID: role}}, nil)
		// Several goroutines sync the same project at once; after all return, the write
		// must be visible.
		var swg sync.WaitGroup
		for range 3 {
			swg.Add(1)
			go func() {
				defer swg.Done()
				if _, err := e.Sync(f.ctx, p.ID); err != nil {
					syncErrs.Add(1)
				}
			}()
		}
		swg.Wait()
		want := "role:viewer"
		if role == m.editor {
			want = "role:editor"
		}
		check(t, e, p.ID, f.now, docsRead("bob"), true, want)
	}
	close(stop)
	wg.Wait()
	if syncErrs.Load() != 0 {
		t.Fatalf("%d sync errors", syncErrs.Load())
	}
	if checks.Load() == 0 {
		t.Fatal("no checks ran")
	}
}

// TestSyncAllRevisionWithoutChanges: a write that bumped the revision without recording a
// change must not leave the project looking behind forever.
func TestSyncAllRevisionWithoutChanges(t *testing.T) {
	f := newStoreFixture(t)
	p := f.createProject("app")
	e := New(f.st, Options{})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	before := e.Snapshot(p.ID)
	f.tx(nil, p.ID, func(thauth.Data) error { return nil })
	if err := e.SyncAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	s := e.Snapshot(p.ID)
	if s.Revision() != before.Revision()+1 {
		t.Fatalf("revision %d, want %d", s.Revision(), before.Revision()+1)
	}
	if s.subjects.Len() != before.subjects.Len() || s.cfg != before.cfg {
		t.Fatal("state changed")
	}
}
