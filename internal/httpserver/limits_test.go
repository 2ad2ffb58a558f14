package httpserver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/abuse"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/ratelimit"
)

// limitsEnv is an env whose handler has a local limiter and, optionally, an abuse detector,
// all on the env's settable clock (the same clock as the engine and manage), and records
// what the OnRateLimited and OnAuthFailure hooks are told.
type limitsEnv struct {
	*env
	det   *abuse.Detector
	orgID string

	mu       sync.Mutex
	limited  []string
	failures []string
}

const (
	ipA = "203.0.113.7"
	ipB = "198.51.100.20"
)

func newLimitsEnv(t *testing.T, limits Limits, ao *abuse.Options) *limitsEnv {
	t.Helper()
	e := newEnv(t)
	le := &limitsEnv{env: e}
	d := le.deps(limits, ratelimit.NewLocal(ratelimit.Options{Now: e.clock.Now}))
	if ao != nil {
		ao.Now = e.clock.Now
		le.det = abuse.New(*ao)
		d.Abuse = le.det
	}
	e.h = New(d)
	e.srv = e.h.(*server)
	p, ok := e.eng.Authenticate(e.admin)
	if !ok {
		t.Fatal("admin key does not authenticate")
	}
	le.orgID = p.OrganizationID
	return le
}

// deps are the Deps of a handler over the env's components with limiter and limits.
func (e *limitsEnv) deps(limits Limits, lim ratelimit.Limiter) Deps {
	return Deps{
		Engine: e.eng, Manage: e.mg, Ping: e.store.Ping, Now: e.clock.Now,
		Logger:  slog.New(slog.NewJSONHandler(e.logs, nil)),
		Limiter: lim, Limits: limits,
		OnRateLimited: func(policy string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.limited = append(e.limited, policy)
		},
		OnAuthFailure: func(kind string) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.failures = append(e.failures, kind)
		},
	}
}

// hooks returns and forgets what the hooks were told.
func (e *limitsEnv) hooks() (limited, failures []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	limited, failures = e.limited, e.failures
	e.limited, e.failures = nil, nil
	return limited, failures
}

// from sends a request from the client address ip (IPv6 without brackets) to h.
func from(h http.Handler, ip, method, path, token, body string) *httptest.ResponseRecorder {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	r.RemoteAddr = netJoin(ip, "41234")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func netJoin(ip, port string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + port
	}
	return ip + ":" + port
}

const limitsCheckBody = `{"subject":"user:alice","feature":"billing","action":"read"}`

// check posts a check with token from ip.
func (e *limitsEnv) check(ip, token string) *httptest.ResponseRecorder {
	return from(e.h, ip, "POST", "/v1/check", token, limitsCheckBody)
}

// wantHeaders checks the RateLimit-Policy, RateLimit and Retry-After fields ("" = absent).
func wantHeaders(t *testing.T, step string, h http.Header, policy, limit, retry string) {
	t.Helper()
	got := []string{h.Get("RateLimit-Policy"), h.Get("RateLimit"), h.Get("Retry-After")}
	if diff := cmp.Diff([]string{policy, limit, retry}, got); diff != "" {
		t.Errorf("%s: [RateLimit-Policy RateLimit Retry-After] (-want +got):\n%s", step, diff)
	}
}

// wantLimited checks a 429 answer: JSON {"error": msg, "code": "rate_limited"}.
func wantLimited(t *testing.T, step string, rec *httptest.ResponseRecorder, msg string) {
	t.Helper()
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("%s: status %d, want 429; body %s", step, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", step, ct)
	}
	var b map[string]any
	mustJSON(t, rec.Body.Bytes(), &b)
	if diff := cmp.Diff(map[string]any{"error": msg, "code": "rate_limited"}, b); diff != "" {
		t.Errorf("%s: body (-want +got):\n%s", step, diff)
	}
}

