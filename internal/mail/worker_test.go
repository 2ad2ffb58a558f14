package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
)

var testStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an outbox on the real SQLite store with a real sealer.
type env struct {
	ctx    context.Context
	dir    string
	keys   seal.MasterKeys
	store  *sqlite.Store
	sealer *seal.Sealer
	clock  *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	c := &clock{t: testStart}
	mk, err := seal.GenerateMasterKey("test")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.ParseMasterKeys(mk)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := seal.New(ctx, st, keys, seal.Options{Now: c.Now})
	if err != nil {
		t.Fatalf("seal.New: %v", err)
	}
	return &env{ctx: ctx, dir: dir, keys: keys, store: st, sealer: sl, clock: c}
}

// secondNode opens the same database again with its own sealer, as another node (process)
// on the data directory would.
func (e *env) secondNode(t *testing.T) (*sqlite.Store, *seal.Sealer) {
	t.Helper()
	st, err := sqlite.Open(e.ctx, e.dir, sqlite.Options{})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	sl, err := seal.New(e.ctx, st, e.keys, seal.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("seal.New: %v", err)
	}
	return st, sl
}

// enqueue queues a message the way internal/manage does (sealed payload, due now).
func (e *env) enqueue(t *testing.T, to, template string, payload map[string]string) string {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := e.sealer.Seal(PayloadPurpose, id, b)
	if err != nil {
		t.Fatal(err)
	}
	e.enqueueRaw(t, id, to, template, sealed)
	return id
}

func (e *env) enqueueRaw(t *testing.T, id, to, template, payload string) {
	t.Helper()
	now := e.clock.Now()
	if err := e.store.EnqueueMail(e.ctx, &thauth.OutboxMail{
		ID: id, To: to, Template: template, Payload: payload, Status: thauth.MailPending,
		NextAttemptAt: now, CreatedAt: now,
	}); err != nil {
		t.Fatalf("EnqueueMail: %v", err)
	}
}

func (e *env) get(t *testing.T, id string) *thauth.OutboxMail {
	t.Helper()
	m, err := e.store.GetMail(e.ctx, id)
	if err != nil {
		t.Fatalf("GetMail: %v", err)
	}
	return m
}

func resetPayload(token string) map[string]string {
	return map[string]string{"link": "https://console.test/reset-password#token=" + token, "name": "Ada"}
}

// recorder is a Mailer that records what it sends and fails as told.
type recorder struct {
	mu    sync.Mutex
	sent  []Message
	calls int
	// fail, when set, decides the outcome of call n (1-based); nil error means sent.
	fail func(n int, m Message) error
	// onSend runs on every call (to advance a clock).
	onSend func()
}

func (r *recorder) Send(ctx context.Context, m Message) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.onSend != nil {
		r.onSend()
	}
	if r.fail != nil {
		if err := r.fail(r.calls, m); err != nil {
			return "", err
		}
	}
	r.sent = append(r.sent, m)
	return fmt.Sprintf("prov-%d", r.calls), nil
}

func (r *recorder) messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.sent...)
}

func (r *recorder) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// linearBackoff makes waits predictable in tests: attempt n waits n minutes.
func linearBackoff(n int) time.Duration { return time.Duration(n) * time.Minute }

func runOnce(t *testing.T, w *Worker) (sent, failed int) {
	t.Helper()
	sent, failed, err := w.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return sent, failed
}

