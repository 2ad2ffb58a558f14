package httpserver

// Rate limits and abuse blocking of the HTTP layer (docs/rate-limits.md is the user's
// reference). The limiter (internal/ratelimit) and the abuse detector (internal/abuse) are
// given by the caller; this file decides what is limited, under which key, and how a limited
// request is answered.
//
// Machine API (requireKey, middleware.go), in this order:
//
//  1. A client IP the abuse detector has blocked for guessing keys gets 429 before its key is
//     looked at, with Retry-After until the block ends. Cost when nobody is blocked: reading
//     the clock and one atomic load.
//  2. The key is authenticated. Every kind of failure is told to the detector (InvalidKey for
//     malformed, unknown and wrong-secret keys; Unauthorized for keys of a known project;
//     RevokedKeyUsed for revoked keys) and to OnAuthFailure, and consumes one request of the
//     client IP's AuthFailPerIP budget; past the budget the answer is 429 instead of 401.
//     The 401 itself is exactly the same for every kind.
//  3. A valid key consumes one request of its PerKey budget; every answer to the key carries
//     the RateLimit header fields of that policy, and past the budget it gets 429.
//
// Why failures are limited after authentication rather than before: GCRA cannot look at a
// bucket without taking from it, so limiting "before touching the key" would need either a
// per-IP limiter call on every request (a second round trip to Redis on the decision path) or
// a per-node cache of limited IPs that would also turn away the valid keys sharing that IP
// (a NAT, an office, a cloud egress) because of one broken or stale client. Authentication is
// in memory and constant-time, so nothing is saved by skipping it; what the limit is for —
// that failed and unauthenticated traffic from one address is slowed down — is kept exactly,
// and shared across nodes through Redis. A client guessing keys sees 429 instead of 401 past
// the budget, and is blocked outright (step 1, valid keys included) once the detector's
// threshold is reached.
//
// Console: sign-in is limited per client IP (before the body is read) and per (email, client
// IP) (before the password is checked); sign-up and password-reset requests per client IP.
// These are in addition to internal/manage's throttles, which count failures in the store and
// lock addresses and IPs.
//
// Client IP: the peer address (see clientInfo: proxy headers are not trusted). The limiter's
// keys use an IPv6 client's /64, since one subscriber holds a whole /64 (the ratelimit
// package leaves that to its callers); the detector does the same on its own.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/ratelimit"
)

// Limits are the rate limit policies of the HTTP layer. A zero field takes its default
// (DefaultLimits); LimitOff (any Limit with a negative Rate) turns a policy off.
type Limits struct {
	// PerKey limits every request authenticated by an API key, per key (policy "api-key").
	PerKey ratelimit.Limit
	// AuthFailPerIP limits the machine API's requests that fail authentication (no key, a
	// bad, revoked or expired key), per client IP (policy "auth-failure").
	AuthFailPerIP ratelimit.Limit
	// SignInPerIP limits console sign-in attempts per client IP (policy "signin-ip").
	SignInPerIP ratelimit.Limit
	// SignInPerAccount limits console sign-in attempts per email address and client IP
	// (policy "signin-account").
	SignInPerAccount ratelimit.Limit
	// SignUpPerIP limits console sign-ups per client IP (policy "signup-ip").
	SignUpPerIP ratelimit.Limit
	// ResetPerIP limits password-reset requests per client IP (policy "password-reset-ip").
	ResetPerIP ratelimit.Limit
}

// LimitOff is a Limits field's value that turns its policy off.
var LimitOff = ratelimit.Limit{Rate: -1}

// DefaultLimits returns the default policies (docs/rate-limits.md explains them):
//
//	PerKey            10000/s, burst 20000
//	AuthFailPerIP     30/min, burst 30
//	SignInPerIP       20/min, burst 20
//	SignInPerAccount  5/min, burst 10
//	SignUpPerIP       20/h, burst 20
//	ResetPerIP        20/h, burst 20
func DefaultLimits() Limits {
	return Limits{
		PerKey:           ratelimit.Limit{Rate: 10000, Period: time.Second, Burst: 20000},
		AuthFailPerIP:    ratelimit.PerMinute(30),
		SignInPerIP:      ratelimit.PerMinute(20),
		SignInPerAccount: ratelimit.Limit{Rate: 5, Period: time.Minute, Burst: 10},
		SignUpPerIP:      ratelimit.PerHour(20),
		ResetPerIP:       ratelimit.PerHour(20),
	}
}

