package manage

import (
	"context"
	"slices"
	"strings"

	"github.com/thauth/thauth"
)

// Members of organizations. Granting the owner role, or changing or removing an owner, needs
// members:manage_owners on top of the operation's own permission, and no operation leaves an
// organization without an owner. Membership writes run in orgConsoleTx, which serializes
// them installation-wide, so the owner count read inside the transaction stays true until
// the commit.

var (
	errMemberNotFound = thauth.Errorf(thauth.ENotFound, "member not found")
	errLastOwner      = thauth.Errorf(thauth.EConflict, "an organization must keep at least one owner: transfer ownership first")
	errMemberChanged  = thauth.Errorf(thauth.EConflict, "the member's role changed meanwhile; reload and try again")
)

// orgCheckRole returns EInvalid unless role is a member role.
func orgCheckRole(role string) error {
	if !slices.Contains(thauth.OrgRoles, role) {
		return thauth.Errorf(thauth.EInvalid, "unknown role %q: use one of %s", role, strings.Join(thauth.OrgRoles, ", "))
	}
	return nil
}

// ListMembers returns the organization's members with their account details (members:read).
func (s *Service) ListMembers(ctx context.Context, a Actor, orgID string) ([]thauth.Member, error) {
	if _, err := s.Authorize(ctx, a, orgID, "members", "read"); err != nil {
		return nil, err
	}
	list, err := s.store.ListMembers(ctx, orgID)
	if err != nil {
		return nil, storeError(err, "could not list the members")
	}
	return list, nil
}

// orgMembership reads a membership outside a transaction; errMemberNotFound when absent.
func (s *Service) orgMembership(ctx context.Context, d thauth.Data, orgID, accountID string) (*thauth.Membership, error) {
	m, err := d.GetMembership(ctx, orgID, accountID)
	if thauth.ErrorCodeOf(err) == thauth.ENotFound {
		return nil, errMemberNotFound
	}
	if err != nil {
		return nil, storeError(err, "could not read the membership")
	}
	return m, nil
}

// orgOwners counts the organization's owners through d.
func orgOwners(ctx context.Context, d thauth.Data, orgID string) (int, error) {
	members, err := d.ListMembers(ctx, orgID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range members {
		if m.Role == thauth.OrgRoleOwner {
			n++
		}
	}
	return n, nil
}

// ChangeMemberRole gives the member accountID the role role (members:update, plus
// members:manage_owners when the member is or becomes an owner). EInvalid for an unknown
// role, ENotFound "member not found", EConflict when it would leave the organization without
// an owner. Setting the role a member has is a no-op. Recorded as member.role_changed.
func (s *Service) ChangeMemberRole(ctx context.Context, a Actor, orgID, accountID, role string) (*thauth.Membership, error) {
	if err := orgCheckRole(role); err != nil {
		return nil, err
	}
	acc, err := s.Authorize(ctx, a, orgID, "members", "update")
	if err != nil {
		return nil, err
	}
	before, err := s.orgMembership(ctx, s.store, orgID, accountID)
	if err != nil {
		return nil, err
	}
	wasOwner := before.Role == thauth.OrgRoleOwner
	if wasOwner || role == thauth.OrgRoleOwner {
		if acc, err = s.Authorize(ctx, a, orgID, "members", "manage_owners"); err != nil {
			return nil, err
		}
	}
	var m *thauth.Membership
	err = s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		cur, err := s.orgMembership(ctx, tx, orgID, accountID)
		if err != nil {
			return err
		}
		if (cur.Role == thauth.OrgRoleOwner) != wasOwner {
			return errMemberChanged // the permission checked above no longer fits
		}
		m = cur
		if cur.Role == role {
			return nil
		}
		if wasOwner {
			n, err := orgOwners(ctx, tx, orgID)
			if err != nil {
				return err
			}
			if n <= 1 {
				return errLastOwner
			}
		}
		from := cur.Role
		cur.Role, cur.UpdatedAt = role, g.now
		if err := tx.PutMembership(ctx, cur); err != nil {
			return err
		}
		if err := g.member(ctx, orgID, accountID, role); err != nil {
			return err
		}
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "member.role_changed", Target: accountID, Client: a.Client,
			Data: map[string]string{"from": from, "to": role}})
	})
	if err != nil {
		return nil, storeError(err, "could not change the member's role")
	}
	return m, nil
}

