package manage

import (
	"context"
	"fmt"
	"strings"

	"github.com/thauth/thauth"
)

// UpsertRequest is the body of POST /v1/subjects/upsert (spec §4). TenantID nil means the
// global scope. RoleIDs and Permissions, when not nil, replace the subject's role
// assignments and overrides in that scope (an empty list removes them); nil leaves them as
// they are.
type UpsertRequest struct {
	SubjectID   string              `json:"subject_id"`
	SubjectType string              `json:"subject_type"`
	TenantID    *string             `json:"tenant_id,omitempty"`
	RoleIDs     *[]string           `json:"role_ids,omitempty"`
	Permissions *[]UpsertPermission `json:"permissions,omitempty"`
}

// UpsertPermission is one override of an UpsertRequest: allow or deny one action of a
// feature (by feature id and action name), optionally only on resources matching Resource
// ("" for none).
type UpsertPermission struct {
	FeatureID string `json:"feature_id"`
	Action    string `json:"action"`
	Effect    string `json:"effect"`
	Resource  string `json:"resource,omitempty"`
}

// UpsertResult is the outcome of UpsertSubject: whether the subject was created, the
// subject as stored, and the project revision that holds the write.
type UpsertResult struct {
	Created  bool           `json:"created"`
	Subject  thauth.Subject `json:"subject"`
	Revision int64          `json:"-"`
}

