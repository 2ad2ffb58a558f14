package thauth

import (
	"context"
	"time"
)

// Storage contracts of the identity nouns (identity.go). The conventions of store.go apply:
// ENotFound for a missing row (or one outside the given account or organization), EConflict
// on a uniqueness violation, EUnavailable when the database cannot be reached. Times are
// stored in UTC with microsecond precision. Listings never return nil slices.

// AccountStore manages accounts and their recovery codes.
type AccountStore interface {
	// CreateAccount inserts a (every field set by the caller); EConflict if the email is
	// taken.
	CreateAccount(ctx context.Context, a *Account) error
	GetAccount(ctx context.Context, accountID string) (*Account, error)
	// GetAccountByEmail finds an account by its normalized email.
	GetAccountByEmail(ctx context.Context, email string) (*Account, error)
	// UpdateAccount writes every field of a except ID, CreatedAt and TOTPLastStep;
	// EConflict if the new email is taken.
	UpdateAccount(ctx context.Context, a *Account) error
	// AdvanceTOTPStep sets the account's TOTPLastStep to step if step is greater than the
	// stored one, atomically, and reports whether it did: false means the step (or a later
	// one) was already used — a replay.
	AdvanceTOTPStep(ctx context.Context, accountID string, step int64) (bool, error)
	// ReplaceRecoveryCodes deletes the account's recovery codes and stores hashes (SHA-256
	// of each code) as its new, unused codes.
	ReplaceRecoveryCodes(ctx context.Context, accountID string, hashes [][]byte, at time.Time) error
	// UseRecoveryCode marks the account's unused code with this hash used, atomically, and
	// reports whether there was one (a code works once).
	UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (bool, error)
	// CountRecoveryCodes returns how many unused codes the account has.
	CountRecoveryCodes(ctx context.Context, accountID string) (int, error)
}

// EmailTokenStore manages single-use email tokens.
type EmailTokenStore interface {
	CreateEmailToken(ctx context.Context, t *EmailToken) error
	// ConsumeEmailToken marks the token with this purpose and hash used at now and returns
	// it, atomically; ENotFound when there is none, or it is used or expired (ExpiresAt <=
	// now). Two concurrent calls never both succeed.
	ConsumeEmailToken(ctx context.Context, purpose string, hash []byte, now time.Time) (*EmailToken, error)
	// DeleteEmailTokens deletes the account's unused tokens of purpose (a new link voids the
	// older ones), returning how many.
	DeleteEmailTokens(ctx context.Context, accountID, purpose string) (int, error)
}

// SessionStore manages browser sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s *Session) error
	// GetSessionByHash returns the session with this token hash, revoked or not.
	GetSessionByHash(ctx context.Context, hash []byte) (*Session, error)
	// ListSessions returns the account's sessions that are not revoked and whose ExpiresAt
	// is after now, newest first.
	ListSessions(ctx context.Context, accountID string, now time.Time) ([]Session, error)
	// TouchSession sets LastSeenAt (never moving it back).
	TouchSession(ctx context.Context, accountID, sessionID string, at time.Time) error
	// RevokeSession sets RevokedAt (keeping an earlier one); ENotFound if the session is not
	// the account's.
	RevokeSession(ctx context.Context, accountID, sessionID string, at time.Time) error
	// RevokeSessions revokes every session of the account that is not revoked yet, except
	// exceptID ("" for none), and returns how many it revoked.
	RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error)
}

// AccessTokenStore manages personal access tokens. Only hashes are stored.
type AccessTokenStore interface {
	CreateAccessToken(ctx context.Context, t *AccessToken) error
	// GetAccessTokenByLookup returns the token with this lookup id, revoked or not.
	GetAccessTokenByLookup(ctx context.Context, lookupID string) (*AccessToken, error)
	// ListAccessTokens returns every token of the account, revoked ones included, newest
	// first.
	ListAccessTokens(ctx context.Context, accountID string) ([]AccessToken, error)
	// RevokeAccessToken sets RevokedAt (keeping an earlier one); ENotFound if the token is not
	// the account's.
	RevokeAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error
	// TouchAccessToken sets LastUsedAt (never moving it back).
	TouchAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error
}

// MembershipStore manages organizations' members, invitations and settings.
type MembershipStore interface {
	// UpdateOrganization writes org's Name and RequireMFA.
	UpdateOrganization(ctx context.Context, org *Organization) error
	// ListOrganizations returns every organization except the system one, by creation time
	// then id (for operators).
	ListOrganizations(ctx context.Context) ([]Organization, error)
	// PutMembership inserts m or updates its Role and UpdatedAt.
	PutMembership(ctx context.Context, m *Membership) error
	GetMembership(ctx context.Context, orgID, accountID string) (*Membership, error)
	// DeleteMembership removes the account from the organization.
	DeleteMembership(ctx context.Context, orgID, accountID string) error
	// ListMembers returns the organization's members with their account details, ordered by
	// membership creation time then account id.
	ListMembers(ctx context.Context, orgID string) ([]Member, error)
	// ListAccountOrganizations returns the organizations the account is a member of, with
	// its role, ordered by organization name then id.
	ListAccountOrganizations(ctx context.Context, accountID string) ([]OrganizationMembership, error)
	// CreateInvitation inserts inv into organization orgID.
	CreateInvitation(ctx context.Context, orgID string, inv *Invitation) error
	// ListInvitations returns the organization's invitations, newest first.
	ListInvitations(ctx context.Context, orgID string) ([]Invitation, error)
	GetInvitation(ctx context.Context, orgID, invitationID string) (*Invitation, error)
	// GetInvitationByHash finds an invitation of any organization by its token hash.
	GetInvitationByHash(ctx context.Context, hash []byte) (*Invitation, error)
	// UpdateInvitation writes AcceptedAt, AcceptedBy and RevokedAt of the organization's
	// invitation inv.ID.
	UpdateInvitation(ctx context.Context, orgID string, inv *Invitation) error
}

