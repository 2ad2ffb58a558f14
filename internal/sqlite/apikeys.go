package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

const apiKeyColumns = `id, project_id, name, lookup_id, hash, scopes, expires_at, created_at, last_used_at, revoked_at`

func scanAPIKey(sc interface{ Scan(...any) error }) (thauth.APIKey, error) {
	var k thauth.APIKey
	var scopes string
	var expires, used, revoked sql.NullInt64
	var created int64
	if err := sc.Scan(&k.ID, &k.ProjectID, &k.Name, &k.LookupID, &k.Hash, &scopes, &expires, &created, &used, &revoked); err != nil {
		return k, err
	}
	k.Scopes = strings.Fields(scopes)
	k.ExpiresAt, k.LastUsedAt, k.RevokedAt = fromNullMicros(expires), fromNullMicros(used), fromNullMicros(revoked)
	k.CreatedAt = fromMicros(created)
	return k, nil
}

// CreateAPIKey stores k in the project (setting k.ProjectID and normalizing its times).
// EConflict if the id or lookup id is taken; ENotFound if the project does not exist.
func (d *data) CreateAPIKey(ctx context.Context, projectID string, k *thauth.APIKey) error {
	k.ProjectID = projectID
	k.CreatedAt = normTime(k.CreatedAt)
	for _, t := range []**time.Time{&k.ExpiresAt, &k.LastUsedAt, &k.RevokedAt} {
		if *t != nil {
			n := normTime(**t)
			*t = &n
		}
	}
	_, err := d.exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, projectID, k.Name, k.LookupID, k.Hash, strings.Join(k.Scopes, " "),
		nullMicros(k.ExpiresAt), micros(k.CreatedAt), nullMicros(k.LastUsedAt), nullMicros(k.RevokedAt))
	switch {
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "an API key with this id or lookup id already exists")
	case isForeignKeyViolation(err):
		return thauth.Errorf(thauth.ENotFound, "project not found")
	}
	return mapErr(err, "cannot create API key")
}

// ListAPIKeys returns the project's keys, newest first (ties by id, descending). An unknown
// project has no keys.
func (d *data) ListAPIKeys(ctx context.Context, projectID string) ([]thauth.APIKey, error) {
	rows, err := d.query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE project_id = ? ORDER BY created_at DESC, id DESC`, projectID)
	if err != nil {
		return nil, mapErr(err, "cannot list API keys")
	}
	defer rows.Close()
	ks := []thauth.APIKey{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, mapErr(err, "cannot list API keys")
		}
		ks = append(ks, k)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "cannot list API keys")
	}
	return ks, nil
}

func (d *data) GetAPIKey(ctx context.Context, projectID, keyID string) (*thauth.APIKey, error) {
	st, err := d.stmt(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE project_id = ? AND id = ?`)
	if err != nil {
		return nil, mapErr(err, "cannot read API key")
	}
	k, err := scanAPIKey(st.QueryRowContext(ctx, projectID, keyID))
	if err != nil {
		return nil, notFound(err, "API key")
	}
	return &k, nil
}

// RevokeAPIKey sets the key's revocation time unless it is already revoked. ENotFound if the
// key does not exist in the project.
func (d *data) RevokeAPIKey(ctx context.Context, projectID, keyID string, at time.Time) error {
	res, err := d.exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE project_id = ? AND id = ?`,
		micros(at), projectID, keyID)
	if err != nil {
		return mapErr(err, "cannot revoke API key")
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return notFoundOr(err, "API key")
	}
	return nil
}

// TouchAPIKeys moves each key's last-used time forward to the given one; unknown ids (in
// this project) are ignored. Keys are updated in id order.
func (d *data) TouchAPIKeys(ctx context.Context, projectID string, used map[string]time.Time) error {
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ts := micros(used[id])
		if _, err := d.exec(ctx, `UPDATE api_keys SET last_used_at = ?
			WHERE project_id = ? AND id = ? AND (last_used_at IS NULL OR last_used_at < ?)`, ts, projectID, id, ts); err != nil {
			return mapErr(err, "cannot record API key use")
		}
	}
	return nil
}
