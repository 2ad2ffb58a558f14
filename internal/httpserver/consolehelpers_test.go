package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/internal/totp"
)

// consoleEnv is a whole Thauth console behind a real HTTP server: the real SQLite store,
// engine (answering the console's authorization questions from the system project), sealer
// and TOTP, a settable clock shared by every part, and cheap password hashing (tests sign in
// a lot). The server is TLS by default, so that Secure cookies travel like in production.
type consoleEnv struct {
	t      *testing.T
	ctx    context.Context
	store  *sqlite.Store
	eng    *engine.Engine
	mg     *manage.Service
	sealer *seal.Sealer
	clock  *testClock
	logs   *lockedBuffer
	srv    *httptest.Server
	base   *url.URL
	secure bool
}

// Session timing of the console tests: short enough to reach by moving the clock a few times.
const (
	testIdleTimeout = 30 * time.Minute
	testLifetime    = 3 * time.Hour
)

// testPasswordParams are argon2id parameters cheap enough for tests (never elsewhere).
var testPasswordParams = manage.PasswordParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

// consoleOpt adjusts a consoleEnv before its server starts.
type consoleOpt func(d *Deps)

// plainHTTP serves without TLS (and so without Secure cookies).
func plainHTTP(d *Deps) { d.SecureCookies = false }

func newConsoleEnv(t *testing.T, opts ...consoleOpt) *consoleEnv {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := &testClock{t: time.Now().UTC().Truncate(time.Microsecond)}
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	mk, err := seal.GenerateMasterKey("test")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.ParseMasterKeys(mk)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := seal.New(ctx, st, keys, seal.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Options{Now: clk.Now, Logger: log})
	mg := manage.New(st, eng, manage.Options{
		Now: clk.Now, Logger: log, Sealer: sl, TOTP: totp.New("Thauth"),
		Passwords:          testPasswordParams,
		SessionIdleTimeout: testIdleTimeout,
		SessionLifetime:    testLifetime,
		PublicURL:          "https://console.test",
		Decide: func(projectID string, req *thauth.CheckRequest, now time.Time) thauth.Decision {
			snap := eng.Snapshot(projectID)
			if snap == nil {
				return thauth.ErrorDecision
			}
			return snap.Check(req, now)
		},
	})
	if err := mg.EnsureConsole(ctx); err != nil {
		t.Fatalf("EnsureConsole: %v", err)
	}
	if err := eng.LoadAll(ctx); err != nil {
		t.Fatal(err)
	}
	d := Deps{Engine: eng, Manage: mg, Ping: st.Ping, Logger: log, Now: clk.Now, SecureCookies: true}
	for _, o := range opts {
		o(&d)
	}
	var srv *httptest.Server
	if d.SecureCookies {
		srv = httptest.NewTLSServer(New(d))
	} else {
		srv = httptest.NewServer(New(d))
	}
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	return &consoleEnv{
		t: t, ctx: ctx, store: st, eng: eng, mg: mg, sealer: sl, clock: clk, logs: logs,
		srv: srv, base: base, secure: d.SecureCookies,
	}
}

// cookieName is the session cookie's name in this env's mode.
func (e *consoleEnv) cookieName() string {
	if e.secure {
		return "__Host-thauth_session"
	}
	return "thauth_session"
}

// resp is a finished HTTP exchange.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r *resp) String() string { return string(r.body) }

// decode decodes the body into v, failing the test when it is not JSON.
func (r *resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// sessionCookie returns the Set-Cookie of the session cookie in the answer (nil if none).
func (r *resp) sessionCookie(t *testing.T, name string) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, line := range r.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("bad Set-Cookie %q: %v", line, err)
		}
		if c.Name == name {
			if found != nil {
				t.Fatalf("two session cookies set: %v", r.header.Values("Set-Cookie"))
			}
			found = c
		}
	}
	return found
}

// browser is one user agent: its own cookie jar, the CSRF token it was last given, and the
// headers a browser adds to same-origin fetches.
type browser struct {
	e    *consoleEnv
	jar  *cookiejar.Jar
	hc   *http.Client
	csrf string
}

func (e *consoleEnv) newBrowser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	hc := e.srv.Client() // trusts the test server's certificate
	hc = &http.Client{Transport: hc.Transport, Jar: jar}
	return &browser{e: e, jar: jar, hc: hc}
}

// send performs one request. body nil sends none; a string is sent as is, anything else as
// its JSON. hdr are header pairs, applied last ("" value deletes).
func (e *consoleEnv) send(hc *http.Client, method, path string, body any, hdr ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: raw}
}

