package sqlite

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

// The thauth.IdentityData methods of Store, each in its own transaction like those of store.go.

// CreateAccount inserts a; EConflict if its id or email is taken.
func (s *Store) CreateAccount(ctx context.Context, a *thauth.Account) error {
	return s.write(ctx, func(d *data) error { return d.CreateAccount(ctx, a) })
}

// GetAccount returns the account; ENotFound if there is none.
func (s *Store) GetAccount(ctx context.Context, accountID string) (*thauth.Account, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Account, error) { return d.GetAccount(ctx, accountID) })
}

// GetAccountByEmail returns the account with exactly this stored email; ENotFound if there is none.
func (s *Store) GetAccountByEmail(ctx context.Context, email string) (*thauth.Account, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Account, error) { return d.GetAccountByEmail(ctx, email) })
}

// UpdateAccount writes a (see data.UpdateAccount); ENotFound or EConflict.
func (s *Store) UpdateAccount(ctx context.Context, a *thauth.Account) error {
	return s.write(ctx, func(d *data) error { return d.UpdateAccount(ctx, a) })
}

// AdvanceTOTPStep moves the account's last TOTP step forward and reports whether it did (false: a replay).
func (s *Store) AdvanceTOTPStep(ctx context.Context, accountID string, step int64) (bool, error) {
	return writeValue(ctx, s, func(d *data) (bool, error) { return d.AdvanceTOTPStep(ctx, accountID, step) })
}

// ReplaceRecoveryCodes replaces the account's recovery codes atomically.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, accountID string, hashes [][]byte, at time.Time) error {
	return s.write(ctx, func(d *data) error { return d.ReplaceRecoveryCodes(ctx, accountID, hashes, at) })
}

// UseRecoveryCode spends the account's unused code hash and reports whether there was one.
func (s *Store) UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (bool, error) {
	return writeValue(ctx, s, func(d *data) (bool, error) { return d.UseRecoveryCode(ctx, accountID, hash, at) })
}

// CountRecoveryCodes returns how many unused recovery codes the account has.
func (s *Store) CountRecoveryCodes(ctx context.Context, accountID string) (int, error) {
	return readValue(ctx, s, func(d *data) (int, error) { return d.CountRecoveryCodes(ctx, accountID) })
}

// CreateEmailToken inserts t; EConflict or ENotFound (unknown account).
func (s *Store) CreateEmailToken(ctx context.Context, t *thauth.EmailToken) error {
	return s.write(ctx, func(d *data) error { return d.CreateEmailToken(ctx, t) })
}

// ConsumeEmailToken uses the live token with this purpose and hash; ENotFound if there is none.
func (s *Store) ConsumeEmailToken(ctx context.Context, purpose string, hash []byte, now time.Time) (*thauth.EmailToken, error) {
	return writeValue(ctx, s, func(d *data) (*thauth.EmailToken, error) { return d.ConsumeEmailToken(ctx, purpose, hash, now) })
}

// DeleteEmailTokens deletes the account's unused tokens of purpose and returns how many.
func (s *Store) DeleteEmailTokens(ctx context.Context, accountID, purpose string) (int, error) {
	return writeValue(ctx, s, func(d *data) (int, error) { return d.DeleteEmailTokens(ctx, accountID, purpose) })
}

// CreateSession inserts sess; EConflict or ENotFound (unknown account).
func (s *Store) CreateSession(ctx context.Context, sess *thauth.Session) error {
	return s.write(ctx, func(d *data) error { return d.CreateSession(ctx, sess) })
}

// GetSessionByHash returns the session with this token hash, revoked or not; ENotFound if there is none.
func (s *Store) GetSessionByHash(ctx context.Context, hash []byte) (*thauth.Session, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Session, error) { return d.GetSessionByHash(ctx, hash) })
}

// ListSessions returns the account's live sessions at now, newest first.
func (s *Store) ListSessions(ctx context.Context, accountID string, now time.Time) ([]thauth.Session, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Session, error) { return d.ListSessions(ctx, accountID, now) })
}

// TouchSession moves the session's LastSeenAt forward; ENotFound if it is not the account's.
func (s *Store) TouchSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	return s.write(ctx, func(d *data) error { return d.TouchSession(ctx, accountID, sessionID, at) })
}

// RevokeSession revokes the session, keeping an earlier revocation; ENotFound if it is not the account's.
func (s *Store) RevokeSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	return s.write(ctx, func(d *data) error { return d.RevokeSession(ctx, accountID, sessionID, at) })
}

// RevokeSessions revokes the account's other live sessions and returns how many.
func (s *Store) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	return writeValue(ctx, s, func(d *data) (int, error) { return d.RevokeSessions(ctx, accountID, exceptID, at) })
}