// RemoveMember removes the member accountID from the organization (members:remove, plus
// members:manage_owners to remove an owner). A member may always remove themself — leave —
// without either permission. The last owner can neither leave nor be removed (EConflict).
// Recorded as member.removed.
func (s *Service) RemoveMember(ctx context.Context, a Actor, orgID, accountID string) error {
	if err := orgWritable(a); err != nil {
		return err
	}
	var acc *Access
	leaving := false
	if accountID == a.AccountID {
		if _, err := s.orgLoad(ctx, orgID); err != nil {
			return err
		}
		_, err := s.store.GetMembership(ctx, orgID, accountID)
		switch {
		case err == nil:
			leaving = true
		case thauth.ErrorCodeOf(err) != thauth.ENotFound:
			return storeError(err, "could not read the membership")
		}
	}
	wasOwner := false
	if !leaving {
		var err error
		if acc, err = s.Authorize(ctx, a, orgID, "members", "remove"); err != nil {
			return err
		}
		before, err := s.orgMembership(ctx, s.store, orgID, accountID)
		if err != nil {
			return err
		}
		if wasOwner = before.Role == thauth.OrgRoleOwner; wasOwner {
			if acc, err = s.Authorize(ctx, a, orgID, "members", "manage_owners"); err != nil {
				return err
			}
		}
	}
	err := s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		cur, err := s.orgMembership(ctx, tx, orgID, accountID)
		if err != nil {
			return err
		}
		isOwner := cur.Role == thauth.OrgRoleOwner
		if !leaving && isOwner != wasOwner {
			return errMemberChanged
		}
		if isOwner {
			n, err := orgOwners(ctx, tx, orgID)
			if err != nil {
				return err
			}
			if n <= 1 {
				return errLastOwner
			}
		}
		if err := tx.DeleteMembership(ctx, orgID, accountID); err != nil {
			return err
		}
		if err := g.member(ctx, orgID, accountID, ""); err != nil {
			return err
		}
		typ, actor := orgActor(a, acc)
		data := map[string]string{"role": cur.Role}
		if leaving {
			data["left"] = "true"
		}
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "member.removed", Target: accountID, Client: a.Client, Data: data})
	})
	if err != nil {
		return storeError(err, "could not remove the member")
	}
	return nil
}

// TransferOwnership makes the member toAccountID an owner and the actor, an owner, an admin,
// in one transaction (organization:transfer, which only the owner role has: it hands over
// the actor's own ownership). ENotFound "member not found" when the target is not a member;
// EInvalid when the target is the actor. Recorded as org.ownership_transferred.
func (s *Service) TransferOwnership(ctx context.Context, a Actor, orgID, toAccountID string) error {
	acc, err := s.Authorize(ctx, a, orgID, "organization", "transfer")
	if err != nil {
		return err
	}
	if acc.Role != thauth.OrgRoleOwner {
		return thauth.Errorf(thauth.EForbidden, "only an owner can transfer ownership: it hands over the owner's own role")
	}
	if toAccountID == a.AccountID {
		return thauth.Errorf(thauth.EInvalid, "choose another member: you are already an owner")
	}
	err = s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		to, err := s.orgMembership(ctx, tx, orgID, toAccountID)
		if err != nil {
			return err
		}
		from, err := s.orgMembership(ctx, tx, orgID, a.AccountID)
		if err != nil && err != errMemberNotFound {
			return err
		}
		if err != nil || from.Role != thauth.OrgRoleOwner {
			return thauth.Errorf(thauth.EConflict, "you are no longer an owner of this organization")
		}
		previous := to.Role
		to.Role, to.UpdatedAt = thauth.OrgRoleOwner, g.now
		from.Role, from.UpdatedAt = thauth.OrgRoleAdmin, g.now
		for _, m := range []*thauth.Membership{to, from} {
			if err := tx.PutMembership(ctx, m); err != nil {
				return err
			}
			if err := g.member(ctx, orgID, m.AccountID, m.Role); err != nil {
				return err
			}
		}
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "org.ownership_transferred", Target: toAccountID, Client: a.Client,
			Data: map[string]string{"from": a.AccountID, "to": toAccountID, "to_previous_role": previous,
				"from_new_role": thauth.OrgRoleAdmin}})
	})
	if err != nil {
		return storeError(err, "could not transfer the ownership")
	}
	return nil
}
