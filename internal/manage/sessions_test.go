package manage

import (
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func TestSignInWrongPasswordAndUnknownEmailAnswerAlike(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "known@example.com")
	_, errWrong := e.svc.SignIn(e.ctx, acctCI, "known@example.com", "not-the-password")
	_, errUnknown := e.svc.SignIn(e.ctx, acctCI, "unknown@example.com", "not-the-password")
	w := acctWantErr(t, errWrong, thauth.EUnauthenticated, "email or password is incorrect")
	u := acctWantErr(t, errUnknown, thauth.EUnauthenticated, "email or password is incorrect")
	if w.Message != u.Message || w.RetryAfter != u.RetryAfter {
		t.Fatalf("answers differ: %q vs %q", w.Message, u.Message)
	}
	_, err := e.svc.SignIn(e.ctx, acctCI, "not an address", "x")
	acctWantErr(t, err, thauth.EInvalid)
	_, err = e.svc.SignIn(e.ctx, acctCI, "known@example.com", "")
	acctWantErr(t, err, thauth.EUnauthenticated, "email or password is incorrect")
}

func TestSignInUnverified(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "unverified@example.com"
	if err := e.svc.SignUp(e.ctx, acctCI, email, acctPassword, ""); err != nil {
		t.Fatal(err)
	}
	// The wrong password is just wrong; the right one is told to verify and gets a link.
	_, err := e.svc.SignIn(e.ctx, acctCI, email, "wrong-password-123")
	acctWantErr(t, err, thauth.EUnauthenticated, "email or password is incorrect")
	before := len(e.mails(t, email))
	_, err = e.svc.SignIn(e.ctx, acctCI, email, acctPassword)
	acctWantErr(t, err, thauth.EForbidden, "verify your email address first; we sent a new link")
	if got := len(e.mails(t, email)); got != before+1 {
		t.Fatalf("%d mails, want %d", got, before+1)
	}
	// The new link works, and then signing in does.
	if err := e.svc.VerifyEmail(e.ctx, acctCI, tokenOf(t, e.lastMail(t, email, MailVerifyEmail).Data["link"])); err != nil {
		t.Fatal(err)
	}
	acctSignIn(t, e, email, acctPassword)
}

func TestSessionTokens(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "tokens@example.com")
	a := acctSignIn(t, e, "tokens@example.com", acctPassword)
	b := acctSignIn(t, e, "tokens@example.com", acctPassword)
	if a.Token == b.Token || a.Session.ID == b.Session.ID || len(a.Token) != 43 {
		t.Fatalf("session tokens are not fresh 256-bit values: %d chars", len(a.Token))
	}
	// Only the hash is stored.
	h := thauth.HashToken(a.Token)
	se, err := e.store.GetSessionByHash(e.ctx, h[:])
	if err != nil || se.ID != a.Session.ID {
		t.Fatalf("stored session = %+v, %v", se, err)
	}
	if a.Session.TokenHash != nil {
		t.Fatal("the returned session carries its token hash")
	}
	if a.Session.IP != acctCI.IP || a.Session.UserAgent != acctCI.UserAgent {
		t.Fatalf("session client = %q %q", a.Session.IP, a.Session.UserAgent)
	}
	for _, tok := range []string{"", "garbage", a.Token + "x", string(make([]byte, 4096))} {
		_, _, err := e.svc.Authenticate(e.ctx, tok)
		acctWantErr(t, err, thauth.EUnauthenticated, "sign in again")
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "idle@example.com")
	s := acctSignIn(t, e, "idle@example.com", acctPassword)
	// Used within the idle timeout, it stays alive (each use moves LastSeenAt).
	for range 3 {
		e.advance(DefaultSessionIdleTimeout - time.Minute)
		se, _, err := e.svc.Authenticate(e.ctx, s.Token)
		if err != nil {
			t.Fatalf("Authenticate within the idle timeout: %v", err)
		}
		if !se.LastSeenAt.Equal(e.clock.Now()) {
			t.Fatalf("LastSeenAt = %v, want %v", se.LastSeenAt, e.clock.Now())
		}
	}
	// Not used for exactly the idle timeout: ended.
	e.advance(DefaultSessionIdleTimeout)
	_, _, err := e.svc.Authenticate(e.ctx, s.Token)
	acctWantErr(t, err, thauth.EUnauthenticated, "your session has ended")
	list, err := e.svc.ListSessions(e.ctx, acctActor(s))
	if err != nil || len(list) != 0 {
		t.Fatalf("ListSessions after idle = %v, %v", list, err)
	}
}

