package manage

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// Accounts: sign-up, email verification, password reset, profile, password and email
// changes, and the account's own activity log.
//
// Threat model: every unauthenticated entry point (sign-up, resend, reset request, sign-in)
// is reachable by anyone and must not tell whether an address is registered, neither by its
// answer nor by a large difference in time (password hashing is done on both paths). Links
// sent by mail carry 256-bit single-use tokens, stored only as SHA-256, expiring, and a new
// link voids the older ones of the same purpose.

// The lifetimes of emailed links.
const (
	verifyTokenTTL = 24 * time.Hour
	resetTokenTTL  = time.Hour
	changeTokenTTL = 24 * time.Hour
)

const (
	maxEmailLen        = 254
	maxAccountNameChar = 100
	defaultActivity    = 50
	maxActivity        = 100
)

// errLinkUnusable answers every email link that is unknown, used, expired or no longer
// applicable, alike.
var errLinkUnusable = thauth.Errorf(thauth.EInvalid, "this link can no longer be used; request a new one")

// errSignInFirst answers an Actor without an account.
var errSignInFirst = thauth.Errorf(thauth.EUnauthenticated, "sign in first")

// acctNormalizeEmail trims and lower-cases an address and checks that it is one bare
// address (no display name, no angle brackets) of at most 254 characters.
func acctNormalizeEmail(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	if e == "" {
		return "", thauth.Errorf(thauth.EInvalid, "email is required")
	}
	if len(e) > maxEmailLen {
		return "", thauth.Errorf(thauth.EInvalid, "email must be at most %d characters", maxEmailLen)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
		return "", thauth.Errorf(thauth.EInvalid, "email is not a valid address")
	}
	return e, nil
}

// acctNewSecret returns a fresh 256-bit token (unpadded base64url) and its SHA-256.
func acctNewSecret() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, thauth.Internal(err, "could not generate a token")
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	h := thauth.HashToken(tok)
	return tok, h[:], nil
}

// acctMailTime formats a time for mails.
func acctMailTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// acctIssueEmailToken voids acct's unused tokens of purpose and stores a new one for email,
// valid for ttl; it returns the token for the link.
func (s *Service) acctIssueEmailToken(ctx context.Context, tx thauth.Data, acct *thauth.Account, purpose, email string, ttl time.Duration) (string, error) {
	if _, err := tx.DeleteEmailTokens(ctx, acct.ID, purpose); err != nil {
		return "", err
	}
	tok, hash, err := acctNewSecret()
	if err != nil {
		return "", err
	}
	id, err := newID()
	if err != nil {
		return "", err
	}
	now := s.clock()
	if err := tx.CreateEmailToken(ctx, &thauth.EmailToken{
		ID: id, AccountID: acct.ID, Purpose: purpose, TokenHash: hash, Email: email,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}); err != nil {
		return "", err
	}
	return tok, nil
}

// acctSendVerification queues a verification link for acct's current address.
func (s *Service) acctSendVerification(ctx context.Context, tx thauth.Data, acct *thauth.Account) error {
	tok, err := s.acctIssueEmailToken(ctx, tx, acct, thauth.EmailTokenVerify, acct.Email, verifyTokenTTL)
	if err != nil {
		return err
	}
	return s.enqueueMail(ctx, tx, acct.Email, MailVerifyEmail, map[string]string{
		"link": s.link("/verify-email", tok), "name": acct.Name, "purpose": "signup",
	})
}

// acctSecurityAlert queues a security_alert mail to acct's address.
func (s *Service) acctSecurityAlert(ctx context.Context, tx thauth.Data, acct *thauth.Account, title, detail string) error {
	return s.enqueueMail(ctx, tx, acct.Email, MailSecurityAlert, map[string]string{
		"name": acct.Name, "title": title, "detail": detail, "time": acctMailTime(s.clock()),
	})
}

// acctValidateName checks an account's display name: empty, or a label of at most 100
// characters.
func acctValidateName(name string) error {
	if name == "" {
		return nil
	}
	if msg := validateLabel(name, maxAccountNameChar); msg != "" {
		return thauth.Errorf(thauth.EInvalid, "name %s", msg)
	}
	return nil
}

