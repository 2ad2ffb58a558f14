package httpserver

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// TestConsoleCookieAttributes: over TLS the session cookie is __Host-thauth_session,
// Secure, HttpOnly, SameSite=Lax, Path=/, without Domain, living as long as the session;
// over plain HTTP (development) it is thauth_session without Secure.
func TestConsoleCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []consoleOpt
		cookie string
		secure bool
	}{
		{"tls", nil, "__Host-thauth_session", true},
		{"plain http", []consoleOpt{plainHTTP}, "thauth_session", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newConsoleEnv(t, tc.opts...)
			e.signUpVerified("ann@example.com", "Ann")
			b := e.newBrowser()
			r := b.do("POST", "/api/v1/auth/signin", map[string]string{"email": "ann@example.com", "password": testPassword})
			want(t, r, http.StatusOK)
			c := r.sessionCookie(t, tc.cookie)
			if c == nil {
				t.Fatalf("no %s cookie in %v", tc.cookie, r.header.Values("Set-Cookie"))
			}
			got := struct {
				Secure, HttpOnly bool
				SameSite         http.SameSite
				Path, Domain     string
				MaxAge           int
			}{c.Secure, c.HttpOnly, c.SameSite, c.Path, c.Domain, c.MaxAge}
			wantAttrs := got
			wantAttrs.Secure, wantAttrs.HttpOnly, wantAttrs.SameSite = tc.secure, true, http.SameSiteLaxMode
			wantAttrs.Path, wantAttrs.Domain, wantAttrs.MaxAge = "/", "", int(testLifetime/time.Second)
			if diff := cmp.Diff(wantAttrs, got); diff != "" {
				t.Errorf("cookie attributes (-want +got):\n%s\nraw: %v", diff, r.header.Values("Set-Cookie"))
			}
			if raw := strings.Join(r.header.Values("Set-Cookie"), "\n"); strings.Contains(strings.ToLower(raw), "domain=") {
				t.Errorf("cookie has a Domain: %s", raw)
			}
			// The browser sends it back and it works.
			want(t, b.do("GET", "/api/v1/account", nil), http.StatusOK)
			// The other mode's name is not read.
			other := e.newBrowser()
			other.jar.SetCookies(e.base, []*http.Cookie{{Name: map[bool]string{true: cookiePlain, false: cookieSecure}[tc.secure], Value: b.cookie(), Path: "/"}})
			wantErr(t, other.do("GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "not signed in")
		})
	}
}