// UpsertSubject creates or updates a subject and, when asked, replaces its role assignments
// and overrides in one scope (the tenant, or the global scope), atomically; grants in other
// scopes are untouched. Duplicate role ids and identical permissions are collapsed.
//
// Every problem is checked before anything is written: bad or empty fields, unknown role
// ids, unknown feature ids, actions a feature does not have, effects other than allow/deny
// and bad resource patterns give one *thauth.Error with code EInvalid whose message names
// every offending field and id (Problems lists them too); then nothing is written, not even
// the subject. ENotFound for an unknown project. The write is recorded in the organization's
// audit chain (subject.upserted, with ctx's actor: WithAuditActor) in the same transaction.
// After the commit the engine is synced.
func (s *Service) UpsertSubject(ctx context.Context, projectID string, req UpsertRequest) (*UpsertResult, error) {
	var problems []thauth.Problem
	bad := func(path, format string, args ...any) {
		problems = append(problems, thauth.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if msg := thauth.ValidateIdentifier(req.SubjectID); msg != "" {
		bad("subject_id", "%s", msg)
	}
	if msg := thauth.ValidateIdentifier(req.SubjectType); msg != "" {
		bad("subject_type", "%s", msg)
	}
	tenant := ""
	if req.TenantID != nil {
		tenant = *req.TenantID
		if msg := thauth.ValidateIdentifier(tenant); msg != "" {
			bad("tenant_id", "%s", msg)
		}
	}
	var roleIDs []string
	if req.RoleIDs != nil {
		roleIDs = dedupe(*req.RoleIDs)
	}
	// Permissions keep their request indices in messages; duplicates are skipped later.
	var perms []UpsertPermission
	if req.Permissions != nil {
		perms = *req.Permissions
		for i, p := range perms {
			at := fmt.Sprintf("permissions[%d]", i)
			if p.FeatureID == "" {
				bad(at+".feature_id", "must not be empty")
			}
			if p.Action == "" {
				bad(at+".action", "must not be empty")
			}
			if p.Effect != string(thauth.Allow) && p.Effect != string(thauth.Deny) {
				bad(at+".effect", "must be allow or deny, not %q", p.Effect)
			}
			if p.Resource != "" {
				if msg := thauth.ValidateResource(p.Resource); msg != "" {
					bad(at+".resource", "invalid resource pattern %q: %s", p.Resource, msg)
				}
			}
		}
	}
	if len(problems) > 0 {
		return nil, invalidRequest(problems)
	}

	now := s.clock()
	var res *UpsertResult
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		res = nil
		project, err := tx.GetProject(ctx, projectID)
		if err != nil {
			return err
		}
		cfg, err := tx.LoadConfig(ctx, projectID)
		if err != nil {
			return err
		}
		// References are checked inside the transaction, against the configuration the
		// write commits with.
		roles := make(map[string]bool, len(cfg.Roles))
		for _, r := range cfg.Roles {
			roles[r.ID] = true
		}
		features := make(map[string]*thauth.Feature, len(cfg.Features))
		for i := range cfg.Features {
			features[cfg.Features[i].ID] = &cfg.Features[i]
		}
		var problems []thauth.Problem
		var unknown []string
		assignments := make([]thauth.Assignment, 0, len(roleIDs))
		for _, id := range roleIDs {
			if !roles[id] {
				unknown = append(unknown, fmt.Sprintf("%q", id))
				continue
			}
			assignments = append(assignments, thauth.Assignment{RoleID: id, Tenant: tenant})
		}
		if len(unknown) > 0 {
			problems = append(problems, thauth.Problem{Path: "role_ids", Message: "unknown role ids " + strings.Join(unknown, ", ")})
		}
		overrides := make([]thauth.Override, 0, len(perms))
		seen := make(map[UpsertPermission]bool, len(perms))
		for i, p := range perms {
			if seen[p] {
				continue
			}
			seen[p] = true
			f := features[p.FeatureID]
			if f == nil {
				problems = append(problems, thauth.Problem{Path: fmt.Sprintf("permissions[%d].feature_id", i),
					Message: fmt.Sprintf("unknown feature id %q", p.FeatureID)})
				continue
			}
			actionID := ""
			for _, a := range f.Actions {
				if a.Name == p.Action {
					actionID = a.ID
				}
			}
			if actionID == "" {
				problems = append(problems, thauth.Problem{Path: fmt.Sprintf("permissions[%d].action", i),
					Message: fmt.Sprintf("unknown action %q: feature %q has no such action", p.Action, f.Name)})
				continue
			}
			overrides = append(overrides, thauth.Override{FeatureID: f.ID, FeatureName: f.Name, ActionID: actionID,
				ActionName: p.Action, Effect: thauth.Effect(p.Effect), Resource: p.Resource, Tenant: tenant})
		}
		if len(problems) > 0 {
			return invalidRequest(problems)
		}

		subject := thauth.Subject{ProjectID: projectID, SubjectID: req.SubjectID, SubjectType: req.SubjectType}
		created, err := tx.UpsertSubject(ctx, projectID, &subject, now)
		if err != nil {
			return err
		}
		subject.ProjectID = projectID
		scope := thauth.Scope{Tenant: tenant}
		if req.RoleIDs != nil {
			if err := tx.ReplaceAssignments(ctx, projectID, req.SubjectID, scope, assignments); err != nil {
				return err
			}
		}
		if req.Permissions != nil {
			if err := tx.ReplaceOverrides(ctx, projectID, req.SubjectID, scope, overrides); err != nil {
				return err
			}
		}
		rev, err := tx.AppendChanges(ctx, projectID, []thauth.Change{{Kind: thauth.ChangeSubject, Ref: req.SubjectID}}, now)
		if err != nil {
			return err
		}
		res = &UpsertResult{Created: created, Subject: subject, Revision: rev}
		roleIDs := make([]string, len(assignments))
		for i, a := range assignments {
			roleIDs[i] = a.RoleID
		}
		return s.auditChange(ctx, tx, project.OrganizationID, AuditSubjectUpsert, req.SubjectID,
			upsertAuditData(projectID, &req, tenant, roleIDs, len(overrides), created))
	})
	if err != nil {
		return nil, storeError(err, "could not upsert the subject")
	}
	s.sync(ctx, projectID)
	return res, nil
}

// invalidRequest turns problems with request fields into one EInvalid error whose message
// names each field (the HTTP layer shows only the message).
func invalidRequest(problems []thauth.Problem) *thauth.Error {
	parts := make([]string, len(problems))
	for i, p := range problems {
		parts[i] = p.Path + ": " + p.Message
	}
	return &thauth.Error{Code: thauth.EInvalid, Message: strings.Join(parts, "; "), Problems: problems}
}

// dedupe returns xs without repeated elements, keeping the first occurrence of each.
func dedupe[T comparable](xs []T) []T {
	seen := make(map[T]bool, len(xs))
	out := make([]T, 0, len(xs))
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
