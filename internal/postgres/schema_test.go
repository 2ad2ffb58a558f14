package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	_ "modernc.org/sqlite" // the SQLite schema, to compare with
)

// schema is an engine-neutral description of a schema: for each table its columns (name,
// type class, nullability) in order, primary key, unique column sets, named indexes and
// foreign keys.
type schema map[string]*table

type table struct {
	Columns     []string // "name type [null]"
	PrimaryKey  string
	Unique      []string // column lists
	Indexes     []string // "name(columns)"
	ForeignKeys []string // "(columns) -> table(columns) on delete X on update Y"
}

func (s schema) table(name string) *table {
	if s[name] == nil {
		s[name] = &table{}
	}
	return s[name]
}

func (s schema) sort() {
	for _, t := range s {
		slices.Sort(t.Unique)
		slices.Sort(t.Indexes)
		slices.Sort(t.ForeignKeys)
	}
}

// typeClass maps each engine's column types to what they stand for; the SQLite schema keeps
// times as INTEGER microseconds, so INTEGER columns named *_at, at, valid_from, valid_until
// and locked_until are times.
func typeClass(column, typ string) string {
	switch strings.ToLower(typ) {
	case "text":
		return "text"
	case "blob", "bytea":
		return "bytes"
	case "bigint":
		return "int64"
	case "timestamp with time zone":
		return "time"
	case "integer":
		if strings.HasSuffix(column, "_at") || column == "at" || column == "valid_from" || column == "valid_until" || column == "locked_until" {
			return "time"
		}
		return "int32"
	}
	return "?" + typ
}

