package manage

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
)

// Helpers of the incident tests (prefixed inc).

const incBy = "cli:alice"

// incKey creates an API key in the project and returns its token.
func incKey(t testing.TB, e *consoleEnv, projectID string) (string, *thauth.APIKey) {
	t.Helper()
	k, token, err := e.svc.CreateKey(e.ctx, projectID, KeyRequest{Name: "k", Scopes: []string{thauth.ScopeDecisionsRead}})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return token, k
}

// incAuth reports which of the tokens eng authenticates, in order.
func incAuth(eng *engine.Engine, tokens ...string) []bool {
	out := make([]bool, len(tokens))
	for i, tok := range tokens {
		_, out[i] = eng.Authenticate(tok)
	}
	return out
}

// incDetail decodes a timeline entry's detail.
func incDetail(t testing.TB, ev thauth.IncidentEvent) map[string]string {
	t.Helper()
	var d map[string]string
	if err := json.Unmarshal([]byte(ev.Detail), &d); err != nil {
		t.Fatalf("detail %q: %v", ev.Detail, err)
	}
	return d
}

// incKinds returns the kinds of the incident's timeline, checking that Seq counts from 1.
func incKinds(t testing.TB, e *consoleEnv, incidentID string) []string {
	t.Helper()
	tl, err := e.svc.GetIncident(e.ctx, incidentID)
	if err != nil {
		t.Fatalf("GetIncident: %v", err)
	}
	var out []string
	for i, ev := range tl.Events {
		if ev.Seq != int64(i+1) || ev.IncidentID != incidentID {
			t.Errorf("event %d: seq %d, incident %s", i, ev.Seq, ev.IncidentID)
		}
		out = append(out, ev.Kind)
	}
	return out
}

// incAuditOf returns the entries of chain with action.
func incAuditOf(t testing.TB, e *consoleEnv, chain, action string) []thauth.AuditEntry {
	t.Helper()
	var out []thauth.AuditEntry
	for _, a := range orgAudit(t, e, chain) {
		if a.Action == action {
			out = append(out, a)
		}
	}
	return out
}

