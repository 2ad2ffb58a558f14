package cluster

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The configuration document (shared/spec/config-document.md), as these tests write and read
// it. Fields the tests never set (validity windows) are left out: decoding ignores them.

type document struct {
	Version  int        `json:"version"`
	Features []feature  `json:"features"`
	Roles    []role     `json:"roles"`
	Subjects *[]subject `json:"subjects,omitempty"` // nil: absent, subjects left alone
}

type feature struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Actions     []string `json:"actions,omitempty"`
}

type role struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Permissions []permission `json:"permissions,omitempty"`
}

type permission struct {
	Feature  string `json:"feature"`
	Action   string `json:"action"`
	Resource string `json:"resource,omitempty"`
}

type subject struct {
	ID        string       `json:"id"`
	Type      string       `json:"type"`
	Roles     []assignment `json:"roles,omitempty"`
	Overrides []override   `json:"overrides,omitempty"`
}

type assignment struct {
	Role   string `json:"role"`
	Tenant string `json:"tenant,omitempty"`
}

type override struct {
	Feature  string `json:"feature"`
	Action   string `json:"action"`
	Effect   string `json:"effect"`
	Tenant   string `json:"tenant,omitempty"`
	Resource string `json:"resource,omitempty"`
}

func (d *document) JSON() []byte {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	return b
}

// normalize sorts everything that has no meaningful order, so that documents compare equal
// when they describe the same state.
func (d *document) normalize() {
	slices.SortFunc(d.Features, func(a, b feature) int { return strings.Compare(a.Name, b.Name) })
	for i := range d.Features {
		slices.Sort(d.Features[i].Actions)
	}
	slices.SortFunc(d.Roles, func(a, b role) int { return strings.Compare(a.Name, b.Name) })
	for i := range d.Roles {
		slices.SortFunc(d.Roles[i].Permissions, func(a, b permission) int {
			return cmp.Or(strings.Compare(a.Feature, b.Feature), strings.Compare(a.Action, b.Action),
				strings.Compare(a.Resource, b.Resource))
		})
	}
	if d.Subjects != nil {
		ss := *d.Subjects
		slices.SortFunc(ss, func(a, b subject) int { return strings.Compare(a.ID, b.ID) })
		for i := range ss {
			slices.SortFunc(ss[i].Roles, func(a, b assignment) int {
				return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Role, b.Role))
			})
			slices.SortFunc(ss[i].Overrides, func(a, b override) int {
				return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Feature, b.Feature),
					strings.Compare(a.Action, b.Action), strings.Compare(a.Resource, b.Resource),
					strings.Compare(a.Effect, b.Effect))
			})
		}
	}
}

// ---------------------------------------------------------------------------------------
// Generations: documents whose every part names the generation, for the crash tests.

// generationDocument is the configuration of generation g. Each generation has a feature of
// its own (gen-<g>) used by role r1, the same description on every role and feature, and a
// role that exists only in odd or only in even generations, so an apply that was only partly
// visible shows up as a mix of two generations. Roles r1 and r2 keep their names, hence
// their ids, across generations, so subjects assigned to them stay valid.
func generationDocument(g int) *document {
	desc := "generation " + strconv.Itoa(g)
	gen := "gen-" + strconv.Itoa(g)
	parity := "parity-even"
	if g%2 == 1 {
		parity = "parity-odd"
	}
	d := &document{
		Version: 1,
		Features: []feature{
			{Name: "base", Description: desc, Actions: []string{"read", "write"}},
			{Name: gen, Description: desc, Actions: []string{"read"}},
		},
		Roles: []role{
			{Name: "r1", Description: desc, Permissions: []permission{{Feature: "base", Action: "read"}, {Feature: gen, Action: "read"}}},
			{Name: "r2", Description: desc, Permissions: []permission{{Feature: "base", Action: "write"}}},
			{Name: parity, Description: desc, Permissions: []permission{{Feature: "base", Action: "read", Resource: "docs/" + strconv.Itoa(g) + "/*"}}},
		},
	}
	d.normalize()
	return d
}

// generationOf finds the generation an exported document is at and checks that every part
// of it is of that one generation.
func generationOf(exported *document) (int, error) {
	g := -1
	for _, f := range exported.Features {
		if n, ok := strings.CutPrefix(f.Name, "gen-"); ok {
			v, err := strconv.Atoi(n)
			if err != nil || g != -1 {
				return 0, fmt.Errorf("features %+v: not one generation feature", exported.Features)
			}
			g = v
		}
	}
	if g < 0 {
		return 0, fmt.Errorf("features %+v: no generation feature", exported.Features)
	}
	want := generationDocument(g)
	got := &document{Version: 1, Features: exported.Features, Roles: exported.Roles}
	got.normalize()
	if !jsonEqual(want, got) {
		return g, fmt.Errorf("a mix of generations:\nwant (generation %d) %s\ngot %s", g, want.JSON(), got.JSON())
	}
	return g, nil
}

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// ---------------------------------------------------------------------------------------
// Random documents, for the multi-node test.

