// Package metrics holds the Prometheus metrics of a Thauth node, in a registry of its own
// (nothing is registered globally), and serves them in the Prometheus exposition format
// (Handler) — on a listener separate from the API, loopback by default.
//
// The metrics:
//
//	http_requests_total{route,method,code}              requests answered, per route pattern
//	http_request_duration_seconds{route,method}         their latency (histogram)
//	thauth_decisions_total{result,reason_kind}          decisions: allow|deny ×
//	                                                    role|override_allow|override_deny|default_deny|error
//	thauth_auth_failures_total{kind}                    failed authentications, by kind
//	thauth_rate_limited_total{policy}                   requests answered 429, by limit policy
//	thauth_snapshot_staleness_seconds                   engine.Staleness (SetSnapshotStaleness)
//	thauth_store_operation_duration_seconds{op}         store calls (histogram; WrapStore)
//	thauth_mail_outbox_pending                          mail waiting in the outbox (SetMailOutboxPending)
//	thauth_decision_log_written_total                   decision log records written (SetDecisionLogStats)
//	thauth_decision_log_dropped_total                   decision log records dropped (SetDecisionLogStats)
//	thauth_ratelimit_redis_fallbacks_total              Redis limiter calls answered locally (SetRedisFallbacks)
//	go_*, process_*                                     Go runtime and process collectors
//
// Cardinality is bounded by construction: route is a ServeMux pattern (or "unmatched"),
// never a raw path; method is one of the standard methods or "OTHER"; code is a status code;
// kind and policy are chosen by the caller from fixed sets, and beyond maxDynamicLabels
// distinct values the rest are counted as "other"; op is a store method name.
//
// The methods called on the request path (Decision, AuthFailure, RateLimited, Route.Observe)
// do not allocate: their counters are resolved once and kept.
package metrics

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/thauth/thauth"
)

// Buckets of the latency histograms, in seconds: from 50µs (an in-memory decision) to 10s
// (a stuck database).
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// maxDynamicLabels bounds the distinct values of the kind and policy labels.
const maxDynamicLabels = 64

// Reason kinds, the reason_kind label of thauth_decisions_total.
const (
	KindRole          = "role"
	KindOverrideAllow = "override_allow"
	KindOverrideDeny  = "override_deny"
	KindDefaultDeny   = "default_deny"
	KindError         = "error"
)

var reasonKinds = [...]string{KindRole, KindOverrideAllow, KindOverrideDeny, KindDefaultDeny, KindError}

// ReasonKind returns the reason_kind of a decision reason (thauth.Reason*): "role" for
// "role:<name>", "error" for "error" and for anything unknown.
func ReasonKind(reason string) string { return reasonKinds[reasonIndex(reason)] }

func reasonIndex(reason string) int {
	switch {
	case strings.HasPrefix(reason, thauth.ReasonRolePrefix):
		return 0
	case reason == thauth.ReasonOverrideAllow:
		return 1
	case reason == thauth.ReasonOverrideDeny:
		return 2
	case reason == thauth.ReasonDefaultDeny:
		return 3
	default:
		return 4
	}
}

// Metrics is the set of metrics of one node. Create it with New; its methods are safe for
// concurrent use. A nil *Metrics is not usable: callers that make metrics optional check
// for nil themselves.
type Metrics struct {
	reg *prometheus.Registry

	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	routesMu  sync.Mutex
	routes    map[[2]string]*Route // route, method → handle: one per pair, shared

	decisions [2][len(reasonKinds)]prometheus.Counter // [allowed][reason kind]

	authFailures dynCounters
	rateLimited  dynCounters

	storeOps *prometheus.HistogramVec

	mu         sync.Mutex // serializes the Set* registrations
	staleness  atomic.Pointer[func() time.Duration]
	outbox     atomic.Pointer[func() float64]
	dlogStats  atomic.Pointer[func() (written, dropped uint64)]
	redisFalls atomic.Pointer[func() uint64]
	registered map[string]bool
}

// New returns the metrics of a node, with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		routes:     map[[2]string]*Route{},
		registered: map[string]bool{},
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "HTTP requests answered, by route pattern (\"unmatched\" when no route matched), method and status code.",
	}, []string{"route", "method", "code"})
	m.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "Time from receiving an HTTP request to the end of its answer, by route pattern and method.",
		Buckets: latencyBuckets,
	}, []string{"route", "method"})
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thauth_decisions_total",
		Help: "Authorization decisions, by result (allow, deny) and reason kind (role, override_allow, override_deny, default_deny, error).",
	}, []string{"result", "reason_kind"})
	for i, kind := range reasonKinds {
		m.decisions[0][i] = decisions.WithLabelValues("deny", kind)
		m.decisions[1][i] = decisions.WithLabelValues("allow", kind)
	}
	m.authFailures.init(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thauth_auth_failures_total",
		Help: "Failed authentications (bad API key, session, access token, password, second factor), by kind.",
	}, []string{"kind"}))
	m.rateLimited.init(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thauth_rate_limited_total",
		Help: "Requests refused by a rate limit (429), by limit policy.",
	}, []string{"policy"}))
	m.storeOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "thauth_store_operation_duration_seconds",
		Help:    "Duration of store (database) calls, by store method; a transaction (Tx) includes the calls made in it.",
		Buckets: latencyBuckets,
	}, []string{"op"})
	m.reg.MustRegister(m.requests, m.durations, decisions, m.authFailures.vec, m.rateLimited.vec, m.storeOps)
	return m
}

