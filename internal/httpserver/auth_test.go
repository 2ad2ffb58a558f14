package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// authedRequests is one request per authenticated route, with a body that would be
// accepted, so that only the key decides the outcome.
func authedRequests(e *env) []struct{ method, path, ct, body string } {
	p := "/api/v1/projects/" + e.projectID
	return []struct{ method, path, ct, body string }{
		{"GET", "/v1/config", "", ""},
		{"POST", "/v1/check", "application/json", `{"subject":"user:alice","feature":"billing","action":"read"}`},
		{"POST", "/v1/check/batch", "application/json", `{"subject":"user:alice","checks":[{"feature":"billing","action":"read"}]}`},
		{"POST", "/v1/subjects/upsert", "application/json", `{"subject_id":"user:zed","subject_type":"user"}`},
		{"GET", p + "/config", "", ""},
		{"PUT", p + "/config?dry_run=true", "application/yaml", baseConfig},
		{"POST", p + "/keys", "application/json", `{"name":"k","scopes":["decisions:read"]}`},
		{"GET", p + "/keys", "", ""},
		{"DELETE", p + "/keys/00000000-0000-7000-8000-000000000000", "", ""},
	}
}

// TestUnauthorized sends every kind of bad key to every authenticated route: all get the
// same plain-text 401.
func TestUnauthorized(t *testing.T) {
	e := newEnv(t)

	// A revoked key.
	revoked := e.createKey("to-revoke", "decisions:read", "subjects:write", "admin")
	var list struct {
		Keys []struct{ ID, Name string }
	}
	mustJSON(t, e.do("GET", "/api/v1/projects/"+e.projectID+"/keys", e.admin, "", "").Body.Bytes(), &list)
	for _, k := range list.Keys {
		if k.Name == "to-revoke" {
			if rec := e.do("DELETE", "/api/v1/projects/"+e.projectID+"/keys/"+k.ID, e.admin, "", ""); rec.Code != http.StatusNoContent {
				t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
			}
		}
	}

	// An expired key: valid for an hour, then the clock moves on.
	exp := e.clock.Now().Add(time.Hour).Format(time.RFC3339Nano)
	body, _ := json.Marshal(map[string]any{"name": "short", "scopes": []string{"decisions:read", "subjects:write", "admin"}, "expires_at": exp})
	rec := e.post("/api/v1/projects/"+e.projectID+"/keys", e.admin, string(body))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create expiring key: %d %s", rec.Code, rec.Body)
	}
	var created struct{ Key string }
	mustJSON(t, rec.Body.Bytes(), &created)
	expiring := created.Key
	if rec := e.do("GET", "/v1/config", expiring, "", ""); rec.Code != http.StatusOK {
		t.Fatalf("expiring key before expiry: %d", rec.Code)
	}
	e.clock.Advance(2 * time.Hour)

	unknown, _, _ := thauth.NewToken()
	good := e.admin
	wrongChecksum := good[:len(good)-1] + flip(good[len(good)-1])
	// Known lookup id, different secret, valid checksum: found, then refused by the hash.
	body6 := good[:len(good)-6]
	wrongSecret := withChecksum(body6[:len(body6)-1] + flip(body6[len(body6)-1]))
	if _, ok := thauth.ParseToken(wrongSecret); !ok {
		t.Fatal("forged token should be well-formed")
	}

	authHeaders := []struct {
		name   string
		header string // "" = no Authorization header
	}{
		{"missing", ""},
		{"empty bearer", "Bearer "},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"no scheme", good},
		{"malformed", "Bearer not-a-key"},
		{"truncated", "Bearer " + good[:len(good)-3]},
		{"wrong checksum", "Bearer " + wrongChecksum},
		{"wrong secret", "Bearer " + wrongSecret},
		{"unknown key", "Bearer " + unknown},
		{"revoked key", "Bearer " + revoked},
		{"expired key", "Bearer " + expiring},
	}
	for _, ah := range authHeaders {
		for _, rq := range authedRequests(e) {
			t.Run(ah.name+"/"+rq.method+" "+rq.path, func(t *testing.T) {
				var rd *strings.Reader
				if rq.body != "" {
					rd = strings.NewReader(rq.body)
				} else {
					rd = strings.NewReader("")
				}
				r := httptest.NewRequest(rq.method, rq.path, rd)
				if ah.header != "" {
					r.Header.Set("Authorization", ah.header)
				}
				if rq.ct != "" {
					r.Header.Set("Content-Type", rq.ct)
				}
				rec := httptest.NewRecorder()
				e.h.ServeHTTP(rec, r)
				wantUnauthorized(t, rec)
			})
		}
	}

	t.Run("two Authorization headers", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/v1/config", nil)
		r.Header.Add("Authorization", "Bearer "+e.decisions)
		r.Header.Add("Authorization", "Bearer "+e.decisions)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r)
		wantUnauthorized(t, rec)
	})
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		rec := e.do("GET", "/v1/config", "", "", "", "Authorization", "bearer "+e.decisions)
		if rec.Code != http.StatusOK {
			t.Fatalf("status = %d", rec.Code)
		}
	})
}

