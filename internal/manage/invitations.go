package manage

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/thauth/thauth"
)

// Invitations by email. The link carries a 256-bit random token in its fragment; only its
// SHA-256 is stored. An invitation is single-use, expires after InvitationLifetime, and can
// only be accepted by an account whose verified email is the invited address, so a
// forwarded or leaked link is useless to anyone else.

// InvitationLifetime is how long an invitation link works.
const InvitationLifetime = 7 * 24 * time.Hour

var errInvitationInvalid = thauth.Errorf(thauth.ENotFound, "this invitation link is invalid or has expired")

// orgPending reports whether inv can still be accepted at now.
func orgPending(inv *thauth.Invitation, now time.Time) bool {
	return inv.AcceptedAt == nil && inv.RevokedAt == nil && now.Before(inv.ExpiresAt)
}

// Invite invites email to join the organization with role (members:invite, plus
// members:manage_owners to invite an owner) and queues the invitation mail with a link
// that works once for InvitationLifetime. A pending invitation to the same address is
// revoked and replaced. EInvalid for a bad address or role; EConflict "already a member"
// when the address belongs to a member. Recorded as invitation.created.
func (s *Service) Invite(ctx context.Context, a Actor, orgID, email, role string) (*thauth.Invitation, error) {
	addr, err := acctNormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := orgCheckRole(role); err != nil {
		return nil, err
	}
	acc, err := s.Authorize(ctx, a, orgID, "members", "invite")
	if err != nil {
		return nil, err
	}
	if role == thauth.OrgRoleOwner {
		if acc, err = s.Authorize(ctx, a, orgID, "members", "manage_owners"); err != nil {
			return nil, err
		}
	}
	if s.opts.Sealer == nil {
		return nil, errNoSealer
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, thauth.Internal(err, "could not create the invitation")
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	hash := thauth.HashToken(token)
	var inv *thauth.Invitation
	err = s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		org, err := tx.GetOrganization(ctx, orgID)
		if err != nil {
			return err
		}
		if existing, err := tx.GetAccountByEmail(ctx, addr); err == nil {
			if _, err := tx.GetMembership(ctx, orgID, existing.ID); err == nil {
				return thauth.Errorf(thauth.EConflict, "%s is already a member of this organization", addr)
			} else if thauth.ErrorCodeOf(err) != thauth.ENotFound {
				return err
			}
		} else if thauth.ErrorCodeOf(err) != thauth.ENotFound {
			return err
		}
		typ, actor := orgActor(a, acc)
		list, err := tx.ListInvitations(ctx, orgID)
		if err != nil {
			return err
		}
		for i := range list {
			old := &list[i]
			if old.Email != addr || !orgPending(old, g.now) {
				continue
			}
			old.RevokedAt = &g.now
			if err := tx.UpdateInvitation(ctx, orgID, old); err != nil {
				return err
			}
			if err := s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
				Action: "invitation.revoked", Target: old.ID, Client: a.Client,
				Data: map[string]string{"email": addr, "replaced_by": id}}); err != nil {
				return err
			}
		}
		inv = &thauth.Invitation{ID: id, OrganizationID: orgID, Email: addr, Role: role, TokenHash: hash[:],
			InvitedBy: a.AccountID, CreatedAt: g.now, ExpiresAt: g.now.Add(InvitationLifetime)}
		if err := tx.CreateInvitation(ctx, orgID, inv); err != nil {
			return err
		}
		inviter := ""
		if me, err := tx.GetAccount(ctx, a.AccountID); err == nil {
			inviter = me.Name
			if inviter == "" {
				inviter = me.Email
			}
		}
		if acc.Operator != "" {
			inviter = "Thauth support"
		}
		if err := s.enqueueMail(ctx, tx, addr, MailInvitation, map[string]string{
			"link": s.link("/invitations/accept", token), "organization": org.Name, "role": role, "inviter": inviter,
		}); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "invitation.created", Target: id, Client: a.Client,
			Data: map[string]string{"email": addr, "role": role}})
	})
	if err != nil {
		return nil, storeError(err, "could not create the invitation")
	}
	s.mailQueued()
	return inv, nil
}

// ListInvitations returns the organization's invitations, newest first, pending or not
// (members:read).
func (s *Service) ListInvitations(ctx context.Context, a Actor, orgID string) ([]thauth.Invitation, error) {
	if _, err := s.Authorize(ctx, a, orgID, "members", "read"); err != nil {
		return nil, err
	}
	list, err := s.store.ListInvitations(ctx, orgID)
	if err != nil {
		return nil, storeError(err, "could not list the invitations")
	}
	return list, nil
}

