package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/backup"
)

// Encrypted backups (internal/backup): `thauth backup`, `backup verify`, `backup keygen` and
// `thauth restore`. They work on the database directly, like init and migrate; a backup may
// be taken while servers run on it.

const backupUsage = `Usage: thauth backup --out FILE|- --recipient age1... [--data-dir DIR | --database-url URL]
       thauth backup verify --in FILE|- --identity FILE
       thauth backup keygen [--out FILE] [--pq]

Writes an encrypted, consistent backup of the whole installation (every organization,
project, configuration, subject, grant, API key hash and sealed data key) while servers keep
running. The backup is an age file that only the holders of the recipients' identities can
read. Master keys are never in a backup: keep them separately.

Commands:
  (none)   write a backup (run 'thauth backup -h' for the flags)
  verify   decrypt and check a backup without restoring it
  keygen   create a backup key pair: the identity (secret, keep offline) and the recipient

Restore with 'thauth restore'. See docs/security.md.`

func runBackup(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return runBackupVerify(ctx, e, args[1:])
		case "keygen":
			return runBackupKeygen(ctx, e, args[1:])
		case "help":
			fmt.Fprintln(e.stdout, backupUsage)
			return exitOK
		}
	}
	fs := newFlagSet("backup", "thauth backup --out FILE|- --recipient age1... [--data-dir DIR | --database-url URL]",
		strings.SplitN(backupUsage, "\n\n", 2)[1], e)
	storeFlags(fs)
	out := fs.String("out", "", "`file` to write the backup to (replaced atomically, mode 0600), or - for stdout (required)")
	var recipients stringList
	fs.Var(&recipients, "recipient", "age `recipient` (public key age1... or age1pq1...) to encrypt to; repeatable or\ncomma-separated; any one matching identity opens the backup")
	fs.env("recipient", "THAUTH_BACKUP_RECIPIENTS")
	fs.String("recipients-file", "", "`file` of recipients, one per line ('#' comments allowed)")
	fs.env("recipients-file", "THAUTH_BACKUP_RECIPIENTS_FILE")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var problems []string
	if *out == "" {
		problems = append(problems, "--out is required (a file, or - for stdout)")
	}
	var rs []age.Recipient
	if v := fs.value("recipient"); v != "" {
		parsed, err := backup.ParseRecipients(v)
		if err != nil {
			problems = append(problems, fs.source("recipient")+": "+safeMessage(err))
		}
		rs = append(rs, parsed...)
	}
	if f := fs.value("recipients-file"); f != "" {
		parsed, err := backup.ReadRecipientsFile(f)
		if err != nil {
			problems = append(problems, fs.source("recipients-file")+": "+safeMessage(err))
		}
		rs = append(rs, parsed...)
	}
	if len(rs) == 0 && len(problems) == 0 {
		problems = append(problems, "no recipient: give --recipient age1... or --recipients-file FILE ('thauth backup keygen' creates a key pair)")
	}
	if len(problems) > 0 {
		fmt.Fprintf(e.stderr, "thauth backup: %s\nUsage: %s\n", strings.Join(problems, "; "), fs.usageLine)
		return exitUsage
	}

	if fs.value("database-url") == "" {
		if _, err := os.Stat(fs.value("data-dir")); err != nil {
			return e.errorf("no data directory %s (--data-dir or THAUTH_DATA_DIR): %v", fs.value("data-dir"), unwrapPath(err))
		}
	}
	store, where, err := openStore(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	src, ok := store.(thauth.TableExporter)
	if !ok {
		return e.errorf("%s cannot be backed up", where)
	}
	opts := backup.WriteOptions{Recipients: rs, ThauthVersion: version}
	var info *backup.Info
	report := e.stdout
	if *out == "-" {
		report = e.stderr // stdout carries the backup
		info, err = backup.Write(ctx, src, e.stdout, opts)
	} else {
		info, err = backup.WriteFile(ctx, src, *out, opts)
	}
	if err != nil {
		if errors.Is(err, backup.ErrIncompatible) {
			return e.errorf("backing up %s: %s (run 'thauth migrate' first)", where, safeMessage(redactURL(err, fs.value("database-url"))))
		}
		return e.errorf("backing up %s: %v", where, redactURL(err, fs.value("database-url")))
	}
	dest := *out
	if dest == "-" {
		dest = "stdout"
	}
	fmt.Fprintf(report, "Backup of %s written to %s: %d rows, schema version %d, %s.\n",
		where, dest, info.TotalRows(), info.SchemaVersion, info.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintln(report, "It holds no master key: keep THAUTH_MASTER_KEY (or the master key file) separately; a restore needs it to open sealed secrets.")
	return exitOK
}

func runBackupVerify(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("backup verify", "thauth backup verify --in FILE|- --identity FILE",
		`Decrypts a backup and checks all of it (authentication of every chunk, row counts,
checksum) without writing anywhere, and prints what it holds. Exits non-zero when the
identity does not match or the file is damaged. Worth running on every backup.`, e)
	in := fs.String("in", "", "backup `file`, or - for stdin (required)")
	fs.String("identity", "", "age identity `file` (AGE-SECRET-KEY-...) of one of the backup's recipients (required)")
	fs.env("identity", "THAUTH_BACKUP_IDENTITY_FILE")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	r, ids, code, ok := backupInput(e, fs, *in)
	if !ok {
		return code
	}
	defer r.Close()
	info, err := backup.Verify(ctx, r, ids)
	if err != nil {
		return backupError(e, "verify", *in, fs.value("identity"), err)
	}
	fmt.Fprintf(e.stdout, "OK: the backup is intact (%d rows).\n", info.TotalRows())
	printBackupInfo(e.stdout, info)
	return exitOK
}

func runBackupKeygen(_ context.Context, e *env, args []string) int {
	fs := newFlagSet("backup keygen", "thauth backup keygen [--out FILE] [--pq]",
		`Creates a backup key pair. The identity (AGE-SECRET-KEY-...) decrypts backups: keep it
offline (a password manager, a safe), never on the servers. The recipient (age1...) only
encrypts: give it to 'thauth backup --recipient'. With --out the identity is written to a
new file of mode 0600 and the recipient printed; without, the identity goes to stdout and
the recipient to stderr. The format is age-keygen's, so age's own tools work too.`, e)
	out := fs.String("out", "", "identity `file` to create (must not exist)")
	pq := fs.Bool("pq", false, "post-quantum hybrid key (ML-KEM-768 + X25519, recipient age1pq1..., about 2 KB)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	kp, err := backup.GenerateIdentity(*pq, time.Now())
	if err != nil {
		return e.errorf("creating a key pair: %v", err)
	}
	if *out == "" {
		if _, err := e.stdout.Write(kp.Identity); err != nil {
			return e.errorf("writing the identity: %v", err)
		}
		fmt.Fprintf(e.stderr, "Public key: %s\n", kp.Recipient)
		return exitOK
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return e.errorf("creating the identity file: %v", err)
	}
	_, werr := f.Write(kp.Identity)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(*out)
		return e.errorf("writing the identity file %s: %v", *out, err)
	}
	fmt.Fprintln(e.stdout, kp.Recipient)
	fmt.Fprintf(e.stderr, "Identity written to %s (mode 0600): keep it offline; it is the only way to read the backups.\n"+
		"Recipient (public, for 'thauth backup --recipient'): %s\n", *out, kp.Recipient)
	return exitOK
}

func runRestore(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("restore", "thauth restore --in FILE|- --identity FILE [--data-dir DIR | --database-url URL]",
		`Restores an encrypted backup into an empty store: a new data directory, or a new
PostgreSQL database (either engine, whichever the backup came from). The store is migrated
first; the restore refuses a store that holds any data. The whole file is decrypted and
checked in one transaction that commits only if all of it is intact, so a damaged, truncated
or tampered file writes nothing. Start 'thauth serve' on the store afterwards, with the
master keys of the backed-up installation (THAUTH_MASTER_KEY or --master-key-file): a backup
never holds them, and sealed secrets cannot be opened without them.`, e)
	storeFlags(fs)
	in := fs.String("in", "", "backup `file`, or - for stdin (required)")
	fs.String("identity", "", "age identity `file` (AGE-SECRET-KEY-...) of one of the backup's recipients (required)")
	fs.env("identity", "THAUTH_BACKUP_IDENTITY_FILE")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	r, ids, code, ok := backupInput(e, fs, *in)
	if !ok {
		return code
	}
	defer r.Close()
	store, where, err := openStore(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	u := fs.value("database-url")
	if err := store.Migrate(ctx); err != nil {
		return e.errorf("migrating %s: %v", where, redactURL(err, u))
	}
	dst, ok := store.(thauth.TableImporter)
	if !ok {
		return e.errorf("cannot restore into %s", where)
	}
	info, err := backup.Restore(ctx, r, ids, dst)
	if err != nil {
		if thauth.ErrorCodeOf(err) == thauth.EConflict && !errors.Is(err, backup.ErrIncompatible) {
			return e.errorf("%s is not empty: restore only into a new, empty store (nothing was written): %s",
				where, safeMessage(redactURL(err, u)))
		}
		return backupError(e, "restore", *in, fs.value("identity"), redactURL(err, u))
	}
	fmt.Fprintf(e.stdout, "Restored into %s: %d rows.\n", where, info.TotalRows())
	printBackupInfo(e.stdout, info)
	fmt.Fprintln(e.stdout)
	fmt.Fprintln(e.stdout, "Start 'thauth serve' on it with the master keys of the backed-up installation")
	fmt.Fprintln(e.stdout, "(THAUTH_MASTER_KEY or --master-key-file): backups never hold them, and sealed secrets")
	fmt.Fprintln(e.stdout, "cannot be opened without them. API keys, configuration and decisions work as before.")
	return exitOK
}

// backupInput opens the backup named by in ("-": stdin) and reads the identities of
// --identity. When ok is false the command must return code (the problem was printed).
func backupInput(e *env, fs *flagSet, in string) (r io.ReadCloser, ids []age.Identity, code int, ok bool) {
	var problems []string
	if in == "" {
		problems = append(problems, "--in is required (a file, or - for stdin)")
	}
	idFile := fs.value("identity")
	if idFile == "" {
		problems = append(problems, "--identity is required (the identity file of one of the backup's recipients)")
	}
	if len(problems) > 0 {
		fmt.Fprintf(e.stderr, "thauth %s: %s\nUsage: %s\n", fs.Name(), strings.Join(problems, "; "), fs.usageLine)
		return nil, nil, exitUsage, false
	}
	ids, err := backup.ReadIdentityFile(idFile)
	if err != nil {
		return nil, nil, e.errorf("%s: %s", fs.source("identity"), safeMessage(err)), false
	}
	if in == "-" {
		return io.NopCloser(e.stdin), ids, exitOK, true
	}
	f, err := os.Open(in)
	if err != nil {
		return nil, nil, e.errorf("opening the backup: %v", err), false
	}
	return f, ids, exitOK, true
}

// backupError explains a failed verify or restore and returns exitError.
func backupError(e *env, what, in, idFile string, err error) int {
	nothing := ""
	if what == "restore" {
		nothing = "; nothing was restored"
	}
	switch {
	case errors.Is(err, backup.ErrNoIdentity):
		return e.errorf("the identity in %s does not match any recipient of the backup %s%s", idFile, in, nothing)
	case errors.Is(err, backup.ErrDamaged):
		return e.errorf("the backup %s is damaged, truncated or was tampered with%s: %s", in, nothing, safeMessage(err))
	case errors.Is(err, backup.ErrIncompatible):
		return e.errorf("the backup %s does not fit this version of thauth or this database%s: %s", in, nothing, safeMessage(err))
	}
	return e.errorf("%s %s: %v", what, in, err)
}

func printBackupInfo(w io.Writer, info *backup.Info) {
	fmt.Fprintf(w, "Created %s by thauth %s, format %d, schema version %d.\n",
		info.CreatedAt.UTC().Format(time.RFC3339), info.ThauthVersion, info.FormatVersion, info.SchemaVersion)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range info.Tables {
		fmt.Fprintf(tw, "  %s\t%d\n", t.Table, t.Rows)
	}
	tw.Flush()
}