// Registry returns the registry holding every metric, for tests and for callers that add
// collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats. It exposes operational
// counters only (no customer data), but should still be reachable by the monitoring system
// alone: serve it on its own listener, loopback by default.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:            m.reg, // counts its own errors in promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

// Decision counts one decision. It is allocation-free: every result × reason kind
// counter is resolved in New.
func (m *Metrics) Decision(allowed bool, reason string) {
	a := 0
	if allowed {
		a = 1
	}
	m.decisions[a][reasonIndex(reason)].Inc()
}

// AuthFailure counts one failed authentication of the given kind (a short fixed word
// chosen by the caller, such as "api_key", "session", "password", "totp"). Past 64
// distinct kinds, further ones are counted as "other".
func (m *Metrics) AuthFailure(kind string) { m.authFailures.inc(kind) }

// RateLimited counts one request refused by the rate limit policy (a fixed name such as
// "api_key", "ip", "signin"). Past 64 distinct policies, further ones are counted as "other".
func (m *Metrics) RateLimited(policy string) { m.rateLimited.inc(policy) }

// SetSnapshotStaleness exposes f (engine.Engine.Staleness) as
// thauth_snapshot_staleness_seconds. The metric appears on the first call; a later call
// replaces f.
func (m *Metrics) SetSnapshotStaleness(f func() time.Duration) {
	m.staleness.Store(&f)
	m.registerOnce("staleness", func() prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "thauth_snapshot_staleness_seconds",
			Help: "How long ago the last successful sync of the decision engine with the store began: an upper bound on the age of the snapshots decisions are made from.",
		}, func() float64 { return (*m.staleness.Load())().Seconds() })
	})
}

// SetMailOutboxPending exposes f as thauth_mail_outbox_pending. f is called on every scrape
// and must be quick: pass a cached value (CachedCount.Value), not a database query. The
// metric appears on the first call; a later call replaces f.
func (m *Metrics) SetMailOutboxPending(f func() float64) {
	m.outbox.Store(&f)
	m.registerOnce("outbox", func() prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "thauth_mail_outbox_pending",
			Help: "Messages waiting in the mail outbox (refreshed periodically, not at each scrape).",
		}, func() float64 { return (*m.outbox.Load())() })
	})
}

// SetDecisionLogStats exposes the decision log writer's counters as
// thauth_decision_log_written_total and thauth_decision_log_dropped_total. f must be quick
// (atomic loads). The metrics appear on the first call; a later call replaces f.
func (m *Metrics) SetDecisionLogStats(f func() (written, dropped uint64)) {
	m.dlogStats.Store(&f)
	m.registerOnce("dlog", func() prometheus.Collector {
		return multiCollector(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "thauth_decision_log_written_total",
				Help: "Decision records written to the decision log.",
			}, func() float64 { w, _ := (*m.dlogStats.Load())(); return float64(w) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "thauth_decision_log_dropped_total",
				Help: "Decision records dropped because the decision log writer could not keep up (each drop also leaves a gap marker in the log).",
			}, func() float64 { _, d := (*m.dlogStats.Load())(); return float64(d) }),
		)
	})
}

// SetRedisFallbacks exposes f (the Redis limiter's fallback count) as
// thauth_ratelimit_redis_fallbacks_total. The metric appears on the first call; a later call
// replaces f.
func (m *Metrics) SetRedisFallbacks(f func() uint64) {
	m.redisFalls.Store(&f)
	m.registerOnce("redis", func() prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "thauth_ratelimit_redis_fallbacks_total",
			Help: "Rate limit checks answered by the local limiter because Redis could not be reached in time.",
		}, func() float64 { return float64((*m.redisFalls.Load())()) })
	})
}

func (m *Metrics) registerOnce(name string, c func() prometheus.Collector) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.registered[name] {
		return
	}
	m.reg.MustRegister(c())
	m.registered[name] = true
}

// multi is a Collector made of several.
type multi []prometheus.Collector

func multiCollector(cs ...prometheus.Collector) prometheus.Collector { return multi(cs) }

func (c multi) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c {
		x.Describe(ch)
	}
}

func (c multi) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c {
		x.Collect(ch)
	}
}

// dynCounters is a CounterVec with one label whose resolved counters are kept in a
// copy-on-write map: lookups take no lock and do not allocate. It holds at most
// maxDynamicLabels values; further ones share "other".
type dynCounters struct {
	vec   *prometheus.CounterVec
	mu    sync.Mutex
	cur   atomic.Pointer[map[string]prometheus.Counter]
	other prometheus.Counter
}

func (d *dynCounters) init(vec *prometheus.CounterVec) {
	d.vec = vec
	d.cur.Store(&map[string]prometheus.Counter{})
}

func (d *dynCounters) inc(v string) {
	if c, ok := (*d.cur.Load())[v]; ok {
		c.Inc()
		return
	}
	d.add(v).Inc()
}

func (d *dynCounters) add(v string) prometheus.Counter {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := *d.cur.Load()
	if c, ok := cur[v]; ok {
		return c
	}
	if len(cur) >= maxDynamicLabels || v == "" {
		if d.other == nil {
			d.other = d.vec.WithLabelValues("other")
		}
		return d.other
	}
	next := make(map[string]prometheus.Counter, len(cur)+1)
	for k, c := range cur {
		next[k] = c
	}
	next[v] = d.vec.WithLabelValues(v)
	d.cur.Store(&next)
	return next[v]
}
