package manage

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/webhook"
)

// secEndpoint registers an endpoint for events as a and returns it with its secret.
func secEndpoint(t testing.TB, e *consoleEnv, a Actor, orgID, url string, events ...string) (*thauth.WebhookEndpoint, string) {
	t.Helper()
	ep, secret, err := e.svc.CreateWebhookEndpoint(e.ctx, a, orgID, url, "", events)
	if err != nil {
		t.Fatalf("CreateWebhookEndpoint(%s): %v", url, err)
	}
	return ep, secret
}

// secDeliveries returns the deliveries of one endpoint, straight from the store.
func secDeliveries(t testing.TB, e *consoleEnv, orgID, endpointID string) []thauth.WebhookDelivery {
	t.Helper()
	ds, err := e.store.ListDeliveries(e.ctx, orgID, endpointID, 0)
	if err != nil {
		t.Fatalf("ListDeliveries: %v", err)
	}
	return ds
}

// secAlerts returns the security_alert mails sent to the account's address.
func secAlerts(t testing.TB, e *consoleEnv, a Actor) []sentMail {
	t.Helper()
	var out []sentMail
	for _, m := range e.mails(t, orgEmail(t, e, a)) {
		if m.Template == MailSecurityAlert {
			out = append(out, m)
		}
	}
	return out
}

// secAbuseEvent is an event as the abuse-event consumer passes it on.
func secAbuseEvent(orgID, projectID string) thauth.SecurityEvent {
	return thauth.SecurityEvent{
		OrganizationID: orgID, ProjectID: projectID, Kind: "revoked_key_used", Severity: thauth.SeverityHigh,
		At:       testStart.Add(time.Minute),
		Title:    "Revoked API key k_123 was used from 203.0.113.7",
		Evidence: `{"ip":"203.0.113.7","key_id":"k_123"}`,
	}
}

