package manage

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/thauth/thauth"
)

// Incident response: the commands an operator runs on a node (thauth operator …) to contain
// an incident and tell the customers concerned — suspend and reinstate an organization,
// revoke every API key of a project, revoke every session of an account, notify the owners
// of organizations — each recorded in an incident's timeline. An incident is opened by hand
// (OpenIncident) or, when a command names none, automatically for that command.
//
// Every command writes in one transaction: the change itself, its timeline entry (and the
// incident with its "opened" entry when it opens one), its audit entry (actor type cli,
// actor the OS user) and, for notices, the queued mails — so the timeline says exactly what
// was done. The change log carries the effect to every node: a suspension or reinstatement
// records a project change in each project of the organization, which makes each node's
// engine reload the project and with it the organization's state; key revocations record
// key changes. A running server picks them up within its follow interval.

// The states of an incident.
const (
	IncidentOpen   = "open"
	IncidentClosed = "closed"
)

// The kinds of timeline entries.
const (
	IncidentEventOpened          = "opened"
	IncidentEventNote            = "note"
	IncidentEventClosed          = "closed"
	IncidentEventOrgSuspended    = "org.suspended"
	IncidentEventOrgReinstated   = "org.reinstated"
	IncidentEventKeysRevoked     = "keys.revoked"
	IncidentEventSessionsRevoked = "sessions.revoked"
	IncidentEventNotified        = "notified"
)

// Bounds of the texts operators give.
const (
	maxIncidentTitleChars = 200
	maxSuspendReasonChars = 500
	maxIncidentNoteChars  = 10000
	maxNoticeSubjectChars = 200
	maxNoticeMessageChars = 20000
)

// IncidentTimeline is an incident with its timeline, oldest entry first.
type IncidentTimeline struct {
	thauth.Incident
	Events []thauth.IncidentEvent `json:"events"`
}

// IncidentStep is what an incident command recorded: the incident (opened for the command
// when Opened) and the timeline entries it appended, the "opened" entry included.
type IncidentStep struct {
	Incident thauth.Incident        `json:"incident"`
	Opened   bool                   `json:"opened"`
	Events   []thauth.IncidentEvent `json:"events"`
}

// Suspension is the result of SuspendOrganization and ReinstateOrganization: the
// organization as it is now and how many projects' keys were switched off (or back on).
type Suspension struct {
	IncidentStep
	Organization thauth.Organization `json:"organization"`
	Projects     int                 `json:"projects"`
}

// KeysRevocation is the result of RevokeProjectKeys.
type KeysRevocation struct {
	IncidentStep
	ProjectID      string   `json:"project_id"`
	OrganizationID string   `json:"organization_id"`
	Revoked        int      `json:"revoked"`
	KeyIDs         []string `json:"key_ids"`
}

// SessionsRevocation is the result of RevokeAccountSessions.
type SessionsRevocation struct {
	IncidentStep
	AccountID    string `json:"account_id"`
	Email        string `json:"email"`
	Sessions     int    `json:"sessions_revoked"`
	AccessTokens int    `json:"access_tokens_revoked"`
}

// Notification is the result of NotifyOrganizations: per organization, how many owners the
// notice was queued to.
type Notification struct {
	IncidentStep
	Organizations []NotifiedOrganization `json:"organizations"`
	Recipients    int                    `json:"recipients"`
}

// NotifiedOrganization is one organization a notice went to.
type NotifiedOrganization struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Recipients int    `json:"recipients"`
}

var errIncidentNotFound = thauth.Errorf(thauth.ENotFound, "incident not found")

// orgSuspended is Authorize's answer to a change in a suspended organization.
func orgSuspended(org *thauth.Organization) error {
	return thauth.Errorf(thauth.EForbidden,
		"this organization is suspended: the console is read-only until it is reinstated (reason: %s)", org.SuspendedReason)
}

// incidentActor is the stored name of a CLI caller: by ("cli:<OS user>"), or "cli:unknown".
func incidentActor(by string) string {
	return "cli:" + orgCLIUser(by)
}

// incidentRecorder records an incident command's timeline entries and audit entries inside
// its transaction.
type incidentRecorder struct {
	s    *Service
	tx   thauth.Data
	by   string
	step IncidentStep
}

