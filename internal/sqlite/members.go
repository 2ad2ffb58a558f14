package sqlite

import (
	"context"
	"database/sql"

	"github.com/thauth/thauth"
)

// Organizations' settings, members and invitations, and the installation's operators.

// UpdateOrganization writes org's Name and RequireMFA; ENotFound if it does not exist.
func (d *data) UpdateOrganization(ctx context.Context, org *thauth.Organization) error {
	res, err := d.exec(ctx, `UPDATE organizations SET name = ?, require_mfa = ? WHERE id = ?`,
		org.Name, boolInt(org.RequireMFA), org.ID)
	return affected(res, err, "organization")
}

const organizationColumns = `o.id, o.name, o.created_at, o.require_mfa, o.suspended_at, o.suspended_reason`

func scanOrganization(sc scanner, extra ...any) (thauth.Organization, error) {
	var o thauth.Organization
	var created, mfa int64
	var suspended sql.NullInt64
	err := sc.Scan(append([]any{&o.ID, &o.Name, &created, &mfa, &suspended, &o.SuspendedReason}, extra...)...)
	o.CreatedAt, o.RequireMFA, o.SuspendedAt = fromMicros(created), mfa != 0, fromNullMicros(suspended)
	return o, err
}

// ListOrganizations returns every organization but the system one, by creation time then id.
func (d *data) ListOrganizations(ctx context.Context) ([]thauth.Organization, error) {
	rows, err := d.query(ctx, `SELECT `+organizationColumns+` FROM organizations o WHERE o.id <> ? ORDER BY o.created_at, o.id`,
		thauth.SystemOrganizationID)
	return collect(rows, err, "cannot list organizations", func(sc scanner) (thauth.Organization, error) {
		return scanOrganization(sc)
	})
}

// ---- memberships ----

// PutMembership inserts m or updates its role and UpdatedAt (the stored CreatedAt stays and
// is copied into m); ENotFound if the organization or the account does not exist.
func (d *data) PutMembership(ctx context.Context, m *thauth.Membership) error {
	m.CreatedAt, m.UpdatedAt = normTime(m.CreatedAt), normTime(m.UpdatedAt)
	var created int64
	err := d.queryRow(ctx, `INSERT INTO memberships (organization_id, account_id, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (organization_id, account_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at
		RETURNING created_at`,
		[]any{m.OrganizationID, m.AccountID, m.Role, micros(m.CreatedAt), micros(m.UpdatedAt)}, &created)
	if isForeignKeyViolation(err) {
		return thauth.Errorf(thauth.ENotFound, "organization or account not found")
	}
	if err != nil {
		return mapErr(err, "cannot write membership")
	}
	m.CreatedAt = fromMicros(created)
	return nil
}

const membershipColumns = `m.organization_id, m.account_id, m.role, m.created_at, m.updated_at`

func scanMembership(sc scanner, extra ...any) (thauth.Membership, error) {
	var m thauth.Membership
	var created, updated int64
	err := sc.Scan(append([]any{&m.OrganizationID, &m.AccountID, &m.Role, &created, &updated}, extra...)...)
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	return m, err
}

