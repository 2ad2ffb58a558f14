package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// testProtection covers thauth.ProtectionData. Beyond the contracts of protectionstore.go it
// pins down these behaviours, shared by every engine:
//   - Times come back in UTC, truncated to microseconds; DecisionRecord.Latency is kept in
//     whole microseconds, WebhookAttempt.Duration and RetryAfter in whole milliseconds
//     (truncated). Methods given a pointer normalize its times in place; the slices given to
//     AppendDecisions and EnqueueDeliveries are not modified.
//   - AppendDecisions skips the records of unknown projects and the ids already stored (of
//     two records with one id in a batch the first is kept), so a retried batch is harmless.
//   - ListDecisions and ListSecurityEvents treat a limit outside 1–1000 as 1000,
//     ListDeliveries a limit <= 0 as "every one". Listings ordered by a time break ties by
//     id (newest first: descending). An unknown project, organization or incident has
//     nothing to list (no error).
//   - ListDecisions: the text filters match exactly; a cursor continues strictly after
//     (At, ID); gap markers in the time range (and after the cursor) are listed whatever the
//     other filters.
//   - WebhookEndpoint.Events round-trips exactly (order, duplicates, any characters).
//   - EnqueueDeliveries stores the deliveries as given (Status included) under orgID; an
//     endpoint of another organization is ENotFound and nothing of the batch is stored.
//   - ClaimDeliveries takes pending deliveries whose NextAttemptAt is set and at or before
//     now, by (NextAttemptAt, ID), and returns them as stored with NextAttemptAt = leaseUntil.
//   - An endpoint or delivery addressed with another organization's id is ENotFound (attempt
//     and delivery listings: nothing) and left unchanged.
//   - UpdateDelivery with an attempt number already recorded is EConflict and writes nothing.
//   - Reinstating an organization (at nil) clears its SuspendedReason.
//   - PruneDecisions and PruneAudit delete the oldest first, and nothing when limit <= 0.
func testProtection(t *testing.T, open func(t *testing.T) thauth.Store) {
	t.Run("DecisionAppendGet", func(t *testing.T) { testDecisionAppendGet(t, open) })
	t.Run("DecisionFilters", func(t *testing.T) { testDecisionFilters(t, open) })
	t.Run("DecisionLimits", func(t *testing.T) { testDecisionLimits(t, open) })
	t.Run("DecisionPrune", func(t *testing.T) { testDecisionPrune(t, open) })
	t.Run("SecurityEvents", func(t *testing.T) { testSecurityEvents(t, open) })
	t.Run("WebhookEndpoints", func(t *testing.T) { testWebhookEndpoints(t, open) })
	t.Run("WebhookDeliveries", func(t *testing.T) { testWebhookDeliveries(t, open) })
	t.Run("WebhookClaims", func(t *testing.T) { testWebhookClaims(t, open) })
	t.Run("WebhookIsolation", func(t *testing.T) { testWebhookIsolation(t, open) })
	t.Run("Incidents", func(t *testing.T) { testIncidents(t, open) })
	t.Run("Suspension", func(t *testing.T) { testSuspension(t, open) })
	t.Run("PruneAudit", func(t *testing.T) { testPruneAudit(t, open) })
	t.Run("ProtectionTx", func(t *testing.T) { testProtectionTx(t, open) })
}

// zoned is a time zone other than UTC, for the times the suite hands to the store.
var zoned = time.FixedZone("UTC+2", 2*3600)

// rough returns base plus d with nanoseconds below the microsecond, in another zone: a time
// the store must give back as stored (see stored).
func rough(d time.Duration) time.Time { return base.Add(d + 789).In(zoned) }

// stored is t as a store gives it back: UTC, truncated to microseconds.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func storedPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return ptr(stored(*t))
}

// listDecisions lists the project's decisions with f, failing the test on error.
func listDecisions(t *testing.T, s thauth.Store, projectID string, f thauth.DecisionFilter) []thauth.DecisionRecord {
	t.Helper()
	got, err := s.ListDecisions(context.Background(), projectID, f)
	must(t, err)
	return got
}

