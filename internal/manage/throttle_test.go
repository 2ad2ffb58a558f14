package manage

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

func TestSigninDelay(t *testing.T) {
	want := map[int]time.Duration{
		0: 0, 1: 0, 4: 0, 5: time.Second, 6: 2 * time.Second, 7: 4 * time.Second, 9: 16 * time.Second,
		13: 256 * time.Second, 14: signinMaxDelay, 40: signinMaxDelay, 1000: signinMaxDelay,
	}
	for n, d := range want {
		if got := acctSigninDelay(n); got != d {
			t.Errorf("acctSigninDelay(%d) = %v, want %v", n, got, d)
		}
	}
}

// acctAttempt is the outcome of one sign-in attempt, for comparing sequences.
type acctAttempt struct {
	Code       thauth.ErrorCode
	RetryAfter time.Duration
}

func acctTry(e *consoleEnv, ci ClientInfo, email, password string) acctAttempt {
	_, err := e.svc.SignIn(e.ctx, ci, email, password)
	if err == nil {
		return acctAttempt{Code: "ok"}
	}
	var te *thauth.Error
	if !errors.As(err, &te) {
		return acctAttempt{Code: "not a thauth error"}
	}
	return acctAttempt{Code: te.Code, RetryAfter: te.RetryAfter}
}

// TestSignInThrottleThresholds drives one address through the whole policy with the
// injected clock: four free failures, growing delays from the fifth, the lock at the
// tenth, and the fresh start after the lock — and checks that an unknown address gets
// exactly the same answers as a registered one.
func TestSignInThrottleThresholds(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "victim@example.com")
	run := func(email, ip string) []acctAttempt {
		ci := ClientInfo{IP: ip, UserAgent: "guesser"}
		var got []acctAttempt
		try := func(pw string) { got = append(got, acctTry(e, ci, email, pw)) }
		for range 4 {
			try("wrong-password-123")
		}
		try("wrong-password-123") // 5th failure: from now on, delays
		for _, wait := range []time.Duration{1, 2, 4, 8, 16} {
			try("wrong-password-123") // too early: refused without a check
			try(acctPassword)         // too early even with the right password
			e.advance(wait*time.Second - time.Microsecond)
			try(acctPassword) // still too early
			e.advance(time.Microsecond)
			try("wrong-password-123") // 6th…10th failure
		}
		try(acctPassword) // locked for 15 minutes
		e.advance(signinLockFor - time.Second)
		try(acctPassword) // 1 s left
		e.advance(time.Second)
		try("wrong-password-123") // the lock ran out: a fresh count, no delay
		try("wrong-password-123")
		try(acctPassword)
		return got
	}
	known := run("victim@example.com", "198.51.100.1")
	unknown := run("nobody@example.com", "198.51.100.2")

	unauth := acctAttempt{Code: thauth.EUnauthenticated}
	limited := func(d time.Duration) acctAttempt { return acctAttempt{Code: thauth.ERateLimited, RetryAfter: d} }
	want := []acctAttempt{unauth, unauth, unauth, unauth, unauth}
	for _, wait := range []time.Duration{1, 2, 4, 8, 16} {
		want = append(want, limited(wait*time.Second), limited(wait*time.Second), limited(time.Second), unauth)
	}
	want = append(want, limited(signinLockFor), limited(time.Second), unauth, unauth, acctAttempt{Code: "ok"})
	if diff := cmp.Diff(want, known); diff != "" {
		t.Fatalf("registered address (-want +got):\n%s", diff)
	}
	// The unknown address gets the same answers, except that its last "right password" is
	// of course wrong.
	wantUnknown := append(append([]acctAttempt{}, want[:len(want)-1]...), unauth)
	if diff := cmp.Diff(wantUnknown, unknown); diff != "" {
		t.Fatalf("unknown address (-want +got):\n%s", diff)
	}

	// The owner was told once, and the log shows the lock and the throttled attempts.
	var alerts int
	for _, m := range e.mails(t, "victim@example.com") {
		if m.Template == MailSecurityAlert {
			alerts++
		}
	}
	if alerts != 1 {
		t.Fatalf("%d security alerts, want 1", alerts)
	}
	acct, _ := e.store.GetAccountByEmail(e.ctx, "victim@example.com")
	count := map[string]int{}
	for _, a := range acctActions(t, e, acct.ID) {
		count[a]++
	}
	if count["auth.signin.failed"] != 12 || count["auth.signin.locked"] != 1 || count["auth.signin.throttled"] != 17 || count["auth.signin"] != 1 {
		t.Fatalf("activity counts = %v", count)
	}
	// The success cleared the counter: a new failure is a plain one.
	_, err := e.svc.SignIn(e.ctx, acctCI, "victim@example.com", "wrong-password-123")
	acctWantErr(t, err, thauth.EUnauthenticated)
}