// do is a same-origin fetch by the dashboard: Sec-Fetch-Site same-origin and, on unsafe
// methods, the CSRF token it holds.
func (b *browser) do(method, path string, body any, hdr ...string) *resp {
	b.e.t.Helper()
	h := []string{"Sec-Fetch-Site", "same-origin", "User-Agent", "test-browser/1.0"}
	if b.csrf != "" && unsafeMethod(method) {
		h = append(h, "X-CSRF-Token", b.csrf)
	}
	return b.e.send(b.hc, method, path, body, append(h, hdr...)...)
}

// cookie returns the session cookie the browser holds ("" if none).
func (b *browser) cookie() string {
	for _, c := range b.jar.Cookies(b.e.base) {
		if c.Name == b.e.cookieName() {
			return c.Value
		}
	}
	return ""
}

// plant puts a session cookie into the browser's jar, as another page could try to.
func (b *browser) plant(value string) {
	b.jar.SetCookies(b.e.base, []*http.Cookie{{
		Name: b.e.cookieName(), Value: value, Path: "/", Secure: b.e.secure, HttpOnly: true,
	}})
}

// bearer sends a request with a bearer credential (no cookies).
func (e *consoleEnv) bearer(token, method, path string, body any) *resp {
	e.t.Helper()
	hc := &http.Client{Transport: e.srv.Client().Transport}
	return e.send(hc, method, path, body, "Authorization", "Bearer "+token)
}

// want checks the status, failing with the body otherwise.
func want(t *testing.T, r *resp, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
}

// wantErr checks a JSON error answer: status, code and that the message contains msg.
func wantErr(t *testing.T, r *resp, status int, code thauth.ErrorCode, msg string) errorBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json (body %s)", ct, r.body)
	}
	var b errorBody
	r.decode(t, &b)
	if b.Code != code {
		t.Errorf("code = %q, want %q (body %s)", b.Code, code, r.body)
	}
	if !strings.Contains(b.Error, msg) {
		t.Errorf("error = %q, want it to contain %q", b.Error, msg)
	}
	return b
}

// mail is an outbox message with its payload opened.
type mail struct {
	thauth.OutboxMail
	Data map[string]string
}

// mails returns the outbox messages to address to, oldest first, payloads opened.
func (e *consoleEnv) mails(to string) []mail {
	e.t.Helper()
	all, err := e.store.ListMail(e.ctx, 1000)
	if err != nil {
		e.t.Fatalf("ListMail: %v", err)
	}
	var out []mail
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.To != to {
			continue
		}
		sm := mail{OutboxMail: m}
		if m.Payload != "" {
			b, err := e.sealer.Open(e.ctx, manage.MailPurpose, m.ID, m.Payload)
			if err != nil {
				e.t.Fatalf("open mail payload: %v", err)
			}
			if err := json.Unmarshal(b, &sm.Data); err != nil {
				e.t.Fatal(err)
			}
		}
		out = append(out, sm)
	}
	return out
}

// mailCount counts the messages of template sent to to.
func (e *consoleEnv) mailCount(to, template string) int {
	n := 0
	for _, m := range e.mails(to) {
		if m.Template == template {
			n++
		}
	}
	return n
}

// linkToken returns the token of the newest template mail to to (from its link's
// "#token=" fragment).
func (e *consoleEnv) linkToken(to, template string) string {
	e.t.Helper()
	ms := e.mails(to)
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Template != template {
			continue
		}
		link := ms[i].Data["link"]
		_, tok, ok := strings.Cut(link, "#token=")
		if !ok || tok == "" {
			e.t.Fatalf("%s mail link %q has no #token= fragment", template, link)
		}
		return tok
	}
	e.t.Fatalf("no %s mail to %s (have %d messages)", template, to, len(ms))
	return ""
}

// testPassword is a password that passes the policy.
const testPassword = "correct horse battery staple 42"

// signInJSON's decoded form, and the other answers the tests read.
type signInAnswer struct {
	Account struct {
		ID            string `json:"id"`
		Email         string `json:"email"`
		Name          string `json:"name"`
		EmailVerified bool   `json:"email_verified"`
		MFAEnabled    bool   `json:"mfa_enabled"`
	} `json:"account"`
	MFARequired bool   `json:"mfa_required"`
	CSRFToken   string `json:"csrf_token"`
}

type accountAnswer struct {
	Account struct {
		ID         string `json:"id"`
		Email      string `json:"email"`
		Name       string `json:"name"`
		MFAEnabled bool   `json:"mfa_enabled"`
	} `json:"account"`
	Session *struct {
		ID  string `json:"id"`
		MFA bool   `json:"mfa"`
	} `json:"session"`
	RecoveryCodesLeft int    `json:"recovery_codes_left"`
	CSRFToken         string `json:"csrf_token"`
}

