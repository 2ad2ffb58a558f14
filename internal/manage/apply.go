package manage

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"time"

	"github.com/thauth/thauth"
)

// ApplyResult reports what applying a configuration document did (or, for a dry run, would
// do): the configuration version afterwards, the changes, and the project revision
// afterwards (unchanged when nothing changed or for a dry run).
type ApplyResult struct {
	Version  string  `json:"version"`
	Changes  Changes `json:"changes"`
	Revision int64   `json:"-"`
}

// Changes lists changed entities as short strings — "feature billing",
// "action billing.refund", "role billing-admin", "subject user:alice" — grouped by what
// happened to them, features first, then actions, roles and subjects, each sorted. The
// lists are never nil, so they render as [] in JSON.
//
// A feature is updated when its description changes; adding or removing an action of a kept
// feature lists the action (the actions of a created or deleted feature are not listed
// separately). A role is updated when its description or permissions change. A subject is
// updated when its type or any of its grants change, including grants removed because the
// role, feature or action they named was deleted.
type Changes struct {
	Created []string `json:"created"`
	Updated []string `json:"updated"`
	Deleted []string `json:"deleted"`
}

func (c *Changes) empty() bool {
	return len(c.Created) == 0 && len(c.Updated) == 0 && len(c.Deleted) == 0
}

// maxSubjectChanges is the number of changed subjects up to which the change log names each
// one; above it a single ChangeSubjects entry tells nodes to reload every subject.
const maxSubjectChanges = 1000

// ExportConfig returns the project's configuration document in format f: its features,
// roles and subjects in canonical order, so that applying it back changes nothing. The
// document reflects one committed state: it is read without blocking writers and read again
// if a write to the project committed meanwhile (after a few tries, inside one transaction).
// Errors: ENotFound for an unknown project, EUnsupported for an unknown format.
func (s *Service) ExportConfig(ctx context.Context, projectID string, f Format) ([]byte, error) {
	if f != FormatJSON && f != FormatYAML {
		return nil, thauth.Errorf(thauth.EUnsupported, "unsupported document format %q (use json or yaml)", string(f))
	}
	var doc *document
	for attempt := 0; doc == nil; attempt++ {
		var err error
		if attempt < 3 {
			doc, err = readDocument(ctx, s.store, projectID, true)
		} else {
			err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
				doc, err = readDocument(ctx, tx, projectID, false)
				return err
			})
		}
		if err != nil {
			return nil, storeError(err, "could not read the configuration")
		}
	}
	doc.sort()
	return render(doc, f)
}

