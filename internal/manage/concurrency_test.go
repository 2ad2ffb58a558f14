package manage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// Documents A and B are each internally consistent and differ in configuration and in
// subjects at once, so that any mix of the two is visible to a check:
//   - A: role r grants f.read and f.write; u1 has r; u2 has allow overrides on both.
//   - B: role r grants nothing; u1 has r and deny overrides on both; u2 has nothing.
//
// Under A, u1 and u2 may read and write (role:r, override:allow); under B neither may
// (override:deny, default:deny). A snapshot with A's configuration and B's subjects (or the
// reverse), or with half of either, gives another answer or reason.
const (
	concurrentA = `version: 1
features: [{name: f, actions: [read, write]}]
roles: [{name: r, permissions: [{feature: f, action: read}, {feature: f, action: write}]}]
subjects:
  - {id: u1, type: user, roles: [{role: r}]}
  - {id: u2, type: user, overrides: [{feature: f, action: read, effect: allow}, {feature: f, action: write, effect: allow}]}
`
	concurrentB = `version: 1
features: [{name: f, actions: [read, write]}]
roles: [{name: r, description: B}]
subjects:
  - {id: u1, type: user, roles: [{role: r}], overrides: [{feature: f, action: read, effect: deny}, {feature: f, action: write, effect: deny}]}
  - {id: u2, type: user}
`
)

// TestConcurrentApplyIsAtomic applies A and B alternately while other goroutines upsert
// subjects and check continuously: every snapshot must be wholly A or wholly B.
func TestConcurrentApplyIsAtomic(t *testing.T) {
	e := newEnv(t)
	versionA := e.apply(t, concurrentA).Version
	versionB := e.apply(t, concurrentB).Version
	roleID := e.config(t).Roles[0].ID
	want := map[string]map[string]thauth.Decision{
		versionA: {
			"u1": {Allowed: true, Reason: "role:r"},
			"u2": {Allowed: true, Reason: thauth.ReasonOverrideAllow},
		},
		versionB: {
			"u1": {Allowed: false, Reason: thauth.ReasonOverrideDeny},
			"u2": {Allowed: false, Reason: thauth.ReasonDefaultDeny},
		},
	}

	const applies = 30
	var (
		wg       sync.WaitGroup
		done     atomic.Bool
		checks   atomic.Int64
		exports  atomic.Int64
		seen     sync.Map // version → true
		failures atomic.Int64
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				snap := e.engine.Snapshot(e.project)
				v := snap.Version()
				exp, ok := want[v]
				if !ok {
					fail("checker %d: snapshot with unexpected version %s", g, v)
					continue
				}
				seen.Store(v, true)
				now := time.Now()
				for _, subject := range []string{"u1", "u2"} {
					for _, action := range []string{"read", "write"} {
						d := snap.Check(&thauth.CheckRequest{Subject: subject, Feature: "f", Action: action}, now)
						if d.Allowed != exp[subject].Allowed || d.Reason != exp[subject].Reason {
							fail("checker %d: %s f.%s = %+v in a snapshot of version %s, want %+v", g, subject, action, d, v, exp[subject])
						}
					}
				}
				// Upserted subjects have role r: read and write agree in one snapshot.
				for i := range 3 {
					s := fmt.Sprintf("w%d", i)
					r := snap.Check(&thauth.CheckRequest{Subject: s, Feature: "f", Action: "read"}, now)
					w := snap.Check(&thauth.CheckRequest{Subject: s, Feature: "f", Action: "write"}, now)
					if r.Allowed != w.Allowed {
						fail("checker %d: %s read %+v but write %+v in one snapshot", g, s, r, w)
					}
				}
				checks.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() { // exports are consistent too: A's role with A's subjects, or B's with B's
		defer wg.Done()
		for !done.Load() {
			out, err := e.svc.ExportConfig(e.ctx, e.project, FormatJSON)
			if err != nil {
				fail("export: %v", err)
				return
			}
			doc, err := parseDocument(out, FormatJSON)
			if err != nil {
				fail("export does not parse: %v", err)
				return
			}
			var u1Overrides int
			for _, s := range doc.Subjects {
				if s.ID == "u1" {
					u1Overrides = len(s.Overrides)
				}
			}
			if perms := len(doc.Roles[0].Permissions); perms+u1Overrides != 2 {
				fail("export mixes A and B: role r has %d permissions, u1 %d overrides", perms, u1Overrides)
			}
			exports.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Add(1)
	go func() { // upserts race with the applies (which delete w* when they are absent)
		defer wg.Done()
		for i := 0; !done.Load(); i++ {
			_, err := e.svc.UpsertSubject(e.ctx, e.project, UpsertRequest{SubjectID: fmt.Sprintf("w%d", i%3), SubjectType: "user", RoleIDs: &[]string{roleID}})
			if err != nil {
				fail("upsert: %v", err)
				return
			}
		}
	}()
	for i := range applies {
		body := concurrentA
		if i%2 == 1 {
			body = concurrentB
		}
		if _, err := e.svc.ApplyConfig(e.ctx, e.project, []byte(body), FormatYAML, false); err != nil {
			t.Errorf("apply %d: %v", i, err)
			break
		}
	}
	done.Store(true)
	wg.Wait()
	for _, v := range []string{versionA, versionB} {
		if _, ok := seen.Load(v); !ok {
			t.Errorf("no check observed version %s", v)
		}
	}
	t.Logf("%d snapshot checks and %d exports during %d applies", checks.Load(), exports.Load(), applies)
}
