package manage

import (
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func TestAccessTokenLifecycle(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "cli@example.com")
	s := acctSignIn(t, e, "cli@example.com", acctPassword)
	created := e.clock.Now()

	tok, secret, err := e.svc.CreateAccessToken(e.ctx, acctActor(s), "laptop", []string{thauth.TokenScopeWrite, thauth.TokenScopeRead}, 0)
	if err != nil {
		t.Fatalf("CreateAccessToken: %v", err)
	}
	if !strings.HasPrefix(secret, "thauthpat_") || len(secret) != thauth.AccessTokenLength || tok.Hash != nil ||
		tok.Name != "laptop" || strings.Join(tok.Scopes, ",") != "read,write" || !tok.ExpiresAt.Equal(created.Add(90*24*time.Hour)) {
		t.Fatalf("token = %+v (%d chars)", tok, len(secret))
	}
	if acts := acctActions(t, e, s.Account.ID); !acctContainsAll(acts, "token.created") {
		t.Fatalf("activity = %v", acts)
	}

	got, acct, err := e.svc.AuthenticateAccessToken(e.ctx, secret)
	if err != nil || got.ID != tok.ID || acct.ID != s.Account.ID || got.Hash != nil {
		t.Fatalf("AuthenticateAccessToken = %+v, %v", got, err)
	}
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(created) {
		t.Fatalf("LastUsedAt = %v", got.LastUsedAt)
	}
	// LastUsedAt moves at most once a minute.
	e.advance(30 * time.Second)
	got, _, _ = e.svc.AuthenticateAccessToken(e.ctx, secret)
	if !got.LastUsedAt.Equal(created) {
		t.Fatalf("LastUsedAt after 30 s = %v", got.LastUsedAt)
	}
	e.advance(30 * time.Second)
	got, _, _ = e.svc.AuthenticateAccessToken(e.ctx, secret)
	if !got.LastUsedAt.Equal(e.clock.Now()) {
		t.Fatalf("LastUsedAt after 60 s = %v", got.LastUsedAt)
	}
	list, err := e.svc.ListAccessTokens(e.ctx, acctActor(s))
	if err != nil || len(list) != 1 || list[0].ID != tok.ID || list[0].Hash != nil || list[0].LastUsedAt == nil {
		t.Fatalf("ListAccessTokens = %+v, %v", list, err)
	}

	// Bad tokens all get the same answer.
	apiKey, _, _ := thauth.NewToken()
	other, _, _ := thauth.NewAccessToken() // well-formed but unknown
	// The right lookup id with another secret and a valid checksum: only the hash
	// comparison can refuse it.
	forged := acctPAT(tok.LookupID, strings.Repeat("A", 32))
	if _, ok := thauth.ParseAccessToken(forged); !ok {
		t.Fatal("the forged token does not parse; the test would not reach the hash check")
	}
	for name, bad := range map[string]string{"empty": "", "garbage": "thauthpat_nope", "API key": apiKey, "unknown": other, "forged": forged} {
		_, _, err := e.svc.AuthenticateAccessToken(e.ctx, bad)
		if thauth.ErrorCodeOf(err) != thauth.EUnauthenticated || thauth.ErrorMessage(err) != "the access token is not valid" {
			t.Errorf("%s token: %v", name, err)
		}
	}

	// A token actor reads but cannot manage credentials; a read-only one cannot write.
	tokActor := Actor{AccountID: acct.ID, TokenID: tok.ID, Via: ViaToken, Scopes: tok.Scopes, Client: acctCI}
	if _, err := e.svc.ListSessions(e.ctx, tokActor); err != nil {
		t.Fatalf("ListSessions by token: %v", err)
	}
	_, _, err = e.svc.CreateAccessToken(e.ctx, tokActor, "minted", []string{thauth.TokenScopeRead}, 0)
	acctWantErr(t, err, thauth.EForbidden, "browser session")
	ro := tokActor
	ro.Scopes = []string{thauth.TokenScopeRead}
	acctWantErr(t, e.svc.RevokeAccessToken(e.ctx, ro, tok.ID), thauth.EForbidden, "read-only")

	// Another account cannot see or revoke it.
	acctSignUp(t, e, "other@example.com")
	o := acctSignIn(t, e, "other@example.com", acctPassword)
	acctWantErr(t, e.svc.RevokeAccessToken(e.ctx, acctActor(o), tok.ID), thauth.ENotFound, "access token not found")
	if l, _ := e.svc.ListAccessTokens(e.ctx, acctActor(o)); len(l) != 0 {
		t.Fatalf("another account lists %d tokens", len(l))
	}

	// Revoked: it stops working at once and stays listed.
	if err := e.svc.RevokeAccessToken(e.ctx, tokActor, tok.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.AuthenticateAccessToken(e.ctx, secret)
	acctWantErr(t, err, thauth.EUnauthenticated)
	list, _ = e.svc.ListAccessTokens(e.ctx, acctActor(s))
	if len(list) != 1 || list[0].RevokedAt == nil {
		t.Fatalf("ListAccessTokens after revoke = %+v", list)
	}
	if acts := acctActions(t, e, s.Account.ID); !acctContainsAll(acts, "token.revoked") {
		t.Fatalf("activity = %v", acts)
	}
}

// acctPAT builds a well-formed access token from a lookup id and a secret (the format of
// apikey.go: CRC-32 checksum, base62, 6 characters).
func acctPAT(lookupID, secret string) string {
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	body := "thauthpat_" + lookupID + "_" + secret
	n := crc32.ChecksumIEEE([]byte(body))
	sum := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		sum[i] = base62[n%62]
		n /= 62
	}
	return body + string(sum)
}

