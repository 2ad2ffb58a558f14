package manage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/thauth/thauth"
)

// Second factor: TOTP (RFC 6238) with single-use recovery codes.
//
// The TOTP secret is sealed (Options.Sealer, purpose "totp", row id = account id) because
// it must be read back to check codes. A code is accepted at most once: the matched time
// step only moves forward (AccountStore.AdvanceTOTPStep), so neither the same code nor an
// older one still inside the skew window works again. Recovery codes are 80 random bits,
// shown once, stored as SHA-256 and marked used atomically. Wrong codes are throttled per
// account (throttle.go). Enabling or disabling the factor rotates the caller's session.

// totpSealPurpose is the seal purpose of TOTP secrets.
const totpSealPurpose = "totp"

// recoveryCodeCount is how many recovery codes an account gets.
const recoveryCodeCount = 10

// recoveryEncoding spells recovery codes: lower-case base32 without padding (no 0/1/8/9,
// which are easily confused), 16 characters for 80 bits.
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// errBadCode is returned inside transactions for a wrong, replayed or used code; the caller
// counts the failure after the rollback.
var errBadCode = errors.New("bad second-factor code")

// TOTPEnrollment is a started TOTP enrolment: the secret (for manual entry), its otpauth://
// URI and a PNG QR code of the URI. Show it once; it is confirmed with ConfirmTOTP.
type TOTPEnrollment struct {
	Secret    string `json:"secret"`
	URI       string `json:"uri"`
	QRCodePNG []byte `json:"qr_code_png"`
}

// acctNewRecoveryCodes returns fresh recovery codes (xxxx-xxxx-xxxx-xxxx) and their hashes.
func acctNewRecoveryCodes() ([]string, [][]byte, error) {
	codes := make([]string, recoveryCodeCount)
	hashes := make([][]byte, recoveryCodeCount)
	for i := range codes {
		b := make([]byte, 10)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, thauth.Internal(err, "could not generate recovery codes")
		}
		c := recoveryEncoding.EncodeToString(b)
		codes[i] = c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
		h := sha256.Sum256([]byte(c))
		hashes[i] = h[:]
	}
	return codes, hashes, nil
}

// acctCodeKind tells a TOTP code from a recovery code by its shape (spaces and dashes
// ignored, case-insensitive) and returns it normalized: "totp" for six digits, "recovery"
// for 16 base32 characters, "" for anything else.
func acctCodeKind(code string) (kind, norm string) {
	c := strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(code)))
	if len(c) == 6 && strings.Trim(c, "0123456789") == "" {
		return "totp", c
	}
	if len(c) == 16 {
		if _, err := recoveryEncoding.DecodeString(c); err == nil {
			return "recovery", c
		}
	}
	return "", c
}

// acctTOTPReady checks that the node can do TOTP at all.
func (s *Service) acctTOTPReady() error {
	if s.opts.Sealer == nil {
		return errNoSealer
	}
	if s.opts.TOTP == nil {
		return thauth.Errorf(thauth.EUnavailable, "two-factor authentication is not configured on this server")
	}
	return nil
}

// acctOpenTOTP unseals a stored TOTP secret of acct.
func (s *Service) acctOpenTOTP(ctx context.Context, acct *thauth.Account, sealed string) (string, error) {
	if err := s.acctTOTPReady(); err != nil {
		return "", err
	}
	b, err := s.opts.Sealer.Open(ctx, totpSealPurpose, acct.ID, sealed)
	if err != nil {
		return "", thauth.Internal(err, "could not read the two-factor secret")
	}
	return string(b), nil
}