// TestConsoleHeaders: console answers, errors included, are JSON with no-store, nosniff and
// no-referrer; a console 401 is JSON too (unlike the machine API's plain-text one).
func TestConsoleHeaders(t *testing.T) {
	e := newConsoleEnv(t)
	b, _ := e.newAccount("hal@example.com")
	anon := e.newBrowser()
	for _, r := range []*resp{
		b.do("GET", "/api/v1/account", nil),
		anon.do("GET", "/api/v1/account", nil),
		anon.do("POST", "/api/v1/auth/signin", `{"email":1}`),
		anon.do("POST", "/api/v1/auth/signup", `{}`, "Sec-Fetch-Site", "cross-site"),
	} {
		for h, v := range map[string]string{
			"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			"Content-Type": "application/json",
		} {
			if got := r.header.Get(h); got != v {
				t.Errorf("%d %s: %s = %q, want %q", r.status, r, h, got, v)
			}
		}
	}
	wantErr(t, anon.do("GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "not signed in")
}

// TestConsoleCredentials: what authenticates a console request and what does not.
func TestConsoleCredentials(t *testing.T) {
	e := newConsoleEnv(t)
	b, _ := e.newAccount("ida@example.com")
	init, err := e.mg.Init(e.ctx, "Acme", "shop")
	if err != nil {
		t.Fatal(err)
	}
	tok := b.createToken("cli", "read", "write")
	for _, tc := range []struct {
		name, auth, msg string
	}{
		{"project API key", "Bearer " + init.AdminKey, "API keys cannot use the console API"},
		{"basic auth", "Basic aWRhOnB3", "Bearer <personal access token>"},
		{"empty bearer", "Bearer ", "Bearer <personal access token>"},
		{"unknown access token", "Bearer thauthpat_" + strings.Repeat("a", len(tok)-len("thauthpat_")), ""},
		{"garbage", "Bearer not-a-token", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The header wins over the session cookie the browser also sends: no mixing.
			r := b.do("GET", "/api/v1/account", nil, "Authorization", tc.auth)
			wantErr(t, r, http.StatusUnauthorized, thauth.EUnauthenticated, tc.msg)
			if c := r.sessionCookie(t, e.cookieName()); c != nil {
				t.Error("a bad Authorization header cleared the session cookie")
			}
		})
	}
	want(t, e.bearer(tok, "GET", "/api/v1/account", nil), http.StatusOK)
	// A dead cookie is answered 401 and cleared.
	dead := e.newBrowser()
	dead.plant("no-such-session")
	r := dead.do("GET", "/api/v1/account", nil)
	wantErr(t, r, http.StatusUnauthorized, thauth.EUnauthenticated, "")
	if c := r.sessionCookie(t, e.cookieName()); c == nil || c.MaxAge >= 0 {
		t.Errorf("dead cookie not cleared: %v", r.header.Values("Set-Cookie"))
	}
}

// TestConsoleCSRF: an unsafe request authenticated by the cookie needs the session's CSRF
// token; without it or with a wrong one (another session's included) it is refused and
// nothing changes.
func TestConsoleCSRF(t *testing.T) {
	e := newConsoleEnv(t)
	b, _ := e.newAccount("jon@example.com")
	other, _ := e.newAccount("kim@example.com")
	for _, tc := range []struct {
		name string
		hdr  []string
	}{
		{"missing", []string{"X-CSRF-Token", ""}},
		{"wrong", []string{"X-CSRF-Token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
		{"another session's", []string{"X-CSRF-Token", other.csrf}},
		{"the session token itself", []string{"X-CSRF-Token", b.cookie()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A browser attaches the cookie; without the header nothing must happen.
			do := func(method, path string, body any) *resp {
				hdr := append([]string{}, tc.hdr...)
				return b.e.send(b.hc, method, path, body, append([]string{"Sec-Fetch-Site", "same-origin"}, hdr...)...)
			}
			wantErr(t, do("PATCH", "/api/v1/account", map[string]string{"name": "Mallory"}), http.StatusForbidden, thauth.EForbidden, "missing or invalid CSRF token")
			wantErr(t, do("POST", "/api/v1/orgs", map[string]string{"name": "Evil Corp"}), http.StatusForbidden, thauth.EForbidden, "missing or invalid CSRF token")
			wantErr(t, do("POST", "/api/v1/account/sessions/revoke-all", nil), http.StatusForbidden, thauth.EForbidden, "missing or invalid CSRF token")
			wantErr(t, do("POST", "/api/v1/auth/signout", nil), http.StatusForbidden, thauth.EForbidden, "missing or invalid CSRF token")
		})
	}
	// Nothing changed: same name, no organization, still signed in.
	var acc accountAnswer
	r := b.do("GET", "/api/v1/account", nil)
	want(t, r, http.StatusOK)
	r.decode(t, &acc)
	if acc.Account.Name != "jon" {
		t.Errorf("name = %q after refused writes", acc.Account.Name)
	}
	r = b.do("GET", "/api/v1/orgs", nil)
	want(t, r, http.StatusOK)
	if r.String() != `{"organizations":[]}` {
		t.Errorf("organizations after refused writes: %s", r)
	}
	// With the token it works.
	want(t, b.do("PATCH", "/api/v1/account", map[string]string{"name": "Jon"}), http.StatusOK)
}

// TestConsoleCrossOrigin: unsafe cross-origin browser requests are refused before anything
// else, even with a valid CSRF token, and so is a cross-site sign-in (login CSRF). Safe
// methods and same-origin requests pass.
func TestConsoleCrossOrigin(t *testing.T) {
	e := newConsoleEnv(t)
	b, _ := e.newAccount("lea@example.com")
	for _, tc := range []struct {
		name string
		hdr  []string
	}{
		{"Sec-Fetch-Site cross-site", []string{"Sec-Fetch-Site", "cross-site"}},
		{"Sec-Fetch-Site same-site", []string{"Sec-Fetch-Site", "same-site"}},
		{"foreign Origin", []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, b.do("PATCH", "/api/v1/account", map[string]string{"name": "Mallory"}, tc.hdr...),
				http.StatusForbidden, thauth.EForbidden, "cross-origin request refused")
			anon := e.newBrowser()
			r := anon.do("POST", "/api/v1/auth/signin", map[string]string{"email": "lea@example.com", "password": testPassword}, tc.hdr...)
			wantErr(t, r, http.StatusForbidden, thauth.EForbidden, "cross-origin request refused")
			if r.sessionCookie(t, e.cookieName()) != nil {
				t.Error("cross-origin sign-in set a cookie")
			}
			want(t, b.do("GET", "/api/v1/account", nil, tc.hdr...), http.StatusOK)
		})
	}
	var acc accountAnswer
	b.do("GET", "/api/v1/account", nil).decode(t, &acc)
	if acc.Account.Name != "lea" {
		t.Errorf("name = %q after refused cross-origin writes", acc.Account.Name)
	}
	// Same origin, stated by Origin only (an older browser), passes.
	want(t, b.do("PATCH", "/api/v1/account", map[string]string{"name": "Lea"}, "Sec-Fetch-Site", "", "Origin", e.srv.URL), http.StatusOK)
}

// TestConsoleSessionFixation: sign-in never adopts the cookie the browser brings, and the
// second-factor step replaces the pending session.
func TestConsoleSessionFixation(t *testing.T) {
	e := newConsoleEnv(t)
	e.signUpVerified("victim@example.com", "Victim")
	attacker, _ := e.newAccount("attacker@example.com")
	attackerToken := attacker.cookie()

	t.Run("planted value", func(t *testing.T) {
		b := e.newBrowser()
		b.plant("attacker-chosen-session-value")
		b.signIn("victim@example.com", testPassword)
		if got := b.cookie(); got == "attacker-chosen-session-value" || got == "" {
			t.Fatalf("cookie after sign-in = %q", got)
		}
		want(t, b.do("GET", "/api/v1/account", nil), http.StatusOK)
		wantErr(t, e.bearerCookie("attacker-chosen-session-value", "GET", "/api/v1/account"), http.StatusUnauthorized, thauth.EUnauthenticated, "")
	})
	t.Run("planted live session", func(t *testing.T) {
		b := e.newBrowser()
		b.plant(attackerToken)
		b.signIn("victim@example.com", testPassword)
		if b.cookie() == attackerToken {
			t.Fatal("sign-in kept the planted session token")
		}
		// The attacker's token still belongs to the attacker: it never became the victim's.
		r := e.bearerCookie(attackerToken, "GET", "/api/v1/account")
		want(t, r, http.StatusOK)
		var acc accountAnswer
		r.decode(t, &acc)
		if acc.Account.Email != "attacker@example.com" {
			t.Fatalf("planted token now signs in %q", acc.Account.Email)
		}
	})
	t.Run("pending session replaced by the MFA step", func(t *testing.T) {
		v := e.newBrowser()
		v.signIn("victim@example.com", testPassword)
		secret, _ := v.enrollMFA()
		want(t, v.do("POST", "/api/v1/auth/signout", nil), http.StatusNoContent)

		e.nextStep()
		b := e.newBrowser()
		if a := b.signIn("victim@example.com", testPassword); !a.MFARequired {
			t.Fatal("no MFA step")
		}
		pending := b.cookie()
		ps, _, err := e.mg.Authenticate(e.ctx, pending)
		if err != nil {
			t.Fatal(err)
		}
		r := b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"code": e.code(secret)})
		want(t, r, http.StatusOK)
		var a signInAnswer
		r.decode(t, &a)
		b.csrf = a.CSRFToken
		if b.cookie() == pending {
			t.Fatal("the MFA step kept the pending token")
		}
		wantErr(t, e.bearerCookie(pending, "GET", "/api/v1/account"), http.StatusUnauthorized, thauth.EUnauthenticated, "")
		wantErr(t, e.bearerCookie(pending, "POST", "/api/v1/auth/signin/mfa"), http.StatusUnauthorized, thauth.EUnauthenticated, "")
		var acc accountAnswer
		b.do("GET", "/api/v1/account", nil).decode(t, &acc)
		if acc.Session == nil || acc.Session.ID == ps.ID || !acc.Session.MFA {
			t.Fatalf("session after MFA = %+v, pending was %s", acc.Session, ps.ID)
		}
	})
}