func (d *data) GetMembership(ctx context.Context, orgID, accountID string) (*thauth.Membership, error) {
	st, err := d.stmt(ctx, `SELECT `+membershipColumns+` FROM memberships m WHERE m.organization_id = ? AND m.account_id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read membership")
	}
	m, err := scanMembership(st.QueryRowContext(ctx, orgID, accountID))
	if err != nil {
		return nil, notFound(err, "membership")
	}
	return &m, nil
}

// DeleteMembership removes the account from the organization; ENotFound if it is not a
// member.
func (d *data) DeleteMembership(ctx context.Context, orgID, accountID string) error {
	res, err := d.exec(ctx, `DELETE FROM memberships WHERE organization_id = ? AND account_id = ?`, orgID, accountID)
	return affected(res, err, "membership")
}

// ListMembers returns the organization's members with their account details, by membership
// creation time then account id; an unknown organization has none.
func (d *data) ListMembers(ctx context.Context, orgID string) ([]thauth.Member, error) {
	rows, err := d.query(ctx, `SELECT `+membershipColumns+`, a.email, a.name, a.totp_enabled_at IS NOT NULL
		FROM memberships m JOIN accounts a ON a.id = m.account_id
		WHERE m.organization_id = ? ORDER BY m.created_at, m.account_id`, orgID)
	return collect(rows, err, "cannot list members", func(sc scanner) (thauth.Member, error) {
		var mb thauth.Member
		var mfa int64
		var err error
		mb.Membership, err = scanMembership(sc, &mb.Email, &mb.Name, &mfa)
		mb.MFAEnabled = mfa != 0
		return mb, err
	})
}

// ListAccountOrganizations returns the account's organizations with its role, by
// organization name then id.
func (d *data) ListAccountOrganizations(ctx context.Context, accountID string) ([]thauth.OrganizationMembership, error) {
	rows, err := d.query(ctx, `SELECT `+organizationColumns+`, m.role
		FROM memberships m JOIN organizations o ON o.id = m.organization_id
		WHERE m.account_id = ? ORDER BY o.name, o.id`, accountID)
	return collect(rows, err, "cannot list organizations", func(sc scanner) (thauth.OrganizationMembership, error) {
		var om thauth.OrganizationMembership
		var err error
		om.Organization, err = scanOrganization(sc, &om.Role)
		return om, err
	})
}

// ---- invitations ----

const invitationColumns = `id, organization_id, email, role, token_hash, invited_by, created_at, expires_at, accepted_at,
	accepted_by, revoked_at`

func scanInvitation(sc scanner) (thauth.Invitation, error) {
	var inv thauth.Invitation
	var created, expires int64
	var accepted, revoked sql.NullInt64
	err := sc.Scan(&inv.ID, &inv.OrganizationID, &inv.Email, &inv.Role, &inv.TokenHash, &inv.InvitedBy, &created, &expires,
		&accepted, &inv.AcceptedBy, &revoked)
	inv.CreatedAt, inv.ExpiresAt = fromMicros(created), fromMicros(expires)
	inv.AcceptedAt, inv.RevokedAt = fromNullMicros(accepted), fromNullMicros(revoked)
	return inv, err
}

// CreateInvitation inserts inv into organization orgID (setting inv.OrganizationID);
// EConflict if its id or token hash is taken, ENotFound if the organization does not exist.
func (d *data) CreateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	inv.OrganizationID = orgID
	inv.CreatedAt, inv.ExpiresAt = normTime(inv.CreatedAt), normTime(inv.ExpiresAt)
	normOptTime(&inv.AcceptedAt)
	normOptTime(&inv.RevokedAt)
	_, err := d.exec(ctx, `INSERT INTO invitations (`+invitationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.ID, orgID, inv.Email, inv.Role, inv.TokenHash, inv.InvitedBy, micros(inv.CreatedAt), micros(inv.ExpiresAt),
		nullMicros(inv.AcceptedAt), inv.AcceptedBy, nullMicros(inv.RevokedAt))
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
	rows, err := d.query(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE organization_id = ? ORDER BY created_at DESC, id DESC`, orgID)
	return collect(rows, err, "cannot list invitations", scanInvitation)
}

func (d *data) getInvitation(ctx context.Context, query string, args ...any) (*thauth.Invitation, error) {
	st, err := d.stmt(ctx, `SELECT `+invitationColumns+` FROM invitations WHERE `+query)
	if err != nil {
		return nil, mapErr(err, "cannot read invitation")
	}
	inv, err := scanInvitation(st.QueryRowContext(ctx, args...))
	if err != nil {
		return nil, notFound(err, "invitation")
	}
	return &inv, nil
}

func (d *data) GetInvitation(ctx context.Context, orgID, invitationID string) (*thauth.Invitation, error) {
	return d.getInvitation(ctx, `organization_id = ? AND id = ?`, orgID, invitationID)
}

func (d *data) GetInvitationByHash(ctx context.Context, hash []byte) (*thauth.Invitation, error) {
	return d.getInvitation(ctx, `token_hash = ?`, hash)
}

// UpdateInvitation writes AcceptedAt, AcceptedBy and RevokedAt; ENotFound if the invitation
// is not the organization's.
func (d *data) UpdateInvitation(ctx context.Context, orgID string, inv *thauth.Invitation) error {
	normOptTime(&inv.AcceptedAt)
	normOptTime(&inv.RevokedAt)
	res, err := d.exec(ctx, `UPDATE invitations SET accepted_at = ?, accepted_by = ?, revoked_at = ? WHERE organization_id = ? AND id = ?`,
		nullMicros(inv.AcceptedAt), inv.AcceptedBy, nullMicros(inv.RevokedAt), orgID, inv.ID)
	return affected(res, err, "invitation")
}

// ---- operators ----

const operatorColumns = `account_id, role, granted_at, granted_by`

func scanOperator(sc scanner) (thauth.Operator, error) {
	var op thauth.Operator
	var granted int64
	err := sc.Scan(&op.AccountID, &op.Role, &granted, &op.GrantedBy)
	op.GrantedAt = fromMicros(granted)
	return op, err
}

// PutOperator inserts op or updates its role and grant; ENotFound if the account does not
// exist.
func (d *data) PutOperator(ctx context.Context, op *thauth.Operator) error {
	op.GrantedAt = normTime(op.GrantedAt)
	_, err := d.exec(ctx, `INSERT INTO operators (`+operatorColumns+`) VALUES (?, ?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET role = excluded.role, granted_at = excluded.granted_at, granted_by = excluded.granted_by`,
		op.AccountID, op.Role, micros(op.GrantedAt), op.GrantedBy)
	if isForeignKeyViolation(err) {
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return mapErr(err, "cannot write operator")
}

func (d *data) GetOperator(ctx context.Context, accountID string) (*thauth.Operator, error) {
	st, err := d.stmt(ctx, `SELECT `+operatorColumns+` FROM operators WHERE account_id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read operator")
	}
	op, err := scanOperator(st.QueryRowContext(ctx, accountID))
	if err != nil {
		return nil, notFound(err, "operator")
	}
	return &op, nil
}

// ListOperators returns every operator by grant time then account id.
func (d *data) ListOperators(ctx context.Context) ([]thauth.Operator, error) {
	rows, err := d.query(ctx, `SELECT `+operatorColumns+` FROM operators ORDER BY granted_at, account_id`)
	return collect(rows, err, "cannot list operators", scanOperator)
}

// DeleteOperator revokes the account's operator grant; ENotFound if it has none.
func (d *data) DeleteOperator(ctx context.Context, accountID string) error {
	res, err := d.exec(ctx, `DELETE FROM operators WHERE account_id = ?`, accountID)
	return affected(res, err, "operator")
}
