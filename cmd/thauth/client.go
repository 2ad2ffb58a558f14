package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/thauth/thauth/sdk/go/thauth"
)

// Commands that are HTTP clients of a server, through the Go SDK.

const defaultURL = "http://127.0.0.1:8080"

// apiFlags are the flags every client command shares.
type apiFlags struct {
	fs      *flagSet
	timeout *time.Duration
	asJSON  *bool
	project *string // nil when the command needs no project
}

func addAPIFlags(fs *flagSet, withProject bool) *apiFlags {
	fs.String("url", defaultURL, "base `URL` of the Thauth server")
	fs.env("url", "THAUTH_URL")
	fs.String("key", "", "project API `key` (prefer the environment variable: flags show in the process list)")
	fs.env("key", "THAUTH_KEY")
	a := &apiFlags{fs: fs}
	if withProject {
		a.project = fs.String("project", "", "project `id` (default: the key's own project)")
		fs.env("project", "THAUTH_PROJECT")
	}
	a.timeout = fs.Duration("timeout", 30*time.Second, "give up on the server after this `duration`")
	a.asJSON = fs.Bool("json", false, "print JSON for scripts instead of text")
	return a
}

// client returns the SDK client, or prints why it cannot and returns ok false.
func (a *apiFlags) client() (*thauth.Client, bool) {
	e := a.fs.e
	base := a.fs.value("url")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.errorf("%s: %q is not an http:// or https:// URL", a.fs.source("url"), base)
		return nil, false
	}
	key := a.fs.value("key")
	if key == "" {
		e.errorf("no API key: set THAUTH_KEY or pass --key")
		return nil, false
	}
	return thauth.NewClient(base, key, thauth.WithTimeout(*a.timeout), thauth.WithUserAgent("thauth-cli/"+version)), true
}

// projectClient is client then projectID: what every management command starts with.
func (a *apiFlags) projectClient(ctx context.Context) (*thauth.Client, string, bool) {
	c, ok := a.client()
	if !ok {
		return nil, "", false
	}
	project, ok := a.projectID(ctx, c)
	return c, project, ok
}

// projectID returns the project to act on: --project, THAUTH_PROJECT, or the key's own
// project as GET /api/v1/projects (admin keys) or GET /v1/config (decisions keys) reports it.
func (a *apiFlags) projectID(ctx context.Context, c *thauth.Client) (string, bool) {
	if p := a.fs.value("project"); p != "" {
		return p, true
	}
	projects, err := c.ListProjects(ctx)
	if err == nil && len(projects) == 1 {
		return projects[0].ID, true
	}
	if err != nil && !errors.Is(err, thauth.ErrForbidden) {
		a.apiError(err, "")
		return "", false
	}
	cfg, err := c.GetConfig(ctx)
	if errors.Is(err, thauth.ErrForbidden) {
		a.fs.e.errorf("no project id: pass --project ID or set THAUTH_PROJECT (thauth init prints it)")
		return "", false
	}
	if err != nil {
		a.apiError(err, "")
		return "", false
	}
	return cfg.Project.ID, true
}

