package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/mail"
	"github.com/thauth/thauth/internal/resend/resendtest"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
)

const (
	testResendKey = "re_serve_test_SECRETKEY123"
	testSMTPPass  = "smtp-SECRET-password"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestNewMailerValidation(t *testing.T) {
	tests := []struct {
		name string
		c    MailConfig
		want []string // problem fields; nil means valid
		msgs []string // text the error must hold
	}{
		{name: "default is dev", c: MailConfig{}},
		{name: "dev", c: MailConfig{Mailer: "dev"}},
		{name: "resend", c: MailConfig{Mailer: "resend", From: "Thauth <no-reply@thauth.test>", ResendAPIKey: testResendKey}},
		{name: "smtp", c: MailConfig{Mailer: "smtp", From: "no-reply@thauth.test", SMTPAddr: "smtp.thauth.test:587", SMTPUsername: "u", SMTPPassword: testSMTPPass}},
		{name: "smtp without auth", c: MailConfig{Mailer: "smtp", From: "no-reply@thauth.test", SMTPAddr: "smtp.thauth.test:587"}},
		{
			name: "resend without key or sender", c: MailConfig{Mailer: "resend"},
			want: []string{"Mail.ResendAPIKey", "Mail.From"},
			msgs: []string{"--mailer resend needs THAUTH_RESEND_API_KEY", "THAUTH_MAIL_FROM"},
		},
		{
			name: "smtp without address", c: MailConfig{Mailer: "smtp", From: "no-reply@thauth.test"},
			want: []string{"Mail.SMTPAddr"}, msgs: []string{"--mailer smtp needs THAUTH_SMTP_ADDR"},
		},
		{
			name: "smtp bad address and half credentials", c: MailConfig{Mailer: "smtp", From: "nobody", SMTPAddr: "smtp.thauth.test", SMTPPassword: testSMTPPass},
			want: []string{"Mail.SMTPAddr", "Mail.SMTPUsername", "Mail.From"},
			msgs: []string{"host:port", "THAUTH_SMTP_USERNAME", "not an email address"},
		},
		{
			name: "smtp username without password", c: MailConfig{Mailer: "smtp", From: "a@thauth.test", SMTPAddr: "h:25", SMTPUsername: "u"},
			want: []string{"Mail.SMTPPassword"}, msgs: []string{"THAUTH_SMTP_PASSWORD"},
		},
		{
			name: "unknown", c: MailConfig{Mailer: "sendgrid"},
			want: []string{"Mail.Mailer"}, msgs: []string{`unknown mailer "sendgrid"`, "THAUTH_MAILER"},
		},
		{
			name: "header injection in sender", c: MailConfig{Mailer: "resend", ResendAPIKey: testResendKey, From: "a@thauth.test\r\nBcc: x@y.test"},
			want: []string{"Mail.From"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fields []string
			for _, p := range tt.c.Validate() {
				fields = append(fields, p.Field)
			}
			if diff := cmp.Diff(tt.want, fields); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
			m, err := newMailer(tt.c, discardLog())
			if tt.want == nil {
				if err != nil || m == nil {
					t.Fatalf("newMailer = %v, %v", m, err)
				}
				return
			}
			if err == nil {
				t.Fatal("newMailer succeeded")
			}
			for _, s := range tt.msgs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			for _, secret := range []string{testResendKey, testSMTPPass} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
}

func TestMailConfigHidesSecrets(t *testing.T) {
	for _, c := range []MailConfig{
		{Mailer: "resend", From: "a@thauth.test", ResendAPIKey: testResendKey},
		{Mailer: "smtp", From: "a@thauth.test", SMTPAddr: "h:587", SMTPUsername: "u", SMTPPassword: testSMTPPass},
	} {
		var logs bytes.Buffer
		slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "mail", c)
		for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logs.String()} {
			if strings.Contains(s, testResendKey) || strings.Contains(s, testSMTPPass) {
				t.Errorf("printed config holds a secret: %s", s)
			}
		}
	}
}

func newResendMailer(t *testing.T, srv *resendtest.Server) mail.Mailer {
	t.Helper()
	m, err := newMailer(MailConfig{Mailer: "resend", From: "Thauth <no-reply@thauth.test>", ResendAPIKey: testResendKey, ResendBaseURL: srv.URL}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResendMailerMapsErrors(t *testing.T) {
	msg := mail.Message{To: "ada@example.com", Subject: "Hello", Text: "Hi", HTML: "<p>Hi</p>", IdempotencyKey: "k-1"}
	tests := []struct {
		name       string
		setup      func(*resendtest.Server)
		serverKey  string // the key the fake accepts, when not the mailer's
		edit       func(*mail.Message)
		permanent  bool
		retryAfter time.Duration
	}{
		{name: "rate limited", setup: func(s *resendtest.Server) { s.FailNext(1, 429, 7*time.Second) }, retryAfter: 7 * time.Second},
		{name: "server error", setup: func(s *resendtest.Server) { s.FailNext(1, 500, 0) }},
		{name: "invalid recipient", edit: func(m *mail.Message) { m.To = "not an address" }, permanent: true},
		{name: "bad api key stays retryable", serverKey: "re_another_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testResendKey
			if tt.serverKey != "" {
				key = tt.serverKey
			}
			srv := resendtest.New(t, key)
			if tt.setup != nil {
				tt.setup(srv)
			}
			m := msg
			if tt.edit != nil {
				tt.edit(&m)
			}
			_, err := newResendMailer(t, srv).Send(context.Background(), m)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if mail.IsPermanent(err) != tt.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, mail.IsPermanent(err), tt.permanent)
			}
			d, _ := mail.RetryAfter(err)
			if d != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", d, tt.retryAfter)
			}
			if strings.Contains(err.Error(), testResendKey) {
				t.Errorf("error %q holds the API key", err)
			}
		})
	}
}

