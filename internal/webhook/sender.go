package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds one attempt, from connecting to reading the response. The
// specification recommends 15 to 30 seconds, to give receivers time to process; we take the
// low end so a slow receiver holds a worker slot for little time.
const DefaultTimeout = 15 * time.Second

// MaxResponseBody is how much of a response body is read and kept as evidence in
// Attempt.Error; the rest is never read.
const MaxResponseBody = 4 << 10

// ErrForbiddenURL is wrapped by the errors of URLPolicy.Check and of attempts refused by it.
var ErrForbiddenURL = errors.New("webhook: URL not allowed")

// URLPolicy says which endpoint URLs may be called. The zero value is the production policy:
// https only, public addresses only.
type URLPolicy struct {
	// AllowInsecure permits http:// URLs (tests and development).
	AllowInsecure bool
	// AllowPrivate permits loopback, private, link-local and other non-public destinations
	// (tests, development, or an installation whose receivers are all on its own network).
	AllowPrivate bool
}

// Check reports whether raw is an acceptable endpoint URL: absolute, https (or http when
// AllowInsecure), with a host, without user:password (credentials in a URL end up in logs and
// delivery history; receivers authenticate us by the signature), at most 2048 bytes, and, when
// the host is an IP address, a public one unless AllowPrivate. A host name is checked again at
// each connection, against the addresses it then resolves to. Errors wrap ErrForbiddenURL.
func (p URLPolicy) Check(raw string) error {
	if len(raw) > 2048 {
		return fmt.Errorf("%w: longer than 2048 bytes", ErrForbiddenURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: not a URL", ErrForbiddenURL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowInsecure:
	case u.Scheme == "http":
		return fmt.Errorf("%w: only https URLs are accepted", ErrForbiddenURL)
	default:
		return fmt.Errorf("%w: scheme %q is not https", ErrForbiddenURL, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: user information (user:password@) is not accepted", ErrForbiddenURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: no host", ErrForbiddenURL)
	}
	if ip, err := netip.ParseAddr(host); err == nil && !p.allowedAddr(ip) {
		return fmt.Errorf("%w: address %s is not public", ErrForbiddenURL, ip)
	}
	return nil
}

// nonPublic lists ranges that IsPrivate, IsLoopback and friends do not cover but that are
// not the public Internet either.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and 255.255.255.255
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: would reach any IPv4 address, private ones too
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an arbitrary IPv4 address
}

// allowedAddr reports whether the policy lets us connect to ip.
func (p URLPolicy) allowedAddr(ip netip.Addr) bool {
	if p.AllowPrivate {
		return true
	}
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.Zone() != "" {
		return false
	}
	for _, n := range nonPublic {
		if n.Contains(ip) {
			return false
		}
	}
	return true
}

// SenderOptions configures a Sender. The zero value is valid: production URL policy,
// DefaultTimeout, time.Now, the system's root certificates.
type SenderOptions struct {
	URLPolicy
	Now       func() time.Time // default time.Now; stamps webhook-timestamp and Attempt.At
	Timeout   time.Duration    // per attempt; default DefaultTimeout
	TLSConfig *tls.Config      // nil: system roots; tests pass their server's
	UserAgent string           // default "Thauth-Webhooks/1"
}

// Sender makes single delivery attempts. It is safe for concurrent use.
type Sender struct {
	policy URLPolicy
	now    func() time.Time
	ua     string
	client *http.Client
}

// NewSender returns a Sender with its own HTTP client: no proxy (a proxy would connect on our
// behalf where the address check cannot see), no redirects, the address check at connect time,
// and the timeout.
func NewSender(o SenderOptions) *Sender {
	s := &Sender{policy: o.URLPolicy, now: o.Now, ua: o.UserAgent}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ua == "" {
		s.ua = "Thauth-Webhooks/1"
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := &net.Dialer{Timeout: timeout, Control: s.control}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       o.TLSConfig,
		TLSHandshakeTimeout:   timeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	s.client = &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

// Policy returns the URL policy the sender enforces, for checking URLs when endpoints are
// registered.
func (s *Sender) Policy() URLPolicy { return s.policy }

// control refuses a connection to an address the policy forbids. It runs after DNS
// resolution, for each address the dialer tries, so a name that resolves (or is re-pointed) to
// an internal address is refused too.
func (s *Sender) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbiddenURL, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !s.policy.allowedAddr(ip) {
		return fmt.Errorf("%w: address %s is not public", ErrForbiddenURL, host)
	}
	return nil
}

// Send makes attempt number d.Attempts+1 of delivery d to ep: a POST of d.Payload with
// Content-Type application/json and the webhook-id (d.EventID), webhook-timestamp (now) and
// webhook-signature headers, signed with ep's current and, during rotation, previous secret.
// It never returns an error: the outcome, including a refused URL, is the Attempt — a 2xx
// StatusCode and empty Error for success. Send does not change d or ep.
func (s *Sender) Send(ctx context.Context, ep *Endpoint, d *Delivery) Attempt {
	a := Attempt{DeliveryID: d.ID, Number: d.Attempts + 1, At: s.now()}
	fail := func(format string, args ...any) Attempt {
		a.Error = fmt.Sprintf(format, args...)
		return a
	}
	if err := s.policy.Check(ep.URL); err != nil {
		return fail("%v", err)
	}
	sig, err := SignatureHeader(ep.secrets(a.At), d.EventID, a.At, d.Payload)
	if err != nil {
		return fail("%v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return fail("webhook: request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.ua)
	req.Header.Set(HeaderID, d.EventID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(a.At.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)

	start := time.Now() // wall-clock duration of the request, for the history only
	resp, err := s.client.Do(req)
	if err != nil {
		a.Duration = time.Since(start)
		return fail("%v", err)
	}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	resp.Body.Close()
	a.Duration = time.Since(start)
	a.StatusCode = resp.StatusCode
	if success(resp.StatusCode) {
		return a
	}
	a.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), a.At)
	msg := "HTTP " + resp.Status
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		msg += " (redirects are not followed; register the final URL)"
		if loc := resp.Header.Get("Location"); loc != "" {
			msg += " Location: " + evidence([]byte(loc))
		}
	case resp.StatusCode == 410:
		msg += " (the endpoint asked to stop; it is disabled)"
	}
	if len(body) > 0 {
		msg += ": " + evidence(body)
	}
	if readErr != nil {
		msg += " [reading the body: " + readErr.Error() + "]"
	}
	a.Error = msg
	return a
}

// evidence turns a piece of a response into text safe to store and show: valid UTF-8, control
// characters other than newline and tab replaced.
func evidence(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < ' ' && r != '\n' && r != '\t' || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s)
}

// retryAfter parses a Retry-After value (delay seconds or an HTTP date) relative to now; 0 if
// absent or invalid.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return min(time.Duration(min(n, int64(MaxRetryAfter/time.Second)))*time.Second, MaxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}
