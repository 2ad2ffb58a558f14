package httpserver

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
)

// Freshness tokens (extension; docs/freshness.md). Every write answers with a token naming
// the project revision it produced; a check or batch may send it back as
// "at_least_as_fresh" and is then answered only from a snapshot at least that new.
//
// Wire format: "r1." followed by the unpadded base64url encoding of
// "<project id>:<revision>" (revision in decimal, ≥ 1). Clients treat it as opaque; the
// version prefix lets the format change later while old tokens stay readable.

// revisionHeader carries the token on every successful write response (204 included).
const revisionHeader = "Thauth-Revision"

// fieldFresh is the request member that carries a token.
const fieldFresh = "at_least_as_fresh"

const (
	tokenPrefix  = "r1."
	maxTokenSize = 256 // far above any real token; bounds the decoding work
)

var tokenEncoding = base64.RawURLEncoding

// revisionToken returns the token of revision rev of a project.
func revisionToken(projectID string, rev int64) string {
	return tokenPrefix + tokenEncoding.EncodeToString([]byte(projectID+":"+strconv.FormatInt(rev, 10)))
}

// parseRevisionToken returns the project and revision a token names; ok is false for
// anything that is not a token this server writes.
func parseRevisionToken(tok string) (projectID string, rev int64, ok bool) {
	if len(tok) > maxTokenSize || !strings.HasPrefix(tok, tokenPrefix) {
		return "", 0, false
	}
	raw, err := tokenEncoding.DecodeString(tok[len(tokenPrefix):])
	if err != nil {
		return "", 0, false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, false
	}
	rev, err = strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil || rev < 1 || s[i+1] == '+' {
		return "", 0, false
	}
	return s[:i], rev, true
}

var (
	errBadToken = invalid("field %q is not a revision token: send back the value of a write "+
		"response's %q field or %s header unchanged", fieldFresh, "revision", revisionHeader)
	errForeignToken = invalid("field %q is a revision token of another project", fieldFresh)
)

// freshRevision validates a token sent by the key's project and returns its revision.
func freshRevision(tok string, p engine.Principal) (int64, error) {
	projectID, rev, ok := parseRevisionToken(tok)
	switch {
	case !ok:
		return 0, errBadToken
	case projectID != p.ProjectID:
		return 0, errForeignToken
	}
	return rev, nil
}

// freshSnapshot returns the key's project snapshot at revision rev or later, catching up
// or waiting at most s.freshWait. When the node cannot get there in time the error is the
// engine's ErrNotCaughtUp (503).
func (s *server) freshSnapshot(r *http.Request, p engine.Principal, rev int64) (*engine.Snapshot, error) {
	if snap := s.snapshotOf(p.ProjectID); snap != nil && snap.Revision() >= rev {
		return snap, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.freshWait)
	defer cancel()
	return s.eng.SnapshotAtLeast(ctx, p.ProjectID, rev)
}

// writeFreshError answers a failed freshSnapshot: 503 with Retry-After when the node is
// behind, the error's own status otherwise.
func (s *server) writeFreshError(w http.ResponseWriter, r *http.Request, err error) {
	if thauth.ErrorCodeOf(err) == thauth.EUnavailable {
		w.Header()["Retry-After"] = hdrRetry
	}
	s.writeError(w, r, err)
}

// setRevision puts the token of revision rev of the key's project on the response and
// returns it for the JSON body.
func setRevision(w http.ResponseWriter, projectID string, rev int64) string {
	tok := revisionToken(projectID, rev)
	w.Header()[revisionHeader] = []string{tok}
	return tok
}
