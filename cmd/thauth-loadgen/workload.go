package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/thauth/thauth/sdk/go/thauth"
)

// A workload is a realistic project (features, roles, subjects with grants in many tenants)
// and a pool of check requests about it. It is generated from a seed, so a later run with
// the same seed and sizes produces checks that match what -setup applied earlier.

type feature struct {
	name    string
	actions []string
}

var features = []feature{
	{"billing", []string{"read", "write", "refund"}},
	{"reports", []string{"read", "export"}},
	{"users", []string{"read", "invite", "remove"}},
	{"projects", []string{"read", "write", "delete"}},
	{"documents", []string{"read", "write", "share", "delete"}},
	{"audit-log", []string{"read"}},
	{"settings", []string{"read", "write"}},
	{"api-keys", []string{"read", "create", "revoke"}},
}

// perm is a permission of a role: feature, action and an optional resource pattern.
type perm struct{ feature, action, resource string }

type role struct {
	name  string
	perms []perm
}

func roles() []role {
	all := func(filter func(f, a string) bool, resource string) []perm {
		var ps []perm
		for _, f := range features {
			for _, a := range f.actions {
				if filter(f.name, a) {
					ps = append(ps, perm{f.name, a, resource})
				}
			}
		}
		return ps
	}
	return []role{
		{"owner", all(func(f, a string) bool { return true }, "")},
		{"admin", all(func(f, a string) bool { return f != "billing" || a == "read" }, "")},
		{"billing-admin", []perm{{"billing", "read", ""}, {"billing", "write", ""}, {"billing", "refund", "invoices/*"}}},
		{"analyst", []perm{{"reports", "read", ""}, {"reports", "export", ""}, {"documents", "read", ""}}},
		{"viewer", all(func(f, a string) bool { return a == "read" && f != "audit-log" && f != "api-keys" }, "")},
		{"developer", []perm{{"projects", "read", ""}, {"projects", "write", "dev/*"}, {"documents", "read", ""},
			{"documents", "write", "dev/*"}, {"api-keys", "read", ""}, {"api-keys", "create", "dev/*"}}},
		{"support", []perm{{"users", "read", ""}, {"billing", "read", ""}, {"documents", "read", "support/*"}}},
		{"auditor", []perm{{"audit-log", "read", ""}, {"reports", "read", ""}, {"settings", "read", ""}}},
	}
}

var resources = []string{"prod/db", "prod/api/v1", "dev/api/1", "dev/web", "invoices/2026-001", "invoices/2026-002",
	"support/ticket-9", "dev/*", "prod/*"}

// grant is a subject's role assignment (role != "") or override.
type grant struct {
	role, tenant            string
	feature, action, effect string
	resource                string
	validFrom, validUntil   *time.Time
}

type subject struct {
	id      string
	tenants []string // the tenants it has grants in ("" = global)
	grants  []grant
}

type workload struct {
	seed     uint64
	tenants  []string
	roles    []role
	subjects []subject
}

func newWorkload(seed uint64, nSubjects, nTenants int) *workload {
	r := rand.New(rand.NewPCG(seed, 0x7468617574680000))
	w := &workload{seed: seed, roles: roles()}
	for i := range nTenants {
		w.tenants = append(w.tenants, fmt.Sprintf("tenant_%03d", i))
	}
	past, future := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range nSubjects {
		s := subject{id: fmt.Sprintf("user:%06d", i)}
		if i%10 == 9 {
			s.id = fmt.Sprintf("service:%06d", i)
		}
		seen := map[string]bool{}
		for range 1 + r.IntN(3) {
			t := w.tenants[r.IntN(len(w.tenants))]
			if r.IntN(10) == 0 {
				t = "" // global
			}
			g := grant{role: w.roles[r.IntN(len(w.roles))].name, tenant: t}
			if seen[g.role+"\x00"+t] {
				continue
			}
			seen[g.role+"\x00"+t] = true
			if r.IntN(8) == 0 {
				g.validUntil = &future
			}
			s.grants = append(s.grants, g)
			s.tenants = append(s.tenants, t)
		}
		if r.IntN(5) == 0 { // an override in one of its tenants
			f := features[r.IntN(len(features))]
			g := grant{tenant: s.tenants[r.IntN(len(s.tenants))], feature: f.name, action: f.actions[r.IntN(len(f.actions))], effect: "deny"}
			if r.IntN(3) == 0 {
				g.effect = "allow"
				g.validFrom, g.validUntil = &past, &future
			}
			if r.IntN(2) == 0 {
				g.resource = "prod/*"
			}
			s.grants = append(s.grants, g)
		}
		w.subjects = append(w.subjects, s)
	}
	return w
}

