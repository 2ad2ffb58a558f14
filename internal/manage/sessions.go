package manage

import (
	"context"
	"fmt"
	"time"

	"github.com/thauth/thauth"
)

// Sessions: sign-in, the session check of every console request, sign-out and the
// account's view of its sessions.
//
// A session token is 256 random bits (unpadded base64url) handed to the browser once, as a
// cookie; only its SHA-256 is stored, so a database leak yields no usable session. Every
// sign-in and every privilege change (second factor verified, enabled or disabled,
// password changed) creates a new session with a new id and token and revokes the old
// one, so a token planted or observed before the change (session fixation) is worthless
// after it. A session ends at the first of: revocation, its absolute lifetime
// (Options.SessionLifetime from sign-in) and its idle timeout (Options.SessionIdleTimeout
// since it was last seen).

// pendingMFATTL is how long a session whose password was verified may wait for its second
// factor.
const pendingMFATTL = 10 * time.Minute

// touchEvery is how often Authenticate writes LastSeenAt: at most once a minute, so that a
// busy session does not cost a write per request. The idle timeout is therefore measured
// with up to a minute of slack.
const touchEvery = time.Minute

// newSignInWindow is how far back a sign-in IP is remembered: a sign-in from an IP not seen
// in the account's sign-ins (or its sign-up or address verification) of the last 30 days
// mails a new_sign_in notice.
const newSignInWindow = 30 * 24 * time.Hour

// SignInResult is the outcome of a sign-in step or of a session rotation.
type SignInResult struct {
	Account     *thauth.Account
	Session     *thauth.Session
	Token       string // the new session token (set it as the cookie); "" when no session was created
	MFARequired bool   // the session is PendingMFA: complete with SignInMFA
}

// errBadCredentials answers a wrong password and an unknown address alike.
var errBadCredentials = thauth.Errorf(thauth.EUnauthenticated, "email or password is incorrect")

// errSessionEnded answers an unknown, revoked, expired or idle session.
var errSessionEnded = thauth.Errorf(thauth.EUnauthenticated, "your session has ended; sign in again")

// maxSessionToken bounds what is hashed for a session lookup (real tokens are 43 bytes).
const maxSessionToken = 128

// acctCreateSession stores a new session of acct for client ci and returns it with its
// token. pending marks a session waiting for its second factor, which lives at most
// pendingMFATTL.
func (s *Service) acctCreateSession(ctx context.Context, tx thauth.Data, acct *thauth.Account, ci ClientInfo, mfa, pending bool) (*SignInResult, error) {
	tok, hash, err := acctNewSecret()
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	now := s.clock()
	exp := now.Add(s.opts.SessionLifetime)
	if p := now.Add(pendingMFATTL); pending && p.Before(exp) {
		exp = p
	}
	se := &thauth.Session{
		ID: id, AccountID: acct.ID, TokenHash: hash, MFA: mfa, PendingMFA: pending,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: exp, IP: ci.IP, UserAgent: truncate(ci.UserAgent, 300),
	}
	if err := tx.CreateSession(ctx, se); err != nil {
		return nil, err
	}
	out := *se
	out.TokenHash = nil
	return &SignInResult{Account: acct, Session: &out, Token: tok, MFARequired: pending}, nil
}

// acctSessionLive reports whether se may still be used at now.
func (s *Service) acctSessionLive(se *thauth.Session, now time.Time) bool {
	return se.RevokedAt == nil && se.ExpiresAt.After(now) &&
		se.LastSeenAt.Add(s.opts.SessionIdleTimeout).After(now) &&
		(!se.PendingMFA || se.CreatedAt.Add(pendingMFATTL).After(now))
}

// acctNoticeSignIn queues a new_sign_in mail when ci's IP is not among those the account
// signed up, verified its address or signed in from in the last 30 days. Call it before
// recording the sign-in itself.
func (s *Service) acctNoticeSignIn(ctx context.Context, tx thauth.Data, acct *thauth.Account, ci ClientInfo) error {
	if ci.IP == "" {
		return nil
	}
	now := s.clock()
	since := now.Add(-newSignInWindow)
	for _, action := range []string{"auth.signin", "auth.signup", "auth.email.verified"} {
		list, err := tx.ListAudit(ctx, thauth.AuditFilter{AccountID: acct.ID, Action: action, Limit: 100})
		if err != nil {
			return err
		}
		for _, e := range list {
			if e.At.Before(since) {
				break
			}
			if e.IP == ci.IP {
				return nil
			}
		}
	}
	return s.enqueueMail(ctx, tx, acct.Email, MailNewSignIn, map[string]string{
		"name": acct.Name, "ip": ci.IP, "user_agent": truncate(ci.UserAgent, 300), "time": acctMailTime(now),
	})
}

