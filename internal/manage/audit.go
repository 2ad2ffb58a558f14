package manage

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/thauth/thauth"
)

// Actor is who performs a console operation: an account signed in through a session or
// using a personal access token, or a command run on a node (Via "cli", no account).
type Actor struct {
	AccountID string
	SessionID string // when Via is "session"
	TokenID   string // when Via is "token"
	Via       string // "session", "token" or "cli"
	// MFA is true when the second factor backs this request: verified in the session, or,
	// for a token, enabled on the account (tokens are created from such sessions).
	MFA bool
	// Scopes of the access token (Via "token"); nil otherwise.
	Scopes []string
	Client ClientInfo
	// CLIUser names the operating-system user of a Via "cli" actor, for the audit log.
	CLIUser string
}

// The ways an Actor is authenticated.
const (
	ViaSession = "session"
	ViaToken   = "token"
	ViaCLI     = "cli"
)

// ClientInfo describes the client of a request, for sessions, throttles and the audit log.
type ClientInfo struct {
	IP        string
	UserAgent string
}

// auditEvent is what an operation records; appendAudit fills in the id, time and chain.
type auditEvent struct {
	Chain     string // organization id, or "" for the installation chain
	ActorType string
	ActorID   string
	OrgID     string
	AccountID string // the account the event is about (its activity), if any
	Action    string
	Target    string
	Client    ClientInfo
	Data      map[string]string // details; never a secret
}

// appendAudit appends ev to the audit log through d (inside the operation's transaction,
// so that the record and the change commit together).
func (s *Service) appendAudit(ctx context.Context, d thauth.Data, ev auditEvent) error {
	id, err := newID()
	if err != nil {
		return err
	}
	e := &thauth.AuditEntry{
		ID:             id,
		Chain:          ev.Chain,
		At:             s.clock(),
		ActorType:      ev.ActorType,
		ActorID:        ev.ActorID,
		OrganizationID: ev.OrgID,
		AccountID:      ev.AccountID,
		Action:         ev.Action,
		Target:         ev.Target,
		IP:             ev.Client.IP,
		UserAgent:      truncate(strings.ToValidUTF8(ev.Client.UserAgent, "\uFFFD"), 300),
	}
	if len(ev.Data) > 0 {
		b, err := json.Marshal(ev.Data)
		if err != nil {
			return thauth.Internal(err, "could not record the audit entry")
		}
		e.Data = string(b)
	}
	if err := d.AppendAudit(ctx, e); err != nil {
		return err
	}
	return nil
}

// actorOf returns the audit actor type and id of a.
func actorOf(a Actor) (typ, id string) {
	if a.Via == ViaCLI {
		return thauth.ActorCLI, a.CLIUser
	}
	return thauth.ActorAccount, a.AccountID
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
