package httpserver

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// TestConsoleAccountFlow walks the whole life of an account over HTTP: sign-up, verification
// through the outbox, sign-in, TOTP enrolment, sign-out, sign-in with TOTP, sign-in with a
// recovery code, sign-out.
func TestConsoleAccountFlow(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "ada@example.com"
	b := e.newBrowser()

	// Sign-up answers alike for every valid input and mails a verification link.
	r := b.do("POST", "/api/v1/auth/signup", map[string]string{"email": email, "password": testPassword, "name": "Ada"})
	want(t, r, http.StatusAccepted)
	var st statusJSON
	r.decode(t, &st)
	if st.Status != "pending" || st.Message != msgSignUp {
		t.Errorf("sign-up answer = %+v", st)
	}
	if r.sessionCookie(t, e.cookieName()) != nil {
		t.Error("sign-up set a session cookie")
	}

	// Not verified yet: the right password is refused (and a new link sent).
	r = b.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": testPassword})
	wantErr(t, r, http.StatusForbidden, thauth.EForbidden, "verify your email")
	if r.sessionCookie(t, e.cookieName()) != nil {
		t.Error("refused sign-in set a session cookie")
	}

	tok := e.linkToken(email, manage.MailVerifyEmail)
	r = b.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": tok})
	want(t, r, http.StatusOK)
	r.decode(t, &st)
	if st.Status != "verified" {
		t.Errorf("verify answer = %+v", st)
	}

	// Sign-in: a full session (no second factor yet).
	a := b.signIn(email, testPassword)
	if a.MFARequired || a.CSRFToken == "" || a.Account.Email != email || a.Account.Name != "Ada" || !a.Account.EmailVerified {
		t.Fatalf("sign-in answer = %+v", a)
	}
	if b.cookie() == "" {
		t.Fatal("no session cookie after sign-in")
	}
	var acc accountAnswer
	r = b.do("GET", "/api/v1/account", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &acc)
	if acc.Account.Email != email || acc.Session == nil || acc.Session.MFA || acc.CSRFToken != a.CSRFToken {
		t.Fatalf("account = %s", r)
	}

	// Enrol TOTP: the session is rotated (new cookie, new CSRF token, old ones dead).
	before, beforeCSRF := b.cookie(), b.csrf
	secret, codes := b.enrollMFA()
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes, want 10", len(codes))
	}
	if b.cookie() == before || b.csrf == beforeCSRF {
		t.Error("confirming TOTP did not rotate the session")
	}
	wantErr(t, e.bearerCookie(before, "GET", "/api/v1/account"), http.StatusUnauthorized, thauth.EUnauthenticated, "")
	r = b.do("GET", "/api/v1/account", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &acc)
	if !acc.Account.MFAEnabled || !acc.Session.MFA || acc.RecoveryCodesLeft != 10 {
		t.Fatalf("after enrolment: %s", r)
	}

	// Sign out: cookie cleared, session dead.
	cookie := b.cookie()
	r = b.do("POST", "/api/v1/auth/signout", nil)
	want(t, r, http.StatusNoContent)
	if c := r.sessionCookie(t, e.cookieName()); c == nil || c.MaxAge >= 0 {
		t.Errorf("sign-out did not clear the cookie: %v", r.header.Values("Set-Cookie"))
	}
	if b.cookie() != "" {
		t.Error("the browser still holds the cookie")
	}
	wantErr(t, e.bearerCookie(cookie, "GET", "/api/v1/account"), http.StatusUnauthorized, thauth.EUnauthenticated, "")

	// Sign in with TOTP: the password gives a pending session that may do nothing else.
	e.nextStep()
	a = b.signIn(email, testPassword)
	if !a.MFARequired {
		t.Fatal("sign-in with TOTP on did not ask for the second factor")
	}
	wantErr(t, b.do("GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "two-factor")
	wantErr(t, b.do("POST", "/api/v1/orgs", map[string]string{"name": "x"}), http.StatusUnauthorized, thauth.EUnauthenticated, "two-factor")
	pending := b.cookie()
	r = b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"code": "000000"})
	wantErr(t, r, http.StatusUnauthorized, thauth.EUnauthenticated, "")
	r = b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"code": e.code(secret)})
	want(t, r, http.StatusOK)
	var mfa signInAnswer
	r.decode(t, &mfa)
	b.csrf = mfa.CSRFToken
	if b.cookie() == pending || mfa.CSRFToken == a.CSRFToken {
		t.Error("the MFA step did not issue a new session")
	}
	r = b.do("GET", "/api/v1/account", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &acc)
	if !acc.Session.MFA {
		t.Errorf("session after TOTP has mfa=false: %s", r)
	}
	want(t, b.do("POST", "/api/v1/auth/signout", nil), http.StatusNoContent)

	// Sign in with a recovery code: it works once.
	e.nextStep()
	b.signIn(email, testPassword)
	r = b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"recovery_code": codes[0]})
	want(t, r, http.StatusOK)
	r.decode(t, &mfa)
	b.csrf = mfa.CSRFToken
	r = b.do("GET", "/api/v1/account", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &acc)
	if acc.RecoveryCodesLeft != 9 {
		t.Errorf("recovery codes left = %d, want 9", acc.RecoveryCodesLeft)
	}
	want(t, b.do("POST", "/api/v1/auth/signout", nil), http.StatusNoContent)

	b.signIn(email, testPassword)
	wantErr(t, b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"recovery_code": codes[0]}),
		http.StatusUnauthorized, thauth.EUnauthenticated, "")
	// Sign-out works for a pending session too.
	want(t, b.do("POST", "/api/v1/auth/signout", nil), http.StatusNoContent)
	if b.cookie() != "" {
		t.Error("pending session's cookie not cleared")
	}
}

