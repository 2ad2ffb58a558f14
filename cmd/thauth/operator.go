package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/seal"
)

// Operator grants: the rights of the people who run the installation over every
// organization. They are given only here, on a node with access to the database, never
// through the API, so that a compromised console account cannot make itself an operator.

const operatorUsage = `Usage: thauth operator COMMAND [flags]

Commands for the people who run this installation. They work on the database directly
(like 'thauth init'); running servers pick every change up within their sync interval.

Operator roles:
  grant --email E --role R    give the account with this email an operator role
  revoke --email E            remove the account's operator role
  list                        list the operators
  add-owner --org ID --email E
                              make the account an owner of an organization (how an
                              organization created by 'thauth init' gets its first member)
Roles: support (reads every organization), operator (reads, revokes leaked API keys,
removes members), superadmin (everything but transferring ownership). See
docs/console-roles.md. An operator role works only from a console session signed in with
two-factor authentication, and every use is recorded in the organization's audit log.

Incident response (docs/incident-response.md); each command is recorded in an incident's
timeline (--incident ID, or a new incident opened for it) and in the audit log:
  suspend --org ID --reason TEXT     the organization's API keys answer 401, its console is read-only
  reinstate --org ID                 lift a suspension
  revoke-keys --project ID           revoke every API key of a project
  revoke-sessions --email E          sign an account out everywhere (sessions and access tokens)
  notify (--org ID ... | --all) --subject S --message-file F
                                     email a notice to the owners of organizations
  incident open --title T | list | show ID | note ID --text T | close ID
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
	case "add-owner":
		return runOperatorAddOwner(ctx, e, args[1:])
	case "suspend":
		return runOperatorSuspend(ctx, e, args[1:])
	case "reinstate":
		return runOperatorReinstate(ctx, e, args[1:])
	case "revoke-keys":
		return runOperatorRevokeKeys(ctx, e, args[1:])
	case "revoke-sessions":
		return runOperatorRevokeSessions(ctx, e, args[1:])
	case "notify":
		return runOperatorNotify(ctx, e, args[1:])
	case "incident", "incidents":
		return runOperatorIncident(ctx, e, args[1:])
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

func runOperatorAddOwner(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator add-owner", "thauth operator add-owner --org ID --email EMAIL [--data-dir DIR | --database-url URL]",
		`Makes the account with this email an owner of the organization: how an organization
