package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/seal/sealtest"
	"github.com/thauth/thauth/internal/storetest"
)

// TestKeyStore runs seal's KeyStore contract. Its subtests share one migrated database,
// emptied before each.
func TestKeyStore(t *testing.T) {
	url := pgtest.New(t)
	admin := pgtest.Open(t, url, postgres.Options{})
	if err := admin.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	sealtest.RunKeyStore(t, func(t *testing.T) seal.KeyStore {
		if err := postgres.Exec(context.Background(), admin, "TRUNCATE seal_data_keys"); err != nil {
			t.Fatal(err)
		}
		return pgtest.Open(t, url, postgres.Options{})
	})
}

func TestBackupConformance(t *testing.T) {
	storetest.RunBackup(t, func(t *testing.T) storetest.BackupStore { return pgtest.Migrated(t) })
}

// TestBackupTablesMatchSchema checks that thauth.BackupTables describes the migrated schema
// exactly — every table, every column with its type and nullability, and an order that is
// the primary key (or every column, for a table without one) — so that a migration that
// adds a table or column cannot be silently left out of backups.
func TestBackupTablesMatchSchema(t *testing.T) {
	ctx := context.Background()
	s := pgtest.Migrated(t)
	lines := func(q string) [][]string {
		t.Helper()
		v, err := postgres.QueryString(ctx, s, `SELECT coalesce(string_agg(l, E'\n' ORDER BY l), '') FROM (`+q+`) AS x (l)`)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var rows [][]string
		for _, l := range strings.Split(v, "\n") {
			if l != "" {
				rows = append(rows, strings.Split(l, "\t"))
			}
		}
		return rows
	}
	got := map[string][]string{}
	for _, r := range lines(`SELECT table_name || E'\t' || lpad(ordinal_position::text, 3, '0') || E'\t' || column_name || E'\t' || data_type || E'\t' || is_nullable
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'`) {
		class := map[string]string{"text": "text", "bytea": "bytes", "bigint": "int", "integer": "int", "timestamp with time zone": "time"}[r[3]]
		c := thauth.BackupColumn{Name: r[2], Type: thauth.ColumnType(class), Nullable: r[4] == "YES"}
		got[r[0]] = append(got[r[0]], c.String())
	}
	pks := map[string]string{}
	for _, r := range lines(`SELECT c.conrelid::regclass::text || E'\t' ||
			(SELECT string_agg(a.attname, ' ' ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY k (n, i)
				JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n)
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = 'public' AND c.contype = 'p' AND c.conrelid::regclass::text <> 'schema_migrations'`) {
		pks[r[0]] = r[1]
	}
	for name := range got {
		got[name] = append(got[name], fmt.Sprintf("order [%s]", pks[name]))
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
		t.Errorf("thauth.BackupTables does not match the PostgreSQL schema (-BackupTables +schema):\n%s", d)
	}
}

// TestExportReadsOneSnapshotAcrossNodes checks the snapshot against a writer on another
// Store (another node) of the same database.
func TestExportReadsOneSnapshotAcrossNodes(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	node1 := pgtest.Open(t, url, postgres.Options{})
	if err := node1.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	node2 := pgtest.Open(t, url, postgres.Options{})
	storetest.Populate(t, node1)
	want := storetest.Export(t, node2)
	var got storetest.Dump
	err := node2.ExportTables(ctx, func(table string, row []any) error {
		if len(got) == 0 {
			org := thauth.Organization{ID: newID(), Name: "late", CreatedAt: time.Now()}
			if err := node1.CreateOrganization(ctx, &org); err != nil {
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
}

// TestExportOutlivesStatementTimeout checks that a slow consumer does not trip the store's
// statement or idle-in-transaction timeouts, which the export lifts for its transaction.
func TestExportOutlivesStatementTimeout(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	s := pgtest.Open(t, url, postgres.Options{StatementTimeout: 200 * time.Millisecond, IdleInTransactionTimeout: 200 * time.Millisecond})
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	storetest.Populate(t, s)
	n := 0
	err := s.ExportTables(ctx, func(table string, row []any) error {
		if n++; n <= 2 {
			time.Sleep(400 * time.Millisecond) // within a statement, then between statements
		}
		return nil
	})
	if err != nil {
		t.Fatalf("slow export: %v", err)
	}
}
