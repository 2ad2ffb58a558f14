// Package httpserver is Thauth's HTTP layer: the public decision API (/v1, spec §4), the
// management API of a project (/api/v1), and the health endpoints. New wires the decision
// engine and the management service into one http.Handler; routes.go lists the whole surface.
//
// Threat model. Every /v1 and /api/v1 request is authenticated with a project API key sent as
// a bearer token. Any bad key — missing, malformed, wrong checksum, unknown, revoked,
// expired — gets the same 401 with the same body, so keys cannot be probed. A key reaches
// only its own project: other project ids are answered exactly like ids that do not exist.
// Tokens, the Authorization header and request bodies are never logged; internal errors are
// logged with the request id and answered with a generic message. Bodies are size-limited
// and strictly decoded. Server timeouts are set by the caller (cmd/thauth) on http.Server.
//
// A failure while deciding never allows: a check that cannot be evaluated answers
// {"allowed": false, "reason": "error"}.
package httpserver

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/abuse"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/metrics"
	"github.com/thauth/thauth/internal/ratelimit"
)

// Deps are the components the HTTP layer serves. Engine and Manage are required.
type Deps struct {
	Engine *engine.Engine
	Manage *manage.Service
	// TrustedProxies are the addresses of the reverse proxies and load balancers in front of
	// this server (proxy.go). A request whose peer is one of them is attributed to the
	// client its X-Forwarded-For names; with none (the default) the peer address is the
	// client, and forwarding headers are ignored, since anyone can send them.
	TrustedProxies []netip.Prefix
	// Ping checks that the store answers, for /readyz; nil means always reachable.
	Ping func(ctx context.Context) error
	// Logger receives the access log and internal errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock used for decisions and ids; nil means time.Now.
	Now func() time.Time
	// FreshnessWait bounds how long a check with "at_least_as_fresh" waits for this node to
	// reach the requested revision before answering 503; 0 means DefaultFreshnessWait.
	FreshnessWait time.Duration
	// WriteTimeout bounds each write request's work (subject upsert, key create and
	// revoke), so that a database that stopped answering fails the request with 503 rather
	// than holding it; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// DocumentTimeout is WriteTimeout for the configuration document routes (GET and PUT
	// .../config), which may carry up to 32 MiB; 0 means DefaultDocumentTimeout. Routes with
	// these deadlines move their own write deadline past them, so the http.Server's shorter
	// WriteTimeout does not cut their answer.
	DocumentTimeout time.Duration
	// SecureCookies says that the server is reached over TLS: the console's session cookie
	// is then "__Host-thauth_session" with the Secure attribute. Without it (plain-HTTP
	// development) the cookie is "thauth_session" and not Secure.
	SecureCookies bool
	// DevOutbox lists the newest messages of the development mailer's outbox (at most
	// limit), for GET /api/v1/dev/outbox; nil (any real mailer) makes that route 404. The
	// messages hold live single-use links (verification, password reset, invitations) of
	// every account, and the route asks for no credential: set it only for a development
	// installation.
	DevOutbox func(ctx context.Context, limit int) ([]DevMessage, error)

	// observability (observe.go). Metrics, if not nil, counts requests and their latency
	// per route pattern and status (internal/metrics). Tracer, if not nil, starts a span per
	// request (internal/tracing: Provider.Tracer); nil is tracing off, which costs nothing.
	Metrics *metrics.Metrics
	Tracer  trace.Tracer

	// decision log (decisionlog.go, decisions.go). DecisionLog receives every decision
	// (check and batch items) and must not block (internal/decisionlog.Writer); nil records
	// nothing. DecisionLogStore answers the decision log routes; nil makes them 404.
	// Abuse is told every decision (deny and error spikes); nil skips it. DecisionObserver
	// counts decisions for metrics; nil skips it.
	DecisionLog      DecisionRecorder
	DecisionLogStore thauth.DecisionLogStore
	Abuse            *abuse.Detector
	DecisionObserver DecisionObserver

	// rate limits and abuse (limits.go; docs/rate-limits.md). Limiter applies Limits (zero
	// fields take DefaultLimits, LimitOff turns one off); nil limits nothing. Abuse (above)
	// is also told of every failed API-key authentication, and the addresses it blocks get
	// 429 on the machine API. OnRateLimited is called with the policy of every 429
	// ("api-key", "auth-failure", "ip-blocked", "signin-ip", "signin-account", "signup-ip",
	// "password-reset-ip"), OnAuthFailure with the kind of every failed API-key
	// authentication ("missing_key", "malformed_key", "unknown_key", "wrong_secret",
	// "revoked_key", "expired_key", "suspended_org"); both on the request path, so quick;
	// nil skips them.
	Limiter       ratelimit.Limiter
	Limits        Limits
	OnRateLimited func(policy string)
	OnAuthFailure func(kind string)
}

