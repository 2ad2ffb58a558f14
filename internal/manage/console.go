package manage

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// The console authorizes itself with Thauth's own engine. Its model is the configuration of
// the built-in system project (console.yaml): features and actions describe what can be done
// in an organization, member roles are assigned to the member's account (subject id = account
// id, type "account") in the organization's tenant, and operator roles are assigned globally.
// A console permission check is then an ordinary check against the system project with the
// account as subject and the organization as tenant, so one engine with one semantics answers
// both customers' questions and ours, and every denial has an engine reason.
//
// The memberships and operators tables stay the source of truth for listings; every write
// that changes them writes the account's subject in the system project in the same
// transaction, so the engine always agrees with them.

//go:embed console.yaml
var consoleYAML []byte

// consoleSubjectType is the subject type of accounts in the system project.
const consoleSubjectType = "account"

// EnsureConsole creates the system organization and project if they do not exist and makes
// the system project's configuration equal to the embedded console model (console.yaml),
// leaving its subjects (the accounts' grants) alone, then syncs the engine for it. It is
// idempotent and cheap when nothing changed (one transaction that writes nothing), and safe
// when several nodes run it at once: a concurrent creation is detected and re-read, and
// applies of the model serialize on the project. Every node calls it at start.
func (s *Service) EnsureConsole(ctx context.Context) error {
	if err := s.ensureSystemProject(ctx); err != nil {
		return err
	}
	// A document without a subjects key leaves subjects as they are (only grants naming a
	// role or action the new model drops go, by cascade), and applying an unchanged model
	// writes nothing and keeps the revision.
	if _, err := s.ApplyConfig(ctx, thauth.SystemProjectID, consoleYAML, FormatYAML, false); err != nil {
		return fmt.Errorf("applying the console model to the system project: %w", err)
	}
	s.sync(ctx, thauth.SystemProjectID)
	return nil
}

// ensureSystemProject creates the system organization and project when they are missing.
func (s *Service) ensureSystemProject(ctx context.Context) error {
	_, err := s.store.GetProject(ctx, thauth.SystemProjectID)
	if err == nil {
		return nil
	}
	if thauth.ErrorCodeOf(err) != thauth.ENotFound {
		return storeError(err, "could not read the system project")
	}
	now := s.clock()
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if _, err := tx.GetOrganization(ctx, thauth.SystemOrganizationID); err != nil {
			if thauth.ErrorCodeOf(err) != thauth.ENotFound {
				return err
			}
			org := &thauth.Organization{ID: thauth.SystemOrganizationID, Name: "Thauth system", CreatedAt: now}
			if err := tx.CreateOrganization(ctx, org); err != nil {
				return err
			}
		}
		p := &thauth.Project{ID: thauth.SystemProjectID, OrganizationID: thauth.SystemOrganizationID,
			Name: "console", CreatedAt: now}
		if err := tx.CreateProject(ctx, thauth.SystemOrganizationID, p); err != nil {
			return err
		}
		_, err := tx.AppendChanges(ctx, thauth.SystemProjectID, []thauth.Change{{Kind: thauth.ChangeProject}}, now)
		return err
	})
	if thauth.ErrorCodeOf(err) == thauth.EConflict {
		// Another node created them between our read and our write: use theirs.
		if _, err := s.store.GetProject(ctx, thauth.SystemProjectID); err == nil {
			return nil
		}
	}
	if err != nil {
		return storeError(err, "could not create the system project")
	}
	s.log.InfoContext(ctx, "system organization and project created")
	return nil
}

// Access is what Authorize granted: the actor's member role in the organization ("" when
// it has none), the operator role that allowed the action ("" when the member role did) and
// the engine's reason ("role:<role>").
type Access struct {
	Role     string `json:"role,omitempty"`
	Operator string `json:"operator,omitempty"`
	Reason   string `json:"reason"`
}

// errOrgNotFound is the answer for a missing organization and for one the actor may not see:
// the two must be indistinguishable.
var errOrgNotFound = thauth.Errorf(thauth.ENotFound, "organization not found")

