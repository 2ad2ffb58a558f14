package manage

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func TestTOTPEnrollment(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "enrol@example.com")
	s := acctSignIn(t, e, "enrol@example.com", acctPassword)

	_, _, err := e.svc.ConfirmTOTP(e.ctx, acctActor(s), "123456")
	acctWantErr(t, err, thauth.EConflict, "no two-factor enrolment")
	tokenActor := Actor{AccountID: s.Account.ID, Via: ViaToken, TokenID: "x", Scopes: []string{thauth.TokenScopeWrite}}
	_, err = e.svc.EnrollTOTP(e.ctx, tokenActor)
	acctWantErr(t, err, thauth.EForbidden, "browser session")

	enr, err := e.svc.EnrollTOTP(e.ctx, acctActor(s))
	if err != nil {
		t.Fatal(err)
	}
	if enr.Secret == "" || !strings.HasPrefix(enr.URI, "otpauth://totp/") || !strings.Contains(enr.URI, "enrol@example.com") ||
		len(enr.QRCodePNG) < 100 || string(enr.QRCodePNG[1:4]) != "PNG" {
		t.Fatalf("enrolment = %q %q (%d bytes of PNG)", enr.Secret, enr.URI, len(enr.QRCodePNG))
	}
	// The pending secret is stored sealed, bound to the account.
	a, _ := e.store.GetAccount(e.ctx, s.Account.ID)
	if a.TOTPPending == "" || strings.Contains(a.TOTPPending, enr.Secret) || a.MFAEnabled() {
		t.Fatalf("stored enrolment = %q", a.TOTPPending)
	}
	if b, err := e.sealer.Open(e.ctx, "totp", a.ID, a.TOTPPending); err != nil || string(b) != enr.Secret {
		t.Fatalf("sealed secret does not open to the secret: %v", err)
	}
	if _, err := e.sealer.Open(e.ctx, "totp", "another-account", a.TOTPPending); err == nil {
		t.Fatal("the sealed secret opens for another row id")
	}
	// Nothing is on until confirmed: sign-in needs no second factor yet.
	if r := acctSignIn(t, e, "enrol@example.com", acctPassword); r.MFARequired {
		t.Fatal("an unconfirmed enrolment requires MFA")
	}
	// A new enrolment replaces the pending one.
	enr2, err := e.svc.EnrollTOTP(e.ctx, acctActor(s))
	if err != nil || enr2.Secret == enr.Secret {
		t.Fatalf("second enrolment = %v", err)
	}
	_, _, err = e.svc.ConfirmTOTP(e.ctx, acctActor(s), acctCode(t, e, enr.Secret))
	acctWantErr(t, err, thauth.EInvalid, "incorrect or was already used")
	_, _, err = e.svc.ConfirmTOTP(e.ctx, acctActor(s), "not a code")
	acctWantErr(t, err, thauth.EInvalid, "incorrect")

	codes, res, err := e.svc.ConfirmTOTP(e.ctx, acctActor(s), acctCode(t, e, enr2.Secret))
	if err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 19 || strings.Count(c, "-") != 3 || seen[c] {
			t.Fatalf("recovery code %q malformed or repeated", c)
		}
		seen[c] = true
	}
	if !res.Session.MFA || res.Session.ID == s.Session.ID {
		t.Fatalf("session after ConfirmTOTP = %+v", res.Session)
	}
	if _, _, err := e.svc.Authenticate(e.ctx, s.Token); err == nil {
		t.Fatal("the session before ConfirmTOTP survived the privilege change")
	}
	a, _ = e.store.GetAccount(e.ctx, s.Account.ID)
	if !a.MFAEnabled() || a.TOTPPending != "" || a.TOTPSecret == "" || strings.Contains(a.TOTPSecret, enr2.Secret) {
		t.Fatalf("account after ConfirmTOTP = %+v", a)
	}
	if got := e.lastMail(t, "enrol@example.com", MailMFAChanged); got.Data["change"] != "enabled" {
		t.Fatalf("mfa mail = %v", got.Data)
	}
	if n, err := e.svc.RecoveryCodesLeft(e.ctx, acctActor(res)); err != nil || n != 10 {
		t.Fatalf("RecoveryCodesLeft = %d, %v", n, err)
	}
	_, err = e.svc.EnrollTOTP(e.ctx, acctActor(res))
	acctWantErr(t, err, thauth.EConflict, "already enabled")
	if acts := acctActions(t, e, a.ID); !acctContainsAll(acts, "account.mfa.enabled", "auth.mfa.failed") {
		t.Fatalf("activity = %v", acts)
	}
}

func TestTOTPNeedsSealer(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "nokey@example.com")
	s := acctSignIn(t, e, "nokey@example.com", acctPassword)
	o := e.svc.opts
	o.Sealer = nil
	svc := New(e.store, e.engine, o)
	_, err := svc.EnrollTOTP(e.ctx, acctActor(s))
	acctWantErr(t, err, thauth.EUnavailable, "master key")
}

