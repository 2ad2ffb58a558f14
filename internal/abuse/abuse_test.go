package abuse

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is an injected clock that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// t0 is aligned to a DecisionStep, so decisions at t0 start a fresh step.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newClock() *clock { return &clock{t: t0} }

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

func newDetector(t *testing.T, o Options) (*Detector, *clock) {
	t.Helper()
	c := newClock()
	o.Now = c.Now
	return New(o), c
}

// drain returns the events waiting on the channel.
func drain(d *Detector) []Event {
	var out []Event
	for {
		select {
		case e := <-d.Events():
			out = append(out, e)
		default:
			return out
		}
	}
}

// expect checks that exactly the given kinds were emitted since the last call, in order.
func expect(t *testing.T, d *Detector, kinds ...string) []Event {
	t.Helper()
	got := drain(d)
	var gotKinds []string
	for _, e := range got {
		gotKinds = append(gotKinds, e.Kind)
	}
	if fmt.Sprint(gotKinds) != fmt.Sprint(kinds) {
		t.Fatalf("events %v, want %v", gotKinds, kinds)
	}
	return got
}

// TestThresholds checks that each counting rule fires on the observation that reaches its
// threshold and not on the one before, all observations at the same instant.
func TestThresholds(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		observe   func(d *Detector)
		kind      string
		severity  string
	}{
		{"invalid keys from one IP", DefaultInvalidKeyThreshold, func(d *Detector) { d.InvalidKey("203.0.113.7", "prj_1") }, KindInvalidKeys, SeverityMedium},
		{"401s against one project", DefaultAuthFailureThreshold, func(d *Detector) { d.Unauthorized("prj_1", "org_1") }, KindAuthFailures, SeverityMedium},
		{"denies, no baseline", DefaultSpikeMinDecisions, func(d *Detector) { d.Decision("prj_1", "org_1", false, false) }, KindDenySpike, SeverityMedium},
		{"errors, no baseline", DefaultSpikeMinErrors, func(d *Detector) { d.Decision("prj_1", "org_1", false, true) }, KindErrorSpike, SeverityHigh},
		{"revoked key", 1, func(d *Detector) { d.RevokedKeyUsed("key_1", "prj_1", "org_1", "198.51.100.1") }, KindRevokedKeyUsed, SeverityHigh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, c := newDetector(t, Options{})
			for range tt.threshold - 1 {
				tt.observe(d)
			}
			expect(t, d)
			tt.observe(d)
			ev := expect(t, d, tt.kind)[0]
			if ev.Severity != tt.severity || !ev.At.Equal(c.Now()) || ev.Title == "" {
				t.Fatalf("event %+v", ev)
			}
			if tt.kind != KindInvalidKeys && (ev.ProjectID != "prj_1" || ev.OrganizationID != "org_1") {
				t.Fatalf("event concerns %q/%q", ev.OrganizationID, ev.ProjectID)
			}
		})
	}
}