// event appends a timeline entry of kind with detail (a JSON object of strings).
func (r *incidentRecorder) event(ctx context.Context, kind string, detail map[string]string) error {
	if detail == nil {
		detail = map[string]string{}
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return thauth.Internal(err, "could not record the incident event")
	}
	ev := &thauth.IncidentEvent{IncidentID: r.step.Incident.ID, At: r.s.clock(), Actor: incidentActor(r.by),
		Kind: kind, Detail: string(b)}
	if err := r.tx.AppendIncidentEvent(ctx, ev); err != nil {
		return err
	}
	r.step.Events = append(r.step.Events, *ev)
	return nil
}

// audit appends an audit entry of the CLI caller; the incident id is added to data.
func (r *incidentRecorder) audit(ctx context.Context, ev auditEvent) error {
	ev.ActorType, ev.ActorID = thauth.ActorCLI, orgCLIUser(r.by)
	if ev.Data == nil {
		ev.Data = map[string]string{}
	}
	ev.Data["incident"] = r.step.Incident.ID
	return r.s.appendAudit(ctx, r.tx, ev)
}

// open creates an incident titled title with its "opened" entry.
func (r *incidentRecorder) open(ctx context.Context, title string) error {
	id, err := newID()
	if err != nil {
		return err
	}
	r.step.Incident = thauth.Incident{ID: id, Title: title, Status: IncidentOpen, CreatedAt: r.s.clock(),
		CreatedBy: incidentActor(r.by)}
	if err := r.tx.CreateIncident(ctx, &r.step.Incident); err != nil {
		return err
	}
	r.step.Opened = true
	if err := r.event(ctx, IncidentEventOpened, map[string]string{"title": title}); err != nil {
		return err
	}
	return r.audit(ctx, auditEvent{Action: "incident.opened", Target: id, Data: map[string]string{"title": title}})
}

// incidentTx runs fn in one transaction with a recorder on incident incidentID, which must
// exist and be open, or, when incidentID is "", on a new incident titled title (computed
// by fn's caller; it may be cut to the title bound).
func (s *Service) incidentTx(ctx context.Context, by, incidentID, title string,
	fn func(ctx context.Context, r *incidentRecorder) error) (*IncidentStep, error) {
	var r *incidentRecorder
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		r = &incidentRecorder{s: s, tx: tx, by: by} // afresh, in case a store runs the closure again
		if incidentID == "" {
			if err := r.open(ctx, incidentTitle(title)); err != nil {
				return err
			}
		} else {
			inc, err := tx.GetIncident(ctx, incidentID)
			if thauth.IsNotFound(err) {
				return errIncidentNotFound
			}
			if err != nil {
				return err
			}
			if inc.Status != IncidentOpen {
				return thauth.Errorf(thauth.EConflict, "incident %s is closed: open a new one", inc.ID)
			}
			r.step.Incident = *inc
		}
		return fn(ctx, r)
	})
	if err != nil {
		return nil, err
	}
	return &r.step, nil
}

// incidentTitle makes an automatic title fit the bounds of a title.
func incidentTitle(t string) string {
	t = strings.Join(strings.Fields(t), " ")
	if utf8.RuneCountInString(t) > maxIncidentTitleChars {
		r := []rune(t)
		t = string(r[:maxIncidentTitleChars-1]) + "…"
	}
	return t
}

// OpenIncident opens an incident titled title (1–200 characters) by by ("cli:<OS user>")
// and returns it. Its timeline starts with an "opened" entry; the opening is audited
// (incident.opened, installation chain).
func (s *Service) OpenIncident(ctx context.Context, by, title string) (*thauth.Incident, error) {
	if msg := validateLabel(title, maxIncidentTitleChars); msg != "" {
		return nil, thauth.Errorf(thauth.EInvalid, "title %s", msg)
	}
	step, err := s.incidentTx(ctx, by, "", title, func(context.Context, *incidentRecorder) error { return nil })
	if err != nil {
		return nil, storeError(err, "could not open the incident")
	}
	s.log.InfoContext(ctx, "incident opened", "incident_id", step.Incident.ID)
	return &step.Incident, nil
}

