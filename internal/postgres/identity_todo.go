package postgres

// Temporary: identity store methods not implemented yet (replaced by identity.go).

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

var errIdentityTODO = thauth.Errorf(thauth.EInternal, "not implemented")

func (d *data) CreateAccount(ctx context.Context, a *thauth.Account) error { return errIdentityTODO }
func (d *data) GetAccount(ctx context.Context, accountID string) (*thauth.Account, error) {
	return nil, errIdentityTODO
}
func (d *data) GetAccountByEmail(ctx context.Context, email string) (*thauth.Account, error) {
	return nil, errIdentityTODO
}
func (d *data) UpdateAccount(ctx context.Context, a *thauth.Account) error { return errIdentityTODO }
func (d *data) AdvanceTOTPStep(ctx context.Context, accountID string, step int64) (bool, error) {
	return false, errIdentityTODO
}
func (d *data) ReplaceRecoveryCodes(ctx context.Context, accountID string, hashes [][]byte, at time.Time) error {
	return errIdentityTODO
}
func (d *data) UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (bool, error) {
	return false, errIdentityTODO
}
func (d *data) CountRecoveryCodes(ctx context.Context, accountID string) (int, error) {
	return 0, errIdentityTODO
}
func (d *data) CreateEmailToken(ctx context.Context, t *thauth.EmailToken) error {
	return errIdentityTODO
}
func (d *data) ConsumeEmailToken(ctx context.Context, purpose string, hash []byte, now time.Time) (*thauth.EmailToken, error) {
	return nil, errIdentityTODO
}
func (d *data) DeleteEmailTokens(ctx context.Context, accountID, purpose string) (int, error) {
	return 0, errIdentityTODO
}
func (d *data) CreateSession(ctx context.Context, s *thauth.Session) error { return errIdentityTODO }
func (d *data) GetSessionByHash(ctx context.Context, hash []byte) (*thauth.Session, error) {
	return nil, errIdentityTODO
}
func (d *data) ListSessions(ctx context.Context, accountID string, now time.Time) ([]thauth.Session, error) {
	return nil, errIdentityTODO
}
func (d *data) TouchSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	return errIdentityTODO
}
func (d *data) RevokeSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	return errIdentityTODO
}
func (d *data) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	return 0, errIdentityTODO
}
func (d *data) CreateAccessToken(ctx context.Context, t *thauth.AccessToken) error {
	return errIdentityTODO
}
func (d *data) GetAccessTokenByLookup(ctx context.Context, lookupID string) (*thauth.AccessToken, error) {
	return nil, errIdentityTODO
}
func (d *data) ListAccessTokens(ctx context.Context, accountID string) ([]thauth.AccessToken, error) {
	return nil, errIdentityTODO
}
func (d *data) RevokeAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	return errIdentityTODO
}
func (d *data) TouchAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	return errIdentityTODO
}
func (d *data) UpdateOrganization(ctx context.Context, org *thauth.Organization) error {
	return errIdentityTODO
}
func (d *data) ListOrganizations(ctx context.Context) ([]thauth.Organization, error) {
	return nil, errIdentityTODO
}
func (d *data) PutMembership(ctx context.Context, m *thauth.Membership) error { return errIdentityTODO }
func (d *data) GetMembership(ctx context.Context, orgID, accountID string) (*thauth.Membership, error) {
	return nil, errIdentityTODO
}
func (d *data) DeleteMembership(ctx context.Context, orgID, accountID string) error {
	return errIdentityTODO
}
func (d *data) ListMembers(ctx context.Context, orgID string) ([]thauth.Member, error) {
	return nil, errIdentityTODO
}
func (d *data) ListAccountOrganizations(ctx context.Context, accountID string) ([]thauth.OrganizationMembership, error) {
	return nil, errIdentityTODO
}
func (d *data) CreateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	return errIdentityTODO
}
func (d *data) ListInvitations(ctx context.Context, orgID string) ([]thauth.Invitation, error) {
	return nil, errIdentityTODO
}
func (d *data) GetInvitation(ctx context.Context, orgID, invitationID string) (*thauth.Invitation, error) {
	return nil, errIdentityTODO
}
func (d *data) GetInvitationByHash(ctx context.Context, hash []byte) (*thauth.Invitation, error) {
	return nil, errIdentityTODO
}
func (d *data) UpdateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	return errIdentityTODO
}
func (d *data) PutOperator(ctx context.Context, op *thauth.Operator) error { return errIdentityTODO }
func (d *data) GetOperator(ctx context.Context, accountID string) (*thauth.Operator, error) {
	return nil, errIdentityTODO
}
func (d *data) ListOperators(ctx context.Context) ([]thauth.Operator, error) {
	return nil, errIdentityTODO
}
func (d *data) DeleteOperator(ctx context.Context, accountID string) error { return errIdentityTODO }
func (d *data) GetThrottle(ctx context.Context, key string) (*thauth.Throttle, error) {
	return nil, errIdentityTODO
}
func (d *data) RecordFailure(ctx context.Context, key string, at, resetBefore time.Time) (*thauth.Throttle, error) {
	return nil, errIdentityTODO
}
func (d *data) LockThrottle(ctx context.Context, key string, until time.Time) error {
	return errIdentityTODO
}
func (d *data) ClearThrottle(ctx context.Context, key string) error         { return errIdentityTODO }
func (d *data) EnqueueMail(ctx context.Context, m *thauth.OutboxMail) error { return errIdentityTODO }
func (d *data) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]thauth.OutboxMail, error) {
	return nil, errIdentityTODO
}
func (d *data) UpdateMail(ctx context.Context, m *thauth.OutboxMail) error { return errIdentityTODO }
func (d *data) GetMail(ctx context.Context, id string) (*thauth.OutboxMail, error) {
	return nil, errIdentityTODO
}
func (d *data) ListMail(ctx context.Context, limit int) ([]thauth.OutboxMail, error) {
	return nil, errIdentityTODO
}
func (d *data) CountPendingMail(ctx context.Context) (int, error)           { return 0, errIdentityTODO }
func (d *data) AppendAudit(ctx context.Context, e *thauth.AuditEntry) error { return errIdentityTODO }
func (d *data) ListAudit(ctx context.Context, f thauth.AuditFilter) ([]thauth.AuditEntry, error) {
	return nil, errIdentityTODO
}
func (d *data) ScanAudit(ctx context.Context, chain string, fn func(*thauth.AuditEntry) error) error {
	return errIdentityTODO
}
func (d *data) AuditChains(ctx context.Context) ([]string, error)           { return nil, errIdentityTODO }
func (s *Store) CreateAccount(ctx context.Context, a *thauth.Account) error { return errIdentityTODO }
func (s *Store) GetAccount(ctx context.Context, accountID string) (*thauth.Account, error) {
	return nil, errIdentityTODO
}
func (s *Store) GetAccountByEmail(ctx context.Context, email string) (*thauth.Account, error) {
	return nil, errIdentityTODO
}
func (s *Store) UpdateAccount(ctx context.Context, a *thauth.Account) error { return errIdentityTODO }
func (s *Store) AdvanceTOTPStep(ctx context.Context, accountID string, step int64) (bool, error) {
	return false, errIdentityTODO
}
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, accountID string, hashes [][]byte, at time.Time) error {
	return errIdentityTODO
}
func (s *Store) UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (bool, error) {
	return false, errIdentityTODO
}
func (s *Store) CountRecoveryCodes(ctx context.Context, accountID string) (int, error) {
	return 0, errIdentityTODO
}
func (s *Store) CreateEmailToken(ctx context.Context, t *thauth.EmailToken) error {
	return errIdentityTODO
}
func (s *Store) ConsumeEmailToken(ctx context.Context, purpose string, hash []byte, now time.Time) (*thauth.EmailToken, error) {
	return nil, errIdentityTODO
}
func (s *Store) DeleteEmailTokens(ctx context.Context, accountID, purpose string) (int, error) {
	return 0, errIdentityTODO
}
func (st *Store) CreateSession(ctx context.Context, s *thauth.Session) error { return errIdentityTODO }
func (s *Store) GetSessionByHash(ctx context.Context, hash []byte) (*thauth.Session, error) {
	return nil, errIdentityTODO
}
func (s *Store) ListSessions(ctx context.Context, accountID string, now time.Time) ([]thauth.Session, error) {
	return nil, errIdentityTODO
}
func (s *Store) TouchSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	return errIdentityTODO
}
func (s *Store) RevokeSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	return errIdentityTODO
}
func (s *Store) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	return 0, errIdentityTODO
}
func (s *Store) CreateAccessToken(ctx context.Context, t *thauth.AccessToken) error {
	return errIdentityTODO
}
func (s *Store) GetAccessTokenByLookup(ctx context.Context, lookupID string) (*thauth.AccessToken, error) {
	return nil, errIdentityTODO
}
func (s *Store) ListAccessTokens(ctx context.Context, accountID string) ([]thauth.AccessToken, error) {
	return nil, errIdentityTODO
}
func (s *Store) RevokeAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	return errIdentityTODO
}
func (s *Store) TouchAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	return errIdentityTODO
}
func (s *Store) UpdateOrganization(ctx context.Context, org *thauth.Organization) error {
	return errIdentityTODO
}
func (s *Store) ListOrganizations(ctx context.Context) ([]thauth.Organization, error) {
	return nil, errIdentityTODO
}
func (s *Store) PutMembership(ctx context.Context, m *thauth.Membership) error {
	return errIdentityTODO
}
func (s *Store) GetMembership(ctx context.Context, orgID, accountID string) (*thauth.Membership, error) {
	return nil, errIdentityTODO
}
func (s *Store) DeleteMembership(ctx context.Context, orgID, accountID string) error {
	return errIdentityTODO
}
func (s *Store) ListMembers(ctx context.Context, orgID string) ([]thauth.Member, error) {
	return nil, errIdentityTODO
}
func (s *Store) ListAccountOrganizations(ctx context.Context, accountID string) ([]thauth.OrganizationMembership, error) {
	return nil, errIdentityTODO
}
func (s *Store) CreateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	return errIdentityTODO
}
func (s *Store) ListInvitations(ctx context.Context, orgID string) ([]thauth.Invitation, error) {
	return nil, errIdentityTODO
}
func (s *Store) GetInvitation(ctx context.Context, orgID, invitationID string) (*thauth.Invitation, error) {
	return nil, errIdentityTODO
}
func (s *Store) GetInvitationByHash(ctx context.Context, hash []byte) (*thauth.Invitation, error) {
	return nil, errIdentityTODO
}
func (s *Store) UpdateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	return errIdentityTODO
}
func (s *Store) PutOperator(ctx context.Context, op *thauth.Operator) error { return errIdentityTODO }
func (s *Store) GetOperator(ctx context.Context, accountID string) (*thauth.Operator, error) {
	return nil, errIdentityTODO
}
func (s *Store) ListOperators(ctx context.Context) ([]thauth.Operator, error) {
	return nil, errIdentityTODO
}
func (s *Store) DeleteOperator(ctx context.Context, accountID string) error { return errIdentityTODO }
func (s *Store) GetThrottle(ctx context.Context, key string) (*thauth.Throttle, error) {
	return nil, errIdentityTODO
}
func (s *Store) RecordFailure(ctx context.Context, key string, at, resetBefore time.Time) (*thauth.Throttle, error) {
	return nil, errIdentityTODO
}
func (s *Store) LockThrottle(ctx context.Context, key string, until time.Time) error {
	return errIdentityTODO
}
func (s *Store) ClearThrottle(ctx context.Context, key string) error         { return errIdentityTODO }
func (s *Store) EnqueueMail(ctx context.Context, m *thauth.OutboxMail) error { return errIdentityTODO }
func (s *Store) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]thauth.OutboxMail, error) {
	return nil, errIdentityTODO
}
func (s *Store) UpdateMail(ctx context.Context, m *thauth.OutboxMail) error { return errIdentityTODO }
func (s *Store) GetMail(ctx context.Context, id string) (*thauth.OutboxMail, error) {
	return nil, errIdentityTODO
}
func (s *Store) ListMail(ctx context.Context, limit int) ([]thauth.OutboxMail, error) {
	return nil, errIdentityTODO
}
func (s *Store) CountPendingMail(ctx context.Context) (int, error)           { return 0, errIdentityTODO }
func (s *Store) AppendAudit(ctx context.Context, e *thauth.AuditEntry) error { return errIdentityTODO }
func (s *Store) ListAudit(ctx context.Context, f thauth.AuditFilter) ([]thauth.AuditEntry, error) {
	return nil, errIdentityTODO
}
func (s *Store) ScanAudit(ctx context.Context, chain string, fn func(*thauth.AuditEntry) error) error {
	return errIdentityTODO
}
func (s *Store) AuditChains(ctx context.Context) ([]string, error) { return nil, errIdentityTODO }

var _ = time.Now
