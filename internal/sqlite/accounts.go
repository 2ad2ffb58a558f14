package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// Accounts and the credentials that hang off them: recovery codes, email tokens, sessions and
// access tokens. Every credential row is addressed through its account, so an id of another
// account's row is ENotFound and left alone.

type scanner interface{ Scan(...any) error }

// collect scans every row of a query with scan into a non-nil slice.
func collect[T any](rows *sql.Rows, err error, msg string, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, mapErr(err, msg)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, mapErr(err, msg)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, msg)
	}
	return out, nil
}

// normOptTime normalizes an optional time in place (see normTime).
func normOptTime(t **time.Time) {
	if *t != nil {
		n := normTime(**t)
		*t = &n
	}
}

// affected returns ENotFound "<what> not found" when res changed no row.
func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return mapErr(err, "cannot write "+what)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return notFoundOr(err, what)
	}
	return nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// ---- accounts ----

const accountColumns = `id, email, name, password_hash, email_verified_at, totp_secret, totp_pending, totp_enabled_at,
	totp_last_step, created_at, updated_at`

func scanAccount(sc scanner) (thauth.Account, error) {
	var a thauth.Account
	var verified, enabled sql.NullInt64
	var created, updated int64
	err := sc.Scan(&a.ID, &a.Email, &a.Name, &a.PasswordHash, &verified, &a.TOTPSecret, &a.TOTPPending, &enabled,
		&a.TOTPLastStep, &created, &updated)
	a.EmailVerifiedAt, a.TOTPEnabledAt = fromNullMicros(verified), fromNullMicros(enabled)
	a.CreatedAt, a.UpdatedAt = fromMicros(created), fromMicros(updated)
	return a, err
}

func normAccount(a *thauth.Account) {
	a.CreatedAt, a.UpdatedAt = normTime(a.CreatedAt), normTime(a.UpdatedAt)
	normOptTime(&a.EmailVerifiedAt)
	normOptTime(&a.TOTPEnabledAt)
}

// CreateAccount inserts a (normalizing its times); EConflict if its id or email is taken.
func (d *data) CreateAccount(ctx context.Context, a *thauth.Account) error {
	normAccount(a)
	_, err := d.exec(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Email, a.Name, a.PasswordHash, nullMicros(a.EmailVerifiedAt), a.TOTPSecret, a.TOTPPending,
		nullMicros(a.TOTPEnabledAt), a.TOTPLastStep, micros(a.CreatedAt), micros(a.UpdatedAt))
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "an account with this email already exists")
	}
	return mapErr(err, "cannot create account")
}