// document returns the workload as a configuration document (JSON).
func (w *workload) document() ([]byte, error) {
	type permDoc struct {
		Feature  string `json:"feature"`
		Action   string `json:"action"`
		Resource string `json:"resource,omitempty"`
	}
	type roleDoc struct {
		Name        string    `json:"name"`
		Permissions []permDoc `json:"permissions"`
	}
	type featureDoc struct {
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	type assignDoc struct {
		Role       string     `json:"role"`
		Tenant     string     `json:"tenant,omitempty"`
		ValidUntil *time.Time `json:"valid_until,omitempty"`
	}
	type overrideDoc struct {
		Feature    string     `json:"feature"`
		Action     string     `json:"action"`
		Effect     string     `json:"effect"`
		Tenant     string     `json:"tenant,omitempty"`
		Resource   string     `json:"resource,omitempty"`
		ValidFrom  *time.Time `json:"valid_from,omitempty"`
		ValidUntil *time.Time `json:"valid_until,omitempty"`
	}
	type subjectDoc struct {
		ID        string        `json:"id"`
		Type      string        `json:"type"`
		Roles     []assignDoc   `json:"roles,omitempty"`
		Overrides []overrideDoc `json:"overrides,omitempty"`
	}
	doc := struct {
		Version  int          `json:"version"`
		Features []featureDoc `json:"features"`
		Roles    []roleDoc    `json:"roles"`
		Subjects []subjectDoc `json:"subjects"`
	}{Version: 1}
	for _, f := range features {
		doc.Features = append(doc.Features, featureDoc{f.name, f.actions})
	}
	for _, r := range w.roles {
		rd := roleDoc{Name: r.name}
		for _, p := range r.perms {
			rd.Permissions = append(rd.Permissions, permDoc{p.feature, p.action, p.resource})
		}
		doc.Roles = append(doc.Roles, rd)
	}
	for _, s := range w.subjects {
		sd := subjectDoc{ID: s.id, Type: "user"}
		if s.id[:8] == "service:" {
			sd.Type = "service"
		}
		for _, g := range s.grants {
			if g.role != "" {
				sd.Roles = append(sd.Roles, assignDoc{g.role, g.tenant, g.validUntil})
			} else {
				sd.Overrides = append(sd.Overrides, overrideDoc{g.feature, g.action, g.effect, g.tenant, g.resource, g.validFrom, g.validUntil})
			}
		}
		doc.Subjects = append(doc.Subjects, sd)
	}
	return json.Marshal(doc)
}

// bodies returns n request bodies of POST /v1/check about the workload: mostly subjects in
// tenants where they have grants, with a share of other tenants, unknown subjects, unknown
// actions and resources (plain and wildcard), as a real application would send.
func (w *workload) bodies(n int) ([][]byte, error) {
	r := rand.New(rand.NewPCG(w.seed, 0x636865636b730000))
	out := make([][]byte, 0, n)
	for range n {
		var req thauth.CheckRequest
		switch s := w.subjects[r.IntN(len(w.subjects))]; {
		case r.IntN(20) == 0:
			req.Subject = fmt.Sprintf("user:unknown-%d", r.IntN(1000))
		default:
			req.Subject = s.id
			t := s.tenants[r.IntN(len(s.tenants))]
			if r.IntN(4) == 0 {
				t = w.tenants[r.IntN(len(w.tenants))]
			}
			if t != "" {
				req.TenantID = &t
			}
		}
		f := features[r.IntN(len(features))]
		req.Feature, req.Action = f.name, f.actions[r.IntN(len(f.actions))]
		if r.IntN(50) == 0 {
			req.Action = "unknown-action"
		}
		if r.IntN(5) < 2 {
			res := resources[r.IntN(len(resources))]
			req.Resource = &res
		}
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