// events drains the detector's events.
func events(d *abuse.Detector) []abuse.Event {
	var out []abuse.Event
	for {
		select {
		case ev := <-d.Events():
			out = append(out, ev)
		default:
			return out
		}
	}
}

// revokedKey creates a key and revokes it through the API, returning its token and id.
func (e *limitsEnv) revokedKey(name string) (token, id string) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "scopes": []string{"decisions:read"}})
	rec := from(e.h, "192.0.2.1", "POST", "/api/v1/projects/"+e.projectID+"/keys", e.admin, string(body))
	if rec.Code != http.StatusCreated {
		e.t.Fatalf("create key: %d %s", rec.Code, rec.Body)
	}
	var k struct{ ID, Key string }
	mustJSON(e.t, rec.Body.Bytes(), &k)
	if rec := from(e.h, "192.0.2.1", "DELETE", "/api/v1/projects/"+e.projectID+"/keys/"+k.ID, e.admin, ""); rec.Code != http.StatusNoContent {
		e.t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	return k.Key, k.ID
}

// expiringKey creates a key that expires in d.
func (e *limitsEnv) expiringKey(d time.Duration) string {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": "expiring", "scopes": []string{"decisions:read"},
		"expires_at": e.clock.Now().Add(d).Format(time.RFC3339Nano)})
	rec := from(e.h, "192.0.2.1", "POST", "/api/v1/projects/"+e.projectID+"/keys", e.admin, string(body))
	if rec.Code != http.StatusCreated {
		e.t.Fatalf("create key: %d %s", rec.Code, rec.Body)
	}
	var k struct{ Key string }
	mustJSON(e.t, rec.Body.Bytes(), &k)
	return k.Key
}

// wrongSecret is good's lookup id with another secret (and a valid checksum).
func wrongSecret(good string) string {
	body := good[:len(good)-6]
	return withChecksum(body[:len(body)-1] + flip(body[len(body)-1]))
}

func TestRateLimitPerKeyThreshold(t *testing.T) {
	// 5 per minute, burst 5: one request every 12 s once the burst is spent.
	e := newLimitsEnv(t, Limits{PerKey: ratelimit.PerMinute(5), AuthFailPerIP: LimitOff}, nil)
	const policy = `"api-key";q=5;w=60`

	for i := 1; i <= 5; i++ {
		rec := e.check(ipA, e.decisions)
		if rec.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
		wantHeaders(t, fmt.Sprintf("request %d", i), rec.Header(), policy, fmt.Sprintf(`"api-key";r=%d;t=%d`, 5-i, 12*i), "")
	}
	rec := e.check(ipA, e.decisions)
	wantLimited(t, "request 6", rec, msgKeyLimited)
	wantHeaders(t, "request 6", rec.Header(), policy, `"api-key";r=0;t=12`, "12")

	// The limit is the key's, not the address's nor the route's: another key from the same
	// address has its own bucket, and a key without the route's scope is counted (and told)
	// too.
	rec = e.check(ipA, e.reader)
	if rec.Code != http.StatusOK {
		t.Fatalf("other key: %d %s", rec.Code, rec.Body)
	}
	wantHeaders(t, "other key", rec.Header(), policy, `"api-key";r=4;t=12`, "")
	rec = e.check(ipB, e.writer)
	wantError(t, rec, http.StatusForbidden, "lacks the decisions:read scope")
	wantHeaders(t, "key without the scope", rec.Header(), policy, `"api-key";r=4;t=12`, "")
	rec = from(e.h, ipB, "GET", "/v1/config", e.decisions, "")
	wantLimited(t, "same key, other route and address", rec, msgKeyLimited)

	// One request becomes possible 12 s after the burst: not a nanosecond earlier.
	e.clock.Advance(11*time.Second + 999*time.Millisecond)
	rec = e.check(ipA, e.decisions)
	wantLimited(t, "after 11.999s", rec, msgKeyLimited)
	wantHeaders(t, "after 11.999s", rec.Header(), policy, `"api-key";r=0;t=1`, "1")
	e.clock.Advance(time.Millisecond)
	rec = e.check(ipA, e.decisions)
	if rec.Code != http.StatusOK {
		t.Fatalf("after 12s: %d %s", rec.Code, rec.Body)
	}
	wantHeaders(t, "after 12s", rec.Header(), policy, `"api-key";r=0;t=60`, "")
	wantLimited(t, "right after", e.check(ipA, e.decisions), msgKeyLimited)

	limited, failures := e.hooks()
	if diff := cmp.Diff([]string{"api-key", "api-key", "api-key", "api-key"}, limited); diff != "" {
		t.Errorf("OnRateLimited (-want +got):\n%s", diff)
	}
	if len(failures) != 0 {
		t.Errorf("OnAuthFailure = %v, want none", failures)
	}
}