// AddIncidentNote appends a note (1–10000 characters; line breaks allowed) to the timeline
// of an open incident. ENotFound "incident not found", EConflict when it is closed.
func (s *Service) AddIncidentNote(ctx context.Context, by, incidentID, text string) (*thauth.IncidentEvent, error) {
	if msg := validateText(text, maxIncidentNoteChars); msg != "" {
		return nil, thauth.Errorf(thauth.EInvalid, "note %s", msg)
	}
	if incidentID == "" {
		return nil, thauth.Errorf(thauth.EInvalid, "name the incident")
	}
	step, err := s.incidentTx(ctx, by, incidentID, "", func(ctx context.Context, r *incidentRecorder) error {
		if err := r.event(ctx, IncidentEventNote, map[string]string{"text": text}); err != nil {
			return err
		}
		// The note's text stays in the timeline; the audit log records that one was added.
		return r.audit(ctx, auditEvent{Action: "incident.note", Target: incidentID})
	})
	if err != nil {
		return nil, storeError(err, "could not add the note")
	}
	return &step.Events[len(step.Events)-1], nil
}

// CloseIncident closes an open incident (a "closed" entry ends its timeline; commands can
// no longer name it). ENotFound "incident not found", EConflict when it is closed already.
func (s *Service) CloseIncident(ctx context.Context, by, incidentID string) (*thauth.Incident, error) {
	if incidentID == "" {
		return nil, thauth.Errorf(thauth.EInvalid, "name the incident")
	}
	step, err := s.incidentTx(ctx, by, incidentID, "", func(ctx context.Context, r *incidentRecorder) error {
		now := s.clock()
		r.step.Incident.Status, r.step.Incident.ClosedAt = IncidentClosed, &now
		if err := r.tx.UpdateIncident(ctx, &r.step.Incident); err != nil {
			return err
		}
		if err := r.event(ctx, IncidentEventClosed, nil); err != nil {
			return err
		}
		return r.audit(ctx, auditEvent{Action: "incident.closed", Target: incidentID})
	})
	if err != nil {
		return nil, storeError(err, "could not close the incident")
	}
	s.log.InfoContext(ctx, "incident closed", "incident_id", incidentID)
	return &step.Incident, nil
}

// ListIncidents returns every incident, newest first.
func (s *Service) ListIncidents(ctx context.Context) ([]thauth.Incident, error) {
	list, err := s.store.ListIncidents(ctx)
	if err != nil {
		return nil, storeError(err, "could not list the incidents")
	}
	if list == nil {
		list = []thauth.Incident{}
	}
	return list, nil
}

// GetIncident returns an incident with its timeline. ENotFound "incident not found".
func (s *Service) GetIncident(ctx context.Context, incidentID string) (*IncidentTimeline, error) {
	if incidentID == "" {
		return nil, errIncidentNotFound
	}
	inc, err := s.store.GetIncident(ctx, incidentID)
	if thauth.IsNotFound(err) {
		return nil, errIncidentNotFound
	}
	if err != nil {
		return nil, storeError(err, "could not read the incident")
	}
	evs, err := s.store.ListIncidentEvents(ctx, incidentID)
	if err != nil {
		return nil, storeError(err, "could not read the incident's timeline")
	}
	if evs == nil {
		evs = []thauth.IncidentEvent{}
	}
	return &IncidentTimeline{Incident: *inc, Events: evs}, nil
}

// customerOrg reads a customer organization inside tx: ENotFound "organization not found"
// for a missing one and for the system organization, which no command may touch.
func customerOrg(ctx context.Context, tx thauth.Data, orgID string) (*thauth.Organization, error) {
	if orgID == "" || orgID == thauth.SystemOrganizationID {
		return nil, errOrgNotFound
	}
	org, err := tx.GetOrganization(ctx, orgID)
	if thauth.IsNotFound(err) {
		return nil, errOrgNotFound
	}
	return org, err
}

// SuspendOrganization suspends an organization: from the moment every node has picked the
// change up (at once on this node, within the follow interval on others) the API keys of
// its projects answer 401, and its console is read-only for its members (Authorize).
// Nothing is deleted; ReinstateOrganization undoes it. reason (1–500 characters) is stored
// with the organization, shown to its members and to operators. The action is recorded in
// incident incidentID, or in a new incident when it is "". ENotFound "organization not
// found" (also for the system organization), EConflict when it is suspended already.
func (s *Service) SuspendOrganization(ctx context.Context, by, orgID, reason, incidentID string) (*Suspension, error) {
	if msg := validateLabel(reason, maxSuspendReasonChars); msg != "" {
		return nil, thauth.Errorf(thauth.EInvalid, "reason %s", msg)
	}
	return s.setSuspension(ctx, by, orgID, reason, incidentID, true)
}

// ReinstateOrganization lifts an organization's suspension: its keys authenticate again
// and its console is writable, as soon as each node picks the change up. Recorded like
// SuspendOrganization. EConflict when the organization is not suspended.
func (s *Service) ReinstateOrganization(ctx context.Context, by, orgID, incidentID string) (*Suspension, error) {
	return s.setSuspension(ctx, by, orgID, "", incidentID, false)
}