// CreateAccessToken inserts t; EConflict or ENotFound (unknown account).
func (s *Store) CreateAccessToken(ctx context.Context, t *thauth.AccessToken) error {
	return s.write(ctx, func(d *data) error { return d.CreateAccessToken(ctx, t) })
}

// GetAccessTokenByLookup returns the token with this lookup id, revoked or not; ENotFound if there is none.
func (s *Store) GetAccessTokenByLookup(ctx context.Context, lookupID string) (*thauth.AccessToken, error) {
	return readValue(ctx, s, func(d *data) (*thauth.AccessToken, error) { return d.GetAccessTokenByLookup(ctx, lookupID) })
}

// ListAccessTokens returns the account's tokens, revoked ones included, newest first.
func (s *Store) ListAccessTokens(ctx context.Context, accountID string) ([]thauth.AccessToken, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.AccessToken, error) { return d.ListAccessTokens(ctx, accountID) })
}

// RevokeAccessToken revokes the token, keeping an earlier revocation; ENotFound if it is not the account's.
func (s *Store) RevokeAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	return s.write(ctx, func(d *data) error { return d.RevokeAccessToken(ctx, accountID, tokenID, at) })
}

// TouchAccessToken moves the token's LastUsedAt forward; ENotFound if it is not the account's.
func (s *Store) TouchAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	return s.write(ctx, func(d *data) error { return d.TouchAccessToken(ctx, accountID, tokenID, at) })
}

// UpdateOrganization writes org's Name and RequireMFA; ENotFound if it does not exist.
func (s *Store) UpdateOrganization(ctx context.Context, org *thauth.Organization) error {
	return s.write(ctx, func(d *data) error { return d.UpdateOrganization(ctx, org) })
}

// ListOrganizations returns every organization but the system one, oldest first.
func (s *Store) ListOrganizations(ctx context.Context) ([]thauth.Organization, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Organization, error) { return d.ListOrganizations(ctx) })
}

// PutMembership inserts or updates m; ENotFound if the organization or account does not exist.
func (s *Store) PutMembership(ctx context.Context, m *thauth.Membership) error {
	return s.write(ctx, func(d *data) error { return d.PutMembership(ctx, m) })
}

// GetMembership returns the account's membership of the organization; ENotFound if it is not a member.
func (s *Store) GetMembership(ctx context.Context, orgID, accountID string) (*thauth.Membership, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Membership, error) { return d.GetMembership(ctx, orgID, accountID) })
}

// DeleteMembership removes the account from the organization; ENotFound if it is not a member.
func (s *Store) DeleteMembership(ctx context.Context, orgID, accountID string) error {
	return s.write(ctx, func(d *data) error { return d.DeleteMembership(ctx, orgID, accountID) })
}

// ListMembers returns the organization's members with their account details, oldest membership first.
func (s *Store) ListMembers(ctx context.Context, orgID string) ([]thauth.Member, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Member, error) { return d.ListMembers(ctx, orgID) })
}

// ListAccountOrganizations returns the account's organizations with its role, by name.
func (s *Store) ListAccountOrganizations(ctx context.Context, accountID string) ([]thauth.OrganizationMembership, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.OrganizationMembership, error) {
		return d.ListAccountOrganizations(ctx, accountID)
	})
}

// CreateInvitation inserts inv into the organization; EConflict or ENotFound (unknown organization).
func (s *Store) CreateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	return s.write(ctx, func(d *data) error { return d.CreateInvitation(ctx, orgID, inv) })
}

// ListInvitations returns the organization's invitations, newest first.
func (s *Store) ListInvitations(ctx context.Context, orgID string) ([]thauth.Invitation, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Invitation, error) { return d.ListInvitations(ctx, orgID) })
}

// GetInvitation returns the organization's invitation; ENotFound if it is not the organization's.
func (s *Store) GetInvitation(ctx context.Context, orgID, invitationID string) (*thauth.Invitation, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Invitation, error) { return d.GetInvitation(ctx, orgID, invitationID) })
}

// GetInvitationByHash returns the invitation with this token hash; ENotFound if there is none.
func (s *Store) GetInvitationByHash(ctx context.Context, hash []byte) (*thauth.Invitation, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Invitation, error) { return d.GetInvitationByHash(ctx, hash) })
}

// UpdateInvitation writes the invitation's outcome; ENotFound if it is not the organization's.
func (s *Store) UpdateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	return s.write(ctx, func(d *data) error { return d.UpdateInvitation(ctx, orgID, inv) })
}

// PutOperator grants or updates an operator role; ENotFound if the account does not exist.
func (s *Store) PutOperator(ctx context.Context, op *thauth.Operator) error {
	return s.write(ctx, func(d *data) error { return d.PutOperator(ctx, op) })
}

// GetOperator returns the account's operator grant; ENotFound if it has none.
func (s *Store) GetOperator(ctx context.Context, accountID string) (*thauth.Operator, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Operator, error) { return d.GetOperator(ctx, accountID) })
}