// acctOf returns the account of a. A missing account (deleted while a credential was in
// flight) is EUnauthenticated, like a missing credential.
func (s *Service) acctOf(ctx context.Context, a Actor) (*thauth.Account, error) {
	if a.AccountID == "" || a.Via == ViaCLI {
		return nil, errSignInFirst
	}
	acct, err := s.store.GetAccount(ctx, a.AccountID)
	if thauth.IsNotFound(err) {
		return nil, errSignInFirst
	}
	if err != nil {
		return nil, storeError(err, "could not load the account")
	}
	return acct, nil
}

// acctWritable refuses a write through a read-only access token. The HTTP layer checks
// scopes per route too; this keeps the rule where the write happens.
func acctWritable(a Actor) error {
	if a.Via == ViaToken && !slices.Contains(a.Scopes, thauth.TokenScopeWrite) {
		return thauth.Errorf(thauth.EForbidden, "this access token is read-only (scope %q needed)", thauth.TokenScopeWrite)
	}
	return nil
}

// acctSessionActor checks that a acts through a live, fully signed-in browser session of
// its account (not an access token, not a session still waiting for its second factor) and
// returns the account and the session. Credential management (password, email, second
// factor, access tokens) needs it: a leaked access token must not be able to take the
// account over.
func (s *Service) acctSessionActor(ctx context.Context, a Actor) (*thauth.Account, *thauth.Session, error) {
	acct, err := s.acctOf(ctx, a)
	if err != nil {
		return nil, nil, err
	}
	if a.Via != ViaSession || a.SessionID == "" {
		return nil, nil, thauth.Errorf(thauth.EForbidden, "this needs a signed-in browser session, not an access token")
	}
	now := s.clock()
	list, err := s.store.ListSessions(ctx, acct.ID, now)
	if err != nil {
		return nil, nil, storeError(err, "could not load the session")
	}
	for i := range list {
		se := &list[i]
		if se.ID != a.SessionID {
			continue
		}
		if se.PendingMFA {
			return nil, nil, thauth.Errorf(thauth.EForbidden, "complete the two-factor sign-in first")
		}
		if !se.LastSeenAt.Add(s.opts.SessionIdleTimeout).After(now) {
			break
		}
		return acct, se, nil
	}
	return nil, nil, errSessionEnded
}

// acctCheckPassword verifies the current password of a signed-in account before a
// sensitive change. Wrong passwords count against the same per-address throttle as
// sign-ins, so a stolen session cannot be used to guess the password faster.
func (s *Service) acctCheckPassword(ctx context.Context, ci ClientInfo, acct *thauth.Account, password string) error {
	if wait, err := s.acctSigninWait(ctx, acct.Email, ci.IP, s.clock()); err != nil {
		return err
	} else if wait > 0 {
		return s.acctSigninThrottled(ctx, ci, acct.Email, acct.ID, wait)
	}
	ok, _, err := acctVerifyPassword(ctx, password, acct.PasswordHash, s.opts.Passwords)
	if err != nil {
		return err
	}
	if !ok {
		if err := s.acctSigninFailed(ctx, ci, acct.Email, acct, "wrong_current_password"); err != nil {
			return err
		}
		return thauth.Errorf(thauth.EForbidden, "the current password is incorrect")
	}
	return nil
}