// Authorize decides whether a may perform feature:action (names of console.yaml) in
// organization orgID, with the engine, through the system project. Answers:
//   - ENotFound "organization not found" when the organization does not exist, is the
//     system organization, or a is neither a member nor an operator (existence is never
//     revealed);
//   - EForbidden naming the role, the permission and the engine's reason when the roles of a
//     do not allow it;
//   - EForbidden when a is an access token without the write scope and the action is not
//     "read", when the organization requires two-factor authentication and a has none, and
//     when the access comes from an operator role but a is not a session with MFA;
//   - EForbidden "this organization is suspended: …" when an operator suspended the
//     organization and the action is not "read": its console is read-only for members
//     (an operator role still acts, under the operator rules);
//   - EUnauthenticated when a has no account.
//
// Access through an operator role is recorded in the organization's audit chain
// (operator.access). Without Options.Decide every permission is denied (fail closed).
func (s *Service) Authorize(ctx context.Context, a Actor, orgID, feature, action string) (*Access, error) {
	if a.AccountID == "" {
		return nil, thauth.Errorf(thauth.EUnauthenticated, "sign in first")
	}
	org, err := s.orgLoad(ctx, orgID)
	if err != nil {
		return nil, err
	}
	return s.orgAuthorize(ctx, a, org, feature, action)
}

// orgLoad returns the organization orgID, or errOrgNotFound for a missing or system one.
func (s *Service) orgLoad(ctx context.Context, orgID string) (*thauth.Organization, error) {
	if orgID == "" || orgID == thauth.SystemOrganizationID {
		return nil, errOrgNotFound
	}
	org, err := s.store.GetOrganization(ctx, orgID)
	if thauth.ErrorCodeOf(err) == thauth.ENotFound {
		return nil, errOrgNotFound
	}
	if err != nil {
		return nil, storeError(err, "could not read the organization")
	}
	return org, nil
}

// orgAuthorize is Authorize on a loaded organization.
func (s *Service) orgAuthorize(ctx context.Context, a Actor, org *thauth.Organization, feature, action string) (*Access, error) {
	perm := feature + ":" + action
	d := thauth.ErrorDecision
	if s.opts.Decide != nil {
		// Explain tells which grant allowed: an account may hold a member role in the tenant
		// and an operator role globally, and the engine's reason names only the role that
		// sorts first, which would make a member's own access look like operator access.
		d = s.opts.Decide(thauth.SystemProjectID, &thauth.CheckRequest{
			Subject: a.AccountID, Feature: feature, Action: action, Tenant: org.ID, Explain: true,
		}, s.now())
	}
	memberRole, operatorRole := "", ""
	if d.Allowed {
		memberRole, operatorRole = orgMatchedRoles(d, org.ID)
		if memberRole == "" && operatorRole == "" {
			// Allowed by something that is neither a member nor an operator role (an
			// override nobody should have written): fail closed.
			s.log.ErrorContext(ctx, "console permission allowed without a member or operator role; denying",
				"organization_id", org.ID, "permission", perm, "reason", d.Reason)
			d = thauth.ErrorDecision
		}
	}
	if !d.Allowed {
		return nil, s.orgDenied(ctx, a, org, perm, d.Reason)
	}
	if a.Via == ViaToken && !slices.Contains(a.Scopes, thauth.TokenScopeWrite) && action != "read" {
		return nil, thauth.Errorf(thauth.EForbidden, "this access token is read-only")
	}
	if memberRole != "" && org.SuspendedAt != nil && action != "read" {
		if operatorRole == "" {
			return nil, orgSuspended(org)
		}
		memberRole = "" // only the operator role may change a suspended organization
	}
	if memberRole != "" {
		if org.RequireMFA && !a.MFA {
			return nil, thauth.Errorf(thauth.EForbidden,
				"this organization requires two-factor authentication: enable it in your account settings")
		}
		return &Access{Role: memberRole, Reason: "role:" + memberRole}, nil
	}

	if a.Via != ViaSession || !a.MFA {
		return nil, thauth.Errorf(thauth.EForbidden, "operator access requires a session signed in with two-factor authentication")
	}
	acc := &Access{Operator: operatorRole, Reason: "role:" + operatorRole}
	m, err := s.store.GetMembership(ctx, org.ID, a.AccountID)
	switch {
	case err == nil:
		acc.Role = m.Role
	case thauth.ErrorCodeOf(err) != thauth.ENotFound:
		return nil, storeError(err, "could not read the membership")
	}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		return s.appendAudit(ctx, tx, auditEvent{
			Chain: org.ID, ActorType: thauth.ActorOperator, ActorID: a.AccountID, OrgID: org.ID,
			Action: "operator.access", Target: perm, Client: a.Client,
			Data: map[string]string{"operator_role": operatorRole, "permission": perm},
		})
	})
	if err != nil {
		// Unaudited operator access is no access.
		return nil, storeError(err, "could not record the operator access")
	}
	return acc, nil
}

