package decisionlog

import (
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/sqlite"
)

// openStore opens a fresh, migrated SQLite store holding two projects (the decision log
// skips records of projects that do not exist) and returns it with their ids.
func openStore(t *testing.T) (thauth.Store, []string) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	org := &thauth.Organization{ID: "0197a000-0000-7000-8000-000000000001", Name: "Acme", CreatedAt: now}
	if err := st.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	ids := []string{"0197a000-0000-7000-8000-0000000000a1", "0197a000-0000-7000-8000-0000000000a2"}
	for i, id := range ids {
		if err := st.CreateProject(ctx, org.ID, &thauth.Project{ID: id, Name: []string{"shop", "blog"}[i], CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	return st, ids
}
