package httpserver

import (
	"context"
	"log/slog"
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

// readyz answers 200 when the engine has loaded every project and the store answers, else
// 503 with what is not ready (readiness: take the node out of the load balancer).
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{"engine": "ok", "store": "ok"}
	ready := true
	if !s.eng.Ready() {
		checks["engine"] = "loading"
		ready = false
	}
	if s.ping != nil {
		ctx, cancel := context.WithTimeout(r.Context(), pingTimeout)
		err := s.ping(ctx)
		cancel()
		if err != nil {
			checks["store"] = "unreachable"
			ready = false
			// The cause stays in the logs: /readyz is unauthenticated.
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "readiness: store ping failed",
				slog.String("request_id", requestID(r)), slog.Any("err", err))
		}
	}
	if !ready {
		msg := "not ready:"
		if checks["engine"] != "ok" {
			msg += " engine loading"
			if checks["store"] != "ok" {
				msg += ","
			}
		}
		if checks["store"] != "ok" {
			msg += " store unreachable"
		}
		s.writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: msg, Code: thauth.EUnavailable, Checks: checks})
		return
	}
	s.writeJSON(w, http.StatusOK, struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}{"ready", checks})
}
