package manage

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

func TestCreateKey(t *testing.T) {
	e := newEnv(t)
	expires := testStart.Add(time.Hour + 1500*time.Nanosecond)
	key, token, err := e.svc.CreateKey(e.ctx, e.project, KeyRequest{Name: "CI deploy", Scopes: []string{"admin", "decisions:read"}, ExpiresAt: &expires})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := thauth.ParseToken(token); !ok {
		t.Fatalf("token %q does not parse", token)
	}
	wantExpiry := testStart.Add(time.Hour + time.Microsecond)
	if key.Name != "CI deploy" || key.ProjectID != e.project || key.Hash != nil || !key.CreatedAt.Equal(testStart) ||
		key.ExpiresAt == nil || !key.ExpiresAt.Equal(wantExpiry) || key.RevokedAt != nil || !strings.Contains(token, key.LookupID) {
		t.Errorf("key = %+v", key)
	}
	if diff := cmp.Diff([]string{"decisions:read", "admin"}, key.Scopes); diff != "" {
		t.Errorf("scopes are not canonical (-want +got):\n%s", diff)
	}
	// Usable at once, and only until it expires.
	p, ok := e.engine.Authenticate(token)
	if !ok || p.KeyID != key.ID || p.ProjectID != e.project || !p.HasScope("admin") || p.HasScope("subjects:write") {
		t.Errorf("Authenticate = %+v, %v", p, ok)
	}
	e.clock.Set(wantExpiry)
	if _, ok := e.engine.Authenticate(token); ok {
		t.Errorf("expired key authenticates")
	}
	// Only the hash is stored.
	stored, err := e.store.GetAPIKey(e.ctx, e.project, key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !thauth.TokenMatches(token, stored.Hash) {
		t.Errorf("stored hash does not match the token")
	}
}

func TestCreateKeyInvalid(t *testing.T) {
	e := newEnv(t)
	past := testStart.Add(-time.Second)
	tests := []struct {
		name string
		req  KeyRequest
		want string
	}{
		{"empty name", KeyRequest{Scopes: []string{"admin"}}, "name must not be empty"},
		{"blank name", KeyRequest{Name: "   ", Scopes: []string{"admin"}}, "name must not be empty"},
		{"long name", KeyRequest{Name: strings.Repeat("é", 101), Scopes: []string{"admin"}}, "name must be at most 100 characters"},
		{"control character", KeyRequest{Name: "a\nb", Scopes: []string{"admin"}}, "name must not contain control characters"},
		{"no scopes", KeyRequest{Name: "k"}, "scopes: must list at least one scope"},
		{"unknown scope", KeyRequest{Name: "k", Scopes: []string{"root"}}, `scopes: unknown scope "root" (known: decisions:read, subjects:write, admin)`},
		{"duplicate scope", KeyRequest{Name: "k", Scopes: []string{"admin", "admin"}}, `scopes: duplicate scope "admin"`},
		{"expired", KeyRequest{Name: "k", Scopes: []string{"admin"}, ExpiresAt: &past}, "expires_at must be in the future"},
		{"expires now", KeyRequest{Name: "k", Scopes: []string{"admin"}, ExpiresAt: &testStart}, "expires_at must be in the future"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev := e.revision(t)
			_, _, err := e.svc.CreateKey(e.ctx, e.project, tc.req)
			if te := wantCode(t, err, thauth.EInvalid); te.Message != tc.want {
				t.Errorf("message %q, want %q", te.Message, tc.want)
			}
			if e.revision(t) != rev {
				t.Errorf("revision moved")
			}
		})
	}
	_, _, err := e.svc.CreateKey(e.ctx, "0190d3a4-0000-7000-8000-000000000000", KeyRequest{Name: "k", Scopes: []string{"admin"}})
	wantCode(t, err, thauth.ENotFound)
	if _, err := e.svc.ListKeys(e.ctx, "0190d3a4-0000-7000-8000-000000000000"); !thauth.IsNotFound(err) {
		t.Errorf("ListKeys of an unknown project: %v", err)
	}
}

func TestListAndRevokeKeys(t *testing.T) {
	e := newEnv(t)
	key, token, err := e.svc.CreateKey(e.ctx, e.project, KeyRequest{Name: "k", Scopes: []string{"subjects:write"}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := e.svc.ListKeys(e.ctx, e.project)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.Name)
		if k.Hash != nil {
			t.Errorf("ListKeys returns the hash of %s", k.Name)
		}
	}
	if diff := cmp.Diff([]string{"admin", "decisions", "k"}, slices.Sorted(slices.Values(names))); diff != "" {
		t.Errorf("key names (-want +got):\n%s", diff)
	}
	js, err := json.Marshal(keys)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), "hash") || strings.Contains(string(js), token) {
		t.Errorf("key JSON leaks the hash or token: %s", js)
	}

	other, err := e.svc.Init(e.ctx, "Other", "Other")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeKey(e.ctx, other.Project.ID, key.ID); !thauth.IsNotFound(err) {
		t.Errorf("revoking through another project: %v, want not found", err)
	}
	if err := e.svc.RevokeKey(e.ctx, e.project, "0190d3a4-0000-7000-8000-000000000000"); !thauth.IsNotFound(err) {
		t.Errorf("revoking an unknown key: %v, want not found", err)
	}
	if _, ok := e.engine.Authenticate(token); !ok {
		t.Fatal("key does not authenticate before revocation")
	}
	rev := e.revision(t)
	e.clock.Set(testStart.Add(time.Minute))
	if err := e.svc.RevokeKey(e.ctx, e.project, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.engine.Authenticate(token); ok {
		t.Errorf("revoked key still authenticates")
	}
	if e.revision(t) != rev+1 {
		t.Errorf("revision %d, want %d", e.revision(t), rev+1)
	}
	// Revoking again changes nothing and keeps the first time.
	e.clock.Set(testStart.Add(time.Hour))
	if err := e.svc.RevokeKey(e.ctx, e.project, key.ID); err != nil {
		t.Fatal(err)
	}
	if e.revision(t) != rev+1 {
		t.Errorf("second revocation bumped the revision")
	}
	stored, err := e.store.GetAPIKey(e.ctx, e.project, key.ID)
	if err != nil || stored.RevokedAt == nil || !stored.RevokedAt.Equal(testStart.Add(time.Minute)) {
		t.Errorf("stored key = %+v, %v", stored, err)
	}
	// The other keys still work.
	if _, ok := e.engine.Authenticate(e.init.AdminKey); !ok {
		t.Errorf("admin key stopped working")
	}
}
