package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/thauth/thauth"
)

// Accounts and the credentials that hang off them: recovery codes, email tokens, sessions and
// access tokens. Every credential row is addressed through its account, so the id of another
// account's row is ENotFound and left alone. Booleans are INTEGER 0/1 columns (as in
// SQLite), and every check-and-set (a TOTP step, a recovery code, an email token) is one
// statement, so that of two concurrent callers exactly one wins.

// rowScanner is a pgx.Row or pgx.Rows.
type rowScanner interface{ Scan(...any) error }

// collect scans every row of a query with scan into a non-nil slice.
func collect[T any](rows pgx.Rows, err error, msg string, scan func(rowScanner) (T, error)) ([]T, error) {
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

// affected returns ENotFound "<what> not found" when the statement changed no row.
func affected(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return mapErr(err, "cannot write "+what)
	}
	if tag.RowsAffected() == 0 {
		return thauth.Errorf(thauth.ENotFound, "%s not found", what)
	}
	return nil
}

// normOptTime normalizes an optional time in place (see normTime).
func normOptTime(t **time.Time) {
	if *t != nil {
		n := normTime(**t)
		*t = &n
	}
}

// boolInt is a boolean as stored: INTEGER 0 or 1.
func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// ---- accounts ----

const accountColumns = `id, email, name, password_hash, email_verified_at, totp_secret, totp_pending, totp_enabled_at,
	totp_last_step, created_at, updated_at`

func scanAccount(sc rowScanner) (thauth.Account, error) {
	var a thauth.Account
	err := sc.Scan(&a.ID, &a.Email, &a.Name, &a.PasswordHash, &a.EmailVerifiedAt, &a.TOTPSecret, &a.TOTPPending,
		&a.TOTPEnabledAt, &a.TOTPLastStep, &a.CreatedAt, &a.UpdatedAt)
	a.EmailVerifiedAt, a.TOTPEnabledAt = utcPtr(a.EmailVerifiedAt), utcPtr(a.TOTPEnabledAt)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, err
}

// CreateAccount inserts a (normalizing its times); EConflict if its id or email is taken.
func (d *data) CreateAccount(ctx context.Context, a *thauth.Account) error {
	a.CreatedAt, a.UpdatedAt = normTime(a.CreatedAt), normTime(a.UpdatedAt)
	normOptTime(&a.EmailVerifiedAt)
	normOptTime(&a.TOTPEnabledAt)
	_, err := d.q.Exec(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		a.ID, a.Email, a.Name, a.PasswordHash, nullTime(a.EmailVerifiedAt), a.TOTPSecret, a.TOTPPending,
		nullTime(a.TOTPEnabledAt), a.TOTPLastStep, a.CreatedAt, a.UpdatedAt)
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "an account with this email already exists")
	}
	return mapErr(err, "cannot create account")
}

func (d *data) GetAccount(ctx context.Context, accountID string) (*thauth.Account, error) {
	a, err := scanAccount(d.q.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = $1`, accountID))
	if err != nil {
		return nil, notFound(err, "account")
	}
	return &a, nil
}

// GetAccountByEmail finds the account whose stored email is exactly email (byte for byte:
// the caller normalizes).
func (d *data) GetAccountByEmail(ctx context.Context, email string) (*thauth.Account, error) {
	a, err := scanAccount(d.q.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE email = $1`, email))
	if err != nil {
		return nil, notFound(err, "account")
	}
	return &a, nil
}

// UpdateAccount writes every field of a except ID, CreatedAt and TOTPLastStep; ENotFound if
// there is no such account, EConflict if the new email is taken.
func (d *data) UpdateAccount(ctx context.Context, a *thauth.Account) error {
	a.UpdatedAt = normTime(a.UpdatedAt)
	normOptTime(&a.EmailVerifiedAt)
	normOptTime(&a.TOTPEnabledAt)
	tag, err := d.q.Exec(ctx, `UPDATE accounts SET email = $1, name = $2, password_hash = $3, email_verified_at = $4,
		totp_secret = $5, totp_pending = $6, totp_enabled_at = $7, updated_at = $8 WHERE id = $9`,
		a.Email, a.Name, a.PasswordHash, nullTime(a.EmailVerifiedAt), a.TOTPSecret, a.TOTPPending,
		nullTime(a.TOTPEnabledAt), a.UpdatedAt, a.ID)
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "an account with this email already exists")
	}
	return affected(tag, err, "account")
}

