package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/thauth/thauth"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	_ thauth.TableExporter = (*Store)(nil)
	_ thauth.TableImporter = (*Store)(nil)
)

// ExportTables calls fn for every row of every table of thauth.BackupTables, in that order,
// each table's rows in its OrderBy order (see thauth.TableExporter). All tables are read in
// one read transaction on one connection of the read pool, so the rows are one committed
// snapshot of the database however long fn takes; writers, of this process and others, go
// on meanwhile (WAL), though the WAL cannot be checkpointed past the snapshot until the
// export ends. Times are converted from unix microseconds to time.Time in UTC.
func (s *Store) ExportTables(ctx context.Context, fn func(table string, row []any) error) error {
	return s.read(ctx, func(d *data) error {
		for _, t := range thauth.BackupTables() {
			if err := exportTable(ctx, d.tx, t, fn); err != nil {
				return err
			}
		}
		return nil
	})
}

func exportTable(ctx context.Context, tx *sql.Tx, t thauth.BackupTable, fn func(table string, row []any) error) error {
	order := make([]string, len(t.OrderBy))
	for i, c := range t.OrderBy {
		order[i] = c + " NULLS FIRST"
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(t.ColumnNames(), ", ")+` FROM `+t.Name+
		` ORDER BY `+strings.Join(order, ", "))
	if err != nil {
		return mapErr(err, "cannot read table "+t.Name)
	}
	defer rows.Close()
	dest := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		switch c.Type {
		case thauth.ColumnText:
			dest[i] = new(sql.NullString)
		case thauth.ColumnInt, thauth.ColumnTime:
			dest[i] = new(sql.NullInt64)
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
			case *sql.NullString:
				if v.Valid {
					row[i] = v.String
				}
			case *sql.NullInt64:
				if v.Valid && c.Type == thauth.ColumnTime {
					row[i] = fromMicros(v.Int64)
				} else if v.Valid {
					row[i] = v.Int64
				}
			case *[]byte:
				row[i] = nonNilBytes(*v) // bytes columns are NOT NULL; the driver may give nil for an empty blob
				*v = nil
			}
		}
		if err := fn(t.Name, row); err != nil {
			return err
		}
	}
	return mapErr(rows.Err(), "cannot read table "+t.Name)
}

// ImportTables fills the empty database in one write transaction (see
// thauth.TableImporter): it holds the database's write lock throughout, so no other writer,
// of this process or another, can slip rows in between the emptiness check and the commit.
// Foreign keys are checked as rows arrive, so parents must come first.
func (s *Store) ImportTables(ctx context.Context, fill func(insert func(table string, row []any) error) error) error {
	tables := map[string]thauth.BackupTable{}
	for _, t := range thauth.BackupTables() {
		tables[t.Name] = t
	}
	return s.write(ctx, func(d *data) error {
		if err := checkEmpty(ctx, d); err != nil {
			return err
		}
		done := false
		defer func() { done = true }()
		counts := map[string]int{}
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
			counts[table]++
			args := make([]any, len(row))
			for i, v := range row {
				if tm, ok := v.(time.Time); ok {
					args[i] = micros(tm)
				} else {
					args[i] = v
				}
			}
			_, err := d.exec(ctx, insertStatement(t), args...)
			return importErr(err, t, counts[table])
		}
		return fill(insert)
	})
}

func insertStatement(t thauth.BackupTable) string {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(t.Columns)), ", ")
	return `INSERT INTO ` + t.Name + ` (` + strings.Join(t.ColumnNames(), ", ") + `) VALUES (` + marks + `)`
}

// importErr maps the error of inserting the n-th row of t: a row that breaks a key or a
// reference is a bad backup (EInvalid), anything else as usual.
func importErr(err error, t thauth.BackupTable, n int) error {
	switch {
	case err == nil:
		return nil
	case isUniqueViolation(err):
		return &thauth.Error{Code: thauth.EInvalid, Message: fmt.Sprintf("cannot restore row %d of table %s: it duplicates the key of another row", n, t.Name), Err: err}
	case isForeignKeyViolation(err):
		return &thauth.Error{Code: thauth.EInvalid, Message: fmt.Sprintf("cannot restore row %d of table %s: it refers to a row that does not exist", n, t.Name), Err: err}
	case sqliteCode(err)&0xff == sqlite3.SQLITE_CONSTRAINT: // NOT NULL, CHECK
		return &thauth.Error{Code: thauth.EInvalid, Message: fmt.Sprintf("cannot restore row %d of table %s: it violates a constraint of the table", n, t.Name), Err: err}
	}
	return mapErr(err, "cannot restore table "+t.Name)
}

// checkEmpty returns EConflict unless every table of the backup is empty.
func checkEmpty(ctx context.Context, d *data) error {
	var full []string
	for _, t := range thauth.BackupTables() {
		ok, err := d.exists(ctx, `SELECT 1 FROM `+t.Name+` LIMIT 1`)
		if err != nil {
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
	return nil
}