func TestWorkerSendsAndErasesPayload(t *testing.T) {
	e := newEnv(t)
	id1 := e.enqueue(t, "ada@example.com", TemplatePasswordReset, resetPayload("tokA1234567"))
	id2 := e.enqueue(t, "bob@example.com", TemplateMFAChanged, map[string]string{"change": "enabled", "time": "2026-03-01T11:59:00Z"})
	r := &recorder{}
	w := NewWorker(e.store, e.sealer, r, WorkerOptions{Now: e.clock.Now, From: "Thauth <no-reply@thauth.test>"})

	if sent, failed := runOnce(t, w); sent != 2 || failed != 0 {
		t.Fatalf("RunOnce = %d sent, %d failed; want 2, 0", sent, failed)
	}
	msgs := r.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages sent", len(msgs))
	}
	m := msgs[0]
	if m.To != "ada@example.com" || m.IdempotencyKey != id1 || m.From != "Thauth <no-reply@thauth.test>" ||
		m.Subject != "Reset your Thauth password" || !strings.Contains(m.Text, "#token=tokA1234567") ||
		!strings.Contains(m.HTML, "#token=tokA1234567") {
		t.Errorf("first message %+v", m)
	}
	if msgs[1].IdempotencyKey != id2 {
		t.Errorf("second message key %q, want %q", msgs[1].IdempotencyKey, id2)
	}
	now := e.clock.Now()
	for i, id := range []string{id1, id2} {
		got := e.get(t, id)
		want := thauth.OutboxMail{
			ID: id, To: got.To, Template: got.Template, Payload: "", Status: thauth.MailSent, Attempts: 1,
			NextAttemptAt: got.NextAttemptAt, ProviderID: fmt.Sprintf("prov-%d", i+1), CreatedAt: got.CreatedAt, SentAt: &now,
		}
		if diff := cmp.Diff(want, *got); diff != "" {
			t.Errorf("message %d (-want +got):\n%s", i, diff)
		}
	}
	// Nothing left to do.
	if sent, failed := runOnce(t, w); sent+failed != 0 || r.callCount() != 2 {
		t.Errorf("second round: %d sent, %d failed, %d calls", sent, failed, r.callCount())
	}
	if n, err := e.store.CountPendingMail(e.ctx); err != nil || n != 0 {
		t.Errorf("CountPendingMail = %d, %v", n, err)
	}
}

func TestWorkerKeepPayload(t *testing.T) {
	e := newEnv(t)
	id := e.enqueue(t, "ada@example.com", TemplatePasswordReset, resetPayload("tokKEEP1234"))
	w := NewWorker(e.store, e.sealer, NewDev(nil), WorkerOptions{Now: e.clock.Now, KeepPayload: true})
	if sent, _ := runOnce(t, w); sent != 1 {
		t.Fatalf("sent %d", sent)
	}
	got := e.get(t, id)
	if got.Status != thauth.MailSent || got.Payload == "" || !strings.HasPrefix(got.ProviderID, "dev-") {
		t.Errorf("message %+v: want sent with its payload kept and a dev- id", got)
	}
}

func TestWorkerOutageThenRecovery(t *testing.T) {
	e := newEnv(t)
	id := e.enqueue(t, "ada@example.com", TemplatePasswordReset, resetPayload("tokOUTAGE123"))
	const outage = 3
	r := &recorder{fail: func(n int, _ Message) error {
		if n <= outage {
			return errors.New("connection refused")
		}
		return nil
	}}
	w := NewWorker(e.store, e.sealer, r, WorkerOptions{Now: e.clock.Now, Backoff: linearBackoff})

	for attempt := 1; attempt <= outage; attempt++ {
		if sent, failed := runOnce(t, w); sent != 0 || failed != 1 {
			t.Fatalf("attempt %d: %d sent, %d failed; want 0, 1", attempt, sent, failed)
		}
		got := e.get(t, id)
		wantNext := e.clock.Now().Add(linearBackoff(attempt))
		if got.Status != thauth.MailPending || got.Attempts != attempt || !got.NextAttemptAt.Equal(wantNext) ||
			got.LastError != "connection refused" || got.Payload == "" {
			t.Fatalf("after attempt %d: %+v; want pending, %d attempts, next %v", attempt, got, attempt, wantNext)
		}
		// The backoff is respected: nothing happens before NextAttemptAt.
		e.clock.Set(wantNext.Add(-time.Microsecond))
		if sent, failed := runOnce(t, w); sent+failed != 0 || r.callCount() != attempt {
			t.Fatalf("before the backoff ended: %d sent, %d failed, %d calls", sent, failed, r.callCount())
		}
		e.clock.Set(wantNext)
	}
	// The provider is back: the message goes out, once.
	if sent, failed := runOnce(t, w); sent != 1 || failed != 0 {
		t.Fatalf("after the outage: %d sent, %d failed", sent, failed)
	}
	e.clock.Advance(24 * time.Hour)
	runOnce(t, w)
	if n := len(r.messages()); n != 1 {
		t.Errorf("sent %d times, want 1", n)
	}
	got := e.get(t, id)
	if got.Status != thauth.MailSent || got.Attempts != outage+1 || got.LastError != "" || got.Payload != "" {
		t.Errorf("final state %+v", got)
	}
}