// AdvanceTOTPStep moves the account's last TOTP step forward to step and reports whether it
// did. The compare and the write are one statement: a concurrent update of the row makes
// PostgreSQL re-check totp_last_step < step on the new row version, so two sign-ins
// presenting the same code cannot both win. ENotFound for an unknown account.
func (d *data) AdvanceTOTPStep(ctx context.Context, accountID string, step int64) (bool, error) {
	var advanced, exists bool
	err := d.q.QueryRow(ctx, `WITH u AS (
			UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2 RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM accounts WHERE id = $1)`,
		accountID, step).Scan(&advanced, &exists)
	switch {
	case err != nil:
		return false, mapErr(err, "cannot record TOTP step")
	case !exists:
		return false, thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return advanced, nil
}

// ReplaceRecoveryCodes replaces the account's recovery codes by hashes, unused; ENotFound
// for an unknown account, EConflict if hashes repeats a value. Several statements: the Store
// runs it in a transaction.
func (d *data) ReplaceRecoveryCodes(ctx context.Context, accountID string, hashes [][]byte, at time.Time) error {
	// Locking the account row also serializes two concurrent replacements of its codes.
	var one int
	err := d.q.QueryRow(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, accountID).Scan(&one)
	if err != nil {
		return notFound(err, "account")
	}
	if _, err := d.q.Exec(ctx, `DELETE FROM recovery_codes WHERE account_id = $1`, accountID); err != nil {
		return mapErr(err, "cannot replace recovery codes")
	}
	if len(hashes) == 0 {
		return nil
	}
	hs := make([][]byte, len(hashes))
	for i, h := range hashes {
		hs[i] = nonNilBytes(h)
	}
	_, err = d.q.Exec(ctx, `INSERT INTO recovery_codes (account_id, code_hash, created_at)
		SELECT $1, h, $3 FROM unnest($2::bytea[]) AS h`, accountID, hs, normTime(at))
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "duplicate recovery code")
	}
	return mapErr(err, "cannot replace recovery codes")
}

// UseRecoveryCode marks the account's unused code hash used and reports whether there was
// one; an unknown account has none.
func (d *data) UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (bool, error) {
	tag, err := d.q.Exec(ctx, `UPDATE recovery_codes SET used_at = $1 WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL`,
		normTime(at), accountID, nonNilBytes(hash))
	if err != nil {
		return false, mapErr(err, "cannot use recovery code")
	}
	return tag.RowsAffected() == 1, nil
}

