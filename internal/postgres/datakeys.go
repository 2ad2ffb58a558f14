package postgres

import (
	"context"

	"github.com/thauth/thauth"
	// The one sibling import of this package, against the house rule, on purpose: seal
	// defines the KeyStore contract and its row type, and imports nothing but the root
	// package, so the dependency stays one-way and acyclic. Copying DataKey into the root
	// package would need an adapter wherever a Sealer is built. Nothing of seal's behaviour
	// is used here: rows are stored as given and never interpreted.
	"github.com/thauth/thauth/internal/seal"
)

var _ seal.KeyStore = (*Store)(nil)

// ListDataKeys returns every data key of the installation, retired ones included, ordered by
// creation time and id. One statement.
func (s *Store) ListDataKeys(ctx context.Context) ([]seal.DataKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, master_key_id, wrapped, created_at, retired_at
		FROM seal_data_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, mapErr(err, "cannot list data keys")
	}
	defer rows.Close()
	out := []seal.DataKey{}
	for rows.Next() {
		var k seal.DataKey
		if err := rows.Scan(&k.ID, &k.MasterKeyID, &k.Wrapped, &k.CreatedAt, &k.RetiredAt); err != nil {
			return nil, mapErr(err, "cannot list data keys")
		}
		if k.Wrapped == nil {
			k.Wrapped = []byte{}
		}
		k.CreatedAt, k.RetiredAt = k.CreatedAt.UTC(), utcPtr(k.RetiredAt)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "cannot list data keys")
	}
	return out, nil
}

// InsertDataKey stores k (times truncated to microseconds); EConflict if its id exists.
func (s *Store) InsertDataKey(ctx context.Context, k seal.DataKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO seal_data_keys (id, master_key_id, wrapped, created_at, retired_at)
		VALUES ($1, $2, $3, $4, $5)`, k.ID, k.MasterKeyID, nonNilBytes(k.Wrapped), normTime(k.CreatedAt), nullTime(k.RetiredAt))
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "data key %s already exists", k.ID)
	}
	return mapErr(err, "cannot store data key")
}

// UpdateDataKey replaces the master key id, wrapped key and retirement time of the data key
// k.ID (its creation time never changes); ENotFound if there is no such key.
func (s *Store) UpdateDataKey(ctx context.Context, k seal.DataKey) error {
	tag, err := s.pool.Exec(ctx, `UPDATE seal_data_keys SET master_key_id = $1, wrapped = $2, retired_at = $3 WHERE id = $4`,
		k.MasterKeyID, nonNilBytes(k.Wrapped), nullTime(k.RetiredAt), k.ID)
	if err != nil {
		return mapErr(err, "cannot update data key")
	}
	if tag.RowsAffected() == 0 {
		return thauth.Errorf(thauth.ENotFound, "data key %s not found", k.ID)
	}
	return nil
}

// nonNilBytes returns b, or an empty slice for nil, which pgx would send as NULL.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
