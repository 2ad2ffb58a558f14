package storetest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/seal"
)

// BackupStore is a store that backups read from and restore into, and that keeps
// internal/seal's data keys.
type BackupStore interface {
	thauth.Store
	thauth.TableExporter
	thauth.TableImporter
	seal.KeyStore
}

// Dump is every row of a store as ExportTables gave them: one entry per table of
// thauth.BackupTables, in that order, each with its rows in export order.
type Dump []DumpTable

// DumpTable is the rows of one table.
type DumpTable struct {
	Name string
	Rows [][]any
}

// Rows returns the number of rows of every table.
func (d Dump) Rows() map[string]int {
	m := map[string]int{}
	for _, t := range d {
		m[t.Name] = len(t.Rows)
	}
	return m
}

// Table returns the rows of the named table.
func (d Dump) Table(name string) [][]any {
	for _, t := range d {
		if t.Name == name {
			return t.Rows
		}
	}
	return nil
}

// Export reads every row of s with ExportTables, checking the order of the tables and
// that every row fits its table.
func Export(t testing.TB, s thauth.TableExporter) Dump {
	t.Helper()
	tables := thauth.BackupTables()
	d := make(Dump, len(tables))
	for i, tb := range tables {
		d[i].Name = tb.Name
	}
	i := 0
	err := s.ExportTables(context.Background(), func(table string, row []any) error {
		for i < len(tables) && tables[i].Name != table {
			i++
		}
		if i == len(tables) {
			return fmt.Errorf("table %q exported out of order or unknown", table)
		}
		if err := tables[i].CheckRow(row); err != nil {
			return err
		}
		d[i].Rows = append(d[i].Rows, row)
		return nil
	})
	if err != nil {
		t.Fatalf("ExportTables: %v", err)
	}
	return d
}

// DiffDumps returns a readable difference between two dumps, or "" if they are equal (times
// compared as instants).
func DiffDumps(want, got Dump) string {
	return gocmp.Diff(want, got)
}

// Populated describes what Populate stored.
type Populated struct {
	ProjectIDs []string
	// Tokens are the API key tokens of every key Populate created, usable or not.
	Tokens []string
	// Now is an instant at which some of the time-bounded grants are active and others not.
	Now time.Time
}