func TestSuspendOrganization(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	pa := mustProject(t, e, tm.owner, tm.org.ID)
	pa2 := mustProject(t, e, tm.owner, tm.org.ID)
	otherOwner := orgNewAccount(t, e, "other@example.com", false)
	other := orgNewOrg(t, e, otherOwner, "Globex")
	pb := mustProject(t, e, otherOwner, other.ID)
	ka, _ := incKey(t, e, pa.ID)
	ka2, _ := incKey(t, e, pa2.ID)
	kb, _ := incKey(t, e, pb.ID)

	// Another node: its own engine on the same store, catching up through the change log.
	node := engine.New(e.store, engine.Options{Now: e.clock.Now})
	if err := node.LoadAll(e.ctx); err != nil {
		t.Fatal(err)
	}
	wantKeys := func(step string, want ...bool) {
		t.Helper()
		if err := node.SyncAll(e.ctx); err != nil {
			t.Fatal(err)
		}
		for name, eng := range map[string]*engine.Engine{"this node": e.engine, "other node": node} {
			if got := incAuth(eng, ka, ka2, kb); !slices.Equal(got, want) {
				t.Errorf("%s, %s: keys (A, A2, B) authenticate %v, want %v", step, name, got, want)
			}
		}
	}
	wantKeys("before", true, true, true)

	// The system organization and unknown ones cannot be suspended.
	_, err := e.svc.SuspendOrganization(e.ctx, incBy, thauth.SystemOrganizationID, "x", "")
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	_, err = e.svc.SuspendOrganization(e.ctx, incBy, "0190e6c2-0000-7000-8000-00000000ffff", "x", "")
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	_, err = e.svc.SuspendOrganization(e.ctx, incBy, tm.org.ID, " ", "")
	orgWantErr(t, err, thauth.EInvalid, "reason must not be empty")

	e.advance(time.Minute)
	res, err := e.svc.SuspendOrganization(e.ctx, incBy, tm.org.ID, "payment fraud under investigation", "")
	if err != nil {
		t.Fatalf("SuspendOrganization: %v", err)
	}
	if !res.Opened || res.Incident.Status != IncidentOpen || res.Incident.CreatedBy != incBy ||
		res.Incident.Title != "Suspension of organization Acme ("+tm.org.ID+")" || res.Projects != 2 ||
		res.Organization.SuspendedAt == nil || !res.Organization.SuspendedAt.Equal(e.clock.Now()) {
		t.Errorf("suspension result: %+v", res)
	}
	wantKeys("suspended", false, false, true)
	org, err := e.store.GetOrganization(e.ctx, tm.org.ID)
	if err != nil || org.SuspendedAt == nil || org.SuspendedReason != "payment fraud under investigation" {
		t.Errorf("stored organization: %+v, %v", org, err)
	}
	_, err = e.svc.SuspendOrganization(e.ctx, incBy, tm.org.ID, "again", res.Incident.ID)
	orgWantErr(t, err, thauth.EConflict, "is suspended already")

	// The console is read-only for members: reads work, writes are refused with the reason.
	if _, _, err := e.svc.GetOrganization(e.ctx, tm.owner, tm.org.ID); err != nil {
		t.Errorf("owner reads the suspended organization: %v", err)
	}
	if _, err := e.svc.ListProjects(e.ctx, tm.viewer, tm.org.ID); err != nil {
		t.Errorf("viewer lists projects: %v", err)
	}
	name := "Renamed"
	_, err = e.svc.UpdateOrganization(e.ctx, tm.owner, tm.org.ID, &name, nil)
	orgWantErr(t, err, thauth.EForbidden, "this organization is suspended", "payment fraud under investigation")
	_, err = e.svc.CreateProject(e.ctx, tm.admin, tm.org.ID, "new")
	orgWantErr(t, err, thauth.EForbidden, "this organization is suspended")
	_, err = e.svc.Invite(e.ctx, tm.owner, tm.org.ID, "new@example.com", "viewer")
	orgWantErr(t, err, thauth.EForbidden, "this organization is suspended")
	// Another organization is not affected.
	if _, err := e.svc.CreateProject(e.ctx, otherOwner, other.ID, "still fine"); err != nil {
		t.Errorf("other organization's owner creates a project: %v", err)
	}
	// An operator with two-factor authentication still acts (audited as operator access).
	op := orgNewAccount(t, e, "ops@example.com", true)
	if _, err := e.svc.GrantOperator(e.ctx, "ops@example.com", "superadmin", incBy); err != nil {
		t.Fatal(err)
	}
	opName := "Acme (suspended)"
	if _, err := e.svc.UpdateOrganization(e.ctx, op, tm.org.ID, &opName, nil); err != nil {
		t.Errorf("operator updates the suspended organization: %v", err)
	}
	noMFA := op
	noMFA.MFA = false
	_, err = e.svc.UpdateOrganization(e.ctx, noMFA, tm.org.ID, &name, nil)
	orgWantErr(t, err, thauth.EForbidden, "two-factor")

	e.advance(time.Minute)
	back, err := e.svc.ReinstateOrganization(e.ctx, incBy, tm.org.ID, res.Incident.ID)
	if err != nil {
		t.Fatalf("ReinstateOrganization: %v", err)
	}
	if back.Opened || back.Incident.ID != res.Incident.ID || back.Organization.SuspendedAt != nil || back.Projects != 2 {
		t.Errorf("reinstatement result: %+v", back)
	}
	wantKeys("reinstated", true, true, true)
	if _, err := e.svc.UpdateOrganization(e.ctx, tm.owner, tm.org.ID, &name, nil); err != nil {
		t.Errorf("owner updates the reinstated organization: %v", err)
	}
	_, err = e.svc.ReinstateOrganization(e.ctx, incBy, tm.org.ID, "")
	orgWantErr(t, err, thauth.EConflict, "is not suspended")

	// The timeline and the audit log.
	if got, want := incKinds(t, e, res.Incident.ID), []string{"opened", "org.suspended", "org.reinstated"}; !slices.Equal(got, want) {
		t.Errorf("timeline %v, want %v", got, want)
	}
	tl, _ := e.svc.GetIncident(e.ctx, res.Incident.ID)
	if d := incDetail(t, tl.Events[1]); d["organization_id"] != tm.org.ID || d["reason"] != "payment fraud under investigation" ||
		d["projects"] != "2" || d["organization"] != "Acme" || tl.Events[1].Actor != incBy {
		t.Errorf("suspension entry: %+v %v", tl.Events[1], d)
	}
	for _, action := range []string{"org.suspended", "org.reinstated"} {
		list := incAuditOf(t, e, tm.org.ID, action)
		if len(list) != 1 || list[0].ActorType != thauth.ActorCLI || list[0].ActorID != "alice" ||
			list[0].OrganizationID != tm.org.ID || !strings.Contains(list[0].Data, res.Incident.ID) {
			t.Errorf("%s audit entries: %+v", action, list)
		}
	}
	if list := incAuditOf(t, e, "", "incident.opened"); len(list) != 1 || list[0].Target != res.Incident.ID {
		t.Errorf("incident.opened audit entries: %+v", list)
	}
}

