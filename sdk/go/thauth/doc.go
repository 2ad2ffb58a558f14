// Package thauth is the Go client of the Thauth authorization service.
//
// It is a standalone HTTP client with its own types: it imports nothing but the standard
// library (none of the server's packages), so using it adds no dependencies. A Client is bound to one base URL and one
// project API key, and is safe for concurrent use by multiple goroutines.
//
// Decisions (a key with the decisions:read scope):
//
//	c := thauth.NewClient("http://127.0.0.1:8080", os.Getenv("THAUTH_KEY"))
//	d, err := c.Check(ctx, thauth.CheckRequest{
//		Subject:  "user:alice",
//		Feature:  "billing",
//		Action:   "read",
//		TenantID: thauth.String("tenant_acme"),
//	})
//	if err != nil {
//		// Fail closed: treat any error as a deny.
//		return false, err
//	}
//	return d.Allowed, nil // d.Reason is e.g. "role:billing-admin"
//
// Subjects (subjects:write) are declared with UpsertSubject; the project's configuration
// document and API keys are managed with ApplyConfig, ExportConfig, CreateKey, ListKeys and
// RevokeKey (admin).
//
// # Freshness across nodes
//
// Several Thauth nodes may serve one project; each answers checks from its own in-memory
// copy, which follows writes within a fraction of a second. When a check must see a write
// that just returned — possibly on another node — pass the write's revision token:
//
//	res, err := c.UpsertSubject(ctx, req)
//	...
//	d, err := c.Check(ctx, thauth.CheckRequest{Subject: "user:alice", Feature: "billing",
//		Action: "read", AtLeastAsFresh: res.Revision})
//
// The node then catches up first; if it cannot within its bounded wait, the call fails with
// an *Error matching ErrUnavailable (RetryAfter set) instead of answering from older state.
// ApplyResult, CreatedKey and RevokeKeyRevision carry tokens too.
//
// # Errors
//
// Every failed call returns an error. When the server answered, it is an *Error carrying the
// HTTP status, the message and, for a rejected configuration document, every problem found.
// Compare it with errors.Is against the class sentinels instead of looking at status codes:
//
//	switch {
//	case errors.Is(err, thauth.ErrUnauthorized): // 401: missing, unknown, revoked or expired key
//	case errors.Is(err, thauth.ErrForbidden):    // 403: the key lacks the scope
//	case errors.Is(err, thauth.ErrBadRequest):   // 400, 413, 415: the request was rejected
//	case errors.Is(err, thauth.ErrNotFound):     // 404
//	case errors.Is(err, thauth.ErrConflict):     // 409
//	case errors.Is(err, thauth.ErrRateLimited):  // 429: wait (*Error).RetryAfter
//	case errors.Is(err, thauth.ErrServer):       // 5xx (ErrUnavailable for 503 in particular)
//	}
//
// Transport failures (connection refused, timeouts, a cancelled context) are returned wrapped
// as they come from net/http and match none of the sentinels.
//
// A deny is an answer, not an error: Check returns a Decision with Allowed false and a nil
// error.
package thauth
