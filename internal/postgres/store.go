package postgres

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

// The thauth.Data methods of Store. Their contracts are those of data's methods and of
// thauth.Store. Each runs on its own:
//   - as one statement (autocommit) when it is one: the single-row reads and writes, and
//     AppendChanges, whose statement takes the project's lock itself;
//   - in a REPEATABLE READ, READ ONLY transaction when it reads with several queries;
//   - in a write transaction that first locks the project when it writes with several
//     statements or cascades into grant rows (ReplaceConfig, DeleteSubject, the grant
//     replaces, TouchAPIKeys), so that it never interleaves with another writer of the
//     project.

func (s *Store) CreateOrganization(ctx context.Context, org *thauth.Organization) error {
	return s.direct().CreateOrganization(ctx, org)
}

func (s *Store) GetOrganization(ctx context.Context, orgID string) (*thauth.Organization, error) {
	return s.direct().GetOrganization(ctx, orgID)
}

func (s *Store) CreateProject(ctx context.Context, orgID string, p *thauth.Project) error {
	return s.direct().CreateProject(ctx, orgID, p)
}

func (s *Store) GetProject(ctx context.Context, projectID string) (*thauth.Project, error) {
	return s.direct().GetProject(ctx, projectID)
}

func (s *Store) ListProjects(ctx context.Context, orgID string) ([]thauth.Project, error) {
	return s.direct().ListProjects(ctx, orgID)
}

func (s *Store) ProjectRevisions(ctx context.Context) ([]thauth.Project, error) {
	return s.direct().ProjectRevisions(ctx)
}

func (s *Store) LoadConfig(ctx context.Context, projectID string) (*thauth.Config, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Config, error) { return d.LoadConfig(ctx, projectID) })
}

func (s *Store) ReplaceConfig(ctx context.Context, projectID string, cfg *thauth.Config) error {
	return s.write(ctx, func(d *data) error { return d.ReplaceConfig(ctx, projectID, cfg) })
}

func (s *Store) UpsertSubject(ctx context.Context, projectID string, sub *thauth.Subject, now time.Time) (bool, error) {
	return s.direct().UpsertSubject(ctx, projectID, sub, now)
}

func (s *Store) GetSubject(ctx context.Context, projectID, subjectID string) (*thauth.Subject, error) {
	return s.direct().GetSubject(ctx, projectID, subjectID)
}

func (s *Store) DeleteSubject(ctx context.Context, projectID, subjectID string) error {
	return s.write(ctx, func(d *data) error { return d.DeleteSubject(ctx, projectID, subjectID) })
}

func (s *Store) ReplaceAssignments(ctx context.Context, projectID, subjectID string, scope thauth.Scope, as []thauth.Assignment) error {
	return s.write(ctx, func(d *data) error { return d.ReplaceAssignments(ctx, projectID, subjectID, scope, as) })
}

func (s *Store) ReplaceOverrides(ctx context.Context, projectID, subjectID string, scope thauth.Scope, os []thauth.Override) error {
	return s.write(ctx, func(d *data) error { return d.ReplaceOverrides(ctx, projectID, subjectID, scope, os) })
}

func (s *Store) LoadSubjectGrants(ctx context.Context, projectID, subjectID string) (*thauth.SubjectGrants, error) {
	return readValue(ctx, s, func(d *data) (*thauth.SubjectGrants, error) { return d.LoadSubjectGrants(ctx, projectID, subjectID) })
}

// ScanSubjectGrants holds one connection (and one consistent snapshot) until the scan
// ends; fn runs while it is held, so it should not take longer between subjects than the
// IdleInTransactionTimeout.
func (s *Store) ScanSubjectGrants(ctx context.Context, projectID string, fn func(*thauth.SubjectGrants) error) error {
	return s.read(ctx, func(d *data) error { return d.ScanSubjectGrants(ctx, projectID, fn) })
}

func (s *Store) CreateAPIKey(ctx context.Context, projectID string, k *thauth.APIKey) error {
	return s.direct().CreateAPIKey(ctx, projectID, k)
}

func (s *Store) ListAPIKeys(ctx context.Context, projectID string) ([]thauth.APIKey, error) {
	return s.direct().ListAPIKeys(ctx, projectID)
}

func (s *Store) GetAPIKey(ctx context.Context, projectID, keyID string) (*thauth.APIKey, error) {
	return s.direct().GetAPIKey(ctx, projectID, keyID)
}

func (s *Store) RevokeAPIKey(ctx context.Context, projectID, keyID string, at time.Time) error {
	return s.direct().RevokeAPIKey(ctx, projectID, keyID, at)
}

func (s *Store) TouchAPIKeys(ctx context.Context, projectID string, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return s.write(ctx, func(d *data) error { return d.TouchAPIKeys(ctx, projectID, used) })
}

func (s *Store) AppendChanges(ctx context.Context, projectID string, changes []thauth.Change, at time.Time) (int64, error) {
	return s.direct().AppendChanges(ctx, projectID, changes, at)
}

func (s *Store) ChangesSince(ctx context.Context, projectID string, after int64, limit int) ([]thauth.Change, error) {
	return s.direct().ChangesSince(ctx, projectID, after, limit)
}
