// Package resend is a client for the email sending endpoint of Resend's HTTP API
// (https://resend.com/docs/api-reference), written against its published contract with the
// standard library only:
//
//   - POST {base}/emails with a JSON body {from, to[], subject, html, text, reply_to[]},
//     answered 200 {"id": "..."};
//   - Authorization: Bearer re_...; a User-Agent header is required (requests without one are
//     refused with 403 before reaching the API);
//   - an optional Idempotency-Key header (1–256 characters): within 24 hours the same key with
//     the same body returns the first response without sending again, and the same key with a
//     different body is refused (409 invalid_idempotent_request);
//   - errors are {"statusCode", "name", "message"} with names such as validation_error (400,
//     422), missing_api_key (401), invalid_api_key (403), invalid_idempotent_request and
//     concurrent_idempotent_requests (409), rate_limit_exceeded and daily_quota_exceeded (429,
//     with retry-after and ratelimit-* headers), internal_server_error (500).
//
// The API key is a credential: it is only ever written into the Authorization header, never
// into an error, a log line or the client's printed form.
package resend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is Resend's API.
const DefaultBaseURL = "https://api.resend.com"

// DefaultUserAgent is sent when Options.UserAgent is empty.
const DefaultUserAgent = "thauth-resend/1"

// maxResponse bounds how much of a response body is read.
const maxResponse = 1 << 20

// Options configure a Client.
type Options struct {
	// BaseURL is the API's root. Default DefaultBaseURL. It must be https, except on a
	// loopback host (a test server).
	BaseURL string
	// HTTPClient sends the requests. Default: a client with a 30s timeout. Redirects are
	// never followed (the API does not redirect; following one could leak the message).
	HTTPClient *http.Client
	// UserAgent identifies the caller (Resend requires one). Default DefaultUserAgent.
	UserAgent string
}

// Client sends email through Resend. It is safe for concurrent use.
type Client struct {
	apiKey    string
	endpoint  string
	http      *http.Client
	userAgent string
}

// New returns a client authenticating with apiKey. It fails when apiKey is empty or the base
// URL is not https (or http on loopback).
func New(apiKey string, o Options) (*Client, error) {
	if strings.TrimSpace(apiKey) == "" {
		return nil, errors.New("resend: the API key is empty")
	}
	if strings.ContainsAny(apiKey, "\r\n ") {
		return nil, errors.New("resend: the API key contains a space or a line break")
	}
	base := o.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("resend: base URL %q is not an absolute http(s) URL", base)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("resend: base URL %q must use https (plain http is only allowed on loopback, for tests)", base)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	// Never follow a redirect: copy the client so the caller's is left alone.
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ua := o.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	return &Client{
		apiKey:    apiKey,
		endpoint:  strings.TrimRight(base, "/") + "/emails",
		http:      &c,
		userAgent: ua,
	}, nil
}

// String hides the API key when the client is printed.
func (c *Client) String() string { return "resend.Client{" + c.endpoint + "}" }

// GoString hides the API key from %#v.
func (c *Client) GoString() string { return c.String() }

// LogValue hides the API key from slog.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Email is one message to send.
type Email struct {
	From    string   // "Name <address>" or an address
	To      []string // at most 50
	ReplyTo []string
	Subject string
	HTML    string
	Text    string
	// IdempotencyKey (optional, 1–256 characters) makes retries safe: Resend sends the
	// message once per key within 24 hours.
	IdempotencyKey string
}