func TestRevokeProjectKeys(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	p := mustProject(t, e, owner, org.ID)
	sibling := mustProject(t, e, owner, org.ID)
	k1, key1 := incKey(t, e, p.ID)
	k2, key2 := incKey(t, e, p.ID)
	_, key3 := incKey(t, e, p.ID)
	if err := e.svc.RevokeKey(e.ctx, p.ID, key3.ID); err != nil {
		t.Fatal(err)
	}
	firstRevocation := e.clock.Now()
	e.advance(time.Hour)
	ks, _ := incKey(t, e, sibling.ID)
	before, err := e.store.GetProject(e.ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}

	inc, err := e.svc.OpenIncident(e.ctx, incBy, "Leaked keys of Acme")
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.RevokeProjectKeys(e.ctx, incBy, p.ID, inc.ID)
	if err != nil {
		t.Fatalf("RevokeProjectKeys: %v", err)
	}
	want := []string{key1.ID, key2.ID}
	slices.Sort(want)
	if res.Revoked != 2 || !slices.Equal(res.KeyIDs, want) || res.Opened || res.Incident.ID != inc.ID ||
		res.ProjectID != p.ID || res.OrganizationID != org.ID {
		t.Errorf("result: %+v", res)
	}
	if got := incAuth(e.engine, k1, k2, ks); !slices.Equal(got, []bool{false, false, true}) {
		t.Errorf("keys (p, p, sibling) authenticate %v", got)
	}
	keys, err := e.store.ListAPIKeys(e.ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.RevokedAt == nil {
			t.Errorf("key %s is not revoked", k.ID)
		}
		wantAt := e.clock.Now()
		if k.ID == key3.ID {
			wantAt = firstRevocation // kept
		}
		if k.RevokedAt != nil && !k.RevokedAt.Equal(wantAt) {
			t.Errorf("key %s revoked at %v, want %v", k.ID, k.RevokedAt, wantAt)
		}
	}
	if sk, _ := e.store.ListAPIKeys(e.ctx, sibling.ID); len(sk) != 1 || sk[0].RevokedAt != nil {
		t.Errorf("sibling project's keys: %+v", sk)
	}
	// One change-log entry naming both keys.
	changes, err := e.store.ChangesSince(e.ctx, p.ID, before.Revision, 100)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, c := range changes {
		if c.Revision != before.Revision+1 || c.Kind != thauth.ChangeKey {
			t.Errorf("change %+v", c)
		}
		refs = append(refs, c.Ref)
	}
	slices.Sort(refs)
	if !slices.Equal(refs, want) {
		t.Errorf("changed keys %v, want %v", refs, want)
	}

	// Nothing left to revoke: recorded, no write to the project.
	again, err := e.svc.RevokeProjectKeys(e.ctx, incBy, p.ID, inc.ID)
	if err != nil || again.Revoked != 0 || len(again.KeyIDs) != 0 {
		t.Fatalf("second RevokeProjectKeys: %+v, %v", again, err)
	}
	if cur, _ := e.store.GetProject(e.ctx, p.ID); cur.Revision != before.Revision+1 {
		t.Errorf("revision %d after revoking nothing, want %d", cur.Revision, before.Revision+1)
	}
	if got := incKinds(t, e, inc.ID); !slices.Equal(got, []string{"opened", "keys.revoked", "keys.revoked"}) {
		t.Errorf("timeline %v", got)
	}
	list := incAuditOf(t, e, org.ID, "key.revoked_all")
	if len(list) != 2 || list[0].Target != p.ID || list[0].ActorType != thauth.ActorCLI ||
		!strings.Contains(list[0].Data, `"count":"2"`) || !strings.Contains(list[0].Data, key1.ID) {
		t.Errorf("audit entries: %+v", list)
	}

	_, err = e.svc.RevokeProjectKeys(e.ctx, incBy, thauth.SystemProjectID, "")
	orgWantErr(t, err, thauth.ENotFound, "project not found")
	_, err = e.svc.RevokeProjectKeys(e.ctx, incBy, "0190e6c2-0000-7000-8000-00000000ffff", "")
	orgWantErr(t, err, thauth.ENotFound, "project not found")
	_, err = e.svc.RevokeProjectKeys(e.ctx, incBy, p.ID, "0190e6c2-0000-7000-8000-00000000ffff")
	orgWantErr(t, err, thauth.ENotFound, "incident not found")
}