// bearerCookie sends one request carrying only the given session cookie (a stolen or old
// one), from a fresh client.
func (e *consoleEnv) bearerCookie(cookie, method, path string) *resp {
	e.t.Helper()
	b := e.newBrowser()
	b.plant(cookie)
	return b.do(method, path, nil)
}

// TestConsoleSignInFailures: wrong and unknown credentials answer alike; repeated failures
// are throttled and then locked, with Retry-After, even for the right password.
func TestConsoleSignInFailures(t *testing.T) {
	e := newConsoleEnv(t)
	e.signUpVerified("bob@example.com", "Bob")
	b := e.newBrowser()

	wrong := b.do("POST", "/api/v1/auth/signin", map[string]string{"email": "bob@example.com", "password": "not the password at all"})
	wrongBody := wantErr(t, wrong, http.StatusUnauthorized, thauth.EUnauthenticated, "email or password is incorrect")
	unknown := b.do("POST", "/api/v1/auth/signin", map[string]string{"email": "nobody@example.com", "password": "not the password at all"})
	unknownBody := wantErr(t, unknown, http.StatusUnauthorized, thauth.EUnauthenticated, "")
	if wrongBody.Error != unknownBody.Error || wrongBody.Code != unknownBody.Code {
		t.Errorf("unknown email answered %+v, wrong password %+v: they must not differ", unknownBody, wrongBody)
	}
	if wrong.sessionCookie(t, e.cookieName()) != nil {
		t.Error("failed sign-in set a cookie")
	}

	// Wrong passwords: free at first, then growing delays (429 until the delay has passed),
	// then a lock that the right password does not get through either.
	wrongPassword := map[string]string{"email": "bob@example.com", "password": "not the password at all"}
	var locked *resp
	delays := 0
	for i := 0; i < 60 && locked == nil; i++ {
		r := b.do("POST", "/api/v1/auth/signin", wrongPassword)
		switch r.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			wantErr(t, r, http.StatusTooManyRequests, thauth.ERateLimited, "too many failed sign-ins")
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
			}
			if ra >= 60 {
				locked = r
				break
			}
			delays++
			e.clock.Advance(time.Duration(ra) * time.Second)
		default:
			t.Fatalf("attempt %d: %d %s", i, r.status, r)
		}
	}
	if delays == 0 || locked == nil {
		t.Fatalf("wrong passwords: %d delays, locked %v", delays, locked != nil)
	}
	r := b.do("POST", "/api/v1/auth/signin", map[string]string{"email": "bob@example.com", "password": testPassword})
	wantErr(t, r, http.StatusTooManyRequests, thauth.ERateLimited, "")
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After on the locked answer")
	}
	if r.sessionCookie(t, e.cookieName()) != nil {
		t.Error("locked sign-in set a cookie")
	}
	// Once the lock has passed, the right password works.
	ra, _ := strconv.Atoi(locked.header.Get("Retry-After"))
	e.clock.Advance(time.Duration(ra+1) * time.Second)
	b.signIn("bob@example.com", testPassword)
}

