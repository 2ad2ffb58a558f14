package postgres

import (
	"context"

	"github.com/thauth/thauth"
)

// Organizations' settings, members and invitations, and the installation's operators.

// UpdateOrganization writes org's Name and RequireMFA; ENotFound if it does not exist.
func (d *data) UpdateOrganization(ctx context.Context, org *thauth.Organization) error {
	tag, err := d.q.Exec(ctx, `UPDATE organizations SET name = $1, require_mfa = $2 WHERE id = $3`,
		org.Name, boolInt(org.RequireMFA), org.ID)
	return affected(tag, err, "organization")
}

const organizationColumns = `o.id, o.name, o.created_at, o.require_mfa, o.suspended_at, o.suspended_reason`

// scanOrganization scans organizationColumns, then extra.
func scanOrganization(sc rowScanner, extra ...any) (thauth.Organization, error) {
	var o thauth.Organization
	var mfa int32
	err := sc.Scan(append([]any{&o.ID, &o.Name, &o.CreatedAt, &mfa, &o.SuspendedAt, &o.SuspendedReason}, extra...)...)
	o.CreatedAt, o.RequireMFA, o.SuspendedAt = o.CreatedAt.UTC(), mfa != 0, utcPtr(o.SuspendedAt)
	return o, err
}

// ListOrganizations returns every organization but the system one, by creation time then id.
func (d *data) ListOrganizations(ctx context.Context) ([]thauth.Organization, error) {
	rows, err := d.q.Query(ctx, `SELECT `+organizationColumns+` FROM organizations o WHERE o.id <> $1 ORDER BY o.created_at, o.id`,
		thauth.SystemOrganizationID)
	return collect(rows, err, "cannot list organizations", func(sc rowScanner) (thauth.Organization, error) {
		return scanOrganization(sc)
	})
}

// ---- memberships ----

// PutMembership inserts m or updates its role and UpdatedAt (the stored CreatedAt stays and
// is copied into m); ENotFound if the organization or the account does not exist.
func (d *data) PutMembership(ctx context.Context, m *thauth.Membership) error {
	m.CreatedAt, m.UpdatedAt = normTime(m.CreatedAt), normTime(m.UpdatedAt)
	err := d.q.QueryRow(ctx, `INSERT INTO memberships (organization_id, account_id, role, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (organization_id, account_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at
		RETURNING created_at`,
		m.OrganizationID, m.AccountID, m.Role, m.CreatedAt, m.UpdatedAt).Scan(&m.CreatedAt)
	if isForeignKeyViolation(err) {
		return thauth.Errorf(thauth.ENotFound, "organization or account not found")
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return mapErr(err, "cannot write membership")
}

const membershipColumns = `m.organization_id, m.account_id, m.role, m.created_at, m.updated_at`

// scanMembership scans membershipColumns, then extra.
func scanMembership(sc rowScanner, extra ...any) (thauth.Membership, error) {
	var m thauth.Membership
	err := sc.Scan(append([]any{&m.OrganizationID, &m.AccountID, &m.Role, &m.CreatedAt, &m.UpdatedAt}, extra...)...)
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return m, err
}

func (d *data) GetMembership(ctx context.Context, orgID, accountID string) (*thauth.Membership, error) {
	m, err := scanMembership(d.q.QueryRow(ctx, `SELECT `+membershipColumns+` FROM memberships m
		WHERE m.organization_id = $1 AND m.account_id = $2`, orgID, accountID))
	if err != nil {
		return nil, notFound(err, "membership")
	}
	return &m, nil
}

// DeleteMembership removes the account from the organization; ENotFound if it is not a
// member.
func (d *data) DeleteMembership(ctx context.Context, orgID, accountID string) error {
	tag, err := d.q.Exec(ctx, `DELETE FROM memberships WHERE organization_id = $1 AND account_id = $2`, orgID, accountID)
	return affected(tag, err, "membership")
}

// ListMembers returns the organization's members with their account details, by membership
// creation time then account id; an unknown organization has none.
func (d *data) ListMembers(ctx context.Context, orgID string) ([]thauth.Member, error) {
	rows, err := d.q.Query(ctx, `SELECT `+membershipColumns+`, a.email, a.name, a.totp_enabled_at IS NOT NULL
		FROM memberships m JOIN accounts a ON a.id = m.account_id
		WHERE m.organization_id = $1 ORDER BY m.created_at, m.account_id`, orgID)
	return collect(rows, err, "cannot list members", func(sc rowScanner) (thauth.Member, error) {
		var mb thauth.Member
		var err error
		mb.Membership, err = scanMembership(sc, &mb.Email, &mb.Name, &mb.MFAEnabled)
		return mb, err
	})
}

// ListAccountOrganizations returns the account's organizations with its role, by
// organization name then id.
func (d *data) ListAccountOrganizations(ctx context.Context, accountID string) ([]thauth.OrganizationMembership, error) {
	rows, err := d.q.Query(ctx, `SELECT `+organizationColumns+`, m.role
		FROM memberships m JOIN organizations o ON o.id = m.organization_id
		WHERE m.account_id = $1 ORDER BY o.name, o.id`, accountID)
	return collect(rows, err, "cannot list organizations", func(sc rowScanner) (thauth.OrganizationMembership, error) {
		var om thauth.OrganizationMembership
		var err error
		om.Organization, err = scanOrganization(sc, &om.Role)
		return om, err
	})
}

// ---- invitations ----

const invitationColumns = `id, organization_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at,
	accepted_by, revoked_at`

func scanInvitation(sc rowScanner) (thauth.Invitation, error) {
	var inv thauth.Invitation
	err := sc.Scan(&inv.ID, &inv.OrganizationID, &inv.Email, &inv.Role, &inv.TokenHash, &inv.InvitedBy, &inv.CreatedAt,
		&inv.ExpiresAt, &inv.AcceptedAt, &inv.AcceptedBy, &inv.RevokedAt)
	inv.CreatedAt, inv.ExpiresAt = inv.CreatedAt.UTC(), inv.ExpiresAt.UTC()
	inv.AcceptedAt, inv.RevokedAt = utcPtr(inv.AcceptedAt), utcPtr(inv.RevokedAt)
	return inv, err
}

// CreateInvitation inserts inv into organization orgID (setting inv.OrganizationID);
// EConflict if its id or token hash is taken, ENotFound if the organization does not exist.
func (d *data) CreateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	inv.OrganizationID = orgID
	inv.CreatedAt, inv.ExpiresAt = normTime(inv.CreatedAt), normTime(inv.ExpiresAt)
	normOptTime(&inv.AcceptedAt)
	normOptTime(&inv.RevokedAt)
	_, err := d.q.Exec(ctx, `INSERT INTO invitations (`+invitationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		inv.ID, orgID, inv.Email, inv.Role, nonNilBytes(inv.TokenHash), inv.InvitedBy, inv.CreatedAt, inv.ExpiresAt,
		nullTime(inv.AcceptedAt), inv.AcceptedBy, nullTime(inv.RevokedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "an invitation with this id or token already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "organization not found")
	}
	return mapErr(err, "cannot create invitation")
}

// ListInvitations returns the organization's invitations, newest first (ties by id,
// descending); an unknown organization has none.
func (d *data) ListInvitations(ctx context.Context, orgID string) ([]thauth.Invitation, error) {
	rows, err := d.q.Query(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE organization_id = $1
		ORDER BY created_at DESC, id DESC`, orgID)
	return collect(rows, err, "cannot list invitations", scanInvitation)
}

func (d *data) GetInvitation(ctx context.Context, orgID, invitationID string) (*thauth.Invitation, error) {
	inv, err := scanInvitation(d.q.QueryRow(ctx, `SELECT `+invitationColumns+` FROM invitations
		WHERE organization_id = $1 AND id = $2`, orgID, invitationID))
	if err != nil {
		return nil, notFound(err, "invitation")
	}
	return &inv, nil
}

func (d *data) GetInvitationByHash(ctx context.Context, hash []byte) (*thauth.Invitation, error) {
	inv, err := scanInvitation(d.q.QueryRow(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE token_hash = $1`,
		nonNilBytes(hash)))
	if err != nil {
		return nil, notFound(err, "invitation")
	}
	return &inv, nil
}

