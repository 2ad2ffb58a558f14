package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/httpserver"
	"github.com/thauth/thauth/internal/metrics"
	"github.com/thauth/thauth/internal/tracing"
)

// ObserveConfig is the observability of a node: Prometheus metrics on a listener of their
// own, and OpenTelemetry tracing exported over OTLP/HTTP. Config holds it as Observe.
type ObserveConfig struct {
	// MetricsAddr is the address of the metrics listener (GET /metrics, Prometheus
	// exposition formats). Default "127.0.0.1:9464": loopback only, since metrics are for
	// the monitoring system, not the internet. "" turns metrics off. Port 0 picks a free
	// port (Observability.MetricsAddr).
	MetricsAddr string
	// OTLPEndpoint is the OTLP/HTTP collector URL (http://host:4318, /v1/traces added when
	// the URL has no path). Default "": tracing off, at no cost.
	OTLPEndpoint string
	// OTLPHeaders are sent with every export (a collector API key). Never logged.
	OTLPHeaders map[string]string
	// TraceSampleRatio is the fraction of traces recorded, in [0, 1]. Default 1.
	TraceSampleRatio float64
	// ServiceName is the service.name of the spans. Default "thauth".
	ServiceName string
}

// DefaultMetricsAddr is the default of ObserveConfig.MetricsAddr.
const DefaultMetricsAddr = "127.0.0.1:9464"

// DefaultObserve returns the default observability: metrics on loopback, tracing off.
func DefaultObserve() ObserveConfig {
	return ObserveConfig{MetricsAddr: DefaultMetricsAddr, TraceSampleRatio: 1, ServiceName: tracing.DefaultServiceName}
}

// Validate returns the problems of c, with fields named "Observe.<Field>".
func (c ObserveConfig) Validate() []Problem {
	var ps []Problem
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			ps = append(ps, Problem{Field: "Observe.MetricsAddr", Message: fmt.Sprintf("must be host:port (for example 127.0.0.1:9464), or empty to turn metrics off: %v", unwrapAddrErr(err))})
		} else if port == "" {
			ps = append(ps, Problem{Field: "Observe.MetricsAddr", Message: "must include a port"})
		}
	}
	o := c.tracingOptions(nil)
	if o.SampleRatio < 0 || o.SampleRatio > 1 || o.SampleRatio != o.SampleRatio {
		ps = append(ps, Problem{Field: "Observe.TraceSampleRatio", Message: fmt.Sprintf("must be between 0 and 1, got %v", c.TraceSampleRatio)})
	} else if err := o.Validate(); err != nil {
		ps = append(ps, Problem{Field: "Observe.OTLPEndpoint", Message: err.Error()})
	}
	for k := range c.OTLPHeaders {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			ps = append(ps, Problem{Field: "Observe.OTLPHeaders", Message: fmt.Sprintf("%q is not a header name", k)})
		}
	}
	return ps
}

func (c ObserveConfig) tracingOptions(log *slog.Logger) tracing.Options {
	return tracing.Options{
		Endpoint: c.OTLPEndpoint, Headers: c.OTLPHeaders, ServiceName: c.ServiceName,
		SampleRatio: c.TraceSampleRatio, Logger: log,
	}
}

// Observability is the running observability of a node. A nil *Observability, and one
// with metrics or tracing off, is usable: its methods then do nothing.
type Observability struct {
	// Metrics is nil when metrics are off.
	Metrics *metrics.Metrics
	// Tracing is nil when tracing is off.
	Tracing *tracing.Provider

	log           *slog.Logger
	stopTracing   func(context.Context) error
	srv           *http.Server
	ln            net.Listener
	outbox        *metrics.CachedCount
	bg            sync.WaitGroup
	stopBG        context.CancelFunc
	bgCtx         context.Context
	shutdownOnce  sync.Once
	shutdownError error
}

