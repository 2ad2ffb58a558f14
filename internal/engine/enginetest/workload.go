// Package enginetest generates synthetic authorization workloads for tests, benchmarks and
// load generation: a project configuration and subjects with grants, deterministic for a given
// seed and sizes, plus a matching stream of check requests. Nothing here is random at run
// time: the same Workload always yields the same data.
package enginetest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/thauth/thauth"
)

// Workload describes the shape of a generated project. Zero sizes mean zero of that thing.
type Workload struct {
	Seed                  uint64
	Features              int     // features in the project
	ActionsPerFeature     int     // actions per feature
	Roles                 int     // roles in the project
	PermissionsPerRole    int     // permissions per role
	Subjects              int     // subjects
	Tenants               int     // distinct tenant names; 0 = every grant global
	AssignmentsPerSubject int     // role assignments per subject
	OverridesPerSubject   int     // overrides per subject
	PatternShare          float64 // share of permissions and overrides with a resource pattern
	WindowShare           float64 // share of grants with a validity window
}

// Default returns the reference workload of the performance targets: one project with 100
// features × 5 actions, 200 roles, 100k subjects, 1k tenants, 5 assignments and 2 overrides
// per subject, a quarter of grants with resource patterns.
func Default() Workload {
	return Workload{
		Seed:                  1,
		Features:              100,
		ActionsPerFeature:     5,
		Roles:                 200,
		PermissionsPerRole:    20,
		Subjects:              100_000,
		Tenants:               1000,
		AssignmentsPerSubject: 5,
		OverridesPerSubject:   2,
		PatternShare:          0.25,
		WindowShare:           0.1,
	}
}

// Now is the reference time of the workload: windows are placed around it and requests should
// be evaluated at it.
func (w Workload) Now() time.Time { return time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) }

// Project returns the project the workload belongs to (revision 1).
func (w Workload) Project() thauth.Project {
	return thauth.Project{
		ID:             w.id(0xF0, 0),
		OrganizationID: w.id(0xF1, 0),
		Name:           fmt.Sprintf("load-%d", w.Seed),
		CreatedAt:      w.Now().Add(-24 * time.Hour),
		Revision:       1,
	}
}

// id returns a deterministic UUID-shaped id for (kind, n).
func (w Workload) id(kind, n uint64) string {
	r := rand.New(rand.NewPCG(w.Seed^kind<<56, uint64(n)))
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-7%03x-8%03x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>52, b&0xffffffffffff)
}

// FeatureName, ActionName, RoleName, TenantName and SubjectID give the generated names.
func (w Workload) FeatureName(i int) string { return fmt.Sprintf("feature-%03d", i) }

// ActionName returns the name of action j (in every feature).
func (w Workload) ActionName(j int) string { return fmt.Sprintf("action-%d", j) }

// RoleName returns the name of role i.
func (w Workload) RoleName(i int) string { return fmt.Sprintf("role-%04d", i) }

// TenantName returns the name of tenant i.
func (w Workload) TenantName(i int) string { return fmt.Sprintf("tenant_%04d", i) }

// SubjectID returns the subject id of subject i.
func (w Workload) SubjectID(i int) string { return fmt.Sprintf("user:%08d", i) }

func (w Workload) featureID(i int) string   { return w.id(1, uint64(i)) }
func (w Workload) actionID(i, j int) string { return w.id(2, uint64(i*1000+j)) }
func (w Workload) roleID(i int) string      { return w.id(3, uint64(i)) }

// pattern returns a resource pattern, or "" for none, for a grant drawn from r.
func (w Workload) pattern(r *rand.Rand) string {
	if r.Float64() >= w.PatternShare {
		return ""
	}
	switch r.IntN(8) {
	case 0:
		return "*"
	case 1, 2, 3:
		return fmt.Sprintf("docs/%d/*", r.IntN(100))
	case 4:
		return fmt.Sprintf("docs/%d/sub/*", r.IntN(100))
	default:
		return fmt.Sprintf("docs/%d/%d", r.IntN(100), r.IntN(50))
	}
}

