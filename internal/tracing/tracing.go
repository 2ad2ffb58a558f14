// Package tracing sets up OpenTelemetry tracing for a Thauth node: spans for HTTP requests
// (internal/httpserver), store calls (metrics.WrapStore) and snapshot updates (the engine's
// sync hook), exported over OTLP/HTTP.
//
// Tracing is off unless an endpoint is configured. Off, Setup returns a nil *Provider whose
// Tracer and SyncHook are nil: callers then wrap nothing and start no span, so tracing
// costs nothing at all (not even a no-op span) on the decision path.
//
// Spans never carry credentials, headers, bodies or error messages: HTTP spans have the
// route pattern, method, status and request id; store spans the method name and the error
// code; sync spans the project id.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/thauth/thauth"
)

// InstrumentationName names the tracer of Thauth's spans.
const InstrumentationName = "github.com/thauth/thauth"

// DefaultServiceName is the service.name of the spans when Options.ServiceName is empty.
const DefaultServiceName = "thauth"

// Options configures tracing.
type Options struct {
	// Endpoint is the OTLP/HTTP collector URL, such as "http://127.0.0.1:4318" (the path
	// /v1/traces is added when the URL has none) or "https://otlp.example.com/v1/traces".
	// Empty: tracing is off (unless Exporter is set).
	Endpoint string
	// Headers are sent with every export (a collector's API key, for example). They are
	// never logged.
	Headers map[string]string
	// ServiceName is the service.name resource attribute; default "thauth".
	ServiceName string
	// SampleRatio is the fraction of traces recorded, in [0, 1]. Every trace is sampled at
	// this ratio by its trace id, including requests that carry a W3C traceparent (their
	// spans join the caller's trace, but a caller cannot force recording).
	SampleRatio float64
	// Logger receives export failures (at most one line a minute); nil discards them.
	// Setup installs it as OpenTelemetry's global error handler.
	Logger *slog.Logger

	// Exporter, when set, replaces the OTLP exporter and is called synchronously at the end
	// of each span (tests: tracetest.NewInMemoryExporter). It turns tracing on.
	Exporter sdktrace.SpanExporter
}

// Validate checks o without connecting to anything.
func (o Options) Validate() error {
	if o.SampleRatio < 0 || o.SampleRatio > 1 || o.SampleRatio != o.SampleRatio {
		return fmt.Errorf("the trace sample ratio must be between 0 and 1, got %v", o.SampleRatio)
	}
	if o.Endpoint == "" {
		return nil
	}
	_, err := endpointURL(o.Endpoint)
	return err
}

// endpointURL checks and completes the collector URL.
func endpointURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("the OTLP endpoint must be an http(s) URL such as http://127.0.0.1:4318")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("the OTLP endpoint must not carry credentials, a query or a fragment (send credentials as headers)")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Provider is the tracing of a node. A nil *Provider is tracing turned off: its methods
// return nil.
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// Setup starts tracing as o says. With neither Endpoint nor Exporter it returns a nil
// Provider and a shutdown that does nothing. Otherwise the returned shutdown flushes the
// spans still buffered and stops the exporter; call it when the node stops. Setup does not
// connect: an unreachable collector shows up as export failures in the log, never as a
// slower request (spans are exported in the background, and dropped when the buffer is full).
func Setup(ctx context.Context, o Options) (*Provider, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	if err := o.Validate(); err != nil {
		return nil, noop, err
	}
	if o.Endpoint == "" && o.Exporter == nil {
		return nil, noop, nil
	}
	name := o.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", name)))
	if err != nil {
		res = resource.NewSchemaless(attribute.String("service.name", name))
	}
	sampler := sdktrace.TraceIDRatioBased(o.SampleRatio)
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sampler,
			sdktrace.WithRemoteParentSampled(sampler),
			sdktrace.WithRemoteParentNotSampled(sampler))),
	}
	if o.Exporter != nil {
		opts = append(opts, sdktrace.WithSyncer(o.Exporter))
	} else {
		ep, _ := endpointURL(o.Endpoint) // validated above
		xopts := []otlptracehttp.Option{
			otlptracehttp.WithEndpointURL(ep),
			otlptracehttp.WithTimeout(10 * time.Second),
		}
		if len(o.Headers) > 0 {
			xopts = append(xopts, otlptracehttp.WithHeaders(o.Headers))
		}
		exp, err := otlptracehttp.New(ctx, xopts...)
		if err != nil {
			return nil, noop, fmt.Errorf("setting up the OTLP trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if o.Logger != nil {
		otel.SetErrorHandler(throttledHandler(o.Logger, time.Minute))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	p := &Provider{tp: tp, tracer: tp.Tracer(InstrumentationName)}
	return p, tp.Shutdown, nil
}

// throttledHandler logs OpenTelemetry's errors (failed exports) at most once per every.
func throttledHandler(log *slog.Logger, every time.Duration) otel.ErrorHandler {
	var last atomic.Int64
	var suppressed atomic.Int64
	return otel.ErrorHandlerFunc(func(err error) {
		now := time.Now().UnixNano()
		l := last.Load()
		if l != 0 && now-l < int64(every) || !last.CompareAndSwap(l, now) {
			suppressed.Add(1)
			return
		}
		log.Warn("tracing: exporting spans failed", "err", err, "suppressed_since_last", suppressed.Swap(0))
	})
}

// Tracer returns the tracer of Thauth's spans, nil when p is nil (tracing off).
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tracer
}

// TracerProvider returns the SDK provider, nil when p is nil.
func (p *Provider) TracerProvider() *sdktrace.TracerProvider {
	if p == nil {
		return nil
	}
	return p.tp
}

// SyncHook returns the hook for engine.Options.SyncHook: a span "engine sync" per snapshot
// update of a project (a child of the request's span when a check waits for a freshness
// token, else a trace of its own), with the store calls it makes as children. Nil when p
// is nil.
func (p *Provider) SyncHook() func(ctx context.Context, projectID string) (context.Context, func(error)) {
	if p == nil {
		return nil
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	return func(ctx context.Context, projectID string) (context.Context, func(error)) {
		ctx, span := p.tracer.Start(ctx, "engine sync", opts...)
		span.SetAttributes(attribute.String("thauth.project_id", projectID))
		return ctx, func(err error) {
			if err != nil {
				span.SetStatus(codes.Error, "")
				span.SetAttributes(attribute.String("thauth.error_code", string(thauth.ErrorCodeOf(err))))
			}
			span.End()
		}
	}
}
