package main

import (
	"context"
	"fmt"
	"os/user"
	"slices"
	"strings"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// Operator grants: the rights of the people who run the installation over every
// organization. They are given only here, on a node with access to the database, never
// through the API, so that a compromised console account cannot make itself an operator.

const operatorUsage = `Usage: thauth operator COMMAND [flags]

Grants, revokes and lists operator roles: the rights of the people who run this
installation over every organization. They work on the database directly (like 'thauth
init'); running servers pick the change up within their sync interval.
  grant --email E --role R    give the account with this email an operator role
  revoke --email E            remove the account's operator role
  list                        list the operators
Roles: support (reads every organization), operator (reads, revokes leaked API keys,
removes members), superadmin (everything but transferring ownership). See
docs/console-roles.md. An operator role works only from a console session signed in with
two-factor authentication, and every use is recorded in the organization's audit log.
Run 'thauth operator COMMAND -h' for the flags.`

func runOperator(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, operatorUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stdout, operatorUsage)
		return exitOK
	case "grant":
		return runOperatorGrant(ctx, e, args[1:])
	case "revoke":
		return runOperatorRevoke(ctx, e, args[1:])
	case "list", "ls":
		return runOperatorList(ctx, e, args[1:])
	}
	fmt.Fprintf(e.stderr, "thauth operator: unknown command %q\n\n%s\n", args[0], operatorUsage)
	return exitUsage
}

// cliUser names the operating-system user running the command, for the audit log.
func cliUser(e *env) string {
	name := e.getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

// openConsole opens the store the flags name and makes sure the console model exists (a
// fresh database has no system project until a server starts once).
func openConsole(ctx context.Context, fs *flagSet) (thauth.Store, *manage.Service, error) {
	store, err := openReady(ctx, fs)
	if err != nil {
		return nil, nil, err
	}
	svc := manage.New(store, nil, manage.Options{})
	if err := svc.EnsureConsole(ctx); err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("setting up the console model: %s", safeMessage(err))
	}
	return store, svc, nil
}

func runOperatorGrant(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator grant", "thauth operator grant --email EMAIL --role ROLE [--data-dir DIR | --database-url URL]",
		`Gives the account with this email an operator role, replacing the one it has. The
account must exist (sign up first). The role works only once the account signs in with
two-factor authentication; it may be granted before. Recorded in the audit log with the
name of the OS user running the command.`, e)
	storeFlags(fs)
	email := fs.String("email", "", "`email` of the account (required)")
	role := fs.String("role", "", "operator `role`: "+strings.Join(thauth.OperatorRoles, ", ")+" (required)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var problems []string
	if strings.TrimSpace(*email) == "" {
		problems = append(problems, "missing --email")
	}
	switch {
	case *role == "":
		problems = append(problems, "missing --role")
	case !slices.Contains(thauth.OperatorRoles, *role):
		problems = append(problems, fmt.Sprintf("unknown role %q: use one of %s", *role, strings.Join(thauth.OperatorRoles, ", ")))
	}
	if len(problems) > 0 {
		fmt.Fprintf(e.stderr, "thauth operator grant: %s\nUsage: %s\n", strings.Join(problems, "; "), fs.usageLine)
		return exitUsage
	}
	store, svc, err := openConsole(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	op, err := svc.GrantOperator(ctx, *email, *role, cliUser(e))
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	acct, err := store.GetAccount(ctx, op.AccountID)
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	fmt.Fprintf(e.stdout, "%s is now an operator with role %s.\n", acct.Email, op.Role)
	if !acct.MFAEnabled() {
		fmt.Fprintln(e.stdout, "Note: this account has no two-factor authentication yet. Operator access needs it:")
		fmt.Fprintln(e.stdout, "enable it in the account settings, then sign in again.")
	}
	return exitOK
}

func runOperatorRevoke(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator revoke", "thauth operator revoke --email EMAIL [--data-dir DIR | --database-url URL]",
		`Removes the operator role of the account with this email. Its operator access ends as
soon as the servers pick the change up. Recorded in the audit log.`, e)
	storeFlags(fs)
	email := fs.String("email", "", "`email` of the account (required)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if strings.TrimSpace(*email) == "" {
		fmt.Fprintf(e.stderr, "thauth operator revoke: missing --email\nUsage: %s\n", fs.usageLine)
		return exitUsage
	}
	store, svc, err := openConsole(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	if err := svc.RevokeOperator(ctx, *email, cliUser(e)); err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	fmt.Fprintf(e.stdout, "%s is no longer an operator.\n", strings.ToLower(strings.TrimSpace(*email)))
	return exitOK
}

func runOperatorList(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator list", "thauth operator list [--data-dir DIR | --database-url URL] [--json]",
		`Lists the operators: email, role, whether two-factor authentication is on (without it
the role cannot be used), when and by whom it was granted.`, e)
	storeFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	store, err := openReady(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	list, err := manage.New(store, nil, manage.Options{}).ListOperators(ctx)
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "No operators. Grant one with 'thauth operator grant --email E --role R'.")
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%-32s %-11s %-4s %-20s %s\n", "EMAIL", "ROLE", "MFA", "GRANTED", "BY")
	for _, op := range list {
		mfa := "no"
		if op.MFAEnabled {
			mfa = "yes"
		}
		fmt.Fprintf(e.stdout, "%-32s %-11s %-4s %-20s %s\n", op.Email, op.Role, mfa,
			op.GrantedAt.Format("2006-01-02T15:04:05Z"), op.GrantedBy)
	}
	return exitOK
}
