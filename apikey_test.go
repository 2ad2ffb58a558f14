package thauth

import (
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		tok, lookup, hash := NewToken()
		if len(tok) != TokenLength || !strings.HasPrefix(tok, "thauth_") {
			t.Fatalf("token %q: bad shape", tok)
		}
		got, ok := ParseToken(tok)
		if !ok || got != lookup {
			t.Fatalf("ParseToken(%q) = %q, %v; want %q, true", tok, got, ok, lookup)
		}
		if !TokenMatches(tok, hash) {
			t.Fatalf("TokenMatches(%q) = false", tok)
		}
		if seen[tok] || seen[lookup] {
			t.Fatalf("duplicate token or lookup id after %d tokens", i)
		}
		seen[tok], seen[lookup] = true, true
	}
}

func TestParseTokenRejects(t *testing.T) {
	tok, _, hash := NewToken()
	flip := func(i int) string {
		b := []byte(tok)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := map[string]string{
		"empty":              "",
		"truncated":          tok[:len(tok)-1],
		"extended":           tok + "a",
		"other prefix":       "thauth-" + tok[7:],
		"typo in secret":     flip(len(tok) - 10),
		"typo in lookup":     flip(9),
		"typo in checksum":   flip(len(tok) - 1),
		"separator replaced": tok[:23] + "a" + tok[24:],
		"non-base62":         tok[:30] + "!" + tok[31:],
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			if _, ok := ParseToken(bad); ok {
				t.Errorf("ParseToken(%q) accepted a bad token", bad)
			}
			if bad != "" && TokenMatches(bad, hash) {
				t.Errorf("TokenMatches(%q) matched the original hash", bad)
			}
		})
	}
}

func TestAPIKeyUsable(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Second), now.Add(time.Second)
	cases := []struct {
		name string
		key  APIKey
		want bool
	}{
		{"plain", APIKey{}, true},
		{"expires later", APIKey{ExpiresAt: &future}, true},
		{"expires exactly now", APIKey{ExpiresAt: &now}, false},
		{"expired", APIKey{ExpiresAt: &past}, false},
		{"revoked", APIKey{RevokedAt: &past}, false},
	}
	for _, c := range cases {
		if got := c.key.Usable(now); got != c.want {
			t.Errorf("%s: Usable = %v, want %v", c.name, got, c.want)
		}
	}
	k := APIKey{Scopes: []string{ScopeAdmin}}
	if !k.HasScope(ScopeAdmin) || k.HasScope(ScopeDecisionsRead) {
		t.Errorf("HasScope: admin must not imply other scopes")
	}
}
