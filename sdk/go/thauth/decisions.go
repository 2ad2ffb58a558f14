package thauth

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// CheckRequest asks whether Subject may perform Action of Feature, optionally in the tenant
// *TenantID and on the resource *Resource (nil means absent; when set they must not be
// empty). Resource may be a wildcard ("dev/*") to ask about everything under a path.
type CheckRequest struct {
	Subject  string
	Feature  string
	Action   string
	TenantID *string
	Resource *string
	// Explain asks the server to list every grant it considered (Decision.Explain).
	Explain bool
	// AtLeastAsFresh, when set, is a revision token of an earlier write (the Revision of
	// its result): the server then answers from a state that includes that write, or, when
	// it cannot catch up in time, fails with an *Error matching ErrUnavailable (retry
	// after RetryAfter) rather than answer from older state.
	AtLeastAsFresh string
}

// MarshalJSON encodes the request in the wire form of POST /v1/check.
func (r CheckRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkWire{
		Subject:  r.Subject,
		Feature:  r.Feature,
		Action:   r.Action,
		Tenant:   r.TenantID,
		Resource: r.Resource,
		Explain:  r.Explain,
		Fresh:    r.AtLeastAsFresh,
	})
}

type checkWire struct {
	Subject  string  `json:"subject"`
	Feature  string  `json:"feature"`
	Action   string  `json:"action"`
	Tenant   *string `json:"tenant,omitempty"`
	Resource *string `json:"resource,omitempty"`
	Explain  bool    `json:"explain,omitempty"`
	Fresh    string  `json:"at_least_as_fresh,omitempty"`
}

// Decision is the answer to a check. A deny is an answer: Allowed false with the reason
// ("default:deny", "override:deny").
type Decision struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"` // "role:<name>", "override:allow", "override:deny", "default:deny"
	// DecisionID identifies the decision in the server's decision log (may be empty).
	DecisionID string `json:"decision_id,omitempty"`
	// Explain is the server's explanation when the request asked for one, as sent.
	Explain json.RawMessage `json:"explain,omitempty"`
}