created by 'thauth init' (which has API keys but no members) gets its first console user.
An existing member is promoted. Recorded in the organization's audit log.`, e)
	storeFlags(fs)
	org := fs.String("org", "", "organization `id` (required)")
	email := fs.String("email", "", "`email` of the account (required)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if strings.TrimSpace(*org) == "" || strings.TrimSpace(*email) == "" {
		fmt.Fprintf(e.stderr, "thauth operator add-owner: missing --org or --email\nUsage: %s\n", fs.usageLine)
		return exitUsage
	}
	store, svc, err := openConsole(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	if _, err := svc.AddOwner(ctx, strings.TrimSpace(*org), *email, cliUser(e)); err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	fmt.Fprintf(e.stdout, "%s is now an owner of organization %s.\n", strings.ToLower(strings.TrimSpace(*email)), strings.TrimSpace(*org))
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

// Incident response. The commands change the database directly and record what they did in
// an incident's timeline and the audit log (internal/manage/incidents.go); the servers'
// follow loops carry the effect (keys switched off or revoked) to every node.

// incidentFlags registers the flags every incident command has and returns --incident and
// --json.
func incidentFlags(fs *flagSet) (incident *string, asJSON *bool) {
	storeFlags(fs)
	incident = fs.String("incident", "", "record the action in this open incident (`ID`); default: open a new incident for it")
	asJSON = fs.Bool("json", false, "print the result as JSON")
	return incident, asJSON
}

// openIncidents opens the store the flags name and a management service on it.
func openIncidents(ctx context.Context, fs *flagSet) (thauth.Store, *manage.Service, error) {
	store, err := openReady(ctx, fs)
	if err != nil {
		return nil, nil, err
	}
	return store, manage.New(store, nil, manage.Options{}), nil
}

// printIncident says which incident recorded the step.
func printIncident(e *env, step manage.IncidentStep) {
	if step.Opened {
		fmt.Fprintf(e.stdout, "Recorded in the new incident %s (%q).\n", step.Incident.ID, step.Incident.Title)
		fmt.Fprintf(e.stdout, "Follow-up commands can add to it with --incident %s; close it with\n", step.Incident.ID)
		fmt.Fprintf(e.stdout, "'thauth operator incident close %s'.\n", step.Incident.ID)
		return
	}
	fmt.Fprintf(e.stdout, "Recorded in incident %s (%q).\n", step.Incident.ID, step.Incident.Title)
}

// usageError prints problems with the usage line and returns exitUsage.
func usageError(e *env, fs *flagSet, problems []string) int {
	fmt.Fprintf(e.stderr, "thauth %s: %s\nUsage: %s\n", fs.Name(), strings.Join(problems, "; "), fs.usageLine)
	return exitUsage
}

func runOperatorSuspend(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator suspend", "thauth operator suspend --org ID --reason TEXT [--incident ID] [--data-dir DIR | --database-url URL] [--json]",
		`Suspends an organization: the API keys of all its projects answer 401 and its console
is read-only for its members (operators may still act) as soon as each server picks the
change up (within its sync interval). Nothing is deleted; 'thauth operator reinstate'
undoes it. The reason is stored with the organization and shown to its members.`, e)
	incident, asJSON := incidentFlags(fs)
	org := fs.String("org", "", "organization `ID` (required)")
	reason := fs.String("reason", "", "why, in a sentence shown to the organization's members (required)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var problems []string
	if strings.TrimSpace(*org) == "" {
		problems = append(problems, "missing --org")
	}
	if strings.TrimSpace(*reason) == "" {
		problems = append(problems, "missing --reason")
	}
	if len(problems) > 0 {
		return usageError(e, fs, problems)
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	res, err := svc.SuspendOrganization(ctx, cliUser(e), strings.TrimSpace(*org), *reason, strings.TrimSpace(*incident))
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, res)
	}
	fmt.Fprintf(e.stdout, "Organization %q (%s) is suspended: the API keys of its %d project(s) answer 401 and\n",
		res.Organization.Name, res.Organization.ID, res.Projects)
	fmt.Fprintln(e.stdout, "its console is read-only once the servers pick the change up (within their sync interval).")
	printIncident(e, res.IncidentStep)
	fmt.Fprintf(e.stdout, "Undo with: thauth operator reinstate --org %s --incident %s\n", res.Organization.ID, res.Incident.ID)
	return exitOK
}

func runOperatorReinstate(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator reinstate", "thauth operator reinstate --org ID [--incident ID] [--data-dir DIR | --database-url URL] [--json]",
		`Lifts an organization's suspension: its API keys authenticate again and its console is
writable as soon as each server picks the change up.`, e)
	incident, asJSON := incidentFlags(fs)
	org := fs.String("org", "", "organization `ID` (required)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if strings.TrimSpace(*org) == "" {
		return usageError(e, fs, []string{"missing --org"})
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	res, err := svc.ReinstateOrganization(ctx, cliUser(e), strings.TrimSpace(*org), strings.TrimSpace(*incident))
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, res)
	}
	fmt.Fprintf(e.stdout, "Organization %q (%s) is reinstated: the API keys of its %d project(s) work again once the\n",
		res.Organization.Name, res.Organization.ID, res.Projects)
	fmt.Fprintln(e.stdout, "servers pick the change up.")
	printIncident(e, res.IncidentStep)
	return exitOK
}

func runOperatorRevokeKeys(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator revoke-keys", "thauth operator revoke-keys --project ID [--incident ID] [--data-dir DIR | --database-url URL] [--json]",
		`Revokes every API key of a project that is not revoked yet, at once (one transaction).
Each server stops accepting them when it picks the change up. This cannot be undone: the
project's owners create new keys in the console.`, e)
	incident, asJSON := incidentFlags(fs)
	project := fs.String("project", "", "project `ID` (required)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if strings.TrimSpace(*project) == "" {
		return usageError(e, fs, []string{"missing --project"})
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	res, err := svc.RevokeProjectKeys(ctx, cliUser(e), strings.TrimSpace(*project), strings.TrimSpace(*incident))
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, res)
	}
	switch res.Revoked {
	case 0:
		fmt.Fprintf(e.stdout, "Project %s has no key left to revoke.\n", res.ProjectID)
	default:
		fmt.Fprintf(e.stdout, "Revoked %d API key(s) of project %s:\n", res.Revoked, res.ProjectID)
		for _, id := range res.KeyIDs {
			fmt.Fprintln(e.stdout, "  "+id)
		}
	}
	printIncident(e, res.IncidentStep)
	return exitOK
}

