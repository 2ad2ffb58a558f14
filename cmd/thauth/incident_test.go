package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkStatus sends a check with key and returns the HTTP status.
func checkStatus(t *testing.T, base, key string) int {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/v1/check", strings.NewReader(`{"subject":"user:1","feature":"billing","action":"read"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// waitStatus waits until a check with key answers status: the server picks writes of other
// processes up through its follow loop (every 50ms here); 10 seconds is far beyond that.
func waitStatus(t *testing.T, base, key string, status int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := checkStatus(t, base, key)
		if got == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("check answered %d for 10s, want %d", got, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIncidentEndToEnd runs the incident-response commands against the data directory of a
// running `thauth serve`: a suspension switches the organization's keys off (401) and its
// console to read-only while another organization's key keeps working; reinstatement brings
// them back; a notice reaches the owner through the outbox; revoke-keys and revoke-sessions
// take effect; the incident's timeline tells all of it.
func TestIncidentEndToEnd(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, nil, "--addr", "127.0.0.1:0", "--data-dir", dir, "--sync-interval", "50ms", "--log-level", "warn")
	c := newConsoleClient(t, srv.url)
	const email, password = "ada@example.com", "correct horse battery staple"
	c.do("POST", "/api/v1/auth/signup", map[string]string{"email": email, "password": password, "name": "Ada"}, 202, nil)
	c.do("POST", "/api/v1/auth/verify-email", map[string]string{"token": c.linkToken(email, "verify_email")}, 200, nil)
	var signin struct {
		CSRF string `json:"csrf_token"`
	}
	c.do("POST", "/api/v1/auth/signin", map[string]string{"email": email, "password": password}, 200, &signin)
	c.csrf = signin.CSRF
	var org struct {
		Organization struct{ ID string } `json:"organization"`
	}
	c.do("POST", "/api/v1/orgs", map[string]string{"name": "Acme"}, 201, &org)
	orgID := org.Organization.ID
	var proj struct {
		Project struct{ ID string } `json:"project"`
	}
	c.do("POST", "/api/v1/orgs/"+orgID+"/projects", map[string]string{"name": "Shop"}, 201, &proj)
	var key struct {
		Key string `json:"key"`
	}
	c.do("POST", "/api/v1/projects/"+proj.Project.ID+"/keys", map[string]any{"name": "backend", "scopes": []string{"decisions:read"}}, 201, &key)
	waitForCheck(t, srv.url, key.Key)

	// Another organization, created by `thauth init` next to the running server.
	other := initProject(t, "--data-dir", dir)
	waitStatus(t, srv.url, other.DecisionsKey, 200)

	vars := map[string]string{"USER": "alice"}
	out, errOut, code := cli(t, vars, "operator", "suspend", "--org", orgID, "--reason", "Suspected abuse", "--data-dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("suspend: exit %d: %s", code, errOut)
	}
	var suspended struct {
		Incident struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"incident"`
		Opened       bool `json:"opened"`
		Projects     int  `json:"projects"`
		Organization struct {
			SuspendedAt     *time.Time `json:"suspended_at"`
			SuspendedReason string     `json:"suspended_reason"`
		} `json:"organization"`
	}
	if err := json.Unmarshal([]byte(out), &suspended); err != nil {
		t.Fatalf("suspend --json: %v in %q", err, out)
	}
	inc := suspended.Incident.ID
	if !suspended.Opened || inc == "" || suspended.Projects != 1 || suspended.Organization.SuspendedAt == nil ||
		suspended.Organization.SuspendedReason != "Suspected abuse" {
		t.Fatalf("suspend --json: %s", out)
	}
	waitStatus(t, srv.url, key.Key, http.StatusUnauthorized)
	if got := checkStatus(t, srv.url, other.DecisionsKey); got != http.StatusOK {
		t.Errorf("another organization's key answered %d during the suspension", got)
	}
	// The console is read-only: reads work, writes are refused.
	var got struct {
		Organization struct {
			SuspendedReason string `json:"suspended_reason"`
		} `json:"organization"`
	}
	c.do("GET", "/api/v1/orgs/"+orgID, nil, 200, &got)
	if got.Organization.SuspendedReason != "Suspected abuse" {
		t.Errorf("GET organization: %+v", got)
	}
	var refusal struct {
		Error string `json:"error"`
	}
	c.do("PATCH", "/api/v1/orgs/"+orgID, map[string]string{"name": "Renamed"}, 403, &refusal)
	if !strings.Contains(refusal.Error, "this organization is suspended") {
		t.Errorf("PATCH organization refused with %q", refusal.Error)
	}
	c.do("POST", "/api/v1/orgs/"+orgID+"/projects", map[string]string{"name": "More"}, 403, nil)

	out, errOut, code = cli(t, vars, "operator", "reinstate", "--org", orgID, "--incident", inc, "--data-dir", dir)
	if code != exitOK || !strings.Contains(out, "is reinstated") || !strings.Contains(out, "Recorded in incident "+inc) {
		t.Fatalf("reinstate: exit %d, %q %q", code, out, errOut)
	}
	waitStatus(t, srv.url, key.Key, http.StatusOK)
	c.do("PATCH", "/api/v1/orgs/"+orgID, map[string]string{"name": "Acme Corp"}, 200, nil)

	// A notice to the organization's owner, through the outbox.
	msgFile := filepath.Join(t.TempDir(), "notice.txt")
	if err := os.WriteFile(msgFile, []byte("We suspended your organization for 5 minutes.\nNo data was lost.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = cli(t, vars, "operator", "notify", "--org", orgID, "--subject", "Security notice",
		"--message-file", msgFile, "--incident", inc, "--data-dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("notify: exit %d: %s", code, errOut)
	}
	var notified struct {
		Recipients    int `json:"recipients"`
		Organizations []struct {
			ID         string `json:"id"`
			Recipients int    `json:"recipients"`
		} `json:"organizations"`
	}
	if err := json.Unmarshal([]byte(out), &notified); err != nil || notified.Recipients != 1 ||
		len(notified.Organizations) != 1 || notified.Organizations[0].ID != orgID {
		t.Fatalf("notify --json: %s (%v)", out, err)
	}
	text := outboxText(t, c, email, "incident_notice")
	for _, want := range []string{"Acme Corp", "We suspended your organization for 5 minutes.\nNo data was lost.", "incident " + inc} {
		if !strings.Contains(text, want) {
			t.Errorf("notice lacks %q:\n%s", want, text)
		}
	}

	out, errOut, code = cli(t, vars, "operator", "revoke-keys", "--project", proj.Project.ID, "--incident", inc, "--data-dir", dir)
	if code != exitOK || !strings.Contains(out, "Revoked 1 API key(s) of project "+proj.Project.ID) {
		t.Fatalf("revoke-keys: exit %d, %q %q", code, out, errOut)
	}
	waitStatus(t, srv.url, key.Key, http.StatusUnauthorized)
	if got := checkStatus(t, srv.url, other.DecisionsKey); got != http.StatusOK {
		t.Errorf("another project's key answered %d after revoke-keys", got)
	}

	out, errOut, code = cli(t, vars, "operator", "revoke-sessions", "--email", email, "--incident", inc, "--data-dir", dir)
	if code != exitOK || !strings.Contains(out, "Revoked 1 session(s) and 0 access token(s) of "+email) {
		t.Fatalf("revoke-sessions: exit %d, %q %q", code, out, errOut)
	}
	c.do("GET", "/api/v1/account", nil, 401, nil)

	if _, errOut, code := cli(t, vars, "operator", "incident", "note", inc, "--text", "Customer informed by phone.", "--data-dir", dir); code != exitOK {
		t.Fatalf("incident note: exit %d: %s", code, errOut)
	}
	if _, errOut, code := cli(t, vars, "operator", "incident", "close", inc, "--data-dir", dir); code != exitOK {
		t.Fatalf("incident close: exit %d: %s", code, errOut)
	}
	out, errOut, code = cli(t, vars, "operator", "incident", "show", inc, "--data-dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("incident show: exit %d: %s", code, errOut)
	}
	var tl struct {
		Status string `json:"status"`
		Events []struct {
			Seq    int64  `json:"seq"`
			Actor  string `json:"actor"`
			Kind   string `json:"kind"`
			Detail string `json:"detail"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &tl); err != nil {
		t.Fatalf("incident show --json: %v in %q", err, out)
	}
	var kinds []string
	for i, ev := range tl.Events {
		if ev.Seq != int64(i+1) || ev.Actor != "cli:alice" {
			t.Errorf("entry %d: %+v", i, ev)
		}
		kinds = append(kinds, ev.Kind)
	}
	want := []string{"opened", "org.suspended", "org.reinstated", "notified", "keys.revoked", "sessions.revoked", "note", "closed"}
	if tl.Status != "closed" || !slices.Equal(kinds, want) {
		t.Errorf("timeline %s %v, want closed %v", tl.Status, kinds, want)
	}
	out, _, _ = cli(t, vars, "operator", "incident", "show", inc, "--data-dir", dir)
	for _, w := range []string{"Status    closed", "org.suspended", "reason: Suspected abuse", "text: Customer informed by phone."} {
		if !strings.Contains(out, w) {
			t.Errorf("incident show lacks %q:\n%s", w, out)
		}
	}
	out, _, code = cli(t, vars, "operator", "incident", "list", "--data-dir", dir)
	if code != exitOK || strings.Count(out, "\n") != 2 || !strings.Contains(out, inc) {
		t.Errorf("incident list: one incident expected:\n%s", out)
	}
}

// TestIncidentSuspendBackends suspends and reinstates an organization with the CLI next to
// a running server, on SQLite and on PostgreSQL (where the server learns of it through
// LISTEN/NOTIFY, polling as the fallback): its keys answer 401, then 200 again, while
// another organization's key keeps working.
func TestIncidentSuspendBackends(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			srv := startServer(t, nil, append([]string{"--addr", "127.0.0.1:0", "--sync-interval", "50ms", "--log-level", "warn"}, st.args...)...)
			target, other := initProject(t, st.args...), initProject(t, st.args...)
			waitStatus(t, srv.url, target.DecisionsKey, http.StatusOK)
			// The admin key authenticates but lacks the decisions scope: 403, not 401.
			waitStatus(t, srv.url, target.AdminKey, http.StatusForbidden)
			waitStatus(t, srv.url, other.DecisionsKey, http.StatusOK)

			args := append([]string{"operator", "suspend", "--org", target.OrganizationID, "--reason", "abuse"}, st.args...)
			if out, errOut, code := cli(t, nil, args...); code != exitOK || !strings.Contains(out, "is suspended") {
				t.Fatalf("suspend: exit %d, %q %q", code, out, errOut)
			}
			waitStatus(t, srv.url, target.DecisionsKey, http.StatusUnauthorized)
			waitStatus(t, srv.url, target.AdminKey, http.StatusUnauthorized)
			if got := checkStatus(t, srv.url, other.DecisionsKey); got != http.StatusOK {
				t.Errorf("another organization's key answered %d", got)
			}

			args = append([]string{"operator", "reinstate", "--org", target.OrganizationID}, st.args...)
			if out, errOut, code := cli(t, nil, args...); code != exitOK {
				t.Fatalf("reinstate: exit %d, %q %q", code, out, errOut)
			}
			waitStatus(t, srv.url, target.DecisionsKey, http.StatusOK)
			waitStatus(t, srv.url, target.AdminKey, http.StatusForbidden)
		})
	}
}

