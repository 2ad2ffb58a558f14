package thauth

import (
	"context"
	"time"
)

// SubjectBulkWriter is an optional interface of a Data (typically the one a Store passes
// to a Tx closure) that writes many subjects with their grants in a few round trips. Callers
// check for it with a type assertion and fall back to UpsertSubject, ReplaceAssignments and
// ReplaceOverrides when it is absent; stores whose per-call writes are cheap (SQLite) need
// not implement it.
type SubjectBulkWriter interface {
	// WriteSubjects does, for each element s of subjects, what these calls would do:
	//
	//	UpsertSubject(ctx, projectID, &s.Subject, now)
	//	ReplaceAssignments(ctx, projectID, s.Subject.SubjectID, Scope{All: true}, s.Assignments) // if s.Assignments != nil
	//	ReplaceOverrides(ctx, projectID, s.Subject.SubjectID, Scope{All: true}, s.Overrides)     // if s.Overrides != nil
	//
	// That is: the subject s.Subject.SubjectID is created (with id s.Subject.ID, or a new
	// UUIDv7 id when it is empty; CreatedAt and UpdatedAt from now) or has its type and
	// UpdatedAt updated, and its grants in every scope become exactly the given ones. A nil
	// Assignments (Overrides) leaves the subject's assignments (overrides) as they are; a
	// non-nil empty one removes them all. The elements are not modified.
	//
	// Subject ids must be distinct within one call (EInvalid otherwise). A role id, or a
	// feature and action id pair, that does not exist in the project is ENotFound, as is a
	// missing project. On error some of the writes may have been made: the caller must
	// roll its transaction back (inside Store.Tx, return the error), which makes the call
	// all-or-nothing.
	WriteSubjects(ctx context.Context, projectID string, subjects []*SubjectGrants, now time.Time) error
}