// TestTOTPReplay checks that a code works at most once: the code that confirmed the
// enrolment, a code used to sign in, and an older code still inside the skew window after
// a newer one was accepted are all refused.
func TestTOTPReplay(t *testing.T) {
	e := newConsoleEnv(t)
	var (
		email                      string
		secret, confirmCode, newer string
		pending                    *SignInResult
		err                        error
	)
	// Two consecutive steps share a code about once in a million secrets: then the test
	// cannot tell a replay from a fresh code, so it takes another account (a new secret).
	for attempt := 0; ; attempt++ {
		email = fmt.Sprintf("replay%d@example.com", attempt)
		acctSignUp(t, e, email)
		s := acctSignIn(t, e, email, acctPassword)
		secret, _, _ = acctEnableTOTP(t, e, s)
		confirmCode = acctCode(t, e, secret)

		pending = acctSignIn(t, e, email, acctPassword)
		_, err = e.svc.SignInMFA(e.ctx, acctCI, pending.Token, confirmCode)
		acctWantErr(t, err, thauth.EUnauthenticated, "incorrect or was already used")

		e.advance(30 * time.Second) // the next step; confirmCode's step is still within the skew
		newer = acctCode(t, e, secret)
		if newer != confirmCode {
			break
		}
		if attempt == 3 {
			t.Fatal("four secrets in a row gave equal codes for consecutive steps")
		}
	}
	if _, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, newer); err != nil {
		t.Fatalf("SignInMFA(new step): %v", err)
	}
	pending = acctSignIn(t, e, email, acctPassword)
	_, err = e.svc.SignInMFA(e.ctx, acctCI, pending.Token, newer)
	acctWantErr(t, err, thauth.EUnauthenticated, "incorrect or was already used")
	_, err = e.svc.SignInMFA(e.ctx, acctCI, pending.Token, confirmCode)
	acctWantErr(t, err, thauth.EUnauthenticated, "incorrect or was already used")
	// Both codes are valid TOTP codes at this time: only the replay guard refuses them.
	for _, c := range []string{newer, confirmCode} {
		if _, ok := e.totp.Validate(secret, c, e.clock.Now()); !ok {
			t.Fatalf("code %s is not valid now; the test does not test the replay guard", c)
		}
	}
	e.advance(30 * time.Second)
	if _, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, acctCode(t, e, secret)); err != nil {
		t.Fatalf("SignInMFA(next step): %v", err)
	}
}

func TestTOTPLock(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "mfalock@example.com"
	acctSignUp(t, e, email)
	s := acctSignIn(t, e, email, acctPassword)
	secret, _, full := acctEnableTOTP(t, e, s)
	e.advance(30 * time.Second)
	pending := acctSignIn(t, e, email, acctPassword)
	for i := range mfaLockAt {
		_, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, "000000")
		acctWantErr(t, err, thauth.EUnauthenticated, "incorrect")
		if got := acctAlerts(t, e, email); (i < mfaLockAt-1 && got != 0) || (i == mfaLockAt-1 && got != 1) {
			t.Fatalf("%d security alerts after %d failures", got, i+1)
		}
	}
	// Locked: even the right code is refused, unchecked.
	_, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, acctCode(t, e, secret))
	te := acctWantErr(t, err, thauth.ERateLimited, "too many failed two-factor codes")
	if te.RetryAfter != mfaLockFor {
		t.Fatalf("RetryAfter = %v", te.RetryAfter)
	}
	if got := e.lastMail(t, email, MailSecurityAlert); !strings.Contains(got.Data["title"], "Two-factor codes locked") {
		t.Fatalf("alert = %v", got.Data)
	}
	acts := acctActions(t, e, s.Account.ID)
	n := 0
	for _, a := range acts {
		if a == "auth.mfa.failed" {
			n++
		}
	}
	if n != mfaLockAt || !acctContainsAll(acts, "auth.mfa.locked") {
		t.Fatalf("activity = %v", acts)
	}
	// The lock also covers the other uses of a code.
	_, err = e.svc.RegenerateRecoveryCodes(e.ctx, acctActor(full), acctCode(t, e, secret))
	acctWantErr(t, err, thauth.ERateLimited)
	_, err = e.svc.DisableTOTP(e.ctx, acctActor(full), acctCode(t, e, secret))
	acctWantErr(t, err, thauth.ERateLimited)
	// After the lock (the pending session has expired meanwhile), signing in works.
	e.advance(mfaLockFor)
	pending = acctSignIn(t, e, email, acctPassword)
	if _, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, acctCode(t, e, secret)); err != nil {
		t.Fatalf("SignInMFA after the lock: %v", err)
	}
}

