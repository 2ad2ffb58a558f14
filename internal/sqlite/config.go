package sqlite

import (
	"context"
	"slices"

	"github.com/thauth/thauth"
)

// LoadConfig returns the project's configuration in canonical order with permission names
// filled in; slices are empty, not nil, when there is nothing. ENotFound if the project does
// not exist.
func (d *data) LoadConfig(ctx context.Context, projectID string) (*thauth.Config, error) {
	if err := d.projectExists(ctx, projectID); err != nil {
		return nil, err
	}
	cfg := &thauth.Config{Features: []thauth.Feature{}, Roles: []thauth.Role{}}
	fail := func(err error) (*thauth.Config, error) { return nil, mapErr(err, "cannot read configuration") }

	featureIdx := map[string]int{}
	rows, err := d.query(ctx, `SELECT id, name, description FROM features WHERE project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		f := thauth.Feature{Actions: []thauth.Action{}}
		if err := rows.Scan(&f.ID, &f.Name, &f.Description); err != nil {
			rows.Close()
			return fail(err)
		}
		featureIdx[f.ID] = len(cfg.Features)
		cfg.Features = append(cfg.Features, f)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}

	actionName := map[string]string{}
	rows, err = d.query(ctx, `SELECT id, feature_id, name FROM actions WHERE project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var a thauth.Action
		var featureID string
		if err := rows.Scan(&a.ID, &featureID, &a.Name); err != nil {
			rows.Close()
			return fail(err)
		}
		actionName[a.ID] = a.Name
		if i, ok := featureIdx[featureID]; ok {
			cfg.Features[i].Actions = append(cfg.Features[i].Actions, a)
		}
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}

	roleIdx := map[string]int{}
	rows, err = d.query(ctx, `SELECT id, name, description FROM roles WHERE project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		r := thauth.Role{Permissions: []thauth.Permission{}}
		if err := rows.Scan(&r.ID, &r.Name, &r.Description); err != nil {
			rows.Close()
			return fail(err)
		}
		roleIdx[r.ID] = len(cfg.Roles)
		cfg.Roles = append(cfg.Roles, r)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}

	rows, err = d.query(ctx, `SELECT role_id, feature_id, action_id, resource FROM permissions WHERE project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var roleID string
		var p thauth.Permission
		if err := rows.Scan(&roleID, &p.FeatureID, &p.ActionID, &p.Resource); err != nil {
			rows.Close()
			return fail(err)
		}
		if fi, ok := featureIdx[p.FeatureID]; ok {
			p.FeatureName = cfg.Features[fi].Name
		}
		p.ActionName = actionName[p.ActionID]
		if i, ok := roleIdx[roleID]; ok {
			cfg.Roles[i].Permissions = append(cfg.Roles[i].Permissions, p)
		}
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	cfg.Sort()
	return cfg, nil
}

// closeRows closes rows and returns the iteration error, if any.
func closeRows(rows interface {
	Err() error
	Close() error
}) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// tempName is a name no valid feature, action or role name can equal (valid names start with
// a letter or digit); renamed rows pass through it so that swapping two names does not trip
// the unique constraints midway.
func tempName(id string) string { return "~" + id }

// ReplaceConfig makes the project's stored configuration equal to cfg, matching rows by id.
// Features, actions and roles absent from cfg are deleted with everything that references
// them (permissions, assignments, overrides); the rest are updated or inserted; every role's
// permissions become cfg's. Duplicate names, duplicate permissions or an id already used
// elsewhere are EConflict; a permission naming an action not in cfg is ENotFound; an unknown
// project is ENotFound. On error the caller's transaction must be rolled back (Store does it
// for calls outside Tx).
func (d *data) ReplaceConfig(ctx context.Context, projectID string, cfg *thauth.Config) error {
	if err := d.projectExists(ctx, projectID); err != nil {
		return err
	}
	fail := func(err error) error { return mapErr(err, "cannot write configuration") }

	// What is stored now.
	type actionRow struct{ featureID, name string }
	oldFeatures, err := d.stringMap(ctx, `SELECT id, name FROM features WHERE project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	oldRoles, err := d.stringMap(ctx, `SELECT id, name FROM roles WHERE project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	oldActions := map[string]actionRow{}
	rows, err := d.query(ctx, `SELECT id, feature_id, name FROM actions WHERE project_id = ?`, projectID)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var id string
		var a actionRow
		if err := rows.Scan(&id, &a.featureID, &a.name); err != nil {
			rows.Close()
			return fail(err)
		}
		oldActions[id] = a
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}

	// What is wanted.
	wantFeatures := map[string]bool{}
	wantActions := map[string]bool{}
	wantRoles := map[string]bool{}
	for _, f := range cfg.Features {
		if wantFeatures[f.ID] {
			return thauth.Errorf(thauth.EConflict, "feature id %s appears twice", f.ID)
		}
		wantFeatures[f.ID] = true
		for _, a := range f.Actions {
			if wantActions[a.ID] {
				return thauth.Errorf(thauth.EConflict, "action id %s appears twice", a.ID)
			}
			wantActions[a.ID] = true
		}
	}
	for _, r := range cfg.Roles {
		if wantRoles[r.ID] {
			return thauth.Errorf(thauth.EConflict, "role id %s appears twice", r.ID)
		}
		wantRoles[r.ID] = true
	}

	// Permissions are rewritten in full; clearing them first also frees actions to move.
	if _, err := d.exec(ctx, `DELETE FROM permissions WHERE project_id = ?`, projectID); err != nil {
		return fail(err)
	}
	// Deletions cascade to actions, permissions, assignments and overrides. Sorted, so the
	// statements run in the same order every time.
	for _, id := range sortedKeys(oldFeatures) {
		if !wantFeatures[id] {
			if _, err := d.exec(ctx, `DELETE FROM features WHERE project_id = ? AND id = ?`, projectID, id); err != nil {
				return fail(err)
			}
		}
	}
	for _, id := range sortedKeys(oldActions) {
		switch {
		case !wantFeatures[oldActions[id].featureID]:
			delete(oldActions, id) // gone with its feature
		case !wantActions[id]:
			if _, err := d.exec(ctx, `DELETE FROM actions WHERE project_id = ? AND id = ?`, projectID, id); err != nil {
				return fail(err)
			}
			delete(oldActions, id)
		}
	}
	for _, id := range sortedKeys(oldRoles) {
		if !wantRoles[id] {
			if _, err := d.exec(ctx, `DELETE FROM roles WHERE project_id = ? AND id = ?`, projectID, id); err != nil {
				return fail(err)
			}
		}
	}

	// Park the names of renamed rows, so that renames may swap names.
	for _, f := range cfg.Features {
		if old, ok := oldFeatures[f.ID]; ok && old != f.Name {
			if _, err := d.exec(ctx, `UPDATE features SET name = ? WHERE project_id = ? AND id = ?`, tempName(f.ID), projectID, f.ID); err != nil {
				return fail(err)
			}
		}
		for _, a := range f.Actions {
			if old, ok := oldActions[a.ID]; ok && (old.name != a.Name || old.featureID != f.ID) {
				if _, err := d.exec(ctx, `UPDATE actions SET name = ? WHERE project_id = ? AND id = ?`, tempName(a.ID), projectID, a.ID); err != nil {
					return fail(err)
				}
			}
		}
	}
	for _, r := range cfg.Roles {
		if old, ok := oldRoles[r.ID]; ok && old != r.Name {
			if _, err := d.exec(ctx, `UPDATE roles SET name = ? WHERE project_id = ? AND id = ?`, tempName(r.ID), projectID, r.ID); err != nil {
				return fail(err)
			}
		}
	}

	// Insert or update features and their actions, then roles.
	for _, f := range cfg.Features {
		var err error
		if _, ok := oldFeatures[f.ID]; ok {
			_, err = d.exec(ctx, `UPDATE features SET name = ?, description = ? WHERE project_id = ? AND id = ?`,
				f.Name, f.Description, projectID, f.ID)
		} else {
			_, err = d.exec(ctx, `INSERT INTO features (id, project_id, name, description) VALUES (?, ?, ?, ?)`,
				f.ID, projectID, f.Name, f.Description)
		}
		if err != nil {
			return configConflict(err, "feature", f.ID, f.Name)
		}
	}
	for _, f := range cfg.Features {
		for _, a := range f.Actions {
			var err error
			if _, ok := oldActions[a.ID]; ok {
				_, err = d.exec(ctx, `UPDATE actions SET feature_id = ?, name = ? WHERE project_id = ? AND id = ?`,
					f.ID, a.Name, projectID, a.ID)
			} else {
				_, err = d.exec(ctx, `INSERT INTO actions (id, project_id, feature_id, name) VALUES (?, ?, ?, ?)`,
					a.ID, projectID, f.ID, a.Name)
			}
			if err != nil {
				return configConflict(err, "action", a.ID, f.Name+"."+a.Name)
			}
		}
	}
	for _, r := range cfg.Roles {
		var err error
		if _, ok := oldRoles[r.ID]; ok {
			_, err = d.exec(ctx, `UPDATE roles SET name = ?, description = ? WHERE project_id = ? AND id = ?`,
				r.Name, r.Description, projectID, r.ID)
		} else {
			_, err = d.exec(ctx, `INSERT INTO roles (id, project_id, name, description) VALUES (?, ?, ?, ?)`,
				r.ID, projectID, r.Name, r.Description)
		}
		if err != nil {
			return configConflict(err, "role", r.ID, r.Name)
		}
	}

	for _, r := range cfg.Roles {
		for _, p := range r.Permissions {
			_, err := d.exec(ctx, `INSERT INTO permissions (project_id, role_id, feature_id, action_id, resource) VALUES (?, ?, ?, ?, ?)`,
				projectID, r.ID, p.FeatureID, p.ActionID, p.Resource)
			switch {
			case err == nil:
			case isUniqueViolation(err):
				return thauth.Errorf(thauth.EConflict, "role %q has a duplicate permission (action %s, resource %q)", r.Name, p.ActionID, p.Resource)
			case isForeignKeyViolation(err):
				return thauth.Errorf(thauth.ENotFound, "role %q: permission references action %s of feature %s, which is not in the configuration", r.Name, p.ActionID, p.FeatureID)
			default:
				return fail(err)
			}
		}
	}
	return nil
}

// configConflict maps an error writing a feature, action or role.
func configConflict(err error, kind, id, name string) error {
	switch sqliteCode(err) {
	case codeConstraintUnique:
		return thauth.Errorf(thauth.EConflict, "%s name %q is not unique", kind, name)
	case codeConstraintPrimaryKey:
		return thauth.Errorf(thauth.EConflict, "%s id %s is already in use", kind, id)
	}
	return mapErr(err, "cannot write "+kind)
}

// stringMap runs a two-column query into a map.
func (d *data) stringMap(ctx context.Context, query string, args ...any) (map[string]string, error) {
	rows, err := d.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, err
		}
		m[k] = v
	}
	return m, closeRows(rows)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
