package engine

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thauth/thauth"
)

// Loader is the part of a store the engine reads (a subset of thauth.Store; *sqlite.Store
// satisfies it). See thauth.Store for the contracts of the methods.
type Loader interface {
	ProjectRevisions(ctx context.Context) ([]thauth.Project, error)
	GetProject(ctx context.Context, projectID string) (*thauth.Project, error)
	// GetOrganization tells whether the project's organization is suspended (its keys then
	// do not authenticate).
	GetOrganization(ctx context.Context, orgID string) (*thauth.Organization, error)
	LoadConfig(ctx context.Context, projectID string) (*thauth.Config, error)
	ScanSubjectGrants(ctx context.Context, projectID string, fn func(*thauth.SubjectGrants) error) error
	LoadSubjectGrants(ctx context.Context, projectID, subjectID string) (*thauth.SubjectGrants, error)
	ListAPIKeys(ctx context.Context, projectID string) ([]thauth.APIKey, error)
	GetAPIKey(ctx context.Context, projectID, keyID string) (*thauth.APIKey, error)
	ChangesSince(ctx context.Context, projectID string, after int64, limit int) ([]thauth.Change, error)
}

// DefaultMaxCatchUp is the number of pending changes above which Sync reloads a project
// instead of applying the changes one by one.
const DefaultMaxCatchUp = 10000

// Options configures an Engine. The zero value is usable.
type Options struct {
	// Now is the clock used for key expiry and last-use times; default time.Now.
	// (Checks take their time as an argument.)
	Now func() time.Time
	// Logger receives sync failures; default discards.
	Logger *slog.Logger
	// MaxCatchUp is the number of pending changes above which a project is reloaded in
	// full; default DefaultMaxCatchUp.
	MaxCatchUp int
	// SyncHook, if not nil, observes snapshot updates (observability: tracing.SyncHook): it
	// is called when a sync of one project begins (Sync, and SyncAll and SnapshotAtLeast
	// for each project they catch up) and returns the context the sync then uses (its
	// store calls run under it) and a function called with the sync's error when it ends.
	SyncHook func(ctx context.Context, projectID string) (context.Context, func(err error))
}

// Engine holds a snapshot and the API keys of every project of the installation and keeps
// them current from the store's change log. All methods are safe for concurrent use.
// Readers (Snapshot, Authenticate) never take a lock; writers (Sync and the methods calling
// it) serialize per project.
type Engine struct {
	l          Loader
	now        func() time.Time
	log        *slog.Logger
	maxCatchUp int
	syncHook   func(ctx context.Context, projectID string) (context.Context, func(err error)) // observability; nil: none

	mu       sync.Mutex                          // serializes additions to projects
	projects atomic.Pointer[map[string]*project] // copy-on-write
	ready    atomic.Bool

	keys   sync.Map   // lookup id → *keyEntry, every project of an active organization
	takeMu sync.Mutex // serializes TakeKeyUsage

	// suspendedKeys holds the keys of projects of suspended organizations, out of keys so
	// that no code path can authenticate them (suspend.go).
	suspendedKeys sync.Map // lookup id → *keyEntry

	lastSync atomic.Int64 // e.now() in Unix nanoseconds when the last successful SyncAll began; 0: never
}

// project is the engine's state for one project.
type project struct {
	id   string
	lock chan struct{} // capacity 1, held while loading or syncing the project (see acquire)
	snap atomic.Pointer[Snapshot]
	keys atomic.Pointer[keySet]
	// suspended is set while the project's organization is suspended: its keys are then in
	// Engine.suspendedKeys instead of Engine.keys. Written with lock held.
	suspended atomic.Bool
}

// acquire takes the project's lock, or gives up when ctx ends first: a sync stuck on a
// database that stopped answering must not hold up callers with a deadline (a check
// waiting for a freshness token) beyond it.
func (p *project) acquire(ctx context.Context) error {
	select {
	case p.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return thauth.Errorf(thauth.EUnavailable, "timed out waiting for another sync of the project")
	}
}

func (p *project) release() { <-p.lock }

// New returns an engine reading from l. It holds nothing until LoadAll, Sync or SyncAll.
func New(l Loader, o Options) *Engine {
	e := &Engine{l: l, now: o.Now, log: o.Logger, maxCatchUp: o.MaxCatchUp}
	e.syncHook = o.SyncHook
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.maxCatchUp <= 0 {
		e.maxCatchUp = DefaultMaxCatchUp
	}
	e.projects.Store(&map[string]*project{})
	return e
}

// Ready reports whether LoadAll has completed successfully once.
func (e *Engine) Ready() bool { return e.ready.Load() }

// Snapshot returns the current snapshot of a project, or nil when the project is unknown (or
// not loaded yet). The snapshot stays valid and unchanged however long it is held.
func (e *Engine) Snapshot(projectID string) *Snapshot {
	p := (*e.projects.Load())[projectID]
	if p == nil {
		return nil
	}
	return p.snap.Load()
}