func TestRevokeAccountSessions(t *testing.T) {
	e := newConsoleEnv(t)
	victim := acctSignUp(t, e, "victim@example.com")
	bystander := acctSignUp(t, e, "bystander@example.com")
	s1 := acctSignIn(t, e, "victim@example.com", acctPassword)
	s2 := acctSignIn(t, e, "victim@example.com", acctPassword)
	sb := acctSignIn(t, e, "bystander@example.com", acctPassword)
	_, pat, err := e.svc.CreateAccessToken(e.ctx, acctActor(s1), "ci", []string{thauth.TokenScopeRead}, 0)
	if err != nil {
		t.Fatalf("CreateAccessToken: %v", err)
	}
	_, patB, err := e.svc.CreateAccessToken(e.ctx, acctActor(sb), "ci", []string{thauth.TokenScopeRead}, 0)
	if err != nil {
		t.Fatal(err)
	}

	res, err := e.svc.RevokeAccountSessions(e.ctx, incBy, "Victim@Example.com", "")
	if err != nil {
		t.Fatalf("RevokeAccountSessions: %v", err)
	}
	if res.Sessions != 2 || res.AccessTokens != 1 || res.AccountID != victim.ID || res.Email != "victim@example.com" ||
		!res.Opened || res.Incident.Title != "Revocation of every session of victim@example.com" {
		t.Errorf("result: %+v", res)
	}
	for _, tok := range []string{s1.Token, s2.Token} {
		_, _, err := e.svc.Authenticate(e.ctx, tok)
		orgWantErr(t, err, thauth.EUnauthenticated)
	}
	_, _, err = e.svc.AuthenticateAccessToken(e.ctx, pat)
	orgWantErr(t, err, thauth.EUnauthenticated)
	if _, _, err := e.svc.Authenticate(e.ctx, sb.Token); err != nil {
		t.Errorf("bystander's session: %v", err)
	}
	if _, acct, err := e.svc.AuthenticateAccessToken(e.ctx, patB); err != nil || acct.ID != bystander.ID {
		t.Errorf("bystander's token: %v", err)
	}
	if got := incKinds(t, e, res.Incident.ID); !slices.Equal(got, []string{"opened", "sessions.revoked"}) {
		t.Errorf("timeline %v", got)
	}
	acts := acctActions(t, e, victim.ID)
	if acts[len(acts)-1] != "session.revoked_all" {
		t.Errorf("victim's activity: %v", acts)
	}
	list := incAuditOf(t, e, "", "session.revoked_all")
	if len(list) != 1 || list[0].ActorType != thauth.ActorCLI || list[0].ActorID != "alice" ||
		list[0].Data != `{"access_tokens":"1","count":"2","incident":"`+res.Incident.ID+`"}` {
		t.Errorf("audit: %+v", list)
	}

	_, err = e.svc.RevokeAccountSessions(e.ctx, incBy, "nobody@example.com", "")
	orgWantErr(t, err, thauth.ENotFound, "no account with this email")
}