// withDefaults fills zero fields with the defaults and turns LimitOff into the zero Limit
// (which ratelimit treats as no limit).
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	fix := func(v *ratelimit.Limit, def ratelimit.Limit) {
		switch {
		case *v == ratelimit.Limit{}:
			*v = def
		case v.Rate < 0:
			*v = ratelimit.Limit{}
		}
	}
	fix(&l.PerKey, d.PerKey)
	fix(&l.AuthFailPerIP, d.AuthFailPerIP)
	fix(&l.SignInPerIP, d.SignInPerIP)
	fix(&l.SignInPerAccount, d.SignInPerAccount)
	fix(&l.SignUpPerIP, d.SignUpPerIP)
	fix(&l.ResetPerIP, d.ResetPerIP)
	return l
}

// Validate reports a policy that makes no sense (see ratelimit.Limit.Validate); LimitOff
// and zero fields are valid.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    ratelimit.Limit
	}{
		{"per-key", l.PerKey}, {"auth-failure per IP", l.AuthFailPerIP},
		{"sign-in per IP", l.SignInPerIP}, {"sign-in per account", l.SignInPerAccount},
		{"sign-up per IP", l.SignUpPerIP}, {"password reset per IP", l.ResetPerIP},
	} {
		if f.v.Rate < 0 {
			continue
		}
		if err := f.v.Validate(); err != nil {
			return fmt.Errorf("%s rate limit: %w", f.name, err)
		}
	}
	return nil
}

// ParseLimit parses a rate limit policy as written in flags and configuration:
//
//	""                      the default (the zero Limit)
//	"off"                   no limit (LimitOff)
//	"1000/s"                1000 per second, burst 1000 (units s, m or min, h, or a
//	                        duration such as 10s or 1m30s)
//	"1000/s burst 2000"     with a burst ("1000/s:2000" is the same); Limit.String's
//	                        "1000/1s burst 2000" reads back
func ParseLimit(s string) (ratelimit.Limit, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return ratelimit.Limit{}, nil
	case "off", "unlimited":
		return LimitOff, nil
	}
	bad := func(why string) (ratelimit.Limit, error) {
		return ratelimit.Limit{}, fmt.Errorf("invalid rate limit %q: %s (want e.g. \"100/s\", \"30/min burst 60\" or \"off\")", s, why)
	}
	spec, burstText, hasBurst := strings.Cut(s, ":")
	if !hasBurst {
		spec, burstText, hasBurst = strings.Cut(s, " burst ")
	}
	rateText, periodText, ok := strings.Cut(strings.TrimSpace(spec), "/")
	if !ok {
		return bad("no \"/\" between the rate and the period")
	}
	rate, err := strconv.Atoi(strings.TrimSpace(rateText))
	if err != nil || rate <= 0 {
		return bad("the rate must be a positive integer")
	}
	var period time.Duration
	switch p := strings.TrimSpace(periodText); p {
	case "s", "sec", "second":
		period = time.Second
	case "m", "min", "minute":
		period = time.Minute
	case "h", "hour":
		period = time.Hour
	default:
		if period, err = time.ParseDuration(p); err != nil || period <= 0 {
			return bad("the period must be s, min, h or a positive duration such as 10s")
		}
	}
	l := ratelimit.Limit{Rate: rate, Period: period, Burst: rate}
	if hasBurst {
		if l.Burst, err = strconv.Atoi(strings.TrimSpace(burstText)); err != nil || l.Burst <= 0 {
			return bad("the burst must be a positive integer")
		}
	}
	if err := l.Validate(); err != nil {
		return ratelimit.Limit{}, err
	}
	return l, nil
}

// Policy names: the RateLimit header fields' policy names and OnRateLimited's argument.
const (
	policyAPIKey        = "api-key"
	policyAuthFailure   = "auth-failure"
	policyIPBlocked     = "ip-blocked" // the abuse detector's block (no RateLimit fields)
	policySignInIP      = "signin-ip"
	policySignInAccount = "signin-account"
	policySignUpIP      = "signup-ip"
	policyResetIP       = "password-reset-ip"
)