// acctUseCode checks code against acct's second factor inside tx and consumes it: a TOTP
// code moves the account's last accepted step forward, a recovery code (when allowed) is
// marked used. It returns the kind used, or errBadCode.
func (s *Service) acctUseCode(ctx context.Context, tx thauth.Data, acct *thauth.Account, secret, code string, allowRecovery bool) (string, error) {
	kind, c := acctCodeKind(code)
	now := s.clock()
	switch {
	case kind == "totp":
		step, ok := s.opts.TOTP.Validate(secret, c, now)
		if !ok {
			return "", errBadCode
		}
		advanced, err := tx.AdvanceTOTPStep(ctx, acct.ID, step)
		if err != nil {
			return "", err
		}
		if !advanced {
			return "", errBadCode // replay: this step or a later one was accepted before
		}
		return kind, nil
	case kind == "recovery" && allowRecovery:
		h := sha256.Sum256([]byte(c))
		used, err := tx.UseRecoveryCode(ctx, acct.ID, h[:], now)
		if err != nil {
			return "", err
		}
		if !used {
			return "", errBadCode
		}
		return kind, nil
	}
	return "", errBadCode
}

// acctCodeError turns a transaction's errBadCode into a counted failure and the caller's
// answer; other errors pass through.
func (s *Service) acctCodeError(ctx context.Context, ci ClientInfo, acct *thauth.Account, where string, err error, code thauth.ErrorCode) error {
	if !errors.Is(err, errBadCode) {
		return storeError(err, "could not check the code")
	}
	if err := s.acctMfaFailed(ctx, ci, acct, where); err != nil {
		return err
	}
	return thauth.Errorf(code, "the code is incorrect or was already used")
}

// acctMFAWait refuses while acct's second factor is locked.
func (s *Service) acctMFAWait(ctx context.Context, ci ClientInfo, acct *thauth.Account) error {
	wait, err := s.acctMfaWait(ctx, acct.ID, s.clock())
	if err != nil {
		return err
	}
	if wait > 0 {
		s.log.WarnContext(ctx, "second-factor attempt refused: locked", "account_id", acct.ID, "ip", ci.IP)
		return acctRateLimited("two-factor codes", wait)
	}
	return nil
}

// acctMFAMail queues an mfa_changed mail.
func (s *Service) acctMFAMail(ctx context.Context, tx thauth.Data, acct *thauth.Account, change string) error {
	return s.enqueueMail(ctx, tx, acct.Email, MailMFAChanged, map[string]string{
		"name": acct.Name, "change": change, "time": acctMailTime(s.clock()),
	})
}

// SignInMFA completes a sign-in whose session is PendingMFA with a TOTP code or a recovery
// code. On success the pending session is revoked and a new full session (new id and
// token, MFA set) is returned. Using a recovery code mails an mfa_changed notice.
// Errors: EUnauthenticated "your session has ended; sign in again" when the session is not
// a pending one or is older than 10 minutes; EUnauthenticated "the code is incorrect or
// was already used" (counted; 5 within 15 minutes lock the factor); ERateLimited while
// locked.
func (s *Service) SignInMFA(ctx context.Context, ci ClientInfo, sessionToken, code string) (*SignInResult, error) {
	se, err := s.acctSessionByToken(ctx, sessionToken)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	if !se.PendingMFA || !s.acctSessionLive(se, now) {
		return nil, errSessionEnded
	}
	acct, err := s.store.GetAccount(ctx, se.AccountID)
	if thauth.IsNotFound(err) {
		return nil, errSessionEnded
	}
	if err != nil {
		return nil, storeError(err, "could not sign in")
	}
	if !acct.MFAEnabled() {
		return nil, errSessionEnded
	}
	if err := s.acctMFAWait(ctx, ci, acct); err != nil {
		return nil, err
	}
	secret, err := s.acctOpenTOTP(ctx, acct, acct.TOTPSecret)
	if err != nil {
		return nil, err
	}
	var res *SignInResult
	kind := ""
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		// Re-read under the transaction: two completions of one pending session must not
		// both succeed.
		cur, err := tx.GetSessionByHash(ctx, se.TokenHash)
		if err != nil {
			return err
		}
		if cur.RevokedAt != nil {
			return errSessionEnded
		}
		if kind, err = s.acctUseCode(ctx, tx, acct, secret, code, true); err != nil {
			return err
		}
		if err := tx.RevokeSession(ctx, acct.ID, se.ID, now); err != nil {
			return err
		}
		if res, err = s.acctCreateSession(ctx, tx, acct, ci, true, false); err != nil {
			return err
		}
		if err := s.acctNoticeSignIn(ctx, tx, acct, ci); err != nil {
			return err
		}
		method := "password+totp"
		if kind == "recovery" {
			method = "password+recovery_code"
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: acct.ID, AccountID: acct.ID, Action: "auth.signin", Client: ci,
			Data: map[string]string{"session_id": res.Session.ID, "method": method},
		}); err != nil {
			return err
		}
		if kind != "recovery" {
			return nil
		}
		left, err := tx.CountRecoveryCodes(ctx, acct.ID)
		if err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: acct.ID, AccountID: acct.ID, Action: "account.mfa.recovery_code_used", Client: ci,
			Data: map[string]string{"codes_left": fmt.Sprint(left)},
		}); err != nil {
			return err
		}
		return s.acctMFAMail(ctx, tx, acct, "recovery code used")
	})
	if err != nil {
		return nil, s.acctCodeError(ctx, ci, acct, "sign-in", err, thauth.EUnauthenticated)
	}
	if err := s.acctClearThrottle(ctx, mfaKey(acct.ID)); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "signed in with a second factor", "account_id", acct.ID, "session_id", res.Session.ID,
		"replaced_session_id", se.ID, "factor", kind, "ip", ci.IP)
	s.mailQueued()
	return res, nil
}

