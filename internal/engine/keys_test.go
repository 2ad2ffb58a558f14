package engine

import (
	"hash/crc32"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// forgeToken returns a well-formed token (valid checksum) with the given lookup id and secret.
func forgeToken(lookup, secret string) string {
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	body := "thauth_" + lookup + "_" + secret
	n := crc32.ChecksumIEEE([]byte(body))
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = base62[n%62]
		n /= 62
	}
	return body + string(b[:])
}

func TestAuthenticate(t *testing.T) {
	f := newStoreFixture(t)
	p := f.createProject("app")
	var clock atomic.Pointer[time.Time]
	clock.Store(&f.now)
	now := func() time.Time { return *clock.Load() }
	setNow := func(t time.Time) { clock.Store(&t) }

	expiry := f.now.Add(time.Hour)
	token, key := f.createKey(p.ID, nil, thauth.ScopeDecisionsRead, thauth.ScopeSubjectsWrite)
	expToken, expKey := f.createKey(p.ID, &expiry, thauth.ScopeAdmin)

	e := New(f.st, Options{Now: now})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("valid", func(t *testing.T) {
		pr, ok := e.Authenticate(token)
		if !ok {
			t.Fatal("valid key refused")
		}
		if pr.KeyID != key.ID || pr.ProjectID != p.ID || pr.OrganizationID != f.org.ID {
			t.Fatalf("principal %+v", pr)
		}
		if !pr.HasScope(thauth.ScopeDecisionsRead) || !pr.HasScope(thauth.ScopeSubjectsWrite) || pr.HasScope(thauth.ScopeAdmin) {
			t.Fatalf("scopes %v", pr.Scopes)
		}
	})

	refused := func(t *testing.T, tok string) {
		t.Helper()
		if pr, ok := e.Authenticate(tok); ok || pr.KeyID != "" {
			t.Fatalf("Authenticate(%q) = %+v, %v; want refused", tok, pr, ok)
		}
	}
	lookup, _ := thauth.ParseToken(token)
	secret := token[len("thauth_")+16+1 : len(token)-6]

	t.Run("wrong secret", func(t *testing.T) {
		wrong := []byte(secret)
		if wrong[0] == 'A' {
			wrong[0] = 'B'
		} else {
			wrong[0] = 'A'
		}
		forged := forgeToken(lookup, string(wrong))
		if _, ok := thauth.ParseToken(forged); !ok {
			t.Fatal("forged token is malformed; test is broken")
		}
		refused(t, forged)
	})
	t.Run("bad checksum", func(t *testing.T) {
		b := []byte(token)
		if b[len(b)-1] == 'A' {
			b[len(b)-1] = 'B'
		} else {
			b[len(b)-1] = 'A'
		}
		refused(t, string(b))
	})
	t.Run("malformed", func(t *testing.T) {
		refused(t, "")
		refused(t, "thauth_")
		refused(t, token[:len(token)-1])
		refused(t, token+"x")
		refused(t, strings.ToUpper(token))
		refused(t, "Bearer "+token)
	})
	t.Run("unknown lookup", func(t *testing.T) {
		other, _, _ := thauth.NewToken()
		refused(t, other)
	})
	t.Run("expired", func(t *testing.T) {
		setNow(expiry.Add(-time.Microsecond))
		if _, ok := e.Authenticate(expToken); !ok {
			t.Fatal("key refused before expiry")
		}
		setNow(expiry)
		refused(t, expToken)
		setNow(f.now)
	})
	t.Run("usage", func(t *testing.T) {
		setNow(f.now.Add(time.Minute))
		if _, ok := e.Authenticate(token); !ok {
			t.Fatal("refused")
		}
		last, ok := e.KeyLastUsed(p.ID, key.ID)
		if !ok || !last.Equal(f.now.Add(time.Minute)) {
			t.Fatalf("KeyLastUsed = %v, %v", last, ok)
		}
		used := e.TakeKeyUsage()
		if got := used[p.ID][key.ID]; !got.Equal(f.now.Add(time.Minute)) {
			t.Fatalf("TakeKeyUsage = %v", used)
		}
		if got, ok := used[p.ID][expKey.ID]; !ok || !got.Equal(expiry.Add(-time.Microsecond)) {
			t.Fatalf("expired key usage = %v", used)
		}
		if again := e.TakeKeyUsage(); len(again) != 0 {
			t.Fatalf("second TakeKeyUsage = %v, want empty", again)
		}
		// An older use does not move the time back; a newer one is taken again.
		setNow(f.now)
		e.Authenticate(token)
		if again := e.TakeKeyUsage(); len(again) != 0 {
			t.Fatalf("older use reported: %v", again)
		}
		setNow(f.now.Add(2 * time.Minute))
		e.Authenticate(token)
		if again := e.TakeKeyUsage(); !again[p.ID][key.ID].Equal(f.now.Add(2 * time.Minute)) {
			t.Fatalf("newer use not reported: %v", again)
		}
		// Failed attempts are not uses.
		refused(t, forgeToken(lookup, strings.Repeat("A", 32)))
		if again := e.TakeKeyUsage(); len(again) != 0 {
			t.Fatalf("failed attempt counted: %v", again)
		}
		if _, ok := e.KeyLastUsed(p.ID, "nope"); ok {
			t.Fatal("KeyLastUsed of unknown key")
		}
		setNow(f.now)
	})
	t.Run("revoked", func(t *testing.T) {
		f.revokeKey(p.ID, key.ID)
		if _, err := e.Sync(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		refused(t, token)
		// The in-memory last use survives the reload of the key.
		if _, ok := e.KeyLastUsed(p.ID, key.ID); !ok {
			t.Fatal("usage lost on key reload")
		}
	})
	t.Run("new key after sync", func(t *testing.T) {
		tok, k := f.createKey(p.ID, nil, thauth.ScopeAdmin)
		refused(t, tok)
		if _, err := e.Sync(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if pr, ok := e.Authenticate(tok); !ok || pr.KeyID != k.ID || !pr.HasScope(thauth.ScopeAdmin) {
			t.Fatalf("new key: %+v %v", pr, ok)
		}
	})
	t.Run("full reload keeps revocation", func(t *testing.T) {
		e2 := New(f.st, Options{Now: now})
		if err := e2.LoadAll(f.ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := e2.Authenticate(token); ok {
			t.Fatal("revoked key accepted after full load")
		}
	})
}

func TestPrincipalHasScope(t *testing.T) {
	p := Principal{Scopes: []string{thauth.ScopeAdmin}}
	if !p.HasScope(thauth.ScopeAdmin) || p.HasScope(thauth.ScopeDecisionsRead) || p.HasScope("") {
		t.Fatal("HasScope")
	}
	if (Principal{}).HasScope(thauth.ScopeAdmin) {
		t.Fatal("empty principal has a scope")
	}
}
