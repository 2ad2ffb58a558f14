package manage

import (
	"context"
	"encoding/json"

	"github.com/thauth/thauth"
)

// The mail templates (internal/mail renders them) and the payload keys each uses. Every
// payload is a flat map of strings; links carry their single-use token in the URL fragment,
// which browsers never send to a server, so tokens stay out of access logs and Referer
// headers.
//
//	verify_email     link, name, purpose ("signup" or "change")
//	password_reset   link, name
//	invitation       link, organization, role, inviter
//	new_sign_in      name, ip, user_agent, time
//	mfa_changed      name, change ("enabled", "disabled", "recovery codes regenerated",
//	                 "recovery code used"), time
//	security_alert   name, title, detail, time
//	incident_notice  name, organization, subject, message, incident (an operator's notice)
const (
	MailVerifyEmail   = "verify_email"
	MailPasswordReset = "password_reset"
	MailInvitation    = "invitation"
	MailNewSignIn     = "new_sign_in"
	MailMFAChanged    = "mfa_changed"
	MailSecurityAlert = "security_alert"
)

// MailIncidentNotice is an operator's notice to an organization's owners (thauth operator
// notify); its payload keys are in the list above.
const MailIncidentNotice = "incident_notice"

// MailPurpose is the seal purpose of outbox payloads (internal/mail opens them with it).
const MailPurpose = "mail"

// enqueueMail queues a message to to through d (inside the operation's transaction: the
// message is sent if and only if the operation commits). The payload is sealed, since it
// may hold a single-use link. The caller calls s.mailQueued after the commit.
func (s *Service) enqueueMail(ctx context.Context, d thauth.Data, to, template string, payload map[string]string) error {
	if s.opts.Sealer == nil {
		return errNoSealer
	}
	id, err := newID()
	if err != nil {
		return err
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return thauth.Internal(err, "could not queue the email")
	}
	sealed, err := s.opts.Sealer.Seal(MailPurpose, id, b)
	if err != nil {
		return thauth.Internal(err, "could not queue the email")
	}
	now := s.clock()
	return d.EnqueueMail(ctx, &thauth.OutboxMail{
		ID: id, To: to, Template: template, Payload: sealed, Status: thauth.MailPending,
		NextAttemptAt: now, CreatedAt: now,
	})
}

// mailQueued wakes the outbox worker after a commit that queued mail.
func (s *Service) mailQueued() {
	if s.opts.MailQueued != nil {
		s.opts.MailQueued()
	}
}

// errNoSealer answers operations that must store a secret when the node has no master key.
var errNoSealer = thauth.Errorf(thauth.EUnavailable,
	"secret storage is not configured: start the server with a master key (THAUTH_MASTER_KEY or --master-key-file)")

// link returns an absolute console link with token in the fragment.
func (s *Service) link(path, token string) string {
	return s.opts.PublicURL + path + "#token=" + token
}
