package manage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/thauth/thauth"
)

// Brute-force protection. Failure counters live in the store (ThrottleStore), so every node
// sharing a database enforces the same limits. The keys never depend on whether an account
// exists: a guesser learns nothing from being throttled, and an unknown address is throttled
// exactly like a registered one.
//
//	signin:email:<sha256 hex of the normalized email>
//	    Failures within signinWindow (15 min) are counted. The first signinFreeFailures (4)
//	    cost nothing. From the 5th failure on, the next attempt must wait 2^(n−5) seconds
//	    after the last failure (1 s after the 5th, 2 s after the 6th … 16 s after the 9th;
//	    capped at signinMaxDelay, 5 min). The 10th failure locks the address for
//	    signinLockFor (15 min): audit auth.signin.locked and a security_alert mail to the
//	    account, if there is one. A successful sign-in clears the counter; the counter also
//	    starts over once a lock has run out or 15 minutes pass without a failure.
//	signin:ip:<client IP>
//	    50 failures within 15 minutes lock the IP for 15 minutes, whatever addresses it
//	    tried (one client spraying many accounts). Success does not clear it (one valid
//	    account must not launder a spray).
//	mfa:<account id>
//	    5 wrong second-factor codes (TOTP or recovery, at sign-in or when confirming,
//	    disabling or regenerating) within 15 minutes lock the second factor for 15 minutes:
//	    audit auth.mfa.locked and a security_alert mail. A correct code clears it.
//	mail:<sha256 hex of the address>
//	    At most mailPerHour (10) unsolicited messages to one address (verification links,
//	    reset links, "someone tried to sign up" alerts) until an hour passes without one:
//	    beyond that they are dropped silently (and logged), so Thauth cannot be used to
//	    flood someone's mailbox.
//
// A throttled attempt is answered ERateLimited with RetryAfter before any password or code is
// checked, so waiting cannot be skipped by guessing right. Nothing sleeps on the server: the
// delay is the client's to honour. Attempts that race past a check together are each counted,
// so the lock still comes after at most a handful of extra guesses.
const (
	signinWindow       = 15 * time.Minute
	signinFreeFailures = 4
	signinMaxDelay     = 5 * time.Minute
	signinLockAt       = 10
	signinLockFor      = 15 * time.Minute

	ipWindow  = 15 * time.Minute
	ipLockAt  = 50
	ipLockFor = 15 * time.Minute

	mfaWindow  = 15 * time.Minute
	mfaLockAt  = 5
	mfaLockFor = 15 * time.Minute

	mailWindow  = time.Hour
	mailPerHour = 10
)

// acctEmailDigest is the hex SHA-256 of a normalized email: the throttle key part, and (its
// first 12 characters) how logs name an address without writing it down.
func acctEmailDigest(email string) string {
	h := sha256.Sum256([]byte(email))
	return hex.EncodeToString(h[:])
}

// acctEmailLogID is the short form of acctEmailDigest used in log lines.
func acctEmailLogID(email string) string { return acctEmailDigest(email)[:12] }

func signinEmailKey(email string) string { return "signin:email:" + acctEmailDigest(email) }
func signinIPKey(ip string) string       { return "signin:ip:" + ip }
func mfaKey(accountID string) string     { return "mfa:" + accountID }
func mailKey(email string) string        { return "mail:" + acctEmailDigest(email) }

// acctSigninDelay is how long to wait after the last of n failures before the next attempt.
func acctSigninDelay(n int) time.Duration {
	if n <= signinFreeFailures {
		return 0
	}
	shift := n - signinFreeFailures - 1
	if shift >= 20 {
		return signinMaxDelay
	}
	return min(time.Duration(1<<shift)*time.Second, signinMaxDelay)
}

// acctThrottleResetBefore is the resetBefore of RecordFailure for counter t at now: failures
// older than window do not count, nor do failures from before a lock that has run out.
func acctThrottleResetBefore(t *thauth.Throttle, now time.Time, window time.Duration) time.Time {
	r := now.Add(-window)
	if t != nil && t.LockedUntil != nil && !t.LockedUntil.After(now) && t.LockedUntil.After(r) {
		r = *t.LockedUntil
	}
	return r
}

