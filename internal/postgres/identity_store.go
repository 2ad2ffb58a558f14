package postgres

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

// The thauth.IdentityData methods of Store. Each is one statement, atomic on its own
// (autocommit), except ReplaceRecoveryCodes and AppendAudit, which run in a write
// transaction of their own; ScanAudit reads page by page (see data.ScanAudit).

// CreateAccount inserts a; EConflict if its id or email is taken.
func (s *Store) CreateAccount(ctx context.Context, a *thauth.Account) error {
	return s.direct().CreateAccount(ctx, a)
}

// GetAccount returns the account; ENotFound if there is none.
func (s *Store) GetAccount(ctx context.Context, accountID string) (*thauth.Account, error) {
	return s.direct().GetAccount(ctx, accountID)
}

// GetAccountByEmail returns the account with exactly this stored email; ENotFound if there
// is none.
func (s *Store) GetAccountByEmail(ctx context.Context, email string) (*thauth.Account, error) {
	return s.direct().GetAccountByEmail(ctx, email)
}

// UpdateAccount writes a (see thauth.AccountStore); ENotFound or EConflict.
func (s *Store) UpdateAccount(ctx context.Context, a *thauth.Account) error {
	return s.direct().UpdateAccount(ctx, a)
}

// AdvanceTOTPStep moves the account's last TOTP step forward and reports whether it did
// (false: a replay); ENotFound for an unknown account.
func (s *Store) AdvanceTOTPStep(ctx context.Context, accountID string, step int64) (bool, error) {
	return s.direct().AdvanceTOTPStep(ctx, accountID, step)
}

// ReplaceRecoveryCodes replaces the account's recovery codes in one transaction; ENotFound
// for an unknown account.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, accountID string, hashes [][]byte, at time.Time) error {
	return s.write(ctx, func(d *data) error { return d.ReplaceRecoveryCodes(ctx, accountID, hashes, at) })
}

// UseRecoveryCode spends the account's unused code with this hash and reports whether there
// was one.
func (s *Store) UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (bool, error) {
	return s.direct().UseRecoveryCode(ctx, accountID, hash, at)
}

// CountRecoveryCodes returns how many unused recovery codes the account has.
func (s *Store) CountRecoveryCodes(ctx context.Context, accountID string) (int, error) {
	return s.direct().CountRecoveryCodes(ctx, accountID)
}

// CreateEmailToken inserts t; EConflict, or ENotFound for an unknown account.
func (s *Store) CreateEmailToken(ctx context.Context, t *thauth.EmailToken) error {
	return s.direct().CreateEmailToken(ctx, t)
}

// ConsumeEmailToken uses the live token with this purpose and hash; ENotFound if there is
// none.
func (s *Store) ConsumeEmailToken(ctx context.Context, purpose string, hash []byte, now time.Time) (*thauth.EmailToken, error) {
	return s.direct().ConsumeEmailToken(ctx, purpose, hash, now)
}

// DeleteEmailTokens deletes the account's unused tokens of purpose and returns how many.
func (s *Store) DeleteEmailTokens(ctx context.Context, accountID, purpose string) (int, error) {
	return s.direct().DeleteEmailTokens(ctx, accountID, purpose)
}

// CreateSession inserts sess; EConflict, or ENotFound for an unknown account.
func (s *Store) CreateSession(ctx context.Context, sess *thauth.Session) error {
	return s.direct().CreateSession(ctx, sess)
}

// GetSessionByHash returns the session with this token hash, revoked or not; ENotFound if
// there is none.
func (s *Store) GetSessionByHash(ctx context.Context, hash []byte) (*thauth.Session, error) {
	return s.direct().GetSessionByHash(ctx, hash)
}

// ListSessions returns the account's live sessions, newest first.
func (s *Store) ListSessions(ctx context.Context, accountID string, now time.Time) ([]thauth.Session, error) {
	return s.direct().ListSessions(ctx, accountID, now)
}

// TouchSession moves the session's LastSeenAt forward; ENotFound if it is not the
// account's.
func (s *Store) TouchSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	return s.direct().TouchSession(ctx, accountID, sessionID, at)
}

// RevokeSession revokes the session; ENotFound if it is not the account's.
func (s *Store) RevokeSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	return s.direct().RevokeSession(ctx, accountID, sessionID, at)
}

