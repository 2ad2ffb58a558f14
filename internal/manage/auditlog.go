package manage

// The organization audit log beyond the console's own operations: who records the changes
// made through the management API (configuration applies, API keys, subject upserts, Init),
// how an organization's log is listed and exported, how every chain is verified, and
// retention.
//
// Threat model. The log is tamper-evident, not tamper-proof. Each entry's Hash covers all
// its fields and the previous entry's Hash (thauth.AuditHash), and each chain's head (the
// Seq and Hash of its newest entry) is kept beside the entries. VerifyAudit therefore
// detects an edited entry (its hash no longer matches), a deleted or inserted one (a Seq gap
// or a broken link), reordering (broken links), and deleting the newest entries (the head is
// ahead of the last entry). The hash has no key: someone who can write the database can
// rewrite a chain from some entry on, hashes and head included, consistently. That is
// detected only against a copy kept elsewhere: an export (ExportAuditLog, `thauth audit
// export`) or a recorded head (VerifyAudit reports every head). Retention removes the oldest
// entries on purpose, so a chain that starts after Seq 1 is accepted (its first link cannot
// be checked): deleting the oldest entries of a chain looks exactly like retention.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// AuditActor is who makes a management change, as the audit log records it: Type is one of
// thauth's actor types (ActorAPIKey, ActorAccount, ActorOperator, ActorCLI, ActorSystem) and
// ID the key id, account id or OS user. The management operations that take no Actor
// argument (ApplyConfig, CreateKey, RevokeKey, UpsertSubject, Init and their variants) read
// it from their context (WithAuditActor); without one they record ActorSystem.
type AuditActor struct {
	Type      string
	ID        string
	IP        string
	UserAgent string
}

type auditActorKey struct{}

// WithAuditActor returns a copy of ctx in which the management operations record a as the
// actor of their audit entries. It carries nothing else: authorization never reads it.
func WithAuditActor(ctx context.Context, a AuditActor) context.Context {
	return context.WithValue(ctx, auditActorKey{}, a)
}

// AuditActorFrom returns the actor WithAuditActor put in ctx, or {Type: ActorSystem}.
func AuditActorFrom(ctx context.Context) AuditActor {
	if a, ok := ctx.Value(auditActorKey{}).(AuditActor); ok && a.Type != "" {
		return a
	}
	return AuditActor{Type: thauth.ActorSystem}
}

// AuditActorOf returns the audit actor of a console actor: the account (or, for Via "cli",
// the OS user) and its client.
func AuditActorOf(a Actor) AuditActor {
	typ, id := actorOf(a)
	return AuditActor{Type: typ, ID: id, IP: a.Client.IP, UserAgent: a.Client.UserAgent}
}

// auditChange records a management change in the organization's chain through d (the
// change's transaction), with the actor of ctx. The client's user agent is made valid UTF-8
// first: HTTP allows other bytes in headers, which JSON cannot carry, and an exported entry
// must hash the same as the stored one.
func (s *Service) auditChange(ctx context.Context, d thauth.Data, orgID, action, target string, data map[string]string) error {
	a := AuditActorFrom(ctx)
	ci := ClientInfo{IP: strings.ToValidUTF8(a.IP, "\uFFFD"), UserAgent: strings.ToValidUTF8(a.UserAgent, "\uFFFD")}
	return s.appendAudit(ctx, d, auditEvent{Chain: orgID, ActorType: a.Type, ActorID: a.ID, OrgID: orgID,
		Action: action, Target: target, Client: ci, Data: data})
}

// The audit actions of management changes (the console's are listed in
// docs/audit-log.md).
const (
	AuditConfigApplied  = "config.applied"
	AuditKeyCreated     = "key.created"
	AuditKeyRevoked     = "key.revoked"
	AuditSubjectUpsert  = "subject.upserted"
	AuditOrgCreated     = "org.created"
	AuditProjectCreated = "project.created"
)

// applyAuditData describes an applied configuration: counts of what changed, never the
// document's content.
func applyAuditData(projectID string, res *ApplyResult) map[string]string {
	d := map[string]string{"project_id": projectID, "version": res.Version,
		"revision": strconv.FormatInt(res.Revision, 10)}
	for _, l := range []struct {
		what  string
		items []string
	}{{"created", res.Changes.Created}, {"updated", res.Changes.Updated}, {"deleted", res.Changes.Deleted}} {
		counts := map[string]int{}
		for _, it := range l.items {
			kind, _, _ := strings.Cut(it, " ")
			counts[kind]++
		}
		for _, kind := range []string{"feature", "action", "role", "subject"} {
			d[kind+"s_"+l.what] = strconv.Itoa(counts[kind])
		}
	}
	return d
}

