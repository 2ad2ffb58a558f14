// Package thauth holds the domain of the Thauth authorization service: its nouns
// (organizations, projects, features, actions, roles, subjects, grants, API keys), their
// validation, the single error type, and the storage contracts every store implements.
//
// It depends on the standard library only. Everything else in the module points here:
// cmd → internal/* → thauth.
package thauth
