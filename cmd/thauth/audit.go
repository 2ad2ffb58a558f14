package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// The audit log from a node: verify its hash chains, export a chain as JSON lines. Both read
// the database directly (like 'thauth init') and never write to it.

const auditUsage = `Usage: thauth audit COMMAND [flags]

Verifies and exports the tamper-evident audit log (docs/audit-log.md). Both commands
read the database directly (the SQLite database of the data directory, or PostgreSQL with
--database-url) and never write to it; they can run next to running servers.
  verify [--chain ID] [--json]     check every chain (or one): exit 0 when intact, 1
                                   listing every problem
  verify --file F                  check an export (JSON lines) offline, without a database
  export --org ID [--out F]        write an organization's log as JSON lines
Run 'thauth audit COMMAND -h' for the flags.`

func runAudit(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, auditUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stdout, auditUsage)
		return exitOK
	case "verify":
		return runAuditVerify(ctx, e, args[1:])
	case "export":
		return runAuditExport(ctx, e, args[1:])
	}
	fmt.Fprintf(e.stderr, "thauth audit: unknown command %q\n\n%s\n", args[0], auditUsage)
	return exitUsage
}

func runAuditVerify(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("audit verify", "thauth audit verify [--data-dir DIR | --database-url URL] [--chain ID] [--json] | --file F",
		`Recomputes the hash of every audit entry and checks the chains: an edited entry (its
hash no longer matches), deleted entries (a gap in the sequence numbers, or a chain head
past the last entry), reordered or inserted ones (an entry that does not chain to the one
before). Prints a summary and exits 0 when every chain is intact; lists each problem and
exits 1 otherwise. A chain whose oldest entries were removed by retention starts after
entry 1: it is accepted and marked "pruned" (its first link cannot be checked).

The chain heads printed (sequence number and hash of each chain's newest entry) can be
kept elsewhere: someone able to write the database could rewrite a chain consistently,
which only a copy kept outside it reveals.

With --file it checks an export (from 'thauth audit export' or the API) offline instead.`, e)
	storeFlags(fs)
	chain := fs.String("chain", "", "verify only this chain: an organization `id` (--chain '' for the installation chain)")
	file := fs.String("file", "", "verify this export `file` (JSON lines; - for stdin) instead of the database")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var rep *manage.AuditReport
	var err error
	if fs.isSet("file") {
		rep, err = verifyAuditFile(e, *file)
		if err != nil {
			return e.errorf("%v", err)
		}
	} else {
		store, where, err := openStore(ctx, fs)
		if err != nil {
			return e.errorf("%v", err)
		}
		defer store.Close()
		var chains []string
		if fs.isSet("chain") {
			chains = []string{*chain}
		}
		rep, err = manage.VerifyAudit(ctx, store, chains)
		if err != nil {
			return e.errorf("verifying the audit log in %s: %s", where, safeMessage(err))
		}
	}
	if *asJSON {
		if code := writeJSON(e, rep); code != exitOK {
			return code
		}
	} else {
		printAuditReport(e.stdout, rep)
	}
	if !rep.OK() {
		return exitError
	}
	return exitOK
}

// verifyAuditFile verifies an export file ("-" is stdin).
func verifyAuditFile(e *env, name string) (*manage.AuditReport, error) {
	var rd io.Reader = e.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rd = f
	}
	return manage.VerifyAuditExport(rd)
}

// chainName shows a chain for people: the installation chain has no id.
func chainName(c string) string {
	if c == "" {
		return "installation"
	}
	return c
}

func printAuditReport(w io.Writer, rep *manage.AuditReport) {
	for _, c := range rep.Chains {
		note := ""
		switch {
		case c.Pruned && c.Entries == 0:
			note = "  (every entry pruned by retention)"
		case c.Pruned:
			note = fmt.Sprintf("  (pruned: starts at entry %d)", c.FirstSeq)
		}
		fmt.Fprintf(w, "%-36s %8d entries  head %d %s%s\n", chainName(c.Chain), c.Entries, c.HeadSeq, c.HeadHash, note)
	}
	if rep.OK() {
		fmt.Fprintf(w, "OK: %d chains, %d entries, no problems\n", len(rep.Chains), rep.Entries)
		return
	}
	fmt.Fprintf(w, "FAILED: %d chains, %d entries, %d problems\n", len(rep.Chains), rep.Entries, len(rep.Problems))
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  chain %s: %s: %s\n", chainName(p.Chain), p.Kind, p.Message)
	}
	if rep.ProblemsTruncated {
		fmt.Fprintln(w, "  ... and more (only the first problems are listed)")
	}
}

func runAuditExport(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("audit export", "thauth audit export --org ID [--out FILE] [--data-dir DIR | --database-url URL]",
		`Writes an organization's audit log, oldest first, one JSON object per line with its
sequence number, previous hash and hash in hex, so that it can be verified offline
('thauth audit verify --file', or the algorithm of docs/audit-log.md). --installation
exports the installation's own chain (accounts, operators) instead.`, e)
	storeFlags(fs)
	org := fs.String("org", "", "organization `id`")
	installation := fs.Bool("installation", false, "export the installation chain instead of an organization's")
	out := fs.String("out", "", "write to this `file` instead of standard output")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if (strings.TrimSpace(*org) == "") == !*installation {
		fmt.Fprintf(e.stderr, "thauth audit export: give one of --org and --installation\nUsage: %s\n", fs.usageLine)
		return exitUsage
	}
	store, where, err := openStore(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	chain := strings.TrimSpace(*org)
	if _, _, err := store.AuditHead(ctx, chain); err != nil {
		if thauth.ErrorCodeOf(err) == thauth.ENotFound {
			return e.errorf("no audit log for %s in %s", chainName(chain), where)
		}
		return e.errorf("reading the audit log in %s: %s", where, safeMessage(err))
	}
	var dst io.Writer = e.stdout
	var f *os.File
	if *out != "" {
		f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return e.errorf("%v", err)
		}
		dst = f
	}
	bw := bufio.NewWriterSize(dst, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n := 0
	err = manage.ExportAuditChain(ctx, store, chain, func(en *thauth.AuditEntry) error {
		rec := manage.NewAuditRecord(en)
		n++
		return enc.Encode(&rec)
	})
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return e.errorf("exporting the audit log: %s", safeMessage(err))
	}
	if *out != "" {
		fmt.Fprintf(e.stderr, "%d entries written to %s\n", n, *out)
	}
	return exitOK
}