func TestWorkerGivesUpAfterMaxAttempts(t *testing.T) {
	e := newEnv(t)
	id := e.enqueue(t, "ada@example.com", TemplatePasswordReset, resetPayload("tokMAX123456"))
	r := &recorder{fail: func(int, Message) error { return errors.New("503 service unavailable") }}
	w := NewWorker(e.store, e.sealer, r, WorkerOptions{Now: e.clock.Now, Backoff: linearBackoff, MaxAttempts: 3})
	for range 3 {
		runOnce(t, w)
		e.clock.Advance(time.Hour)
	}
	got := e.get(t, id)
	if got.Status != thauth.MailFailed || got.Attempts != 3 || got.Payload != "" || got.LastError != "503 service unavailable" {
		t.Errorf("after 3 failures: %+v; want failed, payload erased", got)
	}
	runOnce(t, w)
	if r.callCount() != 3 {
		t.Errorf("%d calls; a failed message was tried again", r.callCount())
	}
}

func TestWorkerPermanentFailure(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	id := e.enqueue(t, "bad@example.com", TemplatePasswordReset, resetPayload("tokPERM12345"))
	r := &recorder{fail: func(int, Message) error { return Permanent(errors.New("550 no such user")) }}
	w := NewWorker(e.store, e.sealer, r, WorkerOptions{Now: e.clock.Now, Logger: jsonLogger(&logs)})
	if sent, failed := runOnce(t, w); sent != 0 || failed != 1 {
		t.Fatalf("%d sent, %d failed", sent, failed)
	}
	got := e.get(t, id)
	if got.Status != thauth.MailFailed || got.Attempts != 1 || got.Payload != "" || got.LastError != "550 no such user" {
		t.Errorf("message %+v; want failed at once", got)
	}
	line := findLog(t, &logs, "mail failed: giving up")
	if line["level"] != "ERROR" || line["id"] != id || line["template"] != TemplatePasswordReset {
		t.Errorf("log line %v", line)
	}
}

func TestWorkerRetryAfter(t *testing.T) {
	e := newEnv(t)
	first := e.enqueue(t, "a@example.com", TemplatePasswordReset, resetPayload("tokRA1234567"))
	e.clock.Advance(time.Microsecond)
	second := e.enqueue(t, "b@example.com", TemplatePasswordReset, resetPayload("tokRA7654321"))
	e.clock.Advance(time.Microsecond)
	third := e.enqueue(t, "c@example.com", TemplatePasswordReset, resetPayload("tokRA0000000"))
	r := &recorder{fail: func(n int, _ Message) error {
		if n == 1 {
			return WithRetryAfter(errors.New("429 rate_limit_exceeded"), 10*time.Minute)
		}
		return nil
	}}
	w := NewWorker(e.store, e.sealer, r, WorkerOptions{Now: e.clock.Now, Backoff: linearBackoff})
	if sent, failed := runOnce(t, w); sent != 0 || failed != 1 || r.callCount() != 1 {
		t.Fatalf("%d sent, %d failed, %d calls; want the batch stopped after the rate limit", sent, failed, r.callCount())
	}
	now := e.clock.Now()
	// The provider's wait (10m) beats the backoff (1m).
	if got := e.get(t, first); got.Attempts != 1 || !got.NextAttemptAt.Equal(now.Add(10*time.Minute)) {
		t.Errorf("rate-limited message: %d attempts, next %v; want 1, %v", got.Attempts, got.NextAttemptAt, now.Add(10*time.Minute))
	}
	// The rest of the batch was handed back for after the wait, without an attempt.
	for _, id := range []string{second, third} {
		if got := e.get(t, id); got.Attempts != 0 || !got.NextAttemptAt.Equal(now.Add(10*time.Minute)) || got.Status != thauth.MailPending {
			t.Errorf("released message %+v; want pending, 0 attempts, next %v", got, now.Add(10*time.Minute))
		}
	}
	e.clock.Advance(10 * time.Minute)
	if sent, _ := runOnce(t, w); sent != 3 {
		t.Errorf("after the wait: %d sent, want 3", sent)
	}
}

