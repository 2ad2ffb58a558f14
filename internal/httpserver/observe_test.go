package httpserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/metrics"
	"github.com/thauth/thauth/internal/metrics/metricstest"
	"github.com/thauth/thauth/internal/tracing"
)

const checkBody = `{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/42"}`

func observedHandler(e *env, d Deps) http.Handler {
	d.Engine, d.Manage, d.Ping, d.Now = e.eng, e.mg, e.store.Ping, e.clock.Now
	return New(d)
}

func request(h http.Handler, method, path, token, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return serve(h, r)
}

func TestRequestMetrics(t *testing.T) {
	e := newEnv(t)
	m := metrics.New()
	h := observedHandler(e, Deps{Metrics: m})
	for range 3 {
		if rec := request(h, "POST", "/v1/check", e.decisions, checkBody); rec.Code != 200 {
			t.Fatalf("check: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := request(h, "POST", "/v1/check", "", checkBody); rec.Code != 401 {
		t.Fatalf("check without key: %d", rec.Code)
	}
	// Random paths (unmatched) and random ids inside a pattern (matched): neither may
	// become a label value.
	methods := []string{"GET", "POST", "BREW", "X-" + fmt.Sprint(rand.Int()), "PROPFIND"}
	var secrets []string
	for i := range 60 {
		seg := fmt.Sprintf("p%016x", rand.Uint64())
		secrets = append(secrets, seg)
		if rec := request(h, methods[i%len(methods)], "/"+seg+"/x", "", ""); rec.Code != 404 && rec.Code != 405 {
			t.Fatalf("random path: %d", rec.Code)
		}
		if rec := request(h, "GET", "/api/v1/projects/"+seg+"/keys", e.admin, ""); rec.Code != 404 {
			t.Fatalf("random project: %d %s", rec.Code, rec.Body)
		}
	}
	s := metricstest.Scrape(t, m.Handler())
	for key, want := range map[string]float64{
		`http_requests_total{code="200",method="POST",route="/v1/check"}`:                      3,
		`http_requests_total{code="401",method="POST",route="/v1/check"}`:                      1,
		`http_requests_total{code="404",method="GET",route="/api/v1/projects/{project}/keys"}`: 60,
		`http_requests_total{code="404",method="GET",route="unmatched"}`:                       12,
		`http_requests_total{code="404",method="OTHER",route="unmatched"}`:                     36,
		`http_request_duration_seconds_count{method="POST",route="/v1/check"}`:                 4,
	} {
		if got := s[key]; got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	reqs := metricstest.Series(s, "http_requests_total")
	if len(reqs) > 8 {
		t.Errorf("%d request series after random paths, want a handful:\n%s", len(reqs), strings.Join(reqs, "\n"))
	}
	for _, k := range reqs {
		for _, sec := range secrets {
			if strings.Contains(k, sec) {
				t.Fatalf("a raw path segment became a label: %s", k)
			}
		}
	}
}

func newTestTracer(t *testing.T) (trace.Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	p, shutdown, err := tracing.Setup(t.Context(), tracing.Options{Exporter: exp, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	return p.Tracer(), exp
}

func TestRequestSpans(t *testing.T) {
	e := newEnv(t)
	tr, exp := newTestTracer(t)
	h := observedHandler(e, Deps{Tracer: tr})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	rec := request(h, "POST", "/v1/check", e.decisions, checkBody, "Traceparent", parent, "X-Request-Id", "req-123")
	if rec.Code != 200 {
		t.Fatalf("check: %d %s", rec.Code, rec.Body)
	}
	request(h, "BREW", "/nowhere", "", "")
	request(h, "GET", "/v1/config", "thauth_bad_key", "")
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3: %v", len(spans), spans)
	}
	check, unmatched, unauth := spans[0], spans[1], spans[2]
	if check.Name != "POST /v1/check" || check.SpanKind != trace.SpanKindServer {
		t.Errorf("span %q kind %v", check.Name, check.SpanKind)
	}
	if got := check.SpanContext.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the span did not join the caller's trace: %s", got)
	}
	if got := check.Parent.SpanID().String(); got != "00f067aa0ba902b7" {
		t.Errorf("parent span %s", got)
	}
	want := map[string]string{
		"http.route": "/v1/check", "http.request.method": "POST",
		"http.response.status_code": "200", "thauth.request_id": "req-123",
	}
	if got := attrs(check.Attributes); !equalMaps(got, want) {
		t.Errorf("attributes %v, want %v", got, want)
	}
	if unmatched.Name != "OTHER" || attrs(unmatched.Attributes)["http.response.status_code"] != "404" {
		t.Errorf("unmatched span %q %v", unmatched.Name, unmatched.Attributes)
	}
	if _, ok := attrs(unmatched.Attributes)["http.route"]; ok {
		t.Error("an unmatched request has a route")
	}
	if unauth.Name != "GET /v1/config" || attrs(unauth.Attributes)["http.response.status_code"] != "401" || unauth.Status.Code != codes.Unset {
		t.Errorf("401 span %q %v %v", unauth.Name, unauth.Attributes, unauth.Status)
	}
	// Nothing of the request's headers or body is in a span.
	for _, s := range spans {
		for _, kv := range s.Attributes {
			v := kv.Value.Emit()
			if strings.Contains(v, e.decisions) || strings.Contains(v, "thauth_bad_key") || strings.Contains(v, "alice") {
				t.Errorf("span %s carries request data: %s=%s", s.Name, kv.Key, v)
			}
		}
	}
}

// At ratio 0 nothing is recorded, even for a caller whose traceparent says "sampled".
func TestRequestSpansSampledOut(t *testing.T) {
	e := newEnv(t)
	exp := tracetest.NewInMemoryExporter()
	p, shutdown, err := tracing.Setup(t.Context(), tracing.Options{Exporter: exp, SampleRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	h := observedHandler(e, Deps{Tracer: p.Tracer()})
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if rec := request(h, "POST", "/v1/check", e.decisions, checkBody, "Traceparent", parent); rec.Code != 200 {
		t.Fatalf("check: %d %s", rec.Code, rec.Body)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans at ratio 0", n)
	}
}

// A panicking handler's span still ends, with the 500 and an error status.
func TestSpanOnPanic(t *testing.T) {
	e := newEnv(t)
	tr, exp := newTestTracer(t)
	h := observedHandler(e, Deps{Tracer: tr, Metrics: metrics.New()}).(*server)
	h.evaluate = func(*engine.Snapshot, *thauth.CheckRequest, time.Time) thauth.Decision { panic("boom") }
	if rec := request(h, "POST", "/v1/check", e.decisions, checkBody); rec.Code != 500 {
		t.Fatalf("status %d", rec.Code)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Status.Code != codes.Error || attrs(spans[0].Attributes)["http.response.status_code"] != "500" {
		t.Errorf("spans %v", spans)
	}
}

// Store calls made while serving a request are children of its span.
func TestStoreSpansUnderRequest(t *testing.T) {
	tr, exp := newTestTracer(t)
	log := slog.New(slog.DiscardHandler)
	st := metrics.WrapStore(openSQLite(t, log), metrics.StoreOptions{Tracer: tr})
	eng := engine.New(st, engine.Options{Logger: log})
	mg := manage.New(st, eng, manage.Options{Logger: log})
	res, err := mg.Init(t.Context(), "Acme", "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.LoadAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	exp.Reset()
	h := New(Deps{Engine: eng, Manage: mg, Logger: log, Tracer: tr})
	rec := request(h, "POST", "/api/v1/projects/"+res.Project.ID+"/keys", res.AdminKey, `{"name":"ci","scopes":["decisions:read"]}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create key: %d %s", rec.Code, rec.Body)
	}
	var root tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "POST /api/v1/projects/{project}/keys" {
			root = s
		}
	}
	if !root.SpanContext.IsValid() {
		t.Fatalf("no request span: %v", exp.GetSpans())
	}
	var stores int
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "store ") {
			stores++
			if s.SpanContext.TraceID() != root.SpanContext.TraceID() {
				t.Errorf("store span %s outside the request's trace", s.Name)
			}
		}
	}
	if stores == 0 {
		t.Errorf("no store span under the request: %v", exp.GetSpans())
	}
}

// The access log names the account of console requests.
func TestAccessLogAccountID(t *testing.T) {
	e := newConsoleEnv(t)
	b, accountID := e.newAccount("ada@example.com")
	want(t, b.do("GET", "/api/v1/account", nil), http.StatusOK)
	var found bool
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line["msg"] == "http request" && line["route"] == "GET /api/v1/account" {
			found = true
			if line["account_id"] != accountID {
				t.Errorf("account_id %v, want %s", line["account_id"], accountID)
			}
		}
		if line["msg"] == "http request" && line["route"] == "POST /api/v1/auth/signup" && line["account_id"] != nil {
			t.Errorf("an unauthenticated request names an account: %v", line)
		}
	}
	if !found {
		t.Error("no access line for GET /api/v1/account")
	}
}

// Metrics cost the check path no allocation: it allocates the same with and without them.
// (That tracing off costs nothing is by construction — a nil check — and measured by
// BenchmarkObserve.)
func TestObservabilityAllocations(t *testing.T) {
	e := newEnv(t)
	exp := tracetest.NewInMemoryExporter()
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.NeverSample())).Tracer("t")
	allocs := func(h http.Handler) float64 {
		body := []byte(checkBody)
		r := httptest.NewRequest("POST", "/v1/check", nil)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+e.decisions)
		rd := strings.NewReader(checkBody)
		rc := io.NopCloser(rd)
		w := &discardWriter{h: http.Header{}}
		return testing.AllocsPerRun(200, func() {
			rd.Reset(string(body))
			r.Body = rc
			r.ContentLength = int64(len(body))
			delete(r.Header, "X-Request-Id")
			clear(w.h)
			w.status = 0
			h.ServeHTTP(w, r)
			if w.status != 0 && w.status != 200 {
				t.Fatalf("status %d", w.status)
			}
		})
	}
	off := allocs(observedHandler(e, Deps{}))
	withMetrics := allocs(observedHandler(e, Deps{Metrics: metrics.New()}))
	if withMetrics != off {
		t.Errorf("metrics add allocations: %v per request, %v without", withMetrics, off)
	}
	traced := allocs(observedHandler(e, Deps{Tracer: unsampled}))
	t.Logf("allocations per check: off %v, metrics %v, tracer (not sampled) %v", off, withMetrics, traced)
}

func attrs(kvs []attribute.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// discardExporter drops spans (benchmarks).
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkObserve measures POST /v1/check (in process, access log on) with observability
// off, with metrics, and with tracing at ratio 0 and 1:
//
//	go test -run '^$' -bench Observe -benchmem ./internal/httpserver/
func BenchmarkObserve(b *testing.B) {
	e := newEnv(b)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	tracer := func(ratio float64) trace.Tracer {
		p, shutdown, err := tracing.Setup(b.Context(), tracing.Options{Exporter: discardExporter{}, SampleRatio: ratio})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = shutdown(context.Background()) })
		return p.Tracer()
	}
	for _, c := range []struct {
		name string
		d    Deps
	}{
		{"off", Deps{Logger: log}},
		{"metrics", Deps{Logger: log, Metrics: metrics.New()}},
		{"tracing-ratio0", Deps{Logger: log, Tracer: tracer(0)}},
		{"tracing-ratio1", Deps{Logger: log, Tracer: tracer(1)}},
		{"metrics+tracing-ratio1", Deps{Logger: log, Metrics: metrics.New(), Tracer: tracer(1)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			runInProcess(b, observedHandler(e, c.d), e.decisions)
		})
	}
}