// withChecksum appends the token checksum (CRC-32 IEEE, base62, 6 characters) to body, as
// the token format defines it.
func withChecksum(body string) string {
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	n := crc32.ChecksumIEEE([]byte(body))
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = base62[n%62]
		n /= 62
	}
	return body + string(b[:])
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestForbidden: a valid key without the route's scope gets 403 JSON.
func TestForbidden(t *testing.T) {
	e := newEnv(t)
	p := "/api/v1/projects/" + e.projectID
	cases := []struct {
		name, token, method, path, ct, body, scope string
	}{
		{"reader key upserts", e.reader, "POST", "/v1/subjects/upsert", "application/json", `{"subject_id":"u","subject_type":"user"}`, "subjects:write"},
		{"writer key checks", e.writer, "POST", "/v1/check", "application/json", `{"subject":"u","feature":"f","action":"a"}`, "decisions:read"},
		{"admin key checks", e.admin, "POST", "/v1/check", "application/json", `{"subject":"u","feature":"f","action":"a"}`, "decisions:read"},
		{"admin key batch", e.admin, "POST", "/v1/check/batch", "application/json", `{"subject":"u","checks":[{"feature":"f","action":"a"}]}`, "decisions:read"},
		{"admin key reads config", e.admin, "GET", "/v1/config", "", "", "decisions:read"},
		{"reader key exports", e.reader, "GET", p + "/config", "", "", "admin"},
		{"decisions key applies", e.decisions, "PUT", p + "/config", "application/yaml", baseConfig, "admin"},
		{"reader key creates key", e.reader, "POST", p + "/keys", "application/json", `{"name":"x","scopes":["admin"]}`, "admin"},
		{"writer key lists keys", e.writer, "GET", p + "/keys", "", "", "admin"},
		{"decisions key revokes", e.decisions, "DELETE", p + "/keys/x", "", "", "admin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(c.method, c.path, c.token, c.ct, c.body)
			b := wantError(t, rec, http.StatusForbidden, c.scope)
			if b.Code != thauth.EForbidden {
				t.Errorf("code = %q", b.Code)
			}
		})
	}
	// Nothing was created by the refused upsert.
	if a := e.check(`{"subject":"u","feature":"billing","action":"read"}`); a.Allowed {
		t.Error("refused request had an effect")
	}
}

// TestNotReady: before the engine has loaded, the API answers 503 and /readyz says so.
func TestNotReady(t *testing.T) {
	e := newBareEnv(t, false)
	rec := e.post("/v1/check", e.decisions, `{"subject":"a","feature":"b","action":"c"}`)
	b := wantError(t, rec, http.StatusServiceUnavailable, "not ready")
	if b.Code != thauth.EUnavailable {
		t.Errorf("code = %q", b.Code)
	}
	rec = e.do("GET", "/readyz", "", "", "")
	b = wantError(t, rec, http.StatusServiceUnavailable, "engine loading")
	if b.Checks["engine"] != "loading" || b.Checks["store"] != "ok" {
		t.Errorf("checks = %v", b.Checks)
	}
	// Loading with the store unreachable too.
	e.srv.ping = func(ctx context.Context) error { return errors.New("down") }
	rec = e.do("GET", "/readyz", "", "", "")
	b = wantError(t, rec, http.StatusServiceUnavailable, "engine loading, store unreachable")
	if b.Checks["store"] != "unreachable" {
		t.Errorf("checks = %v", b.Checks)
	}
	// Liveness is independent of readiness.
	if rec := e.do("GET", "/healthz", "", "", ""); rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("healthz: %d %q", rec.Code, rec.Body)
	}
}