// SignUp creates an account for email with password and name (optional, at most 100
// characters) and mails a verification link (valid 24 hours); the account cannot sign in
// until the address is verified. When email is already registered nothing is created:
// that address gets a security_alert mail instead (audited as auth.signup.existing), and
// SignUp answers nil all the same, so that the answer does not tell which addresses are
// registered. Errors: EInvalid for a malformed email, a name that is too long, or a
// password that breaks the policy (the message names the rule); never for an existing
// address.
func (s *Service) SignUp(ctx context.Context, ci ClientInfo, email, password, name string) error {
	email, err := acctNormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := acctValidateName(name); err != nil {
		return err
	}
	if msg := acctCheckPasswordPolicy(password, email); msg != "" {
		return thauth.Errorf(thauth.EInvalid, "%s", msg)
	}
	// Hash on both paths: the time taken must not depend on whether the address exists.
	hash, err := acctHashPassword(ctx, password, s.opts.Passwords)
	if err != nil {
		return err
	}
	mayMail, err := s.acctMailAllowed(ctx, email)
	if err != nil {
		return err
	}
	id, err := newID()
	if err != nil {
		return err
	}
	now := s.clock()
	existingID := ""
	created := false
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		existingID, created = "", false
		existing, err := tx.GetAccountByEmail(ctx, email)
		if err == nil {
			existingID = existing.ID
			if err := s.appendAudit(ctx, tx, auditEvent{
				ActorType: thauth.ActorAnonymous, AccountID: existing.ID, Action: "auth.signup.existing", Client: ci,
			}); err != nil {
				return err
			}
			if !mayMail {
				return nil
			}
			return s.acctSecurityAlert(ctx, tx, existing, "Someone tried to sign up with your address",
				fmt.Sprintf("Someone (from %s) tried to create a new Thauth account with this email address, which already has an account. Nothing was changed. If it was you, sign in instead, or reset your password if you forgot it.", acctOrUnknown(ci.IP)))
		}
		if !thauth.IsNotFound(err) {
			return err
		}
		acct := &thauth.Account{ID: id, Email: email, Name: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateAccount(ctx, acct); err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAnonymous, AccountID: acct.ID, Action: "auth.signup", Client: ci,
		}); err != nil {
			return err
		}
		created = true
		if !mayMail {
			return nil
		}
		return s.acctSendVerification(ctx, tx, acct)
	})
	if thauth.ErrorCodeOf(err) == thauth.EConflict {
		// A concurrent sign-up took the address between the lookup and the insert: answer
		// as for any registered address.
		s.log.InfoContext(ctx, "sign-up raced another for the same address", "email_hash", acctEmailLogID(email))
		return nil
	}
	if err != nil {
		return storeError(err, "could not create the account")
	}
	if created {
		s.log.InfoContext(ctx, "account signed up", "account_id", id, "ip", ci.IP)
	} else {
		s.log.InfoContext(ctx, "sign-up for a registered address", "account_id", existingID, "ip", ci.IP)
	}
	s.mailQueued()
	return nil
}

// ResendVerification mails a new verification link (voiding the older ones) when email
// belongs to an account whose address is not verified yet; otherwise it does nothing.
// It answers nil for every well-formed address, registered or not. EInvalid for a
// malformed address.
func (s *Service) ResendVerification(ctx context.Context, ci ClientInfo, email string) error {
	email, err := acctNormalizeEmail(email)
	if err != nil {
		return err
	}
	acct, err := s.store.GetAccountByEmail(ctx, email)
	if thauth.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return storeError(err, "could not send the link")
	}
	if acct.EmailVerifiedAt != nil {
		return nil
	}
	if ok, err := s.acctMailAllowed(ctx, email); err != nil || !ok {
		return err
	}
	if err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		return s.acctSendVerification(ctx, tx, acct)
	}); err != nil {
		return storeError(err, "could not send the link")
	}
	s.log.InfoContext(ctx, "verification link sent again", "account_id", acct.ID, "ip", ci.IP)
	s.mailQueued()
	return nil
}

// VerifyEmail consumes the token of a verification link: a sign-up verification marks the
// account's address verified; an email-change confirmation makes the new address the
// account's (verified). Each link works once, within its lifetime (24 hours), and only
// while it still applies (a verification link for an address the account no longer has
// does not). Any unusable link — unknown, used, expired, superseded, or a new address taken
// meanwhile — is EInvalid "this link can no longer be used; request a new one".
func (s *Service) VerifyEmail(ctx context.Context, ci ClientInfo, token string) error {
	if token == "" || len(token) > 128 {
		return errLinkUnusable
	}
	h := thauth.HashToken(token)
	now := s.clock()
	var acct *thauth.Account
	action := ""
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		purpose := thauth.EmailTokenVerify
		t, err := tx.ConsumeEmailToken(ctx, purpose, h[:], now)
		if thauth.IsNotFound(err) {
			purpose = thauth.EmailTokenChange
			t, err = tx.ConsumeEmailToken(ctx, purpose, h[:], now)
		}
		if thauth.IsNotFound(err) {
			return errLinkUnusable
		}
		if err != nil {
			return err
		}
		acct, err = tx.GetAccount(ctx, t.AccountID)
		if thauth.IsNotFound(err) {
			return errLinkUnusable
		}
		if err != nil {
			return err
		}
		data := map[string]string{}
		if purpose == thauth.EmailTokenVerify {
			if t.Email != acct.Email {
				return errLinkUnusable
			}
			action = "auth.email.verified"
			if acct.EmailVerifiedAt == nil {
				acct.EmailVerifiedAt = &now
			}
		} else {
			action = "account.email.changed"
			data["email"] = t.Email
			acct.Email = t.Email
			acct.EmailVerifiedAt = &now
			// Links sent to the old address must not act on the account any more.
			for _, p := range []string{thauth.EmailTokenVerify, thauth.EmailTokenReset} {
				if _, err := tx.DeleteEmailTokens(ctx, acct.ID, p); err != nil {
					return err
				}
			}
		}
		acct.UpdatedAt = now
		if err := tx.UpdateAccount(ctx, acct); err != nil {
			if thauth.ErrorCodeOf(err) == thauth.EConflict {
				return errLinkUnusable
			}
			return err
		}
		return s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAnonymous, AccountID: acct.ID, Action: action, Client: ci, Data: data,
		})
	})
	if err != nil {
		if err == errLinkUnusable {
			s.log.InfoContext(ctx, "email link refused", "ip", ci.IP)
		}
		return storeError(err, "could not verify the email address")
	}
	s.log.InfoContext(ctx, "email address verified", "account_id", acct.ID, "action", action)
	return nil
}

