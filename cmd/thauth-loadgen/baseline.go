package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/thauth/thauth/cmd/internal/serve"
)

// The baseline is the least a Go HTTP service answering the same requests must do: parse
// the request, decode the same JSON body strictly, and write a JSON answer. Comparing Thauth
// with it under identical load shows what authentication, evaluation and logging cost on
// top of net/http and encoding/json on this machine.

// baselineRequest is the body of POST /v1/check.
type baselineRequest struct {
	Subject  string  `json:"subject"`
	Feature  string  `json:"feature"`
	Action   string  `json:"action"`
	Tenant   *string `json:"tenant,omitempty"`
	Resource *string `json:"resource,omitempty"`
	Explain  bool    `json:"explain,omitempty"`
}

type baselineAnswer struct {
	Allowed    bool   `json:"allowed"`
	Reason     string `json:"reason"`
	DecisionID string `json:"decision_id"`
}

func baselineHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/check", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		var req baselineRequest
		if err := dec.Decode(&req); err != nil || req.Subject == "" || req.Feature == "" || req.Action == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"bad request"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(baselineAnswer{Allowed: true, Reason: "role:baseline", DecisionID: "00000000-0000-0000-0000-000000000000"})
	})
	return mux
}

// startBaseline serves the baseline on 127.0.0.1 with a free port and the same server
// limits as Thauth's; stop shuts it down.
func startBaseline() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	d := serve.Defaults()
	d.Observe.MetricsAddr = ""
	srv := &http.Server{
		Handler:           baselineHandler(),
		ReadHeaderTimeout: d.ReadHeaderTimeout,
		ReadTimeout:       d.ReadTimeout,
		WriteTimeout:      d.WriteTimeout,
		IdleTimeout:       d.IdleTimeout,
		MaxHeaderBytes:    d.MaxHeaderBytes,
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