// Populate fills s, through its ordinary methods, with rows in every table of
// thauth.BackupTables and the values that are easy to get wrong in a copy: text with quotes,
// backslashes, newlines and non-ASCII, ids whose byte order differs from their alphabetical
// order, times before 1970 and in year 9999, NULL and non-NULL optional times, revoked,
// expired and used API keys, revisions of several changes, a project without
// configuration, an organization without projects, and retired and active data keys.
func Populate(t testing.TB, s BackupStore) *Populated {
	t.Helper()
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := &Populated{Now: base}

	retired := at(-time.Hour)
	ok(s.InsertDataKey(ctx, seal.DataKey{ID: "dk_0001", MasterKeyID: "k-2025", Wrapped: []byte{0, 1, 2, 0xff}, CreatedAt: at(-48 * time.Hour), RetiredAt: &retired}))
	ok(s.InsertDataKey(ctx, seal.DataKey{ID: "dk_0002", MasterKeyID: "k-2026", Wrapped: bytes.Repeat([]byte{0xa5}, 60), CreatedAt: at(-2 * time.Hour)}))

	org := thauth.Organization{ID: newID(), Name: "Ünïcode \"Acme\" \\ 🎉\nsecond line", CreatedAt: at(-72 * time.Hour)}
	ok(s.CreateOrganization(ctx, &org))
	lonely := thauth.Organization{ID: newID(), Name: "No projects", CreatedAt: at(-71 * time.Hour)}
	ok(s.CreateOrganization(ctx, &lonely))

	shop := thauth.Project{ID: newID(), Name: "Shop", CreatedAt: at(-70 * time.Hour)}
	ok(s.CreateProject(ctx, org.ID, &shop))
	empty := thauth.Project{ID: newID(), Name: "Empty\tproject", CreatedAt: at(-69 * time.Hour)}
	ok(s.CreateProject(ctx, org.ID, &empty))
	p.ProjectIDs = []string{shop.ID, empty.ID}

	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = newID()
		}
		return out
	}
	fid, aid, rid := ids(2), ids(4), ids(3)
	cfg := &thauth.Config{
		Features: []thauth.Feature{
			{ID: fid[0], Name: "billing", Description: "Invoices, \"refunds\" and C:\\paths", Actions: []thauth.Action{
				{ID: aid[0], Name: "read"}, {ID: aid[1], Name: "refund"},
			}},
			{ID: fid[1], Name: "reports", Actions: []thauth.Action{{ID: aid[2], Name: "export"}, {ID: aid[3], Name: "read"}}},
		},
		Roles: []thauth.Role{
			{ID: rid[0], Name: "admin", Description: "Everything\nreally", Permissions: []thauth.Permission{
				{FeatureID: fid[0], ActionID: aid[0]}, {FeatureID: fid[0], ActionID: aid[1]},
				{FeatureID: fid[1], ActionID: aid[2]}, {FeatureID: fid[1], ActionID: aid[3]},
			}},
			{ID: rid[1], Name: "refunder", Permissions: []thauth.Permission{
				{FeatureID: fid[0], ActionID: aid[1], Resource: "invoices/*"},
				{FeatureID: fid[0], ActionID: aid[1], Resource: "credit-notes/eu/*"},
			}},
			{ID: rid[2], Name: "viewer", Permissions: []thauth.Permission{
				{FeatureID: fid[0], ActionID: aid[0]}, {FeatureID: fid[1], ActionID: aid[3], Resource: "*"},
			}},
		},
	}
	ok(s.ReplaceConfig(ctx, shop.ID, cfg))

	old := time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC)
	far := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	soon, later := at(30*time.Minute), at(90*time.Minute)
	// "user:B" sorts before "user:a" in byte order, after it alphabetically.
	for i, sid := range []string{"user:a", "user:B", "user:ünï\"code\"\\🎉", "service:batch", "user:nobody"} {
		sub := thauth.Subject{SubjectID: sid, SubjectType: []string{"user", "service"}[i%2]}
		_, err := s.UpsertSubject(ctx, shop.ID, &sub, at(time.Duration(i)*time.Minute))
		ok(err)
	}
	_, err := s.UpsertSubject(ctx, shop.ID, &thauth.Subject{SubjectID: "user:a", SubjectType: "user"}, at(10*time.Minute)) // updated_at moves
	ok(err)
	grants := map[string][]thauth.Assignment{
		"user:a": {{RoleID: rid[2]}, {RoleID: rid[1], Tenant: "acme-eu"}},
		"user:B": {{RoleID: rid[0], Tenant: "acme-eu", Window: thauth.Window{From: &old, Until: &soon}},
			{RoleID: rid[2], Tenant: "acme-us", Window: thauth.Window{From: &soon, Until: &far}}},
		"user:ünï\"code\"\\🎉": {{RoleID: rid[0], Window: thauth.Window{Until: &later}}},
		"service:batch":       {{RoleID: rid[2]}},
	}
	for sid, as := range grants {
		ok(s.ReplaceAssignments(ctx, shop.ID, sid, thauth.Scope{All: true}, as))
	}
	overrides := map[string][]thauth.Override{
		"user:a": {{FeatureID: fid[1], ActionID: aid[2], Effect: thauth.Deny, Resource: "prod/*"},
			{FeatureID: fid[0], ActionID: aid[1], Effect: thauth.Allow, Resource: "invoices/42", Tenant: "acme-us", Window: thauth.Window{From: &old}}},
		"user:B":        {{FeatureID: fid[0], ActionID: aid[0], Effect: thauth.Deny, Tenant: "acme-eu", Window: thauth.Window{Until: &soon}}},
		"service:batch": {{FeatureID: fid[1], ActionID: aid[2], Effect: thauth.Allow, Window: thauth.Window{From: &later, Until: &far}}},
	}
	for sid, os := range overrides {
		ok(s.ReplaceOverrides(ctx, shop.ID, sid, thauth.Scope{All: true}, os))
	}

	key := func(projectID, name string, created time.Time, scopes ...string) thauth.APIKey {
		token, lookup, hash := thauth.NewToken()
		p.Tokens = append(p.Tokens, token)
		return thauth.APIKey{ID: newID(), Name: name, LookupID: lookup, Hash: hash, Scopes: scopes, CreatedAt: created}
	}
	expired := at(-time.Minute)
	keys := []thauth.APIKey{
		key(shop.ID, "checks", at(-60*time.Hour), thauth.ScopeDecisionsRead),
		key(shop.ID, "admin \"ops\"", at(-59*time.Hour), thauth.ScopeAdmin, thauth.ScopeDecisionsRead),
		key(shop.ID, "expired", at(-58*time.Hour), thauth.ScopeDecisionsRead),
		key(shop.ID, "revoked", at(-57*time.Hour), thauth.ScopeDecisionsRead),
		key(empty.ID, "empty's key", at(-56*time.Hour), thauth.ScopeAdmin),
	}
	keys[2].ExpiresAt = &expired
	for i := range keys {
		pid := shop.ID
		if i == len(keys)-1 {
			pid = empty.ID
		}
		ok(s.CreateAPIKey(ctx, pid, &keys[i]))
	}
	ok(s.RevokeAPIKey(ctx, shop.ID, keys[3].ID, at(-30*time.Minute)))
	ok(s.TouchAPIKeys(ctx, shop.ID, map[string]time.Time{keys[0].ID: at(-5 * time.Minute)}))

	for i, cs := range [][]thauth.Change{
		{{Kind: thauth.ChangeProject}},
		{{Kind: thauth.ChangeConfig}},
		{{Kind: thauth.ChangeSubject, Ref: "user:a"}, {Kind: thauth.ChangeSubject, Ref: "user:B"}, {Kind: thauth.ChangeSubjects}},
		{{Kind: thauth.ChangeKey, Ref: keys[0].ID}},
	} {
		_, err := s.AppendChanges(ctx, shop.ID, cs, at(time.Duration(i)*time.Second))
		ok(err)
	}
	_, err = s.AppendChanges(ctx, empty.ID, []thauth.Change{{Kind: thauth.ChangeProject}}, at(-69*time.Hour))
	ok(err)
	return p
}