func runOperatorRevokeSessions(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator revoke-sessions", "thauth operator revoke-sessions --email E [--incident ID] [--data-dir DIR | --database-url URL] [--json]",
		`Signs the account with this email out everywhere: revokes every console session and every
personal access token of the account (a token is as good as a session to whoever holds
it). The next request with any of them is refused by every server. The account itself is
untouched: its owner signs in again (reset the password first if it may be known).`, e)
	incident, asJSON := incidentFlags(fs)
	email := fs.String("email", "", "`email` of the account (required)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if strings.TrimSpace(*email) == "" {
		return usageError(e, fs, []string{"missing --email"})
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	res, err := svc.RevokeAccountSessions(ctx, cliUser(e), *email, strings.TrimSpace(*incident))
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, res)
	}
	fmt.Fprintf(e.stdout, "Revoked %d session(s) and %d access token(s) of %s.\n", res.Sessions, res.AccessTokens, res.Email)
	printIncident(e, res.IncidentStep)
	return exitOK
}

// maxNoticeFile bounds the message file of notify (the message itself is at most 20000
// characters).
const maxNoticeFile = 256 << 10

func runOperatorNotify(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator notify",
		"thauth operator notify (--org ID ... | --all) --subject S --message-file F [--incident ID] [--master-key-file FILE] [--data-dir DIR | --database-url URL] [--json]",
		`Emails a notice to every owner of the chosen organizations (template incident_notice:
the subject, then the message as plain text, with the organization's name and the
incident id). The mails are queued in the database in one transaction — all or none —
and sent by the servers' mail workers. Queued mail is sealed, so this needs the master
keys of the servers (--master-key-file or THAUTH_MASTER_KEY; on a development SQLite data
directory, its development key is used).`, e)
	incident, asJSON := incidentFlags(fs)
	var orgs stringList
	fs.Var(&orgs, "org", "organization `ID` (repeatable, or comma-separated)")
	all := fs.Bool("all", false, "notify every organization")
	subject := fs.String("subject", "", "the mail's `subject` (required)")
	messageFile := fs.String("message-file", "", "`file` holding the message, plain text; - for stdin (required)")
	fs.String("master-key-file", "", "`file` of master keys; or $"+masterKeyEnv)
	fs.env("master-key-file", "THAUTH_MASTER_KEY_FILE")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var problems []string
	switch {
	case *all && len(orgs) > 0:
		problems = append(problems, "give --org or --all, not both")
	case !*all && len(orgs) == 0:
		problems = append(problems, "missing --org (or --all)")
	}
	if strings.TrimSpace(*subject) == "" {
		problems = append(problems, "missing --subject")
	}
	if *messageFile == "" {
		problems = append(problems, "missing --message-file")
	}
	if len(problems) > 0 {
		return usageError(e, fs, problems)
	}
	message, err := readMessage(e, *messageFile)
	if err != nil {
		return e.errorf("--message-file: %v", err)
	}
	keys, warnings, problem := loadMasterKeys(e, fs.value("master-key-file"), fs.source("master-key-file"))
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, "warning: "+w)
	}
	if problem != "" {
		fmt.Fprintf(e.stderr, "thauth operator notify: %s\n", problem)
		return exitUsage
	}
	if keys.Len() == 0 && fs.value("database-url") == "" {
		// A development data directory keeps its master key beside the data (see 'thauth
		// serve'); use it, so that notify works where the server does.
		dev, err := devMasterKeys(fs.value("data-dir"))
		if err != nil {
			return e.errorf("%v", err)
		}
		keys = dev
	}
	if keys.Len() == 0 {
		fmt.Fprintf(e.stderr, "thauth operator notify: no master key: give --master-key-file FILE or set %s (the servers' keys)\n", masterKeyEnv)
		return exitUsage
	}
	store, err := openReady(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	ks, ok := store.(seal.KeyStore)
	if !ok {
		return e.errorf("this store cannot hold data keys")
	}
	sealer, err := seal.New(ctx, ks, keys, seal.Options{})
	if err != nil {
		if errors.Is(err, seal.ErrWrongKey) {
			return e.errorf("the master keys %v do not open the stored data keys: give the servers' master keys", keys)
		}
		return e.errorf("opening the secret store: %v", redactURL(err, fs.value("database-url")))
	}
	svc := manage.New(store, nil, manage.Options{Sealer: sealer})
	res, err := svc.NotifyOrganizations(ctx, cliUser(e), orgs, *all, *subject, message, strings.TrimSpace(*incident))
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, res)
	}
	fmt.Fprintf(e.stdout, "Queued the notice to %d owner(s) of %d organization(s):\n", res.Recipients, len(res.Organizations))
	for _, o := range res.Organizations {
		fmt.Fprintf(e.stdout, "  %-36s %3d  %s\n", o.ID, o.Recipients, o.Name)
	}
	printIncident(e, res.IncidentStep)
	return exitOK
}

