package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/thauth/thauth"
)

// WorkerOptions configures a Worker. Store and Sender are required.
type WorkerOptions struct {
	Store  Store
	Sender *Sender
	Now    func() time.Time // default time.Now; decides what is due and when the next attempt is
	// Schedule is the delay before each retry; default DefaultSchedule(). A delivery gets
	// len(Schedule)+1 attempts.
	Schedule []time.Duration
	// Jitter spreads retries so that endpoints failing together are not retried together, as
	// the specification recommends; default adds up to 10% of the delay at random. Tests pass
	// an identity function.
	Jitter func(time.Duration) time.Duration
	// Batch is how many deliveries one pass claims (default 50) and Concurrency how many it
	// sends at once (default 8).
	Batch, Concurrency int
	// Lease is how long a claimed delivery is reserved for this worker; it must exceed the
	// Sender's timeout (default 2 minutes).
	Lease time.Duration
	// PollInterval is how often Run looks for due deliveries when idle (default 1 s).
	PollInterval time.Duration
	Logger       *slog.Logger // default discards
}

// Worker delivers due webhooks: it claims them from the Store, sends each once, and records
// the outcome and the next attempt. Several workers, on one node or many, may share a Store.
type Worker struct {
	o WorkerOptions
}

// NewWorker returns a Worker with o's defaults filled in.
func NewWorker(o WorkerOptions) *Worker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Schedule == nil {
		o.Schedule = DefaultSchedule()
	}
	if o.Jitter == nil {
		o.Jitter = func(d time.Duration) time.Duration { return d + rand.N(d/10+1) }
	}
	if o.Batch <= 0 {
		o.Batch = 50
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{o: o}
}

// Run delivers until ctx is done, then returns nil. Store errors are logged and retried at
// the next poll.
func (w *Worker) Run(ctx context.Context) error {
	t := time.NewTicker(w.o.PollInterval)
	defer t.Stop()
	for {
		n, err := w.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			w.o.Logger.Error("webhook delivery pass", "err", err)
		}
		if n == w.o.Batch && err == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce claims the deliveries due now (at most Batch), attempts each, waits for them, and
// returns how many it claimed and the first store error. A delivery whose outcome could not be
// saved is attempted again when its lease lapses.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := w.o.Now()
	due, err := w.o.Store.ClaimDeliveries(ctx, now, now.Add(w.o.Lease), w.o.Batch)
	if err != nil {
		return 0, fmt.Errorf("webhook: claim deliveries: %w", err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, w.o.Concurrency)
	)
	for i := range due {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := w.deliver(ctx, due[i]); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(due), firstErr
}

// deliver makes one attempt of d and records it.
func (w *Worker) deliver(ctx context.Context, d Delivery) error {
	log := w.o.Logger.With("delivery", d.ID, "endpoint", d.EndpointID, "organization", d.OrganizationID)
	ep, err := w.o.Store.GetEndpoint(ctx, d.OrganizationID, d.EndpointID)
	switch {
	case thauth.IsNotFound(err):
		return w.settle(ctx, d, "endpoint deleted")
	case err != nil:
		return fmt.Errorf("webhook: endpoint %s: %w", d.EndpointID, err)
	case ep.Disabled:
		return w.settle(ctx, d, "endpoint disabled")
	}
	a := w.o.Sender.Send(ctx, &ep, &d)
	if ctx.Err() != nil {
		// Shutting down: this was not the receiver's failure. The lease brings it back.
		return nil
	}
	d = advance(d, a, w.o.Schedule, w.o.Jitter)
	if err := w.o.Store.UpdateDelivery(ctx, d.OrganizationID, d, &a); err != nil {
		return fmt.Errorf("webhook: record delivery %s: %w", d.ID, err)
	}
	log.Info("webhook attempt", "attempt", a.Number, "status_code", a.StatusCode, "result", d.Status, "duration", a.Duration)
	if a.StatusCode == 410 {
		reason := fmt.Sprintf("the endpoint answered 410 Gone at %s", a.At.UTC().Format(time.RFC3339))
		if err := w.o.Store.DisableEndpoint(ctx, d.OrganizationID, ep.ID, reason, a.At); err != nil {
			return fmt.Errorf("webhook: disable endpoint %s: %w", ep.ID, err)
		}
		log.Warn("webhook endpoint disabled", "reason", reason)
	}
	return nil
}

// settle fails d without an attempt, because its endpoint can no longer receive it.
func (w *Worker) settle(ctx context.Context, d Delivery, why string) error {
	d.Status = StatusFailed
	d.NextAttemptAt = time.Time{}
	d.LastError = why
	if err := w.o.Store.UpdateDelivery(ctx, d.OrganizationID, d, nil); err != nil {
		return fmt.Errorf("webhook: record delivery %s: %w", d.ID, err)
	}
	return nil
}