// request is the JSON body of POST /emails.
type request struct {
	From    string   `json:"from"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	HTML    string   `json:"html,omitempty"`
	Text    string   `json:"text,omitempty"`
	ReplyTo []string `json:"reply_to,omitempty"`
}

// Error is a failed send. StatusCode is the HTTP status (0 when no answer came); Name is
// Resend's error name ("validation_error", "rate_limit_exceeded", ...) or "network_error" /
// "invalid_response"; Message is Resend's explanation. RetryAfter is the wait Resend asked
// for (429), 0 when none. Retryable reports whether sending the same request again may
// succeed: network errors, 429, 5xx and concurrent_idempotent_requests are; other answers
// (invalid input, bad key, idempotency key reused with another body) are not.
type Error struct {
	StatusCode int
	Name       string
	Message    string
	RetryAfter time.Duration
	Retryable  bool
	// Err is the transport error behind a network_error.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("resend: ")
	b.WriteString(e.Name)
	if e.StatusCode != 0 {
		b.WriteString(" (" + strconv.Itoa(e.StatusCode) + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Send sends e and returns Resend's id for it. Errors are *Error (see Error for which are
// retryable), except for an invalid Email (no recipient, a too long idempotency key), which
// is refused before any request with a plain error. No error ever holds the API key.
func (c *Client) Send(ctx context.Context, e Email) (string, error) {
	if len(e.To) == 0 {
		return "", errors.New("resend: the email has no recipient")
	}
	if len(e.IdempotencyKey) > 256 {
		return "", errors.New("resend: the idempotency key is longer than 256 characters")
	}
	if strings.ContainsAny(e.IdempotencyKey, "\r\n") {
		return "", errors.New("resend: the idempotency key contains a line break")
	}
	body, err := json.Marshal(request{From: e.From, To: e.To, Subject: e.Subject, HTML: e.HTML, Text: e.Text, ReplyTo: e.ReplyTo})
	if err != nil {
		return "", fmt.Errorf("resend: encoding the email: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("resend: building the request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if e.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", e.IdempotencyKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the URL (never the key, which only travels in a header).
		return "", &Error{Name: "network_error", Retryable: true, Err: c.scrub(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return "", &Error{StatusCode: resp.StatusCode, Name: "network_error", Retryable: true, Err: c.scrub(err)}
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		var ok struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &ok); err != nil || ok.ID == "" {
			// The email may well have been sent: retrying with the same idempotency
			// key is safe and gets the id.
			return "", &Error{StatusCode: resp.StatusCode, Name: "invalid_response", Message: "the answer holds no email id", Retryable: true}
		}
		return ok.ID, nil
	}
	return "", c.errorFrom(resp, raw)
}

// errorFrom decodes an error answer.
func (c *Client) errorFrom(resp *http.Response, raw []byte) *Error {
	var body struct {
		StatusCode int    `json:"statusCode"`
		Name       string `json:"name"`
		Message    string `json:"message"`
	}
	e := &Error{StatusCode: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Name != "" {
		e.Name, e.Message = body.Name, body.Message
	} else {
		// Not Resend's JSON (a proxy's page, a 403 for a missing User-Agent).
		e.Name = "http_" + strconv.Itoa(resp.StatusCode)
		e.Message = strings.TrimSpace(http.StatusText(resp.StatusCode))
	}
	e.Message = c.redactKey(truncate(e.Message, 300))
	e.Name = c.redactKey(truncate(e.Name, 100))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Retryable = true
		e.RetryAfter = retryAfter(resp.Header)
	case resp.StatusCode >= 500:
		e.Retryable = true
		e.RetryAfter = retryAfter(resp.Header)
	case resp.StatusCode == http.StatusConflict && e.Name == "concurrent_idempotent_requests":
		e.Retryable = true
	}
	return e
}

// retryAfter reads Retry-After (seconds or an HTTP date), else ratelimit-reset (seconds).
func retryAfter(h http.Header) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 && n < 7*24*3600 {
			return time.Duration(n * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := time.Until(t); d > 0 {
				return d
			}
		}
	}
	if v := strings.TrimSpace(h.Get("Ratelimit-Reset")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 && n < 7*24*3600 {
			return time.Duration(n * float64(time.Second))
		}
	}
	return 0
}

// scrub returns err with the API key removed from its text (it should never be there: this
// is defence in depth against a transport that echoes headers).
func (c *Client) scrub(err error) error {
	if strings.Contains(err.Error(), c.apiKey) {
		return errors.New(c.redactKey(err.Error()))
	}
	return err
}

func (c *Client) redactKey(s string) string {
	return strings.ReplaceAll(s, c.apiKey, "[api key]")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
