package thauth

import (
	"cmp"
	"slices"
	"time"
)

// Organization is a customer account: it owns projects and has members (and later billing).
type Organization struct {
	ID        string    `json:"id"` // UUID
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// RequireMFA makes two-factor authentication mandatory for every member's console
	// access to the organization.
	RequireMFA bool `json:"require_mfa"`
	// SuspendedAt is set while an operator has suspended the organization: its API keys
	// answer 401 and its console is read-only.
	SuspendedAt     *time.Time `json:"suspended_at,omitempty"`
	SuspendedReason string     `json:"suspended_reason,omitempty"`
}

// Project is one application being protected. Its configuration, subjects, grants and API keys
// belong to it. Revision counts the committed writes to the project (see Change).
type Project struct {
	ID             string    `json:"id"` // UUID
	OrganizationID string    `json:"organization_id"`
	Name           string    `json:"name"`
	CreatedAt      time.Time `json:"created_at"`
	Revision       int64     `json:"-"`
}

// Config is a project's authorization model: its features (with their actions) and its roles
// (with their permissions). Features and roles are kept sorted by name, actions by name,
// permissions by (feature name, action, resource) — the canonical order used for the config
// version hash, exports and listings.
type Config struct {
	Features []Feature
	Roles    []Role
}

// Feature is a protected area of the customer's product.
type Feature struct {
	ID          string
	Name        string
	Description string
	Actions     []Action
}

// Action is an operation inside a feature; its Name is unique within the feature.
type Action struct {
	ID   string
	Name string
}

// Role is a named bundle of permissions.
type Role struct {
	ID          string
	Name        string
	Description string
	Permissions []Permission
}

// Permission lets a role perform one action of one feature, optionally only on resources
// matching Resource (a pattern, "" for none). FeatureID and ActionID are the ids; the names
// are filled in by stores when loading, for convenience.
type Permission struct {
	FeatureID   string
	FeatureName string
	ActionID    string
	ActionName  string
	Resource    string
}

// Subject is a principal being checked, identified by the customer's own string SubjectID
// (unique within the project). ID is Thauth's internal UUID for it.
type Subject struct {
	ID          string    `json:"id"`
	ProjectID   string    `json:"project_id"`
	SubjectID   string    `json:"subject_id"`
	SubjectType string    `json:"subject_type"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Effect is the effect of an override.
type Effect string

// The two override effects.
const (
	Allow Effect = "allow"
	Deny  Effect = "deny"
)

// Window is an optional validity window of a grant: it is active when
// From (if set) <= now < Until (if set).
type Window struct {
	From  *time.Time
	Until *time.Time
}

// Active reports whether the window contains now.
func (w Window) Active(now time.Time) bool {
	if w.From != nil && now.Before(*w.From) {
		return false
	}
	if w.Until != nil && !now.Before(*w.Until) {
		return false
	}
	return true
}

// Assignment gives a subject a role, globally (Tenant "") or in one tenant, optionally
// time-bounded.
type Assignment struct {
	RoleID   string
	RoleName string // filled in by stores when loading
	Tenant   string
	Window
}

// Override is a per-subject allow or deny on (feature, action, optional resource pattern),
// globally (Tenant "") or in one tenant, optionally time-bounded.
type Override struct {
	FeatureID   string
	FeatureName string // filled in by stores when loading
	ActionID    string
	ActionName  string // filled in by stores when loading
	Effect      Effect
	Resource    string
	Tenant      string
	Window
}

// SubjectGrants is a subject with all its grants, in every scope.
type SubjectGrants struct {
	Subject     Subject
	Assignments []Assignment
	Overrides   []Override
}

// Scope selects which of a subject's grants a replace touches: one tenant (Tenant, "" meaning
// the global scope) or, with All, every scope at once.
type Scope struct {
	All    bool
	Tenant string
}

// CheckRequest is one question: may Subject perform Action of Feature (in Tenant, on
// Resource)? Tenant and Resource are "" when absent.
type CheckRequest struct {
	Subject  string
	Feature  string
	Action   string
	Tenant   string
	Resource string
	Explain  bool
}

// The fixed reasons of a decision (spec §2). A role match gives ReasonRolePrefix + role name.
const (
	ReasonOverrideDeny  = "override:deny"
	ReasonOverrideAllow = "override:allow"
	ReasonRolePrefix    = "role:"
	ReasonDefaultDeny   = "default:deny"
	ReasonError         = "error"
)

// Decision is the answer to a CheckRequest. A deny is an answer, not an error; an internal
// failure is the decision {Allowed: false, Reason: ReasonError}.
type Decision struct {
	Allowed bool
	Reason  string
	Explain *Explanation // only when the request asked for it
}

// ErrorDecision is the fail-closed answer to any internal failure.
var ErrorDecision = Decision{Allowed: false, Reason: ReasonError}

// Explanation lists every grant of the subject that was considered for a check and why it
// did or did not match (extension of spec §4).
type Explanation struct {
	SubjectKnown bool             `json:"subject_known"`
	FeatureKnown bool             `json:"feature_known"`
	ActionKnown  bool             `json:"action_known"`
	Grants       []ExplainedGrant `json:"grants"`
}

// ExplainedGrant is one grant in an Explanation.
type ExplainedGrant struct {
	Kind       string     `json:"kind"`             // "override" or "role"
	Effect     string     `json:"effect,omitempty"` // for overrides
	Role       string     `json:"role,omitempty"`   // for role assignments
	Feature    string     `json:"feature,omitempty"`
	Action     string     `json:"action,omitempty"`
	Resource   string     `json:"resource,omitempty"`
	Tenant     string     `json:"tenant,omitempty"`
	ValidFrom  *time.Time `json:"valid_from,omitempty"`
	ValidUntil *time.Time `json:"valid_until,omitempty"`
	Matched    bool       `json:"matched"`
	Why        string     `json:"why"` // e.g. "matched", "other tenant", "not yet valid", "resource does not match"
}

// Sort puts g's grants in the canonical order every store returns them in: assignments by
// (tenant, role name, role id, valid from, valid until), overrides by (tenant, feature name,
// action name, resource, effect, valid from, valid until); an absent time sorts first. Names
// must be filled in. The conformance suite checks that stores agree on it.
func (g *SubjectGrants) Sort() {
	slices.SortStableFunc(g.Assignments, func(a, b Assignment) int {
		return cmp.Or(
			cmp.Compare(a.Tenant, b.Tenant),
			cmp.Compare(a.RoleName, b.RoleName),
			cmp.Compare(a.RoleID, b.RoleID),
			compareTime(a.From, b.From),
			compareTime(a.Until, b.Until),
		)
	})
	slices.SortStableFunc(g.Overrides, func(a, b Override) int {
		return cmp.Or(
			cmp.Compare(a.Tenant, b.Tenant),
			cmp.Compare(a.FeatureName, b.FeatureName),
			cmp.Compare(a.ActionName, b.ActionName),
			cmp.Compare(a.Resource, b.Resource),
			cmp.Compare(a.Effect, b.Effect),
			compareTime(a.From, b.From),
			compareTime(a.Until, b.Until),
		)
	})
}

func compareTime(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Compare(*b)
}
