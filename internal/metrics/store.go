package metrics

//go:generate go run ./gen/storegen

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/thauth/thauth"
)

// StoreOptions selects what WrapStore observes.
type StoreOptions struct {
	// Metrics receives the duration of every call in
	// thauth_store_operation_duration_seconds{op}; nil records none.
	Metrics *Metrics
	// Tracer, when not nil, runs each store call made under a recording span (an HTTP
	// request's, a snapshot update's) in a child span named "store <Method>". Calls made
	// outside any span (background polling, workers) get none, so that idle nodes export
	// nothing. Spans carry the method name and, on failure, the error code — never
	// arguments, results or error messages.
	Tracer trace.Tracer
}

// WrapStore returns s observed as o says: every method of thauth.Store (and of the
// thauth.Data a Tx passes to its closure, including thauth.SubjectBulkWriter when the
// store's own Data implements it) is timed and, when tracing, spanned. With nothing to
// observe it returns s itself.
//
// The wrapper implements only thauth.Store (and SubjectBulkWriter inside Tx). The other
// optional interfaces of the stores — seal.KeyStore, thauth.Resealer,
// thauth.TableExporter/TableImporter, postgres Listen — are maintenance paths, not worth
// timing: give their users the undecorated store (Unwrap returns it).
//
// The methods are generated (store_gen.go, `go generate ./internal/metrics`) from the
// root package's interfaces; a test fails while the generated file is stale.
func WrapStore(s thauth.Store, o StoreOptions) thauth.Store {
	if o.Metrics == nil && o.Tracer == nil {
		return s
	}
	obs := &observer{tracer: o.Tracer}
	if o.Metrics != nil {
		obs.vec = o.Metrics.storeOps
		obs.hist = new([numOps]atomic.Pointer[observerBox])
	}
	if o.Tracer != nil {
		obs.spanNames = new([numOps]string)
		obs.spanOpts = new([numOps][]trace.SpanStartOption)
		for i, n := range opNames {
			obs.spanNames[i] = "store " + n
			obs.spanOpts[i] = []trace.SpanStartOption{
				trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("db.operation.name", n)),
			}
		}
	}
	return &store{data: data{d: s, o: obs}, s: s}
}

// Unwrap returns the store WrapStore wrapped, or s itself when s is not a wrapper.
func Unwrap(s thauth.Store) thauth.Store {
	if w, ok := s.(*store); ok {
		return w.s
	}
	return s
}

// observer times calls and starts their spans. The histogram of an op is resolved on its
// first call (so that only the ops a node uses are exposed) and kept.
type observer struct {
	vec       *prometheus.HistogramVec
	hist      *[numOps]atomic.Pointer[observerBox] // nil: no metrics
	tracer    trace.Tracer                         // nil: no spans
	spanNames *[numOps]string
	spanOpts  *[numOps][]trace.SpanStartOption
}

type observerBox struct{ prometheus.Observer }

// call is one store call in progress.
type call struct {
	start time.Time
	span  trace.Span // nil when not traced
}

func (o *observer) begin(ctx context.Context, op int) (context.Context, call) {
	var c call
	if o.tracer != nil && trace.SpanFromContext(ctx).IsRecording() {
		ctx, c.span = o.tracer.Start(ctx, o.spanNames[op], o.spanOpts[op]...)
	}
	if o.hist != nil {
		c.start = time.Now()
	}
	return ctx, c
}

func (o *observer) end(op int, c call, err error) {
	if o.hist != nil {
		h := o.hist[op].Load()
		if h == nil {
			h = &observerBox{o.vec.WithLabelValues(opNames[op])}
			o.hist[op].Store(h) // a race stores the same histogram twice: harmless
		}
		h.Observe(time.Since(c.start).Seconds())
	}
	if c.span != nil {
		if err != nil {
			// The code only: store error messages may quote values (an email in a
			// uniqueness violation), which do not belong in traces.
			c.span.SetStatus(codes.Error, "")
			c.span.SetAttributes(attribute.String("thauth.error_code", string(thauth.ErrorCodeOf(err))))
		}
		c.span.End()
	}
}

// wrap returns d observed; it implements thauth.SubjectBulkWriter when d does.
func (o *observer) wrap(d thauth.Data) thauth.Data {
	w := &data{d: d, o: o}
	if bw, ok := d.(thauth.SubjectBulkWriter); ok {
		return &bulkData{data: w, bw: bw}
	}
	return w
}

// data wraps a thauth.Data (the store's, or a transaction's); its methods are in
// store_gen.go.
type data struct {
	d thauth.Data
	o *observer
}

// store wraps a thauth.Store: data's methods plus Store's own.
type store struct {
	data
	s thauth.Store
}

// bulkData is a transaction's data whose store writes subjects in bulk.
type bulkData struct {
	*data
	bw thauth.SubjectBulkWriter
}

var (
	_ thauth.Store             = (*store)(nil)
	_ thauth.Data              = (*data)(nil)
	_ thauth.SubjectBulkWriter = (*bulkData)(nil)
)

// Unwrap returns the decorated store.
func (w *store) Unwrap() thauth.Store { return w.s }

// Tx runs fn in a transaction of the decorated store, with the transaction's Data
// decorated too. Its duration (op "Tx") includes every call made in it.
func (w *store) Tx(ctx context.Context, fn func(ctx context.Context, tx thauth.Data) error) error {
	ctx, c := w.o.begin(ctx, opTx)
	err := w.s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error { return fn(ctx, w.o.wrap(tx)) })
	w.o.end(opTx, c, err)
	return err
}