// RevokeSessions revokes the account's other sessions and returns how many.
func (s *Store) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	return s.direct().RevokeSessions(ctx, accountID, exceptID, at)
}

// CreateAccessToken inserts t; EConflict, or ENotFound for an unknown account.
func (s *Store) CreateAccessToken(ctx context.Context, t *thauth.AccessToken) error {
	return s.direct().CreateAccessToken(ctx, t)
}

// GetAccessTokenByLookup returns the token with this lookup id, revoked or not; ENotFound
// if there is none.
func (s *Store) GetAccessTokenByLookup(ctx context.Context, lookupID string) (*thauth.AccessToken, error) {
	return s.direct().GetAccessTokenByLookup(ctx, lookupID)
}

// ListAccessTokens returns the account's tokens, newest first.
func (s *Store) ListAccessTokens(ctx context.Context, accountID string) ([]thauth.AccessToken, error) {
	return s.direct().ListAccessTokens(ctx, accountID)
}

// RevokeAccessToken revokes the token; ENotFound if it is not the account's.
func (s *Store) RevokeAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	return s.direct().RevokeAccessToken(ctx, accountID, tokenID, at)
}

// TouchAccessToken moves the token's LastUsedAt forward; ENotFound if it is not the
// account's.
func (s *Store) TouchAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	return s.direct().TouchAccessToken(ctx, accountID, tokenID, at)
}

// UpdateOrganization writes org's Name and RequireMFA; ENotFound if it does not exist.
func (s *Store) UpdateOrganization(ctx context.Context, org *thauth.Organization) error {
	return s.direct().UpdateOrganization(ctx, org)
}

// ListOrganizations returns every organization but the system one.
func (s *Store) ListOrganizations(ctx context.Context) ([]thauth.Organization, error) {
	return s.direct().ListOrganizations(ctx)
}

// PutMembership inserts m or updates its role; ENotFound for an unknown organization or
// account.
func (s *Store) PutMembership(ctx context.Context, m *thauth.Membership) error {
	return s.direct().PutMembership(ctx, m)
}

// GetMembership returns the account's membership of the organization; ENotFound if there is
// none.
func (s *Store) GetMembership(ctx context.Context, orgID, accountID string) (*thauth.Membership, error) {
	return s.direct().GetMembership(ctx, orgID, accountID)
}

// DeleteMembership removes the account from the organization; ENotFound if it is not a
// member.
func (s *Store) DeleteMembership(ctx context.Context, orgID, accountID string) error {
	return s.direct().DeleteMembership(ctx, orgID, accountID)
}

// ListMembers returns the organization's members with their account details.
func (s *Store) ListMembers(ctx context.Context, orgID string) ([]thauth.Member, error) {
	return s.direct().ListMembers(ctx, orgID)
}

// ListAccountOrganizations returns the account's organizations with its role.
func (s *Store) ListAccountOrganizations(ctx context.Context, accountID string) ([]thauth.OrganizationMembership, error) {
	return s.direct().ListAccountOrganizations(ctx, accountID)
}

// CreateInvitation inserts inv into the organization; EConflict, or ENotFound for an
// unknown organization.
func (s *Store) CreateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	return s.direct().CreateInvitation(ctx, orgID, inv)
}

// ListInvitations returns the organization's invitations, newest first.
func (s *Store) ListInvitations(ctx context.Context, orgID string) ([]thauth.Invitation, error) {
	return s.direct().ListInvitations(ctx, orgID)
}

// GetInvitation returns the organization's invitation; ENotFound if there is none.
func (s *Store) GetInvitation(ctx context.Context, orgID, invitationID string) (*thauth.Invitation, error) {
	return s.direct().GetInvitation(ctx, orgID, invitationID)
}

// GetInvitationByHash returns the invitation with this token hash; ENotFound if there is
// none.
func (s *Store) GetInvitationByHash(ctx context.Context, hash []byte) (*thauth.Invitation, error) {
	return s.direct().GetInvitationByHash(ctx, hash)
}

// UpdateInvitation writes the invitation's acceptance and revocation; ENotFound if it is
// not the organization's.
func (s *Store) UpdateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	return s.direct().UpdateInvitation(ctx, orgID, inv)
}

