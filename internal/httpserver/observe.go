package httpserver

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/thauth/thauth/internal/metrics"
)

// Observability of the HTTP layer: request metrics per route (Deps.Metrics) and a span per
// request (Deps.Tracer). Both are optional; without them ServeHTTP does no more than a nil
// check for each.

// httpObs holds the metrics handles of the routes, resolved on the first request of each
// and then found without a lock or an allocation.
type httpObs struct {
	m         *metrics.Metrics
	mu        sync.Mutex                                // serializes additions
	patterns  atomic.Pointer[map[string]*metrics.Route] // by ServeMux pattern ("POST /v1/check")
	unmatched atomic.Pointer[map[string]*metrics.Route] // by metrics.Method of the request
}

func newHTTPObs(m *metrics.Metrics) *httpObs {
	if m == nil {
		return nil
	}
	o := &httpObs{m: m}
	o.patterns.Store(&map[string]*metrics.Route{})
	o.unmatched.Store(&map[string]*metrics.Route{})
	return o
}

// route returns the handle of r's route: its pattern, split into path and method (the
// route and method labels), or "unmatched" with the request's method (bounded by
// metrics.Method) when no route matched.
func (o *httpObs) route(r *http.Request) *metrics.Route {
	if r.Pattern == "" {
		m := metrics.Method(r.Method)
		if rt := (*o.unmatched.Load())[m]; rt != nil {
			return rt
		}
		return o.add(&o.unmatched, m, metrics.Unmatched, m)
	}
	if rt := (*o.patterns.Load())[r.Pattern]; rt != nil {
		return rt
	}
	method, path, ok := strings.Cut(r.Pattern, " ")
	if !ok || strings.HasPrefix(method, "/") { // a pattern without a method
		method, path = r.Method, r.Pattern
	}
	return o.add(&o.patterns, r.Pattern, path, method)
}

func (o *httpObs) add(p *atomic.Pointer[map[string]*metrics.Route], key, route, method string) *metrics.Route {
	o.mu.Lock()
	defer o.mu.Unlock()
	cur := *p.Load()
	if rt := cur[key]; rt != nil {
		return rt
	}
	next := make(map[string]*metrics.Route, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	rt := o.m.Route(route, method)
	next[key] = rt
	p.Store(&next)
	return rt
}

// serverSpan are the options of every request's span.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// startSpan starts the span of a request (tracing on), as a child of the caller's span
// when the request carries a W3C traceparent, and returns the request with the span in its
// context. Its name becomes the route pattern once the mux has matched it. A request the
// sampler leaves out gets no span (nil).
func (s *server) startSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.tracer.Start(ctx, "HTTP", serverSpan...)
	if !span.IsRecording() {
		// Sampled out: nothing will be recorded (store calls see no recording parent
		// either), so keep the request as it is and skip the end-of-request work.
		return r, nil
	}
	return r.WithContext(ctx), span
}

// observe records the finished request in the metrics and ends its span; it returns the
// end time, which the access log reuses. Spans carry the route, method, status and request
// id — never headers, credentials or bodies.
func (s *server) observe(r *http.Request, rw *respWriter, start time.Time, span trace.Span) time.Time {
	end := time.Now()
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	if s.httpObs != nil {
		s.httpObs.route(r).Observe(status, end.Sub(start))
	}
	if span != nil {
		method := metrics.Method(r.Method)
		if r.Pattern != "" {
			span.SetName(r.Pattern)
			_, path, _ := strings.Cut(r.Pattern, " ")
			span.SetAttributes(attribute.String("http.route", path))
		} else {
			span.SetName(method)
		}
		span.SetAttributes(
			attribute.String("http.request.method", method),
			attribute.Int("http.response.status_code", status),
			attribute.String("thauth.request_id", rw.idv[0]),
		)
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
		span.End(trace.WithTimestamp(end))
	}
	return end
}

// setAccountID records the account of an authenticated console request for the access
// log (account_id), as setKeyID does for API keys (key_id). It shares keyID's field: a
// request has one caller, and respWriter stays in its allocation size class.
func setAccountID(w http.ResponseWriter, id string) {
	if rw, ok := w.(*respWriter); ok {
		rw.keyID, rw.account = id, true
	}
}
