package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"strings"

	"github.com/thauth/thauth/internal/mail"
	"github.com/thauth/thauth/internal/resend"
)

// MailConfig selects and configures the mailer. Secrets (ResendAPIKey, SMTPPassword) come
// from the environment and are never logged: MailConfig's LogValue and String hide them.
type MailConfig struct {
	// Mailer is "dev" (the default: messages are logged and kept for the development
	// outbox, nothing is sent), "resend" (Resend's HTTP API) or "smtp" (any SMTP server
	// with STARTTLS or implicit TLS). THAUTH_MAILER.
	Mailer string
	// From is the sender, an address with an optional name: "Thauth <no-reply@example.com>".
	// Required by resend and smtp. THAUTH_MAIL_FROM.
	From string
	// ResendAPIKey is the Resend API key (re_...). THAUTH_RESEND_API_KEY.
	ResendAPIKey string
	// ResendBaseURL overrides Resend's API address (tests). Default https://api.resend.com.
	ResendBaseURL string
	// SMTPAddr is the SMTP server's host:port (587 for STARTTLS, 465 for implicit TLS).
	// THAUTH_SMTP_ADDR.
	SMTPAddr string
	// SMTPUsername and SMTPPassword authenticate (AUTH PLAIN, inside TLS only); both or
	// neither. THAUTH_SMTP_USERNAME, THAUTH_SMTP_PASSWORD.
	SMTPUsername string
	SMTPPassword string
}

// String describes c without its secrets.
func (c MailConfig) String() string {
	m := c.Mailer
	if m == "" {
		m = "dev"
	}
	s := "mailer=" + m
	if c.From != "" {
		s += " from=" + c.From
	}
	switch m {
	case "resend":
		s += " resend_api_key=" + secretState(c.ResendAPIKey)
		if c.ResendBaseURL != "" {
			s += " resend_base_url=" + c.ResendBaseURL
		}
	case "smtp":
		s += " smtp_addr=" + c.SMTPAddr
		if c.SMTPUsername != "" {
			s += " smtp_username=" + c.SMTPUsername + " smtp_password=" + secretState(c.SMTPPassword)
		}
	}
	return s
}

// LogValue logs c without its secrets.
func (c MailConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// GoString hides the secrets from %#v.
func (c MailConfig) GoString() string { return "serve.MailConfig{" + c.String() + "}" }

func secretState(s string) string {
	if s == "" {
		return "(unset)"
	}
	return "(set)"
}

// Validate returns every problem of c, naming the setting to fix (nil when c is valid).
// Field names are prefixed "Mail." to read as Config fields.
func (c MailConfig) Validate() []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: "Mail." + field, Message: fmt.Sprintf(format, args...)})
	}
	checkFrom := func(mailer string) {
		if strings.TrimSpace(c.From) == "" {
			add("From", "--mailer %s needs a sender address: set THAUTH_MAIL_FROM (for example \"Thauth <no-reply@example.com>\")", mailer)
		} else if strings.ContainsAny(c.From, "\r\n") {
			add("From", "THAUTH_MAIL_FROM must be one line")
		} else if _, err := netmail.ParseAddress(c.From); err != nil {
			add("From", "THAUTH_MAIL_FROM %q is not an email address (for example \"Thauth <no-reply@example.com>\")", c.From)
		}
	}
	switch c.Mailer {
	case "", "dev":
		if c.From != "" {
			checkFrom("dev")
		}
	case "resend":
		if strings.TrimSpace(c.ResendAPIKey) == "" {
			add("ResendAPIKey", "--mailer resend needs THAUTH_RESEND_API_KEY")
		} else if strings.ContainsAny(c.ResendAPIKey, " \r\n") {
			add("ResendAPIKey", "THAUTH_RESEND_API_KEY contains a space or a line break")
		}
		checkFrom("resend")
	case "smtp":
		if c.SMTPAddr == "" {
			add("SMTPAddr", "--mailer smtp needs THAUTH_SMTP_ADDR (host:port, for example smtp.example.com:587)")
		} else if host, port, err := net.SplitHostPort(c.SMTPAddr); err != nil || host == "" || port == "" {
			add("SMTPAddr", "THAUTH_SMTP_ADDR %q must be host:port (for example smtp.example.com:587)", c.SMTPAddr)
		}
		if c.SMTPUsername != "" && c.SMTPPassword == "" {
			add("SMTPPassword", "THAUTH_SMTP_USERNAME is set: --mailer smtp also needs THAUTH_SMTP_PASSWORD")
		}
		if c.SMTPUsername == "" && c.SMTPPassword != "" {
			add("SMTPUsername", "THAUTH_SMTP_PASSWORD is set: --mailer smtp also needs THAUTH_SMTP_USERNAME")
		}
		checkFrom("smtp")
	default:
		add("Mailer", "unknown mailer %q: use dev, resend or smtp (THAUTH_MAILER)", c.Mailer)
	}
	return ps
}

