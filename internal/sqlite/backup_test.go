package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/seal/sealtest"
	"github.com/thauth/thauth/internal/storetest"
)

func TestKeyStore(t *testing.T) {
	sealtest.RunKeyStore(t, func(t *testing.T) seal.KeyStore { return open(t, t.TempDir()) })
}

func TestBackupConformance(t *testing.T) {
	storetest.RunBackup(t, func(t *testing.T) storetest.BackupStore { return open(t, t.TempDir()) })
}

// TestBackupTablesMatchSchema checks that thauth.BackupTables describes the migrated schema
// exactly — every table, every column with its type and nullability, and an order that is
// the primary key (or every column, for a table without one) — so that a migration that
// adds a table or column cannot be silently left out of backups.
func TestBackupTablesMatchSchema(t *testing.T) {
	s := open(t, t.TempDir())
	db, err := sql.Open("sqlite", "file:"+s.Path()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	query := func(q string, fn func(*sql.Rows) error) {
		t.Helper()
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := fn(rows); err != nil {
				t.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'`, func(r *sql.Rows) error {
		var n string
		names = append(names, n)
		return r.Scan(&names[len(names)-1])
	})
	got := map[string][]string{}
	for _, name := range names {
		var pk []string
		pkPos := map[int]string{}
		query(`SELECT name, type, "notnull", pk FROM pragma_table_info('`+name+`')`, func(r *sql.Rows) error {
			var col, typ string
			var notnull bool
			var pos int
			if err := r.Scan(&col, &typ, &notnull, &pos); err != nil {
				return err
			}
			class := map[string]string{"TEXT": "text", "BLOB": "bytes", "BIGINT": "int", "INTEGER": "int"}[typ]
			if typ == "INTEGER" && (strings.HasSuffix(col, "_at") || strings.HasPrefix(col, "valid_") || col == "at" || strings.HasSuffix(col, "_until")) {
				class = "time"
			}
			c := thauth.BackupColumn{Name: col, Type: thauth.ColumnType(class), Nullable: !notnull}
			got[name] = append(got[name], c.String())
			if pos > 0 {
				pkPos[pos] = col
			}
			return nil
		})
		for i := 1; i <= len(pkPos); i++ {
			pk = append(pk, pkPos[i])
		}
		got[name] = append(got[name], fmt.Sprintf("order %v", pk))
	}
	want := map[string][]string{}
	for _, tb := range thauth.BackupTables() {
		for _, c := range tb.Columns {
			want[tb.Name] = append(want[tb.Name], c.String())
		}
		order := tb.OrderBy
		if slices.Equal(order, tb.ColumnNames()) {
			order = nil // a table without a primary key is ordered by every column
		}
		want[tb.Name] = append(want[tb.Name], fmt.Sprintf("order %v", order))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("thauth.BackupTables does not match the SQLite schema (-BackupTables +schema):\n%s", d)
	}
}

// TestExportReadsOneSnapshotAcrossInstances checks the snapshot against a writer in another
// Store on the same file, as `thauth backup` runs beside a server.
func TestExportReadsOneSnapshotAcrossInstances(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	server, cli := open(t, dir), open(t, dir)
	storetest.Populate(t, server)
	want := storetest.Export(t, cli)
	var got storetest.Dump
	err := cli.ExportTables(ctx, func(table string, row []any) error {
		if len(got) == 0 {
			// The server commits a new organization after the export began.
			org := thauth.Organization{ID: "0198c000-0000-7000-8000-0000000000ff", Name: "late", CreatedAt: time.Now()}
			if err := server.CreateOrganization(ctx, &org); err != nil {
				return err
			}
		}
		if len(got) == 0 || got[len(got)-1].Name != table {
			got = append(got, storetest.DumpTable{Name: table})
		}
		got[len(got)-1].Rows = append(got[len(got)-1].Rows, row)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.DiffDumps(want, got); d != "" {
		t.Errorf("export saw a write committed after it began (-before +export):\n%s", d)
	}
	if n := storetest.Export(t, cli).Rows()["organizations"]; n != len(want.Table("organizations"))+1 {
		t.Errorf("after the export: %d organizations, want the late one too", n)
	}
}
