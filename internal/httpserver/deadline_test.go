package httpserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A route with its own deadline must be able to answer after the server's (shorter)
// WriteTimeout: withTimeout moves the request's write deadline past its own.
func TestDeadlineRoutesOutliveServerWriteTimeout(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			http.Error(w, "deadline", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "done")
	})
	for _, c := range []struct {
		name    string
		handler http.Handler
		wantOK  bool
	}{
		{"with route deadline", withTimeout(5*time.Second, slow), true},
		{"without", slow, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(c.handler)
			srv.Config.WriteTimeout = 50 * time.Millisecond
			srv.Start()
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if !c.wantOK {
				if err == nil {
					body, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr == nil && string(body) == "done" {
						t.Fatal("control: the server's WriteTimeout did not cut the slow answer; the test proves nothing")
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || string(body) != "done" {
				t.Fatalf("got %d %q %v, want 200 done", resp.StatusCode, body, err)
			}
		})
	}
}
