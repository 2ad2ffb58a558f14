package sqlite

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

// The thauth.Data methods of Store: each runs on its own, reads in a read transaction on the
// read pool, writes in a write transaction (committed durably before the method returns).
// Their contracts are those of data's methods and of thauth.Store.

// CreateOrganization inserts org; EConflict if its id is taken.
func (s *Store) CreateOrganization(ctx context.Context, org *thauth.Organization) error {
	return s.write(ctx, func(d *data) error { return d.CreateOrganization(ctx, org) })
}

// GetOrganization returns the organization; ENotFound if there is none.
func (s *Store) GetOrganization(ctx context.Context, orgID string) (*thauth.Organization, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Organization, error) { return d.GetOrganization(ctx, orgID) })
}

// CreateProject inserts p into organization orgID at revision 0; ENotFound if the
// organization does not exist, EConflict if the id is taken.
func (s *Store) CreateProject(ctx context.Context, orgID string, p *thauth.Project) error {
	return s.write(ctx, func(d *data) error { return d.CreateProject(ctx, orgID, p) })
}

// GetProject returns the project with its current revision; ENotFound if there is none.
func (s *Store) GetProject(ctx context.Context, projectID string) (*thauth.Project, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Project, error) { return d.GetProject(ctx, projectID) })
}

// ListProjects returns the organization's projects, oldest first; ENotFound if the
// organization does not exist.
func (s *Store) ListProjects(ctx context.Context, orgID string) ([]thauth.Project, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Project, error) { return d.ListProjects(ctx, orgID) })
}

// ProjectRevisions returns every project with its current revision, ordered by id.
func (s *Store) ProjectRevisions(ctx context.Context) ([]thauth.Project, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Project, error) { return d.ProjectRevisions(ctx) })
}

// LoadConfig returns the project's configuration in canonical order with names filled in;
// ENotFound if the project does not exist.
func (s *Store) LoadConfig(ctx context.Context, projectID string) (*thauth.Config, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Config, error) { return d.LoadConfig(ctx, projectID) })
}

// ReplaceConfig replaces the project's configuration atomically (see data.ReplaceConfig).
func (s *Store) ReplaceConfig(ctx context.Context, projectID string, cfg *thauth.Config) error {
	return s.write(ctx, func(d *data) error { return d.ReplaceConfig(ctx, projectID, cfg) })
}

// UpsertSubject creates or updates the subject and reports whether it was created;
// ENotFound if the project does not exist.
func (s *Store) UpsertSubject(ctx context.Context, projectID string, sub *thauth.Subject, now time.Time) (bool, error) {
	var created bool
	err := s.write(ctx, func(d *data) error {
		var err error
		created, err = d.UpsertSubject(ctx, projectID, sub, now)
		return err
	})
	return created, err
}

// GetSubject returns the subject; ENotFound if it does not exist in the project.
func (s *Store) GetSubject(ctx context.Context, projectID, subjectID string) (*thauth.Subject, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Subject, error) { return d.GetSubject(ctx, projectID, subjectID) })
}

// DeleteSubject deletes the subject and its grants; ENotFound if it does not exist.
func (s *Store) DeleteSubject(ctx context.Context, projectID, subjectID string) error {
	return s.write(ctx, func(d *data) error { return d.DeleteSubject(ctx, projectID, subjectID) })
}

// ReplaceAssignments replaces the subject's assignments in scope atomically; ENotFound for
// an unknown subject or role.
func (s *Store) ReplaceAssignments(ctx context.Context, projectID, subjectID string, scope thauth.Scope, as []thauth.Assignment) error {
	return s.write(ctx, func(d *data) error { return d.ReplaceAssignments(ctx, projectID, subjectID, scope, as) })
}

// ReplaceOverrides replaces the subject's overrides in scope atomically; ENotFound for an
// unknown subject or action.
func (s *Store) ReplaceOverrides(ctx context.Context, projectID, subjectID string, scope thauth.Scope, os []thauth.Override) error {
	return s.write(ctx, func(d *data) error { return d.ReplaceOverrides(ctx, projectID, subjectID, scope, os) })
}

// LoadSubjectGrants returns the subject with its grants in deterministic order; ENotFound
// if it does not exist.
func (s *Store) LoadSubjectGrants(ctx context.Context, projectID, subjectID string) (*thauth.SubjectGrants, error) {
	return readValue(ctx, s, func(d *data) (*thauth.SubjectGrants, error) { return d.LoadSubjectGrants(ctx, projectID, subjectID) })
}

// ScanSubjectGrants streams the project's subjects in subject id order (see
// data.ScanSubjectGrants). It holds one read connection (and one consistent snapshot) until the scan
// ends; fn runs while it is held.
func (s *Store) ScanSubjectGrants(ctx context.Context, projectID string, fn func(*thauth.SubjectGrants) error) error {
	return s.read(ctx, func(d *data) error { return d.ScanSubjectGrants(ctx, projectID, fn) })
}

// CreateAPIKey stores k; EConflict if its id or lookup id is taken, ENotFound if the
// project does not exist.
func (s *Store) CreateAPIKey(ctx context.Context, projectID string, k *thauth.APIKey) error {
	return s.write(ctx, func(d *data) error { return d.CreateAPIKey(ctx, projectID, k) })
}

// ListAPIKeys returns the project's keys, revoked ones included, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, projectID string) ([]thauth.APIKey, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.APIKey, error) { return d.ListAPIKeys(ctx, projectID) })
}

// GetAPIKey returns the key; ENotFound if it does not exist in the project.
func (s *Store) GetAPIKey(ctx context.Context, projectID, keyID string) (*thauth.APIKey, error) {
	return readValue(ctx, s, func(d *data) (*thauth.APIKey, error) { return d.GetAPIKey(ctx, projectID, keyID) })
}

// RevokeAPIKey revokes the key, keeping an earlier revocation time; ENotFound if it does
// not exist in the project.
func (s *Store) RevokeAPIKey(ctx context.Context, projectID, keyID string, at time.Time) error {
	return s.write(ctx, func(d *data) error { return d.RevokeAPIKey(ctx, projectID, keyID, at) })
}

// TouchAPIKeys moves keys' last-used times forward; unknown ids are ignored.
func (s *Store) TouchAPIKeys(ctx context.Context, projectID string, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return s.write(ctx, func(d *data) error { return d.TouchAPIKeys(ctx, projectID, used) })
}

// AppendChanges bumps the project's revision and records changes under it; ENotFound if
// the project does not exist.
func (s *Store) AppendChanges(ctx context.Context, projectID string, changes []thauth.Change, at time.Time) (int64, error) {
	var rev int64
	err := s.write(ctx, func(d *data) error {
		var err error
		rev, err = d.AppendChanges(ctx, projectID, changes, at)
		return err
	})
	return rev, err
}

// ChangesSince returns the changes after revision after, whole revisions only (see
// data.ChangesSince); ENotFound if the project does not exist.
func (s *Store) ChangesSince(ctx context.Context, projectID string, after int64, limit int) ([]thauth.Change, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Change, error) { return d.ChangesSince(ctx, projectID, after, limit) })
}
