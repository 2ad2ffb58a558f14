package manage

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func TestInviteAndAccept(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	invitee := orgNewAccount(t, e, "new@example.com", false)

	inv, err := e.svc.Invite(e.ctx, owner, org.ID, "  New@Example.COM ", thauth.OrgRoleDeveloper)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Email != "new@example.com" || inv.Role != "developer" || inv.InvitedBy != owner.AccountID ||
		!inv.ExpiresAt.Equal(testStart.Add(7*24*time.Hour)) || len(inv.TokenHash) != 32 {
		t.Errorf("invitation: %+v", inv)
	}
	mail := e.lastMail(t, "new@example.com", MailInvitation)
	link := mail.Data["link"]
	if !strings.HasPrefix(link, "https://console.test/invitations/accept#token=") || mail.Data["organization"] != "Acme" ||
		mail.Data["role"] != "developer" || mail.Data["inviter"] != "owner" {
		t.Errorf("mail payload: %v", mail.Data)
	}
	token := tokenOf(t, link)
	if sum := thauth.HashToken(token); !bytes.Equal(sum[:], inv.TokenHash) {
		t.Error("the stored hash is not the SHA-256 of the mailed token")
	}
	if len(token) != 43 { // 32 bytes, base64url without padding
		t.Errorf("token length %d", len(token))
	}
	list, err := e.svc.ListInvitations(e.ctx, owner, org.ID)
	if err != nil || len(list) != 1 || list[0].ID != inv.ID {
		t.Fatalf("ListInvitations: %+v %v", list, err)
	}

	m, err := e.svc.AcceptInvitation(e.ctx, invitee, token)
	if err != nil {
		t.Fatalf("AcceptInvitation: %v", err)
	}
	if m.Role != "developer" || m.OrganizationID != org.ID || m.AccountID != invitee.AccountID {
		t.Errorf("membership: %+v", m)
	}
	stored, err := e.store.GetInvitation(e.ctx, org.ID, inv.ID)
	if err != nil || stored.AcceptedAt == nil || stored.AcceptedBy != invitee.AccountID {
		t.Errorf("stored invitation: %+v %v", stored, err)
	}
	if _, err := e.svc.Authorize(e.ctx, invitee, org.ID, "keys", "create"); err != nil {
		t.Errorf("new developer creating keys: %v", err)
	}
	orgEngineAgrees(t, e, owner, invitee)

	// Used once: the same link no longer works.
	_, err = e.svc.AcceptInvitation(e.ctx, invitee, token)
	orgWantErr(t, err, thauth.ENotFound, "this invitation link is invalid or has expired")

	// Inviting a member again is a conflict.
	_, err = e.svc.Invite(e.ctx, owner, org.ID, "new@example.com", "viewer")
	orgWantErr(t, err, thauth.EConflict, "already a member")

	got := orgActions(orgAudit(t, e, org.ID))
	want := []string{"org.created", "invitation.created", "member.added", "invitation.accepted"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("audit %v, want %v", got, want)
	}
}

