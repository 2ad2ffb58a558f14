package manage

import (
	"context"
	"slices"
	"strconv"

	"github.com/thauth/thauth"
)

// Organizations and their projects, as seen from the console. Every operation on an existing
// organization starts with Authorize, so an outsider gets "organization not found" whether
// or not it exists.

// maxOrgNameChars bounds organization and project names.
const maxOrgNameChars = 200

// orgWritable refuses write operations to access tokens without the write scope. Authorize
// does the same for operations on an organization; this covers the ones that have none yet.
func orgWritable(a Actor) error {
	if a.AccountID == "" {
		return thauth.Errorf(thauth.EUnauthenticated, "sign in first")
	}
	if a.Via == ViaToken && !slices.Contains(a.Scopes, thauth.TokenScopeWrite) {
		return thauth.Errorf(thauth.EForbidden, "this access token is read-only")
	}
	return nil
}

// CreateOrganization creates an organization named name (1–200 characters, EInvalid
// otherwise) with a as its owner, and records org.created in its audit chain.
func (s *Service) CreateOrganization(ctx context.Context, a Actor, name string) (*thauth.Organization, error) {
	if err := orgWritable(a); err != nil {
		return nil, err
	}
	if msg := validateLabel(name, maxOrgNameChars); msg != "" {
		return nil, thauth.Errorf(thauth.EInvalid, "organization name %s", msg)
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	var org *thauth.Organization
	err = s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		org = &thauth.Organization{ID: id, Name: name, CreatedAt: g.now}
		if err := tx.CreateOrganization(ctx, org); err != nil {
			return err
		}
		m := &thauth.Membership{OrganizationID: id, AccountID: a.AccountID, Role: thauth.OrgRoleOwner,
			CreatedAt: g.now, UpdatedAt: g.now}
		if err := tx.PutMembership(ctx, m); err != nil {
			return err
		}
		if err := g.member(ctx, id, a.AccountID, thauth.OrgRoleOwner); err != nil {
			return err
		}
		typ, actor := actorOf(a)
		return s.appendAudit(ctx, tx, auditEvent{Chain: id, ActorType: typ, ActorID: actor, OrgID: id,
			Action: "org.created", Target: id, Client: a.Client, Data: map[string]string{"name": name}})
	})
	if err != nil {
		return nil, storeError(err, "could not create the organization")
	}
	s.log.InfoContext(ctx, "organization created", "organization_id", id)
	return org, nil
}

// ListOrganizations returns the organizations a is a member of, with its role in each,
// ordered by name.
func (s *Service) ListOrganizations(ctx context.Context, a Actor) ([]thauth.OrganizationMembership, error) {
	if a.AccountID == "" {
		return nil, thauth.Errorf(thauth.EUnauthenticated, "sign in first")
	}
	list, err := s.store.ListAccountOrganizations(ctx, a.AccountID)
	if err != nil {
		return nil, storeError(err, "could not list the organizations")
	}
	return list, nil
}

// GetOrganization returns the organization and a's access to it (organization:read).
func (s *Service) GetOrganization(ctx context.Context, a Actor, orgID string) (*thauth.Organization, *Access, error) {
	if a.AccountID == "" {
		return nil, nil, thauth.Errorf(thauth.EUnauthenticated, "sign in first")
	}
	org, err := s.orgLoad(ctx, orgID)
	if err != nil {
		return nil, nil, err
	}
	acc, err := s.orgAuthorize(ctx, a, org, "organization", "read")
	if err != nil {
		return nil, nil, err
	}
	return org, acc, nil
}

// UpdateOrganization changes the name and/or the two-factor requirement of the organization
// (organization:update); nil leaves a field as it is. Requiring two-factor authentication is
// refused (EForbidden) to an actor without it, who would lock themself out. A change is
// recorded as org.updated; an update that changes nothing writes nothing.
func (s *Service) UpdateOrganization(ctx context.Context, a Actor, orgID string, name *string, requireMFA *bool) (*thauth.Organization, error) {
	if name != nil {
		if msg := validateLabel(*name, maxOrgNameChars); msg != "" {
			return nil, thauth.Errorf(thauth.EInvalid, "organization name %s", msg)
		}
	}
	acc, err := s.Authorize(ctx, a, orgID, "organization", "update")
	if err != nil {
		return nil, err
	}
	if requireMFA != nil && *requireMFA && !a.MFA {
		return nil, thauth.Errorf(thauth.EForbidden,
			"turn on two-factor authentication for your own account before requiring it of every member")
	}
	var org *thauth.Organization
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		cur, err := tx.GetOrganization(ctx, orgID)
		if err != nil {
			return err
		}
		org = cur
		data := map[string]string{}
		if name != nil && *name != cur.Name {
			data["name"] = *name
			data["previous_name"] = cur.Name
			cur.Name = *name
		}
		if requireMFA != nil && *requireMFA != cur.RequireMFA {
			data["require_mfa"] = strconv.FormatBool(*requireMFA)
			cur.RequireMFA = *requireMFA
		}
		if len(data) == 0 {
			return nil
		}
		if err := tx.UpdateOrganization(ctx, cur); err != nil {
			return err
		}
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "org.updated", Target: orgID, Client: a.Client, Data: data})
	})
	if err != nil {
		return nil, storeError(err, "could not update the organization")
	}
	return org, nil
}

// CreateProject creates a project named name (1–200 characters) in the organization
// (projects:create), records project.created, and syncs the engine so that the project is
// usable when CreateProject returns.
func (s *Service) CreateProject(ctx context.Context, a Actor, orgID, name string) (*thauth.Project, error) {
	if msg := validateLabel(name, maxOrgNameChars); msg != "" {
		return nil, thauth.Errorf(thauth.EInvalid, "project name %s", msg)
	}
	acc, err := s.Authorize(ctx, a, orgID, "projects", "create")
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	now := s.clock()
	p := &thauth.Project{ID: id, OrganizationID: orgID, Name: name, CreatedAt: now}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.CreateProject(ctx, orgID, p); err != nil {
			return err
		}
		rev, err := tx.AppendChanges(ctx, id, []thauth.Change{{Kind: thauth.ChangeProject}}, now)
		if err != nil {
			return err
		}
		p.Revision = rev
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "project.created", Target: id, Client: a.Client, Data: map[string]string{"name": name}})
	})
	if err != nil {
		return nil, storeError(err, "could not create the project")
	}
	s.log.InfoContext(ctx, "project created", "organization_id", orgID, "project_id", id)
	s.sync(ctx, id)
	return p, nil
}

// ListProjects returns the organization's projects (projects:read).
func (s *Service) ListProjects(ctx context.Context, a Actor, orgID string) ([]thauth.Project, error) {
	if _, err := s.Authorize(ctx, a, orgID, "projects", "read"); err != nil {
		return nil, err
	}
	list, err := s.store.ListProjects(ctx, orgID)
	if err != nil {
		return nil, storeError(err, "could not list the projects")
	}
	return list, nil
}
