// Package backup writes and restores encrypted, consistent backups of a whole Thauth
// installation — every organization, project, configuration, subject, grant, API key hash,
// change-log entry and sealed data key — and works the same on every storage engine: a backup
// of the embedded SQLite store restores into PostgreSQL and back.
//
// # Operator workflow
//
//  1. Once, on a trusted machine, create a backup key pair (`thauth backup keygen`, or age's
//     own age-keygen; GenerateIdentity). Keep the identity file (AGE-SECRET-KEY-…) offline —
//     a password manager, a hardware token, a safe — and never on the servers. Give the
//     servers and the backup job only the recipient (the public key, age1…): it can encrypt
//     backups but not read them.
//  2. Back up online, while the server runs and writes (`thauth backup --out FILE
//     --recipient age1…`; Write or WriteFile). Several recipients may be given (say, two
//     operators); any one of their identities opens the backup. For a laptop, a passphrase
//     (age's scrypt) may be used instead of a key pair; it cannot be combined with other
//     recipients.
//  3. Restore into a new, empty, migrated database, before a server starts on it (`thauth
//     migrate`, then `thauth restore --in FILE --identity FILE`; Restore). The restore checks
//     the whole file and writes nothing unless all of it is intact. Verify checks a backup
//     without restoring it, which is worth doing regularly.
//
// Backups hold API key hashes and sealed secrets (see internal/seal) with the data keys that
// sealed them, but never a master key: the data keys are stored wrapped under the master
// keys, which live only in THAUTH_MASTER_KEY or the master key file. Keep the master keys
// separately from the backups and their identity; a restored installation needs the same
// master keys (THAUTH_MASTER_KEY) to open its sealed secrets, and without them those secrets
// are lost while everything else — configuration, subjects, grants, API keys — works.
//
// # Consistency
//
// Write reads every table in one read transaction of the store (SQLite: one read
// transaction on one connection, in WAL mode; PostgreSQL: one REPEATABLE READ, READ ONLY
// transaction), so a backup is one committed state of the database: each write transaction
// — a configuration apply, a subject upsert, with its change-log entries and revision bump —
// is in the backup wholly or not at all. Writers are not blocked meanwhile.
//
// # Format
//
// A backup is an age file (age-encryption.org/v1): X25519 or post-quantum hybrid recipients
// (age1…, age1pq1…) or one passphrase. Its plaintext is UTF-8 text, one JSON value per line,
// each line ending in "\n":
//
//	{"format":"thauth-backup","format_version":1,"schema_version":2,"created_at":"…","thauth_version":"…","tables":[…]}
//	{"table":"seal_data_keys"}
//	["dk_…","k-2026","<base64>",1772359200123456,null]
//	{"table":"organizations"}
//	…
//	{"end":true,"rows":[{"table":"seal_data_keys","rows":2},…],"sha256":"<hex>"}
//
// The header names the format and its version, the schema version (the number of the last
// migration; migrations are numbered in lockstep on every engine), the time and the Thauth
// version that wrote it, and every table with its columns (name, type, nullable) in the
// order of thauth.BackupTables, parents before children. Then every table follows in that
// order — each one, even when empty — as a section line and its rows in the order of the
// table's primary key (text in byte order), each row a JSON array of the column values in
// column order: text as a JSON string, integers as JSON numbers, bytes as standard padded
// base64, times as integer microseconds since the Unix epoch (UTC), NULL as null. The same
// data therefore gives the same lines whichever engine it was read from. The trailer gives
// the row count of every table and the SHA-256 (hex) of every byte of the plaintext before
// the trailer line; nothing may follow it.
//
// # Threat model
//
// Confidentiality: only a holder of a matching identity (or the passphrase) can read a
// backup; the recipient alone cannot. Integrity: age authenticates the header and every
// 64 KiB chunk of the payload, and marks the last chunk, so a flipped bit, a truncated file,
// reordered or spliced chunks or appended data all fail to decrypt; the trailer's row counts
// and hash catch a backup that ends early or was written incompletely even so. Restore
// reads the file in one store transaction that commits only after the trailer has been
// checked and the end of the age stream reached, so a damaged file writes nothing.
//
// Not covered: age does not authenticate the sender. Anyone who knows the recipient — a
// public key — can forge a complete, valid backup; keep backups where only the backup job
// can write, or sign them if that matters. A backup also cannot be fresher than the moment
// it was taken, and an old but genuine backup restores as well as a new one.
package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"filippo.io/age"
	"github.com/thauth/thauth"
)

// Errors returned (inside a *thauth.Error; test with errors.Is) by this package.
var (
	// ErrDamaged: the file is not a Thauth backup, or it was damaged, truncated or tampered
	// with (code EInvalid).
	ErrDamaged = errors.New("backup: damaged, truncated or tampered with")
	// ErrNoIdentity: none of the given identities can decrypt the backup (code
	// EUnauthenticated).
	ErrNoIdentity = errors.New("backup: no matching identity")
	// ErrIncompatible: the backup's format or schema version does not match this program or
	// the target database (code EConflict).
	ErrIncompatible = errors.New("backup: incompatible version")
)

// FormatVersion is the version of the plaintext format this package writes and reads.
const FormatVersion = 1

// Info describes a backup: its header and how many rows of each table it holds.
type Info struct {
	FormatVersion int
	SchemaVersion int
	CreatedAt     time.Time
	ThauthVersion string
	Tables        []TableCount // every table, in backup order
}

// TableCount is the number of rows of one table in a backup.
type TableCount struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
}

// TotalRows returns the number of rows of every table together.
func (i *Info) TotalRows() int64 {
	var n int64
	for _, t := range i.Tables {
		n += t.Rows
	}
	return n
}