// TestConsoleEmailTokens: verification and reset tokens work once and expire; an unknown
// address gets the same answer as a known one.
func TestConsoleEmailTokens(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.newBrowser()
	want(t, b.do("POST", "/api/v1/auth/signup", map[string]string{"email": "cy@example.com", "password": testPassword}), http.StatusAccepted)
	tok := e.linkToken("cy@example.com", manage.MailVerifyEmail)

	t.Run("verification expires", func(t *testing.T) {
		e.clock.Advance(8 * 24 * time.Hour)
		wantErr(t, b.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": tok}), http.StatusBadRequest, thauth.EInvalid, "can no longer be used")
	})
	t.Run("resend and verify once", func(t *testing.T) {
		r := b.do("POST", "/api/v1/auth/resend-verification", map[string]string{"email": "cy@example.com"})
		want(t, r, http.StatusAccepted)
		unknown := b.do("POST", "/api/v1/auth/resend-verification", map[string]string{"email": "who@example.com"})
		if unknown.status != r.status || unknown.String() != r.String() {
			t.Errorf("resend for an unknown address answered %d %s, for a known one %d %s", unknown.status, unknown, r.status, r)
		}
		tok := e.linkToken("cy@example.com", manage.MailVerifyEmail)
		want(t, b.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": tok}), http.StatusOK)
		wantErr(t, b.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": tok}), http.StatusBadRequest, thauth.EInvalid, "can no longer be used")
	})
	t.Run("password reset", func(t *testing.T) {
		s1 := e.newBrowser()
		s1.signIn("cy@example.com", testPassword)
		r := b.do("POST", "/api/v1/auth/password-reset", map[string]string{"email": "cy@example.com"})
		want(t, r, http.StatusAccepted)
		unknown := b.do("POST", "/api/v1/auth/password-reset", map[string]string{"email": "who@example.com"})
		if unknown.status != r.status || unknown.String() != r.String() {
			t.Errorf("reset for an unknown address answered %d %s, for a known one %d %s", unknown.status, unknown, r.status, r)
		}
		tok := e.linkToken("cy@example.com", manage.MailPasswordReset)
		const next = "a brand new passphrase 9000"
		wantErr(t, b.do("POST", "/api/v1/auth/password-reset/confirm", map[string]string{"token": tok, "password": "short"}),
			http.StatusBadRequest, thauth.EInvalid, "")
		want(t, b.do("POST", "/api/v1/auth/password-reset/confirm", map[string]string{"token": tok, "password": next}), http.StatusOK)
		wantErr(t, b.do("POST", "/api/v1/auth/password-reset/confirm", map[string]string{"token": tok, "password": next + "x"}),
			http.StatusBadRequest, thauth.EInvalid, "can no longer be used")
		// Every session ended with the reset.
		wantErr(t, s1.do("GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "")
		wantErr(t, b.do("POST", "/api/v1/auth/signin", map[string]string{"email": "cy@example.com", "password": testPassword}),
			http.StatusUnauthorized, thauth.EUnauthenticated, "")
		b.signIn("cy@example.com", next)

		// A reset link expires.
		want(t, b.do("POST", "/api/v1/auth/password-reset", map[string]string{"email": "cy@example.com"}), http.StatusAccepted)
		tok = e.linkToken("cy@example.com", manage.MailPasswordReset)
		e.clock.Advance(25 * time.Hour)
		wantErr(t, b.do("POST", "/api/v1/auth/password-reset/confirm", map[string]string{"token": tok, "password": testPassword}),
			http.StatusBadRequest, thauth.EInvalid, "can no longer be used")
	})
}

// TestConsoleTOTPReplay: a code accepted once is refused afterwards, within its time step and
// on the next sign-in alike.
func TestConsoleTOTPReplay(t *testing.T) {
	e := newConsoleEnv(t)
	b, _ := e.newAccount("dee@example.com")
	secret, _ := b.enrollMFA()
	want(t, b.do("POST", "/api/v1/auth/signout", nil), http.StatusNoContent)

	e.nextStep()
	code := e.code(secret)
	b.signIn("dee@example.com", testPassword)
	want(t, b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"code": code}), http.StatusOK)

	c := e.newBrowser()
	c.signIn("dee@example.com", testPassword)
	wantErr(t, c.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"code": code}), http.StatusUnauthorized, thauth.EUnauthenticated, "")
	// Disabling needs a fresh code too.
	r := b.do("GET", "/api/v1/account", nil)
	var acc accountAnswer
	r.decode(t, &acc)
	b.csrf = acc.CSRFToken
	wantErr(t, b.do("POST", "/api/v1/account/mfa/totp/disable", map[string]string{"code": code}), http.StatusBadRequest, thauth.EInvalid, "already used")
	e.nextStep()
	r = b.do("POST", "/api/v1/account/mfa/totp/disable", map[string]string{"code": e.code(secret)})
	want(t, r, http.StatusOK)
	var cs csrfJSON
	r.decode(t, &cs)
	b.csrf = cs.CSRFToken
	r = b.do("GET", "/api/v1/account", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &acc)
	if acc.Account.MFAEnabled {
		t.Error("TOTP still on after disable")
	}
}

// TestConsoleSessionsAndPassword: listing and revoking sessions, signing out everywhere, and
// a password change that rotates the caller's session and ends the others.
func TestConsoleSessionsAndPassword(t *testing.T) {
	e := newConsoleEnv(t)
	b1, _ := e.newAccount("eve@example.com")
	b2 := e.newBrowser()
	b2.signIn("eve@example.com", testPassword)
	b3 := e.newBrowser()
	b3.signIn("eve@example.com", testPassword)

	var list struct {
		Sessions []sessionJSON `json:"sessions"`
	}
	r := b1.do("GET", "/api/v1/account/sessions", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &list)
	if len(list.Sessions) != 3 {
		t.Fatalf("%d sessions, want 3: %s", len(list.Sessions), r)
	}
	current := ""
	for _, s := range list.Sessions {
		if s.Current {
			if current != "" {
				t.Error("two current sessions")
			}
			current = s.ID
		}
		if s.UserAgent != "test-browser/1.0" || s.IP != "127.0.0.1" {
			t.Errorf("session client = %q %q", s.IP, s.UserAgent)
		}
	}
	var acc accountAnswer
	b1.do("GET", "/api/v1/account", nil).decode(t, &acc)
	if current == "" || current != acc.Session.ID {
		t.Fatalf("current session %q, account says %q", current, acc.Session.ID)
	}

	// Revoke b2's session from b1.
	var other string
	b2.do("GET", "/api/v1/account", nil).decode(t, &acc)
	other = acc.Session.ID
	want(t, b1.do("DELETE", "/api/v1/account/sessions/"+other, nil), http.StatusNoContent)
	wantErr(t, b2.do("GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "")

	// Password change: the caller gets a new session, b3 is signed out.
	old := b1.cookie()
	wantErr(t, b1.do("POST", "/api/v1/account/password", map[string]string{"current_password": "wrong password here", "new_password": "another good passphrase 7"}),
		http.StatusForbidden, thauth.EForbidden, "")
	if b1.cookie() != old {
		t.Fatal("a refused password change touched the cookie")
	}
	r = b1.do("POST", "/api/v1/account/password", map[string]string{"current_password": testPassword, "new_password": "another good passphrase 7"})
	want(t, r, http.StatusOK)
	var cs csrfJSON
	r.decode(t, &cs)
	if b1.cookie() == old || cs.CSRFToken == b1.csrf || cs.CSRFToken == "" {
		t.Fatal("password change did not rotate the session")
	}
	b1.csrf = cs.CSRFToken
	want(t, b1.do("GET", "/api/v1/account", nil), http.StatusOK)
	wantErr(t, b3.do("GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "")
	wantErr(t, e.bearerCookie(old, "GET", "/api/v1/account"), http.StatusUnauthorized, thauth.EUnauthenticated, "")

	// Sign out everywhere, here too.
	b4 := e.newBrowser()
	b4.signIn("eve@example.com", "another good passphrase 7")
	r = b1.do("POST", "/api/v1/account/sessions/revoke-all", nil)
	want(t, r, http.StatusNoContent)
	if c := r.sessionCookie(t, e.cookieName()); c == nil || c.MaxAge >= 0 {
		t.Error("revoke-all did not clear the cookie")
	}
	wantErr(t, b4.do("GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "")

	// The account's activity shows what happened, newest first, paged.
	b5 := e.newBrowser()
	b5.signIn("eve@example.com", "another good passphrase 7")
	r = b5.do("GET", "/api/v1/account/activity?limit=2", nil)
	want(t, r, http.StatusOK)
	var act struct {
		Events []struct {
			Seq    int64          `json:"seq"`
			Action string         `json:"action"`
			Data   map[string]any `json:"data"`
		} `json:"events"`
		NextBefore *int64 `json:"next_before"`
	}
	r.decode(t, &act)
	if len(act.Events) != 2 || act.NextBefore == nil || act.Events[0].Action != "auth.signin" {
		t.Fatalf("activity page = %s", r)
	}
	var actions []string
	for _, ev := range act.Events {
		actions = append(actions, ev.Action)
	}
	for before := *act.NextBefore; ; {
		r = b5.do("GET", "/api/v1/account/activity?limit=100&before="+strconv.FormatInt(before, 10), nil)
		want(t, r, http.StatusOK)
		r.decode(t, &act)
		for _, ev := range act.Events {
			actions = append(actions, ev.Action)
		}
		if act.NextBefore == nil {
			break
		}
		before = *act.NextBefore
	}
	for _, a := range []string{"session.revoked", "account.password.changed", "session.revoked_all", "auth.signup", "auth.email.verified"} {
		if !slices.Contains(actions, a) {
			t.Errorf("activity lacks %s: %v", a, actions)
		}
	}
	wantErr(t, b5.do("GET", "/api/v1/account/activity?limit=0", nil), http.StatusBadRequest, thauth.EInvalid, "limit")
	wantErr(t, b5.do("GET", "/api/v1/account/activity?page=2", nil), http.StatusBadRequest, thauth.EInvalid, "page")

	// Update the name.
	r = b5.do("PATCH", "/api/v1/account", map[string]string{"name": "Eve Online"})
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), `"name":"Eve Online"`) {
		t.Errorf("PATCH account = %s", r)
	}
}

// TestConsoleEmailChange: a new address takes effect once its link is opened.
func TestConsoleEmailChange(t *testing.T) {
	e := newConsoleEnv(t)
	b, _ := e.newAccount("fay@example.com")
	wantErr(t, b.do("POST", "/api/v1/account/email", map[string]string{"new_email": "fay@new.example.com", "password": "wrong password here"}),
		http.StatusForbidden, thauth.EForbidden, "")
	want(t, b.do("POST", "/api/v1/account/email", map[string]string{"new_email": "fay@new.example.com", "password": testPassword}), http.StatusAccepted)
	tok := e.linkToken("fay@new.example.com", manage.MailVerifyEmail)
	want(t, b.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": tok}), http.StatusOK)
	var acc accountAnswer
	b.do("GET", "/api/v1/account", nil).decode(t, &acc)
	if acc.Account.Email != "fay@new.example.com" {
		t.Errorf("email = %q after the change", acc.Account.Email)
	}
}

// TestConsoleAccessTokens: personal access tokens are the non-browser credential: created
// only from a session, shown once, scoped (read-only refused on writes), revocable, and
// refused once expired.
func TestConsoleAccessTokens(t *testing.T) {
	e := newConsoleEnv(t)
	b, _ := e.newAccount("gus@example.com")
	ro := b.createToken("ci read", "read")
	rw := b.createToken("ci write", "read", "write")

	r := e.bearer(ro, "GET", "/api/v1/account", nil)
	want(t, r, http.StatusOK)
	var acc accountAnswer
	r.decode(t, &acc)
	if acc.Session != nil || acc.CSRFToken != "" {
		t.Errorf("token caller got session data: %s", r)
	}
	wantErr(t, e.bearer(ro, "PATCH", "/api/v1/account", map[string]string{"name": "x"}), http.StatusForbidden, thauth.EForbidden, "read-only")
	wantErr(t, e.bearer(ro, "POST", "/api/v1/orgs", map[string]string{"name": "x"}), http.StatusForbidden, thauth.EForbidden, "read-only")
	// Writes with a write token need no CSRF token: nothing ambient is involved.
	want(t, e.bearer(rw, "PATCH", "/api/v1/account", map[string]string{"name": "Gus"}), http.StatusOK)
	// Tokens cannot mint tokens or touch the second factor.
	wantErr(t, e.bearer(rw, "POST", "/api/v1/account/tokens", map[string]any{"name": "y", "scopes": []string{"read"}}),
		http.StatusForbidden, thauth.EForbidden, "session")
	wantErr(t, e.bearer(rw, "POST", "/api/v1/account/mfa/totp", nil), http.StatusForbidden, thauth.EForbidden, "session")

	var list struct {
		Tokens []accessTokenJSON `json:"tokens"`
	}
	r = b.do("GET", "/api/v1/account/tokens", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &list)
	if len(list.Tokens) != 2 {
		t.Fatalf("tokens = %s", r)
	}
	if strings.Contains(r.String(), ro) || strings.Contains(r.String(), rw) {
		t.Fatal("the listing shows a token")
	}
	var roID string
	for _, tk := range list.Tokens {
		if tk.Name == "ci read" {
			roID = tk.ID
		}
	}
	want(t, b.do("DELETE", "/api/v1/account/tokens/"+roID, nil), http.StatusNoContent)
	wantErr(t, e.bearer(ro, "GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "")

	short := b.do("POST", "/api/v1/account/tokens", map[string]any{"name": "short", "scopes": []string{"read"}, "expires_in_days": 1})
	want(t, short, http.StatusCreated)
	var created struct {
		Token string `json:"token"`
	}
	short.decode(t, &created)
	want(t, e.bearer(created.Token, "GET", "/api/v1/account", nil), http.StatusOK)
	wantErr(t, b.do("POST", "/api/v1/account/tokens", map[string]any{"name": "bad", "scopes": []string{"read"}, "expires_in_days": 0}),
		http.StatusBadRequest, thauth.EInvalid, "expires_in_days")
	wantErr(t, b.do("POST", "/api/v1/account/tokens", map[string]any{"name": "bad", "scopes": []string{"read"}, "expires_in_days": "7"}),
		http.StatusBadRequest, thauth.EInvalid, `field "expires_in_days" must be an integer`)
	e.clock.Advance(25 * time.Hour)
	wantErr(t, e.bearer(created.Token, "GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "")
	want(t, e.bearer(rw, "GET", "/api/v1/account", nil), http.StatusOK)
}
