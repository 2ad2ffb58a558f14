package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
)

// TestScanPages scans a project over many small pages — subjects with and without grants,
// page boundaries falling anywhere, windows far in the past and future — and checks every
// subject against LoadSubjectGrants, inside and outside Tx.
func TestScanPages(t *testing.T) {
	ctx := context.Background()
	s, _ := migrated(t)
	pid, other := project(t, s), project(t, s)
	cfg := benchConfig()
	if err := s.ReplaceConfig(ctx, pid, cfg); err != nil {
		t.Fatal(err)
	}
	old := time.Date(1600, 2, 29, 23, 59, 59, 999999000, time.UTC)
	far := time.Date(2999, 12, 31, 0, 0, 0, 1000, time.UTC)
	const n = 60
	err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		for i := range n {
			id := fmt.Sprintf("user:%03d", (i*37)%n)
			for _, p := range []string{pid, other} {
				sub := thauth.Subject{SubjectID: id, SubjectType: "user"}
				if _, err := tx.UpsertSubject(ctx, p, &sub, time.Now()); err != nil {
					return err
				}
			}
			if i%4 == 3 {
				continue // no grants
			}
			var as []thauth.Assignment
			for k := range i % 5 {
				as = append(as, thauth.Assignment{RoleID: cfg.Roles[(i+k)%30].ID, Tenant: fmt.Sprintf("t%d", k%2),
					Window: thauth.Window{From: &old, Until: &far}})
			}
			if err := tx.ReplaceAssignments(ctx, pid, id, thauth.Scope{All: true}, as); err != nil {
				return err
			}
			if i%3 == 0 {
				f := cfg.Features[i%20]
				os := []thauth.Override{
					{FeatureID: f.ID, ActionID: f.Actions[0].ID, Effect: thauth.Deny, Resource: "a/*"},
					{FeatureID: f.ID, ActionID: f.Actions[1].ID, Effect: thauth.Allow, Tenant: "t1", Window: thauth.Window{Until: &far}},
				}
				if err := tx.ReplaceOverrides(ctx, pid, id, thauth.Scope{All: true}, os); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range []int{1, 7, n, n + 1, 1000} {
		restore := postgres.SetScanPage(page)
		for _, inTx := range []bool{false, true} {
			var got []*thauth.SubjectGrants
			collect := func(g *thauth.SubjectGrants) error { got = append(got, g); return nil }
			if inTx {
				err = s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error { return tx.ScanSubjectGrants(ctx, pid, collect) })
			} else {
				err = s.ScanSubjectGrants(ctx, pid, collect)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != n {
				t.Fatalf("page %d, in tx %v: %d subjects, want %d", page, inTx, len(got), n)
			}
			for i, g := range got {
				if want := fmt.Sprintf("user:%03d", i); g.Subject.SubjectID != want {
					t.Fatalf("page %d: subject %d is %s, want %s", page, i, g.Subject.SubjectID, want)
				}
				one, err := s.LoadSubjectGrants(ctx, pid, g.Subject.SubjectID)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(one, g, cmpopts.EquateEmpty()); d != "" {
					t.Fatalf("page %d: scanned %s differs from loaded (-load +scan):\n%s", page, g.Subject.SubjectID, d)
				}
			}
		}
		restore()
	}
}
