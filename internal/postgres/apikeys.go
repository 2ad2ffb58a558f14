package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/thauth/thauth"
)

const apiKeyColumns = `id, project_id, name, lookup_id, hash, scopes, expires_at, created_at, last_used_at, revoked_at`

func scanAPIKey(sc interface{ Scan(...any) error }) (thauth.APIKey, error) {
	var k thauth.APIKey
	var scopes string
	if err := sc.Scan(&k.ID, &k.ProjectID, &k.Name, &k.LookupID, &k.Hash, &scopes, &k.ExpiresAt, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt); err != nil {
		return k, err
	}
	k.Scopes = strings.Fields(scopes)
	k.ExpiresAt, k.LastUsedAt, k.RevokedAt = utcPtr(k.ExpiresAt), utcPtr(k.LastUsedAt), utcPtr(k.RevokedAt)
	k.CreatedAt = k.CreatedAt.UTC()
	return k, nil
}

// CreateAPIKey stores k in the project (setting k.ProjectID and normalizing its times).
// EConflict if the id or lookup id is taken; ENotFound if the project does not exist.
func (d *data) CreateAPIKey(ctx context.Context, projectID string, k *thauth.APIKey) error {
	if err := d.enter(ctx, projectID); err != nil {
		return err
	}
	k.ProjectID = projectID
	k.CreatedAt = normTime(k.CreatedAt)
	for _, t := range []**time.Time{&k.ExpiresAt, &k.LastUsedAt, &k.RevokedAt} {
		if *t != nil {
			n := normTime(**t)
			*t = &n
		}
	}
	hash := k.Hash
	if hash == nil {
		hash = []byte{} // NOT NULL
	}
	_, err := d.q.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		k.ID, projectID, k.Name, k.LookupID, hash, strings.Join(k.Scopes, " "),
		nullTime(k.ExpiresAt), k.CreatedAt, nullTime(k.LastUsedAt), nullTime(k.RevokedAt))
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
	if err := d.enter(ctx, projectID); err != nil {
		return nil, err
	}
	rows, err := d.q.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE project_id = $1 ORDER BY created_at DESC, id DESC`, projectID)
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
	if err := d.enter(ctx, projectID); err != nil {
		return nil, err
	}
	k, err := scanAPIKey(d.q.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE project_id = $1 AND id = $2`, projectID, keyID))
	if err != nil {
		return nil, notFound(err, "API key")
	}
	return &k, nil
}

// RevokeAPIKey sets the key's revocation time unless it is already revoked. ENotFound if the
// key does not exist in the project.
func (d *data) RevokeAPIKey(ctx context.Context, projectID, keyID string, at time.Time) error {
	if err := d.enter(ctx, projectID); err != nil {
		return err
	}
	tag, err := d.q.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE project_id = $2 AND id = $3`,
		normTime(at), projectID, keyID)
	if err != nil {
		return mapErr(err, "cannot revoke API key")
	}
	if tag.RowsAffected() == 0 {
		return thauth.Errorf(thauth.ENotFound, "API key not found")
	}
	return nil
}

// TouchAPIKeys moves each key's last-used time forward to the given one, in one statement;
// unknown ids (in this project) are ignored.
func (d *data) TouchAPIKeys(ctx context.Context, projectID string, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	if err := d.enter(ctx, projectID); err != nil {
		return err
	}
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	slices.Sort(ids) // rows are locked in id order
	times := make([]pgtype.Timestamptz, len(ids))
	for i, id := range ids {
		times[i] = pgtype.Timestamptz{Time: normTime(used[id]), Valid: true}
	}
	_, err := d.q.Exec(ctx, `UPDATE api_keys k SET last_used_at = u.at
		FROM unnest($2::text[], $3::timestamptz[]) AS u (id, at)
		WHERE k.project_id = $1 AND k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`,
		projectID, ids, times)
	return mapErr(err, "cannot record API key use")
}