func TestSignInThrottleMessage(t *testing.T) {
	e := newConsoleEnv(t)
	for i := range signinLockAt {
		if i > 0 {
			e.advance(signinMaxDelay)
		}
		acctTry(e, acctCI, "someone@example.com", "wrong-password-123")
	}
	_, err := e.svc.SignIn(e.ctx, acctCI, "someone@example.com", "wrong-password-123")
	te := acctWantErr(t, err, thauth.ERateLimited, fmt.Sprintf("too many failed sign-ins; try again in %d seconds", int(signinLockFor/time.Second)))
	if te.RetryAfter != signinLockFor {
		t.Fatalf("RetryAfter = %v", te.RetryAfter)
	}
}

func TestSignInSuccessClearsTheAddressCounter(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "clear@example.com")
	for range 4 {
		acctTry(e, acctCI, "clear@example.com", "wrong-password-123")
	}
	acctSignIn(t, e, "clear@example.com", acctPassword)
	// Four more failures are free again: without the reset they would be the 5th–8th.
	for i := range 4 {
		if got := acctTry(e, acctCI, "clear@example.com", "wrong-password-123"); got.Code != thauth.EUnauthenticated {
			t.Fatalf("failure %d after a success = %+v", i+1, got)
		}
	}
	if got := acctTry(e, acctCI, "clear@example.com", "wrong-password-123"); got.Code != thauth.EUnauthenticated {
		t.Fatalf("5th failure after a success = %+v", got)
	}
	if got := acctTry(e, acctCI, "clear@example.com", acctPassword); got.Code != thauth.ERateLimited {
		t.Fatalf("attempt after the 5th failure = %+v", got)
	}
}

func TestSignInWindowForgetsOldFailures(t *testing.T) {
	e := newConsoleEnv(t)
	for range 4 {
		acctTry(e, acctCI, "slowpoke@example.com", "wrong-password-123")
	}
	e.advance(signinWindow + time.Microsecond)
	// Had the old failures counted, this would be the 5th and the next attempt delayed.
	acctTry(e, acctCI, "slowpoke@example.com", "wrong-password-123")
	if got := acctTry(e, acctCI, "slowpoke@example.com", "wrong-password-123"); got.Code != thauth.EUnauthenticated {
		t.Fatalf("attempt = %+v, want a plain failure", got)
	}
}

func TestSignInIPLock(t *testing.T) {
	e := newConsoleEnv(t)
	acctSignUp(t, e, "target@example.com")
	spray := ClientInfo{IP: "203.0.113.66", UserAgent: "spray"}
	// One failure each on many addresses: no address counter moves past 1.
	for i := range ipLockAt {
		if got := acctTry(e, spray, fmt.Sprintf("user%d@example.com", i), "wrong-password-123"); got.Code != thauth.EUnauthenticated {
			t.Fatalf("failure %d = %+v", i+1, got)
		}
	}
	// The IP is now locked, for every address, even with the right password.
	if got := acctTry(e, spray, "target@example.com", acctPassword); got != (acctAttempt{thauth.ERateLimited, ipLockFor}) {
		t.Fatalf("attempt from the locked IP = %+v", got)
	}
	// Other clients are unaffected.
	acctSignIn(t, e, "target@example.com", acctPassword)
	e.advance(ipLockFor)
	if got := acctTry(e, spray, "target@example.com", acctPassword); got.Code != "ok" {
		t.Fatalf("attempt after the IP lock = %+v", got)
	}
	// The lock is in the log (installation chain, no account).
	found := false
	if err := e.store.ScanAudit(e.ctx, "", func(en *thauth.AuditEntry) error {
		found = found || (en.Action == "auth.signin.locked" && en.IP == spray.IP && en.Data == `{"minutes":"15","scope":"ip"}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("no auth.signin.locked entry for the IP")
	}
}

// TestThrottledAttemptChecksNoPassword shows that a throttled attempt is refused before
// the password is looked at: with the password store unreadable (a corrupt hash), a
// throttled attempt still answers ERateLimited rather than an internal error.
func TestThrottledAttemptChecksNoPassword(t *testing.T) {
	e := newConsoleEnv(t)
	acct := acctSignUp(t, e, "nocheck@example.com")
	for range 5 {
		acctTry(e, acctCI, "nocheck@example.com", "wrong-password-123")
	}
	acct.PasswordHash = "corrupt"
	if err := e.store.UpdateAccount(e.ctx, acct); err != nil {
		t.Fatal(err)
	}
	if got := acctTry(e, acctCI, "nocheck@example.com", acctPassword); got.Code != thauth.ERateLimited {
		t.Fatalf("throttled attempt = %+v, want rate_limited without a password check", got)
	}
	e.advance(time.Second)
	if got := acctTry(e, acctCI, "nocheck@example.com", acctPassword); got.Code != thauth.EInternal {
		t.Fatalf("unthrottled attempt on a corrupt hash = %+v, want internal (the hash was checked)", got)
	}
}
