package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth/internal/totp"
)

// TestLogSecrets runs `thauth serve --log-format json --log-level debug` and drives the flows
// that handle secrets over HTTP — API keys created, used, mistyped and revoked; sign-up,
// sign-in with a wrong and the right password; TOTP enrolment and confirmation; sign-in with
// a recovery code; personal access tokens created and used; a password change — then checks
// that every log line is a JSON object, that access lines carry request_id, route, status and
// duration, and that no secret of any of these flows appears anywhere in the log.
//
// Not counted as secrets here: the single-use links of verification mails, which the
// development mailer logs by design (its warning at start-up says so; real mailers never
// log them).
func TestLogSecrets(t *testing.T) {
	dir := t.TempDir()
	ids := initProject(t, "--data-dir", dir)
	srv := startServer(t, nil, "--addr", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json", "--log-level", "debug")

	var secrets []string // every value that must never be logged
	secret := func(what string, vs ...string) {
		t.Helper()
		for _, v := range vs {
			if len(v) < 6 {
				t.Fatalf("%s %q is too short to look for", what, v)
			}
			secrets = append(secrets, v)
		}
	}
	// keySecret is the secret part of an API key or access token (prefix_lookup_secret).
	keySecret := func(tok string) string { return tok[strings.LastIndexByte(tok, '_')+1:] }
	secret("API keys", ids.AdminKey, ids.DecisionsKey, keySecret(ids.AdminKey), keySecret(ids.DecisionsKey))

	// API keys: create one through the CLI (the admin key travels to the server), check
	// with valid and invalid keys, revoke one and use it.
	admin := map[string]string{"THAUTH_URL": srv.url, "THAUTH_KEY": ids.AdminKey, "THAUTH_PROJECT": ids.ProjectID}
	out, errOut, code := cli(t, admin, "keys", "create", "--name", "ci", "--scope", "decisions:read", "--json")
	if code != 0 {
		t.Fatalf("keys create: exit %d: %s", code, errOut)
	}
	var created struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Token, "thauth_") {
		t.Fatalf("keys create --json = %q (%v)", out, err)
	}
	secret("created key", created.Token, keySecret(created.Token))
	wrongSecret := created.Token[:len(created.Token)-8] + "AAAAAAAA" // right lookup id, wrong secret and checksum
	garbage := "thauth_NotAKeyAtAllButLongEnoughToLookLikeOne0123"
	secret("invalid keys", wrongSecret, garbage)
	check := func(key string, want int) {
		t.Helper()
		status, _ := send(t, srv.url, "POST", "/v1/check", key, `{"subject":"user:1","feature":"billing","action":"read"}`)
		if status != want {
			t.Fatalf("check: %d, want %d", status, want)
		}
	}
	check(ids.DecisionsKey, 200)
	check(created.Token, 200)
	check(wrongSecret, 401)
	check(garbage, 401)
	check("", 401)
	if _, errOut, code := cli(t, admin, "keys", "revoke", created.ID); code != 0 {
		t.Fatalf("keys revoke: %s", errOut)
	}
	check(created.Token, 401)

	// Accounts: sign-up, verification, sign-in with a wrong then the right password.
	const email = "ada@example.com"
	password, wrongPassword, newPassword := "correct horse battery staple", "Tr0ub4dor&3-wrong", "a new passphrase for ada"
	secret("passwords", password, wrongPassword, newPassword)
	c := newConsoleClient(t, srv.url)
	c.do("POST", "/api/v1/auth/signup", map[string]string{"email": email, "password": password, "name": "Ada"}, 202, nil)
	c.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": c.linkToken(email, "verify_email")}, 200, nil)
	c.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": wrongPassword}, 401, nil)
	var signin struct {
		MFARequired bool   `json:"mfa_required"`
		CSRF        string `json:"csrf_token"`
	}
	c.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": password}, 200, &signin)
	c.csrf = signin.CSRF
	secret("CSRF token", signin.CSRF)
	secret("session cookie", sessionCookies(t, c)...)

	// TOTP: enrolment and confirmation, a wrong code, then sign-in with a recovery code.
	var enrol struct {
		Secret string `json:"secret"`
		URI    string `json:"otpauth_uri"`
	}
	c.do("POST", "/api/v1/account/mfa/totp", nil, 201, &enrol)
	secret("TOTP secret", enrol.Secret, strings.ToLower(enrol.Secret), enrol.URI)
	c.do("POST", "/api/v1/account/mfa/totp/confirm", map[string]string{"code": "000000"}, 400, nil)
	code6, err := totp.Code(enrol.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var confirm struct {
		RecoveryCodes []string `json:"recovery_codes"`
		CSRF          string   `json:"csrf_token"`
	}
	c.do("POST", "/api/v1/account/mfa/totp/confirm", map[string]string{"code": code6}, 200, &confirm)
	if len(confirm.RecoveryCodes) == 0 {
		t.Fatal("no recovery codes")
	}
	c.csrf = confirm.CSRF
	secret("CSRF token", confirm.CSRF)
	secret("session cookie", sessionCookies(t, c)...)
	for _, rc := range confirm.RecoveryCodes {
		secret("recovery code", rc, strings.ToLower(strings.ReplaceAll(rc, "-", "")), strings.ReplaceAll(rc, "-", ""))
	}

	c2 := newConsoleClient(t, srv.url)
	c2.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": password}, 200, &signin)
	if !signin.MFARequired {
		t.Fatal("sign-in did not ask for the second factor")
	}
	c2.csrf = signin.CSRF
	secret("CSRF token", signin.CSRF)
	secret("session cookie", sessionCookies(t, c2)...)
	c2.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"recovery_code": confirm.RecoveryCodes[0]}, 200, &signin)
	c2.csrf = signin.CSRF
	secret("CSRF token", signin.CSRF)
	secret("session cookie", sessionCookies(t, c2)...)

	// Personal access tokens: created, used, and a mistyped one.
	var tok struct {
		Token string `json:"token"`
	}
	c2.do("POST", "/api/v1/account/tokens", map[string]any{"name": "ci", "scopes": []string{"read"}}, 201, &tok)
	secret("access token", tok.Token, keySecret(tok.Token))
	if status, _ := send(t, srv.url, "GET", "/api/v1/orgs", tok.Token, ""); status != 200 {
		t.Fatalf("GET /api/v1/orgs with the access token: %d", status)
	}
	badToken := tok.Token[:len(tok.Token)-8] + "BBBBBBBB"
	secret("mistyped access token", badToken)
	if status, _ := send(t, srv.url, "GET", "/api/v1/orgs", badToken, ""); status != 401 {
		t.Fatalf("GET /api/v1/orgs with a mistyped access token: %d", status)
	}

	// Password change, then sign-in with the new password.
	var changed struct {
		CSRF string `json:"csrf_token"`
	}
	c2.do("POST", "/api/v1/account/password", map[string]string{"current_password": password, "new_password": newPassword}, 200, &changed)
	secret("CSRF token", changed.CSRF)
	secret("session cookie", sessionCookies(t, c2)...)
	c3 := newConsoleClient(t, srv.url)
	c3.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": newPassword}, 200, &signin)
	secret("session cookie", sessionCookies(t, c3)...)

	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	logs := srv.logs.String()

	// Every line is a JSON object; access lines have the fields of the issue.
	var lines, access int
	routes := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line is not a JSON object: %q", sc.Text())
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line without %s: %s", k, sc.Text())
			}
		}
		if rec["msg"] != "http request" {
			continue
		}
		access++
		id, _ := rec["request_id"].(string)
		route, _ := rec["route"].(string)
		_, statusOK := rec["status"].(float64)
		_, durationOK := rec["duration"].(float64)
		if id == "" || route == "" || !statusOK || !durationOK {
			t.Errorf("access line lacks request_id, route, status or duration: %s", sc.Text())
		}
		routes[route] = true
		if route == "GET /api/v1/orgs" && rec["status"] == float64(200) && rec["account_id"] == nil {
			t.Errorf("an access line of an authenticated console request lacks account_id: %s", sc.Text())
		}
		if route == "POST /v1/check" && rec["status"] == float64(200) && rec["key_id"] == nil {
			t.Errorf("an access line of an authenticated check lacks key_id: %s", sc.Text())
		}
	}
	if lines < 20 || access < 20 {
		t.Fatalf("only %d log lines, %d access lines: is the server logging?\n%s", lines, access, logs)
	}
	for _, r := range []string{"POST /v1/check", "POST /api/v1/auth/signin", "POST /api/v1/account/mfa/totp/confirm",
		"POST /api/v1/auth/signin/mfa", "POST /api/v1/account/tokens", "POST /api/v1/account/password",
		"POST /api/v1/projects/{project}/keys", "DELETE /api/v1/projects/{project}/keys/{id}"} {
		if !routes[r] {
			t.Errorf("no access line for %s", r)
		}
	}

	// No secret anywhere: as is, JSON-escaped, or URL-escaped.
	for _, s := range secrets {
		enc, _ := json.Marshal(s)
		for _, form := range []string{s, string(enc[1 : len(enc)-1]), url.QueryEscape(s)} {
			if strings.Contains(logs, form) {
				t.Errorf("a secret reached the log: %q", form)
			}
		}
	}
	// The TOTP codes are six digits: look for them as whole tokens only (digits occur in
	// times and durations).
	for _, c := range []string{code6, "000000"} {
		if regexp.MustCompile(`(^|[^0-9A-Za-z])` + c + `([^0-9A-Za-z]|$)`).MatchString(stripTimes(logs)) {
			t.Errorf("a TOTP code (%s) reached the log", c)
		}
	}
}

// send makes one request with an optional bearer token and JSON body.
func send(t *testing.T, base, method, path, bearer, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// sessionCookies returns the values of c's cookies (the session cookie).
func sessionCookies(t *testing.T, c *consoleClient) []string {
	t.Helper()
	u, err := url.Parse(c.base)
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, ck := range c.http.Jar.Cookies(u) {
		vs = append(vs, ck.Value)
	}
	if len(vs) == 0 {
		t.Fatal("no session cookie")
	}
	return vs
}

// stripTimes removes the "time" values and durations of log lines, whose digits could
// match a six-digit code by chance.
func stripTimes(logs string) string {
	logs = regexp.MustCompile(`"time":"[^"]*"`).ReplaceAllString(logs, "")
	return regexp.MustCompile(`"(duration|failing_for|failed_for|snapshot_staleness|latency)":[0-9.e+-]+`).ReplaceAllString(logs, "")
}
