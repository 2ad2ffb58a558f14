package thauth

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// Identity nouns: the people who use the console (accounts), how they prove who they are
// (sessions, access tokens, email tokens, recovery codes), what they belong to (memberships,
// invitations, operator grants), and the records kept about them (throttles, the mail outbox,
// the audit log). Business rules (password policy, expiry, who may do what) live in
// internal/manage; these types only carry data.

// SystemOrganizationID and SystemProjectID identify the built-in organization and project
// whose features, actions and roles describe the console itself. The console's own
// authorization questions ("may account A invite members in organization O?") are checks
// against this project, with the account id as subject and the organization id as tenant.
// They never appear in customer listings.
const (
	SystemOrganizationID = "00000000-0000-7000-8000-000000000000"
	SystemProjectID      = "00000000-0000-7000-8000-000000000001"
)

// The roles of an organization member.
const (
	OrgRoleOwner     = "owner"
	OrgRoleAdmin     = "admin"
	OrgRoleDeveloper = "developer"
	OrgRoleViewer    = "viewer"
	OrgRoleBilling   = "billing"
)

// OrgRoles lists the member roles, most powerful first.
var OrgRoles = []string{OrgRoleOwner, OrgRoleAdmin, OrgRoleDeveloper, OrgRoleViewer, OrgRoleBilling}

// The roles of an installation operator (granted only from the CLI).
const (
	OperatorSupport    = "support"    // read-only
	OperatorOperator   = "operator"   // read and act on organizations
	OperatorSuperadmin = "superadmin" // everything
)

// OperatorRoles lists the operator roles, least powerful first.
var OperatorRoles = []string{OperatorSupport, OperatorOperator, OperatorSuperadmin}

