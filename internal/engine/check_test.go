package engine

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// TestCheckNeverPanics feeds requests that would crash a careless evaluator: Check must
// answer thauth.ErrorDecision, not panic.
func TestCheckNeverPanics(t *testing.T) {
	s, err := Compile(thauth.Project{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Check(nil, testNow); d != thauth.ErrorDecision {
		t.Fatalf("Check(nil) = %+v", d)
	}
	var nilSnap *Snapshot
	if d := nilSnap.Check(&thauth.CheckRequest{Subject: "a", Feature: "b", Action: "c"}, testNow); d != thauth.ErrorDecision {
		t.Fatalf("nil snapshot Check = %+v", d)
	}
	if d := (&Snapshot{}).Check(&thauth.CheckRequest{Subject: "a", Feature: "b", Action: "c"}, testNow); d != thauth.ErrorDecision {
		t.Fatalf("empty snapshot Check = %+v", d)
	}
	// A snapshot broken inside (a grant holding a zero handle) fails closed when explaining.
	cfg := &thauth.Config{
		Features: []thauth.Feature{{ID: "f", Name: "docs", Actions: []thauth.Action{{ID: "a", Name: "read"}}}},
		Roles:    []thauth.Role{{ID: "r", Name: "reader", Permissions: []thauth.Permission{{FeatureID: "f", ActionID: "a"}}}},
	}
	s, err = Compile(thauth.Project{}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ed := newEditor(s.subjects)
	broken := newSubjectC("broken")
	broken.grants = []grantC{{from: noFrom, until: noUntil}}
	ed.put(broken)
	s.subjects = ed.done()
	d := s.Check(&thauth.CheckRequest{Subject: "broken", Feature: "docs", Action: "read", Explain: true}, testNow)
	if d.Allowed || d.Reason != thauth.ReasonError || d.Explain != nil {
		t.Fatalf("broken snapshot: %+v", d)
	}
}

// TestCheckAllocations holds the decision path to zero allocations.
func TestCheckAllocations(t *testing.T) {
	cfg := &thauth.Config{
		Features: []thauth.Feature{{ID: "f", Name: "docs", Actions: []thauth.Action{{ID: "a", Name: "read"}}}},
		Roles:    []thauth.Role{{ID: "r", Name: "reader", Permissions: []thauth.Permission{{FeatureID: "f", ActionID: "a", Resource: "x/*"}}}},
	}
	subjects := []*thauth.SubjectGrants{{
		Subject:     thauth.Subject{SubjectID: "u"},
		Assignments: []thauth.Assignment{{RoleID: "r", Tenant: "t"}},
		Overrides:   []thauth.Override{{FeatureID: "f", ActionID: "a", Effect: thauth.Deny, Resource: "x/secret"}},
	}}
	s, err := Compile(thauth.Project{}, cfg, subjects)
	if err != nil {
		t.Fatal(err)
	}
	req := &thauth.CheckRequest{Subject: "u", Feature: "docs", Action: "read", Tenant: "t", Resource: "x/y"}
	if d := s.Check(req, testNow); !d.Allowed {
		t.Fatalf("setup: %+v", d)
	}
	if n := testing.AllocsPerRun(1000, func() { s.Check(req, testNow) }); n != 0 {
		t.Fatalf("Check allocates %v times", n)
	}
}

// FuzzCheck evaluates arbitrary requests against a subject whose grants carry fuzzed patterns
// and tenants: Check must not fail, must agree with the matcher, and its explanation must
// agree with its decision.
func FuzzCheck(f *testing.F) {
	f.Add("dev/*", "dev/api/x", "dev/api/*", "t1", "t1", "dev/api/*")
	f.Add("", "*", "x", "", "t", "")
	f.Add("a/b", "a/*", "*", "t", "", "a/b")
	f.Fuzz(func(t *testing.T, allowP, denyP, roleP, grantTenant, reqTenant, resource string) {
		cfg := &thauth.Config{
			Features: []thauth.Feature{{ID: "f", Name: "docs", Actions: []thauth.Action{{ID: "a", Name: "read"}}}},
			Roles:    []thauth.Role{{ID: "r", Name: "reader", Permissions: []thauth.Permission{{FeatureID: "f", ActionID: "a", Resource: roleP}}}},
		}
		subjects := []*thauth.SubjectGrants{{
			Subject:     thauth.Subject{SubjectID: "u"},
			Assignments: []thauth.Assignment{{RoleID: "r", Tenant: grantTenant}},
			Overrides: []thauth.Override{
				{FeatureID: "f", ActionID: "a", Effect: thauth.Allow, Resource: allowP, Tenant: grantTenant},
				{FeatureID: "f", ActionID: "a", Effect: thauth.Deny, Resource: denyP},
			},
		}}
		s, err := Compile(thauth.Project{}, cfg, subjects)
		if err != nil {
			t.Fatal(err)
		}
		req := &thauth.CheckRequest{Subject: "u", Feature: "docs", Action: "read", Tenant: reqTenant, Resource: resource, Explain: true}
		d := s.Check(req, testNow)
		r := parseResource(resource)
		inTenant := grantTenant == "" || grantTenant == reqTenant
		var want thauth.Decision
		switch {
		case touches(denyP, r):
			want = thauth.Decision{Reason: thauth.ReasonOverrideDeny}
		case inTenant && covers(allowP, r):
			want = thauth.Decision{Allowed: true, Reason: thauth.ReasonOverrideAllow}
		case inTenant && covers(roleP, r):
			want = thauth.Decision{Allowed: true, Reason: "role:reader"}
		default:
			want = thauth.Decision{Reason: thauth.ReasonDefaultDeny}
		}
		if d.Allowed != want.Allowed || d.Reason != want.Reason {
			t.Fatalf("Check = %+v, want %+v", d, want)
		}
		checkExplanation(t, s, req, d)
	})
}

// TestExplainContent checks every field of an explanation once.
func TestExplainContent(t *testing.T) {
	from := testNow.Add(-time.Hour)
	until := testNow.Add(time.Hour)
	cfg := &thauth.Config{
		Features: []thauth.Feature{{ID: "f", Name: "docs", Actions: []thauth.Action{{ID: "a", Name: "read"}, {ID: "w", Name: "write"}}}},
		Roles: []thauth.Role{{ID: "r", Name: "reader", Permissions: []thauth.Permission{
			{FeatureID: "f", ActionID: "a", Resource: "x/*"}, {FeatureID: "f", ActionID: "a", Resource: "y"},
		}}},
	}
	subjects := []*thauth.SubjectGrants{{
		Subject:     thauth.Subject{SubjectID: "u"},
		Assignments: []thauth.Assignment{{RoleID: "r", Tenant: "t1", Window: thauth.Window{From: &from, Until: &until}}},
		Overrides: []thauth.Override{
			{FeatureID: "f", ActionID: "w", Effect: thauth.Deny},
			{FeatureID: "f", ActionID: "a", Effect: thauth.Allow, Resource: "z/*"},
		},
	}}
	s, err := Compile(thauth.Project{}, cfg, subjects)
	if err != nil {
		t.Fatal(err)
	}
	d := s.Check(&thauth.CheckRequest{Subject: "u", Feature: "docs", Action: "read", Tenant: "t1", Resource: "x/1", Explain: true}, testNow)
	want := &thauth.Explanation{
		SubjectKnown: true, FeatureKnown: true, ActionKnown: true,
		Grants: []thauth.ExplainedGrant{
			{Kind: "override", Effect: "deny", Feature: "docs", Action: "write", Why: whyOtherFeature},
			{Kind: "override", Effect: "allow", Feature: "docs", Action: "read", Resource: "z/*", Why: whyNoResource},
			{Kind: "role", Role: "reader", Feature: "docs", Action: "read", Resource: "x/*", Tenant: "t1", ValidFrom: &from, ValidUntil: &until, Matched: true, Why: whyMatched},
			{Kind: "role", Role: "reader", Feature: "docs", Action: "read", Resource: "y", Tenant: "t1", ValidFrom: &from, ValidUntil: &until, Why: whyNoResource},
		},
	}
	if !d.Allowed || d.Reason != "role:reader" {
		t.Fatalf("decision %+v", d)
	}
	if diff := cmp.Diff(want, d.Explain); diff != "" {
		t.Fatalf("explanation (-want +got):\n%s", diff)
	}
	// Without a tenant the tenant-scoped role is out of scope.
	d = s.Check(&thauth.CheckRequest{Subject: "u", Feature: "docs", Action: "read", Resource: "x/1", Explain: true}, testNow)
	if d.Allowed || d.Explain.Grants[2].Why != whyTenantOnly {
		t.Fatalf("no tenant: %+v", d.Explain.Grants[2])
	}
}
