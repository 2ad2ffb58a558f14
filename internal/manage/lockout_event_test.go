package manage

import (
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// TestSignInLockoutIsASecurityEvent: the lock after repeated failed sign-ins is a security
// event of every organization the account belongs to — alerted to its owners — and of none
// other; failures below the lock threshold raise nothing.
func TestSignInLockoutIsASecurityEvent(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	member := orgNewAccount(t, e, "member@example.com", false)
	other := orgNewAccount(t, e, "other@example.com", false)
	org, err := e.svc.CreateOrganization(e.ctx, owner, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	otherOrg, err := e.svc.CreateOrganization(e.ctx, other, "Elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutMembership(e.ctx, &thauth.Membership{OrganizationID: org.ID, AccountID: member.AccountID,
		Role: thauth.OrgRoleDeveloper, CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	// A real password hash, so that wrong passwords fail as wrong (not as unreadable hashes).
	acct, err := e.store.GetAccount(e.ctx, member.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if acct.PasswordHash, err = acctHashPassword(e.ctx, "the member's real password", testPasswords); err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpdateAccount(e.ctx, acct); err != nil {
		t.Fatal(err)
	}
	ci := ClientInfo{IP: "203.0.113.7", UserAgent: "test"}
	events := func(orgID string) []thauth.SecurityEvent {
		t.Helper()
		evs, err := e.store.ListSecurityEvents(e.ctx, orgID, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	for i := 1; i <= signinLockAt; i++ {
		if i == signinLockAt && len(events(org.ID)) != 0 {
			t.Fatalf("a security event after %d failures, below the lock threshold", i-1)
		}
		if _, err := e.svc.SignIn(e.ctx, ci, "member@example.com", "wrong password, attempt "+strings.Repeat("x", i)); thauth.ErrorCodeOf(err) != thauth.EUnauthenticated {
			t.Fatalf("attempt %d with a wrong password: %v", i, err)
		}
		e.advance(30 * time.Second) // past any growing delay (at most 16 s here), inside the 15-minute window
	}
	evs := events(org.ID)
	if len(evs) != 1 || evs[0].Kind != "signin_lockout" || evs[0].Severity != thauth.SeverityMedium ||
		!strings.Contains(evs[0].Evidence, member.AccountID) || !strings.Contains(evs[0].Evidence, "203.0.113.7") {
		t.Fatalf("events of the member's organization = %+v", evs)
	}
	if n := len(events(otherOrg.ID)); n != 0 {
		t.Errorf("another organization got %d events", n)
	}
	if n := len(secAlerts(t, e, owner)); n != 1 {
		t.Errorf("the owner got %d security alerts, want 1", n)
	}
}