// Answers of limited requests (all ERateLimited, 429, with Retry-After).
const (
	msgIPBlocked     = "too many invalid API keys from your address; try again later"
	msgAuthFailures  = "too many failed authentications from your address; try again later"
	msgKeyLimited    = "this API key's rate limit is exceeded; try again later"
	msgSignInLimited = "too many sign-in attempts; try again later"
	msgSignUpLimited = "too many sign-ups from your address; try again later"
	msgResetLimited  = "too many password reset requests from your address; try again later"
)

// Authentication failure kinds, OnAuthFailure's argument.
const (
	authMissingKey   = "missing_key"
	authMalformedKey = "malformed_key"
	authUnknownKey   = "unknown_key"
	authWrongSecret  = "wrong_secret"
	authRevokedKey   = "revoked_key"
	authExpiredKey   = "expired_key"
	authSuspendedOrg = "suspended_org"
)

// authFailureKind names a failed KeyCheck for OnAuthFailure.
func authFailureKind(st engine.KeyStatus) string {
	switch st {
	case engine.KeyMalformed:
		return authMalformedKey
	case engine.KeyUnknown:
		return authUnknownKey
	case engine.KeyWrongSecret:
		return authWrongSecret
	case engine.KeyRevoked:
		return authRevokedKey
	case engine.KeyExpired:
		return authExpiredKey
	case engine.KeySuspended:
		return authSuspendedOrg
	}
	return "other"
}

// rateLimited is the 429 error of a limited request.
func rateLimited(msg string, retryAfter time.Duration) error {
	return &thauth.Error{Code: thauth.ERateLimited, Message: msg, RetryAfter: max(retryAfter, time.Nanosecond)}
}

// limitedBy tells OnRateLimited, if set, that policy refused a request.
func (s *server) limitedBy(policy string) {
	if s.onRateLimited != nil {
		s.onRateLimited(policy)
	}
}

// peerIP is the client's IP address: the peer address without its port (see clientInfo).
// It does not allocate.
func peerIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// maxIPKeyLen bounds what of a peer address that does not parse ends up in a limiter key.
const maxIPKeyLen = 64

// limitIP returns the part of a client IP the limiter keys on: an IPv4 address as it is,
// an IPv4-mapped IPv6 address as the IPv4 address, and any other IPv6 address as its /64.
func limitIP(ip string) string {
	if strings.IndexByte(ip, ':') >= 0 {
		if a, err := netip.ParseAddr(ip); err == nil {
			if a.Is4In6() {
				return a.Unmap().String()
			}
			return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
		}
	}
	if len(ip) > maxIPKeyLen {
		return ip[:maxIPKeyLen]
	}
	return ip
}

// emailKey is how the per-account sign-in limit names an address: 128 bits of the SHA-256
// of the address trimmed and lower-cased (as internal/manage normalizes it), so that Redis
// never holds an address.
func emailKey(email string) string {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(h[:16])
}

// The limiter keys of each policy (the Redis limiter stores them under ratelimit.KeyPrefix).
func keyLimitKey(keyID string) string   { return "key:" + keyID }
func authFailLimitKey(ip string) string { return "authfail:" + limitIP(ip) }
func signInIPLimitKey(ip string) string { return "signin-ip:" + limitIP(ip) }
func signUpIPLimitKey(ip string) string { return "signup-ip:" + limitIP(ip) }
func resetIPLimitKey(ip string) string  { return "reset-ip:" + limitIP(ip) }
func signInAcctLimitKey(email, ip string) string {
	return "signin-acct:" + emailKey(email) + "@" + limitIP(ip)
}

// blockedIP answers 429 when the abuse detector has blocked the client's address, before the
// request's key is looked at, and reports whether it did.
func (s *server) blockedIP(w http.ResponseWriter, r *http.Request) bool {
	if s.abuse == nil {
		return false
	}
	now := s.now()
	until, blocked := s.abuse.BlockedAt(now, peerIP(r))
	if !blocked {
		return false
	}
	s.limitedBy(policyIPBlocked)
	s.writeError(w, r, rateLimited(msgIPBlocked, until.Sub(now)))
	return true
}

