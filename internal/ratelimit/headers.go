package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SetHeaders writes the rate limit header fields of draft-ietf-httpapi-ratelimit-headers-11
// (May 2026, "RateLimit header fields for HTTP") for one policy, named policyName, and, when the
// request was denied, Retry-After (RFC 9110, whole seconds rounded up). It replaces any values of
// those fields already in h, and writes nothing for the zero Limit.
//
// The token bucket is described as the draft's Structured Fields (RFC 9651) items:
//
//		RateLimit-Policy: "default";q=100;w=1
//		RateLimit: "default";r=42;t=1
//
//	  - q is the Burst, and w the seconds a bucket takes to refill from empty
//	    (Burst × Period/Rate, rounded up), so q/w is the sustained rate: 100 per second with a
//	    burst of 100 is q=100;w=1, 5 per minute with a burst of 10 is q=10;w=120.
//	  - r is Result.Remaining. When allowed, t is the seconds until the bucket is full again
//	    (ResetAfter, rounded up). When denied, r=0 and t equals Retry-After: the draft (§6) asks
//	    that Retry-After not point earlier than the end of the effective window, and during that
//	    time the client can indeed use no more than r=0.
//
// policyName should be a short printable ASCII name such as "api-key"; other characters are
// replaced by '_'.
func SetHeaders(h http.Header, policyName string, r Result) {
	NewHeaders(policyName, r.Limit).Set(h, r)
}

// Headers writes SetHeaders' fields for one policy and one Limit, with the RateLimit-Policy
// value and the policy's name serialised once: on a request path (the per-key limit of every
// decision) Set then costs one small allocation per request instead of about ten. The zero
// Headers (and one made for the zero Limit) writes nothing. It is safe for concurrent use.
type Headers struct {
	name   string   // the policy name as a Structured Fields String
	policy []string // the RateLimit-Policy value, shared by every response: never modified
}

// NewHeaders returns the Headers of policy policyName with limit l (see SetHeaders).
func NewHeaders(policyName string, l Limit) Headers {
	if l.IsZero() {
		return Headers{}
	}
	lim := l.normalize()
	_, tau := lim.gcra()
	name := sfString(policyName)
	var b []byte
	b = append(b, name...)
	b = append(b, ";q="...)
	b = appendSFInt(b, int64(lim.Burst))
	b = append(b, ";w="...)
	b = appendSFInt(b, max(ceilSeconds(time.Duration(tau)), 1))
	return Headers{name: name, policy: []string{string(b)}}
}

// Set writes the fields for r, a result under the Limit hs was made for, replacing any values
// already in h (see SetHeaders).
func (hs Headers) Set(h http.Header, r Result) {
	if hs.policy == nil {
		return
	}
	h["Ratelimit-Policy"] = hs.policy
	remaining, t := int64(r.Remaining), ceilSeconds(r.ResetAfter)
	if !r.Allowed {
		remaining, t = 0, max(ceilSeconds(r.RetryAfter), 1)
		h["Retry-After"] = []string{sfInt(t)}
	}
	var buf [64]byte
	b := append(buf[:0], hs.name...)
	b = append(b, ";r="...)
	b = appendSFInt(b, max(remaining, 0))
	b = append(b, ";t="...)
	b = appendSFInt(b, t)
	h["Ratelimit"] = []string{string(b)}
}

// sfString serialises s as a Structured Fields String: printable ASCII in double quotes, with
// '"' and '\' escaped.
func sfString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// sfInt serialises n as a Structured Fields Integer, which has at most 15 digits.
func sfInt(n int64) string { return string(appendSFInt(nil, n)) }

// appendSFInt is sfInt appending to dst.
func appendSFInt(dst []byte, n int64) []byte {
	const maxSF = 999_999_999_999_999
	return strconv.AppendInt(dst, min(max(n, -maxSF), maxSF), 10)
}