// TestWindowsSlide checks that observations older than the window no longer count.
func TestWindowsSlide(t *testing.T) {
	tests := []struct {
		name      string
		threshold int
		window    time.Duration
		observe   func(d *Detector)
		kind      string
	}{
		{"invalid keys", DefaultInvalidKeyThreshold, DefaultInvalidKeyWindow, func(d *Detector) { d.InvalidKey("203.0.113.7", "") }, KindInvalidKeys},
		{"401s", DefaultAuthFailureThreshold, DefaultAuthFailureWindow, func(d *Detector) { d.Unauthorized("prj_1", "org_1") }, KindAuthFailures},
	}
	for _, tt := range tests {
		t.Run(tt.name+" just inside", func(t *testing.T) {
			d, c := newDetector(t, Options{})
			tt.observe(d)
			c.Advance(tt.window - time.Nanosecond)
			for range tt.threshold - 1 {
				tt.observe(d)
			}
			expect(t, d, tt.kind)
		})
		t.Run(tt.name+" first one expired", func(t *testing.T) {
			d, c := newDetector(t, Options{})
			tt.observe(d)
			c.Advance(tt.window)
			for range tt.threshold - 1 {
				tt.observe(d)
			}
			expect(t, d)
			tt.observe(d) // the threshold again, all within the window
			expect(t, d, tt.kind)
		})
	}

	// Decisions: the window is the last six 10-second steps.
	deny := func(d *Detector) { d.Decision("prj_1", "org_1", false, false) }
	t.Run("decisions just inside", func(t *testing.T) {
		d, c := newDetector(t, Options{})
		for range DefaultSpikeMinDecisions - 1 {
			deny(d)
		}
		c.Advance(DecisionWindow - time.Nanosecond)
		deny(d)
		expect(t, d, KindDenySpike)
	})
	t.Run("decisions first step expired", func(t *testing.T) {
		d, c := newDetector(t, Options{SpikeFactor: 1e-9}) // ratios only: the expired denies are now baseline
		for range DefaultSpikeMinDecisions - 1 {
			deny(d)
		}
		c.Advance(DecisionWindow)
		deny(d)
		expect(t, d)
		for range DefaultSpikeMinDecisions - 2 {
			deny(d)
		}
		expect(t, d)
		deny(d)
		expect(t, d, KindDenySpike)
	})
}

// buildBaseline feeds one hour of steady traffic to prj_1, 4 decisions per step with deny
// denies and errs errors among them, then a minute of silence so the window is empty.
func buildBaseline(d *Detector, c *clock, denies, errs int) {
	for range int(time.Hour / DecisionStep) {
		for i := range 4 {
			d.Decision("prj_1", "org_1", i >= denies+errs, i < errs)
		}
		c.Advance(DecisionStep)
	}
	c.Advance(DecisionWindow)
}

func TestDenySpikeAgainstBaseline(t *testing.T) {
	d, c := newDetector(t, Options{})
	buildBaseline(d, c, 1, 0) // 25% denied
	expect(t, d)
	// The threshold is 3 × 25% = 75%: 25 allows then denies; at 74 denies the ratio is 74/99.
	for range 25 {
		d.Decision("prj_1", "org_1", true, false)
	}
	for range 74 {
		d.Decision("prj_1", "org_1", false, false)
	}
	expect(t, d)
	d.Decision("prj_1", "org_1", false, false) // 75/100
	ev := expect(t, d, KindDenySpike)[0]
	want := map[string]string{"decisions": "100", "count": "75", "ratio": "0.7500", "baseline_ratio": "0.2500", "window": "1m0s"}
	if fmt.Sprint(ev.Evidence) != fmt.Sprint(want) {
		t.Fatalf("evidence %v, want %v", ev.Evidence, want)
	}
}

func TestDenySpikeNeedsAbsoluteRatio(t *testing.T) {
	d, _ := newDetector(t, Options{})
	// No baseline: 3 × 0 is no bar, the 50% floor is. 25 allows, then 24 denies = 49%.
	for range 25 {
		d.Decision("prj_1", "org_1", true, false)
	}
	for range 24 {
		d.Decision("prj_1", "org_1", false, false)
	}
	expect(t, d)
	d.Decision("prj_1", "org_1", true, false) // 50 decisions, 48%
	expect(t, d)
	d.Decision("prj_1", "org_1", false, false) // 25 of 51: still under 50%
	expect(t, d)
	d.Decision("prj_1", "org_1", false, false) // 26 of 52 = 50%
	expect(t, d, KindDenySpike)
}