// TestConsoleSessionExpiry: a session ends after the idle timeout without use, and at its
// absolute lifetime however much it is used (the injected clock moves; nothing sleeps).
func TestConsoleSessionExpiry(t *testing.T) {
	e := newConsoleEnv(t)
	e.signUpVerified("max@example.com", "Max")

	t.Run("idle", func(t *testing.T) {
		b := e.newBrowser()
		b.signIn("max@example.com", testPassword)
		e.clock.Advance(testIdleTimeout - time.Minute)
		want(t, b.do("GET", "/api/v1/account", nil), http.StatusOK)
		e.clock.Advance(testIdleTimeout - time.Minute) // used just before: still alive
		want(t, b.do("GET", "/api/v1/account", nil), http.StatusOK)
		e.clock.Advance(testIdleTimeout + time.Minute)
		r := b.do("GET", "/api/v1/account", nil)
		wantErr(t, r, http.StatusUnauthorized, thauth.EUnauthenticated, "")
		if c := r.sessionCookie(t, e.cookieName()); c == nil || c.MaxAge >= 0 {
			t.Error("expired session's cookie not cleared")
		}
	})
	t.Run("absolute", func(t *testing.T) {
		b := e.newBrowser()
		b.signIn("max@example.com", testPassword)
		start := e.clock.Now()
		step := testIdleTimeout / 2
		for e.clock.Now().Add(step).Before(start.Add(testLifetime)) {
			e.clock.Advance(step)
			want(t, b.do("GET", "/api/v1/account", nil), http.StatusOK)
		}
		e.clock.Advance(start.Add(testLifetime).Sub(e.clock.Now()) + time.Second)
		wantErr(t, b.do("GET", "/api/v1/account", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "")
	})
}

// TestConsoleStrictBodies: console bodies are JSON objects with exactly the documented
// members; every rejection names what is wrong.
func TestConsoleStrictBodies(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.newBrowser()
	for _, tc := range []struct {
		name, ct, body string
		status         int
		msg            string
	}{
		{"unknown field", "application/json", `{"email":"a@b.c","password":"x","admin":true}`, 400, `unknown field "admin"`},
		{"case differs", "application/json", `{"Email":"a@b.c","password":"x"}`, 400, `unknown field "Email"`},
		{"duplicate", "application/json", `{"email":"a@b.c","email":"d@e.f","password":"x"}`, 400, `duplicate field "email"`},
		{"wrong type", "application/json", `{"email":["a@b.c"],"password":"x"}`, 400, `field "email" must be a string`},
		{"missing", "application/json", `{"email":"a@b.c"}`, 400, `field "password" is required`},
		{"trailing data", "application/json", `{"email":"a@b.c","password":"x"} {}`, 400, "after the top-level object"},
		{"not an object", "application/json", `["a@b.c"]`, 400, "must be a JSON object"},
		{"empty", "application/json", ``, 400, "empty"},
		{"malformed", "application/json", `{"email":`, 400, "malformed JSON"},
		{"invalid utf-8", "application/json", "{\"email\":\"\xff\",\"password\":\"x\"}", 400, "UTF-8"},
		{"form", "application/x-www-form-urlencoded", `email=a@b.c&password=x`, 415, "application/json"},
		{"too large", "application/json", `{"email":"` + strings.Repeat("a", maxJSONBody) + `"}`, 413, "larger than 1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.send(b.hc, "POST", "/api/v1/auth/signin", tc.body, "Content-Type", tc.ct)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.status, r)
			}
			var eb errorBody
			r.decode(t, &eb)
			if !strings.Contains(eb.Error, tc.msg) {
				t.Errorf("error = %q, want it to contain %q", eb.Error, tc.msg)
			}
		})
	}
}

