package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/thauth/thauth"
)

// The audit log: one hash chain per organization (and "" for the installation). The head of
// each chain lives in audit_chains; an append reads and moves it inside the write
// transaction, and since SQLite has one writer at a time (BEGIN IMMEDIATE, across
// processes too), appends to a chain never interleave.

const auditColumns = `id, chain, seq, at, actor_type, actor_id, organization_id, account_id, action, target, ip, user_agent,
	data, prev_hash, hash`

func scanAudit(sc scanner) (thauth.AuditEntry, error) {
	var e thauth.AuditEntry
	var at int64
	err := sc.Scan(&e.ID, &e.Chain, &e.Seq, &at, &e.ActorType, &e.ActorID, &e.OrganizationID, &e.AccountID, &e.Action,
		&e.Target, &e.IP, &e.UserAgent, &e.Data, &e.PrevHash, &e.Hash)
	e.At = fromMicros(at)
	return e, err
}

// AppendAudit appends e to its chain (setting e.At to its stored value, e.Seq, e.PrevHash and
// e.Hash); EConflict if its id is taken.
func (d *data) AppendAudit(ctx context.Context, e *thauth.AuditEntry) error {
	e.At = normTime(e.At)
	var last int64
	var prev []byte
	err := d.queryRow(ctx, `SELECT last_seq, last_hash FROM audit_chains WHERE chain = ?`, []any{e.Chain}, &last, &prev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		last, prev = 0, make([]byte, 32)
	case err != nil:
		return mapErr(err, "cannot append to the audit log")
	}
	e.Seq, e.PrevHash = last+1, prev
	e.Hash = thauth.AuditHash(e)
	_, err = d.exec(ctx, `INSERT INTO audit_log (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Chain, e.Seq, micros(e.At), e.ActorType, e.ActorID, e.OrganizationID, e.AccountID, e.Action, e.Target,
		e.IP, e.UserAgent, e.Data, e.PrevHash, e.Hash)
	if isUniqueViolation(err) {
		return thauth.Errorf(thauth.EConflict, "an audit entry with this id already exists")
	}
	if err != nil {
		return mapErr(err, "cannot append to the audit log")
	}
	_, err = d.exec(ctx, `INSERT INTO audit_chains (chain, last_seq, last_hash) VALUES (?, ?, ?)
		ON CONFLICT (chain) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash`, e.Chain, e.Seq, e.Hash)
	return mapErr(err, "cannot append to the audit log")
}

// ListAudit returns the entries f selects, highest Seq first. A filter that sets neither or
// both of OrganizationID and AccountID is EInvalid; Limit outside 1–1000 means 1000.
func (d *data) ListAudit(ctx context.Context, f thauth.AuditFilter) ([]thauth.AuditEntry, error) {
	var where []string
	var args []any
	switch {
	case (f.OrganizationID == "") == (f.AccountID == ""):
		return nil, thauth.Errorf(thauth.EInvalid, "an audit listing needs exactly one of an organization and an account")
	case f.OrganizationID != "":
		where, args = append(where, "chain = ?"), append(args, f.OrganizationID)
	default:
		where, args = append(where, "chain = ''", "account_id = ?"), append(args, f.AccountID)
	}
	if f.Before > 0 {
		where, args = append(where, "seq < ?"), append(args, f.Before)
	}
	switch {
	case f.Action == "":
	case strings.HasSuffix(f.Action, "."):
		// substr, not LIKE: action names may hold '_' (auth.password.reset_requested).
		where, args = append(where, "substr(action, 1, length(?)) = ?"), append(args, f.Action, f.Action)
	default:
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.ActorID != "" {
		where, args = append(where, "actor_id = ?"), append(args, f.ActorID)
	}
	limit := f.Limit
	if limit < 1 || limit > 1000 {
		limit = 1000
	}
	args = append(args, limit)
	rows, err := d.query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE `+strings.Join(where, " AND ")+
		` ORDER BY seq DESC LIMIT ?`, args...)
	return collect(rows, err, "cannot list the audit log", scanAudit)
}

// ScanAudit calls fn for every entry of chain in Seq order, one row at a time; fn's error
// stops the scan and is returned as is.
func (d *data) ScanAudit(ctx context.Context, chain string, fn func(*thauth.AuditEntry) error) error {
	rows, err := d.query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE chain = ? ORDER BY seq`, chain)
	if err != nil {
		return mapErr(err, "cannot read the audit log")
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return mapErr(err, "cannot read the audit log")
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return mapErr(rows.Err(), "cannot read the audit log")
}

// AuditChains returns every chain with entries, in byte order (SQLite's BINARY collation).
func (d *data) AuditChains(ctx context.Context) ([]string, error) {
	rows, err := d.query(ctx, `SELECT chain FROM audit_chains ORDER BY chain`)
	return collect(rows, err, "cannot list audit chains", func(sc scanner) (string, error) {
		var c string
		err := sc.Scan(&c)
		return c, err
	})
}

// AuditHead returns the chain's head (last_seq, last_hash); ENotFound without one.
func (d *data) AuditHead(ctx context.Context, chain string) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := d.queryRow(ctx, `SELECT last_seq, last_hash FROM audit_chains WHERE chain = ?`, []any{chain}, &seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, thauth.Errorf(thauth.ENotFound, "no such audit chain")
	}
	if err != nil {
		return 0, nil, mapErr(err, "cannot read the audit chain head")
	}
	return seq, hash, nil
}