func TestErrorSpike(t *testing.T) {
	t.Run("ratio floor", func(t *testing.T) {
		d, _ := newDetector(t, Options{})
		for range 200 {
			d.Decision("prj_1", "org_1", true, false)
		}
		for range 10 {
			d.Decision("prj_1", "org_1", false, true) // 10 of 210 < 5%
		}
		expect(t, d)
		d.Decision("prj_1", "org_1", false, true) // 11 of 211 ≥ 5%
		expect(t, d, KindErrorSpike)
	})
	t.Run("count floor at exactly 5%", func(t *testing.T) {
		d, _ := newDetector(t, Options{})
		for range 190 {
			d.Decision("prj_1", "org_1", true, false)
		}
		for range 9 {
			d.Decision("prj_1", "org_1", false, true)
		}
		expect(t, d)
		d.Decision("prj_1", "org_1", false, true) // 10 of 200
		expect(t, d, KindErrorSpike)
	})
	t.Run("against baseline", func(t *testing.T) {
		d, c := newDetector(t, Options{})
		buildBaseline(d, c, 0, 1) // 25% errors: the bar is 75%
		for range 25 {
			d.Decision("prj_1", "org_1", true, false)
		}
		for range 74 {
			d.Decision("prj_1", "org_1", false, true)
		}
		expect(t, d)
		d.Decision("prj_1", "org_1", false, true)
		expect(t, d, KindErrorSpike)
	})
	t.Run("errors are not denies", func(t *testing.T) {
		d, _ := newDetector(t, Options{SpikeMinErrors: 1000})
		for range 100 {
			d.Decision("prj_1", "org_1", false, true)
		}
		expect(t, d)
	})
}

func TestCooldowns(t *testing.T) {
	t.Run("401 burst", func(t *testing.T) {
		d, c := newDetector(t, Options{})
		burst := func() {
			for range DefaultAuthFailureThreshold {
				d.Unauthorized("prj_1", "org_1")
			}
		}
		burst()
		expect(t, d, KindAuthFailures)
		c.Advance(DefaultAuthFailureCooldown - time.Nanosecond)
		burst()
		expect(t, d)
		c.Advance(time.Nanosecond)
		d.Unauthorized("prj_1", "org_1")
		expect(t, d, KindAuthFailures)
		d.Unauthorized("prj_2", "org_1") // another project has its own count
		expect(t, d)
	})
	t.Run("spikes", func(t *testing.T) {
		d, c := newDetector(t, Options{SpikeFactor: 1e-9}) // ratios only, so the history does not mask the spike
		spike := func() {
			for range DefaultSpikeMinDecisions {
				d.Decision("prj_1", "org_1", false, false)
			}
			for range DefaultSpikeMinErrors {
				d.Decision("prj_1", "org_1", false, true)
			}
		}
		spike()
		expect(t, d, KindDenySpike, KindErrorSpike)
		c.Advance(DefaultSpikeCooldown - time.Nanosecond)
		spike()
		expect(t, d)
		c.Advance(time.Nanosecond)
		d.Decision("prj_1", "org_1", false, false)
		d.Decision("prj_1", "org_1", false, true)
		expect(t, d, KindDenySpike, KindErrorSpike)
	})
	t.Run("revoked key", func(t *testing.T) {
		d, c := newDetector(t, Options{})
		d.RevokedKeyUsed("key_1", "prj_1", "org_1", "198.51.100.1")
		ev := expect(t, d, KindRevokedKeyUsed)[0]
		if ev.Evidence["key_id"] != "key_1" || ev.Evidence["ip"] != "198.51.100.1" {
			t.Fatalf("evidence %v", ev.Evidence)
		}
		c.Advance(DefaultRevokedKeyCooldown - time.Nanosecond)
		d.RevokedKeyUsed("key_1", "prj_1", "org_1", "198.51.100.1")
		d.RevokedKeyUsed("key_1", "prj_1", "org_1", "198.51.100.2")
		expect(t, d)
		d.RevokedKeyUsed("key_2", "prj_1", "org_1", "198.51.100.1")
		expect(t, d, KindRevokedKeyUsed)
		c.Advance(time.Nanosecond)
		d.RevokedKeyUsed("key_1", "prj_1", "org_1", "198.51.100.3")
		ev = expect(t, d, KindRevokedKeyUsed)[0]
		if ev.Evidence["uses_since_last_event"] != "2" || ev.Evidence["ip"] != "198.51.100.3" {
			t.Fatalf("evidence %v", ev.Evidence)
		}
	})
}