// OperatorStore manages operator grants.
type OperatorStore interface {
	// PutOperator inserts op or updates its Role, GrantedAt and GrantedBy.
	PutOperator(ctx context.Context, op *Operator) error
	GetOperator(ctx context.Context, accountID string) (*Operator, error)
	// ListOperators returns every operator, by grant time then account id.
	ListOperators(ctx context.Context) ([]Operator, error)
	DeleteOperator(ctx context.Context, accountID string) error
}

// ThrottleStore keeps authentication failure counters. Calls are atomic on their own, so
// nodes sharing a database share the counters.
type ThrottleStore interface {
	// GetThrottle returns the counter of key; ENotFound if there is none.
	GetThrottle(ctx context.Context, key string) (*Throttle, error)
	// RecordFailure adds one failure at at to key's counter and returns the counter: it
	// starts again from 1 when the last failure was before resetBefore (or there was none).
	// LockedUntil is kept.
	RecordFailure(ctx context.Context, key string, at, resetBefore time.Time) (*Throttle, error)
	// LockThrottle sets key's LockedUntil (creating the counter if needed).
	LockThrottle(ctx context.Context, key string, until time.Time) error
	// ClearThrottle deletes key's counter (after a success).
	ClearThrottle(ctx context.Context, key string) error
}

// OutboxStore is the durable mail outbox.
type OutboxStore interface {
	// EnqueueMail inserts m (every field set by the caller, Status MailPending).
	EnqueueMail(ctx context.Context, m *OutboxMail) error
	// ClaimMail returns up to limit pending messages with NextAttemptAt <= now, oldest
	// first, and moves their NextAttemptAt to now+lease in the same atomic step, so that
	// another node claiming at the same time does not get them.
	ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]OutboxMail, error)
	// UpdateMail writes Status, Attempts, NextAttemptAt, LastError, ProviderID, SentAt and
	// Payload of m.ID.
	UpdateMail(ctx context.Context, m *OutboxMail) error
	GetMail(ctx context.Context, id string) (*OutboxMail, error)
	// ListMail returns up to limit messages, newest first (the development outbox view).
	ListMail(ctx context.Context, limit int) ([]OutboxMail, error)
	// CountPendingMail returns how many messages are pending.
	CountPendingMail(ctx context.Context) (int, error)
}

// AuditStore is the append-only audit log.
type AuditStore interface {
	// AppendAudit appends e to chain e.Chain: it sets e.Seq to the chain's last Seq + 1,
	// e.PrevHash to the chain's last Hash (32 zero bytes for the first entry) and e.Hash to
	// AuditHash(e), and inserts it, atomically with respect to concurrent appends to the
	// same chain (from any node). The other fields are set by the caller.
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit returns the entries f selects, newest (highest Seq) first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// ScanAudit calls fn for every entry of chain in Seq order (for verification and
	// export); it streams.
	ScanAudit(ctx context.Context, chain string, fn func(*AuditEntry) error) error
	// AuditChains returns the names of every chain that has entries, in byte order.
	AuditChains(ctx context.Context) ([]string, error)
	// AuditHead returns the chain's head: the Seq and Hash of its last appended entry, as
	// recorded by AppendAudit beside the entries (retention pruning keeps it). Verification
	// compares the last entry with it, so that deleting the newest entries is detected.
	// ENotFound when the chain has no head.
	AuditHead(ctx context.Context, chain string) (seq int64, hash []byte, err error)
}

// IdentityData is every identity store.
type IdentityData interface {
	AccountStore
	EmailTokenStore
	SessionStore
	AccessTokenStore
	MembershipStore
	OperatorStore
	ThrottleStore
	OutboxStore
	AuditStore
}

// SealedColumn is a stored column holding sealed values (internal/seal): each non-empty
// value was sealed with Purpose and the row's IDColumn value as row id.
type SealedColumn struct {
	Table, IDColumn, Column, Purpose string
}

// SealedColumns lists every column holding sealed values. `thauth keys rotate` re-seals all
// of them; a migration adding a sealed column must add it here (a test checks the purposes
// used by internal/manage against this list).
var SealedColumns = []SealedColumn{
	{Table: "accounts", IDColumn: "id", Column: "totp_secret", Purpose: "totp"},
	{Table: "accounts", IDColumn: "id", Column: "totp_pending", Purpose: "totp"},
	{Table: "mail_outbox", IDColumn: "id", Column: "payload", Purpose: "mail"},
	{Table: "webhook_endpoints", IDColumn: "id", Column: "secret", Purpose: "webhook"},
	{Table: "webhook_endpoints", IDColumn: "id", Column: "previous_secret", Purpose: "webhook"},
}

// Resealer is a store whose sealed columns can be rewritten in place (key rotation).
type Resealer interface {
	// ResealColumn calls fn for every non-empty value of column c and, when fn returns
	// changed, writes the new value back — only if the stored value is still the one fn was
	// given (a concurrent writer wins; the next rotation catches its value). Rows are read in
	// batches; memory does not grow with the table. An error from fn stops the walk.
	ResealColumn(ctx context.Context, c SealedColumn, fn func(rowID, sealed string) (next string, changed bool, err error)) error
}