func TestSessionTouchAtMostOnceAMinute(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "touch@example.com")
	s := acctSignIn(t, e, "touch@example.com", acctPassword)
	start := e.clock.Now()
	e.advance(59 * time.Second)
	se, _, err := e.svc.Authenticate(e.ctx, s.Token)
	if err != nil || !se.LastSeenAt.Equal(start) {
		t.Fatalf("LastSeenAt after 59 s = %v, %v; want unchanged %v", se.LastSeenAt, err, start)
	}
	e.advance(time.Second)
	if se, _, err = e.svc.Authenticate(e.ctx, s.Token); err != nil || !se.LastSeenAt.Equal(e.clock.Now()) {
		t.Fatalf("LastSeenAt after 60 s = %v, %v", se.LastSeenAt, err)
	}
	stored, err := e.store.GetSessionByHash(e.ctx, func() []byte { h := thauth.HashToken(s.Token); return h[:] }())
	if err != nil || !stored.LastSeenAt.Equal(e.clock.Now()) {
		t.Fatalf("stored LastSeenAt = %v, %v", stored.LastSeenAt, err)
	}
}

func TestSessionAbsoluteLifetime(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "lifetime@example.com")
	s := acctSignIn(t, e, "lifetime@example.com", acctPassword)
	if want := e.clock.Now().Add(DefaultSessionLifetime); !s.Session.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %v, want %v", s.Session.ExpiresAt, want)
	}
	// Kept busy, it still ends at its absolute lifetime.
	for e.clock.Now().Add(time.Hour).Before(s.Session.ExpiresAt) {
		e.advance(time.Hour)
		if _, _, err := e.svc.Authenticate(e.ctx, s.Token); err != nil {
			t.Fatalf("Authenticate at %v: %v", e.clock.Now(), err)
		}
	}
	e.clock.Set(s.Session.ExpiresAt.Add(-time.Microsecond))
	if _, _, err := e.svc.Authenticate(e.ctx, s.Token); err != nil {
		t.Fatalf("Authenticate just before the end: %v", err)
	}
	e.clock.Set(s.Session.ExpiresAt)
	_, _, err := e.svc.Authenticate(e.ctx, s.Token)
	acctWantErr(t, err, thauth.EUnauthenticated, "your session has ended")
}

func TestSessionDurationsFromOptions(t *testing.T) {
	e := newConsoleEnv(t)
	o := e.svc.opts
	o.SessionIdleTimeout, o.SessionLifetime = 10*time.Minute, time.Hour
	e.svc = New(e.store, e.engine, o)
	acctSignUp(t, e, "short@example.com")
	s := acctSignIn(t, e, "short@example.com", acctPassword)
	if !s.Session.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("ExpiresAt = %v", s.Session.ExpiresAt)
	}
	e.advance(10 * time.Minute)
	_, _, err := e.svc.Authenticate(e.ctx, s.Token)
	acctWantErr(t, err, thauth.EUnauthenticated)
}

func TestSessionFixation(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "fixation@example.com")
	s := acctSignIn(t, e, "fixation@example.com", acctPassword)
	secret, _, _ := acctEnableTOTP(t, e, s)
	e.advance(30 * time.Second)

	pending := acctSignIn(t, e, "fixation@example.com", acctPassword)
	// The pending session authenticates (the caller restricts it), but is marked.
	se, _, err := e.svc.Authenticate(e.ctx, pending.Token)
	if err != nil || !se.PendingMFA || se.MFA {
		t.Fatalf("pending session = %+v, %v", se, err)
	}
	// It may not do anything that needs a full session.
	_, err = e.svc.EnrollTOTP(e.ctx, acctActor(pending))
	acctWantErr(t, err, thauth.EForbidden, "two-factor sign-in first")

	full, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, acctCode(t, e, secret))
	if err != nil {
		t.Fatal(err)
	}
	if full.Session.ID == pending.Session.ID || full.Token == pending.Token {
		t.Fatal("SignInMFA kept the pending session's id or token")
	}
	// Whoever knew the pending token (for example because they planted it) has nothing.
	_, _, err = e.svc.Authenticate(e.ctx, pending.Token)
	acctWantErr(t, err, thauth.EUnauthenticated)
	_, err = e.svc.SignInMFA(e.ctx, acctCI, pending.Token, acctCode(t, e, secret))
	acctWantErr(t, err, thauth.EUnauthenticated, "sign in again")
	// A full session cannot be "completed" again either.
	_, err = e.svc.SignInMFA(e.ctx, acctCI, full.Token, acctCode(t, e, secret))
	acctWantErr(t, err, thauth.EUnauthenticated, "sign in again")
}

func TestPendingMFASessionExpires(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "slow@example.com")
	s := acctSignIn(t, e, "slow@example.com", acctPassword)
	secret, _, _ := acctEnableTOTP(t, e, s)
	pending := acctSignIn(t, e, "slow@example.com", acctPassword)
	if want := e.clock.Now().Add(10 * time.Minute); !pending.Session.ExpiresAt.Equal(want) {
		t.Fatalf("pending ExpiresAt = %v, want %v", pending.Session.ExpiresAt, want)
	}
	e.advance(10 * time.Minute)
	_, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, acctCode(t, e, secret))
	acctWantErr(t, err, thauth.EUnauthenticated, "sign in again")
}