func decisionIDs(rs []thauth.DecisionRecord) []string {
	ids := []string{}
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func testDecisionAppendGet(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	f, g := newFixture(t, s), newFixture(t, s)

	full := thauth.DecisionRecord{ID: newID(), ProjectID: f.pid, At: rough(time.Second), KeyID: newID(),
		Subject: "user:ünï\"code\"\\🎉", Feature: "billing", Action: "refund", Tenant: "acme-eu", Resource: "invoices/42",
		Allowed: true, Reason: "allowed_by_role", Latency: 1234567 * time.Nanosecond}
	denied := thauth.DecisionRecord{ID: newID(), ProjectID: f.pid, At: rough(2 * time.Second), Subject: "user:b",
		Feature: "reports", Action: "export", Reason: "no_grant"}
	gap := thauth.DecisionRecord{ID: newID(), ProjectID: f.pid, At: rough(3 * time.Second), Gap: 17}
	other := thauth.DecisionRecord{ID: newID(), ProjectID: g.pid, At: rough(time.Second), Subject: "user:a", Allowed: true}
	orphan := thauth.DecisionRecord{ID: newID(), ProjectID: newID(), At: rough(time.Second), Subject: "user:a"}
	dupInBatch := full
	dupInBatch.Subject = "user:second-of-one-id"
	batch := []thauth.DecisionRecord{full, orphan, denied, gap, other, dupInBatch}
	before := slices.Clone(batch)
	must(t, s.AppendDecisions(ctx, batch))
	diff(t, "AppendDecisions' argument afterwards", before, batch)
	must(t, s.AppendDecisions(ctx, nil))

	storedRec := func(r thauth.DecisionRecord) *thauth.DecisionRecord {
		r.At, r.Latency = stored(r.At), r.Latency.Truncate(time.Microsecond)
		return &r
	}
	for _, r := range []thauth.DecisionRecord{full, denied, gap, other} {
		got, err := s.GetDecision(ctx, r.ProjectID, r.ID)
		must(t, err)
		diff(t, "GetDecision", storedRec(r), got)
		wantUTC(t, "At", got.At)
	}
	if got, _ := s.GetDecision(ctx, f.pid, full.ID); got != nil && got.Latency != 1234*time.Microsecond {
		t.Errorf("Latency = %v, want 1.234ms (whole microseconds)", got.Latency)
	}
	_, err := s.GetDecision(ctx, orphan.ProjectID, orphan.ID)
	wantCode(t, err, thauth.ENotFound)
	_, err = s.GetDecision(ctx, g.pid, full.ID) // another project's record
	wantCode(t, err, thauth.ENotFound)
	_, err = s.GetDecision(ctx, f.pid, other.ID)
	wantCode(t, err, thauth.ENotFound)
	_, err = s.GetDecision(ctx, f.pid, newID())
	wantCode(t, err, thauth.ENotFound)

	// A retried batch changes nothing and is not an error.
	retry := []thauth.DecisionRecord{full, denied}
	retry[0].Subject, retry[1].Allowed = "user:changed", true
	must(t, s.AppendDecisions(ctx, retry))
	diff(t, "decisions after a retried batch", []string{gap.ID, denied.ID, full.ID}, decisionIDs(listDecisions(t, s, f.pid, thauth.DecisionFilter{})))
	got, err := s.GetDecision(ctx, f.pid, full.ID)
	must(t, err)
	diff(t, "record after a retried batch", storedRec(full), got)
	got, err = s.GetDecision(ctx, f.pid, denied.ID)
	must(t, err)
	diff(t, "record after a retried batch", storedRec(denied), got)
}

func testDecisionFilters(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	f, g := newFixture(t, s), newFixture(t, s)
	ts := func(i int) time.Time { return at(time.Duration(i) * time.Second) }
	ids := sortedIDs(2)
	rec := func(id string, i int, subject, feature, action, tenant, reason, key string, allowed bool) thauth.DecisionRecord {
		return thauth.DecisionRecord{ID: id, ProjectID: f.pid, At: ts(i), KeyID: key, Subject: subject, Feature: feature,
			Action: action, Tenant: tenant, Allowed: allowed, Reason: reason, Latency: time.Duration(i) * time.Millisecond}
	}
	k1, k2 := newID(), newID()
	r := map[string]thauth.DecisionRecord{
		"r1":  rec(newID(), 1, "alice", "billing", "read", "acme", "allowed_by_role", k1, true),
		"r2":  rec(newID(), 2, "bob", "billing", "refund", "acme", "no_grant", k2, false),
		"r3":  rec(newID(), 3, "alice", "reports", "export", "", "denied_by_override", k1, false),
		"g4":  {ID: newID(), ProjectID: f.pid, At: ts(4), Gap: 12},
		"r5a": rec(ids[0], 5, "alice", "billing", "read", "", "allowed_by_role", k2, true),
		"r5b": rec(ids[1], 5, "bob", "reports", "read", "", "allowed_by_role", k1, true),
		"r6":  rec(newID(), 6, "alice", "billing", "refund", "globex", "allowed_by_override", k1, true),
		"g7":  {ID: newID(), ProjectID: f.pid, At: ts(7), Gap: 3},
	}
	r["r5a"] = func(x thauth.DecisionRecord) thauth.DecisionRecord { x.Resource = "invoices/1"; return x }(r["r5a"])
	q1 := rec(newID(), 3, "alice", "billing", "read", "acme", "allowed_by_role", k1, true)
	q1.ProjectID = g.pid
	qg := thauth.DecisionRecord{ID: newID(), ProjectID: g.pid, At: ts(4), Gap: 1}
	var all []thauth.DecisionRecord
	for _, name := range []string{"r3", "g7", "r1", "r5b", "g4", "r6", "r2", "r5a"} { // any order
		all = append(all, r[name])
	}
	all = append(all, q1, qg)
	must(t, s.AppendDecisions(ctx, all))

	yes, no := true, false
	cursor := func(name string) *thauth.DecisionCursor {
		return &thauth.DecisionCursor{At: r[name].At, ID: r[name].ID}
	}
	everything := []string{"g7", "r6", "r5b", "r5a", "g4", "r3", "r2", "r1"}
	for _, c := range []struct {
		name string
		f    thauth.DecisionFilter
		want []string
	}{
		{"everything", thauth.DecisionFilter{}, everything},
		{"subject", thauth.DecisionFilter{Subject: "alice"}, []string{"g7", "r6", "r5a", "g4", "r3", "r1"}},
		{"subject is exact", thauth.DecisionFilter{Subject: "ALICE"}, []string{"g7", "g4"}},
		{"subject and feature", thauth.DecisionFilter{Subject: "alice", Feature: "billing"}, []string{"g7", "r6", "r5a", "g4", "r1"}},
		{"feature and action", thauth.DecisionFilter{Feature: "billing", Action: "refund"}, []string{"g7", "r6", "g4", "r2"}},
		{"tenant", thauth.DecisionFilter{Tenant: "acme"}, []string{"g7", "g4", "r2", "r1"}},
		{"reason", thauth.DecisionFilter{Reason: "no_grant"}, []string{"g7", "g4", "r2"}},
		{"key", thauth.DecisionFilter{KeyID: k2}, []string{"g7", "r5a", "g4", "r2"}},
		{"allowed", thauth.DecisionFilter{Allowed: &yes}, []string{"g7", "r6", "r5b", "r5a", "g4", "r1"}},
		{"denied", thauth.DecisionFilter{Allowed: &no}, []string{"g7", "g4", "r3", "r2"}},
		{"denied alice", thauth.DecisionFilter{Subject: "alice", Allowed: &no}, []string{"g7", "g4", "r3"}},
		{"no match: only gap markers", thauth.DecisionFilter{Subject: "nobody"}, []string{"g7", "g4"}},
		{"since is inclusive", thauth.DecisionFilter{Since: ts(4)}, []string{"g7", "r6", "r5b", "r5a", "g4"}},
		{"until is exclusive", thauth.DecisionFilter{Until: ts(4)}, []string{"r3", "r2", "r1"}},
		{"range", thauth.DecisionFilter{Since: ts(2), Until: ts(6)}, []string{"r5b", "r5a", "g4", "r3", "r2"}},
		{"range excludes gap markers outside it", thauth.DecisionFilter{Since: ts(5), Until: ts(7)}, []string{"r6", "r5b", "r5a"}},
		{"range with subject", thauth.DecisionFilter{Subject: "alice", Since: ts(2), Until: ts(6)}, []string{"r5a", "g4", "r3"}},
		{"range in another zone", thauth.DecisionFilter{Since: ts(2).In(zoned), Until: ts(3).In(zoned)}, []string{"r2"}},
		{"before a record tied on time", thauth.DecisionFilter{Before: cursor("r5b")}, []string{"r5a", "g4", "r3", "r2", "r1"}},
		{"before the lower of a tie", thauth.DecisionFilter{Before: cursor("r5a")}, []string{"g4", "r3", "r2", "r1"}},
		{"before a gap marker", thauth.DecisionFilter{Before: cursor("g4")}, []string{"r3", "r2", "r1"}},
		{"before a time", thauth.DecisionFilter{Before: &thauth.DecisionCursor{At: ts(5)}}, []string{"g4", "r3", "r2", "r1"}},
		{"before the newest, filtered", thauth.DecisionFilter{Subject: "bob", Before: cursor("g7")}, []string{"r5b", "g4", "r2"}},
		{"before and since", thauth.DecisionFilter{Since: ts(3), Before: cursor("r5a")}, []string{"g4", "r3"}},
		{"before the oldest", thauth.DecisionFilter{Before: cursor("r1")}, []string{}},
		{"limit", thauth.DecisionFilter{Limit: 3}, []string{"g7", "r6", "r5b"}},
		{"limit counts gap markers", thauth.DecisionFilter{Subject: "alice", Limit: 2}, []string{"g7", "r6"}},
		{"limit 1", thauth.DecisionFilter{Before: cursor("r6"), Limit: 1}, []string{"r5b"}},
		{"limit below 1 means 1000", thauth.DecisionFilter{Limit: -1}, everything},
		{"limit above 1000 means 1000", thauth.DecisionFilter{Limit: 5000}, everything},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := []string{}
			for _, n := range c.want {
				want = append(want, r[n].ID)
			}
			diff(t, "ListDecisions", want, decisionIDs(listDecisions(t, s, f.pid, c.f)))
		})
	}

	// The records come back whole, as stored.
	want := []thauth.DecisionRecord{}
	for _, n := range everything {
		want = append(want, r[n])
	}
	diff(t, "listed records", want, listDecisions(t, s, f.pid, thauth.DecisionFilter{}))

	// Paging with the cursor of the last record visits every record once.
	var paged []string
	var page thauth.DecisionFilter
	page.Limit = 3
	for range 10 {
		got := listDecisions(t, s, f.pid, page)
		paged = append(paged, decisionIDs(got)...)
		if len(got) < page.Limit {
			break
		}
		last := got[len(got)-1]
		page.Before = &thauth.DecisionCursor{At: last.At, ID: last.ID}
	}
	wantIDs := []string{}
	for _, n := range everything {
		wantIDs = append(wantIDs, r[n].ID)
	}
	diff(t, "paged listing", wantIDs, paged)

	diff(t, "the other project's records", []string{qg.ID, q1.ID}, decisionIDs(listDecisions(t, s, g.pid, thauth.DecisionFilter{})))
	diff(t, "the other project's records, filtered", []string{qg.ID}, decisionIDs(listDecisions(t, s, g.pid, thauth.DecisionFilter{Subject: "bob"})))
	got, err := s.ListDecisions(ctx, newID(), thauth.DecisionFilter{})
	wantEmpty(t, "decisions of an unknown project", got, err)
}

