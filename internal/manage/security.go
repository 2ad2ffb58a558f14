package manage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/thauth/thauth"
)

// Security events: what internal/abuse (or an operator) noticed, recorded per organization,
// mailed to the people who can act on it and fanned out to the organization's webhooks.
//
// RecordSecurityEvent does all of it in one transaction — the event, one security_alert
// mail per recipient, one pending webhook delivery per endpoint that wants the event, and
// the audit entry — so an event is either told to everyone it concerns or recorded nowhere;
// the mail and webhook workers deliver afterwards, with their own retries. Nothing here waits
// on a network: the cost per event is a handful of store writes, so a burst of events (the
// detector's cool-downs already bound their rate) is cheap.
//
// Webhook payloads are built here, not by internal/webhook (siblings do not import each
// other), in exactly the envelope webhook.NewPayload produces:
// {"type": "security.<kind>", "timestamp": RFC 3339 UTC, "data": the event}.

// SecurityEventTypePrefix starts the webhook event type of every security event:
// "security." + kind.
const SecurityEventTypePrefix = "security."

// Bounds of a security event and of a listing.
const (
	maxSecurityKindChars      = 64
	maxSecurityTitleChars     = 500
	maxSecurityEvidence       = 8 << 10
	DefaultSecurityEventsPage = 50
	MaxSecurityEventsPage     = 1000
)

// securitySeverities are the severities an event may have, least urgent first.
var securitySeverities = []string{thauth.SeverityLow, thauth.SeverityMedium, thauth.SeverityHigh, thauth.SeverityCritical}

// securityValidKind reports whether k can be an event kind: 1–64 of [a-z0-9_], starting
// with a letter (it becomes part of a webhook event type that receivers match on).
func securityValidKind(k string) bool {
	if k == "" || len(k) > maxSecurityKindChars || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// securityEvidenceJSON encodes evidence for a SecurityEvent (the inverse of
// securityEvidence); a map of strings always encodes.
func securityEvidenceJSON(m map[string]string) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// securityEvidence parses an event's evidence: "" is an empty object; anything else must be
// a JSON object of strings of at most 8 KiB.
func securityEvidence(raw string) (map[string]string, error) {
	if raw == "" {
		return map[string]string{}, nil
	}
	if len(raw) > maxSecurityEvidence {
		return nil, thauth.Errorf(thauth.EInvalid, "security event evidence is larger than %d bytes", maxSecurityEvidence)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m == nil {
		return nil, thauth.Errorf(thauth.EInvalid, "security event evidence must be a JSON object of strings")
	}
	return m, nil
}

// RecordSecurityEvent stores ev (filling ID and At when empty) and, in the same
// transaction, queues a security_alert mail to every owner and admin of its organization —
// to every operator for an installation-level event (OrganizationID "") — enqueues one
// webhook delivery per endpoint of the organization that wants "security."+Kind, and appends
// security.event to the organization's audit chain. It returns the stored event.
//
// An event with a ProjectID but no OrganizationID is filed under the project's
// organization; one about the system organization is installation-level. EInvalid for a
// kind that is not 1–64 of [a-z0-9_], an unknown severity, an empty title or evidence that
// is not a JSON object of strings; ENotFound for an organization that does not exist. Mail
// is skipped (and logged) when the node has no Sealer. Safe for concurrent use; meant for
// background goroutines (the abuse-event consumer), not request paths.
func (s *Service) RecordSecurityEvent(ctx context.Context, ev thauth.SecurityEvent) (*thauth.SecurityEvent, error) {
	var out securityFanOut
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		var err error
		out, err = s.recordSecurityEventTx(ctx, tx, &ev)
		return err
	})
	if err != nil {
		return nil, storeError(err, "could not record the security event")
	}
	s.securityRecorded(ctx, &ev, out)
	return &ev, nil
}

// securityFanOut counts what recording one security event queued.
type securityFanOut struct {
	Mails, Deliveries int
	// MailSkipped is set when there were recipients but no Sealer to queue mail with.
	MailSkipped bool
}

// securityRecorded does what follows the commit of an event recorded with
// recordSecurityEventTx: wake the mail worker, log.
func (s *Service) securityRecorded(ctx context.Context, ev *thauth.SecurityEvent, out securityFanOut) {
	if out.Mails > 0 {
		s.mailQueued()
	}
	if out.MailSkipped {
		s.log.WarnContext(ctx, "security alert not emailed: secret storage is not configured (no master key)",
			"event_id", ev.ID, "kind", ev.Kind)
	}
	s.log.InfoContext(ctx, "security event recorded", "event_id", ev.ID, "kind", ev.Kind, "severity", ev.Severity,
		"organization_id", ev.OrganizationID, "project_id", ev.ProjectID, "mails", out.Mails,
		"webhook_deliveries", out.Deliveries)
}

