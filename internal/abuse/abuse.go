// Package abuse turns observations from the request paths — invalid keys, 401s, revoked keys,
// decisions, sign-in lockouts, operator grants — into security events with a kind, a severity,
// the organization concerned and the evidence, and keeps a short-lived block list of IP
// addresses that guess keys.
//
// # Rules
//
// Defaults; every threshold is an Options field with an exported default constant.
//
//	kind                  trigger (per key)                        threshold, window                        severity  cool-down / action
//	invalid_keys_from_ip  InvalidKey, per client IP (IPv6: /64)    ≥ 20 in 1 min (sliding)                  medium    IP blocked 15 min; counting restarts after the block
//	auth_failures_burst   Unauthorized (401), per project          ≥ 100 in 5 min (sliding)                 medium    once per project per 15 min
//	revoked_key_used      RevokedKeyUsed, per key                  every use                                high      once per key per hour; later uses counted as evidence
//	deny_spike            Decision, per project                    last minute ≥ 50 decisions, deny ratio   medium    once per project per 15 min
//	                                                               ≥ 0.5 and ≥ 3 × the 30-min baseline
//	error_spike           Decision, per project                    last minute ≥ 10 errors, error ratio     high      once per project per 15 min
//	                                                               ≥ 0.05 and ≥ 3 × the 30-min baseline
//	signin_lockout        SignInLocked, per account                every lockout                            medium    one event per organization of the account
//	operator_granted      OperatorGranted                          every grant                              high      —
//
// "Sliding" windows are exact: a ring of the last N observation times per key, so a rule fires
// on the N-th observation within the window and never on the (N-1)-th. The decision window is
// the last minute in six 10-second steps (the current step partial). The baseline is an
// exponentially weighted average of the project's decisions older than that window, with a
// 30-minute time constant, weighted by volume (ratio = weighted denies / weighted decisions);
// a project with no history has a baseline of 0, so only the absolute ratios apply. A decision
// is an error when isError is set (it then does not count as a deny). A sustained change
// becomes the baseline: a spike that lasts past its cool-down fires again only if it is still
// SpikeFactor times what the baseline has meanwhile become.
//
// # Cost and memory
//
// Observations are safe for concurrent use, never block on I/O, and cost O(1) amortized:
// a hash, a shard mutex, a map lookup. Decision does not allocate once a project is known.
// Events are delivered on a buffered channel (Events); when it is full an event is dropped
// and counted (Dropped), never waited for.
//
// Per-key state lives in sharded maps, each bounded (Options.MaxIPs, MaxProjects, MaxKeys,
// rounded up to a multiple of 64). An entry expires when it can no longer contribute to a rule
// (its window, block or cool-down is over; decision baselines after 4 time constants, 2 h);
// expired entries are swept once a minute, and a full shard evicts the entry expiring soonest
// among 8 sampled, so blocks outlive plain counters. Worst case with the defaults, measured
// with every table full: IPs 32768 × ~300 B ≈ 10 MB; 401 counters 16384 × ~1 KB ≈ 17 MB (a
// ring of 100 times each; only projects that exist and are receiving 401s have one); decision
// state 16384 × ~260 B ≈ 4 MB; revoked keys 16384 × ~100 B ≈ 2 MB. Go maps keep their peak
// size, so that is also the steady state after a flood. Evicted state only means a rule may
// fire later (lost counts or baseline) or earlier (lost cool-down) than it would have.
//
// # Threat model
//
// The detector is fed attacker-influenced strings (client IPs, ids derived from invalid keys):
// keys are truncated to 128 bytes and copied, tables are capped, and the work per call is
// constant, so an attacker can neither exhaust memory nor slow the request path through it.
// The block list is per node and in memory; it is a brake on key guessing from one address,
// not a defence against distributed guessing, which the rate limiter and key entropy handle.
// Evidence never contains a secret: keys are identified by their id, never their value.
package abuse

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Event kinds.
const (
	KindInvalidKeys     = "invalid_keys_from_ip"
	KindAuthFailures    = "auth_failures_burst"
	KindRevokedKeyUsed  = "revoked_key_used"
	KindDenySpike       = "deny_spike"
	KindErrorSpike      = "error_spike"
	KindSignInLockout   = "signin_lockout"
	KindOperatorGranted = "operator_granted"
)