func TestRateLimitAuthFailuresPerIP(t *testing.T) {
	// 3 failures per minute per address: one more every 20 s.
	e := newLimitsEnv(t, Limits{AuthFailPerIP: ratelimit.PerMinute(3), PerKey: LimitOff}, nil)
	const policy = `"auth-failure";q=3;w=60`
	revoked, _ := e.revokedKey("old")
	unknown, _, _ := thauth.NewToken()

	// Every kind of failure counts; the first three get the usual 401, unchanged.
	for _, tok := range []string{"", "not-a-key", revoked} {
		rec := e.check(ipA, tok)
		wantUnauthorized(t, rec)
		wantHeaders(t, "401", rec.Header(), "", "", "")
	}
	rec := e.check(ipA, unknown)
	wantLimited(t, "4th failure", rec, msgAuthFailures)
	wantHeaders(t, "4th failure", rec.Header(), policy, `"auth-failure";r=0;t=20`, "20")
	wantLimited(t, "no key", e.check(ipA, ""), msgAuthFailures)

	// Valid keys from the address are not affected (see limits.go), nor is another address.
	if rec := e.check(ipA, e.decisions); rec.Code != http.StatusOK {
		t.Fatalf("valid key from the limited address: %d %s", rec.Code, rec.Body)
	}
	wantUnauthorized(t, e.check(ipB, unknown))

	e.clock.Advance(20*time.Second - time.Millisecond)
	rec = e.check(ipA, unknown)
	wantLimited(t, "after 19.999s", rec, msgAuthFailures)
	wantHeaders(t, "after 19.999s", rec.Header(), policy, `"auth-failure";r=0;t=1`, "1")
	e.clock.Advance(time.Millisecond)
	wantUnauthorized(t, e.check(ipA, unknown))
	wantLimited(t, "right after", e.check(ipA, unknown), msgAuthFailures)

	// IPv6 clients are counted by their /64.
	for i := range 3 {
		wantUnauthorized(t, e.check(fmt.Sprintf("2001:db8:1:2::%d", i+1), unknown))
	}
	wantLimited(t, "same /64", e.check("2001:db8:1:2:ffff::9", unknown), msgAuthFailures)
	wantUnauthorized(t, e.check("2001:db8:1:3::1", unknown))
	// An IPv4-mapped address is the IPv4 address.
	wantLimited(t, "IPv4-mapped", e.check("::ffff:"+ipA, unknown), msgAuthFailures)

	limited, failures := e.hooks()
	wantLimitedHooks := []string{"auth-failure", "auth-failure", "auth-failure", "auth-failure", "auth-failure", "auth-failure"}
	if diff := cmp.Diff(wantLimitedHooks, limited); diff != "" {
		t.Errorf("OnRateLimited (-want +got):\n%s", diff)
	}
	wantFailures := []string{"missing_key", "malformed_key", "revoked_key", "unknown_key", "missing_key", "unknown_key",
		"unknown_key", "unknown_key", "unknown_key", "unknown_key", "unknown_key", "unknown_key", "unknown_key", "unknown_key", "unknown_key"}
	if diff := cmp.Diff(wantFailures, failures); diff != "" {
		t.Errorf("OnAuthFailure (-want +got):\n%s", diff)
	}
}