// recordSecurityEventTx is RecordSecurityEvent inside the caller's transaction tx (for
// operations that raise an event as part of their own write, such as an operator grant):
// it validates and completes *ev, stores it and queues its mail, webhook deliveries and
// audit entry through tx. After the commit the caller calls s.securityRecorded.
func (s *Service) recordSecurityEventTx(ctx context.Context, tx thauth.Data, ev *thauth.SecurityEvent) (securityFanOut, error) {
	var out securityFanOut
	evidence, err := s.securityNormalize(ev)
	if err != nil {
		return out, err
	}
	if ev.OrganizationID == thauth.SystemOrganizationID {
		ev.OrganizationID = ""
	}
	if ev.OrganizationID == "" && ev.ProjectID != "" {
		p, err := tx.GetProject(ctx, ev.ProjectID)
		switch {
		case err == nil && p.OrganizationID != thauth.SystemOrganizationID:
			ev.OrganizationID = p.OrganizationID
		case err != nil && thauth.ErrorCodeOf(err) != thauth.ENotFound:
			return out, err
		}
	}
	orgName := ""
	if ev.OrganizationID != "" {
		org, err := tx.GetOrganization(ctx, ev.OrganizationID)
		if thauth.ErrorCodeOf(err) == thauth.ENotFound {
			return out, errOrgNotFound
		}
		if err != nil {
			return out, err
		}
		orgName = org.Name
	}
	if err := tx.AppendSecurityEvent(ctx, ev); err != nil {
		return out, err
	}

	recipients, err := s.securityRecipients(ctx, tx, ev.OrganizationID)
	if err != nil {
		return out, err
	}
	if s.opts.Sealer == nil {
		out.MailSkipped = len(recipients) > 0
	} else {
		detail := securityDetail(ev, orgName, evidence)
		for _, r := range recipients {
			err := s.enqueueMail(ctx, tx, r.email, MailSecurityAlert, map[string]string{
				"name": r.name, "title": ev.Title, "detail": detail, "time": acctMailTime(ev.At),
			})
			if err != nil {
				return out, err
			}
			out.Mails++
		}
	}

	if ev.OrganizationID != "" {
		eventType := SecurityEventTypePrefix + ev.Kind
		eps, err := tx.ListWebhookEndpoints(ctx, ev.OrganizationID)
		if err != nil {
			return out, err
		}
		var ds []thauth.WebhookDelivery
		var payload []byte
		for i := range eps {
			if !webhookWants(&eps[i], eventType) {
				continue
			}
			if payload == nil {
				if payload, err = webhookPayload(eventType, ev.At, securityEventData(ev, evidence)); err != nil {
					return out, err
				}
			}
			d, err := s.webhookDelivery(&eps[i], ev.ID, eventType, payload)
			if err != nil {
				return out, err
			}
			ds = append(ds, d)
		}
		if len(ds) > 0 {
			if err := tx.EnqueueDeliveries(ctx, ev.OrganizationID, ds); err != nil {
				return out, err
			}
		}
		out.Deliveries = len(ds)
	}

	data := map[string]string{"kind": ev.Kind, "severity": ev.Severity,
		"mails": strconv.Itoa(out.Mails), "webhook_deliveries": strconv.Itoa(out.Deliveries)}
	if ev.ProjectID != "" {
		data["project_id"] = ev.ProjectID
	}
	return out, s.appendAudit(ctx, tx, auditEvent{Chain: ev.OrganizationID, ActorType: thauth.ActorSystem,
		OrgID: ev.OrganizationID, Action: "security.event", Target: ev.ID, Data: data})
}

// securityNormalize validates ev and fills in its defaults (ID, At, an empty evidence
// object), returning the evidence parsed.
func (s *Service) securityNormalize(ev *thauth.SecurityEvent) (map[string]string, error) {
	if !securityValidKind(ev.Kind) {
		return nil, thauth.Errorf(thauth.EInvalid, "security event kind %q must be 1 to %d lowercase letters, digits or _",
			truncate(ev.Kind, 80), maxSecurityKindChars)
	}
	if !slices.Contains(securitySeverities, ev.Severity) {
		return nil, thauth.Errorf(thauth.EInvalid, "security event severity %q must be one of %s",
			truncate(ev.Severity, 40), strings.Join(securitySeverities, ", "))
	}
	if strings.TrimSpace(ev.Title) == "" || !utf8.ValidString(ev.Title) {
		return nil, thauth.Errorf(thauth.EInvalid, "security event title must be non-empty UTF-8 text")
	}
	if utf8.RuneCountInString(ev.Title) > maxSecurityTitleChars {
		ev.Title = string([]rune(ev.Title)[:maxSecurityTitleChars-1]) + "…"
	}
	evidence, err := securityEvidence(ev.Evidence)
	if err != nil {
		return nil, err
	}
	if ev.Evidence == "" {
		ev.Evidence = "{}"
	}
	if ev.ID == "" {
		if ev.ID, err = newID(); err != nil {
			return nil, err
		}
	}
	if ev.At.IsZero() {
		ev.At = s.clock()
	}
	ev.At = storedTime(ev.At)
	return evidence, nil
}