func testDecisionLimits(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	f := newFixture(t, s)
	recs := make([]thauth.DecisionRecord, 1001)
	for i := range recs {
		recs[i] = thauth.DecisionRecord{ID: newID(), ProjectID: f.pid, At: at(time.Duration(i) * time.Millisecond), Subject: "user:a", Allowed: i%2 == 0}
	}
	must(t, s.AppendDecisions(ctx, recs))
	for _, limit := range []int{0, -5, 1001, 1 << 30} {
		got := listDecisions(t, s, f.pid, thauth.DecisionFilter{Limit: limit})
		if len(got) != 1000 || got[0].ID != recs[1000].ID || got[999].ID != recs[1].ID {
			t.Errorf("limit %d: %d records, want the newest 1000", limit, len(got))
		}
	}
	if got := listDecisions(t, s, f.pid, thauth.DecisionFilter{Limit: 1000}); len(got) != 1000 {
		t.Errorf("limit 1000: %d records, want 1000", len(got))
	}
}

func testDecisionPrune(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	f, g := newFixture(t, s), newFixture(t, s)
	ids := sortedIDs(6)
	// Oldest first: ids[0] and ids[1] tie on time (ids[0] goes first), across two projects.
	recs := []thauth.DecisionRecord{
		{ID: ids[1], ProjectID: f.pid, At: at(time.Second)},
		{ID: ids[0], ProjectID: g.pid, At: at(time.Second), Gap: 4},
		{ID: ids[2], ProjectID: g.pid, At: at(2 * time.Second), Allowed: true},
		{ID: ids[3], ProjectID: f.pid, At: at(3 * time.Second)},
		{ID: ids[4], ProjectID: f.pid, At: at(4 * time.Second)}, // at the cutoff: kept
		{ID: ids[5], ProjectID: g.pid, At: at(5 * time.Second)},
	}
	must(t, s.AppendDecisions(ctx, recs))
	remaining := func() []string {
		out := append(decisionIDs(listDecisions(t, s, f.pid, thauth.DecisionFilter{})),
			decisionIDs(listDecisions(t, s, g.pid, thauth.DecisionFilter{}))...)
		slices.Sort(out)
		return out
	}
	prune := func(limit, want int) {
		t.Helper()
		n, err := s.PruneDecisions(ctx, at(4*time.Second), limit)
		must(t, err)
		if n != want {
			t.Errorf("PruneDecisions(limit %d) = %d, want %d", limit, n, want)
		}
	}
	prune(0, 0)
	prune(-1, 0)
	diff(t, "after pruning nothing", ids, remaining())
	prune(1, 1)
	diff(t, "after pruning one: the oldest (ties by id)", ids[1:], remaining())
	prune(2, 2)
	diff(t, "after pruning two more", ids[3:], remaining())
	prune(2, 1) // less than limit: done
	diff(t, "after pruning everything before the cutoff", ids[4:], remaining())
	prune(2, 0)
}

func testSecurityEvents(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	f, g := newFixture(t, s), newFixture(t, s)
	ids := sortedIDs(2)
	ev := func(id, orgID, projectID string, when time.Time) thauth.SecurityEvent {
		return thauth.SecurityEvent{ID: id, OrganizationID: orgID, ProjectID: projectID, Kind: "key.invalid_burst",
			Severity: thauth.SeverityHigh, At: when, Title: "Many invalid keys from \"203.0.113.7\" 🎉",
			Evidence: `{"ip":"203.0.113.7","count":"57","note":"ü\"q\"\\"}`}
	}
	a := ev(newID(), f.org.ID, f.pid, rough(time.Second))
	b := ev(ids[0], f.org.ID, "", at(2*time.Second))
	c := ev(ids[1], f.org.ID, f.pid, at(2*time.Second)) // ties with b, higher id
	c.Severity, c.Kind, c.Evidence = thauth.SeverityCritical, "key.revoked_used", "{}"
	d := ev(newID(), f.org.ID, "", at(3*time.Second))
	d.Severity = thauth.SeverityLow
	install := ev(newID(), "", "", at(2*time.Second))
	install.Severity, install.Evidence = thauth.SeverityMedium, ""
	other := ev(newID(), g.org.ID, g.pid, at(4*time.Second))
	for _, e := range []*thauth.SecurityEvent{&a, &b, &c, &d, &install, &other} {
		must(t, s.AppendSecurityEvent(ctx, e))
	}
	if !a.At.Equal(stored(rough(time.Second))) || a.At.Location() != time.UTC {
		t.Errorf("AppendSecurityEvent left At = %v, want it normalized to %v", a.At, stored(rough(time.Second)))
	}
	dup := ev(a.ID, g.org.ID, "", base)
	wantCode(t, s.AppendSecurityEvent(ctx, &dup), thauth.EConflict)

	list := func(orgID string, before *thauth.DecisionCursor, limit int) []thauth.SecurityEvent {
		t.Helper()
		got, err := s.ListSecurityEvents(ctx, orgID, before, limit)
		must(t, err)
		return got
	}
	diff(t, "organization's events, newest first", []thauth.SecurityEvent{d, c, b, a}, list(f.org.ID, nil, 100))
	wantUTC(t, "At", list(f.org.ID, nil, 100)[3].At)
	diff(t, "limit", []thauth.SecurityEvent{d, c}, list(f.org.ID, nil, 2))
	diff(t, "after a cursor tied on time", []thauth.SecurityEvent{b, a}, list(f.org.ID, &thauth.DecisionCursor{At: c.At, ID: c.ID}, 100))
	diff(t, "after the lower of a tie", []thauth.SecurityEvent{a}, list(f.org.ID, &thauth.DecisionCursor{At: b.At, ID: b.ID}, 100))
	diff(t, "limit 0 means 1000", []thauth.SecurityEvent{d, c, b, a}, list(f.org.ID, nil, 0))
	diff(t, "limit above 1000 means 1000", []thauth.SecurityEvent{d, c, b, a}, list(f.org.ID, nil, 5000))
	diff(t, "installation events", []thauth.SecurityEvent{install}, list("", nil, 10))
	diff(t, "other organization's events", []thauth.SecurityEvent{other}, list(g.org.ID, nil, 10))
	got, err := s.ListSecurityEvents(ctx, newID(), nil, 10)
	wantEmpty(t, "events of an unknown organization", got, err)
}

// endpoint returns a webhook endpoint (not stored) created at created.
func endpoint(url string, created time.Time) thauth.WebhookEndpoint {
	return thauth.WebhookEndpoint{ID: newID(), URL: url, Description: "Security \"alerts\" → ops", Events: []string{"security.*"},
		Secret: "v1.dk_0002.c2VjcmV0", CreatedAt: created}
}

// delivery returns a pending delivery (not stored) to endpointID, due at next.
func delivery(id, endpointID string, next *time.Time, created time.Time) thauth.WebhookDelivery {
	return thauth.WebhookDelivery{ID: id, EndpointID: endpointID, EventID: newID(), EventType: "security.key.revoked_used",
		Payload: []byte(`{"type":"security.key.revoked_used","data":{"k":"ü"}}` + "\x00\xff"), Status: thauth.DeliveryPending,
		NextAttemptAt: next, CreatedAt: created}
}

// storedDelivery is w as stored in organization orgID.
func storedDelivery(orgID string, w thauth.WebhookDelivery) thauth.WebhookDelivery {
	w.OrganizationID = orgID
	w.NextAttemptAt, w.LastAttemptAt, w.DeliveredAt = storedPtr(w.NextAttemptAt), storedPtr(w.LastAttemptAt), storedPtr(w.DeliveredAt)
	w.CreatedAt = stored(w.CreatedAt)
	return w
}

