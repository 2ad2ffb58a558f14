// Package engine answers authorization checks. It compiles each project's configuration and
// its subjects' grants into an immutable in-memory Snapshot, evaluates checks against it
// (sections 2 and 3 of the decision spec) with no I/O and no lock, authenticates API keys from
// an in-memory index, and keeps both current by following the store's change log.
//
// # Threat model
//
// The engine is the part of Thauth that says "allowed". Its rule is to fail closed:
//
//   - Anything unknown denies: an unknown subject, feature, action or role, a grant naming an
//     id the configuration no longer has, an override whose effect is not "allow" (treated as
//     a deny), a resource that matches no pattern. Check recovers from any panic and answers
//     thauth.ErrorDecision (not allowed, reason "error").
//   - Wildcard request resources ("may S do A on everything under dev/*?") are allowed only by
//     grants that cover the whole set and denied by any deny that touches part of it, so a
//     broad question never gets a broader yes than the narrow ones would.
//   - Decisions are deterministic: the same snapshot and input give the same decision and
//     reason (role ties are broken by byte order of the role name).
//   - A configuration change recompiles the configuration only; subjects keep their grants,
//     and grants naming deleted roles, features or actions stop matching at once (the store
//     deletes them too; ids are UUIDs and never reused, and the next full load drops them).
//   - Snapshots are immutable and replaced atomically, so a check never sees half of a
//     configuration apply. A failed reload keeps the previous snapshot rather than publishing
//     a partial one; a project that disappears from the store is dropped with its keys.
//   - API keys: a malformed token is rejected without a lookup, the secret is compared in
//     constant time against a SHA-256 hash, and revocation and expiry are checked on every
//     request. Sync applies key changes before it returns, so a revocation is effective on the
//     next request after the write that made it. Authenticate only says yes or no, so callers
//     cannot leak why a key was refused. The engine never sees or logs token secrets beyond
//     the request that carries them.
//   - Suspension: the keys of a suspended organization's projects are held outside the index
//     that authenticates (suspend.go); the engine reads the organization whenever it loads a
//     project or applies a project change, which suspending and reinstating write.
//
// What the engine trusts: the store (its data is validated by internal/manage before it is
// written) and the caller's clock. It does not re-validate names or patterns; its matching
// rules are total functions of their input and stay safe on malformed data.
//
// # Keeping current
//
// Sync catches one project up from the store's change log; SyncAll does it for every
// project with one query when nothing moved. FollowWith runs SyncAll at an interval and
// whenever its wake channel fires (PostgreSQL change notifications), and keeps answering
// from the last snapshots while the store fails, reporting how stale they are (Staleness).
// SnapshotAtLeast serves freshness tokens: it returns a snapshot at least as new as a given
// revision, catching up or waiting until its caller's deadline, never an older one.
//
// # Performance
//
// A check costs two small map lookups (feature, action), one subject lookup and a scan of the
// subject's own grants with one small-table lookup per role assignment: nothing depends on the
// number of subjects or roles in the project except how much of it fits in the CPU caches.
// Subjects live in a persistent hash trie, so updating one subject copies a few kilobytes,
// not the index. Role, feature and action ids of grants are interned handles; tenants and
// patterns are deduplicated within each build.
package engine
