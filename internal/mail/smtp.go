package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// SMTPConfig configures the SMTP mailer.
type SMTPConfig struct {
	// Addr is the server's host:port. Port 465 means implicit TLS (SMTPS); on any other
	// port (587, 25) the server must offer STARTTLS, unless ImplicitTLS is set.
	Addr string
	// ImplicitTLS speaks TLS from the first byte (SMTPS) on any port. Default: port 465 only.
	ImplicitTLS bool
	// Username and Password, when set, authenticate with AUTH PLAIN, always inside TLS.
	// Both or neither.
	Username string
	Password string
	// From is the sender: an address, optionally with a name ("Thauth <no-reply@example.com>").
	From string
	// TLSConfig verifies the server; nil means the system roots and Addr's host name.
	TLSConfig *tls.Config
	// Timeout bounds one delivery (connection, TLS, dialogue). Default 30s.
	Timeout time.Duration
	// LocalName is the name given in EHLO. Default: this host's name, else "localhost".
	LocalName string
}

// ErrNoSTARTTLS is returned (wrapped) by the SMTP mailer when the server does not offer
// STARTTLS: it refuses to send credentials or mail in the clear. The error is not permanent,
// so queued mail goes out once the server is fixed.
var ErrNoSTARTTLS = errors.New("the SMTP server does not offer STARTTLS; refusing to send credentials or mail in the clear")

type smtpMailer struct {
	addr, host string
	implicit   bool
	username   string
	password   string
	from       *netmail.Address
	tls        *tls.Config
	timeout    time.Duration
	localName  string
	now        func() time.Time
}

// NewSMTP returns a Mailer that delivers through the SMTP server of c, over TLS only
// (STARTTLS, or implicit TLS on port 465). Each Send opens one connection: the mail volume of
// an authorization service is small, and no connection is left to go stale. It fails when c
// is invalid; the password never appears in its errors.
//
// Send's errors: a 4xx reply, a network or TLS failure, a missing STARTTLS and a refused
// authentication are retryable (a server or configuration problem, not the message's); a
// 5xx reply to the sender, a recipient or the data is Permanent, and so is a message that
// cannot be encoded (a line break in a header value, an invalid address). The provider id is
// the Message-ID, derived from the message's IdempotencyKey so that retries keep it.
func NewSMTP(c SMTPConfig) (Mailer, error) {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("mail: SMTP address %q must be host:port (for example smtp.example.com:587)", c.Addr)
	}
	if (c.Username == "") != (c.Password == "") {
		return nil, errors.New("mail: SMTP username and password go together: set both or neither")
	}
	if c.From == "" {
		return nil, errors.New("mail: the SMTP mailer needs a sender address (From)")
	}
	from, err := parseAddress(c.From)
	if err != nil {
		return nil, fmt.Errorf("mail: SMTP sender: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSConfig != nil {
		tc = c.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.LocalName == "" {
		c.LocalName = "localhost"
		if h, err := os.Hostname(); err == nil && validLocalName(h) {
			c.LocalName = h
		}
	}
	if !validLocalName(c.LocalName) {
		return nil, fmt.Errorf("mail: SMTP local name %q is not a host name", c.LocalName)
	}
	return &smtpMailer{
		addr: c.Addr, host: host, implicit: c.ImplicitTLS || port == "465",
		username: c.Username, password: c.Password, from: from, tls: tc,
		timeout: c.Timeout, localName: c.LocalName, now: time.Now,
	}, nil
}

// Send implements Mailer.
func (s *smtpMailer) Send(ctx context.Context, m Message) (string, error) {
	from := s.from
	if m.From != "" {
		f, err := parseAddress(m.From)
		if err != nil {
			return "", Permanent(fmt.Errorf("smtp: sender: %w", err))
		}
		from = f
	}
	to, err := parseAddress(m.To)
	if err != nil {
		return "", Permanent(fmt.Errorf("smtp: recipient: %w", err))
	}
	msgID := messageID(m.IdempotencyKey, from.Address)
	body, err := buildMIME(from, to, m.Subject, m.Text, m.HTML, msgID, s.now())
	if err != nil {
		return "", Permanent(err)
	}
	if err := s.deliver(ctx, from.Address, to.Address, body); err != nil {
		return "", err
	}
	return msgID, nil
}

// deliver runs one SMTP dialogue.
func (s *smtpMailer) deliver(ctx context.Context, from, to string, body []byte) error {
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("smtp: connecting to %s: %w", s.addr, err)
	}
	defer conn.Close()
	// The deadline bounds every read and write; closing on cancellation unblocks them early.
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if s.implicit {
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("smtp: TLS with %s: %w", s.addr, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return s.replyError("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.localName); err != nil {
		return s.replyError("EHLO", err)
	}
	if !s.implicit {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("smtp: %s: %w", s.addr, ErrNoSTARTTLS)
		}
		if err := c.StartTLS(s.tls); err != nil {
			return s.replyError("STARTTLS", err)
		}
	}
	if s.username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return fmt.Errorf("smtp: %s does not offer authentication (AUTH), but a username is configured", s.addr)
		}
		if err := c.Auth(smtp.PlainAuth("", s.username, s.password, s.host)); err != nil {
			return s.replyError("AUTH", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return s.replyError("MAIL FROM", err)
	}
	if err := c.Rcpt(to); err != nil {
		return s.replyError("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return s.replyError("DATA", err)
	}
	if _, err := w.Write(body); err != nil {
		w.Close()
		return s.replyError("DATA", err)
	}
	if err := w.Close(); err != nil {
		return s.replyError("DATA", err)
	}
	// The message is accepted: a failing QUIT changes nothing.
	c.Quit()
	return nil
}

// replyError classifies an error met at stage of the dialogue: 5xx replies about the message
// (sender, recipient, data) are permanent; everything else (4xx, network, TLS, 5xx to the
// greeting, EHLO or AUTH, which are about the server or its configuration) is retryable.
func (s *smtpMailer) replyError(stage string, err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return fmt.Errorf("smtp: %s with %s: %w", stage, s.addr, err)
	}
	e := fmt.Errorf("smtp: %s answered %d %s to %s", s.addr, te.Code, oneLine(te.Msg), stage)
	if te.Code >= 500 && te.Code < 600 {
		switch stage {
		case "MAIL FROM", "RCPT TO", "DATA":
			return Permanent(e)
		}
	}
	return e
}

// parseAddress parses one address, refusing line breaks (header injection).
func parseAddress(s string) (*netmail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("the address contains a line break")
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an email address", s)
	}
	return a, nil
}

