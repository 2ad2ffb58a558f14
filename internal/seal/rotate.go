package seal

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/thauth/thauth"
)

// Resealer opens a value sealed for purpose and rowID (under any data key the Sealer can
// unwrap, retired ones included) and returns it sealed under the rotation's new data key. A
// value already under the new key is verified and returned unchanged, so the walk can skip the
// write when the result equals its input, and an interrupted rotation can simply run again.
// Errors are those of Open. A Resealer is safe for concurrent use.
type Resealer func(purpose, rowID, sealed string) (string, error)

// RotateResult reports what Rotate did.
type RotateResult struct {
	NewDataKeyID string   // the data key values are now sealed under
	Rewrapped    []string // data keys re-wrapped under the active master key
	Resealed     int      // values the walk re-sealed
	Unchanged    int      // values the walk found already sealed under the new data key
	Retired      []string // data keys retired at the end
}

// Rotate moves every data key and every sealed value onto the active master key, online:
//
//  1. every data key not wrapped under the active master key is re-wrapped under it (so the
//     other master keys are no longer needed to unwrap anything);
//  2. a new data key is created under the active master key; from then on Seal uses it;
//  3. walk is called once and must pass every stored sealed value through reseal and write
//     back the result where it differs (the caller knows its tables; the package does not);
//  4. if walk succeeded, every data key that existed before step 2 is retired.
//
// Values keep opening throughout: old data keys stay readable, retired ones included. Other
// processes pick the new data key up when they next Reload or meet it in Open. After Rotate
// returns without error the previous master keys can be removed from the configuration.
//
// Rotate fails before writing anything if a data key that is not retired cannot be unwrapped
// (ErrWrongKey: configure the master key it is wrapped under). If walk fails, steps 1 and 2
// stay done, nothing is retired, and the error (wrapping walk's) says to run Rotate again.
// Only one Rotate runs at a time per Sealer; run one rotation per installation at a time.
func (s *Sealer) Rotate(ctx context.Context, walk func(ctx context.Context, reseal Resealer) error) (*RotateResult, error) {
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	res := &RotateResult{Rewrapped: []string{}, Retired: []string{}}

	newKey, before, err := s.rewrapAndCreate(ctx, res)
	if err != nil {
		return res, err
	}
	res.NewDataKeyID = newKey.row.ID

	var resealed, unchanged atomic.Int64
	reseal := func(purpose, rowID, sealed string) (string, error) {
		pt, err := s.Open(ctx, purpose, rowID, sealed)
		if err != nil {
			return "", err
		}
		defer clear(pt)
		if id, _, _ := parseSealed(sealed); id == newKey.row.ID {
			unchanged.Add(1)
			return sealed, nil
		}
		out := sealWith(newKey, purpose, rowID, pt)
		resealed.Add(1)
		return out, nil
	}
	err = walk(ctx, reseal)
	res.Resealed, res.Unchanged = int(resealed.Load()), int(unchanged.Load())
	if err != nil {
		// The outer error has the inner one's code, so the inner message is shown exactly
		// when it would have been shown on its own.
		cause := "unexpected error"
		var te *thauth.Error
		if errors.As(err, &te) {
			cause = te.Message
		}
		return res, &thauth.Error{
			Code: thauth.ErrorCodeOf(err),
			Message: fmt.Sprintf("key rotation stopped while re-sealing values (%d re-sealed so far): data keys are re-wrapped and data key %s is active, nothing was retired; fix the cause and run the rotation again: %s",
				res.Resealed, newKey.row.ID, cause),
			Err: err,
		}
	}
	s.log.Info("key rotation: values re-sealed", "data_key_id", newKey.row.ID, "resealed", res.Resealed, "unchanged", res.Unchanged)

	if err := s.retire(ctx, before, res); err != nil {
		return res, err
	}
	s.log.Info("key rotation done", "master_key_id", s.masters.ActiveID(), "data_key_id", newKey.row.ID,
		"rewrapped", len(res.Rewrapped), "retired", len(res.Retired))
	return res, nil
}

// rewrapAndCreate does steps 1 and 2 of Rotate; it returns the new key and the ids of the
// keys that existed before it.
func (s *Sealer) rewrapAndCreate(ctx context.Context, res *RotateResult) (*dataKey, map[string]bool, error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return nil, nil, err
	}
	keys := s.sortedKeys()
	for _, k := range keys {
		if k.aead == nil && k.row.RetiredAt == nil {
			return nil, nil, &thauth.Error{
				Code:    thauth.EInternal,
				Message: fmt.Sprintf("cannot rotate: data key %s cannot be unwrapped: %s", k.row.ID, k.why),
				Err:     ErrWrongKey,
			}
		}
	}
	mk := s.masters.active()
	before := map[string]bool{}
	for _, k := range keys {
		before[k.row.ID] = true
		if k.aead == nil {
			s.log.Warn("key rotation: skipping a retired data key that cannot be unwrapped", "data_key_id", k.row.ID, "reason", k.why)
			continue
		}
		if k.row.MasterKeyID == mk.id {
			continue
		}
		raw, why := s.unwrapRaw(k.row)
		if raw == nil { // unwrapped a moment ago; only a concurrent change of the row gets here
			return nil, nil, &thauth.Error{Code: thauth.EInternal, Message: fmt.Sprintf("cannot rotate: data key %s cannot be unwrapped: %s", k.row.ID, why), Err: ErrWrongKey}
		}
		row := copyDataKey(k.row)
		row.MasterKeyID, row.Wrapped = mk.id, wrap(mk, row.ID, raw)
		clear(raw)
		if err := s.ks.UpdateDataKey(ctx, row); err != nil {
			return nil, nil, storeError(err, "cannot store a re-wrapped data key")
		}
		res.Rewrapped = append(res.Rewrapped, row.ID)
		s.log.Info("key rotation: data key re-wrapped", "data_key_id", row.ID, "from_master_key_id", k.row.MasterKeyID, "master_key_id", mk.id)
	}
	if len(res.Rewrapped) > 0 {
		if err := s.loadLocked(ctx); err != nil {
			return nil, nil, err
		}
	}
	k, err := s.createLocked(ctx)
	if err != nil {
		return nil, nil, err
	}
	return k, before, nil
}

// retire does step 4 of Rotate: retire every key in before that is not retired yet.
func (s *Sealer) retire(ctx context.Context, before map[string]bool, res *RotateResult) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	for _, k := range s.sortedKeys() {
		if !before[k.row.ID] || k.row.RetiredAt != nil {
			continue
		}
		row := copyDataKey(k.row)
		row.RetiredAt = &now
		if err := s.ks.UpdateDataKey(ctx, row); err != nil {
			return storeError(err, "cannot retire a data key")
		}
		res.Retired = append(res.Retired, row.ID)
	}
	return s.loadLocked(ctx)
}

func (s *Sealer) sortedKeys() []*dataKey {
	s.mu.RLock()
	keys := make([]*dataKey, 0, len(s.keys))
	for _, k := range s.keys {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	sort.Slice(keys, func(i, j int) bool { return keys[i].row.ID < keys[j].row.ID })
	return keys
}