func TestListAndRevokeSessions(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "many@example.com")
	acctSignUp(t, e, "stranger@example.com")
	a := acctSignIn(t, e, "many@example.com", acctPassword)
	e.advance(time.Second)
	b := acctSignIn(t, e, "many@example.com", acctPassword)
	e.advance(time.Second)
	c := acctSignIn(t, e, "many@example.com", acctPassword)
	x := acctSignIn(t, e, "stranger@example.com", acctPassword)

	list, err := e.svc.ListSessions(e.ctx, acctActor(a))
	if err != nil || len(list) != 3 || list[0].ID != c.Session.ID || list[2].ID != a.Session.ID {
		t.Fatalf("ListSessions = %+v, %v", list, err)
	}
	for _, se := range list {
		if se.TokenHash != nil {
			t.Fatal("ListSessions returns token hashes")
		}
	}
	// Another account's session is not found (and stays alive).
	acctWantErr(t, e.svc.RevokeSession(e.ctx, acctActor(a), x.Session.ID), thauth.ENotFound, "session not found")
	acctWantErr(t, e.svc.RevokeSession(e.ctx, acctActor(a), "no-such-id"), thauth.ENotFound)
	if _, _, err := e.svc.Authenticate(e.ctx, x.Token); err != nil {
		t.Fatalf("the stranger's session was touched: %v", err)
	}
	if err := e.svc.RevokeSession(e.ctx, acctActor(a), b.Session.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Authenticate(e.ctx, b.Token); err == nil {
		t.Fatal("a revoked session still authenticates")
	}
	n, err := e.svc.RevokeAllSessions(e.ctx, acctActor(a))
	if err != nil || n != 2 {
		t.Fatalf("RevokeAllSessions = %d, %v; want 2 (a and c)", n, err)
	}
	for _, s := range []*SignInResult{a, c} {
		if _, _, err := e.svc.Authenticate(e.ctx, s.Token); err == nil {
			t.Fatal("a session survived RevokeAllSessions, the current one included")
		}
	}
	if _, _, err := e.svc.Authenticate(e.ctx, x.Token); err != nil {
		t.Fatalf("RevokeAllSessions ended another account's session: %v", err)
	}
	if acts := acctActions(t, e, a.Account.ID); !acctContainsAll(acts, "session.revoked", "session.revoked_all") {
		t.Fatalf("activity = %v", acts)
	}
	// Signing out twice, or with an unknown token, is fine.
	if err := e.svc.SignOut(e.ctx, a.Token); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SignOut(e.ctx, "unknown"); err != nil {
		t.Fatal(err)
	}
}

func TestNewSignInMail(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "travel@example.com"
	acctSignUp(t, e, email) // from acctCI.IP
	count := func() int {
		n := 0
		for _, m := range e.mails(t, email) {
			if m.Template == MailNewSignIn {
				n++
			}
		}
		return n
	}
	acctSignIn(t, e, email, acctPassword)
	if count() != 0 {
		t.Fatal("a sign-in from the sign-up IP sent a new_sign_in mail")
	}
	away := ClientInfo{IP: "203.0.113.50", UserAgent: "Away Browser"}
	if _, err := e.svc.SignIn(e.ctx, away, email, acctPassword); err != nil {
		t.Fatal(err)
	}
	if count() != 1 {
		t.Fatal("a sign-in from a new IP sent no new_sign_in mail")
	}
	m := e.lastMail(t, email, MailNewSignIn)
	if m.Data["ip"] != away.IP || m.Data["user_agent"] != away.UserAgent || m.Data["time"] == "" {
		t.Fatalf("new_sign_in payload = %v", m.Data)
	}
	if _, err := e.svc.SignIn(e.ctx, away, email, acctPassword); err != nil {
		t.Fatal(err)
	}
	if count() != 1 {
		t.Fatal("a second sign-in from the same IP mailed again")
	}
	// Thirty days later the IP is new again.
	e.advance(newSignInWindow + time.Second)
	if _, err := e.svc.SignIn(e.ctx, away, email, acctPassword); err != nil {
		t.Fatal(err)
	}
	if count() != 2 {
		t.Fatal("an IP not seen for 30 days did not mail")
	}
}

func TestCSRFToken(t *testing.T) {
	a, b := CSRFToken("session-a"), CSRFToken("session-b")
	if a == b || a != CSRFToken("session-a") || len(a) != 43 {
		t.Fatalf("CSRFToken not deterministic per session: %q %q", a, b)
	}
	tests := []struct {
		session, candidate string
		want               bool
	}{
		{"session-a", a, true},
		{"session-a", b, false},
		{"session-a", "", false},
		{"", CSRFToken(""), false},
		{"session-a", a + "x", false},
		{"session-a", a[:42], false},
	}
	for _, tc := range tests {
		if got := CSRFTokenMatches(tc.session, tc.candidate); got != tc.want {
			t.Errorf("CSRFTokenMatches(%q, %q) = %v, want %v", tc.session, tc.candidate, got, tc.want)
		}
	}
}