func TestIPBlock(t *testing.T) {
	d, c := newDetector(t, Options{})
	const ip = "203.0.113.7"
	if _, ok := d.Blocked(ip); ok {
		t.Fatal("blocked before anything happened")
	}
	for range DefaultInvalidKeyThreshold - 1 {
		d.InvalidKey(ip, "")
	}
	if _, ok := d.Blocked(ip); ok {
		t.Fatal("blocked one below the threshold")
	}
	d.InvalidKey(ip, "prj_1")
	ev := expect(t, d, KindInvalidKeys)[0]
	want := t0.Add(DefaultBlockDuration)
	if ev.Evidence["ip"] != ip || ev.Evidence["count"] != "20" || ev.Evidence["window"] != "1m0s" ||
		ev.Evidence["blocked_until"] != want.Format(time.RFC3339) || ev.ProjectID != "prj_1" {
		t.Fatalf("event %+v", ev)
	}
	until, ok := d.Blocked(ip)
	if !ok || !until.Equal(want) {
		t.Fatalf("Blocked = %s, %v; want %s", until, ok, want)
	}
	if _, ok := d.Blocked("203.0.113.8"); ok {
		t.Fatal("another IP is blocked")
	}
	// While blocked, more invalid keys neither fire nor extend the block.
	for range 100 {
		d.InvalidKey(ip, "")
	}
	expect(t, d)
	c.Set(want.Add(-time.Nanosecond))
	if _, ok := d.Blocked(ip); !ok {
		t.Fatal("block lifted early")
	}
	c.Set(want)
	if _, ok := d.Blocked(ip); ok {
		t.Fatal("block outlived its duration")
	}
	// Counting starts afresh after the block.
	for range DefaultInvalidKeyThreshold - 1 {
		d.InvalidKey(ip, "")
	}
	expect(t, d)
	d.InvalidKey(ip, "")
	expect(t, d, KindInvalidKeys)
	if !d.Unblock(ip) {
		t.Fatal("Unblock found no block")
	}
	if _, ok := d.Blocked(ip); ok {
		t.Fatal("still blocked after Unblock")
	}
	if d.Unblock(ip) {
		t.Fatal("Unblock twice")
	}
}

func TestIPv6CountsPerSlash64(t *testing.T) {
	d, _ := newDetector(t, Options{})
	for i := range DefaultInvalidKeyThreshold {
		d.InvalidKey(fmt.Sprintf("2001:db8:1:2::%x", i+1), "")
	}
	ev := expect(t, d, KindInvalidKeys)[0]
	if ev.Evidence["blocked"] != "2001:db8:1:2::/64" || ev.Evidence["ip"] != "2001:db8:1:2::14" {
		t.Fatalf("evidence %v", ev.Evidence)
	}
	for ip, want := range map[string]bool{
		"2001:db8:1:2:ffff::9": true,
		"2001:db8:1:3::1":      false,
		"2001:db8:1:2::1%eth0": true,
	} {
		if _, got := d.Blocked(ip); got != want {
			t.Errorf("Blocked(%s) = %v, want %v", ip, got, want)
		}
	}
	// IPv4-mapped addresses count as the IPv4 address.
	for range DefaultInvalidKeyThreshold {
		d.InvalidKey("::ffff:198.51.100.4", "")
	}
	expect(t, d, KindInvalidKeys)
	if _, ok := d.Blocked("198.51.100.4"); !ok {
		t.Fatal("the IPv4 address of a mapped address is not blocked")
	}
}

