package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth"
)

// The audit log: one hash chain per organization (and "" for the installation). The head of
// each chain lives in audit_chains. An append locks the head row (SELECT … FOR UPDATE), so
// appends to one chain from any number of nodes run one after the other until their
// transactions end: each sees the previous one's entry, and sequence numbers have no gaps or
// forks. A head is created in the transaction of its chain's first entry, so every head has
// entries. Appends to different chains do not wait for each other.

const auditColumns = `id, chain, seq, at, actor_type, actor_id, organization_id, account_id, action, target, ip, user_agent,
	data, prev_hash, hash`

func scanAudit(sc rowScanner) (thauth.AuditEntry, error) {
	var e thauth.AuditEntry
	err := sc.Scan(&e.ID, &e.Chain, &e.Seq, &e.At, &e.ActorType, &e.ActorID, &e.OrganizationID, &e.AccountID, &e.Action,
		&e.Target, &e.IP, &e.UserAgent, &e.Data, &e.PrevHash, &e.Hash)
	e.At = e.At.UTC()
	return e, err
}

// zeroHash is the PrevHash of a chain's first entry.
var zeroHash = make([]byte, 32)

const lockAuditHead = `SELECT last_seq, last_hash FROM audit_chains WHERE chain = $1 FOR UPDATE`

// AppendAudit appends e to its chain (setting e.At to its stored value, e.Seq, e.PrevHash and
// e.Hash); EConflict if its id is taken. It takes several statements and holds the chain's
// head locked until the transaction ends: the Store runs it in a transaction of its own,
// and inside Store.Tx it is part of the caller's.
func (d *data) AppendAudit(ctx context.Context, e *thauth.AuditEntry) error {
	e.At = normTime(e.At)
	var last int64
	var prev []byte
	err := d.q.QueryRow(ctx, lockAuditHead, e.Chain).Scan(&last, &prev)
	if errors.Is(err, pgx.ErrNoRows) {
		// The chain's first entry. Another node may be creating the head too: its insert
		// makes ours wait and then do nothing, and the lock below then reads its head (READ
		// COMMITTED takes a new snapshot per statement).
		_, err = d.q.Exec(ctx, `INSERT INTO audit_chains (chain, last_seq, last_hash) VALUES ($1, 0, $2)
			ON CONFLICT (chain) DO NOTHING`, e.Chain, zeroHash)
		if err == nil {
			err = d.q.QueryRow(ctx, lockAuditHead, e.Chain).Scan(&last, &prev)
		}
	}
	if err != nil {
		return mapErr(err, "cannot append to the audit log")
	}
	e.Seq, e.PrevHash = last+1, prev
	e.Hash = thauth.AuditHash(e)
	// The entry and the new head in one statement (a data-modifying WITH always runs).
	_, err = d.q.Exec(ctx, `WITH entry AS (
			INSERT INTO audit_log (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		)
		UPDATE audit_chains SET last_seq = $3, last_hash = $15 WHERE chain = $2`,
		e.ID, e.Chain, e.Seq, e.At, e.ActorType, e.ActorID, e.OrganizationID, e.AccountID, e.Action, e.Target,
		e.IP, e.UserAgent, e.Data, nonNilBytes(e.PrevHash), e.Hash)
	switch {
	case isUniqueViolation(err) && pgConstraint(err) == "audit_log_chain_seq_unique":
		// Only a head out of step with its entries (rows written around AppendAudit) gets here.
		return thauth.Internal(err, "audit chain %q: its head is behind its entries", e.Chain)
	case isUniqueViolation(err):
		return thauth.Errorf(thauth.EConflict, "an audit entry with this id already exists")
	}
	return mapErr(err, "cannot append to the audit log")
}

// ListAudit returns the entries f selects, highest Seq first. A filter that sets neither or
// both of OrganizationID and AccountID is EInvalid; Limit outside 1–1000 means 1000.
func (d *data) ListAudit(ctx context.Context, f thauth.AuditFilter) ([]thauth.AuditEntry, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	switch {
	case (f.OrganizationID == "") == (f.AccountID == ""):
		return nil, thauth.Errorf(thauth.EInvalid, "an audit listing needs exactly one of an organization and an account")
	case f.OrganizationID != "":
		where = append(where, "chain = "+arg(f.OrganizationID))
	default:
		where = append(where, "chain = ''", "account_id = "+arg(f.AccountID))
	}
	if f.Before > 0 {
		where = append(where, "seq < "+arg(f.Before))
	}
	switch {
	case f.Action == "":
	case strings.HasSuffix(f.Action, "."):
		// left(), not LIKE: action names hold '_' (auth.password.reset_requested).
		p := arg(f.Action)
		where = append(where, "left(action, length("+p+"::text)) = "+p)
	default:
		where = append(where, "action = "+arg(f.Action))
	}
	if f.ActorID != "" {
		where = append(where, "actor_id = "+arg(f.ActorID))
	}
	limit := f.Limit
	if limit < 1 || limit > 1000 {
		limit = 1000
	}
	rows, err := d.q.Query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq DESC LIMIT `+arg(limit), args...)
	return collect(rows, err, "cannot list the audit log", scanAudit)
}

// auditPage is how many entries ScanAudit reads per query.
const auditPage = 500

// ScanAudit calls fn for every entry of chain in Seq order; fn's error stops the scan and
// is returned as is. It reads pages of entries by Seq, so no statement stays open while fn
// runs (fn may be slow, or use the same transaction), and memory holds one page. Without a
// snapshot a scan may also see entries appended while it runs, never a gap: a chain's
// entries commit in Seq order (see AppendAudit).
func (d *data) ScanAudit(ctx context.Context, chain string, fn func(*thauth.AuditEntry) error) error {
	var after int64
	for {
		rows, err := d.q.Query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE chain = $1 AND seq > $2
			ORDER BY seq LIMIT $3`, chain, after, auditPage)
		page, err := collect(rows, err, "cannot read the audit log", scanAudit)
		if err != nil {
			return err
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < auditPage {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

// AuditChains returns every chain with entries, in byte order (COLLATE "C").
func (d *data) AuditChains(ctx context.Context) ([]string, error) {
	rows, err := d.q.Query(ctx, `SELECT chain FROM audit_chains ORDER BY chain`)
	return collect(rows, err, "cannot list audit chains", func(sc rowScanner) (string, error) {
		var c string
		err := sc.Scan(&c)
		return c, err
	})
}

// AuditHead returns the chain's head (last_seq, last_hash) without locking it; ENotFound
// without one.
func (d *data) AuditHead(ctx context.Context, chain string) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := d.q.QueryRow(ctx, `SELECT last_seq, last_hash FROM audit_chains WHERE chain = $1`, chain).Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, thauth.Errorf(thauth.ENotFound, "no such audit chain")
	}
	if err != nil {
		return 0, nil, mapErr(err, "cannot read the audit chain head")
	}
	return seq, hash, nil
}