// LoadAll loads every project of the installation (or catches up those already loaded);
// once it succeeds, Ready reports true. It returns the errors of the projects it could not
// load, joined.
func (e *Engine) LoadAll(ctx context.Context) error {
	if err := e.SyncAll(ctx); err != nil {
		return err
	}
	e.ready.Store(true)
	return nil
}

// SyncAll discovers projects created since the last call, loads them, and catches up every
// project whose stored revision is ahead of its snapshot. It keeps going when one project
// fails and returns the failures joined.
//
// It costs one store query (ProjectRevisions) when nothing changed. When it succeeds, every
// write committed before it began is visible, and LastSynced reports that moment.
func (e *Engine) SyncAll(ctx context.Context) error {
	began := e.now()
	projs, err := e.l.ProjectRevisions(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, pr := range projs {
		if s := e.Snapshot(pr.ID); s != nil && s.revision >= pr.Revision {
			continue
		}
		if _, err := e.sync(ctx, pr.ID, pr.Revision, -1); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	e.markSynced(began)
	return nil
}

// Sync brings one project up to date with the store, loading it if the engine does not know
// it yet, and returns the revision its snapshot now reflects. When Sync returns nil, every
// write committed before the call is visible to Check and Authenticate (including key
// revocations). On error the previous snapshot stays in place. Calls for the same project are
// serialized; calls for different projects run in parallel. ENotFound means the project does
// not exist (its state, if any, is dropped).
func (e *Engine) Sync(ctx context.Context, projectID string) (int64, error) {
	return e.sync(ctx, projectID, -1, -1)
}

// sync catches the project up. known, when ≥ 0, is a revision the store was seen at before
// the call: every change up to it is already committed. want, when ≥ 0, makes sync return
// without reading the store when the snapshot has reached it by the time the project's lock
// is taken (callers queued behind another sync then share its work).
func (e *Engine) sync(ctx context.Context, projectID string, known, want int64) (int64, error) {
	if e.syncHook != nil {
		ctx, end := e.syncHook(ctx, projectID)
		rev, err := e.syncProject(ctx, projectID, known, want)
		end(err)
		return rev, err
	}
	return e.syncProject(ctx, projectID, known, want)
}

// syncProject is sync without the hook.
func (e *Engine) syncProject(ctx context.Context, projectID string, known, want int64) (int64, error) {
	p := e.projectFor(projectID)
	if err := p.acquire(ctx); err != nil {
		return e.revisionOf(p), err
	}
	for (*e.projects.Load())[projectID] != p {
		// Dropped while we waited for the lock: start again with the current state, or what
		// we load would be stored where no one looks.
		p.release()
		p = e.projectFor(projectID)
		if err := p.acquire(ctx); err != nil {
			return e.revisionOf(p), err
		}
	}
	defer p.release()
	cur := p.snap.Load()
	if cur == nil {
		return e.fullLoad(ctx, p)
	}
	if known >= 0 && known <= cur.revision || want >= 0 && want <= cur.revision {
		return cur.revision, nil
	}
	changes, err := e.l.ChangesSince(ctx, projectID, cur.revision, e.maxCatchUp+1)
	if err != nil {
		if thauth.IsNotFound(err) {
			e.drop(p)
		}
		return cur.revision, err
	}
	if len(changes) > e.maxCatchUp {
		return e.fullLoad(ctx, p)
	}
	return e.apply(ctx, p, cur, changes, known)
}

// revisionOf returns the revision of p's snapshot, 0 when it has none.
func (e *Engine) revisionOf(p *project) int64 {
	if s := p.snap.Load(); s != nil {
		return s.revision
	}
	return 0
}

// projectFor returns the state of a project, creating an empty one if needed.
func (e *Engine) projectFor(id string) *project {
	if p := (*e.projects.Load())[id]; p != nil {
		return p
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := *e.projects.Load()
	if p := cur[id]; p != nil {
		return p
	}
	p := &project{id: id, lock: make(chan struct{}, 1)}
	next := maps.Clone(cur)
	next[id] = p
	e.projects.Store(&next)
	return p
}

// drop forgets a project that no longer exists: its snapshot and keys go, so nothing of it
// can be used any more. Called with p's lock held.
func (e *Engine) drop(p *project) {
	e.dropKeys(p)
	p.snap.Store(nil)
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := *e.projects.Load()
	if cur[p.id] == p {
		next := maps.Clone(cur)
		delete(next, p.id)
		e.projects.Store(&next)
	}
}

// fullLoad reads the whole project and replaces its state. The revision is read first: data
// read afterwards is at least that new, and changes after it will be applied again by the
// next sync (applying a change reloads current state, so repeating one is harmless).
// Called with p's lock held.
func (e *Engine) fullLoad(ctx context.Context, p *project) (int64, error) {
	failed := func(err error) (int64, error) {
		if s := p.snap.Load(); s != nil {
			return s.revision, err
		}
		return 0, err
	}
	proj, err := e.l.GetProject(ctx, p.id)
	if err != nil {
		if thauth.IsNotFound(err) {
			e.drop(p)
		}
		return failed(err)
	}
	cfg, err := e.l.LoadConfig(ctx, p.id)
	if err != nil {
		return failed(err)
	}
	cc, err := compileConfig(cfg)
	if err != nil {
		return failed(err)
	}
	idx, err := e.scanSubjects(ctx, p.id)
	if err != nil {
		return failed(err)
	}
	keys, err := e.l.ListAPIKeys(ctx, p.id)
	if err != nil {
		return failed(err)
	}
	org, err := e.l.GetOrganization(ctx, proj.OrganizationID)
	if err != nil {
		return failed(err)
	}
	p.suspended.Store(org.SuspendedAt != nil)
	e.setKeys(p, proj.OrganizationID, keys)
	p.snap.Store(&Snapshot{project: *proj, revision: proj.Revision, cfg: cc, subjects: idx})
	e.log.Debug("engine: project loaded", "project", p.id, "revision", proj.Revision, "subjects", idx.Len())
	return proj.Revision, nil
}

func (e *Engine) scanSubjects(ctx context.Context, projectID string) (subjectIndex, error) {
	b := newIndexBuilder()
	err := e.l.ScanSubjectGrants(ctx, projectID, func(sg *thauth.SubjectGrants) error {
		b.add(sg)
		return nil
	})
	if err != nil {
		return subjectIndex{}, err
	}
	return b.done()
}

// apply applies pending changes to the snapshot cur. Every change is applied by reloading
// the current state of what it names, so the order of changes and repeated changes do not
// matter. Nothing is published unless every reload succeeds. Called with p's lock held.
func (e *Engine) apply(ctx context.Context, p *project, cur *Snapshot, changes []thauth.Change, known int64) (int64, error) {
	rev := max(cur.revision, known)
	var configChanged, allSubjects, projectChanged bool
	subjects := map[string]bool{}
	keys := map[string]bool{}
	for _, c := range changes {
		rev = max(rev, c.Revision)
		switch c.Kind {
		case thauth.ChangeConfig:
			configChanged = true
		case thauth.ChangeSubject:
			subjects[c.Ref] = true
		case thauth.ChangeSubjects:
			allSubjects = true
		case thauth.ChangeKey:
			keys[c.Ref] = true
		case thauth.ChangeProject:
			projectChanged = true
		default:
			// A kind this version does not know: reload everything rather than guess.
			return e.fullLoad(ctx, p)
		}
	}
	if rev == cur.revision {
		return rev, nil
	}

	next := &Snapshot{project: cur.project, revision: rev, cfg: cur.cfg, subjects: cur.subjects}
	suspended := p.suspended.Load()
	if projectChanged {
		proj, err := e.l.GetProject(ctx, p.id)
		if err != nil {
			if thauth.IsNotFound(err) {
				e.drop(p)
			}
			return cur.revision, err
		}
		next.project = *proj
		// Suspending or reinstating an organization records a project change in each of
		// its projects, so this is where the engine learns of it.
		org, err := e.l.GetOrganization(ctx, proj.OrganizationID)
		if err != nil {
			return cur.revision, err
		}
		suspended = org.SuspendedAt != nil
	}
	if configChanged {
		cfg, err := e.l.LoadConfig(ctx, p.id)
		if err != nil {
			return cur.revision, err
		}
		if next.cfg, err = compileConfig(cfg); err != nil {
			return cur.revision, err
		}
	}
	if allSubjects {
		idx, err := e.scanSubjects(ctx, p.id)
		if err != nil {
			return cur.revision, err
		}
		next.subjects = idx
	} else if len(subjects) > 0 {
		ed := newEditor(cur.subjects)
		strs := interner{}
		for id := range subjects {
			sg, err := e.l.LoadSubjectGrants(ctx, p.id, id)
			switch {
			case thauth.IsNotFound(err):
				ed.remove(id)
			case err != nil:
				return cur.revision, err
			default:
				if sg.Subject.SubjectID != id {
					ed.remove(id)
				}
				ed.put(compileSubject(sg, strs))
			}
		}
		next.subjects = ed.done()
	}
	var changedKeys map[string]*thauth.APIKey
	if len(keys) > 0 || projectChanged {
		changedKeys = make(map[string]*thauth.APIKey, len(keys))
		if projectChanged {
			// Key entries carry the organization id: refresh them all.
			if ks := p.keys.Load(); ks != nil {
				for id, k := range *ks {
					kk := k.key
					changedKeys[id] = &kk
				}
			}
		}
		for id := range keys {
			k, err := e.l.GetAPIKey(ctx, p.id, id)
			switch {
			case thauth.IsNotFound(err):
				changedKeys[id] = nil
			case err != nil:
				return cur.revision, err
			default:
				changedKeys[id] = k
			}
		}
		p.suspended.Store(suspended)
		e.updateKeys(p, next.project.OrganizationID, changedKeys)
	}
	p.snap.Store(next)
	return rev, nil
}
