package manage

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/thauth/thauth"
)

// KeyRequest describes an API key to create. Name is 1–100 characters of printable UTF-8
// (not only spaces); Scopes are one or more of thauth.ValidScopes, without duplicates;
// ExpiresAt, when set, must be in the future.
type KeyRequest struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

const maxKeyNameChars = 100

// CreateKey creates an API key for the project and returns its metadata and its token. The
// token is shown only here: only its SHA-256 hash is stored, and the returned key's Hash is
// cleared. Scopes are stored in canonical order (thauth.ValidScopes) and times in UTC,
// truncated to microseconds. The key authenticates as soon as CreateKey returns (the engine
// is synced). The creation is recorded in the organization's audit chain (key.created, by
// id, with ctx's actor: WithAuditActor). Errors: EInvalid for a bad request (the message
// names the field), ENotFound for an unknown project.
func (s *Service) CreateKey(ctx context.Context, projectID string, req KeyRequest) (*thauth.APIKey, string, error) {
	k, token, _, err := s.CreateKeyRevision(ctx, projectID, req)
	return k, token, err
}

// CreateKeyRevision is CreateKey that also returns the project revision the write produced
// (for freshness tokens).
func (s *Service) CreateKeyRevision(ctx context.Context, projectID string, req KeyRequest) (*thauth.APIKey, string, int64, error) {
	now := s.clock()
	if msg := validateLabel(req.Name, maxKeyNameChars); msg != "" {
		return nil, "", 0, thauth.Errorf(thauth.EInvalid, "name %s", msg)
	}
	if msg := thauth.ValidateScopes(req.Scopes); msg != "" {
		return nil, "", 0, thauth.Errorf(thauth.EInvalid, "scopes: %s", msg)
	}
	var expires *time.Time
	if req.ExpiresAt != nil {
		t := storedTime(*req.ExpiresAt)
		if !t.After(now) {
			return nil, "", 0, thauth.Errorf(thauth.EInvalid, "expires_at must be in the future")
		}
		expires = &t
	}
	id, err := newID()
	if err != nil {
		return nil, "", 0, err
	}
	token, lookupID, hash := thauth.NewToken()
	key := &thauth.APIKey{
		ID: id, ProjectID: projectID, Name: req.Name, LookupID: lookupID, Hash: hash,
		Scopes: canonicalScopes(req.Scopes), ExpiresAt: expires, CreatedAt: now,
	}
	var rev int64
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		p, err := tx.GetProject(ctx, projectID)
		if err != nil {
			return err
		}
		if err := tx.CreateAPIKey(ctx, projectID, key); err != nil {
			return err
		}
		rev, err = tx.AppendChanges(ctx, projectID, []thauth.Change{{Kind: thauth.ChangeKey, Ref: key.ID}}, now)
		if err != nil {
			return err
		}
		return s.auditChange(ctx, tx, p.OrganizationID, AuditKeyCreated, key.ID, keyAuditData(key))
	})
	if err != nil {
		return nil, "", 0, storeError(err, "could not create the API key")
	}
	s.log.InfoContext(ctx, "API key created", "project_id", projectID, "key_id", key.ID, "scopes", strings.Join(key.Scopes, " "))
	s.sync(ctx, projectID)
	key.Hash = nil
	return key, token, rev, nil
}

// ListKeys returns the metadata of every key of the project, revoked ones included, newest
// first; Hash is cleared. Last-used times are those stored (the engine records uses in
// memory and flushes them periodically). ENotFound for an unknown project.
func (s *Service) ListKeys(ctx context.Context, projectID string) ([]thauth.APIKey, error) {
	if _, err := s.store.GetProject(ctx, projectID); err != nil {
		return nil, storeError(err, "could not list API keys")
	}
	keys, err := s.store.ListAPIKeys(ctx, projectID)
	if err != nil {
		return nil, storeError(err, "could not list API keys")
	}
	for i := range keys {
		keys[i].Hash = nil
	}
	if keys == nil {
		keys = []thauth.APIKey{}
	}
	return keys, nil
}

// RevokeKey revokes the project's key keyID; from the next request on it no longer
// authenticates (the engine is synced before RevokeKey returns). Revoking a revoked key is a
// no-op that keeps the first revocation time. A revocation is recorded in the organization's
// audit chain (key.revoked, with ctx's actor). ENotFound when the project has no such key
// (including a key of another project).
func (s *Service) RevokeKey(ctx context.Context, projectID, keyID string) error {
	_, err := s.RevokeKeyRevision(ctx, projectID, keyID)
	return err
}

// RevokeKeyRevision is RevokeKey that also returns the project revision from which on the
// key is revoked (for freshness tokens): the revision the write produced, or, when the key
// was revoked already, the project's current revision.
func (s *Service) RevokeKeyRevision(ctx context.Context, projectID, keyID string) (int64, error) {
	now := s.clock()
	wrote := false
	var rev int64
	err := s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		wrote = false
		k, err := tx.GetAPIKey(ctx, projectID, keyID)
		if err != nil {
			return err
		}
		if k.RevokedAt != nil {
			p, err := tx.GetProject(ctx, projectID)
			if err != nil {
				return err
			}
			rev = p.Revision
			return nil
		}
		if err := tx.RevokeAPIKey(ctx, projectID, keyID, now); err != nil {
			return err
		}
		if rev, err = tx.AppendChanges(ctx, projectID, []thauth.Change{{Kind: thauth.ChangeKey, Ref: keyID}}, now); err != nil {
			return err
		}
		p, err := tx.GetProject(ctx, projectID)
		if err != nil {
			return err
		}
		wrote = true
		return s.auditChange(ctx, tx, p.OrganizationID, AuditKeyRevoked, keyID, keyAuditData(k))
	})
	if err != nil {
		return 0, storeError(err, "could not revoke the API key")
	}
	if wrote {
		s.log.InfoContext(ctx, "API key revoked", "project_id", projectID, "key_id", keyID)
		s.sync(ctx, projectID)
	}
	return rev, nil
}

// canonicalScopes returns scopes (already validated) in the order of thauth.ValidScopes.
func canonicalScopes(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, v := range thauth.ValidScopes {
		if slices.Contains(scopes, v) {
			out = append(out, v)
		}
	}
	return out
}

// validateLabel checks a human-readable name (of a key, an organization, a project): 1 to
// maxChars characters of printable UTF-8, not only spaces. It returns "" when valid.
func validateLabel(s string, maxChars int) string {
	if strings.TrimSpace(s) == "" {
		return "must not be empty"
	}
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if utf8.RuneCountInString(s) > maxChars {
		return "must be at most " + itoa(maxChars) + " characters"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return "must not contain control characters"
		}
	}
	return ""
}
