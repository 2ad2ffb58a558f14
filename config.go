package thauth

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
)

// Sort puts cfg in canonical order: features and roles by name, actions by name,
// permissions by (feature name, action name, resource). Names must be filled in.
func (cfg *Config) Sort() {
	slices.SortFunc(cfg.Features, func(a, b Feature) int { return cmp.Compare(a.Name, b.Name) })
	for i := range cfg.Features {
		slices.SortFunc(cfg.Features[i].Actions, func(a, b Action) int { return cmp.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(cfg.Roles, func(a, b Role) int { return cmp.Compare(a.Name, b.Name) })
	for i := range cfg.Roles {
		slices.SortFunc(cfg.Roles[i].Permissions, func(a, b Permission) int {
			return cmp.Or(cmp.Compare(a.FeatureName, b.FeatureName), cmp.Compare(a.ActionName, b.ActionName), cmp.Compare(a.Resource, b.Resource))
		})
	}
}

// Version returns the configuration version (spec §4 GET /v1/config): a hash over every id,
// name, description and permission of cfg in canonical order. It changes whenever any of
// them changes and only then. cfg must be sorted (see Sort).
func (cfg *Config) Version() string {
	h := sha256.New()
	field := func(s string) {
		// Length-prefixed, so no two different configurations encode alike.
		h.Write(strconv.AppendInt(nil, int64(len(s)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	field("features")
	for _, f := range cfg.Features {
		field("f")
		field(f.ID)
		field(f.Name)
		field(f.Description)
		for _, a := range f.Actions {
			field("a")
			field(a.ID)
			field(a.Name)
		}
	}
	field("roles")
	for _, r := range cfg.Roles {
		field("r")
		field(r.ID)
		field(r.Name)
		field(r.Description)
		for _, p := range r.Permissions {
			field("p")
			field(p.FeatureID)
			field(p.ActionID)
			field(p.Resource)
		}
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}