func (d *data) getAccount(ctx context.Context, where string, arg any) (*thauth.Account, error) {
	st, err := d.stmt(ctx, `SELECT `+accountColumns+` FROM accounts WHERE `+where+` = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read account")
	}
	a, err := scanAccount(st.QueryRowContext(ctx, arg))
	if err != nil {
		return nil, notFound(err, "account")
	}
	return &a, nil
}

func (d *data) GetAccount(ctx context.Context, accountID string) (*thauth.Account, error) {
	return d.getAccount(ctx, "id", accountID)
}

// GetAccountByEmail finds the account whose stored email is exactly email.
func (d *data) GetAccountByEmail(ctx context.Context, email string) (*thauth.Account, error) {
	return d.getAccount(ctx, "email", email)
}

// UpdateAccount writes every field of a except ID, CreatedAt and TOTPLastStep; ENotFound if
// there is no such account, EConflict if the new email is taken.
func (d *data) UpdateAccount(ctx context.Context, a *thauth.Account) error {
	a.UpdatedAt = normTime(a.UpdatedAt)
	normOptTime(&a.EmailVerifiedAt)
	normOptTime(&a.TOTPEnabledAt)
	res, err := d.exec(ctx, `UPDATE accounts SET email = ?, name = ?, password_hash = ?, email_verified_at = ?,
		totp_secret = ?, totp_pending = ?, totp_enabled_at = ?, updated_at = ? WHERE id = ?`,
		a.Email, a.Name, a.PasswordHash, nullMicros(a.EmailVerifiedAt), a.TOTPSecret, a.TOTPPending,
		nullMicros(a.TOTPEnabledAt), micros(a.UpdatedAt), a.ID)
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "an account with this email already exists")
	}
	return affected(res, err, "account")
}

// accountExists returns ENotFound unless the account exists.
func (d *data) accountExists(ctx context.Context, accountID string) error {
	ok, err := d.exists(ctx, `SELECT 1 FROM accounts WHERE id = ?`, accountID)
	if err != nil {
		return mapErr(err, "cannot read account")
	}
	if !ok {
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return nil
}

// AdvanceTOTPStep moves the account's last TOTP step forward to step and reports whether it
// did; the compare and the write are one statement, so two sign-ins presenting the same code
// cannot both win. ENotFound for an unknown account.
func (d *data) AdvanceTOTPStep(ctx context.Context, accountID string, step int64) (bool, error) {
	res, err := d.exec(ctx, `UPDATE accounts SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`, step, accountID, step)
	if err != nil {
		return false, mapErr(err, "cannot record TOTP step")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, mapErr(err, "cannot record TOTP step")
	}
	if n == 0 {
		return false, d.accountExists(ctx, accountID)
	}
	return true, nil
}

// ReplaceRecoveryCodes replaces the account's recovery codes by hashes, unused; ENotFound
// for an unknown account, EConflict if hashes repeats a value.
func (d *data) ReplaceRecoveryCodes(ctx context.Context, accountID string, hashes [][]byte, at time.Time) error {
	if err := d.accountExists(ctx, accountID); err != nil {
		return err
	}
	if _, err := d.exec(ctx, `DELETE FROM recovery_codes WHERE account_id = ?`, accountID); err != nil {
		return mapErr(err, "cannot replace recovery codes")
	}
	ts := micros(at)
	for _, h := range hashes {
		_, err := d.exec(ctx, `INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES (?, ?, ?)`, accountID, h, ts)
		if isUniqueViolation(err) {
			return thauth.Errorf(thauth.EConflict, "duplicate recovery code")
		}
		if err != nil {
			return mapErr(err, "cannot replace recovery codes")
		}
	}
	return nil
}

// UseRecoveryCode marks the account's unused code hash used and reports whether there was
// one; an unknown account has none.
func (d *data) UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (bool, error) {
	res, err := d.exec(ctx, `UPDATE recovery_codes SET used_at = ? WHERE account_id = ? AND code_hash = ? AND used_at IS NULL`,
		micros(at), accountID, hash)
	if err != nil {
		return false, mapErr(err, "cannot use recovery code")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, mapErr(err, "cannot use recovery code")
	}
	return n == 1, nil
}

// CountRecoveryCodes returns the number of the account's unused codes (0 for an unknown
// account).
func (d *data) CountRecoveryCodes(ctx context.Context, accountID string) (int, error) {
	var n int
	err := d.queryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE account_id = ? AND used_at IS NULL`, []any{accountID}, &n)
	return n, mapErr(err, "cannot count recovery codes")
}

// ---- email tokens ----

const emailTokenColumns = `id, account_id, purpose, token_hash, email, created_at, expires_at, used_at`

func scanEmailToken(sc scanner) (thauth.EmailToken, error) {
	var t thauth.EmailToken
	var created, expires int64
	var used sql.NullInt64
	err := sc.Scan(&t.ID, &t.AccountID, &t.Purpose, &t.TokenHash, &t.Email, &created, &expires, &used)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMicros(created), fromMicros(expires), fromNullMicros(used)
	return t, err
}