// UpdateInvitation writes AcceptedAt, AcceptedBy and RevokedAt; ENotFound if the invitation
// is not the organization's.
func (d *data) UpdateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	normOptTime(&inv.AcceptedAt)
	normOptTime(&inv.RevokedAt)
	tag, err := d.q.Exec(ctx, `UPDATE invitations SET accepted_at = $1, accepted_by = $2, revoked_at = $3
		WHERE organization_id = $4 AND id = $5`,
		nullTime(inv.AcceptedAt), inv.AcceptedBy, nullTime(inv.RevokedAt), orgID, inv.ID)
	return affected(tag, err, "invitation")
}

// ---- operators ----

const operatorColumns = `account_id, role, granted_at, granted_by`

func scanOperator(sc rowScanner) (thauth.Operator, error) {
	var op thauth.Operator
	err := sc.Scan(&op.AccountID, &op.Role, &op.GrantedAt, &op.GrantedBy)
	op.GrantedAt = op.GrantedAt.UTC()
	return op, err
}

// PutOperator inserts op or updates its role and grant; ENotFound if the account does not
// exist.
func (d *data) PutOperator(ctx context.Context, op *thauth.Operator) error {
	op.GrantedAt = normTime(op.GrantedAt)
	_, err := d.q.Exec(ctx, `INSERT INTO operators (`+operatorColumns+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_id) DO UPDATE SET role = excluded.role, granted_at = excluded.granted_at, granted_by = excluded.granted_by`,
		op.AccountID, op.Role, op.GrantedAt, op.GrantedBy)
	if isForeignKeyViolation(err) {
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return mapErr(err, "cannot write operator")
}

func (d *data) GetOperator(ctx context.Context, accountID string) (*thauth.Operator, error) {
	op, err := scanOperator(d.q.QueryRow(ctx, `SELECT `+operatorColumns+` FROM operators WHERE account_id = $1`, accountID))
	if err != nil {
		return nil, notFound(err, "operator")
	}
	return &op, nil
}

// ListOperators returns every operator by grant time then account id.
func (d *data) ListOperators(ctx context.Context) ([]thauth.Operator, error) {
	rows, err := d.q.Query(ctx, `SELECT `+operatorColumns+` FROM operators ORDER BY granted_at, account_id`)
	return collect(rows, err, "cannot list operators", scanOperator)
}

// DeleteOperator revokes the account's operator grant; ENotFound if it has none.
func (d *data) DeleteOperator(ctx context.Context, accountID string) error {
	tag, err := d.q.Exec(ctx, `DELETE FROM operators WHERE account_id = $1`, accountID)
	return affected(tag, err, "operator")
}
