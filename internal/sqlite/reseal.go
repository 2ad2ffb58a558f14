package sqlite

import (
	"context"

	"github.com/thauth/thauth"
)

var _ thauth.Resealer = (*Store)(nil)

// resealBatch is how many rows ResealColumn reads per transaction.
const resealBatch = 500

// ResealColumn implements thauth.Resealer. c must be one of thauth.SealedColumns: its names
// are trusted constants and go into the SQL text.
func (s *Store) ResealColumn(ctx context.Context, c thauth.SealedColumn, fn func(rowID, sealed string) (string, bool, error)) error {
	if !knownSealedColumn(c) {
		return thauth.Errorf(thauth.EInvalid, "%s.%s is not a sealed column", c.Table, c.Column)
	}
	sel := `SELECT ` + c.IDColumn + `, ` + c.Column + ` FROM ` + c.Table + ` WHERE ` + c.Column + ` <> '' AND ` +
		c.IDColumn + ` > ? ORDER BY ` + c.IDColumn + ` LIMIT ?`
	upd := `UPDATE ` + c.Table + ` SET ` + c.Column + ` = ? WHERE ` + c.IDColumn + ` = ? AND ` + c.Column + ` = ?`
	after := ""
	for {
		type row struct{ id, val string }
		var rows []row
		err := s.read(ctx, func(d *data) error {
			rs, err := d.query(ctx, sel, after, resealBatch)
			if err != nil {
				return mapErr(err, "cannot read sealed values")
			}
			defer rs.Close()
			for rs.Next() {
				var r row
				if err := rs.Scan(&r.id, &r.val); err != nil {
					return mapErr(err, "cannot read sealed values")
				}
				rows = append(rows, r)
			}
			return mapErr(rs.Err(), "cannot read sealed values")
		})
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		for _, r := range rows {
			next, changed, err := fn(r.id, r.val)
			if err != nil {
				return err
			}
			if !changed {
				continue
			}
			if err := s.write(ctx, func(d *data) error {
				_, err := d.exec(ctx, upd, next, r.id, r.val)
				return mapErr(err, "cannot write a re-sealed value")
			}); err != nil {
				return err
			}
		}
		after = rows[len(rows)-1].id
	}
}

func knownSealedColumn(c thauth.SealedColumn) bool {
	for _, k := range thauth.SealedColumns {
		if k == c {
			return true
		}
	}
	return false
}