func TestSignInLockoutAndOperatorGrant(t *testing.T) {
	d, _ := newDetector(t, Options{})
	d.SignInLocked("acc_1", []string{"org_1", "org_2"}, "198.51.100.9")
	evs := expect(t, d, KindSignInLockout, KindSignInLockout)
	if evs[0].OrganizationID != "org_1" || evs[1].OrganizationID != "org_2" || evs[0].Severity != SeverityMedium ||
		evs[0].Evidence["account_id"] != "acc_1" || evs[0].Evidence["ip"] != "198.51.100.9" {
		t.Fatalf("events %+v", evs)
	}
	d.SignInLocked("acc_2", nil, "198.51.100.9")
	if ev := expect(t, d, KindSignInLockout)[0]; ev.OrganizationID != "" {
		t.Fatalf("event %+v", ev)
	}
	d.OperatorGranted("acc_3", "admin", "acc_1")
	ev := expect(t, d, KindOperatorGranted)[0]
	if ev.Severity != SeverityHigh || ev.Evidence["role"] != "admin" || ev.Evidence["granted_by"] != "acc_1" || ev.Evidence["account_id"] != "acc_3" {
		t.Fatalf("event %+v", ev)
	}
}

func TestEventsDroppedWhenFull(t *testing.T) {
	d, _ := newDetector(t, Options{EventBuffer: 1})
	d.OperatorGranted("a", "admin", "b")
	d.OperatorGranted("c", "admin", "b")
	d.OperatorGranted("e", "admin", "b")
	if got := d.Dropped(); got != 2 {
		t.Fatalf("Dropped = %d, want 2", got)
	}
	expect(t, d, KindOperatorGranted)
}

func TestMemoryIsBounded(t *testing.T) {
	const limit = 128 // 2 per shard
	d, c := newDetector(t, Options{MaxIPs: limit, MaxProjects: limit, MaxKeys: limit, EventBuffer: 1})
	// A blocked IP, then a flood of other addresses and projects.
	for range DefaultInvalidKeyThreshold {
		d.InvalidKey("203.0.113.7", "")
	}
	for i := range 20000 {
		c.Advance(time.Millisecond)
		ip := fmt.Sprintf("198.18.%d.%d", i/256, i%256)
		prj := fmt.Sprintf("prj_%d", i)
		d.InvalidKey(ip, prj)
		d.Unauthorized(prj, "org")
		d.Decision(prj, "org", true, false)
		d.RevokedKeyUsed(fmt.Sprintf("key_%d", i), prj, "org", ip)
	}
	for name, n := range map[string]int{"ips": d.ips.len(), "auth": d.auth.len(), "decisions": d.decisions.len(), "revoked": d.revoked.len()} {
		if n > limit {
			t.Errorf("%s table holds %d entries, cap %d", name, n, limit)
		}
	}
	// The block, which expires last, survived the eviction of plain counters.
	if _, ok := d.Blocked("203.0.113.7"); !ok {
		t.Error("the block was evicted by a flood of one-off addresses")
	}
	// An attacker-sized key is stored truncated.
	d.InvalidKey(string(make([]byte, 1<<20)), "")
	s := d.ips.shard(clampKey(string(make([]byte, 1<<20))))
	s.mu.Lock()
	for k := range s.m {
		if len(k) > maxKeyLen {
			t.Errorf("stored a %d-byte key", len(k))
		}
	}
	s.mu.Unlock()
}

