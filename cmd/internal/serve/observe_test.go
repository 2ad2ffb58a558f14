package serve

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/httpserver"
	"github.com/thauth/thauth/internal/metrics"
	"github.com/thauth/thauth/internal/sqlite"
)

func TestObserveValidate(t *testing.T) {
	if ps := DefaultObserve().Validate(); len(ps) != 0 {
		t.Errorf("defaults invalid: %v", ps)
	}
	for _, c := range []ObserveConfig{
		{MetricsAddr: "localhost", TraceSampleRatio: 1},
		{MetricsAddr: "127.0.0.1:", TraceSampleRatio: 1},
		{TraceSampleRatio: 2},
		{OTLPEndpoint: "collector:4318", TraceSampleRatio: 1},
		{OTLPEndpoint: "http://c:4318", TraceSampleRatio: 1, OTLPHeaders: map[string]string{"bad name": "x"}},
	} {
		if ps := c.Validate(); len(ps) != 1 {
			t.Errorf("Validate(%+v) = %v, want one problem", c, ps)
		}
	}
}

func TestObservability(t *testing.T) {
	ctx := t.Context()
	o, err := StartObservability(ctx, ObserveConfig{MetricsAddr: "127.0.0.1:0", TraceSampleRatio: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Shutdown(context.Background())
	if o.Metrics == nil || o.Tracing != nil {
		t.Fatalf("metrics %v, tracing %v", o.Metrics, o.Tracing)
	}
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	wrapped := o.WrapStore(st)
	if metrics.Unwrap(wrapped) != st || wrapped == st {
		t.Fatal("the store is not decorated")
	}
	var eo engine.Options
	o.EngineOptions(&eo)
	if eo.SyncHook != nil {
		t.Error("a sync hook with tracing off")
	}
	eng := engine.New(wrapped, eo)
	if err := eng.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	var d httpserver.Deps
	o.HTTPDeps(&d)
	if d.Metrics == nil || d.Tracer != nil || d.DecisionObserver == nil || d.OnAuthFailure == nil || d.OnRateLimited == nil {
		t.Errorf("Deps: %+v", d)
	}
	o.Watch(eng, wrapped)
	d.OnAuthFailure("unknown_key")

	resp, err := http.Get("http://" + o.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"go_goroutines", "thauth_snapshot_staleness_seconds", "thauth_mail_outbox_pending",
		`thauth_auth_failures_total{kind="unknown_key"} 1`, `thauth_store_operation_duration_seconds_count{op="ProjectRevisions"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if resp, err := http.Get("http://" + o.MetricsAddr() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET / on the metrics listener: %d", resp.StatusCode)
		}
	}
	if err := o.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + o.MetricsAddr() + "/metrics"); err == nil {
		t.Error("the metrics listener still answers after Shutdown")
	}
}

func TestObservabilityOff(t *testing.T) {
	o, err := StartObservability(t.Context(), ObserveConfig{TraceSampleRatio: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Metrics != nil || o.Tracing != nil || o.MetricsAddr() != "" {
		t.Fatalf("something is on: %+v", o)
	}
	var d httpserver.Deps
	o.HTTPDeps(&d)
	var eo engine.Options
	o.EngineOptions(&eo)
	if d.Metrics != nil || d.Tracer != nil || d.DecisionObserver != nil || eo.SyncHook != nil {
		t.Errorf("off, yet Deps %+v, SyncHook set %v", d, eo.SyncHook != nil)
	}
	if err := o.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	var none *Observability
	if none.WrapStore(nil) != nil || none.MetricsAddr() != "" || none.Shutdown(t.Context()) != nil {
		t.Error("a nil Observability does something")
	}
}
