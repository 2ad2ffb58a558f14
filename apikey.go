package thauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"hash/crc32"
	"strings"
	"time"
)

// Scope names of API keys (spec §5).
const (
	ScopeDecisionsRead = "decisions:read" // check, batch, config
	ScopeSubjectsWrite = "subjects:write" // subject upsert
	ScopeAdmin         = "admin"          // the management API of the key's project
)

// ValidScopes lists every scope a key may carry, in canonical order.
var ValidScopes = []string{ScopeDecisionsRead, ScopeSubjectsWrite, ScopeAdmin}

// APIKey is the stored form of a project API key: metadata and the SHA-256 hash of the token.
// The token itself is never stored.
type APIKey struct {
	ID         string     `json:"id"` // UUID
	ProjectID  string     `json:"project_id"`
	Name       string     `json:"name"`
	LookupID   string     `json:"prefix"` // the public identifier part of the token
	Hash       []byte     `json:"-"`      // SHA-256 of the whole token
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// HasScope reports whether the key carries scope s. The admin scope does not imply the
// others: keys get exactly the scopes they are given.
func (k *APIKey) HasScope(s string) bool {
	for _, x := range k.Scopes {
		if x == s {
			return true
		}
	}
	return false
}

// Usable reports whether the key may authenticate at time now (not revoked, not expired).
func (k *APIKey) Usable(now time.Time) bool {
	if k.RevokedAt != nil {
		return false
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return false
	}
	return true
}

// Token format:
//
//	thauth_<lookup:16>_<secret:32><checksum:6>
//
// lookup and secret are base62 (lookup ≈ 95 bits, secret ≈ 190 bits of randomness); the
// checksum is the CRC-32 (IEEE) of everything before it, base62, zero-padded to 6 characters.
// The prefix lets secret scanners find leaked keys, the checksum rejects mistyped or truncated
// keys without a lookup, and the lookup part finds the stored hash.
const (
	tokenPrefix = "thauth_"
	lookupLen   = 16
	secretLen   = 32
	checksumLen = 6
	base62      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	TokenLength = len(tokenPrefix) + lookupLen + 1 + secretLen + checksumLen
)

// NewToken generates a fresh API key token and returns it with its lookup id and hash.
func NewToken() (token, lookupID string, hash []byte) { return newToken(tokenPrefix) }

// ParseToken checks the shape and checksum of an API key token and returns its lookup id. It
// does no I/O and takes the same time for every malformed token of a given length.
func ParseToken(token string) (lookupID string, ok bool) { return parseToken(tokenPrefix, token) }

// Personal access tokens (AccessToken) have the same shape as API keys with their own prefix,
// so that neither can be mistaken for the other and secret scanners tell them apart:
//
//	thauthpat_<lookup:16>_<secret:32><checksum:6>
const (
	accessTokenPrefix = "thauthpat_"
	AccessTokenLength = len(accessTokenPrefix) + lookupLen + 1 + secretLen + checksumLen
)

// NewAccessToken generates a fresh personal access token with its lookup id and hash.
func NewAccessToken() (token, lookupID string, hash []byte) { return newToken(accessTokenPrefix) }

// ParseAccessToken is ParseToken for personal access tokens.
func ParseAccessToken(token string) (lookupID string, ok bool) {
	return parseToken(accessTokenPrefix, token)
}

func newToken(prefix string) (token, lookupID string, hash []byte) {
	lookupID = randomBase62(lookupLen)
	body := prefix + lookupID + "_" + randomBase62(secretLen)
	token = body + checksum(body)
	h := HashToken(token)
	return token, lookupID, h[:]
}

func parseToken(prefix, token string) (lookupID string, ok bool) {
	if len(token) != len(prefix)+lookupLen+1+secretLen+checksumLen || !strings.HasPrefix(token, prefix) {
		return "", false
	}
	body, sum := token[:len(token)-checksumLen], token[len(token)-checksumLen:]
	if body[len(prefix)+lookupLen] != '_' {
		return "", false
	}
	for i := len(prefix); i < len(token); i++ {
		if i != len(prefix)+lookupLen && !isBase62[token[i]] {
			return "", false
		}
	}
	want := checksumOf(body)
	if subtle.ConstantTimeCompare(want[:], []byte(sum)) != 1 {
		return "", false
	}
	return token[len(prefix) : len(prefix)+lookupLen], true
}

// HashToken returns the SHA-256 of a token. A fast hash is right here: tokens carry ≥128 bits
// of randomness, so there is nothing to brute-force (unlike passwords).
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// TokenMatches compares a token against a stored hash in constant time.
func TokenMatches(token string, stored []byte) bool {
	h := HashToken(token)
	return subtle.ConstantTimeCompare(h[:], stored) == 1
}

var isBase62 = func() (t [256]bool) {
	for i := 0; i < len(base62); i++ {
		t[base62[i]] = true
	}
	return t
}()

func checksum(body string) string {
	b := checksumOf(body)
	return string(b[:])
}

// checksumOf is checksum without allocating, for the request path.
func checksumOf(body string) (b [checksumLen]byte) {
	n := crc32.Update(0, crc32.IEEETable, []byte(body))
	for i := checksumLen - 1; i >= 0; i-- {
		b[i] = base62[n%62]
		n /= 62
	}
	return b
}

func randomBase62(n int) string {
	// Rejection sampling keeps every character uniform.
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic("thauth: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			if c < 248 { // 248 = 4*62
				out = append(out, base62[c%62])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}