// readMessage reads the message of notify from file ("-": stdin), at most maxNoticeFile
// bytes.
func readMessage(e *env, file string) (string, error) {
	var r io.Reader = e.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", unwrapPath(err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxNoticeFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxNoticeFile {
		return "", fmt.Errorf("larger than %d KiB", maxNoticeFile>>10)
	}
	return string(b), nil
}

// devMasterKeyFile is the development master key of a SQLite data directory, written by
// 'thauth serve' outside production (cmd/internal/serve keeps the same name).
const devMasterKeyFile = "dev-master-key"

// devMasterKeys returns the development master key of dataDir, or none when it has none.
func devMasterKeys(dataDir string) (seal.MasterKeys, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, devMasterKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return seal.MasterKeys{}, nil
	}
	if err != nil {
		return seal.MasterKeys{}, fmt.Errorf("reading the development master key: %w", unwrapPath(err))
	}
	keys, err := seal.ParseMasterKeys(strings.TrimSpace(string(b)))
	if err != nil {
		return seal.MasterKeys{}, fmt.Errorf("the development master key of %s is damaged: %s", dataDir, safeMessage(err))
	}
	return keys, nil
}

const incidentUsage = `Usage: thauth operator incident COMMAND [flags]

Incidents are operators' records of what was done about a security event, with a
timeline. The other incident-response commands (suspend, reinstate, revoke-keys,
revoke-sessions, notify) add to one with --incident ID, or open one for themselves.
  open --title T         open an incident
  list                   list the incidents, newest first
  show ID                show an incident and its timeline
  note ID --text T       add a note to an open incident's timeline (--text - reads stdin)
  close ID               close an incident
Each takes --data-dir DIR | --database-url URL and --json.`

func runOperatorIncident(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, incidentUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stdout, incidentUsage)
		return exitOK
	case "open":
		return runIncidentOpen(ctx, e, args[1:])
	case "list", "ls":
		return runIncidentList(ctx, e, args[1:])
	case "show":
		return runIncidentShow(ctx, e, args[1:])
	case "note":
		return runIncidentNote(ctx, e, args[1:])
	case "close":
		return runIncidentClose(ctx, e, args[1:])
	}
	fmt.Fprintf(e.stderr, "thauth operator incident: unknown command %q\n\n%s\n", args[0], incidentUsage)
	return exitUsage
}

func runIncidentOpen(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator incident open", "thauth operator incident open --title T [--data-dir DIR | --database-url URL] [--json]",
		"Opens an incident and prints its id, for --incident of the other commands.", e)
	storeFlags(fs)
	asJSON := fs.Bool("json", false, "print the incident as JSON")
	title := fs.String("title", "", "`title` of the incident, 1–200 characters (required)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if strings.TrimSpace(*title) == "" {
		return usageError(e, fs, []string{"missing --title"})
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	inc, err := svc.OpenIncident(ctx, cliUser(e), *title)
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, inc)
	}
	fmt.Fprintf(e.stdout, "Opened incident %s (%q).\n", inc.ID, inc.Title)
	return exitOK
}

