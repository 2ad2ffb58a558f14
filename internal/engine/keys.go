package engine

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/thauth/thauth"
)

// Principal is the caller an API key authenticates: the key, its project and organization,
// and the key's scopes.
type Principal struct {
	KeyID          string
	ProjectID      string
	OrganizationID string
	Scopes         []string // shared with the engine: do not modify
	// LimitKey is "key:" + KeyID, the key's rate limiter key, built once per key so that
	// the request path does not build it for every request.
	LimitKey string
}

// HasScope reports whether the principal's key carries scope s. Scopes do not imply each
// other: admin does not include decisions:read.
func (p Principal) HasScope(s string) bool { return slices.Contains(p.Scopes, s) }

// keyEntry is one API key as the engine holds it: an immutable copy of the stored key plus a
// usage record shared by every version of the entry, so that reloading a key keeps its
// in-memory last use.
type keyEntry struct {
	key      thauth.APIKey
	orgID    string
	limitKey string // Principal.LimitKey
	usage    *keyUsage
}

// keyUsage records the newest use of a key in Unix microseconds (0 = none). last is written
// on the request path with an atomic compare-and-swap only when it moves forward; taken is
// what the last TakeKeyUsage returned and is written only under Engine.takeMu.
type keyUsage struct {
	last  atomic.Int64
	taken atomic.Int64
}

func (u *keyUsage) record(us int64) {
	for {
		old := u.last.Load()
		if us <= old || u.last.CompareAndSwap(old, us) {
			return
		}
	}
}

var dummyHash = thauth.HashToken("thauth: no such key")

// keySet is a project's keys by key id; replaced as a whole (copy-on-write).
type keySet map[string]*keyEntry

// Authenticate resolves an API key token to its principal. Malformed tokens (bad shape or
// checksum) are rejected without a lookup; the secret is compared in constant time against
// the stored hash (unknown lookup ids are hashed too, so they take as long as a wrong
// secret); revoked and expired keys (at Options.Now) fail, and so do the keys of suspended
// organizations. The answer is only "ok or not": callers must not tell the reasons apart to
// clients (spec §4). A successful use is recorded in memory (see TakeKeyUsage). Safe for
// concurrent use; takes no lock.
func (e *Engine) Authenticate(token string) (Principal, bool) {
	p, c := e.AuthenticateDetail(token)
	return p, c.Status == KeyValid
}

// KeyStatus says why a token did or did not authenticate.
type KeyStatus uint8

const (
	// KeyValid: the token is a usable key; the Principal is its caller.
	KeyValid KeyStatus = iota
	// KeyMalformed: not an API key at all (bad shape or checksum).
	KeyMalformed
	// KeyUnknown: well formed, but no key has its lookup id.
	KeyUnknown
	// KeyWrongSecret: the lookup id of an existing key with a wrong secret.
	KeyWrongSecret
	// KeyRevoked: the right secret of a revoked key.
	KeyRevoked
	// KeyExpired: the right secret of an expired key.
	KeyExpired
	// KeySuspended: the right secret of a usable key of a suspended organization.
	KeySuspended
)

var keyStatusNames = [...]string{"valid", "malformed", "unknown", "wrong_secret", "revoked", "expired", "suspended"}

// String returns the status as a short snake_case word, for metrics and logs.
func (s KeyStatus) String() string {
	if int(s) < len(keyStatusNames) {
		return keyStatusNames[s]
	}
	return "invalid"
}

// KeyCheck is what AuthenticateDetail found out about a token. For the statuses that name an
// existing key (KeyWrongSecret, KeyRevoked, KeyExpired, KeySuspended) it identifies that key
// by its ids, never by its value, so that the caller can record the failure against the
// right project (abuse detection, security events); the ids are empty otherwise. It is
// never an authentication: only a KeyValid answer's Principal is a caller.
type KeyCheck struct {
	Status         KeyStatus
	KeyID          string
	ProjectID      string
	OrganizationID string
}

// AuthenticateDetail is Authenticate telling the kinds of failure apart, for the caller's
// own records: clients must get the same answer for every one of them (spec §4). It does
// the same work as Authenticate whatever the token — one constant-time hash comparison for
// every well-formed token, against a dummy hash when the lookup id is unknown — so the kinds
// take equally long. The Principal is the zero value unless the status is KeyValid.
func (e *Engine) AuthenticateDetail(token string) (Principal, KeyCheck) {
	lookup, ok := thauth.ParseToken(token)
	if !ok {
		return Principal{}, KeyCheck{Status: KeyMalformed}
	}
	suspended := false
	v, ok := e.keys.Load(lookup)
	if !ok {
		// The keys of suspended organizations are kept out of e.keys (suspend.go); they
		// are looked up only to name the failure.
		if v, ok = e.suspendedKeys.Load(lookup); !ok {
			// Hash anyway, so that an unknown lookup id takes as long as a wrong secret.
			thauth.TokenMatches(token, dummyHash[:])
			return Principal{}, KeyCheck{Status: KeyUnknown}
		}
		suspended = true
	}
	k := v.(*keyEntry)
	c := KeyCheck{KeyID: k.key.ID, ProjectID: k.key.ProjectID, OrganizationID: k.orgID}
	if !thauth.TokenMatches(token, k.key.Hash) {
		c.Status = KeyWrongSecret
		return Principal{}, c
	}
	now := e.now()
	switch {
	case k.key.RevokedAt != nil:
		c.Status = KeyRevoked
	case !k.key.Usable(now):
		c.Status = KeyExpired
	case suspended:
		c.Status = KeySuspended
	default:
		k.usage.record(now.UnixMicro())
		return Principal{KeyID: k.key.ID, ProjectID: k.key.ProjectID, OrganizationID: k.orgID, Scopes: k.key.Scopes, LimitKey: k.limitKey}, KeyCheck{Status: KeyValid}
	}
	return Principal{}, c
}