// CountRecoveryCodes returns the number of the account's unused codes (0 for an unknown
// account).
func (d *data) CountRecoveryCodes(ctx context.Context, accountID string) (int, error) {
	var n int
	err := d.q.QueryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL`, accountID).Scan(&n)
	return n, mapErr(err, "cannot count recovery codes")
}

// ---- email tokens ----

const emailTokenColumns = `id, account_id, purpose, token_hash, email, created_at, expires_at, used_at`

func scanEmailToken(sc rowScanner) (thauth.EmailToken, error) {
	var t thauth.EmailToken
	err := sc.Scan(&t.ID, &t.AccountID, &t.Purpose, &t.TokenHash, &t.Email, &t.CreatedAt, &t.ExpiresAt, &t.UsedAt)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC(), utcPtr(t.UsedAt)
	return t, err
}

// CreateEmailToken inserts t; EConflict if its id or hash is taken, ENotFound if its
// account does not exist.
func (d *data) CreateEmailToken(ctx context.Context, t *thauth.EmailToken) error {
	t.CreatedAt, t.ExpiresAt = normTime(t.CreatedAt), normTime(t.ExpiresAt)
	normOptTime(&t.UsedAt)
	_, err := d.q.Exec(ctx, `INSERT INTO email_tokens (`+emailTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.AccountID, t.Purpose, nonNilBytes(t.TokenHash), t.Email, t.CreatedAt, t.ExpiresAt, nullTime(t.UsedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "an email token with this id or hash already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return mapErr(err, "cannot create email token")
}

// ConsumeEmailToken marks the live token used in the statement that finds it: a second,
// concurrent consumer waits for the first one's row lock and then sees used_at set, so only
// one of them gets the token.
func (d *data) ConsumeEmailToken(ctx context.Context, purpose string, hash []byte, now time.Time) (*thauth.EmailToken, error) {
	t, err := scanEmailToken(d.q.QueryRow(ctx, `UPDATE email_tokens SET used_at = $1
		WHERE purpose = $2 AND token_hash = $3 AND used_at IS NULL AND expires_at > $1
		RETURNING `+emailTokenColumns, normTime(now), purpose, nonNilBytes(hash)))
	if err != nil {
		return nil, notFound(err, "email token")
	}
	return &t, nil
}

// DeleteEmailTokens deletes the account's unused tokens of purpose and returns how many.
func (d *data) DeleteEmailTokens(ctx context.Context, accountID, purpose string) (int, error) {
	tag, err := d.q.Exec(ctx, `DELETE FROM email_tokens WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL`, accountID, purpose)
	if err != nil {
		return 0, mapErr(err, "cannot delete email tokens")
	}
	return int(tag.RowsAffected()), nil
}

// ---- sessions ----

const sessionColumns = `id, account_id, token_hash, mfa, pending_mfa, created_at, last_seen_at, expires_at, ip, user_agent, revoked_at`

func scanSession(sc rowScanner) (thauth.Session, error) {
	var s thauth.Session
	var mfa, pending int32
	err := sc.Scan(&s.ID, &s.AccountID, &s.TokenHash, &mfa, &pending, &s.CreatedAt, &s.LastSeenAt, &s.ExpiresAt,
		&s.IP, &s.UserAgent, &s.RevokedAt)
	s.MFA, s.PendingMFA = mfa != 0, pending != 0
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = s.CreatedAt.UTC(), s.LastSeenAt.UTC(), s.ExpiresAt.UTC()
	s.RevokedAt = utcPtr(s.RevokedAt)
	return s, err
}

// CreateSession inserts s; EConflict if its id or token hash is taken, ENotFound if its
// account does not exist.
func (d *data) CreateSession(ctx context.Context, s *thauth.Session) error {
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = normTime(s.CreatedAt), normTime(s.LastSeenAt), normTime(s.ExpiresAt)
	normOptTime(&s.RevokedAt)
	_, err := d.q.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		s.ID, s.AccountID, nonNilBytes(s.TokenHash), boolInt(s.MFA), boolInt(s.PendingMFA), s.CreatedAt, s.LastSeenAt,
		s.ExpiresAt, s.IP, s.UserAgent, nullTime(s.RevokedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "a session with this id or token already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return mapErr(err, "cannot create session")
}

func (d *data) GetSessionByHash(ctx context.Context, hash []byte) (*thauth.Session, error) {
	s, err := scanSession(d.q.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = $1`, nonNilBytes(hash)))
	if err != nil {
		return nil, notFound(err, "session")
	}
	return &s, nil
}

