// Package mail delivers Thauth's email: it renders the message templates, sends them through a
// Mailer (the development log mailer, SMTP with STARTTLS, or Resend through an adapter built by
// the serve package), and runs the Worker that drains the durable outbox table
// (thauth.OutboxStore) with retries and backoff, so that a provider outage delays mail but
// loses none.
//
// # Threat model
//
// Outbox payloads hold single-use links (email verification, password reset, invitation) whose
// token is as good as the credential it unlocks until it is used or expires. They are therefore:
//
//   - sealed at rest (internal/seal, purpose "mail", row id = message id), so a database dump
//     or backup does not yield working links;
//   - opened only in memory, just before sending, and never logged, never written into
//     LastError and never put into an error message; provider error texts are redacted of
//     every payload value before they are stored or logged, in case a provider echoes them;
//   - erased from the outbox row once the message is sent (or given up), unless the node is
//     told to keep them (the development outbox, which exists to show them).
//
// The development mailer (NewDev) is the one deliberate exception: it prints the message,
// links included, to the log, because that is how a developer receives mail. It must not be
// used in production; the serve package refuses it there.
//
// What this package does not protect against: a compromised node (it holds the master keys
// that open payloads), and the mail provider and the recipient's mailbox, which see the links
// by necessity. Links carry their token in the URL fragment, so they do not reach web server
// access logs when clicked.
package mail

import (
	"context"
	"errors"
	"time"
)

// PayloadPurpose is the seal purpose of outbox payloads (the same value as
// manage.MailPurpose); the row id is the message id.
const PayloadPurpose = "mail"

// Message is one rendered email ready to send. To is a single address; From, when set,
// overrides the sender the Mailer was configured with. IdempotencyKey identifies the message
// across retries (the outbox message id): providers that support it (Resend) deduplicate on
// it, and the SMTP mailer uses it as the Message-ID.
type Message struct {
	From           string
	To             string
	Subject        string
	Text           string
	HTML           string
	IdempotencyKey string
}

// Mailer sends one message and returns the provider's id for it. An error means the message
// may not have been sent; wrap it with Permanent when retrying cannot succeed, and with
// WithRetryAfter when the provider said when to retry. Implementations must be safe for
// concurrent use and must not log the message (it may hold a single-use link).
type Mailer interface {
	Send(ctx context.Context, m Message) (providerID string, err error)
}

// MailerFunc adapts a function to the Mailer interface.
type MailerFunc func(ctx context.Context, m Message) (string, error)

// Send calls f(ctx, m).
func (f MailerFunc) Send(ctx context.Context, m Message) (string, error) { return f(ctx, m) }

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying the same message cannot fix (the provider says the
// message or its recipient is invalid): the worker gives the message up at once. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retryAfterError carries a provider's Retry-After.
type retryAfterError struct {
	err error
	d   time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// WithRetryAfter attaches the delay a provider asked for (a rate limit's Retry-After) to err.
// WithRetryAfter(nil, d) is nil; a d <= 0 returns err unchanged.
func WithRetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &retryAfterError{err: err, d: d}
}

// RetryAfter returns the delay attached to err by WithRetryAfter, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.d, true
	}
	return 0, false
}
