package thauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds every call of a Client made without WithHTTPClient or WithTimeout.
const DefaultTimeout = 10 * time.Second

// DefaultUserAgent is the User-Agent header sent unless WithUserAgent replaces it.
const DefaultUserAgent = "thauth-go"

// maxResponseBytes bounds how much of a response body is read (documents can be large).
const maxResponseBytes = 64 << 20

// Client talks to one Thauth server with one project API key. It is safe for concurrent use.
type Client struct {
	base      string // without trailing slash
	key       string
	http      *http.Client
	userAgent string
	now       func() time.Time

	mu         sync.Mutex
	configETag string // ETag of the last GET /v1/config answered 200
	configBody []byte // its body, decoded again for every caller (they get their own copy)
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests through hc (for custom transports,
// proxies or connection pools). hc's own Timeout applies; WithTimeout after this option
// sets it.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithTimeout bounds each call, including reading the response (0 means no limit besides
// the context's). It sets the timeout of the Client's http.Client.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		hc := *c.http // copy, so a caller's shared http.Client is not modified
		hc.Timeout = d
		c.http = &hc
	}
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// NewClient returns a client of the server at baseURL (such as "http://127.0.0.1:8080")
// authenticating with the project API key apiKey. Keys are never logged or put in errors.
func NewClient(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		key:       apiKey,
		http:      &http.Client{Timeout: DefaultTimeout},
		userAgent: DefaultUserAgent,
		now:       time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// String returns a pointer to s, for the optional fields of requests (TenantID, Resource).
func String(s string) *string { return &s }

// request is one HTTP call.
type request struct {
	method      string
	path        string // already escaped
	query       url.Values
	body        []byte
	contentType string
	accept      string
	header      http.Header
}

// response is a successful (2xx or 304) answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends r and returns the response for 2xx and 304, or an *Error for any other status.
// Transport failures are wrapped with the method and path.
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("thauth: %s %s: %w", r.method, r.path, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if r.body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("thauth: %s %s: %w", r.method, r.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("thauth: %s %s: reading response: %w", r.method, r.path, err)
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
		return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
	}
	return nil, errorFromResponse(resp.StatusCode, resp.Header, data, c.now())
}

// doJSON sends in (if not nil) as JSON and decodes a successful answer into out (if not nil).
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	r := request{method: method, path: path}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("thauth: %s %s: encoding request: %w", method, path, err)
		}
		r.body = b
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	return decode(method, path, resp.body, out)
}

func decode(method, path string, body []byte, out any) error {
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("thauth: %s %s: decoding response: %w", method, path, err)
	}
	return nil
}
