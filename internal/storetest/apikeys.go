package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func testAPIKeys(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	getKey := func(t *testing.T, s thauth.Store, projectID, id string) *thauth.APIKey {
		t.Helper()
		k, err := s.GetAPIKey(ctx, projectID, id)
		must(t, err)
		return k
	}

	t.Run("CreateGetList", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		if ks, err := s.ListAPIKeys(ctx, f.pid); err != nil || len(ks) != 0 {
			t.Fatalf("ListAPIKeys of a new project = %v, %v", ks, err)
		}
		var keys []thauth.APIKey
		for i, created := range []time.Time{at(time.Minute), at(3 * time.Minute), at(2 * time.Minute)} {
			k := newKey(f.pid, "key", created)
			switch i {
			case 1:
				k.ExpiresAt = ptr(at(48 * time.Hour).In(time.FixedZone("X", 3600)))
				k.Scopes = []string{thauth.ScopeSubjectsWrite}
			case 2:
				k.Name = "ci"
			}
			must(t, s.CreateAPIKey(ctx, f.pid, &k))
			keys = append(keys, k)
		}
		for _, k := range keys {
			diff(t, "key "+k.ID, &k, getKey(t, s, f.pid, k.ID))
		}
		got, err := s.ListAPIKeys(ctx, f.pid)
		must(t, err)
		diff(t, "keys newest first", []thauth.APIKey{keys[1], keys[2], keys[0]}, got)
		if got := getKey(t, s, f.pid, keys[1].ID); got.ExpiresAt == nil {
			t.Error("ExpiresAt lost")
		} else {
			wantUTC(t, "ExpiresAt", *got.ExpiresAt)
		}
	})

	t.Run("DuplicateLookupID", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		other := newFixture(t, s)
		k := newKey(f.pid, "one", base)
		must(t, s.CreateAPIKey(ctx, f.pid, &k))
		dup := newKey(f.pid, "two", base)
		dup.LookupID = k.LookupID
		wantCode(t, s.CreateAPIKey(ctx, f.pid, &dup), thauth.EConflict)
		// Lookup ids are unique across projects, since a token names no project.
		dup.ProjectID = other.pid
		wantCode(t, s.CreateAPIKey(ctx, other.pid, &dup), thauth.EConflict)
		sameID := newKey(f.pid, "three", base)
		sameID.ID = k.ID
		wantCode(t, s.CreateAPIKey(ctx, f.pid, &sameID), thauth.EConflict)
		got, err := s.ListAPIKeys(ctx, f.pid)
		must(t, err)
		diff(t, "keys", []thauth.APIKey{k}, got)
	})

	t.Run("UnknownProject", func(t *testing.T) {
		s := open(t)
		k := newKey(newID(), "key", base)
		wantCode(t, s.CreateAPIKey(ctx, k.ProjectID, &k), thauth.ENotFound)
		ks, err := s.ListAPIKeys(ctx, k.ProjectID)
		wantNotFoundOrEmpty(t, err, len(ks))
	})

	t.Run("GetUnknown", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		_, err := s.GetAPIKey(ctx, f.pid, newID())
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("RevokeKeepsFirstTime", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		k := newKey(f.pid, "key", base)
		must(t, s.CreateAPIKey(ctx, f.pid, &k))
		other := newKey(f.pid, "other", base)
		must(t, s.CreateAPIKey(ctx, f.pid, &other))

		must(t, s.RevokeAPIKey(ctx, f.pid, k.ID, at(time.Hour)))
		got := getKey(t, s, f.pid, k.ID)
		diff(t, "revoked at", ptr(at(time.Hour)), got.RevokedAt)
		must(t, s.RevokeAPIKey(ctx, f.pid, k.ID, at(2*time.Hour)))
		must(t, s.RevokeAPIKey(ctx, f.pid, k.ID, at(time.Minute)))
		got = getKey(t, s, f.pid, k.ID)
		diff(t, "revoked at after revoking again", ptr(at(time.Hour)), got.RevokedAt)
		if got.RevokedAt != nil {
			wantUTC(t, "RevokedAt", *got.RevokedAt)
		}
		if got := getKey(t, s, f.pid, other.ID); got.RevokedAt != nil {
			t.Errorf("other key revoked too: %v", got.RevokedAt)
		}
		// Revoked keys are still listed.
		ks, err := s.ListAPIKeys(ctx, f.pid)
		must(t, err)
		if len(ks) != 2 {
			t.Errorf("listed %d keys, want 2", len(ks))
		}
		wantCode(t, s.RevokeAPIKey(ctx, f.pid, newID(), base), thauth.ENotFound)
	})

	t.Run("Touch", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		k1, k2 := newKey(f.pid, "one", base), newKey(f.pid, "two", base)
		must(t, s.CreateAPIKey(ctx, f.pid, &k1))
		must(t, s.CreateAPIKey(ctx, f.pid, &k2))
		type step struct {
			name     string
			used     map[string]time.Time
			want1    *time.Time
			want2    *time.Time
			sameTime bool
		}
		for _, st := range []step{
			{"first use", map[string]time.Time{k1.ID: at(time.Hour)}, ptr(at(time.Hour)), nil, false},
			{"later use and unknown id", map[string]time.Time{k1.ID: at(2 * time.Hour), k2.ID: at(time.Minute), newID(): base},
				ptr(at(2 * time.Hour)), ptr(at(time.Minute)), false},
			{"older use does not move back", map[string]time.Time{k1.ID: at(time.Hour)}, ptr(at(2 * time.Hour)), ptr(at(time.Minute)), false},
			{"nothing", map[string]time.Time{}, ptr(at(2 * time.Hour)), ptr(at(time.Minute)), false},
		} {
			must(t, s.TouchAPIKeys(ctx, f.pid, st.used))
			diff(t, st.name+": key 1 last used", st.want1, getKey(t, s, f.pid, k1.ID).LastUsedAt)
			diff(t, st.name+": key 2 last used", st.want2, getKey(t, s, f.pid, k2.ID).LastUsedAt)
		}
		if lu := getKey(t, s, f.pid, k1.ID).LastUsedAt; lu != nil {
			wantUTC(t, "LastUsedAt", *lu)
		}
	})
}