func TestRecoveryCodes(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "recover@example.com"
	acctSignUp(t, e, email)
	s := acctSignIn(t, e, email, acctPassword)
	secret, codes, full := acctEnableTOTP(t, e, s)

	if n, _ := e.store.CountRecoveryCodes(e.ctx, s.Account.ID); n != 10 {
		t.Fatalf("count = %d", n)
	}
	// Regenerating needs a fresh code and voids the old codes.
	_, err := e.svc.RegenerateRecoveryCodes(e.ctx, acctActor(full), "111111")
	acctWantErr(t, err, thauth.EInvalid, "incorrect")
	e.advance(30 * time.Second)
	fresh, err := e.svc.RegenerateRecoveryCodes(e.ctx, acctActor(full), acctCode(t, e, secret))
	if err != nil || len(fresh) != 10 {
		t.Fatalf("RegenerateRecoveryCodes = %d, %v", len(fresh), err)
	}
	if got := e.lastMail(t, email, MailMFAChanged); got.Data["change"] != "recovery codes regenerated" {
		t.Fatalf("mail = %v", got.Data)
	}
	pending := acctSignIn(t, e, email, acctPassword)
	_, err = e.svc.SignInMFA(e.ctx, acctCI, pending.Token, codes[0])
	acctWantErr(t, err, thauth.EUnauthenticated, "incorrect")
	r, err := e.svc.SignInMFA(e.ctx, acctCI, pending.Token, " "+fresh[0]+" ")
	if err != nil {
		t.Fatalf("SignInMFA(fresh recovery code): %v", err)
	}
	if n, _ := e.svc.RecoveryCodesLeft(e.ctx, acctActor(r)); n != 9 {
		t.Fatalf("RecoveryCodesLeft = %d", n)
	}
	// A recovery code may also confirm a regeneration (the user lost the device).
	if _, err := e.svc.RegenerateRecoveryCodes(e.ctx, acctActor(r), fresh[1]); err != nil {
		t.Fatalf("RegenerateRecoveryCodes(recovery code): %v", err)
	}
	if acts := acctActions(t, e, s.Account.ID); !acctContainsAll(acts, "account.mfa.recovery_codes_regenerated", "account.mfa.recovery_code_used") {
		t.Fatalf("activity = %v", acts)
	}
}

func TestDisableTOTP(t *testing.T) {
	e := newConsoleEnv(t)
	const email = "disable@example.com"
	acctSignUp(t, e, email)
	s := acctSignIn(t, e, email, acctPassword)
	secret, codes, full := acctEnableTOTP(t, e, s)

	// The confirming code is spent; a stale or wrong one is refused.
	_, err := e.svc.DisableTOTP(e.ctx, acctActor(full), acctCode(t, e, secret))
	acctWantErr(t, err, thauth.EInvalid, "incorrect or was already used")
	_, err = e.svc.DisableTOTP(e.ctx, acctActor(full), "")
	acctWantErr(t, err, thauth.EInvalid)

	e.advance(30 * time.Second)
	res, err := e.svc.DisableTOTP(e.ctx, acctActor(full), acctCode(t, e, secret))
	if err != nil {
		t.Fatalf("DisableTOTP: %v", err)
	}
	if res.Session.ID == full.Session.ID || res.Session.MFA {
		t.Fatalf("session after DisableTOTP = %+v", res.Session)
	}
	if _, _, err := e.svc.Authenticate(e.ctx, full.Token); err == nil {
		t.Fatal("the session before DisableTOTP survived the privilege change")
	}
	a, _ := e.store.GetAccount(e.ctx, s.Account.ID)
	if a.MFAEnabled() || a.TOTPSecret != "" {
		t.Fatalf("account after DisableTOTP = %+v", a)
	}
	if n, _ := e.svc.RecoveryCodesLeft(e.ctx, acctActor(res)); n != 0 {
		t.Fatalf("%d recovery codes left after disabling", n)
	}
	if got := e.lastMail(t, email, MailMFAChanged); got.Data["change"] != "disabled" {
		t.Fatalf("mail = %v", got.Data)
	}
	if r := acctSignIn(t, e, email, acctPassword); r.MFARequired {
		t.Fatal("sign-in still requires MFA")
	}
	_, err = e.svc.DisableTOTP(e.ctx, acctActor(res), codes[0])
	acctWantErr(t, err, thauth.EConflict, "not enabled")

	// Disabling with a recovery code works too. (The steps already used stay used across
	// enrolments: the new secret's first code comes from a later step.)
	e.advance(30 * time.Second)
	_, codes2, full2 := acctEnableTOTP(t, e, res)
	if _, err := e.svc.DisableTOTP(e.ctx, acctActor(full2), codes2[4]); err != nil {
		t.Fatalf("DisableTOTP(recovery code): %v", err)
	}
}

// acctAlerts counts the security_alert mails to address.
func acctAlerts(t testing.TB, e *consoleEnv, to string) int {
	t.Helper()
	n := 0
	for _, m := range e.mails(t, to) {
		if m.Template == MailSecurityAlert {
			n++
		}
	}
	return n
}