// Check asks one question (POST /v1/check; scope decisions:read). A deny is returned as a
// Decision with a nil error. On any error the Decision is nil: callers must then deny (a
// server failure is an *Error matching ErrServer).
func (c *Client) Check(ctx context.Context, req CheckRequest) (*Decision, error) {
	var d Decision
	if err := c.doJSON(ctx, http.MethodPost, "/v1/check", req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// BatchRequest asks up to 1000 questions about one subject in one call.
type BatchRequest struct {
	Subject  string      `json:"subject"`
	TenantID *string     `json:"tenant,omitempty"`
	Checks   []BatchItem `json:"checks"`
	// AtLeastAsFresh works as in CheckRequest, for every check of the batch.
	AtLeastAsFresh string `json:"at_least_as_fresh,omitempty"`
}

// BatchItem is one question of a BatchRequest.
type BatchItem struct {
	Feature  string  `json:"feature"`
	Action   string  `json:"action"`
	Resource *string `json:"resource,omitempty"`
}

// BatchResult is the answer to one BatchItem. An item whose evaluation failed has Allowed
// false and Reason "error".
type BatchResult struct {
	Feature  string  `json:"feature"`
	Action   string  `json:"action"`
	Resource *string `json:"resource,omitempty"`
	Allowed  bool    `json:"allowed"`
	Reason   string  `json:"reason"`
}

// CheckBatch asks every question of req (POST /v1/check/batch; scope decisions:read) and
// returns the answers in request order.
func (c *Client) CheckBatch(ctx context.Context, req BatchRequest) ([]BatchResult, error) {
	var out struct {
		Results []BatchResult `json:"results"`
	}
	if err := c.doJSON(ctx, http.MethodPost, "/v1/check/batch", req, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// Config is the project's authorization model as GET /v1/config returns it.
type Config struct {
	Project  ProjectRef `json:"project"`
	Version  string     `json:"version"`
	Features []Feature  `json:"features"`
	Roles    []Role     `json:"roles"`
}

// ProjectRef names a project.
type ProjectRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Feature is a protected area with its actions.
type Feature struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Actions     []Action `json:"actions"`
}

// Action is an operation inside a feature.
type Action struct {
	ID     string `json:"id"`
	Action string `json:"action"`
}

// Role is a named bundle of permissions.
type Role struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Permissions []Permission `json:"permissions"`
}

// Permission lets a role perform one action of one feature, optionally only on resources
// matching Resource.
type Permission struct {
	FeatureID   string `json:"feature_id"`
	FeatureName string `json:"feature_name"`
	ActionID    string `json:"action_id"`
	Action      string `json:"action"`
	Resource    string `json:"resource,omitempty"`
}

// RoleByName returns the role called name, or nil.
func (cfg *Config) RoleByName(name string) *Role {
	for i := range cfg.Roles {
		if cfg.Roles[i].Name == name {
			return &cfg.Roles[i]
		}
	}
	return nil
}

// FeatureByName returns the feature called name, or nil.
func (cfg *Config) FeatureByName(name string) *Feature {
	for i := range cfg.Features {
		if cfg.Features[i].Name == name {
			return &cfg.Features[i]
		}
	}
	return nil
}

// GetConfig returns the project's configuration (GET /v1/config; scope decisions:read).
// The client remembers the last answer and its ETag and revalidates with If-None-Match, so
// an unchanged configuration costs a 304 and no transfer; every call returns a fresh copy
// that the caller may modify.
func (c *Client) GetConfig(ctx context.Context) (*Config, error) {
	const path = "/v1/config"
	c.mu.Lock()
	etag, cached := c.configETag, c.configBody
	c.mu.Unlock()
	r := request{method: http.MethodGet, path: path}
	if etag != "" && cached != nil {
		r.header = http.Header{"If-None-Match": {etag}}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	body := resp.body
	if resp.status == http.StatusNotModified {
		if cached == nil {
			return nil, &Error{StatusCode: resp.status, Message: "not modified, but nothing cached"}
		}
		body = cached
	} else if tag := resp.header.Get("ETag"); tag != "" {
		c.mu.Lock()
		c.configETag, c.configBody = tag, body
		c.mu.Unlock()
	}
	var cfg Config
	if err := decode(http.MethodGet, path, body, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// UpsertSubjectRequest creates or updates a subject and declares its grants in one scope:
// the tenant *TenantID, or the global scope when TenantID is nil.
//
// Role assignments and overrides follow "absent means unchanged": RoleIDs is sent when it is
// not nil or when ReplaceRoles is true, and then replaces the subject's assignments in the
// scope. So RoleIDs nil with ReplaceRoles false leaves the assignments alone, and
// ReplaceRoles true with no RoleIDs removes them all. Permissions and ReplacePermissions
// work the same way for overrides.
type UpsertSubjectRequest struct {
	SubjectID   string
	SubjectType string // "user", "service", ...
	TenantID    *string
	// RoleIDs are role ids (UUIDs, see Config.RoleByName), not names.
	RoleIDs      []string
	ReplaceRoles bool
	// Permissions are the subject's overrides in the scope.
	Permissions        []UpsertPermission
	ReplacePermissions bool
}

// UpsertPermission is one override of UpsertSubjectRequest.
type UpsertPermission struct {
	FeatureID string  `json:"feature_id"` // a feature id (UUID), not its name
	Action    string  `json:"action"`     // the action's name
	Effect    string  `json:"effect"`     // "allow" or "deny"
	Resource  *string `json:"resource,omitempty"`
}

// MarshalJSON encodes the request in the wire form of POST /v1/subjects/upsert.
func (r UpsertSubjectRequest) MarshalJSON() ([]byte, error) {
	w := struct {
		SubjectID   string              `json:"subject_id"`
		SubjectType string              `json:"subject_type"`
		TenantID    *string             `json:"tenant_id,omitempty"`
		RoleIDs     *[]string           `json:"role_ids,omitempty"`
		Permissions *[]UpsertPermission `json:"permissions,omitempty"`
	}{SubjectID: r.SubjectID, SubjectType: r.SubjectType, TenantID: r.TenantID}
	if r.RoleIDs != nil || r.ReplaceRoles {
		ids := r.RoleIDs
		if ids == nil {
			ids = []string{}
		}
		w.RoleIDs = &ids
	}
	if r.Permissions != nil || r.ReplacePermissions {
		ps := r.Permissions
		if ps == nil {
			ps = []UpsertPermission{}
		}
		w.Permissions = &ps
	}
	return json.Marshal(w)
}

// Subject is a subject as the server stores it.
type Subject struct {
	ID          string    `json:"id"` // Thauth's internal id
	ProjectID   string    `json:"project_id"`
	SubjectID   string    `json:"subject_id"` // the customer's own id
	SubjectType string    `json:"subject_type"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// UpsertSubjectResponse is the answer of UpsertSubject.
type UpsertSubjectResponse struct {
	Created bool    `json:"created"` // whether the subject is new
	Subject Subject `json:"subject"`
	// Revision is the revision token of the write: pass it as AtLeastAsFresh to have a
	// check answered from a state that includes it, on any node.
	Revision string `json:"revision,omitempty"`
}

// UpsertSubject creates or updates a subject and its grants in one scope
// (POST /v1/subjects/upsert; scope subjects:write). Unknown role ids, feature ids or actions
// give an ErrBadRequest naming them, and nothing is written.
func (c *Client) UpsertSubject(ctx context.Context, req UpsertSubjectRequest) (*UpsertSubjectResponse, error) {
	var out UpsertSubjectResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/subjects/upsert", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
