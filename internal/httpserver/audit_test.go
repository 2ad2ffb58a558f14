package httpserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// auditPage is the answer of GET /api/v1/orgs/{org}/audit.
type auditPage struct {
	Entries    []manage.AuditRecord `json:"entries"`
	NextBefore *int64               `json:"next_before"`
}

// auditSeen is what TestAuditRoutes compares of an entry.
type auditSeen struct {
	Action, ActorType, ActorID, Target string
}

// apiKeyRequest sends a request with an API key and an explicit content type.
func (e *consoleEnv) apiKeyRequest(token, method, path, ct, body string) *resp {
	e.t.Helper()
	hc := &http.Client{Transport: e.srv.Client().Transport}
	var b any
	if body != "" {
		b = body
	}
	return e.send(hc, method, path, b, "Authorization", "Bearer "+token, "Content-Type", ct, "User-Agent", "deployer/2.0")
}

// TestAuditRoutes: every management route leaves its entry in the organization's chain,
// naming the API key or the account that made the change; the listing filters and pages;
// the export verifies line by line; and no credential reaches the log.
func TestAuditRoutes(t *testing.T) {
	e := newConsoleEnv(t)
	owner, ownerID := e.newAccount("rita@example.com")
	viewer, _ := e.newAccount("sam@example.com")
	outsider, _ := e.newAccount("eve@example.com")
	org := owner.createOrg("Acme")
	proj := owner.createProject(org, "shop")
	e.addMember(owner, viewer, org, "sam@example.com", "viewer")
	base := "/api/v1/projects/" + proj
	var secrets []string

	newKey := func(b *browser, name string, scopes ...string) keyJSON {
		t.Helper()
		r := b.do("POST", base+"/keys", map[string]any{"name": name, "scopes": scopes})
		want(t, r, http.StatusCreated)
		var k keyJSON
		r.decode(t, &k)
		secrets = append(secrets, k.Key)
		return k
	}
	// With the account: a session, then a personal access token.
	admin := newKey(owner, "admin", "admin")
	writer := newKey(owner, "writer", "decisions:read", "subjects:write")
	want(t, owner.do("PUT", base+"/config", baseConfig, "Content-Type", "application/yaml"), http.StatusOK)
	pat := owner.createToken("ci", "read", "write")
	secrets = append(secrets, pat, owner.cookie(), owner.csrf)
	r := e.bearer(pat, "POST", base+"/keys", map[string]any{"name": "by-token", "scopes": []string{"decisions:read"}})
	want(t, r, http.StatusCreated)
	var byToken keyJSON
	r.decode(t, &byToken)
	secrets = append(secrets, byToken.Key)
	want(t, e.bearer(pat, "DELETE", base+"/keys/"+byToken.ID, nil), http.StatusNoContent)

	// With API keys.
	r = e.apiKeyRequest(admin.Key, "PUT", base+"/config", "application/yaml", baseConfig+`  - id: "user:carol"
    type: user
`)
	want(t, r, http.StatusOK)
	r = e.apiKeyRequest(admin.Key, "POST", base+"/keys", "application/json", `{"name":"ci","scopes":["decisions:read"]}`)
	want(t, r, http.StatusCreated)
	var ci keyJSON
	r.decode(t, &ci)
	secrets = append(secrets, ci.Key)
	want(t, e.apiKeyRequest(admin.Key, "DELETE", base+"/keys/"+ci.ID, "", ""), http.StatusNoContent)
	var cfg struct {
		Roles []struct{ ID, Name string } `json:"roles"`
	}
	r = e.apiKeyRequest(writer.Key, "GET", "/v1/config", "", "")
	want(t, r, http.StatusOK)
	r.decode(t, &cfg)
	r = e.apiKeyRequest(writer.Key, "POST", "/v1/subjects/upsert", "application/json",
		`{"subject_id":"user:dave","subject_type":"user","tenant_id":"t1","role_ids":["`+cfg.Roles[0].ID+`"]}`)
	want(t, r, http.StatusOK)
	// A rejected write leaves nothing.
	want(t, e.apiKeyRequest(admin.Key, "DELETE", base+"/keys/"+ci.ID+"x", "", ""), http.StatusNotFound)

	// The listing, newest first.
	r = owner.do("GET", "/api/v1/orgs/"+org+"/audit", nil)
	want(t, r, http.StatusOK)
	var page auditPage
	r.decode(t, &page)
	var got []auditSeen
	for i := len(page.Entries) - 1; i >= 0; i-- {
		en := page.Entries[i]
		if en.Chain != org || en.OrganizationID != org {
			t.Errorf("entry %d: chain %q, organization %q", en.Seq, en.Chain, en.OrganizationID)
		}
		if strings.HasPrefix(en.Action, "config.") || strings.HasPrefix(en.Action, "key.") || strings.HasPrefix(en.Action, "subject.") {
			got = append(got, auditSeen{en.Action, en.ActorType, en.ActorID, en.Target})
			wantUA := "test-browser/1.0"
			if en.ActorType == thauth.ActorAPIKey {
				wantUA = "deployer/2.0"
			} else if en.Target == byToken.ID {
				wantUA = "Go-http-client/1.1"
			}
			if en.IP != "127.0.0.1" || en.UserAgent != wantUA {
				t.Errorf("%s %s: client %q %q, want 127.0.0.1 %q", en.Action, en.Target, en.IP, en.UserAgent, wantUA)
			}
		}
	}
	acct, key := thauth.ActorAccount, thauth.ActorAPIKey
	wantSeen := []auditSeen{
		{"key.created", acct, ownerID, admin.ID},
		{"key.created", acct, ownerID, writer.ID},
		{"config.applied", acct, ownerID, proj},
		{"key.created", acct, ownerID, byToken.ID},
		{"key.revoked", acct, ownerID, byToken.ID},
		{"config.applied", key, admin.ID, proj},
		{"key.created", key, admin.ID, ci.ID},
		{"key.revoked", key, admin.ID, ci.ID},
		{"subject.upserted", key, writer.ID, "user:dave"},
	}
	if diff := cmp.Diff(wantSeen, got); diff != "" {
		t.Errorf("management entries (-want +got):\n%s", diff)
	}
	total := len(page.Entries)
	if page.NextBefore != nil || page.Entries[total-1].Seq != 1 || page.Entries[total-1].Action != "org.created" {
		t.Errorf("the first page is not the whole log: next_before %v, oldest %+v", page.NextBefore, page.Entries[total-1])
	}

	// Filters and the cursor.
	list := func(b *browser, query string) auditPage {
		t.Helper()
		r := b.do("GET", "/api/v1/orgs/"+org+"/audit"+query, nil)
		want(t, r, http.StatusOK)
		var p auditPage
		r.decode(t, &p)
		return p
	}
	actions := func(p auditPage) []string {
		var out []string
		for _, en := range p.Entries {
			out = append(out, en.Action+" "+en.Target)
		}
		return out
	}
	if diff := cmp.Diff([]string{"key.revoked " + ci.ID, "key.revoked " + byToken.ID}, actions(list(owner, "?action=key.revoked"))); diff != "" {
		t.Errorf("action filter (-want +got):\n%s", diff)
	}
	if p := list(owner, "?action=key."); len(p.Entries) != 6 {
		t.Errorf("action prefix: %v", actions(p))
	}
	if diff := cmp.Diff([]string{"subject.upserted user:dave"}, actions(list(owner, "?actor="+writer.ID))); diff != "" {
		t.Errorf("actor filter (-want +got):\n%s", diff)
	}
	if p := list(owner, "?actor="+admin.ID+"&action=config.applied"); len(p.Entries) != 1 {
		t.Errorf("actor and action: %v", actions(p))
	}
	var paged []int64
	query := "?limit=4"
	for n := 0; ; n++ {
		p := list(owner, query)
		for _, en := range p.Entries {
			paged = append(paged, en.Seq)
		}
		if p.NextBefore == nil {
			break
		}
		if n > total {
			t.Fatal("paging does not end")
		}
		query = "?limit=4&before=" + strconv.FormatInt(*p.NextBefore, 10)
	}
	var all []int64
	for _, en := range page.Entries {
		all = append(all, en.Seq)
	}
	if diff := cmp.Diff(all, paged); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}

	// The export: every entry, oldest first, each line verifiable on its own.
	r = owner.do("GET", "/api/v1/orgs/"+org+"/audit/export", nil)
	want(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q", ct)
	}
	lines := bytes.Split(bytes.TrimSuffix(r.body, []byte("\n")), []byte("\n"))
	if len(lines) != total {
		t.Fatalf("export has %d lines, the listing %d entries", len(lines), total)
	}
	for i, l := range lines {
		var rec manage.AuditRecord
		if err := json.Unmarshal(l, &rec); err != nil {
			t.Fatal(err)
		}
		en, err := rec.Entry()
		if err != nil {
			t.Fatal(err)
		}
		if en.Seq != int64(i+1) || !bytes.Equal(thauth.AuditHash(en), en.Hash) {
			t.Errorf("line %d: seq %d, hash does not verify", i+1, en.Seq)
		}
	}
	rep, err := manage.VerifyAuditExport(bytes.NewReader(r.body))
	if err != nil || !rep.OK() || rep.Entries != int64(total) {
		t.Errorf("VerifyAuditExport = %+v, %v", rep, err)
	}
	for _, s := range secrets {
		if s == "" || bytes.Contains(r.body, []byte(s)) {
			t.Errorf("the audit log holds a credential (or one is empty): %q", s)
		}
	}

	// Who may read it.
	wantErr(t, viewer.do("GET", "/api/v1/orgs/"+org+"/audit", nil), http.StatusForbidden, thauth.EForbidden, "audit:read")
	wantErr(t, viewer.do("GET", "/api/v1/orgs/"+org+"/audit/export", nil), http.StatusForbidden, thauth.EForbidden, "audit:read")
	wantErr(t, outsider.do("GET", "/api/v1/orgs/"+org+"/audit", nil), http.StatusNotFound, thauth.ENotFound, "organization not found")
	wantErr(t, outsider.do("GET", "/api/v1/orgs/"+org+"/audit/export", nil), http.StatusNotFound, thauth.ENotFound, "organization not found")
	want(t, e.bearer(pat, "GET", "/api/v1/orgs/"+org+"/audit", nil), http.StatusOK)
	wantErr(t, e.bearer(admin.Key, "GET", "/api/v1/orgs/"+org+"/audit", nil), http.StatusUnauthorized, thauth.EUnauthenticated, "API keys")
	for _, q := range []string{"?limit=0", "?limit=1001", "?before=0", "?before=x", "?action=Key", "?actor=a%0Ab", "?foo=1", "?limit=1&limit=2"} {
		wantErr(t, owner.do("GET", "/api/v1/orgs/"+org+"/audit"+q, nil), http.StatusBadRequest, thauth.EInvalid, "")
	}
	wantErr(t, owner.do("GET", "/api/v1/orgs/"+org+"/audit/export?x=1", nil), http.StatusBadRequest, thauth.EInvalid, "unknown query parameter")
}

// TestAuditExportHeaders: a new organization's export is its org.created line, as an
// attachment; a missing organization is a JSON 404.
func TestAuditExportHeaders(t *testing.T) {
	e := newConsoleEnv(t)
	owner, _ := e.newAccount("rita@example.com")
	org := owner.createOrg("Acme")
	r := owner.do("GET", "/api/v1/orgs/"+org+"/audit/export", nil)
	want(t, r, http.StatusOK)
	if n := bytes.Count(r.body, []byte("\n")); n != 1 { // org.created
		t.Errorf("export of a new organization: %d lines %s", n, r.body)
	}
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="audit-`+org+`.jsonl"` {
		t.Errorf("Content-Disposition = %q", cd)
	}
	wantErr(t, owner.do("GET", "/api/v1/orgs/nope/audit/export", nil), http.StatusNotFound, thauth.ENotFound, "organization not found")
}