// ListOperators returns every operator, by grant time then account id.
func (s *Store) ListOperators(ctx context.Context) ([]thauth.Operator, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.Operator, error) { return d.ListOperators(ctx) })
}

// DeleteOperator revokes the account's operator grant; ENotFound if it has none.
func (s *Store) DeleteOperator(ctx context.Context, accountID string) error {
	return s.write(ctx, func(d *data) error { return d.DeleteOperator(ctx, accountID) })
}

// GetThrottle returns key's counter; ENotFound if there is none.
func (s *Store) GetThrottle(ctx context.Context, key string) (*thauth.Throttle, error) {
	return readValue(ctx, s, func(d *data) (*thauth.Throttle, error) { return d.GetThrottle(ctx, key) })
}

// RecordFailure counts one failure of key and returns the counter.
func (s *Store) RecordFailure(ctx context.Context, key string, at, resetBefore time.Time) (*thauth.Throttle, error) {
	return writeValue(ctx, s, func(d *data) (*thauth.Throttle, error) { return d.RecordFailure(ctx, key, at, resetBefore) })
}

// LockThrottle sets key's LockedUntil, creating the counter if needed.
func (s *Store) LockThrottle(ctx context.Context, key string, until time.Time) error {
	return s.write(ctx, func(d *data) error { return d.LockThrottle(ctx, key, until) })
}

// ClearThrottle deletes key's counter, if any.
func (s *Store) ClearThrottle(ctx context.Context, key string) error {
	return s.write(ctx, func(d *data) error { return d.ClearThrottle(ctx, key) })
}

// EnqueueMail inserts m; EConflict if its id is taken.
func (s *Store) EnqueueMail(ctx context.Context, m *thauth.OutboxMail) error {
	return s.write(ctx, func(d *data) error { return d.EnqueueMail(ctx, m) })
}

// ClaimMail leases up to limit due pending messages until now+lease and returns them.
func (s *Store) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]thauth.OutboxMail, error) {
	return writeValue(ctx, s, func(d *data) ([]thauth.OutboxMail, error) { return d.ClaimMail(ctx, now, lease, limit) })
}

// UpdateMail writes the delivery state of m.ID; ENotFound if there is no such message.
func (s *Store) UpdateMail(ctx context.Context, m *thauth.OutboxMail) error {
	return s.write(ctx, func(d *data) error { return d.UpdateMail(ctx, m) })
}

// GetMail returns the message; ENotFound if there is none.
func (s *Store) GetMail(ctx context.Context, id string) (*thauth.OutboxMail, error) {
	return readValue(ctx, s, func(d *data) (*thauth.OutboxMail, error) { return d.GetMail(ctx, id) })
}

// ListMail returns up to limit messages, newest first.
func (s *Store) ListMail(ctx context.Context, limit int) ([]thauth.OutboxMail, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.OutboxMail, error) { return d.ListMail(ctx, limit) })
}

// CountPendingMail returns how many messages are pending.
func (s *Store) CountPendingMail(ctx context.Context) (int, error) {
	return readValue(ctx, s, func(d *data) (int, error) { return d.CountPendingMail(ctx) })
}

// AppendAudit appends e to its chain atomically (see data.AppendAudit).
func (s *Store) AppendAudit(ctx context.Context, e *thauth.AuditEntry) error {
	return s.write(ctx, func(d *data) error { return d.AppendAudit(ctx, e) })
}

// ListAudit returns the entries f selects, newest first.
func (s *Store) ListAudit(ctx context.Context, f thauth.AuditFilter) ([]thauth.AuditEntry, error) {
	return readValue(ctx, s, func(d *data) ([]thauth.AuditEntry, error) { return d.ListAudit(ctx, f) })
}

// AuditChains returns every chain with entries, in byte order.
func (s *Store) AuditChains(ctx context.Context) ([]string, error) {
	return readValue(ctx, s, func(d *data) ([]string, error) { return d.AuditChains(ctx) })
}

// AuditHead returns the chain's head (see data.AuditHead).
func (s *Store) AuditHead(ctx context.Context, chain string) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := s.read(ctx, func(d *data) error {
		var err error
		seq, hash, err = d.AuditHead(ctx, chain)
		return err
	})
	return seq, hash, err
}

// ScanAudit streams chain in Seq order. It holds one read connection (one snapshot) until the
// scan ends; fn runs while it is held.
func (s *Store) ScanAudit(ctx context.Context, chain string, fn func(*thauth.AuditEntry) error) error {
	return s.read(ctx, func(d *data) error { return d.ScanAudit(ctx, chain, fn) })
}

// writeValue is write for a method returning a value.
func writeValue[T any](ctx context.Context, s *Store, fn func(d *data) (T, error)) (T, error) {
	var v T
	err := s.write(ctx, func(d *data) error {
		var err error
		v, err = fn(d)
		return err
	})
	return v, err
}
