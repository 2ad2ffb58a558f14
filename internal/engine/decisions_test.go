package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"go.yaml.in/yaml/v3"
)

// A decision case file (testdata/decisions/*.yaml) holds a configuration, subjects with
// grants, a fixed time, and checks with the expected answer. Names are resolved to
// deterministic ids; a name the configuration does not define gives an id that matches nothing
// (like a grant whose role or feature was deleted).
type caseFile struct {
	Description string        `yaml:"description"`
	Now         string        `yaml:"now"`
	Features    []caseFeature `yaml:"features"`
	Roles       []caseRole    `yaml:"roles"`
	Subjects    []caseSubject `yaml:"subjects"`
	Checks      []caseCheck   `yaml:"checks"`
}

type caseFeature struct {
	Name    string   `yaml:"name"`
	Actions []string `yaml:"actions"`
}

type caseRole struct {
	Name        string     `yaml:"name"`
	Permissions []casePerm `yaml:"permissions"`
}

type casePerm struct {
	Feature  string `yaml:"feature"`
	Action   string `yaml:"action"`
	Resource string `yaml:"resource"`
}

type caseSubject struct {
	ID        string         `yaml:"id"`
	Roles     []caseAssign   `yaml:"roles"`
	Overrides []caseOverride `yaml:"overrides"`
}

type caseAssign struct {
	Role       string `yaml:"role"`
	Tenant     string `yaml:"tenant"`
	ValidFrom  string `yaml:"valid_from"`
	ValidUntil string `yaml:"valid_until"`
}

type caseOverride struct {
	Feature    string `yaml:"feature"`
	Action     string `yaml:"action"`
	Effect     string `yaml:"effect"`
	Resource   string `yaml:"resource"`
	Tenant     string `yaml:"tenant"`
	ValidFrom  string `yaml:"valid_from"`
	ValidUntil string `yaml:"valid_until"`
}

type caseCheck struct {
	Name     string `yaml:"name"`
	Now      string `yaml:"now"` // overrides the file's now
	Subject  string `yaml:"subject"`
	Feature  string `yaml:"feature"`
	Action   string `yaml:"action"`
	Tenant   string `yaml:"tenant"`
	Resource string `yaml:"resource"`
	Allowed  bool   `yaml:"allowed"`
	Reason   string `yaml:"reason"`
	// Explain, when present, is the expected explanation: one entry per explained grant,
	// in order.
	Explain []caseExplained `yaml:"explain"`
}

type caseExplained struct {
	Kind    string `yaml:"kind"`
	Effect  string `yaml:"effect"`
	Role    string `yaml:"role"`
	Matched bool   `yaml:"matched"`
	Why     string `yaml:"why"`
}

func featureID(f string) string   { return "f-" + f }
func actionID(f, a string) string { return "a-" + f + "-" + a }
func roleID(r string) string      { return "r-" + r }

func parseTime(t *testing.T, s string) *time.Time {
	t.Helper()
	if s == "" {
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad time %q: %v", s, err)
	}
	return &v
}

// build turns a case file into what a store would load.
func (c *caseFile) build(t *testing.T) (*thauth.Config, []*thauth.SubjectGrants) {
	t.Helper()
	cfg := &thauth.Config{}
	for _, f := range c.Features {
		tf := thauth.Feature{ID: featureID(f.Name), Name: f.Name}
		for _, a := range f.Actions {
			tf.Actions = append(tf.Actions, thauth.Action{ID: actionID(f.Name, a), Name: a})
		}
		cfg.Features = append(cfg.Features, tf)
	}
	for _, r := range c.Roles {
		tr := thauth.Role{ID: roleID(r.Name), Name: r.Name}
		for _, p := range r.Permissions {
			tr.Permissions = append(tr.Permissions, thauth.Permission{
				FeatureID: featureID(p.Feature), FeatureName: p.Feature,
				ActionID: actionID(p.Feature, p.Action), ActionName: p.Action, Resource: p.Resource,
			})
		}
		cfg.Roles = append(cfg.Roles, tr)
	}
	var subjects []*thauth.SubjectGrants
	for _, s := range c.Subjects {
		sg := &thauth.SubjectGrants{Subject: thauth.Subject{ID: "s-" + s.ID, SubjectID: s.ID, SubjectType: "user"}}
		for _, a := range s.Roles {
			sg.Assignments = append(sg.Assignments, thauth.Assignment{
				RoleID: roleID(a.Role), RoleName: a.Role, Tenant: a.Tenant,
				Window: thauth.Window{From: parseTime(t, a.ValidFrom), Until: parseTime(t, a.ValidUntil)},
			})
		}
		for _, o := range s.Overrides {
			if o.Effect != "allow" && o.Effect != "deny" {
				t.Fatalf("subject %s: bad effect %q", s.ID, o.Effect)
			}
			sg.Overrides = append(sg.Overrides, thauth.Override{
				FeatureID: featureID(o.Feature), FeatureName: o.Feature,
				ActionID: actionID(o.Feature, o.Action), ActionName: o.Action,
				Effect: thauth.Effect(o.Effect), Resource: o.Resource, Tenant: o.Tenant,
				Window: thauth.Window{From: parseTime(t, o.ValidFrom), Until: parseTime(t, o.ValidUntil)},
			})
		}
		subjects = append(subjects, sg)
	}
	return cfg, subjects
}

