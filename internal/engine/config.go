package engine

import (
	"hash/maphash"
	"slices"
	"unique"

	"github.com/thauth/thauth"
)

// handle is an interned string. Role, feature and action ids are held as handles, so that a
// million grants naming the same role share one copy of its id and compare with it by pointer.
// Handles are weak: an id nothing refers to any more is freed.
type handle = unique.Handle[string]

// intern returns the handle of s.
func intern(s string) handle { return unique.Make(s) }

// compiledConfig is a project's configuration compiled for evaluation. It is immutable once
// built and shared by every snapshot until the configuration changes.
type compiledConfig struct {
	cfg      *thauth.Config // canonical order; shared, read-only
	version  string
	features map[string]*featureC // by name
	roles    map[handle]*roleC    // by role id
	// For explanations only: names by id.
	featureNames map[handle]string
	actionNames  map[handle]string
}

type featureC struct {
	id      handle
	name    string
	actions map[string]*actionC // by name
}

type actionC struct {
	id      handle
	feature handle
	op      int32 // index of (feature, action) in this configuration
	// roles finds what a role allows on this action: the one lookup rule 3 makes per
	// assignment. It is kept per action and compact, so that the table a check touches
	// stays small and cached whatever the number of roles.
	roles roleTable
}

// roleTable maps role ids to what the role allows on one action: an open-addressing table
// (linear probing, at most half full) whose slots hold the role id and the position of its
// permission, so that a lookup usually reads one cache line.
type roleTable struct {
	slots []roleSlot
	perms []permC
}

type roleSlot struct {
	role handle // zero handle: empty slot
	at   int32  // index in perms
}

// roleSeed hashes role handles (their pointers) for roleTables.
var roleSeed = maphash.MakeSeed()

func buildRoleTable(ids []handle, perms []permC) roleTable {
	if len(ids) == 0 {
		return roleTable{}
	}
	size := 4
	for size < 2*len(ids) {
		size *= 2
	}
	t := roleTable{slots: make([]roleSlot, size), perms: perms}
	mask := uint64(size - 1)
	for n, id := range ids {
		i := maphash.Comparable(roleSeed, id) & mask
		for t.slots[i].role != (handle{}) {
			i = (i + 1) & mask
		}
		t.slots[i] = roleSlot{id, int32(n)}
	}
	return t
}

// get returns what role id allows on the action, or nil.
func (t *roleTable) get(id handle) *permC {
	if len(t.slots) == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := maphash.Comparable(roleSeed, id) & mask; ; i = (i + 1) & mask {
		switch t.slots[i].role {
		case id:
			return &t.perms[t.slots[i].at]
		case handle{}:
			return nil
		}
	}
}

// permC is what one role allows on one (feature, action).
type permC struct {
	rank     int32    // the role's rank
	any      bool     // a permission without pattern (or "*"): covers every request
	patterns []string // the other patterns
	reason   string   // "role:" + role name
}

// roleC is a compiled role. rank is the role's position when roles are sorted by name (byte
// order), so the lowest rank among matching roles gives the reason (spec §2 rule 3).
type roleC struct {
	name  string
	rank  int32
	perms map[int32][]string // op → resource patterns ("" for none)
}

// compileConfig clones cfg, puts the clone in canonical order and compiles it. It fails on
// duplicate names, which would make decisions ambiguous. Permissions naming features or actions
// that do not exist are dropped: they can never match.
func compileConfig(in *thauth.Config) (*compiledConfig, error) {
	cfg := cloneConfig(in)
	c := &compiledConfig{
		cfg:          cfg,
		features:     make(map[string]*featureC, len(cfg.Features)),
		roles:        make(map[handle]*roleC, len(cfg.Roles)),
		featureNames: make(map[handle]string, len(cfg.Features)),
		actionNames:  map[handle]string{},
	}
	type opKey struct{ feature, action string }
	ops := map[opKey]int32{}
	var actions []*actionC // by op
	for _, f := range cfg.Features {
		if _, dup := c.features[f.Name]; dup {
			return nil, thauth.Errorf(thauth.EInvalid, "duplicate feature name %q", f.Name)
		}
		fc := &featureC{id: intern(f.ID), name: f.Name, actions: make(map[string]*actionC, len(f.Actions))}
		for _, a := range f.Actions {
			if _, dup := fc.actions[a.Name]; dup {
				return nil, thauth.Errorf(thauth.EInvalid, "duplicate action %q in feature %q", a.Name, f.Name)
			}
			op := int32(len(ops))
			ops[opKey{f.ID, a.ID}] = op
			ac := &actionC{id: intern(a.ID), feature: fc.id, op: op}
			fc.actions[a.Name] = ac
			actions = append(actions, ac)
			c.actionNames[intern(a.ID)] = a.Name
		}
		c.features[f.Name] = fc
		c.featureNames[fc.id] = f.Name
	}
	byOp := make([]struct {
		ids   []handle
		perms []permC
	}, len(actions))
	for i, r := range cfg.Roles {
		if i > 0 && cfg.Roles[i-1].Name == r.Name {
			return nil, thauth.Errorf(thauth.EInvalid, "duplicate role name %q", r.Name)
		}
		rc := &roleC{name: r.Name, rank: int32(i), perms: map[int32][]string{}}
		for _, p := range r.Permissions {
			op, ok := ops[opKey{p.FeatureID, p.ActionID}]
			if !ok {
				continue
			}
			rc.perms[op] = append(rc.perms[op], p.Resource)
		}
		id := intern(r.ID)
		if _, dup := c.roles[id]; dup {
			return nil, thauth.Errorf(thauth.EInvalid, "duplicate role id %q", r.ID)
		}
		c.roles[id] = rc
		reason := thauth.ReasonRolePrefix + r.Name
		for op, patterns := range rc.perms {
			pc := permC{rank: rc.rank, reason: reason}
			for _, p := range patterns {
				if kind, _ := classifyPattern(p); kind == patAny {
					pc.any = true
				} else {
					pc.patterns = append(pc.patterns, p)
				}
			}
			byOp[op].ids = append(byOp[op].ids, id)
			byOp[op].perms = append(byOp[op].perms, pc)
		}
	}
	for op, a := range actions {
		a.roles = buildRoleTable(byOp[op].ids, byOp[op].perms)
	}
	c.version = cfg.Version()
	return c, nil
}

// cloneConfig deep-copies cfg (nil gives an empty configuration), fills in permission names
// that are missing and sorts the copy canonically, so that the snapshot never shares mutable
// state with its caller.
func cloneConfig(in *thauth.Config) *thauth.Config {
	cfg := &thauth.Config{Features: []thauth.Feature{}, Roles: []thauth.Role{}}
	if in == nil {
		return cfg
	}
	featureNames := map[string]string{}
	actionNames := map[string]string{}
	for _, f := range in.Features {
		f.Actions = slices.Clone(f.Actions)
		featureNames[f.ID] = f.Name
		for _, a := range f.Actions {
			actionNames[a.ID] = a.Name
		}
		cfg.Features = append(cfg.Features, f)
	}
	for _, r := range in.Roles {
		r.Permissions = slices.Clone(r.Permissions)
		for i := range r.Permissions {
			p := &r.Permissions[i]
			if p.FeatureName == "" {
				p.FeatureName = featureNames[p.FeatureID]
			}
			if p.ActionName == "" {
				p.ActionName = actionNames[p.ActionID]
			}
		}
		cfg.Roles = append(cfg.Roles, r)
	}
	cfg.Sort()
	return cfg
}