// keyAuditData describes an API key by its metadata: never its token, hash or prefix.
func keyAuditData(k *thauth.APIKey) map[string]string {
	d := map[string]string{"project_id": k.ProjectID, "name": k.Name, "scopes": strings.Join(k.Scopes, " ")}
	if k.ExpiresAt != nil {
		d["expires_at"] = k.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	return d
}

// maxAuditRoleIDs bounds the role ids a subject.upserted entry lists (role_count has them
// all).
const maxAuditRoleIDs = 50

// upsertAuditData describes a subject upsert: its scope, the role ids it assigns and how many
// permission overrides, never the overrides' content.
func upsertAuditData(projectID string, req *UpsertRequest, tenant string, roleIDs []string, overrides int, created bool) map[string]string {
	d := map[string]string{"project_id": projectID, "subject_type": req.SubjectType,
		"created": strconv.FormatBool(created)}
	if req.TenantID != nil {
		d["scope"], d["tenant"] = "tenant", tenant
	} else {
		d["scope"] = "global"
	}
	if req.RoleIDs != nil {
		ids := roleIDs
		if len(ids) > maxAuditRoleIDs {
			ids = ids[:maxAuditRoleIDs]
		}
		d["role_ids"] = strings.Join(ids, ",")
		d["role_count"] = strconv.Itoa(len(roleIDs))
	}
	if req.Permissions != nil {
		d["override_count"] = strconv.Itoa(overrides)
	}
	return d
}

// AuditQuery selects a page of an organization's audit log, newest first. Action is an exact
// action or a prefix ending in "." ("key."); ActorID an exact actor id; Before a cursor
// (only entries with Seq < Before); Limit 1–1000, 0 meaning 100.
type AuditQuery struct {
	Action  string
	ActorID string
	Before  int64
	Limit   int
}

const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// ListAuditLog returns a page of the organization's audit log (audit:read), newest first.
// Errors: EInvalid for a bad query, and Authorize's.
func (s *Service) ListAuditLog(ctx context.Context, a Actor, orgID string, q AuditQuery) ([]thauth.AuditEntry, error) {
	if q.Limit == 0 {
		q.Limit = defaultAuditLimit
	}
	switch {
	case q.Limit < 1 || q.Limit > maxAuditLimit:
		return nil, thauth.Errorf(thauth.EInvalid, "limit must be between 1 and %d", maxAuditLimit)
	case q.Before < 0:
		return nil, thauth.Errorf(thauth.EInvalid, "before must not be negative")
	case !validAuditAction(q.Action):
		return nil, thauth.Errorf(thauth.EInvalid,
			`action must be an action name or a prefix ending in "." (letters, digits, "_" and "."; at most 100 characters)`)
	case len(q.ActorID) > 256 || (q.ActorID != "" && thauth.ValidateIdentifier(q.ActorID) != ""):
		return nil, thauth.Errorf(thauth.EInvalid, "actor must be an account, API key or CLI user id")
	}
	if _, err := s.Authorize(ctx, a, orgID, "audit", "read"); err != nil {
		return nil, err
	}
	list, err := s.store.ListAudit(ctx, thauth.AuditFilter{OrganizationID: orgID, Action: q.Action,
		ActorID: q.ActorID, Before: q.Before, Limit: q.Limit})
	if err != nil {
		return nil, storeError(err, "could not list the audit log")
	}
	if list == nil {
		list = []thauth.AuditEntry{}
	}
	return list, nil
}

// validAuditAction accepts "" and names made of [a-z0-9_.] (no leading dot), up to 100 bytes.
func validAuditAction(s string) bool {
	if len(s) > 100 || strings.HasPrefix(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ExportAuditLog calls fn for every entry of the organization's audit chain in Seq order
// (audit:read), streaming: fn may write each one out. Authorization happens before the
// first call. fn's error stops the export and is returned as is.
func (s *Service) ExportAuditLog(ctx context.Context, a Actor, orgID string, fn func(*thauth.AuditEntry) error) error {
	if _, err := s.Authorize(ctx, a, orgID, "audit", "read"); err != nil {
		return err
	}
	return ExportAuditChain(ctx, s.store, orgID, fn)
}

// ExportAuditChain calls fn for every entry of chain in Seq order, without authorization
// (the CLI, which has the database already). fn's error is returned as is; the store's are
// wrapped.
func ExportAuditChain(ctx context.Context, st thauth.AuditStore, chain string, fn func(*thauth.AuditEntry) error) error {
	var fnErr error
	err := st.ScanAudit(ctx, chain, func(e *thauth.AuditEntry) error {
		if err := fn(e); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return storeError(err, "could not read the audit log")
	}
	return nil
}

// AuditRecord is an audit entry as the API lists it and exports it (one JSON object per line):
// every field thauth.AuditHash covers, with the hashes in lowercase hex, so that anyone can
// recompute the chain (docs/audit-log.md). Data is the entry's details, a JSON object, as
// the exact text that was hashed. At is RFC 3339 in UTC with microsecond precision.
type AuditRecord struct {
	ID             string    `json:"id"`
	Chain          string    `json:"chain"`
	Seq            int64     `json:"seq"`
	At             time.Time `json:"at"`
	ActorType      string    `json:"actor_type"`
	ActorID        string    `json:"actor_id"`
	OrganizationID string    `json:"organization_id"`
	AccountID      string    `json:"account_id"`
	Action         string    `json:"action"`
	Target         string    `json:"target"`
	IP             string    `json:"ip"`
	UserAgent      string    `json:"user_agent"`
	Data           string    `json:"data"`
	PrevHash       string    `json:"prev_hash"`
	Hash           string    `json:"hash"`
}

// NewAuditRecord returns e as a record.
func NewAuditRecord(e *thauth.AuditEntry) AuditRecord {
	return AuditRecord{
		ID: e.ID, Chain: e.Chain, Seq: e.Seq, At: e.At.UTC(), ActorType: e.ActorType, ActorID: e.ActorID,
		OrganizationID: e.OrganizationID, AccountID: e.AccountID, Action: e.Action, Target: e.Target,
		IP: e.IP, UserAgent: e.UserAgent, Data: e.Data,
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash),
	}
}

// Entry returns the entry r describes; an error when a hash is not hex.
func (r *AuditRecord) Entry() (*thauth.AuditEntry, error) {
	prev, err := hex.DecodeString(r.PrevHash)
	if err != nil {
		return nil, fmt.Errorf("prev_hash is not hex")
	}
	hash, err := hex.DecodeString(r.Hash)
	if err != nil {
		return nil, fmt.Errorf("hash is not hex")
	}
	return &thauth.AuditEntry{
		ID: r.ID, Chain: r.Chain, Seq: r.Seq, At: r.At.UTC(), ActorType: r.ActorType, ActorID: r.ActorID,
		OrganizationID: r.OrganizationID, AccountID: r.AccountID, Action: r.Action, Target: r.Target,
		IP: r.IP, UserAgent: r.UserAgent, Data: r.Data, PrevHash: prev, Hash: hash,
	}, nil
}

// The kinds of AuditProblem.
const (
	// AuditEdited: the entry's Hash does not match its content.
	AuditEdited = "edited"
	// AuditMissing: Seq numbers are missing between two entries (deleted entries).
	AuditMissing = "missing"
	// AuditBrokenLink: the entry's PrevHash is not the previous entry's Hash (entries
	// reordered, replaced or inserted).
	AuditBrokenLink = "broken_link"
	// AuditBadStart: the chain's entry 1 does not start from the zero hash.
	AuditBadStart = "bad_start"
	// AuditTruncated: the chain head is past the last entry (the newest entries were
	// deleted).
	AuditTruncated = "truncated"
	// AuditHeadMismatch: the entry at the head's Seq has another Hash than the head.
	AuditHeadMismatch = "head_mismatch"
	// AuditBeyondHead: entries past the chain head (written around the store).
	AuditBeyondHead = "beyond_head"
	// AuditNoHead: the chain has entries but no head.
	AuditNoHead = "no_head"
	// AuditOutOfOrder: Seq does not increase (exported files only: the store orders by Seq).
	AuditOutOfOrder = "out_of_order"
)

// AuditProblem is one inconsistency VerifyAudit found.
type AuditProblem struct {
	Chain   string `json:"chain"`
	Seq     int64  `json:"seq,omitempty"`
	ID      string `json:"id,omitempty"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// AuditChainReport summarizes one verified chain. FirstSeq > 1 (Pruned) means that older
// entries were removed by retention: the first entry's link cannot be checked. HeadSeq and
// HeadHash are the chain's head (hex), to keep elsewhere and compare with later runs; a
// chain verified from a file has no head, and they are its last entry's.
type AuditChainReport struct {
	Chain    string `json:"chain"`
	Entries  int64  `json:"entries"`
	FirstSeq int64  `json:"first_seq"`
	LastSeq  int64  `json:"last_seq"`
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	Pruned   bool   `json:"pruned"`
}

// AuditReport is VerifyAudit's result: the chains and entries it read and every problem
// (up to maxAuditProblems; ProblemsTruncated says there were more).
type AuditReport struct {
	Chains            []AuditChainReport `json:"chains"`
	Entries           int64              `json:"entries"`
	Problems          []AuditProblem     `json:"problems"`
	ProblemsTruncated bool               `json:"problems_truncated,omitempty"`
}

// OK reports whether no problem was found.
func (r *AuditReport) OK() bool { return len(r.Problems) == 0 && !r.ProblemsTruncated }

// maxAuditProblems bounds the problems a report holds: a rewritten chain could otherwise
// produce one per entry.
const maxAuditProblems = 1000

func (r *AuditReport) problem(p AuditProblem) {
	if len(r.Problems) >= maxAuditProblems {
		r.ProblemsTruncated = true
		return
	}
	r.Problems = append(r.Problems, p)
}

var zeroAuditHash = make([]byte, 32)

// chainWalker checks the entries of one chain, given in Seq order.
type chainWalker struct {
	r        *AuditReport
	c        AuditChainReport
	head     int64 // 0: no head known
	headHash []byte
	lastHash []byte
}

func (w *chainWalker) add(e *thauth.AuditEntry) {
	bad := func(kind, format string, args ...any) {
		w.r.problem(AuditProblem{Chain: w.c.Chain, Seq: e.Seq, ID: e.ID, Kind: kind, Message: fmt.Sprintf(format, args...)})
	}
	if !bytes.Equal(thauth.AuditHash(e), e.Hash) {
		bad(AuditEdited, "entry %d (%s): its hash does not match its content: the entry was edited", e.Seq, e.Action)
	}
	switch {
	case w.c.Entries == 0:
		w.c.FirstSeq = e.Seq
		switch {
		case e.Seq == 1 && !bytes.Equal(e.PrevHash, zeroAuditHash):
			bad(AuditBadStart, "entry 1 does not start from the zero hash")
		case e.Seq > 1:
			w.c.Pruned = true
		case e.Seq < 1:
			bad(AuditOutOfOrder, "sequence number %d is not positive", e.Seq)
		}
	case e.Seq <= w.c.LastSeq:
		bad(AuditOutOfOrder, "entry %d comes after entry %d: the entries are out of order", e.Seq, w.c.LastSeq)
	case e.Seq > w.c.LastSeq+1:
		if e.Seq == w.c.LastSeq+2 {
			bad(AuditMissing, "entry %d is missing (deleted)", w.c.LastSeq+1)
		} else {
			bad(AuditMissing, "entries %d to %d are missing (deleted)", w.c.LastSeq+1, e.Seq-1)
		}
	case !bytes.Equal(e.PrevHash, w.lastHash):
		bad(AuditBrokenLink, "entry %d does not chain to entry %d: entries were reordered, replaced or inserted",
			e.Seq, w.c.LastSeq)
	}
	if w.head > 0 && e.Seq == w.head && !bytes.Equal(e.Hash, w.headHash) {
		bad(AuditHeadMismatch, "entry %d is not the entry the chain head records: it was replaced", e.Seq)
	}
	w.c.Entries++
	w.r.Entries++
	if e.Seq > w.c.LastSeq {
		w.c.LastSeq = e.Seq
	}
	w.lastHash = e.Hash
}

// VerifyAudit checks the audit chains of st (every chain when chains is nil) and reports
// every problem it finds: edited entries, missing ones, broken links, and a head that is
// past the last entry (the newest entries deleted) or disagrees with it. A chain whose oldest
// entries were pruned by retention (it starts after Seq 1) is accepted and marked Pruned,
// and so is a chain whose every entry was pruned (no entries, a head). It reads each chain
// once, streaming; entries appended while it runs are verified too. Errors are the store's
// (ENotFound for a named chain that has neither a head nor entries); problems are in the
// report, not errors.
func VerifyAudit(ctx context.Context, st thauth.AuditStore, chains []string) (*AuditReport, error) {
	if chains == nil {
		var err error
		if chains, err = st.AuditChains(ctx); err != nil {
			return nil, storeError(err, "could not list the audit chains")
		}
	}
	r := &AuditReport{Chains: []AuditChainReport{}, Problems: []AuditProblem{}}
	for _, chain := range chains {
		if err := verifyChain(ctx, st, chain, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func verifyChain(ctx context.Context, st thauth.AuditStore, chain string, r *AuditReport) error {
	// The head is read first: entries appended after this read are past it, and checked by
	// their links; reading it after the scan would report those as deleted.
	head, headHash, err := st.AuditHead(ctx, chain)
	noHead := thauth.ErrorCodeOf(err) == thauth.ENotFound
	if err != nil && !noHead {
		return storeError(err, "could not read the audit chain head")
	}
	w := &chainWalker{r: r, c: AuditChainReport{Chain: chain}, head: head, headHash: headHash}
	err = st.ScanAudit(ctx, chain, func(e *thauth.AuditEntry) error {
		w.add(e)
		return nil
	})
	if err != nil {
		return storeError(err, "could not read the audit log")
	}
	if noHead && w.c.Entries == 0 {
		return thauth.Errorf(thauth.ENotFound, "no audit chain %q", chain)
	}
	at := func(kind string, seq int64, format string, args ...any) {
		r.problem(AuditProblem{Chain: chain, Seq: seq, Kind: kind, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case noHead:
		at(AuditNoHead, 0, "the chain has entries but no head: it was deleted")
	case w.c.Entries == 0:
		// Every entry pruned (or deleted: the two look the same).
		w.c.Pruned = true
	case w.c.LastSeq < head:
		at(AuditTruncated, w.c.LastSeq+1, "the chain head is at entry %d but the last entry is %d: the newest entries were deleted",
			head, w.c.LastSeq)
	case w.c.LastSeq > head:
		// Appended during the scan, or written around the store: the head says which.
		h2, _, err := st.AuditHead(ctx, chain)
		if err != nil {
			return storeError(err, "could not read the audit chain head")
		}
		if h2 < w.c.LastSeq {
			at(AuditBeyondHead, h2+1, "entries %d to %d are past the chain head (%d): they were inserted", h2+1, w.c.LastSeq, h2)
		}
	}
	w.c.HeadSeq, w.c.HeadHash = head, hex.EncodeToString(headHash)
	r.Chains = append(r.Chains, w.c)
	return nil
}

// VerifyAuditExport checks an export (AuditRecord JSON lines, as ExportAuditLog's callers
// write them) the way VerifyAudit checks the store, without a head: deleting the newest
// entries of a file is detected only by comparing its last entry with a head recorded
// elsewhere (each chain's report gives the last Seq and Hash). Lines may hold several chains.
// An error names the first line that is not a valid record.
func VerifyAuditExport(rd io.Reader) (*AuditReport, error) {
	r := &AuditReport{Chains: []AuditChainReport{}, Problems: []AuditProblem{}}
	walkers := map[string]*chainWalker{}
	var order []string
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec AuditRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("line %d: not an audit record: %v", n, err)
		}
		e, err := rec.Entry()
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		w := walkers[e.Chain]
		if w == nil {
			w = &chainWalker{r: r, c: AuditChainReport{Chain: e.Chain}}
			walkers[e.Chain] = w
			order = append(order, e.Chain)
		}
		w.add(e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the export: %w", err)
	}
	for _, c := range order {
		w := walkers[c]
		w.c.HeadSeq, w.c.HeadHash = w.c.LastSeq, hex.EncodeToString(w.lastHash)
		r.Chains = append(r.Chains, w.c)
	}
	return r, nil
}

// pruneAuditBatch is how many entries one PruneAudit call deletes: small enough that the
// write transaction stays short (SQLite has one writer).
const pruneAuditBatch = 1000

// PruneAuditLog deletes the audit entries older than before (retention), in batches, and
// returns how many it deleted. Chain heads stay, so what remains still verifies (each
// pruned chain then starts after Seq 1). It stops at ctx's end, returning what it deleted
// so far with the context's error.
func (s *Service) PruneAuditLog(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.store.PruneAudit(ctx, before, pruneAuditBatch)
		total += n
		if err != nil {
			return total, storeError(err, "could not prune the audit log")
		}
		if n < pruneAuditBatch {
			break
		}
	}
	if total > 0 {
		s.log.InfoContext(ctx, "audit log pruned", "entries", total, "before", before.UTC().Format(time.RFC3339))
	}
	return total, nil
}
