package seal

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// table simulates a database table of sealed values, keyed by row id.
type table struct {
	mu      sync.Mutex
	purpose map[string]string
	sealed  map[string]string
}

func (tb *table) rows() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	ids := make([]string, 0, len(tb.sealed))
	for id := range tb.sealed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (tb *table) get(id string) (purpose, sealed string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.purpose[id], tb.sealed[id]
}

func (tb *table) put(id, purpose, sealed string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.purpose[id], tb.sealed[id] = purpose, sealed
}

// walk is what `thauth keys rotate` does for each table: pass every value through reseal and
// write back what changed.
func (tb *table) walk(stopAfter int) func(context.Context, Resealer) error {
	return func(ctx context.Context, reseal Resealer) error {
		for i, id := range tb.rows() {
			if stopAfter >= 0 && i == stopAfter {
				return thauth.Errorf(thauth.EUnavailable, "database went away")
			}
			purpose, old := tb.get(id)
			out, err := reseal(purpose, id, old)
			if err != nil {
				return err
			}
			if out != old {
				tb.put(id, purpose, out)
			}
		}
		return nil
	}
}

func secretOf(id string) string { return "secret of " + id }

func fillTable(t *testing.T, s *Sealer, n int) *table {
	t.Helper()
	tb := &table{purpose: map[string]string{}, sealed: map[string]string{}}
	purposes := []string{"totp_seed", "webhook_secret", "provider_credential"}
	for i := range n {
		id := fmt.Sprintf("row-%03d", i)
		sealed, err := s.Seal(purposes[i%len(purposes)], id, []byte(secretOf(id)))
		if err != nil {
			t.Fatal(err)
		}
		tb.put(id, purposes[i%len(purposes)], sealed)
	}
	return tb
}

func checkTable(t *testing.T, s *Sealer, tb *table) {
	t.Helper()
	for _, id := range tb.rows() {
		purpose, sealed := tb.get(id)
		got, err := s.Open(context.Background(), purpose, id, sealed)
		if err != nil {
			t.Fatalf("Open(%s): %v", id, err)
		}
		if string(got) != secretOf(id) {
			t.Fatalf("Open(%s) = %q", id, got)
		}
	}
}

// TestRotateMasterKey follows the operator's procedure: k1 in use; configure "k2,k1"; rotate;
// remove k1. Every one of 100 values opens at every step.
func TestRotateMasterKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	k1, k2 := genEntry(t, "k1"), genEntry(t, "k2")

	old := f.sealer(t, parseKeys(t, k1))
	tb := fillTable(t, old, 100)
	oldDataKey := old.ActiveDataKeyID()
	missed, _ := old.Seal("totp_seed", "missed", []byte("m")) // a value the walk will not see

	// Step 1: the new master key is configured first; nothing is re-wrapped yet.
	s := f.sealer(t, parseKeys(t, k2, k1))
	checkTable(t, s, tb)
	if s.ActiveDataKeyID() != oldDataKey {
		t.Fatalf("adding a master key created a data key")
	}

	// Step 2: rotate.
	f.clock.Advance(time.Hour)
	res, err := s.Rotate(ctx, tb.walk(-1))
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if res.NewDataKeyID == oldDataKey || res.NewDataKeyID != s.ActiveDataKeyID() {
		t.Errorf("NewDataKeyID = %s, active %s, old %s", res.NewDataKeyID, s.ActiveDataKeyID(), oldDataKey)
	}
	if fmt.Sprint(res.Rewrapped) != "["+oldDataKey+"]" || fmt.Sprint(res.Retired) != "["+oldDataKey+"]" || res.Resealed != 100 || res.Unchanged != 0 {
		t.Errorf("result = %+v", res)
	}
	rows, _ := f.ks.ListDataKeys(ctx)
	for _, r := range rows {
		if r.MasterKeyID != "k2" {
			t.Errorf("data key %s still wrapped under %s", r.ID, r.MasterKeyID)
		}
		if retired := r.RetiredAt != nil; retired != (r.ID == oldDataKey) {
			t.Errorf("data key %s retired = %v", r.ID, retired)
		}
	}
	for _, id := range tb.rows() {
		if _, sealed := tb.get(id); s.NeedsReseal(sealed) {
			t.Errorf("row %s still needs re-sealing after rotation", id)
		}
	}
	checkTable(t, s, tb)
	// A node still configured with k1 only cannot unwrap the new data key: that is why every
	// node gets "k2,k1" before the rotation. The error says so.
	row0 := tb.rows()[0]
	purpose, sealed := tb.get(row0)
	_, err = old.Open(ctx, purpose, row0, sealed)
	wantErr(t, err, thauth.EInternal, ErrWrongKey, res.NewDataKeyID, `master key "k2", which is not configured`)
	_, err = old.Seal("totp_seed", "new-row", []byte("x"))
	wantErr(t, err, thauth.EInternal, ErrWrongKey, "no data key is available for sealing")

	// Step 3: k1 removed from the configuration.
	s3 := f.sealer(t, parseKeys(t, k2))
	checkTable(t, s3, tb)
	if s3.ActiveDataKeyID() != res.NewDataKeyID {
		t.Errorf("after removing k1 the active data key is %s, want %s", s3.ActiveDataKeyID(), res.NewDataKeyID)
	}
	// A value the walk missed (sealed under the retired data key) still opens with k2 only.
	if got, err := s3.Open(ctx, "totp_seed", "missed", missed); err != nil || string(got) != "m" {
		t.Errorf("value under the retired data key: %q, %v", got, err)
	}
	if !s3.NeedsReseal(missed) {
		t.Errorf("NeedsReseal(value under retired key) = false")
	}
}