// readDocument reads the project's configuration and subjects as a document. With
// optimistic, d is read by several transactions and the result is nil (without error)
// when the project's revision moved while reading.
func readDocument(ctx context.Context, d thauth.Data, projectID string, optimistic bool) (*document, error) {
	before, err := d.GetProject(ctx, projectID)
	if err != nil {
		return nil, err
	}
	cfg, err := d.LoadConfig(ctx, projectID)
	if err != nil {
		return nil, err
	}
	doc := configDocument(cfg)
	doc.HasSubjects = true
	doc.Subjects = []docSubject{}
	err = d.ScanSubjectGrants(ctx, projectID, func(sg *thauth.SubjectGrants) error {
		doc.Subjects = append(doc.Subjects, subjectDocument(sg))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if optimistic {
		after, err := d.GetProject(ctx, projectID)
		if err != nil {
			return nil, err
		}
		if after.Revision != before.Revision {
			return nil, nil
		}
	}
	return doc, nil
}

// ApplyConfig makes the project's configuration (and, when the document has a subjects
// key, its subjects) equal to the document body in format f, atomically.
//
// The document is validated completely first: a bad document gives an *thauth.Error with
// code EInvalid listing every problem, and nothing is written. Then, in one transaction,
// the stored state is compared with the document: features, actions and roles keep their
// ids when their names are unchanged (a rename is a delete and a create); only what differs
// is written, with one change-log entry. Applying a document equal to the stored state
// writes nothing and does not bump the revision. After the commit the engine is synced, so
// checks sent after ApplyConfig returns see the new state; checks never see a mix.
//
// With dryRun the same result is computed and nothing is written. Its Version is the version
// the configuration would have; when entities would be created it is indicative only, since
// their ids are generated anew by the real apply.
//
// A write is recorded in the organization's audit chain (config.applied, with counts of what
// changed) in the same transaction, with ctx's actor (WithAuditActor).
//
// Errors: EInvalid, ETooLarge, EUnsupported (format), ENotFound (project), or the store's.
func (s *Service) ApplyConfig(ctx context.Context, projectID string, body []byte, f Format, dryRun bool) (*ApplyResult, error) {
	doc, err := parseDocument(body, f)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	var res *ApplyResult
	wrote := false
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		res, wrote = nil, false // in case a store runs the closure again
		project, err := tx.GetProject(ctx, projectID)
		if err != nil {
			return err
		}
		cur, err := tx.LoadConfig(ctx, projectID)
		if err != nil {
			return err
		}
		cp, err := planConfig(cur, doc)
		if err != nil {
			return err
		}
		sp, err := planSubjects(ctx, tx, projectID, doc, cp)
		if err != nil {
			return err
		}
		res = &ApplyResult{Version: cp.next.Version(), Revision: project.Revision}
		res.Changes = Changes{
			Created: concat(cp.created, sp.created),
			Updated: concat(cp.updated, sp.updated),
			Deleted: concat(cp.deleted, sp.deleted),
		}
		if dryRun || res.Changes.empty() {
			return nil
		}
		var changes []thauth.Change
		if cp.changed() {
			if err := tx.ReplaceConfig(ctx, projectID, cp.next); err != nil {
				return err
			}
			changes = append(changes, thauth.Change{Kind: thauth.ChangeConfig})
		}
		if err := sp.write(ctx, tx, projectID, now); err != nil {
			return err
		}
		changes = append(changes, sp.changeLog()...)
		rev, err := tx.AppendChanges(ctx, projectID, changes, now)
		if err != nil {
			return err
		}
		res.Revision, wrote = rev, true
		return s.auditChange(ctx, tx, project.OrganizationID, AuditConfigApplied, projectID, applyAuditData(projectID, res))
	})
	if err != nil {
		return nil, storeError(err, "could not apply the configuration")
	}
	if wrote {
		s.log.InfoContext(ctx, "configuration applied", "project_id", projectID, "revision", res.Revision,
			"version", res.Version, "created", len(res.Changes.Created), "updated", len(res.Changes.Updated),
			"deleted", len(res.Changes.Deleted))
		s.sync(ctx, projectID)
	}
	return res, nil
}

