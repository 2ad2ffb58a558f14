package sqlite

import (
	"context"
	"database/sql"

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
// creation time and id.
func (s *Store) ListDataKeys(ctx context.Context) ([]seal.DataKey, error) {
	return readValue(ctx, s, func(d *data) ([]seal.DataKey, error) {
		rows, err := d.query(ctx, `SELECT id, master_key_id, wrapped, created_at, retired_at
			FROM seal_data_keys ORDER BY created_at, id`)
		if err != nil {
			return nil, mapErr(err, "cannot list data keys")
		}
		defer rows.Close()
		out := []seal.DataKey{}
		for rows.Next() {
			var k seal.DataKey
			var created int64
			var retired sql.NullInt64
			if err := rows.Scan(&k.ID, &k.MasterKeyID, &k.Wrapped, &created, &retired); err != nil {
				return nil, mapErr(err, "cannot list data keys")
			}
			if k.Wrapped == nil {
				k.Wrapped = []byte{}
			}
			k.CreatedAt, k.RetiredAt = fromMicros(created), fromNullMicros(retired)
			out = append(out, k)
		}
		return out, mapErr(rows.Err(), "cannot list data keys")
	})
}

// InsertDataKey stores k (times truncated to microseconds); EConflict if its id exists.
func (s *Store) InsertDataKey(ctx context.Context, k seal.DataKey) error {
	return s.write(ctx, func(d *data) error {
		_, err := d.exec(ctx, `INSERT INTO seal_data_keys (id, master_key_id, wrapped, created_at, retired_at)
			VALUES (?, ?, ?, ?, ?)`, k.ID, k.MasterKeyID, nonNilBytes(k.Wrapped), micros(k.CreatedAt), nullMicros(k.RetiredAt))
		if isUniqueViolation(err) {
			return thauth.Errorf(thauth.EConflict, "data key %s already exists", k.ID)
		}
		return mapErr(err, "cannot store data key")
	})
}

// UpdateDataKey replaces the master key id, wrapped key and retirement time of the data key
// k.ID (its creation time never changes); ENotFound if there is no such key.
func (s *Store) UpdateDataKey(ctx context.Context, k seal.DataKey) error {
	return s.write(ctx, func(d *data) error {
		res, err := d.exec(ctx, `UPDATE seal_data_keys SET master_key_id = ?, wrapped = ?, retired_at = ? WHERE id = ?`,
			k.MasterKeyID, nonNilBytes(k.Wrapped), nullMicros(k.RetiredAt), k.ID)
		if err != nil {
			return mapErr(err, "cannot update data key")
		}
		n, err := res.RowsAffected()
		if err != nil {
			return mapErr(err, "cannot update data key")
		}
		if n == 0 {
			return thauth.Errorf(thauth.ENotFound, "data key %s not found", k.ID)
		}
		return nil
	})
}

// nonNilBytes returns b, or an empty slice for nil, which the driver would store as NULL.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
