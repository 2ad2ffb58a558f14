package thauth

import (
	"context"
	"time"
)

// Storage contracts. Every method on customer data takes the organization or project id
// explicitly as its first argument after ctx, so tenant isolation is visible at each call and
// testable: a method given project A never reads or writes project B's rows, and an id that
// exists only in another project is ENotFound.
//
// Errors: ENotFound when the addressed row does not exist (in that project), EConflict on a
// uniqueness violation, EUnavailable when the database cannot be reached, EInternal otherwise.
// Stores stay thin: they do not validate business rules (manage does), they only keep data
// consistent (foreign keys, cascades) and scoped.

// OrganizationStore manages organizations.
type OrganizationStore interface {
	// CreateOrganization inserts org (ID and CreatedAt set by the caller).
	CreateOrganization(ctx context.Context, org *Organization) error
	GetOrganization(ctx context.Context, orgID string) (*Organization, error)
}

// ProjectStore manages projects.
type ProjectStore interface {
	// CreateProject inserts p into organization orgID (ID, Name, CreatedAt set by the caller);
	// its revision starts at 0.
	CreateProject(ctx context.Context, orgID string, p *Project) error
	// GetProject returns the project with its current revision.
	GetProject(ctx context.Context, projectID string) (*Project, error)
	ListProjects(ctx context.Context, orgID string) ([]Project, error)
	// ProjectRevisions lists every project of the installation with its organization and
	// current revision. It is a system-level call used by nodes to discover projects and
	// notice writes; it exposes no customer data beyond ids.
	ProjectRevisions(ctx context.Context) ([]Project, error)
}

// ConfigStore reads and replaces a project's configuration.
type ConfigStore interface {
	// LoadConfig returns the project's configuration in canonical order (see Config), with
	// the names in permissions filled in.
	LoadConfig(ctx context.Context, projectID string) (*Config, error)
	// ReplaceConfig makes the stored configuration equal to cfg, matching rows by id:
	// features, actions and roles whose ids are absent from cfg are deleted (cascading to
	// permissions, assignments and overrides that reference them), the others are inserted
	// or updated, and every role's permissions are replaced by cfg's. Ids are set by the
	// caller. Names must be unique (EConflict otherwise).
	ReplaceConfig(ctx context.Context, projectID string, cfg *Config) error
}

// SubjectStore manages subjects and their grants. subjectID is always the customer's own
// subject id string, unique in the project.
type SubjectStore interface {
	// UpsertSubject creates the subject s.SubjectID (setting s.ID, s.CreatedAt, s.UpdatedAt
	// from now) or updates its type and UpdatedAt; it fills in s and reports whether it was
	// created.
	UpsertSubject(ctx context.Context, projectID string, s *Subject, now time.Time) (created bool, err error)
	GetSubject(ctx context.Context, projectID, subjectID string) (*Subject, error)
	// DeleteSubject deletes the subject and all its grants.
	DeleteSubject(ctx context.Context, projectID, subjectID string) error
	// ReplaceAssignments replaces the subject's role assignments in scope with as (the
	// Tenant of each must lie in scope). EInvalid-free: the caller has validated role ids;
	// a role id not in the project is ENotFound.
	ReplaceAssignments(ctx context.Context, projectID, subjectID string, scope Scope, as []Assignment) error
	// ReplaceOverrides does the same for overrides.
	ReplaceOverrides(ctx context.Context, projectID, subjectID string, scope Scope, os []Override) error
	// LoadSubjectGrants returns one subject with every grant, names filled in, grants in a
	// deterministic order.
	LoadSubjectGrants(ctx context.Context, projectID, subjectID string) (*SubjectGrants, error)
	// ScanSubjectGrants calls fn for every subject of the project, ordered by subject id, with
	// its grants. It streams: memory does not grow with the number of subjects. The
	// *SubjectGrants passed to fn is not reused after fn returns.
	ScanSubjectGrants(ctx context.Context, projectID string, fn func(*SubjectGrants) error) error
}

// APIKeyStore manages API keys. Only hashes are stored.
type APIKeyStore interface {
	CreateAPIKey(ctx context.Context, projectID string, k *APIKey) error
	// ListAPIKeys returns every key of the project, revoked ones included, newest first.
	ListAPIKeys(ctx context.Context, projectID string) ([]APIKey, error)
	GetAPIKey(ctx context.Context, projectID, keyID string) (*APIKey, error)
	// RevokeAPIKey sets RevokedAt (keeping the first revocation time if already revoked).
	RevokeAPIKey(ctx context.Context, projectID, keyID string, at time.Time) error
	// TouchAPIKeys records last-used times (keyID → time); unknown ids are ignored and a
	// time older than the stored one does not move it back.
	TouchAPIKeys(ctx context.Context, projectID string, used map[string]time.Time) error
}

// ChangeKind says what a change touched, so that nodes can refresh just that.
type ChangeKind string

// The change kinds.
const (
	ChangeConfig   ChangeKind = "config"   // features/actions/roles/permissions
	ChangeSubject  ChangeKind = "subject"  // Ref = customer subject id: reload that subject
	ChangeSubjects ChangeKind = "subjects" // many subjects: reload every subject
	ChangeKey      ChangeKind = "key"      // Ref = API key id: reload that key
	ChangeProject  ChangeKind = "project"  // the project itself (created, renamed)
)

// Change is one entry of a project's durable change log. Every write transaction bumps the
// project's revision once and records what it changed under that revision. Revisions of one
// project are gap-free and commit in order, so a node that has applied revision r of a
// project is current once it has applied every change with revision > r.
type Change struct {
	ProjectID string
	Revision  int64
	Kind      ChangeKind
	Ref       string
	At        time.Time
}

// ChangeStore is the change log.
type ChangeStore interface {
	// AppendChanges bumps the project's revision by one and records changes under the new
	// revision, which it returns. Inside a transaction the bump serializes writers of the
	// same project until commit.
	AppendChanges(ctx context.Context, projectID string, changes []Change, at time.Time) (revision int64, err error)
	// ChangesSince returns up to limit changes with revision > after, ordered by revision.
	ChangesSince(ctx context.Context, projectID string, after int64, limit int) ([]Change, error)
}

// Data is everything a store can read and write. Outside Store.Tx each call is atomic on its
// own; inside, all calls of the closure commit or roll back together.
type Data interface {
	OrganizationStore
	ProjectStore
	ConfigStore
	SubjectStore
	APIKeyStore
	ChangeStore
	IdentityData
	ProtectionData
}

// Store is a storage engine (SQLite, PostgreSQL). Implementations are safe for concurrent use.
type Store interface {
	Data
	// Tx runs fn in one transaction: it commits when fn returns nil (the commit is durable
	// before Tx returns) and rolls back when fn returns an error or panics. The Data passed to
	// fn must not be used after fn returns.
	Tx(ctx context.Context, fn func(ctx context.Context, tx Data) error) error
	// Migrate brings the schema up to date (forward only).
	Migrate(ctx context.Context) error
	// SchemaVersion returns the applied and the latest known migration numbers.
	SchemaVersion(ctx context.Context) (current, latest int, err error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}