// TestResendOutboxEndToEnd runs the outbox worker over the real SQLite store with a real
// sealer against the fake Resend: an outage of the provider delays the message, the retry
// reuses the idempotency key, the message is delivered once, and neither the link nor the API
// key reaches the log.
func TestResendOutboxEndToEnd(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	mk, _ := seal.GenerateMasterKey("test")
	keys, err := seal.ParseMasterKeys(mk)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := seal.New(ctx, st, keys, seal.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}

	const token = "tokE2ESECRET0123456789"
	id := uuid.Must(uuid.NewV7()).String()
	payload, _ := json.Marshal(map[string]string{"link": "https://console.test/verify-email#token=" + token, "purpose": "signup", "name": "Ada"})
	sealed, err := sl.Seal(mail.PayloadPurpose, id, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnqueueMail(ctx, &thauth.OutboxMail{ID: id, To: "ada@example.com", Template: mail.TemplateVerifyEmail,
		Payload: sealed, Status: thauth.MailPending, NextAttemptAt: clock(), CreatedAt: clock()}); err != nil {
		t.Fatal(err)
	}

	srv := resendtest.New(t, testResendKey)
	srv.FailNext(2, 500, 0)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := mail.NewWorker(st, sl, newResendMailer(t, srv), mail.WorkerOptions{Now: clock, Logger: log})
	for range 10 {
		if _, _, err := w.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		advance(time.Hour)
	}
	got := srv.Emails()
	if len(got) != 1 {
		t.Fatalf("%d emails delivered, want 1", len(got))
	}
	e := got[0]
	if e.IdempotencyKey != id || e.From != "Thauth <no-reply@thauth.test>" || !strings.Contains(e.Text, token) || !strings.Contains(e.HTML, token) {
		t.Errorf("delivered %+v", e)
	}
	m, err := st.GetMail(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != thauth.MailSent || m.Attempts != 3 || m.ProviderID != e.ID || m.Payload != "" {
		t.Errorf("outbox row %+v; want sent on the third attempt, payload erased", m)
	}
	if srv.Requests() != 3 {
		t.Errorf("%d requests, want 3", srv.Requests())
	}
	if !strings.Contains(logs.String(), "internal_server_error") {
		t.Fatalf("the log lacks the failures (the test would prove nothing):\n%s", logs.String())
	}
	for _, secret := range []string{token, testResendKey} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs.String())
		}
	}
}