// messageID returns "<key@domain>", key being the idempotency key when it is made of safe
// characters, else a random one; domain is the sender's.
func messageID(key, from string) string {
	if key == "" || len(key) > 128 || strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_+") != "" {
		key = randomHex(16)
	}
	domain := "thauth.invalid"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && validLocalName(from[i+1:]) {
		domain = from[i+1:]
	}
	return "<" + key + "@" + domain + ">"
}

// validLocalName reports whether s is a plausible host name (letters, digits, '-', '.').
func validLocalName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == ""
}

// buildMIME returns the message: headers and a multipart/alternative body with the text part
// first and the HTML part last (the preferred one, per RFC 2046), both UTF-8 in
// quoted-printable. Header values are checked for line breaks and the subject is encoded
// (RFC 2047) when it is not plain ASCII.
func buildMIME(from, to *netmail.Address, subject, text, html, msgID string, now time.Time) ([]byte, error) {
	if strings.ContainsAny(subject, "\r\n") {
		return nil, errors.New("smtp: the subject contains a line break")
	}
	if text == "" && html == "" {
		return nil, errors.New("smtp: the message has no body")
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	header := [][2]string{
		{"From", from.String()},
		{"To", to.String()},
		{"Subject", mime.QEncoding.Encode("utf-8", subject)},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", msgID},
		{"MIME-Version", "1.0"},
		{"Auto-Submitted", "auto-generated"},
		{"Content-Type", `multipart/alternative; boundary="` + mw.Boundary() + `"`},
	}
	for _, h := range header {
		if strings.ContainsAny(h[1], "\r\n") {
			return nil, fmt.Errorf("smtp: header %s contains a line break", h[0])
		}
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	for _, p := range []struct{ ctype, body string }{{"text/plain", text}, {"text/html", html}} {
		if p.body == "" {
			continue
		}
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.ctype + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qw := quotedprintable.NewWriter(pw)
		if _, err := qw.Write([]byte(p.body)); err != nil {
			return nil, err
		}
		if err := qw.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
