package manage

import (
	"context"
	"slices"
	"strings"

	"github.com/thauth/thauth"
)

// Operators are the people who run the installation. Their roles (support, operator,
// superadmin) are granted only from the CLI on a node, assigned globally in the system
// project (so they apply in every organization's tenant), usable only from a session signed
// in with two-factor authentication, and every use is audited (operator.access).

// OperatorAccount is an operator grant with the account's email and whether it has enabled
// two-factor authentication (without which the grant cannot be used).
type OperatorAccount struct {
	thauth.Operator
	Email      string `json:"email"`
	MFAEnabled bool   `json:"mfa_enabled"`
}

var errNoSuchAccount = thauth.Errorf(thauth.ENotFound, "no account with this email")

// orgCLIUser is the audit actor id of a CLI caller: grantedBy without its "cli:" prefix.
func orgCLIUser(by string) string {
	if u := strings.TrimPrefix(by, "cli:"); u != "" {
		return u
	}
	return "unknown"
}

// orgAccountByEmail finds the account of an address given on the command line.
func (s *Service) orgAccountByEmail(ctx context.Context, email string) (*thauth.Account, error) {
	addr, err := acctNormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	acct, err := s.store.GetAccountByEmail(ctx, addr)
	if thauth.ErrorCodeOf(err) == thauth.ENotFound {
		return nil, errNoSuchAccount
	}
	if err != nil {
		return nil, storeError(err, "could not read the account")
	}
	return acct, nil
}

// GrantOperator gives the account with this email the operator role role (one of
// thauth.OperatorRoles; EInvalid otherwise), replacing a previous operator role. ENotFound
// "no account with this email". grantedBy names who granted it ("cli:<OS user>"); it is
// stored and audited (operator.granted, actor type cli). The grant works only once the
// account signs in with two-factor authentication, but it may be given before.
func (s *Service) GrantOperator(ctx context.Context, email, role, grantedBy string) (*thauth.Operator, error) {
	if !slices.Contains(thauth.OperatorRoles, role) {
		return nil, thauth.Errorf(thauth.EInvalid, "unknown operator role %q: use one of %s", role,
			strings.Join(thauth.OperatorRoles, ", "))
	}
	acct, err := s.orgAccountByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	var (
		op       *thauth.Operator
		secEvent *thauth.SecurityEvent
		fan      securityFanOut
	)
	err = s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		previous := ""
		if cur, err := tx.GetOperator(ctx, acct.ID); err == nil {
			previous = cur.Role
		} else if thauth.ErrorCodeOf(err) != thauth.ENotFound {
			return err
		}
		op = &thauth.Operator{AccountID: acct.ID, Role: role, GrantedAt: g.now, GrantedBy: grantedBy}
		if err := tx.PutOperator(ctx, op); err != nil {
			return err
		}
		if err := g.operator(ctx, acct.ID, role); err != nil {
			return err
		}
		data := map[string]string{"role": role, "email": acct.Email}
		if previous != "" {
			data["previous_role"] = previous
		}
		if err := s.appendAudit(ctx, tx, auditEvent{ActorType: thauth.ActorCLI, ActorID: orgCLIUser(grantedBy),
			AccountID: acct.ID, Action: "operator.granted", Target: acct.ID, Data: data}); err != nil {
			return err
		}
		// A new operator is a security event of the installation (abuse rule operator_granted),
		// recorded in the grant's transaction (the CLI runs without a detector): stored, mailed
		// to the operators and sent to webhooks like every other security event.
		ev := map[string]string{"account_id": acct.ID, "email": acct.Email, "role": role, "granted_by": grantedBy}
		if previous != "" {
			ev["previous_role"] = previous
		}
		secEvent = &thauth.SecurityEvent{Kind: "operator_granted", Severity: thauth.SeverityHigh, At: g.now,
			Title: "Operator role " + role + " granted to " + acct.Email, Evidence: securityEvidenceJSON(ev)}
		var err error
		fan, err = s.recordSecurityEventTx(ctx, tx, secEvent)
		return err
	})
	if err != nil {
		return nil, storeError(err, "could not grant the operator role")
	}
	s.securityRecorded(ctx, secEvent, fan)
	s.log.InfoContext(ctx, "operator role granted", "account_id", acct.ID, "role", role)
	return op, nil
}

// RevokeOperator removes the operator role of the account with this email. ENotFound "no
// account with this email", or "this account is not an operator". revokedBy is audited like
// GrantOperator's grantedBy (operator.revoked).
func (s *Service) RevokeOperator(ctx context.Context, email, revokedBy string) error {
	acct, err := s.orgAccountByEmail(ctx, email)
	if err != nil {
		return err
	}
	err = s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		cur, err := tx.GetOperator(ctx, acct.ID)
		if thauth.ErrorCodeOf(err) == thauth.ENotFound {
			return thauth.Errorf(thauth.ENotFound, "this account is not an operator")
		}
		if err != nil {
			return err
		}
		if err := tx.DeleteOperator(ctx, acct.ID); err != nil {
			return err
		}
		if err := g.operator(ctx, acct.ID, ""); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, auditEvent{ActorType: thauth.ActorCLI, ActorID: orgCLIUser(revokedBy),
			AccountID: acct.ID, Action: "operator.revoked", Target: acct.ID,
			Data: map[string]string{"role": cur.Role, "email": acct.Email}})
	})
	if err != nil {
		return storeError(err, "could not revoke the operator role")
	}
	s.log.InfoContext(ctx, "operator role revoked", "account_id", acct.ID)
	return nil
}

