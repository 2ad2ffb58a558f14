package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/cmd/internal/serve"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/sqlite"
)

// Commands that work on the database directly, without a server: the SQLite database of a
// data directory, or PostgreSQL with --database-url. Both let them run next to running
// servers: their follow loops pick the writes up.

const (
	dataDirUsage     = "`directory` of the SQLite database"
	databaseURLUsage = "PostgreSQL `URL` (postgres://user:password@host:port/db); when set, used instead of --data-dir"
)

// storeFlags registers --data-dir and --database-url (with their environment variables).
func storeFlags(fs *flagSet) {
	fs.String("data-dir", "./thauth-data", dataDirUsage)
	fs.env("data-dir", "THAUTH_DATA_DIR")
	fs.String("database-url", "", databaseURLUsage)
	fs.env("database-url", "THAUTH_DATABASE_URL")
}

// openStore opens the store the flags of storeFlags name, without migrating. where names it
// for messages (never the URL, which may hold a password).
func openStore(ctx context.Context, fs *flagSet) (store thauth.Store, where string, err error) {
	if u := fs.value("database-url"); u != "" {
		cfg := serve.Defaults()
		cfg.DatabaseURL = u
		pg, err := serve.OpenPostgres(ctx, cfg, nil)
		if err != nil {
			return nil, "", err
		}
		return pg, "the PostgreSQL database", nil
	}
	dataDir := fs.value("data-dir")
	st, err := sqlite.Open(ctx, dataDir, sqlite.Options{})
	if err != nil {
		return nil, "", fmt.Errorf("opening the database in %s: %w", dataDir, err)
	}
	return st, "the database in " + dataDir, nil
}

func runInit(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("init", "thauth init --org NAME --project NAME [--data-dir DIR | --database-url URL] [--json]",
		`Creates an organization, a project in it, and the project's first two API keys: an
admin key (management API: apply, export, keys) and a decisions key (checks).
It writes to the database directly (the SQLite database of the data directory, migrated
if needed, or PostgreSQL with --database-url, whose schema must be up to date: see
'thauth migrate'), so it works whether or not servers are running on it; they pick the
new project up within their sync interval. The keys are printed once and only their
hashes are stored.`, e)
	storeFlags(fs)
	org := fs.String("org", "", "organization `name` (required)")
	project := fs.String("project", "", "project `name` (required)")
	asJSON := fs.Bool("json", false, "print one JSON object {organization_id, project_id, admin_key, decisions_key}")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var missing []string
	if strings.TrimSpace(*org) == "" {
		missing = append(missing, "--org")
	}
	if strings.TrimSpace(*project) == "" {
		missing = append(missing, "--project")
	}
	if len(missing) > 0 {
		fmt.Fprintf(e.stderr, "thauth init: missing %s\nUsage: %s\n", strings.Join(missing, " and "), fs.usageLine)
		return exitUsage
	}
	store, err := openReady(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	// The audit log records who ran init: the operating-system user.
	ctx = manage.WithAuditActor(ctx, manage.AuditActor{Type: thauth.ActorCLI, ID: strings.TrimPrefix(cliUser(e), "cli:")})
	res, err := manage.New(store, nil, manage.Options{}).Init(ctx, *org, *project)
	if err != nil {
		return e.errorf("init: %v", err)
	}
	if *asJSON {
		return writeJSON(e, struct {
			OrganizationID string `json:"organization_id"`
			ProjectID      string `json:"project_id"`
			AdminKey       string `json:"admin_key"`
			DecisionsKey   string `json:"decisions_key"`
		}{res.Organization.ID, res.Project.ID, res.AdminKey, res.DecisionsKey})
	}
	w := e.stdout
	fmt.Fprintf(w, "Organization  %-24s %s\n", res.Organization.Name, res.Organization.ID)
	fmt.Fprintf(w, "Project       %-24s %s\n", res.Project.Name, res.Project.ID)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Admin key (management API: apply, export, keys):")
	fmt.Fprintln(w, "  "+res.AdminKey)
	fmt.Fprintln(w, "Decisions key (decision API: check, config, subject upsert):")
	fmt.Fprintln(w, "  "+res.DecisionsKey)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The keys are shown only now; store them somewhere safe. Next:")
	fmt.Fprintln(w, "  export THAUTH_URL="+defaultURL)
	fmt.Fprintln(w, "  export THAUTH_PROJECT="+res.Project.ID)
	fmt.Fprintln(w, "  export THAUTH_KEY="+res.AdminKey)
	fmt.Fprintln(w, "  thauth apply -f examples/acme.yaml")
	return exitOK
}

func runMigrate(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("migrate", "thauth migrate [--data-dir DIR | --database-url URL]",
		`Applies the pending database migrations (forward only) and prints the schema version.
With --database-url it migrates a PostgreSQL database, which 'thauth serve' never does
implicitly (unless --auto-migrate); several nodes or migrate runs may start at once: they
take turns. 'thauth serve' and 'thauth init' on SQLite migrate automatically.`, e)
	storeFlags(fs)
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	store, where, err := openStore(ctx, fs)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	redacted := func(err error) error { return redactURL(err, fs.value("database-url")) }
	before, _, err := store.SchemaVersion(ctx)
	if err != nil {
		return e.errorf("reading the schema version of %s: %v", where, redacted(err))
	}
	if err := store.Migrate(ctx); err != nil {
		return e.errorf("migrating %s: %v", where, redacted(err))
	}
	after, latest, err := store.SchemaVersion(ctx)
	if err != nil {
		return e.errorf("reading the schema version of %s: %v", where, redacted(err))
	}
	if after == before {
		fmt.Fprintf(e.stdout, "schema version %d (up to date; latest %d)\n", after, latest)
	} else {
		fmt.Fprintf(e.stdout, "schema version %d (migrated from %d; latest %d)\n", after, before, latest)
	}
	return exitOK
}

// openReady opens the store the flags name, ready for use: SQLite is migrated; PostgreSQL
// must be up to date already (a *serve.SchemaBehindError tells what to run otherwise).
func openReady(ctx context.Context, fs *flagSet) (thauth.Store, error) {
	store, where, err := openStore(ctx, fs)
	if err != nil {
		return nil, err
	}
	u := fs.value("database-url")
	if u == "" {
		if err := store.Migrate(ctx); err != nil {
			store.Close()
			return nil, fmt.Errorf("migrating %s: %w", where, err)
		}
		return store, nil
	}
	cur, latest, err := store.SchemaVersion(ctx)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("reading the schema version of %s: %w", where, redactURL(err, u))
	}
	if cur < latest {
		store.Close()
		return nil, &serve.SchemaBehindError{Current: cur, Latest: latest}
	}
	return store, nil
}

// redactURL is serve's redaction of a database URL and its password from err's text.
func redactURL(err error, databaseURL string) error { return serve.Redact(err, databaseURL) }

func writeJSON(e *env, v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return e.errorf("writing output: %v", err)
	}
	return exitOK
}
