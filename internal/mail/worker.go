package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// Opener opens sealed outbox payloads; *seal.Sealer implements it.
type Opener interface {
	Open(ctx context.Context, purpose, rowID, sealed string) ([]byte, error)
}

// WorkerOptions configure a Worker. Zero values take the defaults.
type WorkerOptions struct {
	// From, when set, is the sender of every message (else the Mailer's own).
	From string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives one line per delivery outcome, never a payload. Default: discard.
	Logger *slog.Logger
	// Poll is how often Run looks for due messages when nobody calls Wake. Default 1s.
	Poll time.Duration
	// Batch is the most messages claimed at once. Default 20.
	Batch int
	// Lease is how long a claimed message is reserved for this worker before another node
	// may claim it again. Default 2m. A message whose lease is about to run out is not sent
	// (it waits for the next claim), so two nodes never send it at the same time.
	Lease time.Duration
	// MaxAttempts is how many failed attempts make a message failed. Default 10.
	MaxAttempts int
	// KeepPayload keeps the sealed payload of sent and failed messages (the development
	// outbox shows them). Default false: erased once the message is done.
	KeepPayload bool
	// Backoff is the wait after the attempt-th failed attempt (1-based). Default
	// DefaultBackoff. A provider's Retry-After wins when it is longer.
	Backoff func(attempt int) time.Duration
}

// DefaultBackoff waits 30s·2^(attempt-1), capped at 1h, less a random 0–20% so that messages
// that failed together do not all retry together: about 30s, 1m, 2m, 4m, 8m, 16m, 32m, then
// 1h. With the default 10 attempts a message is given up about 3 hours after its first
// failure.
func DefaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := time.Hour
	if attempt <= 8 { // 30s·2^7 = 64m > 1h
		d = min(30*time.Second<<(attempt-1), time.Hour)
	}
	return d - time.Duration(rand.Int64N(int64(d/5)+1))
}

// Worker drains the outbox: it claims due messages, opens and renders them, sends them and
// records the outcome. Several workers (on one node or many) may share a store: claims are
// atomic and leased. A Worker is safe for concurrent use.
type Worker struct {
	store  thauth.OutboxStore
	opener Opener
	mailer Mailer
	o      WorkerOptions
	log    *slog.Logger
	wake   chan struct{}
}

// NewWorker returns a Worker over store, opening payloads with opener and sending with m.
func NewWorker(store thauth.OutboxStore, opener Opener, m Mailer, o WorkerOptions) *Worker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 20
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{store: store, opener: opener, mailer: m, o: o, log: log, wake: make(chan struct{}, 1)}
}

// Wake makes Run look for messages now (after a commit that queued mail). It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sends due messages until ctx is done: at once when woken, else every Poll. Errors
// (such as an unreachable store) are logged and retried on the next round.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.wake:
		}
		for {
			claimed, _, _, err := w.runOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Error("mail outbox: round failed", "err", err)
			}
			// A full batch means more may be due: go on without waiting.
			if err != nil || claimed < w.o.Batch || ctx.Err() != nil {
				break
			}
		}
		t.Reset(w.o.Poll) // since Go 1.23 a Reset timer never delivers a stale tick
	}
}

// RunOnce claims up to Batch due messages and tries each once. sent counts the messages
// delivered, failed those whose attempt failed (rescheduled or given up). err reports a store
// failure (claiming or recording an outcome); a message whose outcome could not be recorded
// is claimed again after the lease, and providers that deduplicate on the idempotency key
// (Resend) do not send it twice.
func (w *Worker) RunOnce(ctx context.Context) (sent, failed int, err error) {
	_, sent, failed, err = w.runOnce(ctx)
	return sent, failed, err
}

