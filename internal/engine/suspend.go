package engine

import "sync"

// Suspension. While an operator has suspended an organization (thauth.Organization
// SuspendedAt), the keys of its projects do not authenticate: they are moved out of the
// lookup index that Authenticate reads into a separate one, so that no code path that
// authenticates through Engine.keys can accept them, whatever it checks;
// AuthenticateDetail looks there only to name the failure (KeySuspended). The engine
// learns of a suspension when it (re)loads a project: on a full load, and when it applies
// a ChangeProject change, which the suspension writes into every project of the
// organization. Reinstating moves the keys back. Snapshots, and therefore decisions, are
// not affected: without a key nobody reaches them.

// keyIndexes returns the index p's keys belong in and the one they must not be in. Called
// with p's lock held.
func (e *Engine) keyIndexes(p *project) (idx, other *sync.Map) {
	if p.suspended.Load() {
		return &e.suspendedKeys, &e.keys
	}
	return &e.keys, &e.suspendedKeys
}

// unindexKeys removes the entries of old and next from other (the index the project's keys
// left, if they moved), only where other still points at them.
func (e *Engine) unindexKeys(other *sync.Map, old, next keySet) {
	for _, set := range []keySet{old, next} {
		for _, k := range set {
			other.CompareAndDelete(k.key.LookupID, k)
		}
	}
}
