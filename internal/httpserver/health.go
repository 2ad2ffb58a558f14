package httpserver

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/thauth/thauth"
)

// pingTimeout bounds the store check of /readyz.
const pingTimeout = 2 * time.Second

// healthz answers 200 "ok" while the process is up (liveness).
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header()["Content-Type"] = hdrTextPlain
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok"))
}

// readyz answers whether the node should receive traffic (readiness).
//
//   - 200 {"status": "ready"}: snapshots loaded and the store answers.
//   - 200 {"status": "degraded", "store": "unreachable"}: snapshots loaded but the store does
//     not answer. Decisions are served from memory, so the node keeps answering them (from
//     snapshots as old as snapshot_staleness_seconds); writes fail with 503. Taking every
//     node out of the load balancer during a database outage would turn it into a decision
//     outage.
//   - 503: the engine is still loading its snapshots (nothing can be answered yet).
//
// Every answer carries "checks" {"engine", "store"} and "snapshot_staleness_seconds", the
// time since this node last caught up with the store completely (0 before the first time).
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{"engine": "ok", "store": "ok"}
	loaded := s.eng.Ready()
	if !loaded {
		checks["engine"] = "loading"
	}
	if s.ping != nil {
		ctx, cancel := context.WithTimeout(r.Context(), pingTimeout)
		err := s.ping(ctx)
		cancel()
		if err != nil {
			checks["store"] = "unreachable"
			// The cause stays in the logs: /readyz is unauthenticated.
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "readiness: store ping failed",
				slog.String("request_id", requestID(r)), slog.Any("err", err))
		}
	}
	staleness := math.Round(s.eng.Staleness().Seconds()*1000) / 1000
	if !loaded {
		msg := "not ready: engine loading"
		if checks["store"] != "ok" {
			msg += ", store unreachable"
		}
		s.writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: msg, Code: thauth.EUnavailable, Checks: checks})
		return
	}
	status := "ready"
	if checks["store"] != "ok" {
		status = "degraded"
	}
	s.writeJSON(w, http.StatusOK, struct {
		Status    string            `json:"status"`
		Store     string            `json:"store"`
		Staleness float64           `json:"snapshot_staleness_seconds"`
		Checks    map[string]string `json:"checks"`
	}{status, checks["store"], staleness, checks})
}