// ListOperators returns every operator with its account's email and MFA state, by grant
// time.
func (s *Service) ListOperators(ctx context.Context) ([]OperatorAccount, error) {
	ops, err := s.store.ListOperators(ctx)
	if err != nil {
		return nil, storeError(err, "could not list the operators")
	}
	out := make([]OperatorAccount, 0, len(ops))
	for _, op := range ops {
		acct, err := s.store.GetAccount(ctx, op.AccountID)
		if err != nil {
			return nil, storeError(err, "could not read an operator's account")
		}
		out = append(out, OperatorAccount{Operator: op, Email: acct.Email, MFAEnabled: acct.MFAEnabled()})
	}
	return out, nil
}

// OperatorListOrganizations returns every customer organization to an operator (any
// operator role, checked by the engine: organization:read without a tenant, which only
// global grants can allow), from a session with two-factor authentication. EForbidden
// otherwise. Recorded as operator.access in the installation chain.
func (s *Service) OperatorListOrganizations(ctx context.Context, a Actor) ([]thauth.Organization, error) {
	if a.AccountID == "" {
		return nil, thauth.Errorf(thauth.EUnauthenticated, "sign in first")
	}
	d := thauth.ErrorDecision
	if s.opts.Decide != nil {
		d = s.opts.Decide(thauth.SystemProjectID, &thauth.CheckRequest{
			Subject: a.AccountID, Feature: "organization", Action: "read",
		}, s.now())
	}
	role, _ := strings.CutPrefix(d.Reason, "role:")
	if !d.Allowed || !slices.Contains(thauth.OperatorRoles, role) {
		return nil, thauth.Errorf(thauth.EForbidden, "this needs an operator role (reason: %s)", d.Reason)
	}
	if a.Via != ViaSession || !a.MFA {
		return nil, thauth.Errorf(thauth.EForbidden, "operator access requires a session signed in with two-factor authentication")
	}
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		return s.appendAudit(ctx, tx, auditEvent{ActorType: thauth.ActorOperator, ActorID: a.AccountID,
			AccountID: a.AccountID, Action: "operator.access", Target: "organizations", Client: a.Client,
			Data: map[string]string{"operator_role": role, "permission": "organization:read"}})
	})
	if err != nil {
		return nil, storeError(err, "could not record the operator access")
	}
	list, err := s.store.ListOrganizations(ctx)
	if err != nil {
		return nil, storeError(err, "could not list the organizations")
	}
	return list, nil
}

// AddOwner makes the account with this email an owner of organization orgID (CLI only: an
// organization created by `thauth init` has no members until one is added this way). An
// existing membership is promoted. ENotFound "no account with this email" or "organization
// not found" (the system organization included). addedBy is audited like GrantOperator's
// grantedBy (member.added in the organization's chain).
func (s *Service) AddOwner(ctx context.Context, orgID, email, addedBy string) (*thauth.Membership, error) {
	acct, err := s.orgAccountByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	if orgID == thauth.SystemOrganizationID {
		return nil, thauth.Errorf(thauth.ENotFound, "organization not found")
	}
	var m *thauth.Membership
	err = s.orgConsoleTx(ctx, func(ctx context.Context, tx thauth.Data, g *orgGrants) error {
		if _, err := tx.GetOrganization(ctx, orgID); err != nil {
			if thauth.ErrorCodeOf(err) == thauth.ENotFound {
				return thauth.Errorf(thauth.ENotFound, "organization not found")
			}
			return err
		}
		previous := ""
		if cur, err := tx.GetMembership(ctx, orgID, acct.ID); err == nil {
			previous = cur.Role
		} else if thauth.ErrorCodeOf(err) != thauth.ENotFound {
			return err
		}
		m = &thauth.Membership{OrganizationID: orgID, AccountID: acct.ID, Role: thauth.OrgRoleOwner,
			CreatedAt: g.now, UpdatedAt: g.now}
		if err := tx.PutMembership(ctx, m); err != nil {
			return err
		}
		if err := g.member(ctx, orgID, acct.ID, thauth.OrgRoleOwner); err != nil {
			return err
		}
		data := map[string]string{"role": thauth.OrgRoleOwner, "email": acct.Email}
		if previous != "" {
			data["previous_role"] = previous
		}
		return s.appendAudit(ctx, tx, auditEvent{Chain: orgID, ActorType: thauth.ActorCLI, ActorID: orgCLIUser(addedBy),
			OrgID: orgID, AccountID: acct.ID, Action: "member.added", Target: acct.ID, Data: data})
	})
	if err != nil {
		return nil, storeError(err, "could not add the owner")
	}
	s.log.InfoContext(ctx, "owner added from the command line", "organization_id", orgID, "account_id", acct.ID)
	return m, nil
}