// acctGetThrottle returns key's counter, or nil when it has none.
func (s *Service) acctGetThrottle(ctx context.Context, key string) (*thauth.Throttle, error) {
	t, err := s.store.GetThrottle(ctx, key)
	if thauth.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, storeError(err, "could not check the sign-in limits")
	}
	return t, nil
}

// acctThrottleWait returns how long the holder of key must still wait at now: until a lock
// ends, or, with delays, until the growing delay after the last failure has passed.
func (s *Service) acctThrottleWait(ctx context.Context, key string, now time.Time, window time.Duration, delays bool) (time.Duration, error) {
	t, err := s.acctGetThrottle(ctx, key)
	if err != nil || t == nil {
		return 0, err
	}
	if t.LockedUntil != nil && t.LockedUntil.After(now) {
		return t.LockedUntil.Sub(now), nil
	}
	if !delays || t.LastFailureAt.Before(acctThrottleResetBefore(t, now, window)) {
		return 0, nil
	}
	if wait := t.LastFailureAt.Add(acctSigninDelay(t.Failures)).Sub(now); wait > 0 {
		return wait, nil
	}
	return 0, nil
}

// acctRecordFailure counts a failure of key at now and locks the key for lockFor when the count
// reaches lockAt; it returns the count and whether this failure locked the key.
func (s *Service) acctRecordFailure(ctx context.Context, key string, now time.Time, window time.Duration, lockAt int, lockFor time.Duration) (int, bool, error) {
	prev, err := s.acctGetThrottle(ctx, key)
	if err != nil {
		return 0, false, err
	}
	t, err := s.store.RecordFailure(ctx, key, now, acctThrottleResetBefore(prev, now, window))
	if err != nil {
		return 0, false, storeError(err, "could not record the failed attempt")
	}
	if t.Failures < lockAt {
		return t.Failures, false, nil
	}
	if err := s.store.LockThrottle(ctx, key, now.Add(lockFor)); err != nil {
		return t.Failures, false, storeError(err, "could not record the failed attempt")
	}
	return t.Failures, true, nil
}

// acctClearThrottle forgets key's failures after a success.
func (s *Service) acctClearThrottle(ctx context.Context, key string) error {
	if err := s.store.ClearThrottle(ctx, key); err != nil && !thauth.IsNotFound(err) {
		return storeError(err, "could not record the sign-in")
	}
	return nil
}

// acctSigninWait returns how long a sign-in (or password re-check) for the normalized email
// from ip must wait; 0 when it may proceed.
func (s *Service) acctSigninWait(ctx context.Context, email, ip string, now time.Time) (time.Duration, error) {
	wait, err := s.acctThrottleWait(ctx, signinEmailKey(email), now, signinWindow, true)
	if err != nil {
		return 0, err
	}
	if ip != "" {
		w, err := s.acctThrottleWait(ctx, signinIPKey(ip), now, ipWindow, false)
		if err != nil {
			return 0, err
		}
		wait = max(wait, w)
	}
	return wait, nil
}

// acctRateLimited is the answer to a throttled attempt.
func acctRateLimited(what string, wait time.Duration) error {
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	e := thauth.Errorf(thauth.ERateLimited, "too many failed %s; try again in %d seconds", what, secs)
	e.RetryAfter = time.Duration(secs) * time.Second
	return e
}

// acctSigninThrottled records (audit and log) that an attempt for email from ci was refused
// because of a wait and returns the ERateLimited answer. accountID is "" when the email is
// not registered; it only decides who sees the record, never the answer.
func (s *Service) acctSigninThrottled(ctx context.Context, ci ClientInfo, email, accountID string, wait time.Duration) error {
	s.log.WarnContext(ctx, "sign-in refused: throttled", "email_hash", acctEmailLogID(email), "account_id", accountID,
		"ip", ci.IP, "retry_after_s", int64(wait/time.Second))
	if err := s.appendAudit(ctx, s.store, auditEvent{
		ActorType: thauth.ActorAnonymous, AccountID: accountID, Action: "auth.signin.throttled",
		Client: ci, Data: map[string]string{"email_hash": acctEmailLogID(email), "retry_after_s": fmt.Sprint(int64(wait / time.Second))},
	}); err != nil {
		return err
	}
	return acctRateLimited("sign-ins", wait)
}