// WriteOptions configure Write.
type WriteOptions struct {
	// Recipients are the keys the backup is encrypted to (at least one; see ParseRecipients
	// and PassphraseRecipient).
	Recipients []age.Recipient
	// ThauthVersion is recorded in the header; default: the main module's version from the
	// build information.
	ThauthVersion string
	// Now gives the creation time recorded in the header; default time.Now.
	Now func() time.Time
}

// Write reads every table of src in one snapshot (see the package comment) and writes it to
// w as an encrypted backup. It does not close w; the backup is complete only when Write
// returns nil and w has been closed (and synced) without error — WriteFile does all that for
// a file. It returns what the backup holds.
//
// Errors are *thauth.Error: EInvalid without recipients or with recipients age cannot mix;
// EConflict (ErrIncompatible) when the database is not migrated to the schema this program
// knows; the store's errors (EUnavailable, EInternal); EInternal when writing to w fails.
func Write(ctx context.Context, src thauth.TableExporter, w io.Writer, o WriteOptions) (*Info, error) {
	if len(o.Recipients) == 0 {
		return nil, thauth.Errorf(thauth.EInvalid, "a backup needs at least one recipient (an age public key, age1…) or a passphrase")
	}
	cur, latest, err := src.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if cur != latest || cur == 0 {
		return nil, &thauth.Error{
			Code: thauth.EConflict,
			Message: fmt.Sprintf("cannot back up a database at schema version %d with a program that knows schema version %d: run `thauth migrate` first, or back up with the Thauth version that migrated it",
				cur, latest),
			Err: ErrIncompatible,
		}
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	info := &Info{
		FormatVersion: FormatVersion,
		SchemaVersion: cur,
		CreatedAt:     now().UTC().Truncate(time.Microsecond),
		ThauthVersion: o.ThauthVersion,
	}
	if info.ThauthVersion == "" {
		info.ThauthVersion = buildVersion()
	}

	ew := &errWriter{w: w}
	aw, err := age.Encrypt(ew, o.Recipients...)
	if err != nil {
		if ew.err != nil {
			return nil, thauth.Internal(err, "cannot write the backup")
		}
		return nil, &thauth.Error{Code: thauth.EInvalid, Message: "cannot encrypt to these recipients: " + err.Error(), Err: err}
	}
	bw := bufio.NewWriterSize(aw, 256<<10)
	h := sha256.New()
	enc := newEncoder(io.MultiWriter(bw, h))

	tables := thauth.BackupTables()
	if err := enc.header(info, tables); err != nil {
		return nil, writeErr(err)
	}
	counts := make([]int64, len(tables))
	open := -1 // the table whose section was written last
	next := func(upTo int) error {
		for ; open < upTo; open++ {
			if err := enc.section(tables[open+1].Name); err != nil {
				return writeErr(err)
			}
		}
		return nil
	}
	index := map[string]int{}
	for i, t := range tables {
		index[t.Name] = i
	}
	var rows int64
	err = src.ExportTables(ctx, func(table string, row []any) error {
		i, ok := index[table]
		if !ok || i < open {
			return thauth.Internal(nil, "the store exported table %q out of order", table)
		}
		if err := next(i); err != nil {
			return err
		}
		if err := tables[i].CheckRow(row); err != nil {
			return thauth.Internal(err, "the store exported a row that cannot be backed up: %s", thauth.ErrorMessage(err))
		}
		if err := enc.row(tables[i], row); err != nil {
			return writeErr(err)
		}
		counts[i]++
		if rows++; rows%4096 == 0 {
			return ctx.Err()
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil && !errors.As(err, new(*thauth.Error)) {
			return nil, &thauth.Error{Code: thauth.EUnavailable, Message: "backup canceled", Err: err}
		}
		return nil, err
	}
	if err := next(len(tables) - 1); err != nil {
		return nil, err
	}
	for i, t := range tables {
		info.Tables = append(info.Tables, TableCount{Table: t.Name, Rows: counts[i]})
	}
	tr := trailer{End: true, Rows: info.Tables, SHA256: hex.EncodeToString(h.Sum(nil))}
	if err := newEncoder(bw).value(tr); err != nil {
		return nil, writeErr(err)
	}
	if err := bw.Flush(); err != nil {
		return nil, writeErr(err)
	}
	if err := aw.Close(); err != nil { // encrypts and writes the final chunk
		return nil, writeErr(err)
	}
	return info, nil
}

// WriteFile writes a backup (see Write) to path: into a new file in the same directory,
// readable by its owner only, synced to disk, then renamed over path, so that path holds
// either its previous content or a complete backup, never a partial one.
func WriteFile(ctx context.Context, src thauth.TableExporter, path string, o WriteOptions) (*Info, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return nil, thauth.Internal(err, "cannot create the backup file")
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	info, err := Write(ctx, src, f, o)
	if err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, thauth.Internal(err, "cannot write the backup file")
	}
	if err := f.Close(); err != nil {
		return nil, thauth.Internal(err, "cannot write the backup file")
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, thauth.Internal(err, "cannot move the backup file into place")
	}
	done = true
	if d, err := os.Open(dir); err == nil { // make the rename durable; best effort
		_ = d.Sync()
		d.Close()
	}
	return info, nil
}

// writeErr wraps a failure to write the backup stream; errors that are already
// *thauth.Error pass through.
func writeErr(err error) error {
	var te *thauth.Error
	if errors.As(err, &te) {
		return err
	}
	return thauth.Internal(err, "cannot write the backup")
}

// errWriter remembers the first error of w, to tell a failed write from a bad recipient.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