// Severities, from least to most urgent.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Event is a security event: what happened (Kind, Title), how urgent it is, when, which
// organization and project it concerns (empty when unknown, as for guessed keys, or
// installation-wide, as for operator grants) and the evidence.
type Event struct {
	Kind           string
	Severity       string
	At             time.Time
	OrganizationID string
	ProjectID      string
	Title          string
	// Evidence holds the facts behind the event, e.g. ip, count, window, key_id. Never a
	// secret.
	Evidence map[string]string
}

// Default thresholds (see the package comment for the table).
const (
	DefaultInvalidKeyThreshold = 20
	DefaultInvalidKeyWindow    = time.Minute
	DefaultBlockDuration       = 15 * time.Minute

	DefaultAuthFailureThreshold = 100
	DefaultAuthFailureWindow    = 5 * time.Minute
	DefaultAuthFailureCooldown  = 15 * time.Minute

	DefaultRevokedKeyCooldown = time.Hour

	DefaultSpikeMinDecisions  = 50
	DefaultSpikeMinDenyRatio  = 0.5
	DefaultSpikeMinErrors     = 10
	DefaultSpikeMinErrorRatio = 0.05
	DefaultSpikeFactor        = 3.0
	DefaultSpikeBaseline      = 30 * time.Minute
	DefaultSpikeCooldown      = 15 * time.Minute

	DefaultMaxIPs      = 32768
	DefaultMaxProjects = 16384
	DefaultMaxKeys     = 16384
	DefaultEventBuffer = 1024
)

// The decision window: the last DecisionWindow, kept as decisionSteps steps of DecisionStep.
const (
	DecisionStep   = 10 * time.Second
	DecisionWindow = decisionSteps * DecisionStep
	decisionSteps  = 6
)

// Options sets the thresholds; a zero field takes its default.
type Options struct {
	Now func() time.Time // default time.Now

	InvalidKeyThreshold int           // invalid keys from one IP …
	InvalidKeyWindow    time.Duration // … within this window fire invalid_keys_from_ip
	BlockDuration       time.Duration // and block the IP this long

	AuthFailureThreshold int           // 401s against one project …
	AuthFailureWindow    time.Duration // … within this window fire auth_failures_burst
	AuthFailureCooldown  time.Duration

	RevokedKeyCooldown time.Duration // at most one revoked_key_used per key per this

	SpikeMinDecisions  int     // deny_spike needs this many decisions in the window
	SpikeMinDenyRatio  float64 // and at least this deny ratio
	SpikeMinErrors     int     // error_spike needs this many errors in the window
	SpikeMinErrorRatio float64 // and at least this error ratio
	SpikeFactor        float64 // both need their ratio ≥ this × the baseline ratio
	SpikeBaseline      time.Duration
	SpikeCooldown      time.Duration

	MaxIPs      int // IP addresses tracked (invalid keys and blocks)
	MaxProjects int // projects tracked, for 401s and for decisions each
	MaxKeys     int // revoked keys remembered for their cool-down
	EventBuffer int // events waiting in the channel before new ones are dropped
}

