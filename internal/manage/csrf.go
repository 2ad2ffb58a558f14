package manage

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// Cross-site request forgery: a state-changing request authenticated by the session cookie
// must also carry CSRFToken(session token) in the X-CSRF-Token header. A forged cross-site
// request carries the cookie but cannot read it (HttpOnly, and other origins cannot read
// responses), so it cannot compute the value. Deriving it from the session token needs no
// storage, changes with every new session (sign-in, privilege change), and reveals nothing
// about the token (HMAC is one-way). The HTTP layer also applies net/http's
// CrossOriginProtection; this token is the defence that does not rely on browser headers.

// csrfLabel is the HMAC message: fixed, versioned, so the derivation can change later.
const csrfLabel = "thauth-csrf-v1"

// CSRFToken returns the CSRF token of a session: HMAC-SHA256 keyed with the session token
// over "thauth-csrf-v1", unpadded base64url. It is deterministic and needs no storage.
func CSRFToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte(sessionToken))
	m.Write([]byte(csrfLabel))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CSRFTokenMatches reports, in constant time, whether candidate is the CSRF token of
// sessionToken. An empty session token or candidate never matches.
func CSRFTokenMatches(sessionToken, candidate string) bool {
	if sessionToken == "" || candidate == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(CSRFToken(sessionToken)), []byte(candidate)) == 1
}