// acctSigninFailed counts a failed password check for email from ci against both keys, locks
// what reached its limit (audited; the account, if any, is alerted by mail) and returns
// nil or a store error. reason goes to the audit record ("wrong_password", "unknown_email").
func (s *Service) acctSigninFailed(ctx context.Context, ci ClientInfo, email string, acct *thauth.Account, reason string) error {
	now := s.clock()
	accountID := ""
	if acct != nil {
		accountID = acct.ID
	}
	n, locked, err := s.acctRecordFailure(ctx, signinEmailKey(email), now, signinWindow, signinLockAt, signinLockFor)
	if err != nil {
		return err
	}
	ipLocked := false
	if ci.IP != "" {
		if _, ipLocked, err = s.acctRecordFailure(ctx, signinIPKey(ci.IP), now, ipWindow, ipLockAt, ipLockFor); err != nil {
			return err
		}
	}
	s.log.WarnContext(ctx, "sign-in failed", "email_hash", acctEmailLogID(email), "account_id", accountID,
		"ip", ci.IP, "reason", reason, "failures", n)
	mailed := false
	type lockEvent struct {
		ev  *thauth.SecurityEvent
		fan securityFanOut
	}
	var lockEvents []lockEvent
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		lockEvents = lockEvents[:0]
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAnonymous, AccountID: accountID, Action: "auth.signin.failed", Client: ci,
			Data: map[string]string{"reason": reason, "email_hash": acctEmailLogID(email), "failures": fmt.Sprint(n)},
		}); err != nil {
			return err
		}
		if locked {
			if err := s.appendAudit(ctx, tx, auditEvent{
				ActorType: thauth.ActorAnonymous, AccountID: accountID, Action: "auth.signin.locked", Client: ci,
				Data: map[string]string{"scope": "email", "email_hash": acctEmailLogID(email), "minutes": fmt.Sprint(int(signinLockFor / time.Minute))},
			}); err != nil {
				return err
			}
			if acct != nil {
				if err := s.acctSecurityAlert(ctx, tx, acct, "Sign-in to your account is locked",
					fmt.Sprintf("There were %d failed attempts to sign in to your account, the last from %s. Signing in is locked for %d minutes. If this was not you, your password held; consider changing it if it is used anywhere else.",
						n, acctOrUnknown(ci.IP), int(signinLockFor/time.Minute))); err != nil {
					return err
				}
				mailed = true
				// The lockout is a security event of every organization the account belongs to
				// (its owners and admins are alerted; webhooks receive it).
				orgs, err := tx.ListAccountOrganizations(ctx, acct.ID)
				if err != nil {
					return err
				}
				for _, om := range orgs {
					ev := &thauth.SecurityEvent{OrganizationID: om.Organization.ID, Kind: "signin_lockout",
						Severity: thauth.SeverityMedium, At: now,
						Title: fmt.Sprintf("Sign-in locked for member %s after %d failed attempts", acct.Email, n),
						Evidence: securityEvidenceJSON(map[string]string{"account_id": acct.ID, "ip": ci.IP, "failures": fmt.Sprint(n),
							"locked_minutes": fmt.Sprint(int(signinLockFor / time.Minute))})}
					fan, err := s.recordSecurityEventTx(ctx, tx, ev)
					if err != nil {
						return err
					}
					lockEvents = append(lockEvents, lockEvent{ev, fan})
				}
			}
		}
		if ipLocked {
			return s.appendAudit(ctx, tx, auditEvent{
				ActorType: thauth.ActorAnonymous, AccountID: accountID, Action: "auth.signin.locked", Client: ci,
				Data: map[string]string{"scope": "ip", "minutes": fmt.Sprint(int(ipLockFor / time.Minute))},
			})
		}
		return nil
	})
	if err != nil {
		return storeError(err, "could not record the failed sign-in")
	}
	if locked {
		s.log.WarnContext(ctx, "sign-in locked for an email address", "email_hash", acctEmailLogID(email), "account_id", accountID,
			"ip", ci.IP, "minutes", int(signinLockFor/time.Minute))
	}
	if ipLocked {
		s.log.WarnContext(ctx, "sign-in locked for a client IP", "ip", ci.IP, "minutes", int(ipLockFor/time.Minute))
	}
	if mailed {
		s.mailQueued()
	}
	for _, le := range lockEvents {
		s.securityRecorded(ctx, le.ev, le.fan)
	}
	return nil
}