func concat(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// storeError passes *thauth.Error values through and wraps anything else as EInternal.
func storeError(err error, msg string) error {
	var te *thauth.Error
	if errors.As(err, &te) {
		return err
	}
	return thauth.Internal(err, "%s", msg)
}

// configPlan is the configuration a document asks for, with ids resolved against the
// stored one, and what differs.
type configPlan struct {
	next                      *thauth.Config // canonical order
	created, updated, deleted []string
	// roleIDs and actionIDs resolve document names to the ids of next.
	roleIDs   map[string]string
	actionIDs map[featureAction]actionRef
	// deletedRoles and deletedActions hold the ids that the apply deletes (the actions of
	// deleted features included): grants naming them are removed by the store's cascade.
	deletedRoles   map[string]bool
	deletedActions map[string]bool
}

type featureAction struct{ feature, action string }

type actionRef struct{ featureID, actionID string }

func (p *configPlan) changed() bool {
	return len(p.created) > 0 || len(p.updated) > 0 || len(p.deleted) > 0
}

// planConfig resolves doc's features, actions and roles against cur. Every list of changes
// comes out sorted, features before actions before roles.
func planConfig(cur *thauth.Config, doc *document) (*configPlan, error) {
	p := &configPlan{
		next:           &thauth.Config{},
		roleIDs:        map[string]string{},
		actionIDs:      map[featureAction]actionRef{},
		deletedRoles:   map[string]bool{},
		deletedActions: map[string]bool{},
	}
	var fCreated, fUpdated, fDeleted, aCreated, aDeleted, rCreated, rUpdated, rDeleted []string

	curFeatures := make(map[string]*thauth.Feature, len(cur.Features))
	for i := range cur.Features {
		curFeatures[cur.Features[i].Name] = &cur.Features[i]
	}
	wanted := make(map[string]bool, len(doc.Features))
	for _, df := range doc.Features {
		wanted[df.Name] = true
		old := curFeatures[df.Name]
		f := thauth.Feature{Name: df.Name, Description: df.Description}
		oldActions := map[string]string{}
		if old == nil {
			id, err := newID()
			if err != nil {
				return nil, err
			}
			f.ID = id
			fCreated = append(fCreated, "feature "+df.Name)
		} else {
			f.ID = old.ID
			if old.Description != df.Description {
				fUpdated = append(fUpdated, "feature "+df.Name)
			}
			for _, a := range old.Actions {
				oldActions[a.Name] = a.ID
			}
		}
		keep := make(map[string]bool, len(df.Actions))
		for _, name := range df.Actions {
			keep[name] = true
			id, ok := oldActions[name]
			if !ok {
				var err error
				if id, err = newID(); err != nil {
					return nil, err
				}
				if old != nil {
					aCreated = append(aCreated, "action "+df.Name+"."+name)
				}
			}
			f.Actions = append(f.Actions, thauth.Action{ID: id, Name: name})
			p.actionIDs[featureAction{df.Name, name}] = actionRef{featureID: f.ID, actionID: id}
		}
		for name, id := range oldActions {
			if !keep[name] {
				aDeleted = append(aDeleted, "action "+df.Name+"."+name)
				p.deletedActions[id] = true
			}
		}
		p.next.Features = append(p.next.Features, f)
	}
	for _, f := range cur.Features {
		if !wanted[f.Name] {
			fDeleted = append(fDeleted, "feature "+f.Name)
			for _, a := range f.Actions {
				p.deletedActions[a.ID] = true
			}
		}
	}

	curRoles := make(map[string]*thauth.Role, len(cur.Roles))
	for i := range cur.Roles {
		curRoles[cur.Roles[i].Name] = &cur.Roles[i]
	}
	wanted = make(map[string]bool, len(doc.Roles))
	for _, dr := range doc.Roles {
		wanted[dr.Name] = true
		r := thauth.Role{Name: dr.Name, Description: dr.Description}
		for _, dp := range dr.Permissions {
			ref := p.actionIDs[featureAction{dp.Feature, dp.Action}]
			r.Permissions = append(r.Permissions, thauth.Permission{
				FeatureID: ref.featureID, FeatureName: dp.Feature,
				ActionID: ref.actionID, ActionName: dp.Action, Resource: dp.Resource,
			})
		}
		old := curRoles[dr.Name]
		if old == nil {
			id, err := newID()
			if err != nil {
				return nil, err
			}
			r.ID = id
			rCreated = append(rCreated, "role "+dr.Name)
		} else {
			r.ID = old.ID
			if old.Description != dr.Description || !samePermissions(old.Permissions, r.Permissions) {
				rUpdated = append(rUpdated, "role "+dr.Name)
			}
		}
		p.roleIDs[dr.Name] = r.ID
		p.next.Roles = append(p.next.Roles, r)
	}
	for _, r := range cur.Roles {
		if !wanted[r.Name] {
			rDeleted = append(rDeleted, "role "+r.Name)
			p.deletedRoles[r.ID] = true
		}
	}
	p.next.Sort()
	for _, l := range [][]string{fCreated, fUpdated, fDeleted, aCreated, aDeleted, rCreated, rUpdated, rDeleted} {
		slices.Sort(l)
	}
	p.created = concat(concat(fCreated, aCreated), rCreated)
	p.updated = concat(fUpdated, rUpdated)
	p.deleted = concat(concat(fDeleted, aDeleted), rDeleted)
	return p, nil
}

// samePermissions compares two permission sets by ids and resource, ignoring order.
func samePermissions(a, b []thauth.Permission) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(p thauth.Permission) string { return grantKey(p.FeatureID, p.ActionID, p.Resource) }
	ka := make([]string, len(a))
	kb := make([]string, len(b))
	for i := range a {
		ka[i], kb[i] = key(a[i]), key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// digest is a fingerprint of a set of grants, computed over their names so that stored
// grants and document grants compare directly. Names identify entities here: an entity
// keeps its id exactly as long as it keeps its name.
type digest [16]byte

func digestKeys(keys []string) digest {
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{'\n'})
	}
	var d digest
	copy(d[:], h.Sum(nil))
	return d
}

func assignmentKey(role, tenant string, w thauth.Window) string {
	return grantKey(role, tenant, w.From, w.Until)
}

