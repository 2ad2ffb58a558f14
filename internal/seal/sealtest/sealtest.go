// Package sealtest is the conformance suite for implementations of seal.KeyStore: every store
// (memory, SQLite, PostgreSQL) runs it so that the Sealer can rely on the same behaviour from
// each.
package sealtest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/seal"
)

// RunKeyStore runs the KeyStore contract against stores made by open, which must return an
// empty store (no data keys) each time it is called.
func RunKeyStore(t *testing.T, open func(t *testing.T) seal.KeyStore) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC) // microsecond precision
	ctx := context.Background()

	t.Run("empty", func(t *testing.T) {
		ks := open(t)
		rows, err := ks.ListDataKeys(ctx)
		if err != nil || len(rows) != 0 {
			t.Fatalf("ListDataKeys on an empty store = %v, %v", rows, err)
		}
	})

	t.Run("insert and list round trip every field", func(t *testing.T) {
		ks := open(t)
		retired := t0.Add(time.Hour)
		want := []seal.DataKey{
			{ID: "dk_0123456789abcdef", MasterKeyID: "k1", Wrapped: bytes.Repeat([]byte{0, 0xff, 7}, 20), CreatedAt: t0},
			{ID: "dk_fedcba9876543210", MasterKeyID: "key-2026.03", Wrapped: []byte{1, 2, 3}, CreatedAt: t0.Add(time.Microsecond), RetiredAt: &retired},
		}
		for _, k := range want {
			if err := ks.InsertDataKey(ctx, k); err != nil {
				t.Fatalf("InsertDataKey(%s): %v", k.ID, err)
			}
		}
		got := byID(t, ks)
		for _, w := range want {
			g, ok := got[w.ID]
			if !ok {
				t.Errorf("data key %s not listed", w.ID)
				continue
			}
			equal(t, g, w)
		}
		if len(got) != len(want) {
			t.Errorf("%d data keys listed, want %d", len(got), len(want))
		}
	})

	t.Run("duplicate id is a conflict", func(t *testing.T) {
		ks := open(t)
		k := seal.DataKey{ID: "dk_a", MasterKeyID: "k1", Wrapped: []byte{1}, CreatedAt: t0}
		if err := ks.InsertDataKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		k.MasterKeyID = "k2"
		if err := ks.InsertDataKey(ctx, k); thauth.ErrorCodeOf(err) != thauth.EConflict {
			t.Errorf("second InsertDataKey error = %v, want EConflict", err)
		}
		if got := byID(t, ks)["dk_a"]; got.MasterKeyID != "k1" {
			t.Errorf("the conflicting insert changed the row: %+v", got)
		}
	})

	t.Run("update replaces master key, wrapped key and retirement only", func(t *testing.T) {
		ks := open(t)
		orig := seal.DataKey{ID: "dk_a", MasterKeyID: "k1", Wrapped: []byte{1, 2}, CreatedAt: t0}
		other := seal.DataKey{ID: "dk_b", MasterKeyID: "k1", Wrapped: []byte{3}, CreatedAt: t0}
		for _, k := range []seal.DataKey{orig, other} {
			if err := ks.InsertDataKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		retired := t0.Add(2 * time.Hour)
		upd := seal.DataKey{ID: "dk_a", MasterKeyID: "k2", Wrapped: []byte{9, 9, 9}, CreatedAt: t0.Add(99 * time.Hour), RetiredAt: &retired}
		if err := ks.UpdateDataKey(ctx, upd); err != nil {
			t.Fatalf("UpdateDataKey: %v", err)
		}
		rows := byID(t, ks)
		want := upd
		want.CreatedAt = t0 // never changes
		equal(t, rows["dk_a"], want)
		equal(t, rows["dk_b"], other)

		// Un-retiring is a plain update too (the Sealer never does it, but stores must not
		// ignore a nil RetiredAt).
		upd.RetiredAt = nil
		if err := ks.UpdateDataKey(ctx, upd); err != nil {
			t.Fatal(err)
		}
		if got := byID(t, ks)["dk_a"]; got.RetiredAt != nil {
			t.Errorf("RetiredAt not cleared: %v", got.RetiredAt)
		}
	})

	t.Run("update of a missing key is not found", func(t *testing.T) {
		ks := open(t)
		err := ks.UpdateDataKey(ctx, seal.DataKey{ID: "dk_missing", MasterKeyID: "k1", Wrapped: []byte{1}, CreatedAt: t0})
		if !thauth.IsNotFound(err) {
			t.Errorf("error = %v, want ENotFound", err)
		}
	})

	t.Run("callers' slices are not retained", func(t *testing.T) {
		ks := open(t)
		k := seal.DataKey{ID: "dk_a", MasterKeyID: "k1", Wrapped: []byte{1, 2, 3}, CreatedAt: t0}
		if err := ks.InsertDataKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		k.Wrapped[0] = 42
		rows, _ := ks.ListDataKeys(ctx)
		rows[0].Wrapped[1] = 42
		if got := byID(t, ks)["dk_a"]; !bytes.Equal(got.Wrapped, []byte{1, 2, 3}) {
			t.Errorf("stored wrapped key changed through a caller's slice: %v", got.Wrapped)
		}
	})

	t.Run("works with a Sealer", func(t *testing.T) {
		ks := open(t)
		entry, _ := seal.GenerateMasterKey("k1")
		mk, err := seal.ParseMasterKeys(entry)
		if err != nil {
			t.Fatal(err)
		}
		s, err := seal.New(ctx, ks, mk, seal.Options{Production: true})
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := s.Seal("totp_seed", "row-1", []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rotate(ctx, func(ctx context.Context, reseal seal.Resealer) error {
			sealed, err = reseal("totp_seed", "row-1", sealed)
			return err
		}); err != nil {
			t.Fatalf("Rotate: %v", err)
		}
		s2, err := seal.New(ctx, ks, mk, seal.Options{Production: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s2.Open(ctx, "totp_seed", "row-1", sealed); err != nil || string(got) != "secret" {
			t.Errorf("Open after rotation through the store = %q, %v", got, err)
		}
	})
}

func byID(t *testing.T, ks seal.KeyStore) map[string]seal.DataKey {
	t.Helper()
	rows, err := ks.ListDataKeys(context.Background())
	if err != nil {
		t.Fatalf("ListDataKeys: %v", err)
	}
	m := map[string]seal.DataKey{}
	for _, r := range rows {
		m[r.ID] = r
	}
	return m
}

func equal(t *testing.T, got, want seal.DataKey) {
	t.Helper()
	if got.ID != want.ID || got.MasterKeyID != want.MasterKeyID || !bytes.Equal(got.Wrapped, want.Wrapped) || !got.CreatedAt.Equal(want.CreatedAt) ||
		(got.RetiredAt == nil) != (want.RetiredAt == nil) || (got.RetiredAt != nil && !got.RetiredAt.Equal(*want.RetiredAt)) {
		t.Errorf("data key = %+v (retired %v), want %+v (retired %v)", got, got.RetiredAt, want, want.RetiredAt)
	}
}
