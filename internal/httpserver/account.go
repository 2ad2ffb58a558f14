package httpserver

// Console routes of one's own account: sign-up, email verification, sign-in (with the second
// factor), sign-out, password reset, and, signed in, the account's settings, sessions,
// activity, two-factor authentication and personal access tokens. The rules (password
// policy, throttles, what each credential may do) live in internal/manage; these handlers
// decode, call and encode, and own the cookie.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// accountJSON is an account as the console shows it (never a hash or a secret).
type accountJSON struct {
	ID            string    `json:"id"`
	Email         string    `json:"email"`
	Name          string    `json:"name"`
	EmailVerified bool      `json:"email_verified"`
	MFAEnabled    bool      `json:"mfa_enabled"`
	CreatedAt     time.Time `json:"created_at"`
}

func toAccountJSON(a *thauth.Account) accountJSON {
	return accountJSON{
		ID: a.ID, Email: a.Email, Name: a.Name, EmailVerified: a.EmailVerifiedAt != nil,
		MFAEnabled: a.MFAEnabled(), CreatedAt: a.CreatedAt,
	}
}

// statusJSON is the body of the routes that only report an outcome.
type statusJSON struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// The answer of the routes that must not reveal whether an address is registered: the same
// for every valid input.
const (
	msgSignUp = "If this address can be used, we have sent it a verification link."
	msgResend = "If this address has an account waiting for verification, we have sent it a new link."
	msgReset  = "If this address has an account, we have sent it a link to reset the password."
	msgChange = "We have sent a verification link to the new address; the change takes effect once it is opened."
)

// signUp serves POST /api/v1/auth/signup, rate limited per client IP (limits.go).
func (s *server) signUp(w http.ResponseWriter, r *http.Request) {
	if !s.allowSignUp(w, r) {
		return
	}
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("email", req.Email, "password", req.Password); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if err := s.mg.SignUp(r.Context(), clientInfo(r), req.Email, req.Password, req.Name); err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusAccepted, statusJSON{Status: "pending", Message: msgSignUp})
}

// verifyEmail serves POST /api/v1/auth/verify-email: the token of a verification link (a
// new account's address, or a new address after a change).
func (s *server) verifyEmail(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("token", req.Token); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if err := s.mg.VerifyEmail(r.Context(), clientInfo(r), req.Token); err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, statusJSON{Status: "verified"})
}