func TestIdleEntriesAreSwept(t *testing.T) {
	d, c := newDetector(t, Options{})
	for i := range 5000 {
		d.Decision(fmt.Sprintf("old_%d", i), "org", true, false)
		d.InvalidKey(fmt.Sprintf("old_%d", i), "")
	}
	// Past every expiry (2 h for decisions, 1 min for invalid keys) and a sweep period.
	c.Advance(4*DefaultSpikeBaseline + time.Duration(sweepEvery))
	for i := range 5000 {
		d.Decision(fmt.Sprintf("new_%d", i), "org", true, false)
		d.InvalidKey(fmt.Sprintf("new_%d", i), "")
	}
	if n := d.decisions.len(); n != 5000 {
		t.Errorf("decision table holds %d entries, want the 5000 live ones", n)
	}
	if n := d.ips.len(); n != 5000 {
		t.Errorf("ip table holds %d entries, want the 5000 live ones", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	d, c := newDetector(t, Options{})
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 1000 {
				d.InvalidKey("203.0.113.7", "")                                 // shared: one block
				d.Decision("prj_shared", "org_1", false, false)                 // shared: one spike
				d.Decision(fmt.Sprintf("prj_%d_%d", w, i%10), "o", true, false) // spread
				d.Unauthorized("prj_shared", "org_1")                           // shared: one burst
				d.RevokedKeyUsed("key_shared", "prj_shared", "org_1", "ip")     // shared: one event
				d.Blocked("203.0.113.7")
				if i%100 == 0 {
					c.Advance(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	counts := map[string]int{}
	for _, e := range drain(d) {
		counts[e.Kind]++
	}
	want := map[string]int{KindInvalidKeys: 1, KindDenySpike: 1, KindAuthFailures: 1, KindRevokedKeyUsed: 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", counts, want)
	}
}

func TestDecisionDoesNotAllocate(t *testing.T) {
	d := New(Options{})
	d.Decision("prj_1", "org_1", true, false)
	if n := testing.AllocsPerRun(1000, func() { d.Decision("prj_1", "org_1", true, false) }); n != 0 {
		t.Fatalf("Decision allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() { d.DecisionAt(t0, "prj_1", "org_1", false, true) }); n != 0 {
		t.Fatalf("DecisionAt allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() { d.Blocked("203.0.113.7") }); n != 0 {
		t.Fatalf("Blocked allocates %v times per call", n)
	}
}

func BenchmarkDecision(b *testing.B) {
	d := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		d.Decision("prj_01J9Z3K7Q4", "org_01J9Z3K7Q4", true, false)
	}
}

// BenchmarkDecisionAt is the cost on the decision path, which passes the time it has read.
func BenchmarkDecisionAt(b *testing.B) {
	d := New(Options{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		d.DecisionAt(now, "prj_01J9Z3K7Q4", "org_01J9Z3K7Q4", true, false)
	}
}

// BenchmarkDecisionAtSpike measures a project whose window is past the minimum decisions
// with denies in it, so every call also evaluates the ratios.
func BenchmarkDecisionAtSpike(b *testing.B) {
	d := New(Options{SpikeMinDenyRatio: 0.99})
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.DecisionAt(now, "prj_01J9Z3K7Q4", "org_01J9Z3K7Q4", i%2 == 0, false)
		i++
	}
}

func BenchmarkDecisionAtParallel(b *testing.B) {
	d := New(Options{})
	projects := make([]string, 1000)
	for i := range projects {
		projects[i] = fmt.Sprintf("prj_%04d", i)
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			d.DecisionAt(now, projects[i%len(projects)], "org", i%7 != 0, false)
			i++
		}
	})
}

func BenchmarkDecisionParallel(b *testing.B) {
	d := New(Options{})
	projects := make([]string, 1000)
	for i := range projects {
		projects[i] = fmt.Sprintf("prj_%04d", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			d.Decision(projects[i%len(projects)], "org", i%7 != 0, false)
			i++
		}
	})
}

func BenchmarkBlocked(b *testing.B) {
	d := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		d.Blocked("203.0.113.7")
	}
}

func BenchmarkBlockedAtWithBlocks(b *testing.B) {
	d := New(Options{})
	for range DefaultInvalidKeyThreshold {
		d.InvalidKey("198.51.100.1", "")
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		d.BlockedAt(now, "203.0.113.7")
	}
}
