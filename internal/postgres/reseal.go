package postgres

import (
	"context"

	"github.com/thauth/thauth"
)

var _ thauth.Resealer = (*Store)(nil)

// resealBatch is how many rows ResealColumn reads per query.
const resealBatch = 500

// ResealColumn implements thauth.Resealer. c must be one of thauth.SealedColumns: its names
// are trusted constants and go into the SQL text.
func (s *Store) ResealColumn(ctx context.Context, c thauth.SealedColumn, fn func(rowID, sealed string) (string, bool, error)) error {
	if !knownSealedColumn(c) {
		return thauth.Errorf(thauth.EInvalid, "%s.%s is not a sealed column", c.Table, c.Column)
	}
	sel := `SELECT ` + c.IDColumn + `, ` + c.Column + ` FROM ` + c.Table + ` WHERE ` + c.Column + ` <> '' AND ` +
		c.IDColumn + ` > $1 ORDER BY ` + c.IDColumn + ` LIMIT $2`
	upd := `UPDATE ` + c.Table + ` SET ` + c.Column + ` = $1 WHERE ` + c.IDColumn + ` = $2 AND ` + c.Column + ` = $3`
	after := ""
	for {
		type row struct{ id, val string }
		var rows []row
		rs, err := s.pool.Query(ctx, sel, after, resealBatch)
		if err != nil {
			return mapErr(err, "cannot read sealed values")
		}
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.id, &r.val); err != nil {
				rs.Close()
				return mapErr(err, "cannot read sealed values")
			}
			rows = append(rows, r)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return mapErr(err, "cannot read sealed values")
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
			if _, err := s.pool.Exec(ctx, upd, next, r.id, r.val); err != nil {
				return mapErr(err, "cannot write a re-sealed value")
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