func TestAccessTokenExpiry(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "expiry@example.com")
	s := acctSignIn(t, e, "expiry@example.com", acctPassword)
	tok, secret, err := e.svc.CreateAccessToken(e.ctx, acctActor(s), "short", []string{thauth.TokenScopeRead}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(tok.ExpiresAt.Add(-time.Microsecond))
	if _, _, err := e.svc.AuthenticateAccessToken(e.ctx, secret); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	e.clock.Set(tok.ExpiresAt)
	_, _, err = e.svc.AuthenticateAccessToken(e.ctx, secret)
	acctWantErr(t, err, thauth.EUnauthenticated)
}

func TestCreateAccessTokenValidation(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "valid@example.com")
	s := acctSignIn(t, e, "valid@example.com", acctPassword)
	read := []string{thauth.TokenScopeRead}
	tests := []struct {
		name   string
		tname  string
		scopes []string
		ttl    time.Duration
		want   string
	}{
		{"empty name", " ", read, 0, "name must not be empty"},
		{"long name", strings.Repeat("n", 101), read, 0, "at most 100"},
		{"no scopes", "t", nil, 0, "at least one scope"},
		{"unknown scope", "t", []string{"admin"}, 0, `unknown scope "admin"`},
		{"duplicate scope", "t", []string{"read", "read"}, 0, `duplicate scope "read"`},
		{"negative ttl", "t", read, -time.Hour, "between one minute and 365 days"},
		{"too long", "t", read, 365*24*time.Hour + time.Second, "between one minute and 365 days"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.svc.CreateAccessToken(e.ctx, acctActor(s), tc.tname, tc.scopes, tc.ttl)
			acctWantErr(t, err, thauth.EInvalid, tc.want)
		})
	}
	tok, _, err := e.svc.CreateAccessToken(e.ctx, acctActor(s), "max", read, 365*24*time.Hour)
	if err != nil || !tok.ExpiresAt.Equal(e.clock.Now().Add(365*24*time.Hour)) {
		t.Fatalf("365-day token = %+v, %v", tok, err)
	}
}

func TestCreateAccessTokenNeedsMFASession(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "mfapat@example.com")
	older := acctSignIn(t, e, "mfapat@example.com", acctPassword)
	s := acctSignIn(t, e, "mfapat@example.com", acctPassword)
	_, _, full := acctEnableTOTP(t, e, s)
	// A session from before MFA was enabled (it survives; only the caller's is rotated)
	// cannot mint tokens for an account that now has MFA.
	_, _, err := e.svc.CreateAccessToken(e.ctx, acctActor(older), "old", []string{thauth.TokenScopeRead}, 0)
	acctWantErr(t, err, thauth.EForbidden, "second factor")
	if _, _, err := e.svc.CreateAccessToken(e.ctx, acctActor(full), "new", []string{thauth.TokenScopeRead}, 0); err != nil {
		t.Fatalf("CreateAccessToken from an MFA session: %v", err)
	}
}