func TestInviteValidation(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	admin := orgNewAccount(t, e, "admin@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	orgAddMember(t, e, owner, org.ID, admin, "admin")

	for _, email := range []string{"", "no-at-sign", "@example.com", "a@", "a b@example.com", strings.Repeat("a", 250) + "@x.io"} {
		// The same rules as sign-up (acctNormalizeEmail): an invitation must reach an address
		// that can have an account.
		_, err := e.svc.Invite(e.ctx, owner, org.ID, email, "viewer")
		orgWantErr(t, err, thauth.EInvalid, "email ")
	}
	_, err := e.svc.Invite(e.ctx, owner, org.ID, "x@example.com", "god")
	orgWantErr(t, err, thauth.EInvalid, `unknown role "god"`)
	_, err = e.svc.Invite(e.ctx, admin, org.ID, "x@example.com", "owner")
	orgWantErr(t, err, thauth.EForbidden, `role "admin" does not allow members:manage_owners`)
	if _, err := e.svc.Invite(e.ctx, admin, org.ID, "x@example.com", "admin"); err != nil {
		t.Errorf("admin inviting an admin: %v", err)
	}
	if _, err := e.svc.Invite(e.ctx, owner, org.ID, "y@example.com", "owner"); err != nil {
		t.Errorf("owner inviting an owner: %v", err)
	}
}

func TestInvitationNegativePaths(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	invite := func(email string) (*thauth.Invitation, string) {
		t.Helper()
		inv, err := e.svc.Invite(e.ctx, owner, org.ID, email, "viewer")
		if err != nil {
			t.Fatalf("Invite: %v", err)
		}
		return inv, tokenOf(t, e.lastMail(t, email, MailInvitation).Data["link"])
	}
	invalid := "this invitation link is invalid or has expired"

	t.Run("unknown", func(t *testing.T) {
		a := orgNewAccount(t, e, "unknown@example.com", false)
		for _, token := range []string{"", "nope", strings.Repeat("A", 43), strings.Repeat("A", 5000)} {
			_, err := e.svc.AcceptInvitation(e.ctx, a, token)
			orgWantErr(t, err, thauth.ENotFound, invalid)
		}
	})
	t.Run("expired", func(t *testing.T) {
		a := orgNewAccount(t, e, "late@example.com", false)
		_, token := invite("late@example.com")
		e.advance(7 * 24 * time.Hour) // expires at exactly this instant
		defer e.clock.Set(testStart)
		_, err := e.svc.AcceptInvitation(e.ctx, a, token)
		orgWantErr(t, err, thauth.ENotFound, invalid)
	})
	t.Run("revoked", func(t *testing.T) {
		a := orgNewAccount(t, e, "revoked@example.com", false)
		inv, token := invite("revoked@example.com")
		if err := e.svc.RevokeInvitation(e.ctx, owner, org.ID, inv.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.RevokeInvitation(e.ctx, owner, org.ID, inv.ID); err != nil {
			t.Errorf("revoking twice: %v", err)
		}
		_, err := e.svc.AcceptInvitation(e.ctx, a, token)
		orgWantErr(t, err, thauth.ENotFound, invalid)
		err = e.svc.RevokeInvitation(e.ctx, owner, org.ID, "0190e6c2-0000-7000-8000-00000000dead")
		orgWantErr(t, err, thauth.ENotFound, "invitation not found")
	})
	t.Run("replaced", func(t *testing.T) {
		a := orgNewAccount(t, e, "twice@example.com", false)
		first, oldToken := invite("twice@example.com")
		_, newToken := invite("twice@example.com")
		stored, err := e.store.GetInvitation(e.ctx, org.ID, first.ID)
		if err != nil || stored.RevokedAt == nil {
			t.Fatalf("the first invitation was not revoked: %+v %v", stored, err)
		}
		_, err = e.svc.AcceptInvitation(e.ctx, a, oldToken)
		orgWantErr(t, err, thauth.ENotFound, invalid)
		if _, err := e.svc.AcceptInvitation(e.ctx, a, newToken); err != nil {
			t.Fatalf("the replacement: %v", err)
		}
	})
	t.Run("wrong email", func(t *testing.T) {
		intended := orgNewAccount(t, e, "intended@example.com", false)
		thief := orgNewAccount(t, e, "thief@example.com", false)
		_, token := invite("intended@example.com")
		_, err := e.svc.AcceptInvitation(e.ctx, thief, token)
		orgWantErr(t, err, thauth.EForbidden, "this invitation was sent to another email address")
		if _, err := e.store.GetMembership(e.ctx, org.ID, thief.AccountID); thauth.ErrorCodeOf(err) != thauth.ENotFound {
			t.Errorf("thief became a member: %v", err)
		}
		// The refused attempt did not use the invitation up.
		if _, err := e.svc.AcceptInvitation(e.ctx, intended, token); err != nil {
			t.Errorf("intended recipient after a refused attempt: %v", err)
		}
	})
	t.Run("unverified email", func(t *testing.T) {
		a := orgNewAccount(t, e, "unverified@example.com", false)
		acct, err := e.store.GetAccount(e.ctx, a.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		acct.EmailVerifiedAt = nil
		if err := e.store.UpdateAccount(e.ctx, acct); err != nil {
			t.Fatal(err)
		}
		_, token := invite("unverified@example.com")
		_, err = e.svc.AcceptInvitation(e.ctx, a, token)
		orgWantErr(t, err, thauth.EForbidden, "verify your email address")
	})
	t.Run("accepted cannot be revoked", func(t *testing.T) {
		a := orgNewAccount(t, e, "accepted@example.com", false)
		inv, token := invite("accepted@example.com")
		if _, err := e.svc.AcceptInvitation(e.ctx, a, token); err != nil {
			t.Fatal(err)
		}
		err := e.svc.RevokeInvitation(e.ctx, owner, org.ID, inv.ID)
		orgWantErr(t, err, thauth.EConflict, "already accepted")
	})
	t.Run("other organization's invitation", func(t *testing.T) {
		other := orgNewAccount(t, e, "other-owner@example.com", false)
		otherOrg := orgNewOrg(t, e, other, "Other")
		inv, err := e.svc.Invite(e.ctx, other, otherOrg.ID, "someone@example.com", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		// Revoking it through an organization where the caller has the right does nothing.
		err = e.svc.RevokeInvitation(e.ctx, owner, org.ID, inv.ID)
		orgWantErr(t, err, thauth.ENotFound, "invitation not found")
		stored, err := e.store.GetInvitation(e.ctx, otherOrg.ID, inv.ID)
		if err != nil || stored.RevokedAt != nil {
			t.Errorf("the other organization's invitation changed: %+v %v", stored, err)
		}
	})
}
