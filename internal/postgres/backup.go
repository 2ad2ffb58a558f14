package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/thauth/thauth"
)

var (
	_ thauth.TableExporter = (*Store)(nil)
	_ thauth.TableImporter = (*Store)(nil)
)

// importBatch is how many rows ImportTables sends in one COPY.
const importBatch = 1000

// importLockTimeout bounds how long ImportTables waits for the tables' locks.
const importLockTimeout = 10 * time.Second

// ExportTables calls fn for every row of every table of thauth.BackupTables, in that order,
// each table's rows in its OrderBy order (see thauth.TableExporter). All tables are read in
// one REPEATABLE READ, READ ONLY transaction, so the rows are one committed snapshot of the
// database however long fn takes, and writers on every node go on meanwhile. The statement
// and idle-in-transaction timeouts are lifted for this transaction only: a large table
// streamed to a slow fn is not a stuck statement. Text columns sort in byte order (COLLATE
// "C"), as in SQLite, so both engines export the same data identically.
func (s *Store) ExportTables(ctx context.Context, fn func(table string, row []any) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return mapErr(err, "cannot begin transaction")
	}
	defer rollback(ctx, tx) // read only: nothing to keep
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		return mapErr(err, "cannot prepare export")
	}
	for _, t := range thauth.BackupTables() {
		if err := exportTable(ctx, tx, t, fn); err != nil {
			return err
		}
	}
	return nil
}

func exportTable(ctx context.Context, tx pgx.Tx, t thauth.BackupTable, fn func(table string, row []any) error) error {
	order := make([]string, len(t.OrderBy))
	for i, c := range t.OrderBy {
		order[i] = c + " NULLS FIRST"
	}
	rows, err := tx.Query(ctx, `SELECT `+strings.Join(t.ColumnNames(), ", ")+` FROM `+t.Name+
		` ORDER BY `+strings.Join(order, ", "))
	if err != nil {
		return mapErr(err, "cannot read table "+t.Name)
	}
	defer rows.Close()
	dest := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		switch c.Type {
		case thauth.ColumnText:
			dest[i] = new(pgtype.Text)
		case thauth.ColumnInt:
			dest[i] = new(pgtype.Int8)
		case thauth.ColumnTime:
			dest[i] = new(pgtype.Timestamptz)
		case thauth.ColumnBytes:
			dest[i] = new([]byte)
		default:
			return thauth.Internal(nil, "table %s: column %s has unknown type %q", t.Name, c.Name, c.Type)
		}
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return mapErr(err, "cannot read table "+t.Name)
		}
		row := make([]any, len(dest))
		for i, c := range t.Columns {
			switch v := dest[i].(type) {
			case *pgtype.Text:
				if v.Valid {
					row[i] = v.String
				}
			case *pgtype.Int8:
				if v.Valid {
					row[i] = v.Int64
				}
			case *pgtype.Timestamptz:
				if v.Valid && v.InfinityModifier != pgtype.Finite {
					return thauth.Internal(nil, "table %s: column %s holds an infinite time, which a backup cannot hold", t.Name, c.Name)
				}
				if v.Valid {
					row[i] = normTime(v.Time)
				}
			case *[]byte:
				row[i] = nonNilBytes(*v) // bytes columns are NOT NULL
				*v = nil
			}
		}
		if err := fn(t.Name, row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return mapErr(err, "cannot read table "+t.Name)
	}
	return nil
}

// ImportTables fills the empty database in one transaction (see thauth.TableImporter). It
// first locks every table in EXCLUSIVE mode (readers go on, writers on every node wait until
// the commit; EUnavailable if the locks are not granted within 10 seconds), so no other
// writer can slip rows in between the emptiness check and the commit. Rows go in with COPY,
// in batches; the statement and idle-in-transaction timeouts are lifted for this transaction.
func (s *Store) ImportTables(ctx context.Context, fill func(insert func(table string, row []any) error) error) error {
	all := thauth.BackupTables()
	tables := map[string]thauth.BackupTable{}
	var names []string
	for _, t := range all {
		tables[t.Name] = t
		names = append(names, t.Name)
	}
	return s.write(ctx, func(d *data) error {
		tx := d.q.(pgx.Tx)
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0;
			SET LOCAL lock_timeout = %d; LOCK TABLE %s IN EXCLUSIVE MODE`, importLockTimeout.Milliseconds(), strings.Join(names, ", "))); err != nil {
			if pgCode(err) == "55P03" { // lock_not_available
				return &thauth.Error{Code: thauth.EUnavailable, Message: "cannot restore: the database's tables are locked by another session", Err: err}
			}
			return mapErr(err, "cannot prepare restore")
		}
		var full []string
		for _, t := range all {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.Name+`)`).Scan(&ok); err != nil {
				return mapErr(err, "cannot read table "+t.Name)
			}
			if ok {
				full = append(full, t.Name)
			}
		}
		if len(full) > 0 {
			return thauth.Errorf(thauth.EConflict,
				"cannot restore into a database that is not empty (rows in %s): restore into a new, migrated database, before any server has started on it",
				strings.Join(full, ", "))
		}

		var (
			cur     thauth.BackupTable
			batch   [][]any
			counted int // rows of cur sent before batch
			done    bool
		)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{cur.Name}, cur.ColumnNames(), pgx.CopyFromRows(batch))
			if err != nil {
				return importErr(err, cur, counted)
			}
			counted += len(batch)
			batch = batch[:0]
			return nil
		}
		insert := func(table string, row []any) error {
			if done {
				return thauth.Internal(nil, "insert called after the import ended")
			}
			t, ok := tables[table]
			if !ok {
				return thauth.Errorf(thauth.EInvalid, "cannot restore unknown table %q", table)
			}
			if err := t.CheckRow(row); err != nil {
				return err
			}
			if t.Name != cur.Name {
				if err := flush(); err != nil {
					return err
				}
				cur, counted = t, 0
			}
			batch = append(batch, row)
			if len(batch) >= importBatch {
				return flush()
			}
			return nil
		}
		err := fill(insert)
		if err == nil {
			err = flush()
		}
		done = true
		return err
	})
}

// importErr maps the error of a COPY of rows after the first n of t: a row that breaks a
// key or a reference is a bad backup (EInvalid), anything else as usual.
func importErr(err error, t thauth.BackupTable, n int) error {
	what := ""
	switch code := pgCode(err); {
	case code == codeUniqueViolation:
		what = "a row duplicates the key of another row"
	case code == codeForeignKeyViolation:
		what = "a row refers to a row that does not exist"
	case code == "23502", code == "23514", code == "22P02", code == "22021", code == "22003":
		// not null, check, invalid text representation, bad encoding, out of range
		what = "a row does not fit the table"
	default:
		return mapErr(err, "cannot restore table "+t.Name)
	}
	return &thauth.Error{Code: thauth.EInvalid, Message: fmt.Sprintf("cannot restore table %s (after row %d): %s", t.Name, n, what), Err: err}
}