func deliveryIDs(ws []thauth.WebhookDelivery) []string {
	ids := []string{}
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	return ids
}

func getEndpoint(t *testing.T, s thauth.Store, orgID, id string) *thauth.WebhookEndpoint {
	t.Helper()
	ep, err := s.GetWebhookEndpoint(context.Background(), orgID, id)
	must(t, err)
	return ep
}

func testWebhookEndpoints(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("CreateGetUpdate", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		full := endpoint("https://hooks.example.com/thauth?x=1&y=\"2\"", rough(time.Minute))
		full.Events = []string{"security.*", "security.key.revoked_used", "*", "a,b \"quoted\" ü", "security.*"}
		full.PreviousSecret, full.PreviousSecretExpiresAt = "v1.dk_0001.b2xk", ptr(rough(25*time.Hour))
		full.DisabledAt, full.DisabledReason = ptr(rough(2*time.Hour)), "410 Gone\nfrom the receiver"
		full.OrganizationID = newID() // replaced by the organization given
		bare := endpoint("http://localhost:9000/", at(time.Minute))
		bare.Events, bare.Description = nil, ""
		input := full
		must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &full))
		must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &bare))
		want := input
		want.OrganizationID, want.CreatedAt = f.org.ID, stored(input.CreatedAt)
		want.PreviousSecretExpiresAt, want.DisabledAt = storedPtr(input.PreviousSecretExpiresAt), storedPtr(input.DisabledAt)
		diff(t, "Create's argument afterwards (organization set, times normalized)", want, full)
		got := getEndpoint(t, s, f.org.ID, full.ID)
		diff(t, "full endpoint", &want, got)
		wantUTC(t, "CreatedAt", got.CreatedAt)
		wantUTC(t, "DisabledAt", *got.DisabledAt)
		diff(t, "bare endpoint", &bare, getEndpoint(t, s, f.org.ID, bare.ID))
		if ev := getEndpoint(t, s, f.org.ID, bare.ID).Events; len(ev) != 0 {
			t.Errorf("Events of an endpoint created without = %q, want none", ev)
		}

		dup := endpoint("https://dup.example.com/", base)
		dup.ID = full.ID
		wantCode(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &dup), thauth.EConflict)
		unknownOrg := endpoint("https://x.example.com/", base)
		wantCode(t, s.CreateWebhookEndpoint(ctx, newID(), &unknownOrg), thauth.ENotFound)
		_, err := s.GetWebhookEndpoint(ctx, f.org.ID, newID())
		wantCode(t, err, thauth.ENotFound)

		// Update writes the mutable fields, clearing optional ones, and nothing else.
		upd := want
		upd.URL, upd.Description, upd.Events = "https://new.example.com/", "", []string{"security.org.suspended"}
		upd.Secret, upd.PreviousSecret, upd.PreviousSecretExpiresAt = "v1.dk_0002.bmV3", "", nil
		upd.DisabledAt, upd.DisabledReason = nil, ""
		sent := upd
		sent.CreatedAt, sent.OrganizationID = at(99*time.Hour), newID() // not written
		must(t, s.UpdateWebhookEndpoint(ctx, f.org.ID, &sent))
		diff(t, "updated endpoint", &upd, getEndpoint(t, s, f.org.ID, full.ID))
		upd.PreviousSecret, upd.PreviousSecretExpiresAt = "v1.dk_0002.cHJldg", ptr(rough(time.Hour))
		upd.DisabledAt, upd.DisabledReason, upd.Events = ptr(rough(3*time.Hour)), "too many failures", nil
		must(t, s.UpdateWebhookEndpoint(ctx, f.org.ID, &upd))
		if !upd.DisabledAt.Equal(stored(rough(3*time.Hour))) || upd.DisabledAt.Location() != time.UTC {
			t.Errorf("Update left DisabledAt = %v, want it normalized", upd.DisabledAt)
		}
		diff(t, "endpoint rotated and disabled", &upd, getEndpoint(t, s, f.org.ID, full.ID))
		missing := endpoint("https://missing.example.com/", base)
		wantCode(t, s.UpdateWebhookEndpoint(ctx, f.org.ID, &missing), thauth.ENotFound)
	})

	t.Run("ListDelete", func(t *testing.T) {
		s := open(t)
		f, g := newFixture(t, s), newFixture(t, s)
		eps, err := s.ListWebhookEndpoints(ctx, f.org.ID)
		wantEmpty(t, "endpoints of an organization without", eps, err)
		ids := sortedIDs(2)
		later := endpoint("https://later.example.com/", at(time.Hour))
		tieHigh := endpoint("https://b.example.com/", base)
		tieHigh.ID = ids[1]
		tieLow := endpoint("https://a.example.com/", base)
		tieLow.ID = ids[0]
		for _, ep := range []*thauth.WebhookEndpoint{&later, &tieHigh, &tieLow} {
			must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, ep))
		}
		theirs := endpoint("https://theirs.example.com/", base)
		must(t, s.CreateWebhookEndpoint(ctx, g.org.ID, &theirs))
		eps, err = s.ListWebhookEndpoints(ctx, f.org.ID)
		must(t, err)
		diff(t, "endpoints, oldest first (ties by id)", []thauth.WebhookEndpoint{tieLow, tieHigh, later}, eps)

		// Deleting an endpoint deletes its deliveries and their attempts, nothing else.
		must(t, s.EnqueueDeliveries(ctx, f.org.ID, []thauth.WebhookDelivery{
			delivery(newID(), tieLow.ID, ptr(base), base), delivery(newID(), later.ID, ptr(base), base),
		}))
		ds, err := s.ListDeliveries(ctx, f.org.ID, tieLow.ID, 0)
		must(t, err)
		d0 := ds[0]
		d0.Attempts, d0.Status = 1, thauth.DeliveryFailed
		must(t, s.UpdateDelivery(ctx, f.org.ID, &d0, &thauth.WebhookAttempt{Number: 1, At: base, StatusCode: 500}))
		must(t, s.DeleteWebhookEndpoint(ctx, f.org.ID, tieLow.ID))
		_, err = s.GetWebhookEndpoint(ctx, f.org.ID, tieLow.ID)
		wantCode(t, err, thauth.ENotFound)
		wantCode(t, s.DeleteWebhookEndpoint(ctx, f.org.ID, tieLow.ID), thauth.ENotFound)
		eps, err = s.ListWebhookEndpoints(ctx, f.org.ID)
		must(t, err)
		diff(t, "endpoints after a delete", []thauth.WebhookEndpoint{tieHigh, later}, eps)
		as, err := s.ListAttempts(ctx, f.org.ID, d0.ID)
		wantEmpty(t, "attempts of a deleted endpoint's delivery", as, err)
		ds, err = s.ListDeliveries(ctx, f.org.ID, "", 0)
		must(t, err)
		if len(ds) != 1 || ds[0].EndpointID != later.ID {
			t.Errorf("deliveries after deleting an endpoint = %v, want only the other endpoint's", deliveryIDs(ds))
		}
		eps, err = s.ListWebhookEndpoints(ctx, g.org.ID)
		must(t, err)
		diff(t, "other organization's endpoints", []thauth.WebhookEndpoint{theirs}, eps)
	})
}