// SignIn checks email and password and starts a session. With a second factor enabled the
// session is PendingMFA (MFARequired; complete it with SignInMFA within 10 minutes);
// otherwise it is a full session. A hash made with other argon2id parameters than the
// configured ones is replaced (transparent upgrade). A sign-in from an IP not seen in the
// last 30 days mails a new_sign_in notice.
//
// Errors: EInvalid for a malformed address; EUnauthenticated "email or password is
// incorrect" for a wrong password and an unknown address alike (the unknown address is
// checked against a dummy hash, so both take as long); ERateLimited with RetryAfter while
// the address or the client IP is throttled (see throttle.go; the password is then not
// checked at all); EForbidden "verify your email address first; we sent a new link" for
// the right password of an unverified address.
func (s *Service) SignIn(ctx context.Context, ci ClientInfo, email, password string) (*SignInResult, error) {
	email, err := acctNormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	wait, err := s.acctSigninWait(ctx, email, ci.IP, s.clock())
	if err != nil {
		return nil, err
	}
	acct, err := s.store.GetAccountByEmail(ctx, email)
	if thauth.IsNotFound(err) {
		acct, err = nil, nil
	}
	if err != nil {
		return nil, storeError(err, "could not sign in")
	}
	if wait > 0 {
		id := ""
		if acct != nil {
			id = acct.ID
		}
		return nil, s.acctSigninThrottled(ctx, ci, email, id, wait)
	}
	// Passwords longer than the policy allows (in bytes, at 4 per character) cannot be
	// right; they are refused without hashing megabytes.
	tooLong := len(password) > 4*MaxPasswordChars
	if acct == nil {
		if !tooLong {
			dummy, err := acctDummyHash(ctx, s.opts.Passwords)
			if err != nil {
				return nil, err
			}
			if _, _, err := acctVerifyPassword(ctx, password, dummy, s.opts.Passwords); err != nil {
				return nil, err
			}
		}
		if err := s.acctSigninFailed(ctx, ci, email, nil, "unknown_email"); err != nil {
			return nil, err
		}
		return nil, errBadCredentials
	}
	ok, upgrade := false, false
	if !tooLong {
		if ok, upgrade, err = acctVerifyPassword(ctx, password, acct.PasswordHash, s.opts.Passwords); err != nil {
			return nil, err
		}
	}
	if !ok {
		if err := s.acctSigninFailed(ctx, ci, email, acct, "wrong_password"); err != nil {
			return nil, err
		}
		return nil, errBadCredentials
	}
	if err := s.acctClearThrottle(ctx, signinEmailKey(email)); err != nil {
		return nil, err
	}
	if acct.EmailVerifiedAt == nil {
		return nil, s.acctUnverified(ctx, ci, acct)
	}
	newHash := ""
	if upgrade {
		if newHash, err = acctHashPassword(ctx, password, s.opts.Passwords); err != nil {
			return nil, err
		}
	}
	var res *SignInResult
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		cur, err := tx.GetAccount(ctx, acct.ID)
		if err != nil {
			return err
		}
		if newHash != "" && cur.PasswordHash == acct.PasswordHash {
			cur.PasswordHash = newHash
			if err := tx.UpdateAccount(ctx, cur); err != nil {
				return err
			}
		}
		pending := cur.MFAEnabled()
		if res, err = s.acctCreateSession(ctx, tx, cur, ci, false, pending); err != nil {
			return err
		}
		if pending {
			return nil // recorded when the second factor is verified
		}
		if err := s.acctNoticeSignIn(ctx, tx, cur, ci); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: cur.ID, AccountID: cur.ID, Action: "auth.signin", Client: ci,
			Data: map[string]string{"session_id": res.Session.ID, "method": "password"},
		})
	})
	if err != nil {
		return nil, storeError(err, "could not sign in")
	}
	if newHash != "" {
		s.log.InfoContext(ctx, "password hash upgraded to the configured parameters", "account_id", acct.ID)
	}
	s.log.InfoContext(ctx, "signed in", "account_id", acct.ID, "session_id", res.Session.ID, "ip", ci.IP, "mfa_required", res.MFARequired)
	s.mailQueued()
	return res, nil
}

// acctUnverified answers the right password of an unverified address: a new verification
// link is mailed (within the hourly mail limit) and the attempt is recorded.
func (s *Service) acctUnverified(ctx context.Context, ci ClientInfo, acct *thauth.Account) error {
	mayMail, err := s.acctMailAllowed(ctx, acct.Email)
	if err != nil {
		return err
	}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAnonymous, AccountID: acct.ID, Action: "auth.signin.failed", Client: ci,
			Data: map[string]string{"reason": "email_not_verified"},
		}); err != nil {
			return err
		}
		if !mayMail {
			return nil
		}
		return s.acctSendVerification(ctx, tx, acct)
	})
	if err != nil {
		return storeError(err, "could not sign in")
	}
	s.log.InfoContext(ctx, "sign-in refused: email not verified", "account_id", acct.ID, "ip", ci.IP)
	s.mailQueued()
	return thauth.Errorf(thauth.EForbidden, "verify your email address first; we sent a new link")
}