func overrideKey(feature, action string, effect thauth.Effect, tenant, resource string, w thauth.Window) string {
	return grantKey(feature, action, string(effect), tenant, resource, w.From, w.Until)
}

// storedSubject is what the diff keeps of a stored subject: little, so that projects with
// many subjects diff in bounded memory.
type storedSubject struct {
	typ                    string
	assignments, overrides digest
}

func storedDigests(sg *thauth.SubjectGrants) storedSubject {
	ak := make([]string, len(sg.Assignments))
	for i, a := range sg.Assignments {
		ak[i] = assignmentKey(a.RoleName, a.Tenant, normWindow(a.Window))
	}
	okeys := make([]string, len(sg.Overrides))
	for i, o := range sg.Overrides {
		okeys[i] = overrideKey(o.FeatureName, o.ActionName, o.Effect, o.Tenant, o.Resource, normWindow(o.Window))
	}
	return storedSubject{typ: sg.Subject.SubjectType, assignments: digestKeys(ak), overrides: digestKeys(okeys)}
}

func normWindow(w thauth.Window) thauth.Window {
	return thauth.Window{From: utcPtr(w.From), Until: utcPtr(w.Until)}
}

// subjectWrite is one subject to create or update.
type subjectWrite struct {
	subject     thauth.Subject
	assignments *[]thauth.Assignment // nil: leave as is
	overrides   *[]thauth.Override   // nil: leave as is
}

// subjectPlan is what the document asks for subjects, against the stored subjects.
type subjectPlan struct {
	created, updated, deleted []string
	writes                    []subjectWrite
	deletes                   []string
	// changedIDs are the subject ids whose grants change, for the change log (cascaded ones
	// included).
	changedIDs []string
}