// setSuspension suspends (suspend) or reinstates the organization.
func (s *Service) setSuspension(ctx context.Context, by, orgID, reason, incidentID string, suspend bool) (*Suspension, error) {
	// The automatic title needs the organization's name, which is read in the transaction;
	// read it once before for the title (a rename in between only affects the title).
	title := ""
	if incidentID == "" {
		org, err := customerOrg(ctx, s.store, orgID)
		if err != nil {
			return nil, storeError(err, "could not read the organization")
		}
		verb := "Reinstatement"
		if suspend {
			verb = "Suspension"
		}
		title = fmt.Sprintf("%s of organization %s (%s)", verb, org.Name, org.ID)
	}
	res := &Suspension{}
	var projects []thauth.Project
	step, err := s.incidentTx(ctx, by, incidentID, title, func(ctx context.Context, r *incidentRecorder) error {
		org, err := customerOrg(ctx, r.tx, orgID)
		if err != nil {
			return err
		}
		switch {
		case suspend && org.SuspendedAt != nil:
			return thauth.Errorf(thauth.EConflict, "organization %s is suspended already (since %s)",
				org.ID, org.SuspendedAt.Format("2006-01-02T15:04:05Z"))
		case !suspend && org.SuspendedAt == nil:
			return thauth.Errorf(thauth.EConflict, "organization %s is not suspended", org.ID)
		}
		now := s.clock()
		var at *time.Time
		if suspend {
			at = &now
		}
		if err := r.tx.SetOrganizationSuspension(ctx, org.ID, at, reason); err != nil {
			return err
		}
		org.SuspendedAt, org.SuspendedReason = at, reason
		// A project change in every project makes every node reload it, and with it the
		// organization's state (internal/engine): its keys leave or re-enter the index.
		if projects, err = r.tx.ListProjects(ctx, org.ID); err != nil {
			return err
		}
		for _, p := range projects {
			if _, err := r.tx.AppendChanges(ctx, p.ID, []thauth.Change{{Kind: thauth.ChangeProject}}, now); err != nil {
				return err
			}
		}
		res.Organization, res.Projects = *org, len(projects)
		kind, action := IncidentEventOrgReinstated, "org.reinstated"
		detail := map[string]string{"organization_id": org.ID, "organization": org.Name,
			"projects": strconv.Itoa(len(projects))}
		if suspend {
			kind, action = IncidentEventOrgSuspended, "org.suspended"
			detail["reason"] = reason
		}
		if err := r.event(ctx, kind, detail); err != nil {
			return err
		}
		data := map[string]string{"projects": strconv.Itoa(len(projects))}
		if suspend {
			data["reason"] = reason
		}
		return r.audit(ctx, auditEvent{Chain: org.ID, OrgID: org.ID, Action: action, Target: org.ID, Data: data})
	})
	if err != nil {
		return nil, storeError(err, "could not change the organization's suspension")
	}
	res.IncidentStep = *step
	if suspend {
		s.log.InfoContext(ctx, "organization suspended", "organization_id", orgID, "incident_id", step.Incident.ID)
	} else {
		s.log.InfoContext(ctx, "organization reinstated", "organization_id", orgID, "incident_id", step.Incident.ID)
	}
	for _, p := range projects {
		s.sync(ctx, p.ID)
	}
	return res, nil
}