// apiError prints err for a person, with a hint at the likely fix, and returns exitError.
// scope is the scope the command needs, for the 403 hint.
func (a *apiFlags) apiError(err error, scope string) int {
	e := a.fs.e
	var te *thauth.Error
	if !errors.As(err, &te) {
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			return e.errorf("no answer from the server at %s within %v (--timeout)", a.fs.value("url"), *a.timeout)
		}
		if errors.Is(err, context.Canceled) {
			return e.errorf("interrupted")
		}
		return e.errorf("cannot reach the server at %s (set THAUTH_URL or --url; is 'thauth serve' running?): %v",
			a.fs.value("url"), unwrapURLError(err))
	}
	switch {
	case errors.Is(err, thauth.ErrUnauthorized):
		return e.errorf("unauthorized: check THAUTH_KEY (or --key): the key is missing, mistyped, revoked or expired")
	case errors.Is(err, thauth.ErrForbidden):
		hint := ""
		if scope != "" && !strings.Contains(te.Message, scope) {
			hint = fmt.Sprintf(" (this command needs a key with the %s scope)", scope)
		}
		return e.errorf("forbidden: %s%s", te.Message, hint)
	case errors.Is(err, thauth.ErrNotFound):
		hint := ""
		if a.project != nil {
			hint = " (check --project or THAUTH_PROJECT: a key only reaches its own project)"
		}
		return e.errorf("not found: %s%s", te.Message, hint)
	case errors.Is(err, thauth.ErrRateLimited):
		if te.RetryAfter > 0 {
			return e.errorf("rate limited: %s (retry after %v)", te.Message, te.RetryAfter)
		}
		return e.errorf("rate limited: %s", te.Message)
	case errors.Is(err, thauth.ErrServer):
		return e.errorf("server error (%d): %s", te.StatusCode, te.Message)
	}
	e.errorf("%s", te.Message)
	for _, p := range te.Problems {
		if p.Path != "" {
			fmt.Fprintf(e.stderr, "  %s: %s\n", p.Path, p.Message)
		} else {
			fmt.Fprintf(e.stderr, "  %s\n", p.Message)
		}
	}
	return exitError
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func runApply(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("apply", "thauth apply -f FILE [--dry-run] [--project ID] [--json]",
		`Makes the project's configuration equal to the document in FILE (YAML or JSON, by
extension or content; "-" reads standard input): creates what is missing, updates what
differs, deletes what is absent. Prints every change and the configuration version.
A rejected document is listed problem by problem, with its path, and nothing is written.
Needs a key with the admin scope.`, e)
	file := fs.String("f", "", "configuration document `file` (required; - for standard input)")
	dryRun := fs.Bool("dry-run", false, "only report what would change")
	a := addAPIFlags(fs, true)
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if *file == "" {
		fmt.Fprintf(e.stderr, "thauth apply: missing -f FILE\nUsage: %s\n", fs.usageLine)
		return exitUsage
	}
	doc, contentType, err := readDocument(e, *file)
	if err != nil {
		return e.errorf("%v", err)
	}
	c, project, ok := a.projectClient(ctx)
	if !ok {
		return exitError
	}
	res, err := c.ApplyConfig(ctx, project, doc, contentType, *dryRun)
	if err != nil {
		return a.apiError(err, "admin")
	}
	if *a.asJSON {
		return writeJSON(e, struct {
			*thauth.ApplyResult
			DryRun bool `json:"dry_run"`
		}{res, *dryRun})
	}
	w := e.stdout
	for _, s := range res.Changes.Created {
		fmt.Fprintln(w, "+ "+s)
	}
	for _, s := range res.Changes.Updated {
		fmt.Fprintln(w, "~ "+s)
	}
	for _, s := range res.Changes.Deleted {
		fmt.Fprintln(w, "- "+s)
	}
	prefix := ""
	if *dryRun {
		prefix = "dry run, nothing written: "
	}
	if res.Changes.Empty() {
		fmt.Fprintf(w, "%sno changes; version %s\n", prefix, res.Version)
		return exitOK
	}
	verb := "applied"
	if *dryRun {
		verb = "would apply"
	}
	fmt.Fprintf(w, "%s%s %d created, %d updated, %d deleted; version %s\n", prefix, verb,
		len(res.Changes.Created), len(res.Changes.Updated), len(res.Changes.Deleted), res.Version)
	return exitOK
}

// readDocument reads a configuration document and picks its content type from the file
// extension, or from the content when the extension says nothing.
func readDocument(e *env, file string) ([]byte, string, error) {
	var (
		doc []byte
		err error
	)
	if file == "-" {
		doc, err = io.ReadAll(io.LimitReader(e.stdin, 32<<20))
	} else {
		doc, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading the document: %w", err)
	}
	switch strings.ToLower(filepath.Ext(file)) {
	case ".json":
		return doc, thauth.ContentTypeJSON, nil
	case ".yaml", ".yml":
		return doc, thauth.ContentTypeYAML, nil
	}
	return doc, thauth.SniffContentType(doc), nil
}

func runExport(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("export", "thauth export [--format yaml|json] [--project ID]",
		`Prints the project's configuration document. Applying it back changes nothing.
Needs a key with the admin scope.`, e)
	format := fs.String("format", "yaml", "document `format`: yaml or json")
	a := addAPIFlags(fs, true)
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	if *format != "yaml" && *format != "json" {
		fmt.Fprintf(e.stderr, "thauth export: --format must be yaml or json, not %q\n", *format)
		return exitUsage
	}
	c, project, ok := a.projectClient(ctx)
	if !ok {
		return exitError
	}
	doc, err := c.ExportConfig(ctx, project, *format)
	if err != nil {
		return a.apiError(err, "admin")
	}
	e.stdout.Write(doc)
	if len(doc) > 0 && doc[len(doc)-1] != '\n' {
		io.WriteString(e.stdout, "\n")
	}
	return exitOK
}