// CreateEmailToken inserts t; EConflict if its id or hash is taken, ENotFound if its
// account does not exist.
func (d *data) CreateEmailToken(ctx context.Context, t *thauth.EmailToken) error {
	t.CreatedAt, t.ExpiresAt = normTime(t.CreatedAt), normTime(t.ExpiresAt)
	normOptTime(&t.UsedAt)
	_, err := d.exec(ctx, `INSERT INTO email_tokens (`+emailTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.AccountID, t.Purpose, t.TokenHash, t.Email, micros(t.CreatedAt), micros(t.ExpiresAt), nullMicros(t.UsedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "an email token with this id or hash already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return mapErr(err, "cannot create email token")
}

// ConsumeEmailToken marks the live token used in the same statement that finds it, so that
// of two concurrent consumers only one sees it unused.
func (d *data) ConsumeEmailToken(ctx context.Context, purpose string, hash []byte, now time.Time) (*thauth.EmailToken, error) {
	ts := micros(now)
	st, err := d.stmt(ctx, `UPDATE email_tokens SET used_at = ?
		WHERE purpose = ? AND token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING `+emailTokenColumns)
	if err != nil {
		return nil, mapErr(err, "cannot use email token")
	}
	t, err := scanEmailToken(st.QueryRowContext(ctx, ts, purpose, hash, ts))
	if err != nil {
		return nil, notFound(err, "email token")
	}
	return &t, nil
}

// DeleteEmailTokens deletes the account's unused tokens of purpose and returns how many.
func (d *data) DeleteEmailTokens(ctx context.Context, accountID, purpose string) (int, error) {
	res, err := d.exec(ctx, `DELETE FROM email_tokens WHERE account_id = ? AND purpose = ? AND used_at IS NULL`, accountID, purpose)
	if err != nil {
		return 0, mapErr(err, "cannot delete email tokens")
	}
	n, err := res.RowsAffected()
	return int(n), mapErr(err, "cannot delete email tokens")
}

// ---- sessions ----

const sessionColumns = `id, account_id, token_hash, mfa, pending_mfa, created_at, last_seen_at, expires_at, ip, user_agent, revoked_at`

func scanSession(sc scanner) (thauth.Session, error) {
	var s thauth.Session
	var mfa, pending, created, seen, expires int64
	var revoked sql.NullInt64
	err := sc.Scan(&s.ID, &s.AccountID, &s.TokenHash, &mfa, &pending, &created, &seen, &expires, &s.IP, &s.UserAgent, &revoked)
	s.MFA, s.PendingMFA = mfa != 0, pending != 0
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expires)
	s.RevokedAt = fromNullMicros(revoked)
	return s, err
}

// CreateSession inserts s; EConflict if its id or token hash is taken, ENotFound if its
// account does not exist.
func (d *data) CreateSession(ctx context.Context, s *thauth.Session) error {
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = normTime(s.CreatedAt), normTime(s.LastSeenAt), normTime(s.ExpiresAt)
	normOptTime(&s.RevokedAt)
	_, err := d.exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.AccountID, s.TokenHash, boolInt(s.MFA), boolInt(s.PendingMFA), micros(s.CreatedAt), micros(s.LastSeenAt),
		micros(s.ExpiresAt), s.IP, s.UserAgent, nullMicros(s.RevokedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "a session with this id or token already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return mapErr(err, "cannot create session")
}

func (d *data) GetSessionByHash(ctx context.Context, hash []byte) (*thauth.Session, error) {
	st, err := d.stmt(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read session")
	}
	s, err := scanSession(st.QueryRowContext(ctx, hash))
	if err != nil {
		return nil, notFound(err, "session")
	}
	return &s, nil
}

// ListSessions returns the account's live sessions, newest first (ties by id, descending).
func (d *data) ListSessions(ctx context.Context, accountID string, now time.Time) ([]thauth.Session, error) {
	rows, err := d.query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE account_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id DESC`, accountID, micros(now))
	return collect(rows, err, "cannot list sessions", scanSession)
}

// TouchSession moves the session's LastSeenAt forward to at; ENotFound if the session is
// not the account's.
func (d *data) TouchSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	res, err := d.exec(ctx, `UPDATE sessions SET last_seen_at = CASE WHEN last_seen_at < ? THEN ? ELSE last_seen_at END
		WHERE account_id = ? AND id = ?`, micros(at), micros(at), accountID, sessionID)
	return affected(res, err, "session")
}

func (d *data) RevokeSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	res, err := d.exec(ctx, `UPDATE sessions SET revoked_at = coalesce(revoked_at, ?) WHERE account_id = ? AND id = ?`,
		micros(at), accountID, sessionID)
	return affected(res, err, "session")
}

func (d *data) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	res, err := d.exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL AND id <> ?`,
		micros(at), accountID, exceptID)
	if err != nil {
		return 0, mapErr(err, "cannot revoke sessions")
	}
	n, err := res.RowsAffected()
	return int(n), mapErr(err, "cannot revoke sessions")
}

// ---- access tokens ----

// Scopes are stored like API keys' scopes: space-separated.
const accessTokenColumns = `id, account_id, name, lookup_id, hash, scopes, expires_at, created_at, last_used_at, revoked_at`

func scanAccessToken(sc scanner) (thauth.AccessToken, error) {
	var t thauth.AccessToken
	var scopes string
	var expires, created int64
	var used, revoked sql.NullInt64
	err := sc.Scan(&t.ID, &t.AccountID, &t.Name, &t.LookupID, &t.Hash, &scopes, &expires, &created, &used, &revoked)
	t.Scopes = strings.Fields(scopes)
	t.ExpiresAt, t.CreatedAt = fromMicros(expires), fromMicros(created)
	t.LastUsedAt, t.RevokedAt = fromNullMicros(used), fromNullMicros(revoked)
	return t, err
}

// CreateAccessToken inserts t; EConflict if its id or lookup id is taken, ENotFound if its
// account does not exist.
func (d *data) CreateAccessToken(ctx context.Context, t *thauth.AccessToken) error {
	t.ExpiresAt, t.CreatedAt = normTime(t.ExpiresAt), normTime(t.CreatedAt)
	normOptTime(&t.LastUsedAt)
	normOptTime(&t.RevokedAt)
	_, err := d.exec(ctx, `INSERT INTO access_tokens (`+accessTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.AccountID, t.Name, t.LookupID, t.Hash, strings.Join(t.Scopes, " "), micros(t.ExpiresAt), micros(t.CreatedAt),
		nullMicros(t.LastUsedAt), nullMicros(t.RevokedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "an access token with this id or lookup id already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return mapErr(err, "cannot create access token")
}

func (d *data) GetAccessTokenByLookup(ctx context.Context, lookupID string) (*thauth.AccessToken, error) {
	st, err := d.stmt(ctx, `SELECT `+accessTokenColumns+` FROM access_tokens WHERE lookup_id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read access token")
	}
	t, err := scanAccessToken(st.QueryRowContext(ctx, lookupID))
	if err != nil {
		return nil, notFound(err, "access token")
	}
	return &t, nil
}

// ListAccessTokens returns the account's tokens, newest first (ties by id, descending).
func (d *data) ListAccessTokens(ctx context.Context, accountID string) ([]thauth.AccessToken, error) {
	rows, err := d.query(ctx, `SELECT `+accessTokenColumns+` FROM access_tokens WHERE account_id = ? ORDER BY created_at DESC, id DESC`, accountID)
	return collect(rows, err, "cannot list access tokens", scanAccessToken)
}

func (d *data) RevokeAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	res, err := d.exec(ctx, `UPDATE access_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE account_id = ? AND id = ?`,
		micros(at), accountID, tokenID)
	return affected(res, err, "access token")
}

// TouchAccessToken moves the token's LastUsedAt forward to at; ENotFound if the token is
// not the account's.
func (d *data) TouchAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	ts := micros(at)
	res, err := d.exec(ctx, `UPDATE access_tokens SET last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END
		WHERE account_id = ? AND id = ?`, ts, ts, accountID, tokenID)
	return affected(res, err, "access token")
}