// signUpVerified signs an account up and verifies its address through the outbox.
func (e *consoleEnv) signUpVerified(email, name string) {
	e.t.Helper()
	b := e.newBrowser()
	want(e.t, b.do("POST", "/api/v1/auth/signup", map[string]string{"email": email, "password": testPassword, "name": name}), http.StatusAccepted)
	tok := e.linkToken(email, manage.MailVerifyEmail)
	want(e.t, b.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": tok}), http.StatusOK)
}

// signIn signs b in with a password and keeps the CSRF token of the new session.
func (b *browser) signIn(email, password string) signInAnswer {
	b.e.t.Helper()
	r := b.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": password})
	want(b.e.t, r, http.StatusOK)
	var a signInAnswer
	r.decode(b.e.t, &a)
	b.csrf = a.CSRFToken
	return a
}

// newAccount signs up, verifies and signs in a new account, returning its browser.
func (e *consoleEnv) newAccount(email string) (*browser, string) {
	e.t.Helper()
	e.signUpVerified(email, strings.SplitN(email, "@", 2)[0])
	b := e.newBrowser()
	a := b.signIn(email, testPassword)
	return b, a.Account.ID
}

// enrollMFA turns TOTP on for b's account and returns the secret and the recovery codes.
func (b *browser) enrollMFA() (secret string, codes []string) {
	t := b.e.t
	t.Helper()
	r := b.do("POST", "/api/v1/account/mfa/totp", nil)
	want(t, r, http.StatusCreated)
	var en struct {
		Secret string `json:"secret"`
		URI    string `json:"otpauth_uri"`
		QR     string `json:"qr_code_png"`
	}
	r.decode(t, &en)
	r = b.do("POST", "/api/v1/account/mfa/totp/confirm", map[string]string{"code": b.e.code(en.Secret)})
	want(t, r, http.StatusOK)
	var c struct {
		RecoveryCodes []string `json:"recovery_codes"`
		CSRFToken     string   `json:"csrf_token"`
	}
	r.decode(t, &c)
	b.csrf = c.CSRFToken
	return en.Secret, c.RecoveryCodes
}

// code is the current TOTP code of secret on the test clock.
func (e *consoleEnv) code(secret string) string {
	e.t.Helper()
	c, err := totp.Code(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// nextStep moves the clock into the next TOTP time step, so that a new code is accepted
// (a code, and any earlier step, works once).
func (e *consoleEnv) nextStep() { e.clock.Advance(totp.Period) }

// createOrg creates an organization as b and returns its id.
func (b *browser) createOrg(name string) string {
	b.e.t.Helper()
	r := b.do("POST", "/api/v1/orgs", map[string]string{"name": name})
	want(b.e.t, r, http.StatusCreated)
	var o organizationAnswer
	r.decode(b.e.t, &o)
	return o.Organization.ID
}

type organizationAnswer struct {
	Organization thauth.Organization `json:"organization"`
	Role         string              `json:"role"`
	Operator     string              `json:"operator"`
}

// createProject creates a project in org as b and returns its id.
func (b *browser) createProject(org, name string) string {
	b.e.t.Helper()
	r := b.do("POST", "/api/v1/orgs/"+org+"/projects", map[string]string{"name": name})
	want(b.e.t, r, http.StatusCreated)
	var p struct {
		Project projectJSON `json:"project"`
	}
	r.decode(b.e.t, &p)
	return p.Project.ID
}

// addMember invites email into org with role as owner, and has the invitee (signed in as
// member) accept.
func (e *consoleEnv) addMember(owner, member *browser, org, email, role string) {
	e.t.Helper()
	want(e.t, owner.do("POST", "/api/v1/orgs/"+org+"/invitations", map[string]string{"email": email, "role": role}), http.StatusCreated)
	tok := e.linkToken(email, manage.MailInvitation)
	want(e.t, member.do("POST", "/api/v1/invitations/accept", map[string]string{"token": tok}), http.StatusOK)
}

// createToken creates a personal access token with scopes as b and returns it.
func (b *browser) createToken(name string, scopes ...string) string {
	b.e.t.Helper()
	r := b.do("POST", "/api/v1/account/tokens", map[string]any{"name": name, "scopes": scopes})
	want(b.e.t, r, http.StatusCreated)
	var tk struct {
		Token string `json:"token"`
	}
	r.decode(b.e.t, &tk)
	if !strings.HasPrefix(tk.Token, "thauthpat_") {
		b.e.t.Fatalf("token %q is not a personal access token", tk.Token)
	}
	return tk.Token
}
