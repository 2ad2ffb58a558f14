package backup_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/backup"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/internal/storetest"
)

// engines opens a fresh, migrated, empty store of each kind. PostgreSQL needs a test server
// (pgtest: skipped without one unless THAUTH_REQUIRE_POSTGRES=1).
var engines = []struct {
	name string
	open func(t *testing.T) storetest.BackupStore
}{
	{"sqlite", openSQLite},
	{"postgres", func(t *testing.T) storetest.BackupStore { return pgtest.Migrated(t) }},
}

func openSQLite(t *testing.T) storetest.BackupStore {
	t.Helper()
	s, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// keys is a test key pair.
type keys struct {
	id  *age.X25519Identity
	rcp *age.X25519Recipient
}

func newKeys(t testing.TB) keys {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return keys{id: id, rcp: id.Recipient()}
}

func (k keys) ids() []age.Identity { return []age.Identity{k.id} }

var created = time.Date(2026, 3, 2, 3, 4, 5, 678901000, time.UTC)

// writeBackup backs src up to k and returns the file.
func writeBackup(t testing.TB, src thauth.TableExporter, k keys) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := backup.Write(context.Background(), src, &buf, backup.WriteOptions{
		Recipients: []age.Recipient{k.rcp}, ThauthVersion: "v0.0.0-test", Now: func() time.Time { return created },
	}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

// plaintext decrypts a backup with age directly.
func plaintext(t testing.TB, file []byte, k keys) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(file), k.id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encrypt encrypts a (possibly edited) plaintext to k, as a forger holding the public key
// could.
func encrypt(t testing.TB, pt []byte, k keys) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, k.rcp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decisions compiles every project of s with the engine and answers a grid of checks —
// every subject (and an unknown one), feature and action (and unknown ones), in several
// tenants, on several resources, at several times — and authenticates every token. The
// result is comparable across stores.
func decisions(t *testing.T, s thauth.Store, pop *storetest.Populated) map[string]any {
	t.Helper()
	ctx := context.Background()
	e := engine.New(s, engine.Options{Now: func() time.Time { return pop.Now }})
	if err := e.LoadAll(ctx); err != nil {
		t.Fatalf("engine.LoadAll: %v", err)
	}
	out := map[string]any{}
	allowed := 0
	times := []time.Time{pop.Now, pop.Now.Add(time.Hour), pop.Now.Add(-1000 * time.Hour), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)}
	for _, pid := range pop.ProjectIDs {
		snap := e.Snapshot(pid)
		if snap == nil {
			t.Fatalf("engine has no snapshot of project %s", pid)
		}
		out[pid+" revision"] = snap.Revision()
		out[pid+" version"] = snap.Version()
		subjects := []string{"user:unknown"}
		if err := s.ScanSubjectGrants(ctx, pid, func(g *thauth.SubjectGrants) error {
			subjects = append(subjects, g.Subject.SubjectID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		type fa struct{ f, a string }
		pairs := []fa{{"nope", "read"}, {"billing", "nope"}}
		for _, f := range snap.Config().Features {
			for _, a := range f.Actions {
				pairs = append(pairs, fa{f.Name, a.Name})
			}
		}
		for _, sub := range subjects {
			for _, p := range pairs {
				for _, tenant := range []string{"", "acme-eu", "acme-us"} {
					for _, res := range []string{"", "invoices/42", "credit-notes/eu/7", "prod/db"} {
						for ti, now := range times {
							req := thauth.CheckRequest{Subject: sub, Feature: p.f, Action: p.a, Tenant: tenant, Resource: res, Explain: true}
							d := snap.Check(&req, now)
							if d.Allowed {
								allowed++
							}
							out[pid+"|"+sub+"|"+p.f+"|"+p.a+"|"+tenant+"|"+res+"|"+string(rune('0'+ti))] = d
						}
					}
				}
			}
		}
	}
	if allowed == 0 {
		t.Fatal("no check was allowed: the probe grid does not exercise the grants")
	}
	for _, tok := range pop.Tokens {
		p, ok := e.Authenticate(tok)
		out["token "+tok] = struct {
			P  engine.Principal
			OK bool
		}{p, ok}
	}
	return out
}

// sameDecisions fails unless two stores answer the probe grid alike.
func sameDecisions(t *testing.T, src, dst thauth.Store, pop *storetest.Populated) {
	t.Helper()
	want, got := decisions(t, src, pop), decisions(t, dst, pop)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decisions differ after restore (-source +restored):\n%s", d)
	}
}

// wantEmpty fails unless s holds no row at all.
func wantEmpty(t *testing.T, s thauth.TableExporter) {
	t.Helper()
	for table, n := range storetest.Export(t, s).Rows() {
		if n > 0 {
			t.Errorf("table %s has %d rows: a refused restore wrote to the store", table, n)
		}
	}
}

// counting counts the rows a restore inserted before it failed.
type counting struct {
	thauth.TableImporter
	n int
}

func (c *counting) ImportTables(ctx context.Context, fill func(insert func(string, []any) error) error) error {
	return c.TableImporter.ImportTables(ctx, func(insert func(string, []any) error) error {
		return fill(func(table string, row []any) error {
			c.n++
			return insert(table, row)
		})
	})
}
