package resend_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// newHTTPServer serves h on loopback for the test and returns its URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}