// EnrollTOTP starts a TOTP enrolment for the actor: a new secret is generated and stored
// sealed as pending (replacing an unconfirmed one); it takes effect with ConfirmTOTP.
// Browser sessions only. Errors: EConflict when two-factor authentication is already on,
// EUnavailable when the node has no master key or no TOTP support.
func (s *Service) EnrollTOTP(ctx context.Context, a Actor) (*TOTPEnrollment, error) {
	acct, _, err := s.acctSessionActor(ctx, a)
	if err != nil {
		return nil, err
	}
	if acct.MFAEnabled() {
		return nil, thauth.Errorf(thauth.EConflict, "two-factor authentication is already enabled")
	}
	if err := s.acctTOTPReady(); err != nil {
		return nil, err
	}
	secret, uri, png, err := s.opts.TOTP.Generate(acct.Email)
	if err != nil {
		return nil, thauth.Internal(err, "could not generate a two-factor secret")
	}
	sealed, err := s.opts.Sealer.Seal(totpSealPurpose, acct.ID, []byte(secret))
	if err != nil {
		return nil, thauth.Internal(err, "could not store the two-factor secret")
	}
	now := s.clock()
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		cur, err := tx.GetAccount(ctx, acct.ID)
		if err != nil {
			return err
		}
		if cur.MFAEnabled() {
			return thauth.Errorf(thauth.EConflict, "two-factor authentication is already enabled")
		}
		cur.TOTPPending, cur.UpdatedAt = sealed, now
		return tx.UpdateAccount(ctx, cur)
	})
	if err != nil {
		return nil, storeError(err, "could not start the two-factor enrolment")
	}
	s.log.InfoContext(ctx, "two-factor enrolment started", "account_id", acct.ID)
	return &TOTPEnrollment{Secret: secret, URI: uri, QRCodePNG: png}, nil
}