func loadCases(t *testing.T) map[string]*caseFile {
	t.Helper()
	paths, err := filepath.Glob("testdata/decisions/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no decision cases: %v", err)
	}
	out := map[string]*caseFile{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		var c caseFile
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(c.Checks) == 0 {
			t.Fatalf("%s: no checks", p)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".yaml")] = &c
	}
	return out
}

// TestDecisions runs every case file: each check must give the expected decision and reason,
// with and without explanation, and regardless of the order of the grants.
func TestDecisions(t *testing.T) {
	for name, c := range loadCases(t) {
		t.Run(name, func(t *testing.T) {
			cfg, subjects := c.build(t)
			snap, err := Compile(thauth.Project{ID: "p", Revision: 1}, cfg, subjects)
			if err != nil {
				t.Fatal(err)
			}
			// The same grants in another order must decide the same (determinism).
			shuffled := shuffleGrants(subjects, rand.New(rand.NewPCG(1, 2)))
			snap2, err := Compile(thauth.Project{ID: "p", Revision: 1}, cfg, shuffled)
			if err != nil {
				t.Fatal(err)
			}
			for i, ch := range c.Checks {
				label := ch.Name
				if label == "" {
					label = fmt.Sprintf("#%d", i)
				}
				t.Run(label, func(t *testing.T) {
					now := parseTime(t, cmpOr(ch.Now, c.Now))
					if now == nil {
						t.Fatal("no now")
					}
					if ch.Reason == "" {
						t.Fatal("check without expected reason")
					}
					req := &thauth.CheckRequest{Subject: ch.Subject, Feature: ch.Feature, Action: ch.Action, Tenant: ch.Tenant, Resource: ch.Resource}
					want := thauth.Decision{Allowed: ch.Allowed, Reason: ch.Reason}
					if got := snap.Check(req, *now); !cmp.Equal(got, want) {
						t.Fatalf("Check(%+v) = %+v, want %+v", *req, got, want)
					}
					if got := snap2.Check(req, *now); !cmp.Equal(got, want) {
						t.Fatalf("with shuffled grants: Check(%+v) = %+v, want %+v", *req, got, want)
					}
					ereq := *req
					ereq.Explain = true
					got := snap.Check(&ereq, *now)
					if got.Allowed != want.Allowed || got.Reason != want.Reason || got.Explain == nil {
						t.Fatalf("with explain: Check(%+v) = %+v, want %+v", ereq, got, want)
					}
					checkExplanation(t, snap, req, got)
					if ch.Explain != nil {
						gotEx := []caseExplained{}
						for _, g := range got.Explain.Grants {
							gotEx = append(gotEx, caseExplained{Kind: g.Kind, Effect: g.Effect, Role: g.Role, Matched: g.Matched, Why: g.Why})
						}
						if diff := cmp.Diff(ch.Explain, gotEx); diff != "" {
							t.Errorf("explanation (-want +got):\n%s", diff)
						}
					}
				})
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func shuffleGrants(in []*thauth.SubjectGrants, r *rand.Rand) []*thauth.SubjectGrants {
	out := make([]*thauth.SubjectGrants, len(in))
	for i, sg := range in {
		c := *sg
		c.Assignments = slices.Clone(sg.Assignments)
		c.Overrides = slices.Clone(sg.Overrides)
		r.Shuffle(len(c.Assignments), func(i, j int) { c.Assignments[i], c.Assignments[j] = c.Assignments[j], c.Assignments[i] })
		r.Shuffle(len(c.Overrides), func(i, j int) { c.Overrides[i], c.Overrides[j] = c.Overrides[j], c.Overrides[i] })
		out[len(in)-1-i] = &c
	}
	return out
}

// checkExplanation asserts that an explanation agrees with its decision: the grants marked
// matched are exactly the ones that could have decided, and the decision follows from them by
// the rules of spec §2.
func checkExplanation(t *testing.T, s *Snapshot, req *thauth.CheckRequest, d thauth.Decision) {
	t.Helper()
	ex := d.Explain
	var deny, allow bool
	var roles []string
	for _, g := range ex.Grants {
		if g.Matched != (g.Why == whyMatched) {
			t.Errorf("grant %+v: matched=%v but why=%q", g, g.Matched, g.Why)
		}
		if !g.Matched {
			continue
		}
		switch {
		case g.Kind == "override" && g.Effect == "deny":
			deny = true
		case g.Kind == "override" && g.Effect == "allow":
			allow = true
		case g.Kind == "role":
			roles = append(roles, g.Role)
		default:
			t.Errorf("odd grant %+v", g)
		}
	}
	slices.Sort(roles)
	var want thauth.Decision
	switch {
	case deny:
		want = thauth.Decision{Reason: thauth.ReasonOverrideDeny}
	case allow:
		want = thauth.Decision{Allowed: true, Reason: thauth.ReasonOverrideAllow}
	case len(roles) > 0:
		want = thauth.Decision{Allowed: true, Reason: thauth.ReasonRolePrefix + roles[0]}
	default:
		want = thauth.Decision{Reason: thauth.ReasonDefaultDeny}
	}
	if d.Allowed != want.Allowed || d.Reason != want.Reason {
		t.Errorf("explanation %+v implies %+v, decision was %+v", ex, want, d)
	}
	sub := s.subjects.get(req.Subject)
	if ex.SubjectKnown != (sub != nil) {
		t.Errorf("SubjectKnown = %v", ex.SubjectKnown)
	}
	if sub != nil && len(ex.Grants) < len(sub.grants) {
		t.Errorf("explanation lists %d grants, subject has %d", len(ex.Grants), len(sub.grants))
	}
}