func TestAbuseBlocksKeyGuessingIP(t *testing.T) {
	e := newLimitsEnv(t, Limits{AuthFailPerIP: LimitOff, PerKey: LimitOff},
		&abuse.Options{InvalidKeyThreshold: 5, InvalidKeyWindow: time.Minute, BlockDuration: 10 * time.Minute})
	unknown, _, _ := thauth.NewToken()
	revoked, _ := e.revokedKey("old")
	expiring := e.expiringKey(time.Second)
	events(e.det)

	// Below the threshold: four invalid keys, plus real keys that no longer work (stale
	// clients, not guessing) and missing keys, which do not count. The address is not
	// blocked.
	for _, tok := range []string{unknown, "thauth_garbage", unknown, wrongSecret(e.decisions)} {
		wantUnauthorized(t, e.check(ipA, tok))
	}
	e.clock.Advance(time.Second) // the expiring key expires
	for _, tok := range []string{revoked, revoked, expiring, expiring, "", ""} {
		wantUnauthorized(t, e.check(ipA, tok))
	}
	if rec := e.check(ipA, e.decisions); rec.Code != http.StatusOK {
		t.Fatalf("below the threshold: %d %s", rec.Code, rec.Body)
	}
	for _, ev := range events(e.det) {
		if ev.Kind == abuse.KindInvalidKeys {
			t.Fatalf("invalid_keys_from_ip below the threshold: %+v", ev)
		}
	}

	// The fifth invalid key within the minute is answered like the others, and blocks.
	wantUnauthorized(t, e.check(ipA, unknown))
	var fired []abuse.Event
	for _, ev := range events(e.det) {
		if ev.Kind == abuse.KindInvalidKeys {
			fired = append(fired, ev)
		}
	}
	if len(fired) != 1 || fired[0].Evidence["ip"] != ipA || fired[0].Evidence["count"] != "5" {
		t.Fatalf("events = %+v, want one invalid_keys_from_ip for %s with count 5", fired, ipA)
	}

	// Blocked: even a valid key gets 429 before it is looked at, for the whole block.
	for _, tok := range []string{e.decisions, unknown, ""} {
		rec := e.check(ipA, tok)
		wantLimited(t, "blocked", rec, msgIPBlocked)
		wantHeaders(t, "blocked", rec.Header(), "", "", "600")
	}
	if rec := e.check(ipB, e.decisions); rec.Code != http.StatusOK {
		t.Fatalf("another address: %d %s", rec.Code, rec.Body)
	}
	e.clock.Advance(10*time.Minute - time.Second)
	rec := e.check(ipA, e.decisions)
	wantLimited(t, "last second of the block", rec, msgIPBlocked)
	wantHeaders(t, "last second of the block", rec.Header(), "", "", "1")
	e.clock.Advance(time.Second)
	if rec := e.check(ipA, e.decisions); rec.Code != http.StatusOK {
		t.Fatalf("after the block: %d %s", rec.Code, rec.Body)
	}

	// Counting starts afresh after the block, and the window is a sliding minute: four
	// invalid keys, a minute, one more: no block.
	for range 4 {
		wantUnauthorized(t, e.check(ipA, unknown))
	}
	e.clock.Advance(time.Minute)
	wantUnauthorized(t, e.check(ipA, unknown))
	if rec := e.check(ipA, e.decisions); rec.Code != http.StatusOK {
		t.Fatalf("four in a minute, then one: %d %s", rec.Code, rec.Body)
	}

	// IPv6 addresses are blocked by /64.
	for i := range 5 {
		wantUnauthorized(t, e.check(fmt.Sprintf("2001:db8:5::%d", i+1), unknown))
	}
	wantLimited(t, "same /64", e.check("2001:db8:5::abcd", e.decisions), msgIPBlocked)
	if rec := e.check("2001:db8:6::1", e.decisions); rec.Code != http.StatusOK {
		t.Fatalf("other /64: %d %s", rec.Code, rec.Body)
	}

	limited, _ := e.hooks()
	if diff := cmp.Diff([]string{"ip-blocked", "ip-blocked", "ip-blocked", "ip-blocked", "ip-blocked"}, limited); diff != "" {
		t.Errorf("OnRateLimited (-want +got):\n%s", diff)
	}
}