// window returns a validity window for a grant drawn from r: usually none, otherwise one that
// may be active, past or future relative to Now.
func (w Workload) window(r *rand.Rand) thauth.Window {
	if r.Float64() >= w.WindowShare {
		return thauth.Window{}
	}
	from := w.Now().Add(time.Duration(r.IntN(48)-36) * time.Hour)
	until := from.Add(time.Duration(1+r.IntN(48)) * time.Hour)
	return thauth.Window{From: &from, Until: &until}
}

// Config returns the project configuration, in canonical order with permission names filled
// in, as a store would load it.
func (w Workload) Config() *thauth.Config {
	cfg := &thauth.Config{}
	for i := range w.Features {
		f := thauth.Feature{ID: w.featureID(i), Name: w.FeatureName(i), Description: "generated"}
		for j := range w.ActionsPerFeature {
			f.Actions = append(f.Actions, thauth.Action{ID: w.actionID(i, j), Name: w.ActionName(j)})
		}
		cfg.Features = append(cfg.Features, f)
	}
	r := rand.New(rand.NewPCG(w.Seed, 0xC0))
	for i := range w.Roles {
		role := thauth.Role{ID: w.roleID(i), Name: w.RoleName(i)}
		seen := map[[3]string]bool{}
		for range w.PermissionsPerRole {
			if w.Features == 0 || w.ActionsPerFeature == 0 {
				break
			}
			fi, ai := r.IntN(w.Features), r.IntN(w.ActionsPerFeature)
			p := thauth.Permission{
				FeatureID: w.featureID(fi), FeatureName: w.FeatureName(fi),
				ActionID: w.actionID(fi, ai), ActionName: w.ActionName(ai),
				Resource: w.pattern(r),
			}
			k := [3]string{p.FeatureID, p.ActionID, p.Resource}
			if seen[k] {
				continue
			}
			seen[k] = true
			role.Permissions = append(role.Permissions, p)
		}
		cfg.Roles = append(cfg.Roles, role)
	}
	cfg.Sort()
	return cfg
}

// subjectRand returns the random source of subject i: each subject is generated on its own,
// so subjects can be produced in any order or one at a time.
func (w Workload) subjectRand(i int) *rand.Rand {
	return rand.New(rand.NewPCG(w.Seed^0x5B, uint64(i)))
}

// homeTenants returns the tenants subject i has grants in (none when Tenants is 0).
func (w Workload) homeTenants(r *rand.Rand) []string {
	if w.Tenants == 0 {
		return nil
	}
	return []string{w.TenantName(r.IntN(w.Tenants)), w.TenantName(r.IntN(w.Tenants))}
}

func pickTenant(r *rand.Rand, home []string) string {
	if len(home) == 0 || r.IntN(2) == 0 {
		return ""
	}
	return home[r.IntN(len(home))]
}

// Subject returns subject i with its grants, as a store would load it (names filled in).
func (w Workload) Subject(i int) *thauth.SubjectGrants {
	r := w.subjectRand(i)
	home := w.homeTenants(r)
	at := w.Now().Add(-time.Hour)
	sg := &thauth.SubjectGrants{Subject: thauth.Subject{
		ID: w.id(4, uint64(i)), ProjectID: w.Project().ID, SubjectID: w.SubjectID(i),
		SubjectType: "user", CreatedAt: at, UpdatedAt: at,
	}}
	if w.Roles > 0 {
		sg.Assignments = make([]thauth.Assignment, 0, w.AssignmentsPerSubject)
		for range w.AssignmentsPerSubject {
			ri := r.IntN(w.Roles)
			sg.Assignments = append(sg.Assignments, thauth.Assignment{
				RoleID: w.roleID(ri), RoleName: w.RoleName(ri), Tenant: pickTenant(r, home), Window: w.window(r),
			})
		}
	}
	if w.Features > 0 && w.ActionsPerFeature > 0 {
		sg.Overrides = make([]thauth.Override, 0, w.OverridesPerSubject)
		for range w.OverridesPerSubject {
			fi, ai := r.IntN(w.Features), r.IntN(w.ActionsPerFeature)
			eff := thauth.Allow
			if r.IntN(3) == 0 {
				eff = thauth.Deny
			}
			sg.Overrides = append(sg.Overrides, thauth.Override{
				FeatureID: w.featureID(fi), FeatureName: w.FeatureName(fi),
				ActionID: w.actionID(fi, ai), ActionName: w.ActionName(ai),
				Effect: eff, Resource: w.pattern(r), Tenant: pickTenant(r, home), Window: w.window(r),
			})
		}
	}
	return sg
}