func sqliteSchema(t *testing.T) schema {
	t.Helper()
	db, err := sql.Open("sqlite", "file:lockstep?mode=memory")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	files, _ := filepath.Glob("../sqlite/migrations/*.sql")
	slices.Sort(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
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
	var tables []string
	query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`, func(r *sql.Rows) error {
		var n string
		err := r.Scan(&n)
		tables = append(tables, n)
		return err
	})
	s := schema{}
	for _, name := range tables {
		tb := s.table(name)
		pk := map[int]string{}
		query(`SELECT name, type, "notnull", pk FROM pragma_table_info('`+name+`')`, func(r *sql.Rows) error {
			var col, typ string
			var notnull bool
			var pkPos int
			if err := r.Scan(&col, &typ, &notnull, &pkPos); err != nil {
				return err
			}
			c := col + " " + typeClass(col, typ)
			if !notnull {
				c += " null"
			}
			tb.Columns = append(tb.Columns, c)
			if pkPos > 0 {
				pk[pkPos] = col
			}
			return nil
		})
		for i := 1; i <= len(pk); i++ {
			tb.PrimaryKey += pk[i] + ","
		}
		tb.PrimaryKey = strings.TrimSuffix(tb.PrimaryKey, ",")
		type idx struct {
			name, origin string
			unique       bool
		}
		var idxs []idx
		query(`SELECT name, "unique", origin FROM pragma_index_list('`+name+`')`, func(r *sql.Rows) error {
			var i idx
			err := r.Scan(&i.name, &i.unique, &i.origin)
			idxs = append(idxs, i)
			return err
		})
		for _, i := range idxs {
			var cols []string
			query(`SELECT name FROM pragma_index_info('`+i.name+`') ORDER BY seqno`, func(r *sql.Rows) error {
				var c string
				err := r.Scan(&c)
				cols = append(cols, c)
				return err
			})
			switch i.origin {
			case "pk":
			case "u":
				tb.Unique = append(tb.Unique, strings.Join(cols, ","))
			case "c":
				if i.unique {
					tb.Unique = append(tb.Unique, strings.Join(cols, ","))
				}
				tb.Indexes = append(tb.Indexes, fmt.Sprintf("%s(%s)", i.name, strings.Join(cols, ",")))
			}
		}
		fks := map[int]*[4]string{}
		var order []int
		query(`SELECT id, "table", "from", "to", on_update, on_delete FROM pragma_foreign_key_list('`+name+`') ORDER BY id, seq`, func(r *sql.Rows) error {
			var id int
			var ref, from, to, onUpdate, onDelete string
			if err := r.Scan(&id, &ref, &from, &to, &onUpdate, &onDelete); err != nil {
				return err
			}
			if fks[id] == nil {
				fks[id] = &[4]string{ref, "", "", "on delete " + onDelete + " on update " + onUpdate}
				order = append(order, id)
			}
			fks[id][1] += from + ","
			fks[id][2] += to + ","
			return nil
		})
		for _, id := range order {
			f := fks[id]
			tb.ForeignKeys = append(tb.ForeignKeys, fmt.Sprintf("(%s) -> %s(%s) %s",
				strings.TrimSuffix(f[1], ","), f[0], strings.TrimSuffix(f[2], ","), strings.ToLower(f[3])))
		}
	}
	s.sort()
	return s
}

func postgresSchema(t *testing.T, s *postgres.Store) schema {
	t.Helper()
	ctx := context.Background()
	get := func(q string) string {
		t.Helper()
		v, err := postgres.QueryString(ctx, s, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	}
	out := schema{}
	// One row per line, fields separated by tabs.
	lines := func(q string) [][]string {
		t.Helper()
		var rows [][]string
		for _, l := range strings.Split(get(`SELECT coalesce(string_agg(l, E'\n' ORDER BY l), '') FROM (`+q+`) AS x (l)`), "\n") {
			if l != "" {
				rows = append(rows, strings.Split(l, "\t"))
			}
		}
		return rows
	}
	for _, r := range lines(`SELECT table_name || E'\t' || lpad(ordinal_position::text, 3, '0') || E'\t' || column_name || E'\t' || data_type || E'\t' || is_nullable
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'`) {
		c := r[2] + " " + typeClass(r[2], r[3])
		if r[4] == "YES" {
			c += " null"
		}
		out.table(r[0]).Columns = append(out.table(r[0]).Columns, c)
	}
	// Constraints: contype, table, columns in key order, referenced table and columns, actions.
	for _, r := range lines(`SELECT c.contype::text || E'\t' || c.conrelid::regclass::text || E'\t' ||
			(SELECT string_agg(a.attname, ',' ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY k (n, i)
				JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) || E'\t' ||
			coalesce(c.confrelid::regclass::text, '') || E'\t' ||
			coalesce((SELECT string_agg(a.attname, ',' ORDER BY k.i) FROM unnest(c.confkey) WITH ORDINALITY k (n, i)
				JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n), '') || E'\t' ||
			c.confdeltype::text || E'\t' || c.confupdtype::text
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f') AND c.conrelid::regclass::text <> 'schema_migrations'`) {
		tb := out.table(r[1])
		action := map[string]string{"a": "no action", "r": "restrict", "c": "cascade", "n": "set null", "d": "set default"}
		switch r[0] {
		case "p":
			tb.PrimaryKey = r[2]
		case "u":
			tb.Unique = append(tb.Unique, r[2])
		case "f":
			tb.ForeignKeys = append(tb.ForeignKeys, fmt.Sprintf("(%s) -> %s(%s) on delete %s on update %s", r[2], r[3], r[4], action[r[5]], action[r[6]]))
		}
	}
	// Indexes that do not back a constraint.
	for _, r := range lines(`SELECT t.relname || E'\t' || i.relname || E'\t' || x.indisunique::text || E'\t' ||
			(SELECT string_agg(a.attname, ',' ORDER BY k.i) FROM unnest(x.indkey::int2[]) WITH ORDINALITY k (n, i)
				JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n)
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = 'public' AND t.relname <> 'schema_migrations'
		AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)`) {
		tb := out.table(r[0])
		if r[2] == "true" {
			tb.Unique = append(tb.Unique, r[3])
		}
		tb.Indexes = append(tb.Indexes, fmt.Sprintf("%s(%s)", r[1], r[3]))
	}
	out.sort()
	return out
}