func runCheck(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("check", "thauth check --subject S --feature F --action A [--tenant T] [--resource R] [--explain]",
		`Asks whether subject S may perform action A of feature F (in tenant T, on resource R)
and prints "allowed" or "denied" with the reason.
The exit status is 0 for an answer, allowed or denied, and 1 when there is no answer
(bad key, unreachable server, ...). With --exit-code a deny exits with 3 instead.
Needs a key with the decisions:read scope.`, e)
	subject := fs.String("subject", "", "subject `id`, e.g. user:alice (required)")
	feature := fs.String("feature", "", "feature `name` (required)")
	action := fs.String("action", "", "action `name` (required)")
	tenant := fs.String("tenant", "", "`tenant` (default: none, only global grants count)")
	resource := fs.String("resource", "", "`resource`, e.g. invoices/42 or dev/* (default: none)")
	explain := fs.Bool("explain", false, "also print every grant considered and why it matched or not")
	exitCode := fs.Bool("exit-code", false, "exit with 3 when the answer is a deny")
	a := addAPIFlags(fs, false)
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var missing []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"--subject", subject}, {"--feature", feature}, {"--action", action}} {
		if *f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(e.stderr, "thauth check: missing %s\nUsage: %s\n", strings.Join(missing, ", "), fs.usageLine)
		return exitUsage
	}
	req := thauth.CheckRequest{Subject: *subject, Feature: *feature, Action: *action, Explain: *explain}
	if fs.isSet("tenant") {
		req.TenantID = tenant
	}
	if fs.isSet("resource") {
		req.Resource = resource
	}
	c, ok := a.client()
	if !ok {
		return exitError
	}
	d, err := c.Check(ctx, req)
	if err != nil {
		return a.apiError(err, "decisions:read")
	}
	if *a.asJSON {
		if code := writeJSON(e, d); code != exitOK {
			return code
		}
	} else {
		word := "denied"
		if d.Allowed {
			word = "allowed"
		}
		fmt.Fprintf(e.stdout, "%s (%s)\n", word, d.Reason)
		if len(d.Explain) > 0 {
			var pretty bytes.Buffer
			if json.Indent(&pretty, d.Explain, "", "  ") != nil {
				pretty.Reset()
				pretty.Write(d.Explain)
			}
			fmt.Fprintf(e.stdout, "explain: %s\n", pretty.String())
		}
	}
	if *exitCode && !d.Allowed {
		return exitDenied
	}
	return exitOK
}

func runKeys(ctx context.Context, e *env, args []string) int {
	const usageText = `Usage: thauth keys COMMAND [flags]

Manages two different kinds of keys.

API keys: the bearer tokens of HTTP clients, per project. These commands talk to a
server (THAUTH_URL) with a key that has the admin scope:
  create --name N --scope S [--scope S] [--expires-at T]   create a key and print its token once
  list                                                     list the keys, revoked ones included
  revoke ID                                                revoke a key; it stops working at once
Scopes: decisions:read (check, batch, config), subjects:write (subject upsert),
admin (management API).

Master keys: the operator's AES-256 keys that protect the secrets stored in the database
(THAUTH_MASTER_KEY or --master-key-file). These commands run locally, without a server:
  generate [--id ID]                                       print a new master key entry once
  rotate --master-key-file F [--data-dir D | --database-url U]
                                                           move every secret onto the file's
                                                           first (new) key; then the old keys
                                                           can be removed
See docs/security.md. Run 'thauth keys COMMAND -h' for the flags.`
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stdout, usageText)
		return exitOK
	case "create":
		return runKeysCreate(ctx, e, args[1:])
	case "list", "ls":
		return runKeysList(ctx, e, args[1:])
	case "revoke":
		return runKeysRevoke(ctx, e, args[1:])
	case "generate":
		return runKeysGenerate(ctx, e, args[1:])
	case "rotate":
		return runKeysRotate(ctx, e, args[1:])
	}
	fmt.Fprintf(e.stderr, "thauth keys: unknown command %q\n\n%s\n", args[0], usageText)
	return exitUsage
}