func (o *Options) defaults() {
	setInt := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	setDur := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	setFloat := func(p *float64, d float64) {
		if *p <= 0 || math.IsNaN(*p) {
			*p = d
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	setInt(&o.InvalidKeyThreshold, DefaultInvalidKeyThreshold)
	setDur(&o.InvalidKeyWindow, DefaultInvalidKeyWindow)
	setDur(&o.BlockDuration, DefaultBlockDuration)
	setInt(&o.AuthFailureThreshold, DefaultAuthFailureThreshold)
	setDur(&o.AuthFailureWindow, DefaultAuthFailureWindow)
	setDur(&o.AuthFailureCooldown, DefaultAuthFailureCooldown)
	setDur(&o.RevokedKeyCooldown, DefaultRevokedKeyCooldown)
	setInt(&o.SpikeMinDecisions, DefaultSpikeMinDecisions)
	setFloat(&o.SpikeMinDenyRatio, DefaultSpikeMinDenyRatio)
	setInt(&o.SpikeMinErrors, DefaultSpikeMinErrors)
	setFloat(&o.SpikeMinErrorRatio, DefaultSpikeMinErrorRatio)
	setFloat(&o.SpikeFactor, DefaultSpikeFactor)
	setDur(&o.SpikeBaseline, DefaultSpikeBaseline)
	setDur(&o.SpikeCooldown, DefaultSpikeCooldown)
	setInt(&o.MaxIPs, DefaultMaxIPs)
	setInt(&o.MaxProjects, DefaultMaxProjects)
	setInt(&o.MaxKeys, DefaultMaxKeys)
	setInt(&o.EventBuffer, DefaultEventBuffer)
}

// Detector applies the rules. It is safe for concurrent use; create it with New.
type Detector struct {
	o      Options
	events chan Event
	drops  atomic.Uint64

	// blockHorizon is the latest end of any block ever set: before it Blocked must look, after
	// it nobody is blocked and Blocked returns at once.
	blockHorizon atomic.Int64

	decay float64 // baseline weight kept per DecisionStep: exp(-step/SpikeBaseline)

	ips       table[ipState]
	auth      table[authState]
	revoked   table[revokedState]
	decisions table[decisionState]
}

// New returns a Detector with o's zero fields set to their defaults.
func New(o Options) *Detector {
	o.defaults()
	d := &Detector{
		o:      o,
		events: make(chan Event, o.EventBuffer),
		decay:  math.Exp(-float64(DecisionStep) / float64(o.SpikeBaseline)),
	}
	d.ips.init(o.MaxIPs)
	d.auth.init(o.MaxProjects)
	d.revoked.init(o.MaxKeys)
	d.decisions.init(o.MaxProjects)
	return d
}

// Events returns the channel on which events are delivered. The caller drains it (to store,
// email and webhook them); it is never closed.
func (d *Detector) Events() <-chan Event { return d.events }

// Dropped returns how many events were discarded because the channel was full.
func (d *Detector) Dropped() uint64 { return d.drops.Load() }

func (d *Detector) emit(e Event) {
	select {
	case d.events <- e:
	default:
		d.drops.Add(1)
	}
}

// --- invalid keys and IP blocks ---

// ipKey returns the key under which ip is counted and blocked: an IPv4 address as given, an
// IPv6 address as its /64 — one subscriber or site holds a whole /64 and could otherwise
// rotate through it — and an IPv4-mapped IPv6 address as the IPv4 address.
func ipKey(ip string) string {
	if strings.IndexByte(ip, ':') < 0 {
		return clampKey(ip)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return clampKey(ip)
	}
	if a.Is4In6() {
		return a.Unmap().String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}

type ipState struct {
	attempts     ring
	blockedUntil int64
}

// InvalidKey records a request from ip (the client address, without port) that presented an
// API key that does not exist (or is malformed). projectID is the project the key claimed, if
// it can be told; "" otherwise. IPv6 addresses count per /64. The InvalidKeyThreshold-th
// within InvalidKeyWindow fires invalid_keys_from_ip and blocks the address for BlockDuration;
// while blocked, observations are ignored, and counting starts afresh after the block.
func (d *Detector) InvalidKey(ip, projectID string) {
	now := d.o.Now()
	ns := now.UnixNano()
	key := ipKey(ip)
	s := d.ips.shard(key)
	s.mu.Lock()
	e, _ := s.get(key, ns, true, d.ips.perShard)
	st := &e.v
	if st.blockedUntil > ns {
		s.mu.Unlock()
		return
	}
	if st.attempts.t == nil {
		st.attempts.t = make([]int64, d.o.InvalidKeyThreshold)
	}
	fire := st.attempts.add(ns, d.o.InvalidKeyWindow)
	if fire {
		st.blockedUntil = ns + int64(d.o.BlockDuration)
		st.attempts.reset()
		for {
			h := d.blockHorizon.Load()
			if h >= st.blockedUntil || d.blockHorizon.CompareAndSwap(h, st.blockedUntil) {
				break
			}
		}
	}
	e.expires = max(ns+int64(d.o.InvalidKeyWindow), st.blockedUntil)
	s.mu.Unlock()
	if !fire {
		return
	}
	until := now.Add(d.o.BlockDuration)
	n := strconv.Itoa(d.o.InvalidKeyThreshold)
	d.emit(Event{
		Kind:      KindInvalidKeys,
		Severity:  SeverityMedium,
		At:        now,
		ProjectID: projectID,
		Title:     n + " requests with invalid API keys from " + key + " within " + d.o.InvalidKeyWindow.String() + "; blocked until " + until.UTC().Format(time.RFC3339),
		Evidence: map[string]string{
			"ip":            clampKey(ip),
			"blocked":       key,
			"count":         n,
			"window":        d.o.InvalidKeyWindow.String(),
			"blocked_until": until.UTC().Format(time.RFC3339),
			"project_id":    projectID,
		},
	})
}

// Blocked reports whether ip (or, for IPv6, its /64) is blocked for guessing keys, and until
// when. The caller answers such requests with 429 or 403 before looking at their key. Past
// reading the clock, it costs one atomic load when no address is blocked.
func (d *Detector) Blocked(ip string) (until time.Time, blocked bool) {
	return d.BlockedAt(d.o.Now(), ip)
}

// BlockedAt is Blocked at time now, for a caller that has read the clock already.
func (d *Detector) BlockedAt(now time.Time, ip string) (until time.Time, blocked bool) {
	ns := now.UnixNano()
	if ns >= d.blockHorizon.Load() {
		return time.Time{}, false
	}
	key := ipKey(ip)
	s := d.ips.shard(key)
	s.mu.Lock()
	e, _ := s.get(key, ns, false, d.ips.perShard)
	var u int64
	if e != nil {
		u = e.v.blockedUntil
	}
	s.mu.Unlock()
	if u <= ns {
		return time.Time{}, false
	}
	return time.Unix(0, u), true
}

// Unblock lifts a block on ip (or its /64) — an operator's decision — and reports whether
// there was one.
func (d *Detector) Unblock(ip string) bool {
	ns := d.o.Now().UnixNano()
	key := ipKey(ip)
	s := d.ips.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, _ := s.get(key, ns, false, d.ips.perShard)
	if e == nil || e.v.blockedUntil <= ns {
		return false
	}
	e.v.blockedUntil = 0
	e.v.attempts.reset()
	return true
}

// --- 401 bursts ---

type authState struct {
	failures  ring
	fired     bool
	lastFired int64
}

// Unauthorized records a 401 answered for a request aimed at projectID (of organization
// orgID): a known key that is revoked or expired, a suspended organization, a key of another
// project. The AuthFailureThreshold-th within AuthFailureWindow fires auth_failures_burst, at
// most once per AuthFailureCooldown.
func (d *Detector) Unauthorized(projectID, orgID string) {
	now := d.o.Now()
	ns := now.UnixNano()
	key := clampKey(projectID)
	s := d.auth.shard(key)
	s.mu.Lock()
	e, _ := s.get(key, ns, true, d.auth.perShard)
	st := &e.v
	if st.failures.t == nil {
		st.failures.t = make([]int64, d.o.AuthFailureThreshold)
	}
	fire := st.failures.add(ns, d.o.AuthFailureWindow) &&
		(!st.fired || ns-st.lastFired >= int64(d.o.AuthFailureCooldown))
	if fire {
		st.fired, st.lastFired = true, ns
	}
	e.expires = ns + int64(d.o.AuthFailureWindow)
	if st.fired {
		e.expires = max(e.expires, st.lastFired+int64(d.o.AuthFailureCooldown))
	}
	s.mu.Unlock()
	if !fire {
		return
	}
	n := strconv.Itoa(d.o.AuthFailureThreshold)
	d.emit(Event{
		Kind:           KindAuthFailures,
		Severity:       SeverityMedium,
		At:             now,
		OrganizationID: orgID,
		ProjectID:      projectID,
		Title:          n + " unauthorized (401) requests against project " + key + " within " + d.o.AuthFailureWindow.String(),
		Evidence: map[string]string{
			"count":  n,
			"window": d.o.AuthFailureWindow.String(),
		},
	})
}

// --- revoked keys ---

type revokedState struct {
	lastFired  int64
	suppressed int // uses since the last event
}

// RevokedKeyUsed records a request authenticated with the revoked key keyID (its id, never
// its value) of projectID, from ip. It fires revoked_key_used on the first use and then at
// most once per RevokedKeyCooldown per key, with the uses in between as evidence.
func (d *Detector) RevokedKeyUsed(keyID, projectID, orgID, ip string) {
	now := d.o.Now()
	ns := now.UnixNano()
	key := clampKey(keyID)
	s := d.revoked.shard(key)
	s.mu.Lock()
	e, created := s.get(key, ns, true, d.revoked.perShard)
	st := &e.v
	fire := created || ns-st.lastFired >= int64(d.o.RevokedKeyCooldown)
	var earlier int
	if fire {
		earlier = st.suppressed
		st.lastFired, st.suppressed = ns, 0
		e.expires = ns + int64(d.o.RevokedKeyCooldown)
	} else {
		st.suppressed++
	}
	s.mu.Unlock()
	if !fire {
		return
	}
	ev := map[string]string{"key_id": key, "ip": clampKey(ip)}
	if earlier > 0 {
		ev["uses_since_last_event"] = strconv.Itoa(earlier)
	}
	d.emit(Event{
		Kind:           KindRevokedKeyUsed,
		Severity:       SeverityHigh,
		At:             now,
		OrganizationID: orgID,
		ProjectID:      projectID,
		Title:          "Revoked API key " + key + " was used from " + clampKey(ip),
		Evidence:       ev,
	})
}

// --- sign-in lockouts and operator grants ---

// SignInLocked records that accountID was locked out of signing in after repeated failures,
// the last from ip. It fires one signin_lockout event per organization in orgIDs (the
// account's organizations, whose owners are told), or one without organization if none.
func (d *Detector) SignInLocked(accountID string, orgIDs []string, ip string) {
	now := d.o.Now()
	if len(orgIDs) == 0 {
		orgIDs = []string{""}
	}
	for _, org := range orgIDs {
		d.emit(Event{
			Kind:           KindSignInLockout,
			Severity:       SeverityMedium,
			At:             now,
			OrganizationID: org,
			Title:          "Sign-in locked for account " + clampKey(accountID) + " after repeated failures, the last from " + clampKey(ip),
			Evidence:       map[string]string{"account_id": clampKey(accountID), "ip": clampKey(ip)},
		})
	}
}

// OperatorGranted records that account accountID was given the installation-wide operator
// role role by account by. It fires operator_granted, which concerns no single organization.
func (d *Detector) OperatorGranted(accountID, role, by string) {
	d.emit(Event{
		Kind:     KindOperatorGranted,
		Severity: SeverityHigh,
		At:       d.o.Now(),
		Title:    "Account " + accountID + " was granted the operator role " + role + " by " + by,
		Evidence: map[string]string{"account_id": accountID, "role": role, "granted_by": by},
	})
}
