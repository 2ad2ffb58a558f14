package httpserver

// The console stack: the middleware of the /api/v1 routes that people use (through the
// dashboard, the CLI and CI) rather than applications. It is separate from the machine API's
// stack (bearer API key + JSON) because its credentials are different and so are its threats.
//
// Credentials. A browser holds a session cookie (an opaque token; only its hash is stored).
// The CLI and CI send a personal access token, "Authorization: Bearer thauthpat_…". Project
// API keys (thauth_…) are refused here: they belong to applications, not to people.
//
// Cross-site request forgery. A cookie is an ambient credential: the browser attaches it to
// requests that other sites make it send. Two independent defences stop that:
// http.CrossOriginProtection refuses unsafe cross-origin browser requests (Sec-Fetch-Site,
// else Origin against Host), and every unsafe request authenticated by the cookie must carry
// X-CSRF-Token, a value derived from the session token (manage.CSRFToken) that another site
// cannot read. JSON bodies are required too, which a plain HTML form cannot send. Bearer
// tokens need none of this: a browser never attaches them on its own.
//
// Session fixation. Sign-in never adopts a cookie the request carries: it always issues a new
// token, and so does every privilege change (second factor, password, MFA on or off).
//
// Secrets (passwords, session and CSRF tokens, access tokens, TOTP secrets and codes,
// recovery codes) are never logged: the access log records the route pattern, never the URL
// query, headers or bodies, and console errors carry only caller-safe messages.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// The session cookie's names: with the __Host- prefix the browser accepts the cookie only
// when it is Secure, has Path=/ and no Domain, so that neither a sibling subdomain nor a
// plain-HTTP page can plant or overwrite it. Without TLS (local development) the prefix
// cannot be used.
const (
	cookieSecure = "__Host-thauth_session"
	cookiePlain  = "thauth_session"
)

// csrfHeader carries the CSRF token on unsafe cookie-authenticated requests.
const csrfHeader = "X-Csrf-Token" // canonical form of X-CSRF-Token

// hdrNoReferrer is the Referrer-Policy of console answers: the console's URLs carry ids that
// other sites need not learn.
var hdrNoReferrer = []string{"no-referrer"}

// caller is the authenticated account of a console request.
type caller struct {
	actor   manage.Actor
	account *thauth.Account
	session *thauth.Session     // Via session
	token   *thauth.AccessToken // Via token
	// sessionToken is the cookie's value (Via session): the CSRF token derives from it and
	// sign-out and the MFA step take it. Never logged.
	sessionToken string
}

// consoleHandler is a handler that runs after console authentication.
type consoleHandler func(w http.ResponseWriter, r *http.Request, c *caller)

// authOpts select what an authenticated console route accepts.
type authOpts uint8

const (
	// allowPending accepts a session whose second factor is still outstanding (the MFA
	// step and sign-out only).
	allowPending authOpts = 1 << iota
	// sessionOnly refuses personal access tokens (operations that create credentials or
	// rotate the session).
	sessionOnly
	// needsEngine answers 503 while the decision engine is loading: the route asks it
	// authorization questions, which would otherwise be denied with reason "error".
	needsEngine
)

// Console errors.
var (
	errNotSignedIn = thauth.Errorf(thauth.EUnauthenticated, "not signed in")
	errAPIKeyHere  = thauth.Errorf(thauth.EUnauthenticated,
		"project API keys cannot use the console API: sign in, or use a personal access token (thauthpat_…)")
	errBadAuthorization = thauth.Errorf(thauth.EUnauthenticated,
		"the Authorization header must be \"Bearer <personal access token>\"")
	errAmbiguousCookie = thauth.Errorf(thauth.EUnauthenticated, "more than one session cookie: sign in again")
	errPendingMFA      = thauth.Errorf(thauth.EUnauthenticated,
		"sign-in is not complete: enter your two-factor code first")
	errSessionOnly = thauth.Errorf(thauth.EForbidden,
		"this action needs a signed-in browser session; personal access tokens cannot perform it")
	errReadOnlyToken = thauth.Errorf(thauth.EForbidden, "this access token is read-only (it lacks the write scope)")
	errCSRF          = thauth.Errorf(thauth.EForbidden, "missing or invalid CSRF token")
	errCrossOrigin   = thauth.Errorf(thauth.EForbidden, "cross-origin request refused")
)

// newCrossOrigin returns the cross-origin protection of the console stack, answering its
// refusals as JSON 403s. It trusts no other origin: the dashboard is served by Thauth itself.
func (s *server) newCrossOrigin() *http.CrossOriginProtection {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.consoleError(w, r, errCrossOrigin)
	}))
	return cop
}