// resendVerification serves POST /api/v1/auth/resend-verification.
func (s *server) resendVerification(w http.ResponseWriter, r *http.Request) {
	// It mails like a sign-up does, so it shares the sign-up budget of the address.
	if !s.allowSignUp(w, r) {
		return
	}
	var req struct {
		Email string `json:"email"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("email", req.Email); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if err := s.mg.ResendVerification(r.Context(), clientInfo(r), req.Email); err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusAccepted, statusJSON{Status: "pending", Message: msgResend})
}

// signInJSON is the answer to a sign-in (and to its MFA step).
type signInJSON struct {
	Account     accountJSON `json:"account"`
	MFARequired bool        `json:"mfa_required"`
	CSRFToken   string      `json:"csrf_token"`
}

// signIn serves POST /api/v1/auth/signin. A session cookie sent with the request is ignored:
// the answer always sets a new one (session fixation). When the account has a second factor
// the new session is pending: it may only complete the sign-in (signin/mfa) or sign out.
// The rate limits per client IP and per address and IP (limits.go) apply before the
// password is checked, on top of internal/manage's throttles.
func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	if !s.allowSignInIP(w, r) {
		return
	}
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("email", req.Email, "password", req.Password); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if !s.allowSignInAccount(w, r, req.Email) {
		return
	}
	res, err := s.mg.SignIn(r.Context(), clientInfo(r), req.Email, req.Password)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.startSession(w, res)
	s.writeJSON(w, http.StatusOK, signInJSON{
		Account: toAccountJSON(res.Account), MFARequired: res.MFARequired, CSRFToken: csrfOf(res),
	})
}

// startSession sets the cookie of the session res created, if it created one.
func (s *server) startSession(w http.ResponseWriter, res *manage.SignInResult) {
	if res != nil && res.Token != "" && res.Session != nil {
		s.setSessionCookie(w, res.Token, res.Session.ExpiresAt)
	}
}

// csrfOf is the CSRF token of res's new session ("" when there is none).
func csrfOf(res *manage.SignInResult) string {
	if res == nil || res.Token == "" {
		return ""
	}
	return manage.CSRFToken(res.Token)
}

// signInMFA serves POST /api/v1/auth/signin/mfa: the second factor of a pending session,
// as a TOTP code or a recovery code. The pending session ends; a new one (new id, new
// token, new CSRF token) replaces it.
func (s *server) signInMFA(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Code         string `json:"code"`
		RecoveryCode string `json:"recovery_code"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	code := req.Code
	switch {
	case req.Code != "" && req.RecoveryCode != "":
		s.consoleError(w, r, invalid(`give either "code" or "recovery_code", not both`))
		return
	case req.Code == "" && req.RecoveryCode == "":
		s.consoleError(w, r, invalid(`field "code" (or "recovery_code") is required`))
		return
	case req.RecoveryCode != "":
		code = req.RecoveryCode
	}
	res, err := s.mg.SignInMFA(r.Context(), c.actor.Client, c.sessionToken, code)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.startSession(w, res)
	s.writeJSON(w, http.StatusOK, struct {
		Account   accountJSON `json:"account"`
		CSRFToken string      `json:"csrf_token"`
	}{toAccountJSON(res.Account), csrfOf(res)})
}

// signOut serves POST /api/v1/auth/signout: the session ends (pending ones too) and the
// cookie is cleared.
func (s *server) signOut(w http.ResponseWriter, r *http.Request, c *caller) {
	if err := s.mg.SignOut(r.Context(), c.sessionToken); err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.clearCookie(w)
	w.WriteHeader(http.StatusNoContent)
}

// requestPasswordReset serves POST /api/v1/auth/password-reset, rate limited per client IP
// (limits.go).
func (s *server) requestPasswordReset(w http.ResponseWriter, r *http.Request) {
	if !s.allowReset(w, r) {
		return
	}
	var req struct {
		Email string `json:"email"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("email", req.Email); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if err := s.mg.RequestPasswordReset(r.Context(), clientInfo(r), req.Email); err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusAccepted, statusJSON{Status: "pending", Message: msgReset})
}

// resetPassword serves POST /api/v1/auth/password-reset/confirm. Every session of the
// account ends; a cookie the request carries is cleared.
func (s *server) resetPassword(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("token", req.Token, "password", req.Password); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if err := s.mg.ResetPassword(r.Context(), clientInfo(r), req.Token, req.Password); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if _, n := s.sessionCookie(r); n > 0 {
		s.clearCookie(w)
	}
	s.writeJSON(w, http.StatusOK, statusJSON{Status: "password_reset", Message: "Sign in with the new password."})
}

// currentSessionJSON is the caller's own session in GET /api/v1/account.
type currentSessionJSON struct {
	ID        string    `json:"id"`
	MFA       bool      `json:"mfa"`
	ExpiresAt time.Time `json:"expires_at"`
}

// getAccount serves GET /api/v1/account: who the caller is, with its session and, for a
// session, the CSRF token (how a reloaded page gets it back).
func (s *server) getAccount(w http.ResponseWriter, r *http.Request, c *caller) {
	left, err := s.mg.RecoveryCodesLeft(r.Context(), c.actor)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := struct {
		Account           accountJSON         `json:"account"`
		Session           *currentSessionJSON `json:"session"`
		RecoveryCodesLeft int                 `json:"recovery_codes_left"`
		CSRFToken         string              `json:"csrf_token,omitempty"`
	}{Account: toAccountJSON(c.account), RecoveryCodesLeft: left}
	if c.session != nil {
		out.Session = &currentSessionJSON{ID: c.session.ID, MFA: c.session.MFA, ExpiresAt: c.session.ExpiresAt}
		out.CSRFToken = manage.CSRFToken(c.sessionToken)
	}
	s.writeJSON(w, http.StatusOK, out)
}

// updateAccount serves PATCH /api/v1/account {name}.
func (s *server) updateAccount(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Name *string `json:"name"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if req.Name == nil {
		s.consoleError(w, r, missing("name"))
		return
	}
	a, err := s.mg.UpdateAccount(r.Context(), c.actor, *req.Name)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]accountJSON{"account": toAccountJSON(a)})
}

// csrfJSON is the answer of the routes that rotate the session.
type csrfJSON struct {
	CSRFToken string `json:"csrf_token"`
}

// changePassword serves POST /api/v1/account/password: the caller's session is replaced
// by a new one (new cookie, new CSRF token) and every other session ends.
func (s *server) changePassword(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("current_password", req.Current, "new_password", req.New); err != nil {
		s.consoleError(w, r, err)
		return
	}
	res, err := s.mg.ChangePassword(r.Context(), c.actor, req.Current, req.New)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.startSession(w, res)
	s.writeJSON(w, http.StatusOK, csrfJSON{csrfOf(res)})
}

