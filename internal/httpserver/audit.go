package httpserver

// The audit log over HTTP: who the management routes record as the actor of their changes,
// and an organization's log (listing, JSON-lines export) for the console.

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/manage"
)

// auditKeyActor records the request's API key (and client) as the audit actor of the
// management operation h runs. It wraps only write routes of the management API and subject
// upserts, never the decision routes: it costs a context per request. A principal without a
// key id comes from an account's credential (projectRoute), whose actor withCallerAudit has
// set already.
func auditKeyActor(h keyHandler) keyHandler {
	return func(w http.ResponseWriter, r *http.Request, p engine.Principal) {
		if p.KeyID != "" {
			ci := clientInfo(r)
			r = r.WithContext(manage.WithAuditActor(r.Context(), manage.AuditActor{
				Type: thauth.ActorAPIKey, ID: p.KeyID, IP: ci.IP, UserAgent: ci.UserAgent,
			}))
		}
		h(w, r, p)
	}
}

// withCallerAudit returns r with the console caller as the audit actor of the management
// operation it runs (the project routes reached with an account's credential).
func withCallerAudit(r *http.Request, c *caller) *http.Request {
	return r.WithContext(manage.WithAuditActor(r.Context(), manage.AuditActorOf(c.actor)))
}

// auditExportRoute is the console stack with the document deadline instead of the write
// deadline: an export streams the organization's whole log.
func (s *server) auditExportRoute(h consoleHandler) http.Handler {
	return consoleHeaders(withTimeout(s.docWait, s.cop.Handler(s.authenticate(needsEngine, h))))
}

// Bounds of GET /api/v1/orgs/{org}/audit.
const (
	defaultAuditPage = 100
	maxAuditPage     = 1000
)

// listAudit serves GET /api/v1/orgs/{org}/audit?action=&actor=&before=&limit=: the
// organization's audit log, newest first (audit:read). action is an action or a prefix
// ending in "."; actor an actor id; before the cursor (next_before of the previous page,
// null on the last one).
func (s *server) listAudit(w http.ResponseWriter, r *http.Request, c *caller) {
	q := r.URL.Query()
	for k, v := range q {
		switch k {
		case "action", "actor", "before", "limit":
			if len(v) > 1 {
				s.consoleError(w, r, invalid("query parameter %q is repeated", k))
				return
			}
		default:
			s.consoleError(w, r, invalid("unknown query parameter %q", clip(k)))
			return
		}
	}
	before, err := intParam(q.Get("before"), "before", 1, 1<<62, 0)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	limit, err := intParam(q.Get("limit"), "limit", 1, maxAuditPage, defaultAuditPage)
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	entries, err := s.mg.ListAuditLog(r.Context(), c.actor, r.PathValue("org"), manage.AuditQuery{
		Action: q.Get("action"), ActorID: q.Get("actor"), Before: before, Limit: int(limit),
	})
	if err != nil {
		s.consoleError(w, r, err)
		return
	}
	out := struct {
		Entries    []manage.AuditRecord `json:"entries"`
		NextBefore *int64               `json:"next_before"`
	}{Entries: make([]manage.AuditRecord, 0, len(entries))}
	for i := range entries {
		out.Entries = append(out.Entries, manage.NewAuditRecord(&entries[i]))
	}
	if n := len(entries); n == int(limit) && entries[n-1].Seq > 1 {
		next := entries[n-1].Seq
		out.NextBefore = &next
	}
	s.writeJSON(w, http.StatusOK, out)
}

var hdrNDJSON = []string{"application/x-ndjson"}

// exportWriter starts the export's answer on its first write, so that an error before any
// entry (authorization, the store) is still an ordinary JSON error.
type exportWriter struct {
	w       http.ResponseWriter
	org     string
	started bool
}

func (ew *exportWriter) Write(b []byte) (int, error) {
	if !ew.started {
		ew.started = true
		h := ew.w.Header()
		h["Content-Type"] = hdrNDJSON
		h["Content-Disposition"] = []string{`attachment; filename="audit-` + safeFilePart(ew.org) + `.jsonl"`}
		ew.w.WriteHeader(http.StatusOK)
	}
	return ew.w.Write(b)
}

// safeFilePart keeps [A-Za-z0-9_-] of s, for a file name in a header.
func safeFilePart(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, s)
}

// exportAudit serves GET /api/v1/orgs/{org}/audit/export: the organization's whole audit
// chain, oldest first, one manage.AuditRecord per line (application/x-ndjson), so that it
// can be verified offline (docs/audit-log.md). An organization without entries gets an
// empty body. A failure after the first line aborts the connection, so a client never takes
// a cut export for a complete one.
func (s *server) exportAudit(w http.ResponseWriter, r *http.Request, c *caller) {
	if len(r.URL.RawQuery) > 0 {
		for k := range r.URL.Query() {
			s.consoleError(w, r, invalid("unknown query parameter %q", clip(k)))
			return
		}
	}
	org := r.PathValue("org")
	ew := &exportWriter{w: w, org: org}
	bw := bufio.NewWriterSize(ew, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := s.mg.ExportAuditLog(r.Context(), c.actor, org, func(e *thauth.AuditEntry) error {
		rec := manage.NewAuditRecord(e)
		return enc.Encode(&rec)
	})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		if !ew.started { // no entries: an empty export
			_, _ = ew.Write(nil)
		}
		return
	}
	if !ew.started {
		s.consoleError(w, r, err)
		return
	}
	s.log.LogAttrs(r.Context(), slog.LevelError, "audit export failed after it started",
		slog.String("request_id", requestID(r)), slog.String("organization_id", org), slog.String("error", err.Error()))
	panic(http.ErrAbortHandler)
}
