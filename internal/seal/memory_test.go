package seal_test

import (
	"context"
	"testing"
	"time"

	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/seal/sealtest"
)

func TestMemoryKeyStore(t *testing.T) {
	sealtest.RunKeyStore(t, func(*testing.T) seal.KeyStore { return &seal.MemoryKeyStore{} })
}

func TestMemoryKeyStoreListsInCreationOrder(t *testing.T) {
	ctx := context.Background()
	var ks seal.MemoryKeyStore
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, k := range []seal.DataKey{
		{ID: "dk_c", CreatedAt: t0.Add(time.Second)},
		{ID: "dk_b", CreatedAt: t0},
		{ID: "dk_a", CreatedAt: t0.Add(time.Second)},
	} {
		if err := ks.InsertDataKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	rows, _ := ks.ListDataKeys(ctx)
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	if got := ids[0] + "," + ids[1] + "," + ids[2]; got != "dk_b,dk_a,dk_c" {
		t.Errorf("order %s, want dk_b,dk_a,dk_c", got)
	}
}
