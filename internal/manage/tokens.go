package manage

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// Personal access tokens: the non-browser way for an account to use the management API
// (CLI, CI). They have the shape of API keys with their own prefix ("thauthpat_"), are
// shown once, stored as SHA-256, scoped (read, or write) and always expire. They carry no
// ambient authority (no cookie), so they need no CSRF token; in exchange they cannot manage
// credentials (password, email, second factor, other tokens' creation): that takes a
// browser session.

// The lifetimes of access tokens.
const (
	DefaultAccessTokenTTL = 90 * 24 * time.Hour
	MaxAccessTokenTTL     = 365 * 24 * time.Hour
)

const maxAccessTokenName = 100

// tokenScopes lists the access token scopes in canonical order.
var tokenScopes = []string{thauth.TokenScopeRead, thauth.TokenScopeWrite}

// errBadAccessToken answers every access token that does not authenticate.
var errBadAccessToken = thauth.Errorf(thauth.EUnauthenticated, "the access token is not valid")

// acctValidateTokenScopes checks scopes (at least one of tokenScopes, no duplicates) and
// returns them in canonical order.
func acctValidateTokenScopes(scopes []string) ([]string, error) {
	if len(scopes) == 0 {
		return nil, thauth.Errorf(thauth.EInvalid, "scopes must list at least one scope (%s)", strings.Join(tokenScopes, ", "))
	}
	seen := map[string]bool{}
	for _, sc := range scopes {
		if !slices.Contains(tokenScopes, sc) {
			return nil, thauth.Errorf(thauth.EInvalid, "scopes: unknown scope %q (known: %s)", sc, strings.Join(tokenScopes, ", "))
		}
		if seen[sc] {
			return nil, thauth.Errorf(thauth.EInvalid, "scopes: duplicate scope %q", sc)
		}
		seen[sc] = true
	}
	out := make([]string, 0, len(scopes))
	for _, sc := range tokenScopes {
		if seen[sc] {
			out = append(out, sc)
		}
	}
	return out, nil
}

// CreateAccessToken creates a personal access token for the actor and returns its
// metadata and the token, shown only here (Hash is cleared). name is 1–100 characters;
// scopes are one or more of thauth.TokenScopeRead and thauth.TokenScopeWrite; ttl 0 means
// 90 days, at most 365 days. Only a browser session may create tokens, and one that has
// verified the second factor when the account has it on. Errors: EInvalid for a bad
// request (the message names the field), EForbidden for another kind of actor.
func (s *Service) CreateAccessToken(ctx context.Context, a Actor, name string, scopes []string, ttl time.Duration) (*thauth.AccessToken, string, error) {
	if msg := validateLabel(name, maxAccessTokenName); msg != "" {
		return nil, "", thauth.Errorf(thauth.EInvalid, "name %s", msg)
	}
	scopes, err := acctValidateTokenScopes(scopes)
	if err != nil {
		return nil, "", err
	}
	if ttl == 0 {
		ttl = DefaultAccessTokenTTL
	}
	if ttl < time.Minute || ttl > MaxAccessTokenTTL {
		return nil, "", thauth.Errorf(thauth.EInvalid, "the lifetime must be between one minute and 365 days")
	}
	acct, se, err := s.acctSessionActor(ctx, a)
	if err != nil {
		return nil, "", err
	}
	if acct.MFAEnabled() && !se.MFA {
		return nil, "", thauth.Errorf(thauth.EForbidden, "sign in with your second factor before creating access tokens")
	}
	id, err := newID()
	if err != nil {
		return nil, "", err
	}
	token, lookupID, hash := thauth.NewAccessToken()
	now := s.clock()
	t := &thauth.AccessToken{
		ID: id, AccountID: acct.ID, Name: name, LookupID: lookupID, Hash: hash, Scopes: scopes,
		ExpiresAt: now.Add(ttl), CreatedAt: now,
	}
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.CreateAccessToken(ctx, t); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, auditEvent{
			ActorType: thauth.ActorAccount, ActorID: acct.ID, AccountID: acct.ID, Action: "token.created", Target: t.ID,
			Client: a.Client, Data: map[string]string{"name": name, "scopes": strings.Join(scopes, " "), "expires_at": t.ExpiresAt.Format(time.RFC3339)},
		})
	})
	if err != nil {
		return nil, "", storeError(err, "could not create the access token")
	}
	s.log.InfoContext(ctx, "access token created", "account_id", acct.ID, "token_id", t.ID, "scopes", strings.Join(scopes, " "))
	t.Hash = nil
	return t, token, nil
}

