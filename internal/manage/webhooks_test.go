package manage

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/webhook"
)

// whOpen opens a sealed endpoint secret.
func whOpen(t testing.TB, e *consoleEnv, endpointID, sealed string) string {
	t.Helper()
	b, err := e.sealer.Open(e.ctx, WebhookPurpose, endpointID, sealed)
	if err != nil {
		t.Fatalf("open webhook secret: %v", err)
	}
	return string(b)
}

// TestWebhookEndpointLifecycle: create (the secret shown once, stored sealed, valid for
// internal/webhook), list (no secret), rotate (the old secret kept for the overlap), delete;
// each audited without the URL's path.
func TestWebhookEndpointLifecycle(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	const url = "https://hooks.example.com/services/T0/B0/tok3n-in-path"
	ep, secret, err := e.svc.CreateWebhookEndpoint(e.ctx, tm.admin, tm.org.ID, url, "Pager", []string{"security.*", "security.*"})
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := strings.CutPrefix(secret, "whsec_")
	key, derr := base64.StdEncoding.DecodeString(raw)
	if !ok || derr != nil || len(key) != 32 {
		t.Fatalf("secret %q is not whsec_ + base64 of 32 bytes", secret)
	}
	if err := webhook.ValidateSecret(secret); err != nil {
		t.Fatalf("internal/webhook refuses the secret: %v", err)
	}
	if ep.Secret != "" || ep.PreviousSecret != "" || len(ep.Events) != 1 || ep.Events[0] != "security.*" ||
		ep.Description != "Pager" || ep.OrganizationID != tm.org.ID {
		t.Errorf("created endpoint = %+v", ep)
	}
	stored, err := e.store.GetWebhookEndpoint(e.ctx, tm.org.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Secret == secret || strings.Contains(stored.Secret, raw) {
		t.Fatal("the secret is stored in the clear")
	}
	if got := whOpen(t, e, ep.ID, stored.Secret); got != secret {
		t.Fatal("the sealed secret does not open to the returned one")
	}

	list, err := e.svc.ListWebhookEndpoints(e.ctx, tm.owner, tm.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(list)
	if len(list) != 1 || list[0].ID != ep.ID || list[0].Secret != "" || strings.Contains(string(js), raw) {
		t.Errorf("listing = %s", js)
	}

	// Rotation: a new secret; the old one stays, sealed, for 24 hours.
	e.advance(time.Hour)
	rotated, secret2, err := e.svc.RotateWebhookSecret(e.ctx, tm.owner, tm.org.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if secret2 == secret || webhook.ValidateSecret(secret2) != nil {
		t.Fatalf("rotated secret %q", secret2)
	}
	wantUntil := testStart.Add(time.Hour + WebhookRotationOverlap)
	if rotated.PreviousSecretExpiresAt == nil || !rotated.PreviousSecretExpiresAt.Equal(wantUntil) || rotated.Secret != "" {
		t.Errorf("rotated endpoint = %+v", rotated)
	}
	stored, _ = e.store.GetWebhookEndpoint(e.ctx, tm.org.ID, ep.ID)
	if whOpen(t, e, ep.ID, stored.Secret) != secret2 || whOpen(t, e, ep.ID, stored.PreviousSecret) != secret {
		t.Error("after rotation the stored secrets are not (new, old)")
	}
	// Once the overlap is over, listings stop showing it.
	e.advance(WebhookRotationOverlap)
	list, _ = e.svc.ListWebhookEndpoints(e.ctx, tm.owner, tm.org.ID)
	if list[0].PreviousSecretExpiresAt != nil {
		t.Errorf("overlap shown after it ended: %v", list[0].PreviousSecretExpiresAt)
	}

	if err := e.svc.DeleteWebhookEndpoint(e.ctx, tm.owner, tm.org.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetWebhookEndpoint(e.ctx, tm.org.ID, ep.ID); thauth.ErrorCodeOf(err) != thauth.ENotFound {
		t.Errorf("after delete: %v", err)
	}
	orgWantErr(t, e.svc.DeleteWebhookEndpoint(e.ctx, tm.owner, tm.org.ID, ep.ID), thauth.ENotFound, "webhook endpoint not found")

	var actions []string
	for _, a := range orgAudit(t, e, tm.org.ID) {
		if strings.HasPrefix(a.Action, "webhook.") {
			actions = append(actions, a.Action)
			if strings.Contains(a.Data, "tok3n") || strings.Contains(a.Data, "whsec_") {
				t.Errorf("audit entry %s holds a secret: %s", a.Action, a.Data)
			}
			if a.Action == "webhook.created" && !strings.Contains(a.Data, "hooks.example.com") {
				t.Errorf("webhook.created data = %s", a.Data)
			}
		}
	}
	if strings.Join(actions, " ") != "webhook.created webhook.secret_rotated webhook.deleted" {
		t.Errorf("audit actions = %v", actions)
	}
}

// TestWebhookURLAndEvents: what registration refuses.
func TestWebhookURLAndEvents(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	for _, c := range []struct {
		name, url string
		events    []string
		msg       string
	}{
		{"http", "http://hooks.example.com/x", nil, "https"},
		{"ftp", "ftp://hooks.example.com/x", nil, "https"},
		{"relative", "/hooks", nil, "https"},
		{"empty", "", nil, "url is required"},
		{"credentials", "https://user:pw@hooks.example.com/x", nil, "credentials"},
		{"user only", "https://user@hooks.example.com/x", nil, "credentials"},
		{"no host", "https:///x", nil, "host"},
		{"fragment", "https://hooks.example.com/x#frag", nil, "fragment"},
		{"too long", "https://hooks.example.com/" + strings.Repeat("a", 2048), nil, "2048"},
		{"bad pattern", "https://hooks.example.com/x", []string{"deny_spike"}, "pattern"},
		{"other family", "https://hooks.example.com/x", []string{"billing.*"}, "pattern"},
		{"bad kind", "https://hooks.example.com/x", []string{"security.Deny-Spike"}, "pattern"},
		{"mid wildcard", "https://hooks.example.com/x", []string{"security.*.x"}, "pattern"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := e.svc.CreateWebhookEndpoint(e.ctx, tm.owner, tm.org.ID, c.url, "", c.events)
			orgWantErr(t, err, thauth.EInvalid, c.msg)
		})
	}
	for _, events := range [][]string{nil, {"*"}, {"security.*"}, {"security.revoked_key_used", "security.test"}} {
		if _, _, err := e.svc.CreateWebhookEndpoint(e.ctx, tm.owner, tm.org.ID, "https://hooks.example.com/ok", "", events); err != nil {
			t.Errorf("events %q refused: %v", events, err)
		}
	}

	// http for development, and the node's own URL check.
	e.svc.opts.AllowInsecureWebhooks = true
	if _, _, err := e.svc.CreateWebhookEndpoint(e.ctx, tm.owner, tm.org.ID, "http://127.0.0.1:9/hook", "", nil); err != nil {
		t.Errorf("http with AllowInsecureWebhooks: %v", err)
	}
	e.svc.opts.CheckWebhookURL = webhook.URLPolicy{AllowInsecure: true}.Check
	_, _, err := e.svc.CreateWebhookEndpoint(e.ctx, tm.owner, tm.org.ID, "http://10.0.0.8/hook", "", nil)
	orgWantErr(t, err, thauth.EInvalid, "not public")

	// At most MaxWebhookEndpoints per organization.
	e.svc.opts.CheckWebhookURL = nil
	list, _ := e.svc.ListWebhookEndpoints(e.ctx, tm.owner, tm.org.ID)
	for i := len(list); i < MaxWebhookEndpoints; i++ {
		secEndpoint(t, e, tm.owner, tm.org.ID, "https://hooks.example.com/fill")
	}
	_, _, err = e.svc.CreateWebhookEndpoint(e.ctx, tm.owner, tm.org.ID, "https://hooks.example.com/one-more", "", nil)
	orgWantErr(t, err, thauth.EConflict, "at most 20")
}

// TestWebhookPermissions: owners and admins manage endpoints; the other roles cannot (with
// the permission and the reason); other organizations' endpoints and deliveries are not
// found.
func TestWebhookPermissions(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	ep, _ := secEndpoint(t, e, tm.owner, tm.org.ID, "https://hooks.example.com/a")
	d, err := e.svc.SendTestEvent(e.ctx, tm.owner, tm.org.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}

	for _, a := range []Actor{tm.developer, tm.viewer, tm.bill} {
		_, _, err := e.svc.CreateWebhookEndpoint(e.ctx, a, tm.org.ID, "https://hooks.example.com/b", "", nil)
		orgWantErr(t, err, thauth.EForbidden, "does not allow security:manage", "reason")
		orgWantErr(t, e.svc.DeleteWebhookEndpoint(e.ctx, a, tm.org.ID, ep.ID), thauth.EForbidden, "security:manage")
		_, _, err = e.svc.RotateWebhookSecret(e.ctx, a, tm.org.ID, ep.ID)
		orgWantErr(t, err, thauth.EForbidden, "security:manage")
		_, err = e.svc.SendTestEvent(e.ctx, a, tm.org.ID, ep.ID)
		orgWantErr(t, err, thauth.EForbidden, "security:manage")
		_, err = e.svc.ListWebhookEndpoints(e.ctx, a, tm.org.ID)
		orgWantErr(t, err, thauth.EForbidden, "security:read")
	}

	// Another organization's owner: its own org path does not reach our endpoint...
	bob := orgNewAccount(t, e, "bob@example.com", false)
	bobOrg := orgNewOrg(t, e, bob, "Bob")
	orgWantErr(t, e.svc.DeleteWebhookEndpoint(e.ctx, bob, bobOrg.ID, ep.ID), thauth.ENotFound, "webhook endpoint not found")
	_, _, err = e.svc.RotateWebhookSecret(e.ctx, bob, bobOrg.ID, ep.ID)
	orgWantErr(t, err, thauth.ENotFound, "webhook endpoint not found")
	_, err = e.svc.SendTestEvent(e.ctx, bob, bobOrg.ID, ep.ID)
	orgWantErr(t, err, thauth.ENotFound, "webhook endpoint not found")
	_, err = e.svc.ListWebhookDeliveries(e.ctx, bob, bobOrg.ID, ep.ID, 0)
	orgWantErr(t, err, thauth.ENotFound, "webhook endpoint not found")
	_, err = e.svc.ListWebhookAttempts(e.ctx, bob, bobOrg.ID, d.ID)
	orgWantErr(t, err, thauth.ENotFound, "webhook delivery not found")
	// ...and ours is not found for it.
	_, err = e.svc.ListWebhookEndpoints(e.ctx, bob, tm.org.ID)
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	orgWantErr(t, e.svc.DeleteWebhookEndpoint(e.ctx, bob, tm.org.ID, ep.ID), thauth.ENotFound, "organization not found")
	if _, err := e.store.GetWebhookEndpoint(e.ctx, tm.org.ID, ep.ID); err != nil {
		t.Fatalf("the endpoint was touched: %v", err)
	}
}

// TestWebhookSendTestEvent: a security.test delivery to the endpoint, whatever it subscribes to,
// visible in its history; refused for a disabled endpoint.
func TestWebhookSendTestEvent(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	ep, _ := secEndpoint(t, e, tm.owner, tm.org.ID, "https://hooks.example.com/a", "security.deny_spike")
	d, err := e.svc.SendTestEvent(e.ctx, tm.admin, tm.org.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.EventType != WebhookTestEventType || d.EndpointID != ep.ID || d.Status != thauth.DeliveryPending {
		t.Errorf("delivery = %+v", d)
	}
	var body struct {
		Type string `json:"type"`
		Data struct {
			ID   string `json:"id"`
			Kind string `json:"kind"`
		} `json:"data"`
	}
	if err := json.Unmarshal(d.Payload, &body); err != nil || body.Type != "security.test" || body.Data.ID != d.EventID || body.Data.Kind != "test" {
		t.Errorf("payload %s (%v)", d.Payload, err)
	}
	ds, err := e.svc.ListWebhookDeliveries(e.ctx, tm.owner, tm.org.ID, ep.ID, 10)
	if err != nil || len(ds) != 1 || ds[0].ID != d.ID {
		t.Fatalf("deliveries = %+v, %v", ds, err)
	}
	as, err := e.svc.ListWebhookAttempts(e.ctx, tm.owner, tm.org.ID, d.ID)
	if err != nil || as == nil || len(as) != 0 {
		t.Errorf("attempts of a new delivery = %#v, %v", as, err)
	}
	_, err = e.svc.ListWebhookAttempts(e.ctx, tm.owner, tm.org.ID, "00000000-0000-7000-8000-000000000000")
	orgWantErr(t, err, thauth.ENotFound, "webhook delivery not found")
	_, err = e.svc.ListWebhookDeliveries(e.ctx, tm.owner, tm.org.ID, ep.ID, MaxWebhookListLimit+1)
	orgWantErr(t, err, thauth.EInvalid, "limit")

	// An attempt recorded by the worker shows up.
	at := e.clock.Now()
	d.Status, d.Attempts, d.LastAttemptAt, d.LastStatusCode = thauth.DeliveryDelivered, 1, &at, 204
	d.NextAttemptAt = nil
	if err := e.store.UpdateDelivery(e.ctx, tm.org.ID, d, &thauth.WebhookAttempt{Number: 1, At: at, StatusCode: 204, Duration: 12 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	as, err = e.svc.ListWebhookAttempts(e.ctx, tm.owner, tm.org.ID, d.ID)
	if err != nil || len(as) != 1 || as[0].StatusCode != 204 {
		t.Errorf("attempts = %+v, %v", as, err)
	}

	// Disabled (410 Gone): no test.
	stored, _ := e.store.GetWebhookEndpoint(e.ctx, tm.org.ID, ep.ID)
	stored.DisabledAt, stored.DisabledReason = &at, "the endpoint answered 410 Gone"
	if err := e.store.UpdateWebhookEndpoint(e.ctx, tm.org.ID, stored); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SendTestEvent(e.ctx, tm.owner, tm.org.ID, ep.ID)
	orgWantErr(t, err, thauth.EConflict, "disabled", "410")
	// ...and a disabled endpoint receives no events.
	if _, err := e.svc.RecordSecurityEvent(e.ctx, thauth.SecurityEvent{OrganizationID: tm.org.ID, Kind: "deny_spike",
		Severity: thauth.SeverityMedium, Title: "spike"}); err != nil {
		t.Fatal(err)
	}
	if ds := secDeliveries(t, e, tm.org.ID, ep.ID); len(ds) != 1 {
		t.Errorf("a disabled endpoint got %d deliveries, want the 1 test", len(ds))
	}
}

// TestWebhookNoSealer: without a master key, endpoints cannot be created (their secrets
// could not be stored), and nothing is written.
func TestWebhookNoSealer(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	e.svc.opts.Sealer = nil
	_, _, err := e.svc.CreateWebhookEndpoint(e.ctx, tm.owner, tm.org.ID, "https://hooks.example.com/a", "", nil)
	if thauth.ErrorCodeOf(err) != thauth.EUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	var te *thauth.Error
	if !errors.As(err, &te) || !strings.Contains(te.Message, "master key") {
		t.Errorf("message = %v", err)
	}
	if list, _ := e.store.ListWebhookEndpoints(e.ctx, tm.org.ID); len(list) != 0 {
		t.Errorf("endpoints = %+v", list)
	}
}