// ConfirmTOTP turns on the enrolment started by EnrollTOTP when code is valid for the new
// secret (the code cannot be used again). It returns ten recovery codes (shown only now)
// and a new session for the caller, which replaces the current one and carries MFA;
// an mfa_changed mail is sent. Browser sessions only. Errors: EConflict when already on or
// nothing is pending; EInvalid "the code is incorrect or was already used" (counted);
// ERateLimited while locked.
func (s *Service) ConfirmTOTP(ctx context.Context, a Actor, code string) ([]string, *SignInResult, error) {
	acct, se, err := s.acctSessionActor(ctx, a)
	if err != nil {
		return nil, nil, err
	}
	if acct.MFAEnabled() {
		return nil, nil, thauth.Errorf(thauth.EConflict, "two-factor authentication is already enabled")
	}
	if acct.TOTPPending == "" {
		return nil, nil, thauth.Errorf(thauth.EConflict, "no two-factor enrolment is in progress; start one first")
	}
	if err := s.acctMFAWait(ctx, a.Client, acct); err != nil {
		return nil, nil, err
	}
	secret, err := s.acctOpenTOTP(ctx, acct, acct.TOTPPending)
	if err != nil {
		return nil, nil, err
	}
	codes, hashes, err := acctNewRecoveryCodes()
	if err != nil {
		return nil, nil, err
	}
	now := s.clock()
	var res *SignInResult
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		cur, err := tx.GetAccount(ctx, acct.ID)
		if err != nil {
			return err
		}
		if cur.TOTPPending != acct.TOTPPending || cur.MFAEnabled() {
			return thauth.Errorf(thauth.EConflict, "the two-factor enrolment changed meanwhile; start again")
		}
		if _, err := s.acctUseCode(ctx, tx, cur, secret, code, false); err != nil {
			return err
		}
		cur.TOTPSecret, cur.TOTPPending, cur.TOTPEnabledAt, cur.UpdatedAt = cur.TOTPPending, "", &now, now
		if err := tx.UpdateAccount(ctx, cur); err != nil {
			return err
		}
		if err := tx.ReplaceRecoveryCodes(ctx, cur.ID, hashes, now); err != nil {
			return err
		}
		if res, err = s.acctRotate(ctx, tx, cur, se, a.Client, true); err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: cur.ID, AccountID: cur.ID, Action: "account.mfa.enabled", Client: a.Client,
			Data: map[string]string{"method": "totp", "session_id": res.Session.ID},
		}); err != nil {
			return err
		}
		return s.acctMFAMail(ctx, tx, cur, "enabled")
	})
	if err != nil {
		return nil, nil, s.acctCodeError(ctx, a.Client, acct, "enable", err, thauth.EInvalid)
	}
	if err := s.acctClearThrottle(ctx, mfaKey(acct.ID)); err != nil {
		return nil, nil, err
	}
	s.log.InfoContext(ctx, "two-factor authentication enabled", "account_id", acct.ID, "session_id", res.Session.ID)
	s.mailQueued()
	return codes, res, nil
}

// acctRotate revokes the caller's session old and returns a new one for acct (a new id
// and token after a privilege change) with the given MFA state.
func (s *Service) acctRotate(ctx context.Context, tx thauth.Data, acct *thauth.Account, old *thauth.Session, ci ClientInfo, mfa bool) (*SignInResult, error) {
	if err := tx.RevokeSession(ctx, acct.ID, old.ID, s.clock()); err != nil {
		return nil, err
	}
	return s.acctCreateSession(ctx, tx, acct, ci, mfa, false)
}

