package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/abuse"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/internal/webhook"
)

// secClock is a settable clock shared by every part of a secEnv.
type secClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *secClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *secClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// secEnv is a node's security machinery on the real SQLite store: manage (authorizing through
// the real engine), the sealer, the webhook worker over NewWebhookStore with a real Sender,
// and a receiver (an httptest server) that records what it gets.
type secEnv struct {
	ctx    context.Context
	store  *sqlite.Store
	sealer *seal.Sealer
	mg     *manage.Service
	clock  *secClock
	worker *webhook.Worker
	owner  manage.Actor
	org    *thauth.Organization
	recv   *receiver
}

// receiver is a webhook endpoint that answers status and keeps every request.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	got    []received
}

type received struct {
	header http.Header
	body   []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, received{header: req.Header.Clone(), body: body})
	status := r.status
	r.mu.Unlock()
	w.WriteHeader(status)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

func newSecEnv(t *testing.T) *secEnv {
	t.Helper()
	ctx := context.Background()
	clk := &secClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	mk, err := seal.GenerateMasterKey("test")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.ParseMasterKeys(mk)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := seal.New(ctx, st, keys, seal.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Options{Now: clk.Now})
	mg := manage.New(st, eng, manage.Options{Now: clk.Now, Sealer: sl, Decide: engineDecider(eng),
		AllowInsecureWebhooks: true})
	if err := mg.EnsureConsole(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eng.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	acct := &thauth.Account{ID: "01900000-0000-7000-8000-0000000000a1", Email: "owner@example.com", Name: "Olga",
		PasswordHash: "x", EmailVerifiedAt: &now, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	owner := manage.Actor{AccountID: acct.ID, Via: manage.ViaSession, SessionID: "s1"}
	org, err := mg.CreateOrganization(ctx, owner, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{status: http.StatusNoContent}
	rc.srv = httptest.NewServer(rc)
	t.Cleanup(rc.srv.Close)
	sender := webhook.NewSender(webhook.SenderOptions{
		URLPolicy: webhook.URLPolicy{AllowInsecure: true, AllowPrivate: true}, Now: clk.Now, Timeout: 10 * time.Second})
	w := webhook.NewWorker(webhook.WorkerOptions{Store: NewWebhookStore(st, sl), Sender: sender, Now: clk.Now,
		Jitter: func(d time.Duration) time.Duration { return d }})
	return &secEnv{ctx: ctx, store: st, sealer: sl, mg: mg, clock: clk, worker: w, owner: owner, org: org, recv: rc}
}

// deliverAll runs one worker pass and checks that it sent want deliveries.
func (e *secEnv) deliverAll(t *testing.T, want int) {
	t.Helper()
	n, err := e.worker.RunOnce(e.ctx)
	if err != nil || n != want {
		t.Fatalf("worker pass: %d deliveries, %v; want %d", n, err, want)
	}
}

// waitEvents waits (bounded) until the organization has n security events.
func (e *secEnv) waitEvents(t *testing.T, orgID string, n int) []thauth.SecurityEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := e.store.ListSecurityEvents(e.ctx, orgID, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) >= n {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d security events recorded, want %d", len(list), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAbuseEventToSignedWebhook: a revoked key used against a project becomes, through the
// consumer, a stored security event; the worker delivers it to the endpoint that subscribed,
// signed so that webhook.Verify accepts it with the secret returned at creation, and rejects
// it once the body is tampered with.
func TestAbuseEventToSignedWebhook(t *testing.T) {
	e := newSecEnv(t)
	p, err := e.mg.CreateProject(e.ctx, e.owner, e.org.ID, "shop")
	if err != nil {
		t.Fatal(err)
	}
	ep, secret, err := e.mg.CreateWebhookEndpoint(e.ctx, e.owner, e.org.ID, e.recv.srv.URL+"/hooks/thauth", "",
		[]string{"security.revoked_key_used"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.mg.CreateWebhookEndpoint(e.ctx, e.owner, e.org.ID, e.recv.srv.URL+"/spikes", "",
		[]string{"security.deny_spike"}); err != nil {
		t.Fatal(err)
	}

	det := abuse.New(abuse.Options{Now: e.clock.Now})
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); ConsumeAbuseEvents(ctx, det, e.mg, nil) }()
	t.Cleanup(func() { cancel(); <-done })

	det.RevokedKeyUsed("key_01", p.ID, e.org.ID, "203.0.113.7")
	evs := e.waitEvents(t, e.org.ID, 1)
	ev := evs[0]
	if ev.Kind != abuse.KindRevokedKeyUsed || ev.Severity != thauth.SeverityHigh || ev.ProjectID != p.ID ||
		!strings.Contains(ev.Evidence, `"key_id":"key_01"`) {
		t.Fatalf("stored event = %+v", ev)
	}

	e.deliverAll(t, 1) // only the endpoint that wants revoked_key_used
	reqs := e.recv.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if err := webhook.Verify([]string{secret}, got.header, got.body, e.clock.Now(), 0); err != nil {
		t.Fatalf("the received webhook does not verify with the secret returned at creation: %v", err)
	}
	if got.header.Get(webhook.HeaderID) != ev.ID {
		t.Errorf("webhook-id = %q, want the event id %q", got.header.Get(webhook.HeaderID), ev.ID)
	}
	var body struct {
		Type string `json:"type"`
		Data struct {
			ID       string            `json:"id"`
			Evidence map[string]string `json:"evidence"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got.body, &body); err != nil || body.Type != "security.revoked_key_used" ||
		body.Data.ID != ev.ID || body.Data.Evidence["ip"] != "203.0.113.7" {
		t.Errorf("body %s (%v)", got.body, err)
	}

	tampered := bytes.Replace(got.body, []byte("203.0.113.7"), []byte("203.0.113.8"), 1)
	if err := webhook.Verify([]string{secret}, got.header, tampered, e.clock.Now(), 0); !errors.Is(err, webhook.ErrNoMatch) {
		t.Errorf("tampered body: Verify = %v, want ErrNoMatch", err)
	}
	other, _ := webhook.NewSecret()
	if err := webhook.Verify([]string{other}, got.header, got.body, e.clock.Now(), 0); !errors.Is(err, webhook.ErrNoMatch) {
		t.Errorf("another secret: Verify = %v, want ErrNoMatch", err)
	}

	// The history shows the delivery and its attempt.
	ds, err := e.mg.ListWebhookDeliveries(e.ctx, e.owner, e.org.ID, ep.ID, 0)
	if err != nil || len(ds) != 1 || ds[0].Status != thauth.DeliveryDelivered || ds[0].Attempts != 1 {
		t.Fatalf("deliveries = %+v, %v", ds, err)
	}
	as, err := e.mg.ListWebhookAttempts(e.ctx, e.owner, e.org.ID, ds[0].ID)
	if err != nil || len(as) != 1 || as[0].StatusCode != http.StatusNoContent || as[0].Error != "" {
		t.Errorf("attempts = %+v, %v", as, err)
	}
	e.deliverAll(t, 0)
}

// TestWebhookRotationSignsWithBoth: after a rotation both secrets verify a delivery, until
// the overlap ends; then only the new one does.
func TestWebhookRotationSignsWithBoth(t *testing.T) {
	e := newSecEnv(t)
	ep, oldSecret, err := e.mg.CreateWebhookEndpoint(e.ctx, e.owner, e.org.ID, e.recv.srv.URL+"/h", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, newSecret, err := e.mg.RotateWebhookSecret(e.ctx, e.owner, e.org.ID, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(r received, secret string) error {
		return webhook.Verify([]string{secret}, r.header, r.body, e.clock.Now(), 0)
	}

	e.clock.Advance(manage.WebhookRotationOverlap - time.Second)
	if _, err := e.mg.SendTestEvent(e.ctx, e.owner, e.org.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	e.deliverAll(t, 1)
	r := e.recv.requests()[0]
	if n := len(strings.Fields(r.header.Get(webhook.HeaderSignature))); n != 2 {
		t.Errorf("%d signatures during the overlap, want 2", n)
	}
	if err := verify(r, oldSecret); err != nil {
		t.Errorf("old secret during the overlap: %v", err)
	}
	if err := verify(r, newSecret); err != nil {
		t.Errorf("new secret during the overlap: %v", err)
	}

	e.clock.Advance(time.Second)
	if _, err := e.mg.SendTestEvent(e.ctx, e.owner, e.org.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	e.deliverAll(t, 1)
	r = e.recv.requests()[1]
	if err := verify(r, newSecret); err != nil {
		t.Errorf("new secret after the overlap: %v", err)
	}
	if err := verify(r, oldSecret); !errors.Is(err, webhook.ErrNoMatch) {
		t.Errorf("old secret after the overlap: %v, want ErrNoMatch", err)
	}
}

// TestWebhookGoneDisablesEndpoint: a 410 answer disables the endpoint through the store
// adapter; it then gets no further events and refuses tests.
func TestWebhookGoneDisablesEndpoint(t *testing.T) {
	e := newSecEnv(t)
	ep, _, err := e.mg.CreateWebhookEndpoint(e.ctx, e.owner, e.org.ID, e.recv.srv.URL+"/gone", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.recv.answer(http.StatusGone)
	if _, err := e.mg.SendTestEvent(e.ctx, e.owner, e.org.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	e.deliverAll(t, 1)
	list, err := e.mg.ListWebhookEndpoints(e.ctx, e.owner, e.org.ID)
	if err != nil || len(list) != 1 || list[0].DisabledAt == nil || !strings.Contains(list[0].DisabledReason, "410") {
		t.Fatalf("endpoint after 410 = %+v, %v", list, err)
	}
	// The rotation state survived the disabling (the adapter changes only the disabled fields).
	stored, _ := e.store.GetWebhookEndpoint(e.ctx, e.org.ID, ep.ID)
	if stored.Secret == "" || stored.URL != ep.URL {
		t.Errorf("stored endpoint = %+v", stored)
	}
	if _, err := e.mg.RecordSecurityEvent(e.ctx, thauth.SecurityEvent{OrganizationID: e.org.ID, Kind: "deny_spike",
		Severity: thauth.SeverityMedium, Title: "spike"}); err != nil {
		t.Fatal(err)
	}
	e.deliverAll(t, 0)
	if _, err := e.mg.SendTestEvent(e.ctx, e.owner, e.org.ID, ep.ID); thauth.ErrorCodeOf(err) != thauth.EConflict {
		t.Errorf("test to a disabled endpoint: %v", err)
	}
}

// TestConsumeAbuseEventsSurvives: an event that cannot be recorded is logged and dropped, a
// panic while recording is recovered, and the consumer goes on with the next event; it
// returns when its context ends.
func TestConsumeAbuseEventsSurvives(t *testing.T) {
	e := newSecEnv(t)
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	logged := func() string { mu.Lock(); defer mu.Unlock(); return logs.String() }

	// A nil service panics on every event: recovered and logged.
	det := abuse.New(abuse.Options{Now: e.clock.Now, AuthFailureThreshold: 1})
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); ConsumeAbuseEvents(ctx, det, nil, log) }()
	det.SignInLocked("acct-1", []string{e.org.ID}, "198.51.100.4")
	det.SignInLocked("acct-2", []string{e.org.ID}, "198.51.100.4")
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logged(), "panicked") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("panics not logged: %s", logged())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	// An unknown organization is refused; the next event is recorded anyway.
	ctx, cancel = context.WithCancel(e.ctx)
	defer cancel()
	done = make(chan struct{})
	go func() { defer close(done); ConsumeAbuseEvents(ctx, det, e.mg, log) }()
	det.Unauthorized("01900000-0000-7000-8000-0000000000ff", "01900000-0000-7000-8000-0000000000fe")
	det.SignInLocked("acct-3", []string{e.org.ID}, "198.51.100.4")
	evs := e.waitEvents(t, e.org.ID, 1)
	if evs[0].Kind != abuse.KindSignInLockout {
		t.Errorf("recorded %+v", evs[0])
	}
	cancel()
	<-done
	if !strings.Contains(logged(), "could not record a security event") {
		t.Errorf("the refused event was not logged: %s", logged())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSecurityEventOf: evidence becomes a JSON object of its non-empty values.
func TestSecurityEventOf(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	se, err := SecurityEventOf(abuse.Event{Kind: abuse.KindInvalidKeys, Severity: abuse.SeverityMedium, At: at,
		Title: "t", Evidence: map[string]string{"ip": "203.0.113.7", "project_id": ""}})
	if err != nil {
		t.Fatal(err)
	}
	if se.Evidence != `{"ip":"203.0.113.7"}` || se.Kind != "invalid_keys_from_ip" || !se.At.Equal(at) || se.Severity != "medium" {
		t.Errorf("SecurityEventOf = %+v", se)
	}
}