var (
	featurePool = []string{"billing", "reports", "users", "audit", "exports"}
	actionPool  = []string{"read", "write", "delete", "export"}
	rolePool    = []string{"admin", "auditor", "editor", "viewer", "support", "ops"}
	tenantPool  = []string{"t1", "t2"}
	patternPool = []string{"", "", "*", "docs/*", "docs/1", "prod/api/*"}
)

// pick returns a random non-empty subset of pool of at most max elements, in pool order.
func pick(rng *rand.Rand, pool []string, max int) []string {
	n := 1 + rng.IntN(min(max, len(pool)))
	idx := rng.Perm(len(pool))[:n]
	slices.Sort(idx)
	out := make([]string, n)
	for i, j := range idx {
		out[i] = pool[j]
	}
	return out
}

// randomDocument returns a valid document over the pools: some features with some actions,
// some roles with permissions on them, and — one time in eight — a subjects list, which
// replaces every subject of the project.
func randomDocument(rng *rand.Rand) *document {
	d := &document{Version: 1}
	type fa struct{ f, a string }
	var actions []fa
	for _, f := range pick(rng, featurePool, len(featurePool)) {
		acts := pick(rng, actionPool, len(actionPool))
		d.Features = append(d.Features, feature{Name: f, Description: []string{"", "v1", "v2"}[rng.IntN(3)], Actions: acts})
		for _, a := range acts {
			actions = append(actions, fa{f, a})
		}
	}
	for _, r := range pick(rng, rolePool, len(rolePool)) {
		seen := map[permission]bool{}
		ro := role{Name: r, Description: []string{"", "first", "second"}[rng.IntN(3)]}
		for range 1 + rng.IntN(4) {
			x := actions[rng.IntN(len(actions))]
			p := permission{Feature: x.f, Action: x.a, Resource: patternPool[rng.IntN(len(patternPool))]}
			if !seen[p] {
				seen[p] = true
				ro.Permissions = append(ro.Permissions, p)
			}
		}
		d.Roles = append(d.Roles, ro)
	}
	if rng.IntN(8) == 0 {
		subjects := []subject{}
		for i := range 1 + rng.IntN(4) {
			s := subject{ID: "doc-u" + strconv.Itoa(i), Type: "user"}
			seenA := map[assignment]bool{}
			for range rng.IntN(3) {
				a := assignment{Role: d.Roles[rng.IntN(len(d.Roles))].Name, Tenant: randomTenant(rng)}
				if !seenA[a] {
					seenA[a] = true
					s.Roles = append(s.Roles, a)
				}
			}
			seenO := map[override]bool{}
			for range rng.IntN(2) {
				x := actions[rng.IntN(len(actions))]
				o := override{Feature: x.f, Action: x.a, Effect: []string{"allow", "deny"}[rng.IntN(2)],
					Tenant: randomTenant(rng), Resource: patternPool[rng.IntN(len(patternPool))]}
				if !seenO[o] {
					seenO[o] = true
					s.Overrides = append(s.Overrides, o)
				}
			}
			subjects = append(subjects, s)
		}
		d.Subjects = &subjects
	}
	return d
}

// randomTenant returns "" (global) half of the time, else a tenant of the pool.
func randomTenant(rng *rand.Rand) string {
	if rng.IntN(2) == 0 {
		return ""
	}
	return tenantPool[rng.IntN(len(tenantPool))]
}

// TestGenerationOf checks the crash tests' oracle: it must recognise every whole generation
// and reject any mix of two.
func TestGenerationOf(t *testing.T) {
	for g := 1; g <= 4; g++ {
		if got, err := generationOf(generationDocument(g)); err != nil || got != g {
			t.Errorf("generation %d: got %d, %v", g, got, err)
		}
	}
	mixes := map[string]func(d *document){
		"a role of the next generation": func(d *document) { d.Roles[1] = generationDocument(6).Roles[1] },
		"the parity role of the next":   func(d *document) { d.Roles[0] = generationDocument(6).Roles[0] },
		"a feature description":         func(d *document) { d.Features[0].Description = "generation 6" },
		"two generation features":       func(d *document) { d.Features = append(d.Features, feature{Name: "gen-6", Actions: []string{"read"}}) },
		"a permission missing":          func(d *document) { d.Roles[1].Permissions = d.Roles[1].Permissions[:1] },
		"no generation feature":         func(d *document) { d.Features = d.Features[:1] },
	}
	for name, mix := range mixes {
		d := generationDocument(5)
		mix(d)
		if g, err := generationOf(d); err == nil {
			t.Errorf("%s: accepted as generation %d", name, g)
		}
	}
}
