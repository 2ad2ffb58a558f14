package engine

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
)

// TestAuthenticateDetail checks that every kind of bad token is told apart, that the ones
// naming an existing key identify it (and only those), that no failure yields a principal,
// and that Authenticate agrees.
func TestAuthenticateDetail(t *testing.T) {
	f := newStoreFixture(t)
	p := f.createProject("app")
	globex := thauth.Organization{ID: newID(), Name: "globex", CreatedAt: f.now}
	if err := f.st.CreateOrganization(f.ctx, &globex); err != nil {
		t.Fatal(err)
	}
	other := thauth.Project{ID: newID(), Name: "other", CreatedAt: f.now}
	f.tx([]thauth.Change{{Kind: thauth.ChangeProject}}, other.ID, func(tx thauth.Data) error {
		return tx.CreateProject(f.ctx, globex.ID, &other)
	})
	clock := f.now
	e := New(f.st, Options{Now: func() time.Time { return clock }})

	expiry := f.now.Add(time.Hour)
	valid, vk := f.createKey(p.ID, nil, thauth.ScopeDecisionsRead)
	expiring, ek := f.createKey(p.ID, &expiry, thauth.ScopeDecisionsRead)
	revoked, rk := f.createKey(p.ID, nil, thauth.ScopeDecisionsRead)
	f.revokeKey(p.ID, rk.ID)
	suspended, sk := f.createKey(other.ID, nil, thauth.ScopeDecisionsRead)
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}

	lookup, _ := thauth.ParseToken(valid)
	secret := []byte(valid[len("thauth_")+16+1 : len(valid)-6])
	if secret[0] == 'A' {
		secret[0] = 'B'
	} else {
		secret[0] = 'A'
	}
	wrongSecret := forgeToken(lookup, string(secret))
	unknown := forgeToken("ZZZZZZZZZZZZZZZZ", string(secret))
	if _, ok := thauth.ParseToken(wrongSecret); !ok {
		t.Fatal("forged token is malformed; the test is broken")
	}
	org := f.org.ID

	type row struct {
		name  string
		token string
		want  KeyCheck
		ok    bool
	}
	check := func(step string, rows []row) {
		t.Helper()
		for _, r := range rows {
			pr, got := e.AuthenticateDetail(r.token)
			if diff := cmp.Diff(r.want, got); diff != "" {
				t.Errorf("%s: %s: KeyCheck (-want +got):\n%s", step, r.name, diff)
			}
			if (got.Status == KeyValid) != (pr.KeyID != "") {
				t.Errorf("%s: %s: principal %+v with status %v", step, r.name, pr, got.Status)
			}
			if _, ok := e.Authenticate(r.token); ok != r.ok {
				t.Errorf("%s: %s: Authenticate ok = %v, want %v", step, r.name, ok, r.ok)
			}
		}
	}
	check("active", []row{
		{"valid", valid, KeyCheck{Status: KeyValid}, true},
		{"expiring, not yet expired", expiring, KeyCheck{Status: KeyValid}, true},
		{"empty", "", KeyCheck{Status: KeyMalformed}, false},
		{"not a key", "hello", KeyCheck{Status: KeyMalformed}, false},
		{"bad checksum", badChecksum(valid), KeyCheck{Status: KeyMalformed}, false},
		{"unknown lookup id", unknown, KeyCheck{Status: KeyUnknown}, false},
		{"wrong secret", wrongSecret, KeyCheck{Status: KeyWrongSecret, KeyID: vk.ID, ProjectID: p.ID, OrganizationID: org}, false},
		{"revoked", revoked, KeyCheck{Status: KeyRevoked, KeyID: rk.ID, ProjectID: p.ID, OrganizationID: org}, false},
		{"another organization's key", suspended, KeyCheck{Status: KeyValid}, true},
	})

	clock = expiry
	f.suspendOrg(globex.ID, &f.now, other.ID)
	if err := e.SyncAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	check("expired and suspended", []row{
		{"expired", expiring, KeyCheck{Status: KeyExpired, KeyID: ek.ID, ProjectID: p.ID, OrganizationID: org}, false},
		{"suspended organization", suspended, KeyCheck{Status: KeySuspended, KeyID: sk.ID, ProjectID: other.ID, OrganizationID: globex.ID}, false},
		{"still revoked", revoked, KeyCheck{Status: KeyRevoked, KeyID: rk.ID, ProjectID: p.ID, OrganizationID: org}, false},
		{"still valid", valid, KeyCheck{Status: KeyValid}, true},
	})

	for s, want := range map[KeyStatus]string{KeyValid: "valid", KeyMalformed: "malformed", KeyUnknown: "unknown",
		KeyWrongSecret: "wrong_secret", KeyRevoked: "revoked", KeyExpired: "expired", KeySuspended: "suspended", 200: "invalid"} {
		if got := s.String(); got != want {
			t.Errorf("KeyStatus(%d).String() = %q, want %q", s, got, want)
		}
	}
}

// badChecksum changes the last checksum character of token.
func badChecksum(token string) string {
	last := token[len(token)-1]
	if last == 'A' {
		last = 'B'
	} else {
		last = 'A'
	}
	return token[:len(token)-1] + string(last)
}