func runKeysCreate(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("keys create", "thauth keys create --name NAME --scope SCOPE [--scope SCOPE] [--expires-at TIME]",
		`Creates an API key and prints its token. The token is shown only now.`, e)
	name := fs.String("name", "", "key `name`, e.g. ci or billing-service (required)")
	var scopes stringList
	fs.Var(&scopes, "scope", "`scope` to grant: decisions:read, subjects:write or admin (repeatable, or comma-separated; required)")
	expires := fs.String("expires-at", "", "expiry: RFC 3339 `time` (2027-01-01T00:00:00Z) or a duration from now (720h, 90d); default never")
	a := addAPIFlags(fs, true)
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var problems []string
	if *name == "" {
		problems = append(problems, "missing --name")
	}
	if len(scopes) == 0 {
		problems = append(problems, "missing --scope")
	}
	var expiresAt *time.Time
	if *expires != "" {
		t, err := parseExpiry(*expires, time.Now())
		if err != nil {
			problems = append(problems, "--expires-at: "+err.Error())
		}
		expiresAt = &t
	}
	if len(problems) > 0 {
		fmt.Fprintf(e.stderr, "thauth keys create: %s\nUsage: %s\n", strings.Join(problems, "; "), fs.usageLine)
		return exitUsage
	}
	c, project, ok := a.projectClient(ctx)
	if !ok {
		return exitError
	}
	k, err := c.CreateKey(ctx, project, thauth.CreateKeyRequest{Name: *name, Scopes: scopes, ExpiresAt: expiresAt})
	if err != nil {
		return a.apiError(err, "admin")
	}
	if *a.asJSON {
		return writeJSON(e, struct {
			thauth.APIKey
			Token string `json:"token"`
		}{k.Key, k.Token})
	}
	fmt.Fprintf(e.stdout, "Created key %q (id %s, scopes %s).\n", k.Key.Name, k.Key.ID, strings.Join(k.Key.Scopes, ", "))
	fmt.Fprintln(e.stdout, "Token (shown only now):")
	fmt.Fprintln(e.stdout, "  "+k.Token)
	return exitOK
}

// parseExpiry reads an RFC 3339 time or a duration from now (Go syntax, plus "d" for days).
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := time.ParseDuration(s)
	if strings.HasSuffix(s, "d") {
		if n, nerr := strconv.Atoi(strings.TrimSuffix(s, "d")); nerr == nil {
			d, err = time.Duration(n)*24*time.Hour, nil
		}
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("%q is not in the future", s)
	}
	return now.Add(d).UTC().Truncate(time.Second), nil
}

func runKeysList(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("keys list", "thauth keys list [--project ID] [--json]",
		`Lists the project's API keys, newest first, revoked ones included.`, e)
	a := addAPIFlags(fs, true)
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	c, project, ok := a.projectClient(ctx)
	if !ok {
		return exitError
	}
	keys, err := c.ListKeys(ctx, project)
	if err != nil {
		return a.apiError(err, "admin")
	}
	if *a.asJSON {
		if keys == nil {
			keys = []thauth.APIKey{}
		}
		return writeJSON(e, keys)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tSCOPES\tCREATED\tLAST USED\tEXPIRES\tSTATUS")
	now := time.Now()
	for _, k := range keys {
		status := "active"
		switch {
		case k.RevokedAt != nil:
			status = "revoked " + k.RevokedAt.UTC().Format(time.DateTime)
		case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
			status = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, strings.Join(k.Scopes, ","),
			k.CreatedAt.UTC().Format(time.DateTime), timeOr(k.LastUsedAt, "never"), timeOr(k.ExpiresAt, "never"), status)
	}
	tw.Flush()
	return exitOK
}

func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.DateTime)
}

func runKeysRevoke(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("keys revoke", "thauth keys revoke ID [--project ID]",
		`Revokes the API key ID (see 'thauth keys list'). It stops working on the next request.`, e)
	a := addAPIFlags(fs, true)
	pos, code, done := parse(fs, args, 1, 1)
	if done {
		return code
	}
	c, project, ok := a.projectClient(ctx)
	if !ok {
		return exitError
	}
	if err := c.RevokeKey(ctx, project, pos[0]); err != nil {
		return a.apiError(err, "admin")
	}
	if *a.asJSON {
		return writeJSON(e, map[string]any{"id": pos[0], "revoked": true})
	}
	fmt.Fprintf(e.stdout, "revoked key %s\n", pos[0])
	return exitOK
}