// TestConsoleDevOutbox: the development outbox route answers only when the server has one.
func TestConsoleDevOutbox(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		e := newConsoleEnv(t)
		wantErr(t, e.newBrowser().do("GET", "/api/v1/dev/outbox", nil), http.StatusNotFound, thauth.ENotFound, "not found")
	})
	t.Run("present", func(t *testing.T) {
		var e *consoleEnv
		var gotLimit int
		e = newConsoleEnv(t, func(d *Deps) {
			d.DevOutbox = func(ctx context.Context, limit int) ([]DevMessage, error) {
				gotLimit = limit
				ms, err := e.store.ListMail(ctx, limit)
				if err != nil {
					return nil, err
				}
				out := []DevMessage{}
				for _, m := range ms {
					out = append(out, DevMessage{ID: m.ID, To: m.To, Template: m.Template, Subject: m.Template, Status: m.Status, CreatedAt: m.CreatedAt})
				}
				return out, nil
			}
		})
		e.signUpVerified("ned@example.com", "Ned")
		b := e.newBrowser()
		r := b.do("GET", "/api/v1/dev/outbox?limit=5", nil)
		want(t, r, http.StatusOK)
		var got struct {
			Messages []DevMessage `json:"messages"`
		}
		r.decode(t, &got)
		if gotLimit != 5 || len(got.Messages) != 1 || got.Messages[0].To != "ned@example.com" || got.Messages[0].Template != manage.MailVerifyEmail {
			t.Errorf("limit %d, outbox %s", gotLimit, r)
		}
		wantErr(t, b.do("GET", "/api/v1/dev/outbox?limit=0", nil), http.StatusBadRequest, thauth.EInvalid, "limit")
		wantErr(t, b.do("GET", "/api/v1/dev/outbox?to=x", nil), http.StatusBadRequest, thauth.EInvalid, "unknown query parameter")
	})
}