// TestRecordSecurityEventFanOut: an abuse event is stored, mailed to the owners and admins
// of its organization only, delivered to the endpoints that want it only (in the exact
// envelope internal/webhook builds), and audited — all of it or nothing.
func TestRecordSecurityEventFanOut(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	other := orgNewAccount(t, e, "other@example.com", false)
	otherOrg := orgNewOrg(t, e, other, "Other")

	all, _ := secEndpoint(t, e, tm.owner, tm.org.ID, "https://hooks.example.com/all")
	family, _ := secEndpoint(t, e, tm.admin, tm.org.ID, "https://hooks.example.com/family", "security.*")
	exact, _ := secEndpoint(t, e, tm.owner, tm.org.ID, "https://hooks.example.com/exact", "security.revoked_key_used")
	elsewhere, _ := secEndpoint(t, e, tm.owner, tm.org.ID, "https://hooks.example.com/spikes", "security.deny_spike")
	foreign, _ := secEndpoint(t, e, other, otherOrg.ID, "https://hooks.example.com/foreign", "*")

	ev, err := e.svc.RecordSecurityEvent(e.ctx, secAbuseEvent(tm.org.ID, ""))
	if err != nil {
		t.Fatalf("RecordSecurityEvent: %v", err)
	}
	if ev.ID == "" || !ev.At.Equal(testStart.Add(time.Minute)) {
		t.Fatalf("recorded event = %+v", ev)
	}

	// Stored and listed.
	list, next, err := e.svc.ListSecurityEvents(e.ctx, tm.owner, tm.org.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]thauth.SecurityEvent{*ev}, list); diff != "" || next != "" {
		t.Errorf("listed events (-want +got):\n%s next=%q", diff, next)
	}

	// Mail: owners and admins, nobody else.
	for _, a := range []Actor{tm.owner, tm.admin} {
		ms := secAlerts(t, e, a)
		if len(ms) != 1 {
			t.Fatalf("%s got %d security alerts, want 1", orgEmail(t, e, a), len(ms))
		}
		d := ms[0].Data
		if d["title"] != ev.Title || d["time"] == "" || d["name"] == "" ||
			!strings.Contains(d["detail"], "ip=203.0.113.7") || !strings.Contains(d["detail"], "Acme") ||
			!strings.Contains(d["detail"], "Severity: high") {
			t.Errorf("alert payload = %v", d)
		}
	}
	for _, a := range []Actor{tm.developer, tm.viewer, tm.bill, other} {
		if ms := secAlerts(t, e, a); len(ms) != 0 {
			t.Errorf("%s got %d security alerts, want none", orgEmail(t, e, a), len(ms))
		}
	}

	// Webhooks: one delivery per endpoint that wants the event.
	for _, c := range []struct {
		ep   *thauth.WebhookEndpoint
		org  string
		want int
	}{{all, tm.org.ID, 1}, {family, tm.org.ID, 1}, {exact, tm.org.ID, 1}, {elsewhere, tm.org.ID, 0}, {foreign, otherOrg.ID, 0}} {
		if got := secDeliveries(t, e, c.org, c.ep.ID); len(got) != c.want {
			t.Errorf("endpoint %s: %d deliveries, want %d", c.ep.URL, len(got), c.want)
		}
	}
	d := secDeliveries(t, e, tm.org.ID, all.ID)[0]
	if d.EventID != ev.ID || d.EventType != "security.revoked_key_used" || d.Status != thauth.DeliveryPending ||
		d.NextAttemptAt == nil || d.Attempts != 0 {
		t.Errorf("delivery = %+v", d)
	}
	// The payload is exactly what internal/webhook.NewPayload makes of the event.
	wantPayload, err := webhook.NewPayload("security.revoked_key_used", ev.At, map[string]any{
		"id": ev.ID, "organization_id": tm.org.ID, "kind": "revoked_key_used", "severity": "high",
		"at": ev.At, "title": ev.Title, "evidence": map[string]string{"ip": "203.0.113.7", "key_id": "k_123"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := json.Unmarshal(d.Payload, &got); err != nil {
		t.Fatalf("payload %s: %v", d.Payload, err)
	}
	if err := json.Unmarshal(wantPayload, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}

	// Audited in the organization's chain.
	entries := orgAudit(t, e, tm.org.ID)
	last := entries[len(entries)-1]
	if last.Action != "security.event" || last.Target != ev.ID || last.ActorType != thauth.ActorSystem ||
		!strings.Contains(last.Data, `"webhook_deliveries":"3"`) || !strings.Contains(last.Data, `"mails":"2"`) {
		t.Errorf("audit entry = %+v", last)
	}
}

// TestRecordSecurityEventScope: an event about a project goes to the project's
// organization; an installation-level one to every operator (and nobody else); one about an
// organization that does not exist is refused whole.
func TestRecordSecurityEventScope(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	p, err := e.svc.CreateProject(e.ctx, tm.owner, tm.org.ID, "shop")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := e.svc.RecordSecurityEvent(e.ctx, secAbuseEvent("", p.ID))
	if err != nil {
		t.Fatal(err)
	}
	if ev.OrganizationID != tm.org.ID {
		t.Errorf("event of the project filed under %q, want %q", ev.OrganizationID, tm.org.ID)
	}
	if n := len(secAlerts(t, e, tm.owner)); n != 1 {
		t.Errorf("owner got %d alerts, want 1", n)
	}

	op := orgNewAccount(t, e, "op@example.com", true)
	if _, err := e.svc.GrantOperator(e.ctx, "op@example.com", "support", "root"); err != nil {
		t.Fatal(err)
	}
	inst, err := e.svc.RecordSecurityEvent(e.ctx, thauth.SecurityEvent{
		Kind: "operator_granted", Severity: thauth.SeverityHigh, Title: "Account x was granted the operator role support by root",
		Evidence: `{"account_id":"x","role":"support"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if inst.OrganizationID != "" || !inst.At.Equal(testStart) || inst.Evidence == "" {
		t.Errorf("installation event = %+v", inst)
	}
	// The grant itself is an installation event: every operator, the new one included, was
	// alerted of it; then of the event above.
	if n := len(secAlerts(t, e, op)); n != 2 {
		t.Errorf("operator got %d alerts, want 2 (its grant, the event)", n)
	}
	if n := len(secAlerts(t, e, tm.owner)); n != 1 {
		t.Errorf("owner got %d alerts after an installation event, want still 1", n)
	}
	stored, err := e.store.ListSecurityEvents(e.ctx, "", nil, 10)
	if err != nil || !slices.ContainsFunc(stored, func(s thauth.SecurityEvent) bool { return s.ID == inst.ID }) {
		t.Errorf("installation events = %+v, %v", stored, err)
	}
	if es := orgAudit(t, e, ""); es[len(es)-1].Action != "security.event" {
		t.Errorf("installation chain ends with %q", es[len(es)-1].Action)
	}

	// The system organization's events are the installation's.
	sys, err := e.svc.RecordSecurityEvent(e.ctx, secAbuseEvent(thauth.SystemOrganizationID, ""))
	if err != nil || sys.OrganizationID != "" {
		t.Errorf("system organization event = %+v, %v", sys, err)
	}
	if n := len(secAlerts(t, e, op)); n != 3 {
		t.Errorf("operator got %d alerts, want 3", n)
	}

	// Unknown organization: nothing stored.
	_, err = e.svc.RecordSecurityEvent(e.ctx, secAbuseEvent("01900000-0000-7000-8000-00000000abcd", ""))
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	if list, _ := e.store.ListSecurityEvents(e.ctx, "01900000-0000-7000-8000-00000000abcd", nil, 10); len(list) != 0 {
		t.Errorf("an event of an unknown organization was stored: %+v", list)
	}
}

// TestRecordSecurityEventValidation: malformed events are refused before anything is
// written.
func TestRecordSecurityEventValidation(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	for _, c := range []struct {
		name string
		edit func(*thauth.SecurityEvent)
		msg  string
	}{
		{"no kind", func(ev *thauth.SecurityEvent) { ev.Kind = "" }, "kind"},
		{"kind with a dot", func(ev *thauth.SecurityEvent) { ev.Kind = "a.b" }, "kind"},
		{"upper-case kind", func(ev *thauth.SecurityEvent) { ev.Kind = "Deny" }, "kind"},
		{"severity", func(ev *thauth.SecurityEvent) { ev.Severity = "urgent" }, "severity"},
		{"title", func(ev *thauth.SecurityEvent) { ev.Title = "  " }, "title"},
		{"evidence not JSON", func(ev *thauth.SecurityEvent) { ev.Evidence = "ip=1" }, "evidence"},
		{"evidence not strings", func(ev *thauth.SecurityEvent) { ev.Evidence = `{"count":3}` }, "evidence"},
		{"evidence array", func(ev *thauth.SecurityEvent) { ev.Evidence = `["x"]` }, "evidence"},
		{"evidence too big", func(ev *thauth.SecurityEvent) {
			ev.Evidence = `{"x":"` + strings.Repeat("a", 9000) + `"}`
		}, "evidence"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := secAbuseEvent(tm.org.ID, "")
			c.edit(&ev)
			_, err := e.svc.RecordSecurityEvent(e.ctx, ev)
			orgWantErr(t, err, thauth.EInvalid, c.msg)
		})
	}
	if list, _ := e.store.ListSecurityEvents(e.ctx, tm.org.ID, nil, 10); len(list) != 0 {
		t.Errorf("refused events were stored: %+v", list)
	}
}

// TestListSecurityEvents: pages with a cursor, newest first; who may read.
func TestListSecurityEvents(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	var ids []string
	for i := range 5 {
		ev := secAbuseEvent(tm.org.ID, "")
		ev.At = testStart.Add(time.Duration(i) * time.Second)
		got, err := e.svc.RecordSecurityEvent(e.ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got.ID)
	}
	slices.Reverse(ids)
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		list, next, err := e.svc.ListSecurityEvents(e.ctx, tm.admin, tm.org.ID, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range list {
			seen = append(seen, ev.ID)
		}
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("the listing does not end")
		}
		cursor = next
	}
	if diff := cmp.Diff(ids, seen); diff != "" {
		t.Errorf("paged ids (-want +got):\n%s", diff)
	}

	_, _, err := e.svc.ListSecurityEvents(e.ctx, tm.owner, tm.org.ID, "not-a-cursor!", 2)
	orgWantErr(t, err, thauth.EInvalid, "cursor")
	_, _, err = e.svc.ListSecurityEvents(e.ctx, tm.owner, tm.org.ID, "", 1001)
	orgWantErr(t, err, thauth.EInvalid, "limit")

	for _, a := range []Actor{tm.developer, tm.viewer, tm.bill} {
		_, _, err := e.svc.ListSecurityEvents(e.ctx, a, tm.org.ID, "", 0)
		orgWantErr(t, err, thauth.EForbidden, "security:read")
	}
	outsider := orgNewAccount(t, e, "out@example.com", false)
	_, _, err = e.svc.ListSecurityEvents(e.ctx, outsider, tm.org.ID, "", 0)
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
}

// BenchmarkRecordSecurityEvent measures one event with two recipients and two endpoints.
func BenchmarkRecordSecurityEvent(b *testing.B) {
	e := newConsoleEnv(b)
	owner := orgNewAccount(b, e, "owner@example.com", false)
	org := orgNewOrg(b, e, owner, "Acme")
	secEndpoint(b, e, owner, org.ID, "https://hooks.example.com/a")
	secEndpoint(b, e, owner, org.ID, "https://hooks.example.com/b", "security.*")
	ev := secAbuseEvent(org.ID, "")
	for b.Loop() {
		if _, err := e.svc.RecordSecurityEvent(e.ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}