// acctSessionByToken finds the session of a token; errSessionEnded when there is none.
func (s *Service) acctSessionByToken(ctx context.Context, token string) (*thauth.Session, error) {
	if token == "" || len(token) > maxSessionToken {
		return nil, errSessionEnded
	}
	h := thauth.HashToken(token)
	se, err := s.store.GetSessionByHash(ctx, h[:])
	if thauth.IsNotFound(err) {
		return nil, errSessionEnded
	}
	if err != nil {
		return nil, storeError(err, "could not check the session")
	}
	return se, nil
}

// Authenticate returns the live session of sessionToken and its account, and records the
// use (LastSeenAt, written at most once a minute). PendingMFA sessions are returned too:
// the caller lets them do nothing but SignInMFA and SignOut. EUnauthenticated "your session
// has ended; sign in again" for an unknown, revoked, expired or idle session.
func (s *Service) Authenticate(ctx context.Context, sessionToken string) (*thauth.Session, *thauth.Account, error) {
	se, err := s.acctSessionByToken(ctx, sessionToken)
	if err != nil {
		return nil, nil, err
	}
	now := s.clock()
	if !s.acctSessionLive(se, now) {
		return nil, nil, errSessionEnded
	}
	acct, err := s.store.GetAccount(ctx, se.AccountID)
	if thauth.IsNotFound(err) {
		return nil, nil, errSessionEnded
	}
	if err != nil {
		return nil, nil, storeError(err, "could not check the session")
	}
	if now.Sub(se.LastSeenAt) >= touchEvery {
		if err := s.store.TouchSession(ctx, se.AccountID, se.ID, now); err != nil {
			return nil, nil, storeError(err, "could not check the session")
		}
		se.LastSeenAt = now
	}
	se.TokenHash = nil
	return se, acct, nil
}

// SignOut revokes the session of sessionToken. Signing out of a session that has already
// ended (or never existed) is not an error.
func (s *Service) SignOut(ctx context.Context, sessionToken string) error {
	se, err := s.acctSessionByToken(ctx, sessionToken)
	if err == errSessionEnded {
		return nil
	}
	if err != nil {
		return err
	}
	if se.RevokedAt != nil {
		return nil
	}
	now := s.clock()
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.RevokeSession(ctx, se.AccountID, se.ID, now); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: se.AccountID, AccountID: se.AccountID, Action: "auth.signout",
			Target: se.ID,
		})
	})
	if err != nil {
		return storeError(err, "could not sign out")
	}
	s.log.InfoContext(ctx, "signed out", "account_id", se.AccountID, "session_id", se.ID)
	return nil
}

// ListSessions returns the actor's live sessions (not revoked, expired or idle), newest
// first, sessions waiting for their second factor included.
func (s *Service) ListSessions(ctx context.Context, a Actor) ([]thauth.Session, error) {
	acct, err := s.acctOf(ctx, a)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	list, err := s.store.ListSessions(ctx, acct.ID, now)
	if err != nil {
		return nil, storeError(err, "could not list sessions")
	}
	out := make([]thauth.Session, 0, len(list))
	for _, se := range list {
		if s.acctSessionLive(&se, now) {
			se.TokenHash = nil
			out = append(out, se)
		}
	}
	return out, nil
}

// RevokeSession ends one of the actor's sessions (possibly the current one). ENotFound
// "session not found" for an id that is not one of the actor's sessions.
func (s *Service) RevokeSession(ctx context.Context, a Actor, sessionID string) error {
	if err := acctWritable(a); err != nil {
		return err
	}
	acct, err := s.acctOf(ctx, a)
	if err != nil {
		return err
	}
	now := s.clock()
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.RevokeSession(ctx, acct.ID, sessionID, now); err != nil {
			return err
		}
		typ, id := actorOf(a)
		return s.appendAudit(ctx, tx, auditEvent{
			ActorType: typ, ActorID: id, AccountID: acct.ID, Action: "session.revoked", Target: sessionID, Client: a.Client,
		})
	})
	if thauth.IsNotFound(err) {
		return thauth.Errorf(thauth.ENotFound, "session not found")
	}
	if err != nil {
		return storeError(err, "could not revoke the session")
	}
	s.log.InfoContext(ctx, "session revoked", "account_id", acct.ID, "session_id", sessionID)
	return nil
}

// RevokeAllSessions signs the actor out everywhere, the current session included, and
// returns how many sessions it ended.
func (s *Service) RevokeAllSessions(ctx context.Context, a Actor) (int, error) {
	if err := acctWritable(a); err != nil {
		return 0, err
	}
	acct, err := s.acctOf(ctx, a)
	if err != nil {
		return 0, err
	}
	now := s.clock()
	n := 0
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		var err error
		if n, err = tx.RevokeSessions(ctx, acct.ID, "", now); err != nil {
			return err
		}
		typ, id := actorOf(a)
		return s.appendAudit(ctx, tx, auditEvent{
			ActorType: typ, ActorID: id, AccountID: acct.ID, Action: "session.revoked_all", Client: a.Client,
			Data: map[string]string{"count": fmt.Sprint(n)},
		})
	})
	if err != nil {
		return 0, storeError(err, "could not revoke the sessions")
	}
	s.log.InfoContext(ctx, "all sessions revoked", "account_id", acct.ID, "count", n)
	return n, nil
}
