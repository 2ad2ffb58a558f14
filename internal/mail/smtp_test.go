package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// smtpConfig is a config for f's server, trusting the test certificate.
func smtpConfig(f *fakeSMTP) SMTPConfig {
	_, pool := testCert()
	return SMTPConfig{
		Addr: f.addr, Username: f.user, Password: f.pass, From: "Thauth <no-reply@thauth.test>",
		TLSConfig: &tls.Config{RootCAs: pool}, Timeout: 10 * time.Second, LocalName: "node1.thauth.test",
	}
}

func newSMTPMailer(t *testing.T, c SMTPConfig) Mailer {
	t.Helper()
	m, err := NewSMTP(c)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return m
}

func testMessage() Message {
	return Message{
		To:             "Ada Lovelace <ada@example.com>",
		Subject:        "Vérifiez your email address",
		Text:           "Hello Ada,\n\nOpen https://console.test/verify-email#token=abcDEF123\n",
		HTML:           "<p>Hello <b>Ada</b>, a long line " + strings.Repeat("é", 100) + "</p>\n",
		IdempotencyKey: "0198c2a4-5b6e-7000-8000-00000000abcd",
	}
}

// parsedMail is a received message split into its headers and decoded parts.
type parsedMail struct {
	Header netmail.Header
	Parts  map[string]string // content type → decoded body
}

func parseReceived(t *testing.T, data string) parsedMail {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	p := parsedMail{Header: msg.Header, Parts: map[string]string{}}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("NextPart: %v", err)
		}
		if cte := part.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Errorf("part %s: Content-Transfer-Encoding %q", part.Header.Get("Content-Type"), cte)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(part))
		if err != nil {
			t.Fatal(err)
		}
		p.Parts[part.Header.Get("Content-Type")] = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	return p
}

func TestSMTPDelivers(t *testing.T) {
	for _, implicit := range []bool{false, true} {
		name := "STARTTLS"
		if implicit {
			name = "implicit TLS"
		}
		t.Run(name, func(t *testing.T) {
			f := newFakeSMTP(t, func(f *fakeSMTP) { f.implicitTLS = implicit })
			c := smtpConfig(f)
			c.ImplicitTLS = implicit
			m := newSMTPMailer(t, c)
			msg := testMessage()
			id, err := m.Send(context.Background(), msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := f.messages()
			if len(got) != 1 {
				t.Fatalf("%d messages received, want 1", len(got))
			}
			r := got[0]
			if r.From != "no-reply@thauth.test" || r.To != "ada@example.com" || !r.TLS || r.AuthUser != "mailer" {
				t.Errorf("envelope %+v, want from no-reply@thauth.test to ada@example.com over TLS as mailer", r)
			}
			p := parseReceived(t, r.Data)
			subject, err := new(mime.WordDecoder).DecodeHeader(p.Header.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			headers := map[string]string{
				"From":           p.Header.Get("From"),
				"To":             p.Header.Get("To"),
				"Subject":        subject,
				"Message-ID":     p.Header.Get("Message-ID"),
				"MIME-Version":   p.Header.Get("MIME-Version"),
				"Auto-Submitted": p.Header.Get("Auto-Submitted"),
			}
			want := map[string]string{
				"From":           `"Thauth" <no-reply@thauth.test>`,
				"To":             `"Ada Lovelace" <ada@example.com>`,
				"Subject":        msg.Subject,
				"Message-ID":     "<" + msg.IdempotencyKey + "@thauth.test>",
				"MIME-Version":   "1.0",
				"Auto-Submitted": "auto-generated",
			}
			if diff := cmp.Diff(want, headers); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if _, err := p.Header.Date(); err != nil {
				t.Errorf("Date header: %v", err)
			}
			if id != want["Message-ID"] {
				t.Errorf("provider id %q, want the Message-ID %q", id, want["Message-ID"])
			}
			wantParts := map[string]string{
				"text/plain; charset=utf-8": msg.Text,
				"text/html; charset=utf-8":  msg.HTML,
			}
			if diff := cmp.Diff(wantParts, p.Parts); diff != "" {
				t.Errorf("parts (-want +got):\n%s", diff)
			}
			for _, line := range strings.Split(r.Data, "\n") { // ReadDotBytes turned CRLF into LF
				if len(line) > 998 {
					t.Errorf("line of %d characters (RFC 5322 allows 998)", len(line))
				}
			}
		})
	}
}

func TestSMTPRefusesWithoutSTARTTLS(t *testing.T) {
	f := newFakeSMTP(t, func(f *fakeSMTP) { f.noSTARTTLS = true })
	m := newSMTPMailer(t, smtpConfig(f))
	_, err := m.Send(context.Background(), testMessage())
	if !errors.Is(err, ErrNoSTARTTLS) {
		t.Fatalf("Send = %v, want ErrNoSTARTTLS", err)
	}
	if IsPermanent(err) {
		t.Error("a missing STARTTLS is the server's problem, not the message's: want retryable")
	}
	if !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("error %q does not say why", err)
	}
	for _, cmd := range f.seen() {
		if cmd == "AUTH" || cmd == "MAIL" || cmd == "DATA" {
			t.Errorf("the client sent %s to a server without TLS (commands %v)", cmd, f.seen())
		}
	}
	if n := len(f.messages()); n != 0 {
		t.Errorf("%d messages delivered in the clear", n)
	}
}

func TestSMTPRefusesUntrustedCertificate(t *testing.T) {
	f := newFakeSMTP(t, nil)
	c := smtpConfig(f)
	c.TLSConfig = nil // system roots: the test certificate is not trusted
	m := newSMTPMailer(t, c)
	_, err := m.Send(context.Background(), testMessage())
	if err == nil || IsPermanent(err) {
		t.Fatalf("Send = %v, want a retryable TLS error", err)
	}
	for _, cmd := range f.seen() {
		if cmd == "AUTH" || cmd == "MAIL" {
			t.Errorf("the client sent %s after a failed handshake", cmd)
		}
	}
}

func TestSMTPReplies(t *testing.T) {
	tests := []struct {
		name      string
		stage     string
		reply     string
		permanent bool
		inError   string
	}{
		{"421 to MAIL", "MAIL", "421 4.7.0 closing connection, try later", false, "421"},
		{"451 to RCPT", "RCPT", "451 4.3.0 local error, try later", false, "451"},
		{"452 after DATA", "DATA", "452 4.3.1 insufficient storage", false, "452"},
		{"550 to RCPT", "RCPT", "550 5.1.1 no such user", true, "550"},
		{"554 after DATA", "DATA", "554 5.6.0 message rejected", true, "554"},
		{"553 to MAIL", "MAIL", "553 5.7.1 sender not allowed", true, "553"},
		// A refused login is a configuration problem: the mail waits for the fix.
		{"535 to AUTH", "AUTH", "535 5.7.8 authentication credentials invalid", false, "535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSMTP(t, nil)
			f.script(tt.stage, tt.reply)
			m := newSMTPMailer(t, smtpConfig(f))
			_, err := m.Send(context.Background(), testMessage())
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if IsPermanent(err) != tt.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, IsPermanent(err), tt.permanent)
			}
			if !strings.Contains(err.Error(), tt.inError) {
				t.Errorf("error %q does not hold %q", err, tt.inError)
			}
			if n := len(f.messages()); n != 0 {
				t.Errorf("%d messages accepted", n)
			}
			// The next attempt (the server recovered) goes through.
			if _, err := m.Send(context.Background(), testMessage()); err != nil {
				t.Errorf("retry: %v", err)
			}
		})
	}
}