func TestAbuseObservesKnownKeys(t *testing.T) {
	e := newLimitsEnv(t, Limits{AuthFailPerIP: LimitOff, PerKey: LimitOff},
		&abuse.Options{InvalidKeyThreshold: 2, AuthFailureThreshold: 3})
	revoked, revokedID := e.revokedKey("leaked")
	events(e.det)
	e.hooks()

	// A revoked key: the same 401, a revoked_key_used event (once per cool-down), and 401s
	// against its project counted: the third fires auth_failures_burst.
	for range 3 {
		wantUnauthorized(t, e.check(ipA, revoked))
	}
	got := events(e.det)
	want := []abuse.Event{
		{
			Kind: abuse.KindRevokedKeyUsed, Severity: abuse.SeverityHigh, At: e.clock.Now(),
			OrganizationID: e.orgID, ProjectID: e.projectID,
			Title:    "Revoked API key " + revokedID + " was used from " + ipA,
			Evidence: map[string]string{"key_id": revokedID, "ip": ipA},
		},
		{
			Kind: abuse.KindAuthFailures, Severity: abuse.SeverityMedium, At: e.clock.Now(),
			OrganizationID: e.orgID, ProjectID: e.projectID,
			Title:    "3 unauthorized (401) requests against project " + e.projectID + " within 5m0s",
			Evidence: map[string]string{"count": "3", "window": "5m0s"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// A wrong secret for a real key's lookup id is key guessing against a known project.
	wantUnauthorized(t, e.check(ipB, wrongSecret(e.decisions)))
	wantUnauthorized(t, e.check(ipB, wrongSecret(e.decisions)))
	var inv []abuse.Event
	for _, ev := range events(e.det) {
		if ev.Kind == abuse.KindInvalidKeys {
			inv = append(inv, ev)
		}
	}
	if len(inv) != 1 || inv[0].ProjectID != e.projectID || inv[0].Evidence["ip"] != ipB {
		t.Errorf("invalid_keys_from_ip events = %+v, want one for %s naming the project", inv, ipB)
	}
	_, failures := e.hooks()
	if diff := cmp.Diff([]string{"revoked_key", "revoked_key", "revoked_key", "wrong_secret", "wrong_secret"}, failures); diff != "" {
		t.Errorf("OnAuthFailure (-want +got):\n%s", diff)
	}
}

// TestLimitsOff: without a limiter nothing is limited and no header is added; LimitOff
// turns one policy off.
func TestLimitsOff(t *testing.T) {
	e := newEnv(t)
	for i := range 30 {
		rec := e.post("/v1/check", e.decisions, limitsCheckBody)
		if rec.Code != http.StatusOK || rec.Header().Get("RateLimit") != "" {
			t.Fatalf("request %d without a limiter: %d, RateLimit %q", i, rec.Code, rec.Header().Get("RateLimit"))
		}
	}
	le := newLimitsEnv(t, Limits{PerKey: LimitOff, AuthFailPerIP: ratelimit.PerMinute(1)}, nil)
	for i := range 30 {
		rec := le.check(ipA, le.decisions)
		if rec.Code != http.StatusOK || rec.Header().Get("RateLimit") != "" {
			t.Fatalf("request %d with PerKey off: %d, RateLimit %q", i, rec.Code, rec.Header().Get("RateLimit"))
		}
	}
}

func TestSignInRateLimits(t *testing.T) {
	var limited []string
	var mu sync.Mutex
	opt := func(l Limits) consoleOpt {
		return func(d *Deps) {
			d.Limiter, d.Limits = ratelimit.NewLocal(ratelimit.Options{Now: d.Now}), l
			d.OnRateLimited = func(p string) { mu.Lock(); limited = append(limited, p); mu.Unlock() }
		}
	}
	signIn := func(e *consoleEnv, email, password string) *resp {
		hc := &http.Client{Transport: e.srv.Client().Transport}
		return e.send(hc, "POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": password})
	}
	wantResp429 := func(t *testing.T, step string, r *resp, policy, limit, retry string) {
		t.Helper()
		wantErr(t, r, http.StatusTooManyRequests, thauth.ERateLimited, msgSignInLimited)
		wantHeaders(t, step, r.header, policy, limit, retry)
		for _, c := range r.header.Values("Set-Cookie") {
			t.Errorf("%s: a refused sign-in sets a cookie: %s", step, c)
		}
	}

	t.Run("per IP", func(t *testing.T) {
		e := newConsoleEnv(t, opt(Limits{SignInPerIP: ratelimit.PerMinute(3), SignInPerAccount: LimitOff}))
		e.signUpVerified("ann@example.com", "Ann")
		const policy = `"signin-ip";q=3;w=60`
		for i, try := range [][2]string{{"ann@example.com", "wrong password 1"}, {"bob@example.com", testPassword}, {"cy@example.com", "x"}} {
			r := signIn(e, try[0], try[1])
			wantErr(t, r, http.StatusUnauthorized, thauth.EUnauthenticated, "email or password is incorrect")
			wantHeaders(t, fmt.Sprintf("attempt %d", i+1), r.header, policy, fmt.Sprintf(`"signin-ip";r=%d;t=%d`, 2-i, 20*(i+1)), "")
		}
		// The fourth attempt is refused before the password is checked: the right one too.
		wantResp429(t, "4th attempt", signIn(e, "ann@example.com", testPassword), policy, `"signin-ip";r=0;t=20`, "20")
		e.clock.Advance(20 * time.Second)
		r := signIn(e, "ann@example.com", testPassword)
		want(t, r, http.StatusOK)
		wantHeaders(t, "after 20s", r.header, policy, `"signin-ip";r=0;t=60`, "")
	})

	t.Run("per account and IP", func(t *testing.T) {
		e := newConsoleEnv(t, opt(Limits{SignInPerIP: LimitOff, SignInPerAccount: ratelimit.PerMinute(2)}))
		e.signUpVerified("ann@example.com", "Ann")
		const policy = `"signin-account";q=2;w=60`
		for i := range 2 {
			r := signIn(e, "ann@example.com", "wrong password")
			wantErr(t, r, http.StatusUnauthorized, thauth.EUnauthenticated, "email or password is incorrect")
			wantHeaders(t, fmt.Sprintf("attempt %d", i+1), r.header, policy, fmt.Sprintf(`"signin-account";r=%d;t=%d`, 1-i, 30*(i+1)), "")
		}
		wantResp429(t, "3rd attempt", signIn(e, "ann@example.com", testPassword), policy, `"signin-account";r=0;t=30`, "30")
		// The address is normalized as manage does; other addresses have their own limit.
		wantResp429(t, "same address", signIn(e, "  ANN@Example.com ", testPassword), policy, `"signin-account";r=0;t=30`, "30")
		wantErr(t, signIn(e, "bob@example.com", "x"), http.StatusUnauthorized, thauth.EUnauthenticated, "incorrect")
		// The same address from another client IP has its own limit too.
		rec := from(e.srv.Config.Handler, ipB, "POST", "/api/v1/auth/signin", "", `{"email":"ann@example.com","password":"`+testPassword+`"}`)
		if rec.Code != http.StatusOK {
			t.Fatalf("same address, other IP: %d %s", rec.Code, rec.Body)
		}
		wantHeaders(t, "other IP", rec.Header(), policy, `"signin-account";r=1;t=30`, "")
	})

	t.Run("sign-up and password reset per IP", func(t *testing.T) {
		e := newConsoleEnv(t, opt(Limits{SignUpPerIP: ratelimit.PerHour(2), ResetPerIP: ratelimit.PerHour(2)}))
		hc := &http.Client{Transport: e.srv.Client().Transport}
		for i := range 2 {
			r := e.send(hc, "POST", "/api/v1/auth/signup", map[string]string{"email": fmt.Sprintf("u%d@example.com", i), "password": testPassword})
			want(t, r, http.StatusAccepted)
			r = e.send(hc, "POST", "/api/v1/auth/password-reset", map[string]string{"email": fmt.Sprintf("u%d@example.com", i)})
			want(t, r, http.StatusAccepted)
		}
		r := e.send(hc, "POST", "/api/v1/auth/signup", map[string]string{"email": "u9@example.com", "password": testPassword})
		wantErr(t, r, http.StatusTooManyRequests, thauth.ERateLimited, msgSignUpLimited)
		wantHeaders(t, "3rd sign-up", r.header, `"signup-ip";q=2;w=3600`, `"signup-ip";r=0;t=1800`, "1800")
		r = e.send(hc, "POST", "/api/v1/auth/password-reset", map[string]string{"email": "u9@example.com"})
		wantErr(t, r, http.StatusTooManyRequests, thauth.ERateLimited, msgResetLimited)
		wantHeaders(t, "3rd reset", r.header, `"password-reset-ip";q=2;w=3600`, `"password-reset-ip";r=0;t=1800`, "1800")
	})

	mu.Lock()
	defer mu.Unlock()
	want := []string{"signin-ip", "signin-account", "signin-account", "signup-ip", "password-reset-ip"}
	if diff := cmp.Diff(want, limited); diff != "" {
		t.Errorf("OnRateLimited (-want +got):\n%s", diff)
	}
}

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ratelimit.Limit
	}{
		{"", ratelimit.Limit{}},
		{"off", LimitOff},
		{"1000/s", ratelimit.Limit{Rate: 1000, Period: time.Second, Burst: 1000}},
		{"30/min", ratelimit.PerMinute(30)},
		{"30/m burst 60", ratelimit.Limit{Rate: 30, Period: time.Minute, Burst: 60}},
		{"20/h:5", ratelimit.Limit{Rate: 20, Period: time.Hour, Burst: 5}},
		{"5/10s", ratelimit.Limit{Rate: 5, Period: 10 * time.Second, Burst: 5}},
		{"1000/1s burst 2000", ratelimit.Limit{Rate: 1000, Period: time.Second, Burst: 2000}},
	} {
		got, err := ParseLimit(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if !c.want.IsZero() {
			if back, err := ParseLimit(c.want.String()); err != nil || back != c.want {
				t.Errorf("ParseLimit(%q) (String of %q) = %v, %v", c.want.String(), c.in, back, err)
			}
		}
	}
	for _, in := range []string{"1000", "x/s", "0/s", "-1/s", "10/fortnight", "10/-1s", "10/s burst x", "10/s:0", "2/1ns"} {
		if l, err := ParseLimit(in); err == nil {
			t.Errorf("ParseLimit(%q) = %v, want an error", in, l)
		}
	}
}

func TestLimitsDefaultsAndValidate(t *testing.T) {
	got := Limits{SignInPerIP: ratelimit.PerMinute(7), SignUpPerIP: LimitOff}.withDefaults()
	want := DefaultLimits()
	want.SignInPerIP = ratelimit.PerMinute(7)
	want.SignUpPerIP = ratelimit.Limit{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("withDefaults (-want +got):\n%s", diff)
	}
	if err := DefaultLimits().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := (Limits{PerKey: ratelimit.Limit{Rate: 1, Period: time.Second, Burst: -1}}).Validate(); err == nil {
		t.Error("a negative burst is valid")
	}
}

func TestLimitIP(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":               "203.0.113.7",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2::1%eth0":      "2001:db8:1:2::/64",
		"::ffff:203.0.113.7":        "203.0.113.7",
		"not an address":            "not an address",
		strings.Repeat("x", 100):    strings.Repeat("x", maxIPKeyLen),
		"fe80::1:2:3:4":             "fe80::/64",
		"[2001:db8::1]":             "[2001:db8::1]",
		"2001:db8:aaaa:bbbb:cccc::": "2001:db8:aaaa:bbbb::/64",
	} {
		if got := limitIP(in); got != want {
			t.Errorf("limitIP(%q) = %q, want %q", in, got, want)
		}
	}
	if emailKey(" Ann@Example.COM") != emailKey("ann@example.com") || emailKey("ann@example.com") == emailKey("bob@example.com") {
		t.Error("emailKey does not normalize, or collides")
	}
	if k := signInAcctLimitKey("ann@example.com", ipA); strings.Contains(k, "ann") || !strings.HasSuffix(k, "@"+ipA) {
		t.Errorf("sign-in account key %q holds the address or not the IP", k)
	}
}

