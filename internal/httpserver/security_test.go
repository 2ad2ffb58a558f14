package httpserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/webhook"
)

// webhookCreated is the answer to creation and rotation.
type webhookCreated struct {
	Endpoint struct {
		ID                      string     `json:"id"`
		URL                     string     `json:"url"`
		Events                  []string   `json:"events"`
		PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	} `json:"endpoint"`
	Secret string `json:"secret"`
}

// TestSecurityEventsAndWebhooksAPI: an owner registers an endpoint (the secret in that
// answer only), lists it, sends a test, follows its delivery, rotates the secret and deletes
// the endpoint; security events are listed with their evidence, page by page.
func TestSecurityEventsAndWebhooksAPI(t *testing.T) {
	e := newConsoleEnv(t)
	owner, _ := e.newAccount("olga@example.com")
	org := owner.createOrg("Acme")
	base := "/api/v1/orgs/" + org

	r := owner.do("POST", base+"/webhooks", map[string]any{
		"url": "https://hooks.example.com/thauth", "description": "pager", "events": []string{"security.*"},
	})
	want(t, r, http.StatusCreated)
	var created webhookCreated
	r.decode(t, &created)
	if err := webhook.ValidateSecret(created.Secret); err != nil || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("secret %q: %v", created.Secret, err)
	}
	id := created.Endpoint.ID
	if created.Endpoint.URL != "https://hooks.example.com/thauth" || len(created.Endpoint.Events) != 1 {
		t.Errorf("endpoint = %s", r)
	}

	r = owner.do("GET", base+"/webhooks", nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), id) || strings.Contains(r.String(), created.Secret) ||
		strings.Contains(r.String(), "secret\"") {
		t.Errorf("listing = %s", r)
	}

	// Test event: queued, in the endpoint's deliveries, no attempts yet.
	r = owner.do("POST", base+"/webhooks/"+id+"/test", nil)
	want(t, r, http.StatusAccepted)
	var test struct {
		Delivery struct {
			ID        string          `json:"id"`
			EventType string          `json:"event_type"`
			Status    string          `json:"status"`
			Payload   json.RawMessage `json:"payload"`
		} `json:"delivery"`
	}
	r.decode(t, &test)
	if test.Delivery.EventType != "security.test" || test.Delivery.Status != "pending" ||
		!strings.Contains(string(test.Delivery.Payload), `"type":"security.test"`) {
		t.Errorf("test delivery = %s", r)
	}
	r = owner.do("GET", base+"/webhooks/"+id+"/deliveries?limit=5", nil)
	want(t, r, http.StatusOK)
	if !strings.Contains(r.String(), test.Delivery.ID) {
		t.Errorf("deliveries = %s", r)
	}
	wantErr(t, owner.do("GET", base+"/webhooks/"+id+"/deliveries?limit=0", nil), http.StatusBadRequest, thauth.EInvalid, "limit")
	wantErr(t, owner.do("GET", base+"/webhooks/"+id+"/deliveries?page=2", nil), http.StatusBadRequest, thauth.EInvalid, "page")
	r = owner.do("GET", base+"/webhook-deliveries/"+test.Delivery.ID+"/attempts", nil)
	want(t, r, http.StatusOK)
	if r.String() != `{"attempts":[]}` {
		t.Errorf("attempts = %s", r)
	}
	wantErr(t, owner.do("GET", base+"/webhook-deliveries/01900000-0000-7000-8000-00000000abcd/attempts", nil),
		http.StatusNotFound, thauth.ENotFound, "webhook delivery not found")

	// Rotation: a new secret, the old one signing until the overlap ends.
	r = owner.do("POST", base+"/webhooks/"+id+"/rotate-secret", nil)
	want(t, r, http.StatusOK)
	var rotated webhookCreated
	r.decode(t, &rotated)
	if rotated.Secret == created.Secret || webhook.ValidateSecret(rotated.Secret) != nil ||
		rotated.Endpoint.PreviousSecretExpiresAt == nil {
		t.Errorf("rotation = %s", r)
	}

	// Security events, with evidence as an object, paged.
	for i := range 3 {
		_, err := e.mg.RecordSecurityEvent(e.ctx, thauth.SecurityEvent{OrganizationID: org, Kind: "invalid_keys_from_ip",
			Severity: thauth.SeverityMedium, At: e.clock.Now().Add(time.Duration(i) * time.Second),
			Title: "20 requests with invalid API keys from 203.0.113.7", Evidence: `{"ip":"203.0.113.7","count":"20"}`})
		if err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Events []struct {
			ID       string            `json:"id"`
			Kind     string            `json:"kind"`
			Evidence map[string]string `json:"evidence"`
		} `json:"events"`
		NextCursor *string `json:"next_cursor"`
	}
	var p1, p2 page
	r = owner.do("GET", base+"/security-events?limit=2", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &p1)
	if len(p1.Events) != 2 || p1.NextCursor == nil || p1.Events[0].Evidence["ip"] != "203.0.113.7" {
		t.Fatalf("first page = %s", r)
	}
	r = owner.do("GET", base+"/security-events?limit=2&cursor="+*p1.NextCursor, nil)
	want(t, r, http.StatusOK)
	r.decode(t, &p2)
	if len(p2.Events) != 1 || p2.NextCursor != nil || p2.Events[0].ID == p1.Events[0].ID || p2.Events[0].ID == p1.Events[1].ID {
		t.Errorf("second page = %s", r)
	}
	wantErr(t, owner.do("GET", base+"/security-events?cursor=%25%25", nil), http.StatusBadRequest, thauth.EInvalid, "cursor")
	wantErr(t, owner.do("GET", base+"/security-events?limit=5000", nil), http.StatusBadRequest, thauth.EInvalid, "limit")

	// The events were fanned out to the endpoint (security.*), beside the test.
	r = owner.do("GET", base+"/webhooks/"+id+"/deliveries", nil)
	var ds struct {
		Deliveries []struct {
			EventType string `json:"event_type"`
		} `json:"deliveries"`
	}
	r.decode(t, &ds)
	if len(ds.Deliveries) != 4 {
		t.Errorf("deliveries after 3 events = %s", r)
	}

	want(t, owner.do("DELETE", base+"/webhooks/"+id, nil), http.StatusNoContent)
	wantErr(t, owner.do("DELETE", base+"/webhooks/"+id, nil), http.StatusNotFound, thauth.ENotFound, "webhook endpoint not found")

	// The access log never holds a secret.
	for _, s := range []string{created.Secret, rotated.Secret} {
		if strings.Contains(e.logs.String(), s) {
			t.Fatal("a webhook secret reached the log")
		}
	}
}