// RequestPasswordReset mails a password-reset link (valid 1 hour; voiding older ones) when
// email is registered, and does nothing otherwise; it answers nil for every well-formed
// address. EInvalid for a malformed address.
func (s *Service) RequestPasswordReset(ctx context.Context, ci ClientInfo, email string) error {
	email, err := acctNormalizeEmail(email)
	if err != nil {
		return err
	}
	acct, err := s.store.GetAccountByEmail(ctx, email)
	if thauth.IsNotFound(err) {
		s.log.InfoContext(ctx, "password reset requested for an unknown address", "email_hash", acctEmailLogID(email), "ip", ci.IP)
		return nil
	}
	if err != nil {
		return storeError(err, "could not send the link")
	}
	mayMail, err := s.acctMailAllowed(ctx, email)
	if err != nil {
		return err
	}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAnonymous, AccountID: acct.ID, Action: "auth.password.reset_requested", Client: ci,
		}); err != nil {
			return err
		}
		if !mayMail {
			return nil
		}
		tok, err := s.acctIssueEmailToken(ctx, tx, acct, thauth.EmailTokenReset, acct.Email, resetTokenTTL)
		if err != nil {
			return err
		}
		return s.enqueueMail(ctx, tx, acct.Email, MailPasswordReset, map[string]string{
			"link": s.link("/reset-password", tok), "name": acct.Name,
		})
	})
	if err != nil {
		return storeError(err, "could not send the link")
	}
	s.log.InfoContext(ctx, "password reset requested", "account_id", acct.ID, "ip", ci.IP)
	s.mailQueued()
	return nil
}

// ResetPassword sets a new password with the token of a reset link (single use, 1 hour).
// It revokes every session of the account, clears the sign-in throttle of its address (a
// locked-out owner can get back in), marks the address verified (the link proved control
// of it) and sends a security_alert mail. Errors: EInvalid for a password that breaks the
// policy (the link stays usable) or an unusable link.
func (s *Service) ResetPassword(ctx context.Context, ci ClientInfo, token, newPassword string) error {
	if token == "" || len(token) > 128 {
		return errLinkUnusable
	}
	if msg := acctCheckPasswordPolicy(newPassword, ""); msg != "" {
		return thauth.Errorf(thauth.EInvalid, "%s", msg)
	}
	hash, err := acctHashPassword(ctx, newPassword, s.opts.Passwords)
	if err != nil {
		return err
	}
	h := thauth.HashToken(token)
	now := s.clock()
	var acct *thauth.Account
	revoked := 0
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		t, err := tx.ConsumeEmailToken(ctx, thauth.EmailTokenReset, h[:], now)
		if thauth.IsNotFound(err) {
			return errLinkUnusable
		}
		if err != nil {
			return err
		}
		if acct, err = tx.GetAccount(ctx, t.AccountID); thauth.IsNotFound(err) {
			return errLinkUnusable
		} else if err != nil {
			return err
		}
		if t.Email != acct.Email {
			return errLinkUnusable
		}
		if msg := acctCheckPasswordPolicy(newPassword, acct.Email); msg != "" {
			return thauth.Errorf(thauth.EInvalid, "%s", msg) // rolls back: the link stays usable
		}
		acct.PasswordHash = hash
		if acct.EmailVerifiedAt == nil {
			acct.EmailVerifiedAt = &now
		}
		acct.UpdatedAt = now
		if err := tx.UpdateAccount(ctx, acct); err != nil {
			return err
		}
		if revoked, err = tx.RevokeSessions(ctx, acct.ID, "", now); err != nil {
			return err
		}
		if _, err := tx.DeleteEmailTokens(ctx, acct.ID, thauth.EmailTokenReset); err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAnonymous, AccountID: acct.ID, Action: "auth.password.reset", Client: ci,
			Data: map[string]string{"sessions_revoked": fmt.Sprint(revoked)},
		}); err != nil {
			return err
		}
		return s.acctSecurityAlert(ctx, tx, acct, "Your password was reset",
			fmt.Sprintf("The password of your Thauth account was reset through an emailed link (from %s), and every session was signed out. If this was not you, reset it again at once and check your account's activity.", acctOrUnknown(ci.IP)))
	})
	if err != nil {
		return storeError(err, "could not reset the password")
	}
	if err := s.acctClearThrottle(ctx, signinEmailKey(acct.Email)); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "password reset", "account_id", acct.ID, "ip", ci.IP, "sessions_revoked", revoked)
	s.mailQueued()
	return nil
}