func TestSMTPWrongPasswordNeverSentInClear(t *testing.T) {
	f := newFakeSMTP(t, nil)
	c := smtpConfig(f)
	c.Password = "wrong-password"
	m := newSMTPMailer(t, c)
	_, err := m.Send(context.Background(), testMessage())
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "535") {
		t.Fatalf("Send = %v, want a retryable 535", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error %q holds the password", err)
	}
	seen := f.seen()
	tlsAt, authAt := -1, -1
	for i, c := range seen {
		if c == "+tls" && tlsAt < 0 {
			tlsAt = i
		}
		if c == "AUTH" && authAt < 0 {
			authAt = i
		}
	}
	if tlsAt < 0 || authAt < tlsAt {
		t.Errorf("AUTH before TLS: commands %v", seen)
	}
}

func TestSMTPRejectsHeaderInjection(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Message)
	}{
		{"subject", func(m *Message) { m.Subject = "Hello\r\nBcc: victim@example.com" }},
		{"subject LF", func(m *Message) { m.Subject = "Hello\nBcc: victim@example.com" }},
		{"to", func(m *Message) { m.To = "ada@example.com\r\nBcc: victim@example.com" }},
		{"from", func(m *Message) { m.From = "x@thauth.test\nBcc: victim@example.com" }},
		{"bad address", func(m *Message) { m.To = "not an address" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSMTP(t, nil)
			m := newSMTPMailer(t, smtpConfig(f))
			msg := testMessage()
			tt.edit(&msg)
			_, err := m.Send(context.Background(), msg)
			if !IsPermanent(err) {
				t.Fatalf("Send = %v, want a permanent error", err)
			}
			if n := len(f.seen()); n != 0 {
				t.Errorf("the mailer talked to the server (%v)", f.seen())
			}
		})
	}
}

func TestSMTPMessageIDFallsBackToRandom(t *testing.T) {
	for _, key := range []string{"", "<evil>@x", strings.Repeat("k", 200)} {
		id := messageID(key, "no-reply@thauth.test")
		if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@thauth.test>") || strings.Count(id, "@") != 1 || strings.Contains(id, "evil") {
			t.Errorf("messageID(%q) = %q", key, id)
		}
	}
}

func TestNewSMTPValidates(t *testing.T) {
	tests := []struct {
		name    string
		c       SMTPConfig
		wantErr string
	}{
		{"no port", SMTPConfig{Addr: "smtp.example.com", From: "a@b.test"}, "host:port"},
		{"user without password", SMTPConfig{Addr: "smtp.example.com:587", From: "a@b.test", Username: "u"}, "set both or neither"},
		{"password without user", SMTPConfig{Addr: "smtp.example.com:587", From: "a@b.test", Password: "hunter2-secret"}, "set both or neither"},
		{"no sender", SMTPConfig{Addr: "smtp.example.com:587"}, "sender"},
		{"bad sender", SMTPConfig{Addr: "smtp.example.com:587", From: "nobody"}, "not an email address"},
		{"ok", SMTPConfig{Addr: "smtp.example.com:587", From: "Thauth <a@b.test>", Username: "u", Password: "p"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSMTP(tt.c)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewSMTP: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewSMTP = %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.c.Password != "" && strings.Contains(err.Error(), tt.c.Password) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}

func TestSMTPHonoursContext(t *testing.T) {
	f := newFakeSMTP(t, nil)
	m := newSMTPMailer(t, smtpConfig(f))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Send(ctx, testMessage()); err == nil || IsPermanent(err) {
		t.Fatalf("Send with a cancelled context = %v, want a retryable error", err)
	}
	if n := len(f.messages()); n != 0 {
		t.Errorf("%d messages sent", n)
	}
}
