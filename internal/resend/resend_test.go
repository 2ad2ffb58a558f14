package resend_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/thauth/thauth/internal/resend"
	"github.com/thauth/thauth/internal/resend/resendtest"
)

const testKey = "re_test_0123456789abcdefSECRET"

func newClient(t *testing.T, srv *resendtest.Server, key string) *resend.Client {
	t.Helper()
	c, err := resend.New(key, resend.Options{BaseURL: srv.URL, UserAgent: "thauth-test/1"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func email() resend.Email {
	return resend.Email{
		From:    "Thauth <no-reply@thauth.test>",
		To:      []string{"ada@example.com"},
		Subject: "Verify your email address",
		HTML:    "<p>Hello <b>Ada</b></p>",
		Text:    "Hello Ada",
	}
}

// noKey fails when s (an error text, a printed value) holds the API key.
func noKey(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, testKey) || strings.Contains(s, "SECRET") {
		t.Errorf("%s holds the API key: %q", what, s)
	}
}

func TestSendRequestShape(t *testing.T) {
	srv := resendtest.New(t, testKey)
	c := newClient(t, srv, testKey)
	e := email()
	e.ReplyTo = []string{"support@thauth.test"}
	e.IdempotencyKey = "0198c2a4-mail-1"
	id, err := c.Send(context.Background(), e)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.Emails()
	want := []resendtest.Received{{
		ID: id, From: e.From, To: e.To, ReplyTo: e.ReplyTo, Subject: e.Subject, HTML: e.HTML, Text: e.Text,
		IdempotencyKey: e.IdempotencyKey, UserAgent: "thauth-test/1",
	}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(resendtest.Received{}, "At")); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if id == "" {
		t.Error("empty id")
	}
}

// TestSendHeaders checks the raw request against the published contract, with a handler
// that captures it (the fake only checks what it needs).
func TestSendHeaders(t *testing.T) {
	var got *http.Request
	var body string
	mux := http.NewServeMux()
	mux.HandleFunc("/emails", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, body = r, string(b)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}`)
	})
	srv := newHTTPServer(t, mux)
	c, err := resend.New(testKey, resend.Options{BaseURL: srv})
	if err != nil {
		t.Fatal(err)
	}
	e := email()
	e.IdempotencyKey = "k-1"
	id, err := c.Send(context.Background(), e)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if id != "4ef9a417-02e9-4d39-ad75-9611e0fcc33c" {
		t.Errorf("id = %q", id)
	}
	checks := map[string]string{
		"Method":          got.Method,
		"Authorization":   got.Header.Get("Authorization"),
		"Content-Type":    got.Header.Get("Content-Type"),
		"Idempotency-Key": got.Header.Get("Idempotency-Key"),
		"User-Agent":      got.Header.Get("User-Agent"),
	}
	want := map[string]string{
		"Method":          "POST",
		"Authorization":   "Bearer " + testKey,
		"Content-Type":    "application/json",
		"Idempotency-Key": "k-1",
		"User-Agent":      resend.DefaultUserAgent,
	}
	if diff := cmp.Diff(want, checks); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	wantBody := `{"from":"Thauth \u003cno-reply@thauth.test\u003e","to":["ada@example.com"],"subject":"Verify your email address","html":"\u003cp\u003eHello \u003cb\u003eAda\u003c/b\u003e\u003c/p\u003e","text":"Hello Ada"}`
	if body != wantBody {
		t.Errorf("body =\n%s\nwant\n%s", body, wantBody)
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		setup  func(*resendtest.Server)
		edit   func(*resend.Email)
		want   resend.Error
		inText string
	}{
		{
			name: "invalid api key", key: "re_wrong_key",
			want: resend.Error{StatusCode: 403, Name: "invalid_api_key", Message: "API key is invalid."},
		},
		{
			name: "missing subject", key: testKey, edit: func(e *resend.Email) { e.Subject = "" },
			want:   resend.Error{StatusCode: 422, Name: "validation_error", Message: "Missing `subject` field."},
			inText: "subject",
		},
		{
			name: "missing from", key: testKey, edit: func(e *resend.Email) { e.From = "" },
			want:   resend.Error{StatusCode: 422, Name: "validation_error", Message: "Missing `from` field."},
			inText: "from",
		},
		{
			name: "no body", key: testKey, edit: func(e *resend.Email) { e.HTML, e.Text = "", "" },
			want: resend.Error{StatusCode: 422, Name: "validation_error", Message: "Missing `html` or `text` field."},
		},
		{
			name: "bad recipient", key: testKey, edit: func(e *resend.Email) { e.To = []string{"not an address"} },
			want:   resend.Error{StatusCode: 422, Name: "validation_error", Message: "Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."},
			inText: "`to`",
		},
		{
			name: "rate limited", key: testKey,
			setup: func(s *resendtest.Server) { s.FailNext(1, 429, 3*time.Second) },
			want: resend.Error{StatusCode: 429, Name: "rate_limit_exceeded", RetryAfter: 3 * time.Second, Retryable: true,
				Message: "Too many requests. Please limit the number of requests per second. Or contact support to increase rate limit."},
		},
		{
			name: "server error", key: testKey,
			setup: func(s *resendtest.Server) { s.FailNext(1, 500, 0) },
			want:  resend.Error{StatusCode: 500, Name: "internal_server_error", Message: "An unexpected error occurred.", Retryable: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := resendtest.New(t, testKey)
			if tt.setup != nil {
				tt.setup(srv)
			}
			c := newClient(t, srv, tt.key)
			e := email()
			if tt.edit != nil {
				tt.edit(&e)
			}
			id, err := c.Send(context.Background(), e)
			var re *resend.Error
			if !errors.As(err, &re) {
				t.Fatalf("Send = %q, %v; want a *resend.Error", id, err)
			}
			if diff := cmp.Diff(tt.want, *re); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), tt.inText) {
				t.Errorf("error %q does not name %q", err, tt.inText)
			}
			noKey(t, "error", err.Error())
			if n := len(srv.Emails()); n != 0 {
				t.Errorf("%d emails recorded after an error", n)
			}
		})
	}
}

func TestMissingAPIKeyAndUserAgent(t *testing.T) {
	// The client never sends these requests; the fake's answers are checked directly.
	srv := resendtest.New(t, testKey)
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
		wantBody   string
	}{
		{"no authorization", map[string]string{"User-Agent": "x/1", "Content-Type": "application/json"}, 401, `"missing_api_key"`},
		{"no user agent", map[string]string{"Authorization": "Bearer " + testKey, "Content-Type": "application/json", "User-Agent": ""}, 403, "error code: 1010"},
		{"not json", map[string]string{"Authorization": "Bearer " + testKey, "User-Agent": "x/1", "Content-Type": "text/plain"}, 400, `"validation_error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/emails", strings.NewReader(`{"from":"a@b.test","to":"c@d.test","subject":"s","text":"t"}`))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantBody) {
				t.Errorf("got %d %s, want %d with %s", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestNonJSONErrorIsClassifiedByStatus(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/emails", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	})
	c, err := resend.New(testKey, resend.Options{BaseURL: newHTTPServer(t, mux)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(context.Background(), email())
	var re *resend.Error
	if !errors.As(err, &re) || re.StatusCode != 502 || re.Name != "http_502" || !re.Retryable {
		t.Errorf("Send error = %#v, want a retryable http_502", err)
	}
}

func TestIdempotentRetry(t *testing.T) {
	srv := resendtest.New(t, testKey)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	srv.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	c := newClient(t, srv, testKey)
	ctx := context.Background()
	e := email()
	e.IdempotencyKey = "0198c2a4-0000-7000-8000-000000000001"

	id1, err := c.Send(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	// A retry (the first answer was lost, say) returns the same id and sends nothing.
	id2, err := c.Send(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Errorf("retry id = %q, want %q", id2, id1)
	}
	if n := len(srv.Emails()); n != 1 {
		t.Errorf("%d emails recorded, want 1", n)
	}

	// The same key with another body is refused for good.
	other := e
	other.Subject = "Something else"
	_, err = c.Send(ctx, other)
	var re *resend.Error
	if !errors.As(err, &re) || re.StatusCode != 409 || re.Name != "invalid_idempotent_request" || re.Retryable {
		t.Errorf("reused key with another body: %v, want a non-retryable 409 invalid_idempotent_request", err)
	}

	// After 24 hours the key is forgotten: the same request sends again.
	mu.Lock()
	now = now.Add(24*time.Hour + time.Second)
	mu.Unlock()
	id3, err := c.Send(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if id3 == id1 || len(srv.Emails()) != 2 {
		t.Errorf("after 24h: id %q (first %q), %d emails; want a new email", id3, id1, len(srv.Emails()))
	}
}

func TestRateLimitThenSuccess(t *testing.T) {
	srv := resendtest.New(t, testKey)
	srv.FailNext(2, 429, time.Second)
	c := newClient(t, srv, testKey)
	e := email()
	e.IdempotencyKey = "k"
	for i := range 2 {
		_, err := c.Send(context.Background(), e)
		var re *resend.Error
		if !errors.As(err, &re) || !re.Retryable || re.RetryAfter != time.Second {
			t.Fatalf("attempt %d: %v, want a retryable 429 with RetryAfter 1s", i+1, err)
		}
	}
	if _, err := c.Send(context.Background(), e); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if n := len(srv.Emails()); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
}

func TestNetworkErrorIsRetryable(t *testing.T) {
	srv := resendtest.New(t, testKey)
	c := newClient(t, srv, testKey)
	srv.Close()
	_, err := c.Send(context.Background(), email())
	var re *resend.Error
	if !errors.As(err, &re) || re.Name != "network_error" || !re.Retryable || re.Err == nil {
		t.Fatalf("Send to a closed server: %v, want a retryable network_error", err)
	}
	noKey(t, "network error", err.Error())
}

func TestNew(t *testing.T) {
	tests := []struct {
		name, key, base, wantErr string
	}{
		{"empty key", "", "", "API key is empty"},
		{"plain http elsewhere", testKey, "http://api.resend.com", "must use https"},
		{"not a URL", testKey, "api.resend.com", "not an absolute"},
		{"default", testKey, "", ""},
		{"loopback http", testKey, "http://127.0.0.1:9", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resend.New(tt.key, resend.Options{BaseURL: tt.base})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
			noKey(t, "New error", err.Error())
		})
	}
}

func TestClientNeverPrintsKey(t *testing.T) {
	c, err := resend.New(testKey, resend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		noKey(t, format, fmt.Sprintf(format, c))
	}
}

func TestSendRefusesInvalidEmailLocally(t *testing.T) {
	srv := resendtest.New(t, testKey)
	c := newClient(t, srv, testKey)
	e := email()
	e.To = nil
	if _, err := c.Send(context.Background(), e); err == nil {
		t.Error("Send without a recipient succeeded")
	}
	e = email()
	e.IdempotencyKey = strings.Repeat("k", 257)
	if _, err := c.Send(context.Background(), e); err == nil {
		t.Error("Send with a 257-character idempotency key succeeded")
	}
	if n := srv.Requests(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
}