// TestSchemaLockstep checks that the PostgreSQL migrations build the same schema as the
// SQLite ones — tables, columns (up to the documented type mapping), keys, unique
// constraints, indexes, foreign keys and their cascades — and that both engines have the
// same migration numbers.
func TestSchemaLockstep(t *testing.T) {
	numbers := func(dir string) []string {
		files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, f := range files {
			n, _, _ := strings.Cut(filepath.Base(f), "_")
			ns = append(ns, n)
		}
		slices.Sort(ns)
		return ns
	}
	if a, b := numbers("../sqlite/migrations"), numbers("migrations"); !slices.Equal(a, b) {
		t.Errorf("migration numbers differ: sqlite %v, postgres %v", a, b)
	}
	want := sqliteSchema(t)
	got := postgresSchema(t, pgtest.Migrated(t))
	if len(want) == 0 {
		t.Fatal("no SQLite schema found")
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("schemas differ (-sqlite +postgres):\n%s", d)
	}
}

// TestDeleteProjectCascades checks the schema's cascades: deleting a project (which no
// Store method does yet) removes every row of it from every table and nothing else.
func TestDeleteProjectCascades(t *testing.T) {
	ctx := context.Background()
	s := pgtest.Migrated(t)
	now := time.Now()
	org := thauth.Organization{ID: "org", Name: "Acme", CreatedAt: now}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateOrganization(ctx, &org))
	for _, pid := range []string{"p1", "p2"} {
		p := thauth.Project{ID: pid, Name: pid, CreatedAt: now}
		must(s.CreateProject(ctx, org.ID, &p))
		must(s.ReplaceConfig(ctx, pid, &thauth.Config{
			Features: []thauth.Feature{{ID: pid + "-f", Name: "f", Actions: []thauth.Action{{ID: pid + "-a", Name: "a"}}}},
			Roles: []thauth.Role{{ID: pid + "-r", Name: "r", Permissions: []thauth.Permission{
				{FeatureID: pid + "-f", ActionID: pid + "-a"},
			}}},
		}))
		sub := thauth.Subject{SubjectID: "user:x", SubjectType: "user"}
		_, err := s.UpsertSubject(ctx, pid, &sub, now)
		must(err)
		must(s.ReplaceAssignments(ctx, pid, "user:x", thauth.Scope{All: true}, []thauth.Assignment{{RoleID: pid + "-r"}}))
		must(s.ReplaceOverrides(ctx, pid, "user:x", thauth.Scope{All: true}, []thauth.Override{{FeatureID: pid + "-f", ActionID: pid + "-a", Effect: thauth.Deny}}))
		k := thauth.APIKey{ID: pid + "-k", Name: "k", LookupID: pid + "-lookup", Hash: []byte{1}, Scopes: []string{"admin"}, CreatedAt: now}
		must(s.CreateAPIKey(ctx, pid, &k))
		_, err = s.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeProject}}, now)
		must(err)
	}
	tables := []string{"projects", "features", "actions", "roles", "permissions", "subjects", "assignments", "overrides", "api_keys", "changes"}
	count := func(table, pid string) string {
		t.Helper()
		col := "project_id"
		if table == "projects" {
			col = "id"
		}
		n, err := postgres.QueryString(ctx, s, `SELECT count(*)::text FROM `+table+` WHERE `+col+` = $1`, pid)
		must(err)
		return n
	}
	for _, table := range tables {
		if count(table, "p1") == "0" {
			t.Fatalf("setup: no rows of p1 in %s", table)
		}
	}
	must(postgres.Exec(ctx, s, `DELETE FROM projects WHERE id = 'p1'`))
	for _, table := range tables {
		if n := count(table, "p1"); n != "0" {
			t.Errorf("%s still has %s rows of the deleted project", table, n)
		}
		if n := count(table, "p2"); n == "0" {
			t.Errorf("%s lost the other project's rows", table)
		}
	}
}