// BenchmarkCheckLimits is BenchmarkCheckHandler/thauth-nolog with rate limits and the abuse
// detector on and off, in one run so that the numbers compare: "local" is a local limiter
// with a per-key limit never reached (every request takes a token and gets the RateLimit
// header fields) and a detector (every request asks whether its address is blocked).
//
//	go test -run '^$' -bench 'CheckLimits' -benchmem ./internal/httpserver/
func BenchmarkCheckLimits(b *testing.B) {
	run := func(b *testing.B, lim ratelimit.Limiter, det *abuse.Detector) {
		e := newEnv(b)
		h := New(Deps{Engine: e.eng, Manage: e.mg, Ping: e.store.Ping, Limiter: lim, Abuse: det,
			Limits: Limits{PerKey: ratelimit.Limit{Rate: 1e8, Period: time.Second, Burst: 1e8}}})
		b.ResetTimer()
		runInProcess(b, h, e.decisions)
	}
	b.Run("off", func(b *testing.B) { run(b, nil, nil) })
	b.Run("local", func(b *testing.B) { run(b, ratelimit.NewLocal(ratelimit.Options{}), abuse.New(abuse.Options{})) })
	b.Run("local-nodetector", func(b *testing.B) { run(b, ratelimit.NewLocal(ratelimit.Options{}), nil) })
	b.Run("detector-only", func(b *testing.B) { run(b, nil, abuse.New(abuse.Options{})) })
}

