package tracing

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/metrics"
	"github.com/thauth/thauth/internal/sqlite"
)

func TestOffByDefault(t *testing.T) {
	p, shutdown, err := Setup(t.Context(), Options{SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p != nil || p.Tracer() != nil || p.SyncHook() != nil || p.TracerProvider() != nil {
		t.Errorf("tracing is on without an endpoint: %v", p)
	}
	if err := shutdown(t.Context()); err != nil {
		t.Error(err)
	}
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{
		{SampleRatio: -0.1},
		{SampleRatio: 1.5},
		{SampleRatio: math.NaN()},
		{Endpoint: "collector:4318", SampleRatio: 1},
		{Endpoint: "ftp://collector:4318", SampleRatio: 1},
		{Endpoint: "http://", SampleRatio: 1},
		{Endpoint: "https://user:pw@collector/v1/traces", SampleRatio: 1},
		{Endpoint: "https://collector/v1/traces?key=x", SampleRatio: 1},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", o)
		}
		if _, _, err := Setup(t.Context(), o); err == nil {
			t.Errorf("Setup(%+v) accepted invalid options", o)
		}
	}
	for _, o := range []Options{{}, {SampleRatio: 0.25, Endpoint: "http://127.0.0.1:4318"}, {SampleRatio: 1, Endpoint: "https://otlp.example.com/v1/traces"}} {
		if err := o.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", o, err)
		}
	}
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":              "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":             "http://127.0.0.1:4318/v1/traces",
		"https://otlp.example.com/v1/traces": "https://otlp.example.com/v1/traces",
		"https://otlp.example.com/custom":    "https://otlp.example.com/custom",
	} {
		got, err := endpointURL(in)
		if err != nil || got != want {
			t.Errorf("endpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func setup(t *testing.T, ratio float64) (*Provider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	p, shutdown, err := Setup(t.Context(), Options{Exporter: exp, SampleRatio: ratio, ServiceName: "thauth-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	return p, exp
}

// The ratio decides, whatever a caller's traceparent says.
func TestSampling(t *testing.T) {
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled, Remote: true,
	})
	for _, tc := range []struct {
		ratio float64
		want  bool
	}{{0, false}, {1, true}} {
		p, _ := setup(t, tc.ratio)
		_, root := p.Tracer().Start(context.Background(), "root")
		_, child := p.Tracer().Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "child of remote")
		if root.IsRecording() != tc.want || child.IsRecording() != tc.want {
			t.Errorf("ratio %v: root recording %v, child of a sampled remote parent recording %v; want %v",
				tc.ratio, root.IsRecording(), child.IsRecording(), tc.want)
		}
		if tc.want && child.SpanContext().TraceID() != remote.TraceID() {
			t.Error("the child did not join the caller's trace")
		}
		root.End()
		child.End()
	}
}

func TestResource(t *testing.T) {
	p, exp := setup(t, 1)
	_, s := p.Tracer().Start(context.Background(), "x")
	s.End()
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	if v, ok := spans[0].Resource.Set().Value("service.name"); !ok || v.AsString() != "thauth-test" {
		t.Errorf("service.name = %v", v)
	}
	if spans[0].InstrumentationScope.Name != InstrumentationName {
		t.Errorf("scope %q", spans[0].InstrumentationScope.Name)
	}
}

// Snapshot updates are spans with the store calls they make as children.
func TestSyncSpans(t *testing.T) {
	ctx := t.Context()
	p, exp := setup(t, 1)
	inner, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	if err := inner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	st := metrics.WrapStore(inner, metrics.StoreOptions{Tracer: p.Tracer()})
	org := &thauth.Organization{ID: uuid.NewString(), Name: "Acme", CreatedAt: time.Now().UTC()}
	proj := &thauth.Project{ID: uuid.NewString(), Name: "shop", CreatedAt: time.Now().UTC()}
	if err := inner.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	if err := inner.CreateProject(ctx, org.ID, proj); err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Options{SyncHook: p.SyncHook()})
	if err := eng.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	missing := uuid.NewString()
	if _, err := eng.Sync(ctx, missing); !thauth.IsNotFound(err) {
		t.Fatalf("Sync of a missing project: %v", err)
	}
	// Nothing changed: SyncAll catches no project up, so it makes no span (polling an idle
	// installation exports nothing).
	exp.Reset()
	if err := eng.SyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("idle SyncAll made %d spans: %v", n, exp.GetSpans())
	}
	exp.Reset()
	if _, err := eng.Sync(ctx, missing); !thauth.IsNotFound(err) {
		t.Fatal(err)
	}
	if _, err := eng.Sync(ctx, proj.ID); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	var syncs []tracetest.SpanStub
	children := map[trace.SpanID][]string{}
	for _, s := range spans {
		if s.Name == "engine sync" {
			syncs = append(syncs, s)
		} else {
			children[s.Parent.SpanID()] = append(children[s.Parent.SpanID()], s.Name)
		}
	}
	if len(syncs) != 2 {
		t.Fatalf("%d sync spans, want 2: %v", len(syncs), spans)
	}
	failed, ok := syncs[0], syncs[1]
	if v := attrOf(failed.Attributes, "thauth.project_id"); v != missing {
		t.Errorf("project id %q, want %q", v, missing)
	}
	if failed.Status.Code != codes.Error || attrOf(failed.Attributes, "thauth.error_code") != "not_found" {
		t.Errorf("failed sync: status %v, attributes %v", failed.Status, failed.Attributes)
	}
	if ok.Status.Code != codes.Unset || attrOf(ok.Attributes, "thauth.project_id") != proj.ID {
		t.Errorf("sync: status %v, attributes %v", ok.Status, ok.Attributes)
	}
	// The failed sync of a missing project read the project; the other (already loaded,
	// nothing new) read the change log.
	if got := children[failed.SpanContext.SpanID()]; len(got) == 0 || !contains(got, "store GetProject") {
		t.Errorf("store spans under the failed sync: %v", got)
	}
	if got := children[ok.SpanContext.SpanID()]; !contains(got, "store ChangesSince") {
		t.Errorf("store spans under the sync: %v", got)
	}
}

// With an endpoint, spans go to the collector over OTLP/HTTP with the configured headers
// (a local server stands in for the collector).
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	var paths, keys []string
	var bodyLen int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		keys = append(keys, r.Header.Get("X-Collector-Key"))
		bodyLen += len(b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	p, shutdown, err := Setup(t.Context(), Options{
		Endpoint: srv.URL, Headers: map[string]string{"X-Collector-Key": "k-123"}, SampleRatio: 1,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, s := p.Tracer().Start(context.Background(), "exported")
	s.SetAttributes(attribute.String("k", "v"))
	s.End()
	if err := shutdown(t.Context()); err != nil { // flushes
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 || paths[0] != "POST /v1/traces" || keys[0] != "k-123" || bodyLen == 0 {
		t.Errorf("collector saw %v with keys %v (%d bytes)", paths, keys, bodyLen)
	}
}

func TestThrottledHandler(t *testing.T) {
	var buf strings.Builder
	h := throttledHandler(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for range 5 {
		h.Handle(io.ErrUnexpectedEOF)
	}
	if n := strings.Count(buf.String(), "exporting spans failed"); n != 1 {
		t.Errorf("%d lines for 5 errors within the interval, want 1:\n%s", n, buf.String())
	}
}

func attrOf(kvs []attribute.KeyValue, key string) string {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