func runIncidentList(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator incident list", "thauth operator incident list [--data-dir DIR | --database-url URL] [--json]",
		"Lists the incidents, newest first.", e)
	storeFlags(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	list, err := svc.ListIncidents(ctx)
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "No incidents.")
		return exitOK
	}
	fmt.Fprintf(e.stdout, "%-36s %-6s %-20s %-16s %s\n", "ID", "STATUS", "OPENED", "BY", "TITLE")
	for _, inc := range list {
		fmt.Fprintf(e.stdout, "%-36s %-6s %-20s %-16s %s\n", inc.ID, inc.Status, inc.CreatedAt.Format(timeLayout),
			inc.CreatedBy, inc.Title)
	}
	return exitOK
}

// timeLayout is how the incident commands print times (UTC).
const timeLayout = "2006-01-02T15:04:05Z"

func runIncidentShow(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator incident show", "thauth operator incident show ID [--data-dir DIR | --database-url URL] [--json]",
		"Shows an incident and its timeline, oldest entry first.", e)
	storeFlags(fs)
	asJSON := fs.Bool("json", false, "print the incident with its events as JSON")
	pos, code, done := parse(fs, args, 1, 1)
	if done {
		return code
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	tl, err := svc.GetIncident(ctx, pos[0])
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, tl)
	}
	w := e.stdout
	fmt.Fprintf(w, "Incident  %s\n", tl.ID)
	fmt.Fprintf(w, "Title     %s\n", tl.Title)
	fmt.Fprintf(w, "Status    %s\n", tl.Status)
	fmt.Fprintf(w, "Opened    %s by %s\n", tl.CreatedAt.Format(timeLayout), tl.CreatedBy)
	if tl.ClosedAt != nil {
		fmt.Fprintf(w, "Closed    %s\n", tl.ClosedAt.Format(timeLayout))
	}
	fmt.Fprintln(w)
	for _, ev := range tl.Events {
		fmt.Fprintf(w, "%3d  %s  %-16s %s\n", ev.Seq, ev.At.Format(timeLayout), ev.Actor, ev.Kind)
		var detail map[string]string
		if err := json.Unmarshal([]byte(ev.Detail), &detail); err != nil {
			fmt.Fprintf(w, "       %s\n", ev.Detail)
			continue
		}
		keys := make([]string, 0, len(detail))
		for k := range detail {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := strings.ReplaceAll(detail[k], "\n", "\n"+strings.Repeat(" ", 9+len(k)))
			fmt.Fprintf(w, "       %s: %s\n", k, v)
		}
	}
	return exitOK
}

func runIncidentNote(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator incident note", "thauth operator incident note ID --text T [--data-dir DIR | --database-url URL] [--json]",
		"Adds a note to an open incident's timeline: what was seen, decided or done outside Thauth.", e)
	storeFlags(fs)
	asJSON := fs.Bool("json", false, "print the timeline entry as JSON")
	text := fs.String("text", "", "the note; - reads it from stdin (required)")
	pos, code, done := parse(fs, args, 1, 1)
	if done {
		return code
	}
	if *text == "" {
		return usageError(e, fs, []string{"missing --text"})
	}
	note := *text
	if note == "-" {
		var err error
		if note, err = readMessage(e, "-"); err != nil {
			return e.errorf("reading the note: %v", err)
		}
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	ev, err := svc.AddIncidentNote(ctx, cliUser(e), pos[0], note)
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, ev)
	}
	fmt.Fprintf(e.stdout, "Added note #%d to incident %s.\n", ev.Seq, ev.IncidentID)
	return exitOK
}

func runIncidentClose(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("operator incident close", "thauth operator incident close ID [--data-dir DIR | --database-url URL] [--json]",
		"Closes an incident: its timeline ends, and commands can no longer name it.", e)
	storeFlags(fs)
	asJSON := fs.Bool("json", false, "print the incident as JSON")
	pos, code, done := parse(fs, args, 1, 1)
	if done {
		return code
	}
	store, svc, err := openIncidents(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	inc, err := svc.CloseIncident(ctx, cliUser(e), pos[0])
	if err != nil {
		return e.errorf("%s", safeMessage(err))
	}
	if *asJSON {
		return writeJSON(e, inc)
	}
	fmt.Fprintf(e.stdout, "Closed incident %s (%q).\n", inc.ID, inc.Title)
	return exitOK
}