// RevokeInvitation makes a pending invitation unusable (members:invite). ENotFound
// "invitation not found"; EConflict when it was accepted already; revoking a revoked or
// expired invitation is a no-op. Recorded as invitation.revoked.
func (s *Service) RevokeInvitation(ctx context.Context, a Actor, orgID, invitationID string) error {
	acc, err := s.Authorize(ctx, a, orgID, "members", "invite")
	if err != nil {
		return err
	}
	now := s.clock()
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		inv, err := tx.GetInvitation(ctx, orgID, invitationID)
		if thauth.ErrorCodeOf(err) == thauth.ENotFound {
			return thauth.Errorf(thauth.ENotFound, "invitation not found")
		}
		if err != nil {
			return err
		}
		if inv.AcceptedAt != nil {
			return thauth.Errorf(thauth.EConflict, "this invitation was already accepted: remove the member instead")
		}
		if !orgPending(inv, now) {
			return nil
		}
		inv.RevokedAt = &now
		if err := tx.UpdateInvitation(ctx, orgID, inv); err != nil {
			return err
		}
		typ, actor := orgActor(a, acc)
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "invitation.revoked", Target: inv.ID, Client: a.Client,
			Data: map[string]string{"email": inv.Email}})
	})
	if err != nil {
		return storeError(err, "could not revoke the invitation")
	}
	return nil
}

// AcceptInvitation makes a a member with the invitation's role. The token must be that of a
// pending invitation (ENotFound "this invitation link is invalid or has expired" otherwise:
// unknown, expired, revoked and used links answer alike), and a's email must be verified
// and equal to the invited address (EForbidden otherwise). EConflict when a is a member
// already. Recorded as member.added and invitation.accepted.
func (s *Service) AcceptInvitation(ctx context.Context, a Actor, token string) (*thauth.Membership, error) {
	if err := orgWritable(a); err != nil {
		return nil, err
	}
	if token == "" || len(token) > 100 {
		return nil, errInvitationInvalid
	}
	hash := thauth.HashToken(token)
	var m *thauth.Membership
	err := s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		inv, err := tx.GetInvitationByHash(ctx, hash[:])
		if thauth.ErrorCodeOf(err) == thauth.ENotFound {
			return errInvitationInvalid
		}
		if err != nil {
			return err
		}
		if !orgPending(inv, g.now) || inv.OrganizationID == thauth.SystemOrganizationID {
			return errInvitationInvalid
		}
		acct, err := tx.GetAccount(ctx, a.AccountID)
		if err != nil {
			return err
		}
		if acct.Email != inv.Email {
			return thauth.Errorf(thauth.EForbidden,
				"this invitation was sent to another email address: sign in with the invited address to accept it")
		}
		if acct.EmailVerifiedAt == nil {
			return thauth.Errorf(thauth.EForbidden, "verify your email address before accepting the invitation")
		}
		if _, err := tx.GetMembership(ctx, inv.OrganizationID, a.AccountID); err == nil {
			return thauth.Errorf(thauth.EConflict, "you are already a member of this organization")
		} else if thauth.ErrorCodeOf(err) != thauth.ENotFound {
			return err
		}
		m = &thauth.Membership{OrganizationID: inv.OrganizationID, AccountID: a.AccountID, Role: inv.Role,
			CreatedAt: g.now, UpdatedAt: g.now}
		if err := tx.PutMembership(ctx, m); err != nil {
			return err
		}
		if err := g.member(ctx, inv.OrganizationID, a.AccountID, inv.Role); err != nil {
			return err
		}
		inv.AcceptedAt, inv.AcceptedBy = &g.now, a.AccountID
		if err := tx.UpdateInvitation(ctx, inv.OrganizationID, inv); err != nil {
			return err
		}
		typ, actor := actorOf(a)
		orgID := inv.OrganizationID
		if err := s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "member.added", Target: a.AccountID, Client: a.Client,
			Data: map[string]string{"role": inv.Role, "invitation": inv.ID}}); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: typ, ActorID: actor, OrgID: orgID,
			Action: "invitation.accepted", Target: inv.ID, Client: a.Client,
			Data: map[string]string{"email": inv.Email, "role": inv.Role}})
	})
	if err != nil {
		return nil, storeError(err, "could not accept the invitation")
	}
	return m, nil
}