// ListAccessTokens returns the actor's access tokens, revoked and expired ones included,
// newest first (Hash cleared).
func (s *Service) ListAccessTokens(ctx context.Context, a Actor) ([]thauth.AccessToken, error) {
	acct, err := s.acctOf(ctx, a)
	if err != nil {
		return nil, err
	}
	list, err := s.store.ListAccessTokens(ctx, acct.ID)
	if err != nil {
		return nil, storeError(err, "could not list access tokens")
	}
	for i := range list {
		list[i].Hash = nil
	}
	if list == nil {
		list = []thauth.AccessToken{}
	}
	return list, nil
}

// RevokeAccessToken revokes one of the actor's access tokens; it stops authenticating at
// once. Revoking a revoked token keeps the first revocation time. ENotFound "access token
// not found" for an id that is not one of the actor's tokens.
func (s *Service) RevokeAccessToken(ctx context.Context, a Actor, tokenID string) error {
	if err := acctWritable(a); err != nil {
		return err
	}
	acct, err := s.acctOf(ctx, a)
	if err != nil {
		return err
	}
	now := s.clock()
	err = s.store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.RevokeAccessToken(ctx, acct.ID, tokenID, now); err != nil {
			return err
		}
		typ, id := actorOf(a)
		return s.appendAudit(ctx, tx, auditEvent{
			ActorType: typ, ActorID: id, AccountID: acct.ID, Action: "token.revoked", Target: tokenID, Client: a.Client,
		})
	})
	if thauth.IsNotFound(err) {
		return thauth.Errorf(thauth.ENotFound, "access token not found")
	}
	if err != nil {
		return storeError(err, "could not revoke the access token")
	}
	s.log.InfoContext(ctx, "access token revoked", "account_id", acct.ID, "token_id", tokenID)
	return nil
}

// AuthenticateAccessToken returns the access token of token and its account when it is
// well-formed, known, matches its stored hash, is neither revoked nor expired, and its
// account exists; the use is recorded (LastUsedAt, written at most once a minute). Every
// failure is the same EUnauthenticated "the access token is not valid".
func (s *Service) AuthenticateAccessToken(ctx context.Context, token string) (*thauth.AccessToken, *thauth.Account, error) {
	lookupID, ok := thauth.ParseAccessToken(token)
	if !ok {
		return nil, nil, errBadAccessToken
	}
	t, err := s.store.GetAccessTokenByLookup(ctx, lookupID)
	if thauth.IsNotFound(err) {
		return nil, nil, errBadAccessToken
	}
	if err != nil {
		return nil, nil, storeError(err, "could not check the access token")
	}
	now := s.clock()
	if !thauth.TokenMatches(token, t.Hash) || t.RevokedAt != nil || !t.ExpiresAt.After(now) {
		return nil, nil, errBadAccessToken
	}
	acct, err := s.store.GetAccount(ctx, t.AccountID)
	if thauth.IsNotFound(err) {
		return nil, nil, errBadAccessToken
	}
	if err != nil {
		return nil, nil, storeError(err, "could not check the access token")
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= touchEvery {
		if err := s.store.TouchAccessToken(ctx, t.AccountID, t.ID, now); err != nil {
			return nil, nil, storeError(err, "could not check the access token")
		}
		t.LastUsedAt = &now
	}
	t.Hash = nil
	return t, acct, nil
}