// orgMatchedRoles returns the member role (assigned in tenant orgID) and the operator role
// (assigned globally) that allowed decision d. It reads the explanation when there is one,
// and the reason otherwise.
func orgMatchedRoles(d thauth.Decision, orgID string) (memberRole, operatorRole string) {
	if d.Explain == nil {
		role, ok := strings.CutPrefix(d.Reason, "role:")
		switch {
		case !ok:
		case slices.Contains(thauth.OrgRoles, role):
			memberRole = role
		case slices.Contains(thauth.OperatorRoles, role):
			operatorRole = role
		}
		return memberRole, operatorRole
	}
	for _, g := range d.Explain.Grants {
		if g.Kind != "role" || !g.Matched {
			continue
		}
		switch {
		case g.Tenant == orgID && slices.Contains(thauth.OrgRoles, g.Role):
			if memberRole == "" {
				memberRole = g.Role
			}
		case g.Tenant == "" && slices.Contains(thauth.OperatorRoles, g.Role):
			if operatorRole == "" {
				operatorRole = g.Role
			}
		}
	}
	return memberRole, operatorRole
}

// orgDenied builds the answer to a denied permission: not found for an outsider, else a
// denial naming the role, the permission and the engine's reason.
func (s *Service) orgDenied(ctx context.Context, a Actor, org *thauth.Organization, perm, reason string) error {
	m, err := s.store.GetMembership(ctx, org.ID, a.AccountID)
	if err != nil && thauth.ErrorCodeOf(err) != thauth.ENotFound {
		return storeError(err, "could not read the membership")
	}
	if m != nil {
		return thauth.Errorf(thauth.EForbidden, "your role %q does not allow %s in this organization (reason: %s)",
			m.Role, perm, reason)
	}
	op, err := s.store.GetOperator(ctx, a.AccountID)
	if err != nil && thauth.ErrorCodeOf(err) != thauth.ENotFound {
		return storeError(err, "could not read the operator grant")
	}
	if op != nil {
		return thauth.Errorf(thauth.EForbidden, "your operator role %q does not allow %s (reason: %s)",
			op.Role, perm, reason)
	}
	return errOrgNotFound
}

// AuthorizeProject is Authorize on the organization of project projectID, returning the
// project. ENotFound "project not found" stands for a missing project, the system project
// and every case where Authorize would answer "organization not found".
func (s *Service) AuthorizeProject(ctx context.Context, a Actor, projectID, feature, action string) (*thauth.Project, error) {
	notFound := thauth.Errorf(thauth.ENotFound, "project not found")
	if projectID == "" || projectID == thauth.SystemProjectID {
		return nil, notFound
	}
	p, err := s.store.GetProject(ctx, projectID)
	if thauth.ErrorCodeOf(err) == thauth.ENotFound {
		return nil, notFound
	}
	if err != nil {
		return nil, storeError(err, "could not read the project")
	}
	if p.OrganizationID == thauth.SystemOrganizationID {
		return nil, notFound
	}
	if _, err := s.Authorize(ctx, a, p.OrganizationID, feature, action); err != nil {
		if thauth.ErrorCodeOf(err) == thauth.ENotFound {
			return nil, notFound
		}
		return nil, err
	}
	return p, nil
}