// PutOperator grants or updates an operator role; ENotFound for an unknown account.
func (s *Store) PutOperator(ctx context.Context, op *thauth.Operator) error {
	return s.direct().PutOperator(ctx, op)
}

// GetOperator returns the account's operator grant; ENotFound if it has none.
func (s *Store) GetOperator(ctx context.Context, accountID string) (*thauth.Operator, error) {
	return s.direct().GetOperator(ctx, accountID)
}

// ListOperators returns every operator.
func (s *Store) ListOperators(ctx context.Context) ([]thauth.Operator, error) {
	return s.direct().ListOperators(ctx)
}

// DeleteOperator revokes the account's operator grant; ENotFound if it has none.
func (s *Store) DeleteOperator(ctx context.Context, accountID string) error {
	return s.direct().DeleteOperator(ctx, accountID)
}

// GetThrottle returns key's failure counter; ENotFound if there is none.
func (s *Store) GetThrottle(ctx context.Context, key string) (*thauth.Throttle, error) {
	return s.direct().GetThrottle(ctx, key)
}

// RecordFailure counts one failure of key and returns the counter.
func (s *Store) RecordFailure(ctx context.Context, key string, at, resetBefore time.Time) (*thauth.Throttle, error) {
	return s.direct().RecordFailure(ctx, key, at, resetBefore)
}

// LockThrottle sets key's LockedUntil.
func (s *Store) LockThrottle(ctx context.Context, key string, until time.Time) error {
	return s.direct().LockThrottle(ctx, key, until)
}

// ClearThrottle deletes key's counter.
func (s *Store) ClearThrottle(ctx context.Context, key string) error {
	return s.direct().ClearThrottle(ctx, key)
}

// EnqueueMail inserts m into the outbox; EConflict if its id is taken.
func (s *Store) EnqueueMail(ctx context.Context, m *thauth.OutboxMail) error {
	return s.direct().EnqueueMail(ctx, m)
}

// ClaimMail claims up to limit due messages for lease; concurrent claimers on any node get
// disjoint messages.
func (s *Store) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]thauth.OutboxMail, error) {
	return s.direct().ClaimMail(ctx, now, lease, limit)
}

// UpdateMail writes m's delivery state; ENotFound if there is no such message.
func (s *Store) UpdateMail(ctx context.Context, m *thauth.OutboxMail) error {
	return s.direct().UpdateMail(ctx, m)
}

// GetMail returns the message; ENotFound if there is none.
func (s *Store) GetMail(ctx context.Context, id string) (*thauth.OutboxMail, error) {
	return s.direct().GetMail(ctx, id)
}

// ListMail returns up to limit messages, newest first.
func (s *Store) ListMail(ctx context.Context, limit int) ([]thauth.OutboxMail, error) {
	return s.direct().ListMail(ctx, limit)
}

// CountPendingMail returns how many messages are pending.
func (s *Store) CountPendingMail(ctx context.Context) (int, error) {
	return s.direct().CountPendingMail(ctx)
}

// AppendAudit appends e to its chain in one transaction (see data.AppendAudit).
func (s *Store) AppendAudit(ctx context.Context, e *thauth.AuditEntry) error {
	return s.write(ctx, func(d *data) error { return d.AppendAudit(ctx, e) })
}

// ListAudit returns the entries f selects, newest first; EInvalid for a filter without
// exactly one of an organization and an account.
func (s *Store) ListAudit(ctx context.Context, f thauth.AuditFilter) ([]thauth.AuditEntry, error) {
	return s.direct().ListAudit(ctx, f)
}

// ScanAudit calls fn for every entry of chain in Seq order, reading pages (see
// data.ScanAudit).
func (s *Store) ScanAudit(ctx context.Context, chain string, fn func(*thauth.AuditEntry) error) error {
	return s.direct().ScanAudit(ctx, chain, fn)
}

// AuditHead returns the chain's head (see data.AuditHead).
func (s *Store) AuditHead(ctx context.Context, chain string) (int64, []byte, error) {
	return s.direct().AuditHead(ctx, chain)
}

// AuditChains returns every chain with entries, in byte order.
func (s *Store) AuditChains(ctx context.Context) ([]string, error) {
	return s.direct().AuditChains(ctx)
}