// GetAccount returns the actor's account. EUnauthenticated when the actor has none.
func (s *Service) GetAccount(ctx context.Context, a Actor) (*thauth.Account, error) {
	return s.acctOf(ctx, a)
}

// UpdateAccount sets the actor's display name ("" or 1–100 characters). Errors: EInvalid
// for a bad name, EForbidden through a read-only token.
func (s *Service) UpdateAccount(ctx context.Context, a Actor, name string) (*thauth.Account, error) {
	if err := acctWritable(a); err != nil {
		return nil, err
	}
	if err := acctValidateName(name); err != nil {
		return nil, err
	}
	if _, err := s.acctOf(ctx, a); err != nil {
		return nil, err
	}
	now := s.clock()
	var acct *thauth.Account
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		var err error
		if acct, err = tx.GetAccount(ctx, a.AccountID); err != nil {
			return err
		}
		if acct.Name == name {
			return nil
		}
		acct.Name, acct.UpdatedAt = name, now
		if err := tx.UpdateAccount(ctx, acct); err != nil {
			return err
		}
		typ, id := actorOf(a)
		return s.appendAudit(ctx, tx, auditEvent{ActorType: typ, ActorID: id, AccountID: acct.ID, Action: "account.updated", Client: a.Client,
			Data: map[string]string{"fields": "name"}})
	})
	if err != nil {
		return nil, storeError(err, "could not update the account")
	}
	return acct, nil
}

// ChangePassword replaces the actor's password after checking the current one (wrong
// guesses count against the sign-in throttle). Every session of the account is revoked,
// the caller's included, and the caller gets a new one (a new session id after a
// privilege change); a security_alert mail is sent. Browser sessions only. Errors:
// EForbidden for a wrong current password or a non-session actor, EInvalid for a new
// password that breaks the policy, ERateLimited while throttled.
func (s *Service) ChangePassword(ctx context.Context, a Actor, current, next string) (*SignInResult, error) {
	acct, se, err := s.acctSessionActor(ctx, a)
	if err != nil {
		return nil, err
	}
	if msg := acctCheckPasswordPolicy(next, acct.Email); msg != "" {
		return nil, thauth.Errorf(thauth.EInvalid, "%s", msg)
	}
	if err := s.acctCheckPassword(ctx, a.Client, acct, current); err != nil {
		return nil, err
	}
	hash, err := acctHashPassword(ctx, next, s.opts.Passwords)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	var res *SignInResult
	revoked := 0
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		cur, err := tx.GetAccount(ctx, acct.ID)
		if err != nil {
			return err
		}
		if cur.PasswordHash != acct.PasswordHash {
			return thauth.Errorf(thauth.EConflict, "the password was changed meanwhile; sign in again")
		}
		cur.PasswordHash, cur.UpdatedAt = hash, now
		if err := tx.UpdateAccount(ctx, cur); err != nil {
			return err
		}
		if revoked, err = tx.RevokeSessions(ctx, cur.ID, "", now); err != nil {
			return err
		}
		if _, err := tx.DeleteEmailTokens(ctx, cur.ID, thauth.EmailTokenReset); err != nil {
			return err
		}
		if res, err = s.acctCreateSession(ctx, tx, cur, a.Client, se.MFA, false); err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: cur.ID, AccountID: cur.ID, Action: "account.password.changed", Client: a.Client,
			Data: map[string]string{"sessions_revoked": fmt.Sprint(revoked), "session_id": res.Session.ID},
		}); err != nil {
			return err
		}
		return s.acctSecurityAlert(ctx, tx, cur, "Your password was changed",
			fmt.Sprintf("The password of your Thauth account was changed (from %s) and every other session was signed out. If this was not you, reset your password at once.", acctOrUnknown(a.Client.IP)))
	})
	if err != nil {
		return nil, storeError(err, "could not change the password")
	}
	s.log.InfoContext(ctx, "password changed", "account_id", acct.ID, "sessions_revoked", revoked, "session_id", res.Session.ID)
	s.mailQueued()
	return res, nil
}