// orgActor returns the audit actor of an operation a performs with access acc.
func orgActor(a Actor, acc *Access) (typ, id string) {
	if acc != nil && acc.Operator != "" {
		return thauth.ActorOperator, a.AccountID
	}
	return actorOf(a)
}

// orgGrants writes accounts' grants in the system project inside a console transaction
// (orgConsoleTx), which records the change-log entry for them.
type orgGrants struct {
	tx      thauth.Data
	now     time.Time
	roleIDs map[string]string // role name → id in the system project, loaded on first use
	changed []string          // account ids whose grants changed
}

// errConsoleMissing answers console writes on a store where EnsureConsole never ran.
var errConsoleMissing = thauth.Errorf(thauth.EUnavailable,
	"the console is not set up yet: start a server once (it runs the set-up) and try again")

// orgConsoleTx runs fn in a transaction that first locks the system project (so that the
// membership and operator writes of the whole installation serialize, which keeps checks such
// as "an organization keeps an owner" free of races), then records one change-log entry for
// the accounts whose grants fn changed; after the commit it syncs the engine. fn must not
// call Authorize (which may write in a transaction of its own).
func (s *Service) orgConsoleTx(ctx context.Context, fn func(ctx context.Context, tx thauth.Data, g *orgGrants) error) error {
	changed := false
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		changed = false // in case a store runs the closure again
		if _, err := tx.GetProject(ctx, thauth.SystemProjectID); err != nil {
			if thauth.ErrorCodeOf(err) == thauth.ENotFound {
				return errConsoleMissing
			}
			return err
		}
		g := &orgGrants{tx: tx, now: s.clock()}
		if err := fn(ctx, tx, g); err != nil {
			return err
		}
		if len(g.changed) == 0 {
			return nil
		}
		ids := dedupe(g.changed)
		slices.Sort(ids)
		changes := make([]thauth.Change, len(ids))
		for i, id := range ids {
			changes[i] = thauth.Change{Kind: thauth.ChangeSubject, Ref: id}
		}
		if _, err := tx.AppendChanges(ctx, thauth.SystemProjectID, changes, g.now); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if err != nil {
		return err
	}
	if changed {
		s.sync(ctx, thauth.SystemProjectID)
	}
	return nil
}

// set makes role the account's only role in scope — the organization's tenant for a member
// role, the global scope (Scope{}) for an operator role; role "" removes the account's roles
// there. Grants in other scopes are untouched.
func (g *orgGrants) set(ctx context.Context, accountID string, scope thauth.Scope, role string) error {
	as := []thauth.Assignment{}
	if role != "" {
		if g.roleIDs == nil {
			cfg, err := g.tx.LoadConfig(ctx, thauth.SystemProjectID)
			if err != nil {
				return err
			}
			g.roleIDs = make(map[string]string, len(cfg.Roles))
			for _, r := range cfg.Roles {
				g.roleIDs[r.Name] = r.ID
			}
		}
		id, ok := g.roleIDs[role]
		if !ok {
			return thauth.Internal(fmt.Errorf("console model has no role %q", role), "the console model is out of date")
		}
		as = append(as, thauth.Assignment{RoleID: id, RoleName: role, Tenant: scope.Tenant})
	}
	sub := &thauth.Subject{SubjectID: accountID, SubjectType: consoleSubjectType}
	if _, err := g.tx.UpsertSubject(ctx, thauth.SystemProjectID, sub, g.now); err != nil {
		return err
	}
	if err := g.tx.ReplaceAssignments(ctx, thauth.SystemProjectID, accountID, scope, as); err != nil {
		return err
	}
	g.changed = append(g.changed, accountID)
	return nil
}

// member sets the account's member role in organization orgID ("" removes it).
func (g *orgGrants) member(ctx context.Context, orgID, accountID, role string) error {
	return g.set(ctx, accountID, thauth.Scope{Tenant: orgID}, role)
}

// operator sets the account's operator role ("" removes it).
func (g *orgGrants) operator(ctx context.Context, accountID, role string) error {
	return g.set(ctx, accountID, thauth.Scope{}, role)
}
