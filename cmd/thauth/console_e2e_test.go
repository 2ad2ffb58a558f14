package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth/internal/totp"
)

// consoleClient is a browser-like client of a running `thauth serve`: a cookie jar and the
// CSRF token of its current session.
type consoleClient struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func newConsoleClient(t *testing.T, base string) *consoleClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &consoleClient{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// do sends a JSON request (with the CSRF token on unsafe methods) and decodes the answer
// into out when it is not nil; it fails the test unless the status is want.
func (c *consoleClient) do(method, path string, body any, want int, out any, header ...string) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method != http.MethodGet && c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
}

// linkToken waits for the newest outbox message to addr of template and returns the token of
// its link (the development outbox shows the rendered text).
func (c *consoleClient) linkToken(addr, template string) string {
	c.t.Helper()
	re := regexp.MustCompile(`#token=([A-Za-z0-9_-]+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out struct {
			Messages []struct {
				To, Template, Text string
			} `json:"messages"`
		}
		c.do("GET", "/api/v1/dev/outbox", nil, 200, &out)
		for _, m := range out.Messages { // newest first
			if m.To == addr && m.Template == template {
				if sm := re.FindStringSubmatch(m.Text); sm != nil {
					return sm[1]
				}
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %s mail with a link to %s in the outbox: %+v", template, addr, out.Messages)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsoleEndToEnd runs the console on a real `thauth serve` in development mode (SQLite,
// development master key, development outbox): sign-up, verification through the outbox,
// sign-in, an organization with a project and an API key that answers checks, TOTP, and —
// after a restart on the same data directory — sign-in with the second factor (the TOTP seed
// sealed under the persisted development master key still opens) and an access token.
func TestConsoleEndToEnd(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, nil, "--addr", "127.0.0.1:0", "--data-dir", dir)
	c := newConsoleClient(t, srv.url)
	const email, password = "ada@example.com", "correct horse battery staple"

	c.do("POST", "/api/v1/auth/signup", map[string]string{"email": email, "password": password, "name": "Ada"}, 202, nil)
	c.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": c.linkToken(email, "verify_email")}, 200, nil)

	var signin struct {
		MFARequired bool   `json:"mfa_required"`
		CSRF        string `json:"csrf_token"`
	}
	c.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": password}, 200, &signin)
	if signin.MFARequired || signin.CSRF == "" {
		t.Fatalf("sign-in: %+v", signin)
	}
	c.csrf = signin.CSRF

	var org struct {
		Organization struct{ ID string } `json:"organization"`
		Role         string              `json:"role"`
	}
	c.do("POST", "/api/v1/orgs", map[string]string{"name": "Acme"}, 201, &org)
	if org.Role != "owner" {
		t.Fatalf("creator's role %q", org.Role)
	}
	var proj struct {
		Project struct{ ID string } `json:"project"`
	}
	c.do("POST", "/api/v1/orgs/"+org.Organization.ID+"/projects", map[string]string{"name": "Shop"}, 201, &proj)
	var key struct {
		Key string `json:"key"`
	}
	c.do("POST", "/api/v1/projects/"+proj.Project.ID+"/keys", map[string]any{"name": "backend", "scopes": []string{"decisions:read"}}, 201, &key)

	// The key answers checks (the project is empty: a deny with its reason).
	waitForCheck(t, srv.url, key.Key)

	// TOTP: enrol and confirm; the session is rotated.
	var enrol struct {
		Secret string `json:"secret"`
		URI    string `json:"otpauth_uri"`
		QR     string `json:"qr_code_png"`
	}
	c.do("POST", "/api/v1/account/mfa/totp", nil, 201, &enrol)
	if enrol.Secret == "" || !strings.HasPrefix(enrol.URI, "otpauth://totp/") || enrol.QR == "" {
		t.Fatalf("enrolment: %+v", enrol)
	}
	code, err := totp.Code(enrol.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var confirm struct {
		RecoveryCodes []string `json:"recovery_codes"`
		CSRF          string   `json:"csrf_token"`
	}
	c.do("POST", "/api/v1/account/mfa/totp/confirm", map[string]string{"code": code}, 200, &confirm)
	if len(confirm.RecoveryCodes) != 10 || confirm.CSRF == "" || confirm.CSRF == c.csrf {
		t.Fatalf("confirmation: %d recovery codes, csrf rotated %v", len(confirm.RecoveryCodes), confirm.CSRF != c.csrf)
	}
	c.csrf = confirm.CSRF

	// Restart on the same data directory.
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	srv = startServer(t, nil, "--addr", "127.0.0.1:0", "--data-dir", dir)
	c = newConsoleClient(t, srv.url)
	c.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": password}, 200, &signin)
	if !signin.MFARequired {
		t.Fatal("sign-in after enabling TOTP did not ask for the second factor")
	}
	c.csrf = signin.CSRF
	// The confirming code's step was used: take the next one (accepted within the skew).
	next, err := totp.Code(enrol.Secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c.do("POST", "/api/v1/auth/signin/mfa", map[string]string{"code": next}, 200, &signin)
	c.csrf = signin.CSRF

	var tok struct {
		Token string `json:"token"`
	}
	c.do("POST", "/api/v1/account/tokens", map[string]any{"name": "ci", "scopes": []string{"read"}}, 201, &tok)
	if !strings.HasPrefix(tok.Token, "thauthpat_") {
		t.Fatalf("access token %q", tok.Token)
	}
	cli := newConsoleClient(t, srv.url)
	var orgs struct {
		Organizations []struct {
			Role string `json:"role"`
		} `json:"organizations"`
	}
	cli.do("GET", "/api/v1/orgs", nil, 200, &orgs, "Authorization", "Bearer "+tok.Token)
	if len(orgs.Organizations) != 1 || orgs.Organizations[0].Role != "owner" {
		t.Fatalf("organizations through the access token: %+v", orgs)
	}
	// A read-only token cannot write.
	cli.do("POST", "/api/v1/orgs", map[string]string{"name": "Other"}, 403, nil, "Authorization", "Bearer "+tok.Token)

	if logs := srv.logs.String(); strings.Contains(logs, password) || strings.Contains(logs, tok.Token) || strings.Contains(logs, enrol.Secret) {
		t.Error("a secret reached the server log")
	}
}

// waitForCheck asks /v1/check with key until it answers (the project reaches the engine at
// once on this node; the loop only absorbs scheduling).
func waitForCheck(t *testing.T, base, key string) {
	t.Helper()
	body := `{"subject":"user:1","feature":"billing","action":"read"}`
	req, _ := http.NewRequest("POST", base+"/v1/check", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"reason":"default:deny"`) {
		t.Fatalf("check with the console-created key: %d %s", resp.StatusCode, raw)
	}
}