// changeEmail serves POST /api/v1/account/email: a verification link goes to the new
// address, which replaces the old one when it is opened.
func (s *server) changeEmail(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		NewEmail string `json:"new_email"`
		Password string `json:"password"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("new_email", req.NewEmail, "password", req.Password); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if err := s.mg.ChangeEmail(r.Context(), c.actor, req.Password, req.NewEmail); err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusAccepted, statusJSON{Status: "pending", Message: msgChange})
}

// sessionJSON is one of the account's sessions in the listing.
type sessionJSON struct {
	ID         string    `json:"id"`
	Current    bool      `json:"current"`
	MFA        bool      `json:"mfa"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

// listSessions serves GET /api/v1/account/sessions.
func (s *server) listSessions(w http.ResponseWriter, r *http.Request, c *caller) {
	ss, err := s.mg.ListSessions(r.Context(), c.actor)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := make([]sessionJSON, 0, len(ss))
	for _, x := range ss {
		out = append(out, sessionJSON{
			ID: x.ID, Current: x.ID == c.actor.SessionID, MFA: x.MFA, CreatedAt: x.CreatedAt,
			LastSeenAt: x.LastSeenAt, ExpiresAt: x.ExpiresAt, IP: x.IP, UserAgent: x.UserAgent,
		})
	}
	s.writeJSON(w, http.StatusOK, map[string][]sessionJSON{"sessions": out})
}

// revokeSession serves DELETE /api/v1/account/sessions/{id}; revoking the current session
// also clears its cookie.
func (s *server) revokeSession(w http.ResponseWriter, r *http.Request, c *caller) {
	id := r.PathValue("id")
	if err := s.mg.RevokeSession(r.Context(), c.actor, id); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if c.actor.Via == manage.ViaSession && id == c.actor.SessionID {
		s.clearCookie(w)
	}
	w.WriteHeader(http.StatusNoContent)
}

// revokeAllSessions serves POST /api/v1/account/sessions/revoke-all: sign out everywhere,
// here too.
func (s *server) revokeAllSessions(w http.ResponseWriter, r *http.Request, c *caller) {
	if _, err := s.mg.RevokeAllSessions(r.Context(), c.actor); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if c.actor.Via == manage.ViaSession {
		s.clearCookie(w)
	}
	w.WriteHeader(http.StatusNoContent)
}

// activityJSON is one audit entry of the account's activity; data is its JSON object.
type activityJSON struct {
	thauth.AuditEntry
	Data json.RawMessage `json:"data,omitempty"`
}

// Activity page sizes.
const (
	defaultActivityLimit = 50
	maxActivityLimit     = 1000
)

// accountActivity serves GET /api/v1/account/activity?before=&limit=: the account's
// security events, newest first. next_before is the cursor of the next page (null on the
// last one).
func (s *server) accountActivity(w http.ResponseWriter, r *http.Request, c *caller) {
	q := r.URL.Query()
	for k := range q {
		if k != "before" && k != "limit" {
			s.consoleError(w, r, invalid("unknown query parameter %q", clip(k)))
			return
		}
	}
	before, err := intParam(q.Get("before"), "before", 0, 1<<62, 0)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	limit, err := intParam(q.Get("limit"), "limit", 1, maxActivityLimit, defaultActivityLimit)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	entries, err := s.mg.AccountActivity(r.Context(), c.actor, before, int(limit))
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := struct {
		Events     []activityJSON `json:"events"`
		NextBefore *int64         `json:"next_before"`
	}{Events: make([]activityJSON, 0, len(entries))}
	for _, e := range entries {
		a := activityJSON{AuditEntry: e}
		if e.Data != "" && json.Valid([]byte(e.Data)) {
			a.Data = json.RawMessage(e.Data)
		}
		out.Events = append(out.Events, a)
	}
	if n := len(entries); n == int(limit) && n > 0 && entries[n-1].Seq > 1 {
		next := entries[n-1].Seq
		out.NextBefore = &next
	}
	s.writeJSON(w, http.StatusOK, out)
}

// intParam parses the query parameter name (v, "" meaning def) as an integer in [lo, hi].
func intParam(v, name string, lo, hi, def int64) (int64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, invalid("query parameter %q must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

// enrollTOTP serves POST /api/v1/account/mfa/totp: a new secret to add to an authenticator
// app; two-factor authentication is on once a code from it is confirmed.
func (s *server) enrollTOTP(w http.ResponseWriter, r *http.Request, c *caller) {
	en, err := s.mg.EnrollTOTP(r.Context(), c.actor)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, struct {
		Secret    string `json:"secret"`
		URI       string `json:"otpauth_uri"`
		QRCodePNG string `json:"qr_code_png"`
	}{en.Secret, en.URI, base64.StdEncoding.EncodeToString(en.QRCodePNG)})
}

// codeRequest is the body of the routes that take a fresh second-factor code.
type codeRequest struct {
	Code string `json:"code"`
}

// confirmTOTP serves POST /api/v1/account/mfa/totp/confirm: turns two-factor
// authentication on, answers the ten recovery codes (shown this once) and rotates the
// session.
func (s *server) confirmTOTP(w http.ResponseWriter, r *http.Request, c *caller) {
	var req codeRequest
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("code", req.Code); err != nil {
		s.consoleError(w, r, err)
		return
	}
	codes, res, err := s.mg.ConfirmTOTP(r.Context(), c.actor, req.Code)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.startSession(w, res)
	s.writeJSON(w, http.StatusOK, struct {
		RecoveryCodes []string `json:"recovery_codes"`
		CSRFToken     string   `json:"csrf_token"`
	}{codes, csrfOf(res)})
}

// disableTOTP serves POST /api/v1/account/mfa/totp/disable {code}: a fresh TOTP code or a
// recovery code turns two-factor authentication off; the session is rotated.
func (s *server) disableTOTP(w http.ResponseWriter, r *http.Request, c *caller) {
	var req codeRequest
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("code", req.Code); err != nil {
		s.consoleError(w, r, err)
		return
	}
	res, err := s.mg.DisableTOTP(r.Context(), c.actor, req.Code)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.startSession(w, res)
	s.writeJSON(w, http.StatusOK, csrfJSON{csrfOf(res)})
}

// regenerateRecoveryCodes serves POST /api/v1/account/mfa/recovery-codes {code}: ten new
// codes replace the old ones.
func (s *server) regenerateRecoveryCodes(w http.ResponseWriter, r *http.Request, c *caller) {
	var req codeRequest
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("code", req.Code); err != nil {
		s.consoleError(w, r, err)
		return
	}
	codes, err := s.mg.RegenerateRecoveryCodes(r.Context(), c.actor, req.Code)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string][]string{"recovery_codes": codes})
}