// TestConsoleLogsNoSecrets runs the flows with every secret a person handles and checks
// that none of them reaches the server's log.
func TestConsoleLogsNoSecrets(t *testing.T) {
	e := newConsoleEnv(t)
	var secrets []string
	keep := func(s ...string) {
		for _, v := range s {
			if v != "" {
				secrets = append(secrets, v)
			}
		}
	}
	const email = "ola@example.com"
	const newPassword = "a different passphrase 1234"
	keep(testPassword, newPassword)
	b := e.newBrowser()
	want(t, b.do("POST", "/api/v1/auth/signup", map[string]string{"email": email, "password": testPassword}), http.StatusAccepted)
	vt := e.linkToken(email, manage.MailVerifyEmail)
	keep(vt)
	want(t, b.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": vt}), http.StatusOK)
	want(t, b.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": "wrong password for logs"}), http.StatusUnauthorized)
	keep("wrong password for logs")
	b.signIn(email, testPassword)
	keep(b.cookie(), b.csrf)
	secret, codes := b.enrollMFA()
	keep(secret, b.cookie(), b.csrf)
	keep(codes...)
	tok := b.createToken("ci", "read", "write")
	keep(tok)
	want(t, e.bearer(tok, "GET", "/api/v1/account", nil), http.StatusOK)
	want(t, b.do("POST", "/api/v1/auth/signout", nil), http.StatusNoContent)

	e.nextStep()
	b.signIn(email, testPassword)
	keep(b.cookie(), b.csrf)
	code := e.code(secret)
	keep(code)
	r := b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"code": code})
	want(t, r, http.StatusOK)
	var a signInAnswer
	r.decode(t, &a)
	b.csrf = a.CSRFToken
	keep(b.cookie(), b.csrf)
	r = b.do("POST", "/api/v1/account/password", map[string]string{"current_password": testPassword, "new_password": newPassword})
	want(t, r, http.StatusOK)
	var cs csrfJSON
	r.decode(t, &cs)
	b.csrf = cs.CSRFToken
	keep(b.cookie(), b.csrf)
	e.nextStep()
	code = e.code(secret)
	keep(code)
	r = b.do("POST", "/api/v1/account/mfa/recovery-codes", map[string]string{"code": code})
	want(t, r, http.StatusOK)
	var rc struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	r.decode(t, &rc)
	keep(rc.RecoveryCodes...)
	want(t, b.do("POST", "/api/v1/auth/password-reset", map[string]string{"email": email}), http.StatusAccepted)
	rt := e.linkToken(email, manage.MailPasswordReset)
	keep(rt)
	want(t, b.do("POST", "/api/v1/auth/password-reset/confirm", map[string]string{"token": rt, "password": newPassword + "!"}), http.StatusOK)
	keep(newPassword + "!")
	b.signIn(email, newPassword+"!")
	keep(b.cookie(), b.csrf)
	want(t, b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"recovery_code": codes[2]}), http.StatusUnauthorized)
	want(t, b.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"recovery_code": rc.RecoveryCodes[0]}), http.StatusOK)
	keep(b.cookie())

	logs := e.logs.String()
	if !strings.Contains(logs, `"route":"POST /api/v1/auth/signin"`) {
		t.Fatalf("the log has no access lines; the test would prove nothing:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains the secret %q", s)
		}
	}
}