// consoleHeaders sets the headers every console answer carries.
func consoleHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = hdrNosniff
		h["Cache-Control"] = hdrNoStore
		h["Referrer-Policy"] = hdrNoReferrer
		next.ServeHTTP(w, r)
	})
}

// consolePublic is the stack of the console routes that take no credential (sign-up,
// sign-in, email links): headers, cross-origin protection, a deadline.
func (s *server) consolePublic(h http.HandlerFunc) http.Handler {
	return consoleHeaders(withTimeout(s.writeWait, s.cop.Handler(h)))
}

// consoleAuth is the stack of the authenticated console routes: consolePublic plus the
// caller's credential, CSRF for cookie-authenticated unsafe requests and the write scope
// for access tokens on unsafe requests.
func (s *server) consoleAuth(o authOpts, h consoleHandler) http.Handler {
	return consoleHeaders(withTimeout(s.writeWait, s.cop.Handler(s.authenticate(o, h))))
}

// authenticate resolves the caller and applies o, CSRF and token scopes before h.
func (s *server) authenticate(o authOpts, h consoleHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o&needsEngine != 0 && !s.eng.Ready() {
			s.consoleError(w, r, errNotReady)
			return
		}
		c, err := s.resolveCaller(r)
		if err != nil {
			if thauth.ErrorCodeOf(err) == thauth.EUnauthenticated && r.Header.Get("Authorization") == "" {
				// A dead session cookie is of no use to the browser: drop it.
				if _, n := s.sessionCookie(r); n > 0 {
					s.clearCookie(w)
				}
			}
			s.consoleError(w, r, err)
			return
		}
		setAccountID(w, c.actor.AccountID) // for the access log (observability)
		if c.session != nil && c.session.PendingMFA && o&allowPending == 0 {
			s.consoleError(w, r, errPendingMFA)
			return
		}
		if o&sessionOnly != 0 && c.actor.Via != manage.ViaSession {
			s.consoleError(w, r, errSessionOnly)
			return
		}
		if unsafeMethod(r.Method) {
			switch c.actor.Via {
			case manage.ViaSession:
				if v := r.Header[csrfHeader]; len(v) != 1 || !manage.CSRFTokenMatches(c.sessionToken, v[0]) {
					s.consoleError(w, r, errCSRF)
					return
				}
			case manage.ViaToken:
				if !hasScope(c.actor.Scopes, thauth.TokenScopeWrite) {
					s.consoleError(w, r, errReadOnlyToken)
					return
				}
			}
		}
		h(w, r, c)
	})
}

// unsafeMethod reports whether m may change state (everything but GET, HEAD, OPTIONS).
func unsafeMethod(m string) bool { return m != "GET" && m != "HEAD" && m != "OPTIONS" }

func hasScope(scopes []string, s string) bool {
	for _, v := range scopes {
		if v == s {
			return true
		}
	}
	return false
}

// resolveCaller authenticates the console request: an Authorization header must hold a
// personal access token (it is never combined with the cookie); without one, the session
// cookie. Every failure is EUnauthenticated.
func (s *server) resolveCaller(r *http.Request) (*caller, error) {
	ctx := r.Context()
	ci := clientInfo(r)
	if _, ok := r.Header["Authorization"]; ok {
		tok, ok := bearerToken(r)
		if !ok {
			return nil, errBadAuthorization
		}
		if strings.HasPrefix(tok, "thauth_") {
			return nil, errAPIKeyHere
		}
		at, acct, err := s.mg.AuthenticateAccessToken(ctx, tok)
		if err != nil {
			return nil, err
		}
		return &caller{
			actor: manage.Actor{
				AccountID: acct.ID, TokenID: at.ID, Via: manage.ViaToken,
				MFA: acct.MFAEnabled(), Scopes: at.Scopes, Client: ci,
			},
			account: acct, token: at,
		}, nil
	}
	tok, n := s.sessionCookie(r)
	switch {
	case n == 0:
		return nil, errNotSignedIn
	case n > 1:
		return nil, errAmbiguousCookie
	}
	sess, acct, err := s.mg.Authenticate(ctx, tok)
	if err != nil {
		return nil, err
	}
	return &caller{
		actor: manage.Actor{
			AccountID: acct.ID, SessionID: sess.ID, Via: manage.ViaSession,
			MFA: sess.MFA, Client: ci,
		},
		account: acct, session: sess, sessionToken: tok,
	}, nil
}

// accountCredential reports whether the request carries an account's credential (a
// personal access token, or no Authorization header and a session cookie) rather than a
// project API key, for the project routes that accept both.
func (s *server) accountCredential(r *http.Request) bool {
	if _, ok := r.Header["Authorization"]; ok {
		tok, ok := bearerToken(r)
		return ok && strings.HasPrefix(tok, "thauthpat_")
	}
	_, n := s.sessionCookie(r)
	return n > 0
}