func (w *Worker) runOnce(ctx context.Context) (claimed, sent, failed int, err error) {
	claimedAt := w.o.Now()
	ms, err := w.store.ClaimMail(ctx, claimedAt, w.o.Lease, w.o.Batch)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("mail outbox: claiming messages: %w", err)
	}
	// Each send gets a quarter of the lease, and a message is only started while two
	// quarters are left: the lease cannot run out (letting another node claim the message)
	// before the send and the record of its outcome are done.
	slot := w.o.Lease / 4
	var errs []error
	for i := range ms {
		m := &ms[i]
		if ctx.Err() != nil {
			break
		}
		if w.o.Now().Add(2 * slot).After(claimedAt.Add(w.o.Lease)) {
			break // the rest waits for its lease to end and is claimed again
		}
		ok, retryAfter, err := w.deliver(ctx, m, slot)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			sent++
			continue
		}
		failed++
		if retryAfter > 0 {
			// The provider is rate limiting: the rest of the batch would be refused too.
			// Hand it back for after the wait, without counting an attempt.
			for j := i + 1; j < len(ms); j++ {
				r := &ms[j]
				r.NextAttemptAt = w.o.Now().Add(retryAfter)
				if err := w.store.UpdateMail(ctx, r); err != nil {
					errs = append(errs, fmt.Errorf("mail outbox: releasing message %s: %w", r.ID, err))
				}
			}
			break
		}
	}
	return len(ms), sent, failed, errors.Join(errs...)
}

// deliver tries m once and records the outcome. ok reports a delivery; retryAfter is the
// provider's Retry-After when it sent one; err is a store failure only.
func (w *Worker) deliver(ctx context.Context, m *thauth.OutboxMail, timeout time.Duration) (ok bool, retryAfter time.Duration, err error) {
	data, reason, openErr := w.open(ctx, m)
	var msg Message
	var sendErr error
	if openErr == nil {
		msg.Subject, msg.Text, msg.HTML, openErr = Render(m.Template, data)
		if openErr != nil {
			reason = "the message could not be rendered"
		}
	}
	var providerID string
	permanent := false
	if openErr != nil {
		// An unreadable payload may be a key store hiccup (retry); a payload that is not
		// valid data or does not render never will be.
		sendErr = errors.New(reason)
		permanent = reason != "could not open the sealed payload"
		w.log.Error("mail outbox: cannot prepare message", "id", m.ID, "template", m.Template, "err", redact(openErr.Error(), data))
	} else {
		msg.From, msg.To, msg.IdempotencyKey = w.o.From, m.To, m.ID
		sctx, cancel := context.WithTimeout(ctx, timeout)
		providerID, sendErr = w.mailer.Send(sctx, msg)
		cancel()
		permanent = IsPermanent(sendErr)
	}
	now := w.o.Now()
	m.Attempts++
	if sendErr == nil {
		m.Status, m.SentAt, m.ProviderID, m.LastError = thauth.MailSent, &now, providerID, ""
		if !w.o.KeepPayload {
			m.Payload = ""
		}
		if err := w.store.UpdateMail(ctx, m); err != nil {
			w.log.Error("mail outbox: message sent but not recorded; it may be sent again", "id", m.ID, "template", m.Template, "err", err)
			return true, 0, fmt.Errorf("mail outbox: recording message %s as sent: %w", m.ID, err)
		}
		w.log.Info("mail sent", "id", m.ID, "template", m.Template, "attempt", m.Attempts, "provider_id", providerID)
		return true, 0, nil
	}

	m.LastError = safeError(sendErr, data)
	if permanent || m.Attempts >= w.o.MaxAttempts {
		m.Status = thauth.MailFailed
		if !w.o.KeepPayload {
			m.Payload = ""
		}
		why := "attempts exhausted"
		if permanent {
			why = "permanent failure"
		}
		w.log.Error("mail failed: giving up", "id", m.ID, "template", m.Template, "attempts", m.Attempts, "reason", why, "err", m.LastError)
	} else {
		wait := w.o.Backoff(m.Attempts)
		if d, ok := RetryAfter(sendErr); ok {
			retryAfter = d
			wait = max(wait, d)
		}
		m.NextAttemptAt = now.Add(wait)
		w.log.Warn("mail not sent: will retry", "id", m.ID, "template", m.Template, "attempt", m.Attempts,
			"next_attempt_at", m.NextAttemptAt, "err", m.LastError)
	}
	if err := w.store.UpdateMail(ctx, m); err != nil {
		return false, retryAfter, fmt.Errorf("mail outbox: recording the failure of message %s: %w", m.ID, err)
	}
	return false, retryAfter, nil
}