func testWebhookDeliveries(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("EnqueueList", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		e1, e2 := endpoint("https://one.example.com/", base), endpoint("https://two.example.com/", base)
		must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &e1))
		must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &e2))
		ids := sortedIDs(4)
		a := delivery(ids[0], e1.ID, ptr(rough(time.Second)), rough(time.Second))
		b := delivery(ids[1], e2.ID, nil, at(2*time.Second))
		b.Payload, b.EventType = []byte{}, "security.test"
		c := delivery(ids[2], e1.ID, ptr(at(time.Minute)), at(2*time.Second)) // ties with b on time
		c.Status, c.Attempts, c.LastStatusCode, c.LastError = thauth.DeliveryFailed, 3, 503, "503 \"busy\"\n"
		c.LastAttemptAt, c.DeliveredAt = ptr(rough(time.Minute)), ptr(rough(2*time.Minute))
		d := delivery(ids[3], e2.ID, ptr(base), at(3*time.Second))
		batch := []thauth.WebhookDelivery{a, b, c, d}
		before := slices.Clone(batch)
		must(t, s.EnqueueDeliveries(ctx, f.org.ID, batch))
		diff(t, "EnqueueDeliveries' argument afterwards", before, batch)
		must(t, s.EnqueueDeliveries(ctx, f.org.ID, nil))

		want := func(ws ...thauth.WebhookDelivery) []thauth.WebhookDelivery {
			out := []thauth.WebhookDelivery{}
			for _, w := range ws {
				out = append(out, storedDelivery(f.org.ID, w))
			}
			return out
		}
		list := func(endpointID string, limit int) []thauth.WebhookDelivery {
			t.Helper()
			got, err := s.ListDeliveries(ctx, f.org.ID, endpointID, limit)
			must(t, err)
			return got
		}
		got := list("", 0)
		diff(t, "deliveries, newest first (ties by id)", want(d, c, b, a), got)
		for _, w := range got {
			wantUTC(t, "CreatedAt", w.CreatedAt)
		}
		diff(t, "limit", want(d, c), list("", 2))
		diff(t, "negative limit: every one", want(d, c, b, a), list("", -1))
		diff(t, "one endpoint's", want(c, a), list(e1.ID, 0))
		diff(t, "one endpoint's, limited", want(d), list(e2.ID, 1))
		diff(t, "unknown endpoint's", want(), list(newID(), 0))

		// A batch with an id taken or an endpoint that is not the organization's stores nothing.
		fresh := delivery(newID(), e1.ID, ptr(base), at(time.Hour))
		dup := delivery(a.ID, e1.ID, ptr(base), at(time.Hour))
		wantCode(t, s.EnqueueDeliveries(ctx, f.org.ID, []thauth.WebhookDelivery{fresh, dup}), thauth.EConflict)
		wantCode(t, s.EnqueueDeliveries(ctx, f.org.ID, []thauth.WebhookDelivery{fresh, delivery(newID(), newID(), nil, base)}), thauth.ENotFound)
		diff(t, "deliveries after failed batches", want(d, c, b, a), list("", 0))
	})

	t.Run("UpdateAttempts", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		ep := endpoint("https://one.example.com/", base)
		must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &ep))
		w := delivery(newID(), ep.ID, ptr(base), base)
		must(t, s.EnqueueDeliveries(ctx, f.org.ID, []thauth.WebhookDelivery{w}))
		get := func() thauth.WebhookDelivery {
			t.Helper()
			ds, err := s.ListDeliveries(ctx, f.org.ID, ep.ID, 0)
			must(t, err)
			if len(ds) != 1 {
				t.Fatalf("%d deliveries, want 1", len(ds))
			}
			return ds[0]
		}
		attempts := func() []thauth.WebhookAttempt {
			t.Helper()
			as, err := s.ListAttempts(ctx, f.org.ID, w.ID)
			must(t, err)
			return as
		}
		as, err := s.ListAttempts(ctx, f.org.ID, w.ID)
		wantEmpty(t, "attempts of a new delivery", as, err)

		// A failed attempt: state written, attempt appended.
		u := storedDelivery(f.org.ID, w)
		u.Attempts, u.NextAttemptAt, u.LastAttemptAt = 1, ptr(rough(5*time.Second)), ptr(rough(time.Second))
		u.LastStatusCode, u.LastError = 500, "500 Internal Server Error"
		sent := u
		sent.EventID, sent.EventType, sent.Payload, sent.CreatedAt, sent.EndpointID = "changed", "changed", []byte("changed"), at(time.Hour), newID() // not written
		a1 := thauth.WebhookAttempt{DeliveryID: "ignored", Number: 1, At: rough(time.Second), Duration: 1500 * time.Microsecond,
			StatusCode: 500, Error: "500 Internal Server Error", RetryAfter: 0}
		must(t, s.UpdateDelivery(ctx, f.org.ID, &sent, &a1))
		if a1.DeliveryID != w.ID {
			t.Errorf("UpdateDelivery left the attempt's DeliveryID = %q, want %q", a1.DeliveryID, w.ID)
		}
		want := u
		want.NextAttemptAt, want.LastAttemptAt = storedPtr(u.NextAttemptAt), storedPtr(u.LastAttemptAt)
		diff(t, "delivery after a failed attempt", want, get())
		wantA1 := thauth.WebhookAttempt{DeliveryID: w.ID, Number: 1, At: stored(rough(time.Second)), Duration: time.Millisecond,
			StatusCode: 500, Error: "500 Internal Server Error"}
		diff(t, "attempts (durations in whole milliseconds)", []thauth.WebhookAttempt{wantA1}, attempts())
		wantUTC(t, "attempt At", attempts()[0].At)

		// A timeout with Retry-After, then a state change without an attempt.
		u = want
		u.Attempts, u.LastError, u.LastStatusCode = 2, "timeout \"after\" 10s", 0
		a2 := thauth.WebhookAttempt{Number: 2, At: at(10 * time.Second), Duration: 10*time.Second + 999*time.Microsecond,
			Error: "timeout", RetryAfter: 120*time.Second + 1}
		must(t, s.UpdateDelivery(ctx, f.org.ID, &u, &a2))
		u.NextAttemptAt = nil // parked
		must(t, s.UpdateDelivery(ctx, f.org.ID, &u, nil))
		diff(t, "delivery parked", u, get())
		wantA2 := thauth.WebhookAttempt{DeliveryID: w.ID, Number: 2, At: at(10 * time.Second), Duration: 10 * time.Second,
			Error: "timeout", RetryAfter: 120 * time.Second}
		diff(t, "attempts in order", []thauth.WebhookAttempt{wantA1, wantA2}, attempts())

		// A repeated attempt number is EConflict and writes nothing, not even the state.
		bad := u
		bad.Status, bad.Attempts = thauth.DeliveryDelivered, 3
		wantCode(t, s.UpdateDelivery(ctx, f.org.ID, &bad, &thauth.WebhookAttempt{Number: 2, At: base}), thauth.EConflict)
		diff(t, "delivery after a conflicting attempt", u, get())
		diff(t, "attempts after a conflicting attempt", []thauth.WebhookAttempt{wantA1, wantA2}, attempts())

		// Delivered.
		u.Status, u.Attempts, u.NextAttemptAt, u.LastStatusCode, u.LastError = thauth.DeliveryDelivered, 3, nil, 204, ""
		u.LastAttemptAt, u.DeliveredAt = ptr(at(3*time.Hour)), ptr(at(3*time.Hour))
		a3 := thauth.WebhookAttempt{Number: 3, At: at(3 * time.Hour), Duration: 42 * time.Millisecond, StatusCode: 204}
		must(t, s.UpdateDelivery(ctx, f.org.ID, &u, &a3))
		diff(t, "delivered", u, get())
		if n := len(attempts()); n != 3 {
			t.Errorf("%d attempts, want 3", n)
		}

		missing := delivery(newID(), ep.ID, nil, base)
		wantCode(t, s.UpdateDelivery(ctx, f.org.ID, &missing, &thauth.WebhookAttempt{Number: 1, At: base}), thauth.ENotFound)
		as, err = s.ListAttempts(ctx, f.org.ID, missing.ID)
		wantEmpty(t, "attempts of a missing delivery", as, err)
	})
}

