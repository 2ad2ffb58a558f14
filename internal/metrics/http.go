package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Unmatched is the route label of requests that matched no route.
const Unmatched = "unmatched"

// Route records the requests of one route and method. Get it once per route (Metrics.Route)
// and keep it: Observe then does not allocate for the usual status codes.
type Route struct {
	m             *Metrics
	route, method string
	dur           prometheus.Observer
	codes         [len(commonCodes)]atomic.Pointer[counter] // resolved on first use
}

type counter struct{ prometheus.Counter }

// commonCodes are the status codes whose counters a Route keeps; others are looked up per
// request (they are rare).
var commonCodes = [...]int{
	200, 201, 202, 204, 301, 302, 303, 304, 307, 308,
	400, 401, 403, 404, 405, 408, 409, 410, 412, 413, 415, 422, 429,
	500, 501, 502, 503, 504,
}

func codeIndex(code int) int {
	for i, c := range commonCodes {
		if c == code {
			return i
		}
	}
	return -1
}

// Route returns the handle of route (a ServeMux pattern without its method, or Unmatched)
// and method (normalized by Method). Handles are shared: the same pair gives the same
// *Route.
func (m *Metrics) Route(route, method string) *Route {
	method = Method(method)
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	k := [2]string{route, method}
	if r := m.routes[k]; r != nil {
		return r
	}
	r := &Route{m: m, route: route, method: method, dur: m.durations.WithLabelValues(route, method)}
	m.routes[k] = r
	return r
}

// Observe records one request answered with status code after d.
func (r *Route) Observe(code int, d time.Duration) {
	r.dur.Observe(d.Seconds())
	if i := codeIndex(code); i >= 0 {
		c := r.codes[i].Load()
		if c == nil {
			c = &counter{r.m.requests.WithLabelValues(r.route, r.method, strconv.Itoa(code))}
			r.codes[i].Store(c) // a race stores the same counter twice: harmless
		}
		c.Inc()
		return
	}
	if code < 100 || code > 999 {
		code = 0 // not a status code; keeps the label bounded
	}
	r.m.requests.WithLabelValues(r.route, r.method, strconv.Itoa(code)).Inc()
}

// Method returns m when it is a standard HTTP method, else "OTHER": the method of a request
// that matched no route is chosen by the client, and must not grow the label set.
func Method(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "OTHER"
}
