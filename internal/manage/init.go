package manage

import (
	"context"
	"strconv"

	"github.com/thauth/thauth"
)

// InitResult is what Init created. AdminKey and DecisionsKey are the tokens of the two keys;
// they are shown only here.
type InitResult struct {
	Organization thauth.Organization `json:"organization"`
	Project      thauth.Project      `json:"project"`
	AdminKey     string              `json:"admin_key"`
	DecisionsKey string              `json:"decisions_key"`
}

const maxInitNameChars = 200

// Init creates, in one transaction, an organization named orgName, a project named
// projectName in it, and two API keys for the project: "admin" (scope admin) and
// "decisions" (scopes decisions:read and subjects:write). Names are 1–200 characters of
// printable UTF-8 (EInvalid otherwise). Each call creates new ones; it does not look for
// existing organizations or projects. The organization's audit chain starts with
// org.created, project.created and two key.created entries, with ctx's actor
// (WithAuditActor; ActorSystem without one). After the commit the engine is synced, so the
// keys work as soon as Init returns.
func (s *Service) Init(ctx context.Context, orgName, projectName string) (*InitResult, error) {
	if msg := validateLabel(orgName, maxInitNameChars); msg != "" {
		return nil, thauth.Errorf(thauth.EInvalid, "organization name %s", msg)
	}
	if msg := validateLabel(projectName, maxInitNameChars); msg != "" {
		return nil, thauth.Errorf(thauth.EInvalid, "project name %s", msg)
	}
	now := s.clock()
	ids := make([]string, 4)
	for i := range ids {
		id, err := newID()
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	res := &InitResult{
		Organization: thauth.Organization{ID: ids[0], Name: orgName, CreatedAt: now},
		Project:      thauth.Project{ID: ids[1], OrganizationID: ids[0], Name: projectName, CreatedAt: now},
	}
	newKey := func(id, name string, scopes ...string) (*thauth.APIKey, string) {
		token, lookupID, hash := thauth.NewToken()
		return &thauth.APIKey{ID: id, ProjectID: res.Project.ID, Name: name, LookupID: lookupID, Hash: hash,
			Scopes: scopes, CreatedAt: now}, token
	}
	admin, adminToken := newKey(ids[2], "admin", thauth.ScopeAdmin)
	decisions, decisionsToken := newKey(ids[3], "decisions", thauth.ScopeDecisionsRead, thauth.ScopeSubjectsWrite)
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.CreateOrganization(ctx, &res.Organization); err != nil {
			return err
		}
		if err := tx.CreateProject(ctx, res.Organization.ID, &res.Project); err != nil {
			return err
		}
		for _, k := range []*thauth.APIKey{admin, decisions} {
			if err := tx.CreateAPIKey(ctx, res.Project.ID, k); err != nil {
				return err
			}
		}
		rev, err := tx.AppendChanges(ctx, res.Project.ID, []thauth.Change{
			{Kind: thauth.ChangeProject},
			{Kind: thauth.ChangeKey, Ref: admin.ID},
			{Kind: thauth.ChangeKey, Ref: decisions.ID},
		}, now)
		if err != nil {
			return err
		}
		res.Project.Revision = rev
		orgID := res.Organization.ID
		if err := s.auditChange(ctx, tx, orgID, AuditOrgCreated, orgID, map[string]string{"name": orgName}); err != nil {
			return err
		}
		err = s.auditChange(ctx, tx, orgID, AuditProjectCreated, res.Project.ID, map[string]string{"name": projectName})
		for _, k := range []*thauth.APIKey{admin, decisions} {
			if err == nil {
				err = s.auditChange(ctx, tx, orgID, AuditKeyCreated, k.ID, keyAuditData(k))
			}
		}
		return err
	})
	if err != nil {
		return nil, storeError(err, "could not create the organization and project")
	}
	s.log.InfoContext(ctx, "organization and project created", "organization_id", res.Organization.ID, "project_id", res.Project.ID)
	s.sync(ctx, res.Project.ID)
	res.AdminKey, res.DecisionsKey = adminToken, decisionsToken
	return res, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
