package webhook

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/thauth/thauth"
)

// fakeStore implements Store in memory for this package's tests; the real stores implement
// it on their tables and pass the same expectations through the lead's conformance suite.
type fakeStore struct {
	mu         sync.Mutex
	endpoints  map[string]Endpoint
	deliveries map[string]Delivery
	attempts   map[string][]Attempt
	disabled   map[string]string // endpoint id → reason
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		endpoints:  map[string]Endpoint{},
		deliveries: map[string]Delivery{},
		attempts:   map[string][]Attempt{},
		disabled:   map[string]string{},
	}
}

func (s *fakeStore) putEndpoint(e Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints[e.ID] = e
}

func (s *fakeStore) putDelivery(d Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliveries[d.ID] = d
}

func (s *fakeStore) delivery(id string) (Delivery, []Attempt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deliveries[id], slices.Clone(s.attempts[id])
}

func (s *fakeStore) ClaimDeliveries(_ context.Context, now, leaseUntil time.Time, limit int) ([]Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []Delivery
	for _, d := range s.deliveries {
		if d.Status == StatusPending && !d.NextAttemptAt.After(now) {
			due = append(due, d)
		}
	}
	slices.SortFunc(due, func(a, b Delivery) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) })
	if len(due) > limit {
		due = due[:limit]
	}
	for _, d := range due {
		d.NextAttemptAt = leaseUntil
		s.deliveries[d.ID] = d
	}
	return due, nil
}

func (s *fakeStore) GetEndpoint(_ context.Context, orgID, id string) (Endpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.endpoints[id]
	if !ok || e.OrganizationID != orgID {
		return Endpoint{}, thauth.Errorf(thauth.ENotFound, "no such endpoint")
	}
	return e, nil
}

func (s *fakeStore) UpdateDelivery(_ context.Context, orgID string, d Delivery, a *Attempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.deliveries[d.ID]; !ok || old.OrganizationID != orgID {
		return thauth.Errorf(thauth.ENotFound, "no such delivery")
	}
	s.deliveries[d.ID] = d
	if a != nil {
		s.attempts[d.ID] = append(s.attempts[d.ID], *a)
	}
	return nil
}

func (s *fakeStore) DisableEndpoint(_ context.Context, orgID, id, reason string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.endpoints[id]
	if !ok || e.OrganizationID != orgID {
		return thauth.Errorf(thauth.ENotFound, "no such endpoint")
	}
	e.Disabled = true
	s.endpoints[id] = e
	s.disabled[id] = reason
	return nil
}

// clock is an injected clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

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