// planSubjects diffs the document's subjects against the stored ones in O(n) with maps.
// Without a subjects key nothing is written for subjects, but subjects holding grants that
// the configuration change deletes (by cascade) are found and reported as updated.
func planSubjects(ctx context.Context, tx thauth.Data, projectID string, doc *document, cp *configPlan) (*subjectPlan, error) {
	sp := &subjectPlan{}
	if !doc.HasSubjects {
		if len(cp.deletedRoles) == 0 && len(cp.deletedActions) == 0 {
			return sp, nil
		}
		err := tx.ScanSubjectGrants(ctx, projectID, func(sg *thauth.SubjectGrants) error {
			hit := false
			for _, a := range sg.Assignments {
				hit = hit || cp.deletedRoles[a.RoleID]
			}
			for _, o := range sg.Overrides {
				hit = hit || cp.deletedActions[o.ActionID]
			}
			if hit {
				sp.updated = append(sp.updated, "subject "+sg.Subject.SubjectID)
				sp.changedIDs = append(sp.changedIDs, sg.Subject.SubjectID)
			}
			return nil
		})
		slices.Sort(sp.updated)
		return sp, err
	}

	stored := map[string]storedSubject{}
	err := tx.ScanSubjectGrants(ctx, projectID, func(sg *thauth.SubjectGrants) error {
		stored[sg.Subject.SubjectID] = storedDigests(sg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, ds := range doc.Subjects {
		ak := make([]string, len(ds.Roles))
		for i, a := range ds.Roles {
			ak[i] = assignmentKey(a.Role, a.Tenant, thauth.Window{From: a.ValidFrom, Until: a.ValidUntil})
		}
		okeys := make([]string, len(ds.Overrides))
		for i, o := range ds.Overrides {
			okeys[i] = overrideKey(o.Feature, o.Action, o.Effect, o.Tenant, o.Resource, thauth.Window{From: o.ValidFrom, Until: o.ValidUntil})
		}
		want := storedSubject{typ: ds.Type, assignments: digestKeys(ak), overrides: digestKeys(okeys)}
		old, exists := stored[ds.ID]
		delete(stored, ds.ID)
		if exists && old == want {
			continue
		}
		w := subjectWrite{subject: thauth.Subject{SubjectID: ds.ID, SubjectType: ds.Type}}
		if !exists || old.assignments != want.assignments {
			as := make([]thauth.Assignment, len(ds.Roles))
			for i, a := range ds.Roles {
				as[i] = thauth.Assignment{RoleID: cp.roleIDs[a.Role], RoleName: a.Role, Tenant: a.Tenant,
					Window: thauth.Window{From: a.ValidFrom, Until: a.ValidUntil}}
			}
			if exists || len(as) > 0 {
				w.assignments = &as
			}
		}
		if !exists || old.overrides != want.overrides {
			os := make([]thauth.Override, len(ds.Overrides))
			for i, o := range ds.Overrides {
				ref := cp.actionIDs[featureAction{o.Feature, o.Action}]
				os[i] = thauth.Override{FeatureID: ref.featureID, FeatureName: o.Feature, ActionID: ref.actionID,
					ActionName: o.Action, Effect: o.Effect, Resource: o.Resource, Tenant: o.Tenant,
					Window: thauth.Window{From: o.ValidFrom, Until: o.ValidUntil}}
			}
			if exists || len(os) > 0 {
				w.overrides = &os
			}
		}
		if exists {
			sp.updated = append(sp.updated, "subject "+ds.ID)
		} else {
			sp.created = append(sp.created, "subject "+ds.ID)
		}
		sp.writes = append(sp.writes, w)
		sp.changedIDs = append(sp.changedIDs, ds.ID)
	}
	for id := range stored {
		sp.deleted = append(sp.deleted, "subject "+id)
		sp.deletes = append(sp.deletes, id)
		sp.changedIDs = append(sp.changedIDs, id)
	}
	slices.Sort(sp.created)
	slices.Sort(sp.updated)
	slices.Sort(sp.deleted)
	slices.Sort(sp.deletes)
	// Writing in subject-id order keeps the store's subject-keyed indexes appending.
	slices.SortFunc(sp.writes, func(a, b subjectWrite) int { return cmp.Compare(a.subject.SubjectID, b.subject.SubjectID) })
	return sp, nil
}

// bulkWriteThreshold is the number of written subjects above which write uses the store's
// thauth.SubjectBulkWriter, when it has one, instead of a few calls per subject.
const bulkWriteThreshold = 50

// write performs the subject writes; it runs after ReplaceConfig, so that the ids of new
// roles and actions exist. Many writes go to the store's SubjectBulkWriter if it has one
// (PostgreSQL), which makes the same writes in a few round trips.
func (sp *subjectPlan) write(ctx context.Context, tx thauth.Data, projectID string, now time.Time) error {
	for _, id := range sp.deletes {
		if err := tx.DeleteSubject(ctx, projectID, id); err != nil {
			return err
		}
	}
	if bw, ok := tx.(thauth.SubjectBulkWriter); ok && len(sp.writes) > bulkWriteThreshold {
		subjects := make([]*thauth.SubjectGrants, len(sp.writes))
		for i := range sp.writes {
			w := &sp.writes[i]
			sg := &thauth.SubjectGrants{Subject: w.subject}
			if w.assignments != nil {
				sg.Assignments = *w.assignments
			}
			if w.overrides != nil {
				sg.Overrides = *w.overrides
			}
			subjects[i] = sg
		}
		return bw.WriteSubjects(ctx, projectID, subjects, now)
	}
	all := thauth.Scope{All: true}
	for i := range sp.writes {
		w := &sp.writes[i]
		if _, err := tx.UpsertSubject(ctx, projectID, &w.subject, now); err != nil {
			return err
		}
		if w.assignments != nil {
			if err := tx.ReplaceAssignments(ctx, projectID, w.subject.SubjectID, all, *w.assignments); err != nil {
				return err
			}
		}
		if w.overrides != nil {
			if err := tx.ReplaceOverrides(ctx, projectID, w.subject.SubjectID, all, *w.overrides); err != nil {
				return err
			}
		}
	}
	return nil
}

// changeLog returns the change-log entries for the subjects that change: one per subject,
// or a single "reload every subject" above maxSubjectChanges.
func (sp *subjectPlan) changeLog() []thauth.Change {
	if len(sp.changedIDs) > maxSubjectChanges {
		return []thauth.Change{{Kind: thauth.ChangeSubjects}}
	}
	ids := slices.Clone(sp.changedIDs)
	slices.SortFunc(ids, cmp.Compare)
	out := make([]thauth.Change, len(ids))
	for i, id := range ids {
		out[i] = thauth.Change{Kind: thauth.ChangeSubject, Ref: id}
	}
	return out
}