// StartObservability sets up tracing and starts serving metrics on c.MetricsAddr (in the
// background). On error nothing is left running. Call Shutdown when the node stops.
func StartObservability(ctx context.Context, c ObserveConfig, log *slog.Logger) (*Observability, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ps := c.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("invalid configuration: %s: %s", ps[0].Field, ps[0].Message)
	}
	o := &Observability{log: log}
	o.bgCtx, o.stopBG = context.WithCancel(context.WithoutCancel(ctx))
	var err error
	o.Tracing, o.stopTracing, err = tracing.Setup(ctx, c.tracingOptions(log))
	if err != nil {
		o.stopBG()
		return nil, err
	}
	if o.Tracing != nil {
		log.Info("tracing enabled", "otlp_endpoint", redactURL(c.OTLPEndpoint), "sample_ratio", c.TraceSampleRatio)
	}
	if c.MetricsAddr == "" {
		return o, nil
	}
	o.Metrics = metrics.New()
	var lc net.ListenConfig
	o.ln, err = lc.Listen(ctx, "tcp", c.MetricsAddr)
	if err != nil {
		o.stopBG()
		_ = o.stopTracing(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listening on %s (--metrics-addr): %w", c.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", o.Metrics.Handler())
	o.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := o.srv.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("the metrics listener stopped", "addr", o.ln.Addr().String(), "err", err)
		}
	}()
	log.Info("serving metrics", "addr", o.ln.Addr().String(), "path", "/metrics")
	if exposed(o.ln.Addr()) {
		log.Warn("the metrics listener is reachable from other machines; metrics reveal traffic patterns, restrict access to it",
			"addr", o.ln.Addr().String())
	}
	return o, nil
}

// redactURL drops everything but the scheme, host and path of a URL (Validate refuses
// credentials in it, but a log line must not depend on that).
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if sch := strings.Index(s, "://"); sch >= 0 && sch < at {
			s = s[:sch+3] + s[at+1:]
		}
	}
	return s
}

// MetricsAddr returns the address of the metrics listener, "" when metrics are off.
func (o *Observability) MetricsAddr() string {
	if o == nil || o.ln == nil {
		return ""
	}
	return o.ln.Addr().String()
}

// WrapStore returns st observed (store latency metrics; spans for store calls under a
// request or sync span), or st itself when both are off. Give the sealer (seal.KeyStore),
// backups and Listen the undecorated store (metrics.Unwrap): the wrapper implements
// thauth.Store only.
func (o *Observability) WrapStore(st thauth.Store) thauth.Store {
	if o == nil {
		return st
	}
	return metrics.WrapStore(st, metrics.StoreOptions{Metrics: o.Metrics, Tracer: o.Tracing.Tracer()})
}

// EngineOptions sets the engine's sync hook (spans for snapshot updates) when tracing is on.
func (o *Observability) EngineOptions(eo *engine.Options) {
	if o == nil {
		return
	}
	eo.SyncHook = o.Tracing.SyncHook()
}

// HTTPDeps sets the observability fields of the HTTP layer: request metrics, request
// spans, decision, auth failure and rate limit counters.
func (o *Observability) HTTPDeps(d *httpserver.Deps) {
	if o == nil {
		return
	}
	d.Tracer = o.Tracing.Tracer()
	if o.Metrics == nil {
		return
	}
	d.Metrics = o.Metrics
	d.DecisionObserver = o.Metrics
	d.OnAuthFailure = o.Metrics.AuthFailure
	d.OnRateLimited = o.Metrics.RateLimited
}

// Watch exposes the engine's snapshot staleness and the mail outbox depth (counted every
// 15 seconds in the background, not at each scrape) when metrics are on. store may be the
// decorated store.
func (o *Observability) Watch(eng *engine.Engine, store thauth.Store) {
	if o == nil || o.Metrics == nil {
		return
	}
	o.Metrics.SetSnapshotStaleness(eng.Staleness)
	o.outbox = metrics.NewCachedCount(store.CountPendingMail, metrics.DefaultRefresh, o.log)
	o.Metrics.SetMailOutboxPending(o.outbox.Value)
	o.bg.Add(1)
	go func() { defer o.bg.Done(); o.outbox.Run(o.bgCtx) }()
}

// SetDecisionLogStats exposes the decision log writer's counters (when metrics are on).
func (o *Observability) SetDecisionLogStats(f func() (written, dropped uint64)) {
	if o != nil && o.Metrics != nil {
		o.Metrics.SetDecisionLogStats(f)
	}
}

// SetRedisFallbacks exposes the Redis limiter's fallback count (when metrics are on).
func (o *Observability) SetRedisFallbacks(f func() uint64) {
	if o != nil && o.Metrics != nil {
		o.Metrics.SetRedisFallbacks(f)
	}
}

// Shutdown stops the metrics listener and the background refresh, and flushes the spans
// still buffered (within ctx). Call it after the API server and the store's users have
// stopped, so that their last spans are exported. Later calls return the first result.
func (o *Observability) Shutdown(ctx context.Context) error {
	if o == nil {
		return nil
	}
	o.shutdownOnce.Do(func() {
		var errs []error
		o.stopBG()
		o.bg.Wait()
		if o.srv != nil {
			if err := o.srv.Shutdown(ctx); err != nil {
				o.srv.Close()
			}
		}
		if err := o.stopTracing(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flushing traces: %w", err))
		}
		o.shutdownError = errors.Join(errs...)
	})
	return o.shutdownError
}
