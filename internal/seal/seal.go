// Package seal encrypts the secrets Thauth must be able to read back — TOTP seeds, webhook
// signing secrets, provider credentials — before they reach the database. Passwords and API
// keys are hashed elsewhere and never sealed.
//
// # Envelope encryption
//
// The operator supplies one or more master keys (THAUTH_MASTER_KEY or --master-key-file, see
// ParseMasterKeys); they never reach the database. Values are sealed with AES-256-GCM under a
// random data key; each data key is stored wrapped (AES-256-GCM) under a master key through a
// KeyStore. Rotating a master key therefore re-wraps a handful of data keys, and re-sealing the
// values themselves is a separate, resumable walk (see Rotate).
//
// A sealed value is text, safe to store in a TEXT column:
//
//	v1.<data key id>.<base64url without padding of nonce (12 bytes) || ciphertext || tag (16 bytes)>
//
// Its associated data binds it to where it is stored:
//
//	"thauth/seal/value/v1" || field(data key id) || field(purpose) || field(row id)
//
// where field(s) is len(s) as a uvarint followed by s. A value copied into another row, into
// another column (purpose), or relabelled with another data key id fails to open with
// ErrTampered, exactly like a flipped bit. A wrapped data key is
//
//	nonce (12 bytes) || AES-256-GCM(master key, data key (32 bytes))
//
// with associated data "thauth/seal/datakey/v1" || field(data key id) || field(master key id),
// so wrapped keys cannot be swapped between rows or relabelled either.
//
// # Threat model
//
// Sealing protects recoverable secrets against anyone who obtains the database but not the
// master keys: a stolen dump or backup, a read-only SQL injection, a storage snapshot, a
// database administrator. It also stops someone who can write to the database from moving a
// sealed value to another row or purpose (for example copying their own TOTP seed over a
// victim's): such a value fails to open instead of being used.
//
// It does not protect against a compromised running Thauth process or host (it holds the
// master keys and unwrapped data keys in memory), nor against an attacker who can read the
// master keys from the environment or key file, nor against rolling a row back to an older
// value it legitimately held (an older sealed value of the same row and purpose still opens).
// Whether a secret exists, its approximate length, and which data key sealed it are visible.
//
// # Rotation
//
// To retire a master key: (1) configure every node with "new,old" (the new key first, so it
// becomes active) and restart them one by one; (2) run Rotate (`thauth keys rotate`), which
// re-wraps every data key under the new master key, creates a new data key, re-seals every
// stored value with it, and retires the old data keys; (3) remove the old master key from the
// configuration. Values keep opening throughout: old data keys stay readable, and a node that
// meets a data key it has not seen reloads the key store. Retired data keys are never used to
// seal again but are kept, so a value missed by the walk still opens (NeedsReseal reports it).
//
// Each data key seals with random 96-bit nonces; rotate data keys long before 2^32 values have
// been sealed under one (secrets are few, so in practice any rotation schedule suffices).
package seal

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/thauth/thauth"
)

// Errors returned (wrapped in a *thauth.Error, test with errors.Is) by this package.
var (
	// ErrNoMasterKey: sealing is needed but no master key is configured (code EUnavailable).
	ErrNoMasterKey = errors.New("seal: no master key configured")
	// ErrWrongKey: a data key cannot be unwrapped with the configured master keys (EInternal).
	ErrWrongKey = errors.New("seal: data key cannot be unwrapped with the configured master keys")
	// ErrUnknownDataKey: a sealed value names a data key the key store does not hold (EInternal).
	ErrUnknownDataKey = errors.New("seal: unknown data key")
	// ErrTampered: authentication failed — the value was altered, or belongs to another row or
	// purpose (EInternal).
	ErrTampered = errors.New("seal: sealed value does not belong to this row or was tampered with")
	// ErrMalformed: the text is not a sealed value of a known version (EInternal).
	ErrMalformed = errors.New("seal: malformed sealed value")
)

const (
	version       = "v1"
	dataKeySize   = 32
	nonceSize     = 12
	tagSize       = 16
	valueAADLabel = "thauth/seal/value/v1"
	wrapAADLabel  = "thauth/seal/datakey/v1"
	// demandReloadEvery limits how often Open reloads the key store on meeting an unknown data
	// key, so garbage ids cannot turn into a stream of queries.
	demandReloadEvery = time.Second
	// ephemeralPrefix starts the id of every development master key.
	ephemeralPrefix = "ephemeral-"
)