// RunBackup runs the conformance cases of ExportTables and ImportTables. open must return a
// fresh, migrated, empty store for the test it is given and arrange its cleanup.
func RunBackup(t *testing.T, open func(t *testing.T) BackupStore) {
	ctx := context.Background()

	t.Run("export covers every table in order", func(t *testing.T) {
		s := open(t)
		if d := Export(t, s); len(d.Rows()) != len(thauth.BackupTables()) || slices.ContainsFunc(d, func(t DumpTable) bool { return len(t.Rows) > 0 }) {
			t.Errorf("export of an empty store = %v, want every table empty", d.Rows())
		}
		Populate(t, s)
		d := Export(t, s)
		for i, tb := range thauth.BackupTables() {
			if len(d[i].Rows) == 0 {
				t.Errorf("table %s: no rows exported; Populate fills every table", tb.Name)
			}
			sorted := slices.IsSortedFunc(d[i].Rows, func(a, b []any) int { return compareRows(tb, a, b) })
			if !sorted {
				t.Errorf("table %s: rows not in OrderBy order (NULLs first, byte order)", tb.Name)
			}
		}
		for _, r := range d.Table("projects") {
			if r[4] == int64(0) {
				t.Errorf("project %v exported with revision 0; Populate appends changes to every project", r[0])
			}
		}
	})

	t.Run("export twice is identical", func(t *testing.T) {
		s := open(t)
		Populate(t, s)
		if d := DiffDumps(Export(t, s), Export(t, s)); d != "" {
			t.Errorf("two exports differ:\n%s", d)
		}
	})

	t.Run("import round trips every row", func(t *testing.T) {
		src, dst := open(t), open(t)
		pop := Populate(t, src)
		want := Export(t, src)
		must(t, Import(dst, want))
		if d := DiffDumps(want, Export(t, dst)); d != "" {
			t.Fatalf("restored store differs (-source +restored):\n%s", d)
		}
		// The ordinary methods read the restored rows like the originals.
		for _, pid := range pop.ProjectIDs {
			diff(t, "project "+pid, snapshot(t, src, pid), snapshot(t, dst, pid))
		}
		wantKeys, _ := src.ListDataKeys(ctx)
		gotKeys, err := dst.ListDataKeys(ctx)
		must(t, err)
		diff(t, "data keys", wantKeys, gotKeys)
		// The restored store goes on where the source was: revisions continue, keys and
		// names stay unique.
		pid := pop.ProjectIDs[0]
		before, _ := src.GetProject(ctx, pid)
		rev, err := dst.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base)
		must(t, err)
		if rev != before.Revision+1 {
			t.Errorf("first revision after restore = %d, want %d", rev, before.Revision+1)
		}
		k := (want.Table("api_keys"))[0]
		dup := thauth.APIKey{ID: newID(), Name: "dup", LookupID: k[3].(string), Hash: []byte{1}, Scopes: []string{thauth.ScopeAdmin}, CreatedAt: base}
		wantCode(t, dst.CreateAPIKey(ctx, pid, &dup), thauth.EConflict)
	})

	t.Run("import refuses a store that is not empty", func(t *testing.T) {
		src := open(t)
		Populate(t, src)
		d := Export(t, src)
		for name, seed := range map[string]func(s BackupStore) error{
			"organization": func(s BackupStore) error {
				return s.CreateOrganization(ctx, &thauth.Organization{ID: newID(), Name: "x", CreatedAt: base})
			},
			"data key": func(s BackupStore) error {
				return s.InsertDataKey(ctx, seal.DataKey{ID: "dk_x", MasterKeyID: "k", Wrapped: []byte{1}, CreatedAt: base})
			},
		} {
			t.Run(name, func(t *testing.T) {
				dst := open(t)
				must(t, seed(dst))
				before := Export(t, dst)
				called := false
				err := dst.ImportTables(ctx, func(insert func(string, []any) error) error {
					called = true
					return insertAll(d, insert)
				})
				wantCode(t, err, thauth.EConflict)
				if called {
					t.Error("fill was called although the store is not empty")
				}
				if df := DiffDumps(before, Export(t, dst)); df != "" {
					t.Errorf("refused import changed the store:\n%s", df)
				}
			})
		}
	})

	t.Run("failed fill writes nothing", func(t *testing.T) {
		src, dst := open(t), open(t)
		Populate(t, src)
		d := Export(t, src)
		errLate := errors.New("stream ended early")
		err := dst.ImportTables(ctx, func(insert func(string, []any) error) error {
			if err := insertAll(d, insert); err != nil {
				return err
			}
			return errLate // as a restore does when the trailer is wrong
		})
		if !errors.Is(err, errLate) {
			t.Fatalf("ImportTables = %v, want fill's error", err)
		}
		if n := Export(t, dst).Rows(); slices.ContainsFunc(thauth.BackupTables(), func(tb thauth.BackupTable) bool { return n[tb.Name] > 0 }) {
			t.Fatalf("rows written by a failed import: %v", n)
		}
		must(t, Import(dst, d)) // and the store can still be restored into
		if df := DiffDumps(d, Export(t, dst)); df != "" {
			t.Errorf("import after a failed one differs:\n%s", df)
		}
	})

	t.Run("rows that do not fit are refused", func(t *testing.T) {
		src := open(t)
		Populate(t, src)
		d := Export(t, src)
		org := d.Table("organizations")[0]
		proj := d.Table("projects")[0]
		for name, rows := range map[string][]struct {
			table string
			row   []any
		}{
			"unknown table":   {{"secrets", []any{"x"}}},
			"too few values":  {{"organizations", org[:2]}},
			"wrong type":      {{"organizations", []any{org[0], org[1], "yesterday"}}},
			"NULL not null":   {{"organizations", []any{org[0], nil, org[2]}}},
			"local time":      {{"organizations", []any{org[0], org[1], org[2].(time.Time).In(time.FixedZone("x", 3600))}}},
			"duplicate key":   {{"organizations", org}, {"organizations", org}},
			"dangling parent": {{"projects", proj}},
		} {
			t.Run(name, func(t *testing.T) {
				dst := open(t)
				err := dst.ImportTables(ctx, func(insert func(string, []any) error) error {
					for _, r := range rows {
						if err := insert(r.table, r.row); err != nil {
							return err
						}
					}
					return nil
				})
				wantCode(t, err, thauth.EInvalid)
				if n := Export(t, dst).Rows(); n["organizations"]+n["projects"] > 0 {
					t.Errorf("rows written by a refused import: %v", n)
				}
			})
		}
	})

	t.Run("export is one snapshot while writers go on", func(t *testing.T) {
		s := open(t)
		pop := Populate(t, s)
		pid := pop.ProjectIDs[0]
		before, _ := s.GetProject(ctx, pid)
		var d Dump
		wrote := false
		err := s.ExportTables(ctx, func(table string, row []any) error {
			if !wrote {
				wrote = true
				// Committed after the export began, by the store's own write path.
				if err := s.CreateOrganization(ctx, &thauth.Organization{ID: newID(), Name: "late", CreatedAt: base}); err != nil {
					return err
				}
				if _, err := s.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base); err != nil {
					return err
				}
			}
			if len(d) == 0 || d[len(d)-1].Name != table {
				d = append(d, DumpTable{Name: table})
			}
			d[len(d)-1].Rows = append(d[len(d)-1].Rows, row)
			return nil
		})
		must(t, err)
		got := d.Rows()
		if got["organizations"] != 2 {
			t.Errorf("export saw %d organizations, want the 2 from before it began", got["organizations"])
		}
		for _, r := range d.Table("projects") {
			if r[0] == pid && r[4] != before.Revision {
				t.Errorf("export saw revision %v, want %d from before it began", r[4], before.Revision)
			}
		}
		if after, _ := s.GetProject(ctx, pid); after.Revision != before.Revision+1 {
			t.Errorf("the write during the export did not commit: revision %d", after.Revision)
		}
	})

	t.Run("insert after fill returned fails", func(t *testing.T) {
		dst := open(t)
		var kept func(string, []any) error
		must(t, dst.ImportTables(ctx, func(insert func(string, []any) error) error {
			kept = insert
			return nil
		}))
		if err := kept("organizations", []any{newID(), "x", base}); err == nil {
			t.Error("insert after the import ended succeeded")
		}
	})
}

// Import restores d into s with ImportTables.
func Import(s thauth.TableImporter, d Dump) error {
	return s.ImportTables(context.Background(), func(insert func(string, []any) error) error {
		return insertAll(d, insert)
	})
}

func insertAll(d Dump, insert func(string, []any) error) error {
	for _, t := range d {
		for _, r := range t.Rows {
			if err := insert(t.Name, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// compareRows orders two rows of t by its OrderBy columns: NULL first, text and bytes in
// byte order.
func compareRows(t thauth.BackupTable, a, b []any) int {
	for _, name := range t.OrderBy {
		i := slices.IndexFunc(t.Columns, func(c thauth.BackupColumn) bool { return c.Name == name })
		x, y := a[i], b[i]
		var c int
		switch {
		case x == nil && y == nil:
		case x == nil:
			c = -1
		case y == nil:
			c = 1
		default:
			switch x := x.(type) {
			case string:
				c = cmp.Compare(x, y.(string))
			case int64:
				c = cmp.Compare(x, y.(int64))
			case []byte:
				c = bytes.Compare(x, y.([]byte))
			case time.Time:
				c = x.Compare(y.(time.Time))
			}
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