// acctMfaWait returns how long the account's second factor is locked at now.
func (s *Service) acctMfaWait(ctx context.Context, accountID string, now time.Time) (time.Duration, error) {
	return s.acctThrottleWait(ctx, mfaKey(accountID), now, mfaWindow, false)
}

// acctMfaFailed counts a wrong second-factor code of acct and locks the factor at the limit
// (audited, alerted by mail). where names the operation for the audit record.
func (s *Service) acctMfaFailed(ctx context.Context, ci ClientInfo, acct *thauth.Account, where string) error {
	now := s.clock()
	n, locked, err := s.acctRecordFailure(ctx, mfaKey(acct.ID), now, mfaWindow, mfaLockAt, mfaLockFor)
	if err != nil {
		return err
	}
	s.log.WarnContext(ctx, "second-factor code refused", "account_id", acct.ID, "ip", ci.IP, "during", where, "failures", n)
	// At sign-in the second factor is what would authenticate the caller; elsewhere the
	// caller is the signed-in account re-proving its factor.
	typ, id := thauth.ActorAccount, acct.ID
	if where == "sign-in" {
		typ, id = thauth.ActorAnonymous, ""
	}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: typ, ActorID: id, AccountID: acct.ID, Action: "auth.mfa.failed", Client: ci,
			Data: map[string]string{"during": where, "failures": fmt.Sprint(n)},
		}); err != nil {
			return err
		}
		if !locked {
			return nil
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: typ, ActorID: id, AccountID: acct.ID, Action: "auth.mfa.locked", Client: ci,
			Data: map[string]string{"minutes": fmt.Sprint(int(mfaLockFor / time.Minute))},
		}); err != nil {
			return err
		}
		return s.acctSecurityAlert(ctx, tx, acct, "Two-factor codes locked",
			fmt.Sprintf("There were %d wrong two-factor codes for your account, the last from %s. Two-factor sign-in is locked for %d minutes. Someone who tries codes knows your password: change it.",
				n, acctOrUnknown(ci.IP), int(mfaLockFor/time.Minute)))
	})
	if err != nil {
		return storeError(err, "could not record the failed attempt")
	}
	if locked {
		s.log.WarnContext(ctx, "second factor locked", "account_id", acct.ID, "ip", ci.IP, "minutes", int(mfaLockFor/time.Minute))
		s.mailQueued()
	}
	return nil
}

// acctMailAllowed counts an unsolicited message to the normalized address and reports whether
// it is within mailPerHour. A refusal is logged, never reported to the caller (it would tell
// whether the address is registered).
func (s *Service) acctMailAllowed(ctx context.Context, email string) (bool, error) {
	now := s.clock()
	t, err := s.store.RecordFailure(ctx, mailKey(email), now, now.Add(-mailWindow))
	if err != nil {
		return false, storeError(err, "could not queue the email")
	}
	if t.Failures > mailPerHour {
		s.log.WarnContext(ctx, "unsolicited mail to an address dropped: hourly limit reached", "email_hash", acctEmailLogID(email), "limit", mailPerHour)
		return false, nil
	}
	return true, nil
}

func acctOrUnknown(s string) string {
	if s == "" {
		return "an unknown address"
	}
	return s
}