// authFailed answers a machine-API request whose key did not authenticate (c.Status; a
// missing key when present is false): it tells the detector and OnAuthFailure, consumes one
// request of the client IP's failure budget, and answers 401 — or 429 past the budget.
func (s *server) authFailed(w http.ResponseWriter, r *http.Request, present bool, c engine.KeyCheck) {
	ip := peerIP(r)
	kind := authMissingKey
	if present {
		kind = authFailureKind(c.Status)
	}
	if s.abuse != nil && present {
		switch c.Status {
		case engine.KeyMalformed, engine.KeyUnknown:
			s.abuse.InvalidKey(ip, "")
		case engine.KeyWrongSecret:
			// The lookup id of a real key with a wrong secret: someone holds part of a
			// key. It is key guessing, against a known project.
			s.abuse.InvalidKey(ip, c.ProjectID)
			s.abuse.Unauthorized(c.ProjectID, c.OrganizationID)
		case engine.KeyRevoked:
			s.abuse.Unauthorized(c.ProjectID, c.OrganizationID)
			s.abuse.RevokedKeyUsed(c.KeyID, c.ProjectID, c.OrganizationID, ip)
		case engine.KeyExpired, engine.KeySuspended:
			// A real key that no longer works: a stale client, not guessing. It does not
			// count towards blocking the address (which would also turn away the valid
			// keys sharing it).
			s.abuse.Unauthorized(c.ProjectID, c.OrganizationID)
		}
	}
	if s.onAuthFailure != nil {
		s.onAuthFailure(kind)
	}
	if s.limiter != nil && !s.limits.AuthFailPerIP.IsZero() {
		res := s.limiter.Allow(r.Context(), authFailLimitKey(ip), s.limits.AuthFailPerIP)
		if !res.Allowed {
			ratelimit.SetHeaders(w.Header(), policyAuthFailure, res)
			s.limitedBy(policyAuthFailure)
			s.writeError(w, r, rateLimited(msgAuthFailures, res.RetryAfter))
			return
		}
	}
	writeUnauthorized(w)
}

// allowKey applies the PerKey policy to an authenticated key, setting the RateLimit header
// fields on the answer, and answers 429 (reporting false) past the limit.
func (s *server) allowKey(w http.ResponseWriter, r *http.Request, p *engine.Principal) bool {
	key := p.LimitKey
	if key == "" {
		key = keyLimitKey(p.KeyID)
	}
	res := s.limiter.Allow(r.Context(), key, s.limits.PerKey)
	s.keyHeaders.Set(w.Header(), res)
	if res.Allowed {
		return true
	}
	s.limitedBy(policyAPIKey)
	s.writeError(w, r, rateLimited(msgKeyLimited, res.RetryAfter))
	return false
}

// allowConsole applies one policy to a console request under key, consuming one request,
// and sets its RateLimit header fields on the answer (a later policy's replace them). Past
// the limit it answers 429 with msg and reports false.
func (s *server) allowConsole(w http.ResponseWriter, r *http.Request, policy, key string, l ratelimit.Limit, msg string) bool {
	if s.limiter == nil || l.IsZero() {
		return true
	}
	res := s.limiter.Allow(r.Context(), key, l)
	ratelimit.SetHeaders(w.Header(), policy, res)
	if res.Allowed {
		return true
	}
	s.limitedBy(policy)
	s.consoleError(w, r, rateLimited(msg, res.RetryAfter))
	return false
}

// allowSignInIP applies SignInPerIP (before the sign-in's body is read).
func (s *server) allowSignInIP(w http.ResponseWriter, r *http.Request) bool {
	return s.allowConsole(w, r, policySignInIP, signInIPLimitKey(peerIP(r)), s.limits.SignInPerIP, msgSignInLimited)
}

// allowSignInAccount applies SignInPerAccount to a sign-in for email (before the password is
// checked).
func (s *server) allowSignInAccount(w http.ResponseWriter, r *http.Request, email string) bool {
	return s.allowConsole(w, r, policySignInAccount, signInAcctLimitKey(email, peerIP(r)), s.limits.SignInPerAccount, msgSignInLimited)
}

// allowSignUp applies SignUpPerIP.
func (s *server) allowSignUp(w http.ResponseWriter, r *http.Request) bool {
	return s.allowConsole(w, r, policySignUpIP, signUpIPLimitKey(peerIP(r)), s.limits.SignUpPerIP, msgSignUpLimited)
}

// allowReset applies ResetPerIP.
func (s *server) allowReset(w http.ResponseWriter, r *http.Request) bool {
	return s.allowConsole(w, r, policyResetIP, resetIPLimitKey(peerIP(r)), s.limits.ResetPerIP, msgResetLimited)
}