// Account is a person who signs in to the console. Email is stored normalized (trimmed,
// lower-case) and is unique. PasswordHash is a PHC-format argon2id string. TOTPSecret and
// TOTPPending are sealed values (internal/seal, purpose "totp", row id = account id): the
// active second factor and an enrolment not yet confirmed; "" when absent. MFA is on when
// TOTPEnabledAt is set. TOTPLastStep is the last TOTP time step accepted (replay guard); it
// only moves through AccountStore.AdvanceTOTPStep.
type Account struct {
	ID              string     `json:"id"`
	Email           string     `json:"email"`
	Name            string     `json:"name"`
	PasswordHash    string     `json:"-"`
	EmailVerifiedAt *time.Time `json:"email_verified_at,omitempty"`
	TOTPSecret      string     `json:"-"`
	TOTPPending     string     `json:"-"`
	TOTPEnabledAt   *time.Time `json:"mfa_enabled_at,omitempty"`
	TOTPLastStep    int64      `json:"-"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

// MFAEnabled reports whether the account has a confirmed second factor.
func (a *Account) MFAEnabled() bool { return a.TOTPEnabledAt != nil }

// Session is a signed-in browser session. Only the SHA-256 of its token is stored. ExpiresAt
// is the absolute end of its life; the idle timeout is applied to LastSeenAt by
// internal/manage. PendingMFA marks a session whose password was verified but whose second
// factor is still outstanding: it may only complete the sign-in or sign out. MFA records
// that the second factor was verified in this session.
type Session struct {
	ID         string     `json:"id"`
	AccountID  string     `json:"-"`
	TokenHash  []byte     `json:"-"`
	MFA        bool       `json:"mfa"`
	PendingMFA bool       `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	IP         string     `json:"ip"`
	UserAgent  string     `json:"user_agent"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// The scopes of a personal access token.
const (
	TokenScopeRead  = "read"  // GET requests of the management API
	TokenScopeWrite = "write" // everything the account's roles allow
)

// AccessToken is a personal access token: the non-browser way for an account to use the
// management API (CLI, CI). Like API keys, only the hash is stored and LookupID finds it.
// Every token expires.
type AccessToken struct {
	ID         string     `json:"id"`
	AccountID  string     `json:"-"`
	Name       string     `json:"name"`
	LookupID   string     `json:"-"`
	Hash       []byte     `json:"-"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  time.Time  `json:"expires_at"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// The purposes of an EmailToken.
const (
	EmailTokenVerify = "verify_email"   // proves control of the account's address
	EmailTokenReset  = "reset_password" // lets the holder set a new password
	EmailTokenChange = "change_email"   // proves control of a new address (Email)
)

// EmailToken is a single-use, expiring secret sent by email in a link. Only its SHA-256 is
// stored. Email is the address it was sent to (for EmailTokenChange, the new address).
type EmailToken struct {
	ID        string
	AccountID string
	Purpose   string
	TokenHash []byte
	Email     string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Membership makes an account a member of an organization with one of OrgRoles.
type Membership struct {
	OrganizationID string    `json:"organization_id"`
	AccountID      string    `json:"account_id"`
	Role           string    `json:"role"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Member is a Membership with the member's account details, for listings.
type Member struct {
	Membership
	Email      string `json:"email"`
	Name       string `json:"name"`
	MFAEnabled bool   `json:"mfa_enabled"`
}

// OrganizationMembership is an organization seen from one of its members.
type OrganizationMembership struct {
	Organization Organization `json:"organization"`
	Role         string       `json:"role"`
}

// Invitation asks the owner of Email to join an organization with Role. Only the SHA-256 of
// its token is stored; it is single-use and expires.
type Invitation struct {
	ID             string     `json:"id"`
	OrganizationID string     `json:"organization_id"`
	Email          string     `json:"email"`
	Role           string     `json:"role"`
	TokenHash      []byte     `json:"-"`
	InvitedBy      string     `json:"invited_by"` // account id
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	AcceptedAt     *time.Time `json:"accepted_at,omitempty"`
	AcceptedBy     string     `json:"accepted_by,omitempty"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
}

// Operator is an account with operator rights over the whole installation.
type Operator struct {
	AccountID string    `json:"account_id"`
	Role      string    `json:"role"`
	GrantedAt time.Time `json:"granted_at"`
	GrantedBy string    `json:"granted_by"`
}

// Throttle counts recent failures of one kind of authentication attempt for one key (an
// email address's hash, a client IP, an account's second factor). internal/manage decides
// the delays and locks from it.
type Throttle struct {
	Key           string
	Failures      int
	LastFailureAt time.Time
	LockedUntil   *time.Time
}

// The states of an OutboxMail.
const (
	MailPending = "pending"
	MailSent    = "sent"
	MailFailed  = "failed" // gave up after the last retry, or the provider refused it for good
)

// OutboxMail is one email waiting in (or gone through) the durable outbox. Payload is the
// sealed (internal/seal, purpose "mail", row id = ID) JSON of the template data, which may
// hold single-use links; it is emptied once the message is sent, except by the development
// mailer, which keeps it to show the message.
type OutboxMail struct {
	ID            string
	To            string
	Template      string
	Payload       string
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	ProviderID    string
	CreatedAt     time.Time
	SentAt        *time.Time
}

// The actor types of an AuditEntry.
const (
	ActorAccount   = "account"   // a signed-in account (session or access token)
	ActorOperator  = "operator"  // an account acting through an operator role
	ActorAPIKey    = "api_key"   // a project API key
	ActorCLI       = "cli"       // a command run on a node (ActorID: the OS user)
	ActorAnonymous = "anonymous" // not signed in (sign-in attempts, sign-up)
	ActorSystem    = "system"    // Thauth itself
)

// AuditEntry is one record of the tamper-evident audit log. Entries form one hash chain per
// Chain: the organization id they concern, or "" for installation-level events (accounts,
// operators). Seq numbers a chain from 1 without gaps; Hash = AuditHash(entry) covers every
// field and PrevHash, the Hash of the previous entry of the chain (32 zero bytes for the
// first). Entries are never updated. Data is a JSON object of details; it never holds a
// secret (credentials appear by id only).
type AuditEntry struct {
	ID             string    `json:"id"`
	Chain          string    `json:"-"`
	Seq            int64     `json:"seq"`
	At             time.Time `json:"at"`
	ActorType      string    `json:"actor_type"`
	ActorID        string    `json:"actor_id,omitempty"`
	OrganizationID string    `json:"organization_id,omitempty"`
	AccountID      string    `json:"account_id,omitempty"`
	Action         string    `json:"action"`
	Target         string    `json:"target,omitempty"`
	IP             string    `json:"ip,omitempty"`
	UserAgent      string    `json:"user_agent,omitempty"`
	Data           string    `json:"data,omitempty"`
	PrevHash       []byte    `json:"-"`
	Hash           []byte    `json:"-"`
}

// AuditHash returns the hash that chains e: SHA-256 over a length-prefixed encoding of every
// field except Hash (times as Unix microseconds), PrevHash included.
func AuditHash(e *AuditEntry) []byte {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put("thauth-audit-v1")
	put(e.ID)
	put(e.Chain)
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.At.UnixMicro()))
	h.Write(n[:])
	for _, s := range []string{e.ActorType, e.ActorID, e.OrganizationID, e.AccountID, e.Action, e.Target, e.IP, e.UserAgent, e.Data} {
		put(s)
	}
	put(string(e.PrevHash))
	return h.Sum(nil)
}

// AuditFilter selects audit entries for a listing, newest first. Exactly one of
// OrganizationID (that organization's chain) and AccountID (entries of the installation
// chain "" whose AccountID is that account: its sign-ins, MFA and password changes, sessions
// and tokens) is set. Before, when > 0, is a cursor: only entries with Seq < Before come
// back. Limit is 1–1000.
type AuditFilter struct {
	OrganizationID string
	AccountID      string
	Action         string // exact action, or prefix ending in "." ("auth."); "" for any
	ActorID        string // exact AuditEntry.ActorID (an account, API key or CLI user); "" for any
	Before         int64
	Limit          int
}
