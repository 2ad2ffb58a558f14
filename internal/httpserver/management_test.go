package httpserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

type applyAnswer struct {
	Version string `json:"version"`
	Changes struct {
		Created []string `json:"created"`
		Updated []string `json:"updated"`
		Deleted []string `json:"deleted"`
	} `json:"changes"`
}

func (a applyAnswer) none() bool {
	return len(a.Changes.Created)+len(a.Changes.Updated)+len(a.Changes.Deleted) == 0
}

func TestManageConfig(t *testing.T) { testManageConfig(t, newEnv) }

func testManageConfig(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	path := "/api/v1/projects/" + e.projectID + "/config"
	version := e.config().Version

	apply := func(ct, query, doc string) applyAnswer {
		t.Helper()
		rec := e.do("PUT", path+query, e.admin, ct, doc)
		if rec.Code != 200 {
			t.Fatalf("PUT %s %s: %d %s", ct, query, rec.Code, rec.Body)
		}
		var raw map[string]json.RawMessage
		mustJSON(t, rec.Body.Bytes(), &raw)
		// A real apply carries the freshness token in the body and the header; a dry run
		// writes nothing and carries none.
		dry := strings.Contains(query, "dry_run") && !strings.Contains(query, "dry_run=false") && !strings.Contains(query, "dry_run=0")
		want := 3
		if dry {
			want = 2
		}
		if len(raw) != want {
			t.Errorf("answer fields: %s", rec.Body)
		}
		if hdr := rec.Header().Get("Thauth-Revision"); dry != (hdr == "") || !dry && string(raw["revision"]) != `"`+hdr+`"` {
			t.Errorf("revision header %q, body %s", hdr, rec.Body)
		}
		var a applyAnswer
		mustJSON(t, rec.Body.Bytes(), &a)
		if a.Changes.Created == nil || a.Changes.Updated == nil || a.Changes.Deleted == nil {
			t.Errorf("change lists must be [] not null: %s", rec.Body)
		}
		return a
	}

	t.Run("GET JSON by default", func(t *testing.T) {
		for _, accept := range []string{"", "application/json", "*/*", "application/json, application/yaml;q=0.5", "text/html"} {
			rec := e.do("GET", path, e.admin, "", "", "Accept", accept)
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("Accept %q: %d %s %s", accept, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			var doc map[string]any
			mustJSON(t, rec.Body.Bytes(), &doc)
			if doc["version"] != float64(1) || doc["features"] == nil || doc["subjects"] == nil {
				t.Errorf("document %s", rec.Body)
			}
		}
	})
	t.Run("GET YAML when asked", func(t *testing.T) {
		for _, accept := range []string{"application/yaml", "text/yaml", "application/x-yaml", "application/json;q=0.5, application/yaml"} {
			rec := e.do("GET", path, e.admin, "", "", "Accept", accept)
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/yaml" {
				t.Fatalf("Accept %q: %d %q", accept, rec.Code, rec.Header().Get("Content-Type"))
			}
			if !strings.Contains(rec.Body.String(), "version: 1") || !strings.Contains(rec.Body.String(), "billing-admin") {
				t.Errorf("YAML document %s", rec.Body)
			}
		}
	})
	t.Run("GET then PUT changes nothing", func(t *testing.T) {
		y := e.do("GET", path, e.admin, "", "", "Accept", "application/yaml").Body.String()
		if a := apply("application/yaml", "", y); !a.none() || a.Version != version {
			t.Errorf("YAML round trip: %+v", a)
		}
		j := e.do("GET", path, e.admin, "", "", "").Body.String()
		if a := apply("application/json", "", j); !a.none() || a.Version != version {
			t.Errorf("JSON round trip: %+v", a)
		}
		if a := apply("application/json; charset=utf-8", "", j); !a.none() {
			t.Errorf("JSON with charset: %+v", a)
		}
	})

	changed := strings.Replace(baseConfig, "actions: [export, read]", "actions: [export, read, share]", 1)
	t.Run("dry run reports without writing", func(t *testing.T) {
		for _, q := range []string{"?dry_run=true", "?dry_run=1", "?dry_run"} {
			a := apply("text/yaml", q, changed)
			if a.none() || a.Version == version {
				t.Errorf("%s: dry run reported %+v", q, a)
			}
			if v := e.config().Version; v != version {
				t.Fatalf("%s: dry run changed the version", q)
			}
		}
	})
	t.Run("apply", func(t *testing.T) {
		a := apply("application/x-yaml", "?dry_run=false", changed)
		if a.none() || a.Version == version {
			t.Errorf("apply reported %+v", a)
		}
		if v := e.config().Version; v != a.Version {
			t.Errorf("GET /v1/config version %s, apply said %s", v, a.Version)
		}
		version = a.Version
	})
	t.Run("invalid document", func(t *testing.T) {
		bad := strings.Replace(baseConfig, "{feature: reports, action: read}", "{feature: reports, action: fly}", 1)
		bad = strings.Replace(bad, "version: 1", "version: 1\nextra: true", 1)
		rec := e.do("PUT", path, e.admin, "application/yaml", bad)
		b := wantError(t, rec, http.StatusBadRequest, "")
		if b.Code != thauth.EInvalid || len(b.Problems) < 2 {
			t.Fatalf("want every problem listed: %s", rec.Body)
		}
		for _, p := range b.Problems {
			if p.Path == "" || p.Message == "" {
				t.Errorf("problem without path or message: %+v", p)
			}
		}
		if v := e.config().Version; v != version {
			t.Error("invalid document changed the configuration")
		}
		wantError(t, e.do("PUT", path, e.admin, "application/json", `{"version":1,`), http.StatusBadRequest, "")
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, ct := range []string{"", "text/plain", "application/xml", "application/yaml; charset=latin1"} {
			b := wantError(t, e.do("PUT", path, e.admin, ct, baseConfig), http.StatusUnsupportedMediaType, "application/yaml")
			if b.Code != thauth.EUnsupported {
				t.Errorf("code %q", b.Code)
			}
		}
		wantError(t, e.do("PUT", path+"?dry_run=maybe", e.admin, "application/yaml", baseConfig), http.StatusBadRequest, `"dry_run" must be true or false`)
		wantError(t, e.do("PUT", path+"?dryrun=true", e.admin, "application/yaml", changed), http.StatusBadRequest, `unknown query parameter "dryrun"`)
		if v := e.config().Version; v != version {
			t.Error("refused request changed the configuration")
		}
	})
	t.Run("body limit is 32 MiB", func(t *testing.T) {
		r := httptestRequest("PUT", path, "", e.admin, "application/yaml")
		r.ContentLength = maxConfigBody + 1
		wantError(t, serve(e.h, r), http.StatusRequestEntityTooLarge, "larger than 32 MiB")
		big := "# " + strings.Repeat("x", maxConfigBody) + "\n" + baseConfig
		wantError(t, e.do("PUT", path, e.admin, "application/yaml", big), http.StatusRequestEntityTooLarge, "larger than 32 MiB")
		// 2 MiB (over the JSON limit) is fine for a document.
		doc := "# " + strings.Repeat("x", 2<<20) + "\n" + changed
		if a := apply("application/yaml", "", doc); !a.none() {
			t.Errorf("comment-only change reported %+v", a)
		}
	})
}