func testWebhookClaims(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("Lease", func(t *testing.T) {
		s := open(t)
		f, g := newFixture(t, s), newFixture(t, s)
		ws, err := s.ClaimDeliveries(ctx, base, at(time.Minute), 10)
		wantEmpty(t, "claim with no deliveries", ws, err)
		e1, e2 := endpoint("https://one.example.com/", base), endpoint("https://two.example.com/", base)
		must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &e1))
		must(t, s.CreateWebhookEndpoint(ctx, g.org.ID, &e2))
		ids := sortedIDs(8)
		early := delivery(ids[7], e1.ID, ptr(at(-5*time.Minute)), at(-time.Hour)) // due first, highest id
		a := delivery(ids[0], e1.ID, ptr(at(-3*time.Minute)), at(-time.Hour))
		b := delivery(ids[1], e2.ID, ptr(at(-2*time.Minute)), at(-time.Hour)) // another organization
		c := delivery(ids[2], e1.ID, ptr(at(-2*time.Minute)), at(-time.Hour))
		d := delivery(ids[3], e1.ID, ptr(at(time.Minute)), at(-time.Hour)) // not due yet
		e := delivery(ids[4], e1.ID, ptr(at(-10*time.Minute)), at(-time.Hour))
		e.Status = thauth.DeliveryDelivered // never claimed
		fl := delivery(ids[5], e2.ID, ptr(at(-10*time.Minute)), at(-time.Hour))
		fl.Status = thauth.DeliveryFailed // never claimed
		// No next attempt: never claimed.
		parked := delivery(ids[6], e1.ID, nil, at(-time.Hour))
		must(t, s.EnqueueDeliveries(ctx, f.org.ID, []thauth.WebhookDelivery{a, c, d, e, parked, early}))
		must(t, s.EnqueueDeliveries(ctx, g.org.ID, []thauth.WebhookDelivery{b, fl}))

		lease := rough(5 * time.Minute)
		leased := func(orgID string, w thauth.WebhookDelivery) thauth.WebhookDelivery {
			w = storedDelivery(orgID, w)
			w.NextAttemptAt = ptr(stored(lease))
			return w
		}
		ws, err = s.ClaimDeliveries(ctx, base, lease, 0)
		wantEmpty(t, "claim of 0", ws, err)
		ws, err = s.ClaimDeliveries(ctx, base, lease, 3)
		must(t, err)
		diff(t, "first claim: oldest due first, across organizations, as stored after the claim",
			[]thauth.WebhookDelivery{leased(f.org.ID, early), leased(f.org.ID, a), leased(g.org.ID, b)}, ws)
		wantUTC(t, "NextAttemptAt", *ws[0].NextAttemptAt)
		all, err := s.ListDeliveries(ctx, f.org.ID, "", 0)
		must(t, err)
		for _, w := range all {
			if w.ID == a.ID {
				diff(t, "claimed delivery as stored", leased(f.org.ID, a), w)
			}
		}
		ws, err = s.ClaimDeliveries(ctx, base, lease, 10)
		must(t, err)
		diff(t, "second claim: only the unclaimed due one", []string{c.ID}, deliveryIDs(ws))
		ws, err = s.ClaimDeliveries(ctx, stored(lease).Add(-time.Microsecond), lease, 10)
		must(t, err)
		diff(t, "claim before the lease ends", []string{d.ID}, deliveryIDs(ws))
		ws, err = s.ClaimDeliveries(ctx, lease, at(time.Hour), 10)
		must(t, err)
		diff(t, "claim when the lease ends (ties by id)", []string{a.ID, b.ID, c.ID, d.ID, early.ID}, deliveryIDs(ws))
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		ep := endpoint("https://one.example.com/", base)
		must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &ep))
		const total, claimers, limit = 30, 6, 5
		var ds []thauth.WebhookDelivery
		for i := range total {
			ds = append(ds, delivery(newID(), ep.ID, ptr(at(-time.Duration(i)*time.Second)), base))
		}
		must(t, s.EnqueueDeliveries(ctx, f.org.ID, ds))
		var mu sync.Mutex
		seen := map[string]int{}
		concurrently(claimers, func(int) {
			ws, err := s.ClaimDeliveries(ctx, base, at(time.Minute), limit)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, w := range ws {
				seen[w.ID]++
			}
		})
		if len(seen) != total {
			t.Errorf("claimed %d distinct deliveries, want %d", len(seen), total)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("delivery %s claimed %d times", id, n)
			}
		}
	})
}

// testWebhookIsolation addresses one organization's endpoint, delivery and attempts with
// another organization's id: every method answers ENotFound or nothing and changes nothing.
func testWebhookIsolation(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	f, g := newFixture(t, s), newFixture(t, s)
	ep := endpoint("https://victim.example.com/", base)
	must(t, s.CreateWebhookEndpoint(ctx, f.org.ID, &ep))
	w := delivery(newID(), ep.ID, ptr(at(time.Hour)), base)
	must(t, s.EnqueueDeliveries(ctx, f.org.ID, []thauth.WebhookDelivery{w}))
	first, err := s.ListDeliveries(ctx, f.org.ID, "", 0)
	must(t, err)
	d := first[0]
	d.Attempts = 1
	must(t, s.UpdateDelivery(ctx, f.org.ID, &d, &thauth.WebhookAttempt{Number: 1, At: base, StatusCode: 500}))
	theirs := endpoint("https://attacker.example.com/", base)
	must(t, s.CreateWebhookEndpoint(ctx, g.org.ID, &theirs))

	type webhookState struct {
		Endpoints  []thauth.WebhookEndpoint
		Deliveries []thauth.WebhookDelivery
		Attempts   []thauth.WebhookAttempt
	}
	snap := func() webhookState {
		t.Helper()
		var st webhookState
		var err error
		st.Endpoints, err = s.ListWebhookEndpoints(ctx, f.org.ID)
		must(t, err)
		st.Deliveries, err = s.ListDeliveries(ctx, f.org.ID, "", 0)
		must(t, err)
		st.Attempts, err = s.ListAttempts(ctx, f.org.ID, w.ID)
		must(t, err)
		return st
	}
	before := snap()

	_, err = s.GetWebhookEndpoint(ctx, g.org.ID, ep.ID)
	wantCode(t, err, thauth.ENotFound)
	hijack := ep
	hijack.URL, hijack.Secret = "https://attacker.example.com/", "v1.dk_0002.bWluZQ"
	wantCode(t, s.UpdateWebhookEndpoint(ctx, g.org.ID, &hijack), thauth.ENotFound)
	wantCode(t, s.DeleteWebhookEndpoint(ctx, g.org.ID, ep.ID), thauth.ENotFound)
	wantCode(t, s.EnqueueDeliveries(ctx, g.org.ID, []thauth.WebhookDelivery{delivery(newID(), ep.ID, ptr(base), base)}), thauth.ENotFound)
	upd := d
	upd.Status, upd.NextAttemptAt = thauth.DeliveryPending, ptr(base)
	wantCode(t, s.UpdateDelivery(ctx, g.org.ID, &upd, &thauth.WebhookAttempt{Number: 2, At: base}), thauth.ENotFound)
	wantCode(t, s.UpdateDelivery(ctx, g.org.ID, &upd, nil), thauth.ENotFound)
	ds, err := s.ListDeliveries(ctx, g.org.ID, ep.ID, 0)
	wantNotFoundOrEmpty(t, err, len(ds))
	ds, err = s.ListDeliveries(ctx, g.org.ID, "", 0)
	wantNotFoundOrEmpty(t, err, len(ds))
	as, err := s.ListAttempts(ctx, g.org.ID, w.ID)
	wantNotFoundOrEmpty(t, err, len(as))
	eps, err := s.ListWebhookEndpoints(ctx, g.org.ID)
	must(t, err)
	diff(t, "the other organization's endpoints", []thauth.WebhookEndpoint{theirs}, eps)

	diff(t, "victim's webhooks after the other organization's calls", before, snap())
}