// DisableTOTP turns two-factor authentication off after checking a fresh TOTP code or an
// unused recovery code; the recovery codes are deleted, the caller gets a new session
// (replacing the current one) and an mfa_changed mail is sent. Browser sessions only.
// Errors: EConflict when it is not on; EInvalid "the code is incorrect or was already
// used" (counted); ERateLimited while locked.
func (s *Service) DisableTOTP(ctx context.Context, a Actor, code string) (*SignInResult, error) {
	acct, se, err := s.acctSessionActor(ctx, a)
	if err != nil {
		return nil, err
	}
	if !acct.MFAEnabled() {
		return nil, thauth.Errorf(thauth.EConflict, "two-factor authentication is not enabled")
	}
	if err := s.acctMFAWait(ctx, a.Client, acct); err != nil {
		return nil, err
	}
	secret, err := s.acctOpenTOTP(ctx, acct, acct.TOTPSecret)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	var res *SignInResult
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		cur, err := tx.GetAccount(ctx, acct.ID)
		if err != nil {
			return err
		}
		if cur.TOTPSecret != acct.TOTPSecret {
			return thauth.Errorf(thauth.EConflict, "two-factor authentication changed meanwhile; reload and try again")
		}
		kind, err := s.acctUseCode(ctx, tx, cur, secret, code, true)
		if err != nil {
			return err
		}
		cur.TOTPSecret, cur.TOTPPending, cur.TOTPEnabledAt, cur.UpdatedAt = "", "", nil, now
		if err := tx.UpdateAccount(ctx, cur); err != nil {
			return err
		}
		if err := tx.ReplaceRecoveryCodes(ctx, cur.ID, nil, now); err != nil {
			return err
		}
		if res, err = s.acctRotate(ctx, tx, cur, se, a.Client, false); err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: cur.ID, AccountID: cur.ID, Action: "account.mfa.disabled", Client: a.Client,
			Data: map[string]string{"confirmed_with": kind, "session_id": res.Session.ID},
		}); err != nil {
			return err
		}
		return s.acctMFAMail(ctx, tx, cur, "disabled")
	})
	if err != nil {
		return nil, s.acctCodeError(ctx, a.Client, acct, "disable", err, thauth.EInvalid)
	}
	if err := s.acctClearThrottle(ctx, mfaKey(acct.ID)); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "two-factor authentication disabled", "account_id", acct.ID, "session_id", res.Session.ID)
	s.mailQueued()
	return res, nil
}

// RegenerateRecoveryCodes replaces the actor's recovery codes with ten new ones (returned,
// shown only now) after checking a fresh TOTP code or an unused recovery code; an
// mfa_changed mail is sent. Browser sessions only. Errors as DisableTOTP.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, a Actor, code string) ([]string, error) {
	acct, _, err := s.acctSessionActor(ctx, a)
	if err != nil {
		return nil, err
	}
	if !acct.MFAEnabled() {
		return nil, thauth.Errorf(thauth.EConflict, "two-factor authentication is not enabled")
	}
	if err := s.acctMFAWait(ctx, a.Client, acct); err != nil {
		return nil, err
	}
	secret, err := s.acctOpenTOTP(ctx, acct, acct.TOTPSecret)
	if err != nil {
		return nil, err
	}
	codes, hashes, err := acctNewRecoveryCodes()
	if err != nil {
		return nil, err
	}
	now := s.clock()
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		kind, err := s.acctUseCode(ctx, tx, acct, secret, code, true)
		if err != nil {
			return err
		}
		if err := tx.ReplaceRecoveryCodes(ctx, acct.ID, hashes, now); err != nil {
			return err
		}
		if err := s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: acct.ID, AccountID: acct.ID, Action: "account.mfa.recovery_codes_regenerated",
			Client: a.Client, Data: map[string]string{"confirmed_with": kind},
		}); err != nil {
			return err
		}
		return s.acctMFAMail(ctx, tx, acct, "recovery codes regenerated")
	})
	if err != nil {
		return nil, s.acctCodeError(ctx, a.Client, acct, "regenerate_recovery_codes", err, thauth.EInvalid)
	}
	if err := s.acctClearThrottle(ctx, mfaKey(acct.ID)); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "recovery codes regenerated", "account_id", acct.ID)
	s.mailQueued()
	return codes, nil
}

// RecoveryCodesLeft returns how many unused recovery codes the actor has.
func (s *Service) RecoveryCodesLeft(ctx context.Context, a Actor) (int, error) {
	acct, err := s.acctOf(ctx, a)
	if err != nil {
		return 0, err
	}
	n, err := s.store.CountRecoveryCodes(ctx, acct.ID)
	if err != nil {
		return 0, storeError(err, "could not count recovery codes")
	}
	return n, nil
}