// newMailer builds the mailer c selects. Its errors name every missing or invalid setting
// and never hold a secret.
func newMailer(c MailConfig, log *slog.Logger) (mail.Mailer, error) {
	if ps := c.Validate(); len(ps) > 0 {
		errs := make([]error, len(ps))
		for i, p := range ps {
			errs[i] = errors.New(p.Message)
		}
		return nil, fmt.Errorf("mail configuration: %w", errors.Join(errs...))
	}
	switch c.Mailer {
	case "resend":
		client, err := resend.New(c.ResendAPIKey, resend.Options{BaseURL: c.ResendBaseURL, UserAgent: "thauth"})
		if err != nil {
			return nil, fmt.Errorf("mail configuration: %w", err)
		}
		log.Info("mail goes through Resend", "from", c.From)
		return resendMailer(client, c.From), nil
	case "smtp":
		m, err := mail.NewSMTP(mail.SMTPConfig{Addr: c.SMTPAddr, Username: c.SMTPUsername, Password: c.SMTPPassword, From: c.From})
		if err != nil {
			return nil, fmt.Errorf("mail configuration: %w", err)
		}
		log.Info("mail goes through SMTP", "addr", c.SMTPAddr, "from", c.From)
		return m, nil
	default:
		log.Warn("development mailer: messages are not sent; they are logged, links included, and shown at GET /api/v1/dev/outbox")
		return mail.NewDev(log), nil
	}
}

// resendMailer adapts a Resend client to mail.Mailer. The outbox message id is the
// idempotency key, so a retry after a lost answer never sends twice (within Resend's 24
// hours). Resend's verdicts are mapped for the worker: an error Resend says retrying can fix
// (429, 5xx, network) stays retryable with its Retry-After; invalid input (400, 422, a reused
// idempotency key) is permanent; an authentication or account answer (401, 403: bad key,
// unverified domain, no User-Agent) stays retryable, because it is the installation's
// configuration, not the message, and the queued mail must still go out once it is fixed.
func resendMailer(client *resend.Client, from string) mail.Mailer {
	return mail.MailerFunc(func(ctx context.Context, m mail.Message) (string, error) {
		f := from
		if m.From != "" {
			f = m.From
		}
		id, err := client.Send(ctx, resend.Email{
			From: f, To: []string{m.To}, Subject: m.Subject, HTML: m.HTML, Text: m.Text,
			IdempotencyKey: m.IdempotencyKey,
		})
		if err == nil {
			return id, nil
		}
		var re *resend.Error
		if !errors.As(err, &re) {
			return "", mail.Permanent(err) // refused before sending: the message is invalid
		}
		switch {
		case re.Retryable:
			return "", mail.WithRetryAfter(err, re.RetryAfter)
		case re.StatusCode == 401 || re.StatusCode == 403:
			return "", err
		default:
			return "", mail.Permanent(err)
		}
	})
}