type keyAnswer struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Key        string     `json:"key"`
}

func TestKeys(t *testing.T) { testKeys(t, newEnv) }

func testKeys(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	keys := "/api/v1/projects/" + e.projectID + "/keys"

	rec := e.post(keys, e.admin, `{"name":"ci","scopes":["decisions:read","subjects:write"]}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var raw map[string]json.RawMessage
	mustJSON(t, rec.Body.Bytes(), &raw)
	for _, f := range []string{"id", "name", "prefix", "scopes", "created_at", "last_used_at", "key"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("create answer lacks %q: %s", f, rec.Body)
		}
	}
	for _, f := range []string{"hash", "Hash", "expires_at", "revoked_at"} {
		if _, ok := raw[f]; ok {
			t.Errorf("create answer has %q: %s", f, rec.Body)
		}
	}
	if string(raw["last_used_at"]) != "null" {
		t.Errorf("last_used_at = %s", raw["last_used_at"])
	}
	var k keyAnswer
	mustJSON(t, rec.Body.Bytes(), &k)
	if !strings.HasPrefix(k.Key, "thauth_") || len(k.Key) != thauth.TokenLength || k.Name != "ci" || len(k.Scopes) != 2 {
		t.Errorf("key %+v", k)
	}
	if lookup, ok := thauth.ParseToken(k.Key); !ok || lookup != k.Prefix {
		t.Errorf("prefix %q does not match token lookup %q", k.Prefix, lookup)
	}

	// The new key works at once, for its scopes only.
	if rec := e.post("/v1/check", k.Key, `{"subject":"a","feature":"b","action":"c"}`); rec.Code != 200 {
		t.Errorf("new key check: %d", rec.Code)
	}
	if rec := e.do("GET", keys, k.Key, "", ""); rec.Code != http.StatusForbidden {
		t.Errorf("new key on management: %d", rec.Code)
	}

	t.Run("expiring key", func(t *testing.T) {
		exp := e.clock.Now().Add(24 * time.Hour).Truncate(time.Second)
		rec := e.post(keys, e.admin, `{"name":"tmp","scopes":["decisions:read"],"expires_at":"`+exp.Format(time.RFC3339)+`"}`)
		if rec.Code != http.StatusCreated {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		var k keyAnswer
		mustJSON(t, rec.Body.Bytes(), &k)
		if k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) {
			t.Errorf("expires_at %v, want %v", k.ExpiresAt, exp)
		}
	})

	t.Run("list", func(t *testing.T) {
		rec := e.do("GET", keys, e.admin, "", "")
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), k.Key) || strings.Contains(rec.Body.String(), e.admin) || strings.Contains(rec.Body.String(), `"key"`) || strings.Contains(rec.Body.String(), "hash") {
			t.Fatalf("list leaks tokens or hashes: %s", rec.Body)
		}
		var list struct{ Keys []keyAnswer }
		mustJSON(t, rec.Body.Bytes(), &list)
		found := false
		for _, x := range list.Keys {
			if x.ID == k.ID {
				found = true
				if x.LastUsedAt == nil {
					t.Error("last_used_at not set after a use")
				} else if x.LastUsedAt.Sub(e.clock.Now()).Abs() > time.Second {
					t.Errorf("last_used_at %v, clock %v", x.LastUsedAt, e.clock.Now())
				}
				if x.Prefix != k.Prefix || x.Name != "ci" {
					t.Errorf("listed %+v", x)
				}
			}
		}
		if !found || len(list.Keys) < 4 {
			t.Errorf("list %s", rec.Body)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		if rec := e.do("DELETE", keys+"/"+k.ID, e.admin, "", ""); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
		}
		wantUnauthorized(t, e.post("/v1/check", k.Key, `{"subject":"a","feature":"b","action":"c"}`))
		var list struct{ Keys []keyAnswer }
		mustJSON(t, e.do("GET", keys, e.admin, "", "").Body.Bytes(), &list)
		for _, x := range list.Keys {
			if x.ID == k.ID && x.RevokedAt == nil {
				t.Error("revoked key listed without revoked_at")
			}
		}
		b := wantError(t, e.do("DELETE", keys+"/00000000-0000-7000-8000-000000000001", e.admin, "", ""), http.StatusNotFound, "")
		if b.Code != thauth.ENotFound {
			t.Errorf("code %q", b.Code)
		}
		wantError(t, e.do("DELETE", keys+"/not-a-uuid", e.admin, "", ""), http.StatusNotFound, "")
	})

	t.Run("bad create bodies", func(t *testing.T) {
		cases := []struct{ body, want string }{
			{`{"scopes":["admin"]}`, `field "name" is required`},
			{`{"name":"","scopes":["admin"]}`, `field "name" must not be empty`},
			{`{"name":"x"}`, `field "scopes" is required`},
			{`{"name":"x","scopes":[]}`, `field "scopes" must list at least one scope`},
			{`{"name":"x","scopes":["root"]}`, `field "scopes": unknown scope "root"`},
			{`{"name":"x","scopes":["admin","admin"]}`, `field "scopes": duplicate scope "admin"`},
			{`{"name":"x","scopes":"admin"}`, `field "scopes" must be an array`},
			{`{"name":"x","scopes":["admin"],"expires_at":"tomorrow"}`, `field "expires_at" must be an RFC 3339 time`},
			{`{"name":"x","scopes":["admin"],"expires_at":1}`, `field "expires_at" must be a string`},
			{`{"name":"x","scopes":["admin"],"project_id":"p"}`, `unknown field "project_id"`},
		}
		for _, c := range cases {
			wantError(t, e.post(keys, e.admin, c.body), http.StatusBadRequest, c.want)
		}
	})
}

// TestCrossProject: a key reaches only its own project; other projects look exactly like
// projects that do not exist.
func TestCrossProject(t *testing.T) { testCrossProject(t, newEnv) }

func testCrossProject(t *testing.T, newEnv func(testing.TB) *env) {
	e := newEnv(t)
	other, err := e.mg.Init(t.Context(), "Globex", "other")
	if err != nil {
		t.Fatal(err)
	}
	// A key id of the other project.
	var otherKeys struct{ Keys []keyAnswer }
	mustJSON(t, e.do("GET", "/api/v1/projects/"+other.Project.ID+"/keys", other.AdminKey, "", "").Body.Bytes(), &otherKeys)
	if len(otherKeys.Keys) == 0 {
		t.Fatal("other project has no keys")
	}
	otherKeyID := otherKeys.Keys[0].ID

	const missing = "00000000-0000-7000-8000-00000000dead"
	for _, pid := range []string{other.Project.ID, missing, "not-a-project"} {
		base := "/api/v1/projects/" + pid
		reqs := []struct{ method, path, ct, body string }{
			{"GET", base + "/config", "", ""},
			{"PUT", base + "/config", "application/yaml", baseConfig},
			{"GET", base + "/keys", "", ""},
			{"POST", base + "/keys", "application/json", `{"name":"x","scopes":["admin"]}`},
			{"DELETE", base + "/keys/" + otherKeyID, "", ""},
		}
		for _, rq := range reqs {
			rec := e.do(rq.method, rq.path, e.admin, rq.ct, rq.body)
			if rec.Code != http.StatusNotFound || rec.Body.String() != `{"error":"project not found","code":"not_found"}` {
				t.Errorf("%s %s: %d %s", rq.method, rq.path, rec.Code, rec.Body)
			}
		}
	}
	// Another project's key id under our own project: not found, and nothing happened.
	wantError(t, e.do("DELETE", "/api/v1/projects/"+e.projectID+"/keys/"+otherKeyID, e.admin, "", ""), http.StatusNotFound, "")
	if rec := e.do("GET", "/v1/config", other.DecisionsKey, "", ""); rec.Code != 200 {
		t.Errorf("other project's key broke: %d", rec.Code)
	}
	// Decisions are per project: alice exists only in the first.
	rec := e.post("/v1/check", other.DecisionsKey, `{"subject":"user:alice","feature":"billing","action":"read"}`)
	var a checkAnswer
	mustJSON(t, rec.Body.Bytes(), &a)
	if a.Allowed || a.Reason != "default:deny" {
		t.Errorf("other project sees the first one's grants: %+v", a)
	}
	var c configResponse
	mustJSON(t, e.do("GET", "/v1/config", other.DecisionsKey, "", "").Body.Bytes(), &c)
	if c.Project.ID != other.Project.ID || len(c.Features) != 0 {
		t.Errorf("other project config %+v", c)
	}
}

func TestListProjects(t *testing.T) {
	e := newEnv(t)
	other, err := e.mg.Init(t.Context(), "Globex", "other")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key, wantID string
	}{{e.admin, e.projectID}, {other.AdminKey, other.Project.ID}} {
		rec := e.do("GET", "/api/v1/projects", c.key, "", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /api/v1/projects: %d %s", rec.Code, rec.Body)
		}
		var got struct {
			Projects []struct{ ID, OrganizationID, Name string }
		}
		mustJSON(t, rec.Body.Bytes(), &got)
		if len(got.Projects) != 1 || got.Projects[0].ID != c.wantID {
			t.Errorf("a key must see exactly its own project %s, got %+v", c.wantID, got.Projects)
		}
	}
	// Only admin keys may list; a decisions key is forbidden, a bad key unauthorized.
	wantError(t, e.do("GET", "/api/v1/projects", other.DecisionsKey, "", ""), http.StatusForbidden, "")
	wantUnauthorized(t, e.do("GET", "/api/v1/projects", "thauth_nope", "", ""))
}