// EachSubject calls fn with every subject in order of index, one at a time (memory does not
// grow with the number of subjects), stopping at the first error.
func (w Workload) EachSubject(fn func(*thauth.SubjectGrants) error) error {
	for i := range w.Subjects {
		if err := fn(w.Subject(i)); err != nil {
			return err
		}
	}
	return nil
}

// AllSubjects returns every subject. For large workloads prefer EachSubject.
func (w Workload) AllSubjects() []*thauth.SubjectGrants {
	out := make([]*thauth.SubjectGrants, 0, w.Subjects)
	for i := range w.Subjects {
		out = append(out, w.Subject(i))
	}
	return out
}

// Grants returns the total number of grants (assignments and overrides) of all subjects.
func (w Workload) Grants() int {
	per := 0
	if w.Roles > 0 {
		per += w.AssignmentsPerSubject
	}
	if w.Features > 0 && w.ActionsPerFeature > 0 {
		per += w.OverridesPerSubject
	}
	return per * w.Subjects
}

// Requests returns n check requests drawn with seed: mostly known subjects (a few unknown),
// mostly known features and actions, tenants from the subject's own tenants, other tenants or
// none, and resources that are absent, concrete or wildcards, so that every branch of the
// evaluation is exercised.
func (w Workload) Requests(n int, seed uint64) []thauth.CheckRequest {
	r := rand.New(rand.NewPCG(w.Seed^0xE0, seed))
	out := make([]thauth.CheckRequest, 0, n)
	for range n {
		out = append(out, w.request(r, -1))
	}
	return out
}

// SubjectRequests returns n check requests for subject i (a batch).
func (w Workload) SubjectRequests(i, n int, seed uint64) []thauth.CheckRequest {
	r := rand.New(rand.NewPCG(w.Seed^0xE1, seed))
	out := make([]thauth.CheckRequest, 0, n)
	for range n {
		out = append(out, w.request(r, i))
	}
	return out
}

func (w Workload) request(r *rand.Rand, subject int) thauth.CheckRequest {
	var req thauth.CheckRequest
	if subject < 0 {
		subject = r.IntN(max(w.Subjects, 1))
	}
	if r.IntN(50) == 0 || w.Subjects == 0 {
		req.Subject = fmt.Sprintf("unknown:%d", r.IntN(1000))
	} else {
		req.Subject = w.SubjectID(subject)
	}
	req.Feature = w.FeatureName(r.IntN(max(w.Features, 1)))
	req.Action = w.ActionName(r.IntN(max(w.ActionsPerFeature, 1)))
	switch t := r.IntN(10); {
	case t < 6 && w.Tenants > 0:
		home := w.homeTenants(w.subjectRand(subject))
		req.Tenant = home[r.IntN(len(home))]
	case t < 8 && w.Tenants > 0:
		req.Tenant = w.TenantName(r.IntN(w.Tenants))
	}
	switch k := r.IntN(10); {
	case k < 5:
	case k < 9:
		req.Resource = fmt.Sprintf("docs/%d/%d", r.IntN(100), r.IntN(50))
	default:
		req.Resource = fmt.Sprintf("docs/%d/*", r.IntN(100))
	}
	return req
}