// open opens and decodes m's payload; reason is a safe description of a failure.
func (w *Worker) open(ctx context.Context, m *thauth.OutboxMail) (data map[string]string, reason string, err error) {
	if m.Payload == "" {
		return nil, "the payload is missing", errors.New("empty payload")
	}
	b, err := w.opener.Open(ctx, PayloadPurpose, m.ID, m.Payload)
	if err != nil {
		return nil, "could not open the sealed payload", err
	}
	defer clear(b)
	if err := json.Unmarshal(b, &data); err != nil {
		// The JSON error may quote the payload: keep only its kind.
		return nil, "the payload is not valid", errors.New("payload is not a JSON object of strings")
	}
	return data, "", nil
}

// maxLastError bounds LastError (a provider may answer at length).
const maxLastError = 500

// safeError returns err's text fit to store and log: every payload value long enough to be
// sensitive is replaced (in case a provider echoed the message back), on one line, bounded.
func safeError(err error, data map[string]string) string {
	s := oneLine(redact(err.Error(), data))
	if len(s) > maxLastError {
		s = strings.ToValidUTF8(s[:maxLastError], "") + "…"
	}
	return s
}

// redact replaces every value of data of 8 characters or more found in s, and every link
// token, with "[redacted]". Longer values go first so that a value containing another is
// replaced whole.
func redact(s string, data map[string]string) string {
	var vals []string
	for _, v := range data {
		if len(v) >= 8 {
			vals = append(vals, v)
		}
		if i := strings.Index(v, "#token="); i >= 0 && len(v)-i-len("#token=") >= 8 {
			vals = append(vals, v[i+len("#token="):])
		}
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// Rendered is one outbox message as the development outbox endpoint shows it. Subject, Text
// and HTML are rendered from the payload; a message whose payload was erased (sent or
// failed, KeepPayload off) shows only a generic Subject.
type Rendered struct {
	ID        string     `json:"id"`
	To        string     `json:"to"`
	Template  string     `json:"template"`
	Subject   string     `json:"subject"`
	Text      string     `json:"text,omitempty"`
	HTML      string     `json:"html,omitempty"`
	Status    string     `json:"status"`
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at,omitempty"`
}

// ListRendered returns up to limit outbox messages, newest first, rendered for the
// development outbox endpoint. It holds single-use links: serve it only in development. A
// payload that does not open or render shows as the generic subject with no body; only a
// store failure is an error.
func ListRendered(ctx context.Context, store thauth.OutboxStore, opener Opener, limit int) ([]Rendered, error) {
	ms, err := store.ListMail(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Rendered, 0, len(ms))
	for _, m := range ms {
		r := Rendered{
			ID: m.ID, To: m.To, Template: m.Template, Subject: Title(m.Template), Status: m.Status,
			Attempts: m.Attempts, LastError: m.LastError, CreatedAt: m.CreatedAt, SentAt: m.SentAt,
		}
		if m.Payload != "" && opener != nil {
			if b, err := opener.Open(ctx, PayloadPurpose, m.ID, m.Payload); err == nil {
				var data map[string]string
				if json.Unmarshal(b, &data) == nil {
					if s, t, h, err := Render(m.Template, data); err == nil {
						r.Subject, r.Text, r.HTML = s, t, h
					}
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}