// ListSessions returns the account's live sessions, newest first (ties by id, descending).
func (d *data) ListSessions(ctx context.Context, accountID string, now time.Time) ([]thauth.Session, error) {
	rows, err := d.q.Query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id DESC`,
		accountID, normTime(now))
	return collect(rows, err, "cannot list sessions", scanSession)
}

// TouchSession moves the session's LastSeenAt forward to at; ENotFound if the session is
// not the account's.
func (d *data) TouchSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	tag, err := d.q.Exec(ctx, `UPDATE sessions SET last_seen_at = greatest(last_seen_at, $1) WHERE account_id = $2 AND id = $3`,
		normTime(at), accountID, sessionID)
	return affected(tag, err, "session")
}

// RevokeSession sets the session's RevokedAt unless it is set already; ENotFound if the
// session is not the account's.
func (d *data) RevokeSession(ctx context.Context, accountID, sessionID string, at time.Time) error {
	tag, err := d.q.Exec(ctx, `UPDATE sessions SET revoked_at = coalesce(revoked_at, $1) WHERE account_id = $2 AND id = $3`,
		normTime(at), accountID, sessionID)
	return affected(tag, err, "session")
}

// RevokeSessions revokes the account's unrevoked sessions but exceptID and returns how many.
func (d *data) RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error) {
	tag, err := d.q.Exec(ctx, `UPDATE sessions SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL AND id <> $3`,
		normTime(at), accountID, exceptID)
	if err != nil {
		return 0, mapErr(err, "cannot revoke sessions")
	}
	return int(tag.RowsAffected()), nil
}

// ---- access tokens ----

// Scopes are stored like API keys' scopes: space-separated in one text column.
const accessTokenColumns = `id, account_id, name, lookup_id, hash, scopes, expires_at, created_at, last_used_at, revoked_at`

func scanAccessToken(sc rowScanner) (thauth.AccessToken, error) {
	var t thauth.AccessToken
	var scopes string
	err := sc.Scan(&t.ID, &t.AccountID, &t.Name, &t.LookupID, &t.Hash, &scopes, &t.ExpiresAt, &t.CreatedAt,
		&t.LastUsedAt, &t.RevokedAt)
	t.Scopes = strings.Fields(scopes)
	t.ExpiresAt, t.CreatedAt = t.ExpiresAt.UTC(), t.CreatedAt.UTC()
	t.LastUsedAt, t.RevokedAt = utcPtr(t.LastUsedAt), utcPtr(t.RevokedAt)
	return t, err
}

// CreateAccessToken inserts t; EConflict if its id or lookup id is taken, ENotFound if its
// account does not exist.
func (d *data) CreateAccessToken(ctx context.Context, t *thauth.AccessToken) error {
	t.ExpiresAt, t.CreatedAt = normTime(t.ExpiresAt), normTime(t.CreatedAt)
	normOptTime(&t.LastUsedAt)
	normOptTime(&t.RevokedAt)
	_, err := d.q.Exec(ctx, `INSERT INTO access_tokens (`+accessTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		t.ID, t.AccountID, t.Name, t.LookupID, nonNilBytes(t.Hash), strings.Join(t.Scopes, " "), t.ExpiresAt, t.CreatedAt,
		nullTime(t.LastUsedAt), nullTime(t.RevokedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "an access token with this id or lookup id already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "account not found")
	}
	return mapErr(err, "cannot create access token")
}

func (d *data) GetAccessTokenByLookup(ctx context.Context, lookupID string) (*thauth.AccessToken, error) {
	t, err := scanAccessToken(d.q.QueryRow(ctx, `SELECT `+accessTokenColumns+` FROM access_tokens WHERE lookup_id = $1`, lookupID))
	if err != nil {
		return nil, notFound(err, "access token")
	}
	return &t, nil
}

// ListAccessTokens returns the account's tokens, newest first (ties by id, descending).
func (d *data) ListAccessTokens(ctx context.Context, accountID string) ([]thauth.AccessToken, error) {
	rows, err := d.q.Query(ctx, `SELECT `+accessTokenColumns+` FROM access_tokens WHERE account_id = $1
		ORDER BY created_at DESC, id DESC`, accountID)
	return collect(rows, err, "cannot list access tokens", scanAccessToken)
}

// RevokeAccessToken sets the token's RevokedAt unless it is set already; ENotFound if the
// token is not the account's.
func (d *data) RevokeAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	tag, err := d.q.Exec(ctx, `UPDATE access_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE account_id = $2 AND id = $3`,
		normTime(at), accountID, tokenID)
	return affected(tag, err, "access token")
}

// TouchAccessToken moves the token's LastUsedAt forward to at; ENotFound if the token is
// not the account's.
func (d *data) TouchAccessToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	// greatest ignores NULL: a first use sets the time.
	tag, err := d.q.Exec(ctx, `UPDATE access_tokens SET last_used_at = greatest(last_used_at, $1) WHERE account_id = $2 AND id = $3`,
		normTime(at), accountID, tokenID)
	return affected(tag, err, "access token")
}