// accessTokenJSON is a personal access token's metadata (never the token or its hash);
// prefix is its public lookup id, to recognize it.
type accessTokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  time.Time  `json:"expires_at"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

func toAccessTokenJSON(t *thauth.AccessToken) accessTokenJSON {
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return accessTokenJSON{
		ID: t.ID, Name: t.Name, Prefix: t.LookupID, Scopes: scopes, ExpiresAt: t.ExpiresAt,
		CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt,
	}
}

// maxTokenDays bounds expires_in_days before it reaches manage (which enforces its own,
// smaller maximum), so that the multiplication below cannot overflow.
const maxTokenDays = 100 * 365

// createAccessToken serves POST /api/v1/account/tokens: the token is in the answer and
// never again.
func (s *server) createAccessToken(w http.ResponseWriter, r *http.Request, c *caller) {
	var req struct {
		Name          string   `json:"name"`
		Scopes        []string `json:"scopes"`
		ExpiresInDays *int     `json:"expires_in_days"`
	}
	if !s.readConsoleJSON(w, r, &req) {
		return
	}
	if err := requireFields("name", req.Name); err != nil {
		s.consoleError(w, r, err)
		return
	}
	if len(req.Scopes) == 0 {
		s.consoleError(w, r, missing("scopes"))
		return
	}
	var ttl time.Duration
	if req.ExpiresInDays != nil {
		d := *req.ExpiresInDays
		if d < 1 || d > maxTokenDays {
			s.consoleError(w, r, invalid(`field "expires_in_days" must be a positive number of days`))
			return
		}
		ttl = time.Duration(d) * 24 * time.Hour
	}
	t, token, err := s.mg.CreateAccessToken(r.Context(), c.actor, req.Name, req.Scopes, ttl)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusCreated, struct {
		Token       string          `json:"token"`
		AccessToken accessTokenJSON `json:"access_token"`
	}{token, toAccessTokenJSON(t)})
}

// listAccessTokens serves GET /api/v1/account/tokens: every token of the account, revoked
// ones included.
func (s *server) listAccessTokens(w http.ResponseWriter, r *http.Request, c *caller) {
	ts, err := s.mg.ListAccessTokens(r.Context(), c.actor)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := make([]accessTokenJSON, 0, len(ts))
	for i := range ts {
		out = append(out, toAccessTokenJSON(&ts[i]))
	}
	s.writeJSON(w, http.StatusOK, map[string][]accessTokenJSON{"tokens": out})
}

// revokeAccessToken serves DELETE /api/v1/account/tokens/{id}.
func (s *server) revokeAccessToken(w http.ResponseWriter, r *http.Request, c *caller) {
	if err := s.mg.RevokeAccessToken(r.Context(), c.actor, r.PathValue("id")); err != nil {
		s.consoleError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
