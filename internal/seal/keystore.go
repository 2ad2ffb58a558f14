package seal

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/thauth/thauth"
)

// DataKey is one stored data key: a random AES-256 key wrapped under a master key. Stores keep
// it as a plain row and never interpret it.
type DataKey struct {
	ID          string     // appears in every value sealed under the key; [A-Za-z0-9_-], at most 64 bytes
	MasterKeyID string     // the master key Wrapped is wrapped under
	Wrapped     []byte     // nonce || AES-256-GCM(master key, data key); see the package comment
	CreatedAt   time.Time  // UTC, microseconds
	RetiredAt   *time.Time // set once rotation has re-sealed every value away from the key
}

// KeyStore persists data keys. The data keys belong to the installation, not to an
// organization or project, so no method takes a tenant id.
//
// Implementations store rows as given and are safe for concurrent use. Errors follow the store
// contract of package thauth: EConflict when InsertDataKey meets an existing id, ENotFound when
// UpdateDataKey addresses no row, EUnavailable when the database cannot be reached.
type KeyStore interface {
	// ListDataKeys returns every data key, retired ones included, in any order.
	ListDataKeys(ctx context.Context) ([]DataKey, error)
	// InsertDataKey adds k.
	InsertDataKey(ctx context.Context, k DataKey) error
	// UpdateDataKey replaces MasterKeyID, Wrapped and RetiredAt of the row with id k.ID
	// (ID and CreatedAt never change).
	UpdateDataKey(ctx context.Context, k DataKey) error
}

// MemoryKeyStore is a KeyStore in memory, for tests and for single-process use where losing the
// data keys on exit is acceptable. The zero value is ready to use; it is safe for concurrent use.
type MemoryKeyStore struct {
	mu   sync.Mutex
	rows map[string]DataKey
}

var _ KeyStore = (*MemoryKeyStore)(nil)

// ListDataKeys returns copies of every row, ordered by creation time and id.
func (m *MemoryKeyStore) ListDataKeys(ctx context.Context) ([]DataKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]DataKey, 0, len(m.rows))
	for _, k := range m.rows {
		out = append(out, copyDataKey(k))
	}
	slices.SortFunc(out, func(a, b DataKey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// InsertDataKey stores a copy of k; EConflict if its id exists.
func (m *MemoryKeyStore) InsertDataKey(ctx context.Context, k DataKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rows[k.ID]; ok {
		return thauth.Errorf(thauth.EConflict, "data key %s already exists", k.ID)
	}
	if m.rows == nil {
		m.rows = map[string]DataKey{}
	}
	m.rows[k.ID] = copyDataKey(k)
	return nil
}

// UpdateDataKey replaces MasterKeyID, Wrapped and RetiredAt of row k.ID; ENotFound if absent.
func (m *MemoryKeyStore) UpdateDataKey(ctx context.Context, k DataKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	row, ok := m.rows[k.ID]
	if !ok {
		return thauth.Errorf(thauth.ENotFound, "data key %s not found", k.ID)
	}
	k = copyDataKey(k)
	row.MasterKeyID, row.Wrapped, row.RetiredAt = k.MasterKeyID, k.Wrapped, k.RetiredAt
	m.rows[k.ID] = row
	return nil
}

func copyDataKey(k DataKey) DataKey {
	k.Wrapped = slices.Clone(k.Wrapped)
	if k.RetiredAt != nil {
		t := *k.RetiredAt
		k.RetiredAt = &t
	}
	return k
}