func TestNotifyOrganizations(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e) // Acme: owner, admin, developer, viewer, billing
	coOwner := orgNewAccount(t, e, "coowner@example.com", false)
	orgAddMember(t, e, tm.owner, tm.org.ID, coOwner, "owner")
	bOwner := orgNewAccount(t, e, "globex@example.com", false)
	globex := orgNewOrg(t, e, bOwner, "Globex <Corp>")
	cOwner := orgNewAccount(t, e, "initech@example.com", false)
	initech := orgNewOrg(t, e, cOwner, "Initech")

	message := "We revoked every API key of your project.\nCreate new ones in the console."
	res, err := e.svc.NotifyOrganizations(e.ctx, incBy, []string{tm.org.ID, globex.ID, tm.org.ID}, false,
		"Security notice", message, "")
	if err != nil {
		t.Fatalf("NotifyOrganizations: %v", err)
	}
	wantOrgs := []NotifiedOrganization{{tm.org.ID, "Acme", 2}, {globex.ID, "Globex <Corp>", 1}}
	if diff := cmp.Diff(wantOrgs, res.Organizations); diff != "" || res.Recipients != 3 || !res.Opened ||
		res.Incident.Title != "Notice: Security notice" {
		t.Errorf("result %+v (-want +got):\n%s", res, diff)
	}
	for _, to := range []string{"owner@example.com", "coowner@example.com", "globex@example.com"} {
		m := e.lastMail(t, to, MailIncidentNotice)
		org := "Acme"
		if to == "globex@example.com" {
			org = "Globex <Corp>"
		}
		want := map[string]string{"name": strings.Split(to, "@")[0], "organization": org, "subject": "Security notice",
			"message": message, "incident": res.Incident.ID}
		if diff := cmp.Diff(want, m.Data); diff != "" {
			t.Errorf("mail to %s (-want +got):\n%s", to, diff)
		}
	}
	for _, to := range []string{"admin@example.com", "developer@example.com", "viewer@example.com",
		"billing@example.com", "initech@example.com"} {
		for _, m := range e.mails(t, to) {
			if m.Template == MailIncidentNotice {
				t.Errorf("%s got the notice", to)
			}
		}
	}
	tl, err := e.svc.GetIncident(e.ctx, res.Incident.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Events) != 3 {
		t.Fatalf("timeline: %+v", tl.Events)
	}
	for i, want := range []map[string]string{
		{"organization_id": tm.org.ID, "organization": "Acme", "recipients": "2", "subject": "Security notice"},
		{"organization_id": globex.ID, "organization": "Globex <Corp>", "recipients": "1", "subject": "Security notice"},
	} {
		ev := tl.Events[i+1]
		if diff := cmp.Diff(want, incDetail(t, ev)); ev.Kind != "notified" || diff != "" {
			t.Errorf("entry %d %s (-want +got):\n%s", i+2, ev.Kind, diff)
		}
	}
	for _, o := range []*thauth.Organization{tm.org, globex} {
		if list := incAuditOf(t, e, o.ID, "org.notified"); len(list) != 1 || list[0].ActorType != thauth.ActorCLI {
			t.Errorf("org.notified in %s: %+v", o.Name, list)
		}
	}
	if list := incAuditOf(t, e, initech.ID, "org.notified"); len(list) != 0 {
		t.Errorf("org.notified in Initech: %+v", list)
	}

	// Every organization, the system one excepted, in an existing incident.
	all, err := e.svc.NotifyOrganizations(e.ctx, incBy, nil, true, "Maintenance", "Tonight.", res.Incident.ID)
	if err != nil {
		t.Fatalf("NotifyOrganizations(all): %v", err)
	}
	var ids []string
	for _, o := range all.Organizations {
		ids = append(ids, o.ID)
	}
	wantIDs := []string{tm.org.ID, globex.ID, initech.ID}
	slices.Sort(ids)
	slices.Sort(wantIDs)
	if !slices.Equal(ids, wantIDs) || all.Recipients != 4 || all.Opened {
		t.Errorf("notify all: %+v", all)
	}
	if m := e.lastMail(t, "initech@example.com", MailIncidentNotice); m.Data["subject"] != "Maintenance" {
		t.Errorf("Initech's mail: %+v", m.Data)
	}

	// Refusals write nothing.
	pending := func() int {
		n, err := e.store.CountPendingMail(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := pending()
	for _, tc := range []struct {
		ids      []string
		all      bool
		subject  string
		message  string
		code     thauth.ErrorCode
		fragment string
	}{
		{[]string{globex.ID, "0190e6c2-0000-7000-8000-00000000ffff"}, false, "s", "m", thauth.ENotFound, "organization not found: 0190e6c2-0000-7000-8000-00000000ffff"},
		{[]string{thauth.SystemOrganizationID}, false, "s", "m", thauth.ENotFound, "organization not found"},
		{nil, false, "s", "m", thauth.EInvalid, "name at least one organization"},
		{[]string{globex.ID}, true, "s", "m", thauth.EInvalid, "not both"},
		{[]string{globex.ID}, false, "", "m", thauth.EInvalid, "subject must not be empty"},
		{[]string{globex.ID}, false, "s\r\nBcc: x", "m", thauth.EInvalid, "subject must not contain control characters"},
		{[]string{globex.ID}, false, "s", " \n ", thauth.EInvalid, "message must not be empty"},
	} {
		_, err := e.svc.NotifyOrganizations(e.ctx, incBy, tc.ids, tc.all, tc.subject, tc.message, "")
		orgWantErr(t, err, tc.code, tc.fragment)
	}
	if got := pending(); got != n {
		t.Errorf("refused notices queued mail: %d pending, want %d", got, n)
	}

	noSealer := New(e.store, nil, Options{Now: e.clock.Now})
	_, err = noSealer.NotifyOrganizations(e.ctx, incBy, []string{globex.ID}, false, "s", "m", "")
	orgWantErr(t, err, thauth.EUnavailable, "master key")
}

func TestIncidentTimeline(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	p := mustProject(t, e, owner, org.ID)

	_, err := e.svc.OpenIncident(e.ctx, incBy, " ")
	orgWantErr(t, err, thauth.EInvalid, "title must not be empty")

	start := e.clock.Now()
	inc, err := e.svc.OpenIncident(e.ctx, incBy, "Credential stuffing against Acme")
	if err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	if _, err := e.svc.AddIncidentNote(e.ctx, "cli:bob", inc.ID, "Seen from 203.0.113.0/24.\nBlocking."); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	if _, err := e.svc.SuspendOrganization(e.ctx, incBy, org.ID, "containment", inc.ID); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	if _, err := e.svc.RevokeProjectKeys(e.ctx, incBy, p.ID, inc.ID); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	closed, err := e.svc.CloseIncident(e.ctx, "cli:bob", inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if closed.Status != IncidentClosed || closed.ClosedAt == nil || !closed.ClosedAt.Equal(e.clock.Now()) {
		t.Errorf("closed incident: %+v", closed)
	}

	tl, err := e.svc.GetIncident(e.ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Seq    int64
		At     time.Time
		Actor  string
		Kind   string
		Detail map[string]string
	}
	var got []entry
	for _, ev := range tl.Events {
		got = append(got, entry{ev.Seq, ev.At, ev.Actor, ev.Kind, incDetail(t, ev)})
	}
	want := []entry{
		{1, start, "cli:alice", "opened", map[string]string{"title": "Credential stuffing against Acme"}},
		{2, start.Add(time.Minute), "cli:bob", "note", map[string]string{"text": "Seen from 203.0.113.0/24.\nBlocking."}},
		{3, start.Add(2 * time.Minute), "cli:alice", "org.suspended", map[string]string{"organization_id": org.ID,
			"organization": "Acme", "reason": "containment", "projects": "1"}},
		{4, start.Add(3 * time.Minute), "cli:alice", "keys.revoked", map[string]string{"project_id": p.ID,
			"project": "Project", "organization_id": org.ID, "count": "0"}},
		{5, start.Add(4 * time.Minute), "cli:bob", "closed", map[string]string{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	if tl.Title != "Credential stuffing against Acme" || tl.Status != IncidentClosed || tl.CreatedBy != "cli:alice" {
		t.Errorf("incident: %+v", tl.Incident)
	}

	// A closed incident takes nothing more.
	_, err = e.svc.AddIncidentNote(e.ctx, incBy, inc.ID, "late")
	orgWantErr(t, err, thauth.EConflict, "is closed")
	_, err = e.svc.CloseIncident(e.ctx, incBy, inc.ID)
	orgWantErr(t, err, thauth.EConflict, "is closed")
	_, err = e.svc.ReinstateOrganization(e.ctx, incBy, org.ID, inc.ID)
	orgWantErr(t, err, thauth.EConflict, "is closed")
	if o, _ := e.store.GetOrganization(e.ctx, org.ID); o.SuspendedAt == nil {
		t.Error("a refused reinstatement reinstated")
	}
	_, err = e.svc.GetIncident(e.ctx, "0190e6c2-0000-7000-8000-00000000ffff")
	orgWantErr(t, err, thauth.ENotFound, "incident not found")

	// Listing: newest first; an automatic incident for the reinstatement.
	e.advance(time.Minute)
	back, err := e.svc.ReinstateOrganization(e.ctx, incBy, org.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.svc.ListIncidents(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != back.Incident.ID || list[1].ID != inc.ID ||
		list[0].Title != "Reinstatement of organization Acme ("+org.ID+")" {
		t.Errorf("list: %+v", list)
	}

	// The installation's audit chain has the incident's own entries.
	var actions []string
	for _, a := range orgAudit(t, e, "") {
		if strings.HasPrefix(a.Action, "incident.") {
			actions = append(actions, a.Action+" "+a.ActorID)
		}
	}
	if diff := cmp.Diff([]string{"incident.opened alice", "incident.note bob", "incident.closed bob", "incident.opened alice"}, actions); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func TestIncidentOperatorGrantedEvent(t *testing.T) {
	e := newConsoleEnv(t)
	op := orgNewAccount(t, e, "ops@example.com", true)
	if _, err := e.svc.GrantOperator(e.ctx, "ops@example.com", "support", incBy); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GrantOperator(e.ctx, "ops@example.com", "superadmin", incBy); err != nil {
		t.Fatal(err)
	}
	evs, err := e.store.ListSecurityEvents(e.ctx, "", nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("security events: %+v", evs)
	}
	ev := evs[0] // newest first
	var evidence map[string]string
	if err := json.Unmarshal([]byte(ev.Evidence), &evidence); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"account_id": op.AccountID, "email": "ops@example.com", "role": "superadmin",
		"previous_role": "support", "granted_by": incBy}
	if diff := cmp.Diff(want, evidence); diff != "" || ev.Kind != "operator_granted" || ev.Severity != thauth.SeverityHigh ||
		ev.OrganizationID != "" || !ev.At.Equal(e.clock.Now()) {
		t.Errorf("event %+v (-want +got evidence):\n%s", ev, diff)
	}
}