func testIncidents(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("CRUD", func(t *testing.T) {
		s := open(t)
		list, err := s.ListIncidents(ctx)
		wantEmpty(t, "incidents of an empty store", list, err)
		ids := sortedIDs(2)
		open1 := thauth.Incident{ID: newID(), Title: "Leaked key \"shop\" 🎉", Status: "open", CreatedAt: rough(time.Minute), CreatedBy: "acct:ops"}
		tieLow := thauth.Incident{ID: ids[0], Title: "A", Status: "open", CreatedAt: at(time.Hour), CreatedBy: "root"}
		tieHigh := thauth.Incident{ID: ids[1], Title: "B", Status: "closed", CreatedAt: at(time.Hour), CreatedBy: "root",
			ClosedAt: ptr(rough(2 * time.Hour))}
		for _, inc := range []*thauth.Incident{&open1, &tieLow, &tieHigh} {
			must(t, s.CreateIncident(ctx, inc))
		}
		if !open1.CreatedAt.Equal(stored(rough(time.Minute))) || open1.CreatedAt.Location() != time.UTC {
			t.Errorf("CreateIncident left CreatedAt = %v, want it normalized", open1.CreatedAt)
		}
		got, err := s.GetIncident(ctx, tieHigh.ID)
		must(t, err)
		diff(t, "closed incident", &tieHigh, got)
		wantUTC(t, "ClosedAt", *got.ClosedAt)
		list, err = s.ListIncidents(ctx)
		must(t, err)
		diff(t, "incidents, newest first (ties by id)", []thauth.Incident{tieHigh, tieLow, open1}, list)

		dup := thauth.Incident{ID: open1.ID, Title: "x", Status: "open", CreatedAt: base, CreatedBy: "x"}
		wantCode(t, s.CreateIncident(ctx, &dup), thauth.EConflict)
		_, err = s.GetIncident(ctx, newID())
		wantCode(t, err, thauth.ENotFound)

		upd := open1
		upd.Title, upd.Status, upd.ClosedAt = "Leaked key (resolved)", "closed", ptr(rough(3*time.Hour))
		sent := upd
		sent.CreatedAt, sent.CreatedBy = at(99*time.Hour), "changed" // not written
		must(t, s.UpdateIncident(ctx, &sent))
		upd.ClosedAt = storedPtr(upd.ClosedAt)
		got, err = s.GetIncident(ctx, open1.ID)
		must(t, err)
		diff(t, "updated incident", &upd, got)
		upd.Status, upd.ClosedAt = "open", nil // reopened
		must(t, s.UpdateIncident(ctx, &upd))
		got, err = s.GetIncident(ctx, open1.ID)
		must(t, err)
		diff(t, "reopened incident", &upd, got)
		wantCode(t, s.UpdateIncident(ctx, &thauth.Incident{ID: newID(), Title: "x", Status: "open"}), thauth.ENotFound)
	})

	t.Run("Timeline", func(t *testing.T) {
		s := open(t)
		inc := thauth.Incident{ID: newID(), Title: "t", Status: "open", CreatedAt: base, CreatedBy: "root"}
		other := thauth.Incident{ID: newID(), Title: "u", Status: "open", CreatedAt: base, CreatedBy: "root"}
		must(t, s.CreateIncident(ctx, &inc))
		must(t, s.CreateIncident(ctx, &other))
		evs, err := s.ListIncidentEvents(ctx, inc.ID)
		wantEmpty(t, "timeline of a new incident", evs, err)
		var want []thauth.IncidentEvent
		for i, kind := range []string{"opened", "org.suspended", "note"} {
			ev := thauth.IncidentEvent{IncidentID: inc.ID, Seq: 99, At: rough(time.Duration(i) * time.Minute), Actor: "acct:ops",
				Kind: kind, Detail: fmt.Sprintf(`{"n":"%d","text":"ü\"q\""}`, i)}
			must(t, s.AppendIncidentEvent(ctx, &ev))
			if ev.Seq != int64(i+1) {
				t.Errorf("event %d: Seq = %d, want %d", i, ev.Seq, i+1)
			}
			wantUTC(t, "At after append", ev.At)
			want = append(want, ev)
		}
		o := thauth.IncidentEvent{IncidentID: other.ID, At: base, Actor: "root", Kind: "opened", Detail: "{}"}
		must(t, s.AppendIncidentEvent(ctx, &o))
		if o.Seq != 1 {
			t.Errorf("first event of another incident: Seq = %d, want 1", o.Seq)
		}
		evs, err = s.ListIncidentEvents(ctx, inc.ID)
		must(t, err)
		diff(t, "timeline", want, evs)
		for i := range want {
			if !evs[i].At.Equal(stored(rough(time.Duration(i) * time.Minute))) {
				t.Errorf("event %d: At = %v, want %v", i, evs[i].At, stored(rough(time.Duration(i)*time.Minute)))
			}
		}
		evs, err = s.ListIncidentEvents(ctx, other.ID)
		must(t, err)
		diff(t, "other incident's timeline", []thauth.IncidentEvent{o}, evs)
		wantCode(t, s.AppendIncidentEvent(ctx, &thauth.IncidentEvent{IncidentID: newID(), At: base, Actor: "x", Kind: "note", Detail: "{}"}),
			thauth.ENotFound)
		evs, err = s.ListIncidentEvents(ctx, newID())
		wantEmpty(t, "timeline of an unknown incident", evs, err)
	})

	t.Run("ConcurrentAppends", func(t *testing.T) {
		s := open(t)
		incs := []thauth.Incident{
			{ID: newID(), Title: "a", Status: "open", CreatedAt: base, CreatedBy: "root"},
			{ID: newID(), Title: "b", Status: "open", CreatedAt: base, CreatedBy: "root"},
		}
		for i := range incs {
			must(t, s.CreateIncident(ctx, &incs[i]))
		}
		const goroutines, each = 8, 5
		var mu sync.Mutex
		got := map[string][]int64{}
		concurrently(goroutines, func(g int) {
			for j := range each {
				inc := incs[(g+j)%len(incs)]
				ev := thauth.IncidentEvent{IncidentID: inc.ID, At: base, Actor: fmt.Sprint("worker-", g), Kind: "note", Detail: "{}"}
				if err := s.AppendIncidentEvent(ctx, &ev); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[inc.ID] = append(got[inc.ID], ev.Seq)
				mu.Unlock()
			}
		})
		total := 0
		for _, inc := range incs {
			seqs := got[inc.ID]
			slices.Sort(seqs)
			total += len(seqs)
			evs, err := s.ListIncidentEvents(ctx, inc.ID)
			must(t, err)
			var listed []int64
			for i, ev := range evs {
				listed = append(listed, ev.Seq)
				if ev.Seq != int64(i+1) {
					t.Errorf("incident %s: event %d has Seq %d, want %d (gap-free)", inc.ID, i, ev.Seq, i+1)
				}
			}
			diff(t, "Seqs returned by the appends", listed, seqs)
		}
		if total != goroutines*each {
			t.Errorf("%d events appended, want %d", total, goroutines*each)
		}
	})
}