// Options configure a Sealer.
type Options struct {
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default: discard
	// Production forbids the development key: without a master key New fails.
	Production bool
	// AllowDevKey lets New, outside production and only when no master key is configured,
	// generate an ephemeral master key, with a warning in the log. Values sealed under it
	// cannot be opened after the process exits.
	AllowDevKey bool
}

// Sealer seals and opens values. It is safe for concurrent use.
type Sealer struct {
	ks      KeyStore
	masters MasterKeys
	now     func() time.Time
	log     *slog.Logger

	rotateMu    sync.Mutex // one Rotate at a time
	loadMu      sync.Mutex // serialises loads and key-store writes; guards lastDemand
	lastDemand  time.Time
	mu          sync.RWMutex // guards keys and active
	keys        map[string]*dataKey
	active      *dataKey // the data key Seal uses; nil when none is usable
	inactiveWhy string   // when active is nil: why
}

// dataKey is a loaded DataKey row. Immutable once built.
type dataKey struct {
	row  DataKey
	aead cipher.AEAD // nil when the row cannot be unwrapped
	why  string      // when aead is nil: why, without secrets
}

// New returns a Sealer over ks. It loads every data key and unwraps those it can; if the store
// holds data keys but none can be unwrapped with masters (a wrong or missing master key), it
// fails with ErrWrongKey rather than start sealing under a new key. If no usable data key
// exists it creates one under the active master key.
//
// Without master keys New fails with ErrNoMasterKey ("THAUTH_MASTER_KEY or --master-key-file
// is required to store secrets"), unless opts.AllowDevKey is set and opts.Production is not, in
// which case it logs a warning and uses an ephemeral key — but never for a key store that holds
// data keys of a real master key (ErrNoMasterKey again). Callers that can run without sealing
// construct a Sealer only where one is needed. ks must not be nil.
func New(ctx context.Context, ks KeyStore, masters MasterKeys, opts Options) (*Sealer, error) {
	s := &Sealer{ks: ks, masters: masters, now: opts.Now, log: opts.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ephemeral := false
	if masters.Len() == 0 {
		if opts.Production || !opts.AllowDevKey {
			return nil, &thauth.Error{
				Code:    thauth.EUnavailable,
				Message: "THAUTH_MASTER_KEY or --master-key-file is required to store secrets (create one with `thauth keys generate`)",
				Err:     ErrNoMasterKey,
			}
		}
		id := ephemeralPrefix + randomHex(6)
		entry, _ := GenerateMasterKey(id)
		mk, err := ParseMasterKeys(entry)
		if err != nil {
			return nil, thauth.Internal(err, "cannot create an ephemeral master key")
		}
		s.masters, ephemeral = mk, true
		s.log.Warn("no master key configured: sealing secrets under an ephemeral development key; they cannot be opened after a restart. Set THAUTH_MASTER_KEY (see `thauth keys generate`) to keep them",
			"master_key_id", id)
	}

	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if err := s.loadLocked(ctx); err != nil {
		return nil, err
	}
	var unusable []*dataKey
	for _, k := range s.keys {
		if k.aead == nil {
			unusable = append(unusable, k)
		}
	}
	sort.Slice(unusable, func(i, j int) bool { return unusable[i].row.ID < unusable[j].row.ID })
	if ephemeral {
		// A development key must never start sealing into a store that real master keys
		// protect: those secrets would silently become unrecoverable at the next restart.
		var real []*dataKey
		for _, k := range unusable {
			if !strings.HasPrefix(k.row.MasterKeyID, ephemeralPrefix) {
				real = append(real, k)
			}
		}
		if len(real) > 0 {
			return nil, &thauth.Error{
				Code: thauth.EUnavailable,
				Message: fmt.Sprintf("THAUTH_MASTER_KEY or --master-key-file is required to store secrets: the key store holds data keys wrapped under master key %s",
					strings.Join(wrappedUnder(real), ",")),
				Err: ErrNoMasterKey,
			}
		}
	}
	if len(s.keys) > 0 && len(unusable) == len(s.keys) && !ephemeral {
		return nil, &thauth.Error{
			Code: thauth.EInternal,
			Message: fmt.Sprintf("none of the %d data keys in the key store can be unwrapped with the configured master keys (configured: %s; data keys are wrapped under: %s); "+
				"a master key is wrong or missing — keep the old master key configured after the new one until `thauth keys rotate` has run",
				len(s.keys), strings.Join(s.masters.IDs(), ","), strings.Join(wrappedUnder(unusable), ",")),
			Err: ErrWrongKey,
		}
	}
	for _, k := range unusable {
		s.log.Warn("data key cannot be unwrapped; values sealed under it cannot be opened", "data_key_id", k.row.ID, "reason", k.why)
	}
	if s.active == nil {
		if _, err := s.createLocked(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Seal encrypts plaintext for the row rowID of the given purpose (for example
// purpose "totp_seed" and the row's primary key) under the current data key, and returns the
// sealed text. The same purpose and rowID must be given to Open. Seal does no I/O.
//
// Errors (*thauth.Error, EInternal): empty purpose or rowID; no usable data key (ErrWrongKey,
// after another node rotated to a master key this one does not have).
func (s *Sealer) Seal(purpose, rowID string, plaintext []byte) (string, error) {
	if purpose == "" || rowID == "" {
		return "", thauth.Errorf(thauth.EInternal, "sealing needs a purpose and a row id")
	}
	s.mu.RLock()
	k, why := s.active, s.inactiveWhy
	s.mu.RUnlock()
	if k == nil {
		return "", &thauth.Error{Code: thauth.EInternal, Message: "no data key is available for sealing: " + why, Err: ErrWrongKey}
	}
	return sealWith(k, purpose, rowID, plaintext), nil
}

// Open decrypts a value sealed for the same purpose and rowID. A value sealed under a data key
// this Sealer has not loaded makes it reload the key store (at most once a second), so values
// sealed by another node after a rotation open. The caller should clear the plaintext when done.
//
// Errors are *thauth.Error with code EInternal wrapping ErrMalformed (not a sealed value),
// ErrUnknownDataKey (its data key is not in the key store), ErrWrongKey (its data key cannot be
// unwrapped with the configured master keys), or ErrTampered (altered, or sealed for another
// row or purpose); messages name the data key, purpose and row, never key material; a failure
// to reach the key store comes back as the store's error.
func (s *Sealer) Open(ctx context.Context, purpose, rowID, sealed string) ([]byte, error) {
	if purpose == "" || rowID == "" {
		return nil, thauth.Errorf(thauth.EInternal, "opening needs a purpose and a row id")
	}
	id, payload, err := parseSealed(sealed)
	if err != nil {
		return nil, err
	}
	k, err := s.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if k.aead == nil {
		return nil, &thauth.Error{
			Code:    thauth.EInternal,
			Message: fmt.Sprintf("sealed value uses data key %s which cannot be unwrapped with the configured master keys: %s", id, k.why),
			Err:     ErrWrongKey,
		}
	}
	pt, err := k.aead.Open(nil, payload[:nonceSize], payload[nonceSize:], valueAAD(id, purpose, rowID))
	if err != nil {
		return nil, &thauth.Error{
			Code:    thauth.EInternal,
			Message: fmt.Sprintf("sealed value (purpose %q, row %q) does not belong to this row or was tampered with", purpose, rowID),
			Err:     ErrTampered,
		}
	}
	return pt, nil
}

// NeedsReseal reports whether sealed is not sealed under the data key Seal currently uses
// (including text that is not a sealed value at all). Rotation walks use it to skip values
// that are already current; it does no I/O and no decryption.
func (s *Sealer) NeedsReseal(sealed string) bool {
	id, _, err := parseSealed(sealed)
	if err != nil {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.active == nil || s.active.row.ID != id
}

// ActiveDataKeyID returns the id of the data key Seal uses, or "" if none is usable.
func (s *Sealer) ActiveDataKeyID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.active == nil {
		return ""
	}
	return s.active.row.ID
}

// Reload re-reads the key store, so that data keys created, re-wrapped or retired by another
// process (a rotation run by `thauth keys rotate`, another node) take effect: Seal switches to
// the newest usable data key. Servers may call it periodically; Open calls it by itself when it
// meets an unknown data key. It returns the store's error, keeping the current keys.
func (s *Sealer) Reload(ctx context.Context) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	return s.loadLocked(ctx)
}

// lookup returns the loaded data key id, reloading the store once (rate-limited) if unknown.
func (s *Sealer) lookup(ctx context.Context, id string) (*dataKey, error) {
	s.mu.RLock()
	k := s.keys[id]
	s.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	s.loadMu.Lock()
	now := s.now()
	s.mu.RLock()
	k = s.keys[id] // loaded meanwhile by another caller?
	s.mu.RUnlock()
	if k == nil && (s.lastDemand.IsZero() || now.Sub(s.lastDemand) >= demandReloadEvery || now.Before(s.lastDemand)) {
		s.lastDemand = now
		if err := s.loadLocked(ctx); err != nil {
			s.loadMu.Unlock()
			return nil, err
		}
		s.mu.RLock()
		k = s.keys[id]
		s.mu.RUnlock()
	}
	s.loadMu.Unlock()
	if k == nil {
		return nil, &thauth.Error{
			Code:    thauth.EInternal,
			Message: fmt.Sprintf("sealed value uses data key %s which is not in the key store", id),
			Err:     ErrUnknownDataKey,
		}
	}
	return k, nil
}

// loadLocked replaces the loaded keys with the store's. Caller holds loadMu.
func (s *Sealer) loadLocked(ctx context.Context) error {
	rows, err := s.ks.ListDataKeys(ctx)
	if err != nil {
		return storeError(err, "cannot read the data keys")
	}
	s.mu.RLock()
	old := s.keys
	s.mu.RUnlock()
	keys := make(map[string]*dataKey, len(rows))
	for _, row := range rows {
		if prev := old[row.ID]; prev != nil && prev.aead != nil &&
			prev.row.MasterKeyID == row.MasterKeyID && string(prev.row.Wrapped) == string(row.Wrapped) {
			keys[row.ID] = &dataKey{row: copyDataKey(row), aead: prev.aead}
			continue
		}
		keys[row.ID] = s.unwrap(row)
	}
	s.install(keys)
	return nil
}

// install makes keys the loaded set and picks the sealing key: the newest usable one that is
// not retired.
func (s *Sealer) install(keys map[string]*dataKey) {
	var active, broken *dataKey
	for _, k := range keys {
		switch {
		case k.row.RetiredAt != nil:
		case k.aead == nil:
			if broken == nil || k.row.ID < broken.row.ID {
				broken = k
			}
		case active == nil || k.row.CreatedAt.After(active.row.CreatedAt) ||
			(k.row.CreatedAt.Equal(active.row.CreatedAt) && k.row.ID > active.row.ID):
			active = k
		}
	}
	why := ""
	switch {
	case active != nil:
	case broken != nil:
		why = fmt.Sprintf("data key %s cannot be unwrapped: %s", broken.row.ID, broken.why)
	case len(keys) == 0:
		why = "the key store holds no data key"
	default:
		why = "every data key is retired"
	}
	s.mu.Lock()
	s.keys, s.active, s.inactiveWhy = keys, active, why
	s.mu.Unlock()
}

// createLocked creates, stores and activates a new data key under the active master key.
// Caller holds loadMu.
func (s *Sealer) createLocked(ctx context.Context) (*dataKey, error) {
	raw := make([]byte, dataKeySize)
	rand.Read(raw)
	defer clear(raw)
	mk := s.masters.active()
	created := s.now().UTC().Truncate(time.Microsecond)
	s.mu.RLock()
	for _, k := range s.keys {
		// Strictly newer than every existing key, so the new key is the one Seal picks even
		// when clocks are coarse or skewed.
		if !created.After(k.row.CreatedAt) {
			created = k.row.CreatedAt.Add(time.Microsecond)
		}
	}
	s.mu.RUnlock()
	row := DataKey{ID: "dk_" + randomHex(8), MasterKeyID: mk.id, CreatedAt: created}
	row.Wrapped = wrap(mk, row.ID, raw)
	if err := s.ks.InsertDataKey(ctx, row); err != nil {
		return nil, storeError(err, "cannot store a new data key")
	}
	k := &dataKey{row: row, aead: newAEAD(raw)}
	s.mu.RLock()
	keys := make(map[string]*dataKey, len(s.keys)+1)
	for id, v := range s.keys {
		keys[id] = v
	}
	s.mu.RUnlock()
	keys[row.ID] = k
	s.install(keys)
	s.log.Info("created data key", "data_key_id", row.ID, "master_key_id", mk.id)
	return k, nil
}

// unwrap builds a dataKey from a row, recording why it is unusable if it is.
func (s *Sealer) unwrap(row DataKey) *dataKey {
	k := &dataKey{row: copyDataKey(row)}
	raw, why := s.unwrapRaw(row)
	if raw == nil {
		k.why = why
		return k
	}
	k.aead = newAEAD(raw)
	clear(raw)
	return k
}

// unwrapRaw returns the raw data key of row (the caller clears it), or nil and why not.
func (s *Sealer) unwrapRaw(row DataKey) ([]byte, string) {
	mk, ok := s.masters.find(row.MasterKeyID)
	if !ok {
		return nil, fmt.Sprintf("it is wrapped under master key %q, which is not configured", row.MasterKeyID)
	}
	if len(row.Wrapped) != nonceSize+dataKeySize+tagSize {
		return nil, "its stored wrapped key has the wrong length (the row was altered)"
	}
	raw, err := mk.aead.Open(nil, row.Wrapped[:nonceSize], row.Wrapped[nonceSize:], wrapAAD(row.ID, row.MasterKeyID))
	if err != nil {
		return nil, fmt.Sprintf("master key %q is configured but does not unwrap it (wrong key material, or the row was altered)", row.MasterKeyID)
	}
	return raw, ""
}

func sealWith(k *dataKey, purpose, rowID string, plaintext []byte) string {
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+tagSize)
	rand.Read(buf)
	out := k.aead.Seal(buf, buf[:nonceSize], plaintext, valueAAD(k.row.ID, purpose, rowID))
	return version + "." + k.row.ID + "." + base64.RawURLEncoding.EncodeToString(out)
}

func wrap(mk masterKey, dataKeyID string, raw []byte) []byte {
	buf := make([]byte, nonceSize, nonceSize+len(raw)+tagSize)
	rand.Read(buf)
	return mk.aead.Seal(buf, buf[:nonceSize], raw, wrapAAD(dataKeyID, mk.id))
}

// parseSealed splits a sealed value into its data key id and nonce||ciphertext.
func parseSealed(sealed string) (id string, payload []byte, err error) {
	malformed := func(why string) (string, []byte, error) {
		return "", nil, &thauth.Error{Code: thauth.EInternal, Message: "sealed value is malformed: " + why, Err: ErrMalformed}
	}
	v, rest, ok := strings.Cut(sealed, ".")
	if !ok {
		return malformed("expected v1.<data key id>.<data>")
	}
	if v != version {
		return malformed("unsupported version")
	}
	id, data, ok := strings.Cut(rest, ".")
	if !ok || !validDataKeyID(id) {
		return malformed("bad data key id")
	}
	payload, derr := base64.RawURLEncoding.DecodeString(data)
	if derr != nil {
		return malformed("bad base64")
	}
	if len(payload) < nonceSize+tagSize {
		return malformed("too short")
	}
	return id, payload, nil
}

func valueAAD(dataKeyID, purpose, rowID string) []byte {
	b := make([]byte, 0, len(valueAADLabel)+len(dataKeyID)+len(purpose)+len(rowID)+3*binary.MaxVarintLen64)
	b = append(b, valueAADLabel...)
	return appendFields(b, dataKeyID, purpose, rowID)
}

func wrapAAD(dataKeyID, masterKeyID string) []byte {
	return appendFields([]byte(wrapAADLabel), dataKeyID, masterKeyID)
}

func appendFields(b []byte, fields ...string) []byte {
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

func validDataKeyID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func wrappedUnder(keys []*dataKey) []string {
	seen := map[string]bool{}
	var ids []string
	for _, k := range keys {
		if !seen[k.row.MasterKeyID] {
			seen[k.row.MasterKeyID] = true
			ids = append(ids, k.row.MasterKeyID)
		}
	}
	sort.Strings(ids)
	return ids
}

// storeError passes a store's *thauth.Error through (keeping EUnavailable and friends) and
// wraps anything else as EInternal.
func storeError(err error, msg string) error {
	var te *thauth.Error
	if errors.As(err, &te) {
		return err
	}
	return thauth.Internal(err, "%s", msg)
}