// RevokeProjectKeys revokes every API key of the project that is not revoked yet (expired
// ones included, so none can come back), in one transaction with one change-log entry
// listing them all; from the moment each node picks it up, none authenticates. It returns
// how many it revoked (0 is not an error) and records the action like SuspendOrganization
// (audit: key.revoked_all in the organization's chain, with the key ids). ENotFound
// "project not found", also for the system project.
func (s *Service) RevokeProjectKeys(ctx context.Context, by, projectID, incidentID string) (*KeysRevocation, error) {
	notFound := thauth.Errorf(thauth.ENotFound, "project not found")
	if projectID == "" || projectID == thauth.SystemProjectID {
		return nil, notFound
	}
	title := ""
	if incidentID == "" {
		p, err := s.store.GetProject(ctx, projectID)
		if thauth.IsNotFound(err) {
			return nil, notFound
		}
		if err != nil {
			return nil, storeError(err, "could not read the project")
		}
		title = fmt.Sprintf("Revocation of every API key of project %s (%s)", p.Name, p.ID)
	}
	res := &KeysRevocation{KeyIDs: []string{}}
	step, err := s.incidentTx(ctx, by, incidentID, title, func(ctx context.Context, r *incidentRecorder) error {
		res.KeyIDs = []string{}
		p, err := r.tx.GetProject(ctx, projectID)
		if thauth.IsNotFound(err) || err == nil && p.OrganizationID == thauth.SystemOrganizationID {
			return notFound
		}
		if err != nil {
			return err
		}
		keys, err := r.tx.ListAPIKeys(ctx, projectID)
		if err != nil {
			return err
		}
		now := s.clock()
		var changes []thauth.Change
		for _, k := range keys {
			if k.RevokedAt != nil {
				continue
			}
			if err := r.tx.RevokeAPIKey(ctx, projectID, k.ID, now); err != nil {
				return err
			}
			res.KeyIDs = append(res.KeyIDs, k.ID)
			changes = append(changes, thauth.Change{Kind: thauth.ChangeKey, Ref: k.ID})
		}
		if len(changes) > 0 {
			if _, err := r.tx.AppendChanges(ctx, projectID, changes, now); err != nil {
				return err
			}
		}
		slices.Sort(res.KeyIDs)
		res.ProjectID, res.OrganizationID, res.Revoked = p.ID, p.OrganizationID, len(res.KeyIDs)
		count := strconv.Itoa(res.Revoked)
		if err := r.event(ctx, IncidentEventKeysRevoked, map[string]string{"project_id": p.ID, "project": p.Name,
			"organization_id": p.OrganizationID, "count": count}); err != nil {
			return err
		}
		return r.audit(ctx, auditEvent{Chain: p.OrganizationID, OrgID: p.OrganizationID, Action: "key.revoked_all",
			Target: p.ID, Data: map[string]string{"count": count, "key_ids": strings.Join(res.KeyIDs, ",")}})
	})
	if err != nil {
		return nil, storeError(err, "could not revoke the project's keys")
	}
	res.IncidentStep = *step
	s.log.InfoContext(ctx, "every API key of a project revoked", "project_id", projectID, "count", res.Revoked,
		"incident_id", step.Incident.ID)
	if res.Revoked > 0 {
		s.sync(ctx, projectID)
	}
	return res, nil
}

// RevokeAccountSessions signs the account with this email out everywhere: every session is
// revoked, and so is every personal access token — a token is as good as a session to
// whoever holds it, and an account taken over may have had one created. The next request
// with any of them is answered 401 by every node (sessions and tokens are read from the
// store on each request). Recorded like SuspendOrganization (audit: session.revoked_all in
// the installation chain, on the account's activity). ENotFound "no account with this
// email".
func (s *Service) RevokeAccountSessions(ctx context.Context, by, email, incidentID string) (*SessionsRevocation, error) {
	acct, err := s.orgAccountByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	title := ""
	if incidentID == "" {
		title = "Revocation of every session of " + acct.Email
	}
	res := &SessionsRevocation{AccountID: acct.ID, Email: acct.Email}
	step, err := s.incidentTx(ctx, by, incidentID, title, func(ctx context.Context, r *incidentRecorder) error {
		now := s.clock()
		n, err := r.tx.RevokeSessions(ctx, acct.ID, "", now)
		if err != nil {
			return err
		}
		tokens, err := r.tx.ListAccessTokens(ctx, acct.ID)
		if err != nil {
			return err
		}
		m := 0
		for _, t := range tokens {
			if t.RevokedAt != nil {
				continue
			}
			if err := r.tx.RevokeAccessToken(ctx, acct.ID, t.ID, now); err != nil {
				return err
			}
			m++
		}
		res.Sessions, res.AccessTokens = n, m
		if err := r.event(ctx, IncidentEventSessionsRevoked, map[string]string{"account_id": acct.ID,
			"email": acct.Email, "sessions": strconv.Itoa(n), "access_tokens": strconv.Itoa(m)}); err != nil {
			return err
		}
		return r.audit(ctx, auditEvent{AccountID: acct.ID, Action: "session.revoked_all", Target: acct.ID,
			Data: map[string]string{"count": strconv.Itoa(n), "access_tokens": strconv.Itoa(m)}})
	})
	if err != nil {
		return nil, storeError(err, "could not revoke the account's sessions")
	}
	res.IncidentStep = *step
	s.log.InfoContext(ctx, "every session of an account revoked", "account_id", acct.ID,
		"sessions", res.Sessions, "access_tokens", res.AccessTokens, "incident_id", step.Incident.ID)
	return res, nil
}