func TestWorkerPayloadProblems(t *testing.T) {
	e := newEnv(t)
	// A payload sealed for another row does not open (moved or tampered): retried, since
	// an unreadable key store looks the same.
	other := e.enqueue(t, "x@example.com", TemplatePasswordReset, resetPayload("tokOTHER1234"))
	moved := uuid.Must(uuid.NewV7()).String()
	e.enqueueRaw(t, moved, "y@example.com", TemplatePasswordReset, e.get(t, other).Payload)
	// Valid sealing of something that is not the data: given up at once.
	notJSON := uuid.Must(uuid.NewV7()).String()
	s, _ := e.sealer.Seal(PayloadPurpose, notJSON, []byte("link=https://x"))
	e.enqueueRaw(t, notJSON, "z@example.com", TemplatePasswordReset, s)
	unknown := e.enqueue(t, "u@example.com", "welcome", map[string]string{"name": "x"})
	missing := e.enqueue(t, "m@example.com", TemplateInvitation, map[string]string{"link": "https://c.test/i#token=tokMISSING12"})

	r := &recorder{}
	w := NewWorker(e.store, e.sealer, r, WorkerOptions{Now: e.clock.Now, Backoff: linearBackoff})
	runOnce(t, w)
	tests := []struct {
		id, status, lastError string
	}{
		{moved, thauth.MailPending, "could not open the sealed payload"},
		{notJSON, thauth.MailFailed, "the payload is not valid"},
		{unknown, thauth.MailFailed, "the message could not be rendered"},
		{missing, thauth.MailFailed, "the message could not be rendered"},
		{other, thauth.MailSent, ""},
	}
	for _, tt := range tests {
		got := e.get(t, tt.id)
		if got.Status != tt.status || got.LastError != tt.lastError || got.Attempts != 1 {
			t.Errorf("message to %s: status %q, last error %q, %d attempts; want %q, %q, 1",
				got.To, got.Status, got.LastError, got.Attempts, tt.status, tt.lastError)
		}
	}
	if n := len(r.messages()); n != 1 {
		t.Errorf("%d messages sent, want 1", n)
	}
}

// TestWorkerLeaseRunsOut: a worker slowed down past its lease stops sending, so another node
// that claims the rest cannot send them at the same time.
func TestWorkerLeaseRunsOut(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := range 4 {
		ids = append(ids, e.enqueue(t, fmt.Sprintf("u%d@example.com", i), TemplatePasswordReset, resetPayload(fmt.Sprintf("tokLEASE%04d", i))))
		e.clock.Advance(time.Microsecond)
	}
	claimedAt := e.clock.Now()
	r := &recorder{onSend: func() { e.clock.Advance(40 * time.Second) }}
	w := NewWorker(e.store, e.sealer, r, WorkerOptions{Now: e.clock.Now, Lease: 2 * time.Minute})
	// Sends start at +0s and +40s; at +80s less than half the lease is left.
	if sent, failed := runOnce(t, w); sent != 2 || failed != 0 {
		t.Fatalf("%d sent, %d failed; want 2, 0", sent, failed)
	}
	for _, id := range ids[2:] {
		got := e.get(t, id)
		if got.Status != thauth.MailPending || got.Attempts != 0 || !got.NextAttemptAt.Equal(claimedAt.Add(2*time.Minute)) {
			t.Errorf("unsent message %+v; want pending until the lease ends", got)
		}
	}
}

