package manage

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/totp"
)

// Shared helpers of the account tests (accounts, sessions, throttle, MFA, tokens).

// acctCI is the client of most test requests.
var acctCI = ClientInfo{IP: "192.0.2.10", UserAgent: "Mozilla/5.0 (acct test)"}

// acctPassword is a password that passes the policy.
const acctPassword = "violet-harbor-lantern-42"

// acctWantErr fails unless err is a *thauth.Error with code whose message contains every
// fragment.
func acctWantErr(t testing.TB, err error, code thauth.ErrorCode, fragments ...string) *thauth.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if got := thauth.ErrorCodeOf(err); got != code {
		t.Fatalf("error code = %s, want %s (error: %v)", got, code, err)
	}
	var te *thauth.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v is not a *thauth.Error", err)
	}
	for _, f := range fragments {
		if !strings.Contains(te.Message, f) {
			t.Fatalf("error message %q does not contain %q", te.Message, f)
		}
	}
	return te
}

// acctSignUp signs email up with acctPassword and verifies the address through the
// outbox, returning the account.
func acctSignUp(t testing.TB, e *consoleEnv, email string) *thauth.Account {
	t.Helper()
	if err := e.svc.SignUp(e.ctx, acctCI, email, acctPassword, "Test "+email); err != nil {
		t.Fatalf("SignUp(%s): %v", email, err)
	}
	m := e.lastMail(t, email, MailVerifyEmail)
	if err := e.svc.VerifyEmail(e.ctx, acctCI, tokenOf(t, m.Data["link"])); err != nil {
		t.Fatalf("VerifyEmail: %v", err)
	}
	a, err := e.store.GetAccountByEmail(e.ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// acctSignIn signs in with the password and fails the test on error.
func acctSignIn(t testing.TB, e *consoleEnv, email, password string) *SignInResult {
	t.Helper()
	res, err := e.svc.SignIn(e.ctx, acctCI, email, password)
	if err != nil {
		t.Fatalf("SignIn(%s): %v", email, err)
	}
	return res
}

// acctActor is the Actor of a session result.
func acctActor(res *SignInResult) Actor {
	return Actor{AccountID: res.Account.ID, SessionID: res.Session.ID, Via: ViaSession, MFA: res.Session.MFA, Client: acctCI}
}

// acctEnableTOTP enrols and confirms TOTP for the session's account and returns the secret,
// the recovery codes and the rotated session.
func acctEnableTOTP(t testing.TB, e *consoleEnv, res *SignInResult) (string, []string, *SignInResult) {
	t.Helper()
	enr, err := e.svc.EnrollTOTP(e.ctx, acctActor(res))
	if err != nil {
		t.Fatalf("EnrollTOTP: %v", err)
	}
	codes, res2, err := e.svc.ConfirmTOTP(e.ctx, acctActor(res), acctCode(t, e, enr.Secret))
	if err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
	return enr.Secret, codes, res2
}

// acctCode is the TOTP code of secret at the test clock's time.
func acctCode(t testing.TB, e *consoleEnv, secret string) string {
	t.Helper()
	c, err := totp.Code(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// acctActions returns the actions of the account's activity, oldest first.
func acctActions(t testing.TB, e *consoleEnv, accountID string) []string {
	t.Helper()
	list, err := e.store.ListAudit(e.ctx, thauth.AuditFilter{AccountID: accountID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		out = append(out, list[i].Action)
	}
	return out
}

// acctTemplates lists the templates of the mails to address, oldest first.
func acctTemplates(t testing.TB, e *consoleEnv, to string) []string {
	t.Helper()
	var out []string
	for _, m := range e.mails(t, to) {
		out = append(out, m.Template)
	}
	return out
}

// acctServiceWithLogger is a Service on e's store with e's options plus a logger writing
// JSON lines to buf.
func acctServiceWithLogger(e *consoleEnv, buf *bytes.Buffer) *Service {
	o := e.svc.opts
	o.Logger = slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(e.store, e.engine, o)
}

// TestAccountFullFlow walks the whole account life: sign-up, verification through the
// outbox, sign-in, TOTP enrolment, sign-out, sign-in with TOTP, sign-in with a recovery
// code, sign-out; the audit log records each step.
func TestAccountFullFlow(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "flow@example.com"
	if err := e.svc.SignUp(e.ctx, acctCI, "  Flow@Example.COM ", acctPassword, "Flo"); err != nil {
		t.Fatalf("SignUp: %v", err)
	}
	// Not verified yet: the right password is refused and a new link is sent.
	_, err := e.svc.SignIn(e.ctx, acctCI, email, acctPassword)
	acctWantErr(t, err, thauth.EForbidden, "verify your email address first")
	if got := acctTemplates(t, e, email); !cmp.Equal(got, []string{MailVerifyEmail, MailVerifyEmail}) {
		t.Fatalf("mails = %v", got)
	}
	m := e.lastMail(t, email, MailVerifyEmail)
	if m.Data["purpose"] != "signup" || m.Data["name"] != "Flo" || !strings.HasPrefix(m.Data["link"], "https://console.test/verify-email#token=") {
		t.Fatalf("verify mail = %v", m.Data)
	}
	if err := e.svc.VerifyEmail(e.ctx, acctCI, tokenOf(t, m.Data["link"])); err != nil {
		t.Fatalf("VerifyEmail: %v", err)
	}

	res := acctSignIn(t, e, "FLOW@example.com", acctPassword)
	if res.MFARequired || res.Token == "" || res.Session.MFA || res.Account.Email != email {
		t.Fatalf("sign-in result = %+v", res)
	}
	se, acct, err := e.svc.Authenticate(e.ctx, res.Token)
	if err != nil || se.ID != res.Session.ID || acct.ID != res.Account.ID {
		t.Fatalf("Authenticate = %v, %v, %v", se, acct, err)
	}

	secret, codes, res2 := acctEnableTOTP(t, e, res)
	if len(codes) != 10 || !res2.Session.MFA || res2.Session.ID == res.Session.ID {
		t.Fatalf("ConfirmTOTP: %d codes, session %+v", len(codes), res2.Session)
	}
	if _, _, err := e.svc.Authenticate(e.ctx, res.Token); err == nil {
		t.Fatal("the session before enabling MFA still authenticates")
	}
	if err := e.svc.SignOut(e.ctx, res2.Token); err != nil {
		t.Fatalf("SignOut: %v", err)
	}
	if _, _, err := e.svc.Authenticate(e.ctx, res2.Token); err == nil {
		t.Fatal("a signed-out session still authenticates")
	}

	// Sign in with TOTP (one step later: the enrolment code was consumed).
	e.advance(30 * time.Second)
	pending := acctSignIn(t, e, email, acctPassword)
	if !pending.MFARequired || !pending.Session.PendingMFA {
		t.Fatalf("sign-in with MFA on = %+v", pending)
	}
	full, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, acctCode(t, e, secret))
	if err != nil {
		t.Fatalf("SignInMFA(totp): %v", err)
	}
	if !full.Session.MFA || full.Session.PendingMFA || full.MFARequired {
		t.Fatalf("session after MFA = %+v", full.Session)
	}
	if err := e.svc.SignOut(e.ctx, full.Token); err != nil {
		t.Fatal(err)
	}

	// Sign in with a recovery code (in any case, without dashes).
	pending = acctSignIn(t, e, email, acctPassword)
	full, err = e.svc.SignInMFA(e.ctx, acctCI, pending.Token, strings.ToUpper(strings.ReplaceAll(codes[3], "-", "")))
	if err != nil {
		t.Fatalf("SignInMFA(recovery): %v", err)
	}
	left, err := e.svc.RecoveryCodesLeft(e.ctx, acctActor(full))
	if err != nil || left != 9 {
		t.Fatalf("RecoveryCodesLeft = %d, %v", left, err)
	}
	if got := e.lastMail(t, email, MailMFAChanged); got.Data["change"] != "recovery code used" {
		t.Fatalf("mfa mail = %v", got.Data)
	}
	// The same recovery code does not work twice.
	pending = acctSignIn(t, e, email, acctPassword)
	_, err = e.svc.SignInMFA(e.ctx, acctCI, pending.Token, codes[3])
	acctWantErr(t, err, thauth.EUnauthenticated, "incorrect or was already used")
	if err := e.svc.SignOut(e.ctx, full.Token); err != nil {
		t.Fatal(err)
	}

	want := []string{
		"auth.signup", "auth.signin.failed", "auth.email.verified", "auth.signin", "account.mfa.enabled",
		"auth.signout", "auth.signin", "auth.signout", "auth.signin", "account.mfa.recovery_code_used",
		"auth.mfa.failed", "auth.signout",
	}
	if diff := cmp.Diff(want, acctActions(t, e, acct.ID)); diff != "" {
		t.Fatalf("activity (-want +got):\n%s", diff)
	}
	// The account sees the same through AccountActivity, newest first.
	act, err := e.svc.AccountActivity(e.ctx, acctActor(full), 0, 0)
	if err != nil || len(act) != len(want) || act[0].Action != "auth.signout" || act[len(act)-1].Action != "auth.signup" {
		t.Fatalf("AccountActivity = %d entries, %v", len(act), err)
	}
}

func TestSignUpExistingEmail(t *testing.T) {
	e := newConsoleEnv(t)
	first := acctSignUp(t, e, "taken@example.com")
	// A second sign-up answers exactly like a first one...
	if err := e.svc.SignUp(e.ctx, ClientInfo{IP: "198.51.100.9"}, "Taken@example.com", "another-long-password-9", "Mallory"); err != nil {
		t.Fatalf("SignUp(existing) = %v, want nil", err)
	}
	// ...but changes nothing and warns the owner instead of sending a link.
	a, err := e.store.GetAccountByEmail(e.ctx, "taken@example.com")
	if err != nil || a.ID != first.ID || a.PasswordHash != first.PasswordHash || a.Name != first.Name {
		t.Fatalf("account changed: %+v, %v", a, err)
	}
	if got := acctTemplates(t, e, "taken@example.com"); !cmp.Equal(got, []string{MailVerifyEmail, MailSecurityAlert}) {
		t.Fatalf("mails = %v", got)
	}
	alert := e.lastMail(t, "taken@example.com", MailSecurityAlert)
	if !strings.Contains(alert.Data["title"], "tried to sign up") || !strings.Contains(alert.Data["detail"], "198.51.100.9") {
		t.Fatalf("alert = %v", alert.Data)
	}
	if got := acctActions(t, e, first.ID); !cmp.Equal(got, []string{"auth.signup", "auth.email.verified", "auth.signup.existing"}) {
		t.Fatalf("activity = %v", got)
	}
	acctSignIn(t, e, "taken@example.com", acctPassword)
	_, err = e.svc.SignIn(e.ctx, acctCI, "taken@example.com", "another-long-password-9")
	acctWantErr(t, err, thauth.EUnauthenticated, "email or password is incorrect")
}

func TestSignUpValidation(t *testing.T) {
	e := newConsoleEnv(t)
	long := strings.Repeat("a", 243) + "@example.com" // 255 characters
	tests := []struct {
		name, email, password, display string
		want                           string // "" for success
	}{
		{"ok", "ok@example.com", "twelve-chars", "", ""},
		{"ok 256 runes", "runes@example.com", strings.Repeat("é", 256), "Rune", ""},
		{"empty email", "  ", acctPassword, "", "email is required"},
		{"no at", "not-an-address", acctPassword, "", "email is not a valid address"},
		{"display name", "Bob <bob@example.com>", acctPassword, "", "email is not a valid address"},
		{"angle brackets", "<bob@example.com>", acctPassword, "", "email is not a valid address"},
		{"two addresses", "a@example.com, b@example.com", acctPassword, "", "email is not a valid address"},
		{"too long email", long, acctPassword, "", "at most 254 characters"},
		{"short password", "short@example.com", "eleven-char", "", "at least 12 characters"},
		{"long password", "long@example.com", strings.Repeat("é", 257), "", "at most 256 characters"},
		{"common password", "common@example.com", "1234567890qwerty", "", "commonly used"},
		{"common password any case", "common2@example.com", "1234567890QWERTY", "", "commonly used"},
		{"password is the email", "same.address@example.com", "Same.Address@example.com", "", "must not be your email"},
		{"name too long", "name@example.com", acctPassword, strings.Repeat("n", 101), "name must be at most 100 characters"},
		{"name with control character", "ctl@example.com", acctPassword, "a\x00b", "control characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.svc.SignUp(e.ctx, acctCI, tc.email, tc.password, tc.display)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("SignUp = %v", err)
				}
				return
			}
			acctWantErr(t, err, thauth.EInvalid, tc.want)
		})
	}
}

func TestVerifyEmailLinks(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "links@example.com"
	if err := e.svc.SignUp(e.ctx, acctCI, email, acctPassword, ""); err != nil {
		t.Fatal(err)
	}
	first := tokenOf(t, e.lastMail(t, email, MailVerifyEmail).Data["link"])

	// Unknown and malformed tokens.
	for _, tok := range []string{"", "nope", strings.Repeat("x", 500)} {
		acctWantErr(t, e.svc.VerifyEmail(e.ctx, acctCI, tok), thauth.EInvalid, "this link can no longer be used")
	}
	// A new link voids the older one.
	if err := e.svc.ResendVerification(e.ctx, acctCI, email); err != nil {
		t.Fatal(err)
	}
	second := tokenOf(t, e.lastMail(t, email, MailVerifyEmail).Data["link"])
	if second == first {
		t.Fatal("the resent link reuses the token")
	}
	acctWantErr(t, e.svc.VerifyEmail(e.ctx, acctCI, first), thauth.EInvalid, "this link can no longer be used")
	// Expired: the link lives exactly 24 hours.
	e.advance(24 * time.Hour)
	acctWantErr(t, e.svc.VerifyEmail(e.ctx, acctCI, second), thauth.EInvalid, "this link can no longer be used")
	if err := e.svc.ResendVerification(e.ctx, acctCI, email); err != nil {
		t.Fatal(err)
	}
	third := tokenOf(t, e.lastMail(t, email, MailVerifyEmail).Data["link"])
	e.advance(24*time.Hour - time.Microsecond)
	if err := e.svc.VerifyEmail(e.ctx, acctCI, third); err != nil {
		t.Fatalf("VerifyEmail just before expiry: %v", err)
	}
	// Used: a second use fails.
	acctWantErr(t, e.svc.VerifyEmail(e.ctx, acctCI, third), thauth.EInvalid, "this link can no longer be used")
	acctSignIn(t, e, email, acctPassword)

	// Verified accounts and unknown addresses get nothing, with the same nil answer.
	n := len(e.mails(t, email))
	if err := e.svc.ResendVerification(e.ctx, acctCI, email); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResendVerification(e.ctx, acctCI, "nobody@example.com"); err != nil {
		t.Fatal(err)
	}
	if len(e.mails(t, email)) != n || len(e.mails(t, "nobody@example.com")) != 0 {
		t.Fatal("ResendVerification sent mail for a verified or unknown address")
	}
	acctWantErr(t, e.svc.ResendVerification(e.ctx, acctCI, "bad"), thauth.EInvalid, "not a valid address")
}

func TestUnsolicitedMailLimit(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "flood@example.com"
	if err := e.svc.SignUp(e.ctx, acctCI, email, acctPassword, ""); err != nil {
		t.Fatal(err)
	}
	for range 15 {
		if err := e.svc.ResendVerification(e.ctx, acctCI, email); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(e.mails(t, email)); got != mailPerHour {
		t.Fatalf("%d mails queued, want the limit %d", got, mailPerHour)
	}
	// An hour without a message resets the counter.
	e.advance(time.Hour + time.Second)
	if err := e.svc.ResendVerification(e.ctx, acctCI, email); err != nil {
		t.Fatal(err)
	}
	if got := len(e.mails(t, email)); got != mailPerHour+1 {
		t.Fatalf("%d mails queued after an hour, want %d", got, mailPerHour+1)
	}
}

func TestPasswordReset(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "reset@example.com"
	acct := acctSignUp(t, e, email)
	s1 := acctSignIn(t, e, email, acctPassword)
	s2 := acctSignIn(t, e, email, acctPassword)

	// Unknown addresses get the same nil and no mail.
	if err := e.svc.RequestPasswordReset(e.ctx, acctCI, "ghost@example.com"); err != nil {
		t.Fatal(err)
	}
	if len(e.mails(t, "ghost@example.com")) != 0 {
		t.Fatal("reset mail sent to an unknown address")
	}
	acctWantErr(t, e.svc.RequestPasswordReset(e.ctx, acctCI, "bad"), thauth.EInvalid)

	// Expired after one hour.
	if err := e.svc.RequestPasswordReset(e.ctx, acctCI, email); err != nil {
		t.Fatal(err)
	}
	old := tokenOf(t, e.lastMail(t, email, MailPasswordReset).Data["link"])
	e.advance(time.Hour)
	acctWantErr(t, e.svc.ResetPassword(e.ctx, acctCI, old, "a-brand-new-password"), thauth.EInvalid, "this link can no longer be used")

	if err := e.svc.RequestPasswordReset(e.ctx, acctCI, email); err != nil {
		t.Fatal(err)
	}
	m := e.lastMail(t, email, MailPasswordReset)
	if !strings.HasPrefix(m.Data["link"], "https://console.test/reset-password#token=") {
		t.Fatalf("reset link = %q", m.Data["link"])
	}
	tok := tokenOf(t, m.Data["link"])
	// A weak password is refused and the link stays usable.
	acctWantErr(t, e.svc.ResetPassword(e.ctx, acctCI, tok, "short"), thauth.EInvalid, "at least 12")
	acctWantErr(t, e.svc.ResetPassword(e.ctx, acctCI, tok, email), thauth.EInvalid, "must not be your email")
	if err := e.svc.ResetPassword(e.ctx, acctCI, tok, "a-brand-new-password"); err != nil {
		t.Fatalf("ResetPassword: %v", err)
	}
	// Reused.
	acctWantErr(t, e.svc.ResetPassword(e.ctx, acctCI, tok, "yet-another-password"), thauth.EInvalid, "this link can no longer be used")
	// Every session is revoked; the new password works, the old one does not.
	for _, s := range []*SignInResult{s1, s2} {
		if _, _, err := e.svc.Authenticate(e.ctx, s.Token); err == nil {
			t.Fatal("a session survived the password reset")
		}
	}
	_, err := e.svc.SignIn(e.ctx, acctCI, email, acctPassword)
	acctWantErr(t, err, thauth.EUnauthenticated)
	acctSignIn(t, e, email, "a-brand-new-password")
	if got := e.lastMail(t, email, MailSecurityAlert); !strings.Contains(got.Data["title"], "password was reset") {
		t.Fatalf("alert = %v", got.Data)
	}
	acts := acctActions(t, e, acct.ID)
	if !acctContainsAll(acts, "auth.password.reset_requested", "auth.password.reset") {
		t.Fatalf("activity = %v", acts)
	}
}

func TestPasswordResetVerifiesAndUnlocks(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "locked@example.com"
	if err := e.svc.SignUp(e.ctx, acctCI, email, acctPassword, ""); err != nil {
		t.Fatal(err)
	}
	// Lock the address with ten wrong passwords (waiting out the delays).
	for range signinLockAt {
		_, err := e.svc.SignIn(e.ctx, acctCI, email, "wrong-password-123")
		acctWantErr(t, err, thauth.EUnauthenticated)
		e.advance(signinMaxDelay)
	}
	_, err := e.svc.SignIn(e.ctx, acctCI, email, acctPassword)
	acctWantErr(t, err, thauth.ERateLimited)
	// The owner resets by mail: the address is verified by the link and the lock is lifted.
	if err := e.svc.RequestPasswordReset(e.ctx, acctCI, email); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ResetPassword(e.ctx, acctCI, tokenOf(t, e.lastMail(t, email, MailPasswordReset).Data["link"]), "fresh-start-password"); err != nil {
		t.Fatal(err)
	}
	res := acctSignIn(t, e, email, "fresh-start-password")
	if res.Account.EmailVerifiedAt == nil {
		t.Fatal("the reset did not mark the address verified")
	}
}

func TestChangePassword(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "change@example.com"
	acctSignUp(t, e, email)
	s1 := acctSignIn(t, e, email, acctPassword)
	s2 := acctSignIn(t, e, email, acctPassword)

	_, err := e.svc.ChangePassword(e.ctx, acctActor(s1), "not-the-password", "a-new-good-password")
	acctWantErr(t, err, thauth.EForbidden, "current password is incorrect")
	_, err = e.svc.ChangePassword(e.ctx, acctActor(s1), acctPassword, "short")
	acctWantErr(t, err, thauth.EInvalid, "at least 12")
	tokenActor := acctActor(s1)
	tokenActor.Via, tokenActor.SessionID, tokenActor.Scopes = ViaToken, "", []string{thauth.TokenScopeWrite}
	_, err = e.svc.ChangePassword(e.ctx, tokenActor, acctPassword, "a-new-good-password")
	acctWantErr(t, err, thauth.EForbidden, "browser session")

	res, err := e.svc.ChangePassword(e.ctx, acctActor(s1), acctPassword, "a-new-good-password")
	if err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	if res.Token == "" || res.Session.ID == s1.Session.ID || res.Session.ID == s2.Session.ID {
		t.Fatalf("ChangePassword did not rotate the session: %+v", res.Session)
	}
	for _, s := range []*SignInResult{s1, s2} {
		if _, _, err := e.svc.Authenticate(e.ctx, s.Token); err == nil {
			t.Fatal("an old session survived the password change")
		}
	}
	if _, _, err := e.svc.Authenticate(e.ctx, res.Token); err != nil {
		t.Fatalf("the new session does not authenticate: %v", err)
	}
	acctSignIn(t, e, email, "a-new-good-password")
	_, err = e.svc.SignIn(e.ctx, acctCI, email, acctPassword)
	acctWantErr(t, err, thauth.EUnauthenticated)
	if got := e.lastMail(t, email, MailSecurityAlert); !strings.Contains(got.Data["title"], "password was changed") {
		t.Fatalf("alert = %v", got.Data)
	}
	if acts := acctActions(t, e, res.Account.ID); !acctContainsAll(acts, "account.password.changed") {
		t.Fatalf("activity = %v", acts)
	}
	// The revoked session cannot act any more.
	_, err = e.svc.ChangePassword(e.ctx, acctActor(s2), "a-new-good-password", "another-good-password")
	acctWantErr(t, err, thauth.EUnauthenticated)
}

func TestChangeEmail(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "old@example.com")
	s := acctSignIn(t, e, "old@example.com", acctPassword)

	acctWantErr(t, e.svc.ChangeEmail(e.ctx, acctActor(s), acctPassword, "OLD@example.com"), thauth.EInvalid, "already your email")
	acctWantErr(t, e.svc.ChangeEmail(e.ctx, acctActor(s), "wrong-password-00", "new@example.com"), thauth.EForbidden, "incorrect")
	acctWantErr(t, e.svc.ChangeEmail(e.ctx, acctActor(s), acctPassword, "not an address"), thauth.EInvalid)

	if err := e.svc.ChangeEmail(e.ctx, acctActor(s), acctPassword, "New@Example.com"); err != nil {
		t.Fatalf("ChangeEmail: %v", err)
	}
	m := e.lastMail(t, "new@example.com", MailVerifyEmail)
	if m.Data["purpose"] != "change" {
		t.Fatalf("change mail = %v", m.Data)
	}
	if got := e.lastMail(t, "old@example.com", MailSecurityAlert); !strings.Contains(got.Data["detail"], "new@example.com") {
		t.Fatalf("alert = %v", got.Data)
	}
	// Nothing changes until the link is used.
	acctSignIn(t, e, "old@example.com", acctPassword)
	if err := e.svc.VerifyEmail(e.ctx, acctCI, tokenOf(t, m.Data["link"])); err != nil {
		t.Fatalf("VerifyEmail(change): %v", err)
	}
	acctSignIn(t, e, "new@example.com", acctPassword)
	_, err := e.svc.SignIn(e.ctx, acctCI, "old@example.com", acctPassword)
	acctWantErr(t, err, thauth.EUnauthenticated, "email or password is incorrect")
	acctWantErr(t, e.svc.VerifyEmail(e.ctx, acctCI, tokenOf(t, m.Data["link"])), thauth.EInvalid, "this link can no longer be used")
	if acts := acctActions(t, e, s.Account.ID); !acctContainsAll(acts, "account.email.change_requested", "account.email.changed") {
		t.Fatalf("activity = %v", acts)
	}

	// A new address taken by someone else before the link is used: the generic answer.
	if err := e.svc.ChangeEmail(e.ctx, acctActor(s), acctPassword, "contested@example.com"); err != nil {
		t.Fatal(err)
	}
	link := e.lastMail(t, "contested@example.com", MailVerifyEmail).Data["link"]
	acctSignUp(t, e, "contested@example.com")
	acctWantErr(t, e.svc.VerifyEmail(e.ctx, acctCI, tokenOf(t, link)), thauth.EInvalid, "this link can no longer be used")
	if a, err := e.store.GetAccount(e.ctx, s.Account.ID); err != nil || a.Email != "new@example.com" {
		t.Fatalf("account after the contested change = %+v, %v", a, err)
	}
}

func TestUpdateAccountAndActivity(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "me@example.com")
	s := acctSignIn(t, e, "me@example.com", acctPassword)
	a, err := e.svc.UpdateAccount(e.ctx, acctActor(s), "New Name")
	if err != nil || a.Name != "New Name" {
		t.Fatalf("UpdateAccount = %+v, %v", a, err)
	}
	_, err = e.svc.UpdateAccount(e.ctx, acctActor(s), strings.Repeat("x", 101))
	acctWantErr(t, err, thauth.EInvalid, "name")
	ro := Actor{AccountID: s.Account.ID, Via: ViaToken, TokenID: "t", Scopes: []string{thauth.TokenScopeRead}}
	_, err = e.svc.UpdateAccount(e.ctx, ro, "Other")
	acctWantErr(t, err, thauth.EForbidden, "read-only")
	got, err := e.svc.GetAccount(e.ctx, ro)
	if err != nil || got.Name != "New Name" {
		t.Fatalf("GetAccount = %+v, %v", got, err)
	}
	_, err = e.svc.GetAccount(e.ctx, Actor{AccountID: "00000000-0000-7000-8000-00000000dead", Via: ViaSession})
	acctWantErr(t, err, thauth.EUnauthenticated)
	_, err = e.svc.GetAccount(e.ctx, Actor{})
	acctWantErr(t, err, thauth.EUnauthenticated)

	// Paging: signup, verified, signin, updated + 5 sign-ins = 9 entries.
	for range 5 {
		acctSignIn(t, e, "me@example.com", acctPassword)
	}
	page1, err := e.svc.AccountActivity(e.ctx, acctActor(s), 0, 4)
	if err != nil || len(page1) != 4 {
		t.Fatalf("page 1 = %d, %v", len(page1), err)
	}
	page2, err := e.svc.AccountActivity(e.ctx, acctActor(s), page1[3].Seq, 100)
	if err != nil || len(page2) != 5 || page2[0].Seq >= page1[3].Seq || page2[4].Action != "auth.signup" {
		t.Fatalf("page 2 = %+v, %v", page2, err)
	}
	for _, limit := range []int{-1, 101} {
		_, err := e.svc.AccountActivity(e.ctx, acctActor(s), 0, limit)
		acctWantErr(t, err, thauth.EInvalid, "limit")
	}
	// Another account sees none of it.
	acctSignUp(t, e, "other@example.com")
	o := acctSignIn(t, e, "other@example.com", acctPassword)
	list, err := e.svc.AccountActivity(e.ctx, acctActor(o), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range list {
		if en.AccountID != o.Account.ID {
			t.Fatalf("activity of %s holds an entry of %s", o.Account.ID, en.AccountID)
		}
	}
}

// TestNoSecretsInAuditOrLogs runs every credential flow with a logger and checks that no
// password, token, code or TOTP secret — nor the email address in clear — reaches the log
// output or the audit log.
func TestNoSecretsInAuditOrLogs(t *testing.T) {
	e := newConsoleEnv(t)
	var buf bytes.Buffer
	svc := acctServiceWithLogger(e, &buf)
	e.svc = svc
	const email = "secretive@example.com"
	var secrets []string
	keep := func(s ...string) { secrets = append(secrets, s...) }
	keep(acctPassword, "second-password-77", "third-password-777", "wrong-password-123")

	if err := svc.SignUp(e.ctx, acctCI, email, acctPassword, "S"); err != nil {
		t.Fatal(err)
	}
	vt := tokenOf(t, e.lastMail(t, email, MailVerifyEmail).Data["link"])
	keep(vt)
	if err := svc.VerifyEmail(e.ctx, acctCI, vt); err != nil {
		t.Fatal(err)
	}
	_, _ = svc.SignIn(e.ctx, acctCI, email, "wrong-password-123")
	_, _ = svc.SignIn(e.ctx, acctCI, "unknown-"+email, "wrong-password-123")
	res := acctSignIn(t, e, email, acctPassword)
	keep(res.Token)
	secret, codes, res2 := acctEnableTOTP(t, e, res)
	keep(secret, res2.Token)
	keep(codes...)
	tok, pat, err := svc.CreateAccessToken(e.ctx, acctActor(res2), "ci", []string{thauth.TokenScopeRead}, 0)
	if err != nil {
		t.Fatal(err)
	}
	keep(pat)
	if _, _, err := svc.AuthenticateAccessToken(e.ctx, pat); err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeAccessToken(e.ctx, acctActor(res2), tok.ID); err != nil {
		t.Fatal(err)
	}
	e.advance(30 * time.Second)
	pending := acctSignIn(t, e, email, acctPassword)
	keep(pending.Token)
	_, _ = svc.SignInMFA(e.ctx, acctCI, pending.Token, "000000")
	code := acctCode(t, e, secret)
	keep(code)
	full, err := svc.SignInMFA(e.ctx, acctCI, pending.Token, code)
	if err != nil {
		t.Fatal(err)
	}
	keep(full.Token)
	pending = acctSignIn(t, e, email, acctPassword)
	full, err = svc.SignInMFA(e.ctx, acctCI, pending.Token, codes[0])
	if err != nil {
		t.Fatal(err)
	}
	keep(pending.Token, full.Token)
	res3, err := svc.ChangePassword(e.ctx, acctActor(full), acctPassword, "second-password-77")
	if err != nil {
		t.Fatal(err)
	}
	keep(res3.Token)
	if err := svc.RequestPasswordReset(e.ctx, acctCI, email); err != nil {
		t.Fatal(err)
	}
	rt := tokenOf(t, e.lastMail(t, email, MailPasswordReset).Data["link"])
	keep(rt)
	if err := svc.ResetPassword(e.ctx, acctCI, rt, "third-password-777"); err != nil {
		t.Fatal(err)
	}
	s4 := acctSignIn(t, e, email, "third-password-777")
	keep(s4.Token)
	e.advance(30 * time.Second)
	full4, err := svc.SignInMFA(e.ctx, acctCI, s4.Token, acctCode(t, e, secret))
	if err != nil {
		t.Fatal(err)
	}
	keep(full4.Token)
	if err := svc.ChangeEmail(e.ctx, acctActor(full4), "third-password-777", "moved@example.com"); err != nil {
		t.Fatal(err)
	}
	ct := tokenOf(t, e.lastMail(t, "moved@example.com", MailVerifyEmail).Data["link"])
	keep(ct)
	if err := svc.VerifyEmail(e.ctx, acctCI, ct); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DisableTOTP(e.ctx, acctActor(full4), codes[1]); err != nil {
		t.Fatal(err)
	}
	if err := svc.SignOut(e.ctx, full4.Token); err != nil {
		t.Fatal(err)
	}

	logs := buf.String()
	if !strings.Contains(logs, "signed in") || !strings.Contains(logs, res.Account.ID) {
		t.Fatalf("the logger captured nothing useful:\n%s", logs)
	}
	var audit strings.Builder
	if err := e.store.ScanAudit(e.ctx, "", func(en *thauth.AuditEntry) error {
		line := en.ID + "|" + en.ActorID + "|" + en.Action + "|" + en.Target + "|" + en.UserAgent + "|" + en.Data + "\n"
		audit.WriteString(line)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets {
		for _, form := range []string{sec, strings.ReplaceAll(sec, "-", "")} {
			if strings.Contains(logs, form) {
				t.Errorf("a secret (%.4s…) appears in the logs", form)
			}
			if strings.Contains(audit.String(), form) {
				t.Errorf("a secret (%.4s…) appears in the audit log", form)
			}
		}
	}
	for _, addr := range []string{email, "moved@example.com"} {
		if strings.Contains(logs, addr) {
			t.Errorf("the address %s appears in clear in the logs", addr)
		}
	}
}

// acctContainsAll reports whether list holds every one of want.
func acctContainsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}
