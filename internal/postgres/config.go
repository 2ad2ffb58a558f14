package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth"
)

// LoadConfig returns the project's configuration in canonical order with permission names
// filled in; slices are empty, not nil, when there is nothing. ENotFound if the project does
// not exist. The four queries go to the server in one round trip.
func (d *data) LoadConfig(ctx context.Context, projectID string) (*thauth.Config, error) {
	if err := d.projectExists(ctx, projectID); err != nil {
		return nil, err
	}
	cfg := &thauth.Config{Features: []thauth.Feature{}, Roles: []thauth.Role{}}
	fail := func(err error) (*thauth.Config, error) { return nil, mapErr(err, "cannot read configuration") }

	b := &pgx.Batch{}
	b.Queue(`SELECT id, name, description FROM features WHERE project_id = $1`, projectID)
	b.Queue(`SELECT id, feature_id, name FROM actions WHERE project_id = $1`, projectID)
	b.Queue(`SELECT id, name, description FROM roles WHERE project_id = $1`, projectID)
	b.Queue(`SELECT role_id, feature_id, action_id, resource FROM permissions WHERE project_id = $1`, projectID)
	br := d.q.SendBatch(ctx, b)
	defer br.Close()

	featureIdx := map[string]int{}
	err := forEachRow(br, func(rows pgx.Rows) error {
		f := thauth.Feature{Actions: []thauth.Action{}}
		if err := rows.Scan(&f.ID, &f.Name, &f.Description); err != nil {
			return err
		}
		featureIdx[f.ID] = len(cfg.Features)
		cfg.Features = append(cfg.Features, f)
		return nil
	})
	if err != nil {
		return fail(err)
	}
	actionName := map[string]string{}
	err = forEachRow(br, func(rows pgx.Rows) error {
		var a thauth.Action
		var featureID string
		if err := rows.Scan(&a.ID, &featureID, &a.Name); err != nil {
			return err
		}
		actionName[a.ID] = a.Name
		if i, ok := featureIdx[featureID]; ok {
			cfg.Features[i].Actions = append(cfg.Features[i].Actions, a)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	roleIdx := map[string]int{}
	err = forEachRow(br, func(rows pgx.Rows) error {
		r := thauth.Role{Permissions: []thauth.Permission{}}
		if err := rows.Scan(&r.ID, &r.Name, &r.Description); err != nil {
			return err
		}
		roleIdx[r.ID] = len(cfg.Roles)
		cfg.Roles = append(cfg.Roles, r)
		return nil
	})
	if err != nil {
		return fail(err)
	}
	err = forEachRow(br, func(rows pgx.Rows) error {
		var roleID string
		var p thauth.Permission
		if err := rows.Scan(&roleID, &p.FeatureID, &p.ActionID, &p.Resource); err != nil {
			return err
		}
		if fi, ok := featureIdx[p.FeatureID]; ok {
			p.FeatureName = cfg.Features[fi].Name
		}
		p.ActionName = actionName[p.ActionID]
		if i, ok := roleIdx[roleID]; ok {
			cfg.Roles[i].Permissions = append(cfg.Roles[i].Permissions, p)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if err := br.Close(); err != nil {
		return fail(err)
	}
	cfg.Sort()
	return cfg, nil
}

// forEachRow reads the next result of a batch row by row.
func forEachRow(br pgx.BatchResults, fn func(pgx.Rows) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// tempNamePrefix + id is a name no valid feature, action or role name can equal (valid
// names start with a letter or digit); renamed rows pass through it so that swapping two
// names does not trip the unique constraints midway.
const tempNamePrefix = "~"

// step is one statement of a batch and what its failure means.
type step struct {
	sql   string
	args  []any
	onErr func(error) error // nil: mapErr with the batch's message
}

// runSteps sends the steps in one batch and returns the mapped error of the first that
// fails (the ones after it fail only because the transaction is aborted).
func (d *data) runSteps(ctx context.Context, steps []step, msg string) error {
	if len(steps) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, s := range steps {
		b.Queue(s.sql, s.args...)
	}
	br := d.q.SendBatch(ctx, b)
	for _, s := range steps {
		if _, err := br.Exec(); err != nil {
			br.Close()
			if s.onErr != nil {
				return s.onErr(err)
			}
			return mapErr(err, msg)
		}
	}
	return mapErr(br.Close(), msg)
}

// ReplaceConfig makes the project's stored configuration equal to cfg, matching rows by id.
// Features, actions and roles absent from cfg are deleted with everything that references
// them (permissions, assignments, overrides); the rest are updated or inserted; every role's
// permissions become cfg's. Duplicate names, duplicate permissions or an id already used
// elsewhere are EConflict; a permission naming an action not in cfg (or not of its feature)
// is ENotFound; an unknown project is ENotFound. On error the transaction must be rolled
// back (Store does it for calls outside Tx).
//
// It reads the stored ids in one round trip and writes everything in a second one.
func (d *data) ReplaceConfig(ctx context.Context, projectID string, cfg *thauth.Config) error {
	if err := d.projectExists(ctx, projectID); err != nil {
		return err
	}
	fail := func(err error) error { return mapErr(err, "cannot write configuration") }

	// What is wanted, checked before anything is written: permissions name actions of cfg.
	// Ids appear once each.
	actionFeature := map[string]string{}
	var wantFeatures, wantActions, wantRoles []string
	seenID := map[string]bool{}
	for _, f := range cfg.Features {
		if seenID[f.ID] {
			return thauth.Errorf(thauth.EConflict, "feature id %s appears twice", f.ID)
		}
		seenID[f.ID] = true
		wantFeatures = append(wantFeatures, f.ID)
		for _, a := range f.Actions {
			if _, dup := actionFeature[a.ID]; dup {
				return thauth.Errorf(thauth.EConflict, "action id %s appears twice", a.ID)
			}
			wantActions = append(wantActions, a.ID)
			actionFeature[a.ID] = f.ID
		}
	}
	clear(seenID)
	for _, r := range cfg.Roles {
		if seenID[r.ID] {
			return thauth.Errorf(thauth.EConflict, "role id %s appears twice", r.ID)
		}
		seenID[r.ID] = true
	}
	type permKey struct{ role, action, resource string }
	seen := map[permKey]bool{}
	var pRole, pFeature, pAction, pResource []string
	for _, r := range cfg.Roles {
		wantRoles = append(wantRoles, r.ID)
		for _, p := range r.Permissions {
			if fid, ok := actionFeature[p.ActionID]; !ok || fid != p.FeatureID {
				return thauth.Errorf(thauth.ENotFound, "role %q: permission references action %s of feature %s, which is not in the configuration", r.Name, p.ActionID, p.FeatureID)
			}
			k := permKey{r.ID, p.ActionID, p.Resource}
			if seen[k] {
				return thauth.Errorf(thauth.EConflict, "role %q has a duplicate permission (action %s, resource %q)", r.Name, p.ActionID, p.Resource)
			}
			seen[k] = true
			pRole, pFeature, pAction, pResource = append(pRole, r.ID), append(pFeature, p.FeatureID), append(pAction, p.ActionID), append(pResource, p.Resource)
		}
	}

	// What is stored now.
	type actionRow struct{ featureID, name string }
	oldFeatures := map[string]string{}
	oldRoles := map[string]string{}
	oldActions := map[string]actionRow{}
	b := &pgx.Batch{}
	b.Queue(`SELECT id, name FROM features WHERE project_id = $1`, projectID)
	b.Queue(`SELECT id, name FROM roles WHERE project_id = $1`, projectID)
	b.Queue(`SELECT id, feature_id, name FROM actions WHERE project_id = $1`, projectID)
	br := d.q.SendBatch(ctx, b)
	err := forEachRow(br, func(rows pgx.Rows) error {
		var id, name string
		err := rows.Scan(&id, &name)
		oldFeatures[id] = name
		return err
	})
	if err == nil {
		err = forEachRow(br, func(rows pgx.Rows) error {
			var id, name string
			err := rows.Scan(&id, &name)
			oldRoles[id] = name
			return err
		})
	}
	if err == nil {
		err = forEachRow(br, func(rows pgx.Rows) error {
			var id string
			var a actionRow
			err := rows.Scan(&id, &a.featureID, &a.name)
			oldActions[id] = a
			return err
		})
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	// Actions of deleted features go with them; actions absent from cfg are deleted.
	keepFeature := map[string]bool{}
	for _, id := range wantFeatures {
		keepFeature[id] = true
	}
	for id, a := range oldActions {
		if _, ok := actionFeature[id]; !ok || !keepFeature[a.featureID] {
			delete(oldActions, id)
		}
	}

	var steps []step
	add := func(onErr func(error) error, sql string, args ...any) {
		steps = append(steps, step{sql: sql, args: args, onErr: onErr})
	}
	// Permissions are rewritten in full; clearing them first also frees actions to move.
	// Deletions cascade to actions, permissions, assignments and overrides.
	add(nil, `DELETE FROM permissions WHERE project_id = $1`, projectID)
	add(nil, `DELETE FROM features WHERE project_id = $1 AND NOT (id = ANY ($2::text[]))`, projectID, nonNil(wantFeatures))
	add(nil, `DELETE FROM actions WHERE project_id = $1 AND NOT (id = ANY ($2::text[]))`, projectID, nonNil(wantActions))
	add(nil, `DELETE FROM roles WHERE project_id = $1 AND NOT (id = ANY ($2::text[]))`, projectID, nonNil(wantRoles))

	// Park the names of renamed rows (and of actions moving to another feature), so that
	// renames may swap names.
	var parkF, parkA, parkR []string
	for _, f := range cfg.Features {
		if old, ok := oldFeatures[f.ID]; ok && old != f.Name {
			parkF = append(parkF, f.ID)
		}
		for _, a := range f.Actions {
			if old, ok := oldActions[a.ID]; ok && (old.name != a.Name || old.featureID != f.ID) {
				parkA = append(parkA, a.ID)
			}
		}
	}
	for _, r := range cfg.Roles {
		if old, ok := oldRoles[r.ID]; ok && old != r.Name {
			parkR = append(parkR, r.ID)
		}
	}
	for _, p := range []struct {
		table string
		ids   []string
	}{{"features", parkF}, {"actions", parkA}, {"roles", parkR}} {
		if len(p.ids) > 0 {
			add(nil, `UPDATE `+p.table+` SET name = '`+tempNamePrefix+`' || id WHERE project_id = $1 AND id = ANY ($2::text[])`, projectID, p.ids)
		}
	}

	// Insert or update features and their actions, then roles.
	for _, f := range cfg.Features {
		onErr := func(err error) error { return configConflict(err, "feature", f.ID, f.Name) }
		if _, ok := oldFeatures[f.ID]; ok {
			add(onErr, `UPDATE features SET name = $1, description = $2 WHERE project_id = $3 AND id = $4`,
				f.Name, f.Description, projectID, f.ID)
		} else {
			add(onErr, `INSERT INTO features (id, project_id, name, description) VALUES ($1, $2, $3, $4)`,
				f.ID, projectID, f.Name, f.Description)
		}
	}
	for _, f := range cfg.Features {
		for _, a := range f.Actions {
			onErr := func(err error) error { return configConflict(err, "action", a.ID, f.Name+"."+a.Name) }
			if _, ok := oldActions[a.ID]; ok {
				add(onErr, `UPDATE actions SET feature_id = $1, name = $2 WHERE project_id = $3 AND id = $4`,
					f.ID, a.Name, projectID, a.ID)
			} else {
				add(onErr, `INSERT INTO actions (id, project_id, feature_id, name) VALUES ($1, $2, $3, $4)`,
					a.ID, projectID, f.ID, a.Name)
			}
		}
	}
	for _, r := range cfg.Roles {
		onErr := func(err error) error { return configConflict(err, "role", r.ID, r.Name) }
		if _, ok := oldRoles[r.ID]; ok {
			add(onErr, `UPDATE roles SET name = $1, description = $2 WHERE project_id = $3 AND id = $4`,
				r.Name, r.Description, projectID, r.ID)
		} else {
			add(onErr, `INSERT INTO roles (id, project_id, name, description) VALUES ($1, $2, $3, $4)`,
				r.ID, projectID, r.Name, r.Description)
		}
	}
	if len(pRole) > 0 {
		add(func(err error) error {
			switch {
			case isUniqueViolation(err):
				return &thauth.Error{Code: thauth.EConflict, Message: "a role has a duplicate permission", Err: err}
			case isForeignKeyViolation(err):
				return &thauth.Error{Code: thauth.ENotFound, Message: "a permission references an action that is not in the configuration", Err: err}
			}
			return fail(err)
		}, `INSERT INTO permissions (project_id, role_id, feature_id, action_id, resource)
			SELECT $1, r, f, a, res FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS p (r, f, a, res)`,
			projectID, pRole, pFeature, pAction, pResource)
	}
	return d.runSteps(ctx, steps, "cannot write configuration")
}

// nonNil returns ids, or an empty slice for nil (which would be sent as NULL).
func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

// configConflict maps an error writing a feature, action or role.
func configConflict(err error, kind, id, name string) error {
	if isUniqueViolation(err) {
		if strings.HasSuffix(pgConstraint(err), "_name_unique") {
			return &thauth.Error{Code: thauth.EConflict, Message: fmt.Sprintf("%s name %q is not unique", kind, name), Err: err}
		}
		return &thauth.Error{Code: thauth.EConflict, Message: kind + " id " + id + " is already in use", Err: err}
	}
	if isForeignKeyViolation(err) {
		return &thauth.Error{Code: thauth.ENotFound, Message: kind + " " + id + " references something that is not in the configuration", Err: err}
	}
	return mapErr(err, "cannot write "+kind)
}