// TestWorkersNeverSendTwice runs two workers at once on one database, each through its own
// connection pool and sealer like two nodes; every message goes out exactly once.
func TestWorkersNeverSendTwice(t *testing.T) {
	e := newEnv(t)
	const n = 40
	for i := range n {
		e.enqueue(t, fmt.Sprintf("u%d@example.com", i), TemplatePasswordReset, resetPayload(fmt.Sprintf("tokTWICE%04d", i)))
	}
	var mu sync.Mutex
	count := map[string]int{}
	mailer := MailerFunc(func(ctx context.Context, m Message) (string, error) {
		mu.Lock()
		count[m.IdempotencyKey]++
		mu.Unlock()
		return "p", nil
	})
	st2, sl2 := e.secondNode(t)
	workers := []*Worker{
		NewWorker(e.store, e.sealer, mailer, WorkerOptions{Now: e.clock.Now, Batch: 3}),
		NewWorker(st2, sl2, mailer, WorkerOptions{Now: e.clock.Now, Batch: 3}),
	}
	var wg sync.WaitGroup
	var total [2]int
	for i, w := range workers {
		wg.Go(func() {
			for range 100 {
				sent, _, err := w.RunOnce(context.Background())
				if err != nil {
					t.Errorf("worker %d: %v", i, err)
					return
				}
				total[i] += sent
				if c, _ := e.store.CountPendingMail(e.ctx); c == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("worker 1 sent %d, worker 2 sent %d", total[0], total[1])
	if len(count) != n || total[0]+total[1] != n {
		t.Fatalf("%d distinct messages sent, %d+%d reported; want %d", len(count), total[0], total[1], n)
	}
	for id, c := range count {
		if c != 1 {
			t.Errorf("message %s sent %d times", id, c)
		}
	}
}

func TestWorkerRunWakes(t *testing.T) {
	e := newEnv(t)
	got := make(chan Message, 1)
	w := NewWorker(e.store, e.sealer, MailerFunc(func(ctx context.Context, m Message) (string, error) {
		got <- m
		return "p", nil
	}), WorkerOptions{Now: e.clock.Now, Poll: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	// Run's first round (at start) finds nothing; with a one-hour poll only Wake can bring
	// the message out.
	id := e.enqueue(t, "ada@example.com", TemplatePasswordReset, resetPayload("tokWAKE12345"))
	w.Wake()
	w.Wake() // never blocks
	select {
	case m := <-got:
		if m.IdempotencyKey != id {
			t.Errorf("sent %s, want %s", m.IdempotencyKey, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the woken worker sent nothing")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour, time.Hour}
	for i, base := range want {
		attempt := i + 1
		for range 50 {
			d := DefaultBackoff(attempt)
			if d > base || d < base*8/10 {
				t.Fatalf("DefaultBackoff(%d) = %v, want within [%v, %v]", attempt, d, base*8/10, base)
			}
		}
	}
	if d := DefaultBackoff(1000); d > time.Hour {
		t.Errorf("DefaultBackoff(1000) = %v", d)
	}
}

func TestListRendered(t *testing.T) {
	e := newEnv(t)
	sentID := e.enqueue(t, "ada@example.com", TemplatePasswordReset, resetPayload("tokLIST11111"))
	w := NewWorker(e.store, e.sealer, &recorder{}, WorkerOptions{Now: e.clock.Now})
	runOnce(t, w)
	e.clock.Advance(time.Second)
	pendingID := e.enqueue(t, "bob@example.com", TemplateInvitation, map[string]string{
		"link": "https://console.test/invitations/accept#token=tokLIST22222", "organization": "Acme", "role": "viewer", "inviter": "Ada"})

	got, err := ListRendered(e.ctx, e.store, e.sealer, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != pendingID || got[1].ID != sentID {
		t.Fatalf("ListRendered = %+v; want the pending then the sent message", got)
	}
	p := got[0]
	if p.Subject != "You are invited to join Acme on Thauth" || !strings.Contains(p.Text, "#token=tokLIST22222") ||
		!strings.Contains(p.HTML, "#token=tokLIST22222") || p.Status != thauth.MailPending || p.To != "bob@example.com" {
		t.Errorf("pending message %+v", p)
	}
	s := got[1]
	if s.Subject != Title(TemplatePasswordReset) || s.Text != "" || s.HTML != "" || s.Status != thauth.MailSent || s.SentAt == nil || s.Attempts != 1 {
		t.Errorf("erased message %+v; want the generic subject only", s)
	}
}

func jsonLogger(w *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(&syncWriter{w: w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// syncWriter serialises writes to a buffer shared by goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// findLog returns the first JSON log line with msg.
func findLog(t *testing.T, logs *bytes.Buffer, msg string) map[string]any {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return nil
}

// TestLinksNeverLogged drives the worker through an SMTP server that refuses once and then
// accepts, plus a provider that echoes the message in its error, with a debug-level log: no
// link or token reaches the log or LastError. Only the development mailer logs links.
func TestLinksNeverLogged(t *testing.T) {
	e := newEnv(t)
	const token = "tokSECRETLINK0123456789"
	link := "https://console.test/reset-password#token=" + token
	var logs bytes.Buffer
	log := jsonLogger(&logs)

	f := newFakeSMTP(t, nil)
	f.script("RCPT", "451 4.3.0 try again later")
	viaSMTP := e.enqueue(t, "ada@example.com", TemplatePasswordReset, map[string]string{"link": link, "name": "Ada"})
	w := NewWorker(e.store, e.sealer, newSMTPMailer(t, smtpConfig(f)), WorkerOptions{Now: e.clock.Now, Logger: log, Backoff: linearBackoff})
	runOnce(t, w)
	e.clock.Advance(time.Hour)
	runOnce(t, w)
	if got := e.get(t, viaSMTP); got.Status != thauth.MailSent || got.Attempts != 2 {
		t.Fatalf("SMTP message %+v; want sent on the second attempt", got)
	}
	if msgs := f.messages(); len(msgs) != 1 || !strings.Contains(msgs[0].Data, token) {
		t.Fatal("the SMTP server did not get the link (the test would prove nothing)")
	}

	// A provider that quotes the message back in its error.
	echo := e.enqueue(t, "bob@example.com", TemplatePasswordReset, map[string]string{"link": link, "name": "Bob"})
	w = NewWorker(e.store, e.sealer, MailerFunc(func(ctx context.Context, m Message) (string, error) {
		return "", fmt.Errorf("provider rejected message: %q", m.Text)
	}), WorkerOptions{Now: e.clock.Now, Logger: log, MaxAttempts: 1})
	runOnce(t, w)
	got := e.get(t, echo)
	if got.Status != thauth.MailFailed || strings.Contains(got.LastError, token) || !strings.Contains(got.LastError, "[redacted]") {
		t.Errorf("echoing provider: status %q, LastError %q; want failed with the link redacted", got.Status, got.LastError)
	}
	if !strings.Contains(logs.String(), viaSMTP) || !strings.Contains(logs.String(), "451") {
		t.Fatalf("the log lacks the delivery lines (the test would prove nothing):\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log holds the link token:\n%s", logs.String())
	}

	// The development mailer is the one place a link is logged: the capture does see it.
	var devLogs bytes.Buffer
	e.enqueue(t, "dev@example.com", TemplatePasswordReset, map[string]string{"link": link})
	w = NewWorker(e.store, e.sealer, NewDev(jsonLogger(&devLogs)), WorkerOptions{Now: e.clock.Now})
	runOnce(t, w)
	if !strings.Contains(devLogs.String(), token) {
		t.Errorf("the dev mailer did not log the link:\n%s", devLogs.String())
	}
}
