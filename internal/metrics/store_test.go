package metrics

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/metrics/gen"
	"github.com/thauth/thauth/internal/metrics/metricstest"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/sqlite"
)

// store_gen.go must be what the generator makes of the current interfaces: a method added
// to thauth.Data or thauth.Store without `go generate ./internal/metrics` fails here (and,
// since the wrapper would no longer implement thauth.Store, the build too).
func TestGeneratedStoreIsCurrent(t *testing.T) {
	want, err := gen.Generate("../..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("store_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("store_gen.go is stale: run `go generate ./internal/metrics`")
	}
}

// Every store method that takes a context is an operation of its own (op label), so that
// none is timed under another's name or forgotten.
func TestEveryStoreMethodIsAnOp(t *testing.T) {
	ops := map[string]bool{}
	for _, n := range opNames {
		ops[n] = true
	}
	ctxType := reflect.TypeFor[context.Context]()
	for _, typ := range []reflect.Type{reflect.TypeFor[thauth.Store](), reflect.TypeFor[thauth.SubjectBulkWriter]()} {
		for i := range typ.NumMethod() {
			m := typ.Method(i)
			takesCtx := m.Type.NumIn() > 0 && m.Type.In(0) == ctxType
			if takesCtx != ops[m.Name] {
				t.Errorf("%s.%s: takes a context %v, is an op %v", typ.Name(), m.Name, takesCtx, ops[m.Name])
			}
		}
	}
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

func newTracer() (trace.Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	return tp.Tracer("test"), exp
}

func TestWrapStoreNothingToObserve(t *testing.T) {
	st := openStore(t)
	if got := WrapStore(st, StoreOptions{}); got != thauth.Store(st) {
		t.Errorf("WrapStore with no options wrapped the store: %T", got)
	}
	if Unwrap(st) != thauth.Store(st) {
		t.Error("Unwrap of an unwrapped store")
	}
}

func TestWrapStoreMetricsAndSpans(t *testing.T) {
	ctx := t.Context()
	inner := openStore(t)
	m := New()
	tr, exp := newTracer()
	st := WrapStore(inner, StoreOptions{Metrics: m, Tracer: tr})
	if Unwrap(st) != thauth.Store(inner) {
		t.Fatal("Unwrap does not return the inner store")
	}
	if _, ok := st.(interface{ Unwrap() thauth.Store }); !ok {
		t.Error("the wrapper has no Unwrap method")
	}

	// Outside a span: timed, not traced.
	org := &thauth.Organization{ID: uuid.NewString(), Name: "Acme", CreatedAt: time.Now().UTC()}
	if err := st.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans for a call outside any span, want 0", n)
	}

	// Under a span: a child span per call; failures carry the code, not the message.
	pctx, parent := tr.Start(ctx, "request")
	got, err := st.GetOrganization(pctx, org.ID)
	if err != nil || got.Name != "Acme" {
		t.Fatalf("GetOrganization = %v, %v", got, err)
	}
	if _, err := st.GetOrganization(pctx, uuid.NewString()); !thauth.IsNotFound(err) {
		t.Fatalf("GetOrganization of a missing org: %v", err)
	}
	// A transaction: its calls are children of its span, made on the decorated Data.
	err = st.Tx(pctx, func(ctx context.Context, tx thauth.Data) error {
		if _, ok := tx.(*data); !ok {
			t.Errorf("the transaction's Data is not decorated: %T", tx)
		}
		if _, ok := tx.(thauth.SubjectBulkWriter); ok {
			t.Error("the decorated Data claims SubjectBulkWriter, which SQLite's does not implement")
		}
		_, err := tx.ListProjects(ctx, org.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	parent.End()

	spans := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
	}
	if n := len(byName["store GetOrganization"]); n != 2 {
		t.Fatalf("%d GetOrganization spans, want 2 (spans: %v)", n, names(spans))
	}
	ok, missing := byName["store GetOrganization"][0], byName["store GetOrganization"][1]
	if ok.Parent.SpanID() != parent.SpanContext().SpanID() || ok.SpanKind != trace.SpanKindClient {
		t.Errorf("GetOrganization span: parent %v kind %v", ok.Parent.SpanID(), ok.SpanKind)
	}
	if ok.Status.Code != codes.Unset {
		t.Errorf("successful call has status %v", ok.Status)
	}
	if missing.Status.Code != codes.Error || missing.Status.Description != "" {
		t.Errorf("failed call has status %+v, want Error without a message", missing.Status)
	}
	if v := attr(missing.Attributes, "thauth.error_code"); v != "not_found" {
		t.Errorf("thauth.error_code = %q, want not_found", v)
	}
	if v := attr(ok.Attributes, "db.operation.name"); v != "GetOrganization" {
		t.Errorf("db.operation.name = %q", v)
	}
	if len(byName["store Tx"]) != 1 || len(byName["store ListProjects"]) != 1 {
		t.Fatalf("spans: %v", names(spans))
	}
	txSpan, list := byName["store Tx"][0], byName["store ListProjects"][0]
	if list.Parent.SpanID() != txSpan.SpanContext.SpanID() {
		t.Error("the call in the transaction is not a child of the transaction's span")
	}

	s := metricstest.Scrape(t, m.Handler())
	want := map[string]float64{
		`thauth_store_operation_duration_seconds_count{op="CreateOrganization"}`: 1,
		`thauth_store_operation_duration_seconds_count{op="GetOrganization"}`:    2,
		`thauth_store_operation_duration_seconds_count{op="Tx"}`:                 1,
		`thauth_store_operation_duration_seconds_count{op="ListProjects"}`:       1,
	}
	// Only the ops called are exposed (a node uses a fraction of the store's methods).
	counts := map[string]float64{}
	for _, k := range metricstest.Series(s, "thauth_store_operation_duration_seconds_count") {
		counts[k] = s[k]
	}
	if d := cmp.Diff(want, counts); d != "" {
		t.Errorf("store op counts (-want +got):\n%s", d)
	}
}

// Metrics only: no tracer, so never a span, and no trace work.
func TestWrapStoreMetricsOnly(t *testing.T) {
	m := New()
	st := WrapStore(openStore(t), StoreOptions{Metrics: m})
	if err := st.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := metricstest.Scrape(t, m.Handler())[`thauth_store_operation_duration_seconds_count{op="Ping"}`]; got != 1 {
		t.Errorf("Ping count = %v, want 1", got)
	}
}

// bulk is a Data whose store writes subjects in bulk (as PostgreSQL's transactions do).
type bulk struct {
	thauth.Data
	calls int
}

func (b *bulk) WriteSubjects(ctx context.Context, projectID string, subjects []*thauth.SubjectGrants, now time.Time) error {
	b.calls++
	return nil
}

func TestWrapKeepsSubjectBulkWriter(t *testing.T) {
	m := New()
	o := WrapStore(openStore(t), StoreOptions{Metrics: m}).(*store).o
	inner := &bulk{}
	d := o.wrap(inner)
	bw, ok := d.(thauth.SubjectBulkWriter)
	if !ok {
		t.Fatal("the decorated Data lost SubjectBulkWriter")
	}
	if err := bw.WriteSubjects(t.Context(), "p", nil, time.Now()); err != nil || inner.calls != 1 {
		t.Fatalf("WriteSubjects: %v, %d calls", err, inner.calls)
	}
	if got := metricstest.Scrape(t, m.Handler())[`thauth_store_operation_duration_seconds_count{op="WriteSubjects"}`]; got != 1 {
		t.Errorf("WriteSubjects count = %v, want 1", got)
	}
}

// On PostgreSQL the transaction's Data writes subjects in bulk, and the decorated one still
// does (manage's config apply looks for it).
func TestWrapStorePostgresBulk(t *testing.T) {
	m := New()
	st := WrapStore(pgtest.Migrated(t), StoreOptions{Metrics: m})
	err := st.Tx(t.Context(), func(ctx context.Context, tx thauth.Data) error {
		if _, ok := tx.(thauth.SubjectBulkWriter); !ok {
			t.Errorf("the decorated PostgreSQL transaction lost SubjectBulkWriter: %T", tx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// With tracing on, a call outside any span starts no span and allocates nothing for
// tracing; a call with metrics only allocates nothing either.
func TestObserverAllocations(t *testing.T) {
	tr, _ := newTracer()
	m := New()
	ctx := context.Background()
	for name, o := range map[string]StoreOptions{"metrics": {Metrics: m}, "metrics+tracer": {Metrics: m, Tracer: tr}} {
		obs := WrapStore(openStore(t), o).(*store).o
		c2, c := obs.begin(ctx, opPing) // resolves Ping's histogram
		obs.end(opPing, c, nil)
		_ = c2
		n := testing.AllocsPerRun(1000, func() {
			c2, c := obs.begin(ctx, opPing)
			obs.end(opPing, c, nil)
			_ = c2
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per untraced call, want 0", name, n)
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(kvs []attribute.KeyValue, key string) string {
	for _, kv := range kvs {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}