// BenchmarkCheckLimitsCost measures what requireKey adds to each request of a valid key, on
// one goroutine, without the rest of the request (more stable on a busy machine than the
// difference of two whole-request benchmarks): asking the detector whether the address is
// blocked (reading the clock, splitting RemoteAddr, one atomic load), and the per-key limit
// with its header fields, against the same with ratelimit.SetHeaders.
func BenchmarkCheckLimitsCost(b *testing.B) {
	l := ratelimit.Limit{Rate: 1e8, Period: time.Second, Burst: 1e8}
	s := &server{now: time.Now, abuse: abuse.New(abuse.Options{}), limiter: ratelimit.NewLocal(ratelimit.Options{}),
		limits: Limits{PerKey: l}, keyHeaders: ratelimit.NewHeaders(policyAPIKey, l)}
	r := httptest.NewRequest("POST", "/v1/check", nil)
	w := &discardWriter{h: http.Header{}}
	p := engine.Principal{KeyID: "0190b4d0-7c3a-7b8e-9f00-0123456789ab", LimitKey: "key:0190b4d0-7c3a-7b8e-9f00-0123456789ab"}
	b.Run("blocked-check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if s.blockedIP(w, r) {
				b.Fatal("blocked")
			}
		}
	})
	b.Run("per-key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !s.allowKey(w, r, &p) {
				b.Fatal("limited")
			}
		}
	})
	b.Run("per-key-setheaders", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res := s.limiter.Allow(r.Context(), p.LimitKey, l)
			ratelimit.SetHeaders(w.h, policyAPIKey, res)
		}
	})
}