// Defaults of Deps.
const (
	DefaultFreshnessWait   = 2 * time.Second
	DefaultWriteTimeout    = 8 * time.Second
	DefaultDocumentTimeout = 60 * time.Second
)

// server holds the dependencies and the routing table. It is safe for concurrent use.
type server struct {
	eng *engine.Engine
	mg  *manage.Service

	trustedProxies []netip.Prefix // see Deps.TrustedProxies
	ping           func(ctx context.Context) error
	log            *slog.Logger
	now            func() time.Time
	rand           func() uint64
	mux            *http.ServeMux

	freshWait time.Duration // see Deps.FreshnessWait
	writeWait time.Duration // see Deps.WriteTimeout
	docWait   time.Duration // see Deps.DocumentTimeout

	secureCookies bool                                                       // see Deps.SecureCookies
	devOutboxFn   func(ctx context.Context, limit int) ([]DevMessage, error) // see Deps.DevOutbox
	cop           *http.CrossOriginProtection                                // the console stack's

	// observability: see Deps.Metrics and Deps.Tracer; nil when off.
	httpObs *httpObs
	tracer  trace.Tracer

	// decision log: see Deps. decisionLogID is decisionLog when it implements idRecorder.
	decisionLog      DecisionRecorder
	decisionLogID    idRecorder
	decisionStore    thauth.DecisionLogStore
	abuse            *abuse.Detector
	decisionObserver DecisionObserver

	// rate limits and abuse: see Deps. limits has its defaults applied.
	limiter       ratelimit.Limiter
	limits        Limits
	onRateLimited func(policy string)
	onAuthFailure func(kind string)
	keyHeaders    ratelimit.Headers // the PerKey policy's RateLimit fields, serialised once

	bufs sync.Pool // *[]byte, for request and response bodies
	reqs sync.Pool // *thauth.CheckRequest: passed by pointer, it would escape per request

	// The two engine calls of the decision path, as fields so that tests can make them
	// fail (the real engine cannot be made to): the fail-closed paths must be tested too.
	snapshotOf func(projectID string) *engine.Snapshot
	evaluate   func(snap *engine.Snapshot, req *thauth.CheckRequest, now time.Time) thauth.Decision
}

// New returns the handler serving every route of routes.go. The handler is safe for
// concurrent use. It panics when Engine or Manage is nil or Limits is invalid (wiring bugs:
// ParseLimit validates what it parses).
func New(d Deps) http.Handler {
	if d.Engine == nil || d.Manage == nil {
		panic("httpserver: Deps.Engine and Deps.Manage are required")
	}
	if err := d.Limits.Validate(); err != nil {
		panic("httpserver: Deps.Limits: " + err.Error())
	}
	s := &server{
		eng:            d.Engine,
		mg:             d.Manage,
		trustedProxies: d.TrustedProxies,
		ping:           d.Ping,
		log:            d.Logger,
		now:            d.Now,
		rand:           rand.Uint64,
		mux:            http.NewServeMux(),

		freshWait: cmpOr(d.FreshnessWait, DefaultFreshnessWait),
		writeWait: cmpOr(d.WriteTimeout, DefaultWriteTimeout),
		docWait:   cmpOr(d.DocumentTimeout, DefaultDocumentTimeout),

		secureCookies: d.SecureCookies,
		devOutboxFn:   d.DevOutbox,

		httpObs: newHTTPObs(d.Metrics), // observability
		tracer:  d.Tracer,

		decisionLog:      d.DecisionLog,
		decisionStore:    d.DecisionLogStore,
		abuse:            d.Abuse,
		decisionObserver: d.DecisionObserver,
		decisionLogID:    asIDRecorder(d.DecisionLog),

		limiter:       d.Limiter,
		limits:        d.Limits.withDefaults(),
		onRateLimited: d.OnRateLimited,
		onAuthFailure: d.OnAuthFailure,
	}
	s.keyHeaders = ratelimit.NewHeaders(policyAPIKey, s.limits.PerKey)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.snapshotOf = s.eng.Snapshot
	s.evaluate = (*engine.Snapshot).Check
	s.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	s.reqs.New = func() any { return new(thauth.CheckRequest) }
	s.cop = s.newCrossOrigin()
	for _, rt := range s.routes() {
		s.mux.Handle(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	return s
}

// cmpOr returns d when it is positive, else def.
func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// maxPooledBuf is the largest buffer kept for reuse; bigger ones (large documents) are left
// to the garbage collector.
const maxPooledBuf = 64 << 10

func (s *server) getBuf() *[]byte { return s.bufs.Get().(*[]byte) }

func (s *server) putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	s.bufs.Put(b)
}

func (s *server) getReq() *thauth.CheckRequest { return s.reqs.Get().(*thauth.CheckRequest) }

func (s *server) putReq(r *thauth.CheckRequest) {
	*r = thauth.CheckRequest{} // drop the references into the request body
	s.reqs.Put(r)
}