// NotifyOrganizations queues the notice (template incident_notice: subject 1–200
// characters, message 1–20000 characters, line breaks allowed) to every owner of each
// organization of orgIDs — or of every customer organization when all is true (orgIDs must
// then be empty) — in one transaction: all of it is sent, or, on error, none. Each
// organization gets a "notified" timeline entry with its number of recipients, and a
// notice entry in its audit chain (org.notified). ENotFound "organization not found" names
// the first unknown id; duplicates are sent once. Needs Options.Sealer (mail payloads are
// sealed).
func (s *Service) NotifyOrganizations(ctx context.Context, by string, orgIDs []string, all bool,
	subject, message, incidentID string) (*Notification, error) {
	if s.opts.Sealer == nil {
		return nil, errNoSealer
	}
	var problems []string
	if msg := validateLabel(subject, maxNoticeSubjectChars); msg != "" {
		problems = append(problems, "subject "+msg)
	}
	if msg := validateText(message, maxNoticeMessageChars); msg != "" {
		problems = append(problems, "message "+msg)
	}
	switch {
	case all && len(orgIDs) > 0:
		problems = append(problems, "name organizations or choose all of them, not both")
	case !all && len(orgIDs) == 0:
		problems = append(problems, "name at least one organization (or all of them)")
	}
	if len(problems) > 0 {
		return nil, thauth.Errorf(thauth.EInvalid, "%s", strings.Join(problems, "; "))
	}
	title := ""
	if incidentID == "" {
		title = "Notice: " + subject
	}
	res := &Notification{}
	step, err := s.incidentTx(ctx, by, incidentID, title, func(ctx context.Context, r *incidentRecorder) error {
		res.Organizations, res.Recipients = []NotifiedOrganization{}, 0
		var orgs []thauth.Organization
		if all {
			list, err := r.tx.ListOrganizations(ctx)
			if err != nil {
				return err
			}
			orgs = list
		} else {
			for _, id := range dedupe(orgIDs) {
				org, err := customerOrg(ctx, r.tx, id)
				if thauth.ErrorCodeOf(err) == thauth.ENotFound {
					return thauth.Errorf(thauth.ENotFound, "organization not found: %s", id)
				}
				if err != nil {
					return err
				}
				orgs = append(orgs, *org)
			}
		}
		for _, org := range orgs {
			if org.ID == thauth.SystemOrganizationID {
				continue
			}
			members, err := r.tx.ListMembers(ctx, org.ID)
			if err != nil {
				return err
			}
			n := 0
			for _, m := range members {
				if m.Role != thauth.OrgRoleOwner {
					continue
				}
				err := s.enqueueMail(ctx, r.tx, m.Email, MailIncidentNotice, map[string]string{
					"name": m.Name, "organization": org.Name, "subject": subject, "message": message,
					"incident": r.step.Incident.ID,
				})
				if err != nil {
					return err
				}
				n++
			}
			res.Organizations = append(res.Organizations, NotifiedOrganization{ID: org.ID, Name: org.Name, Recipients: n})
			res.Recipients += n
			if err := r.event(ctx, IncidentEventNotified, map[string]string{"organization_id": org.ID,
				"organization": org.Name, "recipients": strconv.Itoa(n), "subject": subject}); err != nil {
				return err
			}
			if err := r.audit(ctx, auditEvent{Chain: org.ID, OrgID: org.ID, Action: "org.notified", Target: org.ID,
				Data: map[string]string{"subject": subject, "recipients": strconv.Itoa(n)}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, storeError(err, "could not queue the notice")
	}
	res.IncidentStep = *step
	s.log.InfoContext(ctx, "incident notice queued", "organizations", len(res.Organizations),
		"recipients", res.Recipients, "incident_id", step.Incident.ID)
	if res.Recipients > 0 {
		s.mailQueued()
	}
	return res, nil
}

// validateText checks a free text (a note, a message): not only spaces, valid UTF-8, at
// most maxChars characters, no control characters but line breaks and tabs. It returns ""
// when valid.
func validateText(s string, maxChars int) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if utf8.RuneCountInString(s) > maxChars {
		return "must be at most " + itoa(maxChars) + " characters"
	}
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "must not contain control characters"
		}
	}
	return ""
}