// outboxText waits for the newest message to addr of template in the development outbox
// and returns its text.
func outboxText(t *testing.T, c *consoleClient, addr, template string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out struct {
			Messages []struct {
				To, Template, Subject, Text string
			} `json:"messages"`
		}
		c.do("GET", "/api/v1/dev/outbox", nil, 200, &out)
		for _, m := range out.Messages {
			if m.To == addr && m.Template == template {
				return m.Subject + "\n" + m.Text
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s mail to %s in the outbox: %+v", template, addr, out.Messages)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOperatorIncidentCommandErrors(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"THAUTH_DATA_DIR": dir, "USER": "alice"}
	missing := "0190e6c2-0000-7000-8000-00000000ffff"
	for _, tc := range []struct {
		args     []string
		code     int
		fragment string
	}{
		{[]string{"operator", "suspend", "--reason", "x"}, exitUsage, "missing --org"},
		{[]string{"operator", "suspend"}, exitUsage, "missing --org; missing --reason"},
		{[]string{"operator", "suspend", "--org", missing, "--reason", "x"}, exitError, "organization not found"},
		{[]string{"operator", "reinstate"}, exitUsage, "missing --org"},
		{[]string{"operator", "revoke-keys"}, exitUsage, "missing --project"},
		{[]string{"operator", "revoke-keys", "--project", missing}, exitError, "project not found"},
		{[]string{"operator", "revoke-sessions"}, exitUsage, "missing --email"},
		{[]string{"operator", "revoke-sessions", "--email", "nobody@example.com"}, exitError, "no account with this email"},
		{[]string{"operator", "notify", "--subject", "s", "--message-file", "f"}, exitUsage, "missing --org (or --all)"},
		{[]string{"operator", "notify", "--org", missing, "--all", "--subject", "s", "--message-file", "f"}, exitUsage, "not both"},
		{[]string{"operator", "notify", "--all"}, exitUsage, "missing --subject; missing --message-file"},
		{[]string{"operator", "notify", "--all", "--subject", "s", "--message-file", filepath.Join(dir, "nope")}, exitError, "--message-file: no such file"},
		{[]string{"operator", "notify", "--all", "--subject", "s", "--message-file", "-"}, exitUsage, "no master key"},
		{[]string{"operator", "incident"}, exitUsage, "Usage: thauth operator incident"},
		{[]string{"operator", "incident", "reopen"}, exitUsage, `unknown command "reopen"`},
		{[]string{"operator", "incident", "open"}, exitUsage, "missing --title"},
		{[]string{"operator", "incident", "show"}, exitUsage, "missing argument"},
		{[]string{"operator", "incident", "show", missing}, exitError, "incident not found"},
		{[]string{"operator", "incident", "note", missing}, exitUsage, "missing --text"},
		{[]string{"operator", "incident", "note", missing, "--text", "x"}, exitError, "incident not found"},
		{[]string{"operator", "suspend", "--org", missing, "--reason", "x", "--incident", missing}, exitError, "not found"},
	} {
		_, errOut, code := cliIn(t, vars, "a message", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.fragment) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.fragment)
		}
	}

	// Open, note, list and close without a server; JSON for scripts.
	out, errOut, code := cli(t, vars, "operator", "incident", "open", "--title", "Phishing wave", "--json")
	if code != exitOK {
		t.Fatalf("open: exit %d: %s", code, errOut)
	}
	var inc struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		CreatedBy string `json:"created_by"`
	}
	if err := json.Unmarshal([]byte(out), &inc); err != nil {
		t.Fatal(err)
	}
	if inc.ID == "" || inc.Status != "open" || inc.CreatedBy != "cli:alice" {
		t.Fatalf("open --json: %s", out)
	}
	if out, errOut, code := cliIn(t, vars, "line one\nline two\n", "operator", "incident", "note", inc.ID, "--text", "-"); code != exitOK ||
		!strings.Contains(out, "Added note #2 to incident "+inc.ID) {
		t.Fatalf("note from stdin: exit %d, %q %q", code, out, errOut)
	}
	out, _, _ = cli(t, vars, "operator", "incident", "show", inc.ID)
	if !regexp.MustCompile(`text: line one\n\s+line two`).MatchString(out) {
		t.Errorf("show: multi-line note:\n%s", out)
	}
	out, _, code = cli(t, vars, "operator", "incident", "close", inc.ID)
	if code != exitOK || !strings.Contains(out, "Closed incident "+inc.ID) {
		t.Errorf("close: exit %d, %q", code, out)
	}
	_, errOut, code = cli(t, vars, "operator", "incident", "close", inc.ID)
	if code != exitError || !strings.Contains(errOut, "is closed") {
		t.Errorf("close twice: exit %d, %q", code, errOut)
	}
	out, _, _ = cli(t, vars, "operator", "incident", "list")
	if !strings.Contains(out, inc.ID) || !strings.Contains(out, "closed") || !strings.Contains(out, "Phishing wave") {
		t.Errorf("list:\n%s", out)
	}
}
