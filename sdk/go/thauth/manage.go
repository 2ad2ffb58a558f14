package thauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Content types of configuration documents.
const (
	ContentTypeJSON = "application/json"
	ContentTypeYAML = "application/yaml"
)

// ApplyResult is the answer of ApplyConfig.
type ApplyResult struct {
	// Version is the configuration version after the apply (the value GET /v1/config
	// reports), or what it would be for a dry run.
	Version string  `json:"version"`
	Changes Changes `json:"changes"`
	// Revision is the revision token of the project after the apply (empty for a dry run):
	// pass it as AtLeastAsFresh to have a check answered from a state that includes it.
	Revision string `json:"revision,omitempty"`
}

// Changes lists what an apply created, updated and deleted, each as a short string such as
// "role billing-admin" or "subject user:alice".
type Changes struct {
	Created []string `json:"created"`
	Updated []string `json:"updated"`
	Deleted []string `json:"deleted"`
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Created) == 0 && len(c.Updated) == 0 && len(c.Deleted) == 0
}

// ApplyConfig makes the project's configuration equal to the document doc
// (PUT /api/v1/projects/{project}/config; scope admin). contentType is ContentTypeJSON or
// ContentTypeYAML; "" guesses from the content (a document starting with "{" is JSON). With
// dryRun the server only reports what would change. A rejected document is an *Error
// matching ErrBadRequest whose Problems list every problem with its path.
func (c *Client) ApplyConfig(ctx context.Context, projectID string, doc []byte, contentType string, dryRun bool) (*ApplyResult, error) {
	if contentType == "" {
		contentType = SniffContentType(doc)
	}
	r := request{
		method:      http.MethodPut,
		path:        projectPath(projectID, "config"),
		body:        doc,
		contentType: contentType,
	}
	if r.body == nil {
		r.body = []byte{}
	}
	if dryRun {
		r.query = url.Values{"dry_run": {"true"}}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	var out ApplyResult
	if err := decode(r.method, r.path, resp.body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SniffContentType guesses the content type of a configuration document: JSON when its first
// non-space byte is "{", YAML otherwise.
func SniffContentType(doc []byte) string {
	if t := bytes.TrimLeft(doc, " \t\r\n\ufeff"); len(t) > 0 && t[0] == '{' {
		return ContentTypeJSON
	}
	return ContentTypeYAML
}

// ExportConfig returns the project's configuration document
// (GET /api/v1/projects/{project}/config; scope admin) in format "yaml" or "json" ("" means
// JSON). Applying the returned document changes nothing.
func (c *Client) ExportConfig(ctx context.Context, projectID, format string) ([]byte, error) {
	accept := ContentTypeJSON
	switch strings.ToLower(format) {
	case "", "json":
	case "yaml", "yml":
		accept = ContentTypeYAML
	default:
		return nil, fmt.Errorf("thauth: unknown document format %q (want yaml or json)", format)
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: projectPath(projectID, "config"), accept: accept})
	if err != nil {
		return nil, err
	}
	return resp.body, nil
}

// APIKey describes a project API key. The token itself is only ever returned by CreateKey.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"` // the public lookup part of the token
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// CreateKeyRequest describes a new API key.
type CreateKeyRequest struct {
	Name string `json:"name"`
	// Scopes are any of "decisions:read", "subjects:write" and "admin".
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreatedKey is a new key with its token. The token is shown this once: store it now.
type CreatedKey struct {
	Key   APIKey
	Token string
	// Revision is the revision token of the write (see CheckRequest.AtLeastAsFresh).
	Revision string
}

// CreateKey creates an API key in the project (POST /api/v1/projects/{project}/keys; scope
// admin).
func (c *Client) CreateKey(ctx context.Context, projectID string, req CreateKeyRequest) (*CreatedKey, error) {
	path := projectPath(projectID, "keys")
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("thauth: POST %s: encoding request: %w", path, err)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: path, body: b})
	if err != nil {
		return nil, err
	}
	// The answer is the key's metadata with the token in "key".
	var out struct {
		APIKey
		Token    string `json:"key"`
		Revision string `json:"revision"`
	}
	if err := decode(http.MethodPost, path, resp.body, &out); err != nil {
		return nil, err
	}
	return &CreatedKey{Key: out.APIKey, Token: out.Token, Revision: out.Revision}, nil
}

// ListKeys lists the project's API keys, revoked ones included, newest first
// (GET /api/v1/projects/{project}/keys; scope admin).
func (c *Client) ListKeys(ctx context.Context, projectID string) ([]APIKey, error) {
	path := projectPath(projectID, "keys")
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path})
	if err != nil {
		return nil, err
	}
	var out struct {
		Keys []APIKey `json:"keys"`
	}
	if err := decode(http.MethodGet, path, resp.body, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// RevokeKey revokes an API key (DELETE /api/v1/projects/{project}/keys/{key}; scope admin).
// The key stops working on the next request. Revoking a revoked key succeeds.
func (c *Client) RevokeKey(ctx context.Context, projectID, keyID string) error {
	_, err := c.RevokeKeyRevision(ctx, projectID, keyID)
	return err
}

// RevokeKeyRevision is RevokeKey that also returns the revision token of the write (see
// CheckRequest.AtLeastAsFresh); it is empty when the server does not send one.
func (c *Client) RevokeKeyRevision(ctx context.Context, projectID, keyID string) (string, error) {
	resp, err := c.do(ctx, request{method: http.MethodDelete, path: projectPath(projectID, "keys", keyID)})
	if err != nil {
		return "", err
	}
	return resp.header.Get(RevisionHeader), nil
}

// RevisionHeader is the response header carrying the revision token of a write (the same
// value as the Revision field of its result).
const RevisionHeader = "Thauth-Revision"

// Project is a project as the management API lists it.
type Project struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organization_id"`
	Name           string    `json:"name"`
	CreatedAt      time.Time `json:"created_at"`
}

// ListProjects lists the projects the key reaches (GET /api/v1/projects; scope admin). For an
// API key that is its own project, so a client holding only an admin key can learn its
// project id.
func (c *Client) ListProjects(ctx context.Context) ([]Project, error) {
	const path = "/api/v1/projects"
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path})
	if err != nil {
		return nil, err
	}
	var out struct {
		Projects []Project `json:"projects"`
	}
	if err := decode(http.MethodGet, path, resp.body, &out); err != nil {
		return nil, err
	}
	return out.Projects, nil
}

func projectPath(projectID string, parts ...string) string {
	p := "/api/v1/projects/" + url.PathEscape(projectID)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}