func testSuspension(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	ids := sortedIDs(2)
	a := thauth.Organization{ID: ids[0], Name: "A", CreatedAt: base}
	b := thauth.Organization{ID: ids[1], Name: "B", CreatedAt: base}
	must(t, s.CreateOrganization(ctx, &a))
	must(t, s.CreateOrganization(ctx, &b))
	get := func(id string) *thauth.Organization {
		t.Helper()
		o, err := s.GetOrganization(ctx, id)
		must(t, err)
		return o
	}
	diff(t, "organization never suspended", &a, get(a.ID))

	when := rough(time.Hour)
	must(t, s.SetOrganizationSuspension(ctx, a.ID, &when, "Abuse: \"credential stuffing\" ü\nticket 42"))
	want := a
	want.SuspendedAt, want.SuspendedReason = ptr(stored(when)), "Abuse: \"credential stuffing\" ü\nticket 42"
	got := get(a.ID)
	diff(t, "suspended organization", &want, got)
	wantUTC(t, "SuspendedAt", *got.SuspendedAt)
	list, err := s.ListOrganizations(ctx)
	must(t, err)
	diff(t, "ListOrganizations", []thauth.Organization{want, b}, list)
	diff(t, "other organization", &b, get(b.ID))

	// Suspending again moves the time and reason; reinstating clears both.
	must(t, s.SetOrganizationSuspension(ctx, a.ID, ptr(at(2*time.Hour)), "again"))
	want.SuspendedAt, want.SuspendedReason = ptr(at(2*time.Hour)), "again"
	diff(t, "suspended again", &want, get(a.ID))
	must(t, s.SetOrganizationSuspension(ctx, a.ID, nil, "ignored when reinstating"))
	diff(t, "reinstated organization", &a, get(a.ID))
	list, err = s.ListOrganizations(ctx)
	must(t, err)
	diff(t, "ListOrganizations after reinstating", []thauth.Organization{a, b}, list)

	// UpdateOrganization leaves the suspension alone; CreateOrganization stores one.
	must(t, s.SetOrganizationSuspension(ctx, b.ID, ptr(base), "r"))
	upd := b
	upd.Name = "B2"
	must(t, s.UpdateOrganization(ctx, &upd))
	wantB := upd
	wantB.SuspendedAt, wantB.SuspendedReason = ptr(base), "r"
	diff(t, "suspended organization after UpdateOrganization", &wantB, get(b.ID))
	c := thauth.Organization{ID: newID(), Name: "C", CreatedAt: at(time.Hour), SuspendedAt: ptr(rough(time.Minute)), SuspendedReason: "born suspended"}
	must(t, s.CreateOrganization(ctx, &c))
	diff(t, "organization created suspended", &thauth.Organization{ID: c.ID, Name: "C", CreatedAt: at(time.Hour),
		SuspendedAt: ptr(stored(rough(time.Minute))), SuspendedReason: "born suspended"}, get(c.ID))

	wantCode(t, s.SetOrganizationSuspension(ctx, newID(), ptr(base), "x"), thauth.ENotFound)
	wantCode(t, s.SetOrganizationSuspension(ctx, newID(), nil, ""), thauth.ENotFound)
}

func testPruneAudit(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	org := newID()
	// Installation chain at 1, 3, 5 s; organization chain at 2, 4 s.
	for i := 1; i <= 5; i++ {
		chain := ""
		if i%2 == 0 {
			chain = org
		}
		e := auditEntry(chain, "acct", "auth.signin", at(time.Duration(i)*time.Second))
		must(t, s.AppendAudit(ctx, &e))
	}
	seqs := func(chain string) []int64 {
		var out []int64
		for _, e := range scanChain(t, s, chain) {
			out = append(out, e.Seq)
		}
		return out
	}
	lastHash := func(chain string) []byte {
		es := scanChain(t, s, chain)
		return es[len(es)-1].Hash
	}
	orgHead := lastHash(org)
	prune := func(before time.Time, limit, want int) {
		t.Helper()
		n, err := s.PruneAudit(ctx, before, limit)
		must(t, err)
		if n != want {
			t.Errorf("PruneAudit(%v, %d) = %d, want %d", before.Sub(base), limit, n, want)
		}
	}
	prune(at(5*time.Second), 0, 0)
	prune(at(5*time.Second), -1, 0)
	prune(at(5*time.Second), 2, 2) // the entries at 1 s and 2 s
	diff(t, "installation chain", []int64{2, 3}, seqs(""))
	diff(t, "organization chain", []int64{2}, seqs(org))
	prune(at(5*time.Second), 10, 2) // 3 s and 4 s; 5 s is not before the cutoff
	diff(t, "installation chain", []int64{3}, seqs(""))
	diff(t, "organization chain", []int64{}, seqs(org))
	prune(at(5*time.Second), 10, 0)

	// The heads stay: the emptied chain is still listed and goes on where it was.
	chains, err := s.AuditChains(ctx)
	must(t, err)
	want := []string{"", org}
	slices.Sort(want)
	diff(t, "AuditChains after pruning", want, chains)
	e := auditEntry(org, "acct", "member.added", at(time.Hour))
	must(t, s.AppendAudit(ctx, &e))
	if e.Seq != 3 || string(e.PrevHash) != string(orgHead) {
		t.Errorf("append after pruning: Seq %d PrevHash %x, want Seq 3 after the pruned head %x", e.Seq, e.PrevHash, orgHead)
	}
}

// testProtectionTx checks that the protection methods of a Tx's Data commit and roll back
// with it.
func testProtectionTx(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	f := newFixture(t, s)
	ep := endpoint("https://one.example.com/", base)
	inc := thauth.Incident{ID: newID(), Title: "t", Status: "open", CreatedAt: base, CreatedBy: "root"}
	rec := thauth.DecisionRecord{ID: newID(), ProjectID: f.pid, At: base, Allowed: true}
	errAbort := errors.New("abort")
	work := func(ctx context.Context, tx thauth.Data) error {
		if err := tx.CreateWebhookEndpoint(ctx, f.org.ID, &ep); err != nil {
			return err
		}
		if err := tx.EnqueueDeliveries(ctx, f.org.ID, []thauth.WebhookDelivery{delivery(newID(), ep.ID, ptr(base), base)}); err != nil {
			return err
		}
		if err := tx.CreateIncident(ctx, &inc); err != nil {
			return err
		}
		if err := tx.AppendIncidentEvent(ctx, &thauth.IncidentEvent{IncidentID: inc.ID, At: base, Actor: "root", Kind: "opened", Detail: "{}"}); err != nil {
			return err
		}
		if err := tx.AppendDecisions(ctx, []thauth.DecisionRecord{rec}); err != nil {
			return err
		}
		if err := tx.SetOrganizationSuspension(ctx, f.org.ID, ptr(base), "tx"); err != nil {
			return err
		}
		return tx.AppendSecurityEvent(ctx, &thauth.SecurityEvent{ID: newID(), OrganizationID: f.org.ID, Kind: "k",
			Severity: thauth.SeverityLow, At: base, Title: "t", Evidence: "{}"})
	}
	count := func() []int {
		t.Helper()
		eps, err := s.ListWebhookEndpoints(ctx, f.org.ID)
		must(t, err)
		ds, err := s.ListDeliveries(ctx, f.org.ID, "", 0)
		must(t, err)
		incs, err := s.ListIncidents(ctx)
		must(t, err)
		evs, err := s.ListIncidentEvents(ctx, inc.ID)
		must(t, err)
		recs := listDecisions(t, s, f.pid, thauth.DecisionFilter{})
		ses, err := s.ListSecurityEvents(ctx, f.org.ID, nil, 10)
		must(t, err)
		o, err := s.GetOrganization(ctx, f.org.ID)
		must(t, err)
		suspended := 0
		if o.SuspendedAt != nil {
			suspended = 1
		}
		return []int{len(eps), len(ds), len(incs), len(evs), len(recs), len(ses), suspended}
	}
	err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := work(ctx, tx); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Tx = %v, want the closure's error", err)
	}
	diff(t, "rows after a rolled back Tx", []int{0, 0, 0, 0, 0, 0, 0}, count())
	must(t, s.Tx(ctx, work))
	diff(t, "rows after a committed Tx", []int{1, 1, 1, 1, 1, 1, 1}, count())
}