// ChangeEmail starts a change of the actor's address to newEmail: after checking the
// password it mails a confirmation link (valid 24 hours) to the new address and a
// security_alert to the current one; the address changes when the link is used
// (VerifyEmail). Whether newEmail is taken is not revealed here: confirming then fails
// with the generic link error. Browser sessions only. Errors: EInvalid for a malformed or
// unchanged address, EForbidden for a wrong password, ERateLimited while throttled.
func (s *Service) ChangeEmail(ctx context.Context, a Actor, password, newEmail string) error {
	acct, _, err := s.acctSessionActor(ctx, a)
	if err != nil {
		return err
	}
	newEmail, err = acctNormalizeEmail(newEmail)
	if err != nil {
		return err
	}
	if newEmail == acct.Email {
		return thauth.Errorf(thauth.EInvalid, "that is already your email address")
	}
	if err := s.acctCheckPassword(ctx, a.Client, acct, password); err != nil {
		return err
	}
	mayMail, err := s.acctMailAllowed(ctx, newEmail)
	if err != nil {
		return err
	}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: acct.ID, AccountID: acct.ID, Action: "account.email.change_requested", Client: a.Client,
			Data: map[string]string{"email": newEmail},
		}); err != nil {
			return err
		}
		if err := s.acctSecurityAlert(ctx, tx, acct, "A change of your email address was requested",
			fmt.Sprintf("Someone signed in to your Thauth account (from %s) asked to change its email address to %s. It changes only when the link sent there is used. If this was not you, change your password and sign out everywhere.", acctOrUnknown(a.Client.IP), newEmail)); err != nil {
			return err
		}
		if !mayMail {
			return nil
		}
		tok, err := s.acctIssueEmailToken(ctx, tx, acct, thauth.EmailTokenChange, newEmail, changeTokenTTL)
		if err != nil {
			return err
		}
		return s.enqueueMail(ctx, tx, newEmail, MailVerifyEmail, map[string]string{
			"link": s.link("/verify-email", tok), "name": acct.Name, "purpose": "change",
		})
	})
	if err != nil {
		return storeError(err, "could not start the email change")
	}
	s.log.InfoContext(ctx, "email change requested", "account_id", acct.ID, "new_email_hash", acctEmailLogID(newEmail))
	s.mailQueued()
	return nil
}

// AccountActivity returns the actor's own audit entries (sign-ins, failures and locks,
// sessions, tokens, password, email and second-factor changes), newest first: limit of
// them (1–100, 0 meaning 50), only those with a sequence number below before when before
// > 0 (the cursor: the Seq of the last entry of the previous page). EInvalid for a limit
// out of range.
func (s *Service) AccountActivity(ctx context.Context, a Actor, before int64, limit int) ([]thauth.AuditEntry, error) {
	if limit == 0 {
		limit = defaultActivity
	}
	if limit < 1 || limit > maxActivity {
		return nil, thauth.Errorf(thauth.EInvalid, "limit must be between 1 and %d", maxActivity)
	}
	if before < 0 {
		return nil, thauth.Errorf(thauth.EInvalid, "before must not be negative")
	}
	acct, err := s.acctOf(ctx, a)
	if err != nil {
		return nil, err
	}
	list, err := s.store.ListAudit(ctx, thauth.AuditFilter{AccountID: acct.ID, Before: before, Limit: limit})
	if err != nil {
		return nil, storeError(err, "could not list the account's activity")
	}
	if list == nil {
		list = []thauth.AuditEntry{}
	}
	return list, nil
}
