package httpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The hot path is measured against a minimal net/http handler that decodes the same JSON
// with encoding/json and returns a fixed answer: the target is at least 60% of its
// throughput.
//
//	go test -run '^$' -bench 'CheckHandler' -benchmem ./internal/httpserver/

const benchBody = `{"subject":"user:alice","feature":"billing","action":"refund","resource":"invoices/42"}`

// baselineHandler is the reference: decode, answer.
func baselineHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Subject  string `json:"subject"`
			Feature  string `json:"feature"`
			Action   string `json:"action"`
			Tenant   string `json:"tenant"`
			Resource string `json:"resource"`
			Explain  bool   `json:"explain"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"allowed":true,"reason":"role:billing-admin"}`))
	})
}

// benchHandler is the real handler over a real store and engine, logging JSON access lines
// to io.Discard (so the cost of formatting them is included).
func benchHandler(b *testing.B, logged bool) (http.Handler, string) {
	e := newEnv(b)
	var log *slog.Logger
	if logged {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	h := New(Deps{Engine: e.eng, Manage: e.mg, Ping: e.store.Ping, Logger: log})
	// Sanity: the request is answered as expected.
	rec := serve(h, httptestRequest("POST", "/v1/check", benchBody, e.decisions, "application/json"))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"allowed":true`) {
		b.Fatalf("%d %s", rec.Code, rec.Body)
	}
	return h, e.decisions
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark measures the
// handler rather than a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

func runInProcess(b *testing.B, h http.Handler, token string) {
	body := []byte(benchBody)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("POST", "/v1/check", nil)
		r.Header.Set("Content-Type", "application/json")
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		rd := bytes.NewReader(body)
		rc := io.NopCloser(rd)
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			rd.Reset(body)
			r.Body = rc
			r.ContentLength = int64(len(body))
			delete(r.Header, "X-Request-Id")
			clear(w.h)
			w.status = 0
			h.ServeHTTP(w, r)
			if w.status != 0 && w.status != 200 {
				b.Fatalf("status %d", w.status)
			}
		}
	})
}

// BenchmarkCheckHandler measures POST /v1/check in process (no network), against the
// baseline.
func BenchmarkCheckHandler(b *testing.B) {
	b.Run("baseline", func(b *testing.B) { runInProcess(b, baselineHandler(), "") })
	b.Run("thauth", func(b *testing.B) {
		h, tok := benchHandler(b, true)
		b.ResetTimer()
		runInProcess(b, h, tok)
	})
	b.Run("thauth-nolog", func(b *testing.B) {
		h, tok := benchHandler(b, false)
		b.ResetTimer()
		runInProcess(b, h, tok)
	})
}

// BenchmarkCheckHandlerRecorder is BenchmarkCheckHandler written the common way: a new
// httptest request and recorder per call (their cost is in both numbers).
func BenchmarkCheckHandlerRecorder(b *testing.B) {
	run := func(b *testing.B, h http.Handler, token string) {
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rec := serve(h, httptestRequest("POST", "/v1/check", benchBody, token, "application/json"))
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
	b.Run("baseline", func(b *testing.B) { run(b, baselineHandler(), "") })
	b.Run("thauth", func(b *testing.B) {
		h, tok := benchHandler(b, true)
		run(b, h, tok)
	})
}

// BenchmarkCheckHandlerHTTP measures the same over loopback HTTP/1.1 with keep-alive, the
// way clients see it.
func BenchmarkCheckHandlerHTTP(b *testing.B) {
	run := func(b *testing.B, h http.Handler, token string) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		b.ReportAllocs()
		b.ResetTimer()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("POST", srv.URL+"/v1/check", strings.NewReader(benchBody))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
	b.Run("baseline", func(b *testing.B) { run(b, baselineHandler(), "") })
	b.Run("thauth", func(b *testing.B) {
		h, tok := benchHandler(b, true)
		run(b, h, tok)
	})
}
