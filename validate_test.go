package thauth

import (
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "billing", "billing-admin", "v1.read", "ns:thing", "A_b", "9lives", strings.Repeat("x", 64)}
	bad := []string{"", "-a", "_a", ".a", ":a", "a b", "a/b", "é", strings.Repeat("x", 65), "a*"}
	for _, s := range good {
		if msg := ValidateName(s); msg != "" {
			t.Errorf("ValidateName(%q) = %q, want valid", s, msg)
		}
	}
	for _, s := range bad {
		if ValidateName(s) == "" {
			t.Errorf("ValidateName(%q) accepted a bad name", s)
		}
	}
}

func TestValidateIdentifier(t *testing.T) {
	good := []string{"user:alice", "user_123", "tenant acme", "ünïcode", strings.Repeat("x", 256)}
	bad := []string{"", "a\nb", "a\x00", "tab\t", "\x7f", "bad\xff", strings.Repeat("x", 257), "c1\u0085"}
	for _, s := range good {
		if msg := ValidateIdentifier(s); msg != "" {
			t.Errorf("ValidateIdentifier(%q) = %q, want valid", s, msg)
		}
	}
	for _, s := range bad {
		if ValidateIdentifier(s) == "" {
			t.Errorf("ValidateIdentifier(%q) accepted a bad identifier", s)
		}
	}
}

func TestValidateResource(t *testing.T) {
	good := []string{"*", "dev/*", "prod/api/*", "invoices/42", "a", "a/b/c", strings.Repeat("x", 512)}
	bad := []string{"", "/", "a/", "/a", "a//b", "*/a", "a*", "a/*b", "a/b*/c", "**", "a/**", strings.Repeat("x", 513), "a\nb"}
	for _, s := range good {
		if msg := ValidateResource(s); msg != "" {
			t.Errorf("ValidateResource(%q) = %q, want valid", s, msg)
		}
	}
	for _, s := range bad {
		if ValidateResource(s) == "" {
			t.Errorf("ValidateResource(%q) accepted a bad resource", s)
		}
	}
}

func TestValidateScopes(t *testing.T) {
	if msg := ValidateScopes([]string{ScopeAdmin, ScopeDecisionsRead}); msg != "" {
		t.Errorf("valid scopes rejected: %s", msg)
	}
	for _, bad := range [][]string{nil, {"root"}, {ScopeAdmin, ScopeAdmin}} {
		if ValidateScopes(bad) == "" {
			t.Errorf("ValidateScopes(%q) accepted", bad)
		}
	}
}

func TestWindowActive(t *testing.T) {
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	until := from.Add(7 * 24 * time.Hour)
	w := Window{From: &from, Until: &until}
	cases := []struct {
		at   time.Time
		want bool
	}{
		{from.Add(-time.Microsecond), false},
		{from, true},
		{until.Add(-time.Microsecond), true},
		{until, false},
	}
	for _, c := range cases {
		if got := w.Active(c.at); got != c.want {
			t.Errorf("Active(%s) = %v, want %v", c.at, got, c.want)
		}
	}
	if !(Window{}).Active(from) {
		t.Error("an open window must always be active")
	}
}

func TestConfigVersion(t *testing.T) {
	base := func() *Config {
		return &Config{
			Features: []Feature{{ID: "f1", Name: "billing", Actions: []Action{{ID: "a2", Name: "write"}, {ID: "a1", Name: "read"}}}},
			Roles: []Role{{ID: "r1", Name: "admin", Permissions: []Permission{
				{FeatureID: "f1", FeatureName: "billing", ActionID: "a2", ActionName: "write"},
				{FeatureID: "f1", FeatureName: "billing", ActionID: "a1", ActionName: "read", Resource: "x/*"},
			}}},
		}
	}
	a, b := base(), base()
	a.Sort()
	b.Sort()
	if a.Version() != b.Version() {
		t.Fatal("equal configurations must have equal versions")
	}
	if a.Features[0].Actions[0].Name != "read" || a.Roles[0].Permissions[0].ActionName != "read" {
		t.Fatalf("Sort did not order actions/permissions: %+v", a)
	}
	mutations := map[string]func(c *Config){
		"feature description": func(c *Config) { c.Features[0].Description = "x" },
		"action renamed":      func(c *Config) { c.Features[0].Actions[0].Name = "view" },
		"role renamed":        func(c *Config) { c.Roles[0].Name = "admins" },
		"permission resource": func(c *Config) { c.Roles[0].Permissions[0].Resource = "" },
		"permission removed":  func(c *Config) { c.Roles[0].Permissions = c.Roles[0].Permissions[:1] },
		"role added":          func(c *Config) { c.Roles = append(c.Roles, Role{ID: "r2", Name: "b"}) },
		"id changed":          func(c *Config) { c.Roles[0].ID = "r9" },
		"field boundary":      func(c *Config) { c.Roles[0].Name, c.Roles[0].Description = "ad", "min" },
	}
	for name, mutate := range mutations {
		c := base()
		c.Sort()
		mutate(c)
		if c.Version() == a.Version() {
			t.Errorf("%s: version did not change", name)
		}
	}
}