// TestRotateInterruptedAndResumed: a walk that fails leaves everything readable and retires
// nothing; running Rotate again finishes the job.
func TestRotateInterruptedAndResumed(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	k1, k2 := genEntry(t, "k1"), genEntry(t, "k2")
	tb := fillTable(t, f.sealer(t, parseKeys(t, k1)), 100)
	s := f.sealer(t, parseKeys(t, k2, k1))

	res, err := s.Rotate(ctx, tb.walk(50))
	wantErr(t, err, thauth.EUnavailable, nil, "key rotation stopped while re-sealing values (50 re-sealed so far)", "run the rotation again", "database went away")
	if len(res.Retired) != 0 {
		t.Errorf("retired %v after a failed walk", res.Retired)
	}
	checkTable(t, s, tb)

	res2, err := s.Rotate(ctx, tb.walk(-1))
	if err != nil {
		t.Fatalf("second Rotate: %v", err)
	}
	if res2.Resealed != 100 || len(res2.Retired) != 2 || len(res2.Rewrapped) != 0 {
		t.Errorf("second rotation result = %+v", res2)
	}
	checkTable(t, f.sealer(t, parseKeys(t, k2)), tb)
}

// TestRotateOnline: Seal and Open keep working in other goroutines while a rotation runs, and a
// value sealed during the walk under the new key is left unchanged by it.
func TestRotateOnline(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	k1, k2 := genEntry(t, "k1"), genEntry(t, "k2")
	tb := fillTable(t, f.sealer(t, parseKeys(t, k1)), 100)
	s := f.sealer(t, parseKeys(t, k2, k1))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("live-%d-%d", g, i)
				sealed, err := s.Seal("totp_seed", id, []byte(id))
				if err == nil {
					var got []byte
					got, err = s.Open(ctx, "totp_seed", id, sealed)
					if err == nil && string(got) != id {
						err = errors.New("wrong plaintext")
					}
				}
				if err == nil {
					row := tb.rows()[i%100]
					purpose, sealed := tb.get(row)
					_, err = s.Open(ctx, purpose, row, sealed)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}

	res, err := s.Rotate(ctx, func(ctx context.Context, reseal Resealer) error {
		if err := tb.walk(-1)(ctx, reseal); err != nil {
			return err
		}
		// Written by a request during the walk, after the new data key became active.
		id := "written-during-walk"
		sealed, err := s.Seal("totp_seed", id, []byte(secretOf(id)))
		if err != nil {
			return err
		}
		tb.put(id, "totp_seed", sealed)
		out, err := reseal("totp_seed", id, sealed)
		if err != nil {
			return err
		}
		if out != sealed {
			return errors.New("a value already under the new data key was re-sealed")
		}
		return nil
	})
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Seal/Open during rotation: %v", err)
	}
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if res.Resealed != 100 || res.Unchanged != 1 {
		t.Errorf("result = %+v", res)
	}
	checkTable(t, f.sealer(t, parseKeys(t, k2)), tb)
}

func TestRotateRefusesUnreadableDataKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	s := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
	stray := DataKey{ID: "dk_stray", MasterKeyID: "gone", Wrapped: make([]byte, 60), CreatedAt: f.clock.Now()}
	if err := f.ks.InsertDataKey(ctx, stray); err != nil {
		t.Fatal(err)
	}
	before, _ := f.ks.ListDataKeys(ctx)
	walked := false
	_, err := s.Rotate(ctx, func(context.Context, Resealer) error { walked = true; return nil })
	wantErr(t, err, thauth.EInternal, ErrWrongKey, "cannot rotate: data key dk_stray cannot be unwrapped", `"gone", which is not configured`)
	after, _ := f.ks.ListDataKeys(ctx)
	if walked || len(after) != len(before) {
		t.Errorf("rotation wrote or walked before refusing (walked %v, %d → %d keys)", walked, len(before), len(after))
	}

	// Once retired (its values are known to be gone), the stray key no longer blocks rotation.
	retired := f.clock.Now()
	stray.RetiredAt = &retired
	if err := f.ks.UpdateDataKey(ctx, stray); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rotate(ctx, func(context.Context, Resealer) error { return nil }); err != nil {
		t.Errorf("Rotate with a retired unreadable key: %v", err)
	}
}

// TestRotateWalkErrorsPassThrough: a value that does not open stops the rotation with Open's error.
func TestRotateWalkErrorsPassThrough(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	s := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
	sealed, _ := s.Seal("totp_seed", "u1", []byte("x"))
	_, err := s.Rotate(ctx, func(ctx context.Context, reseal Resealer) error {
		_, err := reseal("totp_seed", "u2", sealed) // stored in the wrong row
		return err
	})
	wantErr(t, err, thauth.EInternal, ErrTampered, "does not belong to this row")
}