// clientInfo describes the client for sessions, throttles and the audit log. The IP is the
// peer address — the client's, as X-Forwarded-For names it, when the peer is a configured
// trusted proxy (proxy.go).
func clientInfo(r *http.Request) manage.ClientInfo {
	ip := r.RemoteAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	return manage.ClientInfo{IP: ip, UserAgent: r.UserAgent()}
}

// cookieName is the session cookie's name in this server's mode.
func (s *server) cookieName() string {
	if s.secureCookies {
		return cookieSecure
	}
	return cookiePlain
}

// sessionCookie returns the session cookie's value and how many session cookies the request
// carries (more than one is ambiguous: some other page planted one).
func (s *server) sessionCookie(r *http.Request) (string, int) {
	cs := r.CookiesNamed(s.cookieName())
	n := 0
	val := ""
	for _, c := range cs {
		if c.Value != "" {
			n++
			val = c.Value
		}
	}
	return val, n
}

// setSessionCookie sets the cookie of a new session token, living until expires.
func (s *server) setSessionCookie(w http.ResponseWriter, token string, expires time.Time) {
	maxAge := int(expires.Sub(s.now()) / time.Second)
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: token, Path: "/", MaxAge: maxAge,
		Secure: s.secureCookies, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// clearCookie tells the browser to drop the session cookie.
func (s *server) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: "", Path: "/", MaxAge: -1,
		Secure: s.secureCookies, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// consoleError is writeError with a JSON 401: console clients are browsers and people, for
// whom the machine API's uniform plain-text 401 would only hide what to do (sign in again,
// finish the second factor, use the right kind of token).
func (s *server) consoleError(w http.ResponseWriter, r *http.Request, err error) {
	if thauth.ErrorCodeOf(err) == thauth.EUnauthenticated {
		w.Header()["Www-Authenticate"] = hdrBearer
		s.writeJSON(w, http.StatusUnauthorized, errorBody{Error: thauth.ErrorMessage(err), Code: thauth.EUnauthenticated})
		return
	}
	s.writeError(w, r, err)
}

// readConsoleJSON reads and strictly decodes the JSON body of a console request into v (a
// pointer to a struct). On failure it has answered the request and returns false.
func (s *server) readConsoleJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	bp := s.getBuf()
	defer s.putBuf(bp)
	body, err := readJSONBody(r, bp)
	if err == nil {
		err = decodeStrict(body, v)
	}
	if err != nil {
		s.consoleError(w, r, err)
		return false
	}
	return true
}

// decodeStrict decodes a JSON object into the struct v with encoding/json (the console's
// bodies are small and rare: reflection is fine here). It is as strict as the machine API's
// decoder on what matters: member names must match a field's JSON name exactly (not
// case-insensitively), duplicate members, unknown members, invalid UTF-8 and trailing data
// are refused, and every error is an EInvalid naming the field.
func decodeStrict(body []byte, v any) error {
	if !utf8.Valid(body) {
		return invalid("request body is not valid UTF-8")
	}
	fields := jsonFields(reflect.TypeOf(v).Elem())
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return invalid("request body is empty: expected a JSON object")
		}
		return invalid("malformed JSON: %s", jsonErrText(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return invalid("request body must be a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return invalid("malformed JSON: %s", jsonErrText(err))
		}
		key := kt.(string) // object keys are always strings
		if !fields[key] {
			return invalid("unknown field %q", clip(key))
		}
		if seen[key] {
			return invalid("duplicate field %q", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return invalid("malformed JSON: %s", jsonErrText(err))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return invalid("malformed JSON: %s", jsonErrText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("malformed JSON: unexpected data after the top-level object")
	}
	sd := json.NewDecoder(bytes.NewReader(body))
	sd.DisallowUnknownFields()
	if err := sd.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalid("field %q must be %s", te.Field, jsonKind(te.Type))
		}
		return invalid("malformed JSON: %s", jsonErrText(err))
	}
	return nil
}

// jsonErrText is err's message without encoding/json's "json: " prefix.
func jsonErrText(err error) string {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return "unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON type a Go type decodes from, for type errors.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}

// jsonFields returns the JSON member names of struct type t (its json tags). Recomputed per
// request: the console's request types have a handful of fields.
func jsonFields(t reflect.Type) map[string]bool {
	m := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = true
	}
	return m
}

// requireFields checks that each (name, value) pair has a non-empty value, answering the
// first that has not with `field "name" is required`.
func requireFields(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return missing(pairs[i])
		}
	}
	return nil
}