// TakeKeyUsage returns, per project id and key id, the newest use of every key used since the
// previous call, and forgets it, so that the caller can store last-used times in batches
// (thauth.APIKeyStore.TouchAPIKeys). Safe for concurrent use.
func (e *Engine) TakeKeyUsage() map[string]map[string]time.Time {
	e.takeMu.Lock()
	defer e.takeMu.Unlock()
	out := map[string]map[string]time.Time{}
	for _, p := range *e.projects.Load() {
		ks := p.keys.Load()
		if ks == nil {
			continue
		}
		for id, k := range *ks {
			last := k.usage.last.Load()
			if last == 0 || last <= k.usage.taken.Load() {
				continue
			}
			k.usage.taken.Store(last)
			if out[p.id] == nil {
				out[p.id] = map[string]time.Time{}
			}
			out[p.id][id] = time.UnixMicro(last).UTC()
		}
	}
	return out
}

// KeyLastUsed returns the newest use of a key seen by this process (drained by TakeKeyUsage
// or not), and false when it has seen none. The stored LastUsedAt may be newer (another
// node); callers show the later of the two.
func (e *Engine) KeyLastUsed(projectID, keyID string) (time.Time, bool) {
	p := (*e.projects.Load())[projectID]
	if p == nil {
		return time.Time{}, false
	}
	ks := p.keys.Load()
	if ks == nil {
		return time.Time{}, false
	}
	k := (*ks)[keyID]
	if k == nil {
		return time.Time{}, false
	}
	last := k.usage.last.Load()
	if last == 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(last).UTC(), true
}

// newKeyEntry copies k, keeping the usage record of the entry it replaces, if any.
func newKeyEntry(k thauth.APIKey, orgID string, old *keyEntry) *keyEntry {
	k.Hash = slices.Clone(k.Hash)
	k.Scopes = slices.Clone(k.Scopes)
	e := &keyEntry{key: k, orgID: orgID, limitKey: "key:" + k.ID}
	if old != nil {
		e.usage = old.usage
	} else {
		e.usage = new(keyUsage)
	}
	return e
}

// setKeys makes the project's keys equal to all (a full load). Called with p's lock held.
func (e *Engine) setKeys(p *project, orgID string, all []thauth.APIKey) {
	var old keySet
	if ks := p.keys.Load(); ks != nil {
		old = *ks
	}
	next := make(keySet, len(all))
	for _, k := range all {
		ent := newKeyEntry(k, orgID, old[k.ID])
		next[k.ID] = ent
	}
	e.publishKeys(p, old, next)
}

// updateKeys applies reloaded keys (nil value = deleted) to the project's keys. Called with
// p's lock held.
func (e *Engine) updateKeys(p *project, orgID string, changed map[string]*thauth.APIKey) {
	var old keySet
	if ks := p.keys.Load(); ks != nil {
		old = *ks
	}
	next := maps.Clone(old)
	if next == nil {
		next = keySet{}
	}
	for id, k := range changed {
		if k == nil {
			delete(next, id)
			continue
		}
		next[id] = newKeyEntry(*k, orgID, old[id])
	}
	e.publishKeys(p, old, next)
}

// publishKeys swaps the project's key set and updates the global lookup index — the
// index of suspended keys instead while the project's organization is suspended (see
// suspend.go): new and changed entries are stored before stale ones are removed, and an
// entry is only removed if the index still points at it.
func (e *Engine) publishKeys(p *project, old, next keySet) {
	idx, other := e.keyIndexes(p)
	for _, k := range next {
		idx.Store(k.key.LookupID, k)
	}
	for id, k := range old {
		if n, ok := next[id]; !ok || n.key.LookupID != k.key.LookupID {
			idx.CompareAndDelete(k.key.LookupID, k)
		}
	}
	e.unindexKeys(other, old, next)
	p.keys.Store(&next)
}

// dropKeys removes every key of the project from the lookup index.
func (e *Engine) dropKeys(p *project) {
	e.publishKeys(p, func() keySet {
		if ks := p.keys.Load(); ks != nil {
			return *ks
		}
		return nil
	}(), keySet{})
}