// TestWebhookAPIAccess: a developer cannot manage endpoints nor read events (403 naming the
// permission and the reason); another organization's member gets 404 for the organization
// and for its endpoints through its own organization; a read-only token cannot write; a
// refused URL is a 400 naming the problem.
func TestWebhookAPIAccess(t *testing.T) {
	e := newConsoleEnv(t)
	owner, _ := e.newAccount("olga@example.com")
	dev, _ := e.newAccount("dave@example.com")
	bob, _ := e.newAccount("bob@example.com")
	org := owner.createOrg("Acme")
	bobOrg := bob.createOrg("Bob")
	e.addMember(owner, dev, org, "dave@example.com", "developer")
	base := "/api/v1/orgs/" + org

	r := owner.do("POST", base+"/webhooks", map[string]any{"url": "https://hooks.example.com/a"})
	want(t, r, http.StatusCreated)
	var created webhookCreated
	r.decode(t, &created)
	id := created.Endpoint.ID

	b := wantErr(t, dev.do("POST", base+"/webhooks", map[string]any{"url": "https://hooks.example.com/b"}),
		http.StatusForbidden, thauth.EForbidden, `your role "developer" does not allow security:manage`)
	if !strings.Contains(b.Error, "reason") {
		t.Errorf("denial without a reason: %q", b.Error)
	}
	wantErr(t, dev.do("GET", base+"/webhooks", nil), http.StatusForbidden, thauth.EForbidden, "security:read")
	wantErr(t, dev.do("GET", base+"/security-events", nil), http.StatusForbidden, thauth.EForbidden, "security:read")
	wantErr(t, dev.do("DELETE", base+"/webhooks/"+id, nil), http.StatusForbidden, thauth.EForbidden, "security:manage")
	wantErr(t, dev.do("POST", base+"/webhooks/"+id+"/rotate-secret", nil), http.StatusForbidden, thauth.EForbidden, "security:manage")

	for _, c := range []struct{ method, path string }{
		{"GET", base + "/webhooks"},
		{"GET", base + "/security-events"},
		{"DELETE", base + "/webhooks/" + id},
		{"POST", base + "/webhooks/" + id + "/rotate-secret"},
		{"POST", base + "/webhooks/" + id + "/test"},
		{"GET", base + "/webhooks/" + id + "/deliveries"},
	} {
		wantErr(t, bob.do(c.method, c.path, nil), http.StatusNotFound, thauth.ENotFound, "organization not found")
		// Through Bob's own organization, the endpoint id leads nowhere.
		own := strings.Replace(c.path, org, bobOrg, 1)
		if strings.Contains(own, id) {
			wantErr(t, bob.do(c.method, own, nil), http.StatusNotFound, thauth.ENotFound, "webhook endpoint not found")
		}
	}

	ro := owner.createToken("ci", "read")
	want(t, e.bearer(ro, "GET", base+"/webhooks", nil), http.StatusOK)
	wantErr(t, e.bearer(ro, "POST", base+"/webhooks", map[string]any{"url": "https://hooks.example.com/c"}),
		http.StatusForbidden, thauth.EForbidden, "read-only")
	rw := owner.createToken("ci-rw", "read", "write")
	want(t, e.bearer(rw, "POST", base+"/webhooks", map[string]any{"url": "https://hooks.example.com/c"}), http.StatusCreated)

	for _, c := range []struct {
		body any
		msg  string
	}{
		{map[string]any{"url": "http://hooks.example.com/a"}, "https"},
		{map[string]any{"url": "https://u:p@hooks.example.com/a"}, "credentials"},
		{map[string]any{"url": "https://hooks.example.com/a", "events": []string{"deny_spike"}}, "pattern"},
		{map[string]any{"description": "no url"}, `"url" is required`},
		{map[string]any{"url": "https://hooks.example.com/a", "secret": "whsec_mine"}, `unknown field "secret"`},
	} {
		wantErr(t, owner.do("POST", base+"/webhooks", c.body), http.StatusBadRequest, thauth.EInvalid, c.msg)
	}
}