// securityRecipient is someone a security alert is mailed to.
type securityRecipient struct{ email, name string }

// securityRecipients returns who is told about an event of orgID: its owners and admins, or,
// for an installation-level event (orgID ""), every operator.
func (s *Service) securityRecipients(ctx context.Context, tx thauth.Data, orgID string) ([]securityRecipient, error) {
	var out []securityRecipient
	if orgID != "" {
		members, err := tx.ListMembers(ctx, orgID)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if m.Role == thauth.OrgRoleOwner || m.Role == thauth.OrgRoleAdmin {
				out = append(out, securityRecipient{email: m.Email, name: m.Name})
			}
		}
		return out, nil
	}
	ops, err := tx.ListOperators(ctx)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		acct, err := tx.GetAccount(ctx, op.AccountID)
		if thauth.ErrorCodeOf(err) == thauth.ENotFound {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, securityRecipient{email: acct.Email, name: acct.Name})
	}
	return out, nil
}

// securityDetail is the body of an event's alert mail: severity, where, and the evidence in
// key order.
func securityDetail(ev *thauth.SecurityEvent, orgName string, evidence map[string]string) string {
	var b strings.Builder
	b.WriteString("Severity: " + ev.Severity + ". Kind: " + ev.Kind + ". ")
	if ev.OrganizationID != "" {
		b.WriteString("Organization: " + orgName + " (" + ev.OrganizationID + "). ")
	} else {
		b.WriteString("Scope: the whole installation. ")
	}
	if ev.ProjectID != "" {
		b.WriteString("Project: " + ev.ProjectID + ". ")
	}
	keys := make([]string, 0, len(evidence))
	for k, v := range evidence {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		b.WriteString("Evidence: ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + "=" + evidence[k])
		}
		b.WriteString(". ")
	}
	b.WriteString("Event id: " + ev.ID + ".")
	return b.String()
}

// securityEventJSON is the "data" of a security event's webhook: the event with its
// evidence as an object.
type securityEventJSON struct {
	ID             string            `json:"id"`
	OrganizationID string            `json:"organization_id,omitempty"`
	ProjectID      string            `json:"project_id,omitempty"`
	Kind           string            `json:"kind"`
	Severity       string            `json:"severity"`
	At             time.Time         `json:"at"`
	Title          string            `json:"title"`
	Evidence       map[string]string `json:"evidence"`
}

func securityEventData(ev *thauth.SecurityEvent, evidence map[string]string) securityEventJSON {
	return securityEventJSON{ID: ev.ID, OrganizationID: ev.OrganizationID, ProjectID: ev.ProjectID, Kind: ev.Kind,
		Severity: ev.Severity, At: ev.At.UTC(), Title: ev.Title, Evidence: evidence}
}

// ListSecurityEvents returns the organization's security events, newest first, up to limit
// (0 means DefaultSecurityEventsPage; at most MaxSecurityEventsPage), continuing after
// cursor ("" for the first page), and the cursor of the next page ("" on the last one).
// Needs security:read. EInvalid for a malformed cursor or a limit out of range.
func (s *Service) ListSecurityEvents(ctx context.Context, a Actor, orgID, cursor string, limit int) ([]thauth.SecurityEvent, string, error) {
	if _, err := s.Authorize(ctx, a, orgID, "security", "read"); err != nil {
		return nil, "", err
	}
	if limit == 0 {
		limit = DefaultSecurityEventsPage
	}
	if limit < 1 || limit > MaxSecurityEventsPage {
		return nil, "", thauth.Errorf(thauth.EInvalid, "limit must be from 1 to %d", MaxSecurityEventsPage)
	}
	var before *thauth.DecisionCursor
	if cursor != "" {
		c, ok := securityParseCursor(cursor)
		if !ok {
			return nil, "", thauth.Errorf(thauth.EInvalid, "cursor is not one this API returned")
		}
		before = &c
	}
	list, err := s.store.ListSecurityEvents(ctx, orgID, before, limit)
	if err != nil {
		return nil, "", storeError(err, "could not list the security events")
	}
	next := ""
	if len(list) == limit {
		last := list[len(list)-1]
		next = securityCursor(last.At, last.ID)
	}
	return list, next, nil
}

// securityCursor encodes a listing position as an opaque token: base64url of
// "<unix microseconds>.<id>".
func securityCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + id))
}

func securityParseCursor(c string) (thauth.DecisionCursor, bool) {
	if len(c) > 200 {
		return thauth.DecisionCursor{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return thauth.DecisionCursor{}, false
	}
	ts, id, ok := strings.Cut(string(b), ".")
	if !ok || id == "" || !utf8.ValidString(id) {
		return thauth.DecisionCursor{}, false
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n < 0 {
		return thauth.DecisionCursor{}, false
	}
	return thauth.DecisionCursor{At: time.UnixMicro(n).UTC(), ID: id}, true
}
